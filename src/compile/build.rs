//! Constructors for every kernel object, shared by the full compile and the incremental
//! one so that both produce exactly the same objects.
//!
//! Layout (inet table; `*` routed mode only, `+` cut mode only, `~` bridged mode only):
//!
//! ```text
//! hook_prerouting*  iifname vmap @spoof_in          → spoof_N: the instance's own
//!                                                     source addresses, else drop
//! hook_forward      established fast path:
//!                     ct mark & M == 0 accept        not admitted by a permission
//!                   + ct mark & M @live accept       admitted by a CIDR grant that exists
//!                   + ct mark & M . ip saddr|daddr @live_pairs4/6 accept
//!                                                    admitted by a group pair whose
//!                                                    peer is still a member
//!                   + ct direction reply drop        reply of a revoked connection: cut
//!                     (keep mode: ct state established,related accept)
//!                   icmpv6 neighbour discovery accept
//!                   oifname vmap @dispatch_out*  /  meta mark & P vmap @dispatch_mark~
//! hook_output*      the same as forward (the host's own traffic to an instance)
//! inst_N            jump grp_G ...; counter drop     the instance's groups, then deny
//! grp_G             jump grp_G_S ...                 the group's shards
//! grp_G_S           one rule per grant (a group pair: one per IP family); at most
//!                   SHARD_SIZE rules, so deleting one costs the same in any group
//! m4_G, m6_G        member addresses of group G (local instances and remote members)
//! ```
//!
//! Bridged mode adds a bridge table: `hook_prerouting` (`iifname vmap @spoof_in` →
//! `spoof_N`) and `hook_forward`, ahead of br_netfilter (`oifname vmap @ports` →
//! `mark_N`: `meta mark set` the port's slot), so that the inet forward chain, which only
//! sees the bridge as output interface, can dispatch on the mark.

use super::plan::{
    AddrField, BaseChain, ChainName, ChainSpec, CtDir, Elem, Hook, IpFamily, Key, Match, Obj,
    RuleId, RuleSpec, SetName, SetSpec, Stmt, Verdict, VmapKey, ct_state,
};
use super::render::rule_body;
use crate::config::{EstablishedOnRevoke, Mask, Mode};
use crate::model::{GroupKey, IpPermission, Traffic};
use crate::state::{GrantId, Group, Instance, State};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What the layout depends on besides the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub table: String,
    pub mode: Mode,
    pub established: EstablishedOnRevoke,
    pub ct_mark_mask: Mask,
    pub packet_mark_mask: Mask,
}

impl Options {
    /// The defaults of the configuration file, with a table name.
    pub fn new(table: &str) -> Options {
        let c = crate::config::Config::default();
        Options {
            table: table.to_string(),
            mode: c.mode,
            established: c.established_on_revoke,
            ct_mark_mask: c.ct_mark_mask,
            packet_mark_mask: c.packet_mark_mask,
        }
    }
    pub fn from_config(c: &crate::config::Config) -> Options {
        Options {
            table: c.table.clone(),
            mode: c.mode,
            established: c.established_on_revoke,
            ct_mark_mask: c.ct_mark_mask,
            packet_mark_mask: c.packet_mark_mask,
        }
    }
    fn cut(&self) -> bool {
        self.established == EstablishedOnRevoke::Cut
    }
    fn routed(&self) -> bool {
        self.mode == Mode::Routed
    }
    /// The conntrack mark of a grant: its id folded into the mask, never 0 (0 means "not
    /// admitted by a permission"). Ids are never reused; marks repeat only after
    /// `mask.max_value()` grants.
    pub fn grant_mark(&self, id: GrantId) -> u32 {
        let m = self.ct_mark_mask;
        ((id.wrapping_sub(1) % m.max_value()) + 1) << m.shift()
    }
    /// The packet mark of an instance's slot (bridged mode).
    pub fn slot_mark(&self, slot: u32) -> u32 {
        slot << self.packet_mark_mask.shift()
    }
}

