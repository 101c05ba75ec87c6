//! The runtime's error type: every failure names the object and the problem in one line.

use std::path::PathBuf;

use crate::cgroups::CgroupError;
use crate::seccomp::SeccompError;

/// Errors of the OCI runtime API. Messages are complete sentences fragments meant to be printed after
/// `berth: ` on one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {0:?}: use 1-1024 letters, digits, '_', '-', '+' or '.'")]
    InvalidId(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("container {id} is {status}: {hint}")]
    WrongState {
        id: String,
        status: crate::state::Status,
        hint: &'static str,
    },
    #[error("bundle {}: {reason}", path.display())]
    Bundle { path: PathBuf, reason: String },
    #[error("config.json: {0}")]
    Spec(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("container init: {0}")]
    Init(String),
    #[error("exec in container {id}: {reason}")]
    Exec { id: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] SeccompError),
}

impl Error {
    /// Wraps an I/O error with what was being done, e.g. `io("create /run/berth/x", e)`.
    pub fn io(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
