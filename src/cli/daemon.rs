//! `berth daemon`: hands its arguments, unparsed, to `berthd` installed beside `berth`, which
//! replaces this process. The daemon is a binary of its own so that it alone stays a
//! position-independent executable (see build.rs); `berthd` parses the arguments and prints the
//! help.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use clap::Args;

use super::EXIT_BERTH;

/// `berth daemon`'s arguments, for `berthd`.
#[derive(Args, Debug)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct DaemonCmd {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

/// Execs `berthd`; returns only if that fails.
pub fn exec(cmd: DaemonCmd) -> i32 {
    let berthd = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("berthd"),
        Err(e) => {
            eprintln!("berth: cannot find the berth binary's directory: {e}");
            return EXIT_BERTH;
        }
    };
    let err = std::process::Command::new(&berthd).args(&cmd.args).exec();
    eprintln!(
        "berth: cannot run the daemon {}: {err} (it is built and installed next to berth)",
        berthd.display()
    );
    EXIT_BERTH
}
