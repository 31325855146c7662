//! The netlink backend against the real kernel. Each test runs in network namespaces of
//! its own (`sgd-*-<pid>-<n>`, see `tests/common`), deleted at the end even when the test
//! panics, so the host's ruleset is never touched. Needs root, `ip`, `nft` and
//! `conntrack`; without root the tests fail, unless `SECGROUPD_SKIP_NETNS=1` is set, in
//! which case they return early with a notice.
//!
//! - `listing`: what `nft list` shows for every kind of object, against goldens, against
//!   nft's own encoding of the same text, and against `compile::render::rule_body`;
//! - `dumps`: reading both tables back, large tables, concurrent commits;
//! - `batches`: idempotency, positions, drift repair, refused batches;
//! - `packets`: real packets through the lowered rules (verdict maps, conntrack marks,
//!   concatenations, the bridge table);
//! - `timing`: the floor of an update (printed, not asserted).
//!
//! Tests that only need a namespace put tables of someone else's into it (`inet other`,
//! `bridge other`, with names that collide with secgroupd's) and check at the end that
//! nothing changed them.

mod common;

#[path = "netlink_backend/batches.rs"]
mod batches;
#[path = "netlink_backend/bridged.rs"]
mod bridged;
#[path = "netlink_backend/dumps.rs"]
mod dumps;
#[path = "netlink_backend/inspect.rs"]
mod inspect;
#[path = "netlink_backend/layout.rs"]
mod layout;
#[path = "netlink_backend/listing.rs"]
mod listing;
#[path = "netlink_backend/ns.rs"]
mod ns;
#[path = "netlink_backend/ops.rs"]
mod ops;
#[path = "netlink_backend/routed.rs"]
mod routed;
#[path = "netlink_backend/timing.rs"]
mod timing;

/// secgroupd's table name in every test (the same for both families).
const T: &str = "secgroupd";
