//! `berth runtime`: runc's command line over the runtime crate, so Berth can stand wherever runc stands
//! (containerd shims, conformance suites, side-by-side benchmarks).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use nix::sys::signal::Signal;
use runtime::{CreateOptions, Runtime};

#[derive(Args)]
pub struct RuntimeArgs {
    /// Directory for container state (runc: --root).
    #[arg(
        long,
        global = true,
        default_value = "/run/berth",
        env = "BERTH_RUNTIME_ROOT"
    )]
    root: PathBuf,
    /// Accepted for runc compatibility; errors go to stderr.
    #[arg(long, global = true, hide = true)]
    log: Option<PathBuf>,
    /// Accepted for runc compatibility.
    #[arg(long, global = true, hide = true)]
    log_format: Option<String>,
    /// Accepted for runc compatibility.
    #[arg(long, global = true, hide = true)]
    debug: bool,
    /// systemd cgroup management is not supported; passing it is an error.
    #[arg(long, global = true, hide = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: RuntimeCommand,
}

#[derive(Args)]
struct CreateArgs {
    /// Bundle directory holding config.json.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is set.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// File to write the container's init pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Pass fds 3..3+N through to the container process.
    #[arg(long, default_value_t = 0)]
    preserve_fds: i32,
    /// Accepted for runc compatibility.
    #[arg(long, hide = true)]
    no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long, hide = true)]
    no_new_keyring: bool,
    /// Container id.
    id: String,
}

#[derive(Args)]
struct ExecArgs {
    /// Allocate a pseudo-terminal for the process.
    #[arg(short, long)]
    tty: bool,
    /// Unix socket that receives the pty master (with --tty).
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Working directory inside the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE; repeatable).
    #[arg(short, long)]
    env: Vec<String>,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    user: Option<String>,
    /// Additional group ids (repeatable).
    #[arg(short = 'g', long)]
    additional_gids: Vec<u32>,
    /// Return once the process runs instead of waiting for it.
    #[arg(short, long)]
    detach: bool,
    /// File to write the process's host pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// JSON file with an OCI process to run (replaces the container's process as the base).
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Container id.
    id: String,
    /// Command and arguments (optional with --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
#[command(defer = true)]
enum RuntimeCommand {
    /// Write a default config.json into the bundle directory.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Accepted for runc compatibility; rootless specs are not supported.
        #[arg(long, hide = true)]
        rootless: bool,
    },
    /// Create a container; its process waits until `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default TERM) to a container's init, or to all its processes.
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Delete a container and everything it holds.
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; in the foreground, exit with its exit code.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        /// Accepted for runc compatibility.
        #[arg(long, hide = true)]
        keep: bool,
        /// Accepted for runc compatibility.
        #[arg(long, hide = true)]
        no_subreaper: bool,
    },
    /// List the processes running in a container.
    Ps {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        id: String,
        /// Options passed to ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers.
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a new process inside a running container; exit with its exit code.
    Exec(ExecArgs),
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
}

pub fn main(args: RuntimeArgs) -> Result<i32> {
    if args.systemd_cgroup {
        bail!("--systemd-cgroup is not supported: Berth manages cgroupfs directly");
    }
    let rt = Runtime::new(&args.root);
    match args.command {
        RuntimeCommand::Spec { bundle, rootless } => spec(&bundle, rootless)?,
        RuntimeCommand::Create(c) => {
            rt.create(&c.options())?;
        }
        RuntimeCommand::Start { id } => rt.start(&id)?,
        RuntimeCommand::State { id } => {
            let (record, status) = rt.state(&id)?;
            println!("{}", serde_json::to_string_pretty(&record.output(status))?);
        }
        RuntimeCommand::Kill { all, id, signal } => rt.kill(&id, parse_signal(&signal)?, all)?,
        RuntimeCommand::Delete { force, id } => rt.delete(&id, force)?,
        RuntimeCommand::Run { create, detach, .. } => return Ok(rt.run(&create.options(), detach)?),
        RuntimeCommand::Ps {
            format,
            id,
            ps_args,
        } => ps(&rt, &id, format, &ps_args)?,
        RuntimeCommand::List { format, quiet } => list(&rt, format, quiet)?,
        RuntimeCommand::Exec(e) => return exec(&rt, e),
        RuntimeCommand::Pause { id } => rt.pause(&id)?,
        RuntimeCommand::Resume { id } => rt.resume(&id)?,
    }
    Ok(0)
}

