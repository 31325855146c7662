//! Self-test of the network-namespace harness in `tests/common`: namespaces come and go,
//! the topologies carry TCP/UDP/ICMP over IPv4 and IPv6, probes fail when a rule in the
//! host namespace drops their traffic, and the daemon helper drives a process through
//! start / stop / kill -9 / restart.
//!
//! Needs root; fails (never silently skips) without it unless SECGROUPD_SKIP_NETNS=1.

mod common;

use common::daemon::{parse_response, render_config};
use common::netns::owner_pid;
use common::*;
use std::net::IpAddr;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Pure parts: no root needed.

#[test]
fn decision_skips_only_when_variable_is_1() {
    let never_called = || -> Result<(), String> { panic!("check must not run when skipping") };
    assert_eq!(netns_decision(Some("1"), never_called), Ok(false));
    // Any other value, or none, means: run, and fail if the prerequisites are missing.
    for var in [None, Some("0"), Some(""), Some("yes"), Some("true")] {
        assert_eq!(netns_decision(var, || Ok(())), Ok(true), "{var:?}");
        let err = netns_decision(var, || Err("not running as root (euid 1000)".into()))
            .expect_err("must fail, not skip");
        assert!(err.contains("not running as root (euid 1000)"), "{err}");
        assert!(err.contains("SECGROUPD_SKIP_NETNS=1"), "{err}");
    }
}

#[test]
fn namespace_names_carry_the_owner_pid() {
    assert_eq!(owner_pid("sgd-host-123-4"), Some(123));
    assert_eq!(owner_pid("sgd-my-role-77-0"), Some(77));
    assert_eq!(owner_pid("sgd-host-x-4"), None);
    assert_eq!(owner_pid("other-host-123-4"), None);
    assert_eq!(owner_pid("sgd-123-4"), None);
}

#[test]
fn rendered_config_is_accepted_by_the_daemon_parser() {
    let opts = DaemonOptions {
        table: "sg_test-1".into(),
        propagation_delay_ms: 0,
        owner_id: "123456789012".into(),
        ..DaemonOptions::default()
    };
    let text = render_config(
        &opts,
        "/tmp/x \"q\"/control.sock".as_ref(),
        "/tmp/x/state".as_ref(),
    );
    let cfg = secgroupd::config::Config::parse("harness.toml".as_ref(), &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(cfg.table, "sg_test-1");
    assert_eq!(cfg.propagation_delay_ms, 0);
    assert_eq!(cfg.owner_id.as_str(), "123456789012");
    assert_eq!(cfg.socket.to_str(), Some("/tmp/x \"q\"/control.sock"));
    assert_eq!(cfg.state_dir.to_str(), Some("/tmp/x/state"));
    // Extra lines are appended verbatim (here: one the parser must refuse).
    let bad = DaemonOptions {
        extra_config: vec!["no_such_key = 1".into()],
        ..DaemonOptions::default()
    };
    let text = render_config(&bad, "/s".as_ref(), "/d".as_ref());
    let err = secgroupd::config::Config::parse("h.toml".as_ref(), &text).unwrap_err();
    assert!(err.to_string().contains("no_such_key"), "{err}");
}

#[test]
fn http_response_parser() {
    let r = parse_response(
        &b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n\r\nhello"[..],
    )
    .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "hello"));
    assert_eq!(r.header("content-type"), Some("text/xml"));
    let r = parse_response(
        &b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"[..],
    )
    .unwrap();
    assert_eq!((r.status, r.body.as_str()), (400, "abcde"));
    let r = parse_response(&b"HTTP/1.1 503 Unavailable\r\n\r\nuntil eof"[..]).unwrap();
    assert_eq!((r.status, r.body.as_str()), (503, "until eof"));
    assert!(parse_response(&b"SSH-2.0-x\r\n"[..]).is_err());
}

// ---------------------------------------------------------------------------------------
// Namespaces

/// Inode of a network-namespace file (`/proc/.../ns/net` or `/var/run/netns/<name>`).
fn ns_inode(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .ino()
}

