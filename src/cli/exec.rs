//! Interactive sessions: `exec`, `attach`, and the attached half of `run` and `start -a`.
//!
//! A session is one raw stream (see `protocol::session`): stdin bytes go up unframed, output
//! chunks and the exit code come down. With a tty and a terminal on stdin, the terminal is put
//! in raw mode for the session's life (restored on every exit path by a guard), window-size
//! changes (SIGWINCH) travel as `Request::Resize` on their own streams, and the detach keys
//! (Ctrl-P Ctrl-Q by default) end the session without stopping the container: the stdin half is
//! reset with [`DETACH_CODE`] instead of finished, so the agent can tell "detached" from "stdin
//! closed". Without a tty, SIGINT and SIGTERM are forwarded to the container as `kill`.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Result};
use clap::Args;
use nix::sys::termios::{self, SetArg, Termios};
use protocol::messages::{
    AttachOptions, ErrorKind, ExecConfig, Request, Response, SessionHeader, WaitCondition,
    WindowSize,
};
use protocol::session::{read_output, OutputEvent};
use protocol::Peer;
use quinn::{RecvStream, SendStream, VarInt};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};

use super::client::{unexpected, Client};
use super::parse;

/// Stream reset code of the stdin half when the user detaches.
pub const DETACH_CODE: u32 = 0x10;

// `berth exec`.
#[derive(Args, Debug)]
pub struct ExecCmd {
    /// Run in the background.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// User (name|uid[:group|gid]).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Working directory.
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Extended privileges.
    #[arg(long)]
    privileged: bool,
    /// Key sequence that detaches.
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Container.
    container: String,
    /// Command and arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

// `berth attach`.
#[derive(Args, Debug)]
pub struct AttachCmd {
    /// Do not attach stdin.
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Key sequence that detaches.
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Accepted for compatibility (signals are always proxied without a tty).
    #[arg(long = "sig-proxy", hide = true, num_args = 0..=1, default_missing_value = "true")]
    sig_proxy: Option<bool>,
    /// Container.
    container: String,
}

/// The detach sequence from `--detach-keys`, Docker's default when absent.
pub fn detach_keys(flag: Option<&str>) -> Result<Vec<u8>> {
    match flag {
        Some(s) => parse::parse_detach_keys(s),
        None => Ok(parse::DEFAULT_DETACH_KEYS.to_vec()),
    }
}

/// The terminal's size, from stdout or stdin.
pub fn terminal_size() -> Option<WindowSize> {
    for fd in [libc::STDOUT_FILENO, libc::STDIN_FILENO] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we own.
        let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if r == 0 && ws.ws_row > 0 && ws.ws_col > 0 {
            return Some(WindowSize {
                rows: ws.ws_row,
                cols: ws.ws_col,
            });
        }
    }
    None
}

/// Raw mode on the terminal on stdin, restored when dropped.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// Reads stdin on a thread of its own (a blocking read cannot be cancelled) and hands the bytes
/// over; the channel closes at end of input.
fn stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // SAFETY: reads into a buffer we own, of the length given.
            let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            if n == 0 || tx.blocking_send(buf[..n as usize].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next_input(rx: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_signal(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending().await,
    }
}

/// Starts the task that forwards terminal sizes, one request at a time and only the latest size:
/// two resize requests in flight could be applied in the wrong order and leave the container
/// with the older size.
fn spawn_resizer(peer: &Peer, container: &str, session: &str) -> watch::Sender<Option<WindowSize>> {
    let (tx, mut rx) = watch::channel(None);
    let peer = peer.clone();
    let (container, session) = (container.to_string(), session.to_string());
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let Some(size) = *rx.borrow_and_update() else {
                continue;
            };
            let req = Request::Resize {
                container: container.clone(),
                session: session.clone(),
                size,
            };
            let _ = peer.request(&req).await;
        }
    });
    tx
}

fn send_kill(peer: &Peer, container: &str, sig: &str) {
    let peer = peer.clone();
    let req = Request::Kill {
        container: container.to_string(),
        signal: Some(sig.to_string()),
    };
    tokio::spawn(async move {
        let _ = peer.request(&req).await;
    });
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The process exited with this code.
    Exit(i64),
    /// The user typed the detach keys.
    Detached,
    /// The stream ended without an exit code.
    Ended,
}

