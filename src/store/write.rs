//! Translates each [`Change`] into INSERT/DELETE statements on the open transaction.
//!
//! Every statement touches only the rows of the change (indexed lookups), so a commit
//! costs what its changes cost, whatever the size of the state. Deletes name the full
//! values of the row they expect and must hit exactly one row; inserts rely on the
//! schema's constraints. Either way a change that contradicts the stored state fails,
//! and the caller rolls the whole transaction back.

use super::fault::Fault;
use super::row::PermissionRow;
use super::schema::{KEY_GENERATION, KEY_NEXT_GRANT, KEY_NEXT_GROUP, KEY_NEXT_INSTANCE};
use crate::model::{GroupKey, InstanceId, InstanceSpec, IpPermission};
use crate::state::{Change, Counters, GrantId, Group, Instance, InstanceNum};
use rusqlite::{Connection, OptionalExtension};
use std::net::IpAddr;

/// Writes one change.
pub(super) fn apply(conn: &Connection, change: &Change) -> Result<(), Fault> {
    match change {
        Change::CreateGroup {
            key,
            num,
            description,
        } => {
            conn.prepare_cached(
                "INSERT INTO groups (num, owner, name, description) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute((
                num,
                key.owner.as_str(),
                key.name.as_str(),
                description.as_str(),
            ))?;
            Ok(())
        }
        Change::DeleteGroup { group } => delete_group(conn, group),
        Change::RestoreGroup { group } => {
            apply(
                conn,
                &Change::CreateGroup {
                    key: group.key.clone(),
                    num: group.num,
                    description: group.description.clone(),
                },
            )?;
            for (id, gr) in &group.grants {
                insert_grant(conn, group.num, *id, &gr.permission, gr.shard)?;
            }
            insert_members(conn, group.num, &group.key, group.remote.iter())
        }
        Change::Grant {
            group,
            id,
            permission,
            shard,
        } => insert_grant(conn, group_num(conn, group)?, *id, permission, *shard),
        Change::Revoke {
            group,
            id,
            permission,
            shard,
        } => delete_grant(conn, group_num(conn, group)?, *id, permission, *shard),
        Change::AddMembers { group, addresses } => {
            insert_members(conn, group_num(conn, group)?, group, addresses.iter())
        }
        Change::RemoveMembers { group, addresses } => {
            delete_members(conn, group_num(conn, group)?, group, addresses.iter())
        }
        Change::SetInstanceGroups { id, from, to } => set_instance_groups(conn, id, from, to),
        Change::RegisterInstance { num, slot, spec } => insert_instance(conn, *num, *slot, spec),
        Change::DeregisterInstance { instance } => delete_instance(conn, instance),
    }
}

/// Persists the counters and moves the generation on by one; returns the new generation.
pub(super) fn finish(conn: &Connection, counters: Counters) -> Result<u64, Fault> {
    let mut update = conn.prepare_cached("UPDATE meta SET value = ?2 WHERE key = ?1")?;
    for (key, value) in [
        (KEY_NEXT_GROUP, counters.next_group),
        (KEY_NEXT_GRANT, counters.next_grant),
        (KEY_NEXT_INSTANCE, counters.next_instance),
    ] {
        if update.execute((key, value))? != 1 {
            return Err(Fault::Corrupt(format!("table meta has no row key={key:?}")));
        }
    }
    let generation: i64 = conn
        .prepare_cached("UPDATE meta SET value = value + 1 WHERE key = ?1 RETURNING value")?
        .query_row([KEY_GENERATION], |r| r.get(0))?;
    u64::try_from(generation)
        .map_err(|_| Fault::Corrupt(format!("table meta: generation {generation} is negative")))
}

/// A short description of a change for error messages.
pub(super) fn describe(change: &Change) -> String {
    match change {
        Change::CreateGroup { key, num, .. } => format!("create group {key} (num {num})"),
        Change::DeleteGroup { group } => format!("delete group {} (num {})", group.key, group.num),
        Change::RestoreGroup { group } => {
            format!("restore group {} (num {})", group.key, group.num)
        }
        Change::Grant {
            group,
            id,
            permission,
            shard,
        } => format!("grant {id} ({permission}) on {group}, shard {shard}"),
        Change::Revoke {
            group,
            id,
            permission,
            shard,
        } => format!("revoke grant {id} ({permission}) on {group}, shard {shard}"),
        Change::AddMembers { group, addresses } => {
            format!("add {} remote members to {group}", addresses.len())
        }
        Change::RemoveMembers { group, addresses } => {
            format!("remove {} remote members from {group}", addresses.len())
        }
        Change::SetInstanceGroups { id, to, .. } => {
            format!("set the {} groups of instance {id}", to.len())
        }
        Change::RegisterInstance { num, spec, .. } => {
            format!("register instance {} (num {num})", spec.id)
        }
        Change::DeregisterInstance { instance } => format!(
            "deregister instance {} (num {})",
            instance.spec.id, instance.num
        ),
    }
}

