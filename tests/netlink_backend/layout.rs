//! Every kind of object in one batch: both tables, every chain kind, every set and map
//! kind, every match, both statements, every verdict; and the same as a [`Plan`], so that
//! `compile::render` can write it as nft text to compare with.

use super::T;
use super::ops::*;
use secgroupd::compile::plan::{
    AddrField, ChainName, CtDir, Elem, Family, Hook, IpFamily, Key, Match, Obj, Plan, RuleId,
    RuleSpec, SetName, Stmt, Verdict, VmapKey, ct_state,
};
use secgroupd::nft::Op;

/// The conntrack mark bits of grants, and the packet mark bits of bridge ports.
pub const CT_MASK: u32 = 0x00ff_ffff;
pub const PKT_MASK: u32 = 0x0000_ff00;

const I1: ChainName = ChainName::Instance(1);
const SHARD: ChainName = ChainName::Shard(1, 0);

fn est() -> Match {
    Match::CtState(ct_state::ESTABLISHED | ct_state::RELATED)
}

fn with_stmt(mut r: RuleSpec, s: Stmt) -> RuleSpec {
    let mut v = r.stmts.to_vec();
    v.push(s);
    r.stmts = v.into();
    r
}

fn no_counter(mut r: RuleSpec) -> RuleSpec {
    r.counter = false;
    r
}

