//! The parent ↔ init handshake over a SOCK_SEQPACKET socketpair: one message per step, errors as text,
//! and file descriptors (the pty master) as SCM_RIGHTS.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// One step of the handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// Parent → init: the cgroup is joined, set the container up.
    Setup,
    /// Init → parent: set up and waiting for start.
    Ready,
    /// Parent → init: exec the user program now (used by `run`, which needs no exec fifo).
    Start,
    /// Init → parent: the pty master, for a foreground `run` with a terminal.
    PtyMaster,
    /// Init → parent: setup failed; the text says why.
    Error(String),
}

/// One end of the handshake socket.
pub struct Channel(OwnedFd);

pub fn pair() -> nix::Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    pub fn send(&self, msg: &Msg) -> nix::Result<()> {
        self.send_with_fd(msg, None)
    }

    pub fn send_with_fd(&self, msg: &Msg, fd: Option<RawFd>) -> nix::Result<()> {
        let mut buf = Vec::with_capacity(64);
        match msg {
            Msg::Setup => buf.push(b'S'),
            Msg::Ready => buf.push(b'R'),
            Msg::Start => buf.push(b'G'),
            Msg::PtyMaster => buf.push(b'T'),
            Msg::Error(text) => {
                buf.push(b'E');
                buf.extend_from_slice(text.as_bytes());
            }
        }
        let iov = [IoSlice::new(&buf)];
        let fds = fd.map(|f| [f]);
        let cmsg: Vec<ControlMessage> = fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }

    /// A message already queued, if any, without waiting.
    pub fn recv_nonblocking(&self) -> Option<Msg> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is valid for the call.
        if unsafe { libc::poll(&mut pfd, 1, 0) } <= 0 {
            return None;
        }
        self.recv().ok().flatten().map(|(m, _)| m)
    }

    /// Receives the next message; `None` when the peer closed its end (e.g. the init died).
    pub fn recv(&self) -> nix::Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = [0u8; 4096];
        let mut cspace = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut cspace),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for f in fds {
                                // SAFETY: the kernel installed this fd for us.
                                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = match buf[0] {
            b'S' => Msg::Setup,
            b'R' => Msg::Ready,
            b'G' => Msg::Start,
            b'T' => Msg::PtyMaster,
            b'E' => Msg::Error(String::from_utf8_lossy(&buf[1..n]).into_owned()),
            other => Msg::Error(format!("unexpected handshake byte {other:#x}")),
        };
        Ok(Some((msg, fd)))
    }
}
