//! Step 1, end to end: the real daemon in a routed hypervisor topology, real TCP, UDP and
//! ICMP between namespaces. A revoke cuts exactly the traffic its permission admitted,
//! for every member interface, and nothing else.

mod common;

use common::*;
use std::net::IpAddr;

const BIN: &str = env!("CARGO_BIN_EXE_secgroupd");

/// Calls an action; Ok(body) on HTTP 200, Err(first EC2 error code) otherwise.
fn api(d: &Daemon, action: &str, params: &[(&str, &str)]) -> Result<String, String> {
    let r = d.call(action, params).expect("control socket");
    if r.status == 200 {
        assert!(r.body.contains(&format!("<{action}Response")), "{}", r.body);
        Ok(r.body)
    } else {
        let code = r
            .body
            .split("<Code>")
            .nth(1)
            .and_then(|s| s.split("</Code>").next())
            .unwrap_or("(no code)")
            .to_string();
        Err(code)
    }
}

fn ok(d: &Daemon, action: &str, params: &[(&str, &str)]) -> String {
    api(d, action, params).unwrap_or_else(|c| panic!("{action} {params:?}: {c}\n{}", d.log()))
}

fn cidr<'a>(
    group: &'a str,
    proto: &'a str,
    from: &'a str,
    to: &'a str,
    cidr: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("GroupName", group),
        ("IpProtocol", proto),
        ("FromPort", from),
        ("ToPort", to),
        ("CidrIp", cidr),
    ]
}

fn create_group(d: &Daemon, name: &str) {
    ok(
        d,
        "CreateSecurityGroup",
        &[("GroupName", name), ("GroupDescription", "test group")],
    );
}

fn register(d: &Daemon, id: &str, node: &Node, groups: &[&str]) {
    let v4 = node.v4.to_string();
    let v6 = node.v6.to_string();
    let mut p = vec![
        ("InstanceId", id),
        ("Interface", node.host_if.as_str()),
        ("IpAddress.1", v4.as_str()),
        ("IpAddress.2", v6.as_str()),
    ];
    let names: Vec<String> = (1..=groups.len())
        .map(|i| format!("GroupName.{i}"))
        .collect();
    for (n, g) in names.iter().zip(groups) {
        p.push((n.as_str(), g));
    }
    ok(d, "RegisterInstance", &p);
}

