//! The control socket end to end: `serve` on a real Unix socket with a mock sink, driven by
//! the real client, by raw HTTP, and by the `secgroupctl` binary.

use secgroupd::client::{
    self, AdmitView, Client, ClientError, ExplanationView, GroupView, OverlapView, PermissionView,
    Response, StatusView, SuccessData,
};
use secgroupd::control::{ActionSink, Peer, ServeOptions, bind_control_socket, serve};
use secgroupd::model::{
    Action, ApiError, ApiErrors, Cidr, ErrorCode, Explanation, GroupDescription, GroupInfo,
    GroupKey, GroupName, InstanceId, InstanceSpec, InterfaceName, IpPermission, Overlap, OwnerId,
    PacketProbe, PortRange, Protocol, Reply, StatusInfo, Traffic,
};
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const OWNER: &str = "123456789012";
const OTHER: &str = "210987654321";

fn owner(s: &str) -> OwnerId {
    OwnerId::parse("OwnerId", s).unwrap()
}
fn key(o: &str, name: &str) -> GroupKey {
    GroupKey {
        owner: owner(o),
        name: GroupName::parse("GroupName", name).unwrap(),
    }
}

/// Records every action and answers from a small canned table.
#[derive(Clone, Default)]
struct MockSink {
    seen: Arc<Mutex<Vec<(Peer, Action)>>>,
}

impl MockSink {
    fn actions(&self) -> Vec<Action> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, a)| a.clone())
            .collect()
    }
    fn peers(&self) -> Vec<Peer> {
        self.seen.lock().unwrap().iter().map(|(p, _)| *p).collect()
    }
    fn assert_untouched(&self) {
        assert_eq!(
            self.actions(),
            [],
            "the sink must not see a refused request"
        );
    }
}

/// The group every Describe answers: one permission of each kind, markup in the description.
fn web_group() -> GroupInfo {
    GroupInfo {
        owner: owner(OWNER),
        name: GroupName::parse("GroupName", "web").unwrap(),
        description: GroupDescription::parse("d", "Web <servers> & \"friends\"").unwrap(),
        permissions: vec![
            IpPermission::Cidr {
                traffic: Traffic::Tcp {
                    ports: PortRange::new(22, 22).unwrap(),
                },
                cidr: Cidr::parse("CidrIp", "10.0.0.0/8").unwrap(),
            },
            IpPermission::GroupPair {
                source: key(OTHER, "lb"),
            },
        ],
    }
}

fn tcp(from: u16, to: u16, cidr: &str) -> IpPermission {
    IpPermission::Cidr {
        traffic: Traffic::Tcp {
            ports: PortRange::new(from, to).unwrap(),
        },
        cidr: Cidr::parse("CidrIp", cidr).unwrap(),
    }
}

fn instance_id(s: &str) -> InstanceId {
    InstanceId::parse("InstanceId", s).unwrap()
}

/// A revoke of a permission of group "shared" leaves two overlaps; any other overlaps
/// nothing.
fn overlaps_after_revoking(group: &GroupKey) -> Vec<Overlap> {
    if group.name.as_str() != "shared" {
        return vec![];
    }
    vec![
        Overlap {
            group: key(OWNER, "web"),
            permission: tcp(0, 1023, "0.0.0.0/0"),
            full: true,
            instances: vec![instance_id("i-1"), instance_id("i-2")],
        },
        Overlap {
            group: key(OWNER, "ops"),
            permission: IpPermission::GroupPair {
                source: key(OTHER, "lb"),
            },
            full: false,
            instances: vec![instance_id("i-2")],
        },
    ]
}

fn canned_status() -> StatusInfo {
    StatusInfo {
        generation: 42,
        groups: 3,
        permissions: 7,
        instances: 2,
        remote_members: 5,
        rules: 31,
        set_elements: 9,
        last_commit_actions: 1,
        last_commit_ops: 6,
        last_commit_micros: 2500,
        last_store_micros: 1800,
        last_kernel_micros: 700,
        table: "secgroupd".into(),
        mode: "forward".into(),
        established_on_revoke: "keep".into(),
    }
}

