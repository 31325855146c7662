//! Batches against the kernel: idempotent additions, positions, drift repair in both
//! tables, refused batches, and what the backend refuses before sending.

use super::T;
use super::dumps::both;
use super::layout::full_layout;
use super::ns::Ns;
use super::ops::*;
use secgroupd::compile::plan::{ChainName, Elem, Family, Match, RuleId, SetName, Stmt, Verdict};
use secgroupd::nft::{Backend, NftError, Op, Position};

#[test]
fn adding_again_is_idempotent_and_empty_batches_commit() {
    let Some(ns) = Ns::new() else { return };
    let ops = full_layout();
    let (before, after, changed_jump, kept) = ns.run(|b| {
        b.commit(T, &ops, None).expect("commit");
        let before = both(b);
        let again: Vec<Op> = ops
            .iter()
            .filter(|o| !matches!(o, Op::AddRule(..)))
            .cloned()
            .collect();
        b.commit(T, &again, None)
            .expect("re-adding tables, chains, sets, elements and map elements");
        // (Re-adding may still move the generation: the kernel logs table and chain
        // updates even when they change nothing.)
        let g = b.dump(T, Family::Inet).expect("dump").genid;
        b.commit(T, &[], Some(g)).expect("empty batch");
        assert_eq!(b.dump(T, Family::Inet).expect("dump").genid, g, "no change");
        let after = both(b);
        // The kernel does not change a map element's jump in place.
        let changed_jump = b.commit(
            T,
            &[map_elem(
                SetName::DispatchOut,
                ifname("tap1"),
                ChainName::Group(1),
            )],
            None,
        );
        (before, after, changed_jump, both(b))
    });
    for (a, b) in [(&after.0, &before.0), (&after.1, &before.1)] {
        assert_eq!(a.chains, b.chains);
        assert_eq!(a.sets.len(), b.sets.len());
        for (x, y) in a.sets.iter().zip(&b.sets) {
            assert_eq!(sorted_elems(x), sorted_elems(y), "{}", x.name);
        }
    }
    match changed_jump {
        Err(NftError::Rejected {
            index: 0, source, ..
        }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EEXIST));
        }
        other => panic!("expected EEXIST, got {other:?}"),
    }
    assert_eq!(
        find_set(&kept.0, "dispatch_out").elems,
        find_set(&before.0, "dispatch_out").elems
    );
    ns.check_other();
}

#[test]
fn delete_keeps_other_handles_and_before_inserts_before() {
    let Some(ns) = Ns::new() else { return };
    let (first, after_del, after_ins, inserted) = ns.run(|b| {
        b.commit(T, &chain_with(G1, 5), None).expect("commit");
        let first = b.dump(T, Family::Inet).expect("dump");
        let h = rule_handles(&first, "grp_1");
        b.commit(
            T,
            &[Op::DelRule {
                chain: G1,
                handle: h[2],
            }],
            None,
        )
        .expect("delete");
        let after_del = b.dump(T, Family::Inet).expect("dump");
        let ops = [
            Op::AddRule(simple(G1, 100), Position::Before(h[0])),
            Op::AddRule(simple(G1, 101), Position::Before(h[3])),
            Op::AddRule(simple(G1, 102), Position::Append),
        ];
        let c = b.commit(T, &ops, None).expect("insert");
        (
            first,
            after_del,
            b.dump(T, Family::Inet).expect("dump"),
            c.handles,
        )
    });
    let h = rule_handles(&first, "grp_1");
    assert_eq!(rule_handles(&after_del, "grp_1"), [h[0], h[1], h[3], h[4]]);
    assert_eq!(
        rule_handles(&after_ins, "grp_1"),
        [
            inserted[0],
            h[0],
            h[1],
            inserted[1],
            h[3],
            h[4],
            inserted[2]
        ]
    );
    assert_eq!(
        comments(&after_ins, "grp_1"),
        [
            "grp_1 grant 100",
            "grp_1 grant 0",
            "grp_1 grant 1",
            "grp_1 grant 101",
            "grp_1 grant 3",
            "grp_1 grant 4",
            "grp_1 grant 102"
        ]
    );
    ns.check_other();
}

