//! cgroup v1 backend: one directory per mounted controller hierarchy (co-mounted controllers
//! share one), OCI limits written to the per-controller files, the freezer for pause, the devices
//! controller for the device allowlist.
//!
//! Hierarchies used: cpu, cpuacct, memory, pids, freezer, devices and blkio, whichever are
//! mounted. cpuset is joined only when the spec asks for cpus/mems (at create or, later, at
//! update, which then moves the existing processes in): a new v1 cpuset cgroup starts with empty
//! `cpuset.cpus`/`cpuset.mems` and refuses tasks until both are filled from its parent, which costs
//! a read and a write per file per level on the start path. Named hierarchies (name=systemd) and
//! the hybrid host's v2 mount are not touched.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::unistd::Pid;
use oci_spec::runtime::{LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxResources};

use super::fsutil::{self, Backoff};
use super::layout::{Controller, Controllers, V1Mount};
use super::parse;
use super::{CgroupError, Stats, FREEZE_TIMEOUT, REMOVE_TIMEOUT};

/// Controllers whose hierarchy every container joins.
fn default_controllers() -> Controllers {
    Controllers::of(&[
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Memory,
        Controller::Pids,
        Controller::Freezer,
        Controller::Devices,
        Controller::Blkio,
    ])
}

/// Device rules always appended after the spec's: the nodes the runtime itself puts in the
/// container's /dev (null, zero, full, random, urandom, tty, console, ptmx, pts/*), plus mknod of
/// any node (still subject to CAP_MKNOD; opening it stays denied). Appending them last means a spec
/// cannot lock the container out of its own /dev/null, as runc does.
const ALWAYS_ALLOWED: [&str; 11] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// The container's directory in one hierarchy.
#[derive(Debug)]
struct Dir {
    controllers: Controllers,
    mount_point: PathBuf,
    dir: PathBuf,
}

impl Dir {
    /// A hierarchy with cpuset and nothing else Berth joins by default.
    fn cpuset_only(&self) -> bool {
        self.controllers.intersect(default_controllers()).is_empty()
    }
}

/// A container cgroup on v1: its directory in every relevant hierarchy.
#[derive(Debug)]
pub(crate) struct V1 {
    /// The cgroup path relative to each hierarchy root.
    rel: PathBuf,
    /// One per mounted hierarchy Berth knows, including cpuset even when not joined.
    dirs: Vec<Dir>,
    /// Whether a cpuset-only hierarchy is part of this cgroup.
    cpuset_active: AtomicBool,
}

impl V1 {
    fn new(mounts: &[V1Mount], rel: &Path, cpuset: bool) -> Self {
        let dirs = mounts
            .iter()
            .map(|m| Dir {
                controllers: m.controllers,
                mount_point: m.mount_point.clone(),
                dir: m.mount_point.join(rel),
            })
            .collect();
        V1 {
            rel: rel.to_path_buf(),
            dirs,
            cpuset_active: AtomicBool::new(cpuset),
        }
    }

    /// The directories processes are placed in.
    fn active(&self) -> impl Iterator<Item = &Dir> {
        let cpuset = self.cpuset_active.load(Ordering::Acquire);
        self.dirs.iter().filter(move |d| cpuset || !d.cpuset_only())
    }

    fn dir(&self, c: Controller) -> Option<&Dir> {
        self.dirs.iter().find(|d| d.controllers.contains(c))
    }

    fn require(&self, c: Controller) -> Result<&Path, CgroupError> {
        self.dir(c)
            .map(|d| d.dir.as_path())
            .ok_or_else(|| CgroupError::ControllerUnavailable {
                controller: c.name(),
                path: self.rel.clone(),
            })
    }

    pub(crate) fn create(
        mounts: &[V1Mount],
        rel: &Path,
        res: Option<&LinuxResources>,
    ) -> Result<Self, CgroupError> {
        if mounts.is_empty() {
            return Err(CgroupError::NoHierarchy {
                path: rel.to_path_buf(),
            });
        }
        let v = V1::new(mounts, rel, res.is_some_and(wants_cpuset));
        let mut created = Vec::new();
        if let Err(e) = v.build(res, &mut created) {
            // Only directories this call made are removed: an existing cgroup may hold a
            // running container whose limits were being re-applied.
            for dir in created {
                if let Err(e) = std::fs::remove_dir(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot roll back cgroup");
                }
            }
            return Err(e);
        }
        Ok(v)
    }

