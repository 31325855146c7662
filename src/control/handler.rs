//! One HTTP request in, one EC2 answer out: routing, limits, decoding, the sink, logging.

use super::access::Role;
use super::activity::Activity;
use super::request_id::RequestIds;
use super::{ActionSink, Peer, ServeOptions, xml};
use crate::metrics::{METRICS_ACTION, OK_CODE, UNKNOWN_ACTION};
use crate::model::query::{MAX_PARAMETERS, decode_form, parse_action};
use crate::model::{Action, ApiError, ApiErrors, ErrorCode, Reply};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// The media type EC2 Query bodies use.
const FORM: &str = "application/x-www-form-urlencoded";
/// The Prometheus text exposition format of `GET /metrics`.
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything a connection's requests share.
pub(crate) struct Handler<S> {
    pub(crate) opts: Arc<ServeOptions>,
    pub(crate) sink: S,
    pub(crate) ids: Arc<RequestIds>,
    pub(crate) peer: Peer,
    /// The peer's supplementary groups, taken at connect time (see `access`).
    pub(crate) groups: Vec<u32>,
    pub(crate) activity: Arc<Activity>,
}

/// Whether the request was authorised, for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Refused before authorisation mattered (malformed, wrong path, ...).
    NotReached,
    Allowed(Role),
    Denied(Role),
}

/// The result of one request, before it becomes HTTP.
struct Outcome {
    /// The action, once the parameters parsed into one.
    action: Option<&'static str>,
    mutating: bool,
    params: Vec<(String, String)>,
    answer: Answer,
    decision: Decision,
    /// The connection cannot be reused (part of the body is still unread).
    close: bool,
    /// 405 says which methods are allowed.
    allow: bool,
}

enum Answer {
    Reply(Reply),
    Errors(StatusCode, ApiErrors),
    /// `GET /metrics`: the Prometheus text.
    Metrics(String),
}

impl Outcome {
    fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Outcome {
            action: None,
            mutating: false,
            params: Vec::new(),
            answer: Answer::Errors(status, ApiError::new(code, message).into()),
            decision: Decision::NotReached,
            close: false,
            allow: false,
        }
    }

    fn errors(params: Vec<(String, String)>, errors: ApiErrors) -> Self {
        let status = status_of(&errors);
        Outcome {
            action: None,
            mutating: false,
            params,
            answer: Answer::Errors(status, errors),
            decision: Decision::NotReached,
            close: false,
            allow: false,
        }
    }

    fn status(&self) -> StatusCode {
        match &self.answer {
            Answer::Reply(_) | Answer::Metrics(_) => StatusCode::OK,
            Answer::Errors(status, _) => *status,
        }
    }

    /// The EC2 code of the first error, or `ok`.
    fn code(&self) -> &'static str {
        match &self.answer {
            Answer::Errors(_, e) => e.0.first().map_or("InternalError", |e| e.code.as_str()),
            Answer::Reply(_) | Answer::Metrics(_) => OK_CODE,
        }
    }
}

/// A refusal for a peer whose role does not allow `what`.
fn unauthorized(what: &str, peer: &Peer, role: Role) -> ApiErrors {
    ApiError::new(
        ErrorCode::UnauthorizedOperation,
        format!(
            "You are not authorized to perform this operation: {what} (uid {}, role {})",
            peer.uid,
            role.as_str()
        ),
    )
    .into()
}

