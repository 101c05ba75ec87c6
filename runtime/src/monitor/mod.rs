//! The per-container monitor (`berth shim`): a small process that owns one container's stdio and reaps
//! it, independently of the agent, so that containers, their logs and their exit codes survive the
//! agent's crash, restart and upgrade ("live restore").
//!
//! Lifecycle, as [`start`] runs it:
//!
//! 1. The invoking process (started by the agent with its stdout on a pipe) forks; the child calls
//!    setsid and forks again, so the monitor is reparented away from the agent and has no controlling
//!    terminal. With `--wait-for-go` it then waits for one byte on stdin (the agent starts it while
//!    it still prepares the bundle); a spare ([`start_spare`]) reads its whole command line there
//!    instead. The monitor points its own stdio at /dev/null, chdirs to `/`,
//!    resets signal handling (the container must not inherit ignored signals) and becomes a child
//!    subreaper.
//! 2. It opens the log file, binds the attach socket, creates the stdio pipes and launches the
//!    container with [`Runtime::spawn_held`], so it is the init's parent.
//! 3. It serves a START already waiting on its socket ([`serve`]; `run` sends one during the
//!    set-up), then reports ONE line of JSON to the invoking process, which prints it on its stdout
//!    and exits:
//!    `{"pid": <init host pid>, "monitor_pid": <monitor pid>}` with status 0, or `{"error": "..."}`
//!    with status 1.
//! 4. It serves (see [`serve`]): output → log file and attach clients; attach input → stdin / pty.
//!    SIGTERM, SIGINT, SIGHUP and SIGPIPE are ignored: the agent stops a container through the runtime
//!    (kill, then wait for the exit file), never by signalling its monitor.
//! 5. When the init exits it drains the output, writes the exit file ([`exit::ExitRecord`]), closes
//!    the attach clients and removes the socket, deletes the runtime state (cgroup and state
//!    directory; the bundle belongs to the agent) and exits 0.
//!
//! The monitor is single-threaded around one poll(2) loop and allocates only small, bounded buffers.

pub mod args;
pub mod exit;
pub mod frame;
pub mod log;
mod serve;
#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::ForkResult;
use serde::{Deserialize, Serialize};

use crate::container::CreateOptions;
use crate::Runtime;

/// The version of the command line the agent and `berth-shim` share (`berth-shim --interface`
/// prints it); bumped when it changes (2: `--wait-for-go`; 3: `--spare`). The agent refuses to start
/// beside a monitor binary of another version, instead of failing every container start.
pub const INTERFACE: u32 = 3;

/// The monitor's command line (`berth shim ...`).
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// The runtime's state root (`berth runtime --root`).
    pub runtime_root: PathBuf,
    /// The OCI bundle; `process.terminal` must agree with `tty`.
    pub bundle: PathBuf,
    pub id: String,
    /// The json-file log, appended to (created 0640 if missing).
    pub log: PathBuf,
    /// Where the exit record goes when the container ends.
    pub exit_file: PathBuf,
    /// The attach socket to create (an existing dead socket there is replaced).
    pub socket: PathBuf,
    /// The container has a pty (must match the bundle's `process.terminal`).
    pub tty: bool,
    /// Keep the container's stdin open for attach clients; otherwise it is /dev/null.
    pub stdin: bool,
    /// Set the container up but exec its program only when a client sends [`frame::START`], so an
    /// attach made in between misses nothing (docker's create, attach, start).
    pub hold: bool,
    /// Once detached, wait for one byte on stdin before touching the bundle. The agent starts the
    /// monitor while it still prepares the bundle, so the monitor's own start-up (exec, loading,
    /// the double fork) overlaps that work; end of input instead means the container was not made
    /// after all, and the monitor exits.
    pub wait_for_go: bool,
}

/// Why a monitor could not start its container; reported as `{"error": "<this>"}`.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Runtime(#[from] crate::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Network(#[from] crate::network::NetError),
}

impl MonitorError {
    fn io(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        MonitorError::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// The line the monitor reports when its container runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The container init's host pid.
    pub pid: i32,
    /// The monitor's own pid, for the agent to re-adopt it (pidfd_open) after a restart.
    pub monitor_pid: i32,
}

/// What the invoking process prints: [`Started`] or `{"error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Report {
    Started(Started),
    Failed { error: String },
}

impl Report {
    fn failed(e: impl std::fmt::Display) -> Self {
        // One line, whatever the error text holds.
        Report::Failed {
            error: e.to_string().replace(['\n', '\r'], " "),
        }
    }

