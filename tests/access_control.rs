//! Control socket authorisation from peer credentials: real unprivileged client processes
//! (`setpriv` + `curl`) against `serve` with a recording mock sink. Also checks the audit
//! trail: every request, allowed or denied, is logged with uid, pid, action, parameters and
//! the decision.
//!
//! Needs root (to run clients as other users); fails otherwise unless
//! SECGROUPD_SKIP_NETNS=1 (the switch for every root-only test).

mod control_support;

use control_support::*;
use secgroupd::control::AccessPolicy;
use secgroupd::control::access::lookup_group;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything the server logged, captured by a subscriber installed once.
fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("secgroupd=debug")
            .with_writer(move || Capture(w.clone()))
            .init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);
impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn root_or_skip() -> bool {
    if std::env::var("SECGROUPD_SKIP_NETNS").as_deref() == Ok("1") {
        eprintln!("NOTICE: SECGROUPD_SKIP_NETNS=1: skipping a root-only test (NOT run)");
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test runs clients as other users and needs root"
    );
    true
}

fn gid(name: &str) -> u32 {
    lookup_group(name)
        .unwrap()
        .unwrap_or_else(|| panic!("the group {name} must exist"))
}

/// `curl` as uid 65534 with primary gid `gid` and supplementary `groups`: (status, body).
fn curl_as(socket: &Path, gid: u32, groups: &[u32], target: &str) -> (u16, String) {
    let groups = if groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        format!(
            "--groups={}",
            groups
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", &format!("--regid={gid}"), &groups, "--"])
        .args(["curl", "-s", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(socket)
        .arg(format!("http://localhost{target}"))
        .output()
        .expect("setpriv + curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn code_of(body: &str) -> String {
    body.split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next())
        .unwrap_or("")
        .to_string()
}

const CREATE: &str = "/?Action=CreateSecurityGroup&GroupName=web&GroupDescription=w";
const DESCRIBE: &str = "/?Action=DescribeSecurityGroups";
const STATUS: &str = "/?Action=GetStatus";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_from_peer_credentials() {
    if !root_or_skip() {
        return;
    }
    let log = log_buffer();
    let (admin, reader, other) = (gid("adm"), gid("users"), gid("nogroup"));
    let server = Server::start(|o| {
        o.access
            .set(AccessPolicy::with_groups(Some(admin), Some(reader)))
    })
    .await;
    let p = server.path.clone();
    let run = move |gid: u32, groups: Vec<u32>, target: &'static str| {
        let p = p.clone();
        async move {
            tokio::task::spawn_blocking(move || curl_as(&p, gid, &groups, target))
                .await
                .unwrap()
        }
    };

    // Nobody in no configured group: nothing, not even a read, and no validation either.
    for target in [CREATE, DESCRIBE, STATUS, "/metrics", "/?Action=Bogus"] {
        let (status, body) = run(other, vec![], target).await;
        assert_eq!(status, 403, "{target}: {body}");
        assert_eq!(code_of(&body), "UnauthorizedOperation", "{target}");
    }
    assert!(
        server.sink.actions().is_empty(),
        "denied requests never reach the sink"
    );

    // A reader by supplementary group: reads yes, mutations no.
    assert_eq!(run(other, vec![reader], DESCRIBE).await.0, 200);
    assert_eq!(run(other, vec![reader], STATUS).await.0, 200);
    assert_eq!(run(other, vec![reader], "/metrics").await.0, 200);
    let (status, body) = run(other, vec![reader], CREATE).await;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (403, "UnauthorizedOperation")
    );
    // Readers still get validation errors for what they may ask.
    let (status, body) = run(other, vec![reader], "/?Action=DescribeSecurityGroups&X=1").await;
    assert_eq!((status, code_of(&body).as_str()), (400, "UnknownParameter"));

    // Admin by primary group, and by supplementary group.
    assert_eq!(run(admin, vec![], CREATE).await.0, 200);
    assert_eq!(run(other, vec![7, admin], CREATE).await.0, 200);
    assert_eq!(
        server.sink.actions(),
        [
            "DescribeSecurityGroups",
            "GetStatus",
            "GetStatus", // the metrics scrape's gauges
            "CreateSecurityGroup",
            "CreateSecurityGroup"
        ]
    );
    for (peer, _) in server.sink.seen.lock().unwrap().iter() {
        assert_eq!(peer.uid, 65534);
    }

    // Policy changes (a reload) apply to the next request.
    server.opts.access.set(AccessPolicy::root_only());
    assert_eq!(run(admin, vec![], CREATE).await.0, 403);
    assert_eq!(run(other, vec![reader], DESCRIBE).await.0, 403);
    // Root is always admin.
    let r = get(&server.path, CREATE).await;
    assert_eq!(r.status, 200, "{r:?}");
    server.stop().await;

    // The audit trail: the denied create and the allowed one, with who and what.
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("control request"))
        .collect();
    let denied = lines
        .iter()
        .find(|l| l.contains("decision=\"deny\"") && l.contains("CreateSecurityGroup"))
        .unwrap_or_else(|| panic!("no denial logged:\n{text}"));
    for part in [
        "WARN",
        "uid=65534",
        "pid=",
        "role=",
        "CreateSecurityGroup",
        "\"GroupName\"=\"web\"",
    ] {
        assert!(denied.contains(part), "{part} missing in {denied}");
    }
    let allowed = lines
        .iter()
        .find(|l| l.contains("decision=\"allow\"") && l.contains("CreateSecurityGroup"))
        .unwrap_or_else(|| panic!("no allowed create logged:\n{text}"));
    for part in [
        "uid=65534",
        "role=\"admin\"",
        "\"GroupDescription\"=\"w\"",
        "status=200",
    ] {
        assert!(allowed.contains(part), "{part} missing in {allowed}");
    }
}
