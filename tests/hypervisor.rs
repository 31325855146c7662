//! Step 2: hypervisor realism with real packets: IPv6, neighbour discovery, members on
//! other hosts, anti-spoofing, instance lifecycle; routed and bridged.

mod common;

use common::*;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn tcp(from: &Netns, dst: IpAddr, port: u16) -> bool {
    tcp_probe(from, dst, port, PROBE_TIMEOUT)
}
fn udp(from: &Netns, dst: IpAddr, port: u16) -> bool {
    udp_probe(from, dst, port, PROBE_TIMEOUT)
}
fn icmp(from: &Netns, dst: IpAddr) -> bool {
    icmp_probe(from, dst, PROBE_TIMEOUT)
}

both_modes!(routed_ipv6, bridged_ipv6, ipv6);

fn ipv6(mode: Mode) {
    let topo = Topo::new(mode, 1);
    let i1 = topo.instance(1);
    let _t = TcpEchoServer::start(&i1.ns, any_v6(), 80);
    let _u = UdpEchoServer::start(&i1.ns, any_v6(), 53);
    let d = topo.daemon(&[]);
    create_group(&d, "web");
    register(&d, "i-1", i1, &["web"]);
    let (c, a) = (&topo.client().ns, IpAddr::V6(i1.v6));
    let net = format!("{}/128", topo.client().v6);

    // No permission: nothing reaches the instance, but neighbour discovery still works:
    // forget every neighbour, then the instance must still reach its gateway (whose
    // solicitations to it must pass) and, once admitted, the client must reach it.
    assert!(!tcp(c, a, 80) && !udp(c, a, 53) && !icmp(c, a));
    topo.host().exec(&["ip", "-6", "neigh", "flush", "all"]);
    i1.ns.exec(&["ip", "-6", "neigh", "flush", "all"]);
    assert!(
        icmp(&i1.ns, IpAddr::V6(i1.host_v6)),
        "the instance reaches its gateway over IPv6 with no permissions (ND passes)"
    );

    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", &net),
    );
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "udp", "53", "53", &net),
    );
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "icmpv6", "128", "-1", &net),
    );
    assert!(tcp(c, a, 80), "tcp over IPv6 after authorize");
    assert!(udp(c, a, 53));
    assert!(icmp(c, a));
    assert!(
        !tcp(&topo.client2().ns, a, 80),
        "other IPv6 sources are not admitted"
    );
    // An IPv4 permission does not admit IPv6 traffic.
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "22", "22", "0.0.0.0/0"),
    );
    let _s22 = TcpEchoServer::start(&i1.ns, any_v6(), 22);
    assert!(!tcp(c, a, 22));

    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", &net),
    );
    assert!(!tcp(c, a, 80), "revoked");
    assert!(udp(c, a, 53) && icmp(c, a), "the others stay");
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "icmpv6", "128", "-1", &net),
    );
    assert!(!icmp(c, a));
    // ICMPv4 with an IPv6 CIDR is refused.
    assert_eq!(
        api(
            &d,
            "AuthorizeSecurityGroupIngress",
            &cidr("web", "icmp", "8", "-1", &net)
        ),
        Err("InvalidParameterValue".into())
    );
}

