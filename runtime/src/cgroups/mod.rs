//! Control groups for containers: one cgroup per container, on whichever hierarchy the host has.
//!
//! Responsible for: detecting the host's cgroup layout (v2 unified, or v1 per-controller
//! hierarchies including "hybrid" hosts that also mount a mostly empty cgroup2); creating the
//! container's cgroup and applying the OCI `linux.resources` limits (memory, swap, reservation;
//! CPU shares, quota/period, cpuset; pids; the device allowlist on v1); placing processes in it;
//! listing them; freezing and thawing (pause/resume); reading usage statistics; changing limits
//! of a running container; and tearing it down, killing whatever still runs in it.
//!
//! Not responsible for: the systemd cgroup driver (the path is always a cgroupfs path), block IO,
//! hugetlb, network, RDMA and `unified` resources (ignored with a warning), and eBPF device
//! filtering on v2 (v2 has no device files; the runtime keeps /dev minimal instead).
//!
//! Choices worth knowing:
//! - The layout is detected once per process: `statfs("/sys/fs/cgroup")` being cgroup2 means
//!   v2; otherwise the v1 mount points come from `/proc/self/mountinfo`, never hard-coded.
//! - v1: the cgroup is created in the cpu, cpuacct, memory, pids, freezer, devices and blkio
//!   hierarchies that are mounted; cpuset only when the spec asks for cpus/mems (a new v1 cpuset
//!   cgroup must have cpus/mems copied from its parent before tasks can join: extra reads and
//!   writes on the start path that containers without a cpuset should not pay). `update` adding a
//!   cpuset later creates it and moves the running processes in.
//! - A zero memory/CPU value means "unset" (as Go-generated specs write it); a negative memory
//!   or quota value, or a pids limit <= 0, means unlimited.
//! - With a memory limit and no swap value, swap is disabled (v1 memsw = limit when the kernel
//!   has swap accounting; v2 memory.swap.max = 0).
//! - Every wait (freeze, emptying, removal) is bounded; see the `*_TIMEOUT` constants.

mod fsutil;
mod layout;
mod parse;
#[cfg(test)]
mod tests;
mod v1;
mod v2;

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use layout::Layout;

/// How long `freeze`/`thaw` wait for the kernel to report the new state.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `destroy` waits for killed processes to leave the cgroup.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `destroy` retries removing a busy cgroup directory.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Failures of cgroup operations; each names the cgroup path or file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    /// The container's cgroup does not exist (open after delete, or never created), so callers
    /// can treat it as "already gone".
    #[error("cgroup {} does not exist", .path.display())]
    NotFound { path: PathBuf },
    /// The cgroup path is unusable (empty, the hierarchy root, or containing `..`).
    #[error("invalid cgroup path {}: {reason}", .path.display())]
    InvalidPath { path: PathBuf, reason: &'static str },
    /// No cgroup hierarchy is mounted on this host.
    #[error("no cgroup hierarchy is mounted for cgroup {}", .path.display())]
    NoHierarchy { path: PathBuf },
    /// A limit or operation needs a controller this host (or this cgroup's ancestors) lacks.
    #[error("{}: the {controller} cgroup controller is not available", .path.display())]
    ControllerUnavailable {
        controller: &'static str,
        path: PathBuf,
    },
    /// A resource value in the spec is inconsistent or malformed.
    #[error("{}: invalid {field}: {reason}", .path.display())]
    InvalidResource {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
    /// The kernel refused a value written to a cgroup file.
    #[error("writing {value:?} to {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    /// A cgroup file could not be read.
    #[error("reading {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A directory operation (create, list, remove) failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A cgroup file had unexpected content.
    #[error("{}: {reason}", .path.display())]
    Parse { path: PathBuf, reason: String },
    /// A bounded wait ran out (tasks that will not freeze, or will not die).
    #[error("{}: timed out after {waited:?} waiting to {what}", .path.display())]
    Timeout {
        path: PathBuf,
        what: &'static str,
        waited: Duration,
    },
    /// A process of the cgroup could not be signalled.
    #[error("killing pid {pid} of cgroup {}: {source}", .path.display())]
    Kill {
        pid: i32,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// Which cgroup version the host uses, for callers whose behaviour differs (e.g. v2 can place a
/// child directly with `CLONE_INTO_CGROUP`; v2 does not enforce device rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hierarchy {
    /// Per-controller v1 hierarchies (also hybrid hosts).
    V1,
    /// The v2 unified hierarchy.
    V2,
}

/// The host's cgroup version (detected once, then cached).
pub fn hierarchy() -> Hierarchy {
    match layout::host() {
        Layout::V1 { .. } => Hierarchy::V1,
        Layout::V2 { .. } => Hierarchy::V2,
    }
}

/// A v1 hierarchy as a container's `/sys/fs/cgroup` mounts it again: its directory name there and
/// the mount options (its controllers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub name: String,
    pub options: String,
}

/// The host's v1 controller hierarchies (named ones such as name=systemd excluded); empty on a pure
/// v2 host. Comes from the cached layout: no mount table read per container.
pub fn v1_hierarchies() -> Vec<V1Hierarchy> {
    match layout::host() {
        Layout::V1 { mounts } => mounts
            .iter()
            .filter_map(|m| {
                let name = m.mount_point.file_name()?.to_str()?.to_owned();
                let options = m
                    .controllers
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(",");
                Some(V1Hierarchy { name, options })
            })
            .collect(),
        Layout::V2 { .. } => Vec::new(),
    }
}

/// Resource usage of a container, for `stats`. A field is `None` when the controller (or the
/// kernel feature) is absent on this host; limits are also `None` when unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Memory charged to the cgroup, page cache included (v1 `memory.usage_in_bytes`,
    /// v2 `memory.current`).
    pub memory_usage_bytes: Option<u64>,
    /// Inactive file cache within that usage: reclaimable, so `usage - inactive_file` is the
    /// working set `docker stats` reports.
    pub memory_inactive_file_bytes: Option<u64>,
    /// Memory limit.
    pub memory_limit_bytes: Option<u64>,
    /// CPU time consumed by all tasks, in nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Number of tasks (threads) in the cgroup.
    pub pids_current: Option<u64>,
    /// Task limit.
    pub pids_limit: Option<u64>,
    /// Processes killed by the OOM killer because of this cgroup's limit.
    pub oom_kills: Option<u64>,
}

