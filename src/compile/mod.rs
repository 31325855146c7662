//! Pure compiler from desired state to the kernel objects that enforce it.
//!
//! [`compile`] builds the whole plan (start-up, goldens, operators); [`Delta`] updates a
//! plan change by change, touching only the objects a change concerns, so a revoke costs
//! the same whatever the size of the table. Both use the constructors in [`build`].

pub mod build;
mod delta;
pub mod explain;
pub mod plan;
pub mod render;
#[cfg(test)]
mod tests;

pub use build::Options;
pub use delta::Delta;
pub use plan::Plan;

use crate::state::State;
use build::{
    base_objects, grant_objects, group_objects, instance_objects, shard_objects, source_objects,
};
use std::collections::BTreeSet;

/// The whole plan for a state.
pub fn compile(state: &State, o: &Options) -> Plan {
    let mut plan = Plan {
        table: o.table.clone(),
        ..Plan::default()
    };
    plan.objs.extend(base_objects(o));
    for g in state.groups() {
        plan.objs.extend(group_objects(g));
        let shards: BTreeSet<u32> = g.grants.values().map(|gr| gr.shard).collect();
        for s in shards {
            plan.objs.extend(shard_objects(g, s));
        }
        for (id, gr) in &g.grants {
            plan.objs
                .extend(grant_objects(o, state, g, *id, &gr.permission, gr.shard));
        }
        plan.objs.extend(source_objects(state, g));
    }
    for i in state.instances() {
        plan.objs.extend(instance_objects(o, state, i));
    }
    plan
}