/// The established fast path of the forward chain, as `compile::build` lays it out.
fn fast_path() -> Vec<RuleSpec> {
    use RuleId::Head;
    let fwd = ChainName::Forward;
    let mut out = vec![
        rule(
            fwd,
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
            fwd,
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
        out.push(no_counter(rule(
            fwd,
            Head(n),
            vec![
                est(),
                Match::CtDirection(dir),
                Match::NfProto(family),
                Match::CtMarkAddrIn {
                    mask: CT_MASK,
                    family,
                    field,
                    set: SetName::LivePairs(family),
                },
            ],
            Verdict::Accept,
        )));
    }
    out.push(rule(
        fwd,
        Head(6),
        vec![est(), Match::CtDirection(CtDir::Reply)],
        Verdict::Drop,
    ));
    out.push(no_counter(rule(
        fwd,
        Head(10),
        vec![v6(), Match::L4Proto(58), Match::IcmpType(133)],
        Verdict::Accept,
    )));
    out
}

/// An anti-spoofing chain (inet or bridge), as `compile::build` lays it out.
fn spoof(chain: ChainName) -> Vec<RuleSpec> {
    use RuleId::{Source, Tail};
    vec![
        no_counter(rule(
            chain,
            Source(0),
            vec![v4(), net("10.0.0.5/32")],
            Verdict::Accept,
        )),
        no_counter(rule(
            chain,
            Source(1),
            vec![v6(), net("2001:db8::5/128")],
            Verdict::Accept,
        )),
        no_counter(rule(
            chain,
            Source(200),
            vec![v6(), net("fe80::/10")],
            Verdict::Accept,
        )),
        no_counter(rule(
            chain,
            Source(201),
            vec![v6(), net("::/128"), Match::L4Proto(58)],
            Verdict::Accept,
        )),
        no_counter(rule(
            chain,
            Source(202),
            vec![
                v4(),
                net("0.0.0.0/32"),
                Match::L4Proto(17),
                Match::Dport { from: 67, to: 67 },
            ],
            Verdict::Accept,
        )),
        rule(chain, Tail(0), vec![v4()], Verdict::Drop),
        rule(chain, Tail(1), vec![v6()], Verdict::Drop),
    ]
}

fn grants() -> Vec<RuleSpec> {
    use RuleId::Grant;
    let mark = |id: u32| Stmt::SetCtMark {
        mask: CT_MASK,
        value: id,
    };
    let pair = |part: u8, fam: IpFamily, set: SetName| {
        with_stmt(
            rule(
                SHARD,
                Grant(5, part),
                vec![
                    Match::NfProto(fam),
                    Match::SaddrIn(fam, set),
                    Match::L4ProtoIn(SetName::PairProtos),
                ],
                Verdict::Accept,
            ),
            mark(5),
        )
    };
    vec![
        with_stmt(
            rule(
                SHARD,
                Grant(1, 0),
                vec![
                    v4(),
                    net("10.0.0.0/8"),
                    Match::L4Proto(6),
                    Match::Dport { from: 80, to: 90 },
                ],
                Verdict::Accept,
            ),
            mark(1),
        ),
        rule(
            SHARD,
            Grant(2, 0),
            vec![
                v6(),
                net("2001:db8::/32"),
                Match::L4Proto(17),
                Match::Dport { from: 53, to: 53 },
            ],
            Verdict::Accept,
        ),
        rule(
            SHARD,
            Grant(3, 0),
            vec![
                v4(),
                Match::L4Proto(1),
                Match::IcmpType(8),
                Match::IcmpCode(0),
            ],
            Verdict::Accept,
        ),
        rule(
            SHARD,
            Grant(4, 0),
            vec![v6(), Match::L4Proto(58), Match::IcmpType(128)],
            Verdict::Accept,
        ),
        pair(0, IpFamily::V4, M4),
        pair(1, IpFamily::V6, M6),
        rule(
            SHARD,
            Grant(6, 0),
            vec![v4(), net("10.1.2.3/32")],
            Verdict::Accept,
        ),
        rule(
            SHARD,
            Grant(7, 0),
            vec![
                v6(),
                net("2001:db8:1:2::/64"),
                Match::L4ProtoIn(SetName::PairProtos),
                Match::Dport {
                    from: 1000,
                    to: 2000,
                },
            ],
            Verdict::Accept,
        ),
        rule(
            SHARD,
            Grant(8, 0),
            vec![Match::Iifname("tap8".into()), Match::Oifname("tap9".into())],
            Verdict::Drop,
        ),
    ]
}

/// Rules of every chain, each chain's in its order.
fn rules() -> Vec<Vec<RuleSpec>> {
    use RuleId::{Head, Jump, JumpShard, Tail};
    let vmap = |chain, id, key, set| no_counter(rule(chain, id, vec![], Verdict::Vmap(key, set)));
    let mut fwd = fast_path();
    fwd.push(vmap(
        ChainName::Forward,
        Tail(0),
        VmapKey::MetaMark(PKT_MASK),
        SetName::DispatchMark,
    ));
    fwd.push(vmap(
        ChainName::Forward,
        Tail(1),
        VmapKey::Oifname,
        SetName::DispatchOut,
    ));
    vec![
        vec![vmap(
            ChainName::Prerouting,
            Tail(0),
            VmapKey::Iifname,
            SetName::SpoofIn,
        )],
        fwd,
        vec![
            rule(ChainName::Output, Head(0), vec![est()], Verdict::Accept),
            vmap(
                ChainName::Output,
                Tail(0),
                VmapKey::Oifname,
                SetName::DispatchOut,
            ),
        ],
        vec![rule(
            ChainName::Group(1),
            JumpShard(0),
            vec![],
            Verdict::Jump(SHARD),
        )],
        grants(),
        vec![
            rule(I1, Jump(1), vec![], Verdict::Jump(ChainName::Group(1))),
            rule(I1, Tail(0), vec![], Verdict::Drop),
        ],
        spoof(ChainName::Spoof(1)),
        vec![vmap(
            ChainName::BridgePrerouting,
            Tail(0),
            VmapKey::Iifname,
            SetName::BridgeSpoofIn,
        )],
        vec![vmap(
            ChainName::BridgeForward,
            Tail(0),
            VmapKey::Oifname,
            SetName::BridgePorts,
        )],
        vec![no_counter(with_stmt(
            rule(ChainName::BridgeMark(1), Head(0), vec![], Verdict::Accept),
            Stmt::SetMetaMark {
                mask: PKT_MASK,
                value: 0x100,
            },
        ))],
        spoof(ChainName::BridgeSpoof(1)),
    ]
}

/// Both tables with everything. Chains and sets are created in the order a [`Plan`]
/// renders them (nft lists them in creation order); rules of different chains are
/// interleaved, so that handles matched to rules by batch order would show.
pub fn full_layout() -> Vec<Op> {
    let v4 = |s: &str| Elem::V4(s.parse().expect("v4"));
    let v6 = |s: &str| Elem::V6(s.parse().expect("v6"));
    let mut ops = vec![
        Op::AddTable(Family::Inet),
        Op::AddTable(Family::Bridge),
        chain(ChainName::Prerouting, Some((Hook::Prerouting, -150))),
        chain(ChainName::Forward, Some((Hook::Forward, 0))),
        chain(ChainName::Output, Some((Hook::Output, -5))),
        chain(ChainName::Group(1), None),
        chain(SHARD, None),
        chain(I1, None),
        chain(ChainName::Spoof(1), None),
        chain(ChainName::BridgePrerouting, Some((Hook::Prerouting, -200))),
        chain(ChainName::BridgeForward, Some((Hook::Forward, -200))),
        chain(ChainName::BridgeMark(1), None),
        chain(ChainName::BridgeSpoof(1), None),
    ];
    let all_sets = [
        SetName::PairProtos,
        M4,
        M6,
        SetName::Live,
        SetName::LivePairs(IpFamily::V4),
        SetName::LivePairs(IpFamily::V6),
        SetName::DispatchOut,
        SetName::SpoofIn,
        SetName::DispatchMark,
        SetName::BridgePorts,
        SetName::BridgeSpoofIn,
    ];
    ops.extend(all_sets.into_iter().map(set));
    ops.extend([
        elems(SetName::PairProtos, [6, 17, 1, 58].map(Elem::Proto)),
        elems(M4, [v4("10.0.0.1"), v4("10.0.0.2")]),
        elems(M6, [v6("2001:db8::1")]),
        elems(SetName::Live, [Elem::Mark(1), Elem::Mark(5)]),
        elems(
            SetName::LivePairs(IpFamily::V4),
            [
                Elem::MarkV4(5, "10.0.0.1".parse().unwrap()),
                Elem::MarkV4(5, "10.0.0.2".parse().unwrap()),
            ],
        ),
        elems(
            SetName::LivePairs(IpFamily::V6),
            [Elem::MarkV6(5, "2001:db8::1".parse().unwrap())],
        ),
        map_elem(SetName::DispatchOut, ifname("tap1"), I1),
        map_elem(SetName::SpoofIn, ifname("tap1"), ChainName::Spoof(1)),
        map_elem(SetName::DispatchMark, Elem::Mark(0x100), I1),
        map_elem(
            SetName::BridgePorts,
            ifname("tap1"),
            ChainName::BridgeMark(1),
        ),
        map_elem(
            SetName::BridgeSpoofIn,
            ifname("tap1"),
            ChainName::BridgeSpoof(1),
        ),
    ]);
    // Round robin over the chains.
    let mut per_chain: Vec<std::vec::IntoIter<RuleSpec>> =
        rules().into_iter().map(Vec::into_iter).collect();
    loop {
        let before = ops.len();
        for it in &mut per_chain {
            ops.extend(it.next().map(append));
        }
        if ops.len() == before {
            break;
        }
    }
    ops
}

/// The plan whose objects are what `ops` create (additions only).
pub fn plan_of(ops: &[Op]) -> Plan {
    let mut plan = Plan {
        table: T.to_string(),
        ..Plan::default()
    };
    for op in ops {
        match op {
            Op::AddChain(c) => {
                plan.objs.insert(Key::Chain(c.name), Obj::Chain(*c));
            }
            Op::AddSet(s) => {
                plan.objs.insert(Key::Set(s.name), Obj::Set(*s));
            }
            Op::AddElems(s, es) => {
                for (e, to) in es {
                    let o = to.map_or(Obj::Elem, Obj::MapElem);
                    plan.objs.insert(Key::Elem(*s, *e), o);
                }
            }
            Op::AddRule(r, _) => {
                plan.objs
                    .insert(Key::Rule(r.chain, r.id), Obj::Rule(Box::new(r.clone())));
            }
            _ => {}
        }
    }
    plan
}

/// The rules of `ops`, in batch order.
pub fn added_rules(ops: &[Op]) -> Vec<&RuleSpec> {
    ops.iter()
        .filter_map(|o| match o {
            Op::AddRule(r, _) => Some(r),
            _ => None,
        })
        .collect()
}