    fn build(
        &self,
        res: Option<&LinuxResources>,
        created: &mut Vec<PathBuf>,
    ) -> Result<(), CgroupError> {
        for d in self.active() {
            let new = if d.controllers.contains(Controller::Cpuset) {
                mkdir_cpuset(&d.mount_point, &self.rel)?
            } else {
                fsutil::mkdir_p(&d.dir)?
            };
            if new {
                created.push(d.dir.clone());
            }
        }
        let no_rules = Vec::new();
        let rules = res.and_then(|r| r.devices().as_ref()).unwrap_or(&no_rules);
        self.apply_devices(rules)?;
        match res {
            Some(res) => self.apply(res),
            None => Ok(()),
        }
    }

    /// Finds the container's directories; `None` when it exists in no hierarchy.
    pub(crate) fn open(mounts: &[V1Mount], rel: &Path) -> Option<Self> {
        let v = V1::new(mounts, rel, false);
        let mut any = false;
        for d in &v.dirs {
            if d.cpuset_only() {
                if d.dir.is_dir() {
                    v.cpuset_active.store(true, Ordering::Release);
                    any = true;
                }
            } else if !any && d.dir.is_dir() {
                any = true;
            }
        }
        any.then_some(v)
    }

    /// Applies memory, CPU, cpuset and pids limits (devices only at creation, see `update`).
    pub(crate) fn apply(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(mem) = res.memory() {
            self.apply_memory(mem)?;
        }
        if let Some(cpu) = res.cpu() {
            self.apply_cpu(cpu)?;
            self.apply_cpuset(cpu)?;
        }
        if let Some(pids) = res.pids() {
            let dir = self.require(Controller::Pids)?;
            let value = if pids.limit() <= 0 {
                "max".to_owned()
            } else {
                pids.limit().to_string()
            };
            fsutil::write(&dir.join("pids.max"), &value)?;
        }
        Ok(())
    }

