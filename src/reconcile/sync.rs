//! Full reconciliation: compares the table as the kernel has it with the whole plan and
//! builds the batch that makes them equal. Used at start-up and whenever the kernel may
//! have changed under us. Rules are matched by identity (chain and comment, which carries
//! a fingerprint of the rule's content): a rule that already matches keeps its handle
//! and its counters; only differences change.

use super::ops::Batch;
use super::view::KernelView;
use crate::compile::plan::{ChainName, ChainSpec, Elem, Hook, Key, Obj, Plan, RuleId, SetName};
use crate::nft::{KernelTable, Op, Position};
use std::collections::{BTreeSet, HashMap};

/// `NF_INET_FORWARD` and `NF_INET_LOCAL_OUT`.
fn hook_number(h: Hook) -> u32 {
    match h {
        Hook::Forward => 2,
        Hook::Output => 3,
    }
}

/// `NF_ACCEPT`.
const POLICY_ACCEPT: u32 = 1;

fn chain_matches(spec: &ChainSpec, hook: Option<(u32, i32, u32)>) -> bool {
    match (spec.base, hook) {
        (None, None) => true,
        (Some(b), Some((h, prio, policy))) => {
            hook_number(b.hook) == h && b.priority == prio && policy == POLICY_ACCEPT
        }
        _ => false,
    }
}

/// The outcome of comparing kernel and plan.
pub struct SyncPlan {
    pub batch: Batch,
    /// Handles of kernel rules that already match the plan and stay.
    pub kept: Vec<(ChainName, RuleId, u64)>,
    /// Human-readable list of what differs, for the log.
    pub repairs: Vec<String>,
}

/// Builds everything from nothing (the table does not exist, or must be replaced).
fn create_all(plan: &Plan, replace: bool) -> Batch {
    let mut b = Batch::default();
    if replace {
        b.ops.push(Op::DelTable);
    }
    b.ops.push(Op::AddTable);
    b.ops.extend(plan.chains().map(|c| Op::AddChain(*c)));
    b.ops.extend(plan.sets().map(|s| Op::AddSet(*s)));
    for s in plan.sets() {
        let elems: Vec<Elem> = plan.elems(s.name).collect();
        if !elems.is_empty() {
            b.ops.push(Op::AddElems(s.name, elems));
        }
    }
    for c in plan.chains() {
        for r in plan.rules(c.name) {
            b.added.push((r.chain, r.id));
            b.ops.push(Op::AddRule(r.clone(), Position::Append));
        }
    }
    b
}