#[test]
fn netns_lifecycle_exec_and_enter() {
    if !netns_or_skip() {
        return;
    }
    let a = Netns::new("life");
    let b = Netns::new("life");
    assert_ne!(a.name(), b.name());
    let pid = std::process::id();
    assert!(
        a.name().starts_with(&format!("sgd-life-{pid}-")),
        "{}",
        a.name()
    );
    assert!(netns_list().contains(&a.name().to_string()));

    // exec runs inside: a fresh namespace has only lo, and lo is up.
    let links = a.exec(&["ip", "-o", "link", "show"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    // The non-panicking variant reports status and stderr.
    let err = a
        .try_exec(&["ip", "link", "show", "dev", "nonexistent0"])
        .unwrap_err();
    assert!(err.status.is_some() && !err.stderr.is_empty(), "{err}");
    assert!(
        std::panic::catch_unwind(|| a.exec(&["false"])).is_err(),
        "exec must panic on failure"
    );

    // enter: the closure's thread is in the namespace, the caller's thread is not.
    let target = ns_inode(&format!("/var/run/netns/{}", a.name()));
    let mine = ns_inode("/proc/thread-self/ns/net");
    let inside = a.enter(|| ns_inode("/proc/thread-self/ns/net"));
    assert_eq!(inside, target);
    assert_ne!(mine, target);
    assert_eq!(ns_inode("/proc/thread-self/ns/net"), mine, "caller moved");
    // Borrowing from the caller works, and panics propagate.
    let local = String::from("borrowed");
    assert_eq!(a.enter(|| local.len()), 8);
    assert!(std::panic::catch_unwind(|| a.enter(|| panic!("inside"))).is_err());
    // A socket made inside keeps the namespace: an address only `a` has can be bound.
    a.ip(&["addr", "add", "192.0.2.77/32", "dev", "lo"])
        .unwrap();
    let sock = a.enter(|| std::net::UdpSocket::bind("192.0.2.77:0"));
    assert!(sock.is_ok(), "{sock:?}");
    let sock_b = b.enter(|| std::net::UdpSocket::bind("192.0.2.77:0"));
    assert!(
        sock_b.is_err(),
        "address must not exist in another namespace"
    );
    // Sysctls are per namespace.
    a.set_sysctl("net.ipv4.ip_forward", "1");
    assert_eq!(a.sysctl("net.ipv4.ip_forward"), "1");
    assert_eq!(b.sysctl("net.ipv4.ip_forward"), "0");
    drop(sock);

    let (na, nb) = (a.name().to_string(), b.name().to_string());
    drop(a);
    drop(b);
    assert!(!netns_exists(&na) && !netns_exists(&nb));
    assert!(!netns_list().iter().any(|n| *n == na || *n == nb));

    // Deleted on panic too.
    let name = std::sync::Mutex::new(String::new());
    let r = std::panic::catch_unwind(|| {
        let ns = Netns::new("panicky");
        *name.lock().unwrap() = ns.name().to_string();
        panic!("test panic while the namespace exists");
    });
    assert!(r.is_err());
    let name = name.into_inner().unwrap();
    assert!(name.starts_with("sgd-panicky-"));
    assert!(!netns_exists(&name), "{name} left behind after a panic");
}

// ---------------------------------------------------------------------------------------
// Routed topology: connectivity, then a drop rule in the host namespace.

const T: Duration = PROBE_TIMEOUT;

/// What kinds of traffic reach `dst` from `src` (port numbers as in the test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reach {
    tcp_open: bool,
    tcp_blocked: bool,
    udp_open: bool,
    udp_blocked: bool,
    icmp: bool,
}

const TCP_OPEN: u16 = 8080;
const TCP_BLOCKED: u16 = 8081;
const UDP_OPEN: u16 = 9000;
const UDP_BLOCKED: u16 = 9001;

fn reach(src: &Netns, dst: IpAddr) -> Reach {
    Reach {
        tcp_open: tcp_probe(src, dst, TCP_OPEN, T),
        tcp_blocked: tcp_probe(src, dst, TCP_BLOCKED, T),
        udp_open: udp_probe(src, dst, UDP_OPEN, T),
        udp_blocked: udp_probe(src, dst, UDP_BLOCKED, T),
        icmp: icmp_probe(src, dst, T),
    }
}

const ALL: Reach = Reach {
    tcp_open: true,
    tcp_blocked: true,
    udp_open: true,
    udp_blocked: true,
    icmp: true,
};

/// Dual-stack echo servers (bound to `::`) on the four test ports of a node.
fn servers(node: &Node) -> (Vec<TcpEchoServer>, Vec<UdpEchoServer>) {
    (
        vec![
            TcpEchoServer::start(&node.ns, any_v6(), TCP_OPEN),
            TcpEchoServer::start(&node.ns, any_v6(), TCP_BLOCKED),
        ],
        vec![
            UdpEchoServer::start(&node.ns, any_v6(), UDP_OPEN),
            UdpEchoServer::start(&node.ns, any_v6(), UDP_BLOCKED),
        ],
    )
}

const DROP_RULES: &str = "
table inet harness_test {
    chain fw {
        type filter hook forward priority 0; policy accept;
        tcp dport 8081 drop
        udp dport 9001 drop
        ip daddr 10.1.2.2 icmp type echo-request drop
        ip6 daddr fd00:1:2::2 icmpv6 type echo-request drop
    }
}
";

#[test]
fn routed_topology_probes_pass_then_fail_on_host_drop_rule() {
    if !netns_or_skip() {
        return;
    }
    let (topo, setup) = timed(|| RoutedTopology::new(2));
    eprintln!("timing: RoutedTopology::new(2) took {setup:?}");
    let names = topo.netns_names();
    assert_eq!(names.len(), 5);
    for n in &names {
        assert!(netns_exists(n), "{n}");
    }

    // Shape: host forwards; tapK/cl0/cl1 live in the host with their peers in the nodes.
    assert_eq!(topo.host.sysctl("net.ipv4.ip_forward"), "1");
    assert_eq!(topo.host.sysctl("net.ipv6.conf.all.forwarding"), "1");
    for node in topo.nodes() {
        let link = topo
            .host
            .ip(&["-d", "link", "show", "dev", &node.host_if])
            .unwrap();
        assert!(link.contains("veth"), "{link}");
        assert!(
            link.contains(&format!("link-netns {}", node.ns.name())),
            "{} peer not in {}: {link}",
            node.host_if,
            node.ns.name()
        );
    }
    assert_eq!(topo.instance(2).host_if, "tap2");
    assert_eq!(topo.instance(2).v4.to_string(), "10.1.2.2");
    assert_eq!(topo.instance(2).host_v6.to_string(), "fd00:1:2::1");
    assert_eq!(topo.client.host_if, "cl0");
    assert_eq!(topo.client2.host_if, "cl1");
    assert_eq!(topo.client2.v6.to_string(), "fd00:9:1::2");

    let inst_servers: Vec<_> = topo.instances.iter().map(servers).collect();
    let clients = [&topo.client, &topo.client2];

    // 1. No firewall: everything reaches every instance, over IPv4 and IPv6.
    let t = Instant::now();
    for src in clients {
        for inst in &topo.instances {
            for dst in inst.addrs() {
                let r = reach(&src.ns, dst);
                assert_eq!(r, ALL, "{} -> {} ({dst})", src.role, inst.role);
            }
        }
    }
    eprintln!("timing: 40 successful probes took {:?}", t.elapsed());
    // And the other way round, instance to client.
    for dst in topo.client.addrs() {
        assert!(
            icmp_probe(&topo.instance(1).ns, dst, T),
            "inst1 -> client {dst}"
        );
    }

    // 2. A drop rule in the host namespace's forward hook only.
    nft_apply(&topo.host, DROP_RULES);
    let root_tables = common::netns::run(&["nft", "list", "tables"]).unwrap();
    assert!(!root_tables.contains("harness_test"), "rule leaked to root");

    let udp_blocked_before = inst_servers[0].1[1].received();
    for src in clients {
        for (k, inst) in topo.instances.iter().enumerate() {
            for dst in inst.addrs() {
                let r = reach(&src.ns, dst);
                let expected = Reach {
                    tcp_open: true,
                    tcp_blocked: false,
                    udp_open: true,
                    udp_blocked: false,
                    icmp: k == 0, // echo requests to inst2 are dropped
                };
                assert_eq!(r, expected, "{} -> {} ({dst})", src.role, inst.role);
            }
        }
    }
    // The blocked UDP datagrams never reached the server: dropped on the way.
    assert_eq!(inst_servers[0].1[1].received(), udp_blocked_before);
    // Forward-only: the host itself still reaches inst2.
    for dst in topo.instance(2).addrs() {
        assert!(icmp_probe(&topo.host, dst, T), "host -> inst2 {dst}");
    }

    // Timing of a blocked probe (bounded by the timeout).
    let dst = topo.instance(1).addr(false);
    let (ok, blocked) = timed(|| tcp_probe(&topo.client.ns, dst, TCP_BLOCKED, T));
    assert!(!ok);
    let (ok, blocked_icmp) = timed(|| icmp_probe(&topo.client.ns, topo.instance(2).addr(true), T));
    assert!(!ok);
    eprintln!("timing: blocked TCP probe {blocked:?}, blocked ICMPv6 probe {blocked_icmp:?}");
    assert!(blocked < T + Duration::from_millis(300), "{blocked:?}");
    let err = tcp_probe_result(&topo.client.ns, dst, TCP_BLOCKED, T).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");

    // 3. Rule removed: everything flows again.
    topo.host
        .exec(&["nft", "delete", "table", "inet", "harness_test"]);
    for src in clients {
        for inst in &topo.instances {
            for dst in inst.addrs() {
                assert!(
                    wait_until(Duration::from_secs(3), || reach(&src.ns, dst) == ALL),
                    "{} -> {} ({dst}) after removing the rule",
                    src.role,
                    inst.role
                );
            }
        }
    }

    // 4. Everything is gone afterwards.
    drop(inst_servers);
    let (_, teardown) = timed(|| drop(topo));
    eprintln!("timing: teardown took {teardown:?}");
    let left = netns_list();
    for n in &names {
        assert!(!left.contains(n), "{n} still exists after drop: {left:?}");
    }
}

#[test]
fn probes_fail_without_a_listener_and_servers_count() {
    if !netns_or_skip() {
        return;
    }
    let topo = RoutedTopology::new(1);
    let inst = topo.instance(1);
    // Nothing listens: TCP is reset, UDP gets port unreachable, both quickly.
    for dst in inst.addrs() {
        let (ok, took) = timed(|| tcp_probe(&topo.client.ns, dst, 7777, T));
        assert!(!ok);
        assert!(took < T, "refused should be fast, took {took:?}");
        assert!(!udp_probe(&topo.client.ns, dst, 7777, T));
    }
    // Unroutable destination: no answer.
    assert!(!icmp_probe(
        &topo.client.ns,
        "10.1.99.2".parse().unwrap(),
        T
    ));
    // Ephemeral ports, counters, specific bind addresses.
    let tcp = TcpEchoServer::start(&inst.ns, inst.addr(false), 0);
    let udp = UdpEchoServer::start(&inst.ns, inst.addr(true), 0);
    assert_ne!(tcp.port(), 0);
    assert!(tcp_probe(&topo.client.ns, inst.addr(false), tcp.port(), T));
    assert!(tcp_probe(&topo.client2.ns, inst.addr(false), tcp.port(), T));
    assert_eq!(tcp.accepted(), 2);
    for _ in 0..3 {
        assert!(udp_probe(&topo.client.ns, inst.addr(true), udp.port(), T));
    }
    assert_eq!(udp.received(), 3);
    // Each UDP probe comes from a source port of its own (a new conntrack flow).
    let peers = udp.peers();
    let mut ports: Vec<u16> = peers.iter().map(|p| p.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "{peers:?}");
    assert!(
        peers.iter().all(|p| p.ip() == topo.client.addr(true)),
        "{peers:?}"
    );
    // Bound to the IPv6 address only: not reachable over IPv4.
    assert!(!udp_probe(&topo.client.ns, inst.addr(false), udp.port(), T));
}

#[test]
fn tcp_stream_probe_sees_stall_and_recovery() {
    if !netns_or_skip() {
        return;
    }
    let topo = RoutedTopology::new(1);
    let inst = topo.instance(1);
    let _srv = TcpEchoServer::start(&inst.ns, any_v6(), 8443);
    for v6 in [false, true] {
        let stream = TcpStreamProbe::start(&topo.client.ns, inst.addr(v6), 8443, T).unwrap();
        assert!(stream.flowing(Duration::from_secs(1)), "v6={v6}");
        // Block the established connection in the host.
        nft_apply(
            &topo.host,
            "table inet harness_test {
                chain fw {
                    type filter hook forward priority 0;
                    tcp dport 8443 drop
                }
            }",
        );
        // Let echoes already in flight arrive before measuring.
        std::thread::sleep(Duration::from_millis(100));
        assert!(stream.stalled(Duration::from_millis(600)), "v6={v6}");
        topo.host
            .exec(&["nft", "delete", "table", "inet", "harness_test"]);
        // TCP retransmission backoff decides when data moves again.
        assert!(stream.flowing(Duration::from_secs(5)), "v6={v6}");
        assert_eq!(stream.error(), None);
    }
}

