//! Shared harness for secgroupd's kernel-facing integration tests.
//!
//! Tests run against the real kernel inside network namespaces that the harness creates
//! and removes; traffic only ever flows between those namespaces. Nothing is created in,
//! or changed in, the root namespace.
//!
//! Use from an integration test file:
//!
//! ```ignore
//! mod common;
//! use common::*;
//!
//! #[test]
//! fn something() {
//!     if !netns_or_skip() {
//!         return;
//!     }
//!     let topo = RoutedTopology::new(2);
//!     let _srv = TcpEchoServer::start(&topo.instance(1).ns, any_v4(), 8080);
//!     assert!(tcp_probe(&topo.client.ns, topo.instance(1).v4.into(), 8080, PROBE_TIMEOUT));
//! }
//! ```
//!
//! Modules:
//! - [`netns`]: `Netns` (create / exec / enter / delete-on-drop),
//! - [`topology`]: `RoutedTopology`, `BridgedTopology`, `Node`,
//! - [`probe`]: echo servers, TCP/UDP/ICMP probes, long-lived stream, `wait_until`,
//! - [`daemon`]: run the real `secgroupd` binary in a namespace, talk to its socket,
//!   read its nftables table.
//!
//! Every netns test calls [`netns_or_skip`] first: it FAILS (panics) when the
//! prerequisites are missing, unless `SECGROUPD_SKIP_NETNS=1` is set.

// Each integration test file compiles this module on its own and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod api;
pub mod daemon;
pub mod netns;
pub mod probe;
pub mod topology;

pub use api::{BIN, Mode, Topo, api, cidr, create_group, handles, ok, pair, register};
pub use daemon::{
    Daemon, DaemonOptions, HttpResponse, nft_apply, nft_json, nft_list, nft_table_exists,
};
pub use netns::{CmdError, Netns, netns_exists, netns_list};
pub use probe::{
    PROBE_TIMEOUT, TcpEchoServer, TcpStreamProbe, UdpEchoServer, any_v4, any_v6, icmp_probe,
    icmp_probe_result, tcp_probe, tcp_probe_result, udp_probe, udp_probe_result, wait_until,
};
pub use topology::{BridgedTopology, Node, RoutedTopology, Topology, timed};

use std::io::Write;
use std::sync::OnceLock;

/// Environment variable that turns netns tests into early returns instead of failures.
pub const SKIP_ENV: &str = "SECGROUPD_SKIP_NETNS";

/// What a netns test should do, given the value of [`SKIP_ENV`] and a prerequisite check.
///
/// * `Ok(false)`: skip (the variable is exactly `1`); the check is not even run.
/// * `Ok(true)`: run, the prerequisites are there.
/// * `Err(msg)`: prerequisites missing and skipping was not asked for: the test must fail.
///
/// Pure apart from calling `check`, so it is unit-tested without root.
pub fn netns_decision(
    skip_env: Option<&str>,
    check: impl FnOnce() -> Result<(), String>,
) -> Result<bool, String> {
    if skip_env == Some("1") {
        return Ok(false);
    }
    match check() {
        Ok(()) => Ok(true),
        Err(why) => Err(format!(
            "network-namespace test cannot run: {why}\n\
             These tests need root, iproute2 (`ip`) and permission to create network \
             namespaces. They fail rather than skip so that a broken environment is never \
             mistaken for a pass; set {SKIP_ENV}=1 to skip them deliberately."
        )),
    }
}

/// Call first in every netns test: `if !common::netns_or_skip() { return; }`.
///
/// Returns `false` (after printing a notice to the real stderr, visible even when the
/// test harness captures output) when `SECGROUPD_SKIP_NETNS=1`; returns `true` when the
/// environment can run namespace tests; panics with a clear message otherwise.
/// The prerequisite check runs once per test process.
pub fn netns_or_skip() -> bool {
    let var = std::env::var(SKIP_ENV).ok();
    let decision = netns_decision(var.as_deref(), || {
        static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
        CHECK.get_or_init(check_prerequisites).clone()
    });
    match decision {
        Ok(true) => true,
        Ok(false) => {
            let name = std::thread::current()
                .name()
                .unwrap_or("<unnamed>")
                .to_string();
            // Bypass output capture so the skip is visible in a normal `cargo test` run.
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE: {SKIP_ENV}=1: skipping network-namespace test `{name}` (NOT run)"
            );
            false
        }
        Err(msg) => panic!("{msg}"),
    }
}

/// Root, a working `ip`, and an actual namespace created and deleted.
/// Also removes namespaces left behind by dead test processes.
pub fn check_prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!("not running as root (euid {euid})"));
    }
    match std::process::Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "`ip -V` failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Err(e) => return Err(format!("cannot run `ip` (iproute2): {e}")),
    }
    netns::cleanup_stale();
    let ns = Netns::try_new("probe").map_err(|e| format!("cannot create a namespace: {e}"))?;
    ns.try_exec(&["ip", "link", "show", "lo"])
        .map_err(|e| format!("cannot run a command inside a namespace: {e}"))?;
    ns.enter(|| {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .map(drop)
            .map_err(|e| format!("cannot use a socket inside a namespace via setns: {e}"))
    })?;
    Ok(())
}

/// Defines a test per mode (routed and bridged) from `fn body(mode: Mode)`.
#[macro_export]
macro_rules! both_modes {
    ($routed:ident, $bridged:ident, $body:ident) => {
        #[test]
        fn $routed() {
            if !common::netns_or_skip() {
                return;
            }
            $body(common::Mode::Routed);
        }
        #[test]
        fn $bridged() {
            if !common::netns_or_skip() {
                return;
            }
            $body(common::Mode::Bridged);
        }
    };
}
