//! cgroup v2 backend (Documentation/admin-guide/cgroup-v2.rst): one directory in the unified
//! hierarchy; controllers enabled top-down through each ancestor's `cgroup.subtree_control`;
//! limits in memory.max/memory.swap.max/memory.low, cpu.weight/cpu.max, cpuset.cpus/mems and
//! pids.max; `cgroup.freeze` + `cgroup.events` for pause, `cgroup.kill` for teardown.
//!
//! Device rules are not enforced here: v2 has no devices files, device control needs an eBPF
//! program attached to the cgroup. The runtime's /dev is a tmpfs holding only a few harmless
//! nodes, which is what limits device access on v2 hosts.

use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::fsutil::{self, Backoff};
use super::layout::{parse_controller_list, Controller, Controllers};
use super::parse;
use super::{CgroupError, Stats, FREEZE_TIMEOUT, REMOVE_TIMEOUT};

/// Controllers enabled for every container (what limits and stats need); cpuset is added only
/// when asked for, io is not used.
fn default_controllers() -> Controllers {
    Controllers::of(&[Controller::Cpu, Controller::Memory, Controller::Pids])
}

/// A container cgroup on v2.
#[derive(Debug)]
pub(crate) struct V2 {
    root: PathBuf,
    dir: PathBuf,
}

impl V2 {
    /// Creates `root/rel`, enabling in every ancestor the default controllers the root offers
    /// plus the ones `res` needs (an error if the root lacks one of those), then applies `res`.
    pub(crate) fn create(
        root: &Path,
        available: Controllers,
        rel: &Path,
        res: Option<&LinuxResources>,
    ) -> Result<Self, CgroupError> {
        let required = res.map_or(Controllers::EMPTY, required_controllers);
        if let Some(c) = required.first_missing_from(available) {
            return Err(CgroupError::ControllerUnavailable {
                controller: c.name(),
                path: root.to_path_buf(),
            });
        }
        let mut enable = required
            .iter()
            .fold(default_controllers(), Controllers::with)
            .intersect(available);
        let mut cur = root.to_path_buf();
        let mut created = false;
        for comp in rel.components() {
            if !enable.is_empty() {
                enable = enable_subtree(&cur, enable, required)?;
            }
            cur.push(comp);
            created = fsutil::mkdir(&cur).map_err(|e| fsutil::io_error("creating", &cur, e))?;
        }
        let v = V2 {
            root: root.to_path_buf(),
            dir: cur,
        };
        if let Some(res) = res {
            if let Err(e) = v.apply(res) {
                if created {
                    if let Err(e) = std::fs::remove_dir(&v.dir) {
                        tracing::warn!(dir = %v.dir.display(), error = %e, "cannot roll back cgroup");
                    }
                }
                return Err(e);
            }
        }
        Ok(v)
    }

    /// `None` when the directory does not exist.
    pub(crate) fn open(root: &Path, rel: &Path) -> Option<Self> {
        let dir = root.join(rel);
        dir.is_dir().then(|| V2 {
            root: root.to_path_buf(),
            dir,
        })
    }

