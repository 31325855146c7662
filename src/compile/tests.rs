//! The compiler without a kernel: golden nft text, and incremental == full.

use super::plan::{ChainName, Key, Obj};
use super::render::{render, render_chain};
use super::*;
use crate::model::query::{decode_form, parse_action};
use crate::model::{Action, OwnerId};
use crate::state::State;
use proptest::prelude::*;

fn action(q: &str) -> Action {
    let owner = OwnerId::parse("OwnerId", "000000000000").unwrap();
    parse_action(&decode_form(q.as_bytes()).unwrap(), &owner).unwrap()
}

/// Applies an action to state and plan, incrementally. Returns false if it was refused.
fn step(state: &mut State, plan: &mut Plan, delta: &mut Delta, q: &str) -> bool {
    match state.plan(&action(q)) {
        Ok((changes, _)) => {
            for c in &changes {
                state.apply(c);
                delta.apply(plan, state, c);
            }
            true
        }
        Err(_) => false,
    }
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

fn sample() -> (State, Plan) {
    let mut state = State::new();
    let mut plan = compile(&state, "secgroupd");
    let mut delta = Delta::new();
    for q in SAMPLE {
        assert!(step(&mut state, &mut plan, &mut delta, q), "{q}");
    }
    (state, plan)
}

#[test]
fn golden_table() {
    let (state, plan) = sample();
    assert_eq!(plan, compile(&state, "secgroupd"));
    let text = render(&plan);
    let golden = include_str!("../../tests/golden/sample_table.nft");
    if text != golden && std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write("tests/golden/sample_table.nft", &text).unwrap();
        return;
    }
    assert_eq!(
        text, golden,
        "rerun with UPDATE_GOLDEN=1 after checking the new text"
    );
}

#[test]
fn golden_group_chain() {
    let (_, plan) = sample();
    assert_eq!(
        render_chain(&plan, ChainName::Group(1)),
        "\
meta nfproto ipv4 meta l4proto tcp th dport 80 counter accept comment \"grant 1: 000000000000/web tcp 80 from 0.0.0.0/0 #f002d039\"
meta nfproto ipv4 ip saddr 10.0.0.0/8 meta l4proto tcp th dport 8000-8080 counter accept comment \"grant 2: 000000000000/web tcp 8000-8080 from 10.0.0.0/8 #9298e46d\"
meta nfproto ipv4 ip saddr 192.168.1.0/24 meta l4proto udp counter accept comment \"grant 3: 000000000000/web udp 0-65535 from 192.168.1.0/24 #dbd54274\"
meta nfproto ipv4 ip saddr 10.9.0.2/32 meta l4proto icmp counter accept comment \"grant 4: 000000000000/web icmp type -1 code -1 from 10.9.0.2/32 #e5a29c89\"
meta nfproto ipv4 meta l4proto icmp icmp type 3 icmp code 4 counter accept comment \"grant 5: 000000000000/web icmp type 3 code 4 from 0.0.0.0/0 #86c0bf62\"
meta nfproto ipv6 ip6 saddr fd00::/8 meta l4proto ipv6-icmp icmpv6 type 128 counter accept comment \"grant 6: 000000000000/web icmpv6 type 128 code -1 from fd00::/8 #16fdcd38\"
"
    );
}

#[test]
fn each_grant_is_one_rule_in_its_group_chain() {
    let (state, plan) = sample();
    for g in state.groups() {
        assert_eq!(plan.rules(ChainName::Group(g.num)).count(), g.grants.len());
    }
}

#[test]
fn comments_are_short_unique_and_quotable() {
    let mut state = State::new();
    let mut plan = compile(&state, "t");
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
    assert_eq!(diffs.len(), 1);
    assert!(matches!(diffs[0].key, Key::Rule(ChainName::Group(1), _)));
    assert!(diffs[0].after.is_none());
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Applying changes one by one to a plan gives exactly the plan compiled from scratch,
    /// and rolling the delta back gives the plan we started from.
    #[test]
    fn incremental_equals_full(setup in proptest::collection::vec(any_action(), 0..30),
                               batch in proptest::collection::vec(any_action(), 1..10)) {
        let mut state = State::new();
        let mut plan = compile(&state, "t");
        let mut d = Delta::new();
        for q in &setup {
            step(&mut state, &mut plan, &mut d, q);
        }
        prop_assert_eq!(&plan, &compile(&state, "t"));
        let before = plan.clone();
        let mut d = Delta::new();
        for q in &batch {
            step(&mut state, &mut plan, &mut d, q);
        }
        prop_assert_eq!(&plan, &compile(&state, "t"));
        d.rollback(&mut plan);
        prop_assert_eq!(plan, before);
    }
}
