//! Network namespaces owned by the benchmark: created with `ip netns add`, joined by
//! threads with `setns(CLONE_NEWNET)` and by child processes in `pre_exec`, deleted when
//! dropped. Nothing the benchmark does runs in the root namespace's ruleset.
//!
//! Child processes (`nft`, `secgroupd`) join the namespace with `setns` before `exec`
//! rather than through `ip netns exec`, whose extra work (a mount namespace, remounting
//! `/sys`, another `exec`) would be charged to the process being timed.

use super::cleanup;
use anyhow::{Context, Result, anyhow, bail};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// A network namespace, deleted on drop (also on panic; on signals, see [`cleanup`]).
pub struct Netns {
    name: String,
    /// `/var/run/netns/<name>`, kept open for `setns`.
    file: File,
}

impl Netns {
    /// Creates `sgb-<role>-<pid>-<n>` with `lo` up.
    pub fn new(role: &str) -> Result<Netns> {
        let name = cleanup::unique_name(role);
        // Registered first: a signal between the two steps must not leak it.
        cleanup::register_netns(&name);
        if let Err(e) = run(Command::new("ip").args(["netns", "add", &name])) {
            cleanup::forget_netns(&name);
            return Err(e);
        }
        let path = format!("/var/run/netns/{name}");
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
                cleanup::forget_netns(&name);
                return Err(anyhow!("opening {path}: {e}"));
            }
        };
        let ns = Netns { name, file };
        ns.ip_batch(&["link set lo up".to_string()])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs inside the namespace (joined between fork and exec), with
    /// no signal blocked: the benchmark blocks SIGINT/SIGTERM/SIGHUP in all its threads
    /// (see [`cleanup`]), a forked child inherits that mask, and a daemon that cannot
    /// receive SIGTERM cannot be stopped.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let fd = self.file.as_raw_fd();
        // SAFETY: setns, sigemptyset and sigprocmask are async-signal-safe system calls
        // on local data; `fd` stays open in the parent for the life of `self`, so it is
        // valid in the forked child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs many `ip` commands (one per line, without the leading `ip`) in one process.
    pub fn ip_batch(&self, lines: &[String]) -> Result<()> {
        let mut input = lines.join("\n");
        input.push('\n');
        let mut child = Command::new("ip")
            .args(["-n", &self.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning ip -batch")?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .context("writing to ip -batch")?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            let first = lines.first().map(String::as_str).unwrap_or("");
            bail!(
                "ip -n {} -batch ({} lines, first: {first:?}) failed: {}",
                self.name,
                lines.len(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Runs `f` on a fresh thread inside the namespace and returns its result. Sockets
    /// made in `f` stay in the namespace for their whole life.
    pub fn enter<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> Result<R> {
        let file = &self.file;
        std::thread::scope(|s| {
            let h = std::thread::Builder::new()
                .name(format!("netns:{}", self.name))
                .spawn_scoped(s, move || -> Result<R> {
                    join(file)?;
                    Ok(f())
                })?;
            match h.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }

    /// Starts a long-running thread inside the namespace.
    pub fn spawn<R, F>(&self, f: F) -> Result<std::thread::JoinHandle<Result<R>>>
    where
        R: Send + 'static,
        F: FnOnce() -> Result<R> + Send + 'static,
    {
        let file = self.file.try_clone()?;
        let h = std::thread::Builder::new()
            .name(format!("netns:{}", self.name))
            .spawn(move || {
                join(&file)?;
                drop(file);
                f()
            })?;
        Ok(h)
    }

    /// Writes a sysctl of this namespace (through `/proc/sys`, from inside it).
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.enter(|| std::fs::write(&path, value))?
            .with_context(|| format!("{}: setting {key}", self.name))
    }
}

fn join(file: &File) -> Result<()> {
    // SAFETY: a valid open fd; setns only changes the calling thread, a dedicated thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns(CLONE_NEWNET): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("warning: {e:#}");
        }
        cleanup::forget_netns(&self.name);
    }
}

/// Runs a command to completion; its stdout on success, an error with its stderr if not.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
