//! Real packets through the inet table of the routed layout: a verdict map dispatching
//! on the output interface, and the conntrack-mark fast path for established
//! connections, with its cut when a permission goes.

use super::inspect::{
    blocked, commit, ct_marks, each_instance_drops_its_own_port, packets, passes,
};
use super::layout::CT_MASK;
use super::ops::*;
use crate::common::{
    RoutedTopology, TcpEchoServer, TcpStreamProbe, any_v6, netns_or_skip, wait_until,
};
use secgroupd::compile::plan::{
    AddrField, ChainName, CtDir, Elem, Family, Hook, IpFamily, Match, RuleId, RuleSpec, SetName,
    Stmt, Verdict, VmapKey, ct_state,
};
use secgroupd::nft::Op;
use std::net::IpAddr;
use std::time::Duration;

const FWD: ChainName = ChainName::Forward;
const I1: ChainName = ChainName::Instance(1);
const I2: ChainName = ChainName::Instance(2);

fn tcp_drop(chain: ChainName, port: u16) -> RuleSpec {
    rule(
        chain,
        RuleId::Tail(0),
        vec![
            Match::L4Proto(6),
            Match::Dport {
                from: port,
                to: port,
            },
        ],
        Verdict::Drop,
    )
}

/// (a) `oifname vmap @dispatch_out` jumps to the chain of the element of the interface
/// the packet leaves by, and only for that interface; deleting the element stops it.
#[test]
fn output_interface_map_dispatches_to_the_instance_chain() {
    if !netns_or_skip() {
        return;
    }
    let topo = RoutedTopology::new(2);
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
    let ops = vec![
        Op::AddTable(Family::Inet),
        chain(FWD, Some((Hook::Forward, 0))),
        chain(I1, None),
        chain(I2, None),
        set(SetName::DispatchOut),
        append(rule(
            FWD,
            RuleId::Tail(0),
            vec![],
            Verdict::Vmap(VmapKey::Oifname, SetName::DispatchOut),
        )),
        append(tcp_drop(I1, 8080)),
        append(tcp_drop(I2, 8081)),
        map_elem(SetName::DispatchOut, ifname("tap1"), I1),
        map_elem(SetName::DispatchOut, ifname("tap2"), I2),
    ];
    commit(&topo.host, &ops);
    each_instance_drops_its_own_port(client, i1, i2);
    assert!(packets(&topo.host, Family::Inet, "inst_1 tail 0") > 0);
    assert!(packets(&topo.host, Family::Inet, "inst_2 tail 0") > 0);

    commit(
        &topo.host,
        &[Op::DelElems(SetName::DispatchOut, vec![ifname("tap1")])],
    );
    assert!(
        passes(client, i1.addr(false), 8080),
        "no element for tap1: no instance chain"
    );
    assert!(
        blocked(client, i2.addr(false), 8081),
        "tap2's element still dispatches"
    );
}

fn est() -> Match {
    Match::CtState(ct_state::ESTABLISHED | ct_state::RELATED)
}

/// Another table marks every new connection with a bit outside secgroupd's mask, before
/// secgroupd's chains see it (priority -10): secgroupd's marks must keep it.
const OTHER_MARK: u32 = 0x4000_0000;
const PREMARK: &str = "table inet premark {
    chain forward {
        type filter hook forward priority -10; policy accept;
        ct state new ct mark set ct mark or 0x40000000
    }
}";

