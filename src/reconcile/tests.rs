//! The reconciler against the fake kernel and an in-memory store; coalescing with paused
//! time.

use super::*;
use crate::model::query::{decode_form, parse_action};
use crate::model::{ErrorCode, OwnerId};
use crate::nft::fake::FakeBackend;
use crate::nft::{Backend, Op};
use crate::state::{Change, Counters, State};
use crate::store::{Store, StoreError};
use std::sync::{Arc, Mutex};

fn action(q: &str) -> Action {
    let owner = OwnerId::parse("OwnerId", "000000000000").unwrap();
    parse_action(&decode_form(q.as_bytes()).unwrap(), &owner).unwrap()
}

/// A store that keeps a replayable log, and can be told to fail.
#[derive(Clone, Default)]
struct LogStore {
    log: Arc<Mutex<Vec<Change>>>,
    commits: Arc<Mutex<usize>>,
    fail: Arc<Mutex<bool>>,
}

impl Store for LogStore {
    fn load(&mut self) -> Result<State, StoreError> {
        let mut s = State::new();
        for c in self.log.lock().unwrap().iter() {
            s.apply(c);
        }
        Ok(s)
    }
    fn commit(&mut self, changes: &[Change], _: Counters) -> Result<(), StoreError> {
        if std::mem::take(&mut *self.fail.lock().unwrap()) {
            return Err(StoreError::Io("disk on fire".into()));
        }
        self.log.lock().unwrap().extend_from_slice(changes);
        *self.commits.lock().unwrap() += 1;
        Ok(())
    }
}

const SETUP: &[&str] = &[
    "Action=CreateSecurityGroup&GroupName=web&GroupDescription=w",
    "Action=CreateSecurityGroup&GroupName=db&GroupDescription=d",
    "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0",
    "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=443&ToPort=443&CidrIp=0.0.0.0/0",
    "Action=AuthorizeSecurityGroupIngress&GroupName=db&SourceSecurityGroupName=web&SourceSecurityGroupOwnerId=000000000000",
    "Action=RegisterInstance&InstanceId=i-1&Interface=tap1&IpAddress.1=10.1.1.2&GroupName.1=web",
    "Action=RegisterInstance&InstanceId=i-2&Interface=tap2&IpAddress.1=10.1.2.2&GroupName.1=db",
];
const REVOKE_80: &str = "Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0";

fn started() -> (Reconciler, FakeBackend, LogStore) {
    let fake = FakeBackend::new();
    let store = LogStore::default();
    let mut r = Reconciler::start(
        Box::new(store.clone()),
        Box::new(fake.clone()),
        crate::compile::Options::new("t"),
    )
    .unwrap();
    let actions: Vec<Action> = SETUP.iter().map(|q| action(q)).collect();
    for res in r.process(&actions) {
        res.unwrap();
    }
    (r, fake, store)
}

fn commits(fake: &FakeBackend) -> usize {
    fake.kernel.lock().unwrap().commits
}

fn last_batch(fake: &FakeBackend) -> Vec<Op> {
    fake.kernel.lock().unwrap().history.last().cloned().unwrap()
}

#[test]
fn start_creates_the_table_and_a_batch_is_one_commit() {
    let (r, fake, store) = started();
    // One commit at start (table), one for the whole batch of setup actions.
    assert_eq!(commits(&fake), 2);
    assert_eq!(*store.commits.lock().unwrap(), 1);
    assert_eq!(fake.rules("grp_1").len(), 1, "one shard");
    assert_eq!(fake.rules("grp_1_0").len(), 2);
    assert_eq!(fake.map("dispatch_out").len(), 2);
    assert_eq!(fake.elems("m4_1"), vec![vec![10, 1, 1, 2]]);
    assert_eq!(r.state().grant_count(), 3);
}

#[test]
fn a_revoke_deletes_exactly_one_rule_by_handle() {
    let (mut r, fake, _) = started();
    let before = fake.all_handles();
    let victim = fake.rules("grp_1_0")[0].0;
    let res = r.process(&[action(REVOKE_80)]);
    assert!(res[0].is_ok());
    assert_eq!(
        last_batch(&fake),
        vec![
            Op::DelRule {
                chain: crate::compile::plan::ChainName::Shard(1, 0),
                handle: victim
            },
            Op::DelElems(
                crate::compile::plan::SetName::Live,
                vec![crate::compile::plan::Elem::Mark(1)]
            )
        ]
    );
    let after = fake.all_handles();
    let expected: Vec<u64> = before.into_iter().filter(|h| *h != victim).collect();
    assert_eq!(after, expected, "every other handle unchanged");
}

