//! Step 1, end to end: the real daemon in a hypervisor topology (routed taps, and a
//! bridge), real TCP, UDP and ICMP between namespaces. A revoke cuts exactly the traffic
//! its permission admitted, for every member interface, and nothing else.

mod common;

use common::*;
use std::net::IpAddr;

fn tcp(from: &Netns, dst: IpAddr, port: u16) -> bool {
    tcp_probe(from, dst, port, PROBE_TIMEOUT)
}
fn udp(from: &Netns, dst: IpAddr, port: u16) -> bool {
    udp_probe(from, dst, port, PROBE_TIMEOUT)
}
fn icmp(from: &Netns, dst: IpAddr) -> bool {
    icmp_probe(from, dst, PROBE_TIMEOUT)
}

both_modes!(
    routed_authorize_opens_and_revoke_cuts_for_every_member_interface,
    bridged_authorize_opens_and_revoke_cuts_for_every_member_interface,
    authorize_opens_and_revoke_cuts
);

fn authorize_opens_and_revoke_cuts(mode: Mode) {
    let topo = Topo::new(mode, 2);
    let (i1, i2) = (topo.instance(1), topo.instance(2));
    let mut servers = Vec::new();
    for n in [i1, i2] {
        for port in [80, 22] {
            servers.push(TcpEchoServer::start(&n.ns, any_v4(), port));
        }
    }
    let udp_servers: Vec<_> = [i1, i2]
        .iter()
        .map(|n| UdpEchoServer::start(&n.ns, any_v4(), 53))
        .collect();
    let d = topo.daemon(&[]);
    let (c, c2) = (&topo.client().ns, &topo.client2().ns);
    let client_net = format!("{}/32", topo.client().v4);
    let (a1, a2): (IpAddr, IpAddr) = (i1.v4.into(), i2.v4.into());

    // Not registered: not filtered.
    assert!(tcp(c, a1, 80) && udp(c, a1, 53) && icmp(c, a1));

    create_group(&d, "web");
    register(&d, "i-1", i1, &["web"]);
    register(&d, "i-2", i2, &["web"]);
    // Registered, no permission: everything to the instances is dropped.
    for a in [a1, a2] {
        assert!(!tcp(c, a, 80), "tcp 80 to {a} before authorize");
        assert!(!tcp(c, a, 22));
        assert!(!udp(c, a, 53));
        assert!(!icmp(c, a));
    }
    let udp_before: Vec<u64> = udp_servers.iter().map(|u| u.received()).collect();

    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", &client_net),
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
        &cidr("web", "icmp", "-1", "-1", &client_net),
    );
    for a in [a1, a2] {
        assert!(tcp(c, a, 80), "tcp 80 to {a} after authorize");
        assert!(tcp(c, a, 22));
        assert!(udp(c, a, 53));
        assert!(icmp(c, a));
        // client2 is outside the client's /32.
        assert!(!tcp(c2, a, 80), "tcp 80 from outside the CIDR");
        assert!(tcp(c2, a, 22));
        assert!(!icmp(c2, a));
    }
    assert!(
        udp_servers
            .iter()
            .zip(&udp_before)
            .all(|(u, b)| u.received() > *b)
    );

    // The revoke is answered after the kernel commit: no waiting before probing.
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", &client_net),
    );
    for a in [a1, a2] {
        assert!(!tcp(c, a, 80), "tcp 80 to {a} after revoke");
        assert!(tcp(c, a, 22), "tcp 22 still admitted");
        assert!(udp(c, a, 53), "udp still admitted");
        assert!(icmp(c, a), "icmp still admitted");
    }
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "icmp", "-1", "-1", &client_net),
    );
    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "udp", "50", "60", "0.0.0.0/0"),
    );
    for a in [a1, a2] {
        assert!(!icmp(c, a));
        assert!(!udp(c, a, 53));
        assert!(tcp(c, a, 22));
    }
}

both_modes!(
    routed_group_pair_admits_members_and_its_revoke_cuts_them,
    bridged_group_pair_admits_members_and_its_revoke_cuts_them,
    group_pair
);