/// Rule handles of the daemon's table, with their comments, from `nft -j`.
fn handles(d: &Daemon, ns: &Netns) -> Vec<(u64, String, String)> {
    let v = nft_json(ns, d.table());
    let mut out = Vec::new();
    for item in v["nftables"].as_array().unwrap() {
        if let Some(r) = item.get("rule") {
            out.push((
                r["handle"].as_u64().unwrap(),
                r["chain"].as_str().unwrap().to_string(),
                r["comment"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out.sort();
    out
}

struct Probes<'a> {
    from: &'a Netns,
}

impl Probes<'_> {
    fn tcp(&self, dst: IpAddr, port: u16) -> bool {
        tcp_probe(self.from, dst, port, PROBE_TIMEOUT)
    }
    fn udp(&self, dst: IpAddr, port: u16) -> bool {
        udp_probe(self.from, dst, port, PROBE_TIMEOUT)
    }
    fn icmp(&self, dst: IpAddr) -> bool {
        icmp_probe(self.from, dst, PROBE_TIMEOUT)
    }
}

#[test]
fn authorize_opens_and_revoke_cuts_for_every_member_interface() {
    if !netns_or_skip() {
        return;
    }
    let topo = RoutedTopology::new(2);
    let (i1, i2) = (topo.instance(1), topo.instance(2));
    let mut servers = Vec::new();
    for n in [i1, i2] {
        for port in [80, 22] {
            servers.push(TcpEchoServer::start(&n.ns, any_v4(), port));
        }
    }
    let udp: Vec<_> = [i1, i2]
        .iter()
        .map(|n| UdpEchoServer::start(&n.ns, any_v4(), 53))
        .collect();
    let d = Daemon::start(BIN, &topo.host, DaemonOptions::default());
    let c = Probes {
        from: &topo.client.ns,
    };
    let c2 = Probes {
        from: &topo.client2.ns,
    };
    let (a1, a2): (IpAddr, IpAddr) = (i1.v4.into(), i2.v4.into());

    // Not registered: not filtered.
    assert!(c.tcp(a1, 80) && c.udp(a1, 53) && c.icmp(a1));

    create_group(&d, "web");
    register(&d, "i-1", i1, &["web"]);
    register(&d, "i-2", i2, &["web"]);
    // Registered, no permission: everything to the instances is dropped.
    for a in [a1, a2] {
        assert!(!c.tcp(a, 80), "tcp 80 to {a} before authorize");
        assert!(!c.tcp(a, 22));
        assert!(!c.udp(a, 53));
        assert!(!c.icmp(a));
    }
    let udp_before: Vec<u64> = udp.iter().map(|u| u.received()).collect();

    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", "10.9.0.0/24"),
    );
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "22", "22", "0.0.0.0/0"),
    );
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "udp", "50", "60", "0.0.0.0/0"),
    );
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "icmp", "-1", "-1", "10.9.0.2/32"),
    );
    for a in [a1, a2] {
        assert!(c.tcp(a, 80), "tcp 80 to {a} after authorize");
        assert!(c.tcp(a, 22));
        assert!(c.udp(a, 53));
        assert!(c.icmp(a));
        // client2 (10.9.1.2) is outside 10.9.0.0/24 and 10.9.0.2/32.
        assert!(!c2.tcp(a, 80), "tcp 80 from outside the CIDR");
        assert!(c2.tcp(a, 22));
        assert!(!c2.icmp(a));
    }
    assert!(udp.iter().zip(&udp_before).all(|(u, b)| u.received() > *b));

    // The revoke is answered after the kernel commit: no waiting before probing.
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", "10.9.0.0/24"),
    );
    for a in [a1, a2] {
        assert!(!c.tcp(a, 80), "tcp 80 to {a} after revoke");
        assert!(c.tcp(a, 22), "tcp 22 still admitted");
        assert!(c.udp(a, 53), "udp still admitted");
        assert!(c.icmp(a), "icmp still admitted");
    }
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "icmp", "-1", "-1", "10.9.0.2/32"),
    );
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "udp", "50", "60", "0.0.0.0/0"),
    );
    for a in [a1, a2] {
        assert!(!c.icmp(a));
        assert!(!c.udp(a, 53));
        assert!(c.tcp(a, 22));
    }
    drop(d);
}

#[test]
fn group_pair_admits_members_and_its_revoke_cuts_them() {
    if !netns_or_skip() {
        return;
    }
    let topo = RoutedTopology::new(2);
    let (web, db) = (topo.instance(1), topo.instance(2));
    let _s = TcpEchoServer::start(&db.ns, any_v4(), 5432);
    let _u = UdpEchoServer::start(&db.ns, any_v4(), 5353);
    let _c = TcpEchoServer::start(&topo.client.ns, any_v4(), 8080);
    let d = Daemon::start(BIN, &topo.host, DaemonOptions::default());
    create_group(&d, "web");
    create_group(&d, "db");
    register(&d, "i-web", web, &["web"]);
    register(&d, "i-db", db, &["db"]);
    let from_web = Probes { from: &web.ns };
    let from_client = Probes {
        from: &topo.client.ns,
    };
    let dbv4: IpAddr = db.v4.into();
    assert!(!from_web.tcp(dbv4, 5432));

    let pair = [
        ("GroupName", "db"),
        ("SourceSecurityGroupName", "web"),
        ("SourceSecurityGroupOwnerId", "000000000000"),
    ];
    ok(&d, "AuthorizeSecurityGroupIngress", &pair);
    assert!(from_web.tcp(dbv4, 5432), "member of web reaches db");
    assert!(from_web.udp(dbv4, 5353));
    assert!(from_web.icmp(dbv4));
    assert!(!from_client.tcp(dbv4, 5432), "non-member does not");
    // Replies to connections the instance opened pass, whatever its groups say.
    assert!(Probes { from: &db.ns }.tcp(topo.client.v4.into(), 8080));

    // The source group is in use while the pair exists.
    assert_eq!(
        api(&d, "DeleteSecurityGroup", &[("GroupName", "web")]),
        Err("InvalidGroup.InUse".into())
    );
    ok(&d, "RevokeSecurityGroupIngress", &pair);
    assert!(!from_web.tcp(dbv4, 5432), "pair revoked");
    assert!(!from_web.icmp(dbv4));
    assert_eq!(
        api(&d, "RevokeSecurityGroupIngress", &pair),
        Err("InvalidPermission.NotFound".into())
    );
}

