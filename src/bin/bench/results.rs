//! What each part measures, collected for the report, and the checks that make a run
//! count as failed (requests not answered 200, parts without samples). Timings are never
//! checked: the machine is shared and noisy.

use super::daemon::Memory;
use super::kernel::Summary;
use super::machine::Machine;
use super::stats::Samples;
use super::workload::Table;
use std::time::Duration;

/// Parts (a), (b) and (d) for one table.
#[derive(Debug, Clone, Default)]
pub struct RevokeCase {
    pub table: Option<Table>,
    /// What the kernel held once the daemon was ready.
    pub kernel: Summary,
    /// Building the state directory through the library.
    pub populate: Duration,
    /// (d): process start to first answer, empty kernel table / table already present.
    pub start_empty: Option<Duration>,
    pub start_present: Option<Duration>,
    pub mem_ready: Memory,
    pub mem_after: Memory,
    /// (a): request to answer, kept-alive connection / one connection per request.
    pub keepalive: Samples,
    pub per_conn: Samples,
    /// The re-grant after each kept-alive revoke: authorize latency, request to answer.
    pub authorize: Samples,
    /// Revokes of distinct grants back to back, with no re-grant in between.
    pub burst: Samples,
    /// The daemon's own split of each sampled revoke (from its commit log line).
    pub daemon_store: Samples,
    pub daemon_kernel: Samples,
    /// (b): `nft delete rule` processes, full `nft -f` reloads, bare netlink deletes.
    pub nft_delete: Samples,
    pub reload: Samples,
    pub reload_script_bytes: usize,
    pub floor: Samples,
    /// The same revokes with a propagation window (`propagation_delay_ms` > 0).
    pub window: Option<Window>,
}

#[derive(Debug, Clone, Default)]
pub struct Window {
    pub delay_ms: u64,
    pub keepalive: Samples,
    pub daemon_kernel: Samples,
}

/// Part (f): the compute agent's calls.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    pub instances: usize,
    pub remote: usize,
    pub register: Samples,
    pub deregister: Samples,
    /// One remote member removed from, then added to, a group of `remote + instances`.
    pub remove_member: Samples,
    pub add_member: Samples,
}

impl Lifecycle {
    /// Each series with its name, for checks, tables and CSV.
    pub fn series(&self) -> [(&'static str, &Samples); 4] {
        [
            ("RegisterInstance", &self.register),
            ("DeregisterInstance", &self.deregister),
            ("RemoveGroupMembers", &self.remove_member),
            ("AddGroupMembers", &self.add_member),
        ]
    }
}

/// Part (c): concurrent revokes.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    pub table: Option<Table>,
    pub delay_ms: u64,
    pub clients: usize,
    pub revokes: usize,
    pub rules_before: usize,
    pub wall: Duration,
    pub latency: Samples,
    /// Commits the daemon logged for them, and the actions they carried.
    pub commits: usize,
    pub committed_actions: usize,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.revokes as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Part (e): one configuration of the data path.
#[derive(Debug, Clone, Default)]
pub struct DataPath {
    /// `None`: no secgroupd at all (the unfiltered reference).
    pub permissions: Option<usize>,
    pub established_on_revoke: &'static str,
    /// Time spent sending, all runs.
    pub seconds: f64,
    /// Median of the runs, and the slowest and fastest.
    pub bits_per_second: f64,
    pub bits_range: (f64, f64),
    /// Round trips on one established connection / each on a new connection.
    pub rr: Samples,
    pub crr: Samples,
}

impl DataPath {
    pub fn label(&self) -> String {
        match self.permissions {
            None => "no secgroupd (reference)".into(),
            Some(n) => format!("{n} permissions, {}", self.established_on_revoke),
        }
    }
}

/// Everything one run produced.
#[derive(Debug, Default)]
pub struct Report {
    pub machine: Machine,
    pub quick: bool,
    pub cases: Vec<RevokeCase>,
    pub throughput: Vec<Throughput>,
    pub datapath: Vec<DataPath>,
    pub lifecycle: Option<Lifecycle>,
    pub failures: Vec<String>,
    /// Things worth knowing that do not fail the run.
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

impl Report {
    /// Records a failed check; the run goes on and exits non-zero at the end.
    pub fn fail(&mut self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("CHECK FAILED: {what}");
        self.failures.push(what);
    }

    pub fn note(&mut self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("note: {what}");
        self.notes.push(what);
    }

    /// Fails unless `s` has samples.
    pub fn expect_samples(&mut self, what: &str, s: &Samples) {
        if s.is_empty() {
            self.fail(format!("{what}: no samples"));
        }
    }
}
