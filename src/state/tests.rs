//! Semantics of actions against the state: every error leaves it untouched.

use super::*;
use crate::model::query::{decode_form, parse_action};
use crate::model::{ErrorCode, OwnerId};

fn owner() -> OwnerId {
    OwnerId::parse("OwnerId", "000000000000").unwrap()
}

fn action(q: &str) -> Action {
    parse_action(&decode_form(q.as_bytes()).unwrap(), &owner()).unwrap()
}

/// Runs an action; on success applies its changes and checks that the inverses undo them.
fn run(s: &mut State, q: &str) -> Result<Reply, ErrorCode> {
    let before = s.clone();
    match s.plan(&action(q)) {
        Ok((changes, reply)) => {
            let mut undo = s.clone();
            for c in &changes {
                undo.apply(c);
            }
            for c in changes.iter().rev() {
                undo.apply(&c.inverse());
            }
            assert_eq!(undo.groups, before.groups, "inverse of {q}");
            assert_eq!(undo.instances, before.instances, "inverse of {q}");
            assert_eq!(undo.co_groups, before.co_groups, "inverse of {q}");
            for c in &changes {
                s.apply(c);
            }
            Ok(reply)
        }
        Err(e) => {
            assert_eq!(*s, before, "a failed action must not change the state");
            Err(e.code)
        }
    }
}

fn ok(s: &mut State, q: &str) {
    run(s, q).unwrap_or_else(|e| panic!("{q}: {e}"));
}

fn err(s: &mut State, q: &str) -> ErrorCode {
    run(s, q).expect_err(q)
}

const WEB_80: &str = "GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0";

fn setup() -> State {
    let mut s = State::new();
    ok(
        &mut s,
        "Action=CreateSecurityGroup&GroupName=web&GroupDescription=w",
    );
    ok(
        &mut s,
        "Action=CreateSecurityGroup&GroupName=db&GroupDescription=d",
    );
    s
}

#[test]
fn groups() {
    let mut s = setup();
    assert_eq!(
        err(
            &mut s,
            "Action=CreateSecurityGroup&GroupName=web&GroupDescription=again"
        ),
        ErrorCode::GroupDuplicate
    );
    // Same name, other owner: a different group.
    ok(
        &mut s,
        "Action=CreateSecurityGroup&GroupName=web&GroupDescription=x&OwnerId=111111111111",
    );
    assert_eq!(
        err(&mut s, "Action=DeleteSecurityGroup&GroupName=nope"),
        ErrorCode::GroupNotFound
    );
    ok(
        &mut s,
        "Action=DeleteSecurityGroup&GroupName=web&OwnerId=111111111111",
    );
    assert_eq!(
        err(
            &mut s,
            "Action=DeleteSecurityGroup&GroupName=web&OwnerId=111111111111"
        ),
        ErrorCode::GroupNotFound
    );
}

#[test]
fn grants_and_revokes() {
    let mut s = setup();
    ok(
        &mut s,
        &format!("Action=AuthorizeSecurityGroupIngress&{WEB_80}"),
    );
    assert_eq!(
        err(
            &mut s,
            &format!("Action=AuthorizeSecurityGroupIngress&{WEB_80}")
        ),
        ErrorCode::PermissionDuplicate
    );
    // A revoke must repeat the values exactly.
    for other in [
        "GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=81&CidrIp=0.0.0.0/0",
        "GroupName=web&IpProtocol=udp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0",
        "GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=10.0.0.0/8",
        "GroupName=db&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0",
    ] {
        assert_eq!(
            err(
                &mut s,
                &format!("Action=RevokeSecurityGroupIngress&{other}")
            ),
            ErrorCode::PermissionNotFound,
            "{other}"
        );
    }
    assert_eq!(
        err(
            &mut s,
            "Action=RevokeSecurityGroupIngress&GroupName=nope&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0"
        ),
        ErrorCode::GroupNotFound
    );
    // Protocol spelling is canonicalised.
    ok(
        &mut s,
        "Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=TCP&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0",
    );
    assert_eq!(s.grant_count(), 0);
    assert_eq!(
        err(
            &mut s,
            &format!("Action=RevokeSecurityGroupIngress&{WEB_80}")
        ),
        ErrorCode::PermissionNotFound
    );
}

