//! The promise in the daemon itself: a thousand idle or trickling local clients do not
//! delay a revoke. The real `secgroupd` in a throwaway namespace (state on tmpfs,
//! `propagation_delay_ms = 0`); the p99 of 200 revokes (connect, `RevokeSecurityGroupIngress`,
//! read the answer; each after an untimed authorize) alone, then with 500 idle and 500
//! trickling (one byte a second of a request head that never ends) clients connected;
//! up to three times, so that one burst from a neighbour on a shared machine does not decide it.

mod common;

use common::*;
use secgroupd::control::rlimit::raise_fd_limit;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const REVOKES: usize = 200;
const IDLE: usize = 500;
const TRICKLING: usize = 500;
const HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
/// The daemon's header time-out (`ServeOptions::DEFAULT_HEADER_TIMEOUT`): idle and
/// trickling clients are disconnected after it, by design. The loaded samples are taken
/// well within it.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const LOADED_BUDGET: Duration = Duration::from_secs(3);
const MIN_SAMPLES: usize = 50;
/// Measurements taken before the test gives up (see the test body).
const ATTEMPTS: usize = 3;

/// p99 of up to `REVOKES` revokes, stopping at `until` once `MIN_SAMPLES` were taken.
fn revoke_p99(d: &Daemon, until: Option<Instant>) -> (Duration, usize) {
    let perm = cidr("web", "tcp", "80", "80", "0.0.0.0/0");
    let mut times = Vec::with_capacity(REVOKES);
    while times.len() < REVOKES {
        if times.len() >= MIN_SAMPLES && until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        ok(d, "AuthorizeSecurityGroupIngress", &perm);
        let t = Instant::now();
        ok(d, "RevokeSecurityGroupIngress", &perm);
        times.push(t.elapsed());
    }
    times.sort();
    let rank = (times.len() * 99).div_ceil(100);
    (times[rank - 1], times.len())
}

/// One alone-then-loaded measurement: (p99 alone, p99 loaded, loaded samples, time the
/// load was held). The idle clients are checked to be still open and unanswered.
fn measure(d: &Daemon) -> (Duration, Duration, usize, Duration) {
    let (alone, _) = revoke_p99(d, None);

    let path = d.socket_path();
    let connected = Instant::now();
    let idle: Vec<UnixStream> = (0..IDLE)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    let tricklers: Vec<UnixStream> = (0..TRICKLING)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut tricklers = tricklers;
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                for s in &mut tricklers {
                    if let Err(e) = s.write_all(&HEAD[sent % HEAD.len()..][..1]) {
                        assert!(
                            connected.elapsed() >= HEADER_TIMEOUT,
                            "a trickling client was disconnected before the header time-out: {e}"
                        );
                    }
                }
                sent += 1;
                for _ in 0..10 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            tricklers
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (loaded, n) = revoke_p99(d, Some(connected + LOADED_BUDGET));
    let held = connected.elapsed();
    stop.store(true, Ordering::Relaxed);
    let tricklers = trickle.join().expect("trickler thread");
    // None of the idle clients was answered, and within the header time-out none was
    // closed: the daemon held all of them while the revokes were measured.
    for mut s in idle {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("an idle client was answered or closed: {other:?}"),
        }
    }
    drop(tricklers);
    (alone, loaded, n, held)
}

#[test]
fn idle_and_trickling_clients_do_not_delay_a_revoke() {
    if !netns_or_skip() {
        return;
    }
    let want = (IDLE + TRICKLING) as u64 + 256;
    let limit = raise_fd_limit(want).unwrap();
    assert!(limit >= want, "RLIMIT_NOFILE hard limit {limit} < {want}");
    let host = Netns::new("idlerev");
    let d = Daemon::start(
        BIN,
        &host,
        DaemonOptions {
            propagation_delay_ms: 0,
            ..DaemonOptions::default()
        },
    );
    create_group(&d, "web");
    revoke_p99(&d, None); // warm-up

    // The promise: the load delays a revoke by no more than its normal p99, i.e. twice the
    // normal p99, plus 1 ms for the timer and scheduler noise of a shared 2-core machine.
    // A blocked accept loop or a reader serialized behind a trickler costs seconds in
    // every attempt; a neighbour's burst on the shared machine spoils one attempt, so
    // the test takes up to ATTEMPTS measurements and needs one within the bound.
    let mut tried = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let (alone, loaded, n, held) = measure(&d);
        let bound = alone * 2 + Duration::from_millis(1);
        eprintln!(
            "attempt {attempt}: revoke p99 {:.3} ms alone ({REVOKES} samples), {:.3} ms with \
             {IDLE} idle + {TRICKLING} trickling clients ({n} samples, load held {held:?})",
            alone.as_secs_f64() * 1e3,
            loaded.as_secs_f64() * 1e3
        );
        assert!(
            held < HEADER_TIMEOUT,
            "the loaded samples took {held:?}, past the daemon's header time-out: the machine \
             is too slow for this test to show anything"
        );
        if loaded <= bound {
            return;
        }
        tried.push(format!(
            "{loaded:?} loaded vs {alone:?} alone (bound {bound:?})"
        ));
    }
    panic!(
        "revoke p99 with idle clients above twice its normal p99 in all {ATTEMPTS} attempts: \
         {tried:?}\n{}",
        d.log()
    );
}
