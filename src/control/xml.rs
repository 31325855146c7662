//! The XML answers of EC2 API 2007-03-01.
//!
//! Written with quick-xml's writer so that every value (descriptions above all, which may
//! hold `<`, `&` and quotes) is escaped by construction rather than by care.

use crate::model::{
    ApiError, Cidr, Explanation, GroupInfo, GroupKey, IpPermission, Overlap, Reply, StatusInfo,
    Traffic,
};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use std::io;

/// The namespace of EC2 API 2007-03-01 answers.
pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2007-03-01";

/// What EC2 2007 answered for the "all TCP, UDP and ICMP" of a user/group pair.
const PAIR_TRAFFIC: [(&str, i32, i32); 3] =
    [("tcp", 0, 65535), ("udp", 0, 65535), ("icmp", -1, -1)];

type W = Writer<Vec<u8>>;

/// `<{action}Response>` for a successful action, after its `requestId`:
/// - for [`Reply::Done`], `<return>true</return>`;
/// - for [`Reply::Groups`], the `securityGroupInfo` list;
/// - for [`Reply::Revoked`], `<return>true</return>`, then `overlappingPermissions` if
///   any permission still admits some of the revoked traffic;
/// - for [`Reply::Status`], one element per figure (`generation`, `groups`, …);
/// - for [`Reply::Explained`], `instanceId`, `interface`, `admitted`, `admittedBy`.
pub fn render_reply(action: &str, request_id: &str, reply: &Reply) -> String {
    document(|w| {
        w.create_element(format!("{action}Response"))
            .with_attribute(("xmlns", NAMESPACE))
            .write_inner_content(|w| {
                text(w, "requestId", request_id)?;
                match reply {
                    Reply::Done => text(w, "return", "true"),
                    Reply::Groups(groups) => list(w, "securityGroupInfo", groups, group),
                    Reply::Revoked { overlaps } => {
                        text(w, "return", "true")?;
                        if overlaps.is_empty() {
                            return Ok(());
                        }
                        list(w, "overlappingPermissions", overlaps, overlap)
                    }
                    Reply::Status(s) => status(w, s),
                    Reply::Explained(e) => explanation(w, e),
                }
            })?;
        Ok(())
    })
}

/// The EC2 error document: one `<Error>` per error, in order.
pub fn render_errors(errors: &[ApiError], request_id: &str) -> String {
    document(|w| {
        w.create_element("Response").write_inner_content(|w| {
            list(w, "Errors", errors, |w, e| {
                w.create_element("Error").write_inner_content(|w| {
                    text(w, "Code", e.code.as_str())?;
                    text(w, "Message", &e.message)
                })?;
                Ok(())
            })?;
            text(w, "RequestID", request_id)
        })?;
        Ok(())
    })
}

/// The XML declaration, a newline, then what `body` writes.
fn document(body: impl FnOnce(&mut W) -> io::Result<()>) -> String {
    let mut w = Writer::new(Vec::new());
    let written = w
        .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .and_then(|()| {
            w.get_mut().push(b'\n');
            body(&mut w)
        });
    // Writing into a Vec cannot fail, and everything written is valid UTF-8.
    written.expect("writing XML into memory");
    String::from_utf8(w.into_inner()).expect("XML is written from UTF-8 strings")
}

