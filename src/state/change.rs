//! The unit of mutation: what the store persists and the compiler translates to kernel ops.

use super::{GrantId, Group, Instance, InstanceNum};
use crate::model::{GroupDescription, GroupKey, InstanceId, InstanceSpec, IpPermission};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One change to the desired state. Each carries what is needed to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    CreateGroup {
        key: GroupKey,
        num: super::GroupNum,
        description: GroupDescription,
    },
    /// Deletes a group with its grants; carries the group so it can be restored.
    DeleteGroup { group: Group },
    /// The inverse of [`Change::DeleteGroup`].
    RestoreGroup { group: Group },
    Grant {
        group: GroupKey,
        id: GrantId,
        permission: IpPermission,
        shard: u32,
    },
    Revoke {
        group: GroupKey,
        id: GrantId,
        permission: IpPermission,
        shard: u32,
    },
    /// Remote members joining a group: only addresses that were not members yet.
    AddMembers {
        group: GroupKey,
        addresses: Vec<IpAddr>,
    },
    /// Remote members leaving a group: only addresses that were members.
    RemoveMembers {
        group: GroupKey,
        addresses: Vec<IpAddr>,
    },
    RegisterInstance {
        num: InstanceNum,
        slot: u32,
        spec: InstanceSpec,
    },
    /// Carries the instance so it can be registered again on undo.
    DeregisterInstance { instance: Instance },
    /// Replaces an instance's groups in one step.
    SetInstanceGroups {
        id: InstanceId,
        from: Vec<GroupKey>,
        to: Vec<GroupKey>,
    },
}

impl Change {
    /// The change that undoes this one.
    pub fn inverse(&self) -> Change {
        match self {
            Change::CreateGroup {
                key,
                num,
                description,
            } => Change::DeleteGroup {
                group: Group {
                    num: *num,
                    key: key.clone(),
                    description: description.clone(),
                    grants: BTreeMap::new(),
                    remote: Default::default(),
                },
            },
            Change::DeleteGroup { group } => Change::RestoreGroup {
                group: group.clone(),
            },
            Change::RestoreGroup { group } => Change::DeleteGroup {
                group: group.clone(),
            },
            Change::Grant {
                group,
                id,
                permission,
                shard,
            } => Change::Revoke {
                group: group.clone(),
                id: *id,
                permission: permission.clone(),
                shard: *shard,
            },
            Change::Revoke {
                group,
                id,
                permission,
                shard,
            } => Change::Grant {
                group: group.clone(),
                id: *id,
                permission: permission.clone(),
                shard: *shard,
            },
            Change::AddMembers { group, addresses } => Change::RemoveMembers {
                group: group.clone(),
                addresses: addresses.clone(),
            },
            Change::RemoveMembers { group, addresses } => Change::AddMembers {
                group: group.clone(),
                addresses: addresses.clone(),
            },
            Change::SetInstanceGroups { id, from, to } => Change::SetInstanceGroups {
                id: id.clone(),
                from: to.clone(),
                to: from.clone(),
            },
            Change::RegisterInstance { num, slot, spec } => Change::DeregisterInstance {
                instance: Instance {
                    num: *num,
                    slot: *slot,
                    spec: spec.clone(),
                },
            },
            Change::DeregisterInstance { instance } => Change::RegisterInstance {
                num: instance.num,
                slot: instance.slot,
                spec: instance.spec.clone(),
            },
        }
    }
}
