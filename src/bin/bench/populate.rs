//! Pre-populating a state directory through the library, as the daemon would persist the
//! same requests (`State::plan`, `State::apply`, `Store::commit`), but without a socket
//! round trip and an fsync per request: 100,000 grants take seconds instead of minutes.

use super::workload::OWNER;
use anyhow::{Context, Result, anyhow};
use secgroupd::model::OwnerId;
use secgroupd::model::query::{decode_form, parse_action};
use secgroupd::state::{Change, State};
use secgroupd::store::{SqliteStore, Store};
use std::path::Path;

/// Changes per store transaction: large enough that fsyncs do not dominate, small enough
/// that one transaction stays modest in memory.
const CHUNK: usize = 10_000;

/// Plans and applies `requests` (form bodies) to `state`, returning the changes. Any
/// refused request is an error: the benchmark's tables are meant to be valid.
pub fn plan_all(
    state: &mut State,
    requests: impl IntoIterator<Item = String>,
    mut sink: impl FnMut(&State, Vec<Change>) -> Result<()>,
) -> Result<usize> {
    let owner = OwnerId::parse("owner_id", OWNER).map_err(|e| anyhow!("{e}"))?;
    let mut pending = Vec::new();
    let mut n = 0;
    for body in requests {
        let pairs = decode_form(body.as_bytes()).map_err(|e| anyhow!("{body}: {e}"))?;
        let action = parse_action(&pairs, &owner).map_err(|e| anyhow!("{body}: {e}"))?;
        let (changes, _) = state
            .plan(&action)
            .map_err(|e| anyhow!("{body}: refused: {e}"))?;
        for c in &changes {
            state.apply(c);
        }
        pending.extend(changes);
        n += 1;
        if pending.len() >= CHUNK {
            sink(state, std::mem::take(&mut pending))?;
        }
    }
    if !pending.is_empty() {
        sink(state, pending)?;
    }
    Ok(n)
}

/// Applies `requests` to the store in `state_dir` (created if missing); returns the
/// state as persisted.
pub fn populate(state_dir: &Path, requests: impl IntoIterator<Item = String>) -> Result<State> {
    let mut store = SqliteStore::open(state_dir)
        .with_context(|| format!("opening the store in {}", state_dir.display()))?;
    let mut state = store.load()?;
    plan_all(&mut state, requests, |state, changes| {
        store
            .commit(&changes, state.counters())
            .context("committing to the store")
    })?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::super::workload::Table;
    use super::*;

    #[test]
    fn generated_tables_are_accepted_by_the_model_and_state() {
        let t = Table {
            permissions: 300,
            group_size: 10,
            members: 3,
        };
        let mut state = State::new();
        let mut changes = 0;
        let n = plan_all(&mut state, t.setup_requests(), |_, c| {
            changes += c.len();
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 30 + 300 + 3);
        assert_eq!(changes, n);
        assert_eq!(state.grant_count(), 300);
        assert_eq!(state.instances().count(), 3);
    }
}
