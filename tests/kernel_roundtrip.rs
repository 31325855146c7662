//! Property test against the real kernel: every valid state, in every mode, compiles to
//! a plan that the netlink backend installs and that reads back from the kernel exactly
//! as planned (the comparison that start-up and drift repair rely on finds nothing to
//! do), and incremental batches keep it so.

mod common;

use common::*;
use proptest::prelude::*;
use secgroupd::compile::plan::Family;
use secgroupd::compile::{Options, compile};
use secgroupd::config::{EstablishedOnRevoke, Mode as CfgMode};
use secgroupd::model::query::{decode_form, parse_action};
use secgroupd::model::{ApiErrors, ErrorCode, OwnerId};
use secgroupd::nft::netlink::NetlinkBackend;
use secgroupd::nft::{Backend, fake::FakeBackend};
use secgroupd::reconcile::Reconciler;
use secgroupd::state::{Change, Counters, State};
use secgroupd::store::{Store, StoreError};
use std::sync::{Arc, Mutex};

const TABLE: &str = "sgrt";

/// A store that remembers nothing durable: the test is about the kernel.
#[derive(Clone, Default)]
struct Volatile(Arc<Mutex<Vec<Change>>>);

impl Store for Volatile {
    fn load(&mut self) -> Result<State, StoreError> {
        let mut s = State::new();
        for c in self.0.lock().unwrap().iter() {
            s.apply(c);
        }
        Ok(s)
    }
    fn commit(&mut self, changes: &[Change], _: Counters) -> Result<(), StoreError> {
        self.0.lock().unwrap().extend_from_slice(changes);
        Ok(())
    }
}

fn action(q: &str) -> Option<secgroupd::model::Action> {
    let owner = OwnerId::parse("OwnerId", "000000000000").unwrap();
    parse_action(&decode_form(q.as_bytes()).ok()?, &owner).ok()
}

/// Each answer as `None` (success) or its EC2 error codes.
fn outcomes<T>(answers: Vec<Result<T, ApiErrors>>) -> Vec<Option<Vec<ErrorCode>>> {
    answers
        .into_iter()
        .map(|a| a.err().map(|e| e.codes()))
        .collect()
}

fn any_action() -> impl Strategy<Value = String> {
    let group = prop_oneof![Just("a"), Just("b"), Just("c")];
    let perm = prop_oneof![
        Just("IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0".to_string()),
        Just("IpProtocol=udp&FromPort=53&ToPort=54&CidrIp=10.0.0.0/8".to_string()),
        Just("IpProtocol=icmp&FromPort=8&ToPort=-1&CidrIp=10.9.0.0/16".to_string()),
        Just("IpProtocol=icmpv6&FromPort=128&ToPort=0&CidrIp=fd00::/8".to_string()),
        Just("IpProtocol=tcp&FromPort=22&ToPort=22&CidrIp=fd00::/8".to_string()),
        prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(|s| format!(
            "SourceSecurityGroupName={s}&SourceSecurityGroupOwnerId=000000000000"
        )),
    ];
    let inst = 1u8..4;
    prop_oneof![
        group
            .clone()
            .prop_map(|g| format!("Action=CreateSecurityGroup&GroupName={g}&GroupDescription=d")),
        group
            .clone()
            .prop_map(|g| format!("Action=DeleteSecurityGroup&GroupName={g}")),
        (group.clone(), perm.clone()).prop_map(|(g, p)| format!(
            "Action=AuthorizeSecurityGroupIngress&GroupName={g}&{p}"
        )),
        (group.clone(), perm)
            .prop_map(|(g, p)| format!("Action=RevokeSecurityGroupIngress&GroupName={g}&{p}")),
        (inst.clone(), group.clone()).prop_map(|(i, g)| format!(
            "Action=RegisterInstance&InstanceId=i-{i}&Interface=tap{i}&IpAddress.1=10.1.{i}.2&IpAddress.2=fd00:1:{i}::2&GroupName.1={g}"
        )),
        inst.clone()
            .prop_map(|i| format!("Action=DeregisterInstance&InstanceId=i-{i}")),
        (group.clone(), 1u8..4).prop_map(|(g, a)| format!(
            "Action=AddGroupMembers&GroupName={g}&IpAddress.1=10.7.0.{a}"
        )),
        (group.clone(), 1u8..4).prop_map(|(g, a)| format!(
            "Action=RemoveGroupMembers&GroupName={g}&IpAddress.1=10.7.0.{a}"
        )),
        (inst, group).prop_map(|(i, g)| format!(
            "Action=ModifyInstanceGroups&InstanceId=i-{i}&GroupName.1={g}"
        )),
    ]
}

