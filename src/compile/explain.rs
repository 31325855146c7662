//! Questions answered from the compiled plan and the state, without a kernel:
//! which permission admits a packet ([`explain`]), and which permissions still admit
//! traffic a revoked one admitted ([`overlaps`]).

use super::plan::{ChainName, Elem, IpFamily, Match, Plan, RuleId, RuleSpec, SetName, Verdict};
use crate::model::{
    Explanation, GroupKey, InstanceId, IpPermission, Overlap, PacketProbe, Protocol, Traffic,
};
use crate::state::{GrantId, Instance, State};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The packet fields a grant rule can look at.
struct Packet {
    source: IpAddr,
    proto: u8,
    port: Option<u16>,
    icmp: Option<(u8, u8)>,
}

fn in_set(plan: &Plan, set: SetName, e: Elem) -> bool {
    plan.objs.contains_key(&super::plan::Key::Elem(set, e))
}

fn addr_elem(a: IpAddr) -> Elem {
    match a {
        IpAddr::V4(v) => Elem::V4(v),
        IpAddr::V6(v) => Elem::V6(v),
    }
}

/// Whether every match of a grant rule holds for the packet.
fn matches(plan: &Plan, rule: &RuleSpec, p: &Packet) -> bool {
    rule.matches.iter().all(|m| match m {
        Match::NfProto(IpFamily::V4) => p.source.is_ipv4(),
        Match::NfProto(IpFamily::V6) => p.source.is_ipv6(),
        Match::Saddr(net) => net.contains(&p.source),
        Match::SaddrIn(_, set) => in_set(plan, *set, addr_elem(p.source)),
        Match::L4Proto(n) => p.proto == *n,
        Match::L4ProtoIn(set) => in_set(plan, *set, Elem::Proto(p.proto)),
        Match::Dport { from, to } => p.port.is_some_and(|x| (*from..=*to).contains(&x)),
        Match::IcmpType(t) => p.icmp.is_some_and(|(x, _)| x == *t),
        Match::IcmpCode(c) => p.icmp.is_some_and(|(_, x)| x == *c),
        // Not used in grant rules.
        _ => false,
    })
}

/// Grant id → (group, permission), for the rules found.
fn grant(state: &State, id: GrantId) -> Option<(GroupKey, IpPermission)> {
    state.groups().find_map(|g| {
        g.grants
            .get(&id)
            .map(|gr| (g.key.clone(), gr.permission.clone()))
    })
}

/// Walks the instance's chain as the kernel would for a new packet: each group in order,
/// each shard, each grant rule; lists every grant that admits the packet, the first one
/// being the one that accepts it.
pub fn explain(plan: &Plan, state: &State, probe: &PacketProbe) -> Option<Explanation> {
    let inst: &Instance = state.instance(&probe.instance)?;
    let pkt = Packet {
        source: probe.source,
        proto: probe.protocol.number(),
        port: probe.port,
        icmp: probe.icmp_type.map(|t| (t, probe.icmp_code.unwrap_or(0))),
    };
    let mut admitted = Vec::new();
    for r in plan.rules(ChainName::Instance(inst.num)) {
        let Verdict::Jump(ChainName::Group(g)) = r.verdict else {
            continue;
        };
        for jump in plan.rules(ChainName::Group(g)) {
            let Verdict::Jump(shard) = jump.verdict else {
                continue;
            };
            for rule in plan.rules(shard) {
                if let RuleId::Grant(id, _) = rule.id
                    && matches(plan, rule, &pkt)
                    && let Some(found) = grant(state, id)
                    && !admitted.contains(&found)
                {
                    admitted.push(found);
                }
            }
        }
    }
    Some(Explanation {
        instance: inst.spec.id.clone(),
        interface: inst.spec.interface.clone(),
        admitted_by: admitted,
    })
}

/// The traffic a permission admits, for comparing permissions.
struct Space {
    /// `None`: the member addresses of a group (resolved to `sources`).
    protos: Vec<u8>,
    ports: Option<(u16, u16)>,
    icmp: (Option<u8>, Option<u8>),
    cidr: Option<ipnet::IpNet>,
    members: BTreeSet<IpAddr>,
}

