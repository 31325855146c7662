//! A minimal HTTP/1.1 client for the control socket, written for measuring: one
//! `write` per request, no runtime, no XML parsing. [`Conn`] keeps the connection alive
//! across requests (it measures the daemon); [`post_once`] opens one per request, as
//! `secgroupctl` and the library client do (it adds connection set-up and teardown).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest a single answer may take: a revoke on a 100,000-rule chain still answers in
/// milliseconds; minutes mean the daemon is wedged.
const TIMEOUT: Duration = Duration::from_secs(120);

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    /// The first EC2 error code in the body, for messages.
    pub fn error_code(&self) -> &str {
        self.body
            .split("<Code>")
            .nth(1)
            .and_then(|s| s.split("</Code>").next())
            .unwrap_or("?")
    }
}

/// A kept-alive connection. If the daemon closes it, the next request reconnects.
pub struct Conn {
    path: PathBuf,
    stream: Option<BufReader<UnixStream>>,
    /// How often the connection had to be re-opened (0 when keep-alive works).
    pub reconnects: usize,
}

impl Conn {
    pub fn connect(path: &Path) -> io::Result<Conn> {
        let mut c = Conn {
            path: path.to_path_buf(),
            stream: None,
            reconnects: 0,
        };
        c.stream = Some(open(path)?);
        Ok(c)
    }

    /// `POST /` with a form body; returns once the whole answer is read.
    pub fn post(&mut self, form: &str) -> io::Result<Response> {
        let mut r = match self.stream.take() {
            Some(r) => r,
            None => {
                self.reconnects += 1;
                open(&self.path)?
            }
        };
        r.get_mut().write_all(&request(form, false))?;
        let (resp, close) = read_response(&mut r)?;
        if !close {
            self.stream = Some(r);
        }
        Ok(resp)
    }
}

/// One request on a new connection (`Connection: close`).
pub fn post_once(path: &Path, form: &str) -> io::Result<Response> {
    let mut r = open(path)?;
    r.get_mut().write_all(&request(form, true))?;
    Ok(read_response(&mut r)?.0)
}

fn open(path: &Path) -> io::Result<BufReader<UnixStream>> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    Ok(BufReader::with_capacity(64 * 1024, s))
}

fn request(form: &str, close: bool) -> Vec<u8> {
    let connection = if close { "close" } else { "keep-alive" };
    format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: {connection}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .into_bytes()
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads one answer; also says whether the server will close the connection.
fn read_response(r: &mut impl BufRead) -> io::Result<(Response, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection without answering",
        ));
    }
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let mut len = None;
    let mut close = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("EOF in the headers".into()));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                len = Some(v.parse::<usize>().map_err(|_| bad(format!("{l:?}")))?);
            } else if k.eq_ignore_ascii_case("connection") {
                close = v.eq_ignore_ascii_case("close");
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                return Err(bad("chunked answers are not expected".into()));
            }
        }
    }
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        None => {
            r.read_to_end(&mut body)?;
            close = true;
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok((Response { status, body }, close))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_kept_alive_answer_and_then_the_next() {
        let wire = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1 400 Bad Request\r\n\
                    content-length: 34\r\nconnection: close\r\n\r\n<Code>InvalidGroup.NotFound</Code>";
        let mut r = BufReader::new(wire.as_bytes());
        let (a, close) = read_response(&mut r).unwrap();
        assert_eq!((a.status, a.body.as_str(), close), (200, "hello", false));
        let (b, close) = read_response(&mut r).unwrap();
        assert_eq!((b.status, close), (400, true));
        assert_eq!(b.error_code(), "InvalidGroup.NotFound");
    }
}
