//! The `berth` binary: the CLI and the OCI runtime front-end. `berth daemon` execs `berthd`.

mod cli;
mod usage;

fn main() {
    std::process::exit(cli::main());
}
