//! The monitor's event loop: one poll(2) over the signalfd, the attach listener, the container's
//! output (two pipes, or the pty master), its stdin and the attach clients.
//!
//! Bounds, so that nothing a client or the container does can block the other or grow memory:
//! - Output is read in [`READ_CHUNK`] pieces and written to the log at once, then queued for each
//!   client. A client whose queue exceeds [`CLIENT_BACKLOG`] (it reads slower than the container
//!   writes) is disconnected — the container never waits for a client, and a client never receives a
//!   stream with holes; it can reattach and read the log for what it missed.
//! - Stdin from clients is queued up to [`STDIN_BACKLOG`]; beyond that the monitor stops reading from
//!   clients (they block, the container does not) until the container has read some.
//! - At most [`MAX_CLIENTS`] clients; further connections are closed at once.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::exit::ExitRecord;
use super::frame::{self, Decoder, Event};
use super::log::{JsonLog, Stream};
use super::{MonitorConfig, MonitorError};
use crate::cgroups::Cgroup;
use crate::container::exec::Stdio;
use crate::state::Record;
use crate::Runtime;

/// Size of one read of container output (one heap buffer, reused).
pub const READ_CHUNK: usize = 32 * 1024;
/// Output queued for one attach client before it is disconnected: room for a burst the client is
/// still reading, allocated only while it lags.
pub const CLIENT_BACKLOG: usize = 1024 * 1024;
/// Client input queued for the container's stdin before clients stop being read.
pub const STDIN_BACKLOG: usize = 64 * 1024;
/// Attach clients served at once.
pub const MAX_CLIENTS: usize = 128;
/// How long the exiting monitor keeps trying to deliver queued output to clients.
const CLIENT_FLUSH: Duration = Duration::from_secs(2);
/// The most output drained after the init exited (from processes it left behind without a pid
/// namespace, which could otherwise keep the monitor reading forever).
const DRAIN_LIMIT: usize = 8 * 1024 * 1024;

/// Where attach input goes.
enum StdinTarget {
    /// No stdin (not requested, closed by a client, or closed by the container).
    None,
    Pipe(OwnedFd),
    /// The pty master (`Monitor::pty`).
    Pty,
}

/// One output source: a pipe or the pty master.
struct Source {
    fd: OwnedFd,
    stream: Stream,
    is_pty: bool,
}

struct Client {
    sock: UnixStream,
    out: Vec<u8>,
    /// Bytes of `out` already sent.
    sent: usize,
    decoder: Decoder,
    /// Dropped at the end of this poll round (its socket failed, or it misbehaved).
    dead: bool,
    /// Nothing more will be read from it (end of file, a read error, a malformed frame).
    read_closed: bool,
}

/// A running monitor: its container started, its fds open.
pub struct Monitor {
    rt: Runtime,
    id: String,
    record: Record,
    /// The container while it waits for [`frame::START`] (`--hold`).
    held: Option<crate::container::exec::Held>,
    exit_file: PathBuf,
    socket: PathBuf,
    listener: Option<UnixListener>,
    sigfd: SignalFd,
    sources: Vec<Source>,
    /// A second handle on the pty master, for resizes and stdin.
    pty: Option<OwnedFd>,
    stdin: StdinTarget,
    stdin_queue: Vec<u8>,
    stdin_close: bool,
    log: JsonLog,
    clients: Vec<Client>,
    /// Set when accept fails for lack of fds, so the still-readable listener does not spin the loop;
    /// cleared when a client leaves.
    accept_paused: bool,
    buf: Vec<u8>,
}

