//! The compiler without a kernel: golden nft text, and incremental == full.

use super::plan::{ChainName, Key, Obj};
use super::render::{render, render_chain};
use super::*;
use crate::config::{EstablishedOnRevoke, Mode};
use crate::model::query::{decode_form, parse_action};
use crate::model::{Action, OwnerId};
use crate::state::State;
use proptest::prelude::*;

fn action(q: &str) -> Action {
    let owner = OwnerId::parse("OwnerId", "000000000000").unwrap();
    parse_action(&decode_form(q.as_bytes()).unwrap(), &owner).unwrap()
}

fn opts(mode: Mode, est: EstablishedOnRevoke) -> Options {
    let mut o = Options::new("secgroupd");
    o.mode = mode;
    o.established = est;
    o
}

fn routed_cut() -> Options {
    opts(Mode::Routed, EstablishedOnRevoke::Cut)
}

/// Applies an action to state and plan, incrementally. Returns false if it was refused.
fn step_with(o: &Options, state: &mut State, plan: &mut Plan, delta: &mut Delta, q: &str) -> bool {
    match state.plan(&action(q)) {
        Ok((changes, _)) => {
            for c in &changes {
                state.apply(c);
                delta.apply(plan, o, state, c);
            }
            true
        }
        Err(_) => false,
    }
}

fn step(state: &mut State, plan: &mut Plan, delta: &mut Delta, q: &str) -> bool {
    step_with(&routed_cut(), state, plan, delta, q)
}

const SAMPLE: &[&str] = &[
    "Action=CreateSecurityGroup&GroupName=web&GroupDescription=Web+servers",
    "Action=CreateSecurityGroup&GroupName=db&GroupDescription=Databases",
    "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0",
    "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=8000&ToPort=8080&CidrIp=10.0.0.0/8",
    "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=udp&FromPort=0&ToPort=65535&CidrIp=192.168.1.0/24",
    "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=icmp&FromPort=-1&ToPort=-1&CidrIp=10.9.0.2/32",
    "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=icmp&FromPort=3&ToPort=4&CidrIp=0.0.0.0/0",
    "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=icmpv6&FromPort=128&ToPort=-1&CidrIp=fd00::/8",
    "Action=AuthorizeSecurityGroupIngress&GroupName=db&SourceSecurityGroupName=web&SourceSecurityGroupOwnerId=000000000000",
    "Action=RegisterInstance&InstanceId=i-web1&Interface=tap1&IpAddress.1=10.1.1.2&IpAddress.2=fd00:1:1::2&GroupName.1=web",
    "Action=RegisterInstance&InstanceId=i-db1&Interface=tap2&IpAddress.1=10.1.2.2&GroupName.1=db&GroupName.2=web",
];

fn sample_with(o: &Options) -> (State, Plan) {
    let mut state = State::new();
    let mut plan = compile(&state, o);
    let mut delta = Delta::new();
    for q in SAMPLE {
        assert!(step_with(o, &mut state, &mut plan, &mut delta, q), "{q}");
    }
    (state, plan)
}

fn sample() -> (State, Plan) {
    sample_with(&routed_cut())
}

fn golden(o: &Options, file: &str, golden: &str) {
    let (state, plan) = sample_with(o);
    assert_eq!(plan, compile(&state, o));
    let text = render(&plan);
    if text != golden && std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(format!("tests/golden/{file}"), &text).unwrap();
        return;
    }
    assert_eq!(
        text, golden,
        "rerun with UPDATE_GOLDEN=1 after checking the new text"
    );
}

#[test]
fn golden_routed_cut() {
    golden(
        &routed_cut(),
        "routed_cut.nft",
        include_str!("../../tests/golden/routed_cut.nft"),
    );
}

#[test]
fn golden_bridged_keep() {
    golden(
        &opts(Mode::Bridged, EstablishedOnRevoke::Keep),
        "bridged_keep.nft",
        include_str!("../../tests/golden/bridged_keep.nft"),
    );
}

