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
    /// The shell's code for a program that could not be started: 127 when it does not exist, 126
    /// when it cannot be executed; `None` for every other failure.
    pub fn exec_exit_code(&self) -> Option<i32> {
        use crate::init::{NOT_EXECUTABLE, NOT_IN_PATH, NOT_REGULAR, NO_SUCH_FILE};
        let text = match self {
            Error::Exec { reason, .. } | Error::Init(reason) => reason,
            _ => return None,
        };
        if text.contains(NOT_IN_PATH) || text.contains(NO_SUCH_FILE) {
            Some(127)
        } else if text.contains(NOT_EXECUTABLE) || text.contains(NOT_REGULAR) {
            Some(126)
        } else {
            None
        }
    }

    /// Wraps an I/O error with what was being done, e.g. `io("create /run/berth/x", e)`.
    pub fn io(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