impl Monitor {
    /// Opens the log, binds the socket, creates the pipes and starts the container.
    /// `network` is a namespace made ahead for a container that asks for one of its own.
    pub fn setup(config: &MonitorConfig, network: Option<OwnedFd>) -> Result<Self, MonitorError> {
        let bundle = crate::bundle::Bundle::load(&config.bundle)?;
        // The container's own network namespace comes with its loopback up, as in Docker.
        let network = if super::wants_new_network(&bundle.spec) {
            Some(match network {
                Some(made) => made,
                None => crate::network::netns::fresh()?,
            })
        } else {
            None
        };
        let terminal = bundle
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if terminal != config.tty {
            return Err(MonitorError::Config(format!(
                "--tty is {} but the bundle's process.terminal is {terminal}: they must agree",
                config.tty
            )));
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(&config.log)
            .map_err(|e| MonitorError::io(format!("open log {}", config.log.display()), e))?;
        let listener = bind(&config.socket)?;
        let socket_guard = RemoveOnDrop(Some(config.socket.clone()));

        let null = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open("/dev/null")
                .map(OwnedFd::from)
                .map_err(|e| MonitorError::io("open /dev/null", e))
        };
        let mut sources = Vec::new();
        let mut stdin = StdinTarget::None;
        let stdio = if config.tty {
            // The init makes the pty slave its stdio; these are only placeholders until then.
            Stdio {
                stdin: null()?,
                stdout: null()?,
                stderr: null()?,
            }
        } else {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            sources.push(Source {
                fd: out_r,
                stream: Stream::Stdout,
                is_pty: false,
            });
            sources.push(Source {
                fd: err_r,
                stream: Stream::Stderr,
                is_pty: false,
            });
            let container_stdin = if config.stdin {
                let (in_r, in_w) = pipe()?;
                stdin = StdinTarget::Pipe(in_w);
                in_r
            } else {
                null()?
            };
            Stdio {
                stdin: container_stdin,
                stdout: out_w,
                stderr: err_w,
            }
        };

        // A fixed mmap threshold: buffers a lagging client grows beyond it are mapped on their own
        // and returned to the kernel when freed, instead of raising glibc's dynamic threshold and
        // staying in the heap for the monitor's lifetime.
        // SAFETY: mallopt only changes allocator parameters.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
        let rt = super::runtime(config);
        let mut held = rt.spawn_held(&super::create_options(config, network), bundle, stdio)?;
        let pty_master = held.take_pty_master();
        let (record, held) = if config.hold {
            (held.record().clone(), Some(held))
        } else {
            (held.release()?, None)
        };
        // From here on a failure must not leave the container without its monitor.
        let kill_guard = KillOnDrop {
            rt: &rt,
            id: &config.id,
        };
        let mut pty = None;
        if let Some(master) = pty_master {
            let second = master
                .try_clone()
                .map_err(|e| MonitorError::io("dup pty master", e))?;
            if config.stdin {
                stdin = StdinTarget::Pty;
            }
            pty = Some(second);
            sources.push(Source {
                fd: master,
                stream: Stream::Stdout,
                is_pty: true,
            });
        }
        for s in &sources {
            set_nonblocking(s.fd.as_raw_fd())?;
        }
        if let StdinTarget::Pipe(fd) = &stdin {
            set_nonblocking(fd.as_raw_fd())?;
        }
        let sigfd = super::monitor_signals().map_err(|e| MonitorError::io("signalfd", e))?;
        std::mem::forget(kill_guard);
        let mut socket_guard = socket_guard;
        socket_guard.0 = None;
        Ok(Monitor {
            rt,
            id: config.id.clone(),
            record,
            held,
            exit_file: config.exit_file.clone(),
            socket: config.socket.clone(),
            listener: Some(listener),
            sigfd,
            sources,
            pty,
            stdin,
            stdin_queue: Vec::new(),
            stdin_close: false,
            log: JsonLog::new(log),
            clients: Vec::new(),
            accept_paused: false,
            buf: vec![0; READ_CHUNK],
        })
    }

    pub fn init_pid(&self) -> i32 {
        self.record.pid
    }

    /// Serves until the init exits, then finishes up; returns the monitor's exit status.
    pub fn run(mut self) -> i32 {
        let init = self.record.pid();
        let mut status = None;
        loop {
            // Also catches an exit that happened before SIGCHLD was blocked.
            self.reap(init, &mut status);
            if let Some(st) = status {
                return self.finish(st);
            }
            self.poll_once(-1);
        }
    }

    /// Serves what already waits, without blocking. `run` sends its start while the container is
    /// still being set up: handled here, before the report, the container's program runs without
    /// waiting for the report's trip to the agent, which only the agent's records need.
    pub fn serve_waiting(&mut self) {
        // One round accepts the connections, the next reads what they sent.
        for _ in 0..2 {
            self.poll_once(0);
        }
    }