#[test]
fn group_chain_jumps_to_its_shard_and_every_grant_marks() {
    let (_, plan) = sample();
    assert_eq!(
        render_chain(&plan, ChainName::Group(1)),
        "jump grp_1_0 comment \"shard 0: 000000000000/web shard 0 #ad93d730\"\n"
    );
    let shard = render_chain(&plan, ChainName::Shard(1, 0));
    assert_eq!(shard.lines().count(), 6);
    assert!(
        shard
            .lines()
            .all(|l| l.contains("counter ct mark set ct mark and 0xff000000 or 0x0000000")),
        "{shard}"
    );
    assert!(shard.starts_with("meta nfproto ipv4 meta l4proto tcp th dport 80 counter ct mark set ct mark and 0xff000000 or 0x00000001 accept comment \"grant 1: 000000000000/web tcp 80 from 0.0.0.0/0 #"));
}

#[test]
fn each_grant_is_one_rule_in_its_group_chain() {
    let (state, plan) = sample();
    for g in state.groups() {
        let rules: usize = plan
            .rules(ChainName::Group(g.num))
            .map(|j| match j.verdict {
                plan::Verdict::Jump(shard) => plan.rules(shard).count(),
                _ => 0,
            })
            .sum();
        let expected: usize = g
            .grants
            .values()
            .map(|gr| match gr.permission {
                crate::model::IpPermission::Cidr { .. } => 1,
                crate::model::IpPermission::GroupPair { .. } => 2,
            })
            .sum();
        assert_eq!(
            rules, expected,
            "one rule per CIDR grant, one per family per pair"
        );
    }
}

#[test]
fn comments_are_short_unique_and_quotable() {
    let mut state = State::new();
    let mut plan = compile(&state, &routed_cut());
    let mut d = Delta::new();
    let long = "x\"\\".repeat(80);
    assert!(step(
        &mut state,
        &mut plan,
        &mut d,
        &format!("Action=CreateSecurityGroup&GroupName={long}&GroupDescription=d")
    ));
    assert!(step(
        &mut state,
        &mut plan,
        &mut d,
        &format!(
            "Action=AuthorizeSecurityGroupIngress&GroupName={long}&IpProtocol=tcp&FromPort=1&ToPort=2&CidrIp=0.0.0.0/0"
        )
    ));
    let mut seen = std::collections::HashSet::new();
    for o in plan.objs.values() {
        if let Obj::Rule(r) = o {
            assert!(r.comment.len() <= build::MAX_COMMENT, "{}", r.comment);
            assert!(!r.comment.contains('"') && !r.comment.contains('\\'));
            assert!(seen.insert((r.chain, r.comment.clone())));
        }
    }
}

#[test]
fn rollback_restores_the_plan() {
    let (mut state, mut plan) = sample();
    let before = plan.clone();
    let mut d = Delta::new();
    assert!(step(
        &mut state,
        &mut plan,
        &mut d,
        "Action=DeregisterInstance&InstanceId=i-db1"
    ));
    assert!(step(
        &mut state,
        &mut plan,
        &mut d,
        "Action=RevokeSecurityGroupIngress&GroupName=db&SourceSecurityGroupName=web&SourceSecurityGroupOwnerId=000000000000"
    ));
    assert!(step(
        &mut state,
        &mut plan,
        &mut d,
        "Action=DeleteSecurityGroup&GroupName=db"
    ));
    assert_ne!(plan, before);
    d.rollback(&mut plan);
    assert_eq!(plan, before);
}

#[test]
fn a_revoke_touches_one_key() {
    let (mut state, mut plan) = sample();
    let mut d = Delta::new();
    assert!(step(
        &mut state,
        &mut plan,
        &mut d,
        "Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0"
    ));
    let diffs: Vec<_> = d.differences(&plan).collect();
    // The rule, and its live mark (cut mode).
    assert_eq!(diffs.len(), 2, "{diffs:?}");
    assert!(matches!(diffs[0].key, Key::Elem(plan::SetName::Live, _)));
    assert!(matches!(diffs[1].key, Key::Rule(ChainName::Shard(1, 0), _)));
    assert!(diffs.iter().all(|d| d.after.is_none()));
}

