//! Step 4: promises that tests try to break: nothing acknowledged is lost across
//! `kill -9`, a corrupt store fails closed, restarts do not disturb traffic, and drift in
//! the kernel is repaired within a second.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// (chain, comment) of every rule of the daemon's table: its identity, handles aside.
fn identities(d: &Daemon, ns: &Netns) -> BTreeSet<(String, String)> {
    handles(d, ns).into_iter().map(|(_, c, m)| (c, m)).collect()
}

/// TCP ports with a grant in group web, according to DescribeSecurityGroups.
fn granted_ports(d: &Daemon) -> BTreeSet<u16> {
    let body = ok(d, "DescribeSecurityGroups", &[("GroupName.1", "web")]);
    body.split("<fromPort>")
        .skip(1)
        .filter_map(|s| s.split("</fromPort>").next()?.parse().ok())
        .collect()
}

/// Ports with a grant rule in the kernel (from the rule comments).
fn kernel_ports(d: &Daemon, ns: &Netns) -> Vec<u16> {
    let mut v: Vec<u16> = handles(d, ns)
        .iter()
        .filter(|(_, chain, _)| chain.starts_with("grp_"))
        .filter_map(|(_, _, comment)| {
            let after = comment.split(" tcp ").nth(1)?;
            after.split(' ').next()?.parse().ok()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn kill9_in_the_middle_of_a_stream_of_changes_loses_nothing_acknowledged() {
    if !netns_or_skip() {
        return;
    }
    let topo = Topo::new(Mode::Routed, 1);
    let mut o = topo.options(&[]);
    o.propagation_delay_ms = 2;
    let mut d = Daemon::start(BIN, topo.host(), o);
    create_group(&d, "web");
    register(&d, "i-1", topo.instance(1), &["web"]);
    const CLIENTS: u16 = 4;
    const ROUNDS: usize = 20;
    // What each client knows for sure: the last acknowledged state of each of its ports,
    // and the port of a request in flight when the daemon died (either outcome is fine).
    let acked: Mutex<BTreeMap<u16, bool>> = Mutex::new(BTreeMap::new());
    let mut seed = 0x9e37_79b9_u64;
    let mut acked_total = 0u64;
    for round in 0..ROUNDS {
        let stop = AtomicBool::new(false);
        let in_flight: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
        let count = AtomicU64::new(0);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = Duration::from_millis(50 + seed % 250);
        std::thread::scope(|s| {
            for client in 0..CLIENTS {
                let (d, acked, in_flight, stop, count) = (&d, &acked, &in_flight, &stop, &count);
                s.spawn(move || {
                    let mut i = 0u16;
                    while !stop.load(Ordering::Relaxed) {
                        let port = 1000 + client * 100 + (i % 50);
                        i = i.wrapping_add(7);
                        let granted = acked.lock().unwrap().get(&port).copied().unwrap_or(false);
                        let action = if granted {
                            "RevokeSecurityGroupIngress"
                        } else {
                            "AuthorizeSecurityGroupIngress"
                        };
                        let p = port.to_string();
                        in_flight.lock().unwrap().insert(port);
                        match d.call(action, &cidr("web", "tcp", &p, &p, "0.0.0.0/0")) {
                            Ok(r) if r.status == 200 => {
                                acked.lock().unwrap().insert(port, !granted);
                                in_flight.lock().unwrap().remove(&port);
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            // Refused (e.g. the daemon died mid-request): unknown outcome.
                            _ => return,
                        }
                    }
                });
            }
            std::thread::sleep(kill_after);
            let pid = d.pid().expect("running") as libc::pid_t;
            // SAFETY: kill(2) on our own child; reaped by kill9 below.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            stop.store(true, Ordering::Relaxed);
        });
        d.kill9();
        acked_total += count.load(Ordering::Relaxed);
        d.start_again();
        let now = granted_ports(&d);
        let uncertain = in_flight.lock().unwrap().clone();
        let mut acked = acked.lock().unwrap();
        for (port, granted) in acked.iter_mut() {
            if uncertain.contains(port) {
                // The request in flight may or may not have landed: adopt what is there.
                *granted = now.contains(port);
                continue;
            }
            assert_eq!(
                now.contains(port),
                *granted,
                "round {round}: acknowledged state of port {port} lost\n{}",
                d.log()
            );
        }
        // Nothing half-applied: the kernel has exactly the persisted grants.
        let kernel = kernel_ports(&d, topo.host());
        let state: Vec<u16> = now.iter().copied().collect();
        assert_eq!(
            kernel, state,
            "round {round}: kernel table equals the state"
        );
    }
    eprintln!("{ROUNDS} rounds of kill -9 survived; {acked_total} acknowledged changes checked");
    assert!(
        acked_total > 100,
        "the clients made progress ({acked_total})"
    );
}

#[test]
fn a_corrupt_store_stops_the_daemon_and_leaves_the_kernel_alone() {
    if !netns_or_skip() {
        return;
    }
    let topo = Topo::new(Mode::Routed, 1);
    let mut d = topo.daemon(&[]);
    create_group(&d, "web");
    register(&d, "i-1", topo.instance(1), &["web"]);
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "22", "22", "0.0.0.0/0"),
    );
    d.stop();
    let kernel = nft_list(topo.host(), d.table());
    for (name, damage) in [
        ("garbage", b"this is not a database".to_vec()),
        ("truncated", Vec::new()),
    ] {
        let db = d.state_dir().join("state.db");
        let wal = d.state_dir().join("state.db-wal");
        let good = std::fs::read(&db).expect("state.db");
        let good_wal = std::fs::read(&wal).ok();
        let bad = if damage.is_empty() {
            good[..good.len() / 2].to_vec()
        } else {
            damage
        };
        std::fs::write(&db, &bad).unwrap();
        let _ = std::fs::remove_file(&wal);
        let out = Command::new("ip")
            .args(["netns", "exec", topo.host().name(), BIN, "--config"])
            .arg(d.config_path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{name}: the daemon must refuse to start"
        );
        assert!(
            stderr.contains("corrupt"),
            "{name}: a clear error: {stderr}"
        );
        assert_eq!(
            nft_list(topo.host(), d.table()),
            kernel,
            "{name}: kernel rules left as they were"
        );
        std::fs::write(&db, &good).unwrap();
        if let Some(w) = &good_wal {
            std::fs::write(&wal, w).unwrap();
        }
    }
    d.start_again();
    assert_eq!(granted_ports(&d), BTreeSet::from([22]));
}

#[test]
fn restarts_do_not_disturb_traffic() {
    if !netns_or_skip() {
        return;
    }
    let topo = Topo::new(Mode::Routed, 1);
    let i1 = topo.instance(1);
    let _s22 = TcpEchoServer::start(&i1.ns, any_v4(), 22);
    let _s80 = TcpEchoServer::start(&i1.ns, any_v4(), 80);
    let mut d = topo.daemon(&[]);
    create_group(&d, "web");
    register(&d, "i-1", i1, &["web"]);
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "22", "22", "0.0.0.0/0"),
    );
    let a: IpAddr = i1.v4.into();
    let c = &topo.client().ns;
    let stop = AtomicBool::new(false);
    let (lost, leaked, probes) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if !tcp_probe(c, a, 22, Duration::from_millis(500)) {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
                if tcp_probe(c, a, 80, Duration::from_millis(30)) {
                    leaked.fetch_add(1, Ordering::Relaxed);
                }
                probes.fetch_add(1, Ordering::Relaxed);
            }
        });
        for _ in 0..5 {
            d.restart();
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
    });
    eprintln!(
        "{} probe pairs during 5 restarts",
        probes.load(Ordering::Relaxed)
    );
    assert_eq!(lost.load(Ordering::Relaxed), 0, "no allowed packet lost");
    assert_eq!(
        leaked.load(Ordering::Relaxed),
        0,
        "no denied packet admitted"
    );
}

