//! Starting processes other than through OCI create/start:
//!
//! - [`Runtime::exec`] (`runc exec`): a new process inside a running container. It joins the init's
//!   namespaces and cgroup and runs with the container's capabilities, seccomp filter, rlimits and
//!   no_new_privs, applied by the same code as the init's ([`crate::init::ProcessPlan`]).
//! - [`Runtime::spawn_held`]: `run --detach` with the container's stdio given by the caller, the
//!   init held before it execs the user program until [`Held::release`]. The per-container monitor
//!   ([`crate::monitor`]) uses it to own the container's output and to reap it.
//!
//! Both clone like [`Runtime::launch`] does, with fork semantics from a single-threaded caller.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{Process, Spec};

use super::create::{clone_init, CreateOptions, Launch, Launched};
use super::run::{forward_signals, relay_terminal, wait_exit};
use super::{plan, Runtime};
use crate::bundle::Bundle;
use crate::cgroups::{Cgroup, SelfJoin};
use crate::error::{Error, Result};
use crate::init::{self, InitError, ProcessPlan};
use crate::state::{Record, Status};
use crate::sync::{self, Channel, Msg};

/// The identity `exec --user` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
}

impl ExecUser {
    /// Parses runc's `UID[:GID]` (numeric only: names would need the container's /etc/passwd, which
    /// the engine resolves before it calls the runtime). A missing gid means gid 0, as runc.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Spec(format!("invalid user {s:?}: expected UID[:GID] (numeric)"));
        let (uid, gid) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        Ok(ExecUser {
            uid: uid.parse().map_err(|_| bad())?,
            gid: match gid {
                Some(g) => g.parse().map_err(|_| bad())?,
                None => 0,
            },
        })
    }
}

/// runc exec's options. The process starts from the container's own `process` (or from `process`,
/// runc's `--process` file) and the other fields override it.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// Program and arguments; may be empty only with `process`.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries replacing or extending the base environment.
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub user: Option<ExecUser>,
    /// Replaces the base's additional groups (runc `--additional-gids`).
    pub additional_gids: Option<Vec<u32>>,
    /// Allocate a pty inside the container for the process.
    pub tty: bool,
    /// Where the pty master goes; without it a foreground exec relays the pty itself.
    pub console_socket: Option<PathBuf>,
    /// Return the pid once the program runs instead of waiting for it.
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    /// A complete OCI process to use as the base (runc `--process FILE`).
    pub process: Option<Process>,
}

/// What [`Runtime::exec`] ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecOutcome {
    /// The foreground process's exit code (128+N when killed by signal N).
    Exited(i32),
    /// Detached: the process's host pid.
    Detached(Pid),
}

/// The namespaces `exec` joins, in this order; the mount namespace last so that the earlier joins
/// still see the host's paths, and pid separately (by the parent, as it only applies to children).
const NAMESPACES: [(&str, CloneFlags); 5] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// What the exec child needs, prepared by the parent before the clone.
struct ExecPlan {
    join: Joins,
    process: ProcessPlan,
    oom_score_adj: Option<i32>,
    terminal: bool,
    console_size: Option<(u16, u16)>,
    console_socket: Option<OwnedFd>,
    /// Set when the child moves itself into the container's cgroup (cgroup v1).
    cgroup: Option<SelfJoin>,
}

impl Runtime {
    /// Runs a new process in a running container (`runc exec`).
    ///
    /// The calling process joins the container's pid namespace for its children and clones: call it
    /// from a single-threaded process (the CLI); a daemon runs `berth runtime exec` instead.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<ExecOutcome> {
        let dir = self.dir(id)?;
        let record = dir.load()?;
        match record.status(&dir) {
            Status::Running | Status::Created => {}
            status => {
                return Err(Error::WrongState {
                    id: id.to_owned(),
                    status,
                    hint: if status == Status::Paused {
                        "resume it before exec"
                    } else {
                        "exec needs a running container"
                    },
                })
            }
        }
        let bundle = Bundle::load(&record.bundle)?;
        let process = exec_process_spec(&bundle.spec, opts)?;
        let terminal = process.terminal().unwrap_or(false);
        if terminal && opts.detach && opts.console_socket.is_none() {
            return Err(Error::Spec(
                "a detached exec with a terminal needs --console-socket".into(),
            ));
        }
        let process_plan = plan::process_plan(&bundle.spec, &process)?;

