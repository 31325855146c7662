//! The control socket: HTTP/1.1 on a Unix socket speaking the EC2 Query API.

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