fn status_of(errors: &ApiErrors) -> StatusCode {
    StatusCode::from_u16(errors.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl<S: ActionSink> Handler<S> {
    /// Answers one request. Never fails: every problem is an EC2 error document.
    pub(crate) async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        self.activity.begin_request();
        let start = Instant::now();
        let request_id = self.ids.next_id();
        let outcome = self.outcome(req).await;
        let response = render(&outcome, &request_id);
        self.log(&outcome, &request_id, start);
        self.record(&outcome, start);
        self.activity.end_request();
        response
    }

    async fn outcome(&self, req: Request<Incoming>) -> Outcome {
        let (head, body) = req.into_parts();
        let has_body = body.size_hint().exact() != Some(0);
        let early = |mut o: Outcome| {
            if has_body {
                // Not worth reading: close after answering rather than drain it.
                self.activity.mark_body_unread();
                o.close = true;
            }
            o
        };
        if head.uri.path() == "/metrics" {
            let o = self.metrics(&head.method).await;
            return if o.allow { early(o) } else { o };
        }
        if head.uri.path() != "/" {
            return early(Outcome::error(
                StatusCode::NOT_FOUND,
                ErrorCode::InvalidAction,
                format!(
                    "There is nothing at {:?}: send EC2 Query requests to /",
                    head.uri.path()
                ),
            ));
        }
        let is_post = match head.method {
            Method::GET => false,
            Method::POST => true,
            ref other => {
                let mut o = Outcome::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrorCode::InvalidAction,
                    format!("The method {other} is not allowed: use GET or POST"),
                );
                o.allow = true;
                return early(o);
            }
        };
        if is_post && let Err(why) = check_form_content_type(&head.headers, has_body) {
            return early(Outcome::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::InvalidParameterValue,
                why,
            ));
        }
        let budget = self.opts.max_request_bytes.saturating_sub(head_len(&head));
        let body = if is_post {
            match self.read_body(body, budget).await {
                Ok(b) => b,
                Err(o) => return o,
            }
        } else {
            if has_body {
                return early(Outcome::error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidParameterValue,
                    "A GET request carries its parameters in the query string, not in a body",
                ));
            }
            Bytes::new()
        };
        let query = head.uri.query().unwrap_or("").as_bytes();
        self.dispatch(query, &body).await
    }

    /// Reads the body within the size and time limits.
    async fn read_body(&self, body: Incoming, budget: usize) -> Result<Bytes, Outcome> {
        let too_large = || {
            self.activity.mark_body_unread();
            let mut o = Outcome::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::RequestLimitExceeded,
                format!(
                    "The request is larger than {} bytes, headers included",
                    self.opts.max_request_bytes
                ),
            );
            o.close = true;
            o
        };
        if body.size_hint().lower() > budget as u64 {
            return Err(too_large());
        }
        let collected =
            tokio::time::timeout(self.opts.body_timeout, Limited::new(body, budget).collect())
                .await;
        match collected {
            Ok(Ok(c)) => Ok(c.to_bytes()),
            Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
            Ok(Err(e)) => {
                let mut o = Outcome::error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidParameterValue,
                    format!("The request body could not be read: {e}"),
                );
                o.close = true;
                Err(o)
            }
            Err(_elapsed) => {
                self.activity.mark_body_unread();
                let mut o = Outcome::error(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorCode::RequestLimitExceeded,
                    format!(
                        "The request body did not arrive within {} ms",
                        self.opts.body_timeout.as_millis()
                    ),
                );
                o.close = true;
                Err(o)
            }
        }
    }

    fn role(&self) -> Role {
        self.opts.access.get().role(&self.peer, &self.groups)
    }

    /// `GET /metrics`, for readers: the registry plus the reconciler's status gauges.
    async fn metrics(&self, method: &Method) -> Outcome {
        if method != Method::GET {
            let mut o = Outcome::error(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::InvalidAction,
                format!("The method {method} is not allowed on /metrics: use GET"),
            );
            o.action = Some(METRICS_ACTION);
            o.allow = true;
            return o;
        }
        let role = self.role();
        let (answer, decision) = if role < Role::Reader {
            let e = unauthorized("GET /metrics", &self.peer, role);
            (Answer::Errors(status_of(&e), e), Decision::Denied(role))
        } else {
            let status = match self.sink.submit(self.peer, Action::GetStatus).await {
                Ok(Reply::Status(s)) => Some(s),
                _ => None,
            };
            let text = self.opts.metrics.render(status.as_ref());
            (Answer::Metrics(text), Decision::Allowed(role))
        };
        Outcome {
            action: Some(METRICS_ACTION),
            mutating: false,
            params: Vec::new(),
            answer,
            decision,
            close: false,
            allow: false,
        }
    }

    /// Decodes and validates the parameters, checks the peer may perform the action, then
    /// hands it to the sink.
    async fn dispatch(&self, query: &[u8], body: &[u8]) -> Outcome {
        tracing::trace!(bytes = body.len(), "control request read");
        let mut params = Vec::new();
        let mut errors = Vec::new();
        for part in [query, body] {
            match decode_form(part) {
                Ok(p) => params.extend(p),
                Err(e) => errors.extend(e.0),
            }
        }
        if params.len() > MAX_PARAMETERS {
            errors.push(ApiError::invalid(
                "(request)",
                format!("more than {MAX_PARAMETERS} parameters"),
            ));
        }
        if !errors.is_empty() {
            return Outcome::errors(params, ApiErrors(errors));
        }
        // A peer with no role learns nothing, not even whether its request is valid.
        let role = self.role();
        if role == Role::None {
            let mut o = Outcome::errors(params, unauthorized("any action", &self.peer, role));
            o.decision = Decision::Denied(role);
            return o;
        }
        let action = match parse_action(&params, &self.opts.default_owner) {
            Ok(a) => a,
            Err(e) => return Outcome::errors(params, e),
        };
        let name = action.name();
        let mutating = action.is_mutating();
        if mutating && role < Role::Admin {
            let e = unauthorized(name, &self.peer, role);
            return Outcome {
                action: Some(name),
                mutating,
                params,
                answer: Answer::Errors(status_of(&e), e),
                decision: Decision::Denied(role),
                close: false,
                allow: false,
            };
        }
        let answer = match self.sink.submit(self.peer, action).await {
            Ok(reply) => Answer::Reply(reply),
            Err(e) => Answer::Errors(status_of(&e), e),
        };
        Outcome {
            action: Some(name),
            mutating,
            params,
            answer,
            decision: Decision::Allowed(role),
            close: false,
            allow: false,
        }
    }

    /// Counts the request, and the latency of a successful revoke.
    fn record(&self, o: &Outcome, start: Instant) {
        let m = &self.opts.metrics;
        m.record_request(o.action.unwrap_or(UNKNOWN_ACTION), o.code());
        if o.action == Some("RevokeSecurityGroupIngress") && matches!(o.answer, Answer::Reply(_)) {
            m.record_revoke(start.elapsed());
        }
    }

    /// The audit trail, one line per request with the peer's uid, gid and pid, the action
    /// and its parameters, and the authorisation decision: mutations and refusals at info,
    /// reads at debug, denials and our faults at warn.
    fn log(&self, o: &Outcome, request_id: &str, start: Instant) {
        let status = o.status().as_u16();
        let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
        // Refused requests are logged with the action they asked for, as given.
        let asked = o
            .params
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.as_str());
        // As given by the client (string fields are logged quoted and escaped).
        let action = o.action.or(asked).unwrap_or("-");
        let errors = match &o.answer {
            Answer::Reply(_) | Answer::Metrics(_) => String::new(),
            Answer::Errors(_, e) => {
                e.0.iter()
                    .map(|e| e.code.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            }
        };
        let params = LoggedParams(&o.params);
        let (decision, role) = match o.decision {
            Decision::NotReached => ("-", "-"),
            Decision::Allowed(r) => ("allow", r.as_str()),
            Decision::Denied(r) => ("deny", r.as_str()),
        };
        macro_rules! event {
            ($level:ident) => {
                tracing::$level!(
                    request_id,
                    action,
                    uid = self.peer.uid,
                    pid = self.peer.pid,
                    gid = self.peer.gid,
                    role,
                    decision,
                    status,
                    latency_ms,
                    errors = %errors,
                    params = %params,
                    "control request"
                )
            };
        }
        if status >= 500 || matches!(o.decision, Decision::Denied(_)) {
            event!(warn);
        } else if o.mutating || status >= 400 {
            event!(info);
        } else {
            event!(debug);
        }
    }
}

