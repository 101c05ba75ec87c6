//! The OCI lifecycle over a state root: create, start, state, kill, delete, and `run` (create + start,
//! then wait). One file per operation; they share the state directory and the record kept there.

mod create;
pub mod exec;
mod plan;
mod run;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cgroups::{Cgroup, CgroupError};
use crate::error::{Error, Result};
use crate::state::{Record, StateDir, Status};

pub use create::CreateOptions;

/// How long `delete --force` waits for a killed init to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A runtime state root (runc's `--root`), holding one directory per container.
pub struct Runtime {
    root: PathBuf,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: &str) -> Result<StateDir> {
        StateDir::new(&self.root, id)
    }

    /// The container's record and live status.
    pub fn state(&self, id: &str) -> Result<(Record, Status)> {
        let dir = self.dir(id)?;
        let record = dir.load()?;
        let status = record.status(&dir);
        Ok((record, status))
    }

    /// Every container under the root, in id order.
    pub fn list(&self) -> Result<Vec<(Record, Status)>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("read {}", self.root.display()), e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // A directory without a state file is a create in progress (or a crashed one).
            if let Ok(found) = self.state(&id) {
                out.push(found);
            }
        }
        out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Ok(out)
    }

    /// Releases a created container's init so it execs the user program.
    pub fn start(&self, id: &str) -> Result<()> {
        let dir = self.dir(id)?;
        let record = dir.load()?;
        let status = record.status(&dir);
        if status != Status::Created {
            return Err(Error::WrongState {
                id: id.to_owned(),
                status,
                hint: "only a created container can be started",
            });
        }
        release_exec_fifo(&dir, &record)
    }

    /// Sends `signal` to the init, or with `all` to every process of the container.
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<()> {
        let dir = self.dir(id)?;
        let record = dir.load()?;
        let status = record.status(&dir);
        if status == Status::Stopped {
            return Err(Error::WrongState {
                id: id.to_owned(),
                status,
                hint: "there is no process to signal",
            });
        }
        if all {
            let cgroup = Cgroup::open(&record.cgroup_path)?;
            for pid in cgroup.procs()? {
                let _ = nix::sys::signal::kill(pid, signal);
            }
            return Ok(());
        }
        match crate::proc::signal(record.pid(), record.pid_start_time, signal) {
            Err(nix::Error::ESRCH) => Err(Error::WrongState {
                id: id.to_owned(),
                status: Status::Stopped,
                hint: "there is no process to signal",
            }),
            other => other.map_err(|e| Error::io(format!("signal container {id}"), e)),
        }
    }

    /// Freezes every process of a running container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let (record, status) = self.state(id)?;
        if status != Status::Running {
            return Err(Error::WrongState {
                id: id.to_owned(),
                status,
                hint: "only a running container can be paused",
            });
        }
        Ok(Cgroup::open(&record.cgroup_path)?.freeze()?)
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let (record, status) = self.state(id)?;
        if status != Status::Paused {
            return Err(Error::WrongState {
                id: id.to_owned(),
                status,
                hint: "only a paused container can be resumed",
            });
        }
        Ok(Cgroup::open(&record.cgroup_path)?.thaw()?)
    }

    /// The pids (host view) of every process in the container.
    pub fn pids(&self, id: &str) -> Result<Vec<Pid>> {
        let dir = self.dir(id)?;
        let record = dir.load()?;
        if record.status(&dir) == Status::Stopped {
            return Ok(Vec::new());
        }
        Ok(Cgroup::open(&record.cgroup_path)?.procs()?)
    }

    /// Removes a container. A running or paused one needs `force`, which kills it first; with `force` an
    /// unknown id is not an error.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let dir = self.dir(id)?;
        let record = match dir.load() {
            // As runc: forcing the deletion of something already gone succeeds.
            Err(Error::NotFound(_)) if force => return Ok(()),
            other => other?,
        };
        let status = record.status(&dir);
        match status {
            Status::Stopped => {}
            Status::Running | Status::Paused if !force => {
                return Err(Error::WrongState {
                    id: id.to_owned(),
                    status,
                    hint: "stop it first or use --force",
                })
            }
            _ => {
                let _ = crate::proc::signal(record.pid(), record.pid_start_time, Signal::SIGKILL);
            }
        }
        destroy(&dir, &record)
    }
}

/// Releases everything a container holds: its processes and cgroup, then its state directory. Mounts
/// live in the container's mount namespace and vanish with its last process.
fn destroy(dir: &StateDir, record: &Record) -> Result<()> {
    match Cgroup::open(&record.cgroup_path) {
        Ok(cg) => cg.destroy()?,
        Err(CgroupError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    if !crate::proc::wait_gone(record.pid(), record.pid_start_time, KILL_WAIT) {
        return Err(Error::Init(format!(
            "container {} did not exit after SIGKILL",
            record.id
        )));
    }
    dir.remove()
}

/// Opens the exec fifo for reading (which unblocks the init's open for writing) and waits for its byte.
fn release_exec_fifo(dir: &StateDir, record: &Record) -> Result<()> {
    use nix::fcntl::OFlag;
    let path = dir.fifo();
    let fifo = nix::fcntl::open(
        &path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(&fifo, &mut byte) {
            Ok(1) => break,
            Ok(_) | Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        }
        if !record.is_alive() {
            return Err(Error::Init(format!(
                "container {} exited before it was started",
                record.id
            )));
        }
        // The init is between its open() and write(): microseconds.
        std::thread::sleep(Duration::from_micros(50));
    }
    std::fs::remove_file(&path).map_err(|e| Error::io(format!("remove {}", path.display()), e))
}