#[test]
fn a_revoke_removes_exactly_one_rule_and_a_wrong_one_changes_nothing() {
    if !netns_or_skip() {
        return;
    }
    let topo = RoutedTopology::new(1);
    let i1 = topo.instance(1);
    let _s = TcpEchoServer::start(&i1.ns, any_v4(), 80);
    let d = Daemon::start(BIN, &topo.host, DaemonOptions::default());
    create_group(&d, "web");
    register(&d, "i-1", i1, &["web"]);
    for port in ["80", "81", "82", "83"] {
        ok(
            &d,
            "AuthorizeSecurityGroupIngress",
            &cidr("web", "tcp", port, port, "0.0.0.0/0"),
        );
    }
    let before = handles(&d, &topo.host);

    // Wrong values: not found, and the kernel is exactly as it was.
    for wrong in [
        cidr("web", "tcp", "80", "81", "0.0.0.0/0"),
        cidr("web", "udp", "80", "80", "0.0.0.0/0"),
        cidr("web", "tcp", "80", "80", "10.0.0.0/8"),
    ] {
        assert_eq!(
            api(&d, "RevokeSecurityGroupIngress", &wrong),
            Err("InvalidPermission.NotFound".into())
        );
    }
    assert_eq!(
        api(
            &d,
            "RevokeSecurityGroupIngress",
            &cidr("nope", "tcp", "80", "80", "0.0.0.0/0")
        ),
        Err("InvalidGroup.NotFound".into())
    );
    assert_eq!(
        api(
            &d,
            "RevokeSecurityGroupIngress",
            &cidr("web", "tcp", "80", "80", "10.0.0.1/8")
        ),
        Err("InvalidParameterValue".into())
    );
    assert_eq!(handles(&d, &topo.host), before);
    assert!(tcp_probe(&topo.client.ns, i1.v4.into(), 80, PROBE_TIMEOUT));

    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", "0.0.0.0/0"),
    );
    let after = handles(&d, &topo.host);
    let gone: Vec<_> = before.iter().filter(|r| !after.contains(r)).collect();
    assert_eq!(gone.len(), 1, "exactly one rule removed: {gone:?}");
    assert!(gone[0].2.contains("tcp 80 from 0.0.0.0/0"), "{gone:?}");
    assert_eq!(
        after.len(),
        before.len() - 1,
        "no rule added, every other handle kept"
    );
    assert!(!tcp_probe(&topo.client.ns, i1.v4.into(), 80, PROBE_TIMEOUT));
}

