//! The real `secgroupd` binary in a namespace: its configuration, start-up until the
//! socket answers (timed: this is part (d)), stop, memory, and the per-commit timings it
//! logs.

use super::cleanup;
use super::http;
use super::netns::Netns;
use anyhow::{Context, Result, bail};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// How long start-up may take: loading and installing 100,000 rules on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// What goes into the configuration file.
#[derive(Debug, Clone)]
pub struct Settings {
    pub table: String,
    pub propagation_delay_ms: u64,
    pub established_on_revoke: &'static str,
}

/// Memory of the daemon process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// One commit as the daemon logged it (`SECGROUPD_LOG` includes the reconciler's debug
/// line with its `CommitStats`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitLog {
    pub actions: usize,
    pub store: Duration,
    pub kernel: Duration,
}

/// A daemon with its own directory (config, socket, state, log). Dropping it kills the
/// process; the directory belongs to the caller.
pub struct Daemon<'a> {
    bin: PathBuf,
    ns: &'a Netns,
    dir: PathBuf,
    child: Option<Child>,
}

impl<'a> Daemon<'a> {
    pub fn new(bin: &Path, ns: &'a Netns, dir: &Path) -> Daemon<'a> {
        Daemon {
            bin: bin.to_path_buf(),
            ns,
            dir: dir.to_path_buf(),
            child: None,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("secgroupd.log")
    }
    fn config_path(&self) -> PathBuf {
        self.dir.join("secgroupd.toml")
    }

    /// Writes the configuration, starts the process and returns the time from spawning
    /// it to the first answer on its socket (the socket is bound only once the kernel
    /// table matches the persisted state).
    pub fn start(&mut self, s: &Settings) -> Result<Duration> {
        if self.child.is_some() {
            bail!("daemon already running");
        }
        let q = |v: &str| toml::Value::String(v.to_string()).to_string();
        let config = format!(
            "socket = {}\nstate_dir = {}\ntable = {}\nowner_id = {}\n\
             propagation_delay_ms = {}\nestablished_on_revoke = {}\n",
            q(&self.socket().to_string_lossy()),
            q(&self.state_dir().to_string_lossy()),
            q(&s.table),
            q(super::workload::OWNER),
            s.propagation_delay_ms,
            q(s.established_on_revoke),
        );
        std::fs::write(self.config_path(), config)?;
        let _ = std::fs::remove_file(self.socket());
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let t0 = Instant::now();
        let child = self
            .ns
            .command(&self.bin.to_string_lossy())
            .arg("--config")
            .arg(self.config_path())
            // Info is what a production daemon logs; the reconciler's debug line gives
            // each commit's store and kernel time.
            .env("SECGROUPD_LOG", "info,secgroupd::reconcile=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        cleanup::register_pid(child.id());
        self.child = Some(child);
        self.wait_ready(t0)
    }

    fn wait_ready(&mut self, t0: Instant) -> Result<Duration> {
        // Any HTTP answer means the socket is served; a describe of a group that does
        // not exist is cheap whatever the size of the table.
        let probe = secgroupd::client::encode_form(&[
            ("Action", "DescribeSecurityGroups"),
            ("GroupName.1", "sgb-ready-probe"),
        ]);
        let socket = self.socket();
        loop {
            if socket.exists()
                && let Ok(_answer) = http::post_once(&socket, &probe)
            {
                return Ok(t0.elapsed());
            }
            if let Some(status) = self.child.as_mut().expect("started").try_wait()? {
                self.reap();
                bail!(
                    "secgroupd exited before becoming ready ({status}); log tail:\n{}",
                    self.log_tail(30)
                );
            }
            if t0.elapsed() > READY_TIMEOUT {
                bail!(
                    "secgroupd not ready after {READY_TIMEOUT:?}; log tail:\n{}",
                    self.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// SIGTERM and wait. The kernel table stays (that is how the daemon stops).
    pub fn stop(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                self.reap();
                if !status.success() {
                    bail!(
                        "secgroupd exited with {status} on SIGTERM; log tail:\n{}",
                        self.log_tail(30)
                    );
                }
                return Ok(());
            }
            if t0.elapsed() > STOP_TIMEOUT {
                let tail = self.log_tail(30);
                self.kill();
                bail!(
                    "secgroupd did not stop within {STOP_TIMEOUT:?} of SIGTERM; log tail:\n{tail}"
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.reap();
    }

    fn reap(&mut self) {
        if let Some(c) = self.child.take() {
            cleanup::forget_pid(c.id());
        }
    }

    /// VmRSS and VmHWM of the running daemon.
    pub fn memory(&self) -> Result<Memory> {
        let pid = self.child.as_ref().context("daemon not running")?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        })
    }

    /// Current length of the log: commits logged after this offset are later ones.
    pub fn log_offset(&self) -> u64 {
        std::fs::metadata(self.log_path())
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// The commits logged since `offset`, in order.
    pub fn commits_since(&self, offset: u64) -> Vec<CommitLog> {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path())
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            let _ = f.read_to_string(&mut text);
        }
        text.lines().filter_map(parse_commit).collect()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `actions`, `store_latency` and `kernel_latency` out of the reconciler's
/// `committed` debug line (`CommitStats` in Debug form). `None` for other lines, or if
/// the format changed (the report then shows the daemon's split as unavailable).
pub fn parse_commit(line: &str) -> Option<CommitLog> {
    if !line.contains("committed") || !line.contains("kernel_latency") {
        return None;
    }
    let field = |name: &str| {
        let rest = &line[line.find(&format!("{name}: "))? + name.len() + 2..];
        Some(rest.split([',', ' ', '}']).next()?.to_string())
    };
    Some(CommitLog {
        actions: field("actions")?.parse().ok()?,
        store: parse_duration(&field("store_latency")?)?,
        kernel: parse_duration(&field("kernel_latency")?)?,
    })
}

/// A `Duration` in its Debug form: `12ns`, `3.5µs`, `1.25ms`, `2.000001s`.
fn parse_duration(s: &str) -> Option<Duration> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ns") {
        (n, 1e-9)
    } else if let Some(n) = s.strip_suffix("µs") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    Some(Duration::from_secs_f64(num.parse::<f64>().ok()? * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_commit_line() {
        let line = "2026-01-01T00:00:00.000001Z DEBUG secgroupd::reconcile::core: committed \
                    stats=CommitStats { generation: 4, actions: 3, changes: 3, ops: 3, \
                    store_latency: 1.25ms, kernel_latency: 310.5µs }";
        let c = parse_commit(line).unwrap();
        assert_eq!(c.actions, 3);
        assert_eq!(c.store, Duration::from_micros(1250));
        assert_eq!(c.kernel, Duration::from_nanos(310_500));
        assert!(parse_commit("INFO control request status=200").is_none());
    }

    #[test]
    fn durations_in_debug_form() {
        assert_eq!(parse_duration("12ns"), Some(Duration::from_nanos(12)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("x"), None);
    }
}
