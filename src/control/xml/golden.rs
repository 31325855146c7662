//! Golden documents for the answers of revoke (overlaps), GetStatus and ExplainPacket:
//! their element names and order are a public contract, so any change must show up here.

use super::*;
use crate::model::{
    Cidr, GroupName, IcmpSpec, InstanceId, InterfaceName, OwnerId, PortRange, Traffic,
};

const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
const OWNER: &str = "123456789012";

fn key(name: &str) -> GroupKey {
    GroupKey {
        owner: OwnerId::parse("o", OWNER).unwrap(),
        name: GroupName::parse("n", name).unwrap(),
    }
}

fn tcp(from: u16, to: u16, cidr: &str) -> IpPermission {
    IpPermission::Cidr {
        traffic: Traffic::Tcp {
            ports: PortRange::new(from, to).unwrap(),
        },
        cidr: Cidr::parse("c", cidr).unwrap(),
    }
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse("i", s).unwrap()
}

/// The `ipPermission` of a CIDR permission: Describe's item, under another name.
fn cidr_xml(proto: &str, from: i32, to: i32, cidr: &str) -> String {
    format!(
        "<ipPermission><ipProtocol>{proto}</ipProtocol><fromPort>{from}</fromPort>\
         <toPort>{to}</toPort><groups/><ipRanges><item><cidrIp>{cidr}</cidrIp></item>\
         </ipRanges></ipPermission>"
    )
}

/// The `ipPermission` of a group pair: one element, protocol `all`.
fn pair_xml(group: &str) -> String {
    format!(
        "<ipPermission><ipProtocol>all</ipProtocol><fromPort>-1</fromPort>\
         <toPort>-1</toPort><groups><item><userId>{OWNER}</userId>\
         <groupName>{group}</groupName></item></groups><ipRanges/></ipPermission>"
    )
}

#[test]
fn a_revoke_without_overlaps_is_a_plain_return() {
    let xml = render_reply(
        "RevokeSecurityGroupIngress",
        "r1",
        &Reply::Revoked { overlaps: vec![] },
    );
    assert_eq!(
        xml,
        format!(
            "{DECL}<RevokeSecurityGroupIngressResponse xmlns=\"{NAMESPACE}\">\
             <requestId>r1</requestId><return>true</return>\
             </RevokeSecurityGroupIngressResponse>"
        )
    );
}

#[test]
fn a_revoke_lists_the_permissions_that_still_admit() {
    let overlaps = vec![
        Overlap {
            group: key("web"),
            permission: tcp(0, 1023, "0.0.0.0/0"),
            full: true,
            instances: vec![id("i-1"), id("i-2")],
        },
        Overlap {
            group: key("ops"),
            permission: IpPermission::GroupPair { source: key("lb") },
            full: false,
            instances: vec![],
        },
    ];
    let xml = render_reply(
        "RevokeSecurityGroupIngress",
        "r2",
        &Reply::Revoked { overlaps },
    );
    let expected = format!(
        "{DECL}<RevokeSecurityGroupIngressResponse xmlns=\"{NAMESPACE}\">\
         <requestId>r2</requestId><return>true</return><overlappingPermissions>\
         <item><groupName>web</groupName><ownerId>{OWNER}</ownerId><full>true</full>{}\
         <instancesSet><item><instanceId>i-1</instanceId></item>\
         <item><instanceId>i-2</instanceId></item></instancesSet></item>\
         <item><groupName>ops</groupName><ownerId>{OWNER}</ownerId><full>false</full>{}\
         <instancesSet/></item>\
         </overlappingPermissions></RevokeSecurityGroupIngressResponse>",
        cidr_xml("tcp", 0, 1023, "0.0.0.0/0"),
        pair_xml("lb"),
    );
    assert_eq!(xml, expected);
}

#[test]
fn status_has_one_element_per_figure() {
    let s = StatusInfo {
        generation: 42,
        groups: 3,
        permissions: 7,
        instances: 2,
        remote_members: 5,
        rules: 31,
        set_elements: 9,
        last_commit_actions: 4,
        last_commit_ops: 12,
        last_commit_micros: 2500,
        last_store_micros: 1800,
        last_kernel_micros: 650,
        table: "secgroupd".into(),
        mode: "forward".into(),
        established_on_revoke: "keep & <log>".into(),
    };
    let xml = render_reply("GetStatus", "r3", &Reply::Status(s));
    assert_eq!(
        xml,
        format!(
            "{DECL}<GetStatusResponse xmlns=\"{NAMESPACE}\"><requestId>r3</requestId>\
             <generation>42</generation><groups>3</groups><permissions>7</permissions>\
             <instances>2</instances><remoteMembers>5</remoteMembers><rules>31</rules>\
             <setElements>9</setElements><lastCommitActions>4</lastCommitActions>\
             <lastCommitOps>12</lastCommitOps><lastCommitMicros>2500</lastCommitMicros>\
             <lastStoreMicros>1800</lastStoreMicros><lastKernelMicros>650</lastKernelMicros>\
             <table>secgroupd</table><mode>forward</mode>\
             <establishedOnRevoke>keep &amp; &lt;log&gt;</establishedOnRevoke>\
             </GetStatusResponse>"
        )
    );
}

#[test]
fn an_explanation_lists_what_admits_first_the_one_that_accepts() {
    let e = Explanation {
        instance: id("i-1"),
        interface: InterfaceName::parse("if", "tap1").unwrap(),
        admitted_by: vec![
            (key("web"), tcp(80, 80, "0.0.0.0/0")),
            (
                key("db"),
                IpPermission::Cidr {
                    traffic: Traffic::Icmp {
                        icmp: IcmpSpec::ANY,
                    },
                    cidr: Cidr::parse("c", "10.0.0.0/8").unwrap(),
                },
            ),
            (key("db"), IpPermission::GroupPair { source: key("web") }),
        ],
    };
    let xml = render_reply("ExplainPacket", "r4", &Reply::Explained(e));
    let expected = format!(
        "{DECL}<ExplainPacketResponse xmlns=\"{NAMESPACE}\"><requestId>r4</requestId>\
         <instanceId>i-1</instanceId><interface>tap1</interface><admitted>true</admitted>\
         <admittedBy>\
         <item><groupName>web</groupName><ownerId>{OWNER}</ownerId>{}</item>\
         <item><groupName>db</groupName><ownerId>{OWNER}</ownerId>{}</item>\
         <item><groupName>db</groupName><ownerId>{OWNER}</ownerId>{}</item>\
         </admittedBy></ExplainPacketResponse>",
        cidr_xml("tcp", 80, 80, "0.0.0.0/0"),
        cidr_xml("icmp", -1, -1, "10.0.0.0/8"),
        pair_xml("web"),
    );
    assert_eq!(xml, expected);
}

#[test]
fn a_packet_nothing_admits_is_not_admitted() {
    let e = Explanation {
        instance: id("i-2"),
        interface: InterfaceName::parse("if", "tap2").unwrap(),
        admitted_by: vec![],
    };
    let xml = render_reply("ExplainPacket", "r5", &Reply::Explained(e));
    assert_eq!(
        xml,
        format!(
            "{DECL}<ExplainPacketResponse xmlns=\"{NAMESPACE}\"><requestId>r5</requestId>\
             <instanceId>i-2</instanceId><interface>tap2</interface>\
             <admitted>false</admitted><admittedBy/></ExplainPacketResponse>"
        )
    );
}
