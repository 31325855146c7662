//! Shared by the netns-free control socket tests (`access_control`, `metrics`,
//! `idle_clients`): `serve` on a temporary socket with a recording mock sink, and a raw
//! HTTP/1.1 exchange.

#![allow(dead_code)]

use secgroupd::control::{ActionSink, Peer, ServeOptions, bind_control_socket, serve};
use secgroupd::model::{Action, ApiError, ApiErrors, ErrorCode, OwnerId, Reply, StatusInfo};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const OWNER: &str = "000000000000";

pub fn owner() -> OwnerId {
    OwnerId::parse("OwnerId", OWNER).unwrap()
}

/// Records every action with its peer; answers Done, a canned status for GetStatus, and
/// NotFound for a revoke of port 9.
#[derive(Clone, Default)]
pub struct MockSink {
    pub seen: Arc<Mutex<Vec<(Peer, Action)>>>,
}

impl MockSink {
    pub fn actions(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter().map(|(_, a)| a.name().to_string()).collect()
    }
}

/// What the mock answers to GetStatus.
pub fn canned_status() -> StatusInfo {
    StatusInfo {
        generation: 7,
        groups: 3,
        permissions: 5,
        instances: 2,
        rules: 21,
        set_elements: 4,
        ..StatusInfo::default()
    }
}

impl ActionSink for MockSink {
    fn submit(
        &self,
        peer: Peer,
        action: Action,
    ) -> impl Future<Output = Result<Reply, ApiErrors>> + Send {
        self.seen.lock().unwrap().push((peer, action.clone()));
        let answer = match &action {
            Action::GetStatus => Ok(Reply::Status(canned_status())),
            Action::DescribeSecurityGroups { .. } => Ok(Reply::Groups(vec![])),
            Action::RevokeSecurityGroupIngress { permission, .. }
                if format!("{permission:?}").contains("from: 9,") =>
            {
                Err(ApiError::new(ErrorCode::PermissionNotFound, "no such permission").into())
            }
            Action::RevokeSecurityGroupIngress { .. } => Ok(Reply::Revoked { overlaps: vec![] }),
            _ => Ok(Reply::Done),
        };
        async move { answer }
    }
}

/// `serve` on `<tempdir>/control.sock` (directory mode 0755, socket mode 0666, so that
/// unprivileged child processes can connect).
pub struct Server {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub sink: MockSink,
    pub opts: ServeOptions,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    pub async fn start(tweak: impl FnOnce(&mut ServeOptions)) -> Server {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("control.sock");
        let listener = bind_control_socket(&path).unwrap();
        secgroupd::control::apply_socket_permissions(&path, None, 0o666).unwrap();
        let mut opts = ServeOptions::new(owner());
        tweak(&mut opts);
        let sink = MockSink::default();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, opts.clone(), sink.clone(), async {
            let _ = rx.await;
        }));
        Server {
            dir,
            path,
            sink,
            opts,
            stop: Some(tx),
            task,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
    }
}

/// A response: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Raw {
    pub fn parse(bytes: &[u8]) -> Raw {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Raw {
            status,
            headers,
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The EC2 error codes of the body, in order.
    pub fn codes(&self) -> Vec<String> {
        self.body
            .split("<Code>")
            .skip(1)
            .filter_map(|s| s.split("</Code>").next())
            .map(str::to_string)
            .collect()
    }
}

/// Sends `request` (which should say `Connection: close`) and reads until EOF.
pub async fn raw_http(path: &Path, request: &[u8]) -> Raw {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    Raw::parse(&out)
}

/// `GET <target>` with `Connection: close`.
pub async fn get(path: &Path, target: &str) -> Raw {
    let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    raw_http(path, req.as_bytes()).await
}
