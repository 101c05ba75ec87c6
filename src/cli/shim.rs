//! `berth shim` (hidden): the per-container monitor the agent starts for every container, so that the
//! container's stdio, logs and exit status do not depend on the agent staying up. The work is in
//! `runtime::monitor`; this only maps the command line.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct ShimArgs {
    /// The runtime's state root (as `berth runtime --root`).
    #[arg(long)]
    runtime_root: PathBuf,
    /// The container's OCI bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// The container id.
    #[arg(long)]
    id: String,
    /// The json-file log to append the container's output to.
    #[arg(long)]
    log: PathBuf,
    /// Where to write the exit record when the container ends.
    #[arg(long)]
    exit_file: PathBuf,
    /// The attach socket to serve.
    #[arg(long)]
    socket: PathBuf,
    /// The container has a terminal (must match process.terminal).
    #[arg(long)]
    tty: bool,
    /// Keep the container's stdin open for attach clients.
    #[arg(long)]
    stdin: bool,
    /// Exec the container's program only when a client asks (attach first, then start).
    #[arg(long)]
    hold: bool,
}

/// Starts the monitor; its one-line JSON report is printed on stdout, failures included, so the exit
/// status is all that is left to return.
pub fn main(args: ShimArgs) -> Result<i32> {
    let config = runtime::monitor::MonitorConfig {
        runtime_root: args.runtime_root,
        bundle: args.bundle,
        id: args.id,
        log: args.log,
        exit_file: args.exit_file,
        socket: args.socket,
        tty: args.tty,
        stdin: args.stdin,
        hold: args.hold,
    };
    Ok(runtime::monitor::start(&config))
}