/// Longest comment the kernel accepts comfortably (nft's limit is 128 with the NUL).
pub const MAX_COMMENT: usize = 120;

/// Protocols admitted by a user/group pair: all TCP, UDP and ICMP (v4 and v6).
pub const PAIR_PROTOCOLS: [u8; 4] = [1, 6, 17, 58];

/// ICMPv6 neighbour discovery types (router solicitation/advertisement, neighbour
/// solicitation/advertisement) that always pass: without them no IPv6 traffic works.
pub const ND_TYPES: [u8; 4] = [133, 134, 135, 136];

/// An object with its key.
pub type Entry = (Key, Obj);

fn chain(name: ChainName, base: Option<(Hook, i32)>) -> Entry {
    let base = base.map(|(hook, priority)| BaseChain { hook, priority });
    (Key::Chain(name), Obj::Chain(ChainSpec { name, base }))
}

fn set(name: SetName) -> Entry {
    (
        Key::Set(name),
        Obj::Set(SetSpec {
            name,
            key: name.key_type(),
        }),
    )
}

fn elem(set: SetName, e: Elem) -> Entry {
    (Key::Elem(set, e), Obj::Elem)
}

fn map_elem(set: SetName, e: Elem, to: ChainName) -> Entry {
    (Key::Elem(set, e), Obj::MapElem(to))
}

/// FNV-1a, 32 bits: a stable fingerprint (std's hashers are randomly seeded).
fn fingerprint(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Makes text safe inside an nft double-quoted string.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}

/// A rule under construction.
struct R {
    chain: ChainName,
    id: RuleId,
    matches: Vec<Match>,
    counter: bool,
    stmts: Vec<Stmt>,
}

fn r(chain: ChainName, id: RuleId) -> R {
    R {
        chain,
        id,
        matches: vec![],
        counter: false,
        stmts: vec![],
    }
}

impl R {
    fn m(mut self, m: Match) -> Self {
        self.matches.push(m);
        self
    }
    fn ms(mut self, m: impl IntoIterator<Item = Match>) -> Self {
        self.matches.extend(m);
        self
    }
    fn counter(mut self) -> Self {
        self.counter = true;
        self
    }
    fn stmt(mut self, s: Option<Stmt>) -> Self {
        self.stmts.extend(s);
        self
    }
    /// Finishes the rule with its verdict and a comment `"<id>: <what> #<fingerprint>"`.
    /// The fingerprint covers chain and body, so a kernel rule found by its comment is
    /// exactly this rule.
    fn verdict(self, verdict: Verdict, what: &str) -> Entry {
        let mut rule = RuleSpec {
            chain: self.chain,
            id: self.id,
            matches: self.matches.into_boxed_slice(),
            counter: self.counter,
            stmts: self.stmts.into_boxed_slice(),
            verdict,
            comment: Box::from(""),
        };
        let fp = fingerprint(&format!("{} {}", rule.chain, rule_body(&rule)));
        let head = format!("{}: ", rule.id);
        let tail = format!(" #{fp:08x}");
        let room = MAX_COMMENT - head.len() - tail.len();
        let mut what = sanitize(what);
        if what.len() > room {
            what.truncate(room - 3);
            what.push_str("...");
        }
        rule.comment = format!("{head}{what}{tail}").into_boxed_str();
        (Key::Rule(rule.chain, rule.id), Obj::Rule(Box::new(rule)))
    }
}

fn est() -> Match {
    Match::CtState(ct_state::ESTABLISHED | ct_state::RELATED)
}