// ---------------------------------------------------------------------------------------
// Bridged topology

#[test]
fn bridged_topology_connectivity_and_bridge_filter() {
    if !netns_or_skip() {
        return;
    }
    let (topo, setup) = timed(|| BridgedTopology::new(2));
    eprintln!("timing: BridgedTopology::new(2) took {setup:?}");
    let names = topo.netns_names();
    for node in topo.nodes() {
        let link = topo
            .host
            .ip(&["-d", "link", "show", "dev", &node.host_if])
            .unwrap();
        assert!(link.contains("master br0"), "{link}");
    }
    assert_eq!(topo.instance(1).v4.to_string(), "10.2.0.11");
    assert_eq!(topo.client.v6.to_string(), "fd00:2::100");
    let _s: Vec<_> = topo.instances.iter().map(servers).collect();
    for src in [&topo.client, &topo.client2, topo.instance(2)] {
        for dst in topo.instance(1).addrs() {
            assert_eq!(reach(&src.ns, dst), ALL, "{} -> inst1 {dst}", src.role);
        }
    }
    // Same L2 segment: the client learned inst1's MAC directly (no router in between).
    let neigh = topo
        .client
        .ns
        .ip(&["neigh", "show", "dev", "eth0"])
        .unwrap();
    assert!(neigh.contains(&topo.instance(1).mac()), "{neigh}");

    // A bridge-family rule in the host drops one port between bridge ports.
    nft_apply(
        &topo.host,
        "table bridge harness_test {
            chain fw {
                type filter hook forward priority 0;
                tcp dport 8081 drop
            }
        }",
    );
    for dst in topo.instance(1).addrs() {
        let r = reach(&topo.client.ns, dst);
        assert!(
            r.tcp_open && !r.tcp_blocked && r.udp_open && r.icmp,
            "{dst}: {r:?}"
        );
    }
    drop(_s);
    drop(topo);
    let left = netns_list();
    assert!(names.iter().all(|n| !left.contains(n)), "{left:?}");
}

