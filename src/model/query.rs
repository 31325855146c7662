//! EC2 Query protocol: `application/x-www-form-urlencoded` parameters to a typed [`Action`].
//!
//! Parsing reports every problem it finds, not only the first, each with its EC2 code.

use super::action::{Action, InstanceSpec, PacketProbe};
use super::error::{ApiError, ApiErrors, ErrorCode};
use super::names::{GroupDescription, GroupKey, GroupName, InstanceId, InterfaceName, OwnerId};
use super::permission::{Cidr, IcmpSpec, IpPermission, PortRange, Protocol, Traffic};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Parameters every EC2 client may send; accepted and ignored.
pub const COMMON_PARAMETERS: &[&str] = &[
    "Action",
    "OwnerId",
    "Version",
    "AWSAccessKeyId",
    "SignatureVersion",
    "SignatureMethod",
    "Signature",
    "Timestamp",
    "Expires",
];

/// Most parameters one request may carry; more is `InvalidParameterValue`.
pub const MAX_PARAMETERS: usize = 2048;
/// Most items in one `.N` list.
pub const MAX_LIST_ITEMS: usize = 1000;

/// Decodes `a=b&c=d` (percent escapes, `+` for space). Names and values must be UTF-8.
pub fn decode_form(input: &[u8]) -> Result<Vec<(String, String)>, ApiErrors> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, pair) in input.split(|b| *b == b'&').enumerate() {
        if pair.is_empty() {
            continue;
        }
        if out.len() >= MAX_PARAMETERS {
            return Err(ApiError::invalid(
                "(request)",
                format!("more than {MAX_PARAMETERS} parameters"),
            )
            .into());
        }
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(p) => (&pair[..p], &pair[p + 1..]),
            None => (pair, &b""[..]),
        };
        let name = match percent_decode(name) {
            Ok(n) => n,
            Err(why) => {
                errors.push(ApiError::invalid(
                    &format!("#{} (name)", i + 1),
                    format!("parameter name {why}"),
                ));
                continue;
            }
        };
        match percent_decode(value) {
            Ok(v) => out.push((name, v)),
            Err(why) => errors.push(ApiError::invalid(&name, why)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiErrors(errors))
    }
}

fn percent_decode(s: &[u8]) -> Result<String, &'static str> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    s.get(i + 1).and_then(|b| hex(*b)),
                    s.get(i + 2).and_then(|b| hex(*b)),
                ) {
                    (Some(h), Some(l)) => bytes.push((h * 16 + l) as u8),
                    _ => return Err("has a malformed percent escape"),
                }
                i += 2;
            }
            b => bytes.push(b),
        }
        i += 1;
    }
    String::from_utf8(bytes).map_err(|_| "is not valid UTF-8")
}

/// Parameters of one request, with the bookkeeping needed to report unknown names.
struct Params<'a> {
    map: BTreeMap<&'a str, &'a str>,
    errors: Vec<ApiError>,
}

impl<'a> Params<'a> {
    fn new(pairs: &'a [(String, String)]) -> Self {
        let mut map = BTreeMap::new();
        let mut errors = Vec::new();
        let mut reported = BTreeSet::new();
        for (k, v) in pairs {
            if map.insert(k.as_str(), v.as_str()).is_some() && reported.insert(k.as_str()) {
                errors.push(ApiError::invalid(
                    k,
                    "the parameter is given more than once",
                ));
            }
        }
        Params { map, errors }
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.map.get(name).copied()
    }

