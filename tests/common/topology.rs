//! Test networks made of namespaces and veth pairs. Everything lives in namespaces the
//! topology owns; veth pairs are created inside the host namespace with their peer moved
//! straight into the node's namespace, so nothing ever appears in the root namespace.
//!
//! * [`RoutedTopology`]: the host namespace routes between point-to-point links, one per
//!   instance (`tapK`) and client (`cl0`, `cl1`). The daemon filters on the `tapK` side.
//! * [`BridgedTopology`]: the host namespace has a Linux bridge `br0`; instances and
//!   clients are bridge ports on one L2 segment.
//!
//! Both expose the same node API ([`Topology`], [`Node`]).

use super::netns::Netns;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// One end system (instance or client) attached to the host.
#[derive(Debug)]
pub struct Node {
    /// `inst1`, `inst2`, ..., `client`, `client2`.
    pub role: String,
    /// The node's own namespace.
    pub ns: Netns,
    /// Interface in the host namespace leading to this node (`tap1`, `cl0`, ...).
    pub host_if: String,
    /// Interface inside the node's namespace (`eth0`).
    pub ifname: String,
    /// The node's addresses on `ifname`.
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    /// The host's address facing this node (the node's default gateway): on `host_if`
    /// in the routed topology, on `br0` in the bridged one.
    pub host_v4: Ipv4Addr,
    pub host_v6: Ipv6Addr,
    pub prefix_v4: u8,
    pub prefix_v6: u8,
}

impl Node {
    /// The node's IPv4 (`v6 == false`) or IPv6 address.
    pub fn addr(&self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(self.v6)
        } else {
            IpAddr::V4(self.v4)
        }
    }

    /// Both addresses, IPv4 first.
    pub fn addrs(&self) -> [IpAddr; 2] {
        [self.addr(false), self.addr(true)]
    }

    /// MAC address of `ifname` inside the node.
    pub fn mac(&self) -> String {
        link_mac(&self.ns, &self.ifname)
    }

    /// `ip` command (run in the host namespace) creating the veth pair: host end
    /// `host_if` with ifindex `host_index`, peer `ifname` created directly inside the
    /// node's namespace with ifindex [`NODE_IFINDEX`].
    ///
    /// Explicit, different indexes on the two ends matter: when a veth's ifindex equals
    /// its peer's (easy across namespaces, which number from 1 each), the kernel treats
    /// its carrier change as non-urgent and delays it by up to 1 s.
    fn veth_cmd(&self, host_index: usize) -> String {
        format!(
            "link add {} index {host_index} type veth peer name {} netns {} index {NODE_IFINDEX}",
            self.host_if,
            self.ifname,
            self.ns.name()
        )
    }

    /// Addresses, link up and default routes inside the node.
    fn configure(&self) {
        let c = vec![
            format!(
                "addr add {}/{} dev {}",
                self.v4, self.prefix_v4, self.ifname
            ),
            format!(
                "addr add {}/{} dev {} nodad",
                self.v6, self.prefix_v6, self.ifname
            ),
            format!("link set {} up", self.ifname),
            format!("route add 0.0.0.0/0 via {}", self.host_v4),
            format!("route add ::/0 via {}", self.host_v6),
        ];
        self.ns
            .ip_batch(&c)
            .unwrap_or_else(|e| panic!("configuring {}: {e}", self.role));
    }
}