#[test]
fn grant_ids_are_never_reused() {
    let mut s = setup();
    ok(
        &mut s,
        &format!("Action=AuthorizeSecurityGroupIngress&{WEB_80}"),
    );
    let first = s.find_grant(&key("web"), &perm80()).unwrap();
    ok(
        &mut s,
        &format!("Action=RevokeSecurityGroupIngress&{WEB_80}"),
    );
    ok(
        &mut s,
        &format!("Action=AuthorizeSecurityGroupIngress&{WEB_80}"),
    );
    let second = s.find_grant(&key("web"), &perm80()).unwrap();
    assert!(second > first);
}

fn key(name: &str) -> GroupKey {
    GroupKey {
        owner: owner(),
        name: crate::model::GroupName::parse("GroupName", name).unwrap(),
    }
}

fn perm80() -> IpPermission {
    let Action::AuthorizeSecurityGroupIngress { permission, .. } =
        action(&format!("Action=AuthorizeSecurityGroupIngress&{WEB_80}"))
    else {
        unreachable!()
    };
    permission
}

#[test]
fn group_pairs() {
    let mut s = setup();
    let pair = "GroupName=web&SourceSecurityGroupName=db&SourceSecurityGroupOwnerId=000000000000";
    assert_eq!(
        err(
            &mut s,
            "Action=AuthorizeSecurityGroupIngress&GroupName=web&SourceSecurityGroupName=nope&SourceSecurityGroupOwnerId=000000000000"
        ),
        ErrorCode::GroupNotFound
    );
    ok(
        &mut s,
        &format!("Action=AuthorizeSecurityGroupIngress&{pair}"),
    );
    assert_eq!(
        err(&mut s, "Action=DeleteSecurityGroup&GroupName=db"),
        ErrorCode::GroupInUse
    );
    // A group may name itself, and that does not keep it from being deleted.
    ok(
        &mut s,
        "Action=AuthorizeSecurityGroupIngress&GroupName=db&SourceSecurityGroupName=db&SourceSecurityGroupOwnerId=000000000000",
    );
    ok(&mut s, &format!("Action=RevokeSecurityGroupIngress&{pair}"));
    ok(&mut s, "Action=DeleteSecurityGroup&GroupName=db");
}

#[test]
fn instances() {
    let mut s = setup();
    let reg = "Action=RegisterInstance&InstanceId=i-1&Interface=tap1&IpAddress.1=10.1.1.2&GroupName.1=web";
    assert_eq!(
        err(&mut s, &reg.replace("GroupName.1=web", "GroupName.1=nope")),
        ErrorCode::GroupNotFound
    );
    ok(&mut s, reg);
    ok(&mut s, reg); // identical re-registration is a no-op
    assert_eq!(
        err(&mut s, &reg.replace("tap1", "tap9")),
        ErrorCode::InstanceDuplicate
    );
    assert_eq!(
        err(&mut s, &reg.replace("i-1", "i-2")),
        ErrorCode::InvalidParameterValue,
        "interface already used"
    );
    assert_eq!(
        err(&mut s, &reg.replace("i-1", "i-2").replace("tap1", "tap2")),
        ErrorCode::InvalidParameterValue,
        "address already used"
    );
    assert!(s.is_member_address(&key("web"), "10.1.1.2".parse().unwrap()));
    assert!(!s.is_member_address(&key("db"), "10.1.1.2".parse().unwrap()));
    assert_eq!(
        err(&mut s, "Action=DeleteSecurityGroup&GroupName=web"),
        ErrorCode::GroupInUse
    );
    assert_eq!(
        err(&mut s, "Action=DeregisterInstance&InstanceId=i-9"),
        ErrorCode::InstanceNotFound
    );
    ok(&mut s, "Action=DeregisterInstance&InstanceId=i-1");
    assert!(!s.is_member_address(&key("web"), "10.1.1.2".parse().unwrap()));
    ok(&mut s, "Action=DeleteSecurityGroup&GroupName=web");
}

