//! Tests of the stores: round trips, atomicity, corruption, crashes, and measurements.

mod atomic;
mod corrupt;
mod crash;
mod members;
mod memory;
mod migrate;
mod perf;
mod roundtrip;

use crate::model::{
    Action, Cidr, GroupDescription, GroupKey, GroupName, IcmpSpec, InstanceId, InstanceSpec,
    InterfaceName, IpPermission, OwnerId, PortRange, Traffic,
};
use crate::state::{Change, State};
use crate::store::{SqliteStore, Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A directory removed when dropped (tempfile is not a dependency of this crate).
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("secgroupd-store-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn db(&self) -> PathBuf {
        self.0.join("state.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small deterministic PRNG (xorshift64*), for tests that want randomness with a seed.
pub(super) struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn from_time() -> (Self, u64) {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ u64::from(std::process::id());
        (Rng::seeded(seed), seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(super) fn owner(i: u32) -> OwnerId {
    OwnerId::parse("o", &format!("{:012}", 100_000_000_000u64 + u64::from(i))).expect("owner")
}

pub(super) fn key(owner_i: u32, name: &str) -> GroupKey {
    GroupKey {
        owner: owner(owner_i),
        name: GroupName::parse("n", name).expect("name"),
    }
}

pub(super) fn cidr(s: &str) -> Cidr {
    Cidr::parse("c", s).expect("cidr")
}

pub(super) fn tcp(from: u16, to: u16, c: &str) -> IpPermission {
    IpPermission::Cidr {
        traffic: Traffic::Tcp {
            ports: PortRange::new(from, to).expect("range"),
        },
        cidr: cidr(c),
    }
}

pub(super) fn icmp(t: Option<u8>, code: Option<u8>, c: &str) -> IpPermission {
    IpPermission::Cidr {
        traffic: Traffic::Icmp {
            icmp: IcmpSpec::new(t, code).expect("icmp"),
        },
        cidr: cidr(c),
    }
}

pub(super) fn pair(source: GroupKey) -> IpPermission {
    IpPermission::GroupPair { source }
}

pub(super) fn create(group: GroupKey, description: &str) -> Action {
    Action::CreateSecurityGroup {
        group,
        description: GroupDescription::parse("d", description).expect("description"),
    }
}

pub(super) fn authorize(group: GroupKey, permission: IpPermission) -> Action {
    Action::AuthorizeSecurityGroupIngress { group, permission }
}

pub(super) fn revoke(group: GroupKey, permission: IpPermission) -> Action {
    Action::RevokeSecurityGroupIngress { group, permission }
}

pub(super) fn instance(
    id: &str,
    interface: &str,
    addresses: &[&str],
    groups: &[GroupKey],
) -> Action {
    Action::RegisterInstance {
        instance: InstanceSpec {
            id: InstanceId::parse("i", id).expect("id"),
            interface: InterfaceName::parse("if", interface).expect("interface"),
            addresses: addresses
                .iter()
                .map(|a| a.parse().expect("address"))
                .collect(),
            groups: groups.to_vec(),
        },
    }
}

pub(super) fn add_members(group: GroupKey, addresses: &[&str]) -> Action {
    Action::AddGroupMembers {
        group,
        addresses: addresses
            .iter()
            .map(|a| a.parse().expect("address"))
            .collect(),
    }
}

pub(super) fn remove_members(group: GroupKey, addresses: &[&str]) -> Action {
    Action::RemoveGroupMembers {
        group,
        addresses: addresses
            .iter()
            .map(|a| a.parse().expect("address"))
            .collect(),
    }
}

pub(super) fn modify_groups(id: &str, groups: &[GroupKey]) -> Action {
    Action::ModifyInstanceGroups {
        id: InstanceId::parse("i", id).expect("id"),
        groups: groups.to_vec(),
    }
}

/// Plans an action on `state`, applies it and returns its changes; panics if refused.
pub(super) fn plan(state: &mut State, action: &Action) -> Vec<Change> {
    let (changes, _) = state
        .plan(action)
        .unwrap_or_else(|e| panic!("{action:?} refused: {e}"));
    for c in &changes {
        state.apply(c);
    }
    changes
}

/// Plans, applies and commits each action as its own commit.
pub(super) fn run(store: &mut dyn Store, state: &mut State, actions: &[Action]) {
    for a in actions {
        let changes = plan(state, a);
        store
            .commit(&changes, state.counters())
            .unwrap_or_else(|e| panic!("commit of {a:?} failed: {e}"));
    }
}

/// [`SqliteStore::open`], waiting out a `state.lock` held only by a child of this process.
///
/// The crash test spawns children, and a child holds copies of every descriptor open here
/// (the flock-ed `state.lock` of other tests' stores among them) until its exec closes them,
/// which the kernel does a little after the parent's spawn has returned. A test that closes
/// its store and opens it again in that window finds the directory still locked, briefly.
/// (Real contention is tested with `SqliteStore::open` itself.)
pub(super) fn open_store(path: &Path) -> Result<SqliteStore, StoreError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SqliteStore::open(path) {
            Err(StoreError::Io(m)) if m.contains("is locked") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Opens the store in `dir` and loads it.
pub(super) fn reopen(dir: &TempDir) -> Result<State, StoreError> {
    open_store(dir.path())?.load()
}

/// The number of commits [`populate`] makes (one per action), i.e. its generation.
pub(super) const POPULATE_COMMITS: u64 = 14;

/// A small state with every kind of row: two owners, grants of each kind, instances,
/// remote members, and an instance whose groups were modified after registration.
/// Grant ids 1 to 5 are web's three, then db's two; grant 6 is owner 2's web's.
pub(super) fn populate(store: &mut dyn Store, state: &mut State) {
    let (web, db) = (key(1, "web"), key(1, "db"));
    run(
        store,
        state,
        &[
            create(web.clone(), "Web servers"),
            create(db.clone(), ""),
            create(key(2, "web"), "another owner's web"),
            authorize(web.clone(), tcp(80, 80, "0.0.0.0/0")),
            authorize(web.clone(), tcp(443, 443, "2001:db8::/32")),
            authorize(web.clone(), icmp(None, None, "10.0.0.0/8")),
            authorize(db.clone(), pair(web.clone())),
            authorize(db.clone(), pair(db.clone())),
            instance(
                "i-1",
                "tap1",
                &["10.0.0.1", "2001:db8::1"],
                std::slice::from_ref(&web),
            ),
            instance("i-2", "tap2", &["10.0.0.2"], &[db.clone(), web.clone()]),
            authorize(key(2, "web"), tcp(8443, 8443, "10.0.0.0/8")),
            add_members(web.clone(), &["10.9.0.1", "2001:db8::9"]),
            add_members(key(2, "web"), &["10.9.0.2"]),
            modify_groups("i-2", &[web.clone(), db.clone()]),
        ],
    );
}

/// Asserts that `r` is `Corrupt` with a message containing every needle.
pub(super) fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, StoreError>, needles: &[&str]) {
    match r {
        Err(StoreError::Corrupt { why, .. }) => {
            for n in needles {
                assert!(why.contains(n), "message {why:?} lacks {n:?}");
            }
        }
        other => panic!("expected Corrupt containing {needles:?}, got {other:?}"),
    }
}