    fn required(&mut self, name: &str) -> Option<&'a str> {
        let v = self.get(name);
        if v.is_none() {
            self.errors.push(ApiError::missing(name));
        }
        v
    }

    fn check<T>(&mut self, r: Result<T, ApiError>) -> Option<T> {
        r.map_err(|e| self.errors.push(e)).ok()
    }

    /// The values of `prefix.1`, `prefix.2`, … in order; gaps and bad indexes are errors.
    fn list(&mut self, prefix: &str) -> Vec<(String, &'a str)> {
        let mut items: BTreeMap<usize, (String, &'a str)> = BTreeMap::new();
        let dotted = format!("{prefix}.");
        for (k, v) in &self.map {
            let Some(idx) = k.strip_prefix(&dotted) else {
                continue;
            };
            if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
                continue; // not an index: reported as an unknown parameter
            }
            match idx.parse::<usize>() {
                Ok(n) if n >= 1 && !idx.starts_with('0') && n <= MAX_LIST_ITEMS => {
                    items.insert(n, (k.to_string(), *v));
                }
                _ => self.errors.push(ApiError::invalid(
                    k,
                    format!("the index must be a number from 1 to {MAX_LIST_ITEMS} without leading zeros"),
                )),
            }
        }
        for (expected, n) in (1..).zip(items.keys()) {
            if *n != expected {
                self.errors.push(ApiError::invalid(
                    &format!("{prefix}.{n}"),
                    format!(
                        "{prefix}.{expected} is missing: indexes must count up from 1 without gaps"
                    ),
                ));
                break;
            }
        }
        items.into_values().collect()
    }

    /// Reports every parameter that is neither common, nor named, nor in a `.N` family.
    fn reject_unknown(&mut self, known: &[&str], lists: &[&str]) {
        for k in self.map.keys() {
            let in_list = lists.iter().any(|l| {
                k.strip_prefix(l)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|idx| !idx.is_empty() && idx.bytes().all(|b| b.is_ascii_digit()))
            });
            if !COMMON_PARAMETERS.contains(k) && !known.contains(k) && !in_list {
                self.errors.push(ApiError::new(
                    ErrorCode::UnknownParameter,
                    format!("The parameter {k} is not recognized by this action"),
                ));
            }
        }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, ApiErrors> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ if !self.errors.is_empty() => Err(ApiErrors(self.errors)),
            _ => Err(ApiError::internal("validation produced neither a value nor an error").into()),
        }
    }
}

/// Parses one request into an action. `default_owner` applies when `OwnerId` is absent.
pub fn parse_action(
    pairs: &[(String, String)],
    default_owner: &OwnerId,
) -> Result<Action, ApiErrors> {
    let mut p = Params::new(pairs);
    let Some(action) = p.get("Action") else {
        p.errors.insert(0, ApiError::missing("Action"));
        return Err(ApiErrors(p.errors));
    };
    let owner = match p.get("OwnerId") {
        Some(s) => p.check(OwnerId::parse("OwnerId", s)),
        None => Some(default_owner.clone()),
    };
    let group = |p: &mut Params, owner: &Option<OwnerId>| {
        let name = p.required("GroupName");
        let name = name.and_then(|n| p.check(GroupName::parse("GroupName", n)));
        Some(GroupKey {
            owner: owner.clone()?,
            name: name?,
        })
    };
    let value = match action {
        "CreateSecurityGroup" => {
            p.reject_unknown(&["GroupName", "GroupDescription"], &[]);
            let g = group(&mut p, &owner);
            let d = p.required("GroupDescription");
            let d = d.and_then(|d| p.check(GroupDescription::parse("GroupDescription", d)));
            g.zip(d)
                .map(|(group, description)| Action::CreateSecurityGroup { group, description })
        }
        "DeleteSecurityGroup" => {
            p.reject_unknown(&["GroupName"], &[]);
            group(&mut p, &owner).map(|group| Action::DeleteSecurityGroup { group })
        }
        "AuthorizeSecurityGroupIngress" | "RevokeSecurityGroupIngress" => {
            p.reject_unknown(PERMISSION_PARAMETERS, &[]);
            let g = group(&mut p, &owner);
            let perm = parse_permission(&mut p);
            g.zip(perm).map(|(group, permission)| {
                if action == "AuthorizeSecurityGroupIngress" {
                    Action::AuthorizeSecurityGroupIngress { group, permission }
                } else {
                    Action::RevokeSecurityGroupIngress { group, permission }
                }
            })
        }
        "DescribeSecurityGroups" => {
            p.reject_unknown(&[], &["GroupName"]);
            let names: Vec<_> = p
                .list("GroupName")
                .into_iter()
                .filter_map(|(k, v)| p.check(GroupName::parse(&k, v)))
                .collect();
            owner
                .clone()
                .map(|owner| Action::DescribeSecurityGroups { owner, names })
        }
        "RegisterInstance" => {
            p.reject_unknown(&["InstanceId", "Interface"], &["IpAddress", "GroupName"]);
            parse_instance(&mut p, &owner).map(|instance| Action::RegisterInstance { instance })
        }
        "AddGroupMembers" | "RemoveGroupMembers" => {
            p.reject_unknown(&["GroupName"], &["IpAddress"]);
            let g = group(&mut p, &owner);
            let addresses = parse_addresses(&mut p);
            g.map(|group| {
                if action == "AddGroupMembers" {
                    Action::AddGroupMembers { group, addresses }
                } else {
                    Action::RemoveGroupMembers { group, addresses }
                }
            })
        }
        "ModifyInstanceGroups" => {
            p.reject_unknown(&["InstanceId"], &["GroupName"]);
            let id = p.required("InstanceId");
            let id = id.and_then(|i| p.check(InstanceId::parse("InstanceId", i)));
            let groups = parse_group_list(&mut p, &owner);
            id.map(|id| Action::ModifyInstanceGroups { id, groups })
        }
        "GetStatus" => {
            p.reject_unknown(&[], &[]);
            Some(Action::GetStatus)
        }
        "ExplainPacket" => {
            p.reject_unknown(
                &[
                    "InstanceId",
                    "SourceIp",
                    "IpProtocol",
                    "Port",
                    "IcmpType",
                    "IcmpCode",
                ],
                &[],
            );
            parse_probe(&mut p).map(|probe| Action::ExplainPacket { probe })
        }
        "DeregisterInstance" => {
            p.reject_unknown(&["InstanceId"], &[]);
            let id = p.required("InstanceId");
            id.and_then(|i| p.check(InstanceId::parse("InstanceId", i)))
                .map(|id| Action::DeregisterInstance { id })
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidAction,
                format!("The action {other:?} is not valid for this web service"),
            )
            .into());
        }
    };
    p.finish(value)
}

