//! Pure compiler from desired state to the kernel objects that enforce it.

pub mod plan;
