//! The daemon's metrics registry, exposed as Prometheus text (format 0.0.4) on
//! `GET /metrics` of the control socket.
//!
//! Hand-written with atomics rather than a metrics crate: the set of series is small and
//! fixed, recording must never block a request or the reconciler, and the text format is a
//! few lines of code.
//!
//! Who records what:
//! - the control socket handler: [`Metrics::record_request`] for every answered request,
//!   [`Metrics::record_revoke`] for every successful revoke (arrival to answer);
//! - the reconciler (to be wired by its owner; the daemon creates one `Arc<Metrics>` and
//!   can hand a clone to it): [`Metrics::record_commit`] after every commit that changed
//!   something, with the number of actions in the batch and the durable-write and kernel
//!   latencies of `CommitStats`; [`Metrics::record_drift_repair`] with the number of repairs
//!   a drift reconciliation made;
//! - at scrape time, the gauges come from the reconciler's `GetStatus` answer.

use crate::model::StatusInfo;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency buckets, in seconds: 100 µs to 1 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Commit batch size buckets (actions per commit), up to the reconciler's batch cap.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A cumulative histogram with fixed upper bounds; lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One counter per bound, plus one for +Inf. Not cumulative: summed when rendered.
    counts: Vec<AtomicU64>,
    /// Sum of the observed values, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let mut cur = self.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + value).to_bits();
            match self
                .sum
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// Every metric secgroupd exports. Share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    /// (action, code) → count. Both labels come from closed sets (action names and EC2
    /// codes as `&'static str`), so the number of series is bounded whatever clients send.
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    revoke_seconds: Histogram,
    commit_actions: Histogram,
    store_commit_seconds: Histogram,
    kernel_commit_seconds: Histogram,
    drift_repairs: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Label of requests that did not name a valid action.
