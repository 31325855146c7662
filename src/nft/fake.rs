//! In-memory stand-in for the kernel, for unit tests of the reconciler.