    pub(crate) fn apply(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(mem) = res.memory() {
            let limit = parse::set_i64(mem.limit());
            let swap = parse::set_i64(mem.swap());
            let reservation = parse::set_i64(mem.reservation());
            let swap_max =
                parse::v2_swap_max(limit, swap).map_err(|reason| CgroupError::InvalidResource {
                    path: self.dir.clone(),
                    field: "memory.swap",
                    reason,
                })?;
            if let Some(limit) = limit {
                self.write_ctl(Controller::Memory, "memory.max", &parse::v2_bytes(limit))?;
            }
            if let Some(swap_max) = swap_max {
                // Absent without swap accounting (no swap configured in the kernel).
                if !fsutil::write_if_exists(&self.dir.join("memory.swap.max"), &swap_max)? {
                    tracing::debug!(dir = %self.dir.display(), "no memory.swap.max; swap limit not applied");
                }
            }
            if let Some(reservation) = reservation {
                self.write_ctl(
                    Controller::Memory,
                    "memory.low",
                    &parse::v2_bytes(reservation),
                )?;
            }
        }
        if let Some(cpu) = res.cpu() {
            if let Some(shares) = cpu.shares().filter(|s| *s > 0) {
                let weight = parse::shares_to_weight(shares).to_string();
                self.write_ctl(Controller::Cpu, "cpu.weight", &weight)?;
            }
            let quota = parse::set_i64(cpu.quota());
            let current = match (quota, cpu.period()) {
                (None, Some(p)) if p > 0 => fsutil::read_if_exists(&self.dir.join("cpu.max"))?,
                _ => None,
            };
            if let Some(max) = parse::cpu_max(quota, cpu.period(), current.as_deref()) {
                self.write_ctl(Controller::Cpu, "cpu.max", &max)?;
            }
            if let Some(cpus) = nonblank(cpu.cpus()) {
                self.write_ctl(Controller::Cpuset, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = nonblank(cpu.mems()) {
                self.write_ctl(Controller::Cpuset, "cpuset.mems", mems)?;
            }
        }
        if let Some(pids) = res.pids() {
            let value = if pids.limit() <= 0 {
                "max".to_owned()
            } else {
                pids.limit().to_string()
            };
            self.write_ctl(Controller::Pids, "pids.max", &value)?;
        }
        if res.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            tracing::debug!("device rules are not enforced on cgroup v2 (needs eBPF)");
        }
        Ok(())
    }

    /// Writes a controller file. A missing file means the controller is not enabled for this
    /// cgroup (e.g. cpuset asked for only at update): enable it in the ancestors and retry once.
    fn write_ctl(&self, c: Controller, file: &str, value: &str) -> Result<(), CgroupError> {
        let path = self.dir.join(file);
        let err = match fsutil::write_raw(&path, value) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => e,
            Err(e) => return Err(fsutil::write_error(&path, value, e)),
        };
        if !self.dir.is_dir() {
            return Err(CgroupError::NotFound {
                path: self.dir.clone(),
            });
        }
        let want = Controllers::of(&[c]);
        let mut cur = self.root.clone();
        let rel = self.dir.strip_prefix(&self.root).unwrap_or(Path::new(""));
        for comp in rel.components() {
            enable_subtree(&cur, want, want)?;
            cur.push(comp);
        }
        match fsutil::write_raw(&path, value) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), error = %err, "still missing after enabling");
                Err(CgroupError::ControllerUnavailable {
                    controller: c.name(),
                    path: self.dir.clone(),
                })
            }
            Err(e) => Err(fsutil::write_error(&path, value, e)),
        }
    }

    pub(crate) fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        fsutil::write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    pub(crate) fn procs(&self) -> Result<Vec<Pid>, CgroupError> {
        let mut out = Vec::new();
        super::collect_procs(&self.dir, &mut out)?;
        Ok(out)
    }

    /// Sets `cgroup.freeze` and waits for `cgroup.events` to agree.
    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let file = self.dir.join("cgroup.freeze");
        let value = if frozen { "1" } else { "0" };
        match fsutil::write_raw(&file, value) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.dir.is_dir() => {
                return Err(CgroupError::ControllerUnavailable {
                    controller: Controller::Freezer.name(),
                    path: self.dir.clone(),
                })
            }
            Err(e) => return Err(fsutil::write_error(&file, value, e)),
        }
        let mut backoff = Backoff::new(FREEZE_TIMEOUT);
        loop {
            if self.is_frozen()? == frozen {
                return Ok(());
            }
            if !backoff.wait() {
                let waited = backoff.elapsed();
                if frozen {
                    fsutil::write(&file, "0")?;
                }
                return Err(CgroupError::Timeout {
                    path: self.dir.join("cgroup.events"),
                    what: if frozen { "freeze" } else { "thaw" },
                    waited,
                });
            }
        }
    }

    pub(crate) fn freeze(&self) -> Result<(), CgroupError> {
        self.set_frozen(true)
    }

    pub(crate) fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen(false)
    }

    pub(crate) fn is_frozen(&self) -> Result<bool, CgroupError> {
        let events = self.dir.join("cgroup.events");
        let content = fsutil::read_checked(&events)?;
        Ok(parse::keyed_u64(&content, "frozen") == Some(1))
    }

    /// SIGKILLs the whole subtree through `cgroup.kill` (Linux 5.14+). `Ok(false)` when the
    /// kernel lacks it, so the caller falls back to freeze + kill + thaw.
    pub(crate) fn kill(&self) -> Result<bool, CgroupError> {
        let file = self.dir.join("cgroup.kill");
        match fsutil::write_raw(&file, "1") {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(!self.dir.is_dir()),
            Err(e) => Err(fsutil::write_error(&file, "1", e)),
        }
    }

    pub(crate) fn oom_kills(&self) -> Result<Option<u64>, CgroupError> {
        Ok(fsutil::read_if_exists(&self.dir.join("memory.events"))?
            .and_then(|c| parse::keyed_u64(&c, "oom_kill")))
    }

    pub(crate) fn stats(&self) -> Result<Stats, CgroupError> {
        let d = &self.dir;
        let memory_stat = fsutil::read_if_exists(&d.join("memory.stat"))?;
        let cpu_stat = fsutil::read_if_exists(&d.join("cpu.stat"))?;
        Ok(Stats {
            memory_usage_bytes: fsutil::read_u64_opt(&d.join("memory.current"))?,
            memory_limit_bytes: fsutil::read_limit_opt(&d.join("memory.max"))?,
            memory_inactive_file_bytes: memory_stat
                .and_then(|c| parse::keyed_u64(&c, "inactive_file")),
            cpu_usage_ns: cpu_stat
                .and_then(|c| parse::keyed_u64(&c, "usage_usec"))
                .map(|us| us.saturating_mul(1000)),
            pids_current: fsutil::read_u64_opt(&d.join("pids.current"))?,
            pids_limit: fsutil::read_limit_opt(&d.join("pids.max"))?,
            oom_kills: self.oom_kills()?,
        })
    }

    pub(crate) fn remove(&self) -> Result<(), CgroupError> {
        fsutil::remove_cgroup_dir(&self.dir, REMOVE_TIMEOUT)
    }

    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Enables `enable` in `dir/cgroup.subtree_control` and returns what is enabled among them.
