//! One accepted connection: hyper's HTTP/1.1 state machine plus the watchdog that enforces
//! the header and idle timeouts, graceful shutdown, and a lingering close.

use super::access::peer_groups;
use super::activity::{Activity, Expiry, Tracked};
use super::framing::{Framing, FramingContext};
use super::handler::Handler;
use super::request_id::RequestIds;
use super::{ActionSink, Peer, ServeOptions};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long, and how many bytes, to keep reading (and discarding) after answering a request
/// whose body we refused, so the client can finish sending and then read our answer instead
/// of failing on a broken pipe.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// What every connection of one server shares.
pub(crate) struct Shared<S> {
    pub(crate) opts: Arc<ServeOptions>,
    pub(crate) sink: S,
    pub(crate) ids: Arc<RequestIds>,
}

type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

/// Serves `stream` until the client leaves, a timeout expires, or `stop` turns true
/// (then the request in progress, if any, is finished first).
pub(crate) async fn run<S: ActionSink>(
    stream: UnixStream,
    shared: &Shared<S>,
    mut stop: watch::Receiver<bool>,
) {
    let peer = match stream.peer_cred() {
        Ok(c) => Peer {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid().unwrap_or(0),
        },
        Err(e) => {
            // Without credentials nothing can be authorised: refuse the connection.
            tracing::warn!(error = %e, "control connection without peer credentials; closing");
            return;
        }
    };
    // Taken now, like the uid and gid: the kernel's snapshot at connect() time.
    let groups = match peer_groups(&stream, peer.pid) {
        Ok(g) => g,
        Err(e) => {
            // Only the primary gid counts then; uid 0 is unaffected.
            tracing::warn!(uid = peer.uid, pid = peer.pid, error = %e, "cannot read the peer's groups");
            Vec::new()
        }
    };
    let activity = Arc::new(Activity::new());
    let handler = Arc::new(Handler {
        opts: shared.opts.clone(),
        sink: shared.sink.clone(),
        ids: shared.ids.clone(),
        peer,
        groups,
        activity: activity.clone(),
    });
    let service = service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        Box::pin(async move { Ok(handler.handle(req).await) }) as HandlerFuture
    });
    let mut builder = http1::Builder::new();
    builder
        // The watchdog below owns the header timeout: hyper's would also cut idle
        // kept-alive connections at the header timeout.
        .header_read_timeout(None)
        .max_header_size(shared.opts.max_request_bytes)
        .keep_alive(true);
    let framing = FramingContext {
        ids: shared.ids.clone(),
        metrics: shared.opts.metrics.clone(),
        peer,
        max_request_bytes: shared.opts.max_request_bytes,
    };
    let io = TokioIo::new(Framing::new(
        Tracked::new(stream, activity.clone()),
        framing,
    ));
    let mut conn = builder.serve_connection(io, service);

    let opts = &shared.opts;
    let mut stopping = false;
    let result = loop {
        let wake = activity
            .deadline(opts)
            .map_or_else(|| Instant::now() + Duration::from_secs(3600), |(at, _)| at);
        tokio::select! {
            r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => break r,
            () = activity.changed() => {}
            () = tokio::time::sleep_until(wake) => {
                if let Some((at, why)) = activity.deadline(opts)
                    && at <= Instant::now()
                {
                    match why {
                        Expiry::Header => tracing::info!(
                            uid = peer.uid,
                            pid = peer.pid,
                            timeout_ms = opts.header_timeout.as_millis() as u64,
                            "closing control connection: request head not received in time"
                        ),
                        Expiry::Idle => tracing::debug!(
                            uid = peer.uid,
                            pid = peer.pid,
                            "closing idle control connection"
                        ),
                    }
                    return;
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
        }
    };
    match result {
        Ok(()) if activity.body_unread() => {
            let stream = conn.into_parts().io.into_inner().inner.inner;
            linger(stream).await;
        }
        Ok(()) => {}
        Err(e) => {
            tracing::debug!(uid = peer.uid, pid = peer.pid, error = %e, "control connection failed")
        }
    }
}

/// Ends our side, then reads and discards what the client still sends, for a short while.
pub(crate) async fn linger(mut stream: UnixStream) {
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        let mut buf = [0u8; 8192];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}
