//! Reads every table back into a [`State`], trusting nothing: each value goes through the
//! model's parser, each reference and uniqueness rule is checked again (an operator's
//! `sqlite3` session does not enforce foreign keys, nor CHECK constraints with
//! `ignore_check_constraints`), and counters must be ahead of every id in use. Any failure
//! is `Corrupt`, naming the table and row.
//!
//! A shard holding more than `state::SHARD_SIZE` grants is accepted: it is only a longer
//! chain (every grant of a version-1 store lands in shard 0), never a wrong answer.

use super::cell::{address, bounded, id, int, opt_int, opt_text, parse, text};
use super::fault::Fault;
use super::row::PermissionRow;
use crate::model::{
    GroupDescription, GroupKey, GroupName, InstanceId, InstanceSpec, InterfaceName, IpPermission,
    OwnerId,
};
use crate::state::{Counters, Grant, Group, Instance, MAX_SHARD, State};
use rusqlite::{Connection, Row};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

/// Loads the state. Call inside one read transaction so all tables are one snapshot.
pub(super) fn state(conn: &Connection, counters: Counters) -> Result<State, Fault> {
    let mut groups = read_groups(conn)?;
    let max_grant = read_grants(conn, &mut groups)?;
    read_remote_members(conn, &mut groups)?;
    let mut instances = read_instances(conn)?;
    read_addresses(conn, &mut instances)?;
    read_memberships(conn, &mut instances, &groups)?;

    let max_group = groups.by_num.keys().max().copied();
    let max_instance = instances.values().map(|i| i.num).max();
    ahead(
        "next_group",
        counters.next_group,
        max_group,
        "groups, row num",
    )?;
    ahead(
        "next_grant",
        counters.next_grant,
        max_grant,
        "grants, row id",
    )?;
    ahead(
        "next_instance",
        counters.next_instance,
        max_instance,
        "instances, row num",
    )?;

    let instances = instances.into_values().map(|i| Instance {
        num: i.num,
        slot: i.slot,
        spec: InstanceSpec {
            id: i.id,
            interface: i.interface,
            addresses: i.addresses,
            groups: i.groups,
        },
    });
    State::from_parts(groups.by_key.into_values(), instances, counters)
        .map_err(|why| Fault::Corrupt(format!("inconsistent state: {why}")))
}

/// A counter must be above every id in use, or a new id would collide with (or reuse)
/// an old one. `State::from_parts` would quietly bump it; a store that says otherwise is
/// damaged, so say so.
fn ahead(key: &str, next: u32, max_in_use: Option<u32>, row: &str) -> Result<(), Fault> {
    match max_in_use {
        Some(max) if max >= next => Err(Fault::Corrupt(format!(
            "table meta, row key={key:?}: {next} is not above the {max} in use \
             (table {row}={max}), so ids would be reused"
        ))),
        _ => Ok(()),
    }
}

struct Groups {
    by_key: BTreeMap<GroupKey, Group>,
    by_num: HashMap<u32, GroupKey>,
}

fn read_groups(conn: &Connection) -> Result<Groups, Fault> {
    let mut out = Groups {
        by_key: BTreeMap::new(),
        by_num: HashMap::new(),
    };
    let sql = "SELECT num, owner, name, description FROM groups";
    each_row(conn, "groups", sql, |row| {
        let num = id(row, 0, "num").map_err(|e| corrupt("groups", "?", e))?;
        let at = format!("num={num}");
        let parsed = (|| {
            let key = GroupKey {
                owner: parse(row, 1, "owner", OwnerId::parse)?,
                name: parse(row, 2, "name", GroupName::parse)?,
            };
            let description = parse(row, 3, "description", GroupDescription::parse)?;
            Ok::<_, String>((key, description))
        })();
        let (key, description) = parsed.map_err(|e| corrupt("groups", &at, e))?;
        if out.by_num.insert(num, key.clone()).is_some() {
            return Err(corrupt("groups", &at, "duplicate num"));
        }
        let group = Group {
            remote: Default::default(),
            num,
            key: key.clone(),
            description,
            grants: BTreeMap::new(),
        };
        if out.by_key.insert(key.clone(), group).is_some() {
            return Err(corrupt("groups", &at, format!("a second group {key}")));
        }
        Ok(())
    })?;
    Ok(out)
}

