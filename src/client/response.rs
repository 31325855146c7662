//! The daemon's answers, read back from XML into plain data.

use super::permission;
use super::views::{self, ExplanationView, OverlapView, StatusView};
use super::xml::{self, Element};
use std::fmt;

/// A parsed answer: success data, or the EC2 errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Ok(Success),
    Err(Failure),
}

/// A `<{Action}Response>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Success {
    /// The action the answer is for, from the root element's name.
    pub action: String,
    pub request_id: String,
    pub data: SuccessData,
}

/// What a success carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuccessData {
    /// `<return>…</return>` of a mutation.
    Return(bool),
    /// `securityGroupInfo` of DescribeSecurityGroups.
    Groups(Vec<GroupView>),
    /// `<return>true</return>` of a revoke with `overlappingPermissions` (a revoke that
    /// overlaps nothing answers a plain [`SuccessData::Return`]).
    Revoked(Vec<OverlapView>),
    /// GetStatus figures.
    Status(StatusView),
    /// ExplainPacket's answer.
    Explained(ExplanationView),
    /// None of the above.
    Other,
}

/// An EC2 error document, with the HTTP status it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub request_id: String,
    /// Never empty.
    pub errors: Vec<ErrorDetail>,
}

/// One `<Error>`: the EC2 code string and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl Failure {
    /// The error codes, in order.
    pub fn codes(&self) -> Vec<&str> {
        self.errors.iter().map(|e| e.code.as_str()).collect()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.code, e.message)?;
        }
        write!(f, " (HTTP {}, request {})", self.status, self.request_id)
    }
}

/// A security group as DescribeSecurityGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub owner: String,
    pub name: String,
    pub description: String,
    pub permissions: Vec<PermissionView>,
}

/// One permission of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionView {
    /// A protocol and port range (ICMP: type and code, -1 for any) from a CIDR block.
    Cidr {
        protocol: String,
        from: i32,
        to: i32,
        cidr: String,
    },
    /// All TCP, UDP and ICMP from the members of a group: the three items EC2 2007 sends
    /// for a user/group pair, folded back into one.
    AllFromGroup { owner: String, group: String },
    /// A group-pair item that is not part of such a triple.
    Pair {
        protocol: String,
        from: i32,
        to: i32,
        owner: String,
        group: String,
    },
}

/// The three items EC2 2007 shows for one user/group pair.
const PAIR_TRIPLE: [(&str, i32, i32); 3] = [("tcp", 0, 65535), ("udp", 0, 65535), ("icmp", -1, -1)];

/// Reads an answer; `status` is the HTTP status it came with.
pub(crate) fn parse(status: u16, body: &str) -> Result<Response, String> {
    let root = xml::parse(body)?;
    if root.name == "Response" {
        let errors: Vec<ErrorDetail> = root
            .child("Errors")
            .into_iter()
            .flat_map(|e| e.children_named("Error"))
            .map(|e| ErrorDetail {
                code: e.child_text("Code").unwrap_or("").to_string(),
                message: e.child_text("Message").unwrap_or("").to_string(),
            })
            .collect();
        if errors.is_empty() {
            return Err("an error document without errors".into());
        }
        return Ok(Response::Err(Failure {
            status,
            request_id: root.child_text("RequestID").unwrap_or("").to_string(),
            errors,
        }));
    }
    let Some(action) = root.name.strip_suffix("Response") else {
        return Err(format!("unexpected root element <{}>", root.name));
    };
    if status != 200 {
        return Err(format!("a success document with HTTP status {status}"));
    }
    let data = if root.child("securityGroupInfo").is_some() {
        SuccessData::Groups(
            root.items("securityGroupInfo")
                .map(group)
                .collect::<Result<_, _>>()?,
        )
    } else if root.child("overlappingPermissions").is_some() {
        SuccessData::Revoked(views::overlaps(&root)?)
    } else if root.child("admittedBy").is_some() {
        SuccessData::Explained(views::explanation(&root)?)
    } else if root.child("generation").is_some() {
        SuccessData::Status(views::status(&root)?)
    } else if let Some(r) = root.child_text("return") {
        SuccessData::Return(r == "true")
    } else {
        SuccessData::Other
    };
    Ok(Response::Ok(Success {
        action: action.to_string(),
        request_id: root.child_text("requestId").unwrap_or("").to_string(),
        data,
    }))
}

fn group(item: &Element) -> Result<GroupView, String> {
    let text = |name: &str| item.child_text(name).unwrap_or("").to_string();
    let mut permissions = Vec::new();
    for p in item.items("ipPermissions") {
        permissions.extend(permission::entries(p)?);
    }
    Ok(GroupView {
        owner: text("ownerId"),
        name: text("groupName"),
        description: item
            .child("groupDescription")
            .map(|d| d.text.clone())
            .unwrap_or_default(),
        permissions: collapse_pairs(permissions),
    })
}