    fn apply_memory(&self, mem: &LinuxMemory) -> Result<(), CgroupError> {
        let limit = parse::set_i64(mem.limit());
        let swap = parse::set_i64(mem.swap());
        let reservation = parse::set_i64(mem.reservation());
        if limit.is_none() && swap.is_none() && reservation.is_none() {
            return Ok(());
        }
        let dir = self.require(Controller::Memory)?;
        parse::check_swap(limit, swap).map_err(|reason| CgroupError::InvalidResource {
            path: dir.to_path_buf(),
            field: "memory.swap",
            reason,
        })?;
        let memsw_path = dir.join("memory.memsw.limit_in_bytes");
        let memsw = parse::v1_memsw(limit, swap).map(parse::v1_bytes);
        let mut memsw_done = false;
        if let Some(limit) = limit {
            let path = dir.join("memory.limit_in_bytes");
            let value = parse::v1_bytes(limit);
            match fsutil::write_raw(&path, &value) {
                Ok(()) => {}
                // The kernel keeps limit <= memory+swap limit: when raising the limit above the
                // current memsw value, memsw has to go up first.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && memsw.is_some() => {
                    let memsw = memsw.as_deref().unwrap_or_default();
                    if !fsutil::write_if_exists(&memsw_path, memsw)? {
                        return Err(fsutil::write_error(&path, &value, e));
                    }
                    memsw_done = true;
                    fsutil::write(&path, &value)?;
                }
                Err(e) => return Err(fsutil::write_error(&path, &value, e)),
            }
        }
        if let (false, Some(memsw)) = (memsw_done, memsw) {
            if !fsutil::write_if_exists(&memsw_path, &memsw)? {
                tracing::debug!(dir = %dir.display(), "no swap accounting; memory+swap limit not applied");
            }
        }
        if let Some(reservation) = reservation {
            fsutil::write(
                &dir.join("memory.soft_limit_in_bytes"),
                &parse::v1_bytes(reservation),
            )?;
        }
        Ok(())
    }

    fn apply_cpu(&self, cpu: &LinuxCpu) -> Result<(), CgroupError> {
        let shares = cpu.shares().filter(|s| *s > 0);
        let period = cpu.period().filter(|p| *p > 0);
        let quota = parse::set_i64(cpu.quota());
        if shares.is_none() && period.is_none() && quota.is_none() {
            return Ok(());
        }
        let dir = self.require(Controller::Cpu)?;
        if let Some(shares) = shares {
            fsutil::write(&dir.join("cpu.shares"), &shares.to_string())?;
        }
        if let Some(period) = period {
            fsutil::write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
        }
        if let Some(quota) = quota {
            fsutil::write(&dir.join("cpu.cfs_quota_us"), &parse::v1_bytes(quota))?;
        }
        Ok(())
    }

    fn apply_cpuset(&self, cpu: &LinuxCpu) -> Result<(), CgroupError> {
        let cpus = nonblank(cpu.cpus());
        let mems = nonblank(cpu.mems());
        if cpus.is_none() && mems.is_none() {
            return Ok(());
        }
        let d = self
            .dir(Controller::Cpuset)
            .ok_or_else(|| CgroupError::ControllerUnavailable {
                controller: Controller::Cpuset.name(),
                path: self.rel.clone(),
            })?;
        let joining = !self.cpuset_active.load(Ordering::Acquire) && d.cpuset_only();
        if joining {
            mkdir_cpuset(&d.mount_point, &self.rel)?;
        }
        if let Some(cpus) = cpus {
            fsutil::write(&d.dir.join("cpuset.cpus"), cpus)?;
        }
        if let Some(mems) = mems {
            fsutil::write(&d.dir.join("cpuset.mems"), mems)?;
        }
        if joining {
            // A cpuset asked for only by `update`: move the running processes in. Two passes
            // catch processes forked while the first pass ran.
            self.cpuset_active.store(true, Ordering::Release);
            let procs = d.dir.join("cgroup.procs");
            for _ in 0..2 {
                for pid in self.procs()? {
                    match fsutil::write_raw(&procs, &pid.to_string()) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(e) => return Err(fsutil::write_error(&procs, &pid.to_string(), e)),
                    }
                }
            }
        }
        Ok(())
    }

    /// Default-deny device allowlist: deny all, then the spec's rules in order, then
    /// [`ALWAYS_ALLOWED`]. One open per file, one write per rule.
    fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
        let Some(d) = self.dir(Controller::Devices) else {
            tracing::warn!("no v1 devices hierarchy mounted: device access is not restricted");
            return Ok(());
        };
        let deny_path = d.dir.join("devices.deny");
        let allow_path = d.dir.join("devices.allow");
        let open = |p: &Path| {
            File::options()
                .write(true)
                .open(p)
                .map_err(|e| fsutil::io_error("opening", p, e))
        };
        let mut deny = open(&deny_path)?;
        let mut allow: Option<File> = None;
        let mut put = |is_allow: bool, rule: &str| -> Result<(), CgroupError> {
            let (file, path) = if is_allow {
                let file = match allow.as_mut() {
                    Some(f) => f,
                    None => allow.insert(open(&allow_path)?),
                };
                (file, &allow_path)
            } else {
                (&mut deny, &deny_path)
            };
            file.write_all(rule.as_bytes())
                .map_err(|e| fsutil::write_error(path, rule, e))
        };
        put(false, "a")?;
        for rule in rules {
            let text = parse::device_rule(rule).map_err(|reason| CgroupError::InvalidResource {
                path: d.dir.clone(),
                field: "devices",
                reason,
            })?;
            if let Some(text) = text {
                put(rule.allow(), &text)?;
            }
        }
        for rule in ALWAYS_ALLOWED {
            put(true, rule)?;
        }
        Ok(())
    }

    /// Each joined hierarchy's `tasks`, opened close-on-exec for [`super::SelfJoin`].
    pub(crate) fn tasks_files(&self) -> Result<Vec<File>, CgroupError> {
        self.active()
            .map(|d| {
                let path = d.dir.join("tasks");
                File::options()
                    .write(true)
                    .open(&path)
                    .map_err(|e| fsutil::io_error("opening", &path, e))
            })
            .collect()
    }

    pub(crate) fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        let value = pid.to_string();
        for d in self.active() {
            fsutil::write(&d.dir.join("cgroup.procs"), &value)?;
        }
        Ok(())
    }

    /// All pids, from the pids hierarchy (else memory, freezer, any), descendants included.
    pub(crate) fn procs(&self) -> Result<Vec<Pid>, CgroupError> {
        let dir = [Controller::Pids, Controller::Memory, Controller::Freezer]
            .into_iter()
            .find_map(|c| self.dir(c))
            .or_else(|| self.active().next());
        let mut out = Vec::new();
        if let Some(d) = dir {
            super::collect_procs(&d.dir, &mut out)?;
        }
        Ok(out)
    }

    pub(crate) fn freeze(&self) -> Result<(), CgroupError> {
        let state = self.require(Controller::Freezer)?.join("freezer.state");
        fsutil::write(&state, "FROZEN")?;
        let mut backoff = Backoff::new(FREEZE_TIMEOUT);
        let mut until_rewrite = 8u32;
        loop {
            if fsutil::read_checked(&state)?.trim() == "FROZEN" {
                return Ok(());
            }
            if !backoff.wait() {
                let waited = backoff.elapsed();
                fsutil::write(&state, "THAWED")?;
                return Err(CgroupError::Timeout {
                    path: state,
                    what: "freeze",
                    waited,
                });
            }
            until_rewrite -= 1;
            if until_rewrite == 0 {
                until_rewrite = 8;
                // Tasks that were in uninterruptible sleep are only retried on a new write.
                fsutil::write(&state, "FROZEN")?;
            }
        }
    }

    pub(crate) fn thaw(&self) -> Result<(), CgroupError> {
        let state = self.require(Controller::Freezer)?.join("freezer.state");
        fsutil::write(&state, "THAWED")
    }

    pub(crate) fn is_frozen(&self) -> Result<bool, CgroupError> {
        let state = self.require(Controller::Freezer)?.join("freezer.state");
        Ok(fsutil::read_checked(&state)?.trim() == "FROZEN")
    }

    pub(crate) fn oom_kills(&self) -> Result<Option<u64>, CgroupError> {
        let Some(d) = self.dir(Controller::Memory) else {
            return Ok(None);
        };
        Ok(fsutil::read_if_exists(&d.dir.join("memory.oom_control"))?
            .and_then(|c| parse::keyed_u64(&c, "oom_kill")))
    }

    pub(crate) fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        if let Some(d) = self.dir(Controller::Memory) {
            s.memory_usage_bytes = fsutil::read_u64_opt(&d.dir.join("memory.usage_in_bytes"))?;
            s.memory_limit_bytes = fsutil::read_limit_opt(&d.dir.join("memory.limit_in_bytes"))?;
            s.memory_inactive_file_bytes = fsutil::read_if_exists(&d.dir.join("memory.stat"))?
                .and_then(|c| parse::keyed_u64(&c, "total_inactive_file"));
            s.oom_kills = self.oom_kills()?;
        }
        if let Some(d) = self.dir(Controller::Cpuacct) {
            s.cpu_usage_ns = fsutil::read_u64_opt(&d.dir.join("cpuacct.usage"))?;
        }
        if let Some(d) = self.dir(Controller::Pids) {
            s.pids_current = fsutil::read_u64_opt(&d.dir.join("pids.current"))?;
            s.pids_limit = fsutil::read_limit_opt(&d.dir.join("pids.max"))?;
        }
        Ok(s)
    }

    /// Removes the directory in every hierarchy (joined or not; missing ones are skipped).
    pub(crate) fn remove(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for d in &self.dirs {
            if let Err(e) = fsutil::remove_cgroup_dir(&d.dir, REMOVE_TIMEOUT) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn wants_cpuset(res: &LinuxResources) -> bool {
    res.cpu()
        .as_ref()
        .is_some_and(|c| nonblank(c.cpus()).is_some() || nonblank(c.mems()).is_some())
}

fn nonblank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Creates the cpuset directory level by level, filling each level's empty `cpuset.cpus` and
/// `cpuset.mems` from its parent so tasks can join. Returns whether the leaf was created.
fn mkdir_cpuset(mount_point: &Path, rel: &Path) -> Result<bool, CgroupError> {
    let mut cur = mount_point.to_path_buf();
    let mut created = false;
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        created = fsutil::mkdir(&cur).map_err(|e| fsutil::io_error("creating", &cur, e))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = cur.join(file);
            if !created && !fsutil::read_checked(&own)?.trim().is_empty() {
                continue;
            }
            let inherited = fsutil::read_checked(&parent.join(file))?;
            fsutil::write(&own, inherited.trim())?;
        }
    }
    Ok(created)
}
