//! Command-line front-end: parses arguments with clap, runs the verb, and maps every failure to
//! one line on stderr (`berth: <message>`) and Docker's exit codes: 125 when berth itself fails
//! (bad flags included), 126 when the container's command cannot be invoked, 127 when it is
//! not found, otherwise the container's own code.
//!
//! Client verbs connect to the controller named in `client.toml` (`--config`, `BERTH_CONFIG`,
//! default `/var/lib/berth/client.toml`) and send it one protocol request each; `berth daemon`
//! execs the daemon binary `berthd` (the controller and the local agent); `berth runtime` is the
//! OCI runtime.

mod client;
mod containers;
mod credentials;
mod daemon;
mod exec;
mod filesystem;
mod images;
mod logs;
mod network;
mod output;
mod parse;
mod registry;
mod runtime;
mod system;
mod transfer;
mod volumes;

use std::fmt;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit code of a failure of berth itself.
pub const EXIT_BERTH: i32 = 125;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A container engine",
    propagate_version = true
)]
struct Cli {
    /// Client configuration: the controller's address and this client's identity.
    #[arg(long, global = true, env = "BERTH_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Each verb's arguments are built only when that verb runs (`defer`): building them all cost
/// about half a millisecond on every CLI call.
#[derive(Subcommand)]
#[command(defer = true)]
enum Command {
    /// Run the controller and the local agent (a one-host cluster); see `berth daemon --help`.
    Daemon(daemon::DaemonCmd),
    /// Create a container.
    Create(containers::CreateCmd),
    /// Create and start a container, attached unless -d.
    Run(containers::RunCmd),
    /// Start stopped containers.
    Start(containers::StartCmd),
    /// Stop running containers.
    Stop(containers::StopCmd),
    /// Send a signal to containers.
    Kill(containers::KillCmd),
    /// Remove containers.
    Rm(containers::RmCmd),
    /// Restart containers.
    Restart(containers::StopCmd),
    /// Freeze all processes of containers.
    Pause(containers::NamesCmd),
    /// Thaw containers.
    Unpause(containers::NamesCmd),
    /// List containers.
    Ps(containers::PsCmd),
    /// Details of containers in JSON.
    Inspect(containers::InspectCmd),
    /// Wait for containers to stop and print their exit codes.
    Wait(containers::NamesCmd),
    /// Processes of a container.
    Top(containers::TopCmd),
    /// Resource usage of containers.
    Stats(containers::StatsCmd),
    /// Filesystem changes of a container.
    Diff(containers::DiffCmd),
    /// Rename a container.
    Rename(containers::RenameCmd),
    /// Output of a container.
    Logs(logs::LogsCmd),
    /// Run a command in a running container.
    Exec(exec::ExecCmd),
    /// Attach to a container's stdio.
    Attach(exec::AttachCmd),
    /// Container management.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Volume management.
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Network management.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Published ports of a container.
    Port(network::PortCmd),
    /// Make an image from a root filesystem tarball.
    Import(images::ImportCmd),
    /// List images.
    Images(images::ImagesCmd),
    /// Download an image from a registry.
    Pull(registry::PullCmd),
    /// Upload an image to a registry.
    Push(registry::PushCmd),
    /// Log in to a registry (credentials kept next to the client configuration).
    Login(registry::LoginCmd),
    /// Forget a registry's credentials.
    Logout(registry::LogoutCmd),
    /// Image management.
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Load images from a tar archive (docker save or OCI layout).
    Load(images::LoadCmd),
    /// Save images to a tar archive.
    Save(images::SaveCmd),
    /// Remove images.
    Rmi(images::RmiCmd),
    /// Add a name to an image.
    Tag(images::TagCmd),
    /// The history of an image.
    History(images::HistoryCmd),
    /// Make an image from a container's changes.
    Commit(filesystem::CommitCmd),
    /// Write a container's file system as a tar archive.
    Export(filesystem::ExportCmd),
    /// Copy files between a container and the host.
    Cp(filesystem::CpCmd),
    /// Cluster and node information.
    Info(system::InfoCmd),
    /// Client and server versions.
    Version(system::VersionCmd),
    /// The OCI runtime, command for command compatible with runc.
    Runtime(runtime::RuntimeArgs),
}

#[derive(Subcommand)]
#[command(defer = true)]
enum ContainerCommand {
    /// Remove all stopped containers.
    Prune(containers::PruneCmd),
}

/// An error that carries its exit code (126/127 for a command that cannot run).
#[derive(Debug)]
pub struct Coded {
    code: i32,
    message: String,
}

impl Coded {
    /// An error with `code`.
    pub fn new(code: i32, message: impl Into<String>) -> Coded {
        Coded {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// An error and its causes on one line, skipping a cause whose text the message already carries
/// (library errors often print their source themselves).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// Prints an error as one line and returns its exit code.
pub fn report_error(e: &anyhow::Error) -> i32 {
    let text = one_line(e);
    let line = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    eprintln!("berth: {line}");
    e.chain()
        .find_map(|c| c.downcast_ref::<Coded>())
        .map(|c| c.code)
        .unwrap_or(EXIT_BERTH)
}

/// One line from a clap error: its message without the usage block.
fn clap_line(e: &clap::Error) -> String {
    crate::usage::one_line(e, "berth --help")
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    0
                }
                _ => {
                    eprintln!("berth: {}", clap_line(&e));
                    EXIT_BERTH
                }
            };
        }
    };
    let config = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(client::DEFAULT_CONFIG));
    match cli.command {
        Command::Runtime(args) => legacy(runtime::main(args)),
        Command::Daemon(cmd) => daemon::exec(cmd),
        other => run_client(config, other),
    }
}

