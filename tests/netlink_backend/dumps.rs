//! Reading both tables back: chains, hooks, handles, sets, map elements with their jumps,
//! concatenated and mark keys; large tables; consistency under concurrent commits.

use super::T;
use super::layout::{added_rules, full_layout};
use super::ns::Ns;
use super::ops::*;
use secgroupd::compile::plan::{ChainName, Elem, Family, IpFamily, RuleId, SetName, Verdict};
use secgroupd::nft::{Backend, KernelTable, Op};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

/// Dumps of both tables.
pub fn both(b: &mut impl Backend) -> (KernelTable, KernelTable) {
    (
        b.dump(T, Family::Inet).expect("inet dump"),
        b.dump(T, Family::Bridge).expect("bridge dump"),
    )
}

#[test]
fn dump_reads_both_families_back() {
    let Some(ns) = Ns::new() else { return };
    let ops = full_layout();
    let (missing, committed, (inet, bridge), again) = ns.run(|b| {
        let missing = both(b);
        let committed = b.commit(T, &ops, None).expect("commit");
        (missing, committed, both(b), both(b))
    });
    for m in [&missing.0, &missing.1] {
        assert!(
            !m.exists && m.chains.is_empty() && m.sets.is_empty(),
            "{m:?}"
        );
        assert!(m.genid > 0, "the generation is read even without a table");
    }
    assert_eq!((inet.family, bridge.family), (Family::Inet, Family::Bridge));
    assert!(inet.exists && bridge.exists);
    assert_ne!(inet.genid, missing.0.genid, "a commit moves the generation");
    assert_eq!(
        inet.genid, bridge.genid,
        "one generation for the whole ruleset"
    );
    assert_eq!(
        again,
        (inet.clone(), bridge.clone()),
        "nothing changed, same dumps"
    );

    // Chains of each family, in creation order, with their hooks.
    let names = |t: &KernelTable| t.chains.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&inet),
        [
            "hook_prerouting",
            "hook_forward",
            "hook_output",
            "grp_1",
            "grp_1_0",
            "inst_1",
            "spoof_1"
        ]
    );
    assert_eq!(
        names(&bridge),
        ["hook_prerouting", "hook_forward", "mark_1", "spoof_1"]
    );
    let hooks = |t: &KernelTable| t.chains.iter().map(|c| c.hook).collect::<Vec<_>>();
    let acc = libc::NF_ACCEPT as u32;
    assert_eq!(
        hooks(&inet),
        [
            Some((0, -150, acc)),
            Some((2, 0, acc)),
            Some((3, -5, acc)),
            None,
            None,
            None,
            None
        ]
    );
    assert_eq!(
        hooks(&bridge),
        [Some((0, -200, acc)), Some((2, -200, acc)), None, None]
    );

    // Each AddRule's handle is the handle of the rule with its comment, in its family's
    // table, though the batch interleaves chains of both families.
    let added = added_rules(&ops);
    assert_eq!(committed.handles.len(), added.len());
    for (r, h) in added.iter().zip(&committed.handles) {
        let t = if r.chain.family() == Family::Inet {
            &inet
        } else {
            &bridge
        };
        assert_eq!(handle_of(t, &r.comment), *h, "{}", r.comment);
    }
    assert_eq!(
        comments(&bridge, "spoof_1").last().map(String::as_str),
        Some("spoof_1 tail 1")
    );

    // Sets and maps: types, lengths, map flags, elements and their jumps.
    type MapElems = Vec<(Elem, Option<ChainName>)>;
    let mut want: Vec<(SetName, MapElems)> = Vec::new();
    for op in &ops {
        match op {
            Op::AddSet(s) => want.push((s.name, vec![])),
            Op::AddElems(s, e) => {
                let w = want
                    .iter_mut()
                    .find(|(n, _)| n == s)
                    .expect("set added first");
                w.1.extend(e.iter().copied());
            }
            _ => {}
        }
    }
    for (name, elems) in &want {
        let t = if name.family() == Family::Inet {
            &inet
        } else {
            &bridge
        };
        let ks = find_set(t, &name.to_string());
        let kt = name.key_type();
        assert_eq!(ks.key_type, kt.nft_type(), "{name}");
        let len = elems[0].0.key_bytes().len() as u32;
        assert_eq!(ks.key_len, len, "{name}");
        assert_eq!(ks.verdict_map, name.is_verdict_map(), "{name}");
        let got: BTreeSet<(Elem, Option<String>)> = ks
            .elems
            .iter()
            .map(|(k, to)| {
                let e = Elem::from_key_bytes(kt, k)
                    .unwrap_or_else(|| panic!("{name}: key {k:?} does not round-trip"));
                (e, to.clone())
            })
            .collect();
        let expected: BTreeSet<(Elem, Option<String>)> = elems
            .iter()
            .map(|(e, to)| (*e, to.map(|c| c.to_string())))
            .collect();
        assert_eq!(got, expected, "{name}");
    }
    assert_eq!(inet.sets.len() + bridge.sets.len(), want.len());

    // The new key types byte for byte: host-order marks, NUL-padded names.
    let live = find_set(&inet, "live");
    assert_eq!(
        (live.key_type, sorted_elems(live)),
        (
            19,
            vec![
                (1u32.to_ne_bytes().to_vec(), None),
                (5u32.to_ne_bytes().to_vec(), None)
            ]
        )
    );
    let pairs = find_set(&inet, "live_pairs4");
    assert_eq!(pairs.key_type, (19 << 6) | 7);
    assert!(
        pairs
            .elems
            .contains(&([&5u32.to_ne_bytes()[..], &[10, 0, 0, 1]].concat(), None))
    );
    assert_eq!(find_set(&inet, "live_pairs6").key_len, 20);
    let ports = find_set(&bridge, "ports");
    assert_eq!(
        (ports.key_type, ports.key_len, ports.elems.clone()),
        (
            41,
            16,
            vec![(
                b"tap1\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
                Some("mark_1".into())
            )]
        )
    );
    assert_eq!(
        find_set(&inet, "pair_protos").key_len,
        1,
        "as nft declares inet_proto"
    );
    ns.check_other();
}