/// Instance i-1 (on tap1) admits the probe through web, then db; any other admits nothing.
fn explain(probe: &PacketProbe) -> Explanation {
    if probe.instance.as_str() == "i-1" {
        return Explanation {
            instance: probe.instance.clone(),
            interface: InterfaceName::parse("Interface", "tap1").unwrap(),
            admitted_by: vec![
                (key(OWNER, "web"), tcp(80, 80, "0.0.0.0/0")),
                (
                    key(OWNER, "db"),
                    IpPermission::GroupPair {
                        source: key(OWNER, "web"),
                    },
                ),
            ],
        };
    }
    Explanation {
        instance: probe.instance.clone(),
        interface: InterfaceName::parse("Interface", "tap2").unwrap(),
        admitted_by: vec![],
    }
}

impl ActionSink for MockSink {
    fn submit(
        &self,
        peer: Peer,
        action: Action,
    ) -> impl Future<Output = Result<Reply, ApiErrors>> + Send {
        self.seen.lock().unwrap().push((peer, action.clone()));
        let group_name = match &action {
            Action::CreateSecurityGroup { group, .. } | Action::DeleteSecurityGroup { group } => {
                group.name.as_str().to_string()
            }
            _ => String::new(),
        };
        let slow = group_name == "slow";
        let answer = match (&action, group_name.as_str()) {
            (Action::DescribeSecurityGroups { .. }, _) => Ok(Reply::Groups(vec![web_group()])),
            (Action::RevokeSecurityGroupIngress { group, .. }, _) => Ok(Reply::Revoked {
                overlaps: overlaps_after_revoking(group),
            }),
            (Action::GetStatus, _) => Ok(Reply::Status(canned_status())),
            (Action::ExplainPacket { probe }, _) => Ok(Reply::Explained(explain(probe))),
            (Action::CreateSecurityGroup { .. }, "taken") => Err(ApiError::new(
                ErrorCode::GroupDuplicate,
                "The security group 'taken' already exists",
            )
            .into()),
            (Action::DeleteSecurityGroup { .. }, "missing") => Err(ApiError::new(
                ErrorCode::GroupNotFound,
                "The security group 'missing' does not exist",
            )
            .into()),
            _ => Ok(Reply::Done),
        };
        async move {
            if slow {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            answer
        }
    }
}

/// A running server on a socket in its own temporary directory.
struct Server {
    _dir: tempfile::TempDir,
    path: PathBuf,
    sink: MockSink,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(tweak: impl FnOnce(&mut ServeOptions)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let listener = bind_control_socket(&path).unwrap();
        let mut opts = ServeOptions::new(owner(OWNER));
        tweak(&mut opts);
        let sink = MockSink::default();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, opts, sink.clone(), async {
            let _ = rx.await;
        }));
        Server {
            _dir: dir,
            path,
            sink,
            stop: Some(tx),
            task,
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.path).with_timeout(Some(Duration::from_secs(20)))
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
    }
}

/// A raw answer: status, lower-cased header lines, body.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn codes(&self) -> Vec<String> {
        self.body
            .split("<Code>")
            .skip(1)
            .map(|s| s.split("</Code>").next().unwrap().to_string())
            .collect()
    }
}

fn parse_raw(bytes: &[u8]) -> Raw {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
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

/// Reads until the server closes (or resets) the connection.
async fn read_all(s: &mut UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server neither answered nor closed: {out:?}"),
        }
    }
}

/// Sends `request` as is and reads the answer up to the server's close.
async fn raw_http(path: &Path, request: &[u8]) -> Raw {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(request).await.unwrap();
    parse_raw(&read_all(&mut s).await)
}

/// One request/answer on a kept-alive connection (the answer is read by its length).
async fn exchange_keep_alive(s: &mut UnixStream, request: &[u8]) -> Raw {
    s.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("answer in time")
            .unwrap();
        assert!(n > 0, "closed early: {got:?}");
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let raw = parse_raw(&got);
            let len: usize = raw.header("content-length").unwrap().parse().unwrap();
            if got.len() >= end + 4 + len {
                return raw;
            }
        }
    }
}

