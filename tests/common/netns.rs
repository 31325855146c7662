//! Network namespaces owned by a test: created with `ip netns add`, deleted on drop.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every namespace the harness creates: `sgd-<role>-<pid>-<counter>`.
pub const PREFIX: &str = "sgd-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A failed command: what ran, how it ended, and its output.
#[derive(Debug, Clone)]
pub struct CmdError {
    pub command: String,
    /// `None` when the command could not be started at all.
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "`{}` failed ({s})", self.command)?,
            None => write!(f, "`{}` could not be started", self.command)?,
        }
        if !self.stderr.trim().is_empty() {
            write!(f, "\nstderr: {}", self.stderr.trim_end())?;
        }
        if !self.stdout.trim().is_empty() {
            write!(f, "\nstdout: {}", self.stdout.trim_end())?;
        }
        Ok(())
    }
}

impl std::error::Error for CmdError {}

/// Runs a program (no shell), returns stdout on success.
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> Result<String, CmdError> {
    run_with_stdin(args, None)
}

/// Like [`run`], feeding `stdin` to the program.
pub fn run_with_stdin<S: AsRef<OsStr>>(
    args: &[S],
    stdin: Option<&str>,
) -> Result<String, CmdError> {
    let command = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let fail = |status, stdout: &[u8], stderr: String| CmdError {
        command: command.clone(),
        status,
        stdout: String::from_utf8_lossy(stdout).into_owned(),
        stderr,
    };
    let (prog, rest) = args
        .split_first()
        .ok_or_else(|| fail(None, b"", "empty command".into()))?;
    let mut cmd = Command::new(prog);
    cmd.args(rest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().map_err(|e| fail(None, b"", e.to_string()))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        // A failed write shows up as the command's own error below.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out: Output = child
        .wait_with_output()
        .map_err(|e| fail(None, b"", e.to_string()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(fail(
            Some(out.status),
            &out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

/// Names of all namespaces in `ip netns list` (first column).
pub fn netns_list() -> Vec<String> {
    run(&["ip", "netns", "list"])
        .unwrap_or_else(|e| panic!("{e}"))
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Whether a namespace of that name is registered (`/run/netns/<name>` exists).
pub fn netns_exists(name: &str) -> bool {
    netns_path(name).exists()
}

fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/var/run/netns").join(name)
}

/// Deletes `sgd-*-<pid>-*` namespaces whose process no longer exists (left by a test
/// process that was killed before its destructors ran). Namespaces of live processes
/// are never touched.
pub fn cleanup_stale() {
    let Ok(list) = run(&["ip", "netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = owner_pid(name) else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

/// `sgd-<role>-<pid>-<counter>` → pid (role may itself contain '-').
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    let counter = parts.next()?;
    let pid = parts.next()?;
    let _role = parts.next()?;
    counter.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// A network namespace created for a test and deleted when dropped (also on panic).
///
/// Only the name is kept; the namespace is reached through `/var/run/netns/<name>`.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `sgd-<role>-<pid>-<counter>` and brings `lo` up. Panics on failure.
    pub fn new(role: &str) -> Netns {
        Netns::try_new(role).unwrap_or_else(|e| panic!("creating namespace for {role:?}: {e}"))
    }

    /// Non-panicking [`Netns::new`].
    pub fn try_new(role: &str) -> Result<Netns, CmdError> {
        assert!(
            !role.is_empty()
                && role
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "namespace role must be [A-Za-z0-9_-]+: {role:?}"
        );
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{role}-{}-{n}", std::process::id());
        if let Err(e) = run(&["ip", "netns", "add", &name]) {
            // Our pid is unique among live processes, so an existing namespace with this
            // name is a leftover of a dead process that had the same pid: replace it.
            if !e.stderr.contains("File exists") {
                return Err(e);
            }
            run(&["ip", "netns", "del", &name])?;
            run(&["ip", "netns", "add", &name])?;
        }
        // From here on Drop deletes it, whatever fails next.
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command inside the namespace (`ip netns exec`) and returns its stdout;
    /// panics with the command, status and stderr on failure.
    pub fn exec(&self, args: &[&str]) -> String {
        self.try_exec(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Non-panicking [`Netns::exec`].
    pub fn try_exec(&self, args: &[&str]) -> Result<String, CmdError> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Like [`Netns::exec`], feeding `stdin` to the command.
    pub fn exec_with_stdin(&self, args: &[&str], stdin: &str) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run_with_stdin(&full, Some(stdin)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip -n <ns> ARGS...` (cheaper than `exec(["ip", ...])`: no mount namespace).
    pub fn ip(&self, args: &[&str]) -> Result<String, CmdError> {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs many `ip` commands (one per line, without the leading `ip`) in one process
    /// with `ip -n <ns> -batch -`; stops at the first failing line.
    pub fn ip_batch(&self, lines: &[String]) -> Result<(), CmdError> {
        let mut input = lines.join("\n");
        input.push('\n');
        run_with_stdin(&["ip", "-n", &self.name, "-batch", "-"], Some(&input))
            .map(drop)
            .map_err(|mut e| {
                e.command = format!("{}  <<EOF\n{input}EOF", e.command);
                e
            })
    }

    /// Writes a sysctl of this namespace, e.g. `set_sysctl("net.ipv4.ip_forward", "1")`.
    /// Done in-process through `/proc/sys` on a thread inside the namespace.
    pub fn set_sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = value.to_string();
        self.enter(move || std::fs::write(&path, value.as_bytes()))
            .unwrap_or_else(|e| panic!("{}: setting {key}: {e}", self.name));
    }

    /// Reads a sysctl of this namespace.
    pub fn sysctl(&self, key: &str) -> String {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.enter(move || std::fs::read_to_string(&path))
            .unwrap_or_else(|e| panic!("{}: reading {key}: {e}", self.name))
            .trim()
            .to_string()
    }

    /// Runs `f` on a fresh thread that has joined this namespace with `setns(CLONE_NEWNET)`
    /// and returns its result (a panic in `f` is propagated). Sockets created in `f` belong
    /// to this namespace for their whole life, whatever thread uses them later.
    /// The calling thread's namespace is never changed.
    pub fn enter<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> R {
        self.try_enter(f).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Netns::enter`] but returns an error if the namespace cannot be joined.
    pub fn try_enter<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> Result<R, String> {
        let file = self.open()?;
        std::thread::scope(|s| {
            let handle = std::thread::Builder::new()
                .name(format!("netns:{}", self.name))
                .spawn_scoped(s, move || {
                    join_netns(&file, &self.name)?;
                    drop(file);
                    Ok(f())
                })
                .map_err(|e| format!("cannot spawn thread: {e}"))?;
            match handle.join() {
                Ok(r) => r,
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    }

    /// Spawns a background thread inside the namespace (for long-running closures).
    pub fn spawn<R, F>(&self, f: F) -> std::thread::JoinHandle<R>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let file = self.open().unwrap_or_else(|e| panic!("{e}"));
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("netns:{name}"))
            .spawn(move || {
                join_netns(&file, &name).unwrap_or_else(|e| panic!("{e}"));
                drop(file);
                f()
            })
            .expect("spawn thread")
    }

    fn open(&self) -> Result<File, String> {
        let path = netns_path(&self.name);
        File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))
    }
}

fn join_netns(file: &File, name: &str) -> Result<(), String> {
    // SAFETY: a valid open fd; setns only affects the calling thread, which is a
    // dedicated thread that never returns to a pool.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!(
            "setns({name}, CLONE_NEWNET) failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(&["ip", "netns", "del", &self.name]) {
            // Never panic in drop (it may run during unwinding): report instead.
            let _ = writeln!(std::io::stderr(), "warning: deleting namespace: {e}");
        }
    }
}