/// Adds every grant to its group; returns the highest grant id.
fn read_grants(conn: &Connection, groups: &mut Groups) -> Result<Option<u32>, Fault> {
    let sql = "SELECT id, group_num, kind, protocol, from_port, to_port, cidr, source_owner, \
               source_name, shard FROM grants ORDER BY id";
    let mut max = None;
    let mut seen = HashSet::new();
    each_row(conn, "grants", sql, |row| {
        let grant_id = id(row, 0, "id").map_err(|e| corrupt("grants", "?", e))?;
        let at = format!("id={grant_id}");
        let fail = |e: String| corrupt("grants", &at, e);
        let num = id(row, 1, "group_num").map_err(fail)?;
        let key = groups
            .by_num
            .get(&num)
            .ok_or_else(|| fail(format!("group_num {num} names no row of table groups")))?
            .clone();
        let values = PermissionRow {
            kind: text(row, 2, "kind").map_err(fail)?.to_string(),
            protocol: opt_text(row, 3, "protocol").map_err(fail)?,
            from_port: opt_int(row, 4, "from_port").map_err(fail)?,
            to_port: opt_int(row, 5, "to_port").map_err(fail)?,
            cidr: opt_text(row, 6, "cidr").map_err(fail)?,
            source_owner: opt_text(row, 7, "source_owner").map_err(fail)?,
            source_name: opt_text(row, 8, "source_name").map_err(fail)?,
        };
        let permission = values.to_permission().map_err(fail)?;
        let shard = bounded(row, 9, "shard", MAX_SHARD).map_err(fail)?;
        if let IpPermission::GroupPair { source } = &permission
            && !groups.by_key.contains_key(source)
        {
            return Err(fail(format!(
                "source group {source} names no row of table groups"
            )));
        }
        if !seen.insert((num, permission.clone())) {
            return Err(fail(format!(
                "group {key} has a second grant of the same values ({permission})"
            )));
        }
        if let Some(group) = groups.by_key.get_mut(&key) {
            group.grants.insert(grant_id, Grant { permission, shard });
        }
        max = Some(grant_id);
        Ok(())
    })?;
    Ok(max)
}

/// Adds every remote member to its group.
fn read_remote_members(conn: &Connection, groups: &mut Groups) -> Result<(), Fault> {
    let sql = "SELECT group_num, address FROM remote_members";
    each_row(conn, "remote_members", sql, |row| {
        let num = id(row, 0, "group_num").map_err(|e| corrupt("remote_members", "?", e))?;
        let raw = text(row, 1, "address").unwrap_or("?");
        let at = format!("(group_num={num}, address={raw:?})");
        let fail = |e: String| corrupt("remote_members", &at, e);
        let address = address(row, 1, "address").map_err(fail)?;
        let group = groups
            .by_num
            .get(&num)
            .and_then(|key| groups.by_key.get_mut(key))
            .ok_or_else(|| fail(format!("group_num {num} names no row of table groups")))?;
        if !group.remote.insert(address) {
            return Err(fail(format!(
                "address {address} is a remote member of {} twice",
                group.key
            )));
        }
        Ok(())
    })
}

/// An instance while its rows are gathered.
struct Partial {
    id: InstanceId,
    num: u32,
    slot: u32,
    interface: InterfaceName,
    addresses: Vec<IpAddr>,
    groups: Vec<GroupKey>,
}

/// Keyed by the raw `instances.id` text that the other tables reference.
fn read_instances(conn: &Connection) -> Result<BTreeMap<String, Partial>, Fault> {
    let mut out = BTreeMap::new();
    let (mut nums, mut interfaces, mut slots) = (HashSet::new(), HashSet::new(), HashSet::new());
    let sql = "SELECT id, num, interface, slot FROM instances";
    each_row(conn, "instances", sql, |row| {
        let raw = text(row, 0, "id")
            .map_err(|e| corrupt("instances", "?", e))?
            .to_string();
        let at = format!("id={raw:?}");
        let fail = |e: String| corrupt("instances", &at, e);
        let partial = Partial {
            id: parse(row, 0, "id", InstanceId::parse).map_err(fail)?,
            num: id(row, 1, "num").map_err(fail)?,
            interface: parse(row, 2, "interface", InterfaceName::parse).map_err(fail)?,
            slot: id(row, 3, "slot").map_err(fail)?,
            addresses: Vec::new(),
            groups: Vec::new(),
        };
        if partial.slot == 0 || partial.slot > crate::state::MAX_SLOT {
            return Err(fail(format!(
                "slot {} is not from 1 to {}",
                partial.slot,
                crate::state::MAX_SLOT
            )));
        }
        if !slots.insert(partial.slot) {
            return Err(fail(format!(
                "a second instance with slot {}",
                partial.slot
            )));
        }
        if !nums.insert(partial.num) {
            return Err(fail(format!("a second instance with num {}", partial.num)));
        }
        if !interfaces.insert(partial.interface.clone()) {
            return Err(fail(format!(
                "a second instance on interface {}",
                partial.interface
            )));
        }
        out.insert(raw, partial);
        Ok(())
    })?;
    Ok(out)
}