/// Parameters as `Name="value"`, quoted so that no value can forge a log line.
struct LoggedParams<'a>(&'a [(String, String)]);

impl fmt::Display for LoggedParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if k == "Signature" {
                write!(f, "{k:?}=(redacted)")?;
            } else {
                write!(f, "{k:?}={v:?}")?;
            }
        }
        Ok(())
    }
}

/// The HTTP response for an outcome.
fn render(o: &Outcome, request_id: &str) -> Response<Full<Bytes>> {
    let (body, content_type) = match &o.answer {
        Answer::Reply(reply) => (
            xml::render_reply(o.action.unwrap_or("Unknown"), request_id, reply),
            "text/xml",
        ),
        Answer::Errors(_, errors) => (xml::render_errors(&errors.0, request_id), "text/xml"),
        Answer::Metrics(text) => (text.clone(), METRICS_TYPE),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = o.status();
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if o.close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if o.allow {
        let allowed = if o.action == Some(METRICS_ACTION) {
            "GET"
        } else {
            "GET, POST"
        };
        headers.insert(ALLOW, HeaderValue::from_static(allowed));
    }
    resp
}

/// A POST body must be a form in UTF-8; an empty body may come without a type at all.
fn check_form_content_type(headers: &HeaderMap, has_body: bool) -> Result<(), String> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return if has_body {
            Err(format!("A POST body must have Content-Type {FORM}"))
        } else {
            Ok(())
        };
    };
    let value = value.to_str().unwrap_or("(not ASCII)");
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(FORM) {
        return Err(format!(
            "The Content-Type {value:?} is not supported: use {FORM}"
        ));
    }
    for p in parts {
        let Some((name, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset") && !v.eq_ignore_ascii_case("utf-8") {
            return Err(format!("The charset {v:?} is not supported: use UTF-8"));
        }
    }
    Ok(())
}

