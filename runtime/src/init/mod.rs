//! The container's first process, from clone to exec. The parent prepares an [`InitPlan`] (everything
//! that can be computed or validated on the host side) and clones; the child applies it in a fixed
//! order and reports each outcome over the handshake channel, so a failed setup is a one-line error in
//! the parent, not a half-started container.

pub mod mounts;
pub mod security;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

use crate::cgroups::{SelfJoin, V1Hierarchy};
use crate::console;
use crate::seccomp::Filter;
use crate::sync::{Channel, Msg};
use mounts::MountPlan;
use security::CapPlan;

/// A setup failure inside the init, sent to the parent as text.
#[derive(Debug)]
pub struct InitError(pub String);

/// How the init learns that it may exec the user program.
pub enum StartSignal {
    /// `create`: block opening `exec.fifo` (in this directory) for writing until `start` opens it.
    ExecFifo(OwnedFd),
    /// `run`: the parent sends [`Msg::Start`] on the channel.
    Channel,
}

/// Where the pty master goes when the process has a terminal.
pub enum ConsoleTarget {
    None,
    /// A connected unix socket given with `--console-socket`.
    Socket(OwnedFd),
    /// Back to the parent over the channel (foreground `run`).
    Parent,
}

/// The program and the identity it runs with: the part of the plan the init shares with `exec`, so that
/// both apply rlimits, credentials, capabilities and seccomp by the same code in the same order.
pub struct ProcessPlan {
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub umask: u32,
    pub caps: CapPlan,
    pub no_new_privs: bool,
    pub seccomp: Option<Filter>,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub path_env: String,
    pub cwd: PathBuf,
}

/// Everything the init needs, prepared before clone.
pub struct InitPlan {
    pub rootfs: PathBuf,
    pub root_propagation: nix::mount::MsFlags,
    /// Namespaces to join: (type, open fd of the namespace file).
    pub join: Vec<(CloneFlags, OwnedFd)>,
    pub new_cgroup_ns: bool,
    pub new_uts_ns: bool,
    pub mounts: Vec<MountPlan>,
    pub mount_dev: bool,
    pub cgroups_v1: Vec<V1Hierarchy>,
    pub devices: Vec<oci_spec::runtime::LinuxDevice>,
    pub masked: Vec<PathBuf>,
    pub readonly: Vec<PathBuf>,
    pub readonly_root: bool,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: Vec<(PathBuf, String)>,
    pub oom_score_adj: Option<i32>,
    pub process: ProcessPlan,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub console: ConsoleTarget,
    pub start: StartSignal,
    /// Fds 3..3+N passed through to the program (`--preserve-fds`).
    pub preserve_fds: i32,
    /// Set when the init moves itself into its cgroup (cgroup v1) instead of being moved.
    pub cgroup: Option<SelfJoin>,
}

/// Runs in the cloned child; never returns.
pub fn run(plan: &InitPlan, chan: &Channel) -> ! {
    let code = match setup_and_exec(plan, chan) {
        Ok(never) => match never {},
        Err(InitError(text)) => {
            // The parent may be gone (after create); then stderr is all we have.
            if chan.send(&Msg::Error(text.clone())).is_err() {
                let line = format!("berth: container init: {text}\n");
                // SAFETY: write to stderr from a buffer valid for the call.
                unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
            }
            1
        }
    };
    // SAFETY: _exit never returns and runs no atexit handlers that belong to the parent.
    unsafe { libc::_exit(code) }
}

enum Never {}

fn err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> InitError {
    InitError(format!("{what}: {e}"))
}

