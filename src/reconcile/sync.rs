//! Full reconciliation: compares secgroupd's tables as the kernel has them with the whole
//! plan and builds the batch that makes them equal. Used at start-up and whenever the
//! kernel may have changed under us. Rules are matched by identity (chain and comment,
//! which carries a fingerprint of the rule's content): a rule that already matches keeps
//! its handle and its counters; only differences change.

use super::ops::Batch;
use super::view::KernelView;
use crate::compile::plan::{ChainName, ChainSpec, Elem, Family, Key, Obj, Plan, RuleId, SetName};
use crate::nft::{KernelTable, Op, Position};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// `NF_ACCEPT`.
const POLICY_ACCEPT: u32 = 1;

fn chain_matches(spec: &ChainSpec, hook: Option<(u32, i32, u32)>) -> bool {
    match (spec.base, hook) {
        (None, None) => true,
        (Some(b), Some((h, prio, policy))) => {
            b.hook.number() == h && b.priority == prio && policy == POLICY_ACCEPT
        }
        _ => false,
    }
}

/// The outcome of comparing kernel and plan.
#[derive(Default)]
pub struct SyncPlan {
    pub batch: Batch,
    /// Handles of kernel rules that already match the plan and stay.
    pub kept: Vec<(ChainName, RuleId, u64)>,
    /// Human-readable list of what differs, for the log.
    pub repairs: Vec<String>,
}

/// Builds one family's table from nothing (it does not exist, or must be replaced).
fn create_family(b: &mut Batch, plan: &Plan, family: Family, replace: bool) {
    if replace {
        b.ops.push(Op::DelTable(family));
    }
    b.ops.push(Op::AddTable(family));
    let chains: Vec<&ChainSpec> = plan
        .chains()
        .filter(|c| c.name.family() == family)
        .collect();
    b.ops.extend(chains.iter().map(|c| Op::AddChain(**c)));
    for s in plan.sets().filter(|s| s.name.family() == family) {
        b.ops.push(Op::AddSet(*s));
    }
    for s in plan.sets().filter(|s| s.name.family() == family) {
        let elems: Vec<_> = plan.elems(s.name).collect();
        if !elems.is_empty() {
            b.ops.push(Op::AddElems(s.name, elems));
        }
    }
    for c in chains {
        for r in plan.rules(c.name) {
            b.added.push((r.chain, r.id));
            b.ops.push(Op::AddRule(r.clone(), Position::Append));
        }
    }
}

/// Why a table cannot be repaired in place (a chain or set of the wrong shape).
fn structural_mismatch(kernel: &KernelTable, plan: &Plan) -> Option<String> {
    let f = kernel.family;
    for kc in &kernel.chains {
        if let Some(c) = ChainName::parse(f, &kc.name)
            && let Some(Obj::Chain(spec)) = plan.objs.get(&Key::Chain(c))
            && !chain_matches(spec, kc.hook)
        {
            return Some(format!(
                "chain {} has the wrong hook, priority or policy",
                kc.name
            ));
        }
    }
    for ks in &kernel.sets {
        if let Some(s) = SetName::parse(f, &ks.name)
            && plan.objs.contains_key(&Key::Set(s))
            && (s.key_type().nft_type() != ks.key_type
                || s.key_type().key_len() != ks.key_len
                || s.is_verdict_map() != ks.verdict_map)
        {
            return Some(format!("set {} has the wrong type", ks.name));
        }
    }
    None
}

/// Compares the kernel's tables (one per family) with the plan.
pub fn sync_plan(kernel: &[KernelTable], plan: &Plan) -> SyncPlan {
    let mut out = SyncPlan::default();
    for k in kernel {
        sync_family(&mut out, k, plan);
    }
    out
}

