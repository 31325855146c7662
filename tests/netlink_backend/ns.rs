//! A namespace of its own for each test, with a sentinel table of someone else's in it.

use super::T;
use crate::common::{self, netns_or_skip};
use secgroupd::compile::plan::Family;
use secgroupd::nft::netlink::NetlinkBackend;

/// A table of someone else's, with names that collide with secgroupd's (in both
/// families): nothing secgroupd does may change it.
const OTHER_TABLES: &str = r#"
table inet other {
    set m4_1 { type ipv4_addr; elements = { 192.0.2.1 } }
    map dispatch_out { type ifname : verdict; elements = { "tap1" : jump grp_1 } }
    chain hook_forward { type filter hook forward priority 10; policy accept; }
    chain grp_1 {
        ip saddr @m4_1 counter accept comment "other rule"
    }
    chain inst_1 {
        oifname "eth9" jump grp_1
    }
}
table bridge other {
    map spoof_in { type ifname : verdict; elements = { "tap1" : jump spoof_1 } }
    chain spoof_1 { ip saddr 192.0.2.1 accept; }
}
"#;

/// A fresh namespace (deleted on drop, also when the test panics) with the sentinel
/// tables in it, or `None` when `SECGROUPD_SKIP_NETNS=1` asks to skip. Without root the
/// test fails.
pub struct Ns {
    pub ns: common::Netns,
    other: String,
}

impl Ns {
    pub fn new() -> Option<Ns> {
        if !netns_or_skip() {
            return None;
        }
        let mut ns = Ns {
            ns: common::Netns::new("nl"),
            other: String::new(),
        };
        ns.nft_script(OTHER_TABLES);
        ns.other = ns.others();
        Some(ns)
    }

    fn others(&self) -> String {
        self.nft(&["-s", "list", "table", "inet", "other"])
            + &self.nft(&["-s", "list", "table", "bridge", "other"])
    }

    /// Runs nft in the namespace and returns its output; panics if it fails.
    pub fn nft(&self, args: &[&str]) -> String {
        let mut full = vec!["nft"];
        full.extend_from_slice(args);
        self.ns.exec(&full)
    }

    /// Feeds a script to `nft -f -` in the namespace.
    pub fn nft_script(&self, script: &str) {
        self.ns.exec_with_stdin(&["nft", "-f", "-"], script);
    }

    /// `nft list table FAMILY secgroupd`.
    pub fn list(&self, family: Family) -> String {
        self.nft(&["list", "table", family.as_str(), T])
    }

    /// Runs `f` with a backend opened on a thread inside the namespace (a netlink socket
    /// belongs to the namespace it is created in).
    pub fn run<R: Send>(&self, f: impl FnOnce(&mut NetlinkBackend) -> R + Send) -> R {
        in_netns(&self.ns, f)
    }

    /// Asserts that the sentinel tables are as they were.
    pub fn check_other(&self) {
        assert_eq!(self.others(), self.other, "someone else's tables changed");
    }
}

/// Runs `f` with a backend in `ns`.
pub fn in_netns<R: Send>(ns: &common::Netns, f: impl FnOnce(&mut NetlinkBackend) -> R + Send) -> R {
    ns.enter(|| f(&mut NetlinkBackend::new().expect("netlink socket")))
}