impl CreateArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            console_socket: self.console_socket.clone(),
            pid_file: self.pid_file.clone(),
            preserve_fds: self.preserve_fds,
            network_namespace: None,
        }
    }
}

fn exec(rt: &Runtime, e: ExecArgs) -> Result<i32> {
    use runtime::container::exec::{ExecOptions, ExecOutcome, ExecUser};
    let process = match &e.process {
        Some(path) => {
            let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
            Some(
                serde_json::from_slice(&data)
                    .with_context(|| format!("parse {}", path.display()))?,
            )
        }
        None => None,
    };
    let opts = ExecOptions {
        args: e.command,
        env: e.env,
        cwd: e.cwd,
        user: e.user.as_deref().map(ExecUser::parse).transpose()?,
        additional_gids: (!e.additional_gids.is_empty()).then_some(e.additional_gids),
        tty: e.tty,
        console_socket: e.console_socket,
        detach: e.detach,
        pid_file: e.pid_file,
        process,
    };
    match rt.exec(&e.id, &opts) {
        Ok(ExecOutcome::Exited(code)) => Ok(code),
        Ok(ExecOutcome::Detached(_)) => Ok(0),
        // A program that cannot be run gets the shell's 126/127, as `docker exec` reports them.
        Err(err) => match err.exec_exit_code() {
            Some(code) => {
                eprintln!("berth: {err}");
                Ok(code)
            }
            None => Err(err.into()),
        },
    }
}

fn spec(bundle: &std::path::Path, rootless: bool) -> Result<()> {
    if rootless {
        bail!("rootless specs are not supported");
    }
    let path = bundle.join("config.json");
    let spec = runtime::bundle::default_spec();
    let json = serde_json::to_string_pretty(&spec)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("write {}", path.display()))?;
    file.write_all(json.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

fn parse_signal(s: &str) -> Result<Signal> {
    runtime::signal::parse(s).map_err(anyhow::Error::msg)
}

fn ps(rt: &Runtime, id: &str, format: Format, ps_args: &[String]) -> Result<()> {
    let pids = rt.pids(id)?;
    if let Format::Json = format {
        let raw: Vec<i32> = pids.iter().map(|p| p.as_raw()).collect();
        println!("{}", serde_json::to_string(&raw)?);
        return Ok(());
    }
    let args: Vec<&str> = if ps_args.is_empty() {
        vec!["-ef"]
    } else {
        ps_args.iter().map(String::as_str).collect()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.iter().any(|q| q.as_raw() == p)) {
            println!("{line}");
        }
    }
    Ok(())
}

fn list(rt: &Runtime, format: Format, quiet: bool) -> Result<()> {
    let all = rt.list()?;
    if quiet {
        for (r, _) in &all {
            println!("{}", r.id);
        }
        return Ok(());
    }
    match format {
        Format::Json => {
            let out: Vec<_> = all.iter().map(|(r, s)| r.output(*s)).collect();
            println!("{}", serde_json::to_string(&out)?);
        }
        Format::Table => {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {:<32}",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for (r, s) in &all {
                let pid = if *s == runtime::state::Status::Stopped {
                    0
                } else {
                    r.pid
                };
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<32}",
                    r.id,
                    pid,
                    s.to_string(),
                    r.bundle.display(),
                    r.created
                );
            }
        }
    }
    Ok(())
}
