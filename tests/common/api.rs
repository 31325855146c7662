//! Talking to a running daemon in tests: actions with EC2 error codes, the usual set-up
//! steps, and the daemon's rules as the kernel has them.

use super::daemon::{Daemon, DaemonOptions, nft_json};
use super::netns::Netns;
use super::topology::{BridgedTopology, Node, RoutedTopology, Topology};

/// The daemon binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_secgroupd");

/// Calls an action; Ok(body) on HTTP 200, Err(first EC2 error code) otherwise.
pub fn api(d: &Daemon, action: &str, params: &[(&str, &str)]) -> Result<String, String> {
    let r = d.call(action, params).expect("control socket");
    if r.status == 200 {
        assert!(r.body.contains(&format!("<{action}Response")), "{}", r.body);
        Ok(r.body)
    } else {
        Err(r
            .body
            .split("<Code>")
            .nth(1)
            .and_then(|s| s.split("</Code>").next())
            .unwrap_or("(no code)")
            .to_string())
    }
}

/// Calls an action that must succeed.
pub fn ok(d: &Daemon, action: &str, params: &[(&str, &str)]) -> String {
    api(d, action, params).unwrap_or_else(|c| panic!("{action} {params:?}: {c}\n{}", d.log()))
}

/// The parameters of a CIDR permission.
pub fn cidr<'a>(
    group: &'a str,
    proto: &'a str,
    from: &'a str,
    to: &'a str,
    cidr: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("GroupName", group),
        ("IpProtocol", proto),
        ("FromPort", from),
        ("ToPort", to),
        ("CidrIp", cidr),
    ]
}

/// The parameters of a user/group-pair permission (owner 000000000000).
pub fn pair<'a>(group: &'a str, source: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("GroupName", group),
        ("SourceSecurityGroupName", source),
        ("SourceSecurityGroupOwnerId", "000000000000"),
    ]
}

pub fn create_group(d: &Daemon, name: &str) {
    ok(
        d,
        "CreateSecurityGroup",
        &[("GroupName", name), ("GroupDescription", "test group")],
    );
}

/// Registers a node as an instance with both its addresses.
pub fn register(d: &Daemon, id: &str, node: &Node, groups: &[&str]) {
    let v4 = node.v4.to_string();
    let v6 = node.v6.to_string();
    let mut p = vec![
        ("InstanceId", id),
        ("Interface", node.host_if.as_str()),
        ("IpAddress.1", v4.as_str()),
        ("IpAddress.2", v6.as_str()),
    ];
    let names: Vec<String> = (1..=groups.len())
        .map(|i| format!("GroupName.{i}"))
        .collect();
    for (n, g) in names.iter().zip(groups) {
        p.push((n.as_str(), g));
    }
    ok(d, "RegisterInstance", &p);
}

/// `(handle, chain, comment)` of every rule of the daemon's inet table, from `nft -j`.
pub fn handles(d: &Daemon, ns: &Netns) -> Vec<(u64, String, String)> {
    let v = nft_json(ns, d.table());
    let mut out = Vec::new();
    for item in v["nftables"].as_array().expect("nftables array") {
        if let Some(r) = item.get("rule") {
            out.push((
                r["handle"].as_u64().expect("handle"),
                r["chain"].as_str().expect("chain").to_string(),
                r["comment"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out.sort();
    out
}

/// How instances are attached to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Routed,
    Bridged,
}

/// A topology of either kind with its daemon options.
pub enum Topo {
    Routed(RoutedTopology),
    Bridged(BridgedTopology),
}

impl Topo {
    /// Builds the topology; in bridged mode with br_netfilter on in the host namespace.
    pub fn new(mode: Mode, instances: usize) -> Topo {
        match mode {
            Mode::Routed => Topo::Routed(RoutedTopology::new(instances)),
            Mode::Bridged => {
                let t = BridgedTopology::new(instances);
                for key in [
                    "net.bridge.bridge-nf-call-iptables",
                    "net.bridge.bridge-nf-call-ip6tables",
                ] {
                    t.host.set_sysctl(key, "1");
                }
                Topo::Bridged(t)
            }
        }
    }
    pub fn mode(&self) -> Mode {
        match self {
            Topo::Routed(_) => Mode::Routed,
            Topo::Bridged(_) => Mode::Bridged,
        }
    }
    pub fn t(&self) -> &dyn Topology {
        match self {
            Topo::Routed(t) => t,
            Topo::Bridged(t) => t,
        }
    }
    pub fn host(&self) -> &Netns {
        self.t().host()
    }
    pub fn instance(&self, k: usize) -> &Node {
        self.t().instance(k)
    }
    pub fn client(&self) -> &Node {
        self.t().client()
    }
    pub fn client2(&self) -> &Node {
        self.t().client2()
    }
    /// Daemon options for this mode, with extra config lines.
    pub fn options(&self, extra: &[&str]) -> DaemonOptions {
        let mut o = DaemonOptions::default();
        if self.mode() == Mode::Bridged {
            o.extra_config.push("mode = \"bridged\"".into());
        }
        o.extra_config.extend(extra.iter().map(|s| s.to_string()));
        // SECGROUPD_TEST_LOG=debug turns on the daemon's debug log in every test.
        if let Ok(level) = std::env::var("SECGROUPD_TEST_LOG") {
            o.env.push(("SECGROUPD_LOG".into(), level));
        }
        o
    }
    /// Starts the daemon in the host namespace.
    pub fn daemon(&self, extra: &[&str]) -> Daemon {
        Daemon::start(BIN, self.host(), self.options(extra))
    }
}
