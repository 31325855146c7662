//! One commit is one transaction, and a change that contradicts the store fails it whole.
//! Every case runs against both stores, which must agree.

use super::*;
use crate::state::{Counters, Group, Instance};
use crate::store::MemStore;

/// A store holding [`populate`]'s state, for each kind of store.
fn stores() -> Vec<(Box<dyn Store>, State, Option<TempDir>)> {
    let dir = TempDir::new("atomic");
    let mut sqlite: Box<dyn Store> = Box::new(open_store(dir.path()).expect("open"));
    let mut s1 = State::new();
    populate(sqlite.as_mut(), &mut s1);
    let mut mem: Box<dyn Store> = Box::new(MemStore::new());
    let mut s2 = State::new();
    populate(mem.as_mut(), &mut s2);
    vec![(sqlite, s1, Some(dir)), (mem, s2, None)]
}

/// Commits `[valid, bad, valid]` and checks it fails as a Conflict and changes nothing.
pub(super) fn refused(
    name: &str,
    bad: impl Fn(&State) -> Change,
    counters: impl Fn(&State) -> Counters,
) {
    for (mut store, state, dir) in stores() {
        let before = store.load().expect("load");
        assert_eq!(before, state);
        let mut scratch = state.clone();
        let first = plan(&mut scratch, &create(key(3, "fresh"), ""));
        let last = plan(
            &mut scratch,
            &authorize(key(1, "web"), tcp(8080, 8080, "10.0.0.0/8")),
        );
        let changes = [first, vec![bad(&state)], last].concat();
        match store.commit(&changes, counters(&scratch)) {
            Err(StoreError::Conflict { why, .. }) => {
                assert!(!why.is_empty(), "{name}: empty message")
            }
            other => panic!("{name}: expected Conflict, got {other:?}"),
        }
        assert_eq!(store.load().expect("load"), before, "{name}: store changed");
        if let Some(dir) = dir {
            drop(store);
            let mut reopened = open_store(dir.path()).expect("reopen");
            assert_eq!(
                reopened.generation(),
                POPULATE_COMMITS,
                "{name}: generation moved"
            );
            assert_eq!(
                reopened.load().expect("load"),
                before,
                "{name}: disk changed"
            );
        }
    }
}

pub(super) fn counters_of(s: &State) -> Counters {
    s.counters()
}

pub(super) fn group(state: &State, owner: u32, name: &str) -> Group {
    state.group(&key(owner, name)).expect("group").clone()
}

pub(super) fn inst(state: &State, id: &str) -> Instance {
    state
        .instance(&InstanceId::parse("i", id).expect("id"))
        .expect("instance")
        .clone()
}

#[test]
fn a_failing_change_in_the_middle_leaves_the_store_as_before() {
    refused(
        "delete a missing group",
        |s| Change::DeleteGroup {
            group: Group {
                key: key(9, "ghost"),
                ..group(s, 1, "web")
            },
        },
        counters_of,
    );
}

