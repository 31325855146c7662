//! Real packets through the bridge table of the bridged layout: the port mark that the
//! inet chains dispatch on, and anti-spoofing by input port.

use super::inspect::{
    PASS_TIMEOUT, blocked, commit, each_instance_drops_its_own_port, packets, passes,
};
use super::layout::PKT_MASK;
use super::ops::*;
use crate::common::{
    BridgedTopology, Netns, TcpEchoServer, UdpEchoServer, any_v6, netns_or_skip, udp_probe,
    wait_until,
};
use secgroupd::compile::plan::{
    ChainName, Elem, Family, Hook, IpFamily, Match, RuleId, RuleSpec, SetName, Stmt, Verdict,
    VmapKey,
};
use secgroupd::nft::Op;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

/// br_netfilter hands bridged IP packets to the inet hooks only when asked to, per
/// network namespace (built into this kernel; `bridge-nf-call-*` is per netns since
/// 5.3). The layout depends on it.
fn bridge_nf_call(host: &Netns) {
    for key in ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"] {
        host.set_sysctl(&format!("net.bridge.{key}"), "1");
        assert_eq!(host.sysctl(&format!("net.bridge.{key}")), "1", "{key}");
    }
}

/// (d) The bridge table's forward chain (priority -200, ahead of br_netfilter) sets the
/// packet mark of the port a frame leaves by (`oifname vmap @ports` → `mark_N`); the
/// inet forward chain, which sees only the bridge as output interface, dispatches on
/// that mark (`meta mark and MASK vmap @dispatch_mark` → `inst_N`).
#[test]
fn bridge_port_mark_dispatches_the_inet_chains() {
    if !netns_or_skip() {
        return;
    }
    let topo = BridgedTopology::new(2);
    bridge_nf_call(&topo.host);
    let (i1, i2, client) = (topo.instance(1), topo.instance(2), &topo.client.ns);
    let _servers: Vec<TcpEchoServer> = [8080, 8081]
        .iter()
        .flat_map(|p| {
            [
                TcpEchoServer::start(&i1.ns, any_v6(), *p),
                TcpEchoServer::start(&i2.ns, any_v6(), *p),
            ]
        })
        .collect();
    let (fwd, bfwd) = (ChainName::Forward, ChainName::BridgeForward);
    let mut ops = vec![
        Op::AddTable(Family::Inet),
        Op::AddTable(Family::Bridge),
        chain(fwd, Some((Hook::Forward, 0))),
        chain(bfwd, Some((Hook::Forward, -200))),
        set(SetName::DispatchMark),
        set(SetName::BridgePorts),
        append(rule(
            fwd,
            RuleId::Tail(0),
            vec![],
            Verdict::Vmap(VmapKey::MetaMark(PKT_MASK), SetName::DispatchMark),
        )),
        append(rule(
            bfwd,
            RuleId::Tail(0),
            vec![],
            Verdict::Vmap(VmapKey::Oifname, SetName::BridgePorts),
        )),
    ];
    for (n, port, tap) in [(1, 8080, "tap1"), (2, 8081, "tap2")] {
        let (inst, mark) = (ChainName::Instance(n), ChainName::BridgeMark(n));
        let slot = n << PKT_MASK.trailing_zeros();
        let mut set_mark = rule(mark, RuleId::Head(0), vec![], Verdict::Accept);
        set_mark.stmts = vec![Stmt::SetMetaMark {
            mask: PKT_MASK,
            value: slot,
        }]
        .into();
        ops.extend([
            chain(inst, None),
            chain(mark, None),
            append(set_mark),
            append(rule(
                inst,
                RuleId::Tail(0),
                vec![
                    Match::L4Proto(6),
                    Match::Dport {
                        from: port,
                        to: port,
                    },
                ],
                Verdict::Drop,
            )),
            map_elem(SetName::DispatchMark, Elem::Mark(slot), inst),
            map_elem(SetName::BridgePorts, ifname(tap), mark),
        ]);
    }
    commit(&topo.host, &ops);
    each_instance_drops_its_own_port(client, i1, i2);
    let pk = |f, c: &str| packets(&topo.host, f, c);
    assert!(pk(Family::Bridge, "mark_1 head 0") > 0);
    assert!(pk(Family::Inet, "inst_1 tail 0") > 0);
    assert!(pk(Family::Inet, "inst_2 tail 0") > 0);

    // Without tap1's element in the bridge map, frames to tap1 carry no mark, and the
    // inet map has nothing for them.
    commit(
        &topo.host,
        &[Op::DelElems(SetName::BridgePorts, vec![ifname("tap1")])],
    );
    assert!(
        passes(client, i1.addr(false), 8080),
        "no port mark: no instance chain"
    );
    assert!(
        blocked(client, i2.addr(false), 8081),
        "tap2 is still marked"
    );
}

