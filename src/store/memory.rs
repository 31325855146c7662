//! An in-memory [`Store`] for unit tests of the layers above (the reconciler).
//!
//! It enforces the same rules as [`super::SqliteStore`] (a change that contradicts the
//! stored state fails the whole commit, counters never go back) so that tests catch the
//! bugs the real store would, and it can be told to fail commits to exercise rollback.
//! Clones share one store: keep a clone to inspect or steer the one you handed over.

use super::{Store, StoreError, ids};
use crate::model::IpPermission;
use crate::state::{Change, Counters, MAX_SHARD, State};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Shown in errors, where the SQLite store shows its path.
const PATH: &str = "(memory)";

#[derive(Debug, Clone, Default)]
pub struct MemStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    state: State,
    counters: Counters,
    generation: u64,
    /// Commits still to fail.
    failures: usize,
}

impl MemStore {
    /// An empty store, as on first start.
    pub fn new() -> Self {
        MemStore::default()
    }

    /// A store that already holds `state`, as if it had been committed.
    pub fn with_state(state: &State) -> Self {
        let store = MemStore::new();
        {
            let mut inner = store.lock();
            inner.state = state.clone();
            inner.counters = state.counters();
        }
        store
    }

    /// Makes the next commit fail with [`StoreError::Io`], persisting nothing. Calls add
    /// up: two calls fail the next two commits.
    pub fn fail_next_commit(&self) {
        self.lock().failures += 1;
    }

    /// The number of successful commits.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// What [`Store::load`] would return now.
    pub fn snapshot(&self) -> State {
        let inner = self.lock();
        rebuild(&inner.state, inner.counters)
    }

    /// A test that panicked while holding the lock must not hide the store from others.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemStore {
    fn load(&mut self) -> Result<State, StoreError> {
        Ok(self.snapshot())
    }

    fn commit(&mut self, changes: &[Change], counters: Counters) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.failures > 0 {
            inner.failures -= 1;
            return Err(StoreError::Io(format!("{PATH}: injected commit failure")));
        }
        let conflict = |why: String| StoreError::Conflict {
            path: PATH.to_string(),
            why,
        };
        ids::check_counters(inner.counters, counters, changes).map_err(conflict)?;
        // Work on a copy, kept only if every change fits: all or nothing.
        let mut next = inner.state.clone();
        for (i, change) in changes.iter().enumerate() {
            contradiction(&next, change)
                .map_err(|why| conflict(format!("change {} of {}: {why}", i + 1, changes.len())))?;
            next.apply(change);
        }
        inner.state = next;
        inner.counters = counters;
        inner.generation += 1;
        Ok(())
    }
}

/// The state as a load would rebuild it: with the persisted counters.
fn rebuild(state: &State, counters: Counters) -> State {
    State::from_parts(
        state.groups().cloned(),
        state.instances().cloned(),
        counters,
    )
    .unwrap_or_else(|_| state.clone())
}

/// The first element that appears twice (a second row the SQL store would refuse).
fn first_repeat<T: PartialEq>(items: &[T]) -> Option<&T> {
    items
        .iter()
        .enumerate()
        .find(|(i, x)| items[..*i].contains(x))
        .map(|(_, x)| x)
}