/// The fast path for established traffic and the neighbour discovery exception, at the
/// head of a hook chain that filters traffic *to* instances.
fn to_instance_head(o: &Options, hook: ChainName) -> Vec<Entry> {
    let mut out = Vec::new();
    if o.cut() {
        let m = o.ct_mark_mask.0;
        out.push(
            r(hook, RuleId::Head(0))
                .m(est())
                .m(Match::CtMark { mask: m, value: 0 })
                .verdict(
                    Verdict::Accept,
                    "established, not admitted by a permission: the instance's own connections",
                ),
        );
        out.push(
            r(hook, RuleId::Head(1))
                .m(est())
                .m(Match::CtMarkIn {
                    mask: m,
                    set: SetName::Live,
                })
                .verdict(
                    Verdict::Accept,
                    "established, admitted by a grant that exists",
                ),
        );
        let pairs = [
            (2, CtDir::Original, IpFamily::V4, AddrField::Saddr),
            (3, CtDir::Reply, IpFamily::V4, AddrField::Daddr),
            (4, CtDir::Original, IpFamily::V6, AddrField::Saddr),
            (5, CtDir::Reply, IpFamily::V6, AddrField::Daddr),
        ];
        for (n, dir, family, field) in pairs {
            out.push(
                r(hook, RuleId::Head(n))
                    .m(est())
                    .m(Match::CtDirection(dir))
                    .m(Match::NfProto(family))
                    .m(Match::CtMarkAddrIn {
                        mask: m,
                        family,
                        field,
                        set: SetName::LivePairs(family),
                    })
                    .verdict(
                        Verdict::Accept,
                        "established, admitted by a group pair whose peer is still a member",
                    ),
            );
        }
        out.push(
            r(hook, RuleId::Head(6))
                .m(est())
                .m(Match::CtDirection(CtDir::Reply))
                .counter()
                .verdict(
                    Verdict::Drop,
                    "reply of a connection whose permission is gone: cut",
                ),
        );
    } else {
        out.push(r(hook, RuleId::Head(0)).m(est()).verdict(
            Verdict::Accept,
            "established: existing connections continue (keep mode)",
        ));
    }
    for (i, t) in ND_TYPES.iter().enumerate() {
        out.push(
            r(hook, RuleId::Head(10 + i as u8))
                .m(Match::NfProto(IpFamily::V6))
                .m(Match::L4Proto(58))
                .m(Match::IcmpType(*t))
                .verdict(Verdict::Accept, "ipv6 neighbour discovery always passes"),
        );
    }
    out
}

/// The fixed part of the tables: base chains, dispatch maps, fixed sets.
pub fn base_objects(o: &Options) -> Vec<Entry> {
    let mut out = vec![
        chain(ChainName::Forward, Some((Hook::Forward, 0))),
        set(SetName::PairProtos),
    ];
    for p in PAIR_PROTOCOLS {
        out.push(elem(SetName::PairProtos, Elem::Proto(p)));
    }
    if o.cut() {
        out.push(set(SetName::Live));
        out.push(set(SetName::LivePairs(IpFamily::V4)));
        out.push(set(SetName::LivePairs(IpFamily::V6)));
    }
    out.extend(to_instance_head(o, ChainName::Forward));
    if o.routed() {
        out.push(chain(ChainName::Prerouting, Some((Hook::Prerouting, -150))));
        out.push(chain(ChainName::Output, Some((Hook::Output, 0))));
        out.push(set(SetName::DispatchOut));
        out.push(set(SetName::SpoofIn));
        out.extend(to_instance_head(o, ChainName::Output));
        for hook in [ChainName::Forward, ChainName::Output] {
            out.push(r(hook, RuleId::Tail(0)).verdict(
                Verdict::Vmap(VmapKey::Oifname, SetName::DispatchOut),
                "to a registered interface: its instance's rules",
            ));
        }
        out.push(r(ChainName::Prerouting, RuleId::Tail(0)).verdict(
            Verdict::Vmap(VmapKey::Iifname, SetName::SpoofIn),
            "from a registered interface: its source addresses only",
        ));
    } else {
        out.push(set(SetName::DispatchMark));
        out.push(r(ChainName::Forward, RuleId::Tail(0)).verdict(
            Verdict::Vmap(
                VmapKey::MetaMark(o.packet_mark_mask.0),
                SetName::DispatchMark,
            ),
            "to a registered bridge port (marked by the bridge table): its instance's rules",
        ));
        // The bridge table: anti-spoofing by input port, and the port mark.
        out.push(chain(
            ChainName::BridgePrerouting,
            Some((Hook::Prerouting, -200)),
        ));
        out.push(chain(ChainName::BridgeForward, Some((Hook::Forward, -200))));
        out.push(set(SetName::BridgePorts));
        out.push(set(SetName::BridgeSpoofIn));
        out.push(r(ChainName::BridgePrerouting, RuleId::Tail(0)).verdict(
            Verdict::Vmap(VmapKey::Iifname, SetName::BridgeSpoofIn),
            "from a registered port: its source addresses only",
        ));
        out.push(r(ChainName::BridgeForward, RuleId::Tail(0)).verdict(
            Verdict::Vmap(VmapKey::Oifname, SetName::BridgePorts),
            "to a registered port: mark it for the inet chains",
        ));
    }
    out
}

