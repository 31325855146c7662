//! The plan: every kernel object secgroupd wants in its table, keyed so that a change to
//! the desired state maps to a handful of keys.

use crate::state::{GrantId, GroupNum, InstanceNum};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// IP family of a match or a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    V4,
    V6,
}

/// Netfilter hooks secgroupd attaches base chains to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    Forward,
    Output,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Forward => "forward",
            Hook::Output => "output",
        }
    }
}

/// A base chain's hook, priority and policy. secgroupd's base chains always accept by
/// policy: traffic that is not for a registered interface is none of its business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaseChain {
    pub hook: Hook,
    pub priority: i32,
}

/// Chains of secgroupd's table. Names are derived from numeric ids so that any group
/// name (255 printable characters) fits and nothing in a request reaches a kernel name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChainName {
    /// Base chain on the forward hook: traffic routed or bridged to an instance.
    Forward,
    /// Base chain on the output hook: traffic the host itself sends to an instance.
    Output,
    /// Regular chain: one rule per instance interface, jumping to the instance chain.
    Dispatch,
    /// One per group: its grants, shared by every member interface.
    Group(GroupNum),
    /// One per instance: jumps to its groups, then drop.
    Instance(InstanceNum),
    /// One per group: accepts traffic from its members, per family. Group-pair grants of
    /// other groups jump here, so that each such grant is still exactly one rule.
    Source(GroupNum),
}

impl ChainName {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hook_forward" => Some(ChainName::Forward),
            "hook_output" => Some(ChainName::Output),
            "dispatch" => Some(ChainName::Dispatch),
            _ => {
                if let Some(n) = s.strip_prefix("grp_") {
                    parse_num(n).map(ChainName::Group)
                } else if let Some(n) = s.strip_prefix("inst_") {
                    parse_num(n).map(ChainName::Instance)
                } else if let Some(n) = s.strip_prefix("src_") {
                    parse_num(n).map(ChainName::Source)
                } else {
                    None
                }
            }
        }
    }
}

impl fmt::Display for ChainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainName::Forward => f.write_str("hook_forward"),
            ChainName::Output => f.write_str("hook_output"),
            ChainName::Dispatch => f.write_str("dispatch"),
            ChainName::Group(n) => write!(f, "grp_{n}"),
            ChainName::Instance(n) => write!(f, "inst_{n}"),
            ChainName::Source(n) => write!(f, "src_{n}"),
        }
    }
}

/// Named sets of secgroupd's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetName {
    /// The protocols a group pair admits: tcp, udp, icmp, icmpv6.
    PairProtos,
    /// Addresses of the members of a group, per family.
    Members(IpFamily, GroupNum),
}

impl SetName {
    pub fn parse(s: &str) -> Option<Self> {
        if s == "pair_protos" {
            return Some(SetName::PairProtos);
        }
        if let Some(n) = s.strip_prefix("m4_") {
            return parse_num(n).map(|n| SetName::Members(IpFamily::V4, n));
        }
        if let Some(n) = s.strip_prefix("m6_") {
            return parse_num(n).map(|n| SetName::Members(IpFamily::V6, n));
        }
        None
    }
    pub fn key_type(self) -> SetKeyType {
        match self {
            SetName::PairProtos => SetKeyType::InetProto,
            SetName::Members(IpFamily::V4, _) => SetKeyType::Ipv4Addr,
            SetName::Members(IpFamily::V6, _) => SetKeyType::Ipv6Addr,
        }
    }
}

impl fmt::Display for SetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetName::PairProtos => f.write_str("pair_protos"),
            SetName::Members(IpFamily::V4, n) => write!(f, "m4_{n}"),
            SetName::Members(IpFamily::V6, n) => write!(f, "m6_{n}"),
        }
    }
}

/// Decimal without sign or leading zeros, so that a name maps to exactly one id.
fn parse_num(s: &str) -> Option<u32> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

