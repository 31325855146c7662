//! Limits and defaults of the control socket server.

use super::access::Access;
use crate::metrics::Metrics;
use crate::model::OwnerId;
use std::sync::Arc;
use std::time::Duration;

/// How [`serve`](super::serve) treats its clients.
///
/// The limits exist so that one careless or hostile local process cannot starve the
/// others: every connection is bounded in size, in time and in number.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Owner of requests that carry no `OwnerId` (the daemon's `owner_id` setting).
    pub default_owner: OwnerId,
    /// Most bytes of one request, request line and headers included. A larger body is
    /// answered 413 before it is read; larger headers are answered 431 by the HTTP layer.
    pub max_request_bytes: usize,
    /// Time a client has, from connecting (or from the first byte of a later request on a
    /// kept-alive connection), to send a complete request head. Past it the connection is
    /// closed without an answer.
    pub header_timeout: Duration,
    /// Time a client has to send the whole body once the head is read; past it the request
    /// is answered 408 and the connection closed.
    pub body_timeout: Duration,
    /// Most connections served at once; further ones are answered 503 and closed.
    pub max_connections: usize,
    /// How long a kept-alive connection may sit between requests before it is closed.
    pub idle_timeout: Duration,
    /// Who may do what; replaceable while serving (config reload).
    pub access: Access,
    /// Where request counts and latencies go; also what `GET /metrics` shows.
    pub metrics: Arc<Metrics>,
}

impl ServeOptions {
    /// Default `max_request_bytes`: EC2 requests are small; 64 KiB is generous.
    pub const DEFAULT_MAX_REQUEST_BYTES: usize = 64 * 1024;
    /// Default `header_timeout`.
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default `body_timeout`.
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default `max_connections`: room for a thousand idle or misbehaving local clients
    /// and the real ones. An open connection costs a task, a small buffer and two file
    /// descriptors; the daemon raises `RLIMIT_NOFILE` to fit (see `raise_fd_limit`).
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
    /// Default `idle_timeout`.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

    /// The defaults, with `default_owner` as the owner of requests that name none.
    pub fn new(default_owner: OwnerId) -> Self {
        ServeOptions {
            default_owner,
            max_request_bytes: Self::DEFAULT_MAX_REQUEST_BYTES,
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            body_timeout: Self::DEFAULT_BODY_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            access: Access::default(),
            metrics: Arc::new(Metrics::new()),
        }
    }
}
