//! Turns a validated bundle into an [`InitPlan`]: everything that can be resolved or rejected on the
//! host side before cloning, so setup errors surface early and the init does no parsing.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::init::mounts::{self, MountPlan};
use crate::init::security::{self, CapPlan};
use crate::init::{ConsoleTarget, InitPlan, ProcessPlan, StartSignal};

/// Namespaces to create with clone, and the pid namespace to join before it (joined by the parent,
/// since a pid namespace applies to children).
pub struct Namespaces {
    pub clone: CloneFlags,
    pub join_pid: Option<OwnedFd>,
}

fn flag(t: LinuxNamespaceType) -> Result<CloneFlags> {
    Ok(match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        other => {
            return Err(Error::Unsupported(format!(
                "namespace {other:?} is not supported"
            )))
        }
    })
}

fn cstrings(items: &[String], what: &str) -> Result<Vec<CString>> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::Spec(format!("{what} {s:?} contains a NUL byte")))
        })
        .collect()
}

/// Builds the plan. `start` and `console` are chosen by the caller (create vs run).
pub fn build(
    bundle: &Bundle,
    start: StartSignal,
    console: ConsoleTarget,
    preserve_fds: i32,
) -> Result<(InitPlan, Namespaces)> {
    let spec: &Spec = &bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Spec("process is missing".into()))?;
    let linux = spec.linux().as_ref();

    let mut clone = CloneFlags::empty();
    let mut join = Vec::new();
    let mut join_pid = None;
    let mut new_cgroup_ns = false;
    for ns in linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let f = flag(ns.typ())?;
        match ns.path() {
            Some(path) => {
                let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                    .map_err(|e| Error::io(format!("open namespace {}", path.display()), e))?;
                if f == CloneFlags::CLONE_NEWPID {
                    join_pid = Some(fd);
                } else {
                    join.push((f, fd));
                }
            }
            None if f == CloneFlags::CLONE_NEWCGROUP => new_cgroup_ns = true,
            None => clone |= f,
        }
    }
    if !clone.contains(CloneFlags::CLONE_NEWNS)
        && !join.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWNS)
    {
        return Err(Error::Spec(
            "a mount namespace is required (add {\"type\": \"mount\"} to linux.namespaces)".into(),
        ));
    }

    let mounts: Vec<MountPlan> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| MountPlan::from_spec(m, &bundle.path))
        .collect::<std::result::Result<_, _>>()
        .map_err(Error::Spec)?;
    let mount_dev = !mounts
        .iter()
        .any(|m| m.destination == std::path::Path::new("/dev"));
    let cgroups_v1 = if mounts.iter().any(|m| m.kind == mounts::MountKind::Cgroup) {
        crate::cgroups::v1_hierarchies()
    } else {
        Vec::new()
    };

    let sysctl = linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                PathBuf::from("/proc/sys").join(k.replace('.', "/")),
                v.clone(),
            )
        })
        .collect();
    let terminal = process.terminal().unwrap_or(false);
    if terminal && matches!(console, ConsoleTarget::None) {
        return Err(Error::Spec(
            "process.terminal needs a console: pass --console-socket".into(),
        ));
    }
    let console = if terminal {
        console
    } else {
        ConsoleTarget::None
    };

    let plan = InitPlan {
        rootfs: bundle.rootfs.clone(),
        root_propagation: linux
            .and_then(|l| l.rootfs_propagation().as_deref())
            .map(mounts::propagation_flags)
            .unwrap_or_else(nix::mount::MsFlags::empty),
        join,
        new_cgroup_ns,
        new_uts_ns: clone.contains(CloneFlags::CLONE_NEWUTS),
        mounts,
        mount_dev,
        cgroups_v1,
        devices: linux.and_then(|l| l.devices().clone()).unwrap_or_default(),
        masked: linux
            .and_then(|l| l.masked_paths().clone())
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        readonly: linux
            .and_then(|l| l.readonly_paths().clone())
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        hostname: spec.hostname().clone(),
        domainname: spec.domainname().clone(),
        sysctl,
        oom_score_adj: process.oom_score_adj(),
        process: process_plan(spec, process)?,
        terminal,
        console_size: process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16)),
        console,
        start,
        preserve_fds,
        cgroup: None,
    };
    Ok((plan, Namespaces { clone, join_pid }))
}

/// The program, identity, capabilities, rlimits and seccomp filter of `process` (the spec's own, or one
/// given to `exec`), with the container-wide seccomp profile of `spec`.
pub(super) fn process_plan(spec: &Spec, process: &Process) -> Result<ProcessPlan> {
    let args = cstrings(process.args().as_deref().unwrap_or_default(), "argument")?;
    if args.is_empty() {
        return Err(Error::Spec("process.args must name a program".into()));
    }
    let env_strings = process.env().clone().unwrap_or_default();
    let path_env = env_strings
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_owned();
    let env = cstrings(&env_strings, "environment variable")?;

    let user = process.user();
    let caps = CapPlan::from_spec(process.capabilities().as_ref()).map_err(Error::Spec)?;
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => Some(crate::seccomp::compile(profile)?),
        None => None,
    };
    let rlimits = process
        .rlimits()
        .iter()
        .flatten()
        .map(|r| (security::rlimit_resource(r.typ()), r.soft(), r.hard()))
        .collect();
    Ok(ProcessPlan {
        rlimits,
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask().unwrap_or(0o022),
        caps,
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        seccomp,
        args,
        env,
        path_env,
        cwd: process.cwd().clone(),
    })
}

/// The cgroup path for a container: the spec's `cgroupsPath`, or `/berth/<id>`.
pub fn cgroup_path(spec: &Spec, id: &str) -> PathBuf {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| PathBuf::from("/berth").join(id))
}
