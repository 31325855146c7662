//! In-process listeners and probes. Sockets are created on a thread inside the target
//! namespace ([`Netns::enter`]) and keep that namespace for their whole life; no external
//! tool is run.
//!
//! Probes answer a yes/no question ("does an echo come back within the timeout?") and
//! never panic on network errors. Each has a `*_result` twin returning the error for
//! assertion messages.

use super::netns::Netns;
use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default probe timeout: long enough for a first ARP/ND resolution on a veth, short
/// enough that a blocked probe costs little.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(400);

/// How often background loops look at their stop flag.
const TICK: Duration = Duration::from_millis(50);

/// `0.0.0.0`
pub fn any_v4() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

/// `::` (dual-stack on Linux: also accepts IPv4 unless `bindv6only` is set).
pub fn any_v6() -> IpAddr {
    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
}

/// Polls `cond` (every 20 ms) until it is true or `timeout` has passed; returns the
/// last result. `cond` is always evaluated at least once and once more at the deadline.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// Random bytes from the kernel (`getrandom(2)`).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    let mut filled = 0;
    while filled < N {
        // SAFETY: writes at most N - filled bytes into buf[filled..].
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), N - filled, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            assert_eq!(e.kind(), io::ErrorKind::Interrupted, "getrandom: {e}");
            continue;
        }
        filled += n as usize;
    }
    buf
}

/// A printable random token, unique per call.
pub fn nonce() -> Vec<u8> {
    let r: [u8; 12] = random_bytes();
    let mut s = String::from("sgd-");
    for b in r {
        s.push_str(&format!("{b:02x}"));
    }
    s.into_bytes()
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let now = Instant::now();
    if now >= deadline {
        Err(io::Error::new(io::ErrorKind::TimedOut, "probe timed out"))
    } else {
        Ok(deadline - now)
    }
}

fn poll_in(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    match rc {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}

// ---------------------------------------------------------------------------------------
// TCP

/// TCP: connect from `ns` to `dst:port`, send a nonce, expect it echoed, all within
/// `timeout`.
pub fn tcp_probe(ns: &Netns, dst: IpAddr, port: u16, timeout: Duration) -> bool {
    tcp_probe_result(ns, dst, port, timeout).is_ok()
}

/// [`tcp_probe`] with the reason of a failure.
pub fn tcp_probe_result(ns: &Netns, dst: IpAddr, port: u16, timeout: Duration) -> io::Result<()> {
    let addr = SocketAddr::new(dst, port);
    ns.enter(move || {
        let deadline = Instant::now() + timeout;
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_nodelay(true)?;
        let nonce = nonce();
        s.set_write_timeout(Some(remaining(deadline)?))?;
        s.write_all(&nonce)?;
        let mut buf = vec![0u8; nonce.len()];
        let mut got = 0;
        while got < buf.len() {
            s.set_read_timeout(Some(remaining(deadline)?))?;
            match s.read(&mut buf[got..]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no echo"));
                }
                Err(e) => return Err(e),
            }
        }
        if buf == nonce {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::InvalidData, "wrong echo"))
        }
    })
}

