//! secgroupd: EC2-style security groups enforced with nftables.

pub mod client;
pub mod compile;
pub mod config;
pub mod control;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod reconcile;
pub mod reload;
pub mod sd_notify;
pub mod state;
pub mod store;
