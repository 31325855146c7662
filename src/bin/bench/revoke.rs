//! Parts (a), (b) and (d) on one table:
//!
//! 1. build the state directory through the library; start the daemon on an empty kernel
//!    table (start-up time, memory); load the same table into a twin namespace for the
//!    baselines (see [`super::twin`]);
//! 2. (a) revokes through the socket, each a real `RevokeSecurityGroupIngress` of a
//!    permission of group `g0` (the group with the member interfaces), timed from
//!    writing the request to reading the whole answer, then an authorize of the same
//!    permission, so the table keeps its size and every revoke removes a distinct grant
//!    (the re-grant gets a fresh id). The re-grant is timed too, on the kept-alive
//!    connection: it is the authorize latency, reported apart. (b) After each kept-alive
//!    revoke, one bare netlink delete and, every few samples, one `nft delete rule`
//!    process on the twin: interleaved, so that noise from the shared machine hits both
//!    sides of a ratio;
//! 3. revokes with a new connection each; revokes back to back (distinct grants, no
//!    re-grant in between: a burst, without the cold caches a preceding grant leaves),
//!    then their re-grants; then the full reloads of the twin;
//! 4. (d) restart with the table present; optionally the propagation-window row and
//!    part (c) on this table.

use super::Env;
use super::cleanup::WorkDir;
use super::daemon::{Daemon, Settings};
use super::http::{Conn, post_once};
use super::kernel::{self, RuleRef};
use super::netns::Netns;
use super::populate::populate;
use super::results::{Report, RevokeCase, Window};
use super::stats::{Samples, dur};
use super::throughput;
use super::twin::Twin;
use super::workload::Table;
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

/// How each sampled request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connection {
    KeepAlive,
    PerRequest,
}

/// When a series of samples may stop early: once it has `min` samples and has run for
/// `budget` (a revoke on a 100,000-rule chain takes tens of milliseconds).
#[derive(Debug, Clone, Copy)]
struct Limit {
    min: usize,
    budget: Duration,
}

const NO_LIMIT: Limit = Limit {
    min: usize::MAX,
    budget: Duration::MAX,
};

/// Samples of one series of revokes.
#[derive(Debug, Default)]
struct Sampled {
    e2e: Vec<Duration>,
    /// The re-grant after each revoke: authorize latency, request to answer.
    grant: Vec<Duration>,
    store: Vec<Duration>,
    kernel: Vec<Duration>,
}

/// The baselines interleaved with the kept-alive samples.
struct Interleaved<'a> {
    twin: &'a mut Twin,
    floor_rules: std::vec::IntoIter<RuleRef>,
    nft_rules: std::vec::IntoIter<RuleRef>,
    /// One `nft` process every `nft_every` samples, while within budget.
    nft_every: usize,
    nft_min: usize,
    nft_budget: Duration,
    nft_spent: Duration,
    floor: Vec<Duration>,
    nft: Vec<Duration>,
}

impl Interleaved<'_> {
    fn after_sample(&mut self, i: usize) -> Result<()> {
        if let Some(r) = self.floor_rules.next() {
            self.floor.push(self.twin.floor_delete(&r)?);
        }
        let within = self.nft.len() < self.nft_min || self.nft_spent < self.nft_budget;
        if i.is_multiple_of(self.nft_every)
            && within
            && let Some(r) = self.nft_rules.next()
        {
            let d = self.twin.nft_delete(&r)?;
            self.nft_spent += d;
            self.nft.push(d);
        }
        Ok(())
    }
}

