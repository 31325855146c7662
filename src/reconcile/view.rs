//! What the reconciler knows of the kernel: the handle of every rule of the plan, and the
//! ruleset generation its knowledge is valid for.

use crate::compile::plan::{ChainName, RuleId};
use std::collections::HashMap;

/// Handles of the plan's rules in the kernel.
#[derive(Debug, Default, Clone)]
pub struct KernelView {
    handles: HashMap<(ChainName, RuleId), u64>,
    /// Ruleset generation after our last commit or dump; batches are built against it and
    /// fail (instead of deleting the wrong rule) if anything changed the ruleset since.
    pub genid: Option<u32>,
}

impl KernelView {
    pub fn handle(&self, chain: ChainName, id: RuleId) -> Option<u64> {
        self.handles.get(&(chain, id)).copied()
    }
    pub fn set(&mut self, chain: ChainName, id: RuleId, handle: u64) {
        self.handles.insert((chain, id), handle);
    }
    pub fn forget(&mut self, chain: ChainName, id: RuleId) {
        self.handles.remove(&(chain, id));
    }
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.handles.len()
    }
    pub fn clear(&mut self) {
        self.handles.clear();
        self.genid = None;
    }
}
