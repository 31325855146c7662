//! A client for the control socket, used by `secgroupctl` and by integration tests.
//!
//! Every call is one connection and one `POST /` with form-encoded parameters; the XML
//! answer is read back into [`Response`]. The typed helpers turn EC2 errors into
//! [`ClientError::Api`], so `?` works on them; [`Client::call`] keeps both outcomes for
//! callers that want to inspect errors themselves.

pub mod blocking;
pub mod display;
mod permission;
mod response;
mod views;
mod xml;

pub use response::{
    ErrorDetail, Failure, GroupView, PermissionView, Response, Success, SuccessData,
};
pub use views::{AdmitView, ExplanationView, OverlapView, StatusView};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;

/// Why a call did not produce an answer (or produced an EC2 error, for typed helpers).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached: the daemon is not running, or no permission.
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The connection broke during the exchange.
    #[error("HTTP exchange with the daemon failed: {0}")]
    Http(#[from] hyper::Error),
    /// No answer within the client's timeout.
    #[error("no answer from the daemon within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The answer is not an EC2 document we understand.
    #[error("unexpected answer from the daemon (HTTP {status}): {reason}")]
    BadResponse { status: u16, reason: String },
    /// The daemon refused the request with EC2 errors.
    #[error("{0}")]
    Api(Failure),
}

impl ClientError {
    /// The EC2 error codes, if the daemon answered with errors.
    pub fn codes(&self) -> Vec<&str> {
        match self {
            ClientError::Api(f) => f.codes(),
            _ => Vec::new(),
        }
    }
}

/// An answer as received, before XML parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    pub body: String,
}

impl RawResponse {
    /// Reads the XML: success data or the EC2 errors.
    pub fn parse(&self) -> Result<Response, ClientError> {
        response::parse(self.status, &self.body).map_err(|reason| ClientError::BadResponse {
            status: self.status,
            reason,
        })
    }
}

/// A connection-per-call client of the control socket.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
    timeout: Option<Duration>,
}

