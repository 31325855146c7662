//! The typed actions the control socket accepts, and what they answer.

use super::names::{GroupDescription, GroupKey, GroupName, InstanceId, InterfaceName, OwnerId};
use super::permission::IpPermission;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// An instance as the compute agent registers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    pub id: InstanceId,
    /// Host-side interface (tap or veth) whose ingress is filtered.
    pub interface: InterfaceName,
    /// The instance's own addresses: they join its groups' member sets.
    pub addresses: Vec<IpAddr>,
    /// Groups in the order given; at least one.
    pub groups: Vec<GroupKey>,
}

/// One validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateSecurityGroup {
        group: GroupKey,
        description: GroupDescription,
    },
    DeleteSecurityGroup {
        group: GroupKey,
    },
    AuthorizeSecurityGroupIngress {
        group: GroupKey,
        permission: IpPermission,
    },
    RevokeSecurityGroupIngress {
        group: GroupKey,
        permission: IpPermission,
    },
    DescribeSecurityGroups {
        owner: OwnerId,
        /// Empty: all groups of the owner.
        names: Vec<GroupName>,
    },
    RegisterInstance {
        instance: InstanceSpec,
    },
    DeregisterInstance {
        id: InstanceId,
    },
}

impl Action {
    /// The EC2 action name, used for the response element and in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Action::CreateSecurityGroup { .. } => "CreateSecurityGroup",
            Action::DeleteSecurityGroup { .. } => "DeleteSecurityGroup",
            Action::AuthorizeSecurityGroupIngress { .. } => "AuthorizeSecurityGroupIngress",
            Action::RevokeSecurityGroupIngress { .. } => "RevokeSecurityGroupIngress",
            Action::DescribeSecurityGroups { .. } => "DescribeSecurityGroups",
            Action::RegisterInstance { .. } => "RegisterInstance",
            Action::DeregisterInstance { .. } => "DeregisterInstance",
        }
    }

    /// Whether the action changes state (and so needs a commit, and admin rights).
    pub fn is_mutating(&self) -> bool {
        !matches!(self, Action::DescribeSecurityGroups { .. })
    }
}

/// A group as DescribeSecurityGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub owner: OwnerId,
    pub name: GroupName,
    pub description: GroupDescription,
    pub permissions: Vec<IpPermission>,
}

/// The successful answer to an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `<return>true</return>`.
    Done,
    /// DescribeSecurityGroups data.
    Groups(Vec<GroupInfo>),
}
