//! The plan: every kernel object secgroupd wants in its tables, keyed so that a change to
//! the desired state maps to a handful of keys.
//!
//! secgroupd owns one `inet` table, and in bridged mode also one `bridge` table of the
//! same name. Every chain and set name below belongs to exactly one of the two
//! ([`ChainName::family`], [`SetName::family`]), so keys need no family of their own.

use crate::state::{GrantId, GroupNum, InstanceNum};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Table family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Inet,
    Bridge,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Bridge => "bridge",
        }
    }
}

/// IP family of a match or a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    V4,
    V6,
}

/// Netfilter hooks secgroupd attaches base chains to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    Prerouting,
    Forward,
    Output,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Forward => "forward",
            Hook::Output => "output",
        }
    }
    /// The kernel's hook number (`NF_INET_*`, equal to `NF_BR_*` for these three).
    pub fn number(self) -> u32 {
        match self {
            Hook::Prerouting => 0,
            Hook::Forward => 2,
            Hook::Output => 3,
        }
    }
}

/// A base chain's hook and priority. secgroupd's base chains always accept by policy:
/// traffic that is not for a registered interface is none of its business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaseChain {
    pub hook: Hook,
    pub priority: i32,
}

/// Chains. Names are derived from numeric ids so that any group name (255 printable
/// characters) fits and nothing in a request ever reaches a kernel name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChainName {
    /// inet, prerouting (routed mode): anti-spoofing, by input interface.
    Prerouting,
    /// inet, forward: established fast path, then dispatch to the instance chains.
    Forward,
    /// inet, output (routed mode): traffic the host itself sends to an instance.
    Output,
    /// inet: one per group, jumping to its shards.
    Group(GroupNum),
    /// inet: a shard of a group's grants, at most `state::SHARD_SIZE` rules.
    Shard(GroupNum, u32),
    /// inet: one per instance: jumps to its groups, then drop.
    Instance(InstanceNum),
    /// inet (routed mode): the source addresses an instance may send from.
    Spoof(InstanceNum),
    /// bridge, prerouting (bridged mode): anti-spoofing, by bridge port.
    BridgePrerouting,
    /// bridge, forward (bridged mode), ahead of br_netfilter: marks packets with the
    /// port they leave by, so that the inet chains can dispatch on it.
    BridgeForward,
    /// bridge (bridged mode): sets the port's mark.
    BridgeMark(InstanceNum),
    /// bridge (bridged mode): the source addresses an instance may send from.
    BridgeSpoof(InstanceNum),
}

impl ChainName {
    pub fn family(self) -> Family {
        match self {
            ChainName::BridgePrerouting
            | ChainName::BridgeForward
            | ChainName::BridgeMark(_)
            | ChainName::BridgeSpoof(_) => Family::Bridge,
            _ => Family::Inet,
        }
    }

    /// The chain of `family` called `s`, if it is a name secgroupd uses.
    pub fn parse(family: Family, s: &str) -> Option<Self> {
        let num = |prefix: &str| s.strip_prefix(prefix).and_then(parse_num);
        let c = match (family, s) {
            (Family::Inet, "hook_prerouting") => ChainName::Prerouting,
            (Family::Inet, "hook_forward") => ChainName::Forward,
            (Family::Inet, "hook_output") => ChainName::Output,
            (Family::Bridge, "hook_prerouting") => ChainName::BridgePrerouting,
            (Family::Bridge, "hook_forward") => ChainName::BridgeForward,
            (Family::Inet, _) => {
                if let Some(rest) = s.strip_prefix("grp_") {
                    match rest.split_once('_') {
                        Some((g, sh)) => ChainName::Shard(parse_num(g)?, parse_num(sh)?),
                        None => ChainName::Group(parse_num(rest)?),
                    }
                } else if let Some(n) = num("inst_") {
                    ChainName::Instance(n)
                } else {
                    ChainName::Spoof(num("spoof_")?)
                }
            }
            (Family::Bridge, _) => {
                if let Some(n) = num("mark_") {
                    ChainName::BridgeMark(n)
                } else {
                    ChainName::BridgeSpoof(num("spoof_")?)
                }
            }
        };
        Some(c)
    }
}