fn group_num(conn: &Connection, key: &GroupKey) -> Result<i64, Fault> {
    conn.prepare_cached("SELECT num FROM groups WHERE owner = ?1 AND name = ?2")?
        .query_row((key.owner.as_str(), key.name.as_str()), |r| r.get(0))
        .optional()?
        .ok_or_else(|| Fault::Conflict(format!("group {key} is not in the store")))
}

fn insert_grant(
    conn: &Connection,
    group_num: impl rusqlite::ToSql,
    id: GrantId,
    permission: &IpPermission,
    shard: u32,
) -> Result<(), Fault> {
    let r = PermissionRow::from_permission(permission);
    // The schema's CHECK refuses a shard above MAX_SHARD.
    conn.prepare_cached(
        "INSERT INTO grants (id, group_num, kind, protocol, from_port, to_port, cidr, \
         source_owner, source_name, shard) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute((
        id,
        group_num,
        r.kind,
        r.protocol,
        r.from_port,
        r.to_port,
        r.cidr,
        r.source_owner,
        r.source_name,
        shard,
    ))?;
    Ok(())
}

fn delete_grant(
    conn: &Connection,
    group_num: impl rusqlite::ToSql,
    id: GrantId,
    permission: &IpPermission,
    shard: u32,
) -> Result<(), Fault> {
    let r = PermissionRow::from_permission(permission);
    let n = conn
        .prepare_cached(
            "DELETE FROM grants WHERE id = ?1 AND group_num = ?2 AND kind = ?3 \
             AND protocol IS ?4 AND from_port IS ?5 AND to_port IS ?6 AND cidr IS ?7 \
             AND source_owner IS ?8 AND source_name IS ?9 AND shard = ?10",
        )?
        .execute((
            id,
            group_num,
            r.kind,
            r.protocol,
            r.from_port,
            r.to_port,
            r.cidr,
            r.source_owner,
            r.source_name,
            shard,
        ))?;
    expect_one(n, || format!("grant {id} ({permission}) in shard {shard}"))
}

/// Remote members joining a group: each must be new to it (the primary key refuses a
/// second row).
fn insert_members<'a>(
    conn: &Connection,
    group_num: impl rusqlite::ToSql,
    group: &GroupKey,
    addresses: impl Iterator<Item = &'a IpAddr>,
) -> Result<(), Fault> {
    let mut insert =
        conn.prepare_cached("INSERT INTO remote_members (group_num, address) VALUES (?1, ?2)")?;
    for a in addresses {
        insert
            .execute((&group_num, a.to_string()))
            .map_err(|e| Fault::from(e).context(format!("remote member {a} of {group}")))?;
    }
    Ok(())
}

/// Remote members leaving a group: each must be a member.
fn delete_members<'a>(
    conn: &Connection,
    group_num: impl rusqlite::ToSql,
    group: &GroupKey,
    addresses: impl Iterator<Item = &'a IpAddr>,
) -> Result<(), Fault> {
    let mut delete =
        conn.prepare_cached("DELETE FROM remote_members WHERE group_num = ?1 AND address = ?2")?;
    for a in addresses {
        let n = delete.execute((&group_num, a.to_string()))?;
        expect_one(n, || format!("remote member {a} of {group}"))?;
    }
    Ok(())
}

/// Replaces an instance's memberships. `from` must be exactly the stored list, in order:
/// each of its rows is deleted by its full values, then none may be left. The cost is
/// that of the two lists, whatever the size of the store.
fn set_instance_groups(
    conn: &Connection,
    id: &InstanceId,
    from: &[GroupKey],
    to: &[GroupKey],
) -> Result<(), Fault> {
    let mut delete = conn.prepare_cached(
        "DELETE FROM instance_groups WHERE instance_id = ?1 AND position = ?2 \
         AND owner = ?3 AND name = ?4",
    )?;
    for (position, g) in from.iter().enumerate() {
        let n = delete.execute((
            id.as_str(),
            position as i64,
            g.owner.as_str(),
            g.name.as_str(),
        ))?;
        expect_one(n, || {
            format!("membership of {id} in {g} at position {position}")
        })?;
    }
    let left: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM instance_groups WHERE instance_id = ?1)")?
        .query_row([id.as_str()], |r| r.get(0))?;
    if left {
        return Err(Fault::Conflict(format!(
            "instance {id} has more groups in the store than the {} the change replaces",
            from.len()
        )));
    }
    insert_memberships(conn, id, to)
}

