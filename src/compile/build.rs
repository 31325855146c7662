//! Constructors for every kernel object, shared by the full compile and the incremental
//! one so that both produce exactly the same objects.
//!
//! Layout of the table (family inet):
//!
//! ```text
//! hook_forward, hook_output (base chains, policy accept)
//!     ct state established,related accept        replies to what instances opened
//!     icmpv6 neighbour discovery accept           instances need it to be reachable at all
//!     jump dispatch
//! dispatch:   oifname "tap1" jump inst_1         one rule per registered interface
//! inst_N:     jump grp_G ...; counter drop       the instance's groups, then deny
//! grp_G:      one rule per grant                 shared by every member interface
//! src_G:      ip saddr @m4_G accept; ip6 saddr @m6_G accept   (target of group pairs)
//! m4_G, m6_G: addresses of the members of group G
//! ```

use super::plan::{
    BaseChain, ChainName, ChainSpec, Elem, Hook, IpFamily, Key, Match, Obj, RuleId, RuleSpec,
    SetKeyType, SetName, SetSpec, Verdict, ct_state,
};
use super::render::rule_body;
use crate::model::{IpPermission, Traffic};
use crate::state::{GrantId, Group, Instance, State};
use std::net::IpAddr;

/// Longest comment the kernel accepts comfortably (nft's limit is 128 with the NUL).
pub const MAX_COMMENT: usize = 120;

/// Protocols admitted by a user/group pair: all TCP, UDP and ICMP (v4 and v6).
pub const PAIR_PROTOCOLS: [u8; 4] = [1, 6, 17, 58];

/// ICMPv6 neighbour discovery types (router solicitation/advertisement, neighbour
/// solicitation/advertisement) that always pass: without them no IPv6 traffic works.
pub const ND_TYPES: [u8; 4] = [133, 134, 135, 136];

/// An object with its key.
pub type Entry = (Key, Obj);

