//! Turns plan differences into one ordered batch of kernel ops.
//!
//! Order inside a batch: create chains and sets, add elements, add rules, then delete
//! rules, elements, chains and sets. A replaced rule is added before the old one is
//! deleted; the kernel applies the batch atomically anyway, but this order is also the
//! only one it accepts (rules need their chains and sets; chains must be empty and
//! unreferenced to go).

use super::view::KernelView;
use crate::compile::plan::{ChainName, Elem, Key, Obj, Plan, RuleId, RuleSpec, SetName};
use crate::nft::{Op, Position};
use std::collections::BTreeMap;

/// A batch and, for each `AddRule` in it (in order), the rule it adds.
#[derive(Debug, Default)]
pub struct Batch {
    pub ops: Vec<Op>,
    pub added: Vec<(ChainName, RuleId)>,
    pub deleted: Vec<(ChainName, RuleId)>,
}

/// The view is missing a handle: the kernel must be re-read before going on.
#[derive(Debug, thiserror::Error)]
#[error("no known kernel handle for rule {id} of chain {chain}")]
pub struct MissingHandle {
    pub chain: ChainName,
    pub id: RuleId,
}

/// One difference, as the builder sees it.
pub struct Diff<'a> {
    pub key: Key,
    pub before: Option<&'a Obj>,
    pub after: Option<&'a Obj>,
}

/// Builds the batch that takes the kernel from `before` to `after` for the given keys.
/// `plan` is the plan after the change (used to place new rules in chain order).
pub fn batch_for<'a>(
    diffs: impl IntoIterator<Item = Diff<'a>>,
    plan: &Plan,
    view: &KernelView,
) -> Result<Batch, MissingHandle> {
    let mut add_chains = Vec::new();
    let mut add_sets = Vec::new();
    let mut add_elems: BTreeMap<SetName, Vec<(Elem, Option<ChainName>)>> = BTreeMap::new();
    let mut add_rules: BTreeMap<ChainName, Vec<&RuleSpec>> = BTreeMap::new();
    let mut del_rules = Vec::new();
    let mut del_elems: BTreeMap<SetName, Vec<Elem>> = BTreeMap::new();
    let mut replace_elems: BTreeMap<SetName, Vec<Elem>> = BTreeMap::new();
    let mut del_chains = Vec::new();
    let mut del_sets = Vec::new();

    for d in diffs {
        match (d.key, d.before, d.after) {
            (Key::Chain(_), _, Some(Obj::Chain(c))) => add_chains.push(Op::AddChain(*c)),
            (Key::Chain(c), Some(_), None) => del_chains.push(Op::DelChain(c)),
            (Key::Set(_), _, Some(Obj::Set(s))) => add_sets.push(Op::AddSet(*s)),
            (Key::Set(s), Some(_), None) => del_sets.push(Op::DelSet(s)),
            (Key::Elem(s, e), before, Some(after)) => {
                // A map element whose target changed is deleted and added again (the
                // delete goes first: both are in the same atomic batch).
                if before.is_some() {
                    replace_elems.entry(s).or_default().push(e);
                }
                let to = match after {
                    Obj::MapElem(c) => Some(*c),
                    _ => None,
                };
                add_elems.entry(s).or_default().push((e, to));
            }
            (Key::Elem(s, e), Some(_), None) => del_elems.entry(s).or_default().push(e),
            (Key::Rule(c, id), before, after) => {
                if let Some(Obj::Rule(r)) = after {
                    add_rules.entry(c).or_default().push(r);
                }
                if before.is_some() {
                    let handle = view.handle(c, id).ok_or(MissingHandle { chain: c, id })?;
                    del_rules.push((c, id, handle));
                }
            }
            _ => {}
        }
    }

    let mut batch = Batch::default();
    batch.ops.extend(add_chains);
    batch.ops.extend(add_sets);
    for (s, e) in replace_elems {
        batch.ops.push(Op::DelElems(s, e));
    }
    for (s, e) in add_elems {
        batch.ops.push(Op::AddElems(s, e));
    }
    for (chain, rules) in add_rules {
        for (r, pos) in place_rules(plan, view, chain, &rules) {
            batch.added.push((r.chain, r.id));
            batch.ops.push(Op::AddRule(r.clone(), pos));
        }
    }
    for (chain, id, handle) in del_rules {
        batch.deleted.push((chain, id));
        batch.ops.push(Op::DelRule { chain, handle });
    }
    for (s, e) in del_elems {
        batch.ops.push(Op::DelElems(s, e));
    }
    batch.ops.extend(del_chains);
    batch.ops.extend(del_sets);
    Ok(batch)
}

/// Positions for new rules of one chain (given in chain order): each goes before the
/// nearest following rule that is already in the kernel, or at the end. New rules that
/// share a successor are inserted in order before it, so they keep their order too.
/// Cost is proportional to the number of new rules, not the length of the chain.
fn place_rules<'r>(
    plan: &Plan,
    view: &KernelView,
    chain: ChainName,
    rules: &[&'r RuleSpec],
) -> Vec<(&'r RuleSpec, Position)> {
    let mut out = Vec::with_capacity(rules.len());
    let mut next_pos = Position::Append;
    // Walk backwards: the successor of a new rule is either an existing rule between it
    // and the next new rule, or the successor of that next new rule.
    for (i, r) in rules.iter().enumerate().rev() {
        let stop = rules.get(i + 1).map(|n| n.id);
        let mut cursor = r.id;
        let mut found = None;
        while let Some(n) = plan.next_rule(chain, cursor) {
            if Some(n.id) == stop {
                break;
            }
            if let Some(h) = view.handle(chain, n.id) {
                found = Some(Position::Before(h));
                break;
            }
            cursor = n.id;
        }
        if let Some(p) = found {
            next_pos = p;
        }
        out.push((*r, next_pos));
    }
    out.reverse();
    out
}
