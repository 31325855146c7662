//! Incremental compile: applies state changes to a plan in place and remembers what each
//! touched key held before, so the reconciler can turn the difference into kernel ops and
//! undo it if the commit fails.

use super::build::{grant_rule, group_objects, instance_objects, member_elem};
use super::plan::{ChainName, IpFamily, Key, Obj, Plan, RuleId, SetName};
use crate::state::{Change, State};
use std::collections::BTreeMap;

/// The keys touched by a run of changes, with their values before the first change.
#[derive(Debug, Default)]
pub struct Delta {
    before: BTreeMap<Key, Option<Obj>>,
}

/// One key whose value differs between before and after.
#[derive(Debug, PartialEq, Eq)]
pub struct Difference<'a> {
    pub key: Key,
    pub before: Option<&'a Obj>,
    pub after: Option<&'a Obj>,
}

impl Delta {
    pub fn new() -> Self {
        Delta::default()
    }

    fn put(&mut self, plan: &mut Plan, key: Key, value: Option<Obj>) {
        let old = match value {
            Some(v) => plan.objs.insert(key, v),
            None => plan.objs.remove(&key),
        };
        self.before.entry(key).or_insert(old);
    }

    fn put_all(&mut self, plan: &mut Plan, entries: impl IntoIterator<Item = (Key, Obj)>) {
        for (k, v) in entries {
            self.put(plan, k, Some(v));
        }
    }

    /// Removes a chain and every rule in it.
    fn remove_chain(&mut self, plan: &mut Plan, chain: ChainName) {
        let rules: Vec<Key> = plan
            .rules(chain)
            .map(|r| Key::Rule(r.chain, r.id))
            .collect();
        for k in rules {
            self.put(plan, k, None);
        }
        self.put(plan, Key::Chain(chain), None);
    }

    /// Removes a set and every element in it.
    fn remove_set(&mut self, plan: &mut Plan, set: SetName) {
        let elems: Vec<Key> = plan.elems(set).map(|e| Key::Elem(set, e)).collect();
        for k in elems {
            self.put(plan, k, None);
        }
        self.put(plan, Key::Set(set), None);
    }

    /// Applies one change. `state` is the state *after* the change.
    pub fn apply(&mut self, plan: &mut Plan, state: &State, change: &Change) {
        match change {
            Change::CreateGroup { key, .. } => {
                if let Some(g) = state.group(key) {
                    self.put_all(plan, group_objects(g));
                }
            }
            Change::RestoreGroup { group } => {
                if let Some(g) = state.group(&group.key) {
                    self.put_all(plan, group_objects(g));
                    for (id, gr) in &g.grants {
                        self.put_all(plan, grant_rule(state, g, *id, &gr.permission));
                    }
                    for a in &g.remote {
                        self.put(plan, member_elem(g.num, *a), Some(Obj::Elem));
                    }
                }
            }
            Change::DeleteGroup { group } => {
                let n = group.num;
                self.remove_chain(plan, ChainName::Group(n));
                self.remove_chain(plan, ChainName::Source(n));
                self.remove_set(plan, SetName::Members(IpFamily::V4, n));
                self.remove_set(plan, SetName::Members(IpFamily::V6, n));
            }
            Change::Grant {
                group,
                id,
                permission,
                ..
            } => {
                if let Some(g) = state.group(group) {
                    self.put_all(plan, grant_rule(state, g, *id, permission));
                }
            }
            Change::Revoke { group, id, .. } => {
                if let Some(g) = state.group(group) {
                    self.put(
                        plan,
                        Key::Rule(ChainName::Group(g.num), RuleId::Grant(*id)),
                        None,
                    );
                }
            }
            Change::RegisterInstance { spec, .. } => {
                if let Some(i) = state.instance(&spec.id) {
                    self.put_all(plan, instance_objects(state, i));
                }
                for gk in &spec.groups {
                    if let Some(g) = state.group(gk) {
                        for a in &spec.addresses {
                            self.put(plan, member_elem(g.num, *a), Some(Obj::Elem));
                        }
                    }
                }
            }
            Change::AddMembers { group, addresses } => {
                if let Some(g) = state.group(group) {
                    for a in addresses {
                        self.put(plan, member_elem(g.num, *a), Some(Obj::Elem));
                    }
                }
            }
            Change::RemoveMembers { group, addresses } => {
                if let Some(g) = state.group(group) {
                    for a in addresses {
                        if !state.is_member_address(group, *a) {
                            self.put(plan, member_elem(g.num, *a), None);
                        }
                    }
                }
            }
            Change::SetInstanceGroups { id, from, to } => {
                if let Some(i) = state.instance(id) {
                    // The instance chain's jumps: drop the old, add the new, in one batch.
                    let stale: Vec<Key> = plan
                        .rules(ChainName::Instance(i.num))
                        .map(|r| Key::Rule(r.chain, r.id))
                        .collect();
                    for k in stale {
                        self.put(plan, k, None);
                    }
                    self.put_all(plan, instance_objects(state, i));
                    for gk in from.iter().chain(to) {
                        if let Some(g) = state.group(gk) {
                            for a in &i.spec.addresses {
                                let key = member_elem(g.num, *a);
                                let member = state.is_member_address(gk, *a);
                                self.put(plan, key, member.then_some(Obj::Elem));
                            }
                        }
                    }
                }
            }
            Change::DeregisterInstance { instance } => {
                let n = instance.num;
                self.remove_chain(plan, ChainName::Instance(n));
                self.put(
                    plan,
                    Key::Rule(ChainName::Dispatch, RuleId::Dispatch(n)),
                    None,
                );
                for gk in &instance.spec.groups {
                    if let Some(g) = state.group(gk) {
                        for a in &instance.spec.addresses {
                            if !state.is_member_address(gk, *a) {
                                self.put(plan, member_elem(g.num, *a), None);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Keys whose value now differs from before, in key order.
    pub fn differences<'a>(&'a self, plan: &'a Plan) -> impl Iterator<Item = Difference<'a>> {
        self.before.iter().filter_map(|(k, before)| {
            let after = plan.objs.get(k);
            (before.as_ref() != after).then_some(Difference {
                key: *k,
                before: before.as_ref(),
                after,
            })
        })
    }

    pub fn is_empty(&self) -> bool {
        self.before.is_empty()
    }

    /// Puts the plan back as it was before the first change.
    pub fn rollback(self, plan: &mut Plan) {
        for (k, v) in self.before {
            match v {
                Some(v) => plan.objs.insert(k, v),
                None => plan.objs.remove(&k),
            };
        }
    }
}