fn post(body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

fn api_codes(r: Result<Response, ClientError>) -> (u16, Vec<String>) {
    match r.unwrap() {
        Response::Err(f) => (f.status, f.codes().iter().map(|c| c.to_string()).collect()),
        Response::Ok(ok) => panic!("expected errors, got {ok:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_round_trip_for_every_action() {
    let server = Server::start(|_| {}).await;
    let c = server.client();
    let id1 = c.create_group("web", "Web servers", None).await.unwrap();
    c.authorize_cidr("web", "tcp", 22, 22, "10.0.0.0/8", None)
        .await
        .unwrap();
    c.authorize_pair("web", "lb", OTHER, Some(OWNER))
        .await
        .unwrap();
    let overlaps = c
        .revoke_cidr("web", "icmp", 8, -1, "0.0.0.0/0", None)
        .await
        .unwrap();
    assert_eq!(overlaps, []);
    let overlaps = c.revoke_pair("web", "lb", OTHER, None).await.unwrap();
    assert_eq!(overlaps, []);
    c.register_instance(
        "i-1",
        "tap0",
        &["10.1.0.5", "fd00::5"],
        &["web", "db"],
        None,
    )
    .await
    .unwrap();
    c.deregister_instance("i-1", None).await.unwrap();
    let id2 = c.delete_group("web", Some(OTHER)).await.unwrap();
    assert_ne!(id1, id2, "request ids are unique");
    assert_eq!(id1.len(), 36);

    let groups = c.describe(&["web"], None).await.unwrap();
    assert_eq!(
        groups,
        vec![GroupView {
            owner: OWNER.into(),
            name: "web".into(),
            description: "Web <servers> & \"friends\"".into(),
            permissions: vec![
                PermissionView::Cidr {
                    protocol: "tcp".into(),
                    from: 22,
                    to: 22,
                    cidr: "10.0.0.0/8".into()
                },
                PermissionView::AllFromGroup {
                    owner: OTHER.into(),
                    group: "lb".into()
                },
            ],
        }]
    );

    let icmp = secgroupd::model::IcmpSpec::new(Some(8), None).unwrap();
    let expected = vec![
        Action::CreateSecurityGroup {
            group: key(OWNER, "web"),
            description: GroupDescription::parse("d", "Web servers").unwrap(),
        },
        Action::AuthorizeSecurityGroupIngress {
            group: key(OWNER, "web"),
            permission: IpPermission::Cidr {
                traffic: Traffic::Tcp {
                    ports: PortRange::new(22, 22).unwrap(),
                },
                cidr: Cidr::parse("c", "10.0.0.0/8").unwrap(),
            },
        },
        Action::AuthorizeSecurityGroupIngress {
            group: key(OWNER, "web"),
            permission: IpPermission::GroupPair {
                source: key(OTHER, "lb"),
            },
        },
        Action::RevokeSecurityGroupIngress {
            group: key(OWNER, "web"),
            permission: IpPermission::Cidr {
                traffic: Traffic::Icmp { icmp },
                cidr: Cidr::parse("c", "0.0.0.0/0").unwrap(),
            },
        },
        Action::RevokeSecurityGroupIngress {
            group: key(OWNER, "web"),
            permission: IpPermission::GroupPair {
                source: key(OTHER, "lb"),
            },
        },
        Action::RegisterInstance {
            instance: InstanceSpec {
                id: InstanceId::parse("i", "i-1").unwrap(),
                interface: InterfaceName::parse("i", "tap0").unwrap(),
                addresses: vec!["10.1.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
                groups: vec![key(OWNER, "web"), key(OWNER, "db")],
            },
        },
        Action::DeregisterInstance {
            id: InstanceId::parse("i", "i-1").unwrap(),
        },
        Action::DeleteSecurityGroup {
            group: key(OTHER, "web"),
        },
        Action::DescribeSecurityGroups {
            owner: owner(OWNER),
            names: vec![GroupName::parse("g", "web").unwrap()],
        },
    ];
    assert_eq!(server.sink.actions(), expected);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_round_trip_for_members_groups_status_and_explain() {
    let server = Server::start(|_| {}).await;
    let c = server.client();
    c.add_group_members("web", &["192.0.2.7", "2001:db8::7"], None)
        .await
        .unwrap();
    c.remove_group_members("web", &["192.0.2.7"], Some(OTHER))
        .await
        .unwrap();
    c.modify_instance_groups("i-1", &["db", "web"], None)
        .await
        .unwrap();

    let overlaps = c
        .revoke_cidr("shared", "tcp", 80, 80, "0.0.0.0/0", None)
        .await
        .unwrap();
    assert_eq!(
        overlaps,
        [
            OverlapView {
                owner: OWNER.into(),
                group: "web".into(),
                full: true,
                permission: PermissionView::Cidr {
                    protocol: "tcp".into(),
                    from: 0,
                    to: 1023,
                    cidr: "0.0.0.0/0".into()
                },
                instances: vec!["i-1".into(), "i-2".into()],
            },
            OverlapView {
                owner: OWNER.into(),
                group: "ops".into(),
                full: false,
                permission: PermissionView::AllFromGroup {
                    owner: OTHER.into(),
                    group: "lb".into()
                },
                instances: vec!["i-2".into()],
            },
        ]
    );
    let overlaps = c.revoke_pair("shared", "lb", OTHER, None).await.unwrap();
    assert_eq!(overlaps.len(), 2);

    assert_eq!(
        c.status().await.unwrap(),
        StatusView {
            generation: 42,
            groups: 3,
            permissions: 7,
            instances: 2,
            remote_members: 5,
            rules: 31,
            set_elements: 9,
            last_commit_actions: 1,
            last_commit_ops: 6,
            last_commit_micros: 2500,
            last_store_micros: 1800,
            last_kernel_micros: 700,
            table: "secgroupd".into(),
            mode: "forward".into(),
            established_on_revoke: "keep".into(),
        }
    );

    let e = c
        .explain("i-1", "198.51.100.4", "tcp", Some(80), None, None)
        .await
        .unwrap();
    assert_eq!(
        e,
        ExplanationView {
            instance: "i-1".into(),
            interface: "tap1".into(),
            admitted: true,
            admitted_by: vec![
                AdmitView {
                    owner: OWNER.into(),
                    group: "web".into(),
                    permission: PermissionView::Cidr {
                        protocol: "tcp".into(),
                        from: 80,
                        to: 80,
                        cidr: "0.0.0.0/0".into()
                    },
                },
                AdmitView {
                    owner: OWNER.into(),
                    group: "db".into(),
                    permission: PermissionView::AllFromGroup {
                        owner: OWNER.into(),
                        group: "web".into()
                    },
                },
            ],
        }
    );
    let e = c
        .explain("i-2", "2001:db8::1", "icmpv6", None, Some(128), Some(0))
        .await
        .unwrap();
    assert!(!e.admitted && e.admitted_by.is_empty(), "{e:?}");
    // The daemon takes ICMP code 0 when none is sent.
    c.explain("i-2", "10.0.0.1", "icmp", None, Some(8), None)
        .await
        .unwrap();

    let addrs = |list: &[&str]| -> Vec<std::net::IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    };
    let probe =
        |id: &str, source: &str, protocol, port, icmp_type, icmp_code| Action::ExplainPacket {
            probe: PacketProbe {
                instance: instance_id(id),
                source: source.parse().unwrap(),
                protocol,
                port,
                icmp_type,
                icmp_code,
            },
        };
    let expected = vec![
        Action::AddGroupMembers {
            group: key(OWNER, "web"),
            addresses: addrs(&["192.0.2.7", "2001:db8::7"]),
        },
        Action::RemoveGroupMembers {
            group: key(OTHER, "web"),
            addresses: addrs(&["192.0.2.7"]),
        },
        Action::ModifyInstanceGroups {
            id: instance_id("i-1"),
            groups: vec![key(OWNER, "db"), key(OWNER, "web")],
        },
        Action::RevokeSecurityGroupIngress {
            group: key(OWNER, "shared"),
            permission: tcp(80, 80, "0.0.0.0/0"),
        },
        Action::RevokeSecurityGroupIngress {
            group: key(OWNER, "shared"),
            permission: IpPermission::GroupPair {
                source: key(OTHER, "lb"),
            },
        },
        Action::GetStatus,
        probe("i-1", "198.51.100.4", Protocol::Tcp, Some(80), None, None),
        probe(
            "i-2",
            "2001:db8::1",
            Protocol::Icmpv6,
            None,
            Some(128),
            Some(0),
        ),
        probe("i-2", "10.0.0.1", Protocol::Icmp, None, Some(8), Some(0)),
    ];
    assert_eq!(server.sink.actions(), expected);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_sees_this_process_as_the_peer() {
    let server = Server::start(|_| {}).await;
    server
        .client()
        .create_group("web", "w", None)
        .await
        .unwrap();
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    assert_eq!(
        server.sink.peers(),
        [Peer {
            uid,
            gid,
            pid: std::process::id() as i32
        }]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_errors_come_back_with_their_codes() {
    let server = Server::start(|_| {}).await;
    let c = server.client();
    let e = c.create_group("taken", "t", None).await.unwrap_err();
    assert_eq!(e.codes(), ["InvalidGroup.Duplicate"]);
    let ClientError::Api(f) = c.delete_group("missing", None).await.unwrap_err() else {
        panic!("not an API error")
    };
    assert_eq!(f.status, 400);
    assert_eq!(f.codes(), ["InvalidGroup.NotFound"]);
    assert_eq!(
        f.errors[0].message,
        "The security group 'missing' does not exist"
    );
    assert_eq!(f.request_id.len(), 36);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_post_forms_are_both_accepted() {
    let server = Server::start(|_| {}).await;
    let r = raw_http(
        &server.path,
        &get("/?Action=CreateSecurityGroup&GroupName=a&GroupDescription=From+GET"),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/xml"));
    assert!(r.body.starts_with(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateSecurityGroupResponse \
         xmlns=\"http://ec2.amazonaws.com/doc/2007-03-01\"><requestId>"
    ));
    assert!(
        r.body
            .ends_with("</requestId><return>true</return></CreateSecurityGroupResponse>")
    );

    let r = raw_http(
        &server.path,
        &post("Action=CreateSecurityGroup&GroupName=b&GroupDescription=From%20POST"),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    // Query string and body together make one request.
    let body = "GroupName=c&GroupDescription=mixed";
    let req = format!(
        "POST /?Action=CreateSecurityGroup HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw_http(&server.path, req.as_bytes()).await;
    assert_eq!(r.status, 200, "{r:?}");

    let names: Vec<(String, String)> = server
        .sink
        .actions()
        .into_iter()
        .map(|a| match a {
            Action::CreateSecurityGroup { group, description } => (
                group.name.as_str().to_string(),
                description.as_str().to_string(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            ("a".to_string(), "From GET".to_string()),
            ("b".to_string(), "From POST".to_string()),
            ("c".to_string(), "mixed".to_string())
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_in_both_query_and_body_is_repeated() {
    let server = Server::start(|_| {}).await;
    let body = "GroupName=web&GroupDescription=d";
    let req = format!(
        "POST /?Action=CreateSecurityGroup&GroupName=web HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw_http(&server.path, req.as_bytes()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.codes(), ["InvalidParameterValue"]);
    assert!(r.body.contains("more than once"), "{}", r.body);
    server.sink.assert_untouched();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_have_exact_codes_and_never_reach_the_sink() {
    let server = Server::start(|_| {}).await;
    let c = server.client();
    /// Parameters sent, codes expected.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (&[("Action", "RunInstances")], &["InvalidAction"]),
        (&[("GroupName", "web")], &["MissingParameter"]),
        (
            &[
                ("Action", "CreateSecurityGroup"),
                ("GroupName", "web"),
                ("Bogus", "1"),
            ],
            &["UnknownParameter", "MissingParameter"],
        ),
        (
            &[
                ("Action", "AuthorizeSecurityGroupIngress"),
                ("GroupName", "web"),
                ("IpProtocol", "tcp"),
                ("FromPort", "22"),
                ("ToPort", "22"),
                ("CidrIp", "10.0.0.0/8"),
                ("SourceSecurityGroupName", "lb"),
                ("SourceSecurityGroupOwnerId", OWNER),
            ],
            &["InvalidParameterCombination"],
        ),
        (
            &[
                ("Action", "DeleteSecurityGroup"),
                ("GroupName", "web"),
                ("OwnerId", "42"),
            ],
            &["InvalidParameterValue"],
        ),
        (
            &[("Action", "DeregisterInstance"), ("InstanceId", "")],
            &["InvalidInstanceID.Malformed"],
        ),
    ];
    for (params, codes) in cases {
        let (status, got) = api_codes(c.call(params).await);
        assert_eq!(status, 400, "{params:?}");
        assert_eq!(got, *codes, "{params:?}");
    }
    server.sink.assert_untouched();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_an_invalid_parameter_value() {
    let server = Server::start(|_| {}).await;
    let r = raw_http(
        &server.path,
        &post("Action=CreateSecurityGroup&GroupName=%FF%FE&GroupDescription=d"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.codes(), ["InvalidParameterValue"]);
    assert!(r.body.contains("UTF-8"), "{}", r.body);

    // A raw, unescaped invalid byte in the body too.
    let body: &[u8] = b"Action=CreateSecurityGroup&GroupName=web&GroupDescription=\xff\xfe";
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let r = raw_http(&server.path, &req).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.codes(), ["InvalidParameterValue"]);
    server.sink.assert_untouched();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_unread() {
    let server = Server::start(|_| {}).await;
    // Declared too large: answered before the body is sent.
    let mut s = UnixStream::connect(&server.path).await.unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 10000000\r\n\r\nAction=CreateSecurityGroup&GroupName=",
    )
    .await
    .unwrap();
    let r = parse_raw(&read_all(&mut s).await);
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.codes(), ["RequestLimitExceeded"]);
    assert_eq!(r.header("connection"), Some("close"));

    // Chunked, so only counting can tell.
    let mut s = UnixStream::connect(&server.path).await.unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 8192, "a".repeat(8192));
    for _ in 0..9 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let r = parse_raw(&read_all(&mut s).await);
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.codes(), ["RequestLimitExceeded"]);

    // Through the client: the error document arrives although the body was not read.
    let big = "x".repeat(100_000);
    let r = server
        .client()
        .call(&[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", "web"),
            ("GroupDescription", &big),
        ])
        .await;
    assert_eq!(
        api_codes(r),
        (413, vec!["RequestLimitExceeded".to_string()])
    );

    // Headers alone over the limit: refused by the HTTP layer.
    let huge = format!(
        "GET /?Action=DescribeSecurityGroups HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(70_000)
    );
    let r = raw_http(&server.path, huge.as_bytes()).await;
    assert_eq!(r.status, 431, "{r:?}");

    // Just under the limit is read and validated as usual.
    let near = "x".repeat(60_000);
    let r = server
        .client()
        .call(&[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", "web"),
            ("GroupDescription", &near),
        ])
        .await;
    assert_eq!(
        api_codes(r),
        (400, vec!["InvalidParameterValue".to_string()])
    );
    server.sink.assert_untouched();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_times_out_without_delaying_others() {
    let timeout = Duration::from_millis(1500);
    let server = Server::start(|o| o.header_timeout = timeout).await;
    let started = Instant::now();
    let mut slow = UnixStream::connect(&server.path).await.unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .await
        .unwrap();

    let served = server.client().describe(&[], None).await.unwrap();
    assert_eq!(served.len(), 1);
    assert!(
        started.elapsed() < timeout,
        "the second client waited {:?}",
        started.elapsed()
    );

    let got = read_all(&mut slow).await;
    let waited = started.elapsed();
    assert!(got.is_empty(), "no answer to half a request: {got:?}");
    assert!(
        waited >= timeout - Duration::from_millis(100),
        "closed after {waited:?}"
    );
    assert!(
        waited < timeout + Duration::from_secs(5),
        "closed after {waited:?}"
    );
    assert_eq!(server.sink.actions().len(), 1, "only the describe");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_answered_408() {
    let server = Server::start(|o| o.body_timeout = Duration::from_millis(500)).await;
    let mut s = UnixStream::connect(&server.path).await.unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\nAction=Creat",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let r = parse_raw(&read_all(&mut s).await);
    assert_eq!(r.status, 408, "{r:?}");
    assert_eq!(r.codes(), ["RequestLimitExceeded"]);
    assert!(started.elapsed() >= Duration::from_millis(400));
    server.sink.assert_untouched();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_path_method_and_content_type() {
    let server = Server::start(|_| {}).await;
    let r = raw_http(
        &server.path,
        &get("/2007-03-01/?Action=DescribeSecurityGroups"),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.codes(), ["InvalidAction"]);
    assert!(r.body.contains("<RequestID>"));

    let r = raw_http(
        &server.path,
        b"PUT /?Action=DescribeSecurityGroups HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    assert_eq!(r.codes(), ["InvalidAction"]);

    let body = "{\"Action\":\"DescribeSecurityGroups\"}";
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw_http(&server.path, req.as_bytes()).await;
    assert_eq!(r.status, 415);
    assert_eq!(r.codes(), ["InvalidParameterValue"]);
    assert_eq!(r.header("content-type"), Some("text/xml"));
    server.sink.assert_untouched();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503() {
    let server = Server::start(|o| o.max_connections = 2).await;
    let keep = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
    let describe = keep("/?Action=DescribeSecurityGroups");
    let mut a = UnixStream::connect(&server.path).await.unwrap();
    let mut b = UnixStream::connect(&server.path).await.unwrap();
    assert_eq!(exchange_keep_alive(&mut a, &describe).await.status, 200);
    assert_eq!(exchange_keep_alive(&mut b, &describe).await.status, 200);

    let r = raw_http(&server.path, &get("/?Action=DescribeSecurityGroups")).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.codes(), ["RequestLimitExceeded"]);
    let e = server
        .client()
        .create_group("web", "w", None)
        .await
        .unwrap_err();
    assert_eq!(e.codes(), ["RequestLimitExceeded"]);
    assert_eq!(server.sink.actions().len(), 2, "only the two describes");

    // A freed slot is usable again.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match server.client().create_group("web", "w", None).await {
            Ok(_) => break,
            Err(e) if e.codes() == ["RequestLimitExceeded"] && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(exchange_keep_alive(&mut b, &describe).await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let server = Server::start(|o| o.idle_timeout = Duration::from_millis(300)).await;
    let mut s = UnixStream::connect(&server.path).await.unwrap();
    let req = b"GET /?Action=DescribeSecurityGroups HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(exchange_keep_alive(&mut s, req).await.status, 200);
    let idle_from = Instant::now();
    assert!(read_all(&mut s).await.is_empty());
    let idled = idle_from.elapsed();
    assert!(idled >= Duration::from_millis(250), "{idled:?}");
    assert!(idled < Duration::from_secs(4), "{idled:?}"); // well before the header timeout
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_file_is_private() {
    let server = Server::start(|_| {}).await;
    let meta = std::fs::symlink_metadata(&server.path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_progress() {
    let server = Server::start(|_| {}).await;
    let c = server.client();
    let in_flight = tokio::spawn(async move { c.create_group("slow", "s", None).await });
    // Let the request reach the sink, which takes 500 ms to answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.sink.actions().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the request never reached the sink"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let path = server.path.clone();
    server.stop().await;
    in_flight
        .await
        .unwrap()
        .expect("answered before shutdown completed");
    let e = Client::new(&path).describe(&[], None).await.unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_client_works_outside_async_code() {
    let server = Server::start(|_| {}).await;
    let path = server.path.clone();
    let groups = tokio::task::spawn_blocking(move || {
        let c = client::blocking::Client::new(&path).unwrap();
        c.create_group("web", "w", None).unwrap();
        c.add_group_members("web", &["192.0.2.9"], None).unwrap();
        c.remove_group_members("web", &["192.0.2.9"], None).unwrap();
        c.modify_instance_groups("i-1", &["web"], None).unwrap();
        let overlaps = c
            .revoke_cidr("shared", "tcp", 80, 80, "0.0.0.0/0", None)
            .unwrap();
        assert_eq!(overlaps.len(), 2);
        assert_eq!(c.status().unwrap().generation, 42);
        let e = c
            .explain("i-1", "192.0.2.1", "udp", Some(53), None, None)
            .unwrap();
        assert_eq!(e.admitted_by[0].group, "web");
        let e = c.delete_group("missing", None).unwrap_err();
        assert_eq!(e.codes(), ["InvalidGroup.NotFound"]);
        match c.call(&[("Action", "DescribeSecurityGroups")]).unwrap() {
            Response::Ok(ok) => ok.data,
            Response::Err(f) => panic!("{f}"),
        }
    })
    .await
    .unwrap();
    assert!(matches!(groups, SuccessData::Groups(g) if g.len() == 1));
    server.stop().await;
}

/// Runs the real `secgroupctl` against `socket`.
async fn ctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_secgroupctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("SECGROUPD_SOCKET")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secgroupctl_against_the_server() {
    let server = Server::start(|_| {}).await;

    let (code, out, err) = ctl(
        &server.path,
        &["create-group", "web", "--description", "Web servers"],
    )
    .await;
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "created security group web\n", "")
    );

    let (code, out, _) = ctl(
        &server.path,
        &[
            "authorize",
            "web",
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "10.0.0.0/8",
        ],
    )
    .await;
    assert_eq!(
        (code, out.as_str()),
        (0, "web: authorized tcp 22 from 10.0.0.0/8\n")
    );

    let (code, out, err) = ctl(&server.path, &["describe", "web"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "GROUP  OWNER         DESCRIPTION\n\
         web    123456789012  Web <servers> & \"friends\"\n    \
         tcp  22   10.0.0.0/8\n    \
         all  all  group 210987654321/lb\n"
    );

    let (code, out, err) = ctl(&server.path, &["delete-group", "missing"]).await;
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "error: InvalidGroup.NotFound: The security group 'missing' does not exist\n"
    );

    let (code, _, err) = ctl(&server.path, &["raw", "Action=Nope", "Foo=bar"]).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("error: InvalidAction: "), "{err}");

    let (code, out, _) = ctl(
        &server.path,
        &["raw", "Action=DeleteSecurityGroup", "GroupName=web"],
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("<return>true</return>"), "{out}");

    let (code, _, err) = ctl(&server.path, &["authorize", "web", "--cidr", "10.0.0.0/8"]).await;
    assert_eq!(code, 2, "{err}");

    let nowhere = server.path.with_file_name("nobody-here.sock");
    let (code, _, err) = ctl(&nowhere, &["describe"]).await;
    assert_eq!(code, 3);
    assert!(err.starts_with("error: cannot connect to "), "{err}");

    let actions = server.sink.actions();
    assert_eq!(actions.len(), 5, "{actions:?}"); // create, authorize, describe, delete, raw delete
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secgroupctl_members_groups_status_explain_and_overlap_warnings() {
    let server = Server::start(|_| {}).await;
    let run = |args: &'static [&'static str]| ctl(&server.path, args);

    let (code, out, err) = run(&[
        "add-members",
        "web",
        "--address",
        "192.0.2.7",
        "2001:db8::7",
    ])
    .await;
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "web: added remote members 192.0.2.7, 2001:db8::7\n", "")
    );
    let (code, out, _) = run(&["remove-members", "web", "--address", "192.0.2.7"]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "web: removed remote members 192.0.2.7\n")
    );
    let (code, out, _) = run(&[
        "modify-instance-groups",
        "i-1",
        "--group",
        "db",
        "--group",
        "web",
    ])
    .await;
    assert_eq!(
        (code, out.as_str()),
        (0, "instance i-1 is now in groups db, web\n")
    );

    let (code, out, err) = run(&["status"]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "generation             42\n\
         groups                 3\n\
         permissions            7\n\
         instances              2\n\
         remote members         5\n\
         rules                  31\n\
         set elements           9\n\
         last commit actions    1\n\
         last commit ops        6\n\
         last commit            2.500 ms\n\
         last store write       1.800 ms\n\
         last kernel batch      0.700 ms\n\
         table                  secgroupd\n\
         mode                   forward\n\
         established on revoke  keep\n"
    );

    let (code, out, err) = run(&[
        "explain",
        "--instance",
        "i-1",
        "--source",
        "198.51.100.4",
        "--protocol",
        "tcp",
        "--port",
        "80",
    ])
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "admitted by web: tcp 80 from 0.0.0.0/0\n  \
         also admitted by db: all traffic from group 123456789012/web\n"
    );
    let (code, out, _) = run(&[
        "explain",
        "--instance",
        "i-2",
        "--source",
        "10.0.0.1",
        "--protocol",
        "icmp",
        "--icmp-type",
        "8",
    ])
    .await;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "not admitted: no permission of the groups of i-2 (on tap2) admits it\n"
        )
    );

    // A revoke that leaves overlaps: the confirmation on stdout, a warning per overlap.
    let (code, out, err) = run(&[
        "revoke",
        "shared",
        "--protocol",
        "tcp",
        "--port",
        "80",
        "--cidr",
        "0.0.0.0/0",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "shared: revoked tcp 80 from 0.0.0.0/0\n");
    assert_eq!(
        err,
        "warning: still admitted fully by web: tcp 0-1023 from 0.0.0.0/0 \
         (instances i-1, i-2)\n\
         warning: still admitted partly by ops: all traffic from group 210987654321/lb \
         (instances i-2)\n"
    );
    let (code, _, err) = run(&[
        "revoke",
        "web",
        "--protocol",
        "tcp",
        "--port",
        "80",
        "--cidr",
        "0.0.0.0/0",
    ])
    .await;
    assert_eq!((code, err.as_str()), (0, ""), "no overlaps, no warning");

    let seen = server.sink.actions().len();
    // Flags that do not fit the protocol are usage errors, sent nowhere.
    for bad in [
        &[
            "explain",
            "--instance",
            "i-1",
            "--source",
            "10.0.0.1",
            "--protocol",
            "icmp",
            "--port",
            "80",
        ][..],
        &[
            "explain",
            "--instance",
            "i-1",
            "--source",
            "10.0.0.1",
            "--protocol",
            "tcp",
            "--icmp-type",
            "8",
        ],
        &[
            "explain",
            "--instance",
            "i-1",
            "--source",
            "10.0.0.1",
            "--protocol",
            "tcp",
        ],
        &["add-members", "web"],
        &["modify-instance-groups", "i-1"],
    ] {
        let (code, _, err) = ctl(&server.path, bad).await;
        assert_eq!(code, 2, "{bad:?}: {err}");
    }
    assert_eq!(server.sink.actions().len(), seen);
    server.stop().await;
}
