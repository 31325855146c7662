//! Building operations and reading dumps, for the tests.

use secgroupd::compile::plan::{
    BaseChain, ChainName, ChainSpec, Elem, Hook, IpFamily, Match, RuleId, RuleSpec, SetName,
    SetSpec, Verdict,
};
use secgroupd::nft::{KernelChain, KernelSet, KernelTable, Op, Position};

pub const G1: ChainName = ChainName::Group(1);
pub const M4: SetName = SetName::Members(IpFamily::V4, 1);
pub const M6: SetName = SetName::Members(IpFamily::V6, 1);

pub fn chain(name: ChainName, base: Option<(Hook, i32)>) -> Op {
    Op::AddChain(ChainSpec {
        name,
        base: base.map(|(hook, priority)| BaseChain { hook, priority }),
    })
}

pub fn set(name: SetName) -> Op {
    Op::AddSet(SetSpec {
        name,
        key: name.key_type(),
    })
}

/// Elements of a plain set.
pub fn elems(set: SetName, e: impl IntoIterator<Item = Elem>) -> Op {
    Op::AddElems(set, e.into_iter().map(|e| (e, None)).collect())
}

/// One verdict map element `key : jump to`.
pub fn map_elem(set: SetName, key: Elem, to: ChainName) -> Op {
    Op::AddElems(set, vec![(key, Some(to))])
}

pub fn ifname(s: &str) -> Elem {
    Elem::ifname(s).expect("interface name")
}

/// A rule with a counter and the comment `"<chain> <id>"`.
pub fn rule(chain: ChainName, id: RuleId, matches: Vec<Match>, verdict: Verdict) -> RuleSpec {
    RuleSpec {
        chain,
        id,
        matches: matches.into(),
        counter: true,
        stmts: Box::new([]),
        verdict,
        comment: format!("{chain} {id}").into(),
    }
}

pub fn append(r: RuleSpec) -> Op {
    Op::AddRule(r, Position::Append)
}

pub fn v4() -> Match {
    Match::NfProto(IpFamily::V4)
}
pub fn v6() -> Match {
    Match::NfProto(IpFamily::V6)
}
pub fn net(s: &str) -> Match {
    Match::Saddr(s.parse().expect("net"))
}

/// `ip saddr 10.0.0.N tcp dport 80 accept` in `chain`.
pub fn simple(chain: ChainName, n: u32) -> RuleSpec {
    let a = std::net::Ipv4Addr::from(0x0a00_0000 + n);
    rule(
        chain,
        RuleId::Grant(n, 0),
        vec![
            v4(),
            Match::Saddr(std::net::IpAddr::V4(a).into()),
            Match::L4Proto(6),
            Match::Dport { from: 80, to: 80 },
        ],
        Verdict::Accept,
    )
}

/// The inet table with one chain of `n` simple rules.
pub fn chain_with(chain: ChainName, n: u32) -> Vec<Op> {
    let mut ops = vec![
        Op::AddTable(secgroupd::compile::plan::Family::Inet),
        self::chain(chain, None),
    ];
    ops.extend((0..n).map(|i| append(simple(chain, i))));
    ops
}

pub fn find_chain<'a>(t: &'a KernelTable, chain: &str) -> &'a KernelChain {
    t.chains
        .iter()
        .find(|c| c.name == chain)
        .unwrap_or_else(|| panic!("no chain {chain} in the {:?} table", t.family))
}

pub fn find_set<'a>(t: &'a KernelTable, set: &str) -> &'a KernelSet {
    t.sets
        .iter()
        .find(|s| s.name == set)
        .unwrap_or_else(|| panic!("no set {set} in the {:?} table", t.family))
}

/// The handle of the rule with this comment.
pub fn handle_of(t: &KernelTable, comment: &str) -> u64 {
    t.chains
        .iter()
        .flat_map(|c| &c.rules)
        .find(|r| r.comment.as_deref() == Some(comment))
        .unwrap_or_else(|| panic!("no rule {comment:?}"))
        .handle
}

pub fn rule_handles(t: &KernelTable, chain: &str) -> Vec<u64> {
    find_chain(t, chain)
        .rules
        .iter()
        .map(|r| r.handle)
        .collect()
}

pub fn comments(t: &KernelTable, chain: &str) -> Vec<String> {
    find_chain(t, chain)
        .rules
        .iter()
        .map(|r| r.comment.clone().unwrap_or_default())
        .collect()
}

/// A set's elements, sorted.
pub fn sorted_elems(s: &KernelSet) -> Vec<(Vec<u8>, Option<String>)> {
    let mut e = s.elems.clone();
    e.sort();
    e
}
