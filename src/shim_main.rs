//! `berth-shim`: the per-container monitor the agent starts for every container (see
//! `runtime::monitor`). It is a binary of its own, not a `berth` subcommand, because a hundred of
//! them stay resident: linking only the runtime keeps the pages each one dirties at load
//! (relocated pointers) and its heap small, where the full CLI, with QUIC, TLS and actix, cost
//! ≈ 0.76 MB of PSS per monitor.
//!
//! Its command line is internal (only the agent writes it), so it is parsed by hand: `--flag VALUE`
//! for paths and the id, bare `--tty`, `--stdin`, `--hold`, `--wait-for-go`; `--interface` alone
//! prints [`runtime::monitor::INTERFACE`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use runtime::monitor::MonitorConfig;

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "--interface")
    {
        println!("{}", runtime::monitor::INTERFACE);
        return ExitCode::SUCCESS;
    }
    match parse(std::env::args_os().skip(1)) {
        Ok(config) => ExitCode::from(runtime::monitor::start(&config).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("berth-shim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(mut args: impl Iterator<Item = OsString>) -> Result<MonitorConfig, String> {
    let mut runtime_root = None;
    let mut bundle = None;
    let mut id = None;
    let mut log = None;
    let mut exit_file = None;
    let mut socket = None;
    let (mut tty, mut stdin, mut hold, mut wait_for_go) = (false, false, false, false);
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runtime-root" => runtime_root = Some(PathBuf::from(value()?)),
            "--bundle" => bundle = Some(PathBuf::from(value()?)),
            "--id" => {
                id = Some(
                    value()?
                        .into_string()
                        .map_err(|_| "--id is not UTF-8".to_string())?,
                )
            }
            "--log" => log = Some(PathBuf::from(value()?)),
            "--exit-file" => exit_file = Some(PathBuf::from(value()?)),
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--tty" => tty = true,
            "--stdin" => stdin = true,
            "--hold" => hold = true,
            "--wait-for-go" => wait_for_go = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let need = |v: Option<PathBuf>, name: &str| v.ok_or_else(|| format!("{name} is required"));
    Ok(MonitorConfig {
        runtime_root: need(runtime_root, "--runtime-root")?,
        bundle: need(bundle, "--bundle")?,
        id: id.ok_or("--id is required")?,
        log: need(log, "--log")?,
        exit_file: need(exit_file, "--exit-file")?,
        socket: need(socket, "--socket")?,
        tty,
        stdin,
        hold,
        wait_for_go,
    })
}
