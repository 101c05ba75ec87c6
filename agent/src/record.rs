//! A container's persisted record, in two files of its directory:
//! - `state.json`: what must survive a power loss (configuration, state, exit code). It is written
//!   durably ([`runtime::atomic_file::write_atomic`]) before any transition is acknowledged, except
//!   for a `--rm` container, which a power loss removes anyway.
//! - `live.json`: which processes and network endpoint serve the container now. A reboot ends them,
//!   so it is written atomically but without fsync ([`runtime::atomic_file::replace`]); the agent
//!   needs it only to re-adopt containers after its own restart, which the page cache survives.
//!   Recording a freshly set-up monitor thus costs no fsync.

use std::io;

use protocol::messages::ContainerConfig;
use serde::{Deserialize, Serialize};

use crate::layout::ContainerPaths;
use crate::lifecycle::State;
use crate::network::state::Endpoint;

fn invalid(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

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
    /// Host pid of the container's init while running (in `live.json`).
    #[serde(skip_serializing, default)]
    pub pid: Option<i32>,
    /// The monitor process holding the container's stdio, and its start time (pid reuse guard; in
    /// `live.json`).
    #[serde(skip_serializing, default)]
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
    /// Addresses and published ports while it runs on a bridge network (in `live.json`).
    #[serde(skip_serializing, default)]
    pub network: Option<Endpoint>,
}

/// The part of a [`Record`] kept in `live.json`.
#[derive(Serialize, Deserialize)]
struct Live {
    pid: Option<i32>,
    monitor: Option<(i32, u64)>,
    network: Option<Endpoint>,
}

impl Record {
    /// Loads the record of the container in `paths`. A missing or unreadable `live.json` (after a
    /// power loss) means no process serves it.
    pub fn load(paths: &ContainerPaths) -> io::Result<Record> {
        let data = std::fs::read(paths.state())?;
        let mut record: Record = serde_json::from_slice(&data).map_err(invalid)?;
        let live = std::fs::read(paths.live())
            .ok()
            .and_then(|d| serde_json::from_slice::<Live>(&d).ok());
        if let Some(live) = live {
            record.pid = live.pid;
            record.monitor = live.monitor;
            record.network = live.network;
        }
        Ok(record)
    }

    /// Whether `state.json` is fsynced: not for a container removed when it exits (`--rm`). Such
    /// a container does not outlive a crash of the host (its layer is volatile), and the agent
    /// removes it whether its record was written or not; a crash of the agent alone loses
    /// nothing, the page cache outlives it.
    pub fn is_durable(&self) -> bool {
        !self.config.auto_remove
    }

    /// Persists the whole record: `live.json`, then `state.json` ([`Record::is_durable`]).
    pub fn save(&self, paths: &ContainerPaths) -> io::Result<()> {
        self.save_live(paths)?;
        let data = serde_json::to_vec_pretty(self).map_err(invalid)?;
        if self.is_durable() {
            runtime::atomic_file::write_atomic(&paths.state(), &data)
        } else {
            runtime::atomic_file::replace(&paths.state(), &data)
        }
    }

    /// Persists only which processes and endpoint serve the container (no fsync).
    pub fn save_live(&self, paths: &ContainerPaths) -> io::Result<()> {
        let live = Live {
            pid: self.pid,
            monitor: self.monitor,
            network: self.network.clone(),
        };
        let data = serde_json::to_vec(&live).map_err(invalid)?;
        runtime::atomic_file::replace(&paths.live(), &data)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            id: "ab".repeat(32),
            name: "quiet_fox".into(),
            created: 1,
            config: ContainerConfig::default(),
            image_id: "sha256:00".into(),
            args: vec!["true".into()],
            hostname: "abababababab".into(),
            state: State::Running,
            pid: Some(4242),
            monitor: Some((4241, 99)),
            exit_code: 0,
            oom_killed: false,
            started_at: 2,
            finished_at: 0,
            restart_count: 0,
            manually_stopped: false,
            anonymous_volumes: Vec::new(),
            mounts: Vec::new(),
            image_stop_signal: None,
            network: None,
        }
    }

    fn scratch() -> (tempfile::TempDir, ContainerPaths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = ContainerPaths {
            dir: dir.path().to_path_buf(),
        };
        (dir, paths)
    }

    #[test]
    fn live_processes_stay_out_of_the_durable_record() {
        let (_dir, paths) = scratch();
        record().save(&paths).unwrap();
        let durable = std::fs::read_to_string(paths.state()).unwrap();
        assert!(
            !durable.contains("4242") && !durable.contains("4241"),
            "{durable}"
        );
        let back = Record::load(&paths).unwrap();
        assert_eq!((back.pid, back.monitor), (Some(4242), Some((4241, 99))));
        assert_eq!(back.state, State::Running);
    }

    #[test]
    fn a_lost_or_torn_live_file_means_no_process_serves_the_container() {
        let (_dir, paths) = scratch();
        record().save(&paths).unwrap();
        std::fs::write(paths.live(), b"").unwrap();
        let torn = Record::load(&paths).unwrap();
        assert_eq!((torn.pid, torn.monitor), (None, None));
        std::fs::remove_file(paths.live()).unwrap();
        let lost = Record::load(&paths).unwrap();
        assert_eq!((lost.pid, lost.monitor), (None, None));
        assert_eq!(lost.name, "quiet_fox");
    }

    #[test]
    fn only_the_live_file_changes_when_a_monitor_is_recorded() {
        let (_dir, paths) = scratch();
        let mut r = record();
        r.pid = None;
        r.monitor = None;
        r.save(&paths).unwrap();
        let durable = std::fs::read(paths.state()).unwrap();
        r.pid = Some(7);
        r.monitor = Some((6, 5));
        r.save_live(&paths).unwrap();
        assert_eq!(std::fs::read(paths.state()).unwrap(), durable);
        assert_eq!(Record::load(&paths).unwrap().monitor, Some((6, 5)));
    }
}