/// The size of the request line and headers as sent (`HTTP/1.1`, `\r\n` line ends).
fn head_len(head: &hyper::http::request::Parts) -> usize {
    let target = head.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let line = head.method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = head
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + headers + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ct) = ct {
            h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        h
    }

    #[test]
    fn form_content_types() {
        for ok in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded",
            "application/x-www-form-urlencoded; charset=utf-8",
            "application/x-www-form-urlencoded; charset=\"UTF-8\"",
        ] {
            assert!(
                check_form_content_type(&headers(Some(ok)), true).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "text/xml",
            "application/json",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded; charset=latin1",
        ] {
            assert!(
                check_form_content_type(&headers(Some(bad)), true).is_err(),
                "{bad}"
            );
        }
        assert!(check_form_content_type(&headers(None), false).is_ok());
        assert!(check_form_content_type(&headers(None), true).is_err());
    }

    #[test]
    fn head_length_counts_what_was_sent() {
        let req = Request::post("/?a=b")
            .header("host", "x")
            .header("content-length", "3")
            .body(())
            .unwrap();
        let (head, ()) = req.into_parts();
        let sent = "POST /?a=b HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n";
        assert_eq!(head_len(&head), sent.len());
    }

    #[test]
    fn logged_params_are_quoted_and_signatures_redacted() {
        let p = vec![
            ("GroupName".to_string(), "a\"\nb".to_string()),
            ("Signature".to_string(), "secret".to_string()),
        ];
        let s = LoggedParams(&p).to_string();
        assert_eq!(s, r#""GroupName"="a\"\nb" "Signature"=(redacted)"#);
    }
}