// ---------------------------------------------------------------------------------------
// Daemon helper, driven with a stand-in for secgroupd: this test binary itself, re-run
// through a tiny wrapper script, serves the control socket like the daemon would.

const FAKE_ENV: &str = "SGD_HARNESS_FAKE_DAEMON_CONFIG";

/// Not a test on its own: the body of the fake daemon when this binary is re-run with
/// SGD_HARNESS_FAKE_DAEMON_CONFIG set (by `daemon_helper_drives_a_process`). Otherwise
/// it returns at once.
#[test]
fn fake_daemon_entry() {
    let Ok(config) = std::env::var(FAKE_ENV) else {
        return;
    };
    let cfg = secgroupd::config::Config::load(config.as_ref()).expect("fake daemon config");
    extern "C" fn on_term(_: libc::c_int) {
        let msg = b"fake secgroupd: SIGTERM, exiting\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(0);
        }
    }
    // SAFETY: installing a handler that only calls async-signal-safe functions.
    unsafe { libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t) };
    // Record each run in the state dir, like a real store would persist state.
    let runs = cfg.state_dir.join("runs");
    let mut n = std::fs::read_to_string(&runs).unwrap_or_default();
    n.push_str("run\n");
    std::fs::write(&runs, &n).unwrap();
    let netns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let _ = std::fs::remove_file(&cfg.socket);
    let listener = std::os::unix::net::UnixListener::bind(&cfg.socket).unwrap();
    eprintln!(
        "fake secgroupd: pid {} table {} netns {} listening",
        std::process::id(),
        cfg.table,
        netns.display()
    );
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        use std::io::{BufRead, Write};
        let mut r = std::io::BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let mut h = String::new();
        while r.read_line(&mut h).is_ok_and(|n| n > 2) {
            h.clear();
        }
        let body = format!("<fake request=\"{}\"/>", line.trim_end());
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }
}

