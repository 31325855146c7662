//! The daemon under a (simulated) service manager: sd_notify messages on $NOTIFY_SOCKET
//! (READY=1 only once the control socket answers, WATCHDOG=1 while the reconciler lives,
//! STOPPING=1 on SIGTERM) and configuration reload on SIGHUP. Real binary, in a network
//! namespace.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_secgroupd");

/// One notification, and whether the control socket answered right after it arrived.
#[derive(Debug)]
struct Note {
    text: String,
    socket_answered: bool,
}

/// Receives notifications on `listener`; on each, probes `socket` at once.
fn receive(listener: UnixDatagram, socket: PathBuf) -> mpsc::Receiver<Note> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = listener.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let socket_answered = daemon_answers(&socket);
            if tx
                .send(Note {
                    text,
                    socket_answered,
                })
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

fn daemon_answers(socket: &Path) -> bool {
    matches!(
        common::daemon::http_request(socket, "GET", "/?Action=DescribeSecurityGroups", None),
        Ok(r) if r.status == 200
    )
}

/// Waits for a notification containing `want`, returning it and everything before it.
fn wait_for(rx: &mpsc::Receiver<Note>, want: &str, within: Duration) -> (Note, Vec<Note>) {
    let deadline = Instant::now() + within;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(n) if n.text.lines().any(|l| l == want) => return (n, before),
            Ok(n) => before.push(n),
            Err(e) => panic!("no {want} within {within:?} ({e}); got {before:?}"),
        }
    }
}

struct Run {
    child: Child,
    log: PathBuf,
}

/// Runs the daemon in `host` with its files in `dir` (config, `control.sock`, state,
/// log), `prefix` before the binary (e.g. setpriv), without waiting for it.
fn spawn(host: &Netns, dir: &Path, extra: &[&str], env: &[(&str, &str)], prefix: &[&str]) -> Run {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let config = dir.join("secgroupd.toml");
    let opts = DaemonOptions {
        extra_config: extra.iter().map(|s| s.to_string()).collect(),
        ..DaemonOptions::default()
    };
    let text = common::daemon::render_config(&opts, &dir.join("control.sock"), &state);
    std::fs::write(&config, text).unwrap();
    let log = dir.join("log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", host.name()])
        .args(prefix)
        .args([BIN, "--config"])
        .arg(&config)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Run { child, log }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- log ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

#[test]
fn ready_watchdog_and_stopping_notifications() {
    if !netns_or_skip() {
        return;
    }
    let host = Netns::new("notify");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    // A path socket: abstract ones are per network namespace.
    let notify = dir.path().join("notify");
    let listener = UnixDatagram::bind(&notify).unwrap();
    let rx = receive(listener, socket.clone());
    let env = [
        ("NOTIFY_SOCKET", notify.to_str().unwrap()),
        ("WATCHDOG_USEC", "300000"),
    ];
    let mut run = spawn(&host, dir.path(), &[], &env, &[]);

    let (ready, before) = wait_for(&rx, "READY=1", Duration::from_secs(10));
    assert!(
        ready.socket_answered,
        "READY=1 arrived before the control socket answered"
    );
    assert!(
        before.iter().any(|n| n.text.starts_with("STATUS=")),
        "a STATUS= line precedes READY=1: {before:?}"
    );
    assert!(ready.text.contains("STATUS=serving on"), "{ready:?}");

    // WATCHDOG_USEC=300 ms: a ping every 150 ms while the reconciler answers.
    let t = Instant::now();
    wait_for(&rx, "WATCHDOG=1", Duration::from_secs(2));
    wait_for(&rx, "WATCHDOG=1", Duration::from_secs(2));
    wait_for(&rx, "WATCHDOG=1", Duration::from_secs(2));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(run.child.id() as libc::pid_t, libc::SIGTERM) };
    wait_for(&rx, "STOPPING=1", Duration::from_secs(10));
    let status = run.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

