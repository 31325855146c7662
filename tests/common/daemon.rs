//! Running the real `secgroupd` binary inside a test's host namespace, talking to its
//! control socket, and reading its nftables table.
//!
//! The binary path is a parameter: tests pass `env!("CARGO_BIN_EXE_secgroupd")`.

use super::netns::{CmdError, Netns};
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long [`Daemon::start`] waits for the control socket to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Daemon::stop`] waits after SIGTERM before giving up.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What goes into the daemon's configuration file.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// nftables table (family inet) the daemon owns.
    pub table: String,
    pub propagation_delay_ms: u64,
    pub owner_id: String,
    /// Raw TOML lines appended to the generated file (keys added later, or deliberately
    /// bad ones).
    pub extra_config: Vec<String>,
    /// Extra environment for the daemon process (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            table: "secgroupd".into(),
            propagation_delay_ms: 10,
            owner_id: "000000000000".into(),
            extra_config: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// The configuration file text for `opts`, with the socket and state dir given.
pub fn render_config(opts: &DaemonOptions, socket: &Path, state_dir: &Path) -> String {
    let s = |v: &str| toml::Value::String(v.to_string()).to_string();
    let mut text = format!(
        "# written by the secgroupd test harness\n\
         socket = {}\n\
         state_dir = {}\n\
         table = {}\n\
         owner_id = {}\n\
         propagation_delay_ms = {}\n",
        s(&socket.to_string_lossy()),
        s(&state_dir.to_string_lossy()),
        s(&opts.table),
        s(&opts.owner_id),
        opts.propagation_delay_ms,
    );
    for line in &opts.extra_config {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// A `secgroupd` process running in a namespace, with its own temp dir holding the
/// config, the control socket, the state dir and the log (stdout + stderr).
/// Dropping it kills the process (SIGKILL) and removes the temp dir; if the test is
/// panicking, the log is printed first.
pub struct Daemon {
    bin: PathBuf,
    netns: String,
    opts: DaemonOptions,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Set once a panic message carried the log, so Drop does not print it again.
    log_reported: std::sync::atomic::AtomicBool,
}

impl Daemon {
    /// Writes the config, spawns `ip netns exec <host> <bin> --config <file>` and waits
    /// until the control socket answers `DescribeSecurityGroups` with 200. Panics (with
    /// the log) if the process exits or is not ready within [`READY_TIMEOUT`].
    pub fn start(bin: impl AsRef<Path>, host: &Netns, opts: DaemonOptions) -> Daemon {
        // On tmpfs when there is one: the store fsyncs every commit, and on this kind of
        // VM a disk write-back can stall for tens of seconds, which would time requests
        // out. The tests kill processes, not machines, so page-cache durability suffices.
        let shm = Path::new("/dev/shm");
        let mut b = tempfile::Builder::new();
        b.prefix("sgd-daemon-");
        let dir = if shm.is_dir() {
            b.tempdir_in(shm)
        } else {
            b.tempdir()
        }
        .expect("create temp dir");
        let mut d = Daemon {
            bin: bin.as_ref().to_path_buf(),
            netns: host.name().to_string(),
            opts,
            dir,
            child: None,
            log_reported: std::sync::atomic::AtomicBool::new(false),
        };
        std::fs::create_dir_all(d.state_dir()).expect("create state dir");
        let text = render_config(&d.opts, &d.socket_path(), &d.state_dir());
        std::fs::write(d.config_path(), text).expect("write config");
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open log");
        let _ = std::fs::remove_file(self.socket_path());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns])
            .arg(&self.bin)
            .arg("--config")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                panic!(
                    "secgroupd exited before becoming ready ({status})\n{}",
                    self.log_for_panic()
                );
            }
            let last_err = match self.get("/?Action=DescribeSecurityGroups") {
                Ok(r) if r.status == 200 => return,
                Ok(r) => format!("status {} {}", r.status, r.body),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                panic!(
                    "secgroupd not ready after {READY_TIMEOUT:?} (last attempt: {last_err})\n{}",
                    self.log_for_panic()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the exit (panics with the log after [`STOP_TIMEOUT`]).
    /// Returns the exit status. No-op returning `None` if not running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "secgroupd did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
                    self.log_for_panic()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (a crash: no cleanup by the daemon) and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (SIGTERM) if running, then starts again with the same config and state dir,
    /// and waits until ready. A marker line separates the runs in the log.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts again after [`Daemon::stop`] or [`Daemon::kill9`], same config and state.
    pub fn start_again(&mut self) {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open log");
        let _ = writeln!(log, "===== harness: restarting secgroupd =====");
        self.spawn();
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("secgroupd.toml")
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("secgroupd.log")
    }

    pub fn table(&self) -> &str {
        &self.opts.table
    }

    pub fn netns_name(&self) -> &str {
        &self.netns
    }

    /// Everything the daemon wrote to stdout and stderr so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_for_panic(&self) -> String {
        self.log_reported
            .store(true, std::sync::atomic::Ordering::Relaxed);
        format!(
            "--- secgroupd log ({}) ---\n{}--- end of log ---",
            self.log_path().display(),
            self.log()
        )
    }

    /// `GET <path_and_query>` on the control socket.
    pub fn get(&self, path_and_query: &str) -> io::Result<HttpResponse> {
        self.request("GET", path_and_query, None)
    }

    /// EC2 Query API call: `POST /` with a form-encoded body of `Action` and `params`.
    pub fn call(&self, action: &str, params: &[(&str, &str)]) -> io::Result<HttpResponse> {
        let mut pairs = vec![("Action", action)];
        pairs.extend_from_slice(params);
        let body = secgroupd::client::encode_form(&pairs);
        self.request(
            "POST",
            "/",
            Some(("application/x-www-form-urlencoded", &body)),
        )
    }

    /// One HTTP/1.1 request over the control socket (`Connection: close`).
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<(&str, &str)>,
    ) -> io::Result<HttpResponse> {
        http_request(&self.socket_path(), method, path_and_query, body)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.log_reported.load(std::sync::atomic::Ordering::Relaxed)
        {
            let _ = writeln!(io::stderr(), "{}", self.log_for_panic());
        }
        self.kill9();
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Minimal HTTP/1.1 client over a Unix socket: sends one request with
/// `Host: localhost` and `Connection: close`, reads the whole response (Content-Length,
/// chunked, or until EOF).
pub fn http_request(
    socket: &Path,
    method: &str,
    path_and_query: &str,
    body: Option<(&str, &str)>,
) -> io::Result<HttpResponse> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req =
        format!("{method} {path_and_query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    match body {
        Some((ctype, b)) => {
            req.push_str(&format!(
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            ));
        }
        None => req.push_str("\r\n"),
    }
    s.write_all(req.as_bytes())?;
    parse_response(BufReader::new(s))
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Parses one HTTP/1.1 response from `r`.
pub fn parse_response(mut r: impl BufRead) -> io::Result<HttpResponse> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("bad status line {line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("EOF in headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header {l:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.to_string())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size_text = line.trim_end().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            line.clear();
            r.read_line(&mut line)?; // CRLF after the chunk
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

// ---------------------------------------------------------------------------------------
// nftables inspection (read-only, inside the given namespace)

/// `nft -s list table inet <table>` in `ns`; panics if it fails (e.g. no such table).
///
/// Stateless (`-s`): counter values are left out, because a stray packet (an IPv6
/// multicast listener report, say) moving a counter is not a change to the rules, and
/// tests compare these listings for equality.
pub fn nft_list(ns: &Netns, table: &str) -> String {
    ns.exec(&["nft", "-s", "list", "table", "inet", table])
}

/// `nft -s -j list table inet <table>` in `ns`, parsed (stateless, like [`nft_list`];
/// rule handles are still there).
pub fn nft_json(ns: &Netns, table: &str) -> serde_json::Value {
    let out = ns.exec(&["nft", "-s", "-j", "list", "table", "inet", table]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("nft -j output is not JSON: {e}\n{out}"))
}

/// Loads a ruleset text with `nft -f -` in `ns` (for tests that set up their own rules,
/// e.g. to show that probes can fail). Panics on error.
pub fn nft_apply(ns: &Netns, ruleset: &str) {
    ns.exec_with_stdin(&["nft", "-f", "-"], ruleset);
}

/// Whether `ns` has an inet table of that name.
pub fn nft_table_exists(ns: &Netns, table: &str) -> bool {
    match ns.try_exec(&["nft", "list", "tables", "inet"]) {
        Ok(out) => out
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["table", "inet", table]),
        Err(CmdError { stderr, .. }) => panic!("nft list tables: {stderr}"),
    }
}