        let (pidns, join) = open_namespaces(&record)?;
        // The namespace files were opened through the pid: prove it still is the container's init.
        if !record.is_alive() {
            return Err(Error::WrongState {
                id: id.to_owned(),
                status: Status::Stopped,
                hint: "exec needs a running container",
            });
        }
        let console_socket = match &opts.console_socket {
            Some(path) => Some(OwnedFd::from(
                crate::unix_socket::connect(path)
                    .map_err(|e| Error::io(format!("console socket {}", path.display()), e))?,
            )),
            None => None,
        };
        let cgroup = Cgroup::open(&record.cgroup_path)?;
        let exec_plan = ExecPlan {
            join,
            process: process_plan,
            oom_score_adj: process.oom_score_adj(),
            terminal,
            console_size: process
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16)),
            console_socket,
            cgroup: cgroup.self_join()?,
        };
        let joins_itself = exec_plan.cgroup.is_some();

        let (parent, child) = sync::pair().map_err(|e| Error::io("socketpair", e))?;
        if let Some(fd) = &pidns {
            nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWPID)
                .map_err(|e| Error::io("join the container's pid namespace", e))?;
        }
        let pid = clone_init(CloneFlags::empty())?;
        if pid.as_raw() == 0 {
            drop(parent);
            exec_child(&exec_plan, &child);
        }
        drop(child);
        drop(exec_plan);
        let mut guard = ChildGuard(Some(pid));
        let fail = |reason: String| Error::Exec {
            id: id.to_owned(),
            reason,
        };

        if !joins_itself {
            cgroup.add_task(pid)?;
        }
        parent
            .send(&Msg::Setup)
            .map_err(|e| fail(format!("the process did not take the setup message: {e}")))?;
        let mut pty_master = None;
        // The channel is close-on-exec in the child: end of file means the program runs.
        loop {
            match parent
                .recv()
                .map_err(|e| Error::io("read from exec child", e))?
            {
                None => break,
                Some((Msg::PtyMaster, fd)) => pty_master = fd,
                Some((Msg::Error(text), _)) => return Err(fail(text)),
                Some((other, _)) => return Err(fail(format!("unexpected message {other:?}"))),
            }
        }
        if let Some(path) = &opts.pid_file {
            super::create::write_pid_file(path, pid)?;
        }
        guard.0 = None;
        if opts.detach {
            return Ok(ExecOutcome::Detached(pid));
        }
        forward_signals(pid);
        let code = match pty_master {
            Some(master) => relay_terminal(&master, pid)?,
            None => wait_exit(pid)?,
        };
        Ok(ExecOutcome::Exited(code))
    }
}

/// Kills and reaps an exec child on every error path, so a failed exec leaves no process behind.
struct ChildGuard(Option<Pid>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// The process `exec` runs: the base (the `--process` file, or the container's process), with the
/// command-line overrides applied as runc applies them.
fn exec_process_spec(spec: &Spec, opts: &ExecOptions) -> Result<Process> {
    let mut p = match &opts.process {
        Some(p) => p.clone(),
        None => {
            let mut p = spec
                .process()
                .clone()
                .ok_or_else(|| Error::Spec("process is missing".into()))?;
            // The container's terminal belongs to its init; an exec gets one only when asked.
            p.set_terminal(Some(false));
            p.set_console_size(None);
            p
        }
    };
    if opts.tty {
        p.set_terminal(Some(true));
    }
    if !opts.args.is_empty() {
        p.set_args(Some(opts.args.clone()));
    } else if opts.process.is_none() {
        return Err(Error::Spec("exec needs a command to run".into()));
    }
    if !opts.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for entry in &opts.env {
            let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
            {
                Some(existing) => existing.clone_from(entry),
                None => env.push(entry.clone()),
            }
        }
        p.set_env(Some(env));
    }
    if let Some(cwd) = &opts.cwd {
        p.set_cwd(cwd.clone());
    }
    if !p.cwd().is_absolute() {
        return Err(Error::Spec(format!(
            "cwd {} must be an absolute path",
            p.cwd().display()
        )));
    }
    if let Some(u) = opts.user {
        p.user_mut().set_uid(u.uid);
        p.user_mut().set_gid(u.gid);
    }
    if let Some(groups) = &opts.additional_gids {
        p.user_mut().set_additional_gids(Some(groups.clone()));
    }
    Ok(p)
}