#[test]
fn contradictions_are_refused() {
    refused(
        "create an existing group",
        |_| Change::CreateGroup {
            key: key(1, "web"),
            num: 50,
            description: GroupDescription::parse("d", "").expect("d"),
        },
        |s| Counters {
            next_group: 51,
            ..s.counters()
        },
    );
    refused(
        "reuse a group num",
        |s| Change::CreateGroup {
            key: key(1, "other"),
            num: group(s, 1, "web").num,
            description: GroupDescription::parse("d", "").expect("d"),
        },
        counters_of,
    );
    refused(
        "delete a group whose grants differ",
        |s| {
            let mut g = group(s, 1, "web");
            g.grants.pop_first();
            Change::DeleteGroup { group: g }
        },
        counters_of,
    );
    refused(
        "delete a group with members",
        |s| {
            // Its grants go first within the change, then the members block the row.
            Change::DeleteGroup {
                group: group(s, 1, "db"),
            }
        },
        counters_of,
    );
    refused(
        "delete a group another group's grant names",
        |s| Change::DeleteGroup {
            group: group(s, 1, "web"),
        },
        counters_of,
    );
    refused(
        "restore an existing group",
        |s| Change::RestoreGroup {
            group: group(s, 1, "db"),
        },
        counters_of,
    );
    refused(
        "grant on a missing group",
        |s| Change::Grant {
            group: key(9, "ghost"),
            id: s.counters().next_grant,
            permission: tcp(1, 1, "10.0.0.0/8"),

            shard: 0,
        },
        |s| Counters {
            next_grant: s.counters().next_grant + 5,
            ..s.counters()
        },
    );
    refused(
        "grant an id in use",
        |s| Change::Grant {
            group: key(1, "db"),
            id: *group(s, 1, "web").grants.keys().next().expect("grant"),
            permission: tcp(1, 1, "10.0.0.0/8"),

            shard: 0,
        },
        counters_of,
    );
    refused(
        "grant the same values twice",
        |s| Change::Grant {
            group: key(1, "web"),
            id: s.counters().next_grant + 1,
            permission: tcp(80, 80, "0.0.0.0/0"),

            shard: 0,
        },
        |s| Counters {
            next_grant: s.counters().next_grant + 5,
            ..s.counters()
        },
    );
    refused(
        "grant from a missing source group",
        |s| Change::Grant {
            group: key(1, "web"),
            id: s.counters().next_grant + 1,
            permission: pair(key(9, "ghost")),

            shard: 0,
        },
        |s| Counters {
            next_grant: s.counters().next_grant + 5,
            ..s.counters()
        },
    );
    refused(
        "revoke a missing grant",
        |_| Change::Revoke {
            group: key(1, "web"),
            id: 999,
            permission: tcp(80, 80, "0.0.0.0/0"),

            shard: 0,
        },
        counters_of,
    );
    refused(
        "revoke with other values than granted",
        |s| {
            let (id, _) = group(s, 1, "web").grants.pop_first().expect("grant");
            Change::Revoke {
                group: key(1, "web"),
                id,
                permission: tcp(81, 81, "0.0.0.0/0"),

                shard: 0,
            }
        },
        counters_of,
    );
    refused(
        "register on an interface in use",
        |s| {
            let mut i = inst(s, "i-1");
            i.spec.id = InstanceId::parse("i", "i-9").expect("id");
            i.spec.addresses = vec!["10.9.9.9".parse().expect("addr")];
            i.num = s.counters().next_instance;
            Change::RegisterInstance {
                num: i.num,
                slot: 99,
                spec: i.spec,
            }
        },
        |s| Counters {
            next_instance: s.counters().next_instance + 1,
            ..s.counters()
        },
    );
    refused(
        "register an address in use",
        |s| {
            let mut i = inst(s, "i-1");
            i.spec.id = InstanceId::parse("i", "i-9").expect("id");
            i.spec.interface = InterfaceName::parse("if", "tap9").expect("if");
            Change::RegisterInstance {
                num: s.counters().next_instance,
                slot: 99,
                spec: i.spec,
            }
        },
        |s| Counters {
            next_instance: s.counters().next_instance + 1,
            ..s.counters()
        },
    );
    refused(
        "register in a missing group",
        |s| {
            let spec = match instance("i-9", "tap9", &["10.9.9.9"], &[key(9, "ghost")]) {
                Action::RegisterInstance { instance } => instance,
                _ => unreachable!(),
            };
            Change::RegisterInstance {
                num: s.counters().next_instance,
                slot: 99,
                spec,
            }
        },
        |s| Counters {
            next_instance: s.counters().next_instance + 1,
            ..s.counters()
        },
    );
    refused(
        "deregister with other values than registered",
        |s| {
            let mut i = inst(s, "i-2");
            i.spec.groups.reverse();
            Change::DeregisterInstance { instance: i }
        },
        counters_of,
    );
    refused(
        "deregister a missing instance",
        |s| {
            let mut i = inst(s, "i-2");
            i.spec.id = InstanceId::parse("i", "i-404").expect("id");
            Change::DeregisterInstance { instance: i }
        },
        counters_of,
    );
}

#[test]
fn counters_must_not_go_back_nor_lag_behind_the_ids_written() {
    refused(
        "counter goes back",
        |s| Change::Revoke {
            group: key(1, "db"),
            id: *group(s, 1, "db").grants.keys().next().expect("grant"),
            permission: pair(key(1, "web")),

            shard: 0,
        },
        |s| Counters {
            next_grant: 1,
            ..s.counters()
        },
    );
    refused(
        "id at the counter",
        |s| Change::Grant {
            group: key(1, "db"),
            id: s.counters().next_grant + 50,
            permission: tcp(1, 1, "10.0.0.0/8"),

            shard: 0,
        },
        |s| Counters {
            next_grant: s.counters().next_grant + 2,
            ..s.counters()
        },
    );
}
