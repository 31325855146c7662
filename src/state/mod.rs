//! Desired state: groups, their grants, instances and memberships.
//!
//! Every action is first *planned* against the state (validated, turned into [`Change`]s,
//! nothing mutated) and only then applied. A failed commit is undone by applying the
//! inverse changes, so the state never needs to be copied.

mod change;
mod port_index;
#[cfg(test)]
mod tests;

pub use port_index::PortIndex;

pub use change::Change;

use crate::model::{
    Action, ApiError, ErrorCode, GroupDescription, GroupInfo, GroupKey, InstanceId, InstanceSpec,
    InterfaceName, IpPermission, Reply,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// Numeric id of a group, used in kernel object names (`grp_7`, `m4_7`).
pub type GroupNum = u32;
/// Id of one grant of a permission. Fresh for every grant, never reused.
pub type GrantId = u32;
/// Numeric id of one registration of an instance, used in kernel object names.
pub type InstanceNum = u32;

/// Most grants in one shard chain of a group: deleting a rule costs time proportional to
/// the length of its chain, so no chain may grow past this.
pub const SHARD_SIZE: u32 = 256;
/// Highest shard number a store may hold (a group of 2^20 shards is already absurd).
pub const MAX_SHARD: u32 = 1 << 20;

/// One grant of a permission, and the shard chain of its group that holds its rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub permission: IpPermission,
    pub shard: u32,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub num: GroupNum,
    pub key: GroupKey,
    pub description: GroupDescription,
    /// Grants in the order they were made.
    pub grants: BTreeMap<GrantId, Grant>,
    /// Addresses of members that live on other hosts (AddGroupMembers).
    pub remote: BTreeSet<IpAddr>,
}

/// A registered instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub num: InstanceNum,
    /// Small number, unique among registered instances, reused after deregistration:
    /// what the packet mark carries in bridged mode (1..=[`MAX_SLOT`]).
    pub slot: u32,
    pub spec: InstanceSpec,
}

/// Most instances registered at once (the packet mark must carry their slot).
pub const MAX_SLOT: u32 = 4095;

/// Allocators for ids that must never be reused, persisted with the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub next_group: GroupNum,
    pub next_grant: GrantId,
    pub next_instance: InstanceNum,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            next_group: 1,
            next_grant: 1,
            next_instance: 1,
        }
    }
}

/// The whole desired state plus indexes derived from it.
#[derive(Debug, Clone, Default)]
pub struct State {
    groups: BTreeMap<GroupKey, Group>,
    instances: BTreeMap<InstanceId, Instance>,
    counters: Counters,
    /// Derived: group → its local member instances.
    members: HashMap<GroupKey, BTreeSet<InstanceId>>,
    /// Derived: interface → instance, to refuse two instances on one interface.
    interfaces: HashMap<InterfaceName, InstanceId>,
    /// Derived: address → instance, to refuse one address on two instances.
    addresses: HashMap<IpAddr, InstanceId>,
    /// Derived: source group → number of group-pair grants that name it.
    pair_refs: HashMap<GroupKey, BTreeMap<GroupKey, usize>>,
    /// Derived: group → (permission → grant), to find a grant by its values.
    grant_index: HashMap<GroupKey, HashMap<IpPermission, GrantId>>,
    /// Derived: group → shard → number of grants in it, to place new grants.
    shard_fill: HashMap<GroupKey, BTreeMap<u32, u32>>,
    /// Derived: slots of registered instances.
    slots: BTreeSet<u32>,
    /// Derived: each group's grants by protocol and port, for the overlap report.
    ports: HashMap<GroupKey, PortIndex>,
    /// Derived: group → the groups its local members are in (itself included) → how many
    /// members share both, so the overlap report on a revoke does not walk the members.
    co_groups: HashMap<GroupKey, BTreeMap<GroupKey, usize>>,
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.groups == other.groups
            && self.instances == other.instances
            && self.counters == other.counters
    }
}

impl State {
    pub fn new() -> Self {
        State::default()
    }