/// How long a call waits by default: a mutation answers once committed in the kernel,
/// which is quick, but a wedged daemon must not hang a script forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// A client of the socket at `socket_path`, with [`DEFAULT_TIMEOUT`].
    pub fn new(socket_path: impl Into<PathBuf>) -> Self {
        Client {
            path: socket_path.into(),
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// Sets (or with `None`, removes) the limit on one whole call.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Sends `params` and returns the status and body as received.
    pub async fn call_raw(&self, params: &[(&str, &str)]) -> Result<RawResponse, ClientError> {
        let body = encode_form(params);
        let exchange = self.exchange(body);
        let (status, bytes) = match self.timeout {
            Some(t) => tokio::time::timeout(t, exchange)
                .await
                .map_err(|_| ClientError::Timeout(t))??,
            None => exchange.await?,
        };
        let body = String::from_utf8(bytes.to_vec()).map_err(|_| ClientError::BadResponse {
            status,
            reason: "the body is not UTF-8".into(),
        })?;
        Ok(RawResponse { status, body })
    }

    /// Sends `params` and parses the answer, success or EC2 errors alike.
    pub async fn call(&self, params: &[(&str, &str)]) -> Result<Response, ClientError> {
        self.call_raw(params).await?.parse()
    }

    async fn exchange(&self, body: String) -> Result<(u16, Bytes), ClientError> {
        let stream =
            UnixStream::connect(&self.path)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.path.clone(),
                    source,
                })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let req = Request::post("/")
            .header(HOST, "localhost")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(CONNECTION, "close")
            .body(Full::new(Bytes::from(body)))
            .expect("a request built from constants is valid");
        // Queue the request before the connection is first polled: hyper treats bytes that
        // arrive on a connection with nothing in flight as an error.
        let pending = sender.send_request(req);
        let driver = tokio::spawn(conn);
        let result = async {
            let resp = pending.await?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await?.to_bytes();
            Ok((status, bytes))
        }
        .await;
        driver.abort();
        result
    }

    /// Sends owned parameters, adding `OwnerId` when given.
    async fn send(
        &self,
        mut params: Vec<(String, String)>,
        owner: Option<&str>,
    ) -> Result<Response, ClientError> {
        if let Some(o) = owner {
            params.push(("OwnerId".into(), o.into()));
        }
        let borrowed: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.call(&borrowed).await
    }

    /// Sends a request and takes from its success what `pick` wants; anything else is
    /// [`ClientError::BadResponse`] saying that `expected` was missing.
    async fn expect<T>(
        &self,
        params: Vec<(String, String)>,
        owner: Option<&str>,
        expected: &str,
        pick: impl FnOnce(Success) -> Result<T, Box<Success>>,
    ) -> Result<T, ClientError> {
        match self.send(params, owner).await? {
            Response::Ok(ok) => pick(ok).map_err(|other| ClientError::BadResponse {
                status: 200,
                reason: format!("expected {expected}, got {:?}", other.data),
            }),
            Response::Err(f) => Err(ClientError::Api(f)),
        }
    }

    /// Sends a mutation; its request id on `<return>true</return>`.
    async fn mutate(
        &self,
        params: Vec<(String, String)>,
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        self.expect(params, owner, "<return>true</return>", |ok| match ok.data {
            SuccessData::Return(true) => Ok(ok.request_id),
            _ => Err(Box::new(ok)),
        })
        .await
    }

    /// Sends a revoke; the permissions that still admit some of the revoked traffic.
    async fn revoke(
        &self,
        params: Vec<(String, String)>,
        owner: Option<&str>,
    ) -> Result<Vec<OverlapView>, ClientError> {
        self.expect(params, owner, "<return>true</return>", |ok| match ok.data {
            SuccessData::Return(true) => Ok(Vec::new()),
            SuccessData::Revoked(overlaps) => Ok(overlaps),
            _ => Err(Box::new(ok)),
        })
        .await
    }

    /// CreateSecurityGroup. Returns the request id.
    pub async fn create_group(
        &self,
        name: &str,
        description: &str,
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        let p = params(&[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", name),
            ("GroupDescription", description),
        ]);
        self.mutate(p, owner).await
    }

    /// DeleteSecurityGroup. Returns the request id.
    pub async fn delete_group(
        &self,
        name: &str,
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        let p = params(&[("Action", "DeleteSecurityGroup"), ("GroupName", name)]);
        self.mutate(p, owner).await
    }

    /// AuthorizeSecurityGroupIngress of a CIDR permission (ICMP: type and code in
    /// `from`/`to`, -1 for any). Returns the request id.
    pub async fn authorize_cidr(
        &self,
        group: &str,
        protocol: &str,
        from: i32,
        to: i32,
        cidr: &str,
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        let p = cidr_params(
            "AuthorizeSecurityGroupIngress",
            group,
            protocol,
            from,
            to,
            cidr,
        );
        self.mutate(p, owner).await
    }

    /// RevokeSecurityGroupIngress of a CIDR permission. Returns the permissions of the
    /// revoked group's instances that still admit some of its traffic (empty: none).
    pub async fn revoke_cidr(
        &self,
        group: &str,
        protocol: &str,
        from: i32,
        to: i32,
        cidr: &str,
        owner: Option<&str>,
    ) -> Result<Vec<OverlapView>, ClientError> {
        let p = cidr_params(
            "RevokeSecurityGroupIngress",
            group,
            protocol,
            from,
            to,
            cidr,
        );
        self.revoke(p, owner).await
    }

    /// AuthorizeSecurityGroupIngress of all traffic from the members of
    /// `src_owner`'s group `src_group`. Returns the request id.
    pub async fn authorize_pair(
        &self,
        group: &str,
        src_group: &str,
        src_owner: &str,
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        let p = pair_params("AuthorizeSecurityGroupIngress", group, src_group, src_owner);
        self.mutate(p, owner).await
    }

    /// RevokeSecurityGroupIngress of a user/group pair. Returns what still admits some of
    /// its traffic, as [`Client::revoke_cidr`].
    pub async fn revoke_pair(
        &self,
        group: &str,
        src_group: &str,
        src_owner: &str,
        owner: Option<&str>,
    ) -> Result<Vec<OverlapView>, ClientError> {
        let p = pair_params("RevokeSecurityGroupIngress", group, src_group, src_owner);
        self.revoke(p, owner).await
    }

    /// DescribeSecurityGroups of `names`, or of all the owner's groups if empty.
    pub async fn describe(
        &self,
        names: &[&str],
        owner: Option<&str>,
    ) -> Result<Vec<GroupView>, ClientError> {
        let mut p = params(&[("Action", "DescribeSecurityGroups")]);
        p.extend(numbered("GroupName", names));
        self.expect(p, owner, "securityGroupInfo", |ok| match ok.data {
            SuccessData::Groups(groups) => Ok(groups),
            _ => Err(Box::new(ok)),
        })
        .await
    }

    /// RegisterInstance: `iface` is filtered for the instance with `addrs`, member of
    /// `groups`. Returns the request id.
    pub async fn register_instance(
        &self,
        id: &str,
        iface: &str,
        addrs: &[&str],
        groups: &[&str],
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut p = params(&[
            ("Action", "RegisterInstance"),
            ("InstanceId", id),
            ("Interface", iface),
        ]);
        p.extend(numbered("IpAddress", addrs));
        p.extend(numbered("GroupName", groups));
        self.mutate(p, owner).await
    }

    /// DeregisterInstance. Returns the request id.
    pub async fn deregister_instance(
        &self,
        id: &str,
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        let p = params(&[("Action", "DeregisterInstance"), ("InstanceId", id)]);
        self.mutate(p, owner).await
    }

    /// AddGroupMembers: `addrs` (of members on other hosts) join the group's member set,
    /// so that group-pair permissions naming the group admit them. Addresses that are
    /// members already are left as they are. Returns the request id.
    pub async fn add_group_members(
        &self,
        group: &str,
        addrs: &[&str],
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut p = params(&[("Action", "AddGroupMembers"), ("GroupName", group)]);
        p.extend(numbered("IpAddress", addrs));
        self.mutate(p, owner).await
    }

    /// RemoveGroupMembers: each of `addrs` must be a remote member of the group. Returns
    /// the request id.
    pub async fn remove_group_members(
        &self,
        group: &str,
        addrs: &[&str],
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut p = params(&[("Action", "RemoveGroupMembers"), ("GroupName", group)]);
        p.extend(numbered("IpAddress", addrs));
        self.mutate(p, owner).await
    }

    /// ModifyInstanceGroups: the instance's groups become `groups`, in this order, in one
    /// step (no moment with neither the old nor the new rules). Returns the request id.
    pub async fn modify_instance_groups(
        &self,
        id: &str,
        groups: &[&str],
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut p = params(&[("Action", "ModifyInstanceGroups"), ("InstanceId", id)]);
        p.extend(numbered("GroupName", groups));
        self.mutate(p, owner).await
    }

    /// GetStatus: the daemon's figures.
    pub async fn status(&self) -> Result<StatusView, ClientError> {
        let p = params(&[("Action", "GetStatus")]);
        self.expect(p, None, "the GetStatus figures", |ok| match ok.data {
            SuccessData::Status(s) => Ok(s),
            _ => Err(Box::new(ok)),
        })
        .await
    }

    /// ExplainPacket: which permissions admit a packet from `source` to the instance:
    /// TCP/UDP to `port`, or ICMP of `icmp_type` and `icmp_code` (the daemon takes code 0
    /// when it is absent).
    pub async fn explain(
        &self,
        instance: &str,
        source: &str,
        protocol: &str,
        port: Option<u16>,
        icmp_type: Option<u8>,
        icmp_code: Option<u8>,
    ) -> Result<ExplanationView, ClientError> {
        let mut p = params(&[
            ("Action", "ExplainPacket"),
            ("InstanceId", instance),
            ("SourceIp", source),
            ("IpProtocol", protocol),
        ]);
        let numbers = [
            ("Port", port.map(u32::from)),
            ("IcmpType", icmp_type.map(u32::from)),
            ("IcmpCode", icmp_code.map(u32::from)),
        ];
        for (name, value) in numbers {
            if let Some(v) = value {
                p.push((name.to_string(), v.to_string()));
            }
        }
        self.expect(p, None, "an explanation", |ok| match ok.data {
            SuccessData::Explained(e) => Ok(e),
            _ => Err(Box::new(ok)),
        })
        .await
    }
}

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `prefix.1`, `prefix.2`, … as EC2 spells lists.
fn numbered(prefix: &str, values: &[&str]) -> Vec<(String, String)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("{prefix}.{}", i + 1), v.to_string()))
        .collect()
}

