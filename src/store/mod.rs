//! Durable desired state. A change is acknowledged only after `commit` returned, and
//! `commit` returns only after the change is on disk (fsynced).
//!
//! [`SqliteStore`] is the daemon's store (schema and guarantees in [`sqlite`]);
//! [`MemStore`] is an in-memory stand-in for unit tests of the layers above.

mod cell;
mod fault;
mod files;
mod ids;
mod memory;
mod migrate;
mod read;
mod row;
mod schema;
pub mod sqlite;
mod write;

#[cfg(test)]
mod tests;

pub use memory::MemStore;
pub use sqlite::SqliteStore;

use crate::state::{Change, Counters, State};

/// Why the store could not load or persist.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store exists but cannot be trusted (corrupt, truncated, inconsistent).
    /// The daemon refuses to start rather than start from an empty state.
    #[error("state store {path} is corrupt: {why}")]
    Corrupt { path: String, why: String },
    #[error("state store I/O: {0}")]
    Io(String),
    /// A committed change contradicts what the store holds (deleting a row that is not
    /// there, reusing an id, counters going backwards). Nothing of the commit was written.
    /// It means the in-memory state and the store disagree: a bug, or a store edited
    /// behind the daemon's back. Unlike `Io`, retrying cannot help.
    #[error("state store {path} refused a commit: {why}")]
    Conflict { path: String, why: String },
}

/// A durable store of the desired state.
pub trait Store: Send {
    /// Loads the persisted state; a store that was never written yields the empty state.
    fn load(&mut self) -> Result<State, StoreError>;

    /// Persists `changes` (already applied, in order, to the in-memory state) and the
    /// counters as they are after them, as one durable transaction.
    fn commit(&mut self, changes: &[Change], counters: Counters) -> Result<(), StoreError>;
}
