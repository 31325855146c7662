//! What the server renders, the client reads back: overlaps, status and explanations.

use super::*;
use crate::client::response::{Response, SuccessData, parse};
use crate::control::xml::render_reply;
use crate::model::{
    Cidr, Explanation, GroupKey, GroupName, IcmpSpec, InstanceId, InterfaceName, IpPermission,
    Overlap, OwnerId, PortRange, Reply, StatusInfo, Traffic,
};

const OWNER: &str = "123456789012";
const OTHER: &str = "210987654321";

fn key(owner: &str, name: &str) -> GroupKey {
    GroupKey {
        owner: OwnerId::parse("o", owner).unwrap(),
        name: GroupName::parse("n", name).unwrap(),
    }
}

fn udp(from: u16, to: u16, cidr: &str) -> IpPermission {
    IpPermission::Cidr {
        traffic: Traffic::Udp {
            ports: PortRange::new(from, to).unwrap(),
        },
        cidr: Cidr::parse("c", cidr).unwrap(),
    }
}

fn data(action: &str, reply: &Reply) -> SuccessData {
    let xml = render_reply(action, "rid", reply);
    match parse(200, &xml).unwrap_or_else(|e| panic!("{e}: {xml}")) {
        Response::Ok(ok) => {
            assert_eq!(ok.action, action);
            assert_eq!(ok.request_id, "rid");
            ok.data
        }
        Response::Err(f) => panic!("{f}"),
    }
}

#[test]
fn overlaps_read_back() {
    let reply = Reply::Revoked {
        overlaps: vec![
            Overlap {
                group: key(OWNER, "web & co"),
                permission: udp(53, 53, "2001:db8::/32"),
                full: false,
                instances: vec![
                    InstanceId::parse("i", "i-1").unwrap(),
                    InstanceId::parse("i", "i-2").unwrap(),
                ],
            },
            Overlap {
                group: key(OTHER, "ops"),
                permission: IpPermission::GroupPair {
                    source: key(OWNER, "lb"),
                },
                full: true,
                instances: vec![],
            },
        ],
    };
    assert_eq!(
        data("RevokeSecurityGroupIngress", &reply),
        SuccessData::Revoked(vec![
            OverlapView {
                owner: OWNER.into(),
                group: "web & co".into(),
                full: false,
                permission: PermissionView::Cidr {
                    protocol: "udp".into(),
                    from: 53,
                    to: 53,
                    cidr: "2001:db8::/32".into(),
                },
                instances: vec!["i-1".into(), "i-2".into()],
            },
            OverlapView {
                owner: OTHER.into(),
                group: "ops".into(),
                full: true,
                permission: PermissionView::AllFromGroup {
                    owner: OWNER.into(),
                    group: "lb".into(),
                },
                instances: vec![],
            },
        ])
    );
    // No overlaps: the plain return every mutation answers.
    assert_eq!(
        data(
            "RevokeSecurityGroupIngress",
            &Reply::Revoked { overlaps: vec![] }
        ),
        SuccessData::Return(true)
    );
}

#[test]
fn status_reads_back() {
    let info = StatusInfo {
        generation: u64::MAX,
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
        established_on_revoke: "".into(),
    };
    assert_eq!(
        data("GetStatus", &Reply::Status(info)),
        SuccessData::Status(StatusView {
            generation: u64::MAX,
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
            established_on_revoke: "".into(),
        })
    );
}

#[test]
fn explanations_read_back() {
    let icmp = IpPermission::Cidr {
        traffic: Traffic::Icmpv6 {
            icmp: IcmpSpec::new(Some(128), None).unwrap(),
        },
        cidr: Cidr::parse("c", "::/0").unwrap(),
    };
    let e = Explanation {
        instance: InstanceId::parse("i", "i-1").unwrap(),
        interface: InterfaceName::parse("if", "tap1").unwrap(),
        admitted_by: vec![
            (key(OWNER, "web"), icmp),
            (
                key(OWNER, "db"),
                IpPermission::GroupPair {
                    source: key(OTHER, "web"),
                },
            ),
        ],
    };
    assert_eq!(
        data("ExplainPacket", &Reply::Explained(e.clone())),
        SuccessData::Explained(ExplanationView {
            instance: "i-1".into(),
            interface: "tap1".into(),
            admitted: true,
            admitted_by: vec![
                AdmitView {
                    owner: OWNER.into(),
                    group: "web".into(),
                    permission: PermissionView::Cidr {
                        protocol: "icmpv6".into(),
                        from: 128,
                        to: -1,
                        cidr: "::/0".into(),
                    },
                },
                AdmitView {
                    owner: OWNER.into(),
                    group: "db".into(),
                    permission: PermissionView::AllFromGroup {
                        owner: OTHER.into(),
                        group: "web".into(),
                    },
                },
            ],
        })
    );
    let nothing = Explanation {
        admitted_by: vec![],
        ..e
    };
    assert_eq!(
        data("ExplainPacket", &Reply::Explained(nothing)),
        SuccessData::Explained(ExplanationView {
            instance: "i-1".into(),
            interface: "tap1".into(),
            admitted: false,
            admitted_by: vec![],
        })
    );
}

#[test]
fn malformed_answers_are_errors_not_zeros() {
    let ns = "xmlns=\"http://ec2.amazonaws.com/doc/2007-03-01\"";
    for bad in [
        // A figure missing, or not a count.
        format!("<GetStatusResponse {ns}><generation>1</generation></GetStatusResponse>"),
        format!(
            "<GetStatusResponse {ns}><generation>-1</generation><groups>0</groups>\
             </GetStatusResponse>"
        ),
        // `admitted` contradicting the list.
        format!(
            "<ExplainPacketResponse {ns}><instanceId>i-1</instanceId>\
             <interface>t</interface><admitted>true</admitted><admittedBy/>\
             </ExplainPacketResponse>"
        ),
        // An overlap with two permissions in its one ipPermission, or a bad boolean.
        format!(
            "<RevokeSecurityGroupIngressResponse {ns}><return>true</return>\
             <overlappingPermissions><item><groupName>g</groupName><ownerId>o</ownerId>\
             <full>true</full><ipPermission><ipProtocol>tcp</ipProtocol>\
             <fromPort>1</fromPort><toPort>1</toPort><groups/><ipRanges>\
             <item><cidrIp>10.0.0.0/8</cidrIp></item><item><cidrIp>::/0</cidrIp></item>\
             </ipRanges></ipPermission><instancesSet/></item></overlappingPermissions>\
             </RevokeSecurityGroupIngressResponse>"
        ),
        format!(
            "<RevokeSecurityGroupIngressResponse {ns}><return>true</return>\
             <overlappingPermissions><item><groupName>g</groupName><ownerId>o</ownerId>\
             <full>yes</full></item></overlappingPermissions>\
             </RevokeSecurityGroupIngressResponse>"
        ),
    ] {
        assert!(parse(200, &bad).is_err(), "{bad}");
    }
}
