//! Part (e): what filtering costs the traffic itself. Three namespaces: a client, an
//! instance, and the host between them (routed: `cl0` to the client, `tap1` to the
//! instance, which the daemon filters). Measured from the client, in-process:
//!
//! - TCP throughput: a connection sending for a fifth of the time, five times; the median
//!   is reported (builds on the shared machine come and go within seconds);
//! - request/response latency: 64-byte round trips on one established connection (after
//!   the first packet, conntrack's `established` rule at the head of the base chain admits
//!   everything), and each on a new connection (connect, request, answer, close), whose
//!   SYN walks the instance's rules. Client and echo server are pinned to the same CPU:
//!   on this VM a wake-up across vCPUs costs tens of microseconds, at random, which
//!   would drown the filter's cost; on one CPU the round trip is the stack's own work.
//!
//! The instance's group holds N permissions: N − 1 that do not match the client
//! (distinct ports, sources in 198.18.0.0/15) granted first, and the one that admits it
//! (tcp 5201–5202 from the client's /32) granted last, so it is the last rule the packet
//! meets: the worst case. A port no permission admits (5203) must stay blocked; without
//! the daemon it must be open (checks that the filter is in the path at all).

use super::Env;
use super::cleanup::WorkDir;
use super::daemon::{Daemon, Settings};
use super::netns::Netns;
use super::populate::populate;
use super::results::{DataPath, Report};
use super::stats::Samples;
use super::workload::{Perm, create_group, register_instance};
use anyhow::{Context, Result, anyhow, bail};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const INSTANCE: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 2);
const BULK_PORT: u16 = 5201;
const ECHO_PORT: u16 = 5202;
const BLOCKED_PORT: u16 = 5203;
const MESSAGE: usize = 64;
const BULK_RUNS: usize = 5;
const GROUP: &str = "dp";

pub fn run(env: &Env, report: &mut Report) -> Result<()> {
    println!("\n== data path: client -> host -> instance");
    let host = Netns::new("dp-host")?;
    let client = Netns::new("dp-client")?;
    let inst = Netns::new("dp-inst")?;
    build_topology(&host, &client, &inst)?;
    let servers = Servers::start(&inst)?;
    wait_reachable(&client)?;

    let s = &env.sizes;
    let reference = measure(
        &client,
        None,
        "",
        s.datapath_seconds,
        s.datapath_rr,
        s.datapath_crr,
    )?;
    if !port_open(&client, BLOCKED_PORT)? {
        report.fail("data path: without secgroupd, port 5203 should be open");
    }
    print_row(&reference);
    report.datapath.push(reference);

    for &n in &s.datapath_permissions {
        let work = WorkDir::new("dp")?;
        let mut d = Daemon::new(&env.bin, &host, work.path());
        populate(&d.state_dir(), requests(n))?;
        for mode in ["cut", "keep"] {
            d.start(&Settings {
                table: env.table.clone(),
                propagation_delay_ms: 0,
                established_on_revoke: mode,
            })?;
            if port_open(&client, BLOCKED_PORT)? {
                report.fail(format!(
                    "data path ({n} permissions, {mode}): port 5203 is open; the filter is not in the path"
                ));
            }
            let r = measure(
                &client,
                Some(n),
                mode,
                s.datapath_seconds,
                s.datapath_rr,
                s.datapath_crr,
            )?;
            report.expect_samples("data path round trips", &r.rr);
            report.expect_samples("data path connections", &r.crr);
            if r.bits_per_second <= 0.0 {
                report.fail("data path: no bytes transferred");
            }
            print_row(&r);
            report.datapath.push(r);
            d.stop()?;
        }
        // The next table starts from an empty kernel table, like the first.
        super::netns::run(
            host.command("nft")
                .args(["delete", "table", "inet", &env.table]),
        )?;
    }
    servers.stop(&inst);
    Ok(())
}

fn print_row(r: &DataPath) {
    println!(
        "   {}: TCP {:.2} Gbit/s (median of {BULK_RUNS}); round trip p50/p99 {} (established), {} (new connection)",
        r.label(),
        r.bits_per_second / 1e9,
        r.rr.summary(),
        r.crr.summary()
    );
}

/// The instance's group: N − 1 non-matching permissions, then the one that admits the
/// client, then the instance registered on `tap1`.
fn requests(n: usize) -> Vec<String> {
    let mut out = vec![create_group(GROUP)];
    out.extend((0..n.saturating_sub(1)).map(|k| Perm::generated(k, GROUP.into()).authorize()));
    out.push(
        Perm {
            group: GROUP.into(),
            proto: "tcp",
            from: BULK_PORT,
            to: ECHO_PORT,
            cidr: format!("{CLIENT}/32"),
        }
        .authorize(),
    );
    out.push(register_instance("i-datapath", "tap1", INSTANCE, GROUP));
    out
}

fn build_topology(host: &Netns, client: &Netns, inst: &Netns) -> Result<()> {
    // Explicit, different ifindexes on the two ends of each veth: equal ones make the
    // kernel treat the carrier change as non-urgent and delay it by up to a second.
    host.ip_batch(&[
        format!(
            "link add cl0 index 100 type veth peer name eth0 netns {} index 2",
            client.name()
        ),
        format!(
            "link add tap1 index 101 type veth peer name eth0 netns {} index 2",
            inst.name()
        ),
        "addr add 10.9.0.1/24 dev cl0".into(),
        "addr add 10.9.1.1/24 dev tap1".into(),
        "link set cl0 up".into(),
        "link set tap1 up".into(),
    ])?;
    for (ns, addr, gw) in [
        (client, "10.9.0.2/24", "10.9.0.1"),
        (inst, "10.9.1.2/24", "10.9.1.1"),
    ] {
        ns.ip_batch(&[
            format!("addr add {addr} dev eth0"),
            "link set eth0 up".into(),
            format!("route add default via {gw}"),
        ])?;
    }
    host.set_sysctl("net.ipv4.ip_forward", "1")
}

