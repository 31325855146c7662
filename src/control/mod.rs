//! The control socket: HTTP/1.1 on a Unix socket speaking the EC2 Query API.
//!
//! [`bind_control_socket`] creates the listening socket, [`serve`] answers requests on it:
//! every request is decoded and validated by [`crate::model::query`], handed to an
//! [`ActionSink`] with the caller's [`Peer`] credentials, and the outcome is rendered as the
//! EC2 2007-03-01 XML by [`xml`].

pub mod access;
mod activity;
mod connection;
mod framing;
mod handler;
mod options;
pub mod request_id;
pub mod rlimit;
mod server;
mod socket;
pub mod xml;

pub use access::{Access, AccessPolicy, Role};
pub use options::ServeOptions;
pub use server::serve;
pub use socket::{apply_socket_permissions, bind_control_socket};

use crate::model::{Action, ApiErrors, Reply};
use std::future::Future;

/// Who is calling, from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

/// Where validated actions go: the reconciler in the daemon, a mock in tests.
/// `submit` resolves once the action is durable and committed in the kernel (or refused).
pub trait ActionSink: Clone + Send + Sync + 'static {
    fn submit(
        &self,
        peer: Peer,
        action: Action,
    ) -> impl Future<Output = Result<Reply, ApiErrors>> + Send;
}