/// Key types of sets, with the nftables datatype ids and key lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetKeyType {
    Ipv4Addr,
    Ipv6Addr,
    InetProto,
}

impl SetKeyType {
    /// nftables datatype id (`TYPE_IPADDR` = 7, `TYPE_IP6ADDR` = 8, `TYPE_INET_PROTOCOL` = 12).
    pub fn nft_type(self) -> u32 {
        match self {
            SetKeyType::Ipv4Addr => 7,
            SetKeyType::Ipv6Addr => 8,
            SetKeyType::InetProto => 12,
        }
    }
    pub fn key_len(self) -> u32 {
        match self {
            SetKeyType::Ipv4Addr => 4,
            SetKeyType::Ipv6Addr => 16,
            SetKeyType::InetProto => 1,
        }
    }
    pub fn nft_name(self) -> &'static str {
        match self {
            SetKeyType::Ipv4Addr => "ipv4_addr",
            SetKeyType::Ipv6Addr => "ipv6_addr",
            SetKeyType::InetProto => "inet_proto",
        }
    }
}

/// One element of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Elem {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Proto(u8),
}

impl Elem {
    /// The key bytes as the kernel stores them (network order).
    pub fn key_bytes(&self) -> Vec<u8> {
        match self {
            Elem::V4(a) => a.octets().to_vec(),
            Elem::V6(a) => a.octets().to_vec(),
            Elem::Proto(p) => vec![*p],
        }
    }
    /// The inverse of [`Elem::key_bytes`] for a set of the given key type.
    pub fn from_key_bytes(t: SetKeyType, b: &[u8]) -> Option<Elem> {
        match t {
            SetKeyType::Ipv4Addr => <[u8; 4]>::try_from(b).ok().map(|o| Elem::V4(o.into())),
            SetKeyType::Ipv6Addr => <[u8; 16]>::try_from(b).ok().map(|o| Elem::V6(o.into())),
            SetKeyType::InetProto => (b.len() == 1).then(|| Elem::Proto(b[0])),
        }
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Elem::V4(a) => a.fmt(f),
            Elem::V6(a) => a.fmt(f),
            Elem::Proto(p) => match p {
                1 => f.write_str("icmp"),
                6 => f.write_str("tcp"),
                17 => f.write_str("udp"),
                58 => f.write_str("ipv6-icmp"),
                n => write!(f, "{n}"),
            },
        }
    }
}

/// Conntrack states, as bits of `ct state`.
pub mod ct_state {
    pub const INVALID: u32 = 1;
    pub const ESTABLISHED: u32 = 2;
    pub const RELATED: u32 = 4;
    pub const NEW: u32 = 8;
}

/// One condition of a rule. Each lowers to a short, fixed sequence of kernel expressions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// `meta nfproto ipv4|ipv6`: needed before any network-header match in an inet table.
    NfProto(IpFamily),
    /// `meta l4proto N`.
    L4Proto(u8),
    /// `meta l4proto @set`.
    L4ProtoIn(SetName),
    /// `ip saddr NET` / `ip6 saddr NET` (prefix match; never /0).
    Saddr(IpNet),
    /// `ip saddr @set` / `ip6 saddr @set`.
    SaddrIn(IpFamily, SetName),
    /// `th dport FROM-TO` (after an `L4Proto` of tcp or udp).
    Dport { from: u16, to: u16 },
    /// `icmp type T` / `icmpv6 type T` (after an `L4Proto` of icmp or icmpv6).
    IcmpType(u8),
    /// `icmp code C` / `icmpv6 code C`.
    IcmpCode(u8),
    /// `oifname "NAME"`.
    Oifname(String),
    /// `ct state` has any of the bits of [`ct_state`].
    CtState(u32),
}

/// What a rule does when all its matches hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Jump(ChainName),
}

