//! EC2 error documents for requests the HTTP layer itself refuses.
//!
//! hyper answers a request it cannot parse (a malformed request line or header, an invalid
//! or conflicting `Content-Length`, a `Transfer-Encoding` other than chunked, a head over
//! the size limit) with a bare status line and an empty body, before any handler runs.
//! Clients of an EC2 API expect an error document with a code, so this IO wrapper
//! recognises those automatic answers on their way out and replaces them with one.
//!
//! It follows the response boundaries of everything written (every answer of ours has a
//! `Content-Length`), so only the first bytes of a response are ever inspected, never a
//! body. An automatic answer is a response head with status ≥ 400 and no `Content-Type`:
//! every answer the handler produces has one.

use super::Peer;
use super::request_id::RequestIds;
use super::xml;
use crate::metrics::{Metrics, UNKNOWN_ACTION};
use crate::model::{ApiError, ErrorCode};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the replacement needs to know about its connection.
pub(crate) struct FramingContext {
    pub(crate) ids: Arc<RequestIds>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) peer: Peer,
    pub(crate) max_request_bytes: usize,
}

/// Where we are in the response stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// The next byte written starts a response.
    Boundary,
    /// This many bytes of the current response are still to come.
    Within(usize),
    /// A head we could not follow: inspect nothing more on this connection.
    Lost,
}

pub(crate) struct Framing<S> {
    pub(crate) inner: S,
    ctx: FramingContext,
    position: Position,
    /// A replacement being written, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> Framing<S> {
    pub(crate) fn new(inner: S, ctx: FramingContext) -> Self {
        Framing {
            inner,
            ctx,
            position: Position::Boundary,
            pending: None,
        }
    }

    /// The EC2 error response replacing hyper's automatic `status` answer.
    fn replacement(&self, status: u16) -> Vec<u8> {
        let (code, message) = match status {
            431 => (
                ErrorCode::RequestLimitExceeded,
                format!(
                    "The request head is larger than {} bytes",
                    self.ctx.max_request_bytes
                ),
            ),
            414 => (
                ErrorCode::RequestLimitExceeded,
                "The request target is too long".to_string(),
            ),
            _ => (
                ErrorCode::InvalidParameterValue,
                "The request is not valid HTTP/1.1: malformed request line or header, \
                 invalid or conflicting Content-Length, or a Transfer-Encoding other than \
                 chunked"
                    .to_string(),
            ),
        };
        let request_id = self.ctx.ids.next_id();
        tracing::info!(
            request_id,
            uid = self.ctx.peer.uid,
            pid = self.ctx.peer.pid,
            status,
            errors = code.as_str(),
            "control request refused by the HTTP layer"
        );
        self.ctx
            .metrics
            .record_request(UNKNOWN_ACTION, code.as_str());
        let body = xml::render_errors(&[ApiError::new(code, message)], &request_id);
        let reason = hyper::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

impl<S: AsyncWrite + Unpin> Framing<S> {
    /// Writes out a pending replacement; Ready(Ok) once there is none.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = &mut self.pending {
            if *done == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }
}

/// A response head at the start of `buf`: (head length, status, has Content-Type,
/// Content-Length). `None` if `buf` holds no complete head.
fn parse_head(buf: &[u8]) -> Option<(usize, u16, bool, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut content_type = false;
    let mut length = 0;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("content-type") {
            content_type = true;
        } else if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse().ok()?;
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            return None; // not ours: we never stream
        }
    }
    Some((end, status, content_type, length))
}

impl<S: AsyncRead + Unpin> AsyncRead for Framing<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Framing<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        if this.position == Position::Boundary {
            match parse_head(buf) {
                Some((_, status, false, 0)) if status >= 400 => {
                    this.pending = Some((this.replacement(status), 0));
                    // Nothing may follow an automatic answer: hyper closes the connection.
                    this.position = Position::Lost;
                    // Best effort now; flush and shutdown finish it.
                    let _ = this.poll_pending(cx)?;
                    return Poll::Ready(Ok(buf.len()));
                }
                Some((head, _, _, length)) => this.position = Position::Within(head + length),
                None => this.position = Position::Lost,
            }
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if let Position::Within(left) = this.position {
            this.position = match left.saturating_sub(n) {
                0 => Position::Boundary,
                rest => Position::Within(rest),
            };
        }
        Poll::Ready(Ok(n))
    }

    /// Not vectored: hyper then writes each response as one contiguous buffer, so a head is
    /// always whole at the start of a write.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        assert_eq!(
            parse_head(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"),
            Some((47, 400, false, 0))
        );
        let ours =
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/xml\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_head(ours), Some((ours.len() - 5, 400, true, 5)));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le"), None);
        assert_eq!(
            parse_head(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Some((25, 100, false, 0))
        );
    }

    #[tokio::test]
    async fn replaces_only_automatic_answers_at_a_boundary() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let ctx = FramingContext {
            ids: Arc::new(RequestIds::new()),
            metrics: Arc::new(Metrics::new()),
            peer: Peer {
                uid: 0,
                gid: 0,
                pid: 1,
            },
            max_request_bytes: 65536,
        };
        let metrics = ctx.metrics.clone();
        let mut w = Framing::new(a, ctx);
        // One of ours, whose body looks like an automatic answer: passed through.
        let body = "HTTP/1.1 400 Bad Request\r\n\r\n";
        let ours = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let (first, second) = ours.as_bytes().split_at(70);
        w.write_all(first).await.unwrap();
        w.write_all(second).await.unwrap();
        w.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        w.shutdown().await.unwrap();
        let mut out = String::new();
        b.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with(&ours), "{out}");
        let rest = &out[ours.len()..];
        assert!(rest.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{rest}");
        assert!(
            rest.contains("<Code>InvalidParameterValue</Code>"),
            "{rest}"
        );
        assert_eq!(metrics.requests(UNKNOWN_ACTION, "InvalidParameterValue"), 1);
    }
}