impl fmt::Display for ChainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainName::Prerouting | ChainName::BridgePrerouting => f.write_str("hook_prerouting"),
            ChainName::Forward | ChainName::BridgeForward => f.write_str("hook_forward"),
            ChainName::Output => f.write_str("hook_output"),
            ChainName::Group(n) => write!(f, "grp_{n}"),
            ChainName::Shard(n, s) => write!(f, "grp_{n}_{s}"),
            ChainName::Instance(n) => write!(f, "inst_{n}"),
            ChainName::Spoof(n) | ChainName::BridgeSpoof(n) => write!(f, "spoof_{n}"),
            ChainName::BridgeMark(n) => write!(f, "mark_{n}"),
        }
    }
}

/// Named sets and maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetName {
    /// inet: the protocols a group pair admits: tcp, udp, icmp, icmpv6.
    PairProtos,
    /// inet: addresses of the members (local and remote) of a group, per family.
    Members(IpFamily, GroupNum),
    /// inet (cut mode): conntrack marks of the CIDR grants that exist.
    Live,
    /// inet (cut mode): `mark . address` of each group-pair grant and each member address
    /// of its source group: a pair connection lives while its peer is still a member.
    LivePairs(IpFamily),
    /// inet map (routed mode): output interface → `jump inst_N`.
    DispatchOut,
    /// inet map (routed mode): input interface → `jump spoof_N`.
    SpoofIn,
    /// inet map (bridged mode): packet mark → `jump inst_N`.
    DispatchMark,
    /// bridge map: output port → `jump mark_N`.
    BridgePorts,
    /// bridge map: input port → `jump spoof_N`.
    BridgeSpoofIn,
}

impl SetName {
    pub fn family(self) -> Family {
        match self {
            SetName::BridgePorts | SetName::BridgeSpoofIn => Family::Bridge,
            _ => Family::Inet,
        }
    }

    pub fn parse(family: Family, s: &str) -> Option<Self> {
        let set = match (family, s) {
            (Family::Inet, "pair_protos") => SetName::PairProtos,
            (Family::Inet, "live") => SetName::Live,
            (Family::Inet, "live_pairs4") => SetName::LivePairs(IpFamily::V4),
            (Family::Inet, "live_pairs6") => SetName::LivePairs(IpFamily::V6),
            (Family::Inet, "dispatch_out") => SetName::DispatchOut,
            (Family::Inet, "spoof_in") => SetName::SpoofIn,
            (Family::Inet, "dispatch_mark") => SetName::DispatchMark,
            (Family::Bridge, "ports") => SetName::BridgePorts,
            (Family::Bridge, "spoof_in") => SetName::BridgeSpoofIn,
            (Family::Inet, _) => {
                if let Some(n) = s.strip_prefix("m4_") {
                    SetName::Members(IpFamily::V4, parse_num(n)?)
                } else {
                    SetName::Members(IpFamily::V6, parse_num(s.strip_prefix("m6_")?)?)
                }
            }
            _ => return None,
        };
        Some(set)
    }

    /// Key type and, for maps, data type.
    pub fn key_type(self) -> SetKeyType {
        match self {
            SetName::PairProtos => SetKeyType::InetProto,
            SetName::Members(IpFamily::V4, _) => SetKeyType::Ipv4Addr,
            SetName::Members(IpFamily::V6, _) => SetKeyType::Ipv6Addr,
            SetName::Live | SetName::DispatchMark => SetKeyType::Mark,
            SetName::LivePairs(IpFamily::V4) => SetKeyType::MarkIpv4,
            SetName::LivePairs(IpFamily::V6) => SetKeyType::MarkIpv6,
            SetName::DispatchOut
            | SetName::SpoofIn
            | SetName::BridgePorts
            | SetName::BridgeSpoofIn => SetKeyType::IfName,
        }
    }

