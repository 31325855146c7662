//! Part (c): revokes per second with concurrent clients, each a thread with its own
//! kept-alive connection, all starting together. Every revoke removes a distinct grant
//! (no re-grants: the table shrinks by the number of revokes, reported as the size
//! before). The daemon coalesces what arrives within its window (and what queues while
//! a batch commits) into one commit; its log tells how many commits there were.

use super::Env;
use super::daemon::{Daemon, Settings};
use super::http::Conn;
use super::kernel;
use super::netns::Netns;
use super::results::{Report, Throughput};
use super::stats::{Samples, dur};
use super::workload::Table;
use anyhow::{Result, anyhow};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// What one client thread brings back.
struct ClientRun {
    latencies: Vec<Duration>,
    failures: Vec<String>,
    done: Instant,
}

/// Restarts the daemon with `settings` and revokes every permission of `groups`.
pub fn run(
    env: &Env,
    ns: &Netns,
    d: &mut Daemon,
    settings: &Settings,
    t: &Table,
    groups: Range<usize>,
    report: &mut Report,
) -> Result<Throughput> {
    let clients = env.sizes.throughput_clients;
    let bodies: Vec<String> = groups
        .flat_map(|g| t.group_range(g))
        .take(env.sizes.throughput_revokes)
        .map(|k| t.perm(k).revoke())
        .collect();
    d.stop()?;
    d.start(settings)?;
    let rules_before = kernel::summary(&kernel::dump(ns, &env.table)?).rules;

    // Client i takes revokes i, i + clients, ...
    let mut shares: Vec<Vec<String>> = vec![Vec::new(); clients];
    for (i, b) in bodies.iter().enumerate() {
        shares[i % clients].push(b.clone());
    }
    let socket = d.socket();
    let barrier = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let barrier = barrier.clone();
            let socket: PathBuf = socket.clone();
            std::thread::spawn(move || client(&socket, &share, &barrier))
        })
        .collect();
    let offset = d.log_offset();
    barrier.wait();
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(bodies.len());
    let mut failures = Vec::new();
    let mut end = start;
    for h in handles {
        let run = h
            .join()
            .map_err(|_| anyhow!("a throughput client panicked"))??;
        latencies.extend(run.latencies);
        failures.extend(run.failures);
        end = end.max(run.done);
    }
    let commits = d.commits_since(offset);
    let r = Throughput {
        table: Some(*t),
        delay_ms: settings.propagation_delay_ms,
        clients,
        revokes: latencies.len(),
        rules_before,
        wall: end - start,
        latency: Samples::new(latencies),
        commits: commits.len(),
        committed_actions: commits.iter().map(|c| c.actions).sum(),
    };
    if let Some(first) = failures.first() {
        report.fail(format!(
            "throughput (propagation_delay_ms = {}): {} of {} revokes not answered 200 (first: {first})",
            r.delay_ms,
            failures.len(),
            bodies.len()
        ));
    }
    report.expect_samples("throughput", &r.latency);
    println!(
        "   throughput, propagation_delay_ms = {}: {} revokes by {clients} clients in {} = {:.0} revokes/s; \
         latency p50/p99 {}; {} commits",
        r.delay_ms,
        r.revokes,
        dur(r.wall),
        r.per_second(),
        r.latency.summary(),
        r.commits
    );
    Ok(r)
}

fn client(socket: &std::path::Path, share: &[String], barrier: &Barrier) -> Result<ClientRun> {
    let conn = Conn::connect(socket);
    // Wait even if connecting failed, or the others would wait forever.
    barrier.wait();
    let mut conn = conn?;
    let mut run = ClientRun {
        latencies: Vec::with_capacity(share.len()),
        failures: Vec::new(),
        done: Instant::now(),
    };
    for body in share {
        let t0 = Instant::now();
        let a = conn.post(body)?;
        if a.status == 200 {
            run.latencies.push(t0.elapsed());
        } else {
            run.failures
                .push(format!("{} {}", a.status, a.error_code()));
        }
    }
    run.done = Instant::now();
    Ok(run)
}