#[test]
fn foreign_objects_of_both_families_are_deleted() {
    let Some(ns) = Ns::new() else { return };
    let ops = full_layout();
    ns.run(|b| b.commit(T, &ops, None).expect("commit"));
    // Drift: chains with rules, a set, a map, and a rule in one of our chains, in both
    // tables, put there by hand.
    ns.nft_script(&format!(
        "table inet {T} {{\n\
         set legacy_set {{ type ipv4_addr; elements = {{ 192.0.2.7 }} }}\n\
         chain legacy {{\n ip saddr 192.0.2.0/24 accept\n tcp dport 25 drop\n }}\n\
         chain inst_1 {{\n oifname \"eth7\" accept comment \"hand-made\"\n }}\n\
         }}\n\
         table bridge {T} {{\n\
         map legacy_map {{ type ifname : verdict; elements = {{ \"eth7\" : jump legacy }} }}\n\
         chain legacy {{\n ether type arp drop\n }}\n\
         chain mark_1 {{\n iifname \"eth7\" drop comment \"hand-made too\"\n }}\n\
         }}\n"
    ));
    let (dirty, clean) = ns.run(|b| {
        let dirty = both(b);
        let ops = [
            Op::DelForeignRule {
                family: Family::Inet,
                chain: "inst_1".into(),
                handle: handle_of(&dirty.0, "hand-made"),
            },
            Op::DelForeignRule {
                family: Family::Bridge,
                chain: "mark_1".into(),
                handle: handle_of(&dirty.1, "hand-made too"),
            },
            // The map first: its element jumps to the chain.
            Op::DelForeignSet(Family::Bridge, "legacy_map".into()),
            // DELCHAIN of a chain that still has rules: the kernel deletes them with it.
            Op::DelForeignChain(Family::Inet, "legacy".into()),
            Op::DelForeignChain(Family::Bridge, "legacy".into()),
            Op::DelForeignSet(Family::Inet, "legacy_set".into()),
        ];
        b.commit(T, &ops, None).expect("drift repair");
        (dirty, both(b))
    });
    assert_eq!(rule_handles(&dirty.0, "legacy").len(), 2);
    assert!(find_set(&dirty.1, "legacy_map").verdict_map);
    for t in [&clean.0, &clean.1] {
        assert!(t.chains.iter().all(|c| c.name != "legacy"));
        assert!(t.sets.iter().all(|s| !s.name.starts_with("legacy")));
    }
    assert_eq!(
        comments(&clean.0, "inst_1"),
        ["inst_1 group 1", "inst_1 tail 0"]
    );
    assert_eq!(comments(&clean.1, "mark_1"), ["mark_1 head 0"]);
    ns.check_other();
}