const CIDR_PARAMETERS: &[&str] = &["IpProtocol", "FromPort", "ToPort", "CidrIp"];
const PAIR_PARAMETERS: &[&str] = &["SourceSecurityGroupName", "SourceSecurityGroupOwnerId"];
const PERMISSION_PARAMETERS: &[&str] = &[
    "GroupName",
    "IpProtocol",
    "FromPort",
    "ToPort",
    "CidrIp",
    "SourceSecurityGroupName",
    "SourceSecurityGroupOwnerId",
];

/// Either the CIDR kind or the user/group-pair kind, never both, never part of one.
fn parse_permission(p: &mut Params) -> Option<IpPermission> {
    let has_cidr = CIDR_PARAMETERS.iter().any(|k| p.get(k).is_some());
    let has_pair = PAIR_PARAMETERS.iter().any(|k| p.get(k).is_some());
    match (has_cidr, has_pair) {
        (true, true) => {
            p.errors.push(ApiError::new(
                ErrorCode::InvalidParameterCombination,
                "IpProtocol, FromPort, ToPort and CidrIp cannot be combined with \
                 SourceSecurityGroupName and SourceSecurityGroupOwnerId",
            ));
            None
        }
        (false, false) => {
            p.errors.push(ApiError::new(
                ErrorCode::MissingParameter,
                "The request must contain either IpProtocol, FromPort, ToPort and CidrIp, \
                 or SourceSecurityGroupName and SourceSecurityGroupOwnerId",
            ));
            None
        }
        (false, true) => {
            let name = p.required("SourceSecurityGroupName");
            let owner = p.required("SourceSecurityGroupOwnerId");
            let name = name.and_then(|n| p.check(GroupName::parse("SourceSecurityGroupName", n)));
            let owner =
                owner.and_then(|o| p.check(OwnerId::parse("SourceSecurityGroupOwnerId", o)));
            Some(IpPermission::GroupPair {
                source: GroupKey {
                    owner: owner?,
                    name: name?,
                },
            })
        }
        (true, false) => {
            let proto = p.required("IpProtocol");
            let from = p.required("FromPort");
            let to = p.required("ToPort");
            let cidr = p.required("CidrIp");
            let proto = proto.and_then(|s| {
                p.check(Protocol::parse(s).ok_or_else(|| {
                    ApiError::invalid(
                        "IpProtocol",
                        format!("{s:?} is not one of tcp, udp, icmp, icmpv6"),
                    )
                }))
            });
            let from = from.and_then(|s| p.check(parse_int("FromPort", s)));
            let to = to.and_then(|s| p.check(parse_int("ToPort", s)));
            let cidr = cidr.and_then(|s| p.check(Cidr::parse("CidrIp", s)));
            let traffic = p.check(traffic(proto?, from?, to?))?;
            let cidr = cidr?;
            let family_ok = match traffic {
                Traffic::Icmp { .. } => cidr.is_ipv4(),
                Traffic::Icmpv6 { .. } => !cidr.is_ipv4(),
                _ => true,
            };
            if !family_ok {
                p.errors.push(ApiError::invalid(
                    "IpProtocol",
                    format!(
                        "{} cannot be used with the {} CIDR {}",
                        traffic.protocol(),
                        if cidr.is_ipv4() { "IPv4" } else { "IPv6" },
                        cidr
                    ),
                ));
                return None;
            }
            Some(IpPermission::Cidr { traffic, cidr })
        }
    }
}

