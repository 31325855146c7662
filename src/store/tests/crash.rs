//! Durability across `kill -9`: a child process commits and prints each acknowledged
//! generation; the parent kills it at a random moment and checks that every acknowledged
//! commit is in the store, and at most one more.
//!
//! The child is this test binary re-executed with [`CHILD_ENV`] set, running only
//! [`crash_child`]. (A process kill leaves the page cache alone, so this checks the
//! transaction protocol, not the fsyncs; those are SQLite's `synchronous=FULL`.)

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Set to a state directory, selects child mode.
const CHILD_ENV: &str = "SECGROUPD_STORE_CRASH_CHILD";
const ROUNDS: usize = 20;
/// The child never gets this far; it is killed first.
const CHILD_COMMITS: u64 = 100_000;

/// The actions of generation `g` (1-based): a fixed script, so the parent can rebuild the
/// state of any generation. Every fourth commit coalesces two or three actions.
fn script(g: u64, state: &State) -> Vec<Action> {
    let base = g - (g - 1) % 4;
    let group = key(1, &format!("g{base}"));
    let id = format!("i-{base}");
    match (g - 1) % 4 {
        0 => vec![create(group, &format!("created at {g}"))],
        1 => vec![
            authorize(
                group.clone(),
                tcp((base % 60_000) as u16 + 1, 65_535, "10.0.0.0/8"),
            ),
            authorize(group.clone(), pair(group)),
        ],
        2 => {
            let addr = format!(
                "10.{}.{}.{}",
                (base >> 16) & 255,
                (base >> 8) & 255,
                base & 255
            );
            vec![instance(&id, &format!("t{base}"), &[&addr], &[group])]
        }
        _ => {
            let mut actions = vec![Action::DeregisterInstance {
                id: InstanceId::parse("i", &id).expect("id"),
            }];
            if (base / 4).is_multiple_of(2) && state.group(&group).is_some() {
                actions.push(Action::DeleteSecurityGroup { group });
            }
            actions
        }
    }
}

/// Plans the actions of generation `g` on `state`; returns the changes.
fn step(g: u64, state: &mut State) -> Vec<Change> {
    script(g, state)
        .iter()
        .flat_map(|a| plan(state, a))
        .collect()
}

/// The state after generations `1..=g`.
fn expected(g: u64) -> State {
    let mut state = State::new();
    for i in 1..=g {
        step(i, &mut state);
    }
    state
}

/// Child mode: commits the script and prints `ACK <generation>` after each commit returns.
/// Without the environment variable (a normal test run) it does nothing.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut store = SqliteStore::open(Path::new(&dir)).expect("child open");
    let mut state = store.load().expect("child load");
    let mut out = std::io::stdout().lock();
    for g in store.generation() + 1..=CHILD_COMMITS {
        let changes = step(g, &mut state);
        store
            .commit(&changes, state.counters())
            .expect("child commit");
        writeln!(out, "ACK {g}")
            .and_then(|_| out.flush())
            .expect("stdout");
    }
}

#[test]
fn every_acknowledged_commit_survives_kill_9() {
    let exe = std::env::current_exe().expect("test binary");
    let (mut rng, seed) = Rng::from_time();
    let (mut acked_total, mut one_more) = (0, 0);
    for round in 0..ROUNDS {
        let dir = TempDir::new("crash");
        let mut child = Command::new(&exe)
            .args(["store::tests::crash::crash_child", "--exact", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(g) = line
                    .strip_prefix("ACK ")
                    .and_then(|g| g.parse::<u64>().ok())
                    && tx.send(g).is_err()
                {
                    break;
                }
            }
        });
        // Kill after a random number of acknowledgements (0 included: maybe during the
        // creation of the store), plus a random delay inside the next commit.
        let wait_for = rng.below(40);
        let mut last = 0;
        while last < wait_for {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(g) => last = g,
                Err(e) => panic!("round {round} (seed {seed}): child stalled: {e}"),
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader");
        let acked = rx.try_iter().last().unwrap_or(last).max(last);
        acked_total += acked;

        let mut store = open_store(dir.path())
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): reopen: {e}"));
        let loaded = store
            .load()
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): load: {e}"));
        let g = store.generation();
        assert!(
            g == acked || g == acked + 1,
            "round {round} (seed {seed}): store has generation {g}, {acked} acknowledged"
        );
        assert_eq!(
            loaded,
            expected(g),
            "round {round} (seed {seed}): generation {g}"
        );
        one_more += usize::from(g == acked + 1);
    }
    println!(
        "store: {ROUNDS} kill -9 rounds, {acked_total} acknowledged commits, all present; \
         {one_more} rounds also had the commit in flight when killed"
    );
    assert!(
        acked_total > 0,
        "seed {seed}: no round got any commit acknowledged"
    );
}