/// A small universe of actions so that random sequences hit every interaction.
fn any_action() -> impl Strategy<Value = String> {
    let group = prop_oneof![Just("a"), Just("b"), Just("c")];
    let perm = prop_oneof![
        Just("IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0".to_string()),
        Just("IpProtocol=udp&FromPort=53&ToPort=54&CidrIp=10.0.0.0/8".to_string()),
        Just("IpProtocol=icmp&FromPort=8&ToPort=-1&CidrIp=10.9.0.0/16".to_string()),
        Just("IpProtocol=tcp&FromPort=22&ToPort=22&CidrIp=fd00::/8".to_string()),
        prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(|s| format!(
            "SourceSecurityGroupName={s}&SourceSecurityGroupOwnerId=000000000000"
        )),
    ];
    let inst = 1u8..5;
    prop_oneof![
        group.clone().prop_map(|g| format!("Action=CreateSecurityGroup&GroupName={g}&GroupDescription=d")),
        group.clone().prop_map(|g| format!("Action=DeleteSecurityGroup&GroupName={g}")),
        (group.clone(), perm.clone()).prop_map(|(g, p)| format!("Action=AuthorizeSecurityGroupIngress&GroupName={g}&{p}")),
        (group.clone(), perm).prop_map(|(g, p)| format!("Action=RevokeSecurityGroupIngress&GroupName={g}&{p}")),
        (inst.clone(), group.clone(), group.clone(), 0u8..3).prop_map(|(i, g1, g2, a)| format!(
            "Action=RegisterInstance&InstanceId=i-{i}&Interface=tap{i}&IpAddress.1=10.1.{i}.{}&IpAddress.2=fd00::{i}:{a}&GroupName.1={g1}{}",
            a + 1,
            if g1 != g2 { format!("&GroupName.2={g2}") } else { String::new() }
        )),
        inst.clone().prop_map(|i| format!("Action=DeregisterInstance&InstanceId=i-{i}")),
        (group.clone(), 1u8..4).prop_map(|(g, a)| format!("Action=AddGroupMembers&GroupName={g}&IpAddress.1=10.1.{a}.1&IpAddress.2=10.7.0.{a}")),
        (group.clone(), 1u8..4).prop_map(|(g, a)| format!("Action=RemoveGroupMembers&GroupName={g}&IpAddress.1=10.7.0.{a}")),
        (inst, group.clone(), group).prop_map(|(i, g1, g2)| format!(
            "Action=ModifyInstanceGroups&InstanceId=i-{i}&GroupName.1={g1}{}",
            if g1 != g2 { format!("&GroupName.2={g2}") } else { String::new() }
        )),
    ]
}

fn any_options() -> impl Strategy<Value = Options> {
    (
        prop_oneof![Just(Mode::Routed), Just(Mode::Bridged)],
        prop_oneof![
            Just(EstablishedOnRevoke::Cut),
            Just(EstablishedOnRevoke::Keep)
        ],
    )
        .prop_map(|(m, e)| opts(m, e))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Applying changes one by one to a plan gives exactly the plan compiled from scratch,
    /// and rolling the delta back gives the plan we started from, in every mode.
    #[test]
    fn incremental_equals_full(o in any_options(),
                               setup in proptest::collection::vec(any_action(), 0..30),
                               batch in proptest::collection::vec(any_action(), 1..10)) {
        let mut state = State::new();
        let mut plan = compile(&state, &o);
        let mut d = Delta::new();
        for q in &setup {
            step_with(&o, &mut state, &mut plan, &mut d, q);
        }
        prop_assert_eq!(&plan, &compile(&state, &o));
        let before = plan.clone();
        let mut d = Delta::new();
        for q in &batch {
            step_with(&o, &mut state, &mut plan, &mut d, q);
        }
        prop_assert_eq!(&plan, &compile(&state, &o));
        d.rollback(&mut plan);
        prop_assert_eq!(plan, before);
    }
}

