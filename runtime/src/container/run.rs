//! `run`: create and start at once; in the foreground, forward signals, relay the terminal and return
//! the container's exit code, then delete it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::termios;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::create::{CreateOptions, Launch};
use super::{destroy, Runtime};
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::sync::Msg;

/// The init's pid, for the signal handler to forward to.
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

impl Runtime {
    /// Runs a container. Detached: returns 0 once it runs. Foreground: returns its exit code (128+N when
    /// killed by signal N) after deleting it.
    pub fn run(&self, opts: &CreateOptions, detach: bool) -> Result<i32> {
        let mut launched = self.launch(
            opts,
            Bundle::load(&opts.bundle)?,
            Launch::Run {
                foreground: !detach,
            },
        )?;
        let pid = launched.record.pid();
        if detach {
            launched
                .chan
                .send(&Msg::Start)
                .map_err(|e| Error::io("start init", e))?;
            launched.cleanup.disarm();
            return Ok(0);
        }
        forward_signals(pid);
        launched
            .chan
            .send(&Msg::Start)
            .map_err(|e| Error::io("start init", e))?;
        let status = match launched.pty_master.take() {
            Some(master) => relay_terminal(&master, pid),
            None => wait_exit(pid),
        };
        // An init that failed between start and exec said why before exiting.
        let late_error = match launched.chan.recv_nonblocking() {
            Some(Msg::Error(text)) => Some(Error::Init(text)),
            _ => None,
        };
        launched.cleanup.disarm();
        destroy(&launched.dir, &launched.record)?;
        match late_error {
            Some(e) => Err(e),
            None => status,
        }
    }
}

/// Forwards the signals a foreground runtime receives to `pid` (`run` and `exec`), so that Ctrl-C and
/// `kill` of the runtime reach the container process.
pub(super) fn forward_signals(pid: Pid) {
    FORWARD_TO.store(pid.as_raw(), Ordering::Relaxed);
    let handler = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in FORWARDED {
        // SAFETY: the handler only calls async-signal-safe functions.
        let _ = unsafe { sigaction(sig, &handler) };
    }
}

/// Waits for the init and maps its status to a shell-style exit code.
pub(super) fn wait_exit(pid: Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::io("wait for container", e)),
        }
    }
}

/// Copies our stdin to the pty and the pty to our stdout (our terminal in raw mode meanwhile) until the
/// container closes its side, then reaps it.
pub(super) fn relay_terminal(master: &OwnedFd, pid: Pid) -> Result<i32> {
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(orig) = &saved {
        let mut raw = orig.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, &raw);
        copy_window_size(master);
    }
    let mut buf = [0u8; 8192];
    let mut stdin_open = true;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfds for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            match nix::unistd::read(master, &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => break,
                Ok(n) => write_all(1, &buf[..n]),
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        if fds[1].revents != 0 {
            match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => write_all(master.as_raw_fd(), &buf[..n]),
            }
        }
    }
    if let Some(orig) = &saved {
        let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, orig);
    }
    wait_exit(pid)
}

fn copy_window_size(master: &OwnedFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer, valid for the call.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
        crate::console::set_window_size(master.as_raw_fd(), ws.ws_row, ws.ws_col);
    }
}

fn write_all(fd: i32, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writes from a buffer valid for the call.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n <= 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        data = &data[n as usize..];
    }
}
