//! EC2 types and validation. Pure: no I/O, no kernel, no clock.

pub mod action;
pub mod error;
pub mod names;
pub mod permission;
pub mod query;
#[cfg(test)]
mod query_tests;

pub use action::{
    Action, Explanation, GroupInfo, InstanceSpec, Overlap, PacketProbe, Reply, StatusInfo,
};
pub use error::{ApiError, ApiErrors, ErrorCode};
pub use names::{GroupDescription, GroupKey, GroupName, InstanceId, InterfaceName, OwnerId};
pub use permission::{Cidr, IcmpSpec, IpPermission, PortRange, Protocol, Traffic};
