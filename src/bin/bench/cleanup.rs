//! Removal of everything the benchmark creates outside its own memory (network
//! namespaces, daemon processes, work directories), on every way out.
//!
//! - Normal return and panics: each resource has a guard whose `Drop` removes it; a panic
//!   unwinds through the guards.
//! - SIGINT, SIGTERM, SIGHUP: the signals are blocked in every thread (the mask is set
//!   before any thread exists, and threads inherit it) and received by one thread with
//!   `sigwait`, which removes whatever is still registered and exits. A signal handler
//!   could not safely run `ip netns del`; a thread can. Children inherit the mask, so
//!   the daemon and `nft` are started with it cleared (`Netns::command`).
//! - SIGKILL: nothing can run; the next start deletes namespaces whose owner is dead
//!   ([`remove_stale_netns`]).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every namespace and work directory: `sgb-<role>-<pid>-<n>`.
pub const PREFIX: &str = "sgb-";

struct Registry {
    netns: Vec<String>,
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    netns: Vec::new(),
    pids: Vec::new(),
    dirs: Vec::new(),
});

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A panic while holding the lock must not stop the cleanup.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A unique name `sgb-<role>-<pid>-<n>` for a namespace or directory of this process.
pub fn unique_name(role: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{role}-{}-{n}", std::process::id())
}

/// Blocks SIGINT, SIGTERM and SIGHUP and starts the thread that cleans up on them.
/// Must run before any other thread is started (they inherit the mask).
pub fn install_signal_thread() -> io::Result<()> {
    // SAFETY: plain libc calls on a local, initialised sigset_t.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        set
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is a valid sigset_t owned by this closure.
            while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
            eprintln!("\nsecgroupd-bench: signal {sig}: removing namespaces and daemons");
            remove_everything();
            std::process::exit(128 + sig);
        })?;
    Ok(())
}

/// Kills registered daemons, deletes registered namespaces and directories.
pub fn remove_everything() {
    let (pids, netns, dirs) = {
        let mut r = registry();
        (
            std::mem::take(&mut r.pids),
            std::mem::take(&mut r.netns),
            std::mem::take(&mut r.dirs),
        )
    };
    for pid in pids {
        // SAFETY: kill(2) on a child we spawned and registered; it is reaped by its guard
        // or by init once we exit.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    for ns in netns {
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

pub fn register_netns(name: &str) {
    registry().netns.push(name.to_string());
}
pub fn forget_netns(name: &str) {
    registry().netns.retain(|n| n != name);
}
pub fn register_pid(pid: u32) {
    registry().pids.push(pid);
}
pub fn forget_pid(pid: u32) {
    registry().pids.retain(|p| *p != pid);
}

/// Deletes `sgb-*-<pid>-*` namespaces whose process is gone (left by a run that was
/// killed with SIGKILL). Namespaces of live processes are never touched.
pub fn remove_stale_netns() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = owner_pid(name) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("removing stale namespace {name} (process {pid} is gone)");
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// `sgb-<role>-<pid>-<n>` → pid.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    parts.next()?.parse::<u64>().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(pid)
}

/// A private work directory (config, socket, state, logs, scripts), removed on drop.
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    pub fn new(role: &str) -> io::Result<WorkDir> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(unique_name(role));
        registry().dirs.push(path.clone());
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(WorkDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        registry().dirs.retain(|d| d != &self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn owner_pid_parses_our_names_only() {
        assert_eq!(owner_pid("sgb-revoke-1234-7"), Some(1234));
        assert_eq!(owner_pid("sgb-dp-host-99-0"), Some(99));
        assert_eq!(owner_pid("sgd-revoke-1234-7"), None);
        assert_eq!(owner_pid("sgb-x-y"), None);
    }
}
