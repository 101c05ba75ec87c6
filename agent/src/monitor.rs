//! The agent's side of a container's monitor (`berth-shim`): starting it, learning when it is done,
//! and reading the exit file it leaves. The monitor, not the agent, holds the container's stdio and
//! reaps it, so containers outlive an agent crash or upgrade.

use std::ffi::OsString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use runtime::monitor::args;
use serde::Deserialize;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// How long a monitor may take to set its container up and report; a create never hangs on a stuck
/// one.
const REPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a restarting agent waits for a lost monitor to exit once its container is killed.
const ORPHAN_EXIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How to start one container's monitor.
pub struct Launch<'a> {
    /// The `berth-shim` binary.
    pub shim: &'a Path,
    pub runtime_root: &'a Path,
    /// What the monitor is told about its container (a spare learns it only at its go).
    pub container: args::ContainerArgs<'a>,
}

/// A started container: its init and the monitor that watches it.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub pid: i32,
    pub monitor_pid: i32,
    pub monitor_start: u64,
}

#[derive(Deserialize)]
struct Report {
    pid: Option<i32>,
    monitor_pid: Option<i32>,
    error: Option<String>,
}

/// What the monitor wrote when the container ended.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ExitInfo {
    pub exit_code: i64,
    #[serde(default)]
    pub oom_killed: bool,
    #[serde(skip)]
    pub finished_at: i64,
}

#[derive(Deserialize)]
struct ExitFile {
    exit_code: i64,
    #[serde(default)]
    oom_killed: bool,
    finished_at: Option<String>,
}

impl Launch<'_> {
    /// The monitor's command line (`runtime::monitor::args`).
    fn args(&self) -> Vec<OsString> {
        let mut line = args::runtime_root_args(self.runtime_root);
        line.extend(self.container.to_args());
        line
    }
}

/// A monitor started ahead of its container: it execs, loads and detaches while the agent still
/// prepares the bundle, then waits for [`Pending::go`]. Dropped unused, it sees the end of its
/// input and exits.
pub struct Pending {
    child: tokio::process::Child,
    go: tokio::process::ChildStdin,
    report: tokio::process::ChildStdout,
    /// What `go` sends: a spare's whole command line, or one byte.
    launch: Vec<u8>,
}

/// Starts a monitor that waits for [`Pending::go`] before it touches the bundle.
pub fn spawn(l: Launch<'_>) -> Result<Pending, String> {
    let mut line = l.args();
    line.push(args::WAIT_FOR_GO.into());
    start_shim(l.shim, &line)
}

/// Starts a spare monitor for `runtime_root`, not yet tied to a container: [`Pending::assign`]
/// gives it one.
pub fn spawn_spare(shim: &Path, runtime_root: &Path) -> Result<Pending, String> {
    start_shim(shim, &args::spare_args(runtime_root))
}

fn start_shim(shim: &Path, args: &[OsString]) -> Result<Pending, String> {
    let mut cmd = tokio::process::Command::new(shim);
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(false);
    let mut child = cmd.spawn().map_err(|e| format!("start monitor: {e}"))?;
    let go = child.stdin.take().ok_or("monitor has no stdin")?;
    let report = child.stdout.take().ok_or("monitor has no stdout")?;
    Ok(Pending {
        child,
        go,
        report,
        launch: b"\n".to_vec(),
    })
}

impl Pending {
    /// Gives a spare monitor ([`spawn_spare`]) its container; it learns it on [`Pending::go`].
    /// The spare was started for the same runtime root.
    pub fn assign(mut self, l: &Launch<'_>) -> Pending {
        self.launch = args::encode(&l.container.to_args());
        self
    }