pub fn run_case(env: &Env, t: Table, report: &mut Report) -> Result<()> {
    println!(
        "\n== {} permissions in groups of {}, {} member interface(s)",
        t.permissions, t.group_size, t.members
    );
    let s = &env.sizes;
    let ns = Netns::new("revoke")?;
    ns.ip_batch(&t.member_interface_commands())?;
    let work = WorkDir::new("revoke")?;
    let mut d = Daemon::new(&env.bin, &ns, work.path());
    let mut case = RevokeCase {
        table: Some(t),
        ..RevokeCase::default()
    };
    let settings = Settings {
        table: env.table.clone(),
        propagation_delay_ms: 0,
        established_on_revoke: "cut",
    };

    let t0 = Instant::now();
    let state = populate(&d.state_dir(), t.setup_requests())?;
    case.populate = t0.elapsed();
    let start = d.start(&settings)?;
    case.start_empty = Some(start);
    case.mem_ready = d.memory()?;
    let kt = kernel::dump(&ns, &env.table)?;
    kernel::check_present(&kt, &env.table)?;
    case.kernel = kernel::summary(&kt);
    println!(
        "   state built in {}; daemon ready in {} (empty kernel table); kernel: {} rules in {} chains",
        dur(case.populate),
        dur(start),
        case.kernel.rules,
        case.kernel.chains
    );
    let mut twin = Twin::new(&env.table, &state)?;
    drop(state);
    if twin.summary.rules != case.kernel.rules {
        report.note(format!(
            "{} permissions, groups of {}, {} members: the rendered table has {} rules, the daemon's {}",
            t.permissions, t.group_size, t.members, twin.summary.rules, case.kernel.rules
        ));
    }

    // (a) kept-alive, with (b)'s deletes interleaved.
    let picked = twin.pick_rules(&t, 2 * s.floor_samples.max(s.nft_max))?;
    let floor_rules: Vec<RuleRef> = picked
        .iter()
        .step_by(2)
        .take(s.floor_samples)
        .cloned()
        .collect();
    let nft_rules: Vec<RuleRef> = picked
        .iter()
        .skip(1)
        .step_by(2)
        .take(s.nft_max)
        .cloned()
        .collect();
    if floor_rules.is_empty() || nft_rules.is_empty() {
        bail!("no grant rules found in the twin table (comments changed?)");
    }
    let targets = sample_targets(&t, s.keepalive_samples);
    let mut inter = Interleaved {
        twin: &mut twin,
        floor_rules: floor_rules.into_iter(),
        nft_rules: nft_rules.into_iter(),
        nft_every: (s.keepalive_samples / s.nft_max.max(1)).max(1),
        nft_min: s.nft_min,
        nft_budget: s.nft_budget,
        nft_spent: Duration::ZERO,
        floor: Vec::new(),
        nft: Vec::new(),
    };
    let what = "revoke (keep-alive)";
    let limit = Limit {
        min: s.min_samples,
        budget: s.sample_budget,
    };
    let ka = revoke_samples(
        &d,
        &t,
        &targets,
        Connection::KeepAlive,
        limit,
        what,
        report,
        |i| inter.after_sample(i),
    )?;
    case.floor = Samples::new(std::mem::take(&mut inter.floor));
    case.nft_delete = Samples::new(std::mem::take(&mut inter.nft));
    case.keepalive = Samples::new(ka.e2e);
    case.authorize = Samples::new(ka.grant);
    case.daemon_store = Samples::new(ka.store);
    case.daemon_kernel = Samples::new(ka.kernel);

    let pc_targets = &targets[..s.per_conn_samples.min(targets.len())];
    let what = "revoke (new connection)";
    let limit = Limit {
        min: (s.min_samples / 2).min(pc_targets.len()),
        budget: s.sample_budget / 3,
    };
    let pc = revoke_samples(
        &d,
        &t,
        pc_targets,
        Connection::PerRequest,
        limit,
        what,
        report,
        |_| Ok(()),
    )?;
    case.per_conn = Samples::new(pc.e2e);
    case.burst = Samples::new(burst(&d, &t, &targets, s.burst_samples, report)?);
    case.mem_after = d.memory()?;
    println!(
        "   secgroupd revoke p50/p99: {} kept-alive, {} new connection, {} back to back ({}); daemon's kernel commit {}; authorize {}",
        case.keepalive.summary(),
        case.per_conn.summary(),
        case.burst.summary(),
        case.burst.len(),
        case.daemon_kernel.summary(),
        case.authorize.summary()
    );

    // (b) the full reloads, after the samples: freeing a replaced table is kernel work
    // that goes on after `nft` exits, and it must not land on the daemon's samples.
    let start = Instant::now();
    let mut reloads = Vec::new();
    while reloads.len() < s.reload_min || start.elapsed() < s.reload_budget {
        reloads.push(twin.reload()?);
    }
    case.reload = Samples::new(reloads);
    case.reload_script_bytes = twin.script_bytes;
    let after = twin.rules_now()?;
    if after != twin.summary.rules {
        report.fail(format!(
            "after the full reload the twin has {after} rules, it was loaded with {}",
            twin.summary.rules
        ));
    }
    for (what, samples) in [
        ("revoke (keep-alive)", &case.keepalive),
        ("revoke (new connection)", &case.per_conn),
        ("authorize (re-grant)", &case.authorize),
        ("revoke (back to back)", &case.burst),
        ("nft delete rule", &case.nft_delete),
        ("netlink floor", &case.floor),
        ("full reload", &case.reload),
    ] {
        report.expect_samples(what, samples);
    }
    println!(
        "   baselines p50/p99: nft delete rule {} ({} runs), full reload {} ({} runs, {} KiB script), netlink floor {}",
        case.nft_delete.summary(),
        case.nft_delete.len(),
        case.reload.summary(),
        case.reload.len(),
        case.reload_script_bytes / 1024,
        case.floor.summary()
    );
    drop(twin);

    // (d) restart with the table present.
    d.stop()?;
    case.start_present = Some(d.start(&settings)?);
    println!(
        "   daemon ready in {} with the table present (restart)",
        dur(case.start_present.unwrap_or_default())
    );

    if t == s.window_case {
        d.stop()?;
        let w = Settings {
            propagation_delay_ms: s.window_delay_ms,
            ..settings.clone()
        };
        d.start(&w)?;
        let targets = sample_targets(&t, s.window_samples);
        let what = format!("revoke (propagation_delay_ms = {})", s.window_delay_ms);
        let sampled = revoke_samples(
            &d,
            &t,
            &targets,
            Connection::KeepAlive,
            NO_LIMIT,
            &what,
            report,
            |_| Ok(()),
        )?;
        let window = Window {
            delay_ms: s.window_delay_ms,
            keepalive: Samples::new(sampled.e2e),
            daemon_kernel: Samples::new(sampled.kernel),
        };
        report.expect_samples(&what, &window.keepalive);
        println!("   {what} p50/p99: {}", window.keepalive.summary());
        case.window = Some(window);
    }
    if t == s.throughput_case {
        let per_run = s.throughput_revokes.div_ceil(t.group_size);
        // Group 0 holds the latency samples' grants; each run revokes other groups.
        let mut next = 1;
        for &delay in &s.throughput_delays_ms {
            if next + per_run > t.groups() {
                bail!(
                    "table too small for {} revokes per run",
                    s.throughput_revokes
                );
            }
            let w = Settings {
                propagation_delay_ms: delay,
                ..settings.clone()
            };
            let r = throughput::run(env, &ns, &mut d, &w, &t, next..next + per_run, report)?;
            report.throughput.push(r);
            next += per_run;
        }
    }
    d.stop()?;
    report.cases.push(case);
    Ok(())
}