/// Open v1 `tasks` files through which a process moves its calling thread in by writing `0`.
///
/// Writing a pid to `cgroup.procs` (or any pid but 0 to `tasks`) takes the kernel's global
/// threadgroup lock for writing, which waits for an RCU grace period: 10–20 ms on a busy host, the
/// single largest cost of starting a container there. Moving only the calling thread skips that
/// lock (Linux ≥ 6.0) and takes about 50 µs; for a single-threaded child, the thread is the
/// process. The files are close-on-exec and must be used before the child closes inherited fds.
#[derive(Debug)]
pub struct SelfJoin {
    tasks: Vec<std::fs::File>,
}

impl SelfJoin {
    /// Moves the calling thread into the cgroup in every hierarchy. Call it only from a
    /// single-threaded process (the cloned init or exec child), which then is wholly inside.
    /// Allocation-free, so it is safe right after `clone`.
    pub fn enter(&self) -> std::io::Result<()> {
        use std::io::Write;
        for mut f in &self.tasks {
            f.write_all(b"0")?;
        }
        Ok(())
    }
}

/// A container's cgroup, on whichever hierarchy the host has.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    V1(v1::V1),
    V2(v2::V2),
}

impl Cgroup {
    /// Creates the cgroup at `path` (relative to the hierarchy roots, e.g. `/berth/<id>`; the
    /// OCI `cgroupsPath`, a leading `/` optional) and applies the limits, so the runtime can place
    /// the container's init in it before exec. Creating an existing cgroup is fine: limits are
    /// re-applied. On failure, directories this call created are removed again.
    pub fn create(path: &Path, resources: Option<&LinuxResources>) -> Result<Self, CgroupError> {
        Self::create_in(layout::host(), path, resources)
    }

    pub(crate) fn create_in(
        layout: &Layout,
        path: &Path,
        resources: Option<&LinuxResources>,
    ) -> Result<Self, CgroupError> {
        let rel = relative(path)?;
        let inner = match layout {
            Layout::V1 { mounts } => Inner::V1(v1::V1::create(mounts, &rel, resources)?),
            Layout::V2 { root, available } => {
                let available = Layout::v2_available(root, available);
                Inner::V2(v2::V2::create(root, available, &rel, resources)?)
            }
        };
        if let Some(res) = resources {
            warn_unsupported(res, path);
        }
        Ok(Cgroup {
            path: path.to_path_buf(),
            inner,
        })
    }

