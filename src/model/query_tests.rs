//! Parsing and validation of Query requests: every error code, every kind of bad input.

use super::error::ErrorCode::{self, *};
use super::query::{decode_form, parse_action};
use super::*;

fn owner() -> OwnerId {
    OwnerId::parse("OwnerId", "000000000000").unwrap()
}

fn params(q: &str) -> Vec<(String, String)> {
    decode_form(q.as_bytes()).unwrap()
}

fn parse(q: &str) -> Result<Action, ApiErrors> {
    parse_action(&params(q), &owner())
}

fn codes(q: &str) -> Vec<ErrorCode> {
    parse(q).unwrap_err().codes()
}

fn group(name: &str) -> GroupKey {
    GroupKey {
        owner: owner(),
        name: GroupName::parse("GroupName", name).unwrap(),
    }
}

const AUTH: &str = "Action=AuthorizeSecurityGroupIngress&GroupName=web";

#[test]
fn the_issue_example_parses() {
    let a = parse("Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0").unwrap();
    assert_eq!(
        a,
        Action::RevokeSecurityGroupIngress {
            group: group("web"),
            permission: IpPermission::Cidr {
                traffic: Traffic::Tcp {
                    ports: PortRange::new(80, 80).unwrap()
                },
                cidr: Cidr::parse("CidrIp", "0.0.0.0/0").unwrap(),
            }
        }
    );
}

#[test]
fn form_decoding() {
    assert_eq!(
        params("a=b%20c&d=e+f&g=&h"),
        vec![
            ("a".into(), "b c".into()),
            ("d".into(), "e f".into()),
            ("g".into(), "".into()),
            ("h".into(), "".into())
        ]
    );
    assert_eq!(params("CidrIp=10.0.0.0%2F8")[0].1, "10.0.0.0/8");
    for bad in ["a=%zz", "a=%4", "a=%ff%fe", "%ff=1"] {
        let e = decode_form(bad.as_bytes()).unwrap_err();
        assert_eq!(e.codes(), vec![InvalidParameterValue], "{bad}");
    }
    assert!(decode_form(&[b'a', b'=', 0xff]).is_err());
}

#[test]
fn action_errors() {
    assert_eq!(codes("GroupName=web"), vec![MissingParameter]);
    assert_eq!(codes("Action=LaunchMissiles"), vec![InvalidAction]);
    assert_eq!(codes("Action=createsecuritygroup"), vec![InvalidAction]);
}

#[test]
fn common_parameters_are_ignored_and_unknown_ones_rejected() {
    let q = "Action=DeleteSecurityGroup&GroupName=web&Version=2007-03-01&AWSAccessKeyId=x\
             &SignatureVersion=2&SignatureMethod=HmacSHA256&Signature=abc&Timestamp=t&Expires=e";
    assert!(parse(q).is_ok());
    assert_eq!(
        codes("Action=DeleteSecurityGroup&GroupName=web&Colour=red"),
        vec![UnknownParameter]
    );
    // Names are case-sensitive.
    let mut c = codes("Action=DeleteSecurityGroup&groupname=web");
    c.sort();
    assert_eq!(c, vec![MissingParameter, UnknownParameter]);
    let e = parse("Action=DeleteSecurityGroup&GroupName=web&Colour=red").unwrap_err();
    assert!(e.0[0].message.contains("Colour"));
}

#[test]
fn every_problem_is_reported() {
    let e = parse(&format!(
        "{AUTH}&IpProtocol=tcpx&FromPort=x&ToPort=70000&CidrIp=10.0.0.1/8&Foo=1"
    ))
    .unwrap_err();
    let mut c = e.codes();
    c.sort();
    assert_eq!(
        c,
        vec![
            InvalidParameterValue,
            InvalidParameterValue,
            InvalidParameterValue,
            InvalidParameterValue,
            UnknownParameter
        ]
    );
}

#[test]
fn create_group() {
    let a = parse("Action=CreateSecurityGroup&GroupName=web&GroupDescription=Web+servers").unwrap();
    assert!(
        matches!(a, Action::CreateSecurityGroup { ref description, .. } if description.as_str() == "Web servers")
    );
    assert_eq!(
        codes("Action=CreateSecurityGroup&GroupName=web"),
        vec![MissingParameter]
    );
    assert_eq!(
        codes("Action=CreateSecurityGroup&GroupDescription=x"),
        vec![MissingParameter]
    );
    assert_eq!(
        codes(&format!(
            "Action=CreateSecurityGroup&GroupDescription=x&GroupName={}",
            "a".repeat(256)
        )),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes("Action=CreateSecurityGroup&GroupDescription=x&GroupName="),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes("Action=CreateSecurityGroup&GroupDescription=x&GroupName=+web"),
        vec![InvalidParameterValue]
    );
}