/// Waits until each of `devs` in `ns` has carrier and a usable (non-tentative) IPv6
/// link-local address. Carrier comes up asynchronously after `link set up`, and only
/// then does the kernel add the link-local address and the `fe80::/64` route; neighbor
/// discovery needs both, and a first packet sent earlier costs a 1 s ND retransmission.
pub fn wait_links_ready(ns: &Netns, devs: &[&str]) {
    let ready = || {
        let Ok(out) = ns.ip(&["-o", "-6", "addr", "show", "scope", "link"]) else {
            return false;
        };
        devs.iter().all(|dev| {
            out.lines().any(|l| {
                let mut w = l.split_whitespace();
                let name = w.nth(1).unwrap_or("");
                let name = name.split('@').next().unwrap_or("").trim_end_matches(':');
                name == *dev && !l.contains("tentative")
            })
        })
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while !ready() {
        if Instant::now() >= deadline {
            panic!(
                "{}: links {devs:?} not ready after 5 s:\n{}",
                ns.name(),
                ns.ip(&["addr"]).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// ifindex of the interface inside each node (`eth0`; `lo` is 1).
pub const NODE_IFINDEX: usize = 2;
/// ifindex of the first host-side veth end; the others follow in [`Topology::nodes`]
/// order.
pub const HOST_IFINDEX_BASE: usize = 100;

/// MAC address of `dev` in `ns`.
pub fn link_mac(ns: &Netns, dev: &str) -> String {
    let out = ns
        .ip(&["-o", "link", "show", "dev", dev])
        .unwrap_or_else(|e| panic!("{e}"));
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC for {dev} in {}: {out}", ns.name()))
        .to_string()
}

/// Common view of the topologies.
pub trait Topology {
    /// The hypervisor namespace, where the daemon runs and filters.
    fn host(&self) -> &Netns;
    /// Instances, in order (`inst1` first).
    fn instances(&self) -> &[Node];
    fn client(&self) -> &Node;
    fn client2(&self) -> &Node;
    /// Instance `k`, 1-based like the addressing (`10.1.k.2`).
    fn instance(&self, k: usize) -> &Node {
        let all = self.instances();
        assert!(
            (1..=all.len()).contains(&k),
            "instance {k} out of 1..={}",
            all.len()
        );
        &all[k - 1]
    }
    /// Every node: instances, then client, then client2.
    fn nodes(&self) -> Vec<&Node> {
        let mut v: Vec<&Node> = self.instances().iter().collect();
        v.push(self.client());
        v.push(self.client2());
        v
    }
    /// Names of every namespace of the topology (host first).
    fn netns_names(&self) -> Vec<String> {
        let mut v = vec![self.host().name().to_string()];
        v.extend(self.nodes().iter().map(|n| n.ns.name().to_string()));
        v
    }
}

/// Turns off IPv6 duplicate address detection for interfaces created from now on in
/// `ns`. Without this, link-local addresses stay tentative for ~1-2 s and neighbor
/// discovery (which sends from the link-local address) fails until then. Global
/// addresses are added with `nodad` as well.
fn no_dad(ns: &Netns) {
    ns.set_sysctl("net.ipv6.conf.default.accept_dad", "0");
    ns.set_sysctl("net.ipv6.conf.all.accept_dad", "0");
}

/// A node's namespace, ready for its interface.
fn node_netns(role: &str) -> Netns {
    let ns = Netns::new(role);
    no_dad(&ns);
    ns
}

fn enable_forwarding(host: &Netns) {
    no_dad(host);
    host.set_sysctl("net.ipv4.ip_forward", "1");
    host.set_sysctl("net.ipv6.conf.all.forwarding", "1");
}

fn check_instances(n: usize, max: usize) {
    assert!(
        (1..=max).contains(&n),
        "number of instances must be 1..={max}, got {n}"
    );
}

/// Routed (L3) topology:
///
/// ```text
///  client  10.9.0.2 eth0 ── cl0  10.9.0.1 ┐
///  client2 10.9.1.2 eth0 ── cl1  10.9.1.1 ┤ host (forwarding on)
///  inst1   10.1.1.2 eth0 ── tap1 10.1.1.1 ┤
///  instK   10.1.K.2 eth0 ── tapK 10.1.K.1 ┘
/// ```
///
/// IPv6 likewise: `fd00:1:K::2` / `fd00:1:K::1`, client `fd00:9::2` / `fd00:9::1`,
/// client2 `fd00:9:1::2` / `fd00:9:1::1`; all /64 with `nodad`. Every node's default
/// routes point at the host.
#[derive(Debug)]
pub struct RoutedTopology {
    pub host: Netns,
    pub instances: Vec<Node>,
    pub client: Node,
    pub client2: Node,
}

impl RoutedTopology {
    /// Builds the topology with `n` instances (1..=250). Panics on any failure; whatever
    /// was created is removed again.
    pub fn new(n: usize) -> RoutedTopology {
        check_instances(n, 250);
        let host = Netns::new("host");
        enable_forwarding(&host);
        let p2p = |role: String, host_if: String, v4: [u8; 3], v6: [u16; 3]| {
            let net6 = |last| Ipv6Addr::new(v6[0], v6[1], v6[2], 0, 0, 0, 0, last);
            Node {
                ns: node_netns(&role),
                role,
                host_if,
                ifname: "eth0".into(),
                v4: Ipv4Addr::new(v4[0], v4[1], v4[2], 2),
                v6: net6(2),
                host_v4: Ipv4Addr::new(v4[0], v4[1], v4[2], 1),
                host_v6: net6(1),
                prefix_v4: 24,
                prefix_v6: 64,
            }
        };
        let instances: Vec<Node> = (1..=n)
            .map(|k| {
                p2p(
                    format!("inst{k}"),
                    format!("tap{k}"),
                    [10, 1, k as u8],
                    [0xfd00, 1, k as u16],
                )
            })
            .collect();
        let client = p2p("client".into(), "cl0".into(), [10, 9, 0], [0xfd00, 9, 0]);
        let client2 = p2p("client2".into(), "cl1".into(), [10, 9, 1], [0xfd00, 9, 1]);
        let topo = RoutedTopology {
            host,
            instances,
            client,
            client2,
        };
        let mut host_cmds = Vec::new();
        for (i, node) in topo.nodes().into_iter().enumerate() {
            host_cmds.push(node.veth_cmd(HOST_IFINDEX_BASE + i));
            host_cmds.push(format!(
                "addr add {}/{} dev {}",
                node.host_v4, node.prefix_v4, node.host_if
            ));
            host_cmds.push(format!(
                "addr add {}/{} dev {} nodad",
                node.host_v6, node.prefix_v6, node.host_if
            ));
            host_cmds.push(format!("link set {} up", node.host_if));
        }
        topo.host
            .ip_batch(&host_cmds)
            .unwrap_or_else(|e| panic!("configuring host: {e}"));
        for node in topo.nodes() {
            node.configure();
        }
        let host_ifs: Vec<&str> = topo.nodes().iter().map(|n| n.host_if.as_str()).collect();
        wait_links_ready(&topo.host, &host_ifs);
        for node in topo.nodes() {
            wait_links_ready(&node.ns, &[&node.ifname]);
        }
        topo
    }

    /// Instance `k` (1-based).
    pub fn instance(&self, k: usize) -> &Node {
        Topology::instance(self, k)
    }
}

impl Topology for RoutedTopology {
    fn host(&self) -> &Netns {
        &self.host
    }
    fn instances(&self) -> &[Node] {
        &self.instances
    }
    fn client(&self) -> &Node {
        &self.client
    }
    fn client2(&self) -> &Node {
        &self.client2
    }
}

/// Bridged (L2) topology: one segment `10.2.0.0/24`, `fd00:2::/64`.
///
/// ```text
///                 host: br0 10.2.0.1 / fd00:2::1
///      ┌──────────────┬───────┴──────┬──────────────┐
///     tap1 ...       tapK           cl0            cl1        (bridge ports)
///   inst1 10.2.0.11  instK 10.2.0.(10+K)  client 10.2.0.100  client2 10.2.0.101
/// ```
///
/// IPv6: `fd00:2::<same last number>` (e.g. inst1 `fd00:2::11`, client `fd00:2::100`).
/// Default routes point at `br0`'s address. STP and multicast snooping are off.
#[derive(Debug)]
pub struct BridgedTopology {
    pub host: Netns,
    /// Name of the bridge in the host namespace (`br0`).
    pub bridge: String,
    pub bridge_v4: Ipv4Addr,
    pub bridge_v6: Ipv6Addr,
    pub instances: Vec<Node>,
    pub client: Node,
    pub client2: Node,
}

impl BridgedTopology {
    /// Builds the topology with `n` instances (1..=80).
    pub fn new(n: usize) -> BridgedTopology {
        check_instances(n, 80);
        let host = Netns::new("bhost");
        enable_forwarding(&host);
        let bridge_v4 = Ipv4Addr::new(10, 2, 0, 1);
        let bridge_v6: Ipv6Addr = "fd00:2::1".parse().unwrap();
        let port = |role: String, host_if: String, last: u8| Node {
            ns: node_netns(&role),
            role,
            host_if,
            ifname: "eth0".into(),
            v4: Ipv4Addr::new(10, 2, 0, last),
            v6: format!("fd00:2::{last}").parse().unwrap(),
            host_v4: bridge_v4,
            host_v6: bridge_v6,
            prefix_v4: 24,
            prefix_v6: 64,
        };
        let instances: Vec<Node> = (1..=n)
            .map(|k| port(format!("inst{k}"), format!("tap{k}"), 10 + k as u8))
            .collect();
        let client = port("client".into(), "cl0".into(), 100);
        let client2 = port("client2".into(), "cl1".into(), 101);
        let topo = BridgedTopology {
            host,
            bridge: "br0".into(),
            bridge_v4,
            bridge_v6,
            instances,
            client,
            client2,
        };
        let br = &topo.bridge;
        let mut host_cmds = vec![
            format!("link add {br} type bridge stp_state 0 mcast_snooping 0"),
            format!("addr add {bridge_v4}/24 dev {br}"),
            format!("addr add {bridge_v6}/64 dev {br} nodad"),
            format!("link set {br} up"),
        ];
        for (i, node) in topo.nodes().into_iter().enumerate() {
            host_cmds.push(node.veth_cmd(HOST_IFINDEX_BASE + i));
            host_cmds.push(format!("link set {} master {br}", node.host_if));
            host_cmds.push(format!("link set {} up", node.host_if));
        }
        topo.host
            .ip_batch(&host_cmds)
            .unwrap_or_else(|e| panic!("configuring host: {e}"));
        for node in topo.nodes() {
            node.configure();
        }
        wait_links_ready(&topo.host, &[br]);
        for node in topo.nodes() {
            wait_links_ready(&node.ns, &[&node.ifname]);
        }
        topo
    }

    /// Instance `k` (1-based).
    pub fn instance(&self, k: usize) -> &Node {
        Topology::instance(self, k)
    }
}

impl Topology for BridgedTopology {
    fn host(&self) -> &Netns {
        &self.host
    }
    fn instances(&self) -> &[Node] {
        &self.instances
    }
    fn client(&self) -> &Node {
        &self.client
    }
    fn client2(&self) -> &Node {
        &self.client2
    }
}

/// Runs `f` and returns its result with the elapsed time (for timing reports).
pub fn timed<R>(f: impl FnOnce() -> R) -> (R, std::time::Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}
