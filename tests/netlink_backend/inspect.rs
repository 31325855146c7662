//! Looking at what packets did: rule counters, conntrack marks; and committing from a
//! test that runs its own topology.

use super::T;
use super::ns::in_netns;
use crate::common::{Netns, Node, PROBE_TIMEOUT, tcp_probe};
use secgroupd::compile::plan::Family;
use secgroupd::nft::{Backend, Committed, Op};
use std::net::IpAddr;
use std::time::Duration;

/// Commits `ops` with a backend in `ns` (the host namespace of a topology).
pub fn commit(ns: &Netns, ops: &[Op]) -> Committed {
    in_netns(ns, |b| b.commit(T, ops, None)).unwrap_or_else(|e| panic!("commit: {e}"))
}

/// Packets counted by the rule with this comment in secgroupd's table of `family`.
pub fn packets(ns: &Netns, family: Family, comment: &str) -> u64 {
    let listing = ns.exec(&["nft", "list", "table", family.as_str(), T]);
    let tail = format!(" comment \"{comment}\"");
    let line = listing
        .lines()
        .find(|l| l.ends_with(&tail))
        .unwrap_or_else(|| panic!("no rule {comment:?} in\n{listing}"));
    let mut words = line.split_whitespace();
    words
        .find(|w| *w == "packets")
        .and_then(|_| words.next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("rule {comment:?} has no counter: {line}"))
}

/// The conntrack marks of the TCP connections to `dport` in `ns` (`conntrack -L`).
pub fn ct_marks(ns: &Netns, v6: bool, dport: u16) -> Vec<u32> {
    let port = dport.to_string();
    let family = if v6 { "ipv6" } else { "ipv4" };
    let out = ns.exec(&[
        "conntrack",
        "-L",
        "-f",
        family,
        "-p",
        "tcp",
        "--dport",
        &port,
    ]);
    out.lines()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("mark=")))
        .map(|m| m.parse().unwrap_or_else(|_| panic!("conntrack mark {m:?}")))
        .collect()
}

/// How long a probe that should pass may take. Generous, because other builds on the
/// machine can delay a handshake; a probe that should be blocked costs its whole timeout,
/// so it gets the harness's short one.
pub const PASS_TIMEOUT: Duration = Duration::from_secs(3);

/// A TCP echo from `ns` to `dst:port` works.
pub fn passes(ns: &Netns, dst: IpAddr, port: u16) -> bool {
    tcp_probe(ns, dst, port, PASS_TIMEOUT)
}

/// No TCP echo from `ns` to `dst:port` within the harness's probe timeout.
pub fn blocked(ns: &Netns, dst: IpAddr, port: u16) -> bool {
    !tcp_probe(ns, dst, port, PROBE_TIMEOUT)
}

/// The two-instance check both dispatch tests make, over IPv4 and IPv6: `inst_1` drops
/// 8080 and admits 8081, `inst_2` the other way round, so each packet met its own
/// instance's chain and no other.
pub fn each_instance_drops_its_own_port(client: &Netns, i1: &Node, i2: &Node) {
    for v6 in [false, true] {
        assert!(
            blocked(client, i1.addr(v6), 8080),
            "inst_1 drops 8080 (v6: {v6})"
        );
        assert!(
            passes(client, i1.addr(v6), 8081),
            "inst_1 admits 8081 (v6: {v6})"
        );
        assert!(
            passes(client, i2.addr(v6), 8080),
            "inst_2 admits 8080 (v6: {v6})"
        );
        assert!(
            blocked(client, i2.addr(v6), 8081),
            "inst_2 drops 8081 (v6: {v6})"
        );
    }
}