#[test]
fn describe() {
    let mut s = setup();
    ok(
        &mut s,
        &format!("Action=AuthorizeSecurityGroupIngress&{WEB_80}"),
    );
    let Ok(Reply::Groups(all)) = run(&mut s, "Action=DescribeSecurityGroups") else {
        panic!()
    };
    assert_eq!(all.len(), 2);
    let Ok(Reply::Groups(one)) = run(&mut s, "Action=DescribeSecurityGroups&GroupName.1=web")
    else {
        panic!()
    };
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].permissions, vec![perm80()]);
    assert_eq!(
        err(
            &mut s,
            "Action=DescribeSecurityGroups&GroupName.1=web&GroupName.2=nope"
        ),
        ErrorCode::GroupNotFound
    );
    let Ok(Reply::Groups(none)) = run(&mut s, "Action=DescribeSecurityGroups&OwnerId=111111111111")
    else {
        panic!()
    };
    assert!(none.is_empty());
}

#[test]
fn from_parts_rebuilds_indexes_and_counters() {
    let mut s = setup();
    ok(
        &mut s,
        &format!("Action=AuthorizeSecurityGroupIngress&{WEB_80}"),
    );
    ok(
        &mut s,
        "Action=RegisterInstance&InstanceId=i-1&Interface=tap1&IpAddress.1=10.1.1.2&GroupName.1=web",
    );
    let rebuilt = State::from_parts(
        s.groups().cloned().collect::<Vec<_>>(),
        s.instances().cloned().collect::<Vec<_>>(),
        Counters::default(),
    )
    .unwrap();
    assert_eq!(rebuilt.groups, s.groups);
    assert_eq!(rebuilt.instances, s.instances);
    assert_eq!(
        rebuilt.counters, s.counters,
        "counters bumped past ids in use"
    );
    assert!(rebuilt.find_grant(&key("web"), &perm80()).is_some());
    assert!(rebuilt.is_member_address(&key("web"), "10.1.1.2".parse().unwrap()));
    // Dangling references are refused.
    let orphan = s.instances().cloned().collect::<Vec<_>>();
    assert!(State::from_parts(vec![], orphan, Counters::default()).is_err());
}

#[test]
fn remote_members() {
    let mut s = setup();
    let a: std::net::IpAddr = "10.5.0.1".parse().unwrap();
    ok(
        &mut s,
        "Action=AddGroupMembers&GroupName=web&IpAddress.1=10.5.0.1",
    );
    assert!(s.is_member_address(&key("web"), a));
    // Adding again is a no-op; removing what is not a member is refused.
    let (changes, _) = s
        .plan(&action(
            "Action=AddGroupMembers&GroupName=web&IpAddress.1=10.5.0.1",
        ))
        .unwrap();
    assert!(changes.is_empty());
    assert_eq!(
        err(
            &mut s,
            "Action=RemoveGroupMembers&GroupName=web&IpAddress.1=10.5.0.2"
        ),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        err(
            &mut s,
            "Action=AddGroupMembers&GroupName=nope&IpAddress.1=10.5.0.2"
        ),
        ErrorCode::GroupNotFound
    );
    // A local instance with the same address keeps it a member after the remote leaves.
    ok(
        &mut s,
        "Action=RegisterInstance&InstanceId=i-1&Interface=tap1&IpAddress.1=10.5.0.1&GroupName.1=web",
    );
    ok(
        &mut s,
        "Action=RemoveGroupMembers&GroupName=web&IpAddress.1=10.5.0.1",
    );
    assert!(s.is_member_address(&key("web"), a));
    ok(&mut s, "Action=DeregisterInstance&InstanceId=i-1");
    assert!(!s.is_member_address(&key("web"), a));
    // A group with remote members can be deleted; undo restores them.
    ok(
        &mut s,
        "Action=AddGroupMembers&GroupName=web&IpAddress.1=10.5.0.1",
    );
    ok(&mut s, "Action=DeleteSecurityGroup&GroupName=web");
}

