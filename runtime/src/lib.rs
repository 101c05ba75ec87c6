//! Berth's host mechanisms, synchronous and actor-free: OCI containers from a bundle (namespaces, mounts,
//! pivot_root, cgroups, seccomp, capabilities, pty) behind a runc-compatible lifecycle API.

pub mod cgroups;
pub mod seccomp;