#[test]
fn refused_actions_change_nothing_and_do_not_spoil_the_batch() {
    let (mut r, fake, store) = started();
    let n = commits(&fake);
    let res = r.process(&[
        action("Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=81&ToPort=81&CidrIp=0.0.0.0/0"),
        action(REVOKE_80),
        action("Action=DeleteSecurityGroup&GroupName=web"),
    ]);
    assert_eq!(
        res[0].as_ref().unwrap_err().codes(),
        vec![ErrorCode::PermissionNotFound]
    );
    assert!(res[1].is_ok());
    assert_eq!(
        res[2].as_ref().unwrap_err().codes(),
        vec![ErrorCode::GroupInUse]
    );
    assert_eq!(commits(&fake), n + 1);
    assert_eq!(*store.commits.lock().unwrap(), 2);

    let n = commits(&fake);
    let res = r.process(&[action(REVOKE_80)]);
    assert_eq!(
        res[0].as_ref().unwrap_err().codes(),
        vec![ErrorCode::PermissionNotFound]
    );
    assert_eq!(commits(&fake), n, "no kernel commit for a refused revoke");
}

#[test]
fn a_kernel_failure_is_undone_everywhere() {
    let (mut r, fake, store) = started();
    let state = r.state().clone();
    let handles = fake.all_handles();
    fake.kernel.lock().unwrap().fail_next = Some(libc::EINVAL);
    let res = r.process(&[action(REVOKE_80)]);
    assert_eq!(
        res[0].as_ref().unwrap_err().codes(),
        vec![ErrorCode::InternalError]
    );
    assert_eq!(*r.state(), state);
    assert_eq!(fake.all_handles(), handles);
    // The store was given the inverse: replaying it gives the old state.
    assert_eq!(store.clone().load().unwrap(), state);
    // And the reconciler still works.
    assert!(r.process(&[action(REVOKE_80)])[0].is_ok());
}

#[test]
fn a_store_failure_reaches_no_kernel() {
    let (mut r, fake, store) = started();
    let n = commits(&fake);
    *store.fail.lock().unwrap() = true;
    let res = r.process(&[action(REVOKE_80)]);
    assert_eq!(
        res[0].as_ref().unwrap_err().codes(),
        vec![ErrorCode::InternalError]
    );
    assert_eq!(commits(&fake), n);
    assert!(r.process(&[action(REVOKE_80)])[0].is_ok());
}

#[test]
fn restart_keeps_every_handle() {
    let (r, fake, store) = started();
    let handles = fake.all_handles();
    let n = commits(&fake);
    drop(r);
    let r2 = Reconciler::start(
        Box::new(store),
        Box::new(fake.clone()),
        crate::compile::Options::new("t"),
    )
    .unwrap();
    assert_eq!(commits(&fake), n, "nothing to do");
    assert_eq!(fake.all_handles(), handles);
    assert_eq!(r2.state().grant_count(), 3);
}

#[test]
fn restart_repairs_only_what_differs() {
    let (r, fake, store) = started();
    drop(r);
    let grp = fake.rules("grp_1_0");
    fake.delete_rule("grp_1_0", grp[1].0);
    fake.add_foreign_rule("grp_1_0", Some("not ours"));
    fake.add_foreign_rule("inst_1", None);
    let keep: Vec<u64> = fake
        .all_handles()
        .into_iter()
        .filter(|h| *h != grp[1].0)
        .collect();
    let _r2 = Reconciler::start(
        Box::new(store),
        Box::new(fake.clone()),
        crate::compile::Options::new("t"),
    )
    .unwrap();
    let now = fake.all_handles();
    // Our rules kept their handles; the deleted one is back with a new handle; the
    // foreign ones are gone.
    let grp_after = fake.rules("grp_1_0");
    assert_eq!(grp_after.len(), 2);
    assert_eq!(grp_after[0], grp[0]);
    assert_eq!(grp_after[1].1, grp[1].1);
    assert_eq!(fake.rules("inst_1").len(), 2, "jump to web, then drop");
    for h in keep.iter().take(keep.len() - 2) {
        assert!(now.contains(h), "handle {h} kept");
    }
}

