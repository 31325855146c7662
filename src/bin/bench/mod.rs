//! The parts of `secgroupd-bench`, one job per file:
//!
//! - [`cleanup`], [`netns`]: namespaces, processes and directories that never outlive
//!   the run; [`daemon`]: the real `secgroupd` binary in a namespace;
//! - [`workload`], [`populate`]: the tables, built through the library's store;
//! - [`http`]: the raw HTTP/1.1 client that times requests; [`kernel`]: the table read
//!   back; [`twin`]: the baselines (`nft` process, full reload, bare netlink) on a
//!   copy of the daemon's table;
//! - [`revoke`] (parts a, b, d), [`throughput`] (c), [`datapath`] (e), [`lifecycle`] (f);
//! - [`stats`], [`results`], [`report`], [`csv`], [`svg`], [`machine`]: numbers and
//!   output;
//!   [`sizes`]: how much of everything, full and `--quick`.
//!
//! It lives next to the binary rather than in the library: none of it is API, and the
//! library stays free of benchmark code.

pub mod cleanup;
pub mod csv;
pub mod daemon;
pub mod datapath;
pub mod http;
pub mod kernel;
pub mod lifecycle;
pub mod machine;
pub mod netns;
pub mod populate;
pub mod report;
pub mod results;
pub mod revoke;
pub mod sizes;
pub mod stats;
pub mod svg;
pub mod throughput;
pub mod twin;
pub mod workload;

use std::path::PathBuf;

/// What every part needs.
pub struct Env {
    /// The `secgroupd` binary.
    pub bin: PathBuf,
    /// secgroupd's table name in every namespace.
    pub table: String,
    pub sizes: sizes::Sizes,
}