fn cidr_params(
    action: &str,
    group: &str,
    protocol: &str,
    from: i32,
    to: i32,
    cidr: &str,
) -> Vec<(String, String)> {
    params(&[
        ("Action", action),
        ("GroupName", group),
        ("IpProtocol", protocol),
        ("FromPort", &from.to_string()),
        ("ToPort", &to.to_string()),
        ("CidrIp", cidr),
    ])
}

fn pair_params(
    action: &str,
    group: &str,
    src_group: &str,
    src_owner: &str,
) -> Vec<(String, String)> {
    params(&[
        ("Action", action),
        ("GroupName", group),
        ("SourceSecurityGroupName", src_group),
        ("SourceSecurityGroupOwnerId", src_owner),
    ])
}

/// `application/x-www-form-urlencoded`, escaping everything but RFC 3986's unreserved
/// characters (as EC2 signing does), so any value survives the round trip.
pub fn encode_form(params: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode(k, &mut out);
        out.push('=');
        percent_encode(v, &mut out);
    }
    out
}

fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::query::decode_form;

    #[test]
    fn form_encoding_round_trips() {
        let params = [
            ("Action", "CreateSecurityGroup"),
            ("GroupDescription", "a b&c=d+e%f/\u{e9}\u{1f600}"),
            ("Weird Name", ""),
        ];
        let encoded = encode_form(&params);
        assert_eq!(
            encoded,
            "Action=CreateSecurityGroup&GroupDescription=a%20b%26c%3Dd%2Be%25f%2F%C3%A9%F0%9F%98%80&Weird%20Name="
        );
        let decoded = decode_form(encoded.as_bytes()).unwrap();
        let expected: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn lists_count_from_one() {
        assert_eq!(
            numbered("IpAddress", &["10.0.0.1", "10.0.0.2"]),
            vec![
                ("IpAddress.1".to_string(), "10.0.0.1".to_string()),
                ("IpAddress.2".to_string(), "10.0.0.2".to_string()),
            ]
        );
    }
}
