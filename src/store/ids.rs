//! The rule that keeps ids from ever being reused, checked by every store on commit:
//! counters only move forward, and stay ahead of every id the commit writes.
//!
//! Kernel object names embed group and instance numbers, and grant ids identify rules:
//! a reused id could make a stale kernel object look current.

use crate::state::{Change, Counters};

/// Checks the counters a commit wants to persist against the stored ones and the ids its
/// changes write. Cost is proportional to the changes.
pub(super) fn check_counters(
    stored: Counters,
    new: Counters,
    changes: &[Change],
) -> Result<(), String> {
    for (what, old, new) in [
        ("next_group", stored.next_group, new.next_group),
        ("next_grant", stored.next_grant, new.next_grant),
        ("next_instance", stored.next_instance, new.next_instance),
    ] {
        if new < old {
            return Err(format!(
                "counter {what} would go back from {old} to {new}, allowing ids to be reused"
            ));
        }
    }
    for (i, change) in changes.iter().enumerate() {
        let ahead = |what: &str, id: u32, next: u32| {
            if id >= next {
                Err(format!(
                    "change {} writes {what} {id} but the counter says the next is {next}",
                    i + 1
                ))
            } else {
                Ok(())
            }
        };
        match change {
            Change::CreateGroup { num, .. } => ahead("group", *num, new.next_group)?,
            Change::RestoreGroup { group } => {
                ahead("group", group.num, new.next_group)?;
                for id in group.grants.keys() {
                    ahead("grant", *id, new.next_grant)?;
                }
            }
            Change::Grant { id, .. } => ahead("grant", *id, new.next_grant)?,
            Change::RegisterInstance { num, .. } => ahead("instance", *num, new.next_instance)?,
            _ => {}
        }
    }
    Ok(())
}
