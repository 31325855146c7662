//! secgroupd: EC2-style security groups enforced with nftables.

pub mod client;
pub mod compile;
pub mod config;
pub mod control;
pub mod model;
pub mod nft;
pub mod reconcile;
pub mod state;
pub mod store;