/// A group's own objects: its root chain.
pub fn group_objects(g: &Group) -> Vec<Entry> {
    vec![chain(ChainName::Group(g.num), None)]
}

/// Whether some group-pair grant names the group as its source: only then do its member
/// sets exist (most groups are never a source; thousands of empty sets would only slow
/// every start-up and dump).
pub fn is_source(state: &State, key: &GroupKey) -> bool {
    !state.pair_grants_naming(key).is_empty()
}

/// The member sets of a source group with all its member addresses (none if the group is
/// not a source).
pub fn source_objects(state: &State, g: &Group) -> Vec<Entry> {
    if !is_source(state, &g.key) {
        return vec![];
    }
    let n = g.num;
    let mut out = vec![
        set(SetName::Members(IpFamily::V4, n)),
        set(SetName::Members(IpFamily::V6, n)),
    ];
    for a in member_addresses(state, &g.key) {
        out.push((member_elem(n, a), Obj::Elem));
    }
    out
}

/// A shard chain of a group and the jump to it from the group's root chain.
pub fn shard_objects(g: &Group, shard: u32) -> Vec<Entry> {
    vec![
        chain(ChainName::Shard(g.num, shard), None),
        r(ChainName::Group(g.num), RuleId::JumpShard(shard)).verdict(
            Verdict::Jump(ChainName::Shard(g.num, shard)),
            &format!("{} shard {shard}", g.key),
        ),
    ]
}

/// Every address that makes a member of the group: local instances and remote members.
pub fn member_addresses(state: &State, key: &GroupKey) -> BTreeSet<IpAddr> {
    let mut out: BTreeSet<IpAddr> = state
        .members(key)
        .flat_map(|i| i.spec.addresses.iter().copied())
        .collect();
    if let Some(g) = state.group(key) {
        out.extend(g.remote.iter().copied());
    }
    out
}

fn family_of(a: IpAddr) -> IpFamily {
    if a.is_ipv4() {
        IpFamily::V4
    } else {
        IpFamily::V6
    }
}

/// The member-set element of an address of a member of group `num`.
pub fn member_elem(num: u32, addr: IpAddr) -> Key {
    match addr {
        IpAddr::V4(a) => Key::Elem(SetName::Members(IpFamily::V4, num), Elem::V4(a)),
        IpAddr::V6(a) => Key::Elem(SetName::Members(IpFamily::V6, num), Elem::V6(a)),
    }
}

/// The `live_pairs` element for a group-pair grant and one member address of its source.
pub fn live_pair_elem(o: &Options, id: GrantId, addr: IpAddr) -> Key {
    let m = o.grant_mark(id);
    match addr {
        IpAddr::V4(a) => Key::Elem(SetName::LivePairs(IpFamily::V4), Elem::MarkV4(m, a)),
        IpAddr::V6(a) => Key::Elem(SetName::LivePairs(IpFamily::V6), Elem::MarkV6(m, a)),
    }
}