/// The routed layout's forward chain (as `compile::build` makes it, with a counter on
/// every head rule to see which one let a packet through), one instance with a group
/// whose grants mark connections, and the sets the marks live in.
fn cut_layout(client: IpAddr, client6: IpAddr) -> Vec<Op> {
    use RuleId::{Grant, Head, Jump, Tail};
    let g1 = ChainName::Group(1);
    let lp = |f| SetName::LivePairs(f);
    let mut ops = vec![
        Op::AddTable(Family::Inet),
        chain(FWD, Some((Hook::Forward, 0))),
        chain(g1, None),
        chain(I1, None),
        set(SetName::Live),
        set(lp(IpFamily::V4)),
        set(lp(IpFamily::V6)),
        set(M4),
        set(M6),
        set(SetName::DispatchOut),
    ];
    let mut fwd = vec![
        rule(
            FWD,
            Head(0),
            vec![
                est(),
                Match::CtMark {
                    mask: CT_MASK,
                    value: 0,
                },
            ],
            Verdict::Accept,
        ),
        rule(
            FWD,
            Head(1),
            vec![
                est(),
                Match::CtMarkIn {
                    mask: CT_MASK,
                    set: SetName::Live,
                },
            ],
            Verdict::Accept,
        ),
    ];
    let pairs = [
        (2, CtDir::Original, IpFamily::V4, AddrField::Saddr),
        (3, CtDir::Reply, IpFamily::V4, AddrField::Daddr),
        (4, CtDir::Original, IpFamily::V6, AddrField::Saddr),
        (5, CtDir::Reply, IpFamily::V6, AddrField::Daddr),
    ];
    for (n, dir, family, field) in pairs {
        let m = Match::CtMarkAddrIn {
            mask: CT_MASK,
            family,
            field,
            set: lp(family),
        };
        let ms = vec![est(), Match::CtDirection(dir), Match::NfProto(family), m];
        fwd.push(rule(FWD, Head(n), ms, Verdict::Accept));
    }
    fwd.push(rule(
        FWD,
        Head(6),
        vec![est(), Match::CtDirection(CtDir::Reply)],
        Verdict::Drop,
    ));
    fwd.push(rule(
        FWD,
        Tail(0),
        vec![],
        Verdict::Vmap(VmapKey::Oifname, SetName::DispatchOut),
    ));
    ops.extend(fwd.into_iter().map(append));
    let grant = |id: u32, fam: IpFamily, src: Match, port: u16| {
        let mut r = rule(
            g1,
            Grant(id, 0),
            vec![
                Match::NfProto(fam),
                src,
                Match::L4Proto(6),
                Match::Dport {
                    from: port,
                    to: port,
                },
            ],
            Verdict::Accept,
        );
        r.stmts = vec![Stmt::SetCtMark {
            mask: CT_MASK,
            value: id,
        }]
        .into();
        append(r)
    };
    ops.extend([
        grant(0x2a, IpFamily::V4, Match::Saddr(client.into()), 8080),
        grant(0x2b, IpFamily::V4, Match::SaddrIn(IpFamily::V4, M4), 8081),
        grant(0x2c, IpFamily::V6, Match::SaddrIn(IpFamily::V6, M6), 8081),
        append(rule(I1, Jump(1), vec![], Verdict::Jump(g1))),
        append(rule(I1, Tail(0), vec![], Verdict::Drop)),
        elems(SetName::Live, [Elem::Mark(0x2a)]),
        elems(lp(IpFamily::V4), [pair(0x2b, client)]),
        elems(lp(IpFamily::V6), [pair(0x2c, client6)]),
        elems(M4, [addr(client)]),
        elems(M6, [addr(client6)]),
        map_elem(SetName::DispatchOut, ifname("tap1"), I1),
    ]);
    ops
}

fn addr(a: IpAddr) -> Elem {
    match a {
        IpAddr::V4(a) => Elem::V4(a),
        IpAddr::V6(a) => Elem::V6(a),
    }
}

fn pair(mark: u32, a: IpAddr) -> Elem {
    match a {
        IpAddr::V4(a) => Elem::MarkV4(mark, a),
        IpAddr::V6(a) => Elem::MarkV6(mark, a),
    }
}