fn space(state: &State, p: &IpPermission) -> Space {
    match p {
        IpPermission::Cidr { traffic, cidr } => {
            let (ports, icmp) = match traffic {
                Traffic::Tcp { ports } | Traffic::Udp { ports } => {
                    (Some((ports.from(), ports.to())), (None, None))
                }
                Traffic::Icmp { icmp } | Traffic::Icmpv6 { icmp } => {
                    (None, (icmp.icmp_type(), icmp.code()))
                }
            };
            Space {
                protos: vec![traffic.protocol().number()],
                ports,
                icmp,
                cidr: Some(cidr.net()),
                members: BTreeSet::new(),
            }
        }
        IpPermission::GroupPair { source } => Space {
            protos: super::build::PAIR_PROTOCOLS.to_vec(),
            ports: Some((0, u16::MAX)),
            icmp: (None, None),
            cidr: None,
            members: super::build::member_addresses(state, source),
        },
    }
}

fn is_port_proto(p: u8) -> bool {
    p == Protocol::Tcp.number() || p == Protocol::Udp.number()
}

/// (intersects, covers): whether `q` admits some / all of what `p` admits.
fn compare(p: &Space, q: &Space) -> (bool, bool) {
    let protos: Vec<u8> = p
        .protos
        .iter()
        .copied()
        .filter(|x| q.protos.contains(x))
        .collect();
    if protos.is_empty() {
        return (false, false);
    }
    let all_protos = protos.len() == p.protos.len();
    let port_proto = protos.iter().any(|x| is_port_proto(*x));
    let icmp_proto = protos.iter().any(|x| !is_port_proto(*x));
    let (mut some, mut all) = (false, all_protos);
    if port_proto {
        let (pf, pt) = p.ports.unwrap_or((0, u16::MAX));
        let (qf, qt) = q.ports.unwrap_or((0, u16::MAX));
        some |= pf.max(qf) <= pt.min(qt);
        all &= qf <= pf && pt <= qt;
    }
    if icmp_proto {
        let field = |a: Option<u8>, b: Option<u8>| {
            (a.is_none() || b.is_none() || a == b, b.is_none() || a == b)
        };
        let (ts, ta) = field(p.icmp.0, q.icmp.0);
        let (cs, ca) = field(p.icmp.1, q.icmp.1);
        some |= ts && cs;
        all &= ta && ca;
    }
    // Sources: CIDR against CIDR, CIDR against member addresses, members against members.
    let (src_some, src_all) = match (&p.cidr, &q.cidr) {
        (Some(a), Some(b)) => (a.contains(b) || b.contains(a), b.contains(a)),
        (Some(a), None) => {
            let inside = q.members.iter().filter(|m| a.contains(*m)).count();
            (
                inside > 0,
                a.prefix_len() == a.max_prefix_len() && inside > 0,
            )
        }
        (None, Some(b)) => {
            let inside = p.members.iter().filter(|m| b.contains(*m)).count();
            (
                inside > 0,
                !p.members.is_empty() && inside == p.members.len(),
            )
        }
        (None, None) => {
            let inside = p.members.intersection(&q.members).count();
            (
                inside > 0,
                !p.members.is_empty() && inside == p.members.len(),
            )
        }
    };
    (some && src_some, some && all && src_all)
}

/// Permissions of the groups of `group`'s member instances that still admit some of the
/// traffic `revoked` admitted to them. Call with the state *after* the revoke.
pub fn overlaps(state: &State, group: &GroupKey, revoked: &IpPermission) -> Vec<Overlap> {
    let p = space(state, revoked);
    // The revoked group, and every group that one of its local members is also in: an
    // index, so a revoke in a group with thousands of members costs what it costs with one.
    let mut groups: BTreeSet<&GroupKey> = state.co_groups(group).collect();
    groups.insert(group);
    let mut out = Vec::new();
    for gk in groups {
        let Some(g) = state.group(gk) else { continue };
        let mut instances: Option<Vec<InstanceId>> = None;
        for id in state.overlap_candidates(gk, revoked) {
            let Some(gr) = g.grants.get(&id) else {
                continue;
            };
            let (some, all) = compare(&p, &space(state, &gr.permission));
            if some {
                // Only now, on the rare path with something to report, walk the members.
                let instances = instances.get_or_insert_with(|| {
                    state
                        .members(group)
                        .filter(|i| gk == group || i.spec.groups.contains(gk))
                        .map(|i| i.spec.id.clone())
                        .collect()
                });
                out.push(Overlap {
                    group: gk.clone(),
                    permission: gr.permission.clone(),
                    full: all,
                    instances: instances.clone(),
                });
            }
        }
    }
    out
}