/// The objects of one grant: its rule(s), and in cut mode its live marks.
pub fn grant_objects(
    o: &Options,
    state: &State,
    g: &Group,
    id: GrantId,
    p: &IpPermission,
    shard: u32,
) -> Vec<Entry> {
    let chain = ChainName::Shard(g.num, shard);
    let what = format!("{} {p}", g.key);
    let mark = o.cut().then(|| Stmt::SetCtMark {
        mask: o.ct_mark_mask.0,
        value: o.grant_mark(id),
    });
    match p {
        IpPermission::Cidr { traffic, cidr } => {
            let net = cidr.net();
            let mut m = vec![Match::NfProto(if cidr.is_ipv4() {
                IpFamily::V4
            } else {
                IpFamily::V6
            })];
            if net.prefix_len() > 0 {
                m.push(Match::Saddr(net));
            }
            m.push(Match::L4Proto(traffic.protocol().number()));
            match traffic {
                Traffic::Tcp { ports } | Traffic::Udp { ports } => {
                    if !ports.is_all() {
                        m.push(Match::Dport {
                            from: ports.from(),
                            to: ports.to(),
                        });
                    }
                }
                Traffic::Icmp { icmp } | Traffic::Icmpv6 { icmp } => {
                    m.extend(icmp.icmp_type().map(Match::IcmpType));
                    m.extend(icmp.code().map(Match::IcmpCode));
                }
            }
            let mut out = vec![
                r(chain, RuleId::Grant(id, 0))
                    .ms(m)
                    .counter()
                    .stmt(mark)
                    .verdict(Verdict::Accept, &what),
            ];
            if o.cut() {
                out.push(elem(SetName::Live, Elem::Mark(o.grant_mark(id))));
            }
            out
        }
        // One rule per IP family: a source address match needs the family first.
        IpPermission::GroupPair { source } => {
            let Some(src) = state.group(source) else {
                return vec![];
            };
            let mut out: Vec<Entry> = [IpFamily::V4, IpFamily::V6]
                .into_iter()
                .enumerate()
                .map(|(part, fam)| {
                    r(chain, RuleId::Grant(id, part as u8))
                        .m(Match::NfProto(fam))
                        .m(Match::SaddrIn(fam, SetName::Members(fam, src.num)))
                        .m(Match::L4ProtoIn(SetName::PairProtos))
                        .counter()
                        .stmt(mark)
                        .verdict(Verdict::Accept, &what)
                })
                .collect();
            if o.cut() {
                for a in member_addresses(state, source) {
                    out.push((live_pair_elem(o, id, a), Obj::Elem));
                }
            }
            out
        }
    }
}

/// An instance's chains and map elements: its groups then drop, its dispatch entry, and
/// its anti-spoofing chain.
pub fn instance_objects(o: &Options, state: &State, i: &Instance) -> Vec<Entry> {
    let n = i.num;
    let id = &i.spec.id;
    let iface = i.spec.interface.as_str();
    let mut out = vec![chain(ChainName::Instance(n), None)];
    for gk in &i.spec.groups {
        if let Some(g) = state.group(gk) {
            out.push(r(ChainName::Instance(n), RuleId::Jump(g.num)).verdict(
                Verdict::Jump(ChainName::Group(g.num)),
                &format!("instance {id} in group {gk}"),
            ));
        }
    }
    out.push(
        r(ChainName::Instance(n), RuleId::Tail(0))
            .counter()
            .verdict(
                Verdict::Drop,
                &format!("instance {id}: no permission admits it"),
            ),
    );
    let Some(ifname) = Elem::ifname(iface) else {
        return out; // unreachable: interface names are validated at the boundary
    };
    let spoof = if o.routed() {
        out.push(map_elem(
            SetName::DispatchOut,
            ifname,
            ChainName::Instance(n),
        ));
        out.push(map_elem(SetName::SpoofIn, ifname, ChainName::Spoof(n)));
        ChainName::Spoof(n)
    } else {
        let mark = o.slot_mark(i.slot);
        out.push(map_elem(
            SetName::DispatchMark,
            Elem::Mark(mark),
            ChainName::Instance(n),
        ));
        out.push(chain(ChainName::BridgeMark(n), None));
        out.push(
            r(ChainName::BridgeMark(n), RuleId::Head(0))
                .stmt(Some(Stmt::SetMetaMark {
                    mask: o.packet_mark_mask.0,
                    value: mark,
                }))
                .verdict(Verdict::Accept, &format!("instance {id} on port {iface}")),
        );
        out.push(map_elem(
            SetName::BridgePorts,
            ifname,
            ChainName::BridgeMark(n),
        ));
        out.push(map_elem(
            SetName::BridgeSpoofIn,
            ifname,
            ChainName::BridgeSpoof(n),
        ));
        ChainName::BridgeSpoof(n)
    };
    out.extend(spoof_objects(spoof, i));
    out
}