    /// Whether this is a verdict map (elements carry `jump CHAIN`).
    pub fn is_verdict_map(self) -> bool {
        matches!(
            self,
            SetName::DispatchOut
                | SetName::SpoofIn
                | SetName::DispatchMark
                | SetName::BridgePorts
                | SetName::BridgeSpoofIn
        )
    }
}

impl fmt::Display for SetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetName::PairProtos => f.write_str("pair_protos"),
            SetName::Members(IpFamily::V4, n) => write!(f, "m4_{n}"),
            SetName::Members(IpFamily::V6, n) => write!(f, "m6_{n}"),
            SetName::Live => f.write_str("live"),
            SetName::LivePairs(IpFamily::V4) => f.write_str("live_pairs4"),
            SetName::LivePairs(IpFamily::V6) => f.write_str("live_pairs6"),
            SetName::DispatchOut => f.write_str("dispatch_out"),
            SetName::SpoofIn | SetName::BridgeSpoofIn => f.write_str("spoof_in"),
            SetName::DispatchMark => f.write_str("dispatch_mark"),
            SetName::BridgePorts => f.write_str("ports"),
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

/// Key types of sets and maps: nftables datatype ids, key lengths, concatenations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetKeyType {
    Ipv4Addr,
    Ipv6Addr,
    InetProto,
    /// `mark` (a conntrack or packet mark value).
    Mark,
    /// `ifname` (16 bytes, NUL padded).
    IfName,
    /// `mark . ipv4_addr`.
    MarkIpv4,
    /// `mark . ipv6_addr`.
    MarkIpv6,
}

/// Bits per datatype in a concatenated set's key type (nft's `TYPE_BITS`).
const CONCAT_TYPE_BITS: u32 = 6;

impl SetKeyType {
    /// nftables datatype id (`TYPE_IPADDR` = 7, `TYPE_IP6ADDR` = 8, `TYPE_INET_PROTOCOL`
    /// = 12, `TYPE_MARK` = 19, `TYPE_IFNAME` = 41; concatenations as nft encodes them).
    pub fn nft_type(self) -> u32 {
        match self {
            SetKeyType::Ipv4Addr => 7,
            SetKeyType::Ipv6Addr => 8,
            SetKeyType::InetProto => 12,
            SetKeyType::Mark => 19,
            SetKeyType::IfName => 41,
            SetKeyType::MarkIpv4 => (19 << CONCAT_TYPE_BITS) | 7,
            SetKeyType::MarkIpv6 => (19 << CONCAT_TYPE_BITS) | 8,
        }
    }
    /// Key length in bytes (fields of a concatenation are each padded to 4 bytes).
    pub fn key_len(self) -> u32 {
        match self.field_lens() {
            [one] => *one,
            fields => fields.iter().map(|l| l.div_ceil(4) * 4).sum(),
        }
    }
    /// Lengths of the fields of a concatenated key (one field for plain keys). Concatenated
    /// sets must declare them (`NFTA_SET_DESC_CONCAT`).
    pub fn field_lens(self) -> &'static [u32] {
        match self {
            SetKeyType::Ipv4Addr => &[4],
            SetKeyType::Ipv6Addr => &[16],
            SetKeyType::InetProto => &[1],
            SetKeyType::Mark => &[4],
            SetKeyType::IfName => &[16],
            SetKeyType::MarkIpv4 => &[4, 4],
            SetKeyType::MarkIpv6 => &[4, 16],
        }
    }
    pub fn nft_name(self) -> &'static str {
        match self {
            SetKeyType::Ipv4Addr => "ipv4_addr",
            SetKeyType::Ipv6Addr => "ipv6_addr",
            SetKeyType::InetProto => "inet_proto",
            SetKeyType::Mark => "mark",
            SetKeyType::IfName => "ifname",
            SetKeyType::MarkIpv4 => "mark . ipv4_addr",
            SetKeyType::MarkIpv6 => "mark . ipv6_addr",
        }
    }
}

