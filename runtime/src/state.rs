//! Per-container state on disk (`<root>/<id>/state.json`), written atomically, and the live status
//! derived from it, printed as runc prints `state`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::proc;

/// The file a created-but-not-started init blocks on; `start` opens it to release the init.
pub const EXEC_FIFO: &str = "exec.fifo";
const STATE_FILE: &str = "state.json";

/// Lifecycle status as the OCI runtime spec names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime remembers about a container between invocations.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid`, so a recycled pid is never mistaken for the container.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub cgroup_path: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// The JSON `state` prints, field for field as runc does.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateOutput<'a> {
    pub oci_version: &'static str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'static str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
}

/// A container's state directory under the runtime root.
#[derive(Clone, Debug)]
pub struct StateDir {
    pub id: String,
    pub path: PathBuf,
}

impl StateDir {
    /// Validates `id` so it can never name a path outside `root`.
    pub fn new(root: &Path, id: &str) -> Result<Self> {
        let valid = !id.is_empty()
            && id.len() <= 1024
            && id != "."
            && id != ".."
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'.'));
        if !valid {
            return Err(Error::InvalidId(id.to_owned()));
        }
        Ok(StateDir {
            id: id.to_owned(),
            path: root.join(id),
        })
    }

    /// Claims the directory for a new container; an existing one means a duplicate id.
    pub fn create(&self) -> Result<()> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
        }
        match std::fs::create_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::AlreadyExists(self.id.clone()))
            }
            Err(e) => Err(Error::io(format!("create {}", self.path.display()), e)),
        }
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    /// Loads the record; a missing directory or file means the container does not exist.
    pub fn load(&self) -> Result<Record> {
        let file = self.path.join(STATE_FILE);
        let data = match std::fs::read(&file) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(self.id.clone()))
            }
            Err(e) => return Err(Error::io(format!("read {}", file.display()), e)),
        };
        serde_json::from_slice(&data).map_err(|e| {
            Error::io(
                format!("parse {}", file.display()),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Writes the record atomically and, as a record of live processes, without fsync (see
    /// [`crate::atomic_file::replace`]).
    pub fn save(&self, record: &Record) -> Result<()> {
        let file = self.path.join(STATE_FILE);
        let data = serde_json::to_vec(record).map_err(|e| {
            Error::io(
                "encode state",
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        crate::atomic_file::replace(&file, &data)
            .map_err(|e| Error::io(format!("write {}", file.display()), e))
    }

    /// Removes everything the runtime kept for this container.
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", self.path.display()), e)),
        }
    }
}

impl Record {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.pid)
    }

    pub fn is_alive(&self) -> bool {
        proc::is_alive(self.pid(), self.pid_start_time)
    }

    /// The live status: stopped once the init is gone, created while it still waits on the exec fifo.
    pub fn status(&self, dir: &StateDir) -> Status {
        if !self.is_alive() {
            Status::Stopped
        } else if dir.fifo().exists() {
            Status::Created
        } else if crate::cgroups::Cgroup::open(&self.cgroup_path)
            .and_then(|cg| cg.is_frozen())
            .unwrap_or(false)
        {
            Status::Paused
        } else {
            Status::Running
        }
    }

    pub fn output<'a>(&'a self, status: Status) -> StateOutput<'a> {
        StateOutput {
            oci_version: "1.0.2",
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: "",
            annotations: &self.annotations,
        }
    }
}
