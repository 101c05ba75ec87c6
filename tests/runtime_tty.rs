//! `terminal: true` with `--console-socket`: the runtime sends the pty
//! master over the socket (SCM_RIGHTS) and the process runs on the slave.

mod common;

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use nix::poll::{poll as nix_poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// Accepts one connection on `listener` and receives one fd from it.
fn receive_master(listener: UnixListener, timeout: Duration) -> OwnedFd {
    listener.set_nonblocking(true).unwrap();
    let stream = poll(
        "the runtime to connect to the console socket",
        timeout,
        || match listener.accept() {
            Ok((s, _)) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => panic!("accept: {e}"),
        },
    );
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg on the console socket");
    let mut fds = Vec::new();
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(r) = c {
            fds.extend(r);
        }
    }
    assert_eq!(fds.len(), 1, "expected exactly one fd, got {fds:?}");
    // SAFETY: the fd was just received and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fds[0]) }
}

/// Reads from the pty master until `done` holds for the text, EOF/EIO, or
/// the deadline.
fn read_master(master: &OwnedFd, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if done(&text) {
            return text;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!("timed out reading the pty master; got {text:?}");
        }
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        let ms = left.as_millis().min(1000) as u16;
        match nix_poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(master, &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) => return text,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(e) => panic!("read pty master: {e}"),
        }
    }
}

fn listen(ctx: &Ctx) -> (UnixListener, std::path::PathBuf) {
    let sock = ctx.path("console.sock");
    (
        UnixListener::bind(&sock).expect("bind console socket"),
        sock,
    )
}

fn is_tty(fd: &OwnedFd) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

#[test]
fn console_socket_receives_a_working_pty() {
    let ctx = Ctx::new();
    let id = ctx.id("tty");
    let mut b = ctx.bundle(&id);
    b.terminal(true)
        .sh("tty; test -t 0 && test -t 1 && test -t 2 && echo all-tty; echo ok");
    b.write();
    let (listener, sock) = listen(&ctx);
    let receiver = std::thread::spawn(move || receive_master(listener, WAIT_TIMEOUT));
    ctx.rt(&[
        "create",
        "--console-socket",
        s(&sock),
        "--bundle",
        s(&b.dir),
        &id,
    ])
    .ok();
    let master = receiver.join().expect("console socket receiver");
    assert!(is_tty(&master), "the received fd is not a terminal");
    assert_eq!(ctx.status(&id).as_deref(), Some("created"));

    ctx.rt(&["start", &id]).ok();
    let text = read_master(&master, WAIT_TIMEOUT, |t| t.contains("ok\r\n"));
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("all-tty"), "{text:?}");
    // The line discipline turns \n into \r\n: proof it is a real tty.
    assert!(text.contains("ok\r\n"), "{text:?}");
    ctx.wait_status(&id, "stopped");
    ctx.rt(&["delete", &id]).ok();
    ctx.assert_clean(&b, &id);
}

#[test]
fn pty_input_reaches_the_process() {
    let ctx = Ctx::new();
    let id = ctx.id("ttyin");
    let mut b = ctx.bundle(&id);
    b.terminal(true)
        .sh("echo ready; read line; echo \"got:$line\"");
    b.write();
    let (listener, sock) = listen(&ctx);
    let receiver = std::thread::spawn(move || receive_master(listener, WAIT_TIMEOUT));
    ctx.rt(&[
        "run",
        "--detach",
        "--console-socket",
        s(&sock),
        "--bundle",
        s(&b.dir),
        &id,
    ])
    .ok();
    let master = receiver.join().expect("console socket receiver");
    read_master(&master, WAIT_TIMEOUT, |t| t.contains("ready"));
    nix::unistd::write(&master, b"hello-pty\n").expect("write to pty master");
    let text = read_master(&master, WAIT_TIMEOUT, |t| t.contains("got:hello-pty"));
    assert!(text.contains("got:hello-pty"), "{text:?}");
    ctx.wait_status(&id, "stopped");
    ctx.rt(&["delete", &id]).ok();
    ctx.assert_clean(&b, &id);
}

#[test]
fn terminal_without_console_socket_is_rejected_for_create() {
    let ctx = Ctx::new();
    let id = ctx.id("nosock");
    let mut b = ctx.bundle(&id);
    b.terminal(true);
    let out = ctx.create(&b, &id);
    ctx.assert_error(&out, &["console", "socket", "terminal"]);
    ctx.assert_clean(&b, &id);
    assert!(!Path::new(&ctx.root.join(&id)).exists());
}
