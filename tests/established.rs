//! Step 3: revocation that bites live traffic. Long-lived TCP connections (a client
//! streaming to an instance, and an instance pushing to a client) and ping flows, with
//! `established_on_revoke = "cut"` and `"keep"`, routed and bridged.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const SETTLE: Duration = Duration::from_millis(600);

fn stream(from: &Netns, dst: IpAddr, port: u16) -> TcpStreamProbe {
    let s = TcpStreamProbe::start(from, dst, port, Duration::from_secs(2)).expect("connect");
    assert!(
        s.flowing(Duration::from_secs(2)),
        "stream to {dst}:{port} flows"
    );
    s
}

/// A server in `ns` that pushes bytes to whoever connects, forever: traffic of the reply
/// direction only, to prove a cut stops both directions.
struct Pusher {
    stop: Arc<AtomicBool>,
}

impl Pusher {
    fn start(ns: &Netns, port: u16) -> Pusher {
        let l = ns
            .enter(move || TcpListener::bind(("0.0.0.0", port)))
            .expect("bind");
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        std::thread::spawn(move || {
            l.set_nonblocking(true).unwrap();
            while !s2.load(Ordering::Relaxed) {
                if let Ok((mut c, _)) = l.accept() {
                    let s3 = s2.clone();
                    std::thread::spawn(move || {
                        c.set_write_timeout(Some(Duration::from_millis(50)))
                            .unwrap();
                        while !s3.load(Ordering::Relaxed) {
                            let _ = c.write(&[7u8; 512]);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Pusher { stop }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A client that only reads what a [`Pusher`] sends; counts bytes.
struct Reader {
    got: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Reader {
    fn start(ns: &Netns, dst: IpAddr, port: u16) -> Reader {
        let addr = SocketAddr::new(dst, port);
        let mut c = ns
            .enter(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
            .expect("connect to pusher");
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let got = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (g2, s2) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s2.load(Ordering::Relaxed) {
                if let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    g2.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        });
        let r = Reader { got, stop };
        assert!(r.receiving(Duration::from_secs(2)), "pushed data arrives");
        r
    }
    fn receiving(&self, within: Duration) -> bool {
        let before = self.got.load(Ordering::Relaxed);
        wait_until(within, || self.got.load(Ordering::Relaxed) > before)
    }
    fn stalled(&self, d: Duration) -> bool {
        // Let what was already in flight arrive first.
        std::thread::sleep(Duration::from_millis(100));
        let before = self.got.load(Ordering::Relaxed);
        std::thread::sleep(d);
        self.got.load(Ordering::Relaxed) == before
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

both_modes!(routed_cut, bridged_cut, cut);

fn cut(mode: Mode) {
    let topo = Topo::new(mode, 1);
    let i1 = topo.instance(1);
    let _e80 = TcpEchoServer::start(&i1.ns, any_v4(), 80);
    let _e22 = TcpEchoServer::start(&i1.ns, any_v4(), 22);
    let _push = Pusher::start(&i1.ns, 9000);
    let d = topo.daemon(&[]); // cut is the default
    create_group(&d, "web");
    register(&d, "i-1", i1, &["web"]);
    let c = &topo.client().ns;
    let me = format!("{}/32", topo.client().v4);
    let a: IpAddr = i1.v4.into();
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", &me),
    );
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "22", "22", &me),
    );
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "22", "22", "0.0.0.0/0"),
    );
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "9000", "9000", &me),
    );

    let s80 = stream(c, a, 80);
    let s22 = stream(c, a, 22);
    let pushed = Reader::start(c, a, 9000);

    // Revoke the only permission admitting port 80: the connection stops at once.
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", &me),
    );
    assert!(
        s80.stalled(SETTLE),
        "an established connection admitted only by the revoked permission stops"
    );
    // Port 22 is still admitted by the other permission: it keeps flowing.
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "tcp", "22", "22", &me),
    );
    assert!(
        s22.flowing(SETTLE),
        "a connection another permission admits keeps flowing"
    );
    // The instance-to-client direction is cut too.
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "tcp", "9000", "9000", &me),
    );
    assert!(pushed.stalled(SETTLE), "the reply direction stops too");

