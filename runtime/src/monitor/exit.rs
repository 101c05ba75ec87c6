//! The exit file: how a container ended, written once by its monitor so that the result survives the
//! agent being down when it happens.
//!
//! `{"exit_code": N, "signal": null | N, "finished_at": "<RFC 3339, nanoseconds>", "oom_killed": bool}`,
//! written to a temporary file in the same directory and renamed, so a reader sees either no file or
//! the whole record. It is not fsynced: it must outlive the agent, not the machine. After a power
//! loss the container reports an unknown end (255), as Docker's do after a host crash.

use std::path::Path;
use std::time::SystemTime;

use nix::sys::wait::WaitStatus;
use serde::{Deserialize, Serialize};

/// A container's end, as the exit file holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit status, or 128+N when killed by signal N (as shells and Docker report it).
    pub exit_code: i32,
    /// The killing signal's number, `null` for a normal exit.
    pub signal: Option<i32>,
    pub finished_at: String,
    /// Whether the kernel's OOM killer killed a process of the container's cgroup.
    pub oom_killed: bool,
}

impl ExitRecord {
    /// The record for a reaped init; `None` for a wait status that is not an end.
    pub fn from_wait(status: WaitStatus, oom_killed: bool, at: SystemTime) -> Option<Self> {
        let (exit_code, signal) = match status {
            WaitStatus::Exited(_, code) => (code, None),
            WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
            _ => return None,
        };
        Some(ExitRecord {
            exit_code,
            signal,
            finished_at: humantime::format_rfc3339_nanos(at).to_string(),
            oom_killed,
        })
    }

    /// Writes the record to `path` atomically (see the module notes).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut data = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        data.push(b'\n');
        crate::atomic_file::replace(path, &data)
    }

    /// Reads an exit file, e.g. for the agent after a restart.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let data = std::fs::read(path)?;
        serde_json::from_slice(&data)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}
