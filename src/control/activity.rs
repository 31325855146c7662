//! What a connection is doing, so that its timeouts can be enforced from outside the
//! HTTP layer (hyper's own header timeout also runs while a kept-alive connection idles,
//! which would make the idle timeout meaningless).

use super::ServeOptions;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Which limit applies to a connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for a request head to be complete (from connect, or from its first byte).
    Head { since: Instant },
    /// Kept alive between requests, nothing received yet.
    Idle { since: Instant },
    /// A request is being handled; the body timeout is enforced by the handler itself.
    Busy,
}

/// Why a connection was closed by its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    Header,
    Idle,
}

/// Shared between a connection's IO, its request handler and its watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
    body_unread: AtomicBool,
}

impl Activity {
    /// A fresh connection: its first request head is due within the header timeout.
    pub(crate) fn new() -> Self {
        Activity {
            phase: Mutex::new(Phase::Head {
                since: Instant::now(),
            }),
            changed: Notify::new(),
            body_unread: AtomicBool::new(false),
        }
    }

    fn set(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let next = f(*phase);
        if next != *phase {
            *phase = next;
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: an idle connection has started its next request head.
    pub(crate) fn bytes_read(&self) {
        self.set(|p| match p {
            Phase::Idle { .. } => Phase::Head {
                since: Instant::now(),
            },
            other => other,
        });
    }

    /// The head is complete and the handler runs.
    pub(crate) fn begin_request(&self) {
        self.set(|_| Phase::Busy);
    }

    /// The handler has produced its response.
    pub(crate) fn end_request(&self) {
        self.set(|_| Phase::Idle {
            since: Instant::now(),
        });
    }

    /// When the connection must be closed unless its phase changes, and why.
    pub(crate) fn deadline(&self, opts: &ServeOptions) -> Option<(Instant, Expiry)> {
        match *self.phase.lock().unwrap_or_else(|e| e.into_inner()) {
            Phase::Head { since } => Some((since + opts.header_timeout, Expiry::Header)),
            Phase::Idle { since } => Some((since + opts.idle_timeout, Expiry::Idle)),
            Phase::Busy => None,
        }
    }

    /// Resolves after the next phase change (or at once if one happened unobserved).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The handler answered without reading the whole body (too large, too slow).
    pub(crate) fn mark_body_unread(&self) {
        self.body_unread.store(true, Ordering::Relaxed);
    }

    pub(crate) fn body_unread(&self) -> bool {
        self.body_unread.load(Ordering::Relaxed)
    }
}

/// An IO stream that tells its [`Activity`] when bytes arrive.
pub(crate) struct Tracked<S> {
    pub(crate) inner: S,
    activity: std::sync::Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: std::sync::Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OwnerId;
    use std::time::Duration;

    fn opts() -> ServeOptions {
        let mut o = ServeOptions::new(OwnerId::parse("o", "000000000000").unwrap());
        o.header_timeout = Duration::from_secs(2);
        o.idle_timeout = Duration::from_secs(30);
        o
    }

    #[test]
    fn phases_choose_the_limit() {
        let a = Activity::new();
        let (at, why) = a.deadline(&opts()).unwrap();
        assert_eq!(why, Expiry::Header);
        assert!(at <= Instant::now() + Duration::from_secs(2));
        a.bytes_read(); // still the same head: the deadline does not move
        assert_eq!(a.deadline(&opts()), Some((at, Expiry::Header)));
        a.begin_request();
        assert_eq!(a.deadline(&opts()), None);
        a.bytes_read(); // body bytes do not start a head
        assert_eq!(a.deadline(&opts()), None);
        let before = Instant::now();
        a.end_request();
        let (idle_at, why) = a.deadline(&opts()).unwrap();
        assert_eq!(why, Expiry::Idle);
        assert!(idle_at >= before + Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(5));
        let before = Instant::now();
        a.bytes_read(); // the next request starts: the header limit applies from now
        let (head_at, why) = a.deadline(&opts()).unwrap();
        assert_eq!(why, Expiry::Header);
        assert!(head_at >= before + Duration::from_secs(2));
        assert!(head_at <= Instant::now() + Duration::from_secs(2));
    }

    #[tokio::test]
    async fn changes_are_not_lost_between_polls() {
        let a = Activity::new();
        a.begin_request(); // nobody waits yet
        tokio::time::timeout(Duration::from_secs(1), a.changed())
            .await
            .expect("the change was remembered");
    }
}
