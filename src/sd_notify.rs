//! The systemd notification protocol (`sd_notify(3)`), written out instead of linking
//! libsystemd: one datagram of `KEY=value` lines to the socket named by `$NOTIFY_SOCKET`
//! (a path, or an abstract name written with a leading `@`).
//!
//! Used for `Type=notify`: `READY=1` once the kernel table matches the state and the control
//! socket listens, `STOPPING=1` on shutdown, `STATUS=` lines, and `WATCHDOG=1` every half
//! `WatchdogSec` while the reconciler answers.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager, or nothing when not started by one.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; a no-op notifier when it is unset or empty.
    pub fn from_env() -> io::Result<Self> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(s) if !s.is_empty() => {
                use std::os::unix::ffi::OsStrExt;
                Notifier::to_socket(s.as_bytes())
            }
            _ => Ok(Notifier { target: None }),
        }
    }

    /// Notifies the socket `name`: a path, or `@name` for an abstract socket.
    pub fn to_socket(name: &[u8]) -> io::Result<Self> {
        let addr = match name.strip_prefix(b"@") {
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name)?
            }
            None => {
                use std::os::unix::ffi::OsStrExt;
                SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(name))?
            }
        };
        let sock = UnixDatagram::unbound()?;
        Ok(Notifier {
            target: Some((sock, addr)),
        })
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (newline-separated `KEY=value` assignments). A no-op when disabled.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        match &self.target {
            Some((sock, addr)) => sock.send_to_addr(state.as_bytes(), addr).map(drop),
            None => Ok(()),
        }
    }

    /// Like [`Notifier::notify`], logging instead of failing: a service manager that went
    /// away must not stop the daemon.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.notify(state) {
            tracing::warn!(error = %e, state, "sd_notify failed");
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if it is set and meant for
/// this process (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to_socket(path.to_str().unwrap().as_bytes()).unwrap();
        assert!(n.enabled());
        n.notify("READY=1\nSTATUS=serving").unwrap();
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("sgd-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        let n = Notifier::to_socket(format!("@{name}").as_bytes()).unwrap();
        n.notify("STOPPING=1").unwrap();
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1");
    }

    #[test]
    fn disabled_is_a_no_op() {
        let n = Notifier { target: None };
        assert!(!n.enabled());
        n.notify("READY=1").unwrap();
    }
}