fn setup_and_exec(plan: &InitPlan, chan: &Channel) -> Result<Never, InitError> {
    // Non-dumpable until exec: nothing inside the container may open /proc/1/exe (our binary) or our
    // memory while we set up (CVE-2019-5736).
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if let Some(cgroup) = &plan.cgroup {
        cgroup
            .enter()
            .map_err(|e| err("joining the container's cgroup", e))?;
    }
    close_inherited_fds(plan, chan)?;
    // Ignored signals survive execve; the program must not inherit ours (Rust ignores SIGPIPE).
    crate::container::exec::reset_signal_dispositions();

    match chan.recv() {
        Ok(Some((Msg::Setup, _))) => {}
        _ => return Err(InitError("parent went away before setup".into())),
    }
    for (kind, fd) in &plan.join {
        nix::sched::setns(fd.as_fd(), *kind).map_err(|e| err(format_args!("join {kind:?}"), e))?;
    }
    // Only now, inside the container's cgroup, so that it becomes the namespace's root.
    if plan.new_cgroup_ns {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| err("cgroup namespace", e))?;
    }
    // SAFETY: umask only sets the mask.
    unsafe { libc::umask(0) };
    if let Some(adj) = plan.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| err("oom_score_adj", e))?;
    }

    let root = mounts::prepare_root(&plan.rootfs, plan.root_propagation)?;
    if plan.mount_dev {
        let dev = MountPlan {
            destination: "/dev".into(),
            kind: mounts::MountKind::Fs("tmpfs".into()),
            source: Some("tmpfs".into()),
            flags: nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_STRICTATIME,
            propagation: nix::mount::MsFlags::empty(),
            data: Some("mode=755,size=65536k".into()),
        };
        mounts::mount_one(&root, &dev, &plan.cgroups_v1)?;
    }
    for m in &plan.mounts {
        mounts::mount_one(&root, m, &plan.cgroups_v1)?;
    }
    mounts::populate_dev(&root, &plan.devices)?;
    mounts::pivot(&root)?;
    drop(root);

    if plan.new_uts_ns {
        if let Some(h) = &plan.hostname {
            nix::unistd::sethostname(h).map_err(|e| err("sethostname", e))?;
        }
        if let Some(d) = &plan.domainname {
            // SAFETY: setdomainname reads `len` bytes from the pointer.
            if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
                return Err(err("setdomainname", std::io::Error::last_os_error()));
            }
        }
    }
    for (path, value) in &plan.sysctl {
        std::fs::write(path, value)
            .map_err(|e| err(format_args!("sysctl {}", path.display()), e))?;
    }
    for p in &plan.masked {
        mounts::mask(p)?;
    }
    for p in &plan.readonly {
        mounts::make_readonly(p)?;
    }
    if plan.readonly_root {
        mounts::remount_readonly(c"/").map_err(|e| err("read-only root", e))?;
    }

    nix::unistd::setsid().map_err(|e| err("setsid", e))?;
    if plan.terminal {
        let pty = console::open_pty(plan.console_size).map_err(|e| err("open pty", e))?;
        match &plan.console {
            ConsoleTarget::Socket(sock) => console::send_master(sock.as_raw_fd(), &pty)
                .map_err(|e| err("send pty to console socket", e))?,
            ConsoleTarget::Parent => chan
                .send_with_fd(&Msg::PtyMaster, Some(pty.master.as_raw_fd()))
                .map_err(|e| err("send pty to parent", e))?,
            ConsoleTarget::None => {}
        }
        console::make_controlling(&pty.slave).map_err(|e| err("controlling terminal", e))?;
    }
    if let ConsoleTarget::Socket(sock) = &plan.console {
        let _ = nix::unistd::close(sock.as_raw_fd());
    }

    let program = prepare_process(&plan.process)?;

    chan.send(&Msg::Ready).map_err(|e| err("report ready", e))?;
    wait_for_start(plan, chan)?;

    Err(exec_process(&plan.process, &program))
}

/// Applies the rlimits, resolves the program and enters the working directory: the steps whose
/// failures should be reported before the process is released.
pub(crate) fn prepare_process(p: &ProcessPlan) -> Result<CString, InitError> {
    security::set_rlimits(&p.rlimits)?;
    let program = find_program(p)?;
    enter_cwd(&p.cwd)?;
    Ok(program)
}

/// Installs seccomp, switches identity and capabilities, and execs `program`. Returns only on failure.
pub(crate) fn exec_process(p: &ProcessPlan, program: &CString) -> InitError {
    if let Err(e) = drop_privileges(p) {
        return e;
    }
    // SAFETY: umask only sets the mask.
    unsafe { libc::umask(p.umask) };
    match nix::unistd::execve(program, &p.args, &p.env) {
        Err(e) => err(format_args!("exec {}", program.to_string_lossy()), e),
        Ok(never) => match never {},
    }
}

fn drop_privileges(p: &ProcessPlan) -> Result<(), InitError> {
    if !p.no_new_privs {
        // Without no_new_privs the filter needs CAP_SYS_ADMIN, which the identity switch drops.
        install_seccomp(p)?;
    }
    security::apply_identity(&p.caps, p.uid, p.gid, &p.groups)?;
    if p.no_new_privs {
        security::set_no_new_privs()?;
        install_seccomp(p)?;
    }
    Ok(())
}

fn install_seccomp(p: &ProcessPlan) -> Result<(), InitError> {
    match &p.seccomp {
        Some(f) => f.install().map_err(|e| err("seccomp", e)),
        None => Ok(()),
    }
}