/// Elements of every set of the inet table, by set name, from `nft -j`.
fn sets(ns: &Netns, table: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let out = ns.exec(&["nft", "-j", "list", "sets", "inet"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("nft json");
    let mut m = std::collections::BTreeMap::new();
    for item in v["nftables"].as_array().expect("array") {
        let Some(s) = item.get("set") else { continue };
        if s["table"] != table {
            continue;
        }
        let elems = s["elem"]
            .as_array()
            .map(|a| a.iter().map(|e| e.to_string()).collect())
            .unwrap_or_default();
        m.insert(s["name"].as_str().unwrap_or("").to_string(), elems);
    }
    m
}

both_modes!(
    routed_remote_members_are_admitted_through_group_pairs_and_leave_by_one_element,
    bridged_remote_members_are_admitted_through_group_pairs_and_leave_by_one_element,
    remote_members
);

fn remote_members(mode: Mode) {
    let topo = Topo::new(mode, 1);
    let i1 = topo.instance(1);
    let _t = TcpEchoServer::start(&i1.ns, any_v4(), 5432);
    let d = topo.daemon(&[]);
    create_group(&d, "app");
    create_group(&d, "db");
    register(&d, "i-db", i1, &["db"]);
    ok(&d, "AuthorizeSecurityGroupIngress", &pair("db", "app"));
    let c = &topo.client().ns;
    let a: IpAddr = i1.v4.into();
    assert!(!tcp(c, a, 5432));

    // 10,000 members of "app" live on other hosts: the client is one of them.
    let client = topo.client().v4.to_string();
    ok(
        &d,
        "AddGroupMembers",
        &[("GroupName", "app"), ("IpAddress.1", &client)],
    );
    for batch in 0..10 {
        let addrs: Vec<String> = (0..1000)
            .map(|i| format!("10.{}.{}.{}", 100 + batch, i / 250, 1 + i % 250))
            .collect();
        let names: Vec<String> = (1..=addrs.len())
            .map(|i| format!("IpAddress.{i}"))
            .collect();
        let mut p = vec![("GroupName", "app")];
        p.extend(
            names
                .iter()
                .map(|s| s.as_str())
                .zip(addrs.iter().map(|s| s.as_str())),
        );
        ok(&d, "AddGroupMembers", &p);
    }
    assert!(
        tcp(c, a, 5432),
        "a remote member of the source group is admitted"
    );
    assert!(!tcp(&topo.client2().ns, a, 5432), "others are not");

    let before = sets(topo.host(), d.table());
    let t = Instant::now();
    ok(
        &d,
        "RemoveGroupMembers",
        &[("GroupName", "app"), ("IpAddress.1", &client)],
    );
    let took = t.elapsed();
    let after = sets(topo.host(), d.table());
    // Exactly the client's element left the member set (and, in cut mode, the live pair
    // element of the one pair grant); every other element of every set is untouched.
    let mut removed = 0;
    for (name, elems) in &before {
        let now = &after[name];
        let gone: Vec<_> = elems.iter().filter(|e| !now.contains(e)).collect();
        assert!(
            now.iter().all(|e| elems.contains(e)),
            "set {name} gained elements"
        );
        removed += gone.len();
        if !gone.is_empty() {
            assert_eq!(gone.len(), 1, "set {name}: {gone:?}");
            assert!(gone[0].contains(&client), "{gone:?}");
        }
    }
    assert_eq!(removed, 2, "member set and live pair set, one element each");
    assert!(before.values().any(|e| e.len() == 10_001));
    eprintln!("RemoveGroupMembers of 1 of 10,001 members: {took:?}");
    assert!(!tcp(c, a, 5432), "a member that left is no longer admitted");
    let status = ok(&d, "GetStatus", &[]);
    assert!(
        status.contains("<remoteMembers>10000</remoteMembers>"),
        "{status}"
    );
}

/// Sends UDP datagrams from `ns` with source `src` (which must be configured there).
fn send_udp_from(ns: &Netns, src: IpAddr, dst: SocketAddr, n: usize) {
    ns.enter(|| {
        let s = UdpSocket::bind(SocketAddr::new(src, 0)).expect("bind forged source");
        for _ in 0..n {
            let _ = s.send_to(b"forged?", dst);
        }
    });
    std::thread::sleep(Duration::from_millis(200));
}

both_modes!(routed_spoofing, bridged_spoofing, spoofing);

fn spoofing(mode: Mode) {
    let topo = Topo::new(mode, 3);
    let (trusted, db, evil) = (topo.instance(1), topo.instance(2), topo.instance(3));
    let u4 = UdpEchoServer::start(&db.ns, db.v4.into(), 5000);
    let u6 = UdpEchoServer::start(&db.ns, db.v6.into(), 5000);
    let d = topo.daemon(&[]);
    create_group(&d, "trusted");
    create_group(&d, "db");
    create_group(&d, "other");
    register(&d, "i-trusted", trusted, &["trusted"]);
    register(&d, "i-db", db, &["db"]);
    register(&d, "i-evil", evil, &["other"]);
    ok(&d, "AuthorizeSecurityGroupIngress", &pair("db", "trusted"));

    for (real, server, db_addr) in [
        (IpAddr::V4(trusted.v4), &u4, IpAddr::V4(db.v4)),
        (IpAddr::V6(trusted.v6), &u6, IpAddr::V6(db.v6)),
    ] {
        let dst = SocketAddr::new(db_addr, 5000);
        // The real member passes.
        let n0 = server.received();
        send_udp_from(&trusted.ns, real, dst, 5);
        assert!(
            server.received() >= n0 + 5,
            "the real member {real} is admitted"
        );
        // The evil instance forges the member's address: dropped at its interface.
        let plen = if real.is_ipv4() { "32" } else { "128" };
        evil.ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{real}/{plen}"),
            "dev",
            "eth0",
            "nodad",
        ]);
        let n1 = server.received();
        send_udp_from(&evil.ns, real, dst, 5);
        assert_eq!(
            server.received(),
            n1,
            "forged {real} from the evil instance is dropped"
        );
        // Its own address still works for traffic it is allowed to send (to an
        // unfiltered client).
        evil.ns.exec(&[
            "ip",
            "addr",
            "del",
            &format!("{real}/{plen}"),
            "dev",
            "eth0",
        ]);
    }
    let _c = TcpEchoServer::start(&topo.client().ns, any_v4(), 7000);
    assert!(
        tcp(&evil.ns, topo.client().v4.into(), 7000),
        "genuine egress passes"
    );
}