fn read_addresses(
    conn: &Connection,
    instances: &mut BTreeMap<String, Partial>,
) -> Result<(), Fault> {
    let sql = "SELECT instance_id, position, address FROM instance_addresses \
               ORDER BY instance_id, position";
    let mut seen = HashSet::new();
    each_row(conn, "instance_addresses", sql, |row| {
        let (instance, at) =
            member_row(row, "instance_addresses", instances, |i| i.addresses.len())?;
        let fail = |e: String| corrupt("instance_addresses", &at, e);
        let address = address(row, 2, "address").map_err(fail)?;
        if !seen.insert(address) {
            return Err(fail(format!("address {address} belongs to two instances")));
        }
        instance.addresses.push(address);
        Ok(())
    })
}

fn read_memberships(
    conn: &Connection,
    instances: &mut BTreeMap<String, Partial>,
    groups: &Groups,
) -> Result<(), Fault> {
    let sql = "SELECT instance_id, position, owner, name FROM instance_groups \
               ORDER BY instance_id, position";
    each_row(conn, "instance_groups", sql, |row| {
        let (instance, at) = member_row(row, "instance_groups", instances, |i| i.groups.len())?;
        let fail = |e: String| corrupt("instance_groups", &at, e);
        let key = GroupKey {
            owner: parse(row, 2, "owner", OwnerId::parse).map_err(fail)?,
            name: parse(row, 3, "name", GroupName::parse).map_err(fail)?,
        };
        if !groups.by_key.contains_key(&key) {
            return Err(fail(format!("group {key} names no row of table groups")));
        }
        if instance.groups.contains(&key) {
            return Err(fail(format!("group {key} is listed twice")));
        }
        instance.groups.push(key);
        Ok(())
    })
}

/// The instance a list row belongs to, checking that positions run 0, 1, 2… without gaps
/// (a gap means a lost row). Rows must come ordered by instance and position; `len` is
/// the length of the instance's list so far.
fn member_row<'a>(
    row: &Row<'_>,
    table: &'static str,
    instances: &'a mut BTreeMap<String, Partial>,
    len: fn(&Partial) -> usize,
) -> Result<(&'a mut Partial, String), Fault> {
    let raw = text(row, 0, "instance_id").map_err(|e| corrupt(table, "?", e))?;
    let position = int(row, 1, "position").map_err(|e| corrupt(table, "?", e))?;
    let at = format!("(instance_id={raw:?}, position={position})");
    let instance = instances.get_mut(raw).ok_or_else(|| {
        corrupt(
            table,
            &at,
            format!("instance_id {raw:?} names no row of table instances"),
        )
    })?;
    let expected = len(instance);
    if usize::try_from(position).ok() != Some(expected) {
        return Err(corrupt(
            table,
            &at,
            format!("expected position {expected}: a row of this instance is missing"),
        ));
    }
    Ok((instance, at))
}

/// Runs `sql` and hands each row to `f`. SQLite's own errors (a damaged page, say) are
/// tagged with the table being read.
fn each_row(
    conn: &Connection,
    table: &str,
    sql: &str,
    mut f: impl FnMut(&Row<'_>) -> Result<(), Fault>,
) -> Result<(), Fault> {
    let reading = |e: rusqlite::Error| Fault::from(e).context(format!("reading table {table}"));
    let mut stmt = conn.prepare(sql).map_err(reading)?;
    let mut rows = stmt.query([]).map_err(reading)?;
    while let Some(row) = rows.next().map_err(reading)? {
        f(row)?;
    }
    Ok(())
}

fn corrupt(table: &str, at: &str, why: impl std::fmt::Display) -> Fault {
    Fault::Corrupt(format!("table {table}, row {at}: {why}"))
}
