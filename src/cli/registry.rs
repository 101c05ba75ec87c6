//! `berth pull`, `push`, `login`, `logout`: the node does the transfer (the image must be where
//! containers run) and streams docker-shaped progress back; this module renders it (bars on a
//! terminal, docker's plain lines otherwise) and keeps the credentials the requests carry.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use protocol::messages::{ImageProgress, RegistryAuth, RegistryTransfer, Request, Response};
use runtime::image::Reference;

use super::client::{unexpected, wire, Client};
use super::credentials;

/// The registry a login names when none is given (docker's default).
const DEFAULT_SERVER: &str = runtime::image::DEFAULT_DOMAIN;

// `berth pull`.
#[derive(Args, Debug)]
pub struct PullCmd {
    /// Print only the image reference.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// NAME[:TAG] or NAME@sha256:DIGEST.
    name: String,
}

// `berth push`.
#[derive(Args, Debug)]
pub struct PushCmd {
    /// Print only the pushed digest line.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// NAME[:TAG].
    name: String,
}

// `berth login`.
#[derive(Args, Debug)]
pub struct LoginCmd {
    /// User name.
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(short = 'p', long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from stdin.
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    /// Registry HOST[:PORT] (default docker.io).
    server: Option<String>,
}

// `berth logout`.
#[derive(Args, Debug)]
pub struct LogoutCmd {
    /// Registry HOST[:PORT] (default docker.io).
    server: Option<String>,
}

fn parse_reference(name: &str) -> Result<Reference> {
    Reference::parse(name).map_err(|e| anyhow!("{e}"))
}

/// Renders a progress stream: a bar per layer on a terminal, docker's lines otherwise.
pub struct ProgressView {
    bars: Option<Bars>,
    quiet: bool,
}

struct Bars {
    multi: MultiProgress,
    by_id: HashMap<String, ProgressBar>,
}

impl ProgressView {
    /// Progress on stdout (`pull`, `push`): bars only when stdout is a terminal.
    pub fn stdout(quiet: bool) -> ProgressView {
        let bars = (!quiet && std::io::stdout().is_terminal()).then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            by_id: HashMap::new(),
        });
        ProgressView { bars, quiet }
    }

    /// Shows one step.
    pub fn show(&mut self, p: &ImageProgress) {
        if self.quiet {
            return;
        }
        let Some(bars) = &mut self.bars else {
            // Byte counts only make sense on a terminal.
            if p.current.is_none() {
                println!("{}", plain_line(p));
            }
            return;
        };
        let Some(id) = &p.id else {
            let _ = bars.multi.println(&p.status);
            return;
        };
        let bar = bars.by_id.entry(id.clone()).or_insert_with(|| {
            let b = bars.multi.add(ProgressBar::new(0));
            b.set_style(
                ProgressStyle::with_template("{prefix}: {msg} {wide_bar} {bytes}/{total_bytes}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_prefix(id.clone());
            b
        });
        if let (Some(current), Some(total)) = (p.current, p.total) {
            bar.set_length(total);
            bar.set_position(current);
        }
        bar.set_message(p.status.clone());
    }

    /// Leaves the final state of every bar on the screen.
    pub fn finish(self) {
        if let Some(bars) = self.bars {
            for b in bars.by_id.values() {
                b.set_style(
                    ProgressStyle::with_template("{prefix}: {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.finish();
            }
        }
    }
}

fn plain_line(p: &ImageProgress) -> String {
    match &p.id {
        Some(id) => format!("{id}: {}", p.status),
        None => p.status.clone(),
    }
}

/// After a create that pulled: docker's `Unable to find image` and the pull's lines, on stderr.
pub fn print_pulled(image: &str, missing: bool, lines: &[ImageProgress]) {
    if lines.is_empty() {
        return;
    }
    let mut err = std::io::stderr().lock();
    if missing {
        let shown = Reference::parse(image)
            .map(|r| r.to_string())
            .unwrap_or_else(|_| image.to_string());
        let _ = writeln!(err, "Unable to find image '{shown}' locally");
    }
    for p in lines {
        let _ = writeln!(err, "{}", plain_line(p));
    }
}

/// Sends a pull or push and renders its progress.
async fn transfer(client: &Client, req: Request, quiet: bool) -> Result<()> {
    let mut stream = client.stream(&req).await?;
    let mut view = ProgressView::stdout(quiet);
    let mut result = Ok(());
    while let Some(item) = stream.recv().await {
        match item.map_err(wire) {
            Ok(Response::Progress(p)) => view.show(&p),
            Ok(other) => {
                result = Err(unexpected(req.verb(), &other));
                break;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    view.finish();
    result
}

/// `berth pull`: prints the canonical reference last, as docker does.
pub async fn pull(client: &Client, cmd: PullCmd) -> Result<i32> {
    let reference = parse_reference(&cmd.name)?;
    let auth = credentials::lookup(&client.credentials(), reference.domain())?;
    let req = Request::Pull(RegistryTransfer {
        reference: cmd.name.clone(),
        auth,
    });
    transfer(client, req, cmd.quiet).await?;
    println!("{}", reference.canonical());
    Ok(0)
}

/// `berth push`.
pub async fn push(client: &Client, cmd: PushCmd) -> Result<i32> {
    let reference = parse_reference(&cmd.name)?;
    let auth = credentials::lookup(&client.credentials(), reference.domain())?;
    let req = Request::Push(RegistryTransfer {
        reference: cmd.name.clone(),
        auth,
    });
    transfer(client, req, cmd.quiet).await?;
    Ok(0)
}

fn read_password_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| anyhow!("cannot read the password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("the password read from stdin is empty");
    }
    Ok(password)
}

/// Reads a line from the terminal, without echo for a password.
fn prompt(label: &str, echo: bool) -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    print!("{label}: ");
    let _ = std::io::stdout().flush();
    let saved = if echo {
        None
    } else {
        let saved = tcgetattr(&stdin).map_err(|e| anyhow!("cannot read the terminal: {e}"))?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet)
            .map_err(|e| anyhow!("cannot set up the terminal: {e}"))?;
        Some(saved)
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        println!();
    }
    read.map_err(|e| anyhow!("cannot read from the terminal: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `berth login`: the node checks the credentials against the registry; they are kept only if
/// it accepts them.
pub async fn login(client: &Client, cmd: LoginCmd) -> Result<i32> {
    let server = credentials::normalize_server(cmd.server.as_deref().unwrap_or(DEFAULT_SERVER));
    let interactive = std::io::stdin().is_terminal();
    let username = match cmd.username {
        Some(u) => u,
        None if interactive && !cmd.password_stdin => prompt("Username", true)?,
        None => bail!("login needs a user name (-u)"),
    };
    if username.is_empty() {
        bail!("login needs a user name (-u)");
    }
    let password = match (cmd.password, cmd.password_stdin) {
        (Some(p), _) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => read_password_stdin()?,
        (None, false) if interactive => prompt("Password", false)?,
        (None, false) => bail!("login needs a password (-p or --password-stdin)"),
    };
    let auth = RegistryAuth { username, password };
    match client
        .call(&Request::Login {
            registry: server.clone(),
            auth: auth.clone(),
        })
        .await?
    {
        Response::Done => {}
        other => return Err(unexpected("login", &other)),
    }
    let path = client.credentials();
    credentials::store(&path, &server, &auth)?;
    println!("Login Succeeded");
    Ok(0)
}

/// `berth logout`: forgets the stored credentials (the registry is not contacted).
pub async fn logout(client: &Client, cmd: LogoutCmd) -> Result<i32> {
    let server = credentials::normalize_server(cmd.server.as_deref().unwrap_or(DEFAULT_SERVER));
    if credentials::remove(&client.credentials(), &server)? {
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(0)
}
