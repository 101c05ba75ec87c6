//! A container's persisted record (`containers/<id>/state.json`), written atomically (temp file, fsync,
//! rename, fsync of the directory) before any transition is acknowledged.

use std::path::Path;

use protocol::messages::ContainerConfig;
use serde::{Deserialize, Serialize};

use crate::lifecycle::State;

/// Everything the agent must remember about a container across its own restarts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    /// Unix nanoseconds.
    pub created: i64,
    pub config: ContainerConfig,
    pub image_id: String,
    /// The command line actually run (entrypoint + cmd).
    pub args: Vec<String>,
    pub hostname: String,
    pub state: State,
    /// Host pid of the container's init while running.
    pub pid: Option<i32>,
    /// The monitor process holding the container's stdio, and its start time (pid reuse guard).
    pub monitor: Option<(i32, u64)>,
    pub exit_code: i64,
    pub oom_killed: bool,
    /// Unix nanoseconds; 0 when never.
    pub started_at: i64,
    pub finished_at: i64,
    pub restart_count: u32,
    /// Set by an explicit stop, so `unless-stopped` and `always` respect it.
    pub manually_stopped: bool,
    /// Volumes created for this container alone (removed by `rm -v`).
    pub anonymous_volumes: Vec<String>,
    /// Mounts as inspect shows them.
    pub mounts: Vec<protocol::messages::MountPoint>,
    /// The image's stop signal, when it has one.
    pub image_stop_signal: Option<String>,
    /// Addresses and published ports while it runs on a bridge network.
    #[serde(default)]
    pub network: Option<crate::network::state::Endpoint>,
}

impl Record {
    pub fn load(path: &Path) -> std::io::Result<Record> {
        let data = std::fs::read(path)?;
        serde_json::from_slice(&data)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let data = serde_json::to_vec_pretty(self)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        runtime::atomic_file::write_atomic(path, &data)
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// Unix nanoseconds now.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Unix nanoseconds of an RFC 3339 time (as the monitor writes them); `None` if it is not one.
pub fn rfc3339_nanos(text: &str) -> Option<i64> {
    humantime::parse_rfc3339(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
}
