//! Measurements, printed and not asserted (run with `--nocapture`, ideally `--release`):
//! commit latency of one small change, and load time of a state with 100,000 grants.

use super::*;
use std::time::{Duration, Instant};

const COMMITS: usize = 500;
const GROUPS: u32 = 100;
const GRANTS_PER_GROUP: u16 = 1000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn measure_commit_latency_of_one_small_change() {
    let dir = TempDir::new("latency");
    let mut store = open_store(dir.path()).expect("open");
    let mut state = State::new();
    let web = key(1, "web");
    run(&mut store, &mut state, &[create(web.clone(), "")]);
    let mut times = Vec::with_capacity(COMMITS);
    for i in 0..COMMITS {
        let changes = plan(
            &mut state,
            &authorize(web.clone(), tcp(i as u16 + 1, i as u16 + 1, "10.0.0.0/8")),
        );
        let t = Instant::now();
        store.commit(&changes, state.counters()).expect("commit");
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "store: commit of one grant over {COMMITS} commits: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
}

#[test]
fn measure_load_of_100k_grants() {
    let dir = TempDir::new("load");
    let mut state = State::new();
    let build = Instant::now();
    {
        let mut store = open_store(dir.path()).expect("open");
        for g in 0..GROUPS {
            let group = key(1, &format!("g{g}"));
            let mut changes = plan(&mut state, &create(group.clone(), ""));
            for p in 1..=GRANTS_PER_GROUP {
                changes.extend(plan(
                    &mut state,
                    &authorize(group.clone(), tcp(p, p, "10.0.0.0/8")),
                ));
            }
            store.commit(&changes, state.counters()).expect("commit");
        }
    }
    let build = build.elapsed();
    let size = std::fs::metadata(dir.db()).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    let mut store = open_store(dir.path()).expect("reopen");
    let loaded = store.load().expect("load");
    let load = t.elapsed();
    assert_eq!(loaded.grant_count(), state.grant_count());
    println!(
        "store: {} grants: built in {build:?} ({GROUPS} commits), file {} KiB, open+load {load:?}",
        loaded.grant_count(),
        size / 1024
    );

    // The parts of a load: SQLite's own check, and reading plus validating the rows.
    drop(store);
    let conn = rusqlite::Connection::open(dir.db()).expect("raw");
    let t = Instant::now();
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .expect("check");
    let quick = t.elapsed();
    let t = Instant::now();
    let full: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    println!(
        "store: of which PRAGMA quick_check {quick:?} ({check}); integrity_check would take {:?} ({full})",
        t.elapsed()
    );
    drop(conn);

    // A commit costs the same with 100,000 grants in the store.
    let mut store = open_store(dir.path()).expect("reopen");
    let mut state = loaded;
    let group = key(1, "g0");
    let mut times = Vec::new();
    for p in 1..=100 {
        let changes = plan(
            &mut state,
            &authorize(group.clone(), tcp(p, p, "192.168.0.0/16")),
        );
        let t = Instant::now();
        store.commit(&changes, state.counters()).expect("commit");
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "store: commit of one grant with 100k grants stored: p50 {:?}, p99 {:?}",
        percentile(&times, 0.50),
        percentile(&times, 0.99)
    );
}
