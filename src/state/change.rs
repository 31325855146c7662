//! The unit of mutation: what the store persists and the compiler translates to kernel ops.

use super::{GrantId, Group, Instance, InstanceNum};
use crate::model::{GroupDescription, GroupKey, InstanceSpec, IpPermission};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    },
    Revoke {
        group: GroupKey,
        id: GrantId,
        permission: IpPermission,
    },
    RegisterInstance {
        num: InstanceNum,
        spec: InstanceSpec,
    },
    /// Carries the instance so it can be registered again on undo.
    DeregisterInstance { instance: Instance },
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
            } => Change::Revoke {
                group: group.clone(),
                id: *id,
                permission: permission.clone(),
            },
            Change::Revoke {
                group,
                id,
                permission,
            } => Change::Grant {
                group: group.clone(),
                id: *id,
                permission: permission.clone(),
            },
            Change::RegisterInstance { num, spec } => Change::DeregisterInstance {
                instance: Instance {
                    num: *num,
                    spec: spec.clone(),
                },
            },
            Change::DeregisterInstance { instance } => Change::RegisterInstance {
                num: instance.num,
                spec: instance.spec.clone(),
            },
        }
    }
}