/// Namespaces to join with setns: (type, open namespace file).
type Joins = Vec<(CloneFlags, OwnedFd)>;

/// Opens the init's namespaces that differ from ours: the pid namespace apart, the others in join
/// order. Sharing a namespace with the host (e.g. no network namespace) means nothing to join.
fn open_namespaces(record: &Record) -> Result<(Option<OwnedFd>, Joins)> {
    let open = |name: &str| -> Result<Option<OwnedFd>> {
        let theirs = format!("/proc/{}/ns/{name}", record.pid);
        let file =
            std::fs::File::open(&theirs).map_err(|e| Error::io(format!("open {theirs}"), e))?;
        let same = match std::fs::metadata(format!("/proc/self/ns/{name}")) {
            Ok(ours) => {
                let t = file
                    .metadata()
                    .map_err(|e| Error::io(format!("stat {theirs}"), e))?;
                t.ino() == ours.ino() && t.dev() == ours.dev()
            }
            // A namespace type this kernel lacks for us cannot be one the container has.
            Err(_) => true,
        };
        Ok((!same).then(|| OwnedFd::from(file)))
    };
    let pid = open("pid")?;
    let mut join = Vec::new();
    for (name, flag) in NAMESPACES {
        if let Some(fd) = open(name)? {
            join.push((flag, fd));
        }
    }
    Ok((pid, join))
}

/// Runs in the cloned child: never returns.
fn exec_child(plan: &ExecPlan, chan: &Channel) -> ! {
    let e = match exec_setup(plan, chan) {
        Ok(program) => init::exec_process(&plan.process, &program),
        Err(e) => e,
    };
    if chan.send(&Msg::Error(e.0.clone())).is_err() {
        let line = format!("berth: exec: {}\n", e.0);
        // SAFETY: write to stderr from a buffer valid for the call.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    }
    // SAFETY: _exit never returns and runs no atexit handlers that belong to the parent.
    unsafe { libc::_exit(1) }
}

fn exec_setup(plan: &ExecPlan, chan: &Channel) -> Result<std::ffi::CString, InitError> {
    let err = |what: &str, e: &dyn std::fmt::Display| InitError(format!("{what}: {e}"));
    // Non-dumpable until exec: the container must not reach our memory or /proc/PID/exe (our binary)
    // while we still hold host privileges (CVE-2019-5736).
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if let Some(cgroup) = &plan.cgroup {
        cgroup
            .enter()
            .map_err(|e| err("joining the container's cgroup", &e))?;
    }
    // Everything but stdio and what we still need goes, so no host fd leaks in (CVE-2024-21626).
    let mut keep: Vec<RawFd> = vec![chan.raw()];
    keep.extend(plan.join.iter().map(|(_, fd)| fd.as_raw_fd()));
    keep.extend(plan.console_socket.iter().map(|fd| fd.as_raw_fd()));
    init::close_fds_from(3, &mut keep)?;
    // Ignored signals and the mask survive execve; the program must not inherit ours (Rust ignores
    // SIGPIPE at startup).
    reset_signal_dispositions();

    match chan.recv() {
        Ok(Some((Msg::Setup, _))) => {}
        _ => return Err(InitError("parent went away before setup".into())),
    }
    if let Some(adj) = plan.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| err("oom_score_adj", &e))?;
    }
    for (kind, fd) in &plan.join {
        nix::sched::setns(fd.as_fd(), *kind).map_err(|e| err(&format!("join {kind:?}"), &e))?;
    }
    if plan.terminal {
        nix::unistd::setsid().map_err(|e| err("setsid", &e))?;
        // After joining the mount namespace: /dev/ptmx is the container's devpts.
        let pty = crate::console::open_pty(plan.console_size).map_err(|e| err("open pty", &e))?;
        match &plan.console_socket {
            Some(sock) => crate::console::send_master(sock.as_raw_fd(), &pty)
                .map_err(|e| err("send pty to console socket", &e))?,
            None => chan
                .send_with_fd(&Msg::PtyMaster, Some(pty.master.as_raw_fd()))
                .map_err(|e| err("send pty to parent", &e))?,
        }
        crate::console::make_controlling(&pty.slave)
            .map_err(|e| err("controlling terminal", &e))?;
    }
    // The namespace fds and the console socket are close-on-exec: nothing of them reaches the program.
    init::prepare_process(&plan.process)
}

