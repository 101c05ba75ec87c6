//! Interactive sessions: `attach` (to the container's main process, through its monitor's socket) and
//! `exec` (a new process in the container, through `berth runtime exec`). After the session header
//! the QUIC stream carries raw stdin one way and output chunks the other (protocol::session); resizes
//! arrive as separate requests naming the session.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;

use protocol::messages::{ApiError, AttachOptions, ExecConfig, SessionHeader, WindowSize};
use protocol::session::{self, OutputKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::names::random_hex;
use runtime::monitor::frame;

/// Live exec sessions with a terminal, so a resize can reach their pty.
#[derive(Default)]
pub struct Sessions {
    ptys: Mutex<HashMap<String, OwnedFd>>,
}

impl Sessions {
    fn insert(&self, id: &str, fd: OwnedFd) {
        if let Ok(mut m) = self.ptys.lock() {
            m.insert(id.to_owned(), fd);
        }
    }
    fn remove(&self, id: &str) {
        if let Ok(mut m) = self.ptys.lock() {
            m.remove(id);
        }
    }
    /// Applies a new size to an exec session's terminal; false if the session is not an exec pty.
    pub fn resize(&self, id: &str, size: WindowSize) -> bool {
        let Ok(m) = self.ptys.lock() else {
            return false;
        };
        match m.get(id) {
            Some(fd) => {
                runtime::console::set_window_size(fd.as_raw_fd(), size.rows, size.cols);
                true
            }
            None => false,
        }
    }
}

/// One frame of the monitor socket's wire format (runtime::monitor::frame).
fn encode_frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame::HEADER_LEN + data.len());
    frame::encode(kind, data, &mut out);
    out
}

/// Connects to a monitor's socket (a local unix socket: connecting does not block).
fn connect(socket: &Path) -> std::io::Result<UnixStream> {
    let s = runtime::unix_socket::connect(socket)?;
    s.set_nonblocking(true)?;
    UnixStream::from_std(s)
}

/// Sends a resize to the monitor of a container with a terminal.
pub async fn resize_main(socket: &Path, size: WindowSize) -> Result<(), ApiError> {
    let mut s = connect(socket)
        .map_err(|e| ApiError::not_running(format!("container is not running: {e}")))?;
    let mut payload = Vec::with_capacity(4);
    payload.extend_from_slice(&size.rows.to_be_bytes());
    payload.extend_from_slice(&size.cols.to_be_bytes());
    s.write_all(&encode_frame(frame::RESIZE, &payload))
        .await
        .map_err(|e| ApiError::internal(format!("resize: {e}")))
}

/// Connects to the container's monitor for `attach`.
pub fn connect_main(socket: &Path) -> Result<UnixStream, ApiError> {
    connect(socket).map_err(|e| ApiError::not_running(format!("cannot attach: {e}")))
}

/// The header of an attach session.
pub fn attach_header(tty: bool, opts: &AttachOptions) -> SessionHeader {
    SessionHeader {
        session: random_hex(8),
        tty,
        stdin: opts.stdin,
    }
}

