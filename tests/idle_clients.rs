//! A thousand idle or trickling local clients must not slow anyone else down: every
//! connection is served by its own task, so a request's latency does not depend on how
//! many other connections sit open or dribble bytes.
//!
//! Compares the p99 latency of 200 requests (connect, GET, read the answer) without and
//! with 1,000 such clients connected, and prints both. No root or namespace needed.

mod control_support;

use control_support::*;
use secgroupd::control::rlimit::raise_fd_limit;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const REQUESTS: usize = 200;
const IDLE: usize = 500;
const TRICKLING: usize = 500;
/// What the tricklers send, one byte per second: a request head that never completes.
const HEAD: &[u8] = b"GET /?Action=DescribeSecurityGroups HTTP/1.1\r\nHost: x\r\nX-Slow: ";

async fn p99(path: &std::path::Path) -> Duration {
    let mut times = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let r = get(path, "/?Action=DescribeSecurityGroups").await;
        times.push(t.elapsed());
        assert_eq!(r.status, 200, "{r:?}");
    }
    times.sort();
    times[REQUESTS * 99 / 100 - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_clients_do_not_delay_requests() {
    // Both ends of every connection live in this process.
    let want = 2 * (IDLE + TRICKLING) as u64 + 512;
    let limit = raise_fd_limit(want).unwrap();
    assert!(limit >= want, "RLIMIT_NOFILE hard limit {limit} < {want}");
    // Long enough that nobody is timed out while we measure.
    let server = Server::start(|o| {
        o.header_timeout = Duration::from_secs(60);
        o.idle_timeout = Duration::from_secs(60);
    })
    .await;
    // Warm-up, then the baseline.
    p99(&server.path).await;
    let unloaded = p99(&server.path).await;
    let rss_before = rss_kib();

    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(UnixStream::connect(&server.path).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle_cost = rss_kib().saturating_sub(rss_before) as f64 / IDLE as f64;
    eprintln!("memory: {idle_cost:.1} KiB per idle connection (client and server side)");
    let mut tricklers = Vec::with_capacity(TRICKLING);
    for _ in 0..TRICKLING {
        tricklers.push(UnixStream::connect(&server.path).await.unwrap());
    }
    let trickle = tokio::spawn(async move {
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            for s in &mut tricklers {
                s.write_all(&HEAD[sent % HEAD.len()..][..1])
                    .await
                    .expect("a trickling client was disconnected");
            }
            sent += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tricklers
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Both ends and the server's task live in this process: an upper bound per connection.
    let per_conn = rss_kib().saturating_sub(rss_before) as f64 / (IDLE + TRICKLING) as f64;
    eprintln!("memory: {per_conn:.1} KiB per connection, idle and trickling together");

    let loaded = p99(&server.path).await;
    eprintln!(
        "p99 latency of {REQUESTS} requests: {:.3} ms alone, {:.3} ms with {IDLE} idle + \
         {TRICKLING} trickling clients",
        unloaded.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3
    );
    let bound = unloaded * 5 + Duration::from_millis(5);
    assert!(
        loaded < bound,
        "p99 {loaded:?} with idle clients, {unloaded:?} without (bound {bound:?})"
    );

    // Every idle client is still connected and unanswered: none was refused or closed.
    for s in &mut idle {
        let mut b = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await {
            Err(_elapsed) => {}
            Ok(r) => panic!("an idle client was answered or closed: {r:?}"),
        }
    }
    trickle.abort();
    drop(idle);
    server.stop().await;
}

/// Resident memory of this process.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}