#[test]
fn owner_id_applies_and_is_validated() {
    let a = parse("Action=DeleteSecurityGroup&GroupName=web&OwnerId=123456789012").unwrap();
    assert!(
        matches!(a, Action::DeleteSecurityGroup { ref group } if group.owner.as_str() == "123456789012")
    );
    assert_eq!(
        codes("Action=DeleteSecurityGroup&GroupName=web&OwnerId=12"),
        vec![InvalidParameterValue]
    );
}

#[test]
fn cidr_kind_validation() {
    let ok = |q: &str| parse(&format!("{AUTH}&{q}")).unwrap();
    let bad = |q: &str| codes(&format!("{AUTH}&{q}"));
    ok("IpProtocol=tcp&FromPort=0&ToPort=65535&CidrIp=0.0.0.0/0");
    ok("IpProtocol=UDP&FromPort=53&ToPort=53&CidrIp=10.0.0.0/8");
    ok("IpProtocol=icmp&FromPort=-1&ToPort=-1&CidrIp=10.0.0.0/8");
    ok("IpProtocol=icmp&FromPort=8&ToPort=-1&CidrIp=10.0.0.0/8");
    ok("IpProtocol=icmp&FromPort=3&ToPort=4&CidrIp=10.0.0.0/8");
    ok("IpProtocol=tcp&FromPort=22&ToPort=22&CidrIp=2001:db8::/32");
    ok("IpProtocol=icmpv6&FromPort=128&ToPort=-1&CidrIp=::/0");
    assert_eq!(
        bad("IpProtocol=gre&FromPort=1&ToPort=1&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=90&ToPort=80&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=-1&ToPort=80&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=1&ToPort=65536&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=1&ToPort=99999999999999999999999&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=+1&ToPort=2&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=1.0&ToPort=2&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=&ToPort=2&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=icmp&FromPort=-1&ToPort=0&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=icmp&FromPort=256&ToPort=0&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=icmp&FromPort=-2&ToPort=0&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=icmp&FromPort=8&ToPort=0&CidrIp=::/0"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=icmpv6&FromPort=8&ToPort=0&CidrIp=10.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=1&ToPort=2&CidrIp=10.0.0.0/33"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=1&ToPort=2&CidrIp=10.0.0.0"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=1&ToPort=2&CidrIp=10.0.0.0/8+"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=1&ToPort=2&CidrIp=010.0.0.0/8"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        bad("IpProtocol=tcp&FromPort=1&ToPort=2&CidrIp=example.com"),
        vec![InvalidParameterValue]
    );
}

#[test]
fn host_bits_name_the_meant_network() {
    let e = parse(&format!(
        "{AUTH}&IpProtocol=tcp&FromPort=1&ToPort=2&CidrIp=10.1.2.3/8"
    ))
    .unwrap_err();
    assert_eq!(e.codes(), vec![InvalidParameterValue]);
    assert!(e.0[0].message.contains("10.0.0.0/8"), "{}", e.0[0].message);
    let e = parse(&format!(
        "{AUTH}&IpProtocol=tcp&FromPort=1&ToPort=2&CidrIp=10.1.2.3"
    ))
    .unwrap_err();
    assert!(e.0[0].message.contains("10.1.2.3/32"), "{}", e.0[0].message);
}

#[test]
fn tuples_and_kinds() {
    assert_eq!(codes(AUTH), vec![MissingParameter]);
    let mut c = codes(&format!("{AUTH}&IpProtocol=tcp&FromPort=80"));
    c.sort();
    assert_eq!(c, vec![MissingParameter, MissingParameter]);
    assert_eq!(
        codes(&format!("{AUTH}&SourceSecurityGroupName=db")),
        vec![MissingParameter]
    );
    assert_eq!(
        codes(&format!(
            "{AUTH}&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0&SourceSecurityGroupName=db&SourceSecurityGroupOwnerId=000000000000"
        )),
        vec![InvalidParameterCombination]
    );
    assert_eq!(
        codes(&format!(
            "{AUTH}&CidrIp=0.0.0.0/0&SourceSecurityGroupName=db"
        )),
        vec![InvalidParameterCombination]
    );
    let a = parse(&format!(
        "{AUTH}&SourceSecurityGroupName=db&SourceSecurityGroupOwnerId=123456789012"
    ))
    .unwrap();
    assert!(
        matches!(a, Action::AuthorizeSecurityGroupIngress { permission: IpPermission::GroupPair { ref source }, .. } if source.owner.as_str() == "123456789012" && source.name.as_str() == "db")
    );
    assert_eq!(
        codes(&format!(
            "{AUTH}&SourceSecurityGroupName=db&SourceSecurityGroupOwnerId=1"
        )),
        vec![InvalidParameterValue]
    );
}

#[test]
fn repeated_parameters() {
    let e = parse("Action=DeleteSecurityGroup&GroupName=a&GroupName=b").unwrap_err();
    assert_eq!(e.codes(), vec![InvalidParameterValue]);
    assert!(e.0[0].message.contains("more than once"));
}

#[test]
fn describe_lists() {
    let a = parse("Action=DescribeSecurityGroups").unwrap();
    assert!(matches!(a, Action::DescribeSecurityGroups { ref names, .. } if names.is_empty()));
    let a = parse("Action=DescribeSecurityGroups&GroupName.2=b&GroupName.1=a").unwrap();
    let Action::DescribeSecurityGroups { names, .. } = a else {
        panic!()
    };
    assert_eq!(
        names.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(
        codes("Action=DescribeSecurityGroups&GroupName.1=a&GroupName.3=c"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes("Action=DescribeSecurityGroups&GroupName.0=a"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes("Action=DescribeSecurityGroups&GroupName.01=a"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes("Action=DescribeSecurityGroups&GroupName.99999999999999999999=a"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes("Action=DescribeSecurityGroups&GroupName.x=a"),
        vec![UnknownParameter]
    );
    assert_eq!(
        codes("Action=DescribeSecurityGroups&GroupName=a"),
        vec![UnknownParameter]
    );
}

#[test]
fn register_instance() {
    let q = "Action=RegisterInstance&InstanceId=i-1&Interface=tap1&IpAddress.1=10.1.1.2&IpAddress.2=fd00::2&GroupName.1=web&GroupName.2=db";
    let Action::RegisterInstance { instance } = parse(q).unwrap() else {
        panic!()
    };
    assert_eq!(instance.interface.as_str(), "tap1");
    assert_eq!(instance.addresses.len(), 2);
    assert_eq!(instance.groups, vec![group("web"), group("db")]);

    let base = "Action=RegisterInstance&InstanceId=i-1&Interface=tap1&IpAddress.1=10.1.1.2&GroupName.1=web";
    assert_eq!(
        codes(&base.replace("InstanceId=i-1", "InstanceId=i%01")),
        vec![InvalidInstanceMalformedAlias]
    );
    assert_eq!(
        codes(&base.replace("Interface=tap1", "Interface=0123456789abcdef")),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes(&base.replace("Interface=tap1", "Interface=a%2Fb")),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes(&base.replace("Interface=tap1", "Interface=a:b")),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes(&base.replace("IpAddress.1=10.1.1.2", "IpAddress.1=10.1.1.256")),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes(&base.replace("IpAddress.1=10.1.1.2", "IpAddress.1=0.0.0.0")),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes(&base.replace("IpAddress.1=10.1.1.2", "IpAddress.2=10.1.1.2")),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes(&format!("{base}&IpAddress.2=10.1.1.2")),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes(&format!("{base}&GroupName.2=web")),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes(&base.replace("&GroupName.1=web", "")),
        vec![MissingParameter]
    );
    assert_eq!(
        codes(&base.replace("&Interface=tap1", "")),
        vec![MissingParameter]
    );
    assert_eq!(codes("Action=DeregisterInstance"), vec![MissingParameter]);
    assert_eq!(
        codes("Action=DeregisterInstance&InstanceId="),
        vec![InvalidInstanceMalformedAlias]
    );
}

#[allow(non_upper_case_globals)]
const InvalidInstanceMalformedAlias: ErrorCode = InstanceMalformed;

#[test]
fn error_code_strings_are_the_contract() {
    let all = [
        (MissingParameter, "MissingParameter", 400),
        (InvalidParameterValue, "InvalidParameterValue", 400),
        (UnknownParameter, "UnknownParameter", 400),
        (
            InvalidParameterCombination,
            "InvalidParameterCombination",
            400,
        ),
        (InvalidAction, "InvalidAction", 400),
        (GroupNotFound, "InvalidGroup.NotFound", 400),
        (GroupDuplicate, "InvalidGroup.Duplicate", 400),
        (GroupInUse, "InvalidGroup.InUse", 400),
        (PermissionDuplicate, "InvalidPermission.Duplicate", 400),
        (PermissionNotFound, "InvalidPermission.NotFound", 400),
        (InstanceNotFound, "InvalidInstanceID.NotFound", 400),
        (InstanceMalformed, "InvalidInstanceID.Malformed", 400),
        (InstanceDuplicate, "InvalidInstanceID.Duplicate", 400),
        (UnauthorizedOperation, "UnauthorizedOperation", 403),
        (InternalError, "InternalError", 500),
    ];
    for (c, s, status) in all {
        assert_eq!(c.as_str(), s);
        assert_eq!(c.http_status(), status, "{s}");
    }
}

#[test]
fn member_and_lifecycle_actions() {
    let a = parse("Action=AddGroupMembers&GroupName=web&IpAddress.1=10.5.0.1&IpAddress.2=fd00::5")
        .unwrap();
    assert!(matches!(a, Action::AddGroupMembers { ref addresses, .. } if addresses.len() == 2));
    assert!(matches!(
        parse("Action=RemoveGroupMembers&GroupName=web&IpAddress.1=10.5.0.1").unwrap(),
        Action::RemoveGroupMembers { .. }
    ));
    assert_eq!(
        codes("Action=AddGroupMembers&GroupName=web"),
        vec![MissingParameter]
    );
    assert_eq!(
        codes("Action=AddGroupMembers&GroupName=web&IpAddress.1=10.5.0.256"),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes("Action=AddGroupMembers&GroupName=web&IpAddress.1=10.5.0.1&IpAddress.2=10.5.0.1"),
        vec![InvalidParameterValue]
    );
    let a =
        parse("Action=ModifyInstanceGroups&InstanceId=i-1&GroupName.1=a&GroupName.2=b").unwrap();
    assert!(matches!(a, Action::ModifyInstanceGroups { ref groups, .. } if groups.len() == 2));
    assert_eq!(
        codes("Action=ModifyInstanceGroups&InstanceId=i-1"),
        vec![MissingParameter]
    );
    assert_eq!(parse("Action=GetStatus").unwrap(), Action::GetStatus);
    assert_eq!(codes("Action=GetStatus&Verbose=1"), vec![UnknownParameter]);
}

#[test]
fn explain_packet() {
    let a = parse("Action=ExplainPacket&InstanceId=i-1&SourceIp=10.9.0.2&IpProtocol=tcp&Port=80")
        .unwrap();
    let Action::ExplainPacket { probe } = a else {
        panic!()
    };
    assert_eq!(probe.port, Some(80));
    let a =
        parse("Action=ExplainPacket&InstanceId=i-1&SourceIp=10.9.0.2&IpProtocol=icmp&IcmpType=8")
            .unwrap();
    let Action::ExplainPacket { probe } = a else {
        panic!()
    };
    assert_eq!((probe.icmp_type, probe.icmp_code), (Some(8), Some(0)));
    let base = "Action=ExplainPacket&InstanceId=i-1&SourceIp=10.9.0.2";
    assert_eq!(
        codes(&format!("{base}&IpProtocol=tcp")),
        vec![MissingParameter]
    );
    assert_eq!(
        codes(&format!("{base}&IpProtocol=tcp&Port=70000")),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes(&format!("{base}&IpProtocol=tcp&Port=80&IcmpType=8")),
        vec![InvalidParameterCombination]
    );
    assert_eq!(
        codes(&format!("{base}&IpProtocol=icmp&IcmpType=300")),
        vec![InvalidParameterValue]
    );
    assert_eq!(
        codes("Action=ExplainPacket&InstanceId=i-1&SourceIp=x&IpProtocol=tcp&Port=1"),
        vec![InvalidParameterValue]
    );
}