fn sync_family(out: &mut SyncPlan, kernel: &KernelTable, plan: &Plan) {
    let f = kernel.family;
    let fam = f.as_str();
    if !plan.uses(f) {
        if kernel.exists {
            out.repairs
                .push(format!("{fam} table not needed in this mode: deleted"));
            out.batch.ops.push(Op::DelTable(f));
        }
        return;
    }
    if !kernel.exists {
        out.repairs.push(format!("{fam} table missing: created"));
        create_family(&mut out.batch, plan, f, false);
        return;
    }
    if let Some(why) = structural_mismatch(kernel, plan) {
        out.repairs.push(format!("{fam}: {why}: table rebuilt"));
        create_family(&mut out.batch, plan, f, true);
        return;
    }

    let b = &mut out.batch;
    let repairs = &mut out.repairs;
    let mut del_rules = Vec::new();
    let mut del_chains = Vec::new();
    let mut flush_chains = Vec::new();
    let mut del_sets = Vec::new();
    let mut view = KernelView::default();

    // Chains.
    let mut kernel_chains = BTreeSet::new();
    for kc in &kernel.chains {
        match ChainName::parse(f, &kc.name).filter(|c| plan.objs.contains_key(&Key::Chain(*c))) {
            Some(c) => {
                kernel_chains.insert(c);
            }
            None => {
                repairs.push(format!(
                    "{fam} chain {} is not in the plan: deleted",
                    kc.name
                ));
                if !kc.rules.is_empty() {
                    flush_chains.push(Op::FlushChain(f, kc.name.clone()));
                }
                del_chains.push(Op::DelForeignChain(f, kc.name.clone()));
            }
        }
    }
    for c in plan.chains().filter(|c| c.name.family() == f) {
        if !kernel_chains.contains(&c.name) {
            repairs.push(format!("{fam} chain {} missing: created", c.name));
            b.ops.push(Op::AddChain(*c));
        }
    }

    // Sets and elements (a map element with the wrong target is replaced: delete first).
    let mut kernel_sets = BTreeSet::new();
    let mut replace = Vec::new();
    let mut add = Vec::new();
    let mut del = Vec::new();
    for ks in &kernel.sets {
        let Some(s) = SetName::parse(f, &ks.name).filter(|s| plan.objs.contains_key(&Key::Set(*s)))
        else {
            repairs.push(format!("{fam} set {} is not in the plan: deleted", ks.name));
            del_sets.push(Op::DelForeignSet(f, ks.name.clone()));
            continue;
        };
        kernel_sets.insert(s);
        let have: BTreeMap<Elem, Option<String>> = ks
            .elems
            .iter()
            .filter_map(|(k, to)| Some((Elem::from_key_bytes(s.key_type(), k)?, to.clone())))
            .collect();
        let want: BTreeMap<Elem, Option<ChainName>> = plan.elems(s).collect();
        let (mut a, mut d, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for (e, to) in &want {
            match have.get(e) {
                None => a.push((*e, *to)),
                Some(k) if *k != to.map(|c| c.to_string()) => {
                    r.push(*e);
                    a.push((*e, *to));
                }
                Some(_) => {}
            }
        }
        for e in have.keys() {
            if !want.contains_key(e) {
                d.push(*e);
            }
        }
        // Keys that do not even parse for this set type are stray too.
        let unparsable = ks.elems.len() - have.len();
        if unparsable > 0 {
            repairs.push(format!(
                "{fam} set {}: {unparsable} unreadable elements left",
                ks.name
            ));
        }
        if !a.is_empty() || !d.is_empty() {
            repairs.push(format!(
                "{fam} set {}: {} elements missing or wrong, {} stray",
                ks.name,
                a.len(),
                d.len()
            ));
        }
        if !r.is_empty() {
            replace.push(Op::DelElems(s, r));
        }
        if !a.is_empty() {
            add.push(Op::AddElems(s, a));
        }
        if !d.is_empty() {
            del.push(Op::DelElems(s, d));
        }
    }
    for s in plan.sets().filter(|s| s.name.family() == f) {
        if !kernel_sets.contains(&s.name) {
            repairs.push(format!("{fam} set {} missing: created", s.name));
            b.ops.push(Op::AddSet(*s));
            let elems: Vec<_> = plan.elems(s.name).collect();
            if !elems.is_empty() {
                add.push(Op::AddElems(s.name, elems));
            }
        }
    }
    b.ops.extend(replace);
    b.ops.extend(add);

    // Rules: keep those that match by identity and are in plan order; delete the rest.
    for kc in &kernel.chains {
        let Some(c) = ChainName::parse(f, &kc.name).filter(|c| kernel_chains.contains(c)) else {
            continue; // the whole chain goes
        };
        let by_comment: HashMap<&str, RuleId> =
            plan.rules(c).map(|r| (&*r.comment, r.id)).collect();
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
                    out.kept.push((c, id, kr.handle));
                    view.set(c, id, kr.handle);
                }
                _ => {
                    repairs.push(format!(
                        "{fam} chain {}: rule {} ({}) not in the plan or out of order: deleted",
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
    for c in plan.chains().filter(|c| c.name.family() == f) {
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
            repairs.push(format!(
                "{fam} chain {}: {} rules missing",
                c.name,
                adds.len()
            ));
        }
        for (r, pos) in adds.into_iter().rev() {
            b.added.push((r.chain, r.id));
            b.ops.push(Op::AddRule((*r).clone(), pos));
        }
    }
    // Deletions: stale rules and elements, then the chains to delete are emptied, then
    // stale sets and maps go (no rule refers to them any more), then the chains (no rule
    // or map element jumps to them any more), whatever referred to what.
    b.ops.extend(del_rules);
    b.ops.extend(del);
    b.ops.extend(flush_chains);
    b.ops.extend(del_sets);
    b.ops.extend(del_chains);
}