#[test]
fn ten_thousand_rules_in_one_batch() {
    let Some(ns) = Ns::new() else { return };
    let ops = chain_with(G1, 10_000);
    let (committed, t) = ns.run(|b| {
        let start = std::time::Instant::now();
        let c = b.commit(T, &ops, None).expect("10,000-rule batch");
        println!("commit of 10,000 rules: {:?}", start.elapsed());
        let start = std::time::Instant::now();
        let t = b.dump(T, Family::Inet).expect("dump");
        println!("dump of 10,000 rules: {:?}", start.elapsed());
        (c, t)
    });
    assert_eq!(committed.handles.len(), 10_000);
    assert_eq!(rule_handles(&t, "grp_1"), committed.handles);
    assert_eq!(comments(&t, "grp_1")[9_999], "grp_1 grant 9999");
    ns.check_other();
}

#[test]
fn many_elements_and_table_deletion() {
    let Some(ns) = Ns::new() else { return };
    let addrs: Vec<Elem> = (0..3000u32)
        .map(|i| Elem::V4(std::net::Ipv4Addr::from(0x0a01_0000 + i)))
        .collect();
    // 3000 map elements (three messages) of 3000 ports, and 3000 concatenated keys.
    let ports: Vec<(Elem, Option<ChainName>)> = (0..3000)
        .map(|i| (ifname(&format!("tap{i}")), Some(ChainName::BridgeMark(1))))
        .collect();
    let pairs: Vec<Elem> = addrs
        .iter()
        .map(|a| match a {
            Elem::V4(a) => Elem::MarkV4(7, *a),
            _ => unreachable!(),
        })
        .collect();
    let lp4 = SetName::LivePairs(IpFamily::V4);
    let (full, half, bridge_gone, all_gone) = ns.run(|b| {
        let ops = [
            Op::AddTable(Family::Inet),
            Op::AddTable(Family::Bridge),
            set(M4),
            set(lp4),
            chain(ChainName::BridgeMark(1), None),
            set(SetName::BridgePorts),
            Op::AddElems(M4, addrs.iter().map(|e| (*e, None)).collect()),
            Op::AddElems(lp4, pairs.iter().map(|e| (*e, None)).collect()),
            Op::AddElems(SetName::BridgePorts, ports.clone()),
        ];
        b.commit(T, &ops, None).expect("9000 elements");
        let full = both(b);
        let del = [
            Op::DelElems(M4, addrs[..1500].to_vec()),
            Op::DelElems(lp4, pairs[..1500].to_vec()),
            Op::DelElems(
                SetName::BridgePorts,
                ports[..1500].iter().map(|(e, _)| *e).collect(),
            ),
        ];
        b.commit(T, &del, None).expect("delete 4500");
        let half = both(b);
        b.commit(T, &[Op::DelTable(Family::Bridge)], None)
            .expect("delete the bridge table");
        let bridge_gone = both(b);
        b.commit(T, &[Op::DelTable(Family::Inet)], None)
            .expect("delete the inet table");
        (full, half, bridge_gone, both(b))
    });
    let keys = |e: &[Elem]| {
        let mut k: Vec<Vec<u8>> = e.iter().map(Elem::key_bytes).collect();
        k.sort();
        k
    };
    let got = |t: &KernelTable, s: &str| {
        let mut k: Vec<Vec<u8>> = find_set(t, s).elems.iter().map(|e| e.0.clone()).collect();
        k.sort();
        k
    };
    assert_eq!(got(&full.0, "m4_1"), keys(&addrs));
    assert_eq!(got(&full.0, "live_pairs4"), keys(&pairs));
    assert_eq!(find_set(&full.1, "ports").elems.len(), 3000);
    assert!(
        find_set(&full.1, "ports")
            .elems
            .iter()
            .all(|e| e.1.as_deref() == Some("mark_1"))
    );
    assert_eq!(got(&half.0, "m4_1"), keys(&addrs[1500..]));
    assert_eq!(got(&half.0, "live_pairs4"), keys(&pairs[1500..]));
    let left: Vec<Elem> = ports[1500..].iter().map(|(e, _)| *e).collect();
    assert_eq!(got(&half.1, "ports"), keys(&left));
    assert!(
        !bridge_gone.1.exists && bridge_gone.0.exists,
        "one table per family"
    );
    assert!(!all_gone.0.exists && all_gone.0.sets.is_empty() && all_gone.0.chains.is_empty());
    ns.check_other();
}