    /// Reaps every exited child (the init, and orphans reparented to us as subreaper).
    fn reap(&mut self, init: Pid, status: &mut Option<WaitStatus>) {
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)))
                    if pid == init =>
                {
                    *status = Some(st)
                }
                Ok(_) => {}
            }
        }
    }

    /// Waits up to `timeout_ms` (-1: for ever) for something to do, and does it.
    fn poll_once(&mut self, timeout_ms: libc::c_int) {
        #[derive(Clone, Copy)]
        enum Slot {
            Signal,
            Listener,
            Source(usize),
            Stdin,
            Client(usize),
        }
        let mut fds: Vec<libc::pollfd> =
            Vec::with_capacity(4 + self.sources.len() + self.clients.len());
        let mut slots: Vec<Slot> = Vec::with_capacity(fds.capacity());
        let mut add = |fd: RawFd, events: i16, slot: Slot| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            slots.push(slot);
        };
        add(self.sigfd.as_fd().as_raw_fd(), libc::POLLIN, Slot::Signal);
        if let Some(l) = self.listener.as_ref().filter(|_| !self.accept_paused) {
            add(l.as_raw_fd(), libc::POLLIN, Slot::Listener);
        }
        for (i, s) in self.sources.iter().enumerate() {
            add(s.fd.as_raw_fd(), libc::POLLIN, Slot::Source(i));
        }
        if !self.stdin_queue.is_empty() {
            if let Some(fd) = self.stdin_fd() {
                add(fd, libc::POLLOUT, Slot::Stdin);
            }
        }
        let read_clients = self.stdin_queue.len() < STDIN_BACKLOG;
        for (i, c) in self.clients.iter().enumerate() {
            let mut ev = 0;
            if read_clients {
                ev |= libc::POLLIN;
            }
            if c.sent < c.out.len() {
                ev |= libc::POLLOUT;
            }
            add(c.sock.as_raw_fd(), ev, Slot::Client(i));
        }
        // SAFETY: `fds` is a valid array of pollfds for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n <= 0 {
            return;
        }
        let mut closed_sources = Vec::new();
        for (pfd, slot) in fds.iter().zip(slots) {
            if pfd.revents == 0 {
                continue;
            }
            match slot {
                Slot::Signal => {}
                Slot::Listener => self.accept(),
                Slot::Source(i) => {
                    if !self.read_source(i) {
                        closed_sources.push(i);
                    }
                }
                Slot::Stdin => self.flush_stdin(),
                Slot::Client(i) => self.client_ready(i, pfd.revents),
            }
        }
        for i in closed_sources.into_iter().rev() {
            self.sources.remove(i);
        }
        self.drain_dead_clients();
        let before = self.clients.len();
        self.clients.retain(|c| !c.dead);
        if self.clients.len() < before {
            self.accept_paused = false;
        }
        self.flush_stdin();
    }

    /// Reads one chunk from a source and distributes it. Returns false once the source is done.
    fn read_source(&mut self, i: usize) -> bool {
        let (fd, stream, is_pty) = {
            let s = &self.sources[i];
            (s.fd.as_raw_fd(), s.stream, s.is_pty)
        };
        match read(fd, &mut self.buf) {
            Ok(0) => false,
            Ok(n) => {
                self.dispatch(stream, n);
                true
            }
            Err(Errno::EAGAIN | Errno::EINTR) => true,
            // EIO: the pty's last slave closed.
            Err(Errno::EIO) if is_pty => false,
            Err(_) => false,
        }
    }

    /// Sends the first `n` bytes of the read buffer to the log and to every client.
    fn dispatch(&mut self, stream: Stream, n: usize) {
        let data = &self.buf[..n];
        self.log.append(stream, data, SystemTime::now());
        for c in &mut self.clients {
            if c.dead {
                continue;
            }
            if c.out.len() - c.sent + frame::HEADER_LEN + n > CLIENT_BACKLOG {
                c.dead = true;
                continue;
            }
            frame::encode(stream.frame_byte(), data, &mut c.out);
            c.flush();
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((sock, _)) => {
                    if self.clients.len() >= MAX_CLIENTS || sock.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        sock,
                        out: Vec::new(),
                        sent: 0,
                        decoder: Decoder::new(),
                        dead: false,
                        read_closed: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                // Out of fds: the pending connection stays queued until a client leaves.
                Err(_) => {
                    self.accept_paused = true;
                    return;
                }
            }
        }
    }

    fn client_ready(&mut self, i: usize, revents: i16) {
        if revents & libc::POLLOUT != 0 {
            self.clients[i].flush();
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0
            || self.clients[i].read_closed
        {
            return;
        }
        let mut buf = [0u8; 4096];
        let n = match self.clients[i].sock.read(&mut buf) {
            Ok(n) if n > 0 => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Ok(_) | Err(_) => {
                let c = &mut self.clients[i];
                c.dead = true;
                c.read_closed = true;
                return;
            }
        };
        let mut decoder = std::mem::take(&mut self.clients[i].decoder);
        let result = decoder.feed(&buf[..n], |ev| self.client_event(i, ev));
        self.clients[i].decoder = decoder;
        if result.is_err() {
            let c = &mut self.clients[i];
            c.dead = true;
            c.read_closed = true;
        }
    }

    /// Reads what clients about to be dropped still have waiting. A one-shot client (the agent's
    /// resize) writes its frame and closes at once; output sent to it meanwhile fails with EPIPE
    /// and marks it dead, possibly before its frame was read.
    fn drain_dead_clients(&mut self) {
        for i in 0..self.clients.len() {
            if self.clients[i].dead {
                self.client_ready(i, libc::POLLIN);
            }
        }
    }

    fn client_event(&mut self, client: usize, ev: Event<'_>) {
        match ev {
            Event::Start => {
                let answer = match self.held.take().map(|h| h.release()) {
                    Some(Err(e)) => e.to_string(),
                    Some(Ok(_)) | None => String::new(),
                };
                frame::encode(
                    frame::START,
                    answer.as_bytes(),
                    &mut self.clients[client].out,
                );
            }
            Event::Stdin(bytes) => {
                if !matches!(self.stdin, StdinTarget::None) && !self.stdin_close {
                    self.stdin_queue.extend_from_slice(bytes);
                }
            }
            Event::Resize { rows, cols } => {
                if let Some(pty) = &self.pty {
                    crate::console::set_window_size(pty.as_raw_fd(), rows, cols);
                }
            }
            Event::CloseStdin => self.stdin_close = true,
        }
    }

    fn stdin_fd(&self) -> Option<RawFd> {
        match &self.stdin {
            StdinTarget::None => None,
            StdinTarget::Pipe(fd) => Some(fd.as_raw_fd()),
            StdinTarget::Pty => self.pty.as_ref().map(|p| p.as_raw_fd()),
        }
    }

    /// Writes queued stdin without blocking; closes stdin once asked to and everything is written.
    fn flush_stdin(&mut self) {
        let Some(fd) = self.stdin_fd() else {
            self.stdin_queue = Vec::new();
            return;
        };
        let mut written = 0;
        while written < self.stdin_queue.len() {
            match write(fd, &self.stdin_queue[written..]) {
                Ok(n) => written += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                // The container closed its stdin (EPIPE) or the pty is gone: input has nowhere to go.
                Err(_) => {
                    self.stdin = StdinTarget::None;
                    self.stdin_queue = Vec::new();
                    return;
                }
            }
        }
        self.stdin_queue.drain(..written);
        if self.stdin_queue.is_empty() {
            if self.stdin_queue.capacity() > 4096 {
                self.stdin_queue = Vec::new();
            }
            if self.stdin_close {
                if let StdinTarget::Pty = self.stdin {
                    // A pty has no half-close: end-of-file is the VEOF character (Ctrl-D).
                    let _ = write(fd, &[4]);
                }
                self.stdin = StdinTarget::None;
            }
        }
    }

    /// Drains output, records the exit, closes clients, removes the runtime state.
    fn finish(mut self, status: WaitStatus) -> i32 {
        // No new clients: the socket goes first.
        self.listener = None;
        let _ = std::fs::remove_file(&self.socket);

        let mut drained = 0;
        for i in 0..self.sources.len() {
            let (fd, stream, is_pty) = {
                let s = &self.sources[i];
                (s.fd.as_raw_fd(), s.stream, s.is_pty)
            };
            while drained < DRAIN_LIMIT {
                match read(fd, &mut self.buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        drained += n;
                        self.dispatch(stream, n);
                    }
                    Err(Errno::EINTR) => {}
                    Err(Errno::EIO) if is_pty => break,
                    Err(_) => break,
                }
            }
        }
        self.sources.clear();
        let now = SystemTime::now();
        self.log.flush(now);

        let oom_killed = Cgroup::open(&self.record.cgroup_path)
            .and_then(|cg| cg.oom_kills())
            .is_ok_and(|kills| kills.unwrap_or(0) > 0);
        if let Some(record) = ExitRecord::from_wait(status, oom_killed, now) {
            let _ = record.write(&self.exit_file);
        }

        self.flush_clients();
        self.clients.clear();

        // The init is reaped, so the container counts as stopped: this removes the cgroup (killing
        // anything left in it) and the state directory. It may already be gone (agent's delete).
        let _ = self.rt.delete(&self.id, true);
        0
    }

    /// Gives clients a bounded time to take the rest of the output.
    fn flush_clients(&mut self) {
        let deadline = Instant::now() + CLIENT_FLUSH;
        loop {
            for c in &mut self.clients {
                c.flush();
            }
            self.clients.retain(|c| !c.dead && c.sent < c.out.len());
            let left = deadline.saturating_duration_since(Instant::now());
            if self.clients.is_empty() || left.is_zero() {
                return;
            }
            let mut fds: Vec<libc::pollfd> = self
                .clients
                .iter()
                .map(|c| libc::pollfd {
                    fd: c.sock.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                })
                .collect();
            // SAFETY: `fds` is a valid array of pollfds for the duration of the call.
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    left.as_millis().min(100) as i32,
                )
            };
        }
    }
}

