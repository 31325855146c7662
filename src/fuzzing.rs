//! The body of the query fuzz target, shared by `fuzz/fuzz_targets/query.rs` (cargo fuzz,
//! nightly) and `tests/fuzz_query.rs` (a seeded mutation run on stable, in CI).
//!
//! Any input must: decode or fail with errors that each have a message; parse into an
//! action or fail likewise; and, if it parses, plan against a small fixed state without
//! panicking, with an error that has a message, or changes whose inverses undo them.

use crate::model::query::{decode_form, parse_action};
use crate::model::{ApiErrors, OwnerId};
use crate::state::State;
use std::sync::OnceLock;

/// Requests that reach every action and most validation paths; the starting points of
/// mutation.
pub const SEEDS: &[&str] = &[
    "Action=CreateSecurityGroup&GroupName=web&GroupDescription=Web+servers",
    "Action=DeleteSecurityGroup&GroupName=web",
    "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0",
    "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=icmp&FromPort=-1&ToPort=-1&CidrIp=10.0.0.0/8",
    "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=icmpv6&FromPort=128&ToPort=0&CidrIp=%3A%3A/0",
    "Action=AuthorizeSecurityGroupIngress&GroupName=db&SourceSecurityGroupName=web&SourceSecurityGroupOwnerId=000000000000",
    "Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0",
    "Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=udp&FromPort=53&ToPort=53&CidrIp=10.1.2.0/24",
    "Action=DescribeSecurityGroups&GroupName.1=web&GroupName.2=db",
    "Action=DescribeSecurityGroups&OwnerId=123456789012",
    "Action=RegisterInstance&InstanceId=i-2&Interface=tap2&IpAddress.1=10.0.0.3&IpAddress.2=fd00::3&GroupName.1=web",
    "Action=DeregisterInstance&InstanceId=i-1",
    "Action=AddGroupMembers&GroupName=web&IpAddress.1=192.0.2.7",
    "Action=RemoveGroupMembers&GroupName=web&IpAddress.1=192.0.2.7",
    "Action=ModifyInstanceGroups&InstanceId=i-1&GroupName.1=db&GroupName.2=web",
    "Action=GetStatus",
    "Action=ExplainPacket&InstanceId=i-1&SourceIp=10.9.9.9&IpProtocol=tcp&Port=80",
    "Action=CreateSecurityGroup&GroupName=%E2%9C%93&GroupDescription=%ff",
    "Action=DescribeSecurityGroups&GroupName.1=a&GroupName.3=b&GroupName.01=c",
    "Action=Bogus&Version=2007-03-01&Signature=x&Timestamp=2007-01-01T00%3A00%3A00Z",
];

fn owner() -> OwnerId {
    OwnerId::parse("OwnerId", "000000000000").expect("valid owner")
}

/// Two groups, a grant, a registered instance.
fn fixed_state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let mut s = State::new();
        for q in [
            "Action=CreateSecurityGroup&GroupName=web&GroupDescription=w",
            "Action=CreateSecurityGroup&GroupName=db&GroupDescription=d",
            "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0",
            "Action=RegisterInstance&InstanceId=i-1&Interface=tap1&IpAddress.1=10.0.0.2&GroupName.1=web",
        ] {
            let params = decode_form(q.as_bytes()).expect("seed decodes");
            let action = parse_action(&params, &owner()).expect("seed parses");
            let (changes, _) = s.plan(&action).expect("seed plans");
            for c in &changes {
                s.apply(c);
            }
        }
        s
    })
}

fn check_messages(stage: &str, input: &[u8], errors: &ApiErrors) {
    assert!(
        !errors.0.is_empty(),
        "{stage}: an empty error list for {input:?}"
    );
    for e in &errors.0 {
        assert!(
            !e.message.trim().is_empty(),
            "{stage}: {} without a message for {input:?}",
            e.code
        );
    }
}

/// Runs one input through decoding, parsing and planning; panics on a broken invariant.
pub fn query_input(data: &[u8]) {
    let params = match decode_form(data) {
        Ok(p) => p,
        Err(e) => return check_messages("decode_form", data, &e),
    };
    let action = match parse_action(&params, &owner()) {
        Ok(a) => a,
        Err(e) => return check_messages("parse_action", data, &e),
    };
    let state = fixed_state();
    match state.plan(&action) {
        Err(e) => check_messages("State::plan", data, &e.into()),
        Ok((changes, _reply)) => {
            let mut s = state.clone();
            for c in &changes {
                s.apply(c);
            }
            for c in changes.iter().rev() {
                s.apply(&c.inverse());
            }
            // Id counters only ever grow (ids are never reused): compare the content.
            assert!(
                s.groups().eq(state.groups()) && s.instances().eq(state.instances()),
                "the inverses did not undo {action:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_seed_passes() {
        for s in super::SEEDS {
            super::query_input(s.as_bytes());
        }
    }
}