pub const UNKNOWN_ACTION: &str = "unknown";
/// Label of `GET /metrics` scrapes.
pub const METRICS_ACTION: &str = "metrics";
/// Code label of successful requests.
pub const OK_CODE: &str = "ok";

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            revoke_seconds: Histogram::new(LATENCY_BUCKETS),
            commit_actions: Histogram::new(BATCH_BUCKETS),
            store_commit_seconds: Histogram::new(LATENCY_BUCKETS),
            kernel_commit_seconds: Histogram::new(LATENCY_BUCKETS),
            drift_repairs: AtomicU64::new(0),
        }
    }

    /// One answered request: `action` is the action name (or [`UNKNOWN_ACTION`]), `code`
    /// the first EC2 error code of the answer or [`OK_CODE`].
    pub fn record_request(&self, action: &'static str, code: &'static str) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((action, code)).or_insert(0) += 1;
    }

    /// Requests counted so far for one (action, code) pair.
    pub fn requests(&self, action: &str, code: &str) -> u64 {
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter(|((a, c), _)| *a == action && *c == code)
            .map(|(_, n)| *n)
            .sum()
    }

    /// A successful revoke, from request arrival to the answer.
    pub fn record_revoke(&self, latency: Duration) {
        self.revoke_seconds.observe_duration(latency);
    }

    /// One commit of the reconciler: how many actions it carried, and how long the durable
    /// write and the kernel batch took.
    pub fn record_commit(&self, actions: usize, store_latency: Duration, kernel_latency: Duration) {
        self.commit_actions.observe(actions as f64);
        self.store_commit_seconds.observe_duration(store_latency);
        self.kernel_commit_seconds.observe_duration(kernel_latency);
    }

    /// Differences between the kernel and the plan that a reconciliation repaired.
    pub fn record_drift_repair(&self, repairs: usize) {
        self.drift_repairs
            .fetch_add(repairs as u64, Ordering::Relaxed);
    }

    pub fn revoke_count(&self) -> u64 {
        self.revoke_seconds.count()
    }

    /// The Prometheus text exposition; `status` (the reconciler's answer to `GetStatus`,
    /// if it gave one) supplies the gauges.
    pub fn render(&self, status: Option<&StatusInfo>) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP secgroupd_requests_total Control socket requests answered, by action and \
             EC2 error code (ok for success).\n# TYPE secgroupd_requests_total counter\n",
        );
        {
            let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            for ((action, code), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "secgroupd_requests_total{{action=\"{action}\",code=\"{code}\"}} {n}"
                );
            }
        }
        self.revoke_seconds.render(
            &mut out,
            "secgroupd_revoke_seconds",
            "Successful RevokeSecurityGroupIngress requests, from arrival to answer.",
        );
        self.commit_actions.render(
            &mut out,
            "secgroupd_commit_actions",
            "Actions per reconciler commit.",
        );
        self.store_commit_seconds.render(
            &mut out,
            "secgroupd_store_commit_seconds",
            "Durable state store write per commit.",
        );
        self.kernel_commit_seconds.render(
            &mut out,
            "secgroupd_kernel_commit_seconds",
            "Netlink batch per commit.",
        );
        let _ = writeln!(
            out,
            "# HELP secgroupd_drift_repairs_total Kernel differences repaired by \
             reconciliation.\n# TYPE secgroupd_drift_repairs_total counter\n\
             secgroupd_drift_repairs_total {}",
            self.drift_repairs.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP secgroupd_status_up Whether the reconciler answered GetStatus for this \
             scrape.\n# TYPE secgroupd_status_up gauge\nsecgroupd_status_up {}",
            u8::from(status.is_some())
        );
        if let Some(s) = status {
            let gauges: [(&str, &str, u64); 7] = [
                ("groups", "Security groups.", s.groups as u64),
                ("permissions", "Granted permissions.", s.permissions as u64),
                ("instances", "Registered instances.", s.instances as u64),
                (
                    "remote_members",
                    "Addresses of group members on other hosts.",
                    s.remote_members as u64,
                ),
                ("rules", "Rules in secgroupd's table(s).", s.rules as u64),
                (
                    "set_elements",
                    "Set elements in secgroupd's table(s).",
                    s.set_elements as u64,
                ),
                ("generation", "Commits since start.", s.generation),
            ];
            for (name, help, v) in gauges {
                let _ = writeln!(
                    out,
                    "# HELP secgroupd_{name} {help}\n# TYPE secgroupd_{name} gauge\n\
                     secgroupd_{name} {v}"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name{labels} value` lines → value, for the tests.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.rsplit_once(' ').map(|(s, _)| s) == Some(series))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse().ok())
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        m.record_revoke(Duration::from_micros(50));
        m.record_revoke(Duration::from_micros(700));
        m.record_revoke(Duration::from_secs(3));
        let t = m.render(None);
        assert_eq!(
            sample(&t, "secgroupd_revoke_seconds_bucket{le=\"0.0001\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&t, "secgroupd_revoke_seconds_bucket{le=\"0.001\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&t, "secgroupd_revoke_seconds_bucket{le=\"1\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&t, "secgroupd_revoke_seconds_bucket{le=\"+Inf\"}"),
            Some(3.0)
        );
        assert_eq!(sample(&t, "secgroupd_revoke_seconds_count"), Some(3.0));
        let sum = sample(&t, "secgroupd_revoke_seconds_sum").unwrap();
        assert!((sum - 3.00075).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn requests_commits_repairs_and_gauges() {
        let m = Metrics::new();
        m.record_request("CreateSecurityGroup", OK_CODE);
        m.record_request("CreateSecurityGroup", OK_CODE);
        m.record_request(UNKNOWN_ACTION, "InvalidAction");
        m.record_commit(3, Duration::from_millis(2), Duration::from_micros(300));
        m.record_drift_repair(4);
        let status = StatusInfo {
            groups: 2,
            rules: 17,
            ..StatusInfo::default()
        };
        let t = m.render(Some(&status));
        assert_eq!(
            sample(
                &t,
                "secgroupd_requests_total{action=\"CreateSecurityGroup\",code=\"ok\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &t,
                "secgroupd_requests_total{action=\"unknown\",code=\"InvalidAction\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&t, "secgroupd_commit_actions_bucket{le=\"4\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&t, "secgroupd_commit_actions_bucket{le=\"2\"}"),
            Some(0.0)
        );
        assert_eq!(
            sample(&t, "secgroupd_store_commit_seconds_count"),
            Some(1.0)
        );
        assert_eq!(sample(&t, "secgroupd_drift_repairs_total"), Some(4.0));
        assert_eq!(sample(&t, "secgroupd_groups"), Some(2.0));
        assert_eq!(sample(&t, "secgroupd_rules"), Some(17.0));
        assert_eq!(sample(&t, "secgroupd_status_up"), Some(1.0));
        let t = m.render(None);
        assert_eq!(sample(&t, "secgroupd_status_up"), Some(0.0));
        assert_eq!(sample(&t, "secgroupd_groups"), None);
        // Every line is a comment or `series value`.
        for l in t.lines() {
            assert!(l.starts_with('#') || l.split(' ').count() == 2, "{l:?}");
        }
    }
}
