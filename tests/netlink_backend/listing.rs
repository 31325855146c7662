//! What `nft list` shows for secgroupd's objects: goldens, nft's own encoding of the same
//! text, re-reading, and how it differs from `compile::render::rule_body`.

use super::T;
use super::layout::{added_rules, full_layout, plan_of};
use super::ns::Ns;
use secgroupd::compile::plan::{Family, RuleSpec};
use secgroupd::compile::render::{self, rule_body};
use secgroupd::nft::Backend;

const GOLDEN_INET: &str = include_str!("full_inet.nft");
const GOLDEN_BRIDGE: &str = include_str!("full_bridge.nft");

#[test]
fn full_layout_lists_idiomatically_and_rereads() {
    let Some(ns) = Ns::new() else { return };
    let ops = full_layout();
    ns.run(|b| b.commit(T, &ops, None).expect("commit"));
    let inet = ns.list(Family::Inet);
    let bridge = ns.list(Family::Bridge);
    println!("{inet}{bridge}");
    assert_eq!(inet, GOLDEN_INET);
    assert_eq!(bridge, GOLDEN_BRIDGE);

    // The same tables written by hand (the plan's nft text, through nft) list the same:
    // what the backend sends is what nft sends for it, down to the set userdata that
    // nft's listing of marks and interface names depends on.
    let by_hand = Ns::new().expect("second namespace");
    by_hand.nft_script(&render::render(&plan_of(&ops)));
    assert_eq!(
        by_hand.list(Family::Inet),
        inet,
        "nft's own encoding differs"
    );
    assert_eq!(
        by_hand.list(Family::Bridge),
        bridge,
        "nft's own encoding differs"
    );

    // nft reads both listings back (no name, element or statement trips its parser).
    ns.nft(&["delete", "table", "inet", T]);
    ns.nft(&["delete", "table", "bridge", T]);
    ns.nft_script(&format!("{inet}{bridge}"));
    assert_eq!(ns.list(Family::Inet), inet);
    assert_eq!(ns.list(Family::Bridge), bridge);
    ns.check_other();
}

#[test]
fn listing_differs_from_rule_body_only_cosmetically() {
    let Some(ns) = Ns::new() else { return };
    let ops = full_layout();
    ns.run(|b| b.commit(T, &ops, None).expect("commit"));
    let listings = [
        (Family::Inet, ns.list(Family::Inet)),
        (Family::Bridge, ns.list(Family::Bridge)),
    ];
    for r in added_rules(&ops) {
        let listing = &listings
            .iter()
            .find(|(f, _)| *f == r.chain.family())
            .expect("family")
            .1;
        let listed = listed_rule(listing, r);
        let body = rule_body(r);
        assert_eq!(
            canonical(&body),
            canonical(&listed),
            "\nrule_body: {body}\nnft lists: {listed}"
        );
    }
    ns.check_other();
}

/// The listed rule with this rule's comment, without the comment.
fn listed_rule(listing: &str, r: &RuleSpec) -> String {
    let tail = format!(" comment \"{}\"", r.comment);
    let mut found = listing
        .lines()
        .filter_map(|l| l.trim().strip_suffix(tail.as_str()));
    let line = found
        .next()
        .unwrap_or_else(|| panic!("no rule {tail} in\n{listing}"));
    assert!(found.next().is_none(), "two rules {tail}");
    line.to_string()
}

