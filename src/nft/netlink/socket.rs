//! The `NETLINK_NETFILTER` socket and the reading of what the kernel sends back.
//!
//! We use `mnl::Socket` to open and bind, but send and receive with plain syscalls: a batch
//! must go out in exactly one `sendto` (the kernel treats each datagram as its own batch, so
//! `mnl`'s page-by-page `send_all` would get everything after the first page rejected), and
//! receiving needs `MSG_DONTWAIT`/`MSG_TRUNC`, which `mnl` does not expose.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// How long one `recv` waits. The kernel handles a request synchronously inside our
/// `sendto` (and a dump inside our `recv`), so its answers are queued before we look; a
/// kernel that has said nothing after this long is not going to.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Size of the receive buffer. Dump datagrams are at most 32 KiB
/// (`SKB_WITH_OVERHEAD(32768)`), unicast replies and acks are far smaller.
const RX_BYTES: usize = 128 * 1024;

/// Socket buffers we start with; [`NlSocket::reserve`] grows them for large batches.
const INITIAL_BUF: usize = 4 << 20;

/// Size of a netlink header (`NLMSG_HDRLEN`).
pub(super) const NLMSG_HDRLEN: usize = 16;

pub(super) struct NlSocket {
    sock: mnl::Socket,
    sndbuf: usize,
    rcvbuf: usize,
    /// `u64` storage so that every message in it is aligned for `nlmsghdr`, as libnftnl's
    /// parsers (which cast the pointer) require.
    rx: Vec<u64>,
}

impl NlSocket {
    pub(super) fn open() -> io::Result<Self> {
        let sock = mnl::Socket::new(mnl::Bus::Netfilter)?;
        let fd = sock.as_raw_fd();
        // Error acks carry only the header of the refused message, not the message itself:
        // a refused 60 KiB element message would otherwise come back whole.
        setsockopt(fd, libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1)?;
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, tv)?;
        let mut s = NlSocket {
            sock,
            sndbuf: 0,
            rcvbuf: 0,
            rx: vec![0; RX_BYTES / 8],
        };
        s.reserve(INITIAL_BUF, INITIAL_BUF)?;
        Ok(s)
    }

    /// Makes the socket buffers at least this large. We are root, so the `*FORCE` options
    /// let us go past `net.core.{w,r}mem_max`: the whole batch must fit in the send buffer
    /// (else `EMSGSIZE`), and every ack and echo of a batch is queued before we read the
    /// first one (if they do not fit, the kernel drops them and we cannot tell the outcome).
    pub(super) fn reserve(&mut self, snd: usize, rcv: usize) -> io::Result<()> {
        let fd = self.sock.as_raw_fd();
        // The kernel doubles the value and stores it in an int.
        let clamp = |v: usize| v.min(i32::MAX as usize / 2) as libc::c_int;
        if snd > self.sndbuf {
            setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, clamp(snd))?;
            self.sndbuf = snd;
        }
        if rcv > self.rcvbuf {
            setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, clamp(rcv))?;
            self.rcvbuf = rcv;
        }
        Ok(())
    }

    /// Sends `data` in one datagram.
    pub(super) fn send(&self, data: &[u8]) -> io::Result<()> {
        let n = self.sock.send(data)?;
        if n != data.len() {
            return Err(io::Error::other(format!(
                "netlink sendto sent {n} of {} bytes",
                data.len()
            )));
        }
        Ok(())
    }

    /// Receives one datagram from the kernel and returns its length; read it with
    /// [`NlSocket::data`]. With `wait`, blocks up to [`RECV_TIMEOUT`] and fails with
    /// `TimedOut` after that; without, returns `None` when nothing is queued.
    pub(super) fn recv(&mut self, wait: bool) -> io::Result<Option<usize>> {
        let fd = self.sock.as_raw_fd();
        let cap = self.rx.len() * 8;
        // MSG_TRUNC makes the kernel return the real length, so truncation is detected.
        let flags = libc::MSG_TRUNC | if wait { 0 } else { libc::MSG_DONTWAIT };
        loop {
            // SAFETY: sockaddr_nl is plain data, all zeros is valid.
            let mut addr: libc::sockaddr_nl = unsafe { zeroed() };
            let mut alen = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            // SAFETY: the buffer is valid for `cap` bytes, addr for `alen`.
            let n = unsafe {
                libc::recvfrom(
                    fd,
                    self.rx.as_mut_ptr().cast(),
                    cap,
                    flags,
                    (&raw mut addr).cast(),
                    &mut alen,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock if !wait => Ok(None),
                    io::ErrorKind::WouldBlock => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer from the kernel within {RECV_TIMEOUT:?}"),
                    )),
                    _ => Err(e),
                };
            }
            let n = n as usize;
            if n > cap {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("netlink datagram of {n} bytes truncated to {cap}"),
                ));
            }
            if addr.nl_pid != 0 {
                // Not from the kernel (only root can send to our port); not ours to read.
                continue;
            }
            return Ok(Some(n));
        }
    }

    /// The first `n` bytes of the last datagram received.
    pub(super) fn data(&self, n: usize) -> &[u8] {
        // SAFETY: `rx` owns `rx.len() * 8` initialised bytes, and `n` never exceeds that
        // (checked in `recv`).
        unsafe {
            std::slice::from_raw_parts(self.rx.as_ptr().cast::<u8>(), n.min(self.rx.len() * 8))
        }
    }

    /// Throws away whatever is queued, so that the next request reads only its own answers.
    /// A lost-answers error (`ENOBUFS`) is cleared by reporting it, so it is skipped too.
    pub(super) fn drain(&mut self) -> io::Result<()> {
        loop {
            match self.recv(false) {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn setsockopt<T>(fd: libc::c_int, level: libc::c_int, name: libc::c_int, val: T) -> io::Result<()> {
    // SAFETY: `val` lives for the call and its size is passed along.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const val).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One netlink message of a received datagram.
pub(super) struct Msg<'a> {
    pub(super) hdr: libc::nlmsghdr,
    /// The whole message, header included.
    pub(super) bytes: &'a [u8],
}

impl Msg<'_> {
    /// The message type without the subsystem (`NFT_MSG_*`), for nftables messages.
    pub(super) fn nft_type(&self) -> Option<u16> {
        let t = self.hdr.nlmsg_type;
        (t >> 8 == libc::NFNL_SUBSYS_NFTABLES as u16).then_some(t & 0xff)
    }

    /// For `NLMSG_ERROR` messages: the errno (0 for an ack). For `NLMSG_DONE`: the dump's
    /// errno if it ended in an error, else 0.
    pub(super) fn errno(&self) -> Option<i32> {
        let t = libc::c_int::from(self.hdr.nlmsg_type);
        if t != libc::NLMSG_ERROR && t != libc::NLMSG_DONE {
            return None;
        }
        let p = self.bytes.get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4);
        let err = p.map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        Some(-err)
    }

    /// The message as libnftnl's parsers take it.
    pub(super) fn as_ptr(&self) -> *const libc::nlmsghdr {
        self.bytes.as_ptr().cast()
    }
}

/// The messages of a datagram, each checked for a sane length.
pub(super) fn messages(buf: &[u8]) -> impl Iterator<Item = io::Result<Msg<'_>>> {
    mnl::NlMessages::new(buf).map(|m| {
        let bytes = m?;
        // SAFETY: NlMessages checked that `bytes` holds at least a header and is aligned.
        let hdr = unsafe { bytes.as_ptr().cast::<libc::nlmsghdr>().read() };
        Ok(Msg { hdr, bytes })
    })
}