    /// Opens an existing container cgroup, for state/kill/delete/pause in a process other than
    /// the one that created it. A cgroup present in no hierarchy is [`CgroupError::NotFound`].
    pub fn open(path: &Path) -> Result<Self, CgroupError> {
        Self::open_in(layout::host(), path)
    }

    pub(crate) fn open_in(layout: &Layout, path: &Path) -> Result<Self, CgroupError> {
        let rel = relative(path)?;
        let inner = match layout {
            Layout::V1 { mounts } => v1::V1::open(mounts, &rel).map(Inner::V1),
            Layout::V2 { root, .. } => v2::V2::open(root, &rel).map(Inner::V2),
        };
        match inner {
            Some(inner) => Ok(Cgroup {
                path: path.to_path_buf(),
                inner,
            }),
            None => Err(CgroupError::NotFound {
                path: path.to_path_buf(),
            }),
        }
    }

    /// Moves process `pid` (all its threads) into the cgroup, so it and its future children are
    /// limited and accounted.
    pub fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V1(v) => v.add_task(pid),
            Inner::V2(v) => v.add_task(pid),
        }
    }

    /// Handles with which a freshly cloned, single-threaded child can move itself into this
    /// cgroup, so the parent need not [`Cgroup::add_task`] it. `None` on cgroup v2, where only
    /// `add_task` (or `CLONE_INTO_CGROUP`) places a process.
    pub fn self_join(&self) -> Result<Option<SelfJoin>, CgroupError> {
        match &self.inner {
            Inner::V1(v) => Ok(Some(SelfJoin {
                tasks: v.tasks_files()?,
            })),
            Inner::V2(_) => Ok(None),
        }
    }

    /// Every process of the container, including those in sub-cgroups it created, for `ps`,
    /// signalling all processes and checking whether the container still runs.
    pub fn procs(&self) -> Result<Vec<Pid>, CgroupError> {
        match &self.inner {
            Inner::V1(v) => v.procs(),
            Inner::V2(v) => v.procs(),
        }
    }

    /// Freezes every process (pause), returning once the kernel reports the cgroup frozen; on
    /// timeout the cgroup is thawed again and [`CgroupError::Timeout`] returned.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V1(v) => v.freeze(),
            Inner::V2(v) => v.freeze(),
        }
    }

    /// Lets frozen processes run again (resume).
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V1(v) => v.thaw(),
            Inner::V2(v) => v.thaw(),
        }
    }

    /// Whether the cgroup is fully frozen, for reporting a container as paused.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match &self.inner {
            Inner::V1(v) => v.is_frozen(),
            Inner::V2(v) => v.is_frozen(),
        }
    }

    /// Current usage and limits, for `stats` and `inspect`.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        match &self.inner {
            Inner::V1(v) => v.stats(),
            Inner::V2(v) => v.stats(),
        }
    }

    /// How many times the kernel's OOM killer acted in the cgroup (None: not reported), read
    /// alone for a container's exit record.
    pub fn oom_kills(&self) -> Result<Option<u64>, CgroupError> {
        match &self.inner {
            Inner::V1(v) => v.oom_kills(),
            Inner::V2(v) => v.oom_kills(),
        }
    }

    /// Changes limits of a running container (`update`, engine resize). Only the values present
    /// are written. Device rules are left alone: they are a creation-time policy, and v1 refuses
    /// to reset a cgroup's device list once it has child cgroups.
    pub fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V1(v) => v.apply(resources)?,
            Inner::V2(v) => v.apply(resources)?,
        }
        warn_unsupported(resources, &self.path);
        Ok(())
    }

    /// Kills every process (v2 `cgroup.kill` when present; else freeze, SIGKILL each process,
    /// thaw), waits (bounded) for the cgroup to empty and removes its directories, children first.
    /// Safe on a half-created cgroup and on one that is already gone; used by delete and to clean
    /// up after a failed container start.
    pub fn destroy(self) -> Result<(), CgroupError> {
        let killed = match &self.inner {
            Inner::V2(v) => v.kill()?,
            Inner::V1(_) => false,
        };
        // A cgroup whose processes have all exited (a container that ended) cannot gain any, so
        // there is nothing to freeze or kill.
        if !killed && !self.procs()?.is_empty() {
            self.freeze_kill_thaw()?;
        }
        self.wait_empty()?;
        match &self.inner {
            Inner::V1(v) => v.remove(),
            Inner::V2(v) => v.remove(),
        }
    }

    /// The path given at create/open (relative to the hierarchy roots).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn freeze_kill_thaw(&self) -> Result<(), CgroupError> {
        // Freezing first stops processes from forking new ones while the list is walked.
        let frozen = match self.freeze() {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(cgroup = %self.path.display(), error = %e, "killing without freezing");
                false
            }
        };
        kill_all(&self.procs()?, &self.path)?;
        // Thaw even when this call did not freeze: on v1, tasks of a cgroup paused earlier do not
        // act on SIGKILL until thawed.
        match self.thaw() {
            Ok(()) => Ok(()),
            Err(e) if frozen => Err(e),
            Err(e) => {
                tracing::debug!(cgroup = %self.path.display(), error = %e, "thaw after kill");
                Ok(())
            }
        }
    }

    fn wait_empty(&self) -> Result<(), CgroupError> {
        let mut backoff = fsutil::Backoff::new(EMPTY_TIMEOUT);
        loop {
            let pids = self.procs()?;
            if pids.is_empty() {
                return Ok(());
            }
            // Re-kill: catches processes forked after the first pass.
            kill_all(&pids, &self.path)?;
            if !backoff.wait() {
                return Err(CgroupError::Timeout {
                    path: self.path.clone(),
                    what: "empty (processes still present after SIGKILL)",
                    waited: backoff.elapsed(),
                });
            }
        }
    }

    /// The v2 directory, for tests that inspect files directly.
    #[cfg(test)]
    pub(crate) fn v2_dir(&self) -> Option<&Path> {
        match &self.inner {
            Inner::V2(v) => Some(v.dir()),
            Inner::V1(_) => None,
        }
    }
}