/// A TCP echo server in a namespace, serving on a background thread until dropped.
pub struct TcpEchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl TcpEchoServer {
    /// Binds `addr:port` inside `ns` (port 0: ephemeral, see [`TcpEchoServer::port`]);
    /// listening when this returns. Panics if it cannot bind.
    pub fn start(ns: &Netns, addr: IpAddr, port: u16) -> TcpEchoServer {
        let listener = ns
            .enter(move || TcpListener::bind((addr, port)))
            .unwrap_or_else(|e| panic!("{}: TCP bind {addr}:{port}: {e}", ns.name()));
        let local = listener.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        let thread = std::thread::Builder::new()
            .name(format!("tcp-echo:{}", ns.name()))
            .spawn(move || tcp_accept_loop(listener, stop2, accepted2))
            .expect("spawn");
        TcpEchoServer {
            addr: local,
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn tcp_accept_loop(listener: TcpListener, stop: Arc<AtomicBool>, accepted: Arc<AtomicU64>) {
    let _ = listener.set_nonblocking(true);
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if !matches!(poll_in(listener.as_raw_fd(), TICK), Ok(true)) {
            continue;
        }
        let Ok((conn, _)) = listener.accept() else {
            continue;
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let stop = stop.clone();
        conns.retain(|h| !h.is_finished());
        conns.push(std::thread::spawn(move || tcp_echo_conn(conn, stop)));
    }
    for h in conns {
        let _ = h.join();
    }
}

fn tcp_echo_conn(mut conn: TcpStream, stop: Arc<AtomicBool>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_nodelay(true);
    let _ = conn.set_read_timeout(Some(TICK));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for TcpEchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// UDP

/// UDP: from a fresh socket (fresh ephemeral source port) in `ns`, send one datagram
/// with a nonce to `dst:port` and wait for the same bytes to come back.
pub fn udp_probe(ns: &Netns, dst: IpAddr, port: u16, timeout: Duration) -> bool {
    udp_probe_result(ns, dst, port, timeout).is_ok()
}

/// [`udp_probe`] with the reason of a failure.
pub fn udp_probe_result(ns: &Netns, dst: IpAddr, port: u16, timeout: Duration) -> io::Result<()> {
    let addr = SocketAddr::new(dst, port);
    ns.enter(move || {
        let deadline = Instant::now() + timeout;
        let bind = match dst {
            IpAddr::V4(_) => any_v4(),
            IpAddr::V6(_) => any_v6(),
        };
        let s = fresh_udp_socket(bind)?;
        s.connect(addr)?;
        let nonce = nonce();
        s.send(&nonce)?;
        let mut buf = [0u8; 2048];
        loop {
            s.set_read_timeout(Some(remaining(deadline)?))?;
            match s.recv(&mut buf) {
                Ok(n) if buf[..n] == nonce[..] => return Ok(()),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no echo"));
                }
                Err(e) => return Err(e),
            }
        }
    })
}

/// Source ports already used by UDP probes in this process.
static USED_UDP_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A UDP socket bound to an ephemeral port that no earlier probe of this process used,
/// so every probe is a new conntrack flow (a reused 5-tuple could match the entry of an
/// earlier, allowed probe and pass a filter that should block a new flow).
fn fresh_udp_socket(bind: IpAddr) -> io::Result<UdpSocket> {
    let mut used = USED_UDP_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if used.len() > 20_000 {
        // Most of the ephemeral range: start over (old conntrack entries are long gone).
        used.clear();
    }
    let mut held = Vec::new(); // keep rejected sockets bound so the kernel picks others
    loop {
        let s = UdpSocket::bind((bind, 0))?;
        let port = s.local_addr()?.port();
        if used.insert(port) {
            return Ok(s);
        }
        held.push(s);
        if held.len() > 1000 {
            return Err(io::Error::other("no fresh UDP source port"));
        }
    }
}

/// A UDP echo server in a namespace: every datagram is sent back to its source.
pub struct UdpEchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEchoServer {
    /// Binds `addr:port` inside `ns` (port 0: ephemeral). Panics if it cannot bind.
    pub fn start(ns: &Netns, addr: IpAddr, port: u16) -> UdpEchoServer {
        let sock = ns
            .enter(move || UdpSocket::bind((addr, port)))
            .unwrap_or_else(|e| panic!("{}: UDP bind {addr}:{port}: {e}", ns.name()));
        let local = sock.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let (stop2, received2, peers2) = (stop.clone(), received.clone(), peers.clone());
        let thread = std::thread::Builder::new()
            .name(format!("udp-echo:{}", ns.name()))
            .spawn(move || {
                let _ = sock.set_read_timeout(Some(TICK));
                let mut buf = [0u8; 65536];
                while !stop2.load(Ordering::SeqCst) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        peers2.lock().unwrap().push(from);
                        received2.fetch_add(1, Ordering::SeqCst);
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
            })
            .expect("spawn");
        UdpEchoServer {
            addr: local,
            stop,
            received,
            peers,
            thread: Some(thread),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Datagrams received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Source address of every datagram received so far, in order.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.lock().unwrap().clone()
    }
}

impl Drop for UdpEchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// ICMP

/// ICMP / ICMPv6 echo from `ns` to `dst` over a raw socket, with a random identifier,
/// sequence number and payload; true when the matching echo reply arrives from `dst`
/// within `timeout`. Every host answers echo requests by default, no server needed.
pub fn icmp_probe(ns: &Netns, dst: IpAddr, timeout: Duration) -> bool {
    icmp_probe_result(ns, dst, timeout).is_ok()
}

/// [`icmp_probe`] with the reason of a failure.
pub fn icmp_probe_result(ns: &Netns, dst: IpAddr, timeout: Duration) -> io::Result<()> {
    ns.enter(move || icmp_echo(dst, timeout))
}

fn icmp_echo(dst: IpAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let (domain, proto, req_type, reply_type) = match dst {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP, 8u8, 0u8),
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128u8, 129u8),
    };
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let raw = unsafe { libc::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    let id_seq: [u8; 4] = random_bytes();
    let payload = nonce();
    let mut pkt = vec![req_type, 0, 0, 0];
    pkt.extend_from_slice(&id_seq);
    pkt.extend_from_slice(&payload);
    if dst.is_ipv4() {
        let sum = inet_checksum(&pkt);
        pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    } // ICMPv6: the kernel always fills in the checksum on raw ICMPv6 sockets.

    let (sa, sa_len) = sockaddr_of(dst);
    // SAFETY: pkt and sa are valid for the lengths passed.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&sa as *const libc::sockaddr_storage).cast(),
            sa_len,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }

    let mut buf = [0u8; 2048];
    loop {
        if !poll_in(fd.as_raw_fd(), remaining(deadline)?)? {
            continue; // loop re-checks the deadline
        }
        // SAFETY: zeroed sockaddr_storage is a valid value.
        let mut from: libc::sockaddr_storage = unsafe { zeroed() };
        let mut from_len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: buffers valid for the lengths passed.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_storage).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                continue;
            }
            return Err(e);
        }
        let data = &buf[..n as usize];
        let icmp = match dst {
            IpAddr::V4(_) => {
                // Raw IPv4 sockets deliver the IP header too.
                if data.len() < 20 || data[0] >> 4 != 4 {
                    continue;
                }
                let ihl = usize::from(data[0] & 0x0f) * 4;
                if data.len() < ihl {
                    continue;
                }
                &data[ihl..]
            }
            IpAddr::V6(_) => data,
        };
        if sockaddr_ip(&from) != Some(dst) || icmp.len() < 8 {
            continue;
        }
        if icmp[0] == reply_type && icmp[1] == 0 && icmp[4..8] == id_seq && icmp[8..] == payload[..]
        {
            return Ok(());
        }
    }
}