#[test]
fn daemon_helper_drives_a_process() {
    if !netns_or_skip() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let host = Netns::new("dhost");
    let scripts = tempfile::tempdir().unwrap();
    let wrapper = scripts.path().join("fake-secgroupd");
    let exe = std::env::current_exe().unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ \"$1\" = --config ] || exit 64\n\
             exec env {FAKE_ENV}=\"$2\" '{}' --exact fake_daemon_entry --nocapture --test-threads=1\n",
            exe.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let opts = DaemonOptions {
        table: "fake_table".into(),
        ..DaemonOptions::default()
    };
    let (mut d, took) = timed(|| Daemon::start(&wrapper, &host, opts));
    eprintln!("timing: fake daemon ready after {took:?}");
    assert!(d.is_running());
    // It runs inside the host namespace.
    let ns_link = format!(
        "net:[{}]",
        ns_inode(&format!("/var/run/netns/{}", host.name()))
    );
    assert!(d.log().contains(&ns_link), "{}", d.log());
    assert!(d.log().contains("table fake_table"), "{}", d.log());
    let r = d.get("/?Action=DescribeSecurityGroups").unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("GET /?Action=DescribeSecurityGroups HTTP/1.1"),
        "{r:?}"
    );
    let r = d
        .call("CreateSecurityGroup", &[("GroupName", "web")])
        .unwrap();
    assert!(r.body.contains("POST / HTTP/1.1"), "{r:?}");

    // SIGTERM: clean exit.
    let status = d.stop().expect("was running");
    assert!(status.success(), "{status}");
    assert!(d.log().contains("SIGTERM"), "{}", d.log());
    assert!(!d.is_running());
    assert!(d.get("/").is_err(), "socket must be dead after stop");

    // Restart: same config and state dir.
    d.start_again();
    let pid1 = d.pid().unwrap();
    d.restart();
    let pid2 = d.pid().unwrap();
    assert_ne!(pid1, pid2);
    let runs = std::fs::read_to_string(d.state_dir().join("runs")).unwrap();
    assert_eq!(runs.lines().count(), 3, "{runs}");
    assert_eq!(d.log().matches("restarting secgroupd").count(), 2);

    // kill -9: gone without cleanup.
    d.kill9();
    assert!(!d.is_running());
    // SAFETY: kill with signal 0 only checks existence.
    assert_ne!(unsafe { libc::kill(pid2 as libc::pid_t, 0) }, 0);
    let sock = d.socket_path();
    assert!(sock.exists(), "a killed daemon leaves its socket file");
    assert!(d.get("/").is_err());

    // A process that never becomes ready fails start() with the log in the message.
    let broken = scripts.path().join("broken");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'broken: cannot start' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = std::panic::catch_unwind(|| {
        Daemon::start(&broken, &host, DaemonOptions::default());
    })
    .unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("exited before becoming ready"), "{msg}");
    assert!(msg.contains("broken: cannot start"), "{msg}");
}
