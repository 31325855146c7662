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
    /// Host-local: addresses of members of the group that live on other hosts.
    AddGroupMembers {
        group: GroupKey,
        addresses: Vec<IpAddr>,
    },
    RemoveGroupMembers {
        group: GroupKey,
        addresses: Vec<IpAddr>,
    },
    /// Host-local: replaces an instance's groups atomically.
    ModifyInstanceGroups {
        id: InstanceId,
        groups: Vec<GroupKey>,
    },
    /// Host-local: the daemon's status (answered by the reconciler).
    GetStatus,
    /// Host-local: which permission admits a packet to an instance (answered by the
    /// reconciler from the compiled plan).
    ExplainPacket {
        probe: PacketProbe,
    },
}

/// A hypothetical packet to an instance, for `ExplainPacket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketProbe {
    pub instance: InstanceId,
    pub source: IpAddr,
    pub protocol: super::permission::Protocol,
    /// TCP/UDP destination port.
    pub port: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
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
            Action::AddGroupMembers { .. } => "AddGroupMembers",
            Action::RemoveGroupMembers { .. } => "RemoveGroupMembers",
            Action::ModifyInstanceGroups { .. } => "ModifyInstanceGroups",
            Action::GetStatus => "GetStatus",
            Action::ExplainPacket { .. } => "ExplainPacket",
        }
    }

    /// Whether the action changes state (and so needs a commit, and admin rights).
    pub fn is_mutating(&self) -> bool {
        !matches!(
            self,
            Action::DescribeSecurityGroups { .. }
                | Action::GetStatus
                | Action::ExplainPacket { .. }
        )
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

/// A permission of one of an instance's groups that still admits some of the traffic a
/// revoked permission admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The group of the permission that still admits (may be the revoked one's group).
    pub group: GroupKey,
    pub permission: IpPermission,
    /// Whether it admits all of the revoked permission's traffic, or only part of it.
    pub full: bool,
    /// Instances of the revoked group that are also members of `group`.
    pub instances: Vec<InstanceId>,
}

/// Figures for GetStatus.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusInfo {
    /// Generation of the last commit (store and kernel), 0 before the first.
    pub generation: u64,
    pub groups: usize,
    pub permissions: usize,
    pub instances: usize,
    pub remote_members: usize,
    /// Rules in secgroupd's table(s), as the plan has them.
    pub rules: usize,
    /// Set elements in secgroupd's table(s), as the plan has them.
    pub set_elements: usize,
    /// Actions in the last commit.
    pub last_commit_actions: usize,
    /// Netlink messages in the last commit's batch.
    pub last_commit_ops: usize,
    /// Time of the last commit: durable write plus kernel batch, in microseconds.
    pub last_commit_micros: u64,
    pub last_store_micros: u64,
    pub last_kernel_micros: u64,
    /// Configuration echoes, for operators.
    pub table: String,
    pub mode: String,
    pub established_on_revoke: String,
}

/// What admits a probe packet, for ExplainPacket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub instance: InstanceId,
    pub interface: InterfaceName,
    /// Every permission of the instance's groups that admits the packet, in the order the
    /// kernel evaluates them (the first one is the one that accepts it).
    pub admitted_by: Vec<(GroupKey, IpPermission)>,
}

/// The successful answer to an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `<return>true</return>`.
    Done,
    /// DescribeSecurityGroups data.
    Groups(Vec<GroupInfo>),
    /// RevokeSecurityGroupIngress: `<return>true</return>`, plus the permissions that
    /// still admit (part of) the revoked traffic, if any.
    Revoked {
        overlaps: Vec<Overlap>,
    },
    Status(StatusInfo),
    Explained(Explanation),
}