/// One element of a set (or the key of a map element).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Elem {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Proto(u8),
    /// A conntrack or packet mark value (already shifted into its mask).
    Mark(u32),
    /// An interface name, NUL padded to IFNAMSIZ.
    IfName([u8; 16]),
    MarkV4(u32, Ipv4Addr),
    MarkV6(u32, Ipv6Addr),
}

impl Elem {
    /// An interface name element; `None` if the name does not fit IFNAMSIZ.
    pub fn ifname(name: &str) -> Option<Elem> {
        let mut b = [0u8; 16];
        if name.is_empty() || name.len() > 15 {
            return None;
        }
        b[..name.len()].copy_from_slice(name.as_bytes());
        Some(Elem::IfName(b))
    }

    /// The key bytes as the kernel stores them: addresses in network order, marks in host
    /// order (the kernel's `meta mark`/`ct mark` registers hold host-order u32), each
    /// concatenation field padded to 4 bytes.
    pub fn key_bytes(&self) -> Vec<u8> {
        match self {
            Elem::V4(a) => a.octets().to_vec(),
            Elem::V6(a) => a.octets().to_vec(),
            Elem::Proto(p) => vec![*p],
            Elem::Mark(m) => m.to_ne_bytes().to_vec(),
            Elem::IfName(b) => b.to_vec(),
            Elem::MarkV4(m, a) => [&m.to_ne_bytes()[..], &a.octets()[..]].concat(),
            Elem::MarkV6(m, a) => [&m.to_ne_bytes()[..], &a.octets()[..]].concat(),
        }
    }

    /// The inverse of [`Elem::key_bytes`] for a set of the given key type.
    pub fn from_key_bytes(t: SetKeyType, b: &[u8]) -> Option<Elem> {
        let mark = |b: &[u8]| <[u8; 4]>::try_from(b).ok().map(u32::from_ne_bytes);
        match t {
            SetKeyType::Ipv4Addr => <[u8; 4]>::try_from(b).ok().map(|o| Elem::V4(o.into())),
            SetKeyType::Ipv6Addr => <[u8; 16]>::try_from(b).ok().map(|o| Elem::V6(o.into())),
            SetKeyType::InetProto => (b.len() == 1).then(|| Elem::Proto(b[0])),
            SetKeyType::Mark => mark(b).map(Elem::Mark),
            SetKeyType::IfName => <[u8; 16]>::try_from(b).ok().map(Elem::IfName),
            SetKeyType::MarkIpv4 if b.len() == 8 => {
                let a = <[u8; 4]>::try_from(&b[4..]).ok()?;
                Some(Elem::MarkV4(mark(&b[..4])?, a.into()))
            }
            SetKeyType::MarkIpv6 if b.len() == 20 => {
                let a = <[u8; 16]>::try_from(&b[4..]).ok()?;
                Some(Elem::MarkV6(mark(&b[..4])?, a.into()))
            }
            _ => None,
        }
    }
}

fn ifname_str(b: &[u8; 16]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(16);
    String::from_utf8_lossy(&b[..end]).into_owned()
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
            Elem::Mark(m) => write!(f, "{m:#010x}"),
            Elem::IfName(b) => write!(f, "\"{}\"", ifname_str(b)),
            Elem::MarkV4(m, a) => write!(f, "{m:#010x} . {a}"),
            Elem::MarkV6(m, a) => write!(f, "{m:#010x} . {a}"),
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

/// Which address of the packet a match reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrField {
    Saddr,
    Daddr,
}

/// Conntrack direction of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtDir {
    Original,
    Reply,
}