/// Closes every fd this process inherited except stdio, the preserved ones and our own, so nothing of
/// the host stays reachable (CVE-2024-21626). Our own fds are CLOEXEC and vanish at exec.
fn close_inherited_fds(plan: &InitPlan, chan: &Channel) -> Result<(), InitError> {
    let mut keep: Vec<RawFd> = vec![chan.raw()];
    keep.extend(plan.join.iter().map(|(_, fd)| fd.as_raw_fd()));
    if let ConsoleTarget::Socket(s) = &plan.console {
        keep.push(s.as_raw_fd());
    }
    if let StartSignal::ExecFifo(d) = &plan.start {
        keep.push(d.as_raw_fd());
    }
    close_fds_from(3 + plan.preserve_fds.max(0), &mut keep)
}

/// Closes every fd from `from` up, except those in `keep` (which it sorts).
pub(crate) fn close_fds_from(mut from: RawFd, keep: &mut [RawFd]) -> Result<(), InitError> {
    keep.sort_unstable();
    for &k in keep.iter() {
        if k < from {
            continue;
        }
        if k > from {
            close_range(from, k - 1)?;
        }
        from = k + 1;
    }
    close_range(from, i32::MAX)
}

fn close_range(first: RawFd, last: RawFd) -> Result<(), InitError> {
    // SAFETY: close_range only closes descriptors in the range.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32) };
    if r != 0 {
        return Err(err("close inherited fds", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// How a program that cannot be run is reported; [`crate::Error::exec_exit_code`] maps these to the
/// shell's 127 (not found) and 126 (not executable).
pub(crate) const NOT_IN_PATH: &str = "executable file not found in $PATH";
pub(crate) const NO_SUCH_FILE: &str = "no such file or directory";
pub(crate) const NOT_EXECUTABLE: &str = "permission denied";
pub(crate) const NOT_REGULAR: &str = "is not a regular file";

/// Resolves the program inside the container the way execvp does, so a missing binary fails `create`
/// with a clear error instead of a dead container.
fn find_program(plan: &ProcessPlan) -> Result<CString, InitError> {
    let arg0 = plan.args[0].to_string_lossy().into_owned();
    let check = |p: &Path| -> Result<bool, String> {
        match std::fs::metadata(p) {
            Ok(m) if m.is_file() => {
                let c = CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
                // SAFETY: access reads the C string.
                if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
                    Ok(true)
                } else {
                    Err(format!("{}: {NOT_EXECUTABLE}", p.display()))
                }
            }
            Ok(_) => Err(format!("{}: {NOT_REGULAR}", p.display())),
            Err(_) => Ok(false),
        }
    };
    if arg0.contains('/') {
        let p = if arg0.starts_with('/') {
            PathBuf::from(&arg0)
        } else {
            plan.cwd.join(&arg0)
        };
        return match check(&p) {
            Ok(true) => Ok(CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default()),
            Ok(false) => Err(InitError(format!("exec {arg0}: {NO_SUCH_FILE}"))),
            Err(e) => Err(InitError(format!("exec {e}"))),
        };
    }
    let mut denied = None;
    for dir in plan.path_env.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(&arg0);
        match check(&p) {
            Ok(true) => {
                return Ok(CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default())
            }
            Ok(false) => {}
            Err(e) => denied = denied.or(Some(e)),
        }
    }
    Err(InitError(match denied {
        Some(e) => format!("exec {e}"),
        None => format!("exec {arg0}: {NOT_IN_PATH}"),
    }))
}

/// Enters the working directory and proves it lies inside the container's root: a path through a
/// leaked host fd would make getcwd report an unreachable path (CVE-2024-21626).
fn enter_cwd(cwd: &Path) -> Result<(), InitError> {
    nix::unistd::chdir(cwd).map_err(|e| err(format_args!("chdir {}", cwd.display()), e))?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(InitError(format!(
            "cwd {} is outside the container's root",
            cwd.display()
        ))),
    }
}

fn wait_for_start(plan: &InitPlan, chan: &Channel) -> Result<(), InitError> {
    match &plan.start {
        StartSignal::Channel => match chan.recv() {
            Ok(Some((Msg::Start, _))) => Ok(()),
            _ => Err(InitError("parent went away before start".into())),
        },
        StartSignal::ExecFifo(dir) => {
            // Blocks until `start` opens the fifo for reading.
            let fd = nix::fcntl::openat(
                dir.as_fd(),
                crate::state::EXEC_FIFO,
                nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| err("open exec fifo", e))?;
            nix::unistd::write(&fd, b"0").map_err(|e| err("write exec fifo", e))?;
            Ok(())
        }
    }
}
