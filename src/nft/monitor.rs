//! Notices when something other than secgroupd changes secgroupd's tables.
//!
//! Subscribes to the nftables netlink event group (`NFNLGRP_NFTABLES`). The kernel sends
//! one event per object a transaction touches, then a `NEWGEN` event naming the process
//! that committed it. A transaction that touched one of our tables (any family) and was
//! not committed by this process means drift: the caller re-reads the kernel and repairs
//! by rule identity. If events are lost (the socket buffer overflowed), we cannot know
//! what happened, so that counts as drift too.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// `NFNLGRP_NFTABLES`.
const NFNLGRP_NFTABLES: u32 = 7;
/// `NFNL_SUBSYS_NFTABLES`.
const SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWGEN`.
const MSG_NEWGEN: u16 = 15;
/// `NFTA_GEN_PROC_PID`.
const NFTA_GEN_PROC_PID: u16 = 2;
/// Attribute 1 is the table name in every object message (`NFTA_TABLE_NAME`,
/// `NFTA_CHAIN_TABLE`, `NFTA_RULE_TABLE`, `NFTA_SET_TABLE`, `NFTA_SET_ELEM_LIST_TABLE`).
const ATTR_TABLE: u16 = 1;

/// What one read of the event socket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Nothing that concerns us (no events, or only our own or other tables').
    Nothing,
    /// Another process changed one of our tables.
    Drift,
    /// Events were lost: anything may have happened.
    Lost,
}

/// A subscription to nftables events.
pub struct Monitor {
    sock: mnl::Socket,
    table: String,
    /// Whether the transaction being read so far touched our table.
    touched: bool,
    buf: Vec<u8>,
}

// SAFETY: the socket is used by one thread at a time (the monitor thread owns it); it is
// only moved there once after creation.
unsafe impl Send for Monitor {}

impl Monitor {
    /// Subscribes in the current network namespace. `timeout` bounds each `wait`.
    pub fn new(table: &str, timeout: Duration) -> io::Result<Monitor> {
        let sock = mnl::Socket::new(mnl::Bus::Netfilter)?;
        let fd = sock.as_raw_fd();
        let group: libc::c_int = NFNLGRP_NFTABLES as libc::c_int;
        // SAFETY: valid fd and option value.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_NETLINK,
                libc::NETLINK_ADD_MEMBERSHIP,
                (&group as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // A generous buffer: a large foreign transaction sends one event per object.
        let size: libc::c_int = 8 << 20;
        // SAFETY: valid fd and option value; FORCE needs CAP_NET_ADMIN, which we have.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: valid fd and option value.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Monitor {
            sock,
            table: table.to_string(),
            touched: false,
            buf: vec![0; 1 << 16],
        })
    }

    /// Waits for events (up to the timeout) and reports whether our tables drifted.
    pub fn wait(&mut self) -> io::Result<Seen> {
        let n = match self.sock.recv_raw(&mut self.buf) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.touched = false;
                return Ok(Seen::Lost);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(Seen::Nothing);
            }
            Err(e) => return Err(e),
        };
        let mut seen = Seen::Nothing;
        let data = self.buf[..n].to_vec();
        tracing::trace!(bytes = n, "nftables events");
        for msg in messages(&data) {
            if let Some(s) = self.event(msg) {
                seen = s;
            }
        }
        Ok(seen)
    }

    fn event(&mut self, msg: Message<'_>) -> Option<Seen> {
        if msg.kind >> 8 != SUBSYS_NFTABLES {
            return None;
        }
        let attrs = attributes(msg.payload.get(4..)?); // after struct nfgenmsg
        if msg.kind & 0xff == MSG_NEWGEN {
            let pid = attrs
                .iter()
                .find(|(t, _)| *t == NFTA_GEN_PROC_PID)
                .and_then(|(_, v)| <[u8; 4]>::try_from(*v).ok())
                .map(u32::from_be_bytes);
            let touched = std::mem::take(&mut self.touched);
            tracing::debug!(?pid, touched, "nftables generation");
            return (touched && !pid.is_some_and(is_own_thread)).then_some(Seen::Drift);
        }
        let table = attrs
            .iter()
            .find(|(t, _)| *t == ATTR_TABLE)
            .map(|(_, v)| v.split(|b| *b == 0).next().unwrap_or(v));
        if table == Some(self.table.as_bytes()) {
            self.touched = true;
        }
        None
    }
}

/// Whether a pid reported by the kernel is a thread of this process: the kernel reports
/// the committing thread's id, and our commits come from the reconciler thread.
fn is_own_thread(tid: u32) -> bool {
    tid == std::process::id() || std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

/// One netlink message: its type and payload.
struct Message<'a> {
    kind: u16,
    payload: &'a [u8],
}

fn messages(mut data: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < 16 || len > data.len() {
            break;
        }
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        out.push(Message {
            kind,
            payload: &data[16..len],
        });
        let aligned = (len + 3) & !3;
        data = &data[aligned.min(data.len())..];
    }
    out
}

/// Top-level attributes `(type, value)`.
fn attributes(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff; // drop NLA_F_* flags
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        let aligned = (len + 3) & !3;
        data = &data[aligned.min(data.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        v.extend(kind.to_ne_bytes());
        v.extend(value);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    fn msg(kind: u16, attrs: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = [vec![1, 0, 0, 0]]
            .iter()
            .chain(attrs)
            .flatten()
            .copied()
            .collect();
        let mut v = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
        v.extend(kind.to_ne_bytes());
        v.extend([0u8; 10]);
        v.extend(body);
        v
    }

    #[test]
    fn parses_messages_and_attributes() {
        let m = msg(
            (10 << 8) | 6,
            &[attr(1, b"secgroupd\0"), attr(2, b"grp_1\0")],
        );
        let two = [m.clone(), m].concat();
        let parsed = messages(&two);
        assert_eq!(parsed.len(), 2);
        let a = attributes(&parsed[0].payload[4..]);
        assert_eq!(a[0], (1, &b"secgroupd\0"[..]));
        assert_eq!(a[1].0, 2);
    }

    #[test]
    fn truncated_input_does_not_panic() {
        let m = msg((10 << 8) | 6, &[attr(1, b"t\0")]);
        for cut in 0..m.len() {
            let _ = messages(&m[..cut]);
            let _ = attributes(&m[..cut]);
        }
    }
}