#[test]
fn drift_is_repaired_within_a_second() {
    if !netns_or_skip() {
        return;
    }
    let topo = Topo::new(Mode::Routed, 1);
    let i1 = topo.instance(1);
    let _s22 = TcpEchoServer::start(&i1.ns, any_v4(), 22);
    let _s80 = TcpEchoServer::start(&i1.ns, any_v4(), 80);
    nft_apply(
        topo.host(),
        "table ip other {\n chain c {\n type filter hook input priority 0; policy accept;\n counter\n }\n}\n",
    );
    let d = topo.daemon(&[]);
    create_group(&d, "web");
    register(&d, "i-1", i1, &["web"]);
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "22", "22", "0.0.0.0/0"),
    );
    let want = identities(&d, topo.host());
    let other = nft_list_family(topo.host(), "ip", "other");
    let a: IpAddr = i1.v4.into();
    let c = &topo.client().ns;
    let h = |pattern: &str| {
        handles(&d, topo.host())
            .into_iter()
            .find(|(_, _, m)| m.contains(pattern))
            .map(|(h, c, _)| (h, c))
            .expect("rule")
    };
    let table = d.table().to_string();
    let cases = [
        "nft flush table",
        "a deleted rule",
        "a foreign rule",
        "the table deleted",
        "nft flush ruleset",
    ];
    for what in cases {
        // Handles change with every repair: look them up right before breaking things.
        let cmd = match what {
            "nft flush table" => format!("flush table inet {table}"),
            "a deleted rule" => {
                let (handle, chain) = h("tcp 22");
                format!("delete rule inet {table} {chain} handle {handle}")
            }
            "a foreign rule" => format!("insert rule inet {table} inst_1 tcp dport 80 accept"),
            "the table deleted" => format!("delete table inet {table}"),
            _ => "flush ruleset".to_string(),
        };
        let t = Instant::now();
        topo.host().exec(&["sh", "-c", &format!("nft '{cmd}'")]);
        let repaired = wait_until(Duration::from_secs(1), || {
            nft_table_exists(topo.host(), &table) && identities(&d, topo.host()) == want
        });
        let took = t.elapsed();
        assert!(repaired, "{what}: repaired within 1 s\n{}", d.log());
        eprintln!("drift repair after {what}: {took:?}");
        assert!(
            tcp_probe(c, a, 22, PROBE_TIMEOUT),
            "{what}: allowed traffic passes"
        );
        assert!(
            !tcp_probe(c, a, 80, PROBE_TIMEOUT),
            "{what}: denied traffic is denied"
        );
        if what != "nft flush ruleset" {
            assert_eq!(
                nft_list_family(topo.host(), "ip", "other"),
                other,
                "{what}: other tables are untouched"
            );
        }
    }
    assert!(d.log().contains("repaired"), "repairs are logged");
}

fn nft_list_family(ns: &Netns, family: &str, table: &str) -> String {
    ns.exec(&["nft", "list", "table", family, table])
}
