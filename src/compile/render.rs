//! Renders a plan as nft text: the golden form for tests, what `secgroupd --print-plan`
//! shows operators, and what the benchmark feeds to `nft -f` as the full-reload baseline.

use super::plan::{
    AddrField, ChainName, ChainSpec, CtDir, Family, IpFamily, Key, Match, Obj, Plan, RuleSpec,
    SetSpec, Stmt, Verdict, VmapKey, ct_state,
};
use std::fmt::Write;

/// The rule without its comment, as nft writes it.
pub fn rule_body(rule: &RuleSpec) -> String {
    let family = rule.chain.family();
    let mut out = Vec::new();
    let mut l4: Option<u8> = None;
    for m in &rule.matches {
        out.push(match m {
            Match::NfProto(f) => match family {
                Family::Inet => format!("meta nfproto {}", ip_family(*f)),
                Family::Bridge => format!(
                    "meta protocol {}",
                    if *f == IpFamily::V4 { "ip" } else { "ip6" }
                ),
            },
            Match::L4Proto(p) => {
                l4 = Some(*p);
                format!("meta l4proto {}", proto_name(*p))
            }
            Match::L4ProtoIn(set) => format!("meta l4proto @{set}"),
            Match::Saddr(net) => match net {
                ipnet::IpNet::V4(_) => format!("ip saddr {net}"),
                ipnet::IpNet::V6(_) => format!("ip6 saddr {net}"),
            },
            Match::SaddrIn(f, set) => format!("{} saddr @{set}", ip_word(*f)),
            Match::Dport { from, to } if from == to => format!("th dport {from}"),
            Match::Dport { from, to } => format!("th dport {from}-{to}"),
            Match::IcmpType(t) => format!("{} type {t}", icmp_word(l4)),
            Match::IcmpCode(c) => format!("{} code {c}", icmp_word(l4)),
            Match::Oifname(name) => format!("oifname \"{name}\""),
            Match::Iifname(name) => format!("iifname \"{name}\""),
            Match::CtState(bits) => format!("ct state {}", ct_states(*bits)),
            Match::CtDirection(CtDir::Original) => "ct direction original".into(),
            Match::CtDirection(CtDir::Reply) => "ct direction reply".into(),
            Match::CtMark { mask, value } => format!("ct mark and {mask:#010x} == {value:#010x}"),
            Match::CtMarkIn { mask, set } => format!("ct mark and {mask:#010x} @{set}"),
            Match::CtMarkAddrIn {
                mask,
                family,
                field,
                set,
            } => format!(
                "ct mark and {mask:#010x} . {} {} @{set}",
                ip_word(*family),
                match field {
                    AddrField::Saddr => "saddr",
                    AddrField::Daddr => "daddr",
                }
            ),
        });
    }
    if rule.counter {
        out.push("counter".into());
    }
    for s in &rule.stmts {
        out.push(match s {
            Stmt::SetCtMark { mask, value } => {
                format!("ct mark set ct mark and {:#010x} or {value:#010x}", !mask)
            }
            Stmt::SetMetaMark { mask, value } => {
                format!(
                    "meta mark set meta mark and {:#010x} or {value:#010x}",
                    !mask
                )
            }
        });
    }
    out.push(match rule.verdict {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Jump(c) => format!("jump {c}"),
        Verdict::Vmap(VmapKey::Oifname, set) => format!("oifname vmap @{set}"),
        Verdict::Vmap(VmapKey::Iifname, set) => format!("iifname vmap @{set}"),
        Verdict::Vmap(VmapKey::MetaMark(mask), set) => {
            format!("meta mark and {mask:#010x} vmap @{set}")
        }
    });
    out.join(" ")
}

fn ip_family(f: IpFamily) -> &'static str {
    match f {
        IpFamily::V4 => "ipv4",
        IpFamily::V6 => "ipv6",
    }
}

fn ip_word(f: IpFamily) -> &'static str {
    match f {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        n => n.to_string(),
    }
}

fn icmp_word(l4: Option<u8>) -> &'static str {
    if l4 == Some(58) { "icmpv6" } else { "icmp" }
}

fn ct_states(bits: u32) -> String {
    let names = [
        (ct_state::INVALID, "invalid"),
        (ct_state::ESTABLISHED, "established"),
        (ct_state::RELATED, "related"),
        (ct_state::NEW, "new"),
    ];
    names
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn chain_header(c: &ChainSpec) -> Option<String> {
    c.base.map(|b| {
        format!(
            "type filter hook {} priority {}; policy accept;",
            b.hook.as_str(),
            b.priority
        )
    })
}

fn set_block(out: &mut String, plan: &Plan, s: &SetSpec) {
    let kind = if s.name.is_verdict_map() {
        "map"
    } else {
        "set"
    };
    let _ = writeln!(out, "\t{kind} {} {{", s.name);
    if s.name.is_verdict_map() {
        let _ = writeln!(out, "\t\ttype {} : verdict", s.key.nft_name());
    } else {
        let _ = writeln!(out, "\t\ttype {}", s.key.nft_name());
    }
    let elems: Vec<String> = plan
        .elems(s.name)
        .map(|(e, to)| match to {
            Some(c) => format!("{e} : jump {c}"),
            None => e.to_string(),
        })
        .collect();
    if !elems.is_empty() {
        let _ = writeln!(out, "\t\telements = {{ {} }}", elems.join(", "));
    }
    let _ = writeln!(out, "\t}}");
}

/// One table as an `nft -f` script that creates it from nothing.
pub fn render_table(plan: &Plan, family: Family) -> String {
    let mut out = format!("table {} {} {{\n", family.as_str(), plan.table);
    for s in plan.sets().filter(|s| s.name.family() == family) {
        set_block(&mut out, plan, s);
    }
    for c in plan.chains().filter(|c| c.name.family() == family) {
        let _ = writeln!(out, "\tchain {} {{", c.name);
        if let Some(h) = chain_header(c) {
            let _ = writeln!(out, "\t\t{h}");
        }
        for r in plan.rules(c.name) {
            let _ = writeln!(out, "\t\t{} comment \"{}\"", rule_body(r), r.comment);
        }
        let _ = writeln!(out, "\t}}");
    }
    out.push_str("}\n");
    out
}

/// Every table of the plan as an `nft -f` script.
pub fn render(plan: &Plan) -> String {
    let mut out = render_table(plan, Family::Inet);
    if plan.uses(Family::Bridge) {
        out.push_str(&render_table(plan, Family::Bridge));
    }
    out
}

/// Rules of one chain, one per line (for focused goldens).
pub fn render_chain(plan: &Plan, chain: ChainName) -> String {
    plan.rules(chain)
        .map(|r| format!("{} comment \"{}\"\n", rule_body(r), r.comment))
        .collect()
}

/// Keys of the plan in render order, for debugging output.
pub fn keys(plan: &Plan) -> Vec<String> {
    plan.objs
        .iter()
        .map(|(k, o)| match (k, o) {
            (Key::Rule(c, id), _) => format!("rule {c} {id}"),
            (Key::Chain(c), _) => format!("chain {c}"),
            (Key::Set(s), _) => format!("set {s}"),
            (Key::Elem(s, e), Obj::MapElem(c)) => format!("elem {s} {e} : {c}"),
            (Key::Elem(s, e), _) => format!("elem {s} {e}"),
        })
        .collect()
}
