//! `berthd`: the daemon, a controller and the local agent in one process. Users start it as
//! `berth daemon`, which execs it with its arguments.
//!
//! Unlike `berth` and `berth-shim`, it is linked position-independent (see build.rs): it is the
//! long-lived process that listens on the network and unpacks images from registries, so its
//! image's address keeps being randomised.

mod daemon;
mod usage;

use clap::error::ErrorKind;
use clap::Parser;

/// Docker's exit code when the engine itself fails.
const EXIT_DAEMON: i32 = 125;

#[derive(Parser)]
#[command(
    name = "berth daemon",
    bin_name = "berth daemon",
    version,
    about = "Run the controller and the local agent (a one-host cluster)"
)]
struct Cli {
    #[command(flatten)]
    args: daemon::DaemonArgs,
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("berth: {}", usage::one_line(&e, "berth daemon --help"));
            std::process::exit(EXIT_DAEMON);
        }
    };
    std::process::exit(match daemon::main(cli.args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e:#}");
            EXIT_DAEMON
        }
    });
}