/// Restores every signal's default disposition and empties the signal mask, so a program started by
/// the runtime does not inherit ignored signals (which survive execve) from its starter.
///
/// The raw system call, because libc refuses to touch the real-time signals it reserves (32 and 33),
/// which a starter may still have ignored.
pub(crate) fn reset_signal_dispositions() {
    // The kernel's `struct sigaction` (handler, flags, restorer, mask) on x86_64 and aarch64; all zero
    // is SIG_DFL with no flags and an empty mask.
    let default = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads a kernel sigaction of the size we pass the mask of (8 bytes);
        // SIG_DFL runs no code of ours.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
}

/// The container's standard streams for [`Runtime::spawn_held`]; the caller keeps the other ends.
pub struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// A container set up by [`Runtime::spawn_held`] whose program has not been exec'd yet; dropping it
/// kills the init and releases everything, as a failed create does.
pub struct Held {
    launched: Launched,
}

impl Held {
    /// The init's record (its pid is the container's main process once released).
    pub fn record(&self) -> &Record {
        &self.launched.record
    }

    /// The pty master when `process.terminal` is set; taken once.
    pub fn take_pty_master(&mut self) -> Option<OwnedFd> {
        self.launched.pty_master.take()
    }

    /// Lets the init exec the user program and returns once it has.
    pub fn release(mut self) -> Result<Record> {
        let launched = &mut self.launched;
        launched
            .chan
            .send(&Msg::Start)
            .map_err(|e| Error::io("start init", e))?;
        // The init's end is close-on-exec: end of file means the program runs.
        match launched.chan.recv() {
            Ok(None) => {}
            Ok(Some((Msg::Error(text), _))) => return Err(Error::Init(text)),
            Ok(Some((other, _))) => {
                return Err(Error::Init(format!(
                    "unexpected message from init: {other:?}"
                )))
            }
            Err(e) => return Err(Error::io("read from init", e)),
        }
        launched.cleanup.disarm();
        Ok(launched.record.clone())
    }
}

impl Runtime {
    /// Creates a container from `bundle` (loaded by the caller, who usually checked it already)
    /// whose stdio is `stdio` (with a terminal, the pty instead, whose master the [`Held`] gives),
    /// set up and left waiting before exec until [`Held::release`]: an attach can connect first and
    /// miss no output (docker's attach-then-start). Unlike `run --detach` the caller stays the
    /// init's parent, so it can reap it and learn the exit status.
    ///
    /// The init inherits the caller's fds 0-2, so they are swapped for `stdio` around the clone: the
    /// caller must be single-threaded, which cloning requires anyway.
    pub fn spawn_held(&self, opts: &CreateOptions, bundle: Bundle, stdio: Stdio) -> Result<Held> {
        let launched = {
            let _swap = StdioSwap::install(&stdio)?;
            self.launch(opts, bundle, Launch::Run { foreground: true })
        };
        drop(stdio);
        Ok(Held {
            launched: launched?,
        })
    }
}

/// Our fds 0-2 replaced by a container's stdio until dropped.
struct StdioSwap {
    saved: [OwnedFd; 3],
}

impl StdioSwap {
    fn install(stdio: &Stdio) -> Result<Self> {
        let dup = |fd: RawFd| -> Result<OwnedFd> {
            // SAFETY: F_DUPFD_CLOEXEC returns a new fd that we own, or -1.
            let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
            if new < 0 {
                return Err(Error::io("save stdio", std::io::Error::last_os_error()));
            }
            // SAFETY: fresh fd, owned by nothing else.
            Ok(unsafe { OwnedFd::from_raw_fd(new) })
        };
        let swap = StdioSwap {
            saved: [dup(0)?, dup(1)?, dup(2)?],
        };
        for (target, fd) in [&stdio.stdin, &stdio.stdout, &stdio.stderr]
            .into_iter()
            .enumerate()
        {
            // SAFETY: dup2 onto a stdio number from a valid fd.
            if unsafe { libc::dup2(fd.as_raw_fd(), target as RawFd) } < 0 {
                return Err(Error::io(
                    "install container stdio",
                    std::io::Error::last_os_error(),
                ));
            }
        }
        Ok(swap)
    }
}

impl Drop for StdioSwap {
    fn drop(&mut self) {
        for (target, fd) in self.saved.iter().enumerate() {
            // SAFETY: dup2 onto a stdio number from a valid fd.
            unsafe { libc::dup2(fd.as_raw_fd(), target as RawFd) };
        }
    }
}