/// The runtime keeps runc's convention: errors exit 1.
fn legacy(result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {}", one_line(&e));
            1
        }
    }
}

fn run_client(config: PathBuf, cmd: Command) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            return EXIT_BERTH;
        }
    };
    let result = rt.block_on(async move {
        if let Command::Version(v) = cmd {
            return system::version(client::Client::connect(&config).await, v).await;
        }
        let client = client::Client::connect(&config).await?;
        let result = dispatch(&client, cmd).await;
        client.close().await;
        result
    });
    // Leave the stdin reader thread (if any) behind: the process is about to exit.
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => report_error(&e),
    }
}

async fn dispatch(client: &client::Client, cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Create(c) => containers::create(client, c).await,
        Command::Run(c) => containers::run(client, c).await,
        Command::Start(c) => containers::start(client, c).await,
        Command::Stop(c) => containers::stop(client, c).await,
        Command::Kill(c) => containers::kill(client, c).await,
        Command::Rm(c) => containers::rm(client, c).await,
        Command::Restart(c) => containers::restart(client, c).await,
        Command::Pause(c) => containers::pause(client, c).await,
        Command::Unpause(c) => containers::unpause(client, c).await,
        Command::Ps(c) => containers::ps(client, c).await,
        Command::Inspect(c) => containers::inspect(client, c).await,
        Command::Wait(c) => containers::wait(client, c).await,
        Command::Top(c) => containers::top(client, c).await,
        Command::Stats(c) => containers::stats(client, c).await,
        Command::Diff(c) => containers::diff(client, c).await,
        Command::Rename(c) => containers::rename(client, c).await,
        Command::Logs(c) => logs::logs(client, c).await,
        Command::Exec(c) => exec::exec(client, c).await,
        Command::Attach(c) => exec::attach(client, c).await,
        Command::Container(ContainerCommand::Prune(c)) => containers::prune(client, c).await,
        Command::Volume(c) => volumes::main(client, c).await,
        Command::Network(c) => network::main(client, c).await,
        Command::Port(c) => network::port(client, c).await,
        Command::Import(c) => images::import(client, c).await,
        Command::Images(c) => images::images(client, c).await,
        Command::Pull(c) => registry::pull(client, c).await,
        Command::Push(c) => registry::push(client, c).await,
        Command::Login(c) => registry::login(client, c).await,
        Command::Logout(c) => registry::logout(client, c).await,
        Command::Image(c) => images::image(client, c).await,
        Command::Load(c) => images::load(client, c).await,
        Command::Save(c) => images::save(client, c).await,
        Command::Rmi(c) => images::rmi(client, c).await,
        Command::Tag(c) => images::tag(client, c).await,
        Command::History(c) => images::history(client, c).await,
        Command::Commit(c) => filesystem::commit(client, c).await,
        Command::Export(c) => filesystem::export(client, c).await,
        Command::Cp(c) => filesystem::cp(client, c).await,
        Command::Info(c) => system::info(client, c).await,
        Command::Version(_) | Command::Daemon(_) | Command::Runtime(_) => {
            Err(anyhow::anyhow!("internal: not a client verb"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn clap_errors_become_one_line() {
        let e = match Cli::try_parse_from(["berth", "ps", "--bogus"]) {
            Err(e) => e,
            Ok(_) => panic!("--bogus parsed"),
        };
        let line = clap_line(&e);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("--bogus"), "{line}");
    }

    #[test]
    fn run_takes_docker_flags() {
        let cli = Cli::try_parse_from([
            "berth", "run", "-it", "--rm", "-h", "box", "busybox", "sh", "-c", "exit 3",
        ]);
        assert!(cli.is_ok());
    }
}