    // A re-grant admits new connections.
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", &me),
    );
    assert!(
        tcp_probe(c, a, 80, PROBE_TIMEOUT),
        "a connection opened after a re-grant works"
    );

    // The cut did not scan conntrack: the entries are still there, just not admitted.
    let ct = topo
        .host()
        .exec(&["conntrack", "-L", "-p", "tcp", "--dport", "80"]);
    assert!(
        !ct.trim().is_empty(),
        "conntrack entries are left alone: {ct}"
    );

    // Ping flows: a long ping session (one echo id) stops when its permission goes.
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "icmp", "-1", "-1", &me),
    );
    assert!(icmp_probe(c, a, PROBE_TIMEOUT));
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "icmp", "-1", "-1", &me),
    );
    assert!(!icmp_probe(c, a, PROBE_TIMEOUT));
}

both_modes!(routed_keep, bridged_keep, keep);

fn keep(mode: Mode) {
    let topo = Topo::new(mode, 1);
    let i1 = topo.instance(1);
    let _e80 = TcpEchoServer::start(&i1.ns, any_v4(), 80);
    let _push = Pusher::start(&i1.ns, 9000);
    let d = topo.daemon(&["established_on_revoke = \"keep\""]);
    create_group(&d, "web");
    register(&d, "i-1", i1, &["web"]);
    let c = &topo.client().ns;
    let me = format!("{}/32", topo.client().v4);
    let a: IpAddr = i1.v4.into();
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", &me),
    );
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "9000", "9000", &me),
    );
    let s80 = stream(c, a, 80);
    let pushed = Reader::start(c, a, 9000);
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", &me),
    );
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "tcp", "9000", "9000", &me),
    );
    assert!(s80.flowing(SETTLE), "keep: existing connections continue");
    assert!(pushed.receiving(SETTLE));
    assert!(
        !tcp_probe(c, a, 80, PROBE_TIMEOUT),
        "keep: new connections are refused"
    );
}

both_modes!(
    routed_members_leaving,
    bridged_members_leaving,
    members_leaving
);

/// A member that leaves the source group of a pair loses its connections: deregistered,
/// removed as a remote member, or moved to another group. Others keep theirs.
fn members_leaving(mode: Mode) {
    let topo = Topo::new(mode, 3);
    let (web1, web2, db) = (topo.instance(1), topo.instance(2), topo.instance(3));
    let _e = TcpEchoServer::start(&db.ns, any_v4(), 5432);
    let d = topo.daemon(&[]);
    for g in ["web", "db", "other"] {
        create_group(&d, g);
    }
    register(&d, "i-web1", web1, &["web"]);
    register(&d, "i-web2", web2, &["web"]);
    register(&d, "i-db", db, &["db"]);
    ok(&d, "AuthorizeSecurityGroupIngress", &pair("db", "web"));
    let client = topo.client().v4.to_string();
    ok(
        &d,
        "AddGroupMembers",
        &[("GroupName", "web"), ("IpAddress.1", &client)],
    );
    let a: IpAddr = db.v4.into();

    let s1 = stream(&web1.ns, a, 5432);
    let s2 = stream(&web2.ns, a, 5432);
    let sc = stream(&topo.client().ns, a, 5432);

    ok(
        &d,
        "RemoveGroupMembers",
        &[("GroupName", "web"), ("IpAddress.1", &client)],
    );
    assert!(sc.stalled(SETTLE), "a remote member that left is cut");
    assert!(
        s1.flowing(SETTLE) && s2.flowing(SETTLE),
        "the other members keep flowing"
    );

    ok(
        &d,
        "ModifyInstanceGroups",
        &[("InstanceId", "i-web2"), ("GroupName.1", "other")],
    );
    assert!(s2.stalled(SETTLE), "a member moved to another group is cut");
    assert!(s1.flowing(SETTLE));

    ok(&d, "DeregisterInstance", &[("InstanceId", "i-web1")]);
    assert!(s1.stalled(SETTLE), "a deregistered member is cut");
}
