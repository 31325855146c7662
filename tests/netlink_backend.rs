//! The netlink backend against the real kernel. Each test runs in a network namespace of
//! its own (`sgd-nl-<pid>-<n>`), deleted at the end even when the test panics, so the
//! host's ruleset is never touched. Needs root, `ip` and `nft`; without them the tests fail,
//! unless `SECGROUPD_SKIP_NETNS=1` is set, in which case they return early with a notice.
//!
//! Every test also puts a table `inet other` into its namespace, with chain and set names
//! that collide with secgroupd's, and checks at the end that nothing changed it.

use secgroupd::compile::plan::{
    BaseChain, ChainName, ChainSpec, Elem, Hook, IpFamily, Match, RuleId, RuleSpec, SetName,
    SetSpec, Verdict, ct_state,
};
use secgroupd::nft::netlink::NetlinkBackend;
use secgroupd::nft::{Backend, KernelTable, NftError, Op, Position};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

const T: &str = "secgroupd";

// ---------------------------------------------------------------------------------------
// Namespaces

static NEXT_NS: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
struct Netns {
    name: String,
    other: String,
}

impl Netns {
    /// A fresh namespace with the sentinel table in it, or `None` when skipping is asked for.
    fn new() -> Option<Netns> {
        if std::env::var("SECGROUPD_SKIP_NETNS").as_deref() == Ok("1") {
            eprintln!("SECGROUPD_SKIP_NETNS=1: skipping a netlink backend test");
            return None;
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "netlink backend tests need root (SECGROUPD_SKIP_NETNS=1 skips them)"
        );
        let n = NEXT_NS.fetch_add(1, Ordering::Relaxed);
        let name = format!("sgd-nl-{}-{n}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("cannot run `ip` (SECGROUPD_SKIP_NETNS=1 skips these tests)");
        assert!(st.success(), "ip netns add {name} failed");
        let mut ns = Netns {
            name,
            other: String::new(),
        };
        ns.nft_script(OTHER_TABLE);
        ns.other = ns.nft(&["list", "table", "inet", "other"]);
        Some(ns)
    }

    /// Runs nft in the namespace and returns its output; panics if it fails.
    fn nft(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft"])
            .args(args)
            .output()
            .expect("cannot run nft");
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("nft output is UTF-8")
    }

    /// Feeds a script to `nft -f -` in the namespace.
    fn nft_script(&self, script: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run nft");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(script.as_bytes()).expect("write to nft");
        drop(stdin);
        let out = child.wait_with_output().expect("nft -f");
        assert!(
            out.status.success(),
            "nft -f: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn list(&self) -> String {
        self.nft(&["list", "table", "inet", T])
    }

    /// Moves the calling thread into the namespace and opens a backend there (a netlink
    /// socket belongs to the namespace it is created in). Only for threads of our own.
    fn enter(&self) -> NetlinkBackend {
        let ns = File::open(format!("/var/run/netns/{}", self.name)).expect("open netns");
        // SAFETY: a valid namespace fd; only the calling thread changes namespace.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        NetlinkBackend::new().expect("netlink socket")
    }

    /// Runs `f` with a backend on a thread inside the namespace.
    fn run<R: Send>(&self, f: impl FnOnce(&mut NetlinkBackend) -> R + Send) -> R {
        std::thread::scope(|s| {
            let h = s.spawn(|| f(&mut self.enter()));
            match h.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }

    /// Asserts that the sentinel table is as it was.
    fn check_other(&self) {
        assert_eq!(self.nft(&["list", "table", "inet", "other"]), self.other);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A table of someone else's, with names that collide with secgroupd's.
const OTHER_TABLE: &str = r#"
table inet other {
    set m4_1 { type ipv4_addr; elements = { 192.0.2.1 } }
    chain hook_forward { type filter hook forward priority 10; policy accept; }
    chain grp_1 {
        ip saddr @m4_1 counter accept comment "other rule"
    }
    chain dispatch {
        oifname "eth9" jump grp_1
    }
}
"#;

// ---------------------------------------------------------------------------------------
// Building operations

fn chain(name: ChainName, base: Option<(Hook, i32)>) -> Op {
    Op::AddChain(ChainSpec {
        name,
        base: base.map(|(hook, priority)| BaseChain { hook, priority }),
    })
}

fn set(name: SetName) -> Op {
    Op::AddSet(SetSpec {
        name,
        key: name.key_type(),
    })
}

fn rule(chain: ChainName, id: RuleId, matches: Vec<Match>, verdict: Verdict) -> RuleSpec {
    RuleSpec {
        chain,
        id,
        matches,
        counter: true,
        verdict,
        comment: format!("{chain} {id}"),
    }
}

fn append(r: RuleSpec) -> Op {
    Op::AddRule(r, Position::Append)
}

const G1: ChainName = ChainName::Group(1);
const G2: ChainName = ChainName::Group(2);
const I1: ChainName = ChainName::Instance(1);
const M4: SetName = SetName::Members(IpFamily::V4, 1);
const M6: SetName = SetName::Members(IpFamily::V6, 1);

fn v4() -> Match {
    Match::NfProto(IpFamily::V4)
}
fn v6() -> Match {
    Match::NfProto(IpFamily::V6)
}
fn net(s: &str) -> Match {
    Match::Saddr(s.parse().expect("net"))
}

/// Every chain kind, set kind and match kind. Rules of different chains are interleaved
/// in the batch, so that handles matched to rules by batch order would show.
fn full_table() -> Vec<Op> {
    use RuleId::{Dispatch, Grant, Head, Jump, Tail};
    let est = ct_state::ESTABLISHED | ct_state::RELATED;
    let mut ops = vec![
        Op::AddTable,
        chain(ChainName::Forward, Some((Hook::Forward, 0))),
        chain(ChainName::Output, Some((Hook::Output, -5))),
        chain(ChainName::Dispatch, None),
        chain(G1, None),
        chain(G2, None),
        chain(I1, None),
        set(SetName::PairProtos),
        set(M4),
        set(M6),
        Op::AddElems(
            SetName::PairProtos,
            vec![
                Elem::Proto(6),
                Elem::Proto(17),
                Elem::Proto(1),
                Elem::Proto(58),
            ],
        ),
        Op::AddElems(
            M4,
            vec![
                Elem::V4("10.0.0.1".parse().unwrap()),
                Elem::V4("10.0.0.2".parse().unwrap()),
            ],
        ),
        Op::AddElems(M6, vec![Elem::V6("2001:db8::1".parse().unwrap())]),
    ];
    let rules = vec![
        rule(
            ChainName::Forward,
            Head(0),
            vec![Match::CtState(est)],
            Verdict::Accept,
        ),
        rule(
            G1,
            Grant(1),
            vec![
                v4(),
                net("10.0.0.0/8"),
                Match::L4Proto(6),
                Match::Dport { from: 80, to: 90 },
            ],
            Verdict::Accept,
        ),
        rule(
            ChainName::Forward,
            Head(1),
            vec![],
            Verdict::Jump(ChainName::Dispatch),
        ),
        rule(
            G1,
            Grant(2),
            vec![
                v6(),
                net("2001:db8::/32"),
                Match::L4Proto(17),
                Match::Dport { from: 53, to: 53 },
            ],
            Verdict::Accept,
        ),
        rule(
            ChainName::Output,
            Head(0),
            vec![],
            Verdict::Jump(ChainName::Dispatch),
        ),
        rule(
            G1,
            Grant(3),
            vec![
                v4(),
                Match::L4Proto(1),
                Match::IcmpType(8),
                Match::IcmpCode(0),
            ],
            Verdict::Accept,
        ),
        rule(
            ChainName::Dispatch,
            Dispatch(1),
            vec![Match::Oifname("veth-sg1".into())],
            Verdict::Jump(I1),
        ),
        rule(
            G1,
            Grant(4),
            vec![v6(), Match::L4Proto(58), Match::IcmpType(128)],
            Verdict::Accept,
        ),
        rule(I1, Jump(1), vec![], Verdict::Jump(G1)),
        rule(
            G1,
            Grant(5),
            vec![
                v4(),
                Match::SaddrIn(IpFamily::V4, M4),
                Match::L4ProtoIn(SetName::PairProtos),
            ],
            Verdict::Accept,
        ),
        rule(I1, Jump(2), vec![], Verdict::Jump(G2)),
        rule(
            G1,
            Grant(6),
            vec![v6(), Match::SaddrIn(IpFamily::V6, M6)],
            Verdict::Accept,
        ),
        rule(I1, Tail(0), vec![], Verdict::Drop),
        rule(
            G1,
            Grant(7),
            vec![v4(), net("10.1.2.3/32")],
            Verdict::Accept,
        ),
        rule(
            G2,
            Grant(8),
            vec![Match::L4Proto(6), Match::Dport { from: 22, to: 22 }],
            Verdict::Accept,
        ),
        rule(
            G1,
            Grant(9),
            vec![v4(), net("172.16.0.0/12")],
            Verdict::Accept,
        ),
        rule(
            G1,
            Grant(10),
            vec![
                v6(),
                net("2001:db8:1:2::/64"),
                Match::L4ProtoIn(SetName::PairProtos),
                Match::Dport {
                    from: 1000,
                    to: 2000,
                },
            ],
            Verdict::Accept,
        ),
    ];
    ops.extend(rules.into_iter().map(append));
    ops
}

const FULL_TABLE_LISTING: &str = "\
table inet secgroupd {\n\
\tset pair_protos {\n\
\t\ttype inet_proto\n\
\t\telements = { icmp, tcp, udp, ipv6-icmp }\n\
\t}\n\
\n\
\tset m4_1 {\n\
\t\ttype ipv4_addr\n\
\t\telements = { 10.0.0.1, 10.0.0.2 }\n\
\t}\n\
\n\
\tset m6_1 {\n\
\t\ttype ipv6_addr\n\
\t\telements = { 2001:db8::1 }\n\
\t}\n\
\n\
\tchain hook_forward {\n\
\t\ttype filter hook forward priority filter; policy accept;\n\
\t\tct state established,related counter packets 0 bytes 0 accept comment \"hook_forward head 0\"\n\
\t\tcounter packets 0 bytes 0 jump dispatch comment \"hook_forward head 1\"\n\
\t}\n\
\n\
\tchain hook_output {\n\
\t\ttype filter hook output priority filter - 5; policy accept;\n\
\t\tcounter packets 0 bytes 0 jump dispatch comment \"hook_output head 0\"\n\
\t}\n\
\n\
\tchain dispatch {\n\
\t\toifname \"veth-sg1\" counter packets 0 bytes 0 jump inst_1 comment \"dispatch instance 1\"\n\
\t}\n\
\n\
\tchain grp_1 {\n\
\t\tip saddr 10.0.0.0/8 tcp dport 80-90 counter packets 0 bytes 0 accept comment \"grp_1 grant 1\"\n\
\t\tip6 saddr 2001:db8::/32 udp dport 53 counter packets 0 bytes 0 accept comment \"grp_1 grant 2\"\n\
\t\ticmp type echo-request icmp code net-unreachable counter packets 0 bytes 0 accept comment \"grp_1 grant 3\"\n\
\t\ticmpv6 type echo-request counter packets 0 bytes 0 accept comment \"grp_1 grant 4\"\n\
\t\tip saddr @m4_1 meta l4proto @pair_protos counter packets 0 bytes 0 accept comment \"grp_1 grant 5\"\n\
\t\tip6 saddr @m6_1 counter packets 0 bytes 0 accept comment \"grp_1 grant 6\"\n\
\t\tip saddr 10.1.2.3 counter packets 0 bytes 0 accept comment \"grp_1 grant 7\"\n\
\t\tip saddr 172.16.0.0/12 counter packets 0 bytes 0 accept comment \"grp_1 grant 9\"\n\
\t\tip6 saddr 2001:db8:1:2::/64 meta l4proto @pair_protos th dport 1000-2000 counter packets 0 bytes 0 accept comment \"grp_1 grant 10\"\n\
\t}\n\
\n\
\tchain grp_2 {\n\
\t\ttcp dport 22 counter packets 0 bytes 0 accept comment \"grp_2 grant 8\"\n\
\t}\n\
\n\
\tchain inst_1 {\n\
\t\tcounter packets 0 bytes 0 jump grp_1 comment \"inst_1 group 1\"\n\
\t\tcounter packets 0 bytes 0 jump grp_2 comment \"inst_1 group 2\"\n\
\t\tcounter packets 0 bytes 0 drop comment \"inst_1 tail 0\"\n\
\t}\n\
}\n\
";

/// Handles of each chain's rules by comment, from a dump.
fn handle_of(t: &KernelTable, comment: &str) -> u64 {
    t.chains
        .iter()
        .flat_map(|c| &c.rules)
        .find(|r| r.comment.as_deref() == Some(comment))
        .unwrap_or_else(|| panic!("no rule {comment:?}"))
        .handle
}

fn rule_handles(t: &KernelTable, chain: &str) -> Vec<u64> {
    let c = t.chains.iter().find(|c| c.name == chain).expect("chain");
    c.rules.iter().map(|r| r.handle).collect()
}

fn comments(t: &KernelTable, chain: &str) -> Vec<String> {
    let c = t.chains.iter().find(|c| c.name == chain).expect("chain");
    c.rules
        .iter()
        .map(|r| r.comment.clone().unwrap_or_default())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn full_table_lists_idiomatically_and_rereads() {
    let Some(ns) = Netns::new() else { return };
    let ops = full_table();
    ns.run(|b| b.commit(T, &ops, None).expect("commit"));
    let listing = ns.list();
    println!("{listing}");
    assert_eq!(listing, FULL_TABLE_LISTING);

    // nft can read its own listing back (no chain or set name trips its parser).
    ns.nft(&["delete", "table", "inet", T]);
    ns.nft_script(&listing);
    assert_eq!(ns.list(), listing);
    ns.check_other();
}

#[test]
fn dump_reads_back_what_was_committed() {
    let Some(ns) = Netns::new() else { return };
    let ops = full_table();
    let (missing, committed, t, again) = ns.run(|b| {
        let missing = b.dump(T).expect("dump of a missing table");
        let committed = b.commit(T, &ops, None).expect("commit");
        let t = b.dump(T).expect("dump");
        let again = b.dump(T).expect("dump");
        (missing, committed, t, again)
    });
    assert!(!missing.exists);
    assert!(missing.chains.is_empty() && missing.sets.is_empty());
    assert!(missing.genid > 0);
    assert!(t.exists);
    assert_ne!(t.genid, missing.genid, "a commit moves the generation");
    assert_eq!(again, t, "nothing changed, same dump");

    let names: Vec<&str> = t.chains.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hook_forward",
            "hook_output",
            "dispatch",
            "grp_1",
            "grp_2",
            "inst_1"
        ]
    );
    let hooks: Vec<_> = t.chains.iter().map(|c| c.hook).collect();
    let (fwd, out) = (libc::NF_INET_FORWARD as u32, libc::NF_INET_LOCAL_OUT as u32);
    let accept = libc::NF_ACCEPT as u32;
    assert_eq!(
        hooks,
        [
            Some((fwd, 0, accept)),
            Some((out, -5, accept)),
            None,
            None,
            None,
            None
        ]
    );

    // Each AddRule's committed handle is the handle of the rule with its comment, though
    // rules of different chains alternate in the batch: echoes are matched by sequence
    // number, not by arrival order.
    let added: Vec<&RuleSpec> = ops
        .iter()
        .filter_map(|o| match o {
            Op::AddRule(r, _) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(committed.handles.len(), added.len());
    for (r, h) in added.iter().zip(&committed.handles) {
        assert_eq!(handle_of(&t, &r.comment), *h, "{}", r.comment);
    }
    // Chain order and comments.
    assert_eq!(
        comments(&t, "inst_1"),
        ["inst_1 group 1", "inst_1 group 2", "inst_1 tail 0"]
    );
    let g1 = comments(&t, "grp_1");
    let want: Vec<String> = [1, 2, 3, 4, 5, 6, 7, 9, 10]
        .iter()
        .map(|n| format!("grp_1 grant {n}"))
        .collect();
    assert_eq!(g1, want);
    let h = rule_handles(&t, "grp_1");
    assert!(
        h.windows(2).all(|w| w[0] < w[1]),
        "appended in order: {h:?}"
    );

    // Sets: key types, lengths, elements as raw keys.
    let find = |n: &str| t.sets.iter().find(|s| s.name == n).expect("set");
    let mut pp = find("pair_protos").clone();
    pp.elems.sort();
    assert_eq!(
        (pp.key_type, pp.key_len, pp.elems.clone()),
        (12, 1, vec![vec![1], vec![6], vec![17], vec![58]])
    );
    let mut m4 = find("m4_1").clone();
    m4.elems.sort();
    assert_eq!(
        (m4.key_type, m4.key_len, m4.elems.clone()),
        (7, 4, vec![vec![10, 0, 0, 1], vec![10, 0, 0, 2]])
    );
    let m6 = find("m6_1");
    let key = "2001:db8::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    assert_eq!(
        (m6.key_type, m6.key_len, m6.elems.clone()),
        (8, 16, vec![key.to_vec()])
    );
    assert_eq!(t.sets.len(), 3);
    for s in &t.sets {
        let kt = SetName::parse(&s.name).expect("our set").key_type();
        for e in &s.elems {
            assert!(Elem::from_key_bytes(kt, e).is_some());
        }
        assert_eq!(s.key_type, kt.nft_type());
    }
    ns.check_other();
}

#[test]
fn adding_again_is_idempotent_and_empty_batches_commit() {
    let Some(ns) = Netns::new() else { return };
    let ops = full_table();
    let (before, after) = ns.run(|b| {
        b.commit(T, &ops, None).expect("commit");
        let before = b.dump(T).expect("dump");
        let again: Vec<Op> = ops
            .iter()
            .filter(|o| !matches!(o, Op::AddRule(..)))
            .cloned()
            .collect();
        b.commit(T, &again, None)
            .expect("re-adding table, chains, sets, elements");
        // (Re-adding may still move the generation: the kernel logs table and chain
        // updates even when they change nothing.)
        let g = b.dump(T).expect("dump").genid;
        b.commit(T, &[], Some(g)).expect("empty batch");
        assert_eq!(
            b.dump(T).expect("dump").genid,
            g,
            "an empty batch is no change"
        );
        (before, b.dump(T).expect("dump"))
    });
    assert_eq!(after.chains, before.chains);
    assert_eq!(after.sets.len(), before.sets.len());
    for (a, b) in after.sets.iter().zip(&before.sets) {
        let (mut x, mut y) = (a.clone(), b.clone());
        x.elems.sort();
        y.elems.sort();
        assert_eq!(x, y);
    }
    ns.check_other();
}

fn simple(chain: ChainName, n: u32) -> RuleSpec {
    let a = std::net::Ipv4Addr::from(0x0a00_0000 + n);
    rule(
        chain,
        RuleId::Grant(n),
        vec![
            v4(),
            Match::Saddr(std::net::IpAddr::V4(a).into()),
            Match::L4Proto(6),
            Match::Dport { from: 80, to: 80 },
        ],
        Verdict::Accept,
    )
}

fn chain_with(chain: ChainName, n: u32) -> Vec<Op> {
    let mut ops = vec![Op::AddTable, self::chain(chain, None)];
    ops.extend((0..n).map(|i| append(simple(chain, i))));
    ops
}

#[test]
fn delete_keeps_other_handles_and_before_inserts_before() {
    let Some(ns) = Netns::new() else { return };
    let (first, after_del, after_ins, inserted) = ns.run(|b| {
        b.commit(T, &chain_with(G1, 5), None).expect("commit");
        let first = b.dump(T).expect("dump");
        let h = rule_handles(&first, "grp_1");
        b.commit(
            T,
            &[Op::DelRule {
                chain: G1,
                handle: h[2],
            }],
            None,
        )
        .expect("delete");
        let after_del = b.dump(T).expect("dump");
        let ops = [
            Op::AddRule(simple(G1, 100), Position::Before(h[0])),
            Op::AddRule(simple(G1, 101), Position::Before(h[3])),
            Op::AddRule(simple(G1, 102), Position::Append),
        ];
        let c = b.commit(T, &ops, None).expect("insert");
        (first, after_del, b.dump(T).expect("dump"), c.handles)
    });
    let h = rule_handles(&first, "grp_1");
    assert_eq!(rule_handles(&after_del, "grp_1"), [h[0], h[1], h[3], h[4]]);
    assert_eq!(
        rule_handles(&after_ins, "grp_1"),
        [
            inserted[0],
            h[0],
            h[1],
            inserted[1],
            h[3],
            h[4],
            inserted[2]
        ]
    );
    assert_eq!(
        comments(&after_ins, "grp_1"),
        [
            "grp_1 grant 100",
            "grp_1 grant 0",
            "grp_1 grant 1",
            "grp_1 grant 101",
            "grp_1 grant 3",
            "grp_1 grant 4",
            "grp_1 grant 102"
        ]
    );
    ns.check_other();
}

#[test]
fn foreign_objects_are_deleted() {
    let Some(ns) = Netns::new() else { return };
    let ops = full_table();
    ns.run(|b| b.commit(T, &ops, None).expect("commit"));
    // Drift: a chain with rules, a set, and a rule in one of our chains, put there by hand.
    ns.nft_script(&format!(
        "table inet {T} {{\n\
         set legacy_set {{ type ipv4_addr; elements = {{ 192.0.2.7 }} }}\n\
         chain legacy {{\n ip saddr 192.0.2.0/24 accept\n tcp dport 25 drop\n }}\n\
         chain dispatch {{\n oifname \"eth7\" accept comment \"hand-made\"\n }}\n\
         }}\n"
    ));
    let (dirty, clean) = ns.run(|b| {
        let dirty = b.dump(T).expect("dump");
        let stray = handle_of(&dirty, "hand-made");
        let ops = [
            Op::DelForeignRule {
                chain: "dispatch".into(),
                handle: stray,
            },
            // DELCHAIN of a chain that still has rules: the kernel deletes them with it.
            Op::DelForeignChain("legacy".into()),
            Op::DelForeignSet("legacy_set".into()),
        ];
        b.commit(T, &ops, None).expect("drift repair");
        (dirty, b.dump(T).expect("dump"))
    });
    assert_eq!(rule_handles(&dirty, "legacy").len(), 2);
    assert!(clean.chains.iter().all(|c| c.name != "legacy"));
    assert!(clean.sets.iter().all(|s| s.name != "legacy_set"));
    assert_eq!(comments(&clean, "dispatch"), ["dispatch instance 1"]);
    ns.check_other();
}

#[test]
fn refused_batches_change_nothing() {
    let Some(ns) = Netns::new() else { return };
    let ops = chain_with(G1, 3);
    let before_listing;
    {
        let t0 = ns.run(|b| {
            b.commit(T, &ops, None).expect("commit");
            b.dump(T).expect("dump")
        });
        before_listing = ns.list();
        let h = rule_handles(&t0, "grp_1");
        let (stale, bad, usable, t1) = ns.run(|b| {
            // Someone else commits in between: our generation is stale.
            let g = b.dump(T).expect("dump").genid;
            let stale = b.commit(
                T,
                &[Op::DelRule {
                    chain: G1,
                    handle: h[0],
                }],
                Some(g.wrapping_sub(1)),
            );
            // A failing message in the middle: the messages before it were fine, yet
            // nothing of the batch stays.
            let bad = b.commit(
                T,
                &[
                    append(simple(G1, 50)),
                    Op::DelRule {
                        chain: G1,
                        handle: h[1],
                    },
                    Op::DelRule {
                        chain: G1,
                        handle: 999_999,
                    },
                    append(simple(G1, 51)),
                ],
                Some(g),
            );
            let t1 = b.dump(T).expect("dump after refusals");
            // Still usable, and the generation did not move.
            let usable = b.commit(T, &[append(simple(G1, 52))], Some(t1.genid));
            (stale, bad, usable, t1)
        });
        assert!(
            matches!(stale, Err(NftError::GenerationChanged)),
            "{stale:?}"
        );
        match bad {
            Err(NftError::Rejected { index, op, source }) => {
                assert_eq!(index, 2, "{op}");
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT), "{op}");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert_eq!(t1, t0, "refused batches changed nothing");
        assert_eq!(usable.expect("commit after refusals").handles.len(), 1);
    }
    let after = ns.list();
    assert_ne!(after, before_listing);
    assert!(after.starts_with(before_listing.trim_end_matches("\t}\n}\n")));
    ns.check_other();
}

#[test]
fn ten_thousand_rules_in_one_batch() {
    let Some(ns) = Netns::new() else { return };
    let ops = chain_with(G1, 10_000);
    let (committed, t) = ns.run(|b| {
        let start = Instant::now();
        let c = b.commit(T, &ops, None).expect("10,000-rule batch");
        println!("commit of 10,000 rules: {:?}", start.elapsed());
        let start = Instant::now();
        let t = b.dump(T).expect("dump");
        println!("dump of 10,000 rules: {:?}", start.elapsed());
        (c, t)
    });
    assert_eq!(committed.handles.len(), 10_000);
    assert_eq!(rule_handles(&t, "grp_1"), committed.handles);
    let c = comments(&t, "grp_1");
    assert_eq!(c[9_999], "grp_1 grant 9999");
    ns.check_other();
}

/// Not a check: prints how long deleting one rule takes, to know the floor of an update.
#[test]
fn measure_single_delete() {
    let Some(ns) = Netns::new() else { return };
    ns.run(|b| {
        for n in [100u32, 10_000] {
            let chain = ChainName::Group(n);
            let c = b.commit(T, &chain_with(chain, n), None).expect("commit");
            let mut times = Vec::new();
            for k in 0..5 {
                let handle = c.handles[(n / 2) as usize + k];
                let start = Instant::now();
                b.commit(T, &[Op::DelRule { chain, handle }], None)
                    .expect("delete");
                times.push(start.elapsed());
            }
            println!("delete 1 rule in a chain of {n}, in order: {times:?}");
            times.sort();
            println!(
                "delete 1 rule in a chain of {n}: median {:?} (min {:?}, max {:?})",
                times[2], times[0], times[4]
            );
            let start = Instant::now();
            b.dump(T).expect("dump");
            println!("dump with a chain of {n}: {:?}", start.elapsed());
        }
    });
    ns.check_other();
}

#[test]
fn what_the_kernel_cannot_take_is_refused_before_sending() {
    let Some(ns) = Netns::new() else { return };
    let (long, ifname, t) = ns.run(|b| {
        let mut r = simple(G1, 1);
        r.comment = "x".repeat(126);
        let long = b.commit(T, &[Op::AddTable, chain(G1, None), append(r)], None);
        let r = rule(
            G1,
            RuleId::Grant(2),
            vec![Match::Oifname("x".repeat(16))],
            Verdict::Drop,
        );
        let ifname = b.commit(T, &[Op::AddTable, chain(G1, None), append(r)], None);
        (long, ifname, b.dump(T).expect("dump"))
    });
    for (res, what) in [(long, "comment"), (ifname, "oifname")] {
        match res {
            Err(NftError::Rejected { index, source, .. }) => {
                assert_eq!(index, 2, "{what}");
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{what}");
            }
            other => panic!("{what}: expected Rejected, got {other:?}"),
        }
    }
    assert!(!t.exists, "nothing was sent");

    // 125 bytes is the longest comment nft's userdata buffer takes.
    let t = ns.run(|b| {
        let mut r = simple(G1, 3);
        r.comment = "y".repeat(125);
        b.commit(T, &[Op::AddTable, chain(G1, None), append(r)], None)
            .expect("125-byte comment");
        b.dump(T).expect("dump")
    });
    assert_eq!(comments(&t, "grp_1"), ["y".repeat(125)]);
    ns.check_other();
}

#[test]
fn many_elements_and_table_deletion() {
    let Some(ns) = Netns::new() else { return };
    let elems: Vec<Elem> = (0..3000u32)
        .map(|i| Elem::V4(std::net::Ipv4Addr::from(0x0a01_0000 + i)))
        .collect();
    let (full, half, gone) = ns.run(|b| {
        let ops = [Op::AddTable, set(M4), Op::AddElems(M4, elems.clone())];
        b.commit(T, &ops, None).expect("3000 elements");
        let full = b.dump(T).expect("dump");
        b.commit(T, &[Op::DelElems(M4, elems[..1500].to_vec())], None)
            .expect("delete 1500");
        let half = b.dump(T).expect("dump");
        b.commit(T, &[Op::DelTable], None).expect("delete table");
        (full, half, b.dump(T).expect("dump"))
    });
    let mut got = full.sets[0].elems.clone();
    got.sort();
    let want: Vec<Vec<u8>> = elems.iter().map(Elem::key_bytes).collect();
    assert_eq!(got, want);
    let mut got = half.sets[0].elems.clone();
    got.sort();
    assert_eq!(got, want[1500..]);
    assert!(!gone.exists && gone.sets.is_empty() && gone.chains.is_empty());
    ns.check_other();
}

#[test]
fn dumps_are_consistent_under_concurrent_commits() {
    let Some(ns) = Netns::new() else { return };
    // Each batch of the writer adds a rule and a set element. Rules and elements are read
    // with separate requests, so only a dump that retries when the generation moved can
    // be sure to see as many of one as of the other.
    const BATCHES: u32 = 200;
    ns.run(|b| {
        let ops = [Op::AddTable, chain(G1, None), set(M4)];
        b.commit(T, &ops, None).expect("setup");
    });
    let done = std::sync::atomic::AtomicBool::new(false);
    let dumps = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut b = ns.enter();
            for i in 0..BATCHES {
                let e = Elem::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                let ops = [append(simple(G1, i)), Op::AddElems(M4, vec![e])];
                b.commit(T, &ops, None).expect("writer commit");
                // A writer that never pauses would keep any multi-request read from
                // finishing (see dump.rs); a busy but real one pauses.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            done.store(true, Ordering::Relaxed);
        });
        let reader = s.spawn(|| {
            let mut b = ns.enter();
            let mut dumps = 0;
            while !done.load(Ordering::Relaxed) {
                let t = b.dump(T).expect("dump");
                let rules = t.chains[0].rules.len();
                assert_eq!(rules, t.sets[0].elems.len(), "inconsistent dump");
                dumps += 1;
            }
            dumps
        });
        writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    println!("{dumps} consistent dumps during {BATCHES} commits");
    assert!(dumps > 0);
    ns.check_other();
}
