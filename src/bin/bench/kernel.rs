//! Reading a secgroupd table back from the kernel (through the library's netlink dump)
//! and finding its grant rules by their comments, never by assuming chain names, so the
//! benchmark keeps working when the layout changes (shards, verdict maps, more chains).

use super::netns::Netns;
use anyhow::{Context, Result, anyhow, bail};
use secgroupd::nft::netlink::NetlinkBackend;
use secgroupd::nft::{Backend, KernelTable};
use std::collections::BTreeMap;

/// A rule in the kernel.
#[derive(Debug, Clone)]
pub struct RuleRef {
    pub chain: String,
    pub handle: u64,
    pub comment: String,
}

/// What the kernel holds.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub chains: usize,
    pub rules: usize,
    pub set_elements: usize,
}

/// Reads secgroupd's table in the namespace through netlink.
pub fn dump(ns: &Netns, table: &str) -> Result<KernelTable> {
    let table = table.to_string();
    ns.enter(move || -> Result<KernelTable> {
        let mut b = NetlinkBackend::new().context("opening netlink")?;
        Ok(b.dump(&table, secgroupd::compile::plan::Family::Inet)?)
    })?
}

pub fn summary(t: &KernelTable) -> Summary {
    Summary {
        chains: t.chains.len(),
        rules: t.chains.iter().map(|c| c.rules.len()).sum(),
        set_elements: t.sets.iter().map(|s| s.elems.len()).sum(),
    }
}

/// Grant rules by group (`<owner>/<name>`), each list in chain order. Comments read
/// `grant <id>: <owner>/<name> <permission> #<fingerprint>`.
pub fn grant_rules_by_group(t: &KernelTable) -> BTreeMap<String, Vec<RuleRef>> {
    let mut out: BTreeMap<String, Vec<RuleRef>> = BTreeMap::new();
    for c in &t.chains {
        for r in &c.rules {
            let Some(comment) = r.comment.as_deref() else {
                continue;
            };
            if !comment.starts_with("grant") {
                continue;
            }
            let Some(group) = comment
                .split_once(": ")
                .and_then(|(_, rest)| rest.split(' ').next())
            else {
                continue;
            };
            out.entry(group.to_string()).or_default().push(RuleRef {
                chain: c.name.clone(),
                handle: r.handle,
                comment: comment.to_string(),
            });
        }
    }
    out
}

/// At least `n` grant rules (if there are that many), taken group by group in the order
/// `groups` gives: the latency samples' group first, then others of the same size.
pub fn grant_rules(
    by_group: &BTreeMap<String, Vec<RuleRef>>,
    groups: impl IntoIterator<Item = String>,
    n: usize,
) -> Vec<RuleRef> {
    let mut out = Vec::new();
    for g in groups {
        if out.len() >= n {
            break;
        }
        if let Some(rules) = by_group.get(&g) {
            out.extend(rules.iter().cloned());
        }
    }
    out
}

/// Picks `n` rules spread evenly over `rules`, so that positions early and late in a
/// chain are both represented (finding a rule by handle walks the chain).
pub fn spread(rules: &[RuleRef], n: usize) -> Vec<RuleRef> {
    if rules.is_empty() || n == 0 {
        return Vec::new();
    }
    let n = n.min(rules.len());
    (0..n).map(|i| rules[i * rules.len() / n].clone()).collect()
}

/// Fails unless the table exists and has rules: every measurement needs it.
pub fn check_present(t: &KernelTable, table: &str) -> Result<()> {
    if !t.exists {
        bail!("table inet {table} is not in the kernel");
    }
    if t.chains.iter().all(|c| c.rules.is_empty()) {
        return Err(anyhow!("table inet {table} has no rules"));
    }
    Ok(())
}
