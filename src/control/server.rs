//! The accept loop: connection cap, graceful shutdown.

use super::connection::{self, Shared};
use super::request_id::RequestIds;
use super::{ActionSink, ServeOptions, xml};
use crate::model::{ApiError, ErrorCode};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Connections over the cap that are answered 503 at the same time; past this they are
/// closed without an answer, so a flood costs nothing but the accept.
const MAX_REJECTING: usize = 64;
/// How long a connection over the cap may take to send its request head.
const REJECT_READ_TIME: Duration = Duration::from_secs(1);
/// How much of that head we read before answering anyway.
const REJECT_READ_BYTES: usize = 16 * 1024;

/// Serves the control API on `listener` until `shutdown` resolves.
///
/// Each connection runs in its own task, so a slow or idle client never delays another,
/// and the accept loop never waits on a client. Past `opts.max_connections` open
/// connections, new ones are answered `503 RequestLimitExceeded` and closed.
///
/// When `shutdown` resolves the listener is closed at once; requests in progress are
/// finished and answered (the sink is not interrupted mid-commit), idle connections are
/// closed, and `serve` returns when every connection is gone. The socket file is left in
/// place; [`bind_control_socket`](super::bind_control_socket) replaces it on the next start.
pub async fn serve<S: ActionSink>(
    listener: UnixListener,
    opts: ServeOptions,
    sink: S,
    shutdown: impl Future<Output = ()>,
) {
    let shared = Arc::new(Shared {
        opts: Arc::new(opts),
        sink,
        ids: Arc::new(RequestIds::new()),
    });
    let slots = Arc::new(Semaphore::new(shared.opts.max_connections));
    let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _addr)) => stream,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if let Ok(slot) = slots.clone().try_acquire_owned() {
                    let shared = shared.clone();
                    let stop = stop_rx.clone();
                    tasks.spawn(async move {
                        connection::run(stream, &shared, stop).await;
                        drop(slot);
                    });
                } else if let Ok(slot) = rejecting.clone().try_acquire_owned() {
                    shared.opts.metrics.record_request(
                        crate::metrics::UNKNOWN_ACTION,
                        ErrorCode::RequestLimitExceeded.as_str(),
                    );
                    let body = xml::render_errors(
                        &[ApiError::new(
                            ErrorCode::RequestLimitExceeded,
                            format!(
                                "The daemon is serving its maximum of {} connections; retry later",
                                shared.opts.max_connections
                            ),
                        )],
                        &shared.ids.next_id(),
                    );
                    tasks.spawn(async move {
                        reject(stream, body).await;
                        drop(slot);
                    });
                } else {
                    tracing::debug!("control connection dropped: over the cap and busy rejecting");
                }
            }
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "control connection task panicked");
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

/// Answers a connection over the cap with 503, after its request head (an HTTP client
/// that receives an answer before it has sent its request treats it as garbage).
async fn reject(mut stream: UnixStream, body: String) {
    if let Ok(c) = stream.peer_cred() {
        tracing::warn!(
            uid = c.uid(),
            pid = c.pid().unwrap_or(0),
            "control connection refused: connection limit reached"
        );
    }
    let _ = tokio::time::timeout(REJECT_READ_TIME, async {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while head.len() < REJECT_READ_BYTES && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/xml\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let written =
        tokio::time::timeout(REJECT_READ_TIME, stream.write_all(response.as_bytes())).await;
    if matches!(written, Ok(Ok(()))) {
        connection::linger(stream).await;
    }
}