/// The anti-spoofing chain: the instance's own addresses, IPv6 link-local (neighbour
/// discovery), the unspecified addresses of DHCP and duplicate address detection.
fn spoof_objects(chain_name: ChainName, i: &Instance) -> Vec<Entry> {
    let id = &i.spec.id;
    let mut out = vec![chain(chain_name, None)];
    let own = |a: IpAddr| IpNet::new(a, if a.is_ipv4() { 32 } else { 128 }).ok();
    for (k, a) in i.spec.addresses.iter().enumerate() {
        if let Some(net) = own(*a) {
            out.push(
                r(chain_name, RuleId::Source(k as u8))
                    .m(Match::NfProto(family_of(*a)))
                    .m(Match::Saddr(net))
                    .verdict(Verdict::Accept, &format!("instance {id} sends as {a}")),
            );
        }
    }
    let fixed: [(u8, IpFamily, &str, Vec<Match>, &str); 3] = [
        (
            200,
            IpFamily::V6,
            "fe80::/10",
            vec![],
            "ipv6 link-local (neighbour discovery)",
        ),
        (
            201,
            IpFamily::V6,
            "::/128",
            vec![Match::L4Proto(58)],
            "icmpv6 from :: (duplicate address detection)",
        ),
        (
            202,
            IpFamily::V4,
            "0.0.0.0/32",
            vec![Match::L4Proto(17), Match::Dport { from: 67, to: 67 }],
            "dhcp from 0.0.0.0",
        ),
    ];
    for (k, fam, net, extra, what) in fixed {
        let net: IpNet = net.parse().expect("constant network");
        out.push(
            r(chain_name, RuleId::Source(k))
                .m(Match::NfProto(fam))
                .m(Match::Saddr(net))
                .ms(extra)
                .verdict(Verdict::Accept, &format!("instance {id}: {what}")),
        );
    }
    for (k, fam) in [IpFamily::V4, IpFamily::V6].into_iter().enumerate() {
        out.push(
            r(chain_name, RuleId::Tail(k as u8))
                .m(Match::NfProto(fam))
                .counter()
                .verdict(
                    Verdict::Drop,
                    &format!("instance {id}: forged source address"),
                ),
        );
    }
    out
}

/// Whether `a` should be in group `g`'s member set, and in the live pair elements of the
/// grants that name `g` as their source: the objects of one (group, address) pair.
pub fn membership_objects(o: &Options, state: &State, g: &Group, a: IpAddr) -> Vec<(Key, bool)> {
    let member = state.is_member_address(&g.key, a);
    let grants = state.pair_grants_naming(&g.key);
    let mut out = vec![(member_elem(g.num, a), member && !grants.is_empty())];
    if o.cut() {
        for id in grants {
            out.push((live_pair_elem(o, id, a), member));
        }
    }
    out
}
