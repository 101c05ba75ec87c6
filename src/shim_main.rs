//! `berth-shim`: the per-container monitor the agent starts for every container (see
//! `runtime::monitor`). It is a binary of its own, not a `berth` subcommand, because a hundred of
//! them stay resident: linking only the runtime keeps the pages each one dirties at load
//! (relocated pointers) and its heap small, where the full CLI, with QUIC, TLS and actix, cost
//! ≈ 0.76 MB of PSS per monitor.
//!
//! Its command line is internal (see `runtime::monitor::args`); `--interface` alone prints
//! [`runtime::monitor::INTERFACE`], and `--spare --runtime-root DIR` starts a spare monitor,
//! which reads its other arguments on stdin once the agent has a container for it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let first = std::env::args_os().nth(1);
    let code = match first.as_ref().and_then(|a| a.to_str()) {
        Some("--interface") => {
            println!("{}", runtime::monitor::INTERFACE);
            0
        }
        Some(runtime::monitor::args::SPARE) => {
            match runtime::monitor::args::parse_spare(std::env::args_os().skip(2)) {
                Ok(root) => runtime::monitor::start_spare(&root),
                Err(e) => {
                    eprintln!("berth-shim: {e}");
                    1
                }
            }
        }
        _ => match runtime::monitor::args::parse(std::env::args_os().skip(1)) {
            Ok(config) => runtime::monitor::start(&config),
            Err(e) => {
                eprintln!("berth-shim: {e}");
                1
            }
        },
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
