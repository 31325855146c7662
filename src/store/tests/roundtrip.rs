//! What is committed is what loads: random action sequences, coalesced batches and undone
//! batches, checked after reopening against the in-memory state.

use super::*;
use crate::model::{Action, IpPermission, Traffic};
use crate::state::Counters;
use crate::store::MemStore;
use proptest::prelude::*;

const CIDRS: [&str; 4] = ["10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32", "0.0.0.0/0"];
const NAMES: [&str; 3] = ["web", "db", "my cache"];
const ADDRESSES: [&str; 6] = [
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.3",
    "2001:db8::1",
    "2001:db8::2",
    "192.168.1.9",
];

/// A permission from a small universe, so that revokes and duplicates happen often.
#[derive(Debug, Clone)]
enum Perm {
    Tcp(u16, u16, usize),
    Udp(u16, usize),
    Icmp(Option<u8>, Option<u8>, usize),
    Icmpv6(Option<u8>, usize),
    Pair(u32, usize),
}

#[derive(Debug, Clone)]
enum Step {
    Create(u32, usize),
    /// Deletes the n-th existing group (modulo the count).
    Delete(usize),
    Authorize(u32, usize, Perm),
    /// Revokes the n-th existing grant.
    Revoke(usize),
    Register(usize, Vec<usize>, Vec<(u32, usize)>),
    /// Deregisters the n-th registered instance.
    Deregister(usize),
    /// Commits the changes gathered since the last commit (the daemon coalesces).
    Flush,
    /// Commits the inverse of the last committed batch (a rollback after a kernel failure).
    Undo,
}

fn perm() -> impl Strategy<Value = Perm> {
    let port = prop_oneof![Just(22u16), Just(80), Just(443), Just(0)];
    let c = 0..CIDRS.len();
    prop_oneof![
        (
            port.clone(),
            prop_oneof![Just(0u16), Just(10), Just(65535)],
            c.clone()
        )
            .prop_map(|(p, len, c)| Perm::Tcp(p, len, c)),
        (port, c.clone()).prop_map(|(p, c)| Perm::Udp(p, c)),
        (
            proptest::option::of(0u8..=8),
            proptest::option::of(0u8..=3),
            c.clone()
        )
            .prop_map(|(t, code, c)| Perm::Icmp(t, t.and(code), c)),
        (proptest::option::of(128u8..=129), c).prop_map(|(t, c)| Perm::Icmpv6(t, c)),
        (0u32..2, 0..NAMES.len()).prop_map(|(o, n)| Perm::Pair(o, n)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u32..2, 0..NAMES.len()).prop_map(|(o, n)| Step::Create(o, n)),
        1 => any::<usize>().prop_map(Step::Delete),
        5 => (0u32..2, 0..NAMES.len(), perm()).prop_map(|(o, n, p)| Step::Authorize(o, n, p)),
        2 => any::<usize>().prop_map(Step::Revoke),
        2 => (
            0usize..4,
            proptest::collection::vec(0..ADDRESSES.len(), 1..3),
            proptest::collection::vec((0u32..2, 0..NAMES.len()), 1..3)
        )
            .prop_map(|(i, a, g)| Step::Register(i, a, g)),
        1 => any::<usize>().prop_map(Step::Deregister),
        3 => Just(Step::Flush),
        1 => Just(Step::Undo),
    ]
}

fn permission(p: &Perm) -> IpPermission {
    let range =
        |from: u16, len: u16| PortRange::new(from, from.saturating_add(len)).expect("range");
    let cidr_at = |i: usize| super::cidr(CIDRS[i]);
    match p {
        Perm::Tcp(from, len, c) => IpPermission::Cidr {
            traffic: Traffic::Tcp {
                ports: range(*from, *len),
            },
            cidr: cidr_at(*c),
        },
        Perm::Udp(port, c) => IpPermission::Cidr {
            traffic: Traffic::Udp {
                ports: range(*port, 0),
            },
            cidr: cidr_at(*c),
        },
        Perm::Icmp(t, code, c) => icmp(*t, *code, CIDRS[*c]),
        Perm::Icmpv6(t, c) => IpPermission::Cidr {
            traffic: Traffic::Icmpv6 {
                icmp: IcmpSpec::new(*t, None).expect("icmp"),
            },
            cidr: cidr_at(*c),
        },
        Perm::Pair(o, n) => pair(key(*o, NAMES[*n])),
    }
}

