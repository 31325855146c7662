//! Who may do what on the control socket.
//!
//! The socket file's mode and group decide who can connect at all; this module decides,
//! per request, from the peer's credentials taken by the kernel at `connect()` time:
//!
//! - **admin**: uid 0, the daemon's own uid, or a member of `admin_group`: every action;
//! - **reader**: a member of `reader_group`: `DescribeSecurityGroups`, `GetStatus`,
//!   `ExplainPacket` and `GET /metrics`;
//! - anyone else: `UnauthorizedOperation` (HTTP 403).
//!
//! Group membership is the peer's primary gid (`SO_PEERCRED`) and its supplementary
//! groups from `SO_PEERGROUPS` (Linux ≥ 4.13), both snapshots the kernel took when the
//! peer connected. That is preferred over the alternatives because it has no race:
//! `/proc/<pid>/status` (`Groups:`) is read later, by pid, and the pid may have exited and
//! been reused, or the process may have changed its groups since it connected;
//! `getgrouplist(3)` of the uid reads the group database, not the caller's actual
//! credentials (a process that dropped its supplementary groups, e.g. a sandboxed
//! service, would still be let in, and a membership added in `/etc/group` would count
//! before the user logs in again). Only if the kernel lacks `SO_PEERGROUPS` do we fall back
//! to `/proc/<pid>/status`, with that race (the fallback is logged once).

use super::Peer;
use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, RwLock};

/// What a peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    None,
    Reader,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }
}

/// The rules: which groups make a peer an admin or a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Members are admins.
    pub admin_gid: Option<u32>,
    /// Members are readers.
    pub reader_gid: Option<u32>,
    /// The daemon's own uid: always admin (it could change anything itself anyway).
    pub own_uid: u32,
}

impl AccessPolicy {
    /// Root (and the daemon's own user) only: the default when no group is configured.
    pub fn root_only() -> Self {
        AccessPolicy {
            admin_gid: None,
            reader_gid: None,
            // SAFETY: geteuid has no preconditions.
            own_uid: unsafe { libc::geteuid() },
        }
    }

    /// With the given groups.
    pub fn with_groups(admin_gid: Option<u32>, reader_gid: Option<u32>) -> Self {
        AccessPolicy {
            admin_gid,
            reader_gid,
            ..AccessPolicy::root_only()
        }
    }

    /// The role of a peer with primary gid `peer.gid` and supplementary `groups`.
    pub fn role(&self, peer: &Peer, groups: &[u32]) -> Role {
        let member = |g: Option<u32>| g.is_some_and(|g| peer.gid == g || groups.contains(&g));
        if peer.uid == 0 || peer.uid == self.own_uid || member(self.admin_gid) {
            Role::Admin
        } else if member(self.reader_gid) {
            Role::Reader
        } else {
            Role::None
        }
    }
}

/// The policy in force, replaceable while the server runs (SIGHUP reload). Cheap to clone;
/// every clone sees the same policy.
#[derive(Debug, Clone)]
pub struct Access(Arc<RwLock<Arc<AccessPolicy>>>);

impl Access {
    pub fn new(policy: AccessPolicy) -> Self {
        Access(Arc::new(RwLock::new(Arc::new(policy))))
    }

    pub fn get(&self) -> Arc<AccessPolicy> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies to every request decided from now on, on existing connections too.
    pub fn set(&self, policy: AccessPolicy) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }
}

impl Default for Access {
    fn default() -> Self {
        Access::new(AccessPolicy::root_only())
    }
}

/// The gid of a group name, from the group database (`getgrnam_r`). `Ok(None)` if there is
/// no such group.
pub fn lookup_group(name: &str) -> io::Result<Option<u32>> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "group name contains NUL"))?;
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: group is plain old data; all zeroes is a valid value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call; `buf.len()` is the
        // size of the buffer the strings are written to.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 if result.is_null() => return Ok(None),
            0 => return Ok(Some(grp.gr_gid)),
            libc::ERANGE if buf.len() < (1 << 20) => buf.resize(buf.len() * 4, 0),
            // Some libcs report "not found" as an errno.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// The supplementary groups of the peer of a connected Unix socket: `SO_PEERGROUPS`, or
/// (older kernels) the `Groups:` line of `/proc/<pid>/status`.
pub fn peer_groups(sock: &impl AsRawFd, pid: i32) -> io::Result<Vec<u32>> {
    match so_peergroups(sock.as_raw_fd()) {
        Ok(g) => Ok(g),
        Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "the kernel has no SO_PEERGROUPS: reading peer groups from /proc/<pid>/status"
                )
            });
            proc_groups(pid)
        }
        Err(e) => Err(e),
    }
}

fn so_peergroups(fd: libc::c_int) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` has room for `len` bytes; the kernel writes at most that and
        // sets `len` to the size it needs.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ERANGE) && n > groups.len() && n <= 65536 {
            groups.resize(n, 0);
            continue;
        }
        return Err(e);
    }
}

/// The `Groups:` line of `/proc/<pid>/status`.
pub fn proc_groups(pid: i32) -> io::Result<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_groups(&status)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Groups: line"))
}

fn parse_status_groups(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    Some(
        line.split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer { uid, gid, pid: 1 }
    }

    #[test]
    fn roles() {
        let p = AccessPolicy {
            admin_gid: Some(10),
            reader_gid: Some(20),
            own_uid: 999,
        };
        assert_eq!(p.role(&peer(0, 0), &[]), Role::Admin);
        assert_eq!(p.role(&peer(999, 5), &[]), Role::Admin);
        assert_eq!(p.role(&peer(1000, 10), &[]), Role::Admin);
        assert_eq!(p.role(&peer(1000, 1000), &[7, 10]), Role::Admin);
        assert_eq!(p.role(&peer(1000, 20), &[]), Role::Reader);
        assert_eq!(p.role(&peer(1000, 1000), &[20]), Role::Reader);
        assert_eq!(p.role(&peer(1000, 1000), &[20, 10]), Role::Admin);
        assert_eq!(p.role(&peer(1000, 1000), &[1, 2]), Role::None);
        let root_only = AccessPolicy {
            admin_gid: None,
            reader_gid: None,
            own_uid: 0,
        };
        assert_eq!(root_only.role(&peer(1000, 0), &[0]), Role::None);
    }

    #[test]
    fn access_is_shared_between_clones() {
        let a = Access::default();
        let b = a.clone();
        b.set(AccessPolicy::with_groups(Some(4), None));
        assert_eq!(a.get().admin_gid, Some(4));
    }

    #[test]
    fn group_lookup() {
        assert_eq!(lookup_group("root").unwrap(), Some(0));
        assert_eq!(lookup_group("no-such-group-sgd").unwrap(), None);
        assert!(lookup_group("a\0b").is_err());
    }

    #[test]
    fn status_groups_line() {
        let s = "Name:\tx\nUid:\t0 0 0 0\nGroups:\t4 24 27 \nNgid:\t0\n";
        assert_eq!(parse_status_groups(s), Some(vec![4, 24, 27]));
        assert_eq!(parse_status_groups("Groups:\n"), Some(vec![]));
        assert_eq!(parse_status_groups("Name: x\n"), None);
    }

    #[test]
    fn peer_groups_of_a_socket_pair_are_ours() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mine = proc_groups(std::process::id() as i32).unwrap();
        let mut got = peer_groups(&a, std::process::id() as i32).unwrap();
        let mut want = mine;
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    }
}