/// How nft 1.0.6 lists a rule differs from [`rule_body`] (the text secgroupd writes and
/// shows operators) in these ways, and only these; `canonical` undoes each of them, so
/// that the two compare equal.
///
/// 1. Counters show their values: `counter packets 12 bytes 960`.
/// 2. Bit operations are written `&` and `|`, not `and` and `or`.
/// 3. A lookup of a masked value names the set after `==`: `ct mark & 0x00ffffff ==
///    @live` for `ct mark and 0x00ffffff @live` (nft reads either). A concatenated
///    lookup has no `==`: `ct mark & 0x00ffffff . ip saddr @live_pairs4`.
/// 4. A protocol match that only serves as the dependency of a later match is left out:
///    `meta nfproto ipv4` (inet) or `meta protocol ip` (bridge) before `ip saddr`, `ip
///    daddr`, `icmp`, and `meta l4proto tcp` before `th dport`, which is then written
///    `tcp dport`: `ip saddr 10.0.0.0/8 tcp dport 80-90` for `meta nfproto ipv4 ip saddr
///    10.0.0.0/8 meta l4proto tcp th dport 80-90`; likewise `udp dport`, `icmp type`,
///    `icmpv6 type`. A protocol match with nothing depending on it stays: `meta nfproto
///    ipv4 counter drop`, `meta protocol ip6 counter drop`, `ip6 saddr :: meta l4proto
///    ipv6-icmp`, and `meta l4proto @pair_protos th dport 1000-2000` (a set of protocols
///    is no dependency nft recognises).
/// 5. ICMP types and codes are named: `icmp type echo-request icmp code
///    net-unreachable`, `icmpv6 type nd-router-solicit`.
/// 6. A single address has no prefix length: `ip saddr 10.1.2.3`, `ip6 saddr ::`.
/// 7. A mark statement's mask includes the value's bits: `ct mark set ct mark &
///    0xff000001 | 0x00000001` for `ct mark set ct mark and 0xff000000 or 0x00000001`
///    (the same operation: the value's bits are set by the `|` anyway). nft prints the
///    kernel's `bitwise` (mask 0xff000000, xor 0x1) that way.
///
/// In chain headers (not part of `rule_body`), priorities are named: `priority filter`
/// (0 in inet, -200 in bridge), `priority mangle` (-150), `priority filter - 5`. In set
/// listings, concatenated elements are one per line.
fn canonical(rule: &str) -> String {
    // (1)
    let mut w: Vec<String> = Vec::new();
    let mut it = rule.split_whitespace().peekable();
    while let Some(t) = it.next() {
        w.push(t.to_string());
        if t == "counter" && it.peek() == Some(&"packets") {
            it.nth(3);
        }
    }
    // (2), (3), (6)
    for t in w.iter_mut() {
        match t.as_str() {
            "&" => *t = "and".into(),
            "|" => *t = "or".into(),
            _ => {}
        }
        for full in ["/32", "/128"] {
            if let Some(a) = t.strip_suffix(full)
                && a.parse::<std::net::IpAddr>().is_ok()
            {
                *t = a.to_string();
            }
        }
    }
    let at_set = |k: usize, w: &[String]| w.get(k + 1).is_some_and(|n| n.starts_with('@'));
    w = (0..w.len())
        .filter(|&k| !(w[k] == "==" && at_set(k, &w)))
        .map(|k| w[k].clone())
        .collect();
    // (4): drop dependencies that a later match implies.
    let implies = |dep: &[&str], later: &[String]| -> bool {
        let words: Vec<&str> = later.iter().map(String::as_str).collect();
        let has = |first: &str| words.contains(&first);
        match dep {
            ["meta", "nfproto", "ipv4"] | ["meta", "protocol", "ip"] => has("ip") || has("icmp"),
            ["meta", "nfproto", "ipv6"] | ["meta", "protocol", "ip6"] => {
                has("ip6") || has("icmpv6")
            }
            _ => false,
        }
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < w.len() {
        let three: Vec<&str> = w[i..(i + 3).min(w.len())]
            .iter()
            .map(String::as_str)
            .collect();
        if three.len() == 3 && implies(&three, &w[i + 3..]) {
            i += 3;
            continue;
        }
        // `meta l4proto P <header of P>`: the header names the protocol.
        let next = w.get(i + 3).map(String::as_str);
        let header = match (three.as_slice(), next) {
            (["meta", "l4proto", "tcp"], Some("th")) => Some("tcp"),
            (["meta", "l4proto", "udp"], Some("th")) => Some("udp"),
            (["meta", "l4proto", "icmp"], Some("icmp")) => Some(""),
            (["meta", "l4proto", "ipv6-icmp"], Some("icmpv6")) => Some(""),
            _ => None,
        };
        if let Some(h) = header {
            if !h.is_empty() {
                out.push(h.into());
                i += 4; // `th` is replaced by the protocol
            } else {
                i += 3;
            }
            continue;
        }
        out.push(w[i].clone());
        i += 1;
    }
    // (5)
    let mut l4 = "";
    for k in 0..out.len() {
        if out[k] == "icmp" || out[k] == "icmpv6" {
            l4 = if out[k] == "icmp" { "icmp" } else { "icmpv6" };
        }
        if k > 0 && (out[k - 1] == "type" || out[k - 1] == "code") {
            let n = match (l4, out[k - 1].as_str(), out[k].as_str()) {
                ("icmp", "type", "echo-reply") => Some(0),
                ("icmp", "type", "destination-unreachable") => Some(3),
                ("icmp", "type", "echo-request") => Some(8),
                ("icmp", "type", "time-exceeded") => Some(11),
                ("icmp", "code", "net-unreachable") => Some(0),
                ("icmpv6", "type", "echo-request") => Some(128),
                ("icmpv6", "type", "echo-reply") => Some(129),
                ("icmpv6", "type", "nd-router-solicit") => Some(133),
                ("icmpv6", "type", "nd-router-advert") => Some(134),
                ("icmpv6", "type", "nd-neighbor-solicit") => Some(135),
                ("icmpv6", "type", "nd-neighbor-advert") => Some(136),
                _ => None,
            };
            if let Some(n) = n {
                out[k] = n.to_string();
            }
        }
    }
    // (7): `KEY set KEY and MASK or VALUE`: the mask without the value's bits.
    for k in 0..out.len().saturating_sub(5) {
        if out[k] == "set"
            && out[k + 3] == "and"
            && out.get(k + 5).map(String::as_str) == Some("or")
        {
            let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok();
            if let (Some(mask), Some(value)) =
                (hex(&out[k + 4]), out.get(k + 6).and_then(|v| hex(v)))
            {
                out[k + 4] = format!("{:#010x}", mask & !value);
            }
        }
    }
    out.join(" ")
}

#[test]
fn canonical_undoes_each_difference() {
    let pairs = [
        (
            "meta nfproto ipv4 ip saddr 10.0.0.0/8 meta l4proto tcp th dport 80-90 counter accept",
            "ip saddr 10.0.0.0/8 tcp dport 80-90 counter packets 3 bytes 180 accept",
        ),
        (
            "meta nfproto ipv4 counter drop",
            "meta nfproto ipv4 counter packets 0 bytes 0 drop",
        ),
        (
            "meta nfproto ipv4 meta l4proto icmp icmp type 8 icmp code 0 accept",
            "icmp type echo-request icmp code net-unreachable accept",
        ),
        (
            "ct mark and 0x00ffffff @live accept",
            "ct mark & 0x00ffffff == @live accept",
        ),
        (
            "ct mark set ct mark and 0xff000000 or 0x00000001 accept",
            "ct mark set ct mark & 0xff000001 | 0x00000001 accept",
        ),
        (
            "meta protocol ip6 ip6 saddr ::/128 accept",
            "ip6 saddr :: accept",
        ),
    ];
    for (body, listed) in pairs {
        assert_eq!(canonical(body), canonical(listed), "{body}");
    }
    assert_ne!(canonical("meta nfproto ipv4 drop"), canonical("drop"));
    assert_ne!(
        canonical("ip saddr 10.0.0.0/8 accept"),
        canonical("ip saddr 10.0.0.0 accept")
    );
}
