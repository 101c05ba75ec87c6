//! The `berth` binary: one executable for the CLI, the daemon and the OCI runtime front-end.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