/// When the write fails, works out why: this level may not offer some controller (narrow the set
/// and retry), or `dir` may hold processes (the "no internal processes" rule) with the needed
/// controllers already on. Fails only if a `required` controller ends up not enabled.
fn enable_subtree(
    dir: &Path,
    enable: Controllers,
    required: Controllers,
) -> Result<Controllers, CgroupError> {
    let file = dir.join("cgroup.subtree_control");
    let value = subtree_value(enable);
    let err = match fsutil::write_raw(&file, &value) {
        Ok(()) => return Ok(enable),
        Err(e) => e,
    };
    let offered = parse_controller_list(&fsutil::read_checked(&dir.join("cgroup.controllers"))?);
    let mut on = parse_controller_list(&fsutil::read_checked(&file)?).intersect(enable);
    let narrowed = enable.intersect(offered);
    if narrowed != enable
        && !narrowed.is_subset_of(on)
        && fsutil::write_raw(&file, &subtree_value(narrowed)).is_ok()
    {
        on = narrowed;
    }
    match required.first_missing_from(on) {
        None => {
            tracing::debug!(dir = %dir.display(), error = %err, enabled = ?on, "subtree_control partly enabled");
            Ok(on)
        }
        Some(c) if !offered.contains(c) => Err(CgroupError::ControllerUnavailable {
            controller: c.name(),
            path: dir.to_path_buf(),
        }),
        Some(_) => Err(fsutil::write_error(&file, &value, err)),
    }
}

fn subtree_value(set: Controllers) -> String {
    let mut out = String::new();
    for c in set.iter() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('+');
        out.push_str(c.name());
    }
    out
}

/// Controllers a spec's limits need.
fn required_controllers(res: &LinuxResources) -> Controllers {
    let mut set = Controllers::EMPTY;
    if let Some(m) = res.memory() {
        if [m.limit(), m.swap(), m.reservation()]
            .into_iter()
            .any(|v| parse::set_i64(v).is_some())
        {
            set = set.with(Controller::Memory);
        }
    }
    if let Some(c) = res.cpu() {
        if c.shares().is_some_and(|s| s > 0)
            || parse::set_i64(c.quota()).is_some()
            || c.period().is_some_and(|p| p > 0)
        {
            set = set.with(Controller::Cpu);
        }
        if nonblank(c.cpus()).is_some() || nonblank(c.mems()).is_some() {
            set = set.with(Controller::Cpuset);
        }
    }
    if res.pids().is_some() {
        set = set.with(Controller::Pids);
    }
    set
}

fn nonblank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder};

    #[test]
    fn subtree_values() {
        assert_eq!(subtree_value(default_controllers()), "+cpu +memory +pids");
        assert_eq!(subtree_value(Controllers::EMPTY), "");
    }

    #[test]
    fn required_by_spec() {
        let res = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(0).build().expect("mem"))
            .cpu(LinuxCpuBuilder::default().cpus("0").build().expect("cpu"))
            .build()
            .expect("res");
        assert_eq!(
            required_controllers(&res),
            Controllers::of(&[Controller::Cpuset])
        );
        let res = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(1 << 20)
                    .build()
                    .expect("mem"),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(512u64)
                    .build()
                    .expect("cpu"),
            )
            .build()
            .expect("res");
        assert_eq!(
            required_controllers(&res),
            Controllers::of(&[Controller::Memory, Controller::Cpu])
        );
    }
}