/// Identity of a rule within its chain. The order of the variants is the order of the
/// rules in the chain: head rules first, tail rules (the final drop) last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    Head(u8),
    Dispatch(InstanceNum),
    Jump(GroupNum),
    Grant(GrantId),
    Tail(u8),
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleId::Head(n) => write!(f, "head {n}"),
            RuleId::Dispatch(n) => write!(f, "instance {n}"),
            RuleId::Jump(n) => write!(f, "group {n}"),
            RuleId::Grant(n) => write!(f, "grant {n}"),
            RuleId::Tail(n) => write!(f, "tail {n}"),
        }
    }
}

/// A rule: matches, an optional counter, a verdict, and a comment that identifies it in
/// the kernel. The comment ends with a fingerprint of the rule's content, so a rule found
/// by its comment is known to be exactly this rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleSpec {
    pub chain: ChainName,
    pub id: RuleId,
    pub matches: Vec<Match>,
    pub counter: bool,
    pub verdict: Verdict,
    pub comment: String,
}

/// A chain and, for base chains, where it hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainSpec {
    pub name: ChainName,
    pub base: Option<BaseChain>,
}

/// A named set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SetSpec {
    pub name: SetName,
    pub key: SetKeyType,
}

/// Key of an object in the plan. The derived order sorts chains and sets before the
/// elements and rules that live in them, and rules of a chain in their chain order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Chain(ChainName),
    Set(SetName),
    Elem(SetName, Elem),
    Rule(ChainName, RuleId),
}

/// An object of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Obj {
    Chain(ChainSpec),
    Set(SetSpec),
    Elem,
    Rule(RuleSpec),
}

/// Everything secgroupd wants in its table (named by `table`, family inet).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub table: String,
    pub objs: BTreeMap<Key, Obj>,
}

impl Plan {
    pub fn chains(&self) -> impl Iterator<Item = &ChainSpec> {
        self.objs.values().filter_map(|o| match o {
            Obj::Chain(c) => Some(c),
            _ => None,
        })
    }
    pub fn sets(&self) -> impl Iterator<Item = &SetSpec> {
        self.objs.values().filter_map(|o| match o {
            Obj::Set(s) => Some(s),
            _ => None,
        })
    }
    /// Elements of one set, in order.
    pub fn elems(&self, set: SetName) -> impl Iterator<Item = Elem> + '_ {
        let lo = Key::Elem(set, Elem::V4(Ipv4Addr::UNSPECIFIED));
        self.objs
            .range(lo..)
            .take_while(move |(k, _)| matches!(k, Key::Elem(s, _) if *s == set))
            .filter_map(|(k, _)| match k {
                Key::Elem(_, e) => Some(*e),
                _ => None,
            })
    }
    /// Rules of one chain, in chain order.
    pub fn rules(&self, chain: ChainName) -> impl Iterator<Item = &RuleSpec> + '_ {
        let lo = Key::Rule(chain, RuleId::Head(0));
        self.objs
            .range(lo..)
            .take_while(move |(k, _)| matches!(k, Key::Rule(c, _) if *c == chain))
            .filter_map(|(_, o)| match o {
                Obj::Rule(r) => Some(r),
                _ => None,
            })
    }
    pub fn rule(&self, chain: ChainName, id: RuleId) -> Option<&RuleSpec> {
        match self.objs.get(&Key::Rule(chain, id)) {
            Some(Obj::Rule(r)) => Some(r),
            _ => None,
        }
    }
    /// The first rule after `id` in `chain`, in chain order.
    pub fn next_rule(&self, chain: ChainName, id: RuleId) -> Option<&RuleSpec> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.objs
            .range((Excluded(Key::Rule(chain, id)), Unbounded))
            .next()
            .and_then(|(k, o)| match (k, o) {
                (Key::Rule(c, _), Obj::Rule(r)) if *c == chain => Some(r),
                _ => None,
            })
    }
    pub fn rule_count(&self) -> usize {
        self.objs
            .keys()
            .filter(|k| matches!(k, Key::Rule(..)))
            .count()
    }
}
