//! Renders a plan as nft text: the golden form for tests, what `secgroupd --print-plan`
//! shows operators, and what the benchmark feeds to `nft -f` as the full-reload baseline.

use super::plan::{
    ChainName, ChainSpec, Hook, IpFamily, Key, Match, Obj, Plan, RuleSpec, SetSpec, Verdict,
    ct_state,
};
use std::fmt::Write;

/// The rule without its comment, as nft writes it.
pub fn rule_body(rule: &RuleSpec) -> String {
    let mut out = Vec::new();
    let mut l4: Option<u8> = None;
    for m in &rule.matches {
        out.push(match m {
            Match::NfProto(f) => format!("meta nfproto {}", family(*f)),
            Match::L4Proto(p) => {
                l4 = Some(*p);
                format!("meta l4proto {}", proto_name(*p))
            }
            Match::L4ProtoIn(set) => format!("meta l4proto @{set}"),
            Match::Saddr(net) => match net {
                ipnet::IpNet::V4(_) => format!("ip saddr {net}"),
                ipnet::IpNet::V6(_) => format!("ip6 saddr {net}"),
            },
            Match::SaddrIn(IpFamily::V4, set) => format!("ip saddr @{set}"),
            Match::SaddrIn(IpFamily::V6, set) => format!("ip6 saddr @{set}"),
            Match::Dport { from, to } if from == to => format!("th dport {from}"),
            Match::Dport { from, to } => format!("th dport {from}-{to}"),
            Match::IcmpType(t) => format!("{} type {t}", icmp_word(l4)),
            Match::IcmpCode(c) => format!("{} code {c}", icmp_word(l4)),
            Match::Oifname(name) => format!("oifname \"{name}\""),
            Match::CtState(bits) => format!("ct state {}", ct_states(*bits)),
        });
    }
    if rule.counter {
        out.push("counter".into());
    }
    out.push(match rule.verdict {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Jump(c) => format!("jump {c}"),
    });
    out.join(" ")
}

fn family(f: IpFamily) -> &'static str {
    match f {
        IpFamily::V4 => "ipv4",
        IpFamily::V6 => "ipv6",
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
        let hook = match b.hook {
            Hook::Forward => "forward",
            Hook::Output => "output",
        };
        format!(
            "type filter hook {hook} priority {}; policy accept;",
            b.priority
        )
    })
}

fn set_block(out: &mut String, plan: &Plan, s: &SetSpec) {
    let _ = writeln!(out, "\tset {} {{", s.name);
    let _ = writeln!(out, "\t\ttype {}", s.key.nft_name());
    let elems: Vec<String> = plan.elems(s.name).map(|e| e.to_string()).collect();
    if !elems.is_empty() {
        let _ = writeln!(out, "\t\telements = {{ {} }}", elems.join(", "));
    }
    let _ = writeln!(out, "\t}}");
}

/// The whole table as an `nft -f` script that creates it from nothing.
pub fn render(plan: &Plan) -> String {
    let mut out = format!("table inet {} {{\n", plan.table);
    for s in plan.sets() {
        set_block(&mut out, plan, s);
    }
    // Chains first without rules, so that jumps to chains defined later are accepted.
    let chains: Vec<&ChainSpec> = plan.chains().collect();
    for c in &chains {
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
            (Key::Elem(s, e), Obj::Elem) => format!("elem {s} {e}"),
            (Key::Elem(s, e), _) => format!("elem? {s} {e}"),
        })
        .collect()
}
