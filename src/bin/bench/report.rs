//! The run's Markdown (printed, and written to `results.md` to paste into the README)
//! and the target verdicts, all computed from this run only.

use super::results::{Report, RevokeCase};
use super::stats::{Samples, dur, fmt_ratio, opt_dur, ratio};
use std::fmt::Write as _;
use std::time::Duration;

/// The permission count at which the targets are judged.
pub const TARGET_PERMISSIONS: usize = 10_000;

fn n(v: usize) -> String {
    // 100000 -> 100,000
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn case_cols(c: &RevokeCase) -> String {
    let t = c.table.expect("case with table");
    format!(
        "{} | {} | {}",
        n(t.permissions),
        n(t.group_size),
        n(t.members)
    )
}

fn p50(s: &Samples) -> Option<Duration> {
    s.p50()
}

/// Ratios of a case: nft process / secgroupd, reload / secgroupd, daemon kernel / floor.
pub struct Ratios {
    pub vs_nft: Option<f64>,
    pub vs_reload: Option<f64>,
    pub kernel_vs_floor: Option<f64>,
}

pub fn ratios(c: &RevokeCase) -> Ratios {
    Ratios {
        vs_nft: ratio(p50(&c.nft_delete), p50(&c.keepalive)),
        vs_reload: ratio(p50(&c.reload), p50(&c.keepalive)),
        kernel_vs_floor: ratio(p50(&c.daemon_kernel), p50(&c.floor)),
    }
}

pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "Machine: {}.", r.machine.line());
    let _ = writeln!(
        w,
        "Run: {}{}, {} in all. Latencies are p50 / p99 over the samples of this run.\n",
        if r.quick {
            "--quick (smoke test; numbers not meaningful)"
        } else {
            "full"
        },
        if r.failures.is_empty() {
            ""
        } else {
            ", WITH FAILED CHECKS"
        },
        dur(r.elapsed)
    );

    if !r.cases.is_empty() {
        let _ = writeln!(
            w,
            "**(a)+(b) Revoke latency**: request to answer on the control socket \
             (`propagation_delay_ms = 0`); the baselines run on an identical copy of the \
             table, interleaved with secgroupd's samples. Ratios are p50 against secgroupd's \
             kept-alive p50; kernel / floor is the daemon's own netlink commit time (from its \
             log) against the bare one-rule batch.\n"
        );
        let _ = writeln!(
            w,
            "| permissions | group size | members | kernel rules | secgroupd, kept-alive | secgroupd, new connection | daemon store / kernel p50 | `nft delete rule` process | full `nft -f` reload | netlink floor | × vs nft | × vs reload | kernel / floor |"
        );
        let _ = writeln!(
            w,
            "|---:|---:|---:|---:|---|---|---|---|---|---|---:|---:|---:|"
        );
        for c in &r.cases {
            let q = ratios(c);
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} |",
                case_cols(c),
                n(c.kernel.rules),
                c.keepalive.summary(),
                c.per_conn.summary(),
                opt_dur(p50(&c.daemon_store)),
                opt_dur(p50(&c.daemon_kernel)),
                c.nft_delete.summary(),
                c.reload.summary(),
                c.floor.summary(),
                fmt_ratio(q.vs_nft),
                fmt_ratio(q.vs_reload),
                fmt_ratio(q.kernel_vs_floor),
            );
        }
        let _ = writeln!(w);
    }

    if !r.cases.is_empty() {
        let _ = writeln!(
            w,
            "**Authorize latency, and revokes back to back**: the authorize is the re-grant \
             after each kept-alive revoke of (a), request to answer. Unlike a delete, adding a \
             rule makes the kernel re-validate every chain reachable from the base chains \
             (`nft_chain_validate`), so its cost grows with the rules reachable through the \
             member interfaces, and a large one leaves the caches cold for the revoke of (a) \
             that follows it (compare the back-to-back column). Back to back: distinct \
             grants of `g0` revoked one after the other on a kept-alive connection with \
             nothing in between (a burst), then re-granted.\n"
        );
        let _ = writeln!(
            w,
            "| permissions | group size | members | kernel rules | authorize, kept-alive | revoke after a grant (a) | revoke, back to back | back-to-back samples |"
        );
        let _ = writeln!(w, "|---:|---:|---:|---:|---|---|---|---:|");
        for c in &r.cases {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} |",
                case_cols(c),
                n(c.kernel.rules),
                c.authorize.summary(),
                c.keepalive.summary(),
                c.burst.summary(),
                c.burst.len(),
            );
        }
        let _ = writeln!(w);
    }

    let windows: Vec<&RevokeCase> = r.cases.iter().filter(|c| c.window.is_some()).collect();
    if !windows.is_empty() {
        let _ = writeln!(
            w,
            "**Propagation window**: the same revokes, one at a time, with the coalescing window on.\n"
        );
        let _ = writeln!(
            w,
            "| permissions | group size | members | `propagation_delay_ms` | secgroupd, kept-alive | daemon kernel p50 |"
        );
        let _ = writeln!(w, "|---:|---:|---:|---:|---|---|");
        for c in windows {
            let win = c.window.as_ref().expect("filtered");
            let _ = writeln!(
                w,
                "| {} | 0 | {} | {} |",
                case_cols(c),
                c.keepalive.summary(),
                opt_dur(p50(&c.daemon_kernel))
            );
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} |",
                case_cols(c),
                win.delay_ms,
                win.keepalive.summary(),
                opt_dur(p50(&win.daemon_kernel))
            );
        }
        let _ = writeln!(w);
    }

    if !r.throughput.is_empty() {
        let _ = writeln!(
            w,
            "**(c) Throughput**: concurrent clients, each with its own kept-alive connection, \
             each revoke a distinct grant.\n"
        );
        let _ = writeln!(
            w,
            "| table | `propagation_delay_ms` | clients | revokes | rules before | wall time | revokes/s | latency | commits | revokes per commit |"
        );
        let _ = writeln!(w, "|---|---:|---:|---:|---:|---|---:|---|---:|---:|");
        for t in &r.throughput {
            let tb = t.table.expect("throughput with table");
            let per_commit = if t.commits > 0 {
                format!("{:.1}", t.committed_actions as f64 / t.commits as f64)
            } else {
                "n/a".into()
            };
            let _ = writeln!(
                w,
                "| {} in groups of {} | {} | {} | {} | {} | {} | {:.0} /s | {} | {} | {} |",
                n(tb.permissions),
                n(tb.group_size),
                t.delay_ms,
                t.clients,
                n(t.revokes),
                n(t.rules_before),
                dur(t.wall),
                t.per_second(),
                t.latency.summary(),
                if t.commits > 0 {
                    n(t.commits)
                } else {
                    "n/a".into()
                },
                per_commit
            );
        }
        let _ = writeln!(w);
    }

    if !r.cases.is_empty() {
        let _ = writeln!(
            w,
            "**(d) Start-up**: process start to first answer on the socket, into an empty kernel \
             table and again with the table present (restart); memory of the daemon process.\n"
        );
        let _ = writeln!(
            w,
            "| permissions | group size | members | kernel rules | state built (library) | start, empty table | restart, table present | VmRSS when ready | VmRSS / VmHWM after revokes |"
        );
        let _ = writeln!(w, "|---:|---:|---:|---:|---|---|---|---|---|");
        for c in &r.cases {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} / {} |",
                case_cols(c),
                n(c.kernel.rules),
                dur(c.populate),
                opt_dur(c.start_empty),
                opt_dur(c.start_present),
                mib(c.mem_ready.rss_kib),
                mib(c.mem_after.rss_kib),
                mib(c.mem_after.hwm_kib)
            );
        }
        let _ = writeln!(w);
    }

    if !r.datapath.is_empty() {
        let _ = writeln!(
            w,
            "**(e) Data path** client → host → instance; the admitting permission is the \
             last of the instance's group (the last rule its SYN meets). Round trips: 64 \
             bytes, client and server pinned to one CPU.\n"
        );
        let _ = writeln!(
            w,
            "| configuration | TCP throughput, median (slowest–fastest run) | round trip, established | round trip, new connection each |"
        );
        let _ = writeln!(w, "|---|---|---|---|");
        for d in &r.datapath {
            let _ = writeln!(
                w,
                "| {} | {:.2} Gbit/s ({:.1}–{:.1}) | {} | {} |",
                d.label(),
                d.bits_per_second / 1e9,
                d.bits_range.0 / 1e9,
                d.bits_range.1 / 1e9,
                d.rr.summary(),
                d.crr.summary()
            );
        }
        let _ = writeln!(w);
    }

    if let Some(l) = &r.lifecycle {
        let _ = writeln!(
            w,
            "**(f) Instance lifecycle**: the compute agent's calls, request to answer on one \
             kept-alive connection (`propagation_delay_ms = 0`). {} instances, each with an \
             IPv4 and an IPv6 address in groups `web` and `db` (`db` admits `web` by group \
             pair, so each registration also changes member sets); then one of {} remote \
             members of `web` (plus the {} local ones) removed and added back.\n",
            l.instances,
            n(l.remote),
            l.instances
        );
        let _ = writeln!(w, "| action | samples | p50 / p99 |");
        let _ = writeln!(w, "|---|---:|---|");
        for (what, s) in l.series() {
            let _ = writeln!(w, "| `{what}` | {} | {} |", s.len(), s.summary());
        }
        let _ = writeln!(w);
    }

    let verdicts = targets(r);
    if !verdicts.is_empty() {
        let _ = writeln!(
            w,
            "**Targets** (at {} permissions; judged on p50):\n",
            n(TARGET_PERMISSIONS)
        );
        for v in verdicts {
            let _ = writeln!(w, "- {v}");
        }
        let _ = writeln!(w);
    }
    if !r.notes.is_empty() {
        let _ = writeln!(w, "**Notes:**\n");
        for n in &r.notes {
            let _ = writeln!(w, "- {n}");
        }
        let _ = writeln!(w);
    }
    if !r.failures.is_empty() {
        let _ = writeln!(w, "**Failed checks:**\n");
        for f in &r.failures {
            let _ = writeln!(w, "- {f}");
        }
    }
    o
}

/// One line per target and case at [`TARGET_PERMISSIONS`]: met or not, with the ratio.
pub fn targets(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let verdict = |v: Option<f64>, ok: &dyn Fn(f64) -> bool| match v {
        Some(x) if ok(x) => "met",
        Some(_) => "NOT met",
        None => "not measured",
    };
    for c in &r.cases {
        let t = c.table.expect("case");
        if t.permissions != TARGET_PERMISSIONS {
            continue;
        }
        let q = ratios(c);
        out.push(format!(
            "groups of {}, {} member(s): secgroupd vs `nft delete rule` {} (≥ 10×: {}); vs full reload {} (≥ 100×: {}); daemon kernel vs floor {} (≤ 2×: {})",
            n(t.group_size),
            n(t.members),
            fmt_ratio(q.vs_nft),
            verdict(q.vs_nft, &|x| x >= 10.0),
            fmt_ratio(q.vs_reload),
            verdict(q.vs_reload, &|x| x >= 100.0),
            fmt_ratio(q.kernel_vs_floor),
            verdict(q.kernel_vs_floor, &|x| x <= 2.0),
        ));
    }
    out
}
