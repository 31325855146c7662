//! What is committed is what loads: random action sequences (every mutating action,
//! including enough grants in one group to fill more than one shard), coalesced batches
//! and undone batches, checked after reopening against the in-memory state.

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

/// Remote members: some also local instance addresses (allowed: another group's member
/// may share an address with an instance here only in tests of the store).
const REMOTE: [&str; 5] = [
    "10.9.0.1",
    "10.9.0.2",
    "2001:db8::9",
    "10.0.0.1",
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

/// Groups and instances are named by position among the existing ones (modulo their
/// count), so that most steps apply to something.
#[derive(Debug, Clone)]
enum Step {
    Create(u32, usize),
    Delete(usize),
    Authorize(usize, Perm),
    /// Revokes the n-th existing grant.
    Revoke(usize),
    Register(usize, Vec<usize>, Vec<usize>),
    Deregister(usize),
    AddMembers(usize, Vec<usize>),
    /// Removes the members picked by the mask from the n-th group that has any.
    RemoveMembers(usize, u8),
    /// Gives the n-th registered instance these groups.
    Modify(usize, Vec<usize>),
    /// Authorizes a shard's worth of TCP ports and some more in one group, from a first
    /// port: rare, so that most cases stay small.
    Bulk(usize, u16),
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
    let groups = || proptest::collection::vec(any::<usize>(), 1..4);
    prop_oneof![
        3 => (0u32..2, 0..NAMES.len()).prop_map(|(o, n)| Step::Create(o, n)),
        1 => any::<usize>().prop_map(Step::Delete),
        5 => (any::<usize>(), perm()).prop_map(|(g, p)| Step::Authorize(g, p)),
        2 => any::<usize>().prop_map(Step::Revoke),
        3 => (
            0usize..4,
            proptest::collection::vec(0..ADDRESSES.len(), 1..3),
            groups()
        )
            .prop_map(|(i, a, g)| Step::Register(i, a, g)),
        1 => any::<usize>().prop_map(Step::Deregister),
        2 => (any::<usize>(), proptest::collection::vec(0..REMOTE.len(), 1..4))
            .prop_map(|(g, a)| Step::AddMembers(g, a)),
        1 => (any::<usize>(), 1u8..32).prop_map(|(g, m)| Step::RemoveMembers(g, m)),
        2 => (any::<usize>(), groups()).prop_map(|(i, g)| Step::Modify(i, g)),
        // A bulk step is one in eight of these: about one case in six has one.
        1 => (0u8..8, any::<usize>(), prop_oneof![Just(1000u16), Just(2000)])
            .prop_map(|(r, g, p)| if r == 0 { Step::Bulk(g, p) } else { Step::Flush }),
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

/// The n-th existing group (modulo their count), if there is any.
fn nth_group(state: &State, i: usize) -> Option<GroupKey> {
    let n = state.groups().count();
    state.groups().nth(i % n.max(1)).map(|g| g.key.clone())
}

/// The groups at these positions, each once, in order.
fn nth_groups(state: &State, picks: &[usize]) -> Option<Vec<GroupKey>> {
    let mut keys: Vec<GroupKey> = Vec::new();
    for i in picks {
        let k = nth_group(state, *i)?;
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    Some(keys)
}

fn nth_instance(state: &State, i: usize) -> Option<String> {
    let n = state.instances().count();
    let inst = state.instances().nth(i % n.max(1))?;
    Some(inst.spec.id.as_str().to_string())
}

/// Turns a step into an action on the current state, or None if it makes no sense now.
fn action(state: &State, step: &Step) -> Option<Action> {
    Some(match step {
        Step::Create(o, n) => create(key(*o, NAMES[*n]), &format!("group {n} of {o}")),
        Step::Delete(i) => Action::DeleteSecurityGroup {
            group: nth_group(state, *i)?,
        },
        Step::Authorize(g, p) => authorize(nth_group(state, *g)?, permission(p)),
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
            if addrs_unique.len() != addrs.len() {
                return None;
            }
            let keys = nth_groups(state, groups)?;
            instance(&format!("i-{i}"), &format!("tap{i}"), &addrs, &keys)
        }
        Step::Deregister(i) => Action::DeregisterInstance {
            id: InstanceId::parse("i", &nth_instance(state, *i)?).expect("id"),
        },
        Step::AddMembers(g, picks) => {
            let mut addrs: Vec<&str> = picks.iter().map(|i| REMOTE[*i]).collect();
            addrs.sort_unstable();
            addrs.dedup(); // as the parser insists
            add_members(nth_group(state, *g)?, &addrs)
        }
        Step::RemoveMembers(i, mask) => {
            let groups: Vec<_> = state.groups().filter(|g| !g.remote.is_empty()).collect();
            let g = groups.get(i % groups.len().max(1))?;
            let picked: Vec<String> = g
                .remote
                .iter()
                .enumerate()
                .filter(|(j, _)| mask & (1 << (j % 8)) != 0)
                .map(|(_, a)| a.to_string())
                .collect();
            if picked.is_empty() {
                return None;
            }
            let picked: Vec<&str> = picked.iter().map(String::as_str).collect();
            remove_members(g.key.clone(), &picked)
        }
        Step::Modify(i, groups) => {
            modify_groups(&nth_instance(state, *i)?, &nth_groups(state, groups)?)
        }
        Step::Flush | Step::Undo | Step::Bulk(..) => return None,
    })
}

/// The actions of a bulk step: more grants than one shard holds.
fn bulk(state: &State, g: usize, first: u16) -> Vec<Action> {
    let Some(group) = nth_group(state, g) else {
        return Vec::new();
    };
    let count = crate::state::SHARD_SIZE as u16 + 8;
    (first..first + count)
        .map(|p| authorize(group.clone(), tcp(p, p, "10.0.0.0/8")))
        .collect()
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
                let actions = match step {
                    Step::Bulk(g, first) => bulk(&state, *g, *first),
                    _ => action(&state, step).into_iter().collect(),
                };
                for a in actions {
                    if let Ok((changes, _)) = state.plan(&a) {
                        for c in &changes {
                            state.apply(c);
                        }
                        pending.extend(changes);
                    }
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
        let mut sqlite = open_store(dir.path()).expect("open");
        let mut mem = MemStore::new();
        let (state, commits) = drive(&steps, &mut [&mut sqlite, &mut mem]);
        prop_assert_eq!(sqlite.generation(), commits);
        prop_assert_eq!(mem.generation(), commits);
        drop(sqlite);

        let mut reopened = open_store(dir.path()).expect("reopen");
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
    let mut store = open_store(&nested).expect("open");
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
    let mut store = open_store(dir.path()).expect("open");
    let mut state = State::new();
    populate(&mut store, &mut state);
    assert_eq!(store.generation(), POPULATE_COMMITS);
    drop(store);
    let mut store = open_store(dir.path()).expect("reopen");
    assert_eq!(store.generation(), POPULATE_COMMITS);
    assert_eq!(store.load().expect("load"), state);
}

#[test]
fn ids_are_never_reused_after_revoking_the_highest() {
    let dir = TempDir::new("ids");
    let mut store = open_store(dir.path()).expect("open");
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

    let mut store = open_store(dir.path()).expect("reopen");
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