#[test]
fn restart_and_kill9_keep_the_rule_set_and_other_tables_are_untouched() {
    if !netns_or_skip() {
        return;
    }
    let topo = RoutedTopology::new(1);
    let i1 = topo.instance(1);
    let _s80 = TcpEchoServer::start(&i1.ns, any_v4(), 80);
    let _s22 = TcpEchoServer::start(&i1.ns, any_v4(), 22);
    // Someone else's table in the same namespace.
    nft_apply(
        &topo.host,
        "table inet other {\n chain c {\n type filter hook input priority 10; policy accept;\n tcp dport 9 counter accept comment \"not secgroupd's\"\n }\n}\n",
    );
    let other = nft_list(&topo.host, "other");

    let mut d = Daemon::start(BIN, &topo.host, DaemonOptions::default());
    create_group(&d, "web");
    register(&d, "i-1", i1, &["web"]);
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "22", "22", "0.0.0.0/0"),
    );
    let before = handles(&d, &topo.host);
    let a: IpAddr = i1.v4.into();

    // Stopped: enforcement stays exactly as it was.
    d.stop();
    assert!(tcp_probe(&topo.client.ns, a, 22, PROBE_TIMEOUT));
    assert!(!tcp_probe(&topo.client.ns, a, 80, PROBE_TIMEOUT));
    assert_eq!(handles(&d, &topo.host), before);

    d.start_again();
    assert_eq!(
        handles(&d, &topo.host),
        before,
        "restart keeps every rule and handle"
    );
    let desc = ok(&d, "DescribeSecurityGroups", &[]);
    assert!(desc.contains("<fromPort>22</fromPort>"), "{desc}");

    // An acknowledged change survives kill -9.
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", "0.0.0.0/0"),
    );
    d.kill9();
    d.start_again();
    assert!(tcp_probe(&topo.client.ns, a, 80, PROBE_TIMEOUT));
    let desc = ok(&d, "DescribeSecurityGroups", &[("GroupName.1", "web")]);
    assert!(desc.contains("<fromPort>80</fromPort>"), "{desc}");

    assert_eq!(
        nft_list(&topo.host, "other"),
        other,
        "another table is untouched"
    );
}

#[test]
fn errors_are_ec2_codes_and_change_nothing() {
    if !netns_or_skip() {
        return;
    }
    let topo = RoutedTopology::new(1);
    let d = Daemon::start(BIN, &topo.host, DaemonOptions::default());
    create_group(&d, "web");
    let before = handles(&d, &topo.host);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "CreateSecurityGroup",
            vec![("GroupName", "web"), ("GroupDescription", "x")],
            "InvalidGroup.Duplicate",
        ),
        (
            "DeleteSecurityGroup",
            vec![("GroupName", "nope")],
            "InvalidGroup.NotFound",
        ),
        (
            "AuthorizeSecurityGroupIngress",
            vec![("GroupName", "web")],
            "MissingParameter",
        ),
        (
            "AuthorizeSecurityGroupIngress",
            vec![
                ("GroupName", "web"),
                ("IpProtocol", "tcp"),
                ("FromPort", "1"),
                ("ToPort", "2"),
                ("CidrIp", "0.0.0.0/0"),
                ("SourceSecurityGroupName", "web"),
            ],
            "InvalidParameterCombination",
        ),
        (
            "AuthorizeSecurityGroupIngress",
            vec![
                ("GroupName", "web"),
                ("IpProtocol", "tcp"),
                ("FromPort", "1"),
                ("ToPort", "2"),
                ("CidrIp", "10.0.0.0/33"),
            ],
            "InvalidParameterValue",
        ),
        (
            "AuthorizeSecurityGroupIngress",
            vec![("GroupName", "web"), ("Bogus", "1")],
            "UnknownParameter",
        ),
        (
            "RegisterInstance",
            vec![
                ("InstanceId", "i-1"),
                ("Interface", "much-too-long-name"),
                ("IpAddress.1", "10.1.1.2"),
                ("GroupName.1", "web"),
            ],
            "InvalidParameterValue",
        ),
        (
            "RegisterInstance",
            vec![
                ("InstanceId", "i-1"),
                ("Interface", "tap1"),
                ("IpAddress.1", "10.1.1.2"),
                ("GroupName.1", "nope"),
            ],
            "InvalidGroup.NotFound",
        ),
        (
            "DeregisterInstance",
            vec![("InstanceId", "i-404")],
            "InvalidInstanceID.NotFound",
        ),
        (
            "DeregisterInstance",
            vec![("InstanceId", "")],
            "InvalidInstanceID.Malformed",
        ),
        ("FlyToTheMoon", vec![], "InvalidAction"),
    ];
    for (action, params, code) in cases {
        assert_eq!(
            api(&d, action, &params),
            Err(code.to_string()),
            "{action} {params:?}"
        );
    }
    assert_eq!(handles(&d, &topo.host), before);
}