fn chain(name: ChainName, base: Option<BaseChain>) -> Entry {
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

/// Builds a rule and its comment `"<id>: <what> #<fingerprint>"`. The fingerprint covers
/// chain and body, so a kernel rule found by its comment is exactly this rule.
fn rule(
    chain: ChainName,
    id: RuleId,
    matches: Vec<Match>,
    counter: bool,
    verdict: Verdict,
    what: &str,
) -> Entry {
    let mut r = RuleSpec {
        chain,
        id,
        matches,
        counter,
        verdict,
        comment: String::new(),
    };
    let fp = fingerprint(&format!("{chain} {}", rule_body(&r)));
    let head = format!("{id}: ");
    let tail = format!(" #{fp:08x}");
    let room = MAX_COMMENT - head.len() - tail.len();
    let mut what = sanitize(what);
    if what.len() > room {
        what.truncate(room - 3);
        what.push_str("...");
    }
    r.comment = format!("{head}{what}{tail}");
    (Key::Rule(chain, id), Obj::Rule(r))
}

/// The fixed part of the table: base chains, dispatch, the pair protocol set.
pub fn base_objects() -> Vec<Entry> {
    let mut out = vec![
        chain(
            ChainName::Forward,
            Some(BaseChain {
                hook: Hook::Forward,
                priority: 0,
            }),
        ),
        chain(
            ChainName::Output,
            Some(BaseChain {
                hook: Hook::Output,
                priority: 0,
            }),
        ),
        chain(ChainName::Dispatch, None),
        set(SetName::PairProtos),
    ];
    for p in PAIR_PROTOCOLS {
        out.push((Key::Elem(SetName::PairProtos, Elem::Proto(p)), Obj::Elem));
    }
    for hook in [ChainName::Forward, ChainName::Output] {
        out.push(rule(
            hook,
            RuleId::Head(0),
            vec![Match::CtState(ct_state::ESTABLISHED | ct_state::RELATED)],
            false,
            Verdict::Accept,
            "replies and related traffic",
        ));
        for (i, t) in ND_TYPES.iter().enumerate() {
            out.push(rule(
                hook,
                RuleId::Head(1 + i as u8),
                vec![
                    Match::NfProto(IpFamily::V6),
                    Match::L4Proto(58),
                    Match::IcmpType(*t),
                ],
                false,
                Verdict::Accept,
                "ipv6 neighbour discovery always passes",
            ));
        }
        out.push(rule(
            hook,
            RuleId::Head(9),
            vec![],
            false,
            Verdict::Jump(ChainName::Dispatch),
            "filter traffic to registered interfaces",
        ));
    }
    out
}

/// A group's own objects (chain, member sets, source chain), without grants or members.
pub fn group_objects(g: &Group) -> Vec<Entry> {
    let n = g.num;
    let mut out = vec![
        chain(ChainName::Group(n), None),
        chain(ChainName::Source(n), None),
        set(SetName::Members(IpFamily::V4, n)),
        set(SetName::Members(IpFamily::V6, n)),
    ];
    for (i, fam) in [IpFamily::V4, IpFamily::V6].into_iter().enumerate() {
        out.push(rule(
            ChainName::Source(n),
            RuleId::Head(i as u8),
            vec![
                Match::NfProto(fam),
                Match::SaddrIn(fam, SetName::Members(fam, n)),
            ],
            true,
            Verdict::Accept,
            &format!("members of {}", g.key),
        ));
    }
    out
}

/// The one rule that implements one grant.
pub fn grant_rule(state: &State, g: &Group, id: GrantId, p: &IpPermission) -> Option<Entry> {
    let chain = ChainName::Group(g.num);
    let what = format!("{} {p}", g.key);
    match p {
        IpPermission::Cidr { traffic, cidr } => {
            let net = cidr.net();
            let fam = if cidr.is_ipv4() {
                IpFamily::V4
            } else {
                IpFamily::V6
            };
            let mut m = vec![Match::NfProto(fam)];
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
            Some(rule(
                chain,
                RuleId::Grant(id),
                m,
                true,
                Verdict::Accept,
                &what,
            ))
        }
        // One rule still: the protocols here, the source addresses in the source
        // group's own chain, shared by every grant that names it.
        IpPermission::GroupPair { source } => {
            let src = state.group(source)?;
            Some(rule(
                chain,
                RuleId::Grant(id),
                vec![Match::L4ProtoIn(SetName::PairProtos)],
                false,
                Verdict::Jump(ChainName::Source(src.num)),
                &what,
            ))
        }
    }
}

/// An instance's chain, its jumps to its groups, its final drop, and its dispatch rule.
pub fn instance_objects(state: &State, i: &Instance) -> Vec<Entry> {
    let n = i.num;
    let id = &i.spec.id;
    let mut out = vec![chain(ChainName::Instance(n), None)];
    for gk in &i.spec.groups {
        if let Some(g) = state.group(gk) {
            out.push(rule(
                ChainName::Instance(n),
                RuleId::Jump(g.num),
                vec![],
                false,
                Verdict::Jump(ChainName::Group(g.num)),
                &format!("instance {id} in group {gk}"),
            ));
        }
    }
    out.push(rule(
        ChainName::Instance(n),
        RuleId::Tail(0),
        vec![],
        true,
        Verdict::Drop,
        &format!("instance {id}: no permission admits it"),
    ));
    out.push(rule(
        ChainName::Dispatch,
        RuleId::Dispatch(n),
        vec![Match::Oifname(i.spec.interface.as_str().to_string())],
        false,
        Verdict::Jump(ChainName::Instance(n)),
        &format!("instance {id} on {}", i.spec.interface),
    ));
    out
}

/// The member-set element for an address of a member of group `num`.
pub fn member_elem(num: u32, addr: IpAddr) -> Key {
    match addr {
        IpAddr::V4(a) => Key::Elem(SetName::Members(IpFamily::V4, num), Elem::V4(a)),
        IpAddr::V6(a) => Key::Elem(SetName::Members(IpFamily::V6, num), Elem::V6(a)),
    }
}

/// The key type a set name implies; re-exported for the reconciler.
pub fn set_key_type(name: SetName) -> SetKeyType {
    name.key_type()
}