/// Turns a step into an action on the current state, or None if it makes no sense now.
fn action(state: &State, step: &Step) -> Option<Action> {
    Some(match step {
        Step::Create(o, n) => create(key(*o, NAMES[*n]), &format!("group {n} of {o}")),
        Step::Delete(i) => {
            let groups: Vec<_> = state.groups().collect();
            let g = groups.get(i % groups.len().max(1))?;
            Action::DeleteSecurityGroup {
                group: g.key.clone(),
            }
        }
        Step::Authorize(o, n, p) => authorize(key(*o, NAMES[*n]), permission(p)),
        Step::Revoke(i) => {
            let grants: Vec<_> = state
                .groups()
                .flat_map(|g| g.grants.values().map(|p| (g.key.clone(), p.clone())))
                .collect();
            let (g, p) = grants.get(i % grants.len().max(1))?.clone();
            revoke(g, p.permission)
        }
        Step::Register(i, addrs, groups) => {
            let addrs: Vec<&str> = addrs.iter().map(|a| ADDRESSES[*a]).collect();
            let mut addrs_unique = addrs.clone();
            addrs_unique.sort_unstable();
            addrs_unique.dedup();
            let mut keys: Vec<GroupKey> = Vec::new();
            for (o, n) in groups {
                let k = key(*o, NAMES[*n]);
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            if addrs_unique.len() != addrs.len() {
                return None;
            }
            instance(&format!("i-{i}"), &format!("tap{i}"), &addrs, &keys)
        }
        Step::Deregister(i) => {
            let ids: Vec<_> = state.instances().map(|i| i.spec.id.clone()).collect();
            Action::DeregisterInstance {
                id: ids.get(i % ids.len().max(1))?.clone(),
            }
        }
        Step::Flush | Step::Undo => return None,
    })
}

/// Drives both stores with the same steps; returns the in-memory state and commit count.
fn drive(steps: &[Step], stores: &mut [&mut dyn Store]) -> (State, u64) {
    let mut state = State::new();
    let mut pending: Vec<Change> = Vec::new();
    let mut last: Vec<Change> = Vec::new();
    let mut commits = 0;
    let mut commit = |changes: &[Change], state: &State, commits: &mut u64| {
        for s in stores.iter_mut() {
            s.commit(changes, state.counters()).expect("commit");
        }
        *commits += 1;
    };
    for step in steps.iter().chain([&Step::Flush]) {
        match step {
            Step::Flush => {
                if !pending.is_empty() {
                    commit(&pending, &state, &mut commits);
                    last = std::mem::take(&mut pending);
                }
            }
            Step::Undo => {
                if !pending.is_empty() {
                    commit(&pending, &state, &mut commits);
                    last = std::mem::take(&mut pending);
                }
                let inverse: Vec<Change> = last.iter().rev().map(Change::inverse).collect();
                for c in &inverse {
                    state.apply(c);
                }
                if !inverse.is_empty() {
                    commit(&inverse, &state, &mut commits);
                }
                last = inverse;
            }
            _ => {
                if let Some(a) = action(&state, step)
                    && let Ok((changes, _)) = state.plan(&a)
                {
                    for c in &changes {
                        state.apply(c);
                    }
                    pending.extend(changes);
                }
            }
        }
    }
    (state, commits)
}

/// 64 cases by default (each one fsyncs dozens of commits); `PROPTEST_CASES=N` for more.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn what_is_committed_is_what_loads(steps in proptest::collection::vec(step(), 1..60)) {
        let dir = TempDir::new("prop");
        let mut sqlite = SqliteStore::open(dir.path()).expect("open");
        let mut mem = MemStore::new();
        let (state, commits) = drive(&steps, &mut [&mut sqlite, &mut mem]);
        prop_assert_eq!(sqlite.generation(), commits);
        prop_assert_eq!(mem.generation(), commits);
        drop(sqlite);

        let mut reopened = SqliteStore::open(dir.path()).expect("reopen");
        let loaded = reopened.load().expect("load");
        prop_assert_eq!(&loaded, &state);
        prop_assert_eq!(reopened.generation(), commits);
        prop_assert_eq!(&mem.load().expect("mem load"), &state);
    }
}

#[test]
fn first_start_is_the_empty_state_and_creates_a_private_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("first");
    let nested = dir.path().join("a/b");
    let mut store = SqliteStore::open(&nested).expect("open");
    assert_eq!(store.load().expect("load"), State::new());
    assert_eq!(store.generation(), 0);
    let mode = std::fs::metadata(&nested)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let db_mode = std::fs::metadata(nested.join("state.db"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(db_mode & 0o077, 0, "state.db is private");
}

#[test]
fn a_fixed_state_round_trips_and_counts_generations() {
    let dir = TempDir::new("fixed");
    let mut store = SqliteStore::open(dir.path()).expect("open");
    let mut state = State::new();
    populate(&mut store, &mut state);
    assert_eq!(store.generation(), 10);
    drop(store);
    let mut store = SqliteStore::open(dir.path()).expect("reopen");
    assert_eq!(store.generation(), 10);
    assert_eq!(store.load().expect("load"), state);
}

#[test]
fn ids_are_never_reused_after_revoking_the_highest() {
    let dir = TempDir::new("ids");
    let mut store = SqliteStore::open(dir.path()).expect("open");
    let mut state = State::new();
    let web = key(1, "web");
    run(
        &mut store,
        &mut state,
        &[
            create(web.clone(), ""),
            authorize(web.clone(), tcp(22, 22, "10.0.0.0/8")),
            authorize(web.clone(), tcp(80, 80, "10.0.0.0/8")),
            create(key(1, "tmp"), ""),
            instance("i-1", "tap1", &["10.1.1.1"], std::slice::from_ref(&web)),
        ],
    );
    let highest = state
        .find_grant(&web, &tcp(80, 80, "10.0.0.0/8"))
        .expect("granted");
    run(
        &mut store,
        &mut state,
        &[
            revoke(web.clone(), tcp(80, 80, "10.0.0.0/8")),
            Action::DeleteSecurityGroup {
                group: key(1, "tmp"),
            },
            Action::DeregisterInstance {
                id: InstanceId::parse("i", "i-1").expect("id"),
            },
        ],
    );
    drop(store);

    let mut store = SqliteStore::open(dir.path()).expect("reopen");
    let mut loaded = store.load().expect("load");
    let c = loaded.counters();
    assert!(c.next_grant > highest, "{c:?} would reuse grant {highest}");
    assert_eq!(
        c,
        Counters {
            next_group: 3,
            next_grant: 3,
            next_instance: 2
        }
    );
    // A new grant after the restart gets a fresh id.
    let changes = plan(
        &mut loaded,
        &authorize(web.clone(), tcp(80, 80, "10.0.0.0/8")),
    );
    assert!(matches!(changes[..], [Change::Grant { id, .. }] if id > highest));
    store.commit(&changes, loaded.counters()).expect("commit");
}