#[test]
fn a_foreign_change_between_commits_is_repaired_before_the_next() {
    let (mut r, fake, _) = started();
    fake.add_foreign_rule("grp_1_0", Some("sneaky accept"));
    let res = r.process(&[action(REVOKE_80)]);
    assert!(res[0].is_ok());
    let rules = fake.rules("grp_1_0");
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].1.contains("tcp 443"));
}

#[test]
fn deregister_and_delete_group_clean_up() {
    let (mut r, fake, _) = started();
    let res = r.process(&[
        action("Action=DeregisterInstance&InstanceId=i-2"),
        action("Action=RevokeSecurityGroupIngress&GroupName=db&SourceSecurityGroupName=web&SourceSecurityGroupOwnerId=000000000000"),
        action("Action=DeleteSecurityGroup&GroupName=db"),
    ]);
    assert!(res.iter().all(Result::is_ok), "{res:?}");
    assert!(fake.rules("inst_2").is_empty());
    assert_eq!(fake.map("dispatch_out").len(), 1);
    let k = fake
        .clone()
        .dump("t", crate::compile::plan::Family::Inet)
        .unwrap();
    assert!(!k.chains.iter().any(|c| c.name.starts_with("grp_2")));
    assert!(!k.sets.iter().any(|s| s.name == "m4_2"));
    // A chain created and deleted within one batch never reaches the kernel.
    let n = commits(&fake);
    let res = r.process(&[
        action("Action=CreateSecurityGroup&GroupName=tmp&GroupDescription=t"),
        action("Action=DeleteSecurityGroup&GroupName=tmp"),
    ]);
    assert!(res.iter().all(Result::is_ok));
    assert_eq!(commits(&fake), n);
}

/// Records the size of each batch it is given.
#[derive(Clone, Default)]
struct Recorder {
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Worker for Recorder {
    async fn process(&mut self, actions: Vec<Action>) -> Vec<Result<Reply, ApiErrors>> {
        self.batches.lock().unwrap().push(actions.len());
        tokio::time::sleep(Duration::from_millis(2)).await; // the commit takes time
        actions.iter().map(|_| Ok(Reply::Done)).collect()
    }
}

fn peer() -> Peer {
    Peer {
        uid: 0,
        gid: 0,
        pid: 1,
    }
}

#[tokio::test(start_paused = true)]
async fn requests_within_the_window_share_a_commit() {
    let rec = Recorder::default();
    let h = spawn(rec.clone(), Duration::from_millis(10));
    let mut tasks = Vec::new();
    for delay in [0u64, 3, 9, 15, 16, 40] {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let t = tokio::time::Instant::now();
            h.submit(peer(), action(REVOKE_80)).await.unwrap();
            t.elapsed()
        }));
    }
    let mut waits = Vec::new();
    for t in tasks {
        waits.push(t.await.unwrap());
    }
    // 0, 3, 9 share the window opened at 0; 15 and 16 share the next; 40 is alone.
    assert_eq!(*rec.batches.lock().unwrap(), vec![3, 2, 1]);
    // Nobody waits more than the window plus the commit.
    assert!(
        waits.iter().all(|w| *w <= Duration::from_millis(12)),
        "{waits:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn with_no_window_requests_queued_during_a_commit_form_the_next_batch() {
    let rec = Recorder::default();
    let h = spawn(rec.clone(), Duration::ZERO);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.submit(peer(), action(REVOKE_80)).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let b = rec.batches.lock().unwrap().clone();
    assert_eq!(b.iter().sum::<usize>(), 5);
    assert!(b.len() < 5, "queued requests were batched: {b:?}");
}