/// Writes an instance's groups at positions 0, 1, …; the schema refuses a group listed
/// twice, a missing group and a missing instance.
fn insert_memberships(
    conn: &Connection,
    id: &InstanceId,
    groups: &[GroupKey],
) -> Result<(), Fault> {
    let mut member = conn.prepare_cached(
        "INSERT INTO instance_groups (instance_id, position, owner, name) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (position, g) in groups.iter().enumerate() {
        member
            .execute((
                id.as_str(),
                position as i64,
                g.owner.as_str(),
                g.name.as_str(),
            ))
            .map_err(|e| Fault::from(e).context(format!("membership of {id} in {g}")))?;
    }
    Ok(())
}

fn delete_group(conn: &Connection, group: &Group) -> Result<(), Fault> {
    for (id, gr) in &group.grants {
        delete_grant(conn, group.num, *id, &gr.permission, gr.shard)?;
    }
    delete_members(conn, group.num, &group.key, group.remote.iter())?;
    let n = conn
        .prepare_cached(
            "DELETE FROM groups WHERE num = ?1 AND owner = ?2 AND name = ?3 \
             AND description = ?4",
        )?
        .execute((
            group.num,
            group.key.owner.as_str(),
            group.key.name.as_str(),
            group.description.as_str(),
        ))
        .map_err(|e| {
            Fault::from(e).context(
                "the group still has grants, remote members, member instances or permissions \
             naming it in the store",
            )
        })?;
    expect_one(n, || format!("group {} (num {})", group.key, group.num))
}

fn insert_instance(
    conn: &Connection,
    num: InstanceNum,
    slot: u32,
    spec: &InstanceSpec,
) -> Result<(), Fault> {
    conn.prepare_cached(
        "INSERT INTO instances (id, num, interface, slot) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute((spec.id.as_str(), num, spec.interface.as_str(), slot))?;
    let mut address = conn.prepare_cached(
        "INSERT INTO instance_addresses (instance_id, position, address) VALUES (?1, ?2, ?3)",
    )?;
    for (position, a) in spec.addresses.iter().enumerate() {
        address.execute((spec.id.as_str(), position as i64, a.to_string()))?;
    }
    insert_memberships(conn, &spec.id, &spec.groups)
}

fn delete_instance(conn: &Connection, instance: &Instance) -> Result<(), Fault> {
    let spec = &instance.spec;
    let mut address = conn.prepare_cached(
        "DELETE FROM instance_addresses WHERE instance_id = ?1 AND position = ?2 \
         AND address = ?3",
    )?;
    for (position, a) in spec.addresses.iter().enumerate() {
        let n = address.execute((spec.id.as_str(), position as i64, a.to_string()))?;
        expect_one(n, || {
            format!("address {a} (position {position}) of {}", spec.id)
        })?;
    }
    let mut member = conn.prepare_cached(
        "DELETE FROM instance_groups WHERE instance_id = ?1 AND position = ?2 \
         AND owner = ?3 AND name = ?4",
    )?;
    for (position, g) in spec.groups.iter().enumerate() {
        let n = member.execute((
            spec.id.as_str(),
            position as i64,
            g.owner.as_str(),
            g.name.as_str(),
        ))?;
        expect_one(n, || format!("membership of {} in {g}", spec.id))?;
    }
    let n = conn
        .prepare_cached(
            "DELETE FROM instances WHERE id = ?1 AND num = ?2 AND interface = ?3 AND slot = ?4",
        )?
        .execute((
            spec.id.as_str(),
            instance.num,
            spec.interface.as_str(),
            instance.slot,
        ))
        .map_err(|e| {
            Fault::from(e).context("the instance has more addresses or groups in the store")
        })?;
    expect_one(n, || format!("instance {} (num {})", spec.id, instance.num))
}

/// A delete (or update) must hit exactly the one row the change describes.
fn expect_one(rows: usize, what: impl FnOnce() -> String) -> Result<(), Fault> {
    match rows {
        1 => Ok(()),
        0 => Err(Fault::Conflict(format!(
            "{} is not in the store with these values",
            what()
        ))),
        n => Err(Fault::Corrupt(format!("{} matched {n} rows", what()))),
    }
}
