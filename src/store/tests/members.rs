//! The changes of schema version 2 (remote members, grant shards, replacing an instance's
//! groups) are refused whole when they contradict the store, by both stores alike.

use super::atomic::{counters_of, group, inst, refused};
use super::*;
use crate::state::{Counters, Grant, MAX_SHARD};
use std::net::IpAddr;

fn addrs(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|a| a.parse().expect("address")).collect()
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse("i", s).expect("id")
}

#[test]
fn remote_member_contradictions_are_refused() {
    refused(
        "add a member that is already one",
        |_| Change::AddMembers {
            group: key(1, "web"),
            addresses: addrs(&["10.9.9.9", "10.9.0.1"]),
        },
        counters_of,
    );
    refused(
        "add the same address twice in one change",
        |_| Change::AddMembers {
            group: key(1, "web"),
            addresses: addrs(&["10.9.9.9", "10.9.9.9"]),
        },
        counters_of,
    );
    refused(
        "add members to a missing group",
        |_| Change::AddMembers {
            group: key(9, "ghost"),
            addresses: addrs(&["10.9.9.9"]),
        },
        counters_of,
    );
    refused(
        "remove a member that is not one",
        |_| Change::RemoveMembers {
            group: key(1, "web"),
            addresses: addrs(&["10.9.0.1", "10.9.0.2"]),
        },
        counters_of,
    );
    refused(
        "remove the same member twice in one change",
        |_| Change::RemoveMembers {
            group: key(1, "web"),
            addresses: addrs(&["10.9.0.1", "10.9.0.1"]),
        },
        counters_of,
    );
    refused(
        "delete a group without its remote members",
        |s| {
            let mut g = group(s, 2, "web");
            g.remote.clear();
            Change::DeleteGroup { group: g }
        },
        counters_of,
    );
    refused(
        "delete a group with a remote member it does not have",
        |s| {
            let mut g = group(s, 2, "web");
            g.remote.insert("10.9.9.9".parse().expect("address"));
            Change::DeleteGroup { group: g }
        },
        counters_of,
    );
}

#[test]
fn shard_contradictions_are_refused() {
    let next = |s: &State| Counters {
        next_grant: s.counters().next_grant + 5,
        ..s.counters()
    };
    refused(
        "grant in a shard above MAX_SHARD",
        |s| Change::Grant {
            group: key(1, "web"),
            id: s.counters().next_grant + 1,
            permission: tcp(1, 1, "10.0.0.0/8"),
            shard: MAX_SHARD + 1,
        },
        next,
    );
    refused(
        "revoke from another shard than granted",
        |s| {
            let (id, gr) = group(s, 2, "web").grants.pop_first().expect("grant");
            Change::Revoke {
                group: key(2, "web"),
                id,
                permission: gr.permission,
                shard: gr.shard + 1,
            }
        },
        counters_of,
    );
    refused(
        "delete a group whose grants are in other shards",
        |s| {
            let mut g = group(s, 2, "web");
            for gr in g.grants.values_mut() {
                gr.shard += 1;
            }
            Change::DeleteGroup { group: g }
        },
        counters_of,
    );
    refused(
        "restore a group with a grant above MAX_SHARD",
        |s| {
            let mut grants = std::collections::BTreeMap::new();
            grants.insert(
                s.counters().next_grant + 1,
                Grant {
                    permission: tcp(1, 1, "10.0.0.0/8"),
                    shard: MAX_SHARD + 1,
                },
            );
            Change::RestoreGroup {
                group: crate::state::Group {
                    num: s.counters().next_group + 1,
                    key: key(3, "restored"),
                    grants,
                    ..group(s, 2, "web")
                },
            }
        },
        |s| Counters {
            next_group: s.counters().next_group + 5,
            next_grant: s.counters().next_grant + 5,
            ..s.counters()
        },
    );
}

#[test]
fn instance_group_contradictions_are_refused() {
    let (web, db) = (key(1, "web"), key(1, "db"));
    let mut populated = State::new();
    populate(&mut crate::store::MemStore::new(), &mut populated);
    assert_eq!(
        inst(&populated, "i-2").spec.groups,
        [web.clone(), db.clone()],
        "the cases below assume populate leaves i-2 in web, then db"
    );
    let stored = |s: &State| inst(s, "i-2").spec.groups;
    let set = |from: Vec<GroupKey>, to: Vec<GroupKey>| Change::SetInstanceGroups {
        id: id("i-2"),
        from,
        to,
    };
    refused(
        "set groups from other groups than stored",
        |_| set(vec![db.clone(), web.clone()], vec![web.clone()]),
        counters_of,
    );
    refused(
        "set groups from a prefix of the stored ones",
        |_| set(vec![web.clone()], vec![db.clone()]),
        counters_of,
    );
    refused(
        "set groups of a missing instance",
        |_| Change::SetInstanceGroups {
            id: id("i-404"),
            from: vec![],
            to: vec![web.clone()],
        },
        counters_of,
    );
    refused(
        "set groups to a missing group",
        |s| set(stored(s), vec![key(9, "ghost")]),
        counters_of,
    );
    refused(
        "set groups to a list naming a group twice",
        |s| set(stored(s), vec![db.clone(), web.clone(), db.clone()]),
        counters_of,
    );
}

/// The accepted forms, against both stores: what commits is what loads.
#[test]
fn members_shards_and_group_changes_round_trip() {
    let dir = TempDir::new("members");
    let mut sqlite = open_store(dir.path()).expect("open");
    let mut mem = crate::store::MemStore::new();
    let mut state = State::new();
    populate(&mut sqlite, &mut state);
    populate(&mut mem, &mut State::new());
    let (web, db) = (key(1, "web"), key(1, "db"));
    let big = key(1, "big");
    let mut actions = vec![
        remove_members(web.clone(), &["2001:db8::9"]),
        add_members(web.clone(), &["10.9.0.3", "2001:db8::9"]),
        modify_groups("i-1", &[db.clone(), web.clone()]),
        modify_groups("i-2", std::slice::from_ref(&db)),
        create(big.clone(), "more grants than one shard holds"),
    ];
    let over = crate::state::SHARD_SIZE as u16 + 10;
    actions.extend((1..=over).map(|p| authorize(big.clone(), tcp(p, p, "10.0.0.0/8"))));
    // Frees a place in shard 0, which the next grant takes.
    actions.push(revoke(big.clone(), tcp(7, 7, "10.0.0.0/8")));
    actions.push(authorize(big.clone(), tcp(9999, 9999, "10.0.0.0/8")));
    for a in &actions {
        let changes = plan(&mut state, a);
        sqlite.commit(&changes, state.counters()).expect("sqlite");
        mem.commit(&changes, state.counters()).expect("mem");
    }
    let shards: std::collections::BTreeSet<u32> = state
        .group(&big)
        .expect("big")
        .grants
        .values()
        .map(|g| g.shard)
        .collect();
    assert_eq!(shards, [0, 1].into(), "the grants span two shards");
    let refill = state.find_grant(&big, &tcp(9999, 9999, "10.0.0.0/8"));
    assert_eq!(
        state.group(&big).expect("big").grants[&refill.expect("granted")].shard,
        0
    );
    drop(sqlite);
    assert_eq!(reopen(&dir).expect("load"), state);
    assert_eq!(mem.load().expect("load"), state);
}