both_modes!(routed_lifecycle, bridged_lifecycle, lifecycle);

fn lifecycle(mode: Mode) {
    let topo = Topo::new(mode, 2);
    let (i1, i2) = (topo.instance(1), topo.instance(2));
    let _servers: Vec<_> = [80u16, 1000, 2000, 3000]
        .iter()
        .map(|p| TcpEchoServer::start(&i1.ns, any_v4(), *p))
        .collect();
    let _db = TcpEchoServer::start(&i2.ns, any_v4(), 5432);
    let d = topo.daemon(&[]);
    for g in ["a", "b", "peers"] {
        create_group(&d, g);
    }
    let c = topo.client().v4.to_string() + "/32";
    for (g, port) in [("a", "80"), ("a", "1000"), ("b", "80"), ("b", "2000")] {
        ok(
            &d,
            "AuthorizeSecurityGroupIngress",
            &cidr(g, "tcp", port, port, &c),
        );
    }
    register(&d, "i-1", i1, &["a", "peers"]);
    register(&d, "i-2", i2, &["peers"]);
    ok(&d, "AuthorizeSecurityGroupIngress", &pair("peers", "peers"));
    let a1: IpAddr = i1.v4.into();
    let cl = &topo.client().ns;
    assert!(tcp(cl, a1, 80) && tcp(cl, a1, 1000) && !tcp(cl, a1, 2000));
    assert!(tcp(&i1.ns, i2.v4.into(), 5432), "peers reach each other");

    // Re-registering with other values is refused; the same values are fine.
    register(&d, "i-1", i1, &["a", "peers"]);
    assert_eq!(
        api(
            &d,
            "RegisterInstance",
            &[
                ("InstanceId", "i-1"),
                ("Interface", "tap9"),
                ("IpAddress.1", "10.8.8.8"),
                ("GroupName.1", "a")
            ]
        ),
        Err("InvalidInstanceID.Duplicate".into())
    );

    // Swapping groups has no window: a continuous probe of tcp 80 (admitted by both the
    // old and the new groups) never fails, and tcp 3000 (admitted by neither) never
    // passes, while the groups flip 30 times.
    let stop = AtomicBool::new(false);
    let (ok80, bad80, leaked) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    /// Stops the probe even if the swapping below panics (else the scope never ends).
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if tcp_probe(cl, a1, 80, Duration::from_millis(300)) {
                    ok80.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad80.fetch_add(1, Ordering::Relaxed);
                }
                if tcp_probe(cl, a1, 3000, Duration::from_millis(50)) {
                    leaked.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        for i in 0..30 {
            let g = if i % 2 == 0 { "b" } else { "a" };
            ok(
                &d,
                "ModifyInstanceGroups",
                &[
                    ("InstanceId", "i-1"),
                    ("GroupName.1", g),
                    ("GroupName.2", "peers"),
                ],
            );
            std::thread::sleep(Duration::from_millis(30));
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        bad80.load(Ordering::Relaxed),
        0,
        "tcp 80 was admitted throughout"
    );
    assert_eq!(leaked.load(Ordering::Relaxed), 0, "tcp 3000 never passed");
    assert!(ok80.load(Ordering::Relaxed) > 5);
    // Ended on group a (30 flips).
    assert!(tcp(cl, a1, 1000) && !tcp(cl, a1, 2000));

    // Deregistering removes its addresses from member sets and its filtering.
    let before = sets(topo.host(), d.table());
    assert!(
        before
            .values()
            .any(|e| e.iter().any(|x| x.contains(&i1.v4.to_string())))
    );
    ok(&d, "DeregisterInstance", &[("InstanceId", "i-1")]);
    let after = sets(topo.host(), d.table());
    assert!(
        !after
            .values()
            .any(|e| e.iter().any(|x| x.contains(&format!("\"{}\"", i1.v4)))),
        "no set holds the deregistered instance's address: {after:?}"
    );
    assert!(tcp(cl, a1, 2000), "the interface is no longer filtered");
    assert!(
        !tcp(&i1.ns, i2.v4.into(), 5432),
        "it is no longer a peer of i-2"
    );
}

#[test]
fn bridged_mode_refuses_to_start_without_br_netfilter() {
    if !netns_or_skip() {
        return;
    }
    let topo = BridgedTopology::new(1);
    topo.host
        .set_sysctl("net.bridge.bridge-nf-call-iptables", "0");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "socket = \"{0}/s.sock\"\nstate_dir = \"{0}/state\"\nmode = \"bridged\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", topo.host.name(), BIN, "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it must not run unfiltered");
    assert!(stderr.contains("bridge-nf-call-iptables"), "{stderr}");
    assert!(
        !nft_table_exists(&topo.host, "secgroupd"),
        "nothing was installed"
    );
}