/// Compares the kernel's table with the plan.
pub fn sync_plan(kernel: &KernelTable, plan: &Plan) -> SyncPlan {
    let mut repairs = Vec::new();
    if !kernel.exists {
        return SyncPlan {
            batch: create_all(plan, false),
            kept: vec![],
            repairs: vec!["table missing: created".into()],
        };
    }

    // Structure: chains and sets that exist with the wrong shape cannot be fixed in
    // place; replace the whole table in one atomic batch.
    for kc in &kernel.chains {
        if let Some(c) = ChainName::parse(&kc.name)
            && let Some(Obj::Chain(spec)) = plan.objs.get(&Key::Chain(c))
            && !chain_matches(spec, kc.hook)
        {
            repairs.push(format!(
                "chain {} has the wrong hook or policy: table rebuilt",
                kc.name
            ));
            return SyncPlan {
                batch: create_all(plan, true),
                kept: vec![],
                repairs,
            };
        }
    }
    for ks in &kernel.sets {
        if let Some(s) = SetName::parse(&ks.name)
            && plan.objs.contains_key(&Key::Set(s))
            && (s.key_type().nft_type() != ks.key_type || s.key_type().key_len() != ks.key_len)
        {
            repairs.push(format!("set {} has the wrong type: table rebuilt", ks.name));
            return SyncPlan {
                batch: create_all(plan, true),
                kept: vec![],
                repairs,
            };
        }
    }

    let mut b = Batch::default();
    let mut del_rules = Vec::new();
    let mut del_chains = Vec::new();
    let mut del_sets = Vec::new();
    let mut kept = Vec::new();
    let mut view = KernelView::default();

    // Chains.
    let mut kernel_chains = BTreeSet::new();
    for kc in &kernel.chains {
        match ChainName::parse(&kc.name).filter(|c| plan.objs.contains_key(&Key::Chain(*c))) {
            Some(c) => {
                kernel_chains.insert(c);
            }
            None => {
                repairs.push(format!("chain {} is not secgroupd's: deleted", kc.name));
                del_chains.push(Op::DelForeignChain(kc.name.clone()));
            }
        }
    }
    for c in plan.chains() {
        if !kernel_chains.contains(&c.name) {
            repairs.push(format!("chain {} missing: created", c.name));
            b.ops.push(Op::AddChain(*c));
        }
    }

    // Sets and elements.
    let mut kernel_sets = BTreeSet::new();
    let mut elem_ops_add = Vec::new();
    let mut elem_ops_del = Vec::new();
    for ks in &kernel.sets {
        let Some(s) = SetName::parse(&ks.name).filter(|s| plan.objs.contains_key(&Key::Set(*s)))
        else {
            repairs.push(format!("set {} is not secgroupd's: deleted", ks.name));
            del_sets.push(Op::DelForeignSet(ks.name.clone()));
            continue;
        };
        kernel_sets.insert(s);
        let have: BTreeSet<Elem> = ks
            .elems
            .iter()
            .filter_map(|k| Elem::from_key_bytes(s.key_type(), k))
            .collect();
        let want: BTreeSet<Elem> = plan.elems(s).collect();
        let add: Vec<Elem> = want.difference(&have).copied().collect();
        let del: Vec<Elem> = have.difference(&want).copied().collect();
        if !add.is_empty() {
            repairs.push(format!("set {}: {} elements missing", ks.name, add.len()));
            elem_ops_add.push(Op::AddElems(s, add));
        }
        if !del.is_empty() {
            repairs.push(format!("set {}: {} stray elements", ks.name, del.len()));
            elem_ops_del.push(Op::DelElems(s, del));
        }
    }
    for s in plan.sets() {
        if !kernel_sets.contains(&s.name) {
            repairs.push(format!("set {} missing: created", s.name));
            b.ops.push(Op::AddSet(*s));
            let elems: Vec<Elem> = plan.elems(s.name).collect();
            if !elems.is_empty() {
                elem_ops_add.push(Op::AddElems(s.name, elems));
            }
        }
    }
    b.ops.extend(elem_ops_add);

    // Rules: keep those that match by identity and are in plan order; delete the rest.
    for kc in &kernel.chains {
        let Some(c) = ChainName::parse(&kc.name).filter(|c| kernel_chains.contains(c)) else {
            continue; // the whole chain goes
        };
        let by_comment: HashMap<&str, RuleId> =
            plan.rules(c).map(|r| (r.comment.as_str(), r.id)).collect();
        let mut last: Option<RuleId> = None;
        for kr in &kc.rules {
            let id = kr
                .comment
                .as_deref()
                .and_then(|cm| by_comment.get(cm))
                .copied();
            match id {
                Some(id) if last.is_none_or(|l| l < id) => {
                    last = Some(id);
                    kept.push((c, id, kr.handle));
                    view.set(c, id, kr.handle);
                }
                _ => {
                    repairs.push(format!(
                        "chain {}: rule {} ({}) not in the plan or out of order: deleted",
                        kc.name,
                        kr.handle,
                        kr.comment.as_deref().unwrap_or("no comment")
                    ));
                    del_rules.push(Op::DelRule {
                        chain: c,
                        handle: kr.handle,
                    });
                }
            }
        }
    }
    for c in plan.chains() {
        // Walk backwards so that each missing rule knows its nearest kept successor.
        let rules: Vec<_> = plan.rules(c.name).collect();
        let mut pos = Position::Append;
        let mut adds = Vec::new();
        for r in rules.iter().rev() {
            match view.handle(c.name, r.id) {
                Some(h) => pos = Position::Before(h),
                None => adds.push((r, pos)),
            }
        }
        if !adds.is_empty() {
            repairs.push(format!("chain {}: {} rules missing", c.name, adds.len()));
        }
        for (r, pos) in adds.into_iter().rev() {
            b.added.push((r.chain, r.id));
            b.ops.push(Op::AddRule((*r).clone(), pos));
        }
    }
    b.ops.extend(del_rules);
    b.ops.extend(elem_ops_del);
    b.ops.extend(del_chains);
    b.ops.extend(del_sets);
    SyncPlan {
        batch: b,
        kept,
        repairs,
    }
}