fn socket_mode(d: &Daemon) -> u32 {
    std::fs::symlink_metadata(d.socket_path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

fn hup(d: &Daemon) {
    // SAFETY: kill(2) on the harness's child.
    unsafe { libc::kill(d.pid().unwrap() as libc::pid_t, libc::SIGHUP) };
}

fn wait_log(d: &Daemon, needle: &str, count: usize) {
    let ok = wait_until(Duration::from_secs(5), || {
        d.log().matches(needle).count() >= count
    });
    assert!(ok, "log never had {count} × {needle:?}:\n{}", d.log());
}

#[test]
fn sighup_reloads_the_configuration() {
    if !netns_or_skip() {
        return;
    }
    let host = Netns::new("hup");
    let mut d = Daemon::start(BIN, &host, DaemonOptions::default());
    let base = std::fs::read_to_string(d.config_path()).unwrap();
    assert_eq!(socket_mode(&d), 0o600);

    // A live key: the socket file's mode changes at once.
    std::fs::write(d.config_path(), format!("{base}socket_mode = \"0660\"\n")).unwrap();
    hup(&d);
    assert!(
        wait_until(Duration::from_secs(5), || socket_mode(&d) == 0o660),
        "mode still {:o}\n{}",
        socket_mode(&d),
        d.log()
    );
    wait_log(&d, "configuration reloaded", 1);

    // A bad file: logged, the old configuration stays, the daemon keeps serving.
    std::fs::write(
        d.config_path(),
        format!("{base}socket_mode = \"0666\"\nadmin_group = \"no-such-group-sgd\"\n"),
    )
    .unwrap();
    hup(&d);
    wait_log(&d, "configuration not reloaded", 1);
    assert!(d.log().contains("admin_group"), "{}", d.log());
    assert!(d.is_running());
    assert_eq!(socket_mode(&d), 0o660);
    assert_eq!(
        d.get("/?Action=DescribeSecurityGroups").unwrap().status,
        200
    );

    // A restart-only key: reported, not applied.
    std::fs::write(
        d.config_path(),
        format!(
            "{}socket_mode = \"0660\"\n",
            base.replace("table = \"secgroupd\"", "table = \"other\"")
        ),
    )
    .unwrap();
    hup(&d);
    wait_log(&d, "configuration reloaded", 2);
    assert!(d.log().contains("`table` changed"), "{}", d.log());
    assert!(nft_table_exists(&host, "secgroupd"));
    assert!(!nft_table_exists(&host, "other"));
    assert_eq!(
        d.get("/?Action=DescribeSecurityGroups").unwrap().status,
        200
    );
    assert!(d.stop().unwrap().success());
}

/// The unit's CapabilityBoundingSet (CAP_NET_ADMIN CAP_CHOWN) is enough: the daemon starts,
/// gives its socket the configured group, and commits to the kernel with nothing else.
#[test]
fn the_units_capabilities_are_enough() {
    if !netns_or_skip() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let host = Netns::new("caps");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let prefix = [
        "setpriv",
        "--bounding-set=-all,+net_admin,+chown",
        "--inh-caps=-all",
        "--",
    ];
    let extra = ["socket_group = \"adm\"", "socket_mode = \"0660\""];
    let mut run = spawn(&host, dir.path(), &extra, &[], &prefix);
    assert!(
        wait_until(Duration::from_secs(10), || daemon_answers(&socket)),
        "{}",
        std::fs::read_to_string(&run.log).unwrap_or_default()
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", run.child.id())).unwrap();
    let eff = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .unwrap()
        .to_string();
    // CAP_CHOWN is bit 0, CAP_NET_ADMIN bit 12.
    assert!(eff.ends_with("0000000000001001"), "{eff}");
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(
        Some(meta.gid()),
        secgroupd::control::access::lookup_group("adm").unwrap()
    );
    for q in [
        "Action=CreateSecurityGroup&GroupName=web&GroupDescription=w",
        "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0",
        "Action=RegisterInstance&InstanceId=i-1&Interface=tap1&IpAddress.1=10.1.1.2&GroupName.1=web",
        "Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0",
    ] {
        let r = common::daemon::http_request(&socket, "GET", &format!("/?{q}"), None).unwrap();
        assert_eq!(r.status, 200, "{q}: {}", r.body);
    }
    assert!(nft_list(&host, "secgroupd").contains("tap1"));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(run.child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(run.child.wait().unwrap().success());
}