#[test]
fn dumps_are_consistent_under_concurrent_commits() {
    let Some(ns) = Ns::new() else { return };
    // Each batch of the writer adds, in both tables, a rule and a set element. Rules and
    // elements are read with separate requests, so only a dump that retries when the
    // generation moved can be sure to see as many of one as of the other.
    const BATCHES: u32 = 200;
    let mark = ChainName::BridgeMark(1);
    ns.run(|b| {
        let ops = [
            Op::AddTable(Family::Inet),
            Op::AddTable(Family::Bridge),
            chain(G1, None),
            set(M4),
            chain(mark, None),
            set(SetName::BridgePorts),
        ];
        b.commit(T, &ops, None).expect("setup");
    });
    let done = AtomicBool::new(false);
    let dumps = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            ns.run(|b| {
                for i in 0..BATCHES {
                    let e = Elem::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                    let port = ifname(&format!("tap{i}"));
                    let r = rule(mark, RuleId::Source(0), vec![], Verdict::Accept);
                    let ops = [
                        append(simple(G1, i)),
                        elems(M4, [e]),
                        append(r),
                        map_elem(SetName::BridgePorts, port, mark),
                    ];
                    b.commit(T, &ops, None).expect("writer commit");
                    // A writer that never pauses would keep any multi-request read from
                    // finishing (see dump.rs); a busy but real one pauses.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            });
            done.store(true, Ordering::Relaxed);
        });
        let reader = s.spawn(|| {
            ns.run(|b| {
                let mut dumps = 0;
                while !done.load(Ordering::Relaxed) {
                    for f in [Family::Inet, Family::Bridge] {
                        let t = b.dump(T, f).expect("dump");
                        let rules = t.chains[0].rules.len();
                        // The kernel bumps the generation before the objects of a commit
                        // become visible, so a read that starts in that instant can see
                        // the new generation with part of that one commit: at most one
                        // batch apart, never more (a dump that ignored the generation
                        // would drift much further under 200 commits).
                        let elems = t.sets[0].elems.len();
                        assert!(
                            rules.abs_diff(elems) <= 1,
                            "inconsistent {f:?} dump: {rules} rules, {elems} elements"
                        );
                        dumps += 1;
                    }
                }
                dumps
            })
        });
        writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    println!("{dumps} consistent dumps during {BATCHES} commits");
    assert!(dumps > 0);
    ns.check_other();
}
