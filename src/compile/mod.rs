//! Pure compiler from desired state to the kernel objects that enforce it.
//!
//! [`compile`] builds the whole plan (start-up, goldens, operators); [`Delta`] updates a
//! plan change by change, touching only the objects a change concerns, so a revoke costs
//! the same whatever the size of the table. Both use the constructors in [`build`].

pub mod build;
mod delta;
pub mod plan;
pub mod render;
#[cfg(test)]
mod tests;

pub use delta::Delta;
pub use plan::Plan;

use crate::state::State;
use build::{base_objects, grant_rule, group_objects, instance_objects, member_elem};
use plan::Obj;

/// The whole plan for a state.
pub fn compile(state: &State, table: &str) -> Plan {
    let mut plan = Plan {
        table: table.to_string(),
        ..Plan::default()
    };
    plan.objs.extend(base_objects());
    for g in state.groups() {
        plan.objs.extend(group_objects(g));
        for (id, gr) in &g.grants {
            plan.objs.extend(grant_rule(state, g, *id, &gr.permission));
        }
        for a in &g.remote {
            plan.objs.insert(member_elem(g.num, *a), Obj::Elem);
        }
    }
    for i in state.instances() {
        plan.objs.extend(instance_objects(state, i));
        for gk in &i.spec.groups {
            if let Some(g) = state.group(gk) {
                for a in &i.spec.addresses {
                    plan.objs.insert(member_elem(g.num, *a), Obj::Elem);
                }
            }
        }
    }
    plan
}