/// Relays an attach session until the container's output ends, then sends its exit code (from
/// `exit_code`, awaited after the monitor closed the socket).
pub async fn relay_attach<F>(
    monitor: UnixStream,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    opts: AttachOptions,
    exit_code: F,
) where
    F: std::future::Future<Output = Option<i64>>,
{
    let (mut mon_r, mut mon_w) = monitor.into_split();
    let stdin = opts.stdin;
    // Input never completes on its own: output (the container's) decides when the session ends.
    let input = async move {
        if stdin {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match recv.read(&mut buf).await {
                    Ok(Some(n)) => {
                        if mon_w
                            .write_all(&encode_frame(frame::STDIN, &buf[..n]))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    // The caller finished its input: the container's stdin ends too.
                    Ok(None) => {
                        let _ = mon_w
                            .write_all(&encode_frame(frame::CLOSE_STDIN, &[]))
                            .await;
                        break;
                    }
                    // A reset is a detach (Ctrl-P Ctrl-Q): the container keeps its stdin.
                    Err(_) => break,
                }
            }
        }
        std::future::pending::<()>().await
    };
    let output = async {
        let mut header = [0u8; frame::HEADER_LEN];
        loop {
            if mon_r.read_exact(&mut header).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let mut data = vec![0u8; len];
            if mon_r.read_exact(&mut data).await.is_err() {
                return;
            }
            let kind = match header[0] {
                frame::STDOUT if opts.stdout => OutputKind::Stdout,
                frame::STDERR if opts.stderr => OutputKind::Stderr,
                _ => continue,
            };
            if session::write_output(&mut send, kind, &data).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = output => {}
        () = input => {}
    }
    if let Some(code) = exit_code.await {
        let _ = session::write_exit(&mut send, code).await;
    }
    let _ = send.finish();
}

/// Runs `berth runtime exec` for a session and relays it. Without a tty stdout/stderr are pipes; with
/// one the runtime hands the pty master to a console socket we listen on.
pub async fn exec(
    shared: &crate::Shared,
    container_id: &str,
    config: ExecConfig,
    session_id: &str,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let sessions = &shared.sessions;
    let mut cmd = tokio::process::Command::new(&shared.berth);
    cmd.arg("runtime")
        .arg("--root")
        .arg(shared.layout.runtime_root())
        .arg("exec");
    for e in &config.env {
        cmd.arg("--env").arg(e);
    }
    if let Some(u) = &config.user {
        cmd.arg("--user").arg(u);
    }
    if let Some(w) = &config.working_dir {
        cmd.arg("--cwd").arg(w);
    }
    // The console socket lives in the container's directory (removed with it, and by this guard).
    let console = config.tty.then(|| {
        shared
            .layout
            .container(container_id)
            .dir
            .join(format!("exec-{session_id}.sock"))
    });
    let _console_guard = console.clone().map(RemoveOnDrop);
    let listener = match &console {
        Some(path) => match runtime::unix_socket::bind(path) {
            Ok(l) => {
                cmd.arg("--tty").arg("--console-socket").arg(path);
                Some(l)
            }
            Err(e) => {
                let msg = format!("berth: console socket: {e}\n");
                let _ = session::write_output(&mut send, OutputKind::Stderr, msg.as_bytes()).await;
                let _ = session::write_exit(&mut send, 126).await;
                return;
            }
        },
        None => None,
    };
    cmd.arg(container_id).args(&config.cmd);
    cmd.stdin(if config.attach_stdin && listener.is_none() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    })
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = session::write_output(
                &mut send,
                OutputKind::Stderr,
                format!("berth: exec: {e}\n").as_bytes(),
            )
            .await;
            let _ = session::write_exit(&mut send, 126).await;
            return;
        }
    };
    let code = match listener {
        Some(listener) => {
            let master = tokio::task::spawn_blocking(move || receive_master(&listener)).await;
            match master {
                Ok(Ok(fd)) => {
                    if let Some(size) = config.tty_size {
                        runtime::console::set_window_size(fd.as_raw_fd(), size.rows, size.cols);
                    }
                    if let Ok(dup) = fd.try_clone() {
                        sessions.insert(session_id, dup);
                    }
                    relay_pty(fd, &mut send, &mut recv, config.attach_stdin).await;
                    sessions.remove(session_id);
                }
                Ok(Err(e)) => {
                    let _ = session::write_output(
                        &mut send,
                        OutputKind::Stderr,
                        format!("berth: exec terminal: {e}\n").as_bytes(),
                    )
                    .await;
                }
                Err(_) => {}
            }
            collect_errors(&mut child, &mut send).await
        }
        None => relay_pipes(&mut child, &mut send, &mut recv).await,
    };
    let _ = session::write_exit(&mut send, code).await;
    let _ = send.finish();
}

/// Removes a file when dropped, whatever path the function that made it returns by.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn receive_master(listener: &std::os::unix::net::UnixListener) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let (conn, _) = listener.accept()?;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cspace = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cspace),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(std::io::Error::other("no pty master received"))
}

async fn relay_pty(
    fd: OwnedFd,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    stdin: bool,
) {
    // Two descriptions of the master, one per direction: a tokio File serializes its operations, so
    // a read waiting for output would otherwise hold up every keystroke.
    let writer = match fd.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut rd = tokio::fs::File::from_std(std::fs::File::from(fd));
    let mut wr = tokio::fs::File::from_std(std::fs::File::from(writer));
    let input = async move {
        if !stdin {
            return std::future::pending::<()>().await;
        }
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(Some(n)) = recv.read(&mut buf).await {
            if wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await
    };
    let output = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if session::write_output(send, OutputKind::Stdout, &buf[..n])
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = output => {}
        () = input => {}
    }
}

async fn relay_pipes(
    child: &mut tokio::process::Child,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> i64 {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(OutputKind, Vec<u8>)>(16);
    for (pipe, kind) in [
        (
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            OutputKind::Stdout,
        ),
        (
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            OutputKind::Stderr,
        ),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 || tx.send((kind, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut stdin = child.stdin.take();
    let input = async {
        if let Some(w) = stdin.as_mut() {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(Some(n)) = recv.read(&mut buf).await {
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
        // Closing our end is the process's end of input.
        drop(stdin.take());
        std::future::pending::<()>().await
    };
    let output = async {
        while let Some((kind, data)) = rx.recv().await {
            if session::write_output(send, kind, &data).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = output => {}
        () = input => {}
    }
    exit_code(child).await
}

/// Forwards what `berth runtime exec` printed on stderr (its own errors) and returns its exit code.
async fn collect_errors(child: &mut tokio::process::Child, send: &mut quinn::SendStream) -> i64 {
    if let Some(mut err) = child.stderr.take() {
        let mut text = Vec::new();
        let _ = err.read_to_end(&mut text).await;
        if !text.is_empty() {
            let _ = session::write_output(send, OutputKind::Stderr, &text).await;
        }
    }
    exit_code(child).await
}

async fn exit_code(child: &mut tokio::process::Child) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match child.wait().await {
        Ok(s) => s
            .code()
            .map(i64::from)
            .or_else(|| s.signal().map(|n| 128 + i64::from(n)))
            .unwrap_or(255),
        Err(_) => 255,
    }
}