fn group_pair(mode: Mode) {
    let topo = Topo::new(mode, 2);
    let (web, db) = (topo.instance(1), topo.instance(2));
    let _s = TcpEchoServer::start(&db.ns, any_v4(), 5432);
    let _u = UdpEchoServer::start(&db.ns, any_v4(), 5353);
    let _c = TcpEchoServer::start(&topo.client().ns, any_v4(), 8080);
    let d = topo.daemon(&[]);
    create_group(&d, "web");
    create_group(&d, "db");
    register(&d, "i-web", web, &["web"]);
    register(&d, "i-db", db, &["db"]);
    let dbv4: IpAddr = db.v4.into();
    assert!(!tcp(&web.ns, dbv4, 5432));

    ok(&d, "AuthorizeSecurityGroupIngress", &pair("db", "web"));
    assert!(tcp(&web.ns, dbv4, 5432), "member of web reaches db");
    assert!(udp(&web.ns, dbv4, 5353));
    assert!(icmp(&web.ns, dbv4));
    assert!(!tcp(&topo.client().ns, dbv4, 5432), "non-member does not");
    // Replies to connections the instance opened pass, whatever its groups say.
    assert!(tcp(&db.ns, topo.client().v4.into(), 8080));

    // The source group is in use while the pair exists.
    assert_eq!(
        api(&d, "DeleteSecurityGroup", &[("GroupName", "web")]),
        Err("InvalidGroup.InUse".into())
    );
    ok(&d, "RevokeSecurityGroupIngress", &pair("db", "web"));
    assert!(!tcp(&web.ns, dbv4, 5432), "pair revoked");
    assert!(!icmp(&web.ns, dbv4));
    assert_eq!(
        api(&d, "RevokeSecurityGroupIngress", &pair("db", "web")),
        Err("InvalidPermission.NotFound".into())
    );
}

#[test]
fn a_revoke_removes_exactly_one_rule_and_a_wrong_one_changes_nothing() {
    if !netns_or_skip() {
        return;
    }
    let topo = Topo::new(Mode::Routed, 1);
    let i1 = topo.instance(1);
    let _s = TcpEchoServer::start(&i1.ns, any_v4(), 80);
    // keep mode: a CIDR grant is one rule and nothing else (cut adds its live mark).
    let d = topo.daemon(&["established_on_revoke = \"keep\""]);
    create_group(&d, "web");
    register(&d, "i-1", i1, &["web"]);
    for port in ["80", "81", "82", "83"] {
        ok(
            &d,
            "AuthorizeSecurityGroupIngress",
            &cidr("web", "tcp", port, port, "0.0.0.0/0"),
        );
    }
    let before = handles(&d, topo.host());

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
    assert_eq!(handles(&d, topo.host()), before);
    assert!(tcp(&topo.client().ns, i1.v4.into(), 80));

    ok(
        &d,
        "RevokeSecurityGroupIngress",
        &cidr("web", "tcp", "80", "80", "0.0.0.0/0"),
    );
    let after = handles(&d, topo.host());
    let gone: Vec<_> = before.iter().filter(|r| !after.contains(r)).collect();
    assert_eq!(gone.len(), 1, "exactly one rule removed: {gone:?}");
    assert!(gone[0].2.contains("tcp 80 from 0.0.0.0/0"), "{gone:?}");
    assert_eq!(
        after.len(),
        before.len() - 1,
        "no rule added, every other handle kept"
    );
    assert!(!tcp(&topo.client().ns, i1.v4.into(), 80));
}

#[test]
fn restart_and_kill9_keep_the_rule_set_and_other_tables_are_untouched() {
    if !netns_or_skip() {
        return;
    }
    let topo = Topo::new(Mode::Routed, 1);
    let i1 = topo.instance(1);
    let _s80 = TcpEchoServer::start(&i1.ns, any_v4(), 80);
    let _s22 = TcpEchoServer::start(&i1.ns, any_v4(), 22);
    // Someone else's table in the same namespace.
    nft_apply(
        topo.host(),
        "table inet other {\n chain c {\n type filter hook input priority 10; policy accept;\n tcp dport 9 counter accept comment \"not secgroupd's\"\n }\n}\n",
    );
    let other = nft_list(topo.host(), "other");

    let mut d = topo.daemon(&[]);
    create_group(&d, "web");
    register(&d, "i-1", i1, &["web"]);
    ok(
        &d,
        "AuthorizeSecurityGroupIngress",
        &cidr("web", "tcp", "22", "22", "0.0.0.0/0"),
    );
    let before = handles(&d, topo.host());
    let a: IpAddr = i1.v4.into();
    let c = &topo.client().ns;

    // Stopped: enforcement stays exactly as it was.
    d.stop();
    assert!(tcp(c, a, 22));
    assert!(!tcp(c, a, 80));
    assert_eq!(handles(&d, topo.host()), before);

    d.start_again();
    assert_eq!(
        handles(&d, topo.host()),
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
    assert!(tcp(c, a, 80));
    let desc = ok(&d, "DescribeSecurityGroups", &[("GroupName.1", "web")]);
    assert!(desc.contains("<fromPort>80</fromPort>"), "{desc}");

    assert_eq!(
        nft_list(topo.host(), "other"),
        other,
        "another table is untouched"
    );
}

#[test]
fn errors_are_ec2_codes_and_change_nothing() {
    if !netns_or_skip() {
        return;
    }
    let topo = Topo::new(Mode::Routed, 1);
    let d = topo.daemon(&[]);
    create_group(&d, "web");
    let before = handles(&d, topo.host());
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
    assert_eq!(handles(&d, topo.host()), before);
}