#[test]
fn shards_hold_at_most_shard_size_rules_and_empty_ones_go() {
    let o = routed_cut();
    let mut state = State::new();
    let mut plan = compile(&state, &o);
    let mut d = Delta::new();
    assert!(step(
        &mut state,
        &mut plan,
        &mut d,
        "Action=CreateSecurityGroup&GroupName=big&GroupDescription=d"
    ));
    let n = crate::state::SHARD_SIZE + 10;
    for p in 1..=n {
        assert!(step(
            &mut state,
            &mut plan,
            &mut d,
            &format!(
                "Action=AuthorizeSecurityGroupIngress&GroupName=big&IpProtocol=tcp&FromPort={p}&ToPort={p}&CidrIp=0.0.0.0/0"
            )
        ));
    }
    assert_eq!(
        plan.rules(ChainName::Shard(1, 0)).count(),
        crate::state::SHARD_SIZE as usize
    );
    assert_eq!(plan.rules(ChainName::Shard(1, 1)).count(), 10);
    assert_eq!(plan.rules(ChainName::Group(1)).count(), 2);
    for p in (crate::state::SHARD_SIZE + 1)..=n {
        assert!(step(
            &mut state,
            &mut plan,
            &mut d,
            &format!(
                "Action=RevokeSecurityGroupIngress&GroupName=big&IpProtocol=tcp&FromPort={p}&ToPort={p}&CidrIp=0.0.0.0/0"
            )
        ));
    }
    assert!(!plan.objs.contains_key(&Key::Chain(ChainName::Shard(1, 1))));
    assert_eq!(plan.rules(ChainName::Group(1)).count(), 1);
    assert_eq!(plan, compile(&state, &o));
}

#[test]
fn explain_and_overlaps() {
    use crate::model::{PacketProbe, Protocol};
    let (state, plan) = sample();
    let probe = |src: &str, proto: Protocol, port: Option<u16>, icmp: Option<u8>| PacketProbe {
        instance: crate::model::InstanceId::parse("i", "i-web1").unwrap(),
        source: src.parse().unwrap(),
        protocol: proto,
        port,
        icmp_type: icmp,
        icmp_code: icmp.map(|_| 0),
    };
    let e = explain::explain(
        &plan,
        &state,
        &probe("10.9.0.2", Protocol::Tcp, Some(80), None),
    )
    .unwrap();
    assert_eq!(e.admitted_by.len(), 1, "{e:?}");
    assert!(e.admitted_by[0].1.to_string().contains("tcp 80"));
    let e = explain::explain(
        &plan,
        &state,
        &probe("10.9.0.2", Protocol::Tcp, Some(81), None),
    )
    .unwrap();
    assert!(e.admitted_by.is_empty());
    let e = explain::explain(
        &plan,
        &state,
        &probe("10.1.2.3", Protocol::Tcp, Some(8000), None),
    )
    .unwrap();
    assert_eq!(e.admitted_by.len(), 1, "10.0.0.0/8 tcp 8000-8080");
    // i-db1 is in db (pair from web) and web: a packet from i-web1's address is admitted
    // by the pair.
    let mut p = probe("10.1.1.2", Protocol::Udp, Some(9999), None);
    p.instance = crate::model::InstanceId::parse("i", "i-db1").unwrap();
    let e = explain::explain(&plan, &state, &p).unwrap();
    assert_eq!(e.admitted_by.len(), 1);
    assert!(e.admitted_by[0].1.to_string().contains("all from group"));

    // Overlaps: revoking web's tcp 8000-8080 from 10.0.0.0/8 while tcp 80 from 0.0.0.0/0
    // exists: no overlap (ports differ). Revoking udp from 192.168.1.0/24: none either.
    let web = crate::model::GroupKey {
        owner: crate::model::OwnerId::parse("o", "000000000000").unwrap(),
        name: crate::model::GroupName::parse("g", "web").unwrap(),
    };
    let Action::RevokeSecurityGroupIngress { permission, .. } = action(
        "Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=10.9.0.0/24",
    ) else {
        unreachable!()
    };
    let o = explain::overlaps(&state, &web, &permission);
    assert_eq!(o.len(), 1, "{o:?}");
    assert!(
        o[0].full,
        "tcp 80 from 0.0.0.0/0 covers tcp 80 from 10.9.0.0/24"
    );
    let Action::RevokeSecurityGroupIngress { permission, .. } = action(
        "Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=70&ToPort=90&CidrIp=0.0.0.0/0",
    ) else {
        unreachable!()
    };
    let o = explain::overlaps(&state, &web, &permission);
    // tcp 80 of web, and db's pair from web (i-db1 is in both groups).
    assert_eq!(o.len(), 2, "{o:?}");
    assert!(
        o.iter().all(|o| !o.full),
        "each admits only part of tcp 70-90 from anywhere"
    );
    assert!(o.iter().any(|o| o.group.name.as_str() == "db"
        && o.instances.iter().map(|i| i.as_str()).collect::<Vec<_>>() == ["i-db1"]));
}