/// `<name>escaped value</name>`.
fn text(w: &mut W, name: &str, value: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

/// `<name><item>…</item>…</name>`, or `<name/>` when empty, as EC2 writes lists.
fn list<T>(
    w: &mut W,
    name: &str,
    items: &[T],
    mut item: impl FnMut(&mut W, &T) -> io::Result<()>,
) -> io::Result<()> {
    if items.is_empty() {
        w.create_element(name).write_empty()?;
        return Ok(());
    }
    w.create_element(name).write_inner_content(|w| {
        for i in items {
            item(w, i)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn group(w: &mut W, g: &GroupInfo) -> io::Result<()> {
    w.create_element("item").write_inner_content(|w| {
        text(w, "ownerId", g.owner.as_str())?;
        text(w, "groupName", g.name.as_str())?;
        text(w, "groupDescription", g.description.as_str())?;
        let items: Vec<PermissionItem> = g.permissions.iter().flat_map(permission_items).collect();
        list(w, "ipPermissions", &items, permission_item)
    })?;
    Ok(())
}

/// One `ipPermissions/item`: a protocol and range with either group pairs or CIDR ranges.
struct PermissionItem<'a> {
    protocol: &'a str,
    from: i32,
    to: i32,
    pair: Option<(&'a str, &'a str)>,
    cidr: Option<String>,
}

fn cidr_item<'a>(traffic: &'a Traffic, cidr: &Cidr) -> PermissionItem<'a> {
    let (from, to) = traffic.from_to();
    PermissionItem {
        protocol: traffic.protocol().as_str(),
        from,
        to,
        pair: None,
        cidr: Some(cidr.to_string()),
    }
}

/// A CIDR permission is one item; a group pair is the three items EC2 2007 showed.
fn permission_items(p: &IpPermission) -> Vec<PermissionItem<'_>> {
    match p {
        IpPermission::Cidr { traffic, cidr } => vec![cidr_item(traffic, cidr)],
        IpPermission::GroupPair { source } => PAIR_TRAFFIC
            .iter()
            .map(|&(protocol, from, to)| PermissionItem {
                protocol,
                from,
                to,
                pair: Some((source.owner.as_str(), source.name.as_str())),
                cidr: None,
            })
            .collect(),
    }
}

/// `<name>` holding one permission as a single Describe-style item: a CIDR permission as
/// Describe shows it, a group pair as protocol `all`, ports -1/-1, with its `groups/item`
/// (one element, where Describe shows EC2 2007's three).
fn ip_permission(w: &mut W, name: &str, p: &IpPermission) -> io::Result<()> {
    let item = match p {
        IpPermission::GroupPair { source } => PermissionItem {
            protocol: "all",
            from: -1,
            to: -1,
            pair: Some((source.owner.as_str(), source.name.as_str())),
            cidr: None,
        },
        IpPermission::Cidr { traffic, cidr } => cidr_item(traffic, cidr),
    };
    permission_element(w, name, &item)
}

/// `groupName` and `ownerId` of a group, as overlaps and explanations name it.
fn group_names(w: &mut W, g: &GroupKey) -> io::Result<()> {
    text(w, "groupName", g.name.as_str())?;
    text(w, "ownerId", g.owner.as_str())
}

/// One `overlappingPermissions/item`.
fn overlap(w: &mut W, o: &Overlap) -> io::Result<()> {
    w.create_element("item").write_inner_content(|w| {
        group_names(w, &o.group)?;
        text(w, "full", if o.full { "true" } else { "false" })?;
        ip_permission(w, "ipPermission", &o.permission)?;
        list(w, "instancesSet", &o.instances, |w, id| {
            w.create_element("item")
                .write_inner_content(|w| text(w, "instanceId", id.as_str()))?;
            Ok(())
        })
    })?;
    Ok(())
}

/// The GetStatus figures, one element each, in [`StatusInfo`]'s order.
fn status(w: &mut W, s: &StatusInfo) -> io::Result<()> {
    let numbers: [(&str, u64); 12] = [
        ("generation", s.generation),
        ("groups", s.groups as u64),
        ("permissions", s.permissions as u64),
        ("instances", s.instances as u64),
        ("remoteMembers", s.remote_members as u64),
        ("rules", s.rules as u64),
        ("setElements", s.set_elements as u64),
        ("lastCommitActions", s.last_commit_actions as u64),
        ("lastCommitOps", s.last_commit_ops as u64),
        ("lastCommitMicros", s.last_commit_micros),
        ("lastStoreMicros", s.last_store_micros),
        ("lastKernelMicros", s.last_kernel_micros),
    ];
    for (name, value) in numbers {
        text(w, name, &value.to_string())?;
    }
    text(w, "table", &s.table)?;
    text(w, "mode", &s.mode)?;
    text(w, "establishedOnRevoke", &s.established_on_revoke)
}

/// The ExplainPacket answer: the first `admittedBy` item is the permission that accepts.
fn explanation(w: &mut W, e: &Explanation) -> io::Result<()> {
    text(w, "instanceId", e.instance.as_str())?;
    text(w, "interface", e.interface.as_str())?;
    let admitted = !e.admitted_by.is_empty();
    text(w, "admitted", if admitted { "true" } else { "false" })?;
    list(w, "admittedBy", &e.admitted_by, |w, (group, permission)| {
        w.create_element("item").write_inner_content(|w| {
            group_names(w, group)?;
            ip_permission(w, "ipPermission", permission)
        })?;
        Ok(())
    })
}

fn permission_item(w: &mut W, p: &PermissionItem) -> io::Result<()> {
    permission_element(w, "item", p)
}

/// `<name>` with `ipProtocol`, `fromPort`, `toPort`, `groups`, `ipRanges`.
fn permission_element(w: &mut W, name: &str, p: &PermissionItem) -> io::Result<()> {
    w.create_element(name).write_inner_content(|w| {
        text(w, "ipProtocol", p.protocol)?;
        text(w, "fromPort", &p.from.to_string())?;
        text(w, "toPort", &p.to.to_string())?;
        let pairs: Vec<_> = p.pair.iter().collect();
        list(w, "groups", &pairs, |w, (user, group)| {
            w.create_element("item").write_inner_content(|w| {
                text(w, "userId", user)?;
                text(w, "groupName", group)
            })?;
            Ok(())
        })?;
        let ranges: Vec<_> = p.cidr.iter().collect();
        list(w, "ipRanges", &ranges, |w, cidr| {
            w.create_element("item")
                .write_inner_content(|w| text(w, "cidrIp", cidr))?;
            Ok(())
        })
    })?;
    Ok(())
}

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        ApiError, Cidr, ErrorCode, GroupDescription, GroupKey, GroupName, OwnerId, PortRange,
        Traffic,
    };

    const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

    fn owner(s: &str) -> OwnerId {
        OwnerId::parse("OwnerId", s).unwrap()
    }
    fn name(s: &str) -> GroupName {
        GroupName::parse("GroupName", s).unwrap()
    }

    #[test]
    fn success() {
        let xml = render_reply("CreateSecurityGroup", "req-1", &Reply::Done);
        assert_eq!(
            xml,
            format!(
                "{DECL}<CreateSecurityGroupResponse xmlns=\"{NAMESPACE}\">\
                 <requestId>req-1</requestId><return>true</return>\
                 </CreateSecurityGroupResponse>"
            )
        );
    }

    #[test]
    fn describe_with_both_permission_kinds() {
        let web = GroupInfo {
            owner: owner("123456789012"),
            name: name("web"),
            description: GroupDescription::parse("d", "Web servers").unwrap(),
            permissions: vec![
                IpPermission::Cidr {
                    traffic: Traffic::Tcp {
                        ports: PortRange::new(80, 81).unwrap(),
                    },
                    cidr: Cidr::parse("CidrIp", "10.0.0.0/8").unwrap(),
                },
                IpPermission::GroupPair {
                    source: GroupKey {
                        owner: owner("210987654321"),
                        name: name("lb"),
                    },
                },
            ],
        };
        let empty = GroupInfo {
            owner: owner("123456789012"),
            name: name("empty"),
            description: GroupDescription::parse("d", "").unwrap(),
            permissions: vec![],
        };
        let xml = render_reply(
            "DescribeSecurityGroups",
            "r2",
            &Reply::Groups(vec![web, empty]),
        );
        let pair = |proto: &str, from: i32, to: i32| {
            format!(
                "<item><ipProtocol>{proto}</ipProtocol><fromPort>{from}</fromPort>\
                 <toPort>{to}</toPort><groups><item><userId>210987654321</userId>\
                 <groupName>lb</groupName></item></groups><ipRanges/></item>"
            )
        };
        let expected = format!(
            "{DECL}<DescribeSecurityGroupsResponse xmlns=\"{NAMESPACE}\">\
             <requestId>r2</requestId><securityGroupInfo>\
             <item><ownerId>123456789012</ownerId><groupName>web</groupName>\
             <groupDescription>Web servers</groupDescription><ipPermissions>\
             <item><ipProtocol>tcp</ipProtocol><fromPort>80</fromPort><toPort>81</toPort>\
             <groups/><ipRanges><item><cidrIp>10.0.0.0/8</cidrIp></item></ipRanges></item>\
             {}{}{}\
             </ipPermissions></item>\
             <item><ownerId>123456789012</ownerId><groupName>empty</groupName>\
             <groupDescription></groupDescription><ipPermissions/></item>\
             </securityGroupInfo></DescribeSecurityGroupsResponse>",
            pair("tcp", 0, 65535),
            pair("udp", 0, 65535),
            pair("icmp", -1, -1),
        );
        assert_eq!(xml, expected);
    }

    #[test]
    fn describe_of_nothing_is_an_empty_list() {
        let xml = render_reply("DescribeSecurityGroups", "r", &Reply::Groups(vec![]));
        assert!(
            xml.ends_with(
                "<requestId>r</requestId><securityGroupInfo/></DescribeSecurityGroupsResponse>"
            ),
            "{xml}"
        );
    }

    #[test]
    fn icmp_wildcards_render_as_minus_one() {
        use crate::model::IcmpSpec;
        let g = GroupInfo {
            owner: owner("123456789012"),
            name: name("ping"),
            description: GroupDescription::parse("d", "p").unwrap(),
            permissions: vec![IpPermission::Cidr {
                traffic: Traffic::Icmp {
                    icmp: IcmpSpec::new(Some(8), None).unwrap(),
                },
                cidr: Cidr::parse("CidrIp", "0.0.0.0/0").unwrap(),
            }],
        };
        let xml = render_reply("DescribeSecurityGroups", "r", &Reply::Groups(vec![g]));
        assert!(
            xml.contains("<ipProtocol>icmp</ipProtocol><fromPort>8</fromPort><toPort>-1</toPort>"),
            "{xml}"
        );
    }

    #[test]
    fn several_errors() {
        let errors = [
            ApiError::new(
                ErrorCode::UnknownParameter,
                "The parameter Foo is not recognized",
            ),
            ApiError::missing("GroupDescription"),
        ];
        let xml = render_errors(&errors, "r3");
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Errors>\
                 <Error><Code>UnknownParameter</Code>\
                 <Message>The parameter Foo is not recognized</Message></Error>\
                 <Error><Code>MissingParameter</Code>\
                 <Message>The request must contain the parameter GroupDescription</Message></Error>\
                 </Errors><RequestID>r3</RequestID></Response>"
            )
        );
    }

    #[test]
    fn escapes_markup_in_descriptions_and_messages() {
        let g = GroupInfo {
            owner: owner("123456789012"),
            name: name("a&b"),
            description: GroupDescription::parse("d", "<web> & \"db\" 'x'").unwrap(),
            permissions: vec![],
        };
        let xml = render_reply("DescribeSecurityGroups", "r", &Reply::Groups(vec![g]));
        assert!(xml.contains("<groupName>a&amp;b</groupName>"), "{xml}");
        assert!(
            xml.contains(
                "<groupDescription>&lt;web&gt; &amp; &quot;db&quot; &apos;x&apos;</groupDescription>"
            ),
            "{xml}"
        );
        let e = render_errors(&[ApiError::invalid("GroupName", "\"<&>\"")], "r");
        assert!(
            e.contains(
                "<Message>Invalid value for parameter GroupName: &quot;&lt;&amp;&gt;&quot;</Message>"
            ),
            "{e}"
        );
    }
}