/// Folds each complete tcp/udp/icmp triple of one source group into `AllFromGroup`, at the
/// place of its first item.
fn collapse_pairs(perms: Vec<PermissionView>) -> Vec<PermissionView> {
    let triple_part = |p: &PermissionView| match p {
        PermissionView::Pair {
            protocol,
            from,
            to,
            owner,
            group,
        } => PAIR_TRIPLE
            .iter()
            .position(|(pr, f, t)| pr == protocol && f == from && t == to)
            .map(|i| (i, owner.clone(), group.clone())),
        _ => None,
    };
    let complete = |owner: &str, group: &str| {
        (0..3).all(|i| {
            perms
                .iter()
                .filter_map(triple_part)
                .any(|(j, o, g)| j == i && o == owner && g == group)
        })
    };
    let mut folded: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for p in &perms {
        match triple_part(p) {
            Some((_, owner, group)) if complete(&owner, &group) => {
                let key = (owner, group);
                if !folded.contains(&key) {
                    out.push(PermissionView::AllFromGroup {
                        owner: key.0.clone(),
                        group: key.1.clone(),
                    });
                    folded.push(key);
                }
            }
            _ => out.push(p.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(protocol: &str, from: i32, to: i32, group: &str) -> PermissionView {
        PermissionView::Pair {
            protocol: protocol.into(),
            from,
            to,
            owner: "111111111111".into(),
            group: group.into(),
        }
    }

    #[test]
    fn complete_triples_fold_and_partial_ones_stay() {
        let cidr = PermissionView::Cidr {
            protocol: "tcp".into(),
            from: 22,
            to: 22,
            cidr: "10.0.0.0/8".into(),
        };
        let perms = vec![
            cidr.clone(),
            pair("tcp", 0, 65535, "a"),
            pair("tcp", 0, 65535, "b"),
            pair("udp", 0, 65535, "a"),
            pair("icmp", -1, -1, "a"),
            pair("udp", 0, 65535, "b"),
        ];
        assert_eq!(
            collapse_pairs(perms),
            vec![
                cidr,
                PermissionView::AllFromGroup {
                    owner: "111111111111".into(),
                    group: "a".into()
                },
                pair("tcp", 0, 65535, "b"),
                pair("udp", 0, 65535, "b"),
            ]
        );
    }

    #[test]
    fn reads_what_the_server_renders() {
        use crate::control::xml::render_reply;
        use crate::model::*;
        let owner = OwnerId::parse("o", "123456789012").unwrap();
        let g = GroupInfo {
            owner: owner.clone(),
            name: GroupName::parse("g", "web").unwrap(),
            description: GroupDescription::parse("d", " a <b> & \"c\" ").unwrap(),
            permissions: vec![
                IpPermission::GroupPair {
                    source: GroupKey {
                        owner: owner.clone(),
                        name: GroupName::parse("g", "lb").unwrap(),
                    },
                },
                IpPermission::Cidr {
                    traffic: Traffic::Icmp {
                        icmp: IcmpSpec::ANY,
                    },
                    cidr: Cidr::parse("c", "0.0.0.0/0").unwrap(),
                },
            ],
        };
        let xml = render_reply("DescribeSecurityGroups", "rid", &Reply::Groups(vec![g]));
        let Response::Ok(ok) = parse(200, &xml).unwrap() else {
            panic!("not a success")
        };
        assert_eq!(ok.action, "DescribeSecurityGroups");
        assert_eq!(ok.request_id, "rid");
        assert_eq!(
            ok.data,
            SuccessData::Groups(vec![GroupView {
                owner: "123456789012".into(),
                name: "web".into(),
                description: " a <b> & \"c\" ".into(),
                permissions: vec![
                    PermissionView::AllFromGroup {
                        owner: "123456789012".into(),
                        group: "lb".into()
                    },
                    PermissionView::Cidr {
                        protocol: "icmp".into(),
                        from: -1,
                        to: -1,
                        cidr: "0.0.0.0/0".into()
                    },
                ],
            }])
        );
    }

    #[test]
    fn reads_errors_and_returns() {
        use crate::control::xml::{render_errors, render_reply};
        use crate::model::{ApiError, Reply};
        let e = render_errors(&[ApiError::missing("A"), ApiError::invalid("B", "x")], "r1");
        let Response::Err(f) = parse(400, &e).unwrap() else {
            panic!()
        };
        assert_eq!(f.codes(), ["MissingParameter", "InvalidParameterValue"]);
        assert_eq!(f.request_id, "r1");
        assert_eq!(f.status, 400);
        assert_eq!(
            f.to_string(),
            "MissingParameter: The request must contain the parameter A; \
             InvalidParameterValue: Invalid value for parameter B: x (HTTP 400, request r1)"
        );
        let ok = render_reply("DeleteSecurityGroup", "r2", &Reply::Done);
        assert_eq!(
            parse(200, &ok).unwrap(),
            Response::Ok(Success {
                action: "DeleteSecurityGroup".into(),
                request_id: "r2".into(),
                data: SuccessData::Return(true),
            })
        );
        assert!(parse(500, &ok).is_err());
        assert!(parse(200, "<Other/>").is_err());
        assert!(parse(400, "<Response><Errors/></Response>").is_err());
    }
}