/// Why `change` cannot apply to `state`, mirroring the SQLite store's constraints.
fn contradiction(state: &State, change: &Change) -> Result<(), String> {
    let group_num_used = |num| state.groups().any(|g| g.num == num);
    let grant_id_used = |id| state.groups().any(|g| g.grants.contains_key(&id));
    let source_ok = |p: &IpPermission, own: &crate::model::GroupKey| match p {
        IpPermission::GroupPair { source } => source == own || state.group(source).is_some(),
        IpPermission::Cidr { .. } => true,
    };
    match change {
        Change::AddMembers { group, addresses } => {
            let g = state
                .group(group)
                .ok_or_else(|| format!("group {group} is not stored"))?;
            if let Some(a) =
                first_repeat(addresses).or_else(|| addresses.iter().find(|a| g.remote.contains(a)))
            {
                return Err(format!("{a} is already a remote member of {group}"));
            }
        }
        Change::RemoveMembers { group, addresses } => {
            let g = state
                .group(group)
                .ok_or_else(|| format!("group {group} is not stored"))?;
            if let Some(a) =
                first_repeat(addresses).or_else(|| addresses.iter().find(|a| !g.remote.contains(a)))
            {
                return Err(format!("{a} is not a remote member of {group}"));
            }
        }
        Change::SetInstanceGroups { id, from, to } => {
            let stored = state
                .instance(id)
                .ok_or_else(|| format!("instance {id} is not stored"))?;
            if stored.spec.groups != *from {
                return Err(format!("instance {id} is not stored with these groups"));
            }
            if first_repeat(to).is_some() || to.iter().any(|g| state.group(g).is_none()) {
                return Err(format!(
                    "the new groups of {id} repeat a group or name a missing one"
                ));
            }
        }
        Change::CreateGroup { key, num, .. } => {
            if state.group(key).is_some() || group_num_used(*num) {
                return Err(format!("group {key} or num {num} exists"));
            }
        }
        Change::RestoreGroup { group } => {
            if state.group(&group.key).is_some() || group_num_used(group.num) {
                return Err(format!("group {} or num {} exists", group.key, group.num));
            }
            for (id, gr) in &group.grants {
                if grant_id_used(*id)
                    || !source_ok(&gr.permission, &group.key)
                    || gr.shard > MAX_SHARD
                {
                    return Err(format!(
                        "grant {id} exists, names a missing group or is in shard {}",
                        gr.shard
                    ));
                }
            }
        }
        Change::DeleteGroup { group } => {
            if state.group(&group.key) != Some(group) {
                return Err(format!(
                    "group {} is not stored with these values",
                    group.key
                ));
            }
            if state.members(&group.key).next().is_some() {
                return Err(format!("group {} has members", group.key));
            }
            let named = state.groups().any(|g| {
                g.key != group.key
                    && g.grants.values().any(|gr| {
                        matches!(&gr.permission, IpPermission::GroupPair { source } if *source == group.key)
                    })
            });
            if named {
                return Err(format!("a grant names group {}", group.key));
            }
        }
        Change::Grant {
            group,
            id,
            permission,
            shard,
        } => {
            if state.group(group).is_none()
                || grant_id_used(*id)
                || state.find_grant(group, permission).is_some()
                || !source_ok(permission, group)
                || *shard > MAX_SHARD
            {
                return Err(format!(
                    "grant {id} ({permission}, shard {shard}) does not fit group {group}"
                ));
            }
        }
        Change::Revoke {
            group,
            id,
            permission,
            shard,
        } => {
            let stored = state.group(group).and_then(|g| g.grants.get(id));
            if stored.map(|g| (&g.permission, g.shard)) != Some((permission, *shard)) {
                return Err(format!(
                    "grant {id} ({permission}) is not stored on {group} in shard {shard}"
                ));
            }
        }
        Change::RegisterInstance { num, spec, .. } => {
            let clash = state.instances().any(|i| {
                i.spec.id == spec.id
                    || i.num == *num
                    || i.spec.interface == spec.interface
                    || i.spec.addresses.iter().any(|a| spec.addresses.contains(a))
            });
            let repeats =
                first_repeat(&spec.addresses).is_some() || first_repeat(&spec.groups).is_some();
            if clash || repeats || spec.groups.iter().any(|g| state.group(g).is_none()) {
                return Err(format!(
                    "instance {} clashes or names a missing group",
                    spec.id
                ));
            }
        }
        Change::DeregisterInstance { instance } => {
            if state.instance(&instance.spec.id) != Some(instance) {
                return Err(format!(
                    "instance {} is not stored with these values",
                    instance.spec.id
                ));
            }
        }
    }
    Ok(())
}