/// Port numbers as EC2 sends them: optional `-`, decimal digits, nothing else, from -1
/// (the ICMP wildcard) to 65535. Protocol-specific bounds are checked afterwards.
fn parse_int(param: &str, s: &str) -> Result<i64, ApiError> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let bad = || ApiError::invalid(param, format!("{s:?} is not an integer from -1 to 65535"));
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let v: i64 = s.parse().map_err(|_| bad())?;
    if !(-1..=65535).contains(&v) {
        return Err(bad());
    }
    Ok(v)
}

fn traffic(proto: Protocol, from: i64, to: i64) -> Result<Traffic, ApiError> {
    match proto {
        Protocol::Tcp | Protocol::Udp => {
            let port = |param: &str, v: i64| {
                u16::try_from(v).map_err(|_| {
                    ApiError::invalid(param, format!("{v} is not a port from 0 to 65535"))
                })
            };
            let (f, t) = (port("FromPort", from)?, port("ToPort", to)?);
            let ports = PortRange::new(f, t).ok_or_else(|| {
                ApiError::invalid(
                    "FromPort",
                    format!("FromPort {f} is greater than ToPort {t}"),
                )
            })?;
            Ok(if proto == Protocol::Tcp {
                Traffic::Tcp { ports }
            } else {
                Traffic::Udp { ports }
            })
        }
        Protocol::Icmp | Protocol::Icmpv6 => {
            let field = |param: &str, what: &str, v: i64| match v {
                -1 => Ok(None),
                0..=255 => Ok(Some(v as u8)),
                _ => Err(ApiError::invalid(
                    param,
                    format!("{v} is not an ICMP {what} (0 to 255, or -1 for all)"),
                )),
            };
            let t = field("FromPort", "type", from)?;
            let c = field("ToPort", "code", to)?;
            let icmp = IcmpSpec::new(t, c).ok_or_else(|| {
                ApiError::invalid("ToPort", "ICMP type -1 (all types) requires code -1")
            })?;
            Ok(if proto == Protocol::Icmp {
                Traffic::Icmp { icmp }
            } else {
                Traffic::Icmpv6 { icmp }
            })
        }
    }
}

fn parse_instance(p: &mut Params, owner: &Option<OwnerId>) -> Option<InstanceSpec> {
    let id = p.required("InstanceId");
    let id = id.and_then(|s| p.check(InstanceId::parse("InstanceId", s)));
    let iface = p.required("Interface");
    let iface = iface.and_then(|s| p.check(InterfaceName::parse("Interface", s)));
    let addresses = parse_addresses(p);
    let groups = parse_group_list(p, owner);
    Some(InstanceSpec {
        id: id?,
        interface: iface?,
        addresses,
        groups,
    })
}

/// `IpAddress.N`: at least one, each a unicast address, none twice.
fn parse_addresses(p: &mut Params) -> Vec<IpAddr> {
    let addrs = p.list("IpAddress");
    if addrs.is_empty() {
        p.errors.push(ApiError::missing("IpAddress.1"));
    }
    let mut addresses = Vec::new();
    let mut seen = BTreeSet::new();
    for (k, v) in addrs {
        match parse_address(&k, v) {
            Ok(a) if !seen.insert(a) => p.errors.push(ApiError::invalid(
                &k,
                format!("{a} is listed more than once"),
            )),
            Ok(a) => addresses.push(a),
            Err(e) => p.errors.push(e),
        }
    }
    addresses
}