/// One condition of a rule. Each lowers to a short, fixed sequence of kernel expressions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// The packet is IPv4/IPv6: `meta nfproto` in an inet table, `meta protocol` (the
    /// ethertype) in a bridge table. Needed before any network-header match.
    NfProto(IpFamily),
    /// `meta l4proto N`.
    L4Proto(u8),
    /// `meta l4proto @set`.
    L4ProtoIn(SetName),
    /// `ip saddr NET` / `ip6 saddr NET` (prefix match; a /32 or /128 is an address).
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
    /// `iifname "NAME"`.
    Iifname(String),
    /// `ct state` has any of the bits of [`ct_state`].
    CtState(u32),
    /// `ct direction original|reply`.
    CtDirection(CtDir),
    /// `ct mark and MASK == VALUE`.
    CtMark { mask: u32, value: u32 },
    /// `ct mark and MASK @set` (a set of `mark`).
    CtMarkIn { mask: u32, set: SetName },
    /// `ct mark and MASK . ip saddr|daddr @set` (a set of `mark . ipv4_addr` or
    /// `mark . ipv6_addr`, after an `NfProto` of that family).
    CtMarkAddrIn {
        mask: u32,
        family: IpFamily,
        field: AddrField,
        set: SetName,
    },
}

/// Side effects of a rule, applied after its matches hold (and after its counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stmt {
    /// `ct mark set ct mark and ~MASK or VALUE` (VALUE within MASK).
    SetCtMark { mask: u32, value: u32 },
    /// `meta mark set meta mark and ~MASK or VALUE` (VALUE within MASK).
    SetMetaMark { mask: u32, value: u32 },
}

/// What a verdict map is looked up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VmapKey {
    Oifname,
    Iifname,
    /// `meta mark and MASK`.
    MetaMark(u32),
}

/// What a rule does when all its matches hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Jump(ChainName),
    /// `KEY vmap @set`: the element found decides (no element: go on with the next rule).
    Vmap(VmapKey, SetName),
}

/// Identity of a rule within its chain. The order of the variants is the order of the
/// rules in the chain: head rules first, tail rules (the final drop) last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    Head(u8),
    /// A jump to a group's chain (in an instance chain), or to a shard (in a group chain).
    Jump(GroupNum),
    JumpShard(u32),
    /// The rule of a grant; `part` tells the IPv4 (0) and IPv6 (1) rules of a group pair
    /// apart (a CIDR grant has one rule, part 0).
    Grant(GrantId, u8),
    /// An allowed source address of an instance (anti-spoofing), by index.
    Source(u8),
    Tail(u8),
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleId::Head(n) => write!(f, "head {n}"),
            RuleId::Jump(n) => write!(f, "group {n}"),
            RuleId::JumpShard(n) => write!(f, "shard {n}"),
            RuleId::Grant(n, 0) => write!(f, "grant {n}"),
            RuleId::Grant(n, p) => write!(f, "grant {n}.{p}"),
            RuleId::Source(n) => write!(f, "source {n}"),
            RuleId::Tail(n) => write!(f, "tail {n}"),
        }
    }
}

/// A rule: matches, an optional counter, statements, a verdict, and a comment that
/// identifies it in the kernel. The comment ends with a fingerprint of the rule's content,
/// so a rule found by its comment is known to be exactly this rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleSpec {
    pub chain: ChainName,
    pub id: RuleId,
    /// Boxed slices and strings, exactly sized: a plan holds one per kernel rule.
    pub matches: Box<[Match]>,
    pub counter: bool,
    pub stmts: Box<[Stmt]>,
    pub verdict: Verdict,
    pub comment: Box<str>,
}

/// A chain and, for base chains, where it hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainSpec {
    pub name: ChainName,
    pub base: Option<BaseChain>,
}

/// A named set or verdict map (the name decides which, see [`SetName::is_verdict_map`]).
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
    /// An element of a set.
    Elem,
    /// An element of a verdict map: `key : jump CHAIN`.
    MapElem(ChainName),
    /// Boxed: most objects are elements, and they should not pay for a rule's size.
    Rule(Box<RuleSpec>),
}