    /// Rebuilds a state from persisted parts (the store's load path).
    pub fn from_parts(
        groups: impl IntoIterator<Item = Group>,
        instances: impl IntoIterator<Item = Instance>,
        counters: Counters,
    ) -> Result<Self, String> {
        let mut s = State {
            counters,
            ..State::default()
        };
        for g in groups {
            s.apply(&Change::RestoreGroup { group: g });
        }
        for i in instances {
            for gk in &i.spec.groups {
                if !s.groups.contains_key(gk) {
                    return Err(format!("instance {} names missing group {gk}", i.spec.id));
                }
            }
            if i.slot == 0 || i.slot > MAX_SLOT || s.slots.contains(&i.slot) {
                return Err(format!(
                    "instance {} has slot {}, invalid or taken",
                    i.spec.id, i.slot
                ));
            }
            s.apply(&Change::RegisterInstance {
                num: i.num,
                slot: i.slot,
                spec: i.spec,
            });
        }
        for g in s.groups.values() {
            for gr in g.grants.values() {
                if gr.shard > MAX_SHARD {
                    return Err(format!("group {} has a grant in shard {}", g.key, gr.shard));
                }
                if let IpPermission::GroupPair { source } = &gr.permission
                    && !s.groups.contains_key(source)
                {
                    return Err(format!(
                        "group {} names missing source group {source}",
                        g.key
                    ));
                }
            }
        }
        // Counters must stay ahead of every id in use, whatever the store said.
        s.counters = counters;
        s.bump_counters();
        Ok(s)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }
    pub fn group(&self, key: &GroupKey) -> Option<&Group> {
        self.groups.get(key)
    }
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }
    pub fn instance(&self, id: &InstanceId) -> Option<&Instance> {
        self.instances.get(id)
    }
    pub fn counters(&self) -> Counters {
        self.counters
    }
    /// Local instances that are members of the group.
    pub fn members(&self, key: &GroupKey) -> impl Iterator<Item = &Instance> {
        self.members
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|id| self.instances.get(id))
    }
    /// The groups that local members of `key` belong to (`key` itself included if it has
    /// members), without walking the members.
    pub fn co_groups(&self, key: &GroupKey) -> impl Iterator<Item = &GroupKey> {
        self.co_groups.get(key).into_iter().flat_map(|m| m.keys())
    }
    /// Whether `addr` belongs to a member of the group, local or remote, i.e. is in its
    /// member set.
    pub fn is_member_address(&self, key: &GroupKey, addr: IpAddr) -> bool {
        self.groups
            .get(key)
            .is_some_and(|g| g.remote.contains(&addr))
            || self
                .addresses
                .get(&addr)
                .and_then(|id| self.instances.get(id))
                .is_some_and(|i| i.spec.groups.contains(key))
    }
    pub fn grant_count(&self) -> usize {
        self.groups.values().map(|g| g.grants.len()).sum()
    }
    pub fn remote_member_count(&self) -> usize {
        self.groups.values().map(|g| g.remote.len()).sum()
    }

    /// The shard a new grant of the group goes to: the lowest one with room, so shards
    /// stay full and few whatever the order of grants and revokes.
    fn shard_for_new_grant(&self, group: &GroupKey) -> u32 {
        let fill = self.shard_fill.get(group);
        let mut candidate = 0;
        for (shard, n) in fill.into_iter().flatten() {
            if *shard > candidate {
                break; // a gap: an empty shard
            }
            if *n < SHARD_SIZE {
                return *shard;
            }
            candidate = shard + 1;
        }
        candidate
    }

    /// Validates an action against the state and returns the changes it makes and its
    /// answer. Nothing is mutated; an error means the action changes nothing.
    pub fn plan(&self, action: &Action) -> Result<(Vec<Change>, Reply), ApiError> {
        match action {
            Action::CreateSecurityGroup { group, description } => {
                if self.groups.contains_key(group) {
                    return Err(ApiError::new(
                        ErrorCode::GroupDuplicate,
                        format!("The security group '{}' already exists", group.name),
                    ));
                }
                Ok((
                    vec![Change::CreateGroup {
                        key: group.clone(),
                        num: self.counters.next_group,
                        description: description.clone(),
                    }],
                    Reply::Done,
                ))
            }
            Action::DeleteSecurityGroup { group } => {
                let g = self.existing(group)?;
                if let Some(id) = self.members.get(group).and_then(|m| m.iter().next()) {
                    return Err(ApiError::new(
                        ErrorCode::GroupInUse,
                        format!(
                            "The security group '{}' is in use by instance {id}",
                            group.name
                        ),
                    ));
                }
                if let Some(user) = self
                    .pair_refs
                    .get(group)
                    .and_then(|users| users.keys().find(|u| *u != group))
                {
                    return Err(ApiError::new(
                        ErrorCode::GroupInUse,
                        format!(
                            "The security group '{}' is referenced by a permission of group '{}'",
                            group.name, user.name
                        ),
                    ));
                }
                Ok((vec![Change::DeleteGroup { group: g.clone() }], Reply::Done))
            }
            Action::AuthorizeSecurityGroupIngress { group, permission } => {
                self.existing(group)?;
                if let IpPermission::GroupPair { source } = permission
                    && !self.groups.contains_key(source)
                {
                    return Err(ApiError::new(
                        ErrorCode::GroupNotFound,
                        format!(
                            "The source security group '{}' of owner {} does not exist",
                            source.name, source.owner
                        ),
                    ));
                }
                if self.find_grant(group, permission).is_some() {
                    return Err(ApiError::new(
                        ErrorCode::PermissionDuplicate,
                        format!(
                            "The permission '{permission}' has already been authorized on group '{}'",
                            group.name
                        ),
                    ));
                }
                Ok((
                    vec![Change::Grant {
                        group: group.clone(),
                        id: self.counters.next_grant,
                        permission: permission.clone(),
                        shard: self.shard_for_new_grant(group),
                    }],
                    Reply::Done,
                ))
            }
            Action::RevokeSecurityGroupIngress { group, permission } => {
                self.existing(group)?;
                let id = self.find_grant(group, permission).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::PermissionNotFound,
                        format!(
                            "The permission '{permission}' was not granted on group '{}' \
                             (a revoke must repeat the exact values of the grant)",
                            group.name
                        ),
                    )
                })?;
                let shard = self.groups[group].grants[&id].shard;
                Ok((
                    vec![Change::Revoke {
                        group: group.clone(),
                        id,
                        permission: permission.clone(),
                        shard,
                    }],
                    Reply::Done,
                ))
            }
            Action::DescribeSecurityGroups { owner, names } => {
                let mut out = Vec::new();
                if names.is_empty() {
                    out.extend(self.groups.values().filter(|g| &g.key.owner == owner));
                } else {
                    for name in names {
                        let key = GroupKey {
                            owner: owner.clone(),
                            name: name.clone(),
                        };
                        out.push(self.existing(&key)?);
                    }
                }
                let info = out
                    .into_iter()
                    .map(|g| GroupInfo {
                        owner: g.key.owner.clone(),
                        name: g.key.name.clone(),
                        description: g.description.clone(),
                        permissions: g.grants.values().map(|gr| gr.permission.clone()).collect(),
                    })
                    .collect();
                Ok((vec![], Reply::Groups(info)))
            }
            Action::RegisterInstance { instance } => self.plan_register(instance),
            Action::AddGroupMembers { group, addresses } => {
                let g = self.existing(group)?;
                let mut new: Vec<IpAddr> = addresses
                    .iter()
                    .copied()
                    .filter(|a| !g.remote.contains(a))
                    .collect();
                new.dedup();
                let changes = if new.is_empty() {
                    vec![]
                } else {
                    vec![Change::AddMembers {
                        group: group.clone(),
                        addresses: new,
                    }]
                };
                Ok((changes, Reply::Done))
            }
            Action::RemoveGroupMembers { group, addresses } => {
                let g = self.existing(group)?;
                if let Some((i, a)) = addresses
                    .iter()
                    .enumerate()
                    .find(|(_, a)| !g.remote.contains(a))
                {
                    return Err(ApiError::invalid(
                        &format!("IpAddress.{}", i + 1),
                        format!("{a} is not a remote member of group '{}'", group.name),
                    ));
                }
                Ok((
                    vec![Change::RemoveMembers {
                        group: group.clone(),
                        addresses: addresses.clone(),
                    }],
                    Reply::Done,
                ))
            }
            Action::ModifyInstanceGroups { id, groups } => {
                let inst = self.instances.get(id).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InstanceNotFound,
                        format!("The instance ID '{id}' is not registered"),
                    )
                })?;
                for g in groups {
                    self.existing(g)?;
                }
                if inst.spec.groups == *groups {
                    return Ok((vec![], Reply::Done));
                }
                Ok((
                    vec![Change::SetInstanceGroups {
                        id: id.clone(),
                        from: inst.spec.groups.clone(),
                        to: groups.clone(),
                    }],
                    Reply::Done,
                ))
            }
            Action::GetStatus | Action::ExplainPacket { .. } => Err(ApiError::internal(
                "GetStatus and ExplainPacket are answered by the reconciler",
            )),
            Action::DeregisterInstance { id } => {
                let inst = self.instances.get(id).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InstanceNotFound,
                        format!("The instance ID '{id}' is not registered"),
                    )
                })?;
                Ok((
                    vec![Change::DeregisterInstance {
                        instance: inst.clone(),
                    }],
                    Reply::Done,
                ))
            }
        }
    }

    fn plan_register(&self, spec: &InstanceSpec) -> Result<(Vec<Change>, Reply), ApiError> {
        if let Some(existing) = self.instances.get(&spec.id) {
            if existing.spec == *spec {
                return Ok((vec![], Reply::Done));
            }
            return Err(ApiError::new(
                ErrorCode::InstanceDuplicate,
                format!(
                    "The instance ID '{}' is already registered with other values; \
                     deregister it first",
                    spec.id
                ),
            ));
        }
        for g in &spec.groups {
            self.existing(g)?;
        }
        if let Some(other) = self.interfaces.get(&spec.interface) {
            return Err(ApiError::invalid(
                "Interface",
                format!(
                    "{} is already the interface of instance {other}",
                    spec.interface
                ),
            ));
        }
        for (i, a) in spec.addresses.iter().enumerate() {
            if let Some(other) = self.addresses.get(a) {
                return Err(ApiError::invalid(
                    &format!("IpAddress.{}", i + 1),
                    format!("{a} is already an address of instance {other}"),
                ));
            }
        }
        let slot = (1..=MAX_SLOT)
            .find(|s| !self.slots.contains(s))
            .ok_or_else(|| {
                ApiError::invalid(
                    "InstanceId",
                    format!("this host already has {MAX_SLOT} registered instances"),
                )
            })?;
        Ok((
            vec![Change::RegisterInstance {
                num: self.counters.next_instance,
                slot,
                spec: spec.clone(),
            }],
            Reply::Done,
        ))
    }

    fn existing(&self, key: &GroupKey) -> Result<&Group, ApiError> {
        self.groups.get(key).ok_or_else(|| {
            ApiError::new(
                ErrorCode::GroupNotFound,
                format!(
                    "The security group '{}' does not exist for owner {}",
                    key.name, key.owner
                ),
            )
        })
    }

    /// Grants of the group that may admit some of what `p` admits (a superset of those
    /// that do), found without looking at every grant of a large group.
    pub fn overlap_candidates(&self, group: &GroupKey, p: &IpPermission) -> Vec<GrantId> {
        self.ports
            .get(group)
            .map(|ix| ix.candidates(p))
            .unwrap_or_default()
    }

    /// Number of grants of the group in one shard.
    pub fn shard_len(&self, group: &GroupKey, shard: u32) -> u32 {
        self.shard_fill
            .get(group)
            .and_then(|f| f.get(&shard))
            .copied()
            .unwrap_or(0)
    }

    /// The group-pair grants (of any group) whose source is `source`.
    pub fn pair_grants_naming(&self, source: &GroupKey) -> Vec<GrantId> {
        let Some(users) = self.pair_refs.get(source) else {
            return vec![];
        };
        let pair = IpPermission::GroupPair {
            source: source.clone(),
        };
        users
            .keys()
            .filter_map(|u| self.find_grant(u, &pair))
            .collect()
    }

    /// The grant made with exactly these values, if any.
    pub fn find_grant(&self, group: &GroupKey, permission: &IpPermission) -> Option<GrantId> {
        self.grant_index.get(group)?.get(permission).copied()
    }

    /// Applies a change that [`State::plan`] produced (or its inverse).
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::CreateGroup {
                key,
                num,
                description,
            } => {
                self.groups.insert(
                    key.clone(),
                    Group {
                        num: *num,
                        key: key.clone(),
                        description: description.clone(),
                        grants: BTreeMap::new(),
                        remote: BTreeSet::new(),
                    },
                );
                self.grant_index.insert(key.clone(), HashMap::new());
            }
            Change::DeleteGroup { group } => {
                for (id, gr) in &group.grants {
                    self.apply(&Change::Revoke {
                        group: group.key.clone(),
                        id: *id,
                        permission: gr.permission.clone(),
                        shard: gr.shard,
                    });
                }
                self.groups.remove(&group.key);
                self.grant_index.remove(&group.key);
                self.ports.remove(&group.key);
                self.shard_fill.remove(&group.key);
                self.members.remove(&group.key);
                self.co_groups.remove(&group.key);
            }
            Change::RestoreGroup { group } => {
                self.apply(&Change::CreateGroup {
                    key: group.key.clone(),
                    num: group.num,
                    description: group.description.clone(),
                });
                for (id, gr) in &group.grants {
                    self.apply(&Change::Grant {
                        group: group.key.clone(),
                        id: *id,
                        permission: gr.permission.clone(),
                        shard: gr.shard,
                    });
                }
                if let Some(g) = self.groups.get_mut(&group.key) {
                    g.remote = group.remote.clone();
                }
            }
            Change::Grant {
                group,
                id,
                permission,
                shard,
            } => {
                if let Some(g) = self.groups.get_mut(group) {
                    g.grants.insert(
                        *id,
                        Grant {
                            permission: permission.clone(),
                            shard: *shard,
                        },
                    );
                    self.grant_index
                        .entry(group.clone())
                        .or_default()
                        .insert(permission.clone(), *id);
                    self.ports
                        .entry(group.clone())
                        .or_default()
                        .insert(*id, permission);
                    *self
                        .shard_fill
                        .entry(group.clone())
                        .or_default()
                        .entry(*shard)
                        .or_default() += 1;
                    if let IpPermission::GroupPair { source } = permission {
                        *self
                            .pair_refs
                            .entry(source.clone())
                            .or_default()
                            .entry(group.clone())
                            .or_default() += 1;
                    }
                }
            }
            Change::Revoke {
                group,
                id,
                permission,
                shard,
            } => {
                if let Some(g) = self.groups.get_mut(group) {
                    g.grants.remove(id);
                }
                if let Some(ix) = self.grant_index.get_mut(group) {
                    ix.remove(permission);
                }
                if let Some(ix) = self.ports.get_mut(group) {
                    ix.remove(*id, permission);
                }
                if let Some(fill) = self.shard_fill.get_mut(group)
                    && let Some(n) = fill.get_mut(shard)
                {
                    *n -= 1;
                    if *n == 0 {
                        fill.remove(shard);
                    }
                }
                if let IpPermission::GroupPair { source } = permission
                    && let Some(users) = self.pair_refs.get_mut(source)
                {
                    if let Some(n) = users.get_mut(group) {
                        *n -= 1;
                        if *n == 0 {
                            users.remove(group);
                        }
                    }
                    if users.is_empty() {
                        self.pair_refs.remove(source);
                    }
                }
            }
            Change::AddMembers { group, addresses } => {
                if let Some(g) = self.groups.get_mut(group) {
                    g.remote.extend(addresses.iter().copied());
                }
            }
            Change::RemoveMembers { group, addresses } => {
                if let Some(g) = self.groups.get_mut(group) {
                    for a in addresses {
                        g.remote.remove(a);
                    }
                }
            }
            Change::RegisterInstance { num, slot, spec } => {
                self.slots.insert(*slot);
                self.count_co_groups(&spec.groups, true);
                for g in &spec.groups {
                    self.members
                        .entry(g.clone())
                        .or_default()
                        .insert(spec.id.clone());
                }
                self.interfaces
                    .insert(spec.interface.clone(), spec.id.clone());
                for a in &spec.addresses {
                    self.addresses.insert(*a, spec.id.clone());
                }
                self.instances.insert(
                    spec.id.clone(),
                    Instance {
                        num: *num,
                        slot: *slot,
                        spec: spec.clone(),
                    },
                );
            }
            Change::DeregisterInstance { instance } => {
                self.slots.remove(&instance.slot);
                let spec = &instance.spec;
                self.count_co_groups(&spec.groups, false);
                for g in &spec.groups {
                    if let Some(m) = self.members.get_mut(g) {
                        m.remove(&spec.id);
                    }
                }
                self.interfaces.remove(&spec.interface);
                for a in &spec.addresses {
                    self.addresses.remove(a);
                }
                self.instances.remove(&spec.id);
            }
            Change::SetInstanceGroups { id, to, .. } => {
                if let Some(from) = self.instances.get(id).map(|i| i.spec.groups.clone()) {
                    self.count_co_groups(&from, false);
                    self.count_co_groups(to, true);
                }
                if let Some(inst) = self.instances.get_mut(id) {
                    for g in &inst.spec.groups {
                        if let Some(m) = self.members.get_mut(g) {
                            m.remove(id);
                        }
                    }
                    inst.spec.groups = to.clone();
                    for g in to {
                        self.members
                            .entry(g.clone())
                            .or_default()
                            .insert(id.clone());
                    }
                }
            }
        }
        self.bump_counters_for(change);
    }

    /// Counts one instance in (or out of) every pair of its groups.
    fn count_co_groups(&mut self, groups: &[GroupKey], add: bool) {
        for g in groups {
            if add {
                let m = self.co_groups.entry(g.clone()).or_default();
                for h in groups {
                    *m.entry(h.clone()).or_default() += 1;
                }
            } else if let Some(m) = self.co_groups.get_mut(g) {
                for h in groups {
                    if let Some(n) = m.get_mut(h) {
                        *n -= 1;
                        if *n == 0 {
                            m.remove(h);
                        }
                    }
                }
                if m.is_empty() {
                    self.co_groups.remove(g);
                }
            }
        }
    }

    fn bump_counters_for(&mut self, change: &Change) {
        let c = &mut self.counters;
        match change {
            Change::CreateGroup { num, .. } => c.next_group = c.next_group.max(num + 1),
            Change::RestoreGroup { group } => {
                c.next_group = c.next_group.max(group.num + 1);
                if let Some(max) = group.grants.keys().max() {
                    c.next_grant = c.next_grant.max(max + 1);
                }
            }
            Change::Grant { id, .. } => c.next_grant = c.next_grant.max(id + 1),
            Change::RegisterInstance { num, .. } => c.next_instance = c.next_instance.max(num + 1),
            _ => {}
        }
    }

    fn bump_counters(&mut self) {
        let groups: Vec<_> = self.groups.values().cloned().collect();
        for g in groups {
            self.bump_counters_for(&Change::RestoreGroup { group: g });
        }
        let nums: Vec<_> = self.instances.values().map(|i| i.num).collect();
        for n in nums {
            self.counters.next_instance = self.counters.next_instance.max(n + 1);
        }
    }
}
