//! Facts about host processes by pid, robust against pid reuse (pid + start time identify a process).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

/// The start time (clock ticks since boot, field 22 of /proc/PID/stat) of a live, non-zombie process.
/// `None` when the process is gone or is a zombie.
pub fn start_time(pid: Pid) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3 (state); start time is field 22.
    fields.nth(18)?.parse().ok()
}

/// Whether the process `pid` that started at `started` still runs.
pub fn is_alive(pid: Pid, started: u64) -> bool {
    start_time(pid) == Some(started)
}

/// Sends `signal` to the process `pid` that started at `started`, and to no other: the pid is pinned
/// with a pidfd first and its start time checked after, so a pid recycled since the caller looked
/// is never signalled. `ESRCH` when the process is gone.
pub fn signal(pid: Pid, started: u64, signal: nix::sys::signal::Signal) -> nix::Result<()> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if raw < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    if !is_alive(pid, started) {
        return Err(nix::Error::ESRCH);
    }
    // SAFETY: pidfd_send_signal with our pidfd, a valid signal number, no siginfo and no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

/// Waits until `pid` has exited (it need not be our child), at most `timeout`. Returns whether it did.
pub fn wait_gone(pid: Pid, started: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if raw < 0 {
        return !is_alive(pid, started);
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    while is_alive(pid, started) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // A pidfd becomes readable when the process exits; zombies count as gone for is_alive, so poll
        // in short slices to notice those too.
        let slice = left.min(Duration::from_millis(20)).as_millis() as i32;
        // SAFETY: pfd is a valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, slice.max(1)) };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn signal_reaches_only_the_process_that_started_then() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = Pid::from_raw(child.id() as i32);
        let started = start_time(pid).expect("start time of a live child");
        assert_eq!(
            signal(pid, started + 1, Signal::SIGKILL),
            Err(nix::Error::ESRCH),
            "a different start time must look like a recycled pid"
        );
        assert!(
            is_alive(pid, started),
            "the wrong-start-time signal was delivered"
        );
        signal(pid, started, Signal::SIGKILL).expect("signal the real process");
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
