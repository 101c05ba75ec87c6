//! Pseudo-terminals for containers: the init opens a pty inside the container's devpts, makes the slave
//! its controlling terminal and hands the master to whoever owns the console (runc's console-socket
//! protocol: one message whose payload is the pty name and whose SCM_RIGHTS carries the master fd).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, PtyMaster};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// A freshly opened pty pair; the slave is already unlocked.
pub struct Pty {
    pub master: PtyMaster,
    pub slave: OwnedFd,
    pub name: String,
}

/// Opens a pty in the current mount namespace's `/dev/ptmx` and sets its window size if known.
pub fn open_pty(size: Option<(u16, u16)>) -> nix::Result<Pty> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    if let Some((rows, cols)) = size {
        set_window_size(slave.as_raw_fd(), rows, cols);
    }
    Ok(Pty {
        master,
        slave,
        name,
    })
}

/// Sets a terminal's size; failures are ignored because a wrong size is cosmetic.
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which is valid for the call.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

/// Sends the master to a console socket the way runc does.
pub fn send_master(socket: RawFd, pty: &Pty) -> nix::Result<()> {
    let fds = [pty.master.as_raw_fd()];
    let iov = [IoSlice::new(pty.name.as_bytes())];
    sendmsg::<()>(
        socket,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok(())
}

/// Makes `slave` the controlling terminal and stdio of the calling process (which must have called
/// setsid first).
pub fn make_controlling(slave: &OwnedFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument; the fd is valid.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(nix::errno::Errno::last());
    }
    for target in 0..3 {
        // SAFETY: dup2 onto stdio numbers; the source fd is valid.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(nix::errno::Errno::last());
        }
    }
    Ok(())
}