/// Sends SIGKILL to each pid; processes already gone are fine.
fn kill_all(pids: &[Pid], cgroup: &Path) -> Result<(), CgroupError> {
    for pid in pids {
        match signal::kill(*pid, Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(source) => {
                return Err(CgroupError::Kill {
                    pid: pid.as_raw(),
                    path: cgroup.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Appends the pids of `dir` and its descendant cgroups; a missing `dir` contributes nothing.
fn collect_procs(dir: &Path, out: &mut Vec<Pid>) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.procs");
    match fsutil::read(&file) {
        Ok(content) => out.extend(parse::parse_pids(&content, &file)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(CgroupError::Read { path: file, source }),
    }
    for child in fsutil::child_dirs(dir)? {
        collect_procs(&child, out)?;
    }
    Ok(())
}

/// Normalises a cgroup path to a relative one below the hierarchy roots, refusing anything that
/// could escape them or name a root itself (destroying a root would kill the host's processes).
fn relative(path: &Path) -> Result<PathBuf, CgroupError> {
    let invalid = |reason| CgroupError::InvalidPath {
        path: path.to_path_buf(),
        reason,
    };
    let mut rel = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => rel.push(name),
            Component::ParentDir => return Err(invalid("it contains \"..\"")),
            Component::Prefix(_) => return Err(invalid("it has a prefix")),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(invalid("it names the hierarchy root"));
    }
    Ok(rel)
}

/// Logs the resource settings this module does not apply, so an ignored limit is visible.
fn warn_unsupported(res: &LinuxResources, path: &Path) {
    let mut ignored: Vec<&str> = Vec::new();
    if res
        .block_io()
        .as_ref()
        .is_some_and(|b| *b != Default::default())
    {
        ignored.push("blockIO");
    }
    if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        ignored.push("hugepageLimits");
    }
    if res
        .network()
        .as_ref()
        .is_some_and(|n| *n != Default::default())
    {
        ignored.push("network");
    }
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        ignored.push("rdma");
    }
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        ignored.push("unified");
    }
    if let Some(m) = res.memory() {
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            ignored.push("memory.kernel");
        }
        if m.swappiness().is_some() {
            ignored.push("memory.swappiness");
        }
        if m.disable_oom_killer() == Some(true) {
            ignored.push("memory.disableOOMKiller");
        }
    }
    if let Some(c) = res.cpu() {
        if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
            ignored.push("cpu.realtime");
        }
        if c.idle().is_some() || c.burst().is_some() {
            ignored.push("cpu.idle/burst");
        }
    }
    if !ignored.is_empty() {
        tracing::warn!(cgroup = %path.display(), ?ignored, "resource settings not supported, ignored");
    }
}