/// (b), (c): connections admitted by a grant are marked (keeping another table's bit
/// outside the mask); their established packets pass by `ct mark and M @live` or by
/// `ct mark and M . ip saddr|daddr @live_pairs4/6`, in both directions, before anything
/// that would drop them; and removing the mark (or the mark and address) from its set
/// cuts the connection at once: its replies by `ct direction reply drop`, its original
/// packets by the instance's final drop once the grant rule or membership is gone.
/// Connections of other grants, and connections no grant admitted, keep flowing.
#[test]
fn conntrack_marks_keep_admitted_connections_and_cut_revoked_ones() {
    if !netns_or_skip() {
        return;
    }
    let topo = RoutedTopology::new(1);
    let (host, i1, client) = (&topo.host, topo.instance(1), &topo.client);
    let _s80 = TcpEchoServer::start(&i1.ns, any_v6(), 8080);
    let _s81 = TcpEchoServer::start(&i1.ns, any_v6(), 8081);
    let _own = TcpEchoServer::start(&client.ns, any_v6(), 9090);
    host.exec_with_stdin(&["nft", "-f", "-"], PREMARK);
    let (c4, c6) = (client.addr(false), client.addr(true));
    commit(host, &cut_layout(c4, c6));

    let t = Duration::from_secs(5);
    let stream = |from: &crate::common::Netns, to: IpAddr, port| {
        TcpStreamProbe::start(from, to, port, t)
            .unwrap_or_else(|e| panic!("connect to {to}:{port}: {e}"))
    };
    let a = stream(&client.ns, i1.addr(false), 8080); // grant 0x2a, in `live`
    let b = stream(&client.ns, i1.addr(false), 8081); // grant 0x2b, pair in `live_pairs4`
    let c = stream(&client.ns, i1.addr(true), 8081); // grant 0x2c, pair in `live_pairs6`
    let own = stream(&i1.ns, c4, 9090); // the instance's own connection: no grant
    for (p, what) in [(&a, "a"), (&b, "b"), (&c, "c"), (&own, "own")] {
        assert!(p.flowing(t), "stream {what} does not flow: {:?}", p.error());
    }
    let pk = |c: &str| packets(host, Family::Inet, c);
    // Established packets of each direction passed by the fast path...
    assert!(
        pk("hook_forward head 0") > 0,
        "own connection: ct mark & M == 0"
    );
    assert!(pk("hook_forward head 1") > 0, "stream a: @live");
    for h in 2..=5 {
        assert!(
            pk(&format!("hook_forward head {h}")) > 0,
            "head {h}: @live_pairs"
        );
    }
    // ...and none was dropped.
    assert_eq!(pk("hook_forward head 6"), 0);
    assert_eq!(pk("inst_1 tail 0"), 0);
    // Each connection carries its grant's mark, and the other table's bit.
    assert_eq!(ct_marks(host, false, 8080), [OTHER_MARK | 0x2a]);
    assert_eq!(ct_marks(host, false, 8081), [OTHER_MARK | 0x2b]);
    assert_eq!(ct_marks(host, true, 8081), [OTHER_MARK | 0x2c]);
    assert_eq!(ct_marks(host, false, 9090), [OTHER_MARK]);

    let cut = |p: &TcpStreamProbe| wait_until(t, || p.stalled(Duration::from_millis(300)));

    // (c) The client leaves the source group: its address goes from the member set and
    // from the pairs of the grant. Stream b stops; the others go on.
    commit(
        host,
        &[
            Op::DelElems(SetName::LivePairs(IpFamily::V4), vec![pair(0x2b, c4)]),
            Op::DelElems(M4, vec![addr(c4)]),
        ],
    );
    assert!(cut(&b), "stream b still flows");
    for (p, what) in [(&a, "a"), (&c, "c"), (&own, "own")] {
        assert!(
            p.flowing(t),
            "stream {what} stopped with b: {:?}",
            p.error()
        );
    }
    let (replies, originals) = (pk("hook_forward head 6"), pk("inst_1 tail 0"));
    assert!(
        replies > 0,
        "b's replies dropped by `ct direction reply drop`"
    );
    assert!(
        originals > 0,
        "b's original packets dropped by the instance's final drop"
    );

    // (b) Grant 0x2a is revoked: its rule and its mark in `live` go. Stream a stops.
    let t1 = super::ns::in_netns(host, |bk| {
        secgroupd::nft::Backend::dump(bk, super::T, Family::Inet).expect("dump")
    });
    let grant = handle_of(&t1, "grp_1 grant 42");
    commit(
        host,
        &[
            Op::DelRule {
                chain: ChainName::Group(1),
                handle: grant,
            },
            Op::DelElems(SetName::Live, vec![Elem::Mark(0x2a)]),
        ],
    );
    assert!(cut(&a), "stream a still flows");
    for (p, what) in [(&c, "c"), (&own, "own")] {
        assert!(
            p.flowing(t),
            "stream {what} stopped with a: {:?}",
            p.error()
        );
    }
    assert!(pk("hook_forward head 6") > replies);
    assert!(pk("inst_1 tail 0") > originals);
    assert_eq!(
        ct_marks(host, false, 8080),
        [OTHER_MARK | 0x2a],
        "the mark stays"
    );

    // (c, IPv6) Only the pair goes, the grant and the membership stay: the original
    // packets are admitted again by the grant, but the replies are dropped, and that
    // alone cuts the connection.
    commit(
        host,
        &[Op::DelElems(
            SetName::LivePairs(IpFamily::V6),
            vec![pair(0x2c, c6)],
        )],
    );
    assert!(cut(&c), "stream c still flows");
    assert!(
        own.flowing(t),
        "the instance's own connection stopped: {:?}",
        own.error()
    );
}