fn any_options() -> impl Strategy<Value = Options> {
    (
        prop_oneof![Just(CfgMode::Routed), Just(CfgMode::Bridged)],
        prop_oneof![
            Just(EstablishedOnRevoke::Cut),
            Just(EstablishedOnRevoke::Keep)
        ],
    )
        .prop_map(|(m, e)| {
            let mut o = Options::new(TABLE);
            o.mode = m;
            o.established = e;
            o
        })
}

/// Runs the actions in batches through a reconciler on the real kernel, then checks that
/// a second reconciler, started from the same state against what the kernel now holds,
/// finds nothing to repair, and that the kernel holds exactly the rules of the plan.
fn round_trip(ns: &Netns, o: &Options, batches: &[Vec<String>]) -> Result<(), TestCaseError> {
    let store = Volatile::default();
    let (kernel_rules, plan_rules, commits_after) = ns.enter(|| {
        let backend = NetlinkBackend::new().expect("netlink");
        let mut r = Reconciler::start(Box::new(store.clone()), Box::new(backend), o.clone())
            .expect("start");
        // The same batches through the in-memory kernel the unit tests use: it must give
        // the same answers and end in the same plan, or the unit tests prove nothing.
        let mut fake = Reconciler::start(
            Box::new(Volatile::default()),
            Box::new(FakeBackend::new()),
            o.clone(),
        )
        .expect("start on the fake");
        for batch in batches {
            let actions: Vec<_> = batch.iter().filter_map(|q| action(q)).collect();
            let real = outcomes(r.process(&actions));
            assert!(
                !real
                    .iter()
                    .flatten()
                    .flatten()
                    .any(|c| *c == ErrorCode::InternalError),
                "the kernel refused a batch: {real:?} for {batch:?}"
            );
            assert_eq!(
                real,
                outcomes(fake.process(&actions)),
                "fake and kernel differ on {batch:?}"
            );
        }
        let plan = compile(r.state(), o);
        assert_eq!(&plan, r.plan(), "incremental plan equals the full compile");
        assert_eq!(
            fake.plan(),
            r.plan(),
            "fake and kernel end in the same plan"
        );
        drop(r);
        // A fresh start against the kernel: nothing may differ.
        let mut backend = NetlinkBackend::new().expect("netlink");
        let before = backend.dump(TABLE, Family::Inet).expect("dump").genid;
        let r = Reconciler::start(Box::new(store.clone()), Box::new(backend), o.clone())
            .expect("restart");
        let mut backend = NetlinkBackend::new().expect("netlink");
        let after = backend.dump(TABLE, Family::Inet).expect("dump").genid;
        let mut kernel: Vec<(String, String)> = Vec::new();
        for f in [Family::Inet, Family::Bridge] {
            let t = backend.dump(TABLE, f).expect("dump");
            for c in t.chains {
                for rule in c.rules {
                    kernel.push((c.name.clone(), rule.comment.unwrap_or_default()));
                }
            }
        }
        let mut planned: Vec<(String, String)> = r
            .plan()
            .objs
            .values()
            .filter_map(|o| match o {
                secgroupd::compile::plan::Obj::Rule(rule) => {
                    Some((rule.chain.to_string(), rule.comment.to_string()))
                }
                _ => None,
            })
            .collect();
        kernel.sort();
        planned.sort();
        (kernel, planned, after.wrapping_sub(before))
    });
    prop_assert_eq!(
        commits_after,
        0,
        "a restart on a matching kernel commits nothing"
    );
    prop_assert_eq!(kernel_rules, plan_rules);
    Ok(())
}

#[test]
fn every_valid_state_reads_back_from_the_kernel_as_planned() {
    if !netns_or_skip() {
        return;
    }
    let ns = Netns::new("roundtrip");
    let cases: u32 = std::env::var("SECGROUPD_ROUNDTRIP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    runner
        .run(
            &(
                any_options(),
                proptest::collection::vec(proptest::collection::vec(any_action(), 1..8), 1..6),
            ),
            |(o, batches)| {
                // Each case starts from an empty kernel.
                for f in ["inet", "bridge"] {
                    let _ = ns.try_exec(&["nft", "delete", "table", f, TABLE]);
                }
                round_trip(&ns, &o, &batches)
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
}