/// Revokes up to `n` distinct grants of `targets` one after the other on one kept-alive
/// connection (timed), then grants them again (untimed), so the table ends as it began.
fn burst(
    d: &Daemon,
    t: &Table,
    targets: &[usize],
    n: usize,
    report: &mut Report,
) -> Result<Vec<Duration>> {
    let mut distinct: Vec<usize> = Vec::new();
    for &k in targets {
        if distinct.len() == n {
            break;
        }
        if !distinct.contains(&k) {
            distinct.push(k);
        }
    }
    let mut conn = Conn::connect(&d.socket())?;
    let mut out = Vec::with_capacity(distinct.len());
    let mut failures = 0;
    for &k in &distinct {
        let body = t.perm(k).revoke();
        let t0 = Instant::now();
        let answer = conn.post(&body)?;
        let elapsed = t0.elapsed();
        if answer.status == 200 {
            out.push(elapsed);
        } else {
            failures += 1;
        }
    }
    for &k in &distinct {
        if conn.post(&t.perm(k).authorize())?.status != 200 {
            failures += 1;
        }
    }
    if failures > 0 {
        report.fail(format!(
            "revoke (back to back): {failures} requests not answered 200"
        ));
    }
    Ok(out)
}

/// Permission numbers of group `g0` to revoke: spread over the whole group when it has
/// enough, else its permissions in turn (each revoke is then of a fresh re-grant).
fn sample_targets(t: &Table, n: usize) -> Vec<usize> {
    let r = t.group_range(0);
    let len = r.len();
    if len >= n {
        (0..n).map(|i| r.start + i * len / n).collect()
    } else {
        (0..n).map(|i| r.start + i % len).collect()
    }
}

/// Revokes and re-grants (each timed on its own) each target, or as many as `limit` allows;
/// `between(i)` runs after sample `i`, outside the timed part.
#[allow(clippy::too_many_arguments)]
fn revoke_samples(
    d: &Daemon,
    t: &Table,
    targets: &[usize],
    how: Connection,
    limit: Limit,
    what: &str,
    report: &mut Report,
    mut between: impl FnMut(usize) -> Result<()>,
) -> Result<Sampled> {
    let socket = d.socket();
    let mut conn = Conn::connect(&socket)?;
    let mut out = Sampled::default();
    let mut failures: Vec<String> = Vec::new();
    let start = Instant::now();
    for (i, &k) in targets.iter().enumerate() {
        if i >= limit.min && start.elapsed() > limit.budget {
            break;
        }
        let p = t.perm(k);
        let body = p.revoke();
        let offset = d.log_offset();
        let t0 = Instant::now();
        let answer = match how {
            Connection::KeepAlive => conn.post(&body)?,
            Connection::PerRequest => post_once(&socket, &body)?,
        };
        let elapsed = t0.elapsed();
        if answer.status != 200 {
            failures.push(format!("revoke: {} {}", answer.status, answer.error_code()));
            continue;
        }
        out.e2e.push(elapsed);
        // The daemon logs the commit before it answers.
        if let Some(c) = d.commits_since(offset).last() {
            out.store.push(c.store);
            out.kernel.push(c.kernel);
        }
        let t1 = Instant::now();
        let back = conn.post(&p.authorize())?;
        let granted = t1.elapsed();
        if back.status != 200 {
            failures.push(format!("re-grant: {} {}", back.status, back.error_code()));
        } else if how == Connection::KeepAlive {
            out.grant.push(granted);
        }
        between(i)?;
    }
    if how == Connection::KeepAlive && conn.reconnects > 0 {
        report.fail(format!(
            "{what}: the daemon closed the kept-alive connection {} times",
            conn.reconnects
        ));
    }
    if let Some(first) = failures.first() {
        report.fail(format!(
            "{what}: {} requests not answered 200 (first: {first})",
            failures.len()
        ));
    }
    Ok(out)
}