    /// Whether the monitor still waits for its go; one killed meanwhile is of no use.
    pub fn is_waiting(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Lets the monitor set its container up (the bundle is ready) and waits for its one-line
    /// report: the container is held before exec, or why it could not be set up. `meanwhile` runs
    /// while the report is awaited, and is dropped when it arrives.
    pub async fn go(
        self,
        meanwhile: impl std::future::Future<Output = ()>,
    ) -> Result<Started, String> {
        let Pending {
            mut child,
            mut go,
            report,
            launch,
        } = self;
        go.write_all(&launch)
            .await
            .map_err(|e| format!("start monitor: {e}"))?;
        drop(go);
        let mut line = String::new();
        let mut reader = BufReader::new(report);
        let read = tokio::time::timeout(REPORT_TIMEOUT, reader.read_line(&mut line));
        tokio::pin!(read, meanwhile);
        let mut meanwhile_done = false;
        let read = loop {
            tokio::select! {
                read = &mut read => break read,
                () = &mut meanwhile, if !meanwhile_done => meanwhile_done = true,
            }
        };
        match read {
            Ok(read) => read.map_err(|e| format!("read monitor report: {e}"))?,
            Err(_) => {
                let _ = child.start_kill();
                return Err(format!(
                    "the monitor did not report within {} s",
                    REPORT_TIMEOUT.as_secs()
                ));
            }
        };
        // The first process exits once the monitor has detached; reap it without making the caller
        // wait for the SIGCHLD round trip.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        let report: Report = serde_json::from_str(line.trim())
            .map_err(|_| format!("monitor failed without a report: {:?}", line.trim()))?;
        if let Some(e) = report.error {
            return Err(e);
        }
        let (Some(pid), Some(monitor_pid)) = (report.pid, report.monitor_pid) else {
            return Err(format!("incomplete monitor report: {}", line.trim()));
        };
        let monitor_start =
            runtime::proc::start_time(nix::unistd::Pid::from_raw(monitor_pid)).unwrap_or(0);
        Ok(Started {
            pid,
            monitor_pid,
            monitor_start,
        })
    }
}

/// Lets a held container exec its program (the monitor's START frame) and waits for the answer.
pub async fn release(socket: &Path, exit_file: &Path) -> Result<(), String> {
    use runtime::monitor::frame::{self, START};
    use tokio::io::AsyncReadExt;
    let s = runtime::unix_socket::connect(socket).map_err(|e| format!("reach monitor: {e}"))?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut s = tokio::net::UnixStream::from_std(s).map_err(|e| e.to_string())?;
    s.write_all(&frame::header(START, 0))
        .await
        .map_err(|e| format!("start: {e}"))?;
    // Skip output frames that may arrive first; the answer is the START frame.
    let mut header = [0u8; frame::HEADER_LEN];
    loop {
        if s.read_exact(&mut header).await.is_err() {
            // The monitor answers before it closes its clients; without an answer the container
            // started only if it has already left its exit record.
            return if exit_file.exists() {
                Ok(())
            } else {
                Err("the container exited before it could start".to_string())
            };
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload)
            .await
            .map_err(|e| e.to_string())?;
        if header[0] == START {
            return if payload.is_empty() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&payload).into_owned())
            };
        }
    }
}

/// Ends a container held before exec by a monitor the agent lost track of: the agent stopped
/// between letting that monitor set the container up and recording it. Nothing can reach the
/// held process, so it is killed; the monitor (found as the attach socket's peer) is given a
/// moment to exit so that its socket is free for the next one, and the exit file it leaves for a
/// program that never ran is removed. The container stays created.
pub fn stop_orphan(socket: &Path, exit_file: &Path, runtime_root: &Path, id: &str) {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let holder = runtime::unix_socket::connect(socket)
        .ok()
        .and_then(|s| getsockopt(&s, PeerCredentials).ok())
        .map(|cred| nix::unistd::Pid::from_raw(cred.pid()));
    let Some(holder) = holder else {
        return;
    };
    let _ = runtime::Runtime::new(runtime_root).delete(id, true);
    let deadline = std::time::Instant::now() + ORPHAN_EXIT_TIMEOUT;
    while nix::sys::signal::kill(holder, None).is_ok() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = std::fs::remove_file(exit_file);
}

/// Whether process `pid` runs the binary at `path` (same file, by device and inode); `None` when
/// that cannot be told (the process is gone). A container's init runs the monitor's binary until it
/// is released and execs its program.
pub fn runs_binary(pid: i32, path: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    let bin = std::fs::metadata(path).ok()?;
    Some(exe.dev() == bin.dev() && exe.ino() == bin.ino())
}

/// Whether the monitor `(pid, start time)` is still alive (used when re-adopting after a restart).
pub fn is_alive(monitor: (i32, u64)) -> bool {
    runtime::proc::is_alive(nix::unistd::Pid::from_raw(monitor.0), monitor.1)
}

/// Resolves when the monitor process exits (it is not our child: a pidfd tells us).
pub async fn wait_exit(monitor: (i32, u64)) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, monitor.0, 0) };
    if raw < 0 || !is_alive(monitor) {
        return;
    }
    // SAFETY: a fresh fd from the kernel that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same for its life.
    match unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
        Ok(afd) => {
            let _ = afd.readable().await;
        }
        Err(_) => {
            while is_alive(monitor) {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads the exit file; `None` if the monitor died without writing one.
pub fn read_exit(path: &Path) -> Option<ExitInfo> {
    let data = std::fs::read(path).ok()?;
    let f: ExitFile = serde_json::from_slice(&data).ok()?;
    let finished_at = f
        .finished_at
        .and_then(|t| crate::record::rfc3339_nanos(&t))
        .unwrap_or_else(crate::record::now_nanos);
    Some(ExitInfo {
        exit_code: f.exit_code,
        oom_killed: f.oom_killed,
        finished_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_runs_the_binary_it_was_started_from() {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let sleep = std::fs::canonicalize("/bin/sleep").unwrap();
        assert_eq!(runs_binary(pid, &sleep), Some(true));
        assert_eq!(runs_binary(pid, Path::new("/bin/sh")), Some(false));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(runs_binary(pid, &sleep), None);
    }
}
