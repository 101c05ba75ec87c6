//! Berth's host mechanisms, synchronous and actor-free: OCI containers from a bundle (namespaces, mounts,
//! pivot_root, cgroups, seccomp, capabilities, pty) behind a runc-compatible lifecycle API.

pub mod atomic_file;
pub mod bundle;
pub mod cgroups;
pub mod console;
pub mod container;
pub mod defaults;
pub mod error;
pub mod image;
mod init;
pub mod monitor;
pub mod network;
pub mod proc;
pub mod registry;
pub mod safe_path;
pub mod seccomp;
pub mod signal;
pub mod snapshot;
pub mod state;
mod sync;
pub mod topdir;
pub mod unix_socket;
pub mod volume;

pub use container::{CreateOptions, Runtime};
pub use error::{Error, Result};
