//! Upgrading a store written by an older secgroupd in place, so that a host keeps its
//! state across the upgrade.
//!
//! An upgrade runs every step from the file's version to [`SCHEMA_VERSION`] and records
//! the new version in one transaction: a crash or an error leaves the file exactly as the
//! older secgroupd wrote it (which that secgroupd can still open). Steps only add (tables,
//! columns with defaults), so the rows already there keep their meaning; the load that
//! follows validates them like any others.

use super::fault::Fault;
use super::schema::{KEY_VERSION, OLDEST_VERSION, SCHEMA_VERSION};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

/// `STEPS[i]` upgrades version `OLDEST_VERSION + i` to the next one.
const STEPS: [&str; (SCHEMA_VERSION - OLDEST_VERSION) as usize] = [
    // 1 → 2: the shard chain of each grant (every version-1 grant was in the group's one
    // chain, shard 0), members of groups that live on other hosts, and each instance's
    // slot (bridged mode's packet mark; existing instances get 1, 2, … in `num` order).
    "
ALTER TABLE grants ADD COLUMN
    shard INTEGER NOT NULL DEFAULT 0 CHECK (shard >= 0 AND shard <= 1048576);

CREATE TABLE remote_members (
    group_num INTEGER NOT NULL REFERENCES groups (num),
    address   TEXT NOT NULL,
    PRIMARY KEY (group_num, address)
) STRICT, WITHOUT ROWID;

ALTER TABLE instances ADD COLUMN slot INTEGER NOT NULL DEFAULT 0;
UPDATE instances SET slot = (SELECT COUNT(*) FROM instances AS o WHERE o.num <= instances.num);
CREATE UNIQUE INDEX instances_by_slot ON instances (slot);
",
];

// The CHECK above spells out `state::MAX_SHARD`: keep them equal.
const _: () = assert!(crate::state::MAX_SHARD == 1_048_576);

/// Runs the DDL of every step after `from` on an open transaction (the caller records the
/// version and commits).
pub(super) fn steps(conn: &Connection, from: i64) -> Result<(), Fault> {
    for (i, step) in STEPS.iter().enumerate() {
        let to = OLDEST_VERSION + i as i64 + 1;
        if to <= from {
            continue;
        }
        conn.execute_batch(step).map_err(|e| step_fault(e, to))?;
    }
    Ok(())
}

/// Upgrades a store at version `from` to [`SCHEMA_VERSION`] in one durable transaction.
/// Call on a configured connection, before anything reads the tables.
pub(super) fn upgrade(conn: &mut Connection, from: i64) -> Result<(), Fault> {
    if from == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    steps(&tx, from)?;
    let n = tx
        .prepare("UPDATE meta SET value = ?2 WHERE key = ?1 AND value = ?3")?
        .execute((KEY_VERSION, SCHEMA_VERSION, from))?;
    if n != 1 {
        return Err(Fault::Corrupt(format!(
            "table meta, row key={KEY_VERSION:?}: changed while being upgraded from {from}"
        )));
    }
    tx.commit()?;
    tracing::info!(
        from,
        to = SCHEMA_VERSION,
        "upgraded the state store's schema"
    );
    Ok(())
}

/// A step that fails on a file claiming the older version means the file does not hold
/// that version's schema (a table already there, a column missing): damage, not I/O.
fn step_fault(e: rusqlite::Error, to: i64) -> Fault {
    let what = format!("upgrading the schema to version {to}");
    // A failed statement of a batch comes as SqlInputError (with the offending SQL).
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) | rusqlite::Error::SqlInputError { error: f, .. } => {
            Some(f.code)
        }
        _ => None,
    };
    if code == Some(ErrorCode::Unknown) {
        return Fault::Corrupt(format!(
            "{what}: {e} (the file does not hold the schema its version says)"
        ));
    }
    Fault::from(e).context(what)
}
