//! Creating the control socket file.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::Path;

/// Connections waiting to be accepted before the kernel refuses more (`EAGAIN` to a
/// non-blocking `connect`). Room for a burst as large as the thousand clients the
/// connection cap is sized for, e.g. an agent starting many instances while the daemon
/// is busy; 128 was seen to overflow on a loaded 2-core machine.
const BACKLOG: libc::c_int = 1024;

/// Binds the control socket at `path`, mode 0600, and returns it listening.
///
/// - A socket file left by an earlier run is removed; a live one (something accepts
///   connections on it) is `AddrInUse`, and a path that is not a socket is `AlreadyExists`:
///   we never delete what we did not create.
/// - Missing parent directories are created (mode 0755, so that permissions opened later on
///   the socket itself take effect).
/// - The mode is set between `bind` and `listen`: until `listen` every connect is refused,
///   so no client can connect while the file still has the umask's permissions.
///
/// Must be called within a tokio runtime.
pub fn bind_control_socket(path: &Path) -> io::Result<tokio::net::UnixListener> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    remove_stale(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(with_path)?;
    }
    let fd = bind(path).map_err(with_path)?;
    let listening = fs::set_permissions(path, fs::Permissions::from_mode(0o600)).and_then(|()| {
        // SAFETY: `fd` is a valid socket owned by this function.
        cvt(unsafe { libc::listen(fd.as_raw_fd(), BACKLOG) })
    });
    if let Err(e) = listening {
        let _ = fs::remove_file(path);
        return Err(with_path(e));
    }
    let std_listener = std::os::unix::net::UnixListener::from(fd);
    tokio::net::UnixListener::from_std(std_listener)
}

/// Gives the socket file its configured group (`None`: root's group, gid 0) and mode.
///
/// The group is set first and the mode second, so group permissions never apply to the
/// wrong group in between. `lchown`: the path is never followed if it is a symlink.
/// Called after [`bind_control_socket`] and again on a configuration reload.
pub fn apply_socket_permissions(path: &Path, gid: Option<u32>, mode: u32) -> io::Result<()> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let meta = fs::symlink_metadata(path).map_err(with_path)?;
    if !meta.file_type().is_socket() {
        return Err(with_path(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a socket",
        )));
    }
    std::os::unix::fs::lchown(path, None, Some(gid.unwrap_or(0))).map_err(with_path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o777)).map_err(with_path)
}

/// Removes `path` if it is a socket nobody listens on.
fn remove_stale(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; refusing to remove it",
                path.display()
            ),
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{} is in use: another daemon is listening on it",
                path.display()
            ),
        ));
    }
    fs::remove_file(path)
        .map_err(|e| io::Error::new(e.kind(), format!("removing stale {}: {e}", path.display())))
}

/// A non-blocking, close-on-exec Unix stream socket bound to `path`, not yet listening.
fn bind(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.contains(&0) || bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a socket path has at most {} bytes and no NUL",
                addr.sun_path.len() - 1
            ),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let raw = cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: `addr` is an initialised sockaddr_un and `len` does not exceed its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// Turns a libc `-1` into the thread's `errno`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sgd-sock-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn binds_with_mode_0600_and_creates_the_parent() {
        let dir = temp_dir("mode");
        let path = dir.join("sub/control.sock");
        let _l = bind_control_socket(&path).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A burst of a thousand non-blocking connects while nothing accepts (the daemon busy
    /// committing) is queued, not refused with `EAGAIN`.
    #[tokio::test]
    async fn a_burst_of_a_thousand_connects_waits_in_the_backlog() {
        const BURST: usize = 1000;
        let limit = crate::control::rlimit::raise_fd_limit(BURST as u64 + 256).unwrap();
        assert!(limit > BURST as u64 + 64, "RLIMIT_NOFILE {limit}");
        let dir = temp_dir("backlog");
        let path = dir.join("control.sock");
        let _listener = bind_control_socket(&path).unwrap();
        let mut waiting = Vec::with_capacity(BURST);
        for i in 0..BURST {
            match tokio::net::UnixStream::connect(&path).await {
                Ok(s) => waiting.push(s),
                Err(e) => panic!("connect {} of {BURST} refused: {e}", i + 1),
            }
        }
        drop(waiting);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn replaces_a_stale_socket_but_not_a_live_one() {
        let dir = temp_dir("stale");
        let path = dir.join("control.sock");
        let live = bind_control_socket(&path).unwrap();
        let e = bind_control_socket(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        drop(live); // the file stays, nobody listens: stale
        assert!(path.exists());
        let _again = bind_control_socket(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn refuses_to_remove_a_regular_file() {
        let dir = temp_dir("file");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        fs::write(&path, b"precious").unwrap();
        let e = bind_control_socket(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn permissions_and_group_are_applied() {
        use std::os::unix::fs::MetadataExt;
        let dir = temp_dir("perm");
        let path = dir.join("control.sock");
        let _l = bind_control_socket(&path).unwrap();
        // SAFETY: getegid has no preconditions.
        let gid = unsafe { libc::getegid() };
        apply_socket_permissions(&path, Some(gid), 0o660).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid);
        let e = apply_socket_permissions(&dir, None, 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn rejects_paths_too_long_for_sockaddr_un() {
        let path = std::path::PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
        let e = bind_control_socket(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