#[test]
fn refused_batches_change_nothing() {
    let Some(ns) = Ns::new() else { return };
    ns.run(|b| b.commit(T, &full_layout(), None).expect("commit"));
    let before = (ns.list(Family::Inet), ns.list(Family::Bridge));
    let (t0, stale, bad, busy, missing, t1, usable) = ns.run(|b| {
        let t0 = both(b);
        let h = rule_handles(&t0.0, "inst_1");
        let g = t0.0.genid;
        // Someone else committed in between: our generation is stale.
        let stale = b.commit(
            T,
            &[Op::DelRule {
                chain: ChainName::Instance(1),
                handle: h[0],
            }],
            Some(g.wrapping_sub(1)),
        );
        // A failing message in the middle of a batch of both families: the messages
        // before it were fine, yet nothing of the batch stays.
        let bad = b.commit(
            T,
            &[
                append(simple(G1, 50)),
                map_elem(
                    SetName::BridgePorts,
                    ifname("tap2"),
                    ChainName::BridgeMark(1),
                ),
                Op::DelRule {
                    chain: ChainName::Instance(1),
                    handle: 999_999,
                },
                append(simple(G1, 51)),
            ],
            Some(g),
        );
        // A chain a map element jumps to cannot go.
        let busy = b.commit(T, &[Op::DelChain(ChainName::BridgeMark(1))], Some(g));
        // A map element cannot jump to a chain that does not exist.
        let missing = b.commit(
            T,
            &[map_elem(
                SetName::DispatchOut,
                ifname("tap2"),
                ChainName::Instance(2),
            )],
            Some(g),
        );
        let t1 = both(b);
        // Still usable, and the generation did not move.
        let usable = b.commit(T, &[append(simple(G1, 52))], Some(t1.0.genid));
        (t0, stale, bad, busy, missing, t1, usable)
    });
    assert!(
        matches!(stale, Err(NftError::GenerationChanged)),
        "{stale:?}"
    );
    for (res, index, errno) in [
        (bad, 2, libc::ENOENT),
        (busy, 0, libc::EBUSY),
        (missing, 0, libc::ENOENT),
    ] {
        match res {
            Err(NftError::Rejected {
                index: i,
                op,
                source,
            }) => {
                assert_eq!((i, source.raw_os_error()), (index, Some(errno)), "{op}");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
    }
    assert_eq!(t1, t0, "refused batches changed nothing");
    assert_eq!(usable.expect("commit after refusals").handles.len(), 1);
    assert_eq!(ns.list(Family::Bridge), before.1);
    assert_ne!(ns.list(Family::Inet), before.0);
    ns.check_other();
}

#[test]
fn what_the_kernel_cannot_take_is_refused_before_sending() {
    let Some(ns) = Ns::new() else { return };
    let base = || {
        vec![
            Op::AddTable(Family::Inet),
            Op::AddTable(Family::Bridge),
            chain(G1, None),
            set(SetName::Live),
            set(SetName::DispatchOut),
        ]
    };
    let mut long = simple(G1, 1);
    long.comment = "x".repeat(126).into();
    let mut outside = simple(G1, 2);
    outside.stmts = vec![Stmt::SetCtMark {
        mask: 0xff,
        value: 0x100,
    }]
    .into();
    let lookup = |m: Match| append(rule(G1, RuleId::Grant(3, 0), vec![m], Verdict::Accept));
    let cases: Vec<(&str, Op)> = vec![
        ("comment", append(long)),
        (
            "oifname",
            append(rule(
                G1,
                RuleId::Grant(2, 0),
                vec![Match::Oifname("x".repeat(16))],
                Verdict::Drop,
            )),
        ),
        ("mark outside its mask", append(outside)),
        (
            "set of the other table",
            append(rule(
                G1,
                RuleId::Grant(4, 0),
                vec![],
                Verdict::Vmap(
                    secgroupd::compile::plan::VmapKey::Oifname,
                    SetName::BridgePorts,
                ),
            )),
        ),
        (
            "map as a set",
            lookup(Match::CtMarkIn {
                mask: 1,
                set: SetName::DispatchMark,
            }),
        ),
        (
            "map element without a jump",
            elems(SetName::DispatchOut, [ifname("tap1")]),
        ),
        (
            "set element with a jump",
            map_elem(SetName::Live, Elem::Mark(1), G1),
        ),
        (
            "element of another type",
            elems(SetName::Live, [Elem::V4("10.0.0.1".parse().unwrap())]),
        ),
        (
            "jump to the other table",
            map_elem(
                SetName::DispatchOut,
                ifname("tap1"),
                ChainName::BridgeMark(1),
            ),
        ),
    ];
    let (results, t) = ns.run(|b| {
        let results: Vec<_> = cases
            .iter()
            .map(|(what, op)| {
                let mut ops = base();
                ops.push(op.clone());
                (*what, b.commit(T, &ops, None))
            })
            .collect();
        (results, both(b))
    });
    for (what, res) in results {
        match res {
            Err(NftError::Rejected { index, source, op }) => {
                assert_eq!(index, 5, "{what}: {op}");
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{what}");
                println!("{what}: {op}: {source}");
            }
            other => panic!("{what}: expected Rejected, got {other:?}"),
        }
    }
    assert!(!t.0.exists && !t.1.exists, "nothing was sent");

    // 125 bytes is the longest comment nft's userdata buffer takes.
    let t = ns.run(|b| {
        let mut r = simple(G1, 3);
        r.comment = "y".repeat(125).into();
        b.commit(
            T,
            &[Op::AddTable(Family::Inet), chain(G1, None), append(r)],
            None,
        )
        .expect("125-byte comment");
        b.dump(T, Family::Inet).expect("dump")
    });
    assert_eq!(comments(&t, "grp_1"), ["y".repeat(125)]);
    ns.check_other();
}