    /// The report as one line of JSON, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self)
            .unwrap_or_else(|_| String::from(r#"{"error":"cannot encode report"}"#));
        line.push('\n');
        line
    }
}

/// Runs `berth shim`: starts the monitor as a daemon, prints its report on stdout and returns the
/// exit status for the invoking process (0 when the container runs, 1 otherwise). Must be called from
/// a single-threaded process.
pub fn start(config: &MonitorConfig) -> i32 {
    report_launch(absolute(config).map(Setup::Given))
}

/// Runs `berth-shim --spare --runtime-root DIR`: like [`start`], but the monitor is started
/// before its container exists. Once detached it reads the rest of its arguments
/// ([`args::encode`]) on stdin up to the end of input, so a container's create does not wait for
/// a monitor's exec, loading and double fork. The runtime root stays on its command line, so
/// `ps` shows whose monitor it is.
pub fn start_spare(runtime_root: &Path) -> i32 {
    report_launch(
        std::path::absolute(runtime_root)
            .map(Setup::Spare)
            .map_err(|e| MonitorError::io(format!("resolve {}", runtime_root.display()), e)),
    )
}

/// Where the monitor learns its container.
enum Setup {
    /// On its command line.
    Given(MonitorConfig),
    /// On stdin, once detached; its runtime root is given.
    Spare(PathBuf),
}

fn report_launch(setup: Result<Setup, MonitorError>) -> i32 {
    let (report, code) = match setup.and_then(|s| launch_daemon(&s)) {
        Ok(Report::Started(s)) => (Report::Started(s), 0),
        Ok(failed) => (failed, 1),
        Err(e) => (Report::failed(e), 1),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(report.to_line().as_bytes());
    let _ = out.flush();
    code
}

/// The monitor chdirs to `/`: every path is made absolute first.
fn absolute(config: &MonitorConfig) -> Result<MonitorConfig, MonitorError> {
    let abs = |p: &Path| {
        std::path::absolute(p).map_err(|e| MonitorError::io(format!("resolve {}", p.display()), e))
    };
    Ok(MonitorConfig {
        runtime_root: abs(&config.runtime_root)?,
        bundle: abs(&config.bundle)?,
        log: abs(&config.log)?,
        exit_file: abs(&config.exit_file)?,
        socket: abs(&config.socket)?,
        ..config.clone()
    })
}

/// Forks the daemon (double fork with setsid between) and returns what it reported.
fn launch_daemon(setup: &Setup) -> Result<Report, MonitorError> {
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| MonitorError::io("pipe", e))?;
    // SAFETY: the caller is single-threaded, so the child's copy of the process is consistent.
    match unsafe { nix::unistd::fork() }.map_err(|e| MonitorError::io("fork", e))? {
        ForkResult::Child => {
            drop(read_end);
            let _ = nix::unistd::setsid();
            // SAFETY: still single-threaded.
            let code = match unsafe { nix::unistd::fork() } {
                Ok(ForkResult::Child) => daemon_main(setup, write_end),
                Ok(ForkResult::Parent { .. }) => 0,
                Err(e) => {
                    report_to(&write_end, &Report::failed(format!("fork: {e}")));
                    1
                }
            };
            // SAFETY: _exit skips the parent's atexit handlers and buffered stdio.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            if matches!(setup, Setup::Spare(_)) {
                // Relaying the report is on its container's start path.
                let _ = leave_idle_priority();
            }
            let _ = nix::sys::wait::waitpid(child, None);
            let mut text = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut text);
            Ok(serde_json::from_str(text.trim()).unwrap_or_else(|_| {
                Report::failed(if text.trim().is_empty() {
                    "the monitor exited before it reported".to_owned()
                } else {
                    format!("the monitor reported {:?}", text.trim())
                })
            }))
        }
    }
}