/// Runs a session until the process exits, the user detaches, or the stream ends.
pub async fn drive(
    client: &Client,
    container: &str,
    header: SessionHeader,
    mut send: SendStream,
    mut recv: RecvStream,
    forward_stdin: bool,
    keys: Vec<u8>,
) -> Result<SessionEnd> {
    let peer = client.peer().await?;
    let want_stdin = forward_stdin && header.stdin;
    let _raw = if header.tty && want_stdin && std::io::stdin().is_terminal() {
        Some(RawMode::enter()?)
    } else {
        None
    };
    let mut winch = if header.tty && std::io::stdout().is_terminal() {
        signal(SignalKind::window_change()).ok()
    } else {
        None
    };
    let resizer = winch
        .is_some()
        .then(|| spawn_resizer(peer, container, &header.session));
    let resize = || {
        if let (Some(r), Some(size)) = (&resizer, terminal_size()) {
            let _ = r.send(Some(size));
        }
    };
    resize();
    let (mut sigint, mut sigterm) = if header.tty && _raw.is_some() {
        (None, signal(SignalKind::terminate()).ok())
    } else {
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    let mut input = if want_stdin {
        Some(stdin_reader())
    } else {
        let _ = send.finish();
        None
    };
    let mut matcher = parse::DetachMatcher::new(if header.tty && want_stdin {
        keys
    } else {
        Vec::new()
    });
    let output = async {
        loop {
            match read_output(&mut recv).await {
                Ok(Some(OutputEvent::Stdout(d))) => {
                    let mut o = std::io::stdout().lock();
                    let _ = o.write_all(&d);
                    let _ = o.flush();
                }
                Ok(Some(OutputEvent::Stderr(d))) => {
                    let mut e = std::io::stderr().lock();
                    let _ = e.write_all(&d);
                    let _ = e.flush();
                }
                Ok(Some(OutputEvent::Exit(code))) => return Ok(SessionEnd::Exit(code)),
                Ok(None) => return Ok(SessionEnd::Ended),
                Err(e) => return Err(anyhow::anyhow!("session with {container} failed: {e}")),
            }
        }
    };
    tokio::pin!(output);
    loop {
        tokio::select! {
            end = &mut output => return end,
            chunk = next_input(&mut input) => match chunk {
                Some(data) => {
                    let (fwd, detach) = matcher.feed(&data);
                    if !fwd.is_empty() && send.write_all(&fwd).await.is_err() {
                        input = None;
                    }
                    if detach {
                        let _ = send.reset(VarInt::from_u32(DETACH_CODE));
                        return Ok(SessionEnd::Detached);
                    }
                }
                None => {
                    let rest = matcher.flush();
                    if !rest.is_empty() {
                        let _ = send.write_all(&rest).await;
                    }
                    let _ = send.finish();
                    input = None;
                }
            },
            _ = next_signal(&mut winch) => resize(),
            _ = next_signal(&mut sigint) => send_kill(peer, container, "SIGINT"),
            _ = next_signal(&mut sigterm) => {
                if _raw.is_some() {
                    // Our own terminal is in raw mode: leave cleanly, the container goes on.
                    let _ = send.reset(VarInt::from_u32(DETACH_CODE));
                    return Ok(SessionEnd::Detached);
                }
                send_kill(peer, container, "SIGTERM");
            }
        }
    }
}

fn exit_code(code: i64) -> i32 {
    i32::try_from(code).unwrap_or(125)
}

async fn wait_code(client: &Client, container: &str) -> Result<i32> {
    match client
        .call(&Request::Wait {
            container: container.to_string(),
            condition: WaitCondition::NotRunning,
        })
        .await?
    {
        Response::Exited { exit_code: c, .. } => Ok(exit_code(c)),
        other => Err(unexpected("wait", &other)),
    }
}

fn is_not_running(e: &anyhow::Error) -> bool {
    super::client::api_error(e).is_some_and(|a| a.kind == ErrorKind::NotRunning)
}

fn is_not_found(e: &anyhow::Error) -> bool {
    super::client::api_error(e).is_some_and(|a| a.kind == ErrorKind::NotFound)
}

fn attach_request(container: &str, options: AttachOptions) -> Request {
    Request::Attach {
        container: container.to_string(),
        options,
    }
}

/// Both output streams, stdin when asked, the terminal's size.
fn attach_options(stdin: bool) -> AttachOptions {
    AttachOptions {
        stdin,
        stdout: true,
        stderr: true,
        logs: false,
        detach_keys: None,
        tty_size: terminal_size(),
        start: false,
    }
}

type Waiter = tokio::task::JoinHandle<Result<Response, protocol::TransportError>>;

/// Asks for the exit code on a stream of its own right after the start, so it is known even if
/// the container is gone (`--rm`) by the time the session ends.
fn spawn_wait(peer: &Peer, container: &str) -> Waiter {
    let peer = peer.clone();
    let req = Request::Wait {
        container: container.to_string(),
        condition: WaitCondition::NotRunning,
    };
    tokio::spawn(async move { peer.request(&req).await })
}

async fn waited(client: &Client, container: &str, waiter: Option<Waiter>) -> Result<i32> {
    if let Some(w) = waiter {
        if let Ok(Ok(Response::Exited { exit_code: c, .. })) = w.await {
            return Ok(exit_code(c));
        }
    }
    wait_code(client, container).await
}

/// Attaches to `container` and returns its exit code (0 after a detach). With `start`, Docker's
/// order in one request: the node attaches to the created container, then starts it, so no output
/// is missed. A container the node can only attach to once it runs is refused unstarted
/// (`NotRunning`); then it is started and, without stdin, `logs -f` of the whole log follows (every
/// byte, per stream, ends when the container stops); with stdin, an attach that replays the output
/// so far (`logs: true`), or the log if the container already exited.
pub async fn attach_and_wait(
    client: &Client,
    container: &str,
    stdin: bool,
    keys: Vec<u8>,
    start: bool,
) -> Result<i32> {
    let mut waiter = None;
    let session = if start {
        let starting = attach_request(
            container,
            AttachOptions {
                start: true,
                ..attach_options(stdin)
            },
        );
        match client.raw(&starting).await {
            // The session itself ends with the exit code: the node asked for it before starting.
            Ok(s) => Some(s),
            Err(e) if is_not_running(&e) => {
                super::containers::start_container(client, container).await?;
                waiter = Some(spawn_wait(client.peer().await?, container));
                if !stdin {
                    // Nothing to send: the log has every byte, in order, per stream.
                    if let Err(e) = super::logs::follow_all(client, container).await {
                        if !is_not_found(&e) {
                            return Err(e);
                        }
                    }
                    return waited(client, container, waiter).await;
                }
                let replay = AttachOptions {
                    logs: true,
                    ..attach_options(stdin)
                };
                match client.raw(&attach_request(container, replay)).await {
                    Ok(s) => Some(s),
                    Err(e) if is_not_running(&e) => None,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(super::containers::start_error(e)),
        }
    } else {
        Some(
            client
                .raw(&attach_request(container, attach_options(stdin)))
                .await?,
        )
    };
    let Some((header, send, recv)) = session else {
        // Exited before we could attach: its whole output is in the log.
        super::logs::print_all(client, container).await?;
        return waited(client, container, waiter).await;
    };
    let header = match header {
        Response::Session(h) => h,
        other => return Err(unexpected("attach", &other)),
    };
    match drive(client, container, header, send, recv, stdin, keys).await? {
        SessionEnd::Exit(c) => Ok(exit_code(c)),
        SessionEnd::Detached => Ok(0),
        SessionEnd::Ended => waited(client, container, waiter).await,
    }
}

/// `berth attach`.
pub async fn attach(client: &Client, cmd: AttachCmd) -> Result<i32> {
    let keys = detach_keys(cmd.detach_keys.as_deref())?;
    attach_and_wait(client, &cmd.container, !cmd.no_stdin, keys, false).await
}

/// `berth exec`.
pub async fn exec(client: &Client, cmd: ExecCmd) -> Result<i32> {
    let keys = detach_keys(cmd.detach_keys.as_deref())?;
    let mut env = Vec::new();
    for e in &cmd.env {
        env.extend(parse::parse_env(e)?);
    }
    let config = ExecConfig {
        cmd: cmd.command.clone(),
        env,
        working_dir: cmd.workdir.clone(),
        user: cmd.user.clone(),
        tty: cmd.tty,
        tty_size: if cmd.tty { terminal_size() } else { None },
        attach_stdin: cmd.interactive && !cmd.detach,
        attach_stdout: !cmd.detach,
        attach_stderr: !cmd.detach,
        detach: cmd.detach,
        privileged: cmd.privileged,
    };
    let req = Request::Exec {
        container: cmd.container.clone(),
        config,
    };
    let classify = |e: anyhow::Error| -> anyhow::Error {
        let code = super::client::api_error(&e)
            .and_then(|a| super::containers::start_failure_code(&a.message));
        match code {
            Some(c) => super::Coded::new(c, format!("{e:#}")).into(),
            None => e,
        }
    };
    if cmd.detach {
        client.call(&req).await.map_err(classify)?;
        return Ok(0);
    }
    let (header, send, recv) = client.raw(&req).await.map_err(classify)?;
    let header = match header {
        Response::Session(h) => h,
        other => return Err(unexpected("exec", &other)),
    };
    match drive(
        client,
        &cmd.container,
        header,
        send,
        recv,
        cmd.interactive,
        keys,
    )
    .await?
    {
        SessionEnd::Exit(c) => Ok(exit_code(c)),
        SessionEnd::Detached => Ok(0),
        SessionEnd::Ended => bail!(
            "exec session in {} ended without an exit code",
            cmd.container
        ),
    }
}