/// Everything secgroupd wants in its tables (named `table`; inet, and bridge if any
/// bridge object is planned).
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
    /// Whether anything of `family` is planned (the bridge table exists only then).
    pub fn uses(&self, family: Family) -> bool {
        self.chains().any(|c| c.name.family() == family)
    }
    /// Elements of one set or map, in order, with the map data.
    pub fn elems(&self, set: SetName) -> impl Iterator<Item = (Elem, Option<ChainName>)> + '_ {
        let lo = Key::Elem(set, Elem::V4(Ipv4Addr::UNSPECIFIED));
        self.objs
            .range(lo..)
            .take_while(move |(k, _)| matches!(k, Key::Elem(s, _) if *s == set))
            .filter_map(|(k, o)| match (k, o) {
                (Key::Elem(_, e), Obj::MapElem(c)) => Some((*e, Some(*c))),
                (Key::Elem(_, e), _) => Some((*e, None)),
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
                Obj::Rule(r) => Some(&**r),
                _ => None,
            })
    }
    pub fn rule(&self, chain: ChainName, id: RuleId) -> Option<&RuleSpec> {
        match self.objs.get(&Key::Rule(chain, id)) {
            Some(Obj::Rule(r)) => Some(&**r),
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
                (Key::Rule(c, _), Obj::Rule(r)) if *c == chain => Some(&**r),
                _ => None,
            })
    }
    pub fn rule_count(&self) -> usize {
        self.objs
            .keys()
            .filter(|k| matches!(k, Key::Rule(..)))
            .count()
    }
    pub fn elem_count(&self) -> usize {
        self.objs
            .keys()
            .filter(|k| matches!(k, Key::Elem(..)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let chains = [
            ChainName::Prerouting,
            ChainName::Forward,
            ChainName::Output,
            ChainName::Group(7),
            ChainName::Shard(7, 0),
            ChainName::Shard(7, 12),
            ChainName::Instance(3),
            ChainName::Spoof(3),
            ChainName::BridgePrerouting,
            ChainName::BridgeForward,
            ChainName::BridgeMark(3),
            ChainName::BridgeSpoof(3),
        ];
        for c in chains {
            assert_eq!(ChainName::parse(c.family(), &c.to_string()), Some(c), "{c}");
        }
        for bad in [
            "grp_",
            "grp_01",
            "grp_1_",
            "inst_x",
            "spoof_-1",
            "other",
            "grp_1_2_3",
        ] {
            assert_eq!(ChainName::parse(Family::Inet, bad), None, "{bad}");
        }
        let sets = [
            SetName::PairProtos,
            SetName::Members(IpFamily::V4, 1),
            SetName::Members(IpFamily::V6, 1),
            SetName::Live,
            SetName::LivePairs(IpFamily::V4),
            SetName::LivePairs(IpFamily::V6),
            SetName::DispatchOut,
            SetName::SpoofIn,
            SetName::DispatchMark,
            SetName::BridgePorts,
            SetName::BridgeSpoofIn,
        ];
        for s in sets {
            assert_eq!(SetName::parse(s.family(), &s.to_string()), Some(s), "{s}");
        }
    }

    #[test]
    fn elements_round_trip() {
        let elems = [
            (SetKeyType::Ipv4Addr, Elem::V4("10.0.0.1".parse().unwrap())),
            (SetKeyType::Ipv6Addr, Elem::V6("fd00::1".parse().unwrap())),
            (SetKeyType::InetProto, Elem::Proto(6)),
            (SetKeyType::Mark, Elem::Mark(0x0012_3456)),
            (SetKeyType::IfName, Elem::ifname("tap1").unwrap()),
            (
                SetKeyType::MarkIpv4,
                Elem::MarkV4(9, "10.0.0.1".parse().unwrap()),
            ),
            (
                SetKeyType::MarkIpv6,
                Elem::MarkV6(9, "fd00::1".parse().unwrap()),
            ),
        ];
        for (t, e) in elems {
            let b = e.key_bytes();
            assert_eq!(b.len() as u32, t.key_len(), "{e}");
            assert_eq!(Elem::from_key_bytes(t, &b), Some(e));
        }
        assert_eq!(Elem::ifname("0123456789abcdef"), None);
        assert_eq!(SetKeyType::MarkIpv6.key_len(), 20);
    }
}