/// The anti-spoofing chain of one instance, as `compile::build` lays it out.
/// With, like the layout's DHCP exception, one port that a given source may send to
/// (`meta protocol ip ip saddr A udp dport P accept`).
fn spoof_rules(chain: ChainName, own: [IpAddr; 2], exception: (IpAddr, u16)) -> Vec<RuleSpec> {
    use RuleId::{Source, Tail};
    let own_net = |a: IpAddr| Match::Saddr(a.into());
    let fam = |a: &IpAddr| {
        Match::NfProto(if a.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        })
    };
    let mut out: Vec<RuleSpec> = own
        .iter()
        .enumerate()
        .map(|(k, a)| {
            rule(
                chain,
                Source(k as u8),
                vec![fam(a), own_net(*a)],
                Verdict::Accept,
            )
        })
        .collect();
    out.push(rule(
        chain,
        Source(200),
        vec![Match::NfProto(IpFamily::V6), net("fe80::/10")],
        Verdict::Accept,
    ));
    let (src, port) = exception;
    out.push(rule(
        chain,
        Source(202),
        vec![
            v4(),
            Match::Saddr(src.into()),
            Match::L4Proto(17),
            Match::Dport {
                from: port,
                to: port,
            },
        ],
        Verdict::Accept,
    ));
    out.push(rule(chain, Tail(0), vec![v4()], Verdict::Drop));
    out.push(rule(chain, Tail(1), vec![v6()], Verdict::Drop));
    out
}

/// Sends one UDP datagram from `src` (an address of `ns`) to `dst`.
fn send_from(ns: &Netns, src: IpAddr, dst: SocketAddr) {
    ns.enter(move || {
        let s = UdpSocket::bind((src, 0)).unwrap_or_else(|e| panic!("bind {src}: {e}"));
        s.send_to(b"forged?", dst)
            .unwrap_or_else(|e| panic!("send from {src}: {e}"));
    });
}

/// (e) `iifname vmap @spoof_in` in the bridge prerouting chain sends what a port brings
/// in to the instance's chain, where `meta protocol ip ip saddr OWN accept` (and ip6)
/// pass the instance's own addresses and `meta protocol ip drop` (and ip6) the rest.
#[test]
fn bridge_prerouting_drops_forged_sources() {
    if !netns_or_skip() {
        return;
    }
    let topo = BridgedTopology::new(1);
    let (i1, client) = (topo.instance(1), &topo.client);
    let server = UdpEchoServer::start(&client.ns, any_v6(), 9000);
    let dhcp_like = UdpEchoServer::start(&client.ns, any_v6(), 9002);
    let _tcp = TcpEchoServer::start(&client.ns, any_v6(), 9001);
    // Addresses inst1 has but may not send from (secondary, deprecated: never chosen as
    // the source of the probes from its own addresses); its neighbours are static, so
    // that address resolution (which may itself use the forged address) plays no part.
    let forged: [IpAddr; 2] = ["10.2.0.99".parse().unwrap(), "fd00:2::99".parse().unwrap()];
    let mac = client.mac();
    i1.ns
        .ip_batch(&[
            format!("addr add {}/24 dev eth0", forged[0]),
            format!("addr add {}/64 dev eth0 nodad preferred_lft 0", forged[1]),
            format!(
                "neigh replace {} lladdr {mac} dev eth0 nud permanent",
                client.v4
            ),
            format!(
                "neigh replace {} lladdr {mac} dev eth0 nud permanent",
                client.v6
            ),
        ])
        .unwrap_or_else(|e| panic!("{e}"));

    let (pre, spoof) = (ChainName::BridgePrerouting, ChainName::BridgeSpoof(1));
    let mut ops = vec![
        Op::AddTable(Family::Bridge),
        chain(pre, Some((Hook::Prerouting, -200))),
        chain(spoof, None),
        set(SetName::BridgeSpoofIn),
        append(rule(
            pre,
            RuleId::Tail(0),
            vec![],
            Verdict::Vmap(VmapKey::Iifname, SetName::BridgeSpoofIn),
        )),
        map_elem(SetName::BridgeSpoofIn, ifname("tap1"), spoof),
    ];
    ops.extend(
        spoof_rules(spoof, i1.addrs(), (forged[0], 9002))
            .into_iter()
            .map(append),
    );
    commit(&topo.host, &ops);

    // The server is dual-stack: IPv4 peers show as v4-mapped IPv6 addresses.
    let from = |v6: bool| {
        let forged = forged[v6 as usize];
        server
            .peers()
            .iter()
            .filter(|p| p.ip().to_canonical() == forged)
            .count()
    };
    for v6 in [false, true] {
        let dst = SocketAddr::new(client.addr(v6), server.port());
        assert!(
            udp_probe(&i1.ns, client.addr(v6), 9000, PASS_TIMEOUT),
            "own address (v6: {v6})"
        );
        assert!(passes(&i1.ns, client.addr(v6), 9001), "own address, tcp");
        for _ in 0..3 {
            send_from(&i1.ns, forged[v6 as usize], dst);
        }
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(from(v6), 0, "a forged source passed (v6: {v6})");
    }
    // The exception: the forged IPv4 source may send to UDP port 9002, and only there.
    send_from(&i1.ns, forged[0], SocketAddr::new(client.addr(false), 9002));
    assert!(
        wait_until(PASS_TIMEOUT, || dhcp_like.received() > 0),
        "`meta l4proto udp th dport 9002` did not match in the bridge table"
    );
    assert_eq!(from(false), 0);
    let pk = |c: &str| packets(&topo.host, Family::Bridge, c);
    assert!(pk("spoof_1 tail 0") >= 3 && pk("spoof_1 tail 1") >= 3);

    // Without the port's element, nothing filters it: the forged datagrams arrive.
    commit(
        &topo.host,
        &[Op::DelElems(SetName::BridgeSpoofIn, vec![ifname("tap1")])],
    );
    for v6 in [false, true] {
        let dst = SocketAddr::new(client.addr(v6), server.port());
        send_from(&i1.ns, forged[v6 as usize], dst);
        assert!(
            wait_until(PASS_TIMEOUT, || from(v6) > 0),
            "the forged datagram should pass without the element (v6: {v6})"
        );
    }
}
