//! Not checks: how long the smallest updates take, to know the floor of an update.

use super::T;
use super::ns::Ns;
use super::ops::*;
use secgroupd::compile::plan::{ChainName, Elem, Family, IpFamily, SetName};
use secgroupd::nft::{Backend, NftError, Op};
use std::time::{Duration, Instant};

/// Runs `f` five times and prints the median, min and max.
fn five(what: &str, mut f: impl FnMut(usize) -> Result<(), NftError>) {
    let mut times: Vec<Duration> = (0..5)
        .map(|k| {
            let start = Instant::now();
            f(k).unwrap_or_else(|e| panic!("{what}: {e}"));
            start.elapsed()
        })
        .collect();
    println!("{what}, in order: {times:?}");
    times.sort();
    println!(
        "{what}: median {:?} (min {:?}, max {:?})",
        times[2], times[0], times[4]
    );
}

#[test]
fn measure_single_updates() {
    let Some(ns) = Ns::new() else { return };
    ns.run(|b| {
        for n in [100u32, 10_000] {
            let chain = ChainName::Group(n);
            let c = b.commit(T, &chain_with(chain, n), None).expect("commit");
            five(&format!("delete 1 rule in a chain of {n}"), |k| {
                let handle = c.handles[(n / 2) as usize + k];
                b.commit(T, &[Op::DelRule { chain, handle }], None)
                    .map(drop)
            });
            let start = Instant::now();
            b.dump(T, Family::Inet).expect("dump");
            println!("dump with a chain of {n}: {:?}", start.elapsed());
        }

        // A verdict map of 1,000 interfaces and a concatenated set of 1,000 keys.
        let inst = ChainName::Instance(1);
        let lp4 = SetName::LivePairs(IpFamily::V4);
        let port = |i: usize| ifname(&format!("tap{i}"));
        let pair = |i: usize| {
            Elem::MarkV4(
                1 + i as u32,
                std::net::Ipv4Addr::from(0x0a00_0000 + i as u32),
            )
        };
        let ops = [
            Op::AddTable(Family::Inet),
            chain(inst, None),
            set(SetName::DispatchOut),
            set(lp4),
            Op::AddElems(
                SetName::DispatchOut,
                (0..1000).map(|i| (port(i), Some(inst))).collect(),
            ),
            Op::AddElems(lp4, (0..1000).map(|i| (pair(i), None)).collect()),
        ];
        b.commit(T, &ops, None).expect("1,000 elements each");
        five("add 1 element to a verdict map of 1,000", |k| {
            b.commit(
                T,
                &[map_elem(SetName::DispatchOut, port(2000 + k), inst)],
                None,
            )
            .map(drop)
        });
        five("delete 1 element of a verdict map of 1,000", |k| {
            b.commit(
                T,
                &[Op::DelElems(SetName::DispatchOut, vec![port(500 + k)])],
                None,
            )
            .map(drop)
        });
        five("add 1 element to a mark . ipv4_addr set of 1,000", |k| {
            b.commit(T, &[elems(lp4, [pair(2000 + k)])], None).map(drop)
        });
        five("delete 1 element of a mark . ipv4_addr set of 1,000", |k| {
            b.commit(T, &[Op::DelElems(lp4, vec![pair(500 + k)])], None)
                .map(drop)
        });
    });
    ns.check_other();
}