#[test]
fn modify_instance_groups() {
    let mut s = setup();
    ok(
        &mut s,
        "Action=RegisterInstance&InstanceId=i-1&Interface=tap1&IpAddress.1=10.1.1.2&GroupName.1=web",
    );
    assert_eq!(
        err(
            &mut s,
            "Action=ModifyInstanceGroups&InstanceId=i-9&GroupName.1=db"
        ),
        ErrorCode::InstanceNotFound
    );
    assert_eq!(
        err(
            &mut s,
            "Action=ModifyInstanceGroups&InstanceId=i-1&GroupName.1=nope"
        ),
        ErrorCode::GroupNotFound
    );
    ok(
        &mut s,
        "Action=ModifyInstanceGroups&InstanceId=i-1&GroupName.1=db",
    );
    let ip = "10.1.1.2".parse().unwrap();
    assert!(s.is_member_address(&key("db"), ip));
    assert!(!s.is_member_address(&key("web"), ip));
    ok(&mut s, "Action=DeleteSecurityGroup&GroupName=web");
    assert_eq!(
        err(&mut s, "Action=DeleteSecurityGroup&GroupName=db"),
        ErrorCode::GroupInUse
    );
}

/// The co-membership index the overlap report reads equals what walking the members gives.
#[test]
fn co_groups_follow_registrations_and_group_changes() {
    let mut s = setup();
    ok(
        &mut s,
        "Action=CreateSecurityGroup&GroupName=app&GroupDescription=a",
    );
    let co = |s: &State, g: &str| -> Vec<String> {
        s.co_groups(&key(g)).map(|k| k.name.to_string()).collect()
    };
    let walked = |s: &State, g: &str| -> Vec<String> {
        let mut v: Vec<String> = s
            .members(&key(g))
            .flat_map(|i| i.spec.groups.iter().map(|k| k.name.to_string()))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let check = |s: &State| {
        for g in ["web", "db", "app"] {
            assert_eq!(co(s, g), walked(s, g), "co-groups of {g}");
        }
    };
    ok(
        &mut s,
        "Action=RegisterInstance&InstanceId=i-1&Interface=tap1&IpAddress.1=10.1.1.2&GroupName.1=web&GroupName.2=db",
    );
    ok(
        &mut s,
        "Action=RegisterInstance&InstanceId=i-2&Interface=tap2&IpAddress.1=10.1.1.3&GroupName.1=db&GroupName.2=app",
    );
    check(&s);
    assert_eq!(co(&s, "db"), ["app", "db", "web"]);
    ok(
        &mut s,
        "Action=ModifyInstanceGroups&InstanceId=i-1&GroupName.1=db",
    );
    check(&s);
    assert_eq!(co(&s, "db"), ["app", "db"]);
    assert!(co(&s, "web").is_empty());
    ok(&mut s, "Action=DeregisterInstance&InstanceId=i-2");
    check(&s);
    assert_eq!(co(&s, "db"), ["db"]);
    ok(&mut s, "Action=DeregisterInstance&InstanceId=i-1");
    check(&s);
    assert!(s.co_groups.is_empty());
}

#[test]
fn grants_fill_shards_lowest_first() {
    let mut s = setup();
    let n = super::SHARD_SIZE + 3;
    for p in 1..=n {
        ok(
            &mut s,
            &format!(
                "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort={p}&ToPort={p}&CidrIp=0.0.0.0/0"
            ),
        );
    }
    let shards = |s: &State| -> Vec<u32> {
        s.group(&key("web"))
            .unwrap()
            .grants
            .values()
            .map(|g| g.shard)
            .collect()
    };
    let sh = shards(&s);
    assert_eq!(
        sh.iter().filter(|x| **x == 0).count(),
        super::SHARD_SIZE as usize
    );
    assert_eq!(sh.iter().filter(|x| **x == 1).count(), 3);
    // A hole in shard 0 is filled before shard 1 grows.
    ok(
        &mut s,
        "Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=5&ToPort=5&CidrIp=0.0.0.0/0",
    );
    ok(
        &mut s,
        "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=udp&FromPort=5&ToPort=5&CidrIp=0.0.0.0/0",
    );
    let gid = s.find_grant(&key("web"), &match action("Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=udp&FromPort=5&ToPort=5&CidrIp=0.0.0.0/0") {
        Action::AuthorizeSecurityGroupIngress { permission, .. } => permission,
        _ => unreachable!(),
    }).unwrap();
    assert_eq!(s.group(&key("web")).unwrap().grants[&gid].shard, 0);
}