/// RFC 1071 Internet checksum.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sockaddr_of(ip: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_storage is valid; we write a smaller sockaddr into it.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    match ip {
        IpAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger and suitably aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            (ss, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        IpAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            (ss, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

fn sockaddr_ip(ss: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: family says it is a sockaddr_in.
            let sin: &libc::sockaddr_in = unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            Some(IpAddr::V4(Ipv4Addr::from(
                sin.sin_addr.s_addr.to_ne_bytes(),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: family says it is a sockaddr_in6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Long-lived TCP stream

/// A long-lived TCP connection to an echo server that keeps sending a numbered byte
/// pattern (64 bytes every 20 ms) and counts the bytes echoed back in order. For tests
/// about established connections: does data still flow after a rule change?
pub struct TcpStreamProbe {
    echoed: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    local: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl TcpStreamProbe {
    /// Connects from `ns` to `dst:port` (within `timeout`) and starts streaming.
    pub fn start(
        ns: &Netns,
        dst: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> io::Result<TcpStreamProbe> {
        let addr = SocketAddr::new(dst, port);
        let stream = ns.enter(move || TcpStream::connect_timeout(&addr, timeout))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_millis(20)))?;
        stream.set_write_timeout(Some(Duration::from_millis(20)))?;
        let local = stream.local_addr()?;
        let echoed = Arc::new(AtomicU64::new(0));
        let error = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (e2, err2, s2) = (echoed.clone(), error.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("tcp-stream:{}", ns.name()))
            .spawn(move || stream_loop(stream, e2, err2, s2))
            .expect("spawn");
        Ok(TcpStreamProbe {
            echoed,
            error,
            stop,
            local,
            thread: Some(thread),
        })
    }

    /// Bytes echoed back (and verified) so far.
    pub fn echoed_bytes(&self) -> u64 {
        self.echoed.load(Ordering::SeqCst)
    }

    /// True when more data comes back within `within` (checks progress from now on).
    pub fn flowing(&self, within: Duration) -> bool {
        let before = self.echoed_bytes();
        wait_until(within, || self.echoed_bytes() > before)
    }

    /// True when no data comes back during the whole of `for_at_least`, after a short
    /// grace for bytes that were already past the filter when it changed.
    pub fn stalled(&self, for_at_least: Duration) -> bool {
        std::thread::sleep(Duration::from_millis(100));
        let before = self.echoed_bytes();
        std::thread::sleep(for_at_least);
        self.echoed_bytes() == before
    }

    /// Why the connection ended (reset, closed by peer, corrupted echo), if it did.
    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap().clone()
    }

    /// Client-side address of the connection (for conntrack / rule inspection).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

fn pattern(pos: u64) -> u8 {
    (pos % 251) as u8
}

fn stream_loop(
    mut s: TcpStream,
    echoed: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
) {
    let mut sent: u64 = 0;
    let mut recv: u64 = 0;
    let mut buf = [0u8; 4096];
    let fail = |msg: String| *error.lock().unwrap() = Some(msg);
    let transient = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
        )
    };
    while !stop.load(Ordering::SeqCst) {
        // Keep at most 64 KiB in flight so a long block does not grow buffers unboundedly.
        if sent - recv < 65536 {
            let chunk: Vec<u8> = (sent..sent + 64).map(pattern).collect();
            match s.write(&chunk) {
                Ok(n) => sent += n as u64,
                Err(e) if transient(&e) => {}
                Err(e) => return fail(format!("write: {e}")),
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return fail("closed by peer".into()),
            Ok(n) => {
                for &b in &buf[..n] {
                    if b != pattern(recv) {
                        return fail(format!("corrupted echo at byte {recv}"));
                    }
                    recv += 1;
                }
                echoed.store(recv, Ordering::SeqCst);
            }
            Err(e) if transient(&e) => {}
            Err(e) => return fail(format!("read: {e}")),
        }
    }
}

impl Drop for TcpStreamProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