impl Client {
    /// Sends what is queued without blocking; marks the client dead when its socket fails.
    fn flush(&mut self) {
        while self.sent < self.out.len() {
            match self.sock.write(&self.out[self.sent..]) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
            if self.out.capacity() > 64 * 1024 {
                self.out = Vec::new();
            }
        } else if self.sent > self.out.len() / 2 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }
}

/// Binds the attach socket (0600). A socket file already there is replaced only when nothing
/// listens on it (a monitor that died); a live one means another monitor owns this container.
fn bind(path: &Path) -> Result<UnixListener, MonitorError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(MonitorError::Config(format!(
                "attach socket {} exists and is not a socket",
                path.display()
            )));
        }
        if crate::unix_socket::connect(path).is_ok() {
            return Err(MonitorError::Config(format!(
                "attach socket {} is in use by another monitor",
                path.display()
            )));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = crate::unix_socket::bind(path)
        .map_err(|e| MonitorError::io(format!("bind {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| MonitorError::io(format!("chmod {}", path.display()), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| MonitorError::io("attach socket", e))?;
    Ok(listener)
}

/// A close-on-exec pipe (read end, write end). The monitor's ends are made non-blocking later; the
/// container's stay blocking, as programs expect of their stdio.
fn pipe() -> Result<(OwnedFd, OwnedFd), MonitorError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| MonitorError::io("pipe", e))
}

fn set_nonblocking(fd: RawFd) -> Result<(), MonitorError> {
    // SAFETY: fcntl on a valid fd with integer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(MonitorError::io(
            "set non-blocking",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: reads into a buffer valid for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Errno::last());
    }
    Ok(n as usize)
}

fn write(fd: RawFd, data: &[u8]) -> Result<usize, Errno> {
    // SAFETY: writes from a buffer valid for its length.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    if n < 0 {
        return Err(Errno::last());
    }
    Ok(n as usize)
}

/// Removes the socket file if setup fails after binding it.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Kills and deletes the container if setup fails after it started: a container nobody monitors
/// would have its output go nowhere and its exit unrecorded.
struct KillOnDrop<'a> {
    rt: &'a Runtime,
    id: &'a str,
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.rt.delete(self.id, true);
    }
}