fn wait_reachable(client: &Netns) -> Result<()> {
    let t0 = Instant::now();
    while !port_open(client, ECHO_PORT)? {
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("the instance is not reachable from the client after 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Whether a TCP connection from the client to the instance's `port` opens within 300 ms
/// (a dropped SYN is retransmitted only after a second, so 300 ms means blocked).
fn port_open(client: &Netns, port: u16) -> Result<bool> {
    let addr = SocketAddr::from((INSTANCE, port));
    client.enter(move || TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok())
}

fn measure(
    client: &Netns,
    permissions: Option<usize>,
    mode: &'static str,
    seconds: f64,
    rr: usize,
    crr: usize,
) -> Result<DataPath> {
    client.enter(move || -> Result<DataPath> {
        let mut runs = Vec::with_capacity(BULK_RUNS);
        let mut total = 0.0;
        for _ in 0..BULK_RUNS {
            let (bytes, elapsed) = bulk(Duration::from_secs_f64(seconds / BULK_RUNS as f64))?;
            runs.push(bytes as f64 * 8.0 / elapsed.as_secs_f64());
            total += elapsed.as_secs_f64();
        }
        runs.sort_by(f64::total_cmp);
        pin_to_cpu0()?;
        Ok(DataPath {
            permissions,
            established_on_revoke: mode,
            seconds: total,
            bits_per_second: runs[BULK_RUNS / 2],
            bits_range: (runs[0], runs[BULK_RUNS - 1]),
            rr: Samples::new(round_trips(rr)?),
            crr: Samples::new(connection_round_trips(crr)?),
        })
    })?
}

/// Pins the calling thread to CPU 0 (see the module documentation).
fn pin_to_cpu0() -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_setaffinity(0, ...) only
    // affects the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends for `length`, then waits for the receiver's byte count (so the time covers
/// delivery, not just buffering).
fn bulk(length: Duration) -> Result<(u64, Duration)> {
    let mut s = TcpStream::connect((INSTANCE, BULK_PORT)).context("bulk connect")?;
    let buf = vec![0x5au8; 128 * 1024];
    let t0 = Instant::now();
    while t0.elapsed() < length {
        s.write_all(&buf)?;
    }
    s.shutdown(Shutdown::Write)?;
    let mut count = [0u8; 8];
    s.read_exact(&mut count)?;
    Ok((u64::from_be_bytes(count), t0.elapsed()))
}

fn round_trips(n: usize) -> Result<Vec<Duration>> {
    let mut s = TcpStream::connect((INSTANCE, ECHO_PORT)).context("echo connect")?;
    s.set_nodelay(true)?;
    let msg = [0x42u8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let t0 = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
        if i >= 10 {
            out.push(t0.elapsed()); // the first ten warm up
        }
    }
    Ok(out)
}

fn connection_round_trips(n: usize) -> Result<Vec<Duration>> {
    let msg = [0x42u8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let mut s = TcpStream::connect((INSTANCE, ECHO_PORT)).context("echo connect")?;
        s.set_nodelay(true)?;
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
        drop(s);
        out.push(t0.elapsed());
    }
    Ok(out)
}

/// The instance's servers: bulk sink, echo, and an open port for the blocked check.
struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<(u16, JoinHandle<Result<()>>)>,
}

impl Servers {
    fn start(inst: &Netns) -> Result<Servers> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for port in [BULK_PORT, ECHO_PORT, BLOCKED_PORT] {
            let stop = stop.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let h = inst.spawn(move || {
                if port == ECHO_PORT {
                    pin_to_cpu0()?;
                }
                let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port));
                let ok = l.is_ok();
                let _ = ready_tx.send(l.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                if !ok {
                    return Ok(());
                }
                serve(l?, port, &stop)
            })?;
            ready_rx
                .recv()
                .map_err(|_| anyhow!("server {port} died"))?
                .map_err(|e| anyhow!("binding port {port}: {e}"))?;
            threads.push((port, h));
        }
        Ok(Servers { stop, threads })
    }

    /// Stops the accept loops (each is woken by a connection from inside the instance).
    fn stop(self, inst: &Netns) {
        self.stop.store(true, Ordering::SeqCst);
        for (port, h) in self.threads {
            let _ = inst.enter(move || TcpStream::connect((Ipv4Addr::LOCALHOST, port)));
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("warning: server {port}: {e:#}"),
                Err(_) => eprintln!("warning: server {port} panicked"),
            }
        }
    }
}

/// One connection at a time: the client side is sequential.
fn serve(l: TcpListener, port: u16, stop: &AtomicBool) -> Result<()> {
    loop {
        let (mut s, _) = l.accept()?;
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        // A connection that breaks is the client's business; keep serving.
        let _ = match port {
            BULK_PORT => sink(&mut s),
            ECHO_PORT => echo(&mut s),
            _ => Ok(()),
        };
    }
}

fn sink(s: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        match s.read(&mut buf)? {
            0 => break,
            n => total += n as u64,
        }
    }
    s.write_all(&total.to_be_bytes())
}

fn echo(s: &mut TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = [0u8; MESSAGE];
    loop {
        if let Err(e) = s.read_exact(&mut buf) {
            return if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Ok(())
            } else {
                Err(e)
            };
        }
        s.write_all(&buf)?;
    }
}
