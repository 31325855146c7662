//! Ingress permissions with the semantics of EC2 API 2007-03-01.

use super::error::ApiError;
use super::names::GroupKey;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// An inclusive TCP/UDP destination port range, `from <= to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    from: u16,
    to: u16,
}

impl PortRange {
    pub fn new(from: u16, to: u16) -> Option<Self> {
        (from <= to).then_some(PortRange { from, to })
    }
    pub fn from(self) -> u16 {
        self.from
    }
    pub fn to(self) -> u16 {
        self.to
    }
    pub fn contains(self, port: u16) -> bool {
        (self.from..=self.to).contains(&port)
    }
    pub fn is_all(self) -> bool {
        self.from == 0 && self.to == u16::MAX
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// ICMP type and code; `None` is EC2's `-1` wildcard. A wildcard type implies a wildcard code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IcmpSpec {
    icmp_type: Option<u8>,
    code: Option<u8>,
}

impl IcmpSpec {
    pub const ANY: IcmpSpec = IcmpSpec {
        icmp_type: None,
        code: None,
    };
    pub fn new(icmp_type: Option<u8>, code: Option<u8>) -> Option<Self> {
        if icmp_type.is_none() && code.is_some() {
            return None;
        }
        Some(IcmpSpec { icmp_type, code })
    }
    pub fn icmp_type(self) -> Option<u8> {
        self.icmp_type
    }
    pub fn code(self) -> Option<u8> {
        self.code
    }
    /// EC2's rendering: `-1` for the wildcard.
    pub fn type_i32(self) -> i32 {
        self.icmp_type.map_or(-1, i32::from)
    }
    pub fn code_i32(self) -> i32 {
        self.code.map_or(-1, i32::from)
    }
    pub fn admits(self, t: u8, c: u8) -> bool {
        self.icmp_type.is_none_or(|x| x == t) && self.code.is_none_or(|x| x == c)
    }
}

/// IP protocols a CIDR permission may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "icmp" => Some(Protocol::Icmp),
            "icmpv6" => Some(Protocol::Icmpv6),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Icmpv6 => "icmpv6",
        }
    }
    /// The IP protocol number (`meta l4proto`).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Icmp => 1,
            Protocol::Icmpv6 => 58,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a CIDR permission admits: a protocol and its ports or ICMP type/code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum Traffic {
    Tcp { ports: PortRange },
    Udp { ports: PortRange },
    Icmp { icmp: IcmpSpec },
    Icmpv6 { icmp: IcmpSpec },
}

impl Traffic {
    pub fn protocol(self) -> Protocol {
        match self {
            Traffic::Tcp { .. } => Protocol::Tcp,
            Traffic::Udp { .. } => Protocol::Udp,
            Traffic::Icmp { .. } => Protocol::Icmp,
            Traffic::Icmpv6 { .. } => Protocol::Icmpv6,
        }
    }
    /// EC2's FromPort/ToPort for this traffic.
    pub fn from_to(self) -> (i32, i32) {
        match self {
            Traffic::Tcp { ports } | Traffic::Udp { ports } => {
                (i32::from(ports.from()), i32::from(ports.to()))
            }
            Traffic::Icmp { icmp } | Traffic::Icmpv6 { icmp } => (icmp.type_i32(), icmp.code_i32()),
        }
    }
}

/// A CIDR block with no host bits set, e.g. `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(IpNet);

impl Cidr {
    /// Parses and insists on canonical form; the error names the network the caller meant.
    pub fn parse(param: &str, s: &str) -> Result<Self, ApiError> {
        if s.trim() != s {
            return Err(ApiError::invalid(
                param,
                "leading or trailing whitespace is not allowed",
            ));
        }
        let net: IpNet = match s.parse() {
            Ok(n) => n,
            Err(_) => {
                if let Ok(addr) = s.parse::<IpAddr>() {
                    let len = if addr.is_ipv4() { 32 } else { 128 };
                    return Err(ApiError::invalid(
                        param,
                        format!(
                            "{s:?} is an address, not a CIDR block; did you mean {addr}/{len}?"
                        ),
                    ));
                }
                return Err(ApiError::invalid(
                    param,
                    format!("{s:?} is not a CIDR block such as 10.0.0.0/8"),
                ));
            }
        };
        if net.trunc() != net {
            return Err(ApiError::invalid(
                param,
                format!("{s} has host bits set; did you mean {}?", net.trunc()),
            ));
        }
        // ipnet accepts leading zeros ("010.0.0.0/8"), which other tools read as octal:
        // refuse any IPv4 spelling but the canonical one.
        if net.addr().is_ipv4() && net.to_string() != s {
            return Err(ApiError::invalid(
                param,
                format!("{s:?} is not in canonical form; did you mean {net}?"),
            ));
        }
        Ok(Cidr(net))
    }
    pub fn net(self) -> IpNet {
        self.0
    }
    pub fn is_ipv4(self) -> bool {
        matches!(self.0, IpNet::V4(_))
    }
    pub fn contains(self, addr: IpAddr) -> bool {
        self.0.contains(&addr)
    }
}

impl TryFrom<String> for Cidr {
    type Error = ApiError;
    fn try_from(s: String) -> Result<Self, ApiError> {
        Cidr::parse("CidrIp", &s)
    }
}
impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.0.to_string()
    }
}
impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One ingress permission, the unit that is granted and revoked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IpPermission {
    /// Traffic of one protocol and port range (or ICMP type/code) from a CIDR block.
    Cidr { traffic: Traffic, cidr: Cidr },
    /// All TCP, UDP and ICMP from the members of another security group.
    GroupPair { source: GroupKey },
}

impl fmt::Display for IpPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpPermission::Cidr { traffic, cidr } => match traffic {
                Traffic::Tcp { ports } | Traffic::Udp { ports } => {
                    write!(f, "{} {} from {}", traffic.protocol(), ports, cidr)
                }
                Traffic::Icmp { icmp } | Traffic::Icmpv6 { icmp } => write!(
                    f,
                    "{} type {} code {} from {}",
                    traffic.protocol(),
                    icmp.type_i32(),
                    icmp.code_i32(),
                    cidr
                ),
            },
            IpPermission::GroupPair { source } => write!(f, "all from group {source}"),
        }
    }
}
