//! Incremental compile: applies state changes to a plan in place and remembers what each
//! touched key held before, so the reconciler can turn the difference into kernel ops and
//! undo it if the commit fails. Every change touches only the objects it concerns: a
//! revoke touches its rule(s) and its live marks, whatever the size of the table.

use super::build::{
    Entry, Options, grant_objects, group_objects, instance_objects, is_source, membership_objects,
    shard_objects, source_objects,
};
use super::plan::{ChainName, Elem, IpFamily, Key, Obj, Plan, RuleId, SetName};
use crate::model::IpPermission;
use crate::state::{Change, GrantId, Group, Instance, State};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

    fn put_all(&mut self, plan: &mut Plan, entries: impl IntoIterator<Item = Entry>) {
        for (k, v) in entries {
            self.put(plan, k, Some(v));
        }
    }

    fn remove_all(&mut self, plan: &mut Plan, entries: impl IntoIterator<Item = Entry>) {
        for (k, _) in entries {
            self.put(plan, k, None);
        }
    }

    /// Replaces one set of objects by another: keys only in `old` go.
    fn replace(&mut self, plan: &mut Plan, old: Vec<Entry>, new: Vec<Entry>) {
        let keep: BTreeSet<Key> = new.iter().map(|(k, _)| *k).collect();
        self.remove_all(plan, old.into_iter().filter(|(k, _)| !keep.contains(k)));
        self.put_all(plan, new);
    }

    /// Removes every key in `lo..=hi`.
    fn remove_range(&mut self, plan: &mut Plan, lo: Key, hi: Key) {
        let keys: Vec<Key> = plan.objs.range(lo..=hi).map(|(k, _)| *k).collect();
        for k in keys {
            self.put(plan, k, None);
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
        let elems: Vec<Key> = plan.elems(set).map(|(e, _)| Key::Elem(set, e)).collect();
        for k in elems {
            self.put(plan, k, None);
        }
        self.put(plan, Key::Set(set), None);
    }

    /// Puts (group, address) membership objects in line with the state.
    fn membership(&mut self, plan: &mut Plan, o: &Options, state: &State, g: &Group, a: IpAddr) {
        for (k, present) in membership_objects(o, state, g, a) {
            self.put(plan, k, present.then_some(Obj::Elem));
        }
    }

    /// Removes a grant's rules and live marks.
    fn remove_grant(&mut self, plan: &mut Plan, o: &Options, num: u32, id: GrantId, shard: u32) {
        let chain = ChainName::Shard(num, shard);
        for part in 0..2 {
            self.put(plan, Key::Rule(chain, RuleId::Grant(id, part)), None);
        }
        let mark = o.grant_mark(id);
        self.put(plan, Key::Elem(SetName::Live, Elem::Mark(mark)), None);
        let v4 = SetName::LivePairs(IpFamily::V4);
        let v6 = SetName::LivePairs(IpFamily::V6);
        self.remove_range(
            plan,
            Key::Elem(v4, Elem::MarkV4(mark, Ipv4Addr::UNSPECIFIED)),
            Key::Elem(v4, Elem::MarkV4(mark, Ipv4Addr::BROADCAST)),
        );
        self.remove_range(
            plan,
            Key::Elem(v6, Elem::MarkV6(mark, Ipv6Addr::UNSPECIFIED)),
            Key::Elem(v6, Elem::MarkV6(mark, Ipv6Addr::from(u128::MAX))),
        );
    }

    fn add_grant(
        &mut self,
        plan: &mut Plan,
        o: &Options,
        state: &State,
        g: &Group,
        (id, p, shard): (GrantId, &IpPermission, u32),
    ) {
        if !plan
            .objs
            .contains_key(&Key::Chain(ChainName::Shard(g.num, shard)))
        {
            self.put_all(plan, shard_objects(g, shard));
        }
        self.put_all(plan, grant_objects(o, state, g, id, p, shard));
    }

    /// Creates or removes a group's member sets as it becomes or stops being a source.
    fn refresh_source(&mut self, plan: &mut Plan, state: &State, key: &crate::model::GroupKey) {
        let Some(g) = state.group(key) else { return };
        let v4 = SetName::Members(IpFamily::V4, g.num);
        let exists = plan.objs.contains_key(&Key::Set(v4));
        match (is_source(state, key), exists) {
            (true, false) => self.put_all(plan, source_objects(state, g)),
            (false, true) => {
                self.remove_set(plan, v4);
                self.remove_set(plan, SetName::Members(IpFamily::V6, g.num));
            }
            _ => {}
        }
    }

    /// Sources named by a group's pair grants.
    fn sources_of(group: &Group) -> Vec<crate::model::GroupKey> {
        group
            .grants
            .values()
            .filter_map(|gr| match &gr.permission {
                IpPermission::GroupPair { source } => Some(source.clone()),
                IpPermission::Cidr { .. } => None,
            })
            .collect()
    }

    /// Applies one change. `state` is the state *after* the change.
    pub fn apply(&mut self, plan: &mut Plan, o: &Options, state: &State, change: &Change) {
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
                        self.add_grant(plan, o, state, g, (*id, &gr.permission, gr.shard));
                    }
                    self.refresh_source(plan, state, &group.key);
                    for s in Self::sources_of(group) {
                        self.refresh_source(plan, state, &s);
                    }
                }
            }
            Change::DeleteGroup { group } => {
                let n = group.num;
                let mut shards = BTreeSet::new();
                for (id, gr) in &group.grants {
                    self.remove_grant(plan, o, n, *id, gr.shard);
                    shards.insert(gr.shard);
                }
                for s in shards {
                    self.remove_chain(plan, ChainName::Shard(n, s));
                }
                self.remove_chain(plan, ChainName::Group(n));
                self.remove_set(plan, SetName::Members(IpFamily::V4, n));
                self.remove_set(plan, SetName::Members(IpFamily::V6, n));
                for s in Self::sources_of(group) {
                    self.refresh_source(plan, state, &s);
                }
            }
            Change::Grant {
                group,
                id,
                permission,
                shard,
            } => {
                if let Some(g) = state.group(group) {
                    self.add_grant(plan, o, state, g, (*id, permission, *shard));
                }
                if let IpPermission::GroupPair { source } = permission {
                    self.refresh_source(plan, state, source);
                }
            }
            Change::Revoke {
                group,
                id,
                shard,
                permission,
            } => {
                if let IpPermission::GroupPair { source } = permission {
                    self.refresh_source(plan, state, source);
                }
                if let Some(g) = state.group(group) {
                    self.remove_grant(plan, o, g.num, *id, *shard);
                    if state.shard_len(group, *shard) == 0 {
                        self.remove_chain(plan, ChainName::Shard(g.num, *shard));
                        let jump = Key::Rule(ChainName::Group(g.num), RuleId::JumpShard(*shard));
                        self.put(plan, jump, None);
                    }
                }
            }
            Change::AddMembers { group, addresses }
            | Change::RemoveMembers { group, addresses } => {
                if let Some(g) = state.group(group) {
                    for a in addresses {
                        self.membership(plan, o, state, g, *a);
                    }
                }
            }
            Change::RegisterInstance { spec, .. } => {
                if let Some(i) = state.instance(&spec.id) {
                    self.put_all(plan, instance_objects(o, state, i));
                    self.memberships_of(plan, o, state, i, &[]);
                }
            }
            Change::DeregisterInstance { instance } => {
                self.remove_all(plan, instance_objects(o, state, instance));
                self.memberships_of(plan, o, state, instance, &[]);
            }
            Change::SetInstanceGroups { id, from, .. } => {
                if let Some(i) = state.instance(id) {
                    let mut old = i.clone();
                    old.spec.groups = from.clone();
                    self.replace(
                        plan,
                        instance_objects(o, state, &old),
                        instance_objects(o, state, i),
                    );
                    self.memberships_of(plan, o, state, i, from);
                }
            }
        }
    }

    /// Membership objects of an instance's addresses in its groups and in `also`.
    fn memberships_of(
        &mut self,
        plan: &mut Plan,
        o: &Options,
        state: &State,
        i: &Instance,
        also: &[crate::model::GroupKey],
    ) {
        for gk in i.spec.groups.iter().chain(also) {
            if let Some(g) = state.group(gk) {
                for a in &i.spec.addresses {
                    self.membership(plan, o, state, g, *a);
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