/// `GroupName.N` of the request's owner: at least one, none twice.
fn parse_group_list(p: &mut Params, owner: &Option<OwnerId>) -> Vec<GroupKey> {
    let names = p.list("GroupName");
    if names.is_empty() {
        p.errors.push(ApiError::missing("GroupName.1"));
    }
    let mut groups = Vec::new();
    for (k, v) in names {
        if let Some(name) = p.check(GroupName::parse(&k, v)) {
            if groups.iter().any(|g: &GroupKey| g.name == name) {
                p.errors.push(ApiError::invalid(
                    &k,
                    format!("{name} is listed more than once"),
                ));
            } else if let Some(owner) = owner {
                groups.push(GroupKey {
                    owner: owner.clone(),
                    name,
                });
            }
        }
    }
    groups
}

/// ExplainPacket: an instance, a source address, a protocol and its port or ICMP type.
fn parse_probe(p: &mut Params) -> Option<PacketProbe> {
    let id = p.required("InstanceId");
    let id = id.and_then(|i| p.check(InstanceId::parse("InstanceId", i)));
    let src = p.required("SourceIp");
    let src = src.and_then(|s| {
        p.check(
            s.parse::<IpAddr>()
                .map_err(|_| ApiError::invalid("SourceIp", format!("{s:?} is not an IP address"))),
        )
    });
    let proto = p.required("IpProtocol");
    let proto = proto.and_then(|s| {
        p.check(Protocol::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "IpProtocol",
                format!("{s:?} is not one of tcp, udp, icmp, icmpv6"),
            )
        }))
    })?;
    let small = |p: &mut Params, name: &str, max: i64| {
        p.get(name).and_then(|v| {
            let n = p.check(parse_int(name, v))?;
            p.check(
                u16::try_from(n)
                    .ok()
                    .filter(|n| i64::from(*n) <= max)
                    .ok_or_else(|| {
                        ApiError::invalid(name, format!("{n} is out of range 0 to {max}"))
                    }),
            )
        })
    };
    let (mut port, mut icmp_type, mut icmp_code) = (None, None, None);
    match proto {
        Protocol::Tcp | Protocol::Udp => {
            if p.get("Port").is_none() {
                p.errors.push(ApiError::missing("Port"));
            }
            port = small(p, "Port", 65535);
            for k in ["IcmpType", "IcmpCode"] {
                if p.get(k).is_some() {
                    p.errors.push(ApiError::new(
                        ErrorCode::InvalidParameterCombination,
                        format!("{k} cannot be used with {proto}"),
                    ));
                }
            }
        }
        Protocol::Icmp | Protocol::Icmpv6 => {
            if p.get("IcmpType").is_none() {
                p.errors.push(ApiError::missing("IcmpType"));
            }
            icmp_type = small(p, "IcmpType", 255).map(|v| v as u8);
            icmp_code = Some(small(p, "IcmpCode", 255).map_or(0, |v| v as u8));
            if p.get("Port").is_some() {
                p.errors.push(ApiError::new(
                    ErrorCode::InvalidParameterCombination,
                    format!("Port cannot be used with {proto}"),
                ));
            }
        }
    }
    Some(PacketProbe {
        instance: id?,
        source: src?,
        protocol: proto,
        port,
        icmp_type,
        icmp_code,
    })
}

/// A unicast host address of an instance.
fn parse_address(param: &str, s: &str) -> Result<IpAddr, ApiError> {
    let a: IpAddr = s
        .parse()
        .map_err(|_| ApiError::invalid(param, format!("{s:?} is not an IP address")))?;
    if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
        return Err(ApiError::invalid(
            param,
            format!("{a} cannot be an instance address"),
        ));
    }
    if let IpAddr::V4(v4) = a
        && v4.is_broadcast()
    {
        return Err(ApiError::invalid(
            param,
            format!("{a} cannot be an instance address"),
        ));
    }
    Ok(a)
}