/// Blocks until the agent writes the byte that lets the monitor go on; false at end of input.
fn go_given() -> bool {
    let mut byte = [0u8; 1];
    loop {
        match std::io::stdin().read(&mut byte) {
            Ok(n) => return n == 1,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn report_to(fd: &OwnedFd, report: &Report) {
    let line = report.to_line();
    let _ = nix::unistd::write(fd, line.as_bytes());
}

/// The agent starts a spare at idle CPU priority (SCHED_IDLE), so that loading it never slows a
/// container being set up. It must wait at the normal one: its container, cloned from it, inherits
/// its policy, and the agent waits for its report.
fn leave_idle_priority() -> Result<(), MonitorError> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread with a valid parameter block.
    if unsafe { libc::sched_getscheduler(0) } == libc::SCHED_IDLE
        && unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) } != 0
    {
        return Err(MonitorError::io(
            "leave idle CPU priority",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// A spare's arguments after its runtime root: stdin up to its end. Paths are made absolute
/// before the monitor leaves the agent's working directory.
fn read_launch(runtime_root: &Path) -> Result<Option<MonitorConfig>, String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| format!("read the launch: {e}"))?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let given = ["--runtime-root".into(), runtime_root.as_os_str().to_owned()];
    let config = args::parse(given.into_iter().chain(args::decode(&bytes)?))?;
    absolute(&config).map(Some).map_err(|e| e.to_string())
}

/// The daemon: sets itself up, starts the container, reports, serves until the container exits.
fn daemon_main(setup: &Setup, report: OwnedFd) -> i32 {
    // A spare does, at idle priority, what does not depend on its container: the network
    // namespace the container will most likely ask for (without one it is made at setup).
    let mut network = None;
    let launched = match setup {
        Setup::Given(config) => Ok((!config.wait_for_go || go_given()).then(|| config.clone())),
        Setup::Spare(runtime_root) => {
            network = crate::network::netns::fresh().ok();
            // The host's cgroup layout (a read of the mount table) is the same for any container.
            crate::cgroups::hierarchy();
            leave_idle_priority()
                .map_err(|e| e.to_string())
                .and_then(|()| read_launch(runtime_root))
        }
    };
    let config = match launched {
        Ok(Some(config)) => config,
        Ok(None) => {
            report_to(&report, &Report::failed("called off before the start"));
            return 1;
        }
        Err(e) => {
            report_to(&report, &Report::failed(e));
            return 1;
        }
    };
    let config = &config;
    let _ = std::env::set_current_dir("/");
    if let Err(e) = detach_stdio() {
        report_to(&report, &Report::failed(e));
        return 1;
    }
    // The container is cloned from us: it must start with neither the agent's signal handling nor
    // Rust's (SIGPIPE ignored), and the monitor's own is set only once it runs.
    crate::container::exec::reset_signal_dispositions();
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    let mut monitor = match serve::Monitor::setup(config, network) {
        Ok(m) => m,
        Err(e) => {
            report_to(&report, &Report::failed(e));
            return 1;
        }
    };
    monitor.serve_waiting();
    report_to(
        &report,
        &Report::Started(Started {
            pid: monitor.init_pid(),
            monitor_pid: std::process::id() as i32,
        }),
    );
    drop(report);
    release_setup_memory();
    monitor.run()
}

/// Returns what setup (argument parsing in the invoking process, bundle parsing, the launch) left
/// behind to the kernel: the free heap, and the stack pages below the current frame, which the serve
/// loop needs only a few of. Each monitor lives as long as its container, so this is paid back many
/// times over.
fn release_setup_memory() {
    // SAFETY: malloc_trim only releases free memory.
    unsafe { libc::malloc_trim(0) };
    let Some((low, _)) = std::fs::read_to_string("/proc/self/maps")
        .ok()
        .and_then(|maps| {
            let line = maps.lines().find(|l| l.ends_with("[stack]"))?;
            let (range, _) = line.split_once(' ')?;
            let (lo, hi) = range.split_once('-')?;
            Some((
                usize::from_str_radix(lo, 16).ok()?,
                usize::from_str_radix(hi, 16).ok()?,
            ))
        })
    else {
        return;
    };
    let here = 0u8;
    let sp = std::hint::black_box(&here) as *const u8 as usize;
    // Keep a margin below this frame for the madvise call itself.
    let top = (sp.saturating_sub(16 * 1024)) & !(page_size() - 1);
    if top > low {
        // SAFETY: the range lies in our stack below every live frame (the margin covers the call);
        // MADV_DONTNEED makes those pages read back as zeros, which unused stack may.
        unsafe { libc::madvise(low as *mut libc::c_void, top - low, libc::MADV_DONTNEED) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no side effects.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

/// Points fds 0-2 at /dev/null so the monitor holds nothing of the agent's (its pipe or terminal).
fn detach_stdio() -> Result<(), MonitorError> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| MonitorError::io("open /dev/null", e))?;
    for target in 0..3 {
        dup2(null.as_raw_fd(), target).map_err(|e| MonitorError::io("redirect stdio", e))?;
    }
    Ok(())
}

fn dup2(from: RawFd, to: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2 between two fd numbers; `from` is valid.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The monitor's own signal handling, set once the container runs: SIGCHLD through a signalfd,
/// the stop and hang-up signals ignored.
fn monitor_signals() -> nix::Result<nix::sys::signalfd::SignalFd> {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGPIPE,
        Signal::SIGQUIT,
    ] {
        // SAFETY: SIG_IGN runs no code of ours.
        unsafe { sigaction(sig, &ignore) }?;
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()?;
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// The runtime options the monitor launches with.
fn create_options(config: &MonitorConfig, network: Option<OwnedFd>) -> CreateOptions {
    CreateOptions {
        id: config.id.clone(),
        bundle: config.bundle.clone(),
        network_namespace: network.map(std::sync::Arc::new),
        ..CreateOptions::default()
    }
}

/// Whether the spec asks for a network namespace of its own (rather than the host's or a named one).
fn wants_new_network(spec: &oci_spec::runtime::Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|list| {
            list.iter().any(|ns| {
                ns.typ() == oci_spec::runtime::LinuxNamespaceType::Network && ns.path().is_none()
            })
        })
}

fn runtime(config: &MonitorConfig) -> Runtime {
    Runtime::new(&config.runtime_root)
}