#[tokio::test(start_paused = true)]
async fn batches_are_capped() {
    let rec = Recorder::default();
    let h = spawn(rec.clone(), Duration::from_millis(10));
    let mut tasks = Vec::new();
    for _ in 0..(MAX_BATCH + 10) {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.submit(peer(), action(REVOKE_80)).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let b = rec.batches.lock().unwrap().clone();
    assert_eq!(b.iter().sum::<usize>(), MAX_BATCH + 10);
    assert!(b.iter().all(|n| *n <= MAX_BATCH), "{b:?}");
}

fn started_with(o: crate::compile::Options) -> (Reconciler, FakeBackend) {
    let fake = FakeBackend::new();
    let mut r =
        Reconciler::start(Box::new(LogStore::default()), Box::new(fake.clone()), o).unwrap();
    let actions: Vec<Action> = SETUP.iter().map(|q| action(q)).collect();
    for res in r.process(&actions) {
        res.unwrap();
    }
    (r, fake)
}

#[test]
fn bridged_mode_uses_both_tables_and_switching_modes_cleans_up() {
    let mut o = crate::compile::Options::new("t");
    o.mode = crate::config::Mode::Bridged;
    let (r, fake) = started_with(o.clone());
    let k = fake
        .clone()
        .dump("t", crate::compile::plan::Family::Bridge)
        .unwrap();
    assert!(k.exists);
    assert!(k.chains.iter().any(|c| c.name == "mark_1"));
    assert_eq!(fake.map("dispatch_mark").len(), 2);
    drop(r);
    // Restart in routed mode: the bridge table goes, the inet table is repaired.
    let store = LogStore::default();
    let mut r = Reconciler::start(
        Box::new(store),
        Box::new(fake.clone()),
        crate::compile::Options::new("t"),
    )
    .unwrap();
    let k = fake
        .clone()
        .dump("t", crate::compile::plan::Family::Bridge)
        .unwrap();
    assert!(!k.exists);
    assert!(r.process(&[action("Action=DescribeSecurityGroups")])[0].is_ok());
}

#[test]
fn a_member_leaving_removes_exactly_its_live_pair_elements() {
    let (mut r, fake) = started_with(crate::compile::Options::new("t"));
    // db admits the members of web: i-1 (10.1.1.2).
    assert_eq!(fake.elems("live_pairs4").len(), 1);
    let res = r.process(&[action(
        "Action=AddGroupMembers&GroupName=web&IpAddress.1=10.5.0.1&IpAddress.2=10.5.0.2",
    )]);
    assert!(res[0].is_ok());
    assert_eq!(fake.elems("live_pairs4").len(), 3);
    assert_eq!(fake.elems("m4_1").len(), 3);
    let res = r.process(&[action(
        "Action=RemoveGroupMembers&GroupName=web&IpAddress.1=10.5.0.1",
    )]);
    assert!(res[0].is_ok());
    assert_eq!(
        last_batch(&fake).len(),
        2,
        "one element out of the member set, one out of live_pairs4: {:?}",
        last_batch(&fake)
    );
    let res = r.process(&[action("Action=DeregisterInstance&InstanceId=i-1")]);
    assert!(res[0].is_ok());
    assert_eq!(fake.elems("live_pairs4").len(), 1, "only 10.5.0.2 is left");
}

#[test]
fn modify_groups_swaps_jumps_in_one_batch() {
    let (mut r, fake) = started_with(crate::compile::Options::new("t"));
    let n = commits(&fake);
    let res = r.process(&[action(
        "Action=ModifyInstanceGroups&InstanceId=i-1&GroupName.1=db",
    )]);
    assert!(res[0].is_ok(), "{res:?}");
    assert_eq!(commits(&fake), n + 1);
    let rules = fake.rules("inst_1");
    assert_eq!(rules.len(), 2);
    assert!(rules[0].1.contains("group 000000000000/db"), "{rules:?}");
}

#[test]
fn status_explain_and_overlaps_are_answered() {
    let (mut r, _fake) = started_with(crate::compile::Options::new("t"));
    let res = r.process(&[action("Action=GetStatus")]);
    let Ok(Reply::Status(s)) = &res[0] else {
        panic!("{res:?}")
    };
    assert_eq!((s.groups, s.permissions, s.instances), (2, 3, 2));
    assert!(s.rules > 0 && s.generation >= 1);
    let res = r.process(&[action(
        "Action=ExplainPacket&InstanceId=i-1&SourceIp=10.9.0.2&IpProtocol=tcp&Port=443",
    )]);
    let Ok(Reply::Explained(e)) = &res[0] else {
        panic!("{res:?}")
    };
    assert_eq!(e.admitted_by.len(), 1);
    let res = r.process(&[action(
        "Action=ExplainPacket&InstanceId=i-404&SourceIp=10.9.0.2&IpProtocol=tcp&Port=443",
    )]);
    assert_eq!(
        res[0].as_ref().unwrap_err().codes(),
        vec![ErrorCode::InstanceNotFound]
    );
    let res = r.process(&[
        action("Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=0&ToPort=65535&CidrIp=0.0.0.0/0"),
        action(REVOKE_80),
    ]);
    let Ok(Reply::Revoked { overlaps }) = &res[1] else {
        panic!("{res:?}")
    };
    assert_eq!(overlaps.len(), 1);
    assert!(overlaps[0].full);
}
