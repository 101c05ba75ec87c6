//! `berth logs`: a container's output as a stream of chunks from its agent, stdout and stderr
//! kept apart, with `--tail`, `--since`/`--until`, `-t` (the CLI prefixes each line with the
//! chunk's timestamp) and `-f`.

use std::io::Write;
use std::time::SystemTime;

use anyhow::{anyhow, Result};
use clap::Args;
use protocol::messages::{rfc3339_nanos, LogsOptions, OutputStream, Request, Response};

use super::client::{unexpected, wire, Client};
use super::parse;

// `berth logs`.
#[derive(Args, Debug)]
pub struct LogsCmd {
    /// Follow new output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines from the end ("all" for everything).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Prefix every line with its timestamp.
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Only output since (10m, 1h30m, RFC 3339 time, unix seconds).
    #[arg(long)]
    since: Option<String>,
    /// Only output before (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Accepted for compatibility.
    #[arg(long, hide = true)]
    details: bool,
    /// Container.
    container: String,
}

/// Parses `--tail`: "all" or a count.
pub fn parse_tail(s: &str) -> Result<Option<u64>> {
    if s == "all" || s == "-1" {
        return Ok(None);
    }
    s.parse::<u64>()
        .map(Some)
        .map_err(|_| anyhow!("invalid --tail {s:?}: use a number or \"all\""))
}

/// Prefixes every line start in `data` with `stamp`, tracking whether the previous chunk ended
/// mid-line.
pub fn stamp_lines(data: &[u8], stamp: &str, at_line_start: &mut bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + stamp.len() + 1);
    for &b in data {
        if *at_line_start {
            out.extend_from_slice(stamp.as_bytes());
            out.push(b' ');
            *at_line_start = false;
        }
        out.push(b);
        if b == b'\n' {
            *at_line_start = true;
        }
    }
    out
}

/// Streams a container's log to stdout/stderr; `timestamps` prefixes every line.
async fn stream_logs(
    client: &Client,
    container: &str,
    options: LogsOptions,
    timestamps: bool,
) -> Result<()> {
    let mut stream = client
        .stream(&Request::Logs {
            container: container.to_string(),
            options,
        })
        .await?;
    let (mut out_start, mut err_start) = (true, true);
    while let Some(item) = stream.recv().await {
        match item.map_err(wire)? {
            Response::Log(chunk) => {
                let (at_start, is_err) = match chunk.stream {
                    OutputStream::Stderr => (&mut err_start, true),
                    _ => (&mut out_start, false),
                };
                let data = if timestamps {
                    stamp_lines(&chunk.data, &rfc3339_nanos(chunk.timestamp), at_start)
                } else {
                    chunk.data
                };
                let written = if is_err {
                    let mut e = std::io::stderr().lock();
                    e.write_all(&data).and_then(|_| e.flush())
                } else {
                    let mut o = std::io::stdout().lock();
                    o.write_all(&data).and_then(|_| o.flush())
                };
                if written.is_err() {
                    // The reader went away (`logs | head`): stop quietly.
                    return Ok(());
                }
            }
            other => return Err(unexpected("logs", &other)),
        }
    }
    Ok(())
}

/// Prints everything a container wrote (for `run` of a container that exited before the
/// attach).
pub async fn print_all(client: &Client, container: &str) -> Result<()> {
    stream_logs(client, container, LogsOptions::default(), false).await
}

/// Prints a container's whole log and follows it until the container stops.
pub async fn follow_all(client: &Client, container: &str) -> Result<()> {
    let options = LogsOptions {
        follow: true,
        ..LogsOptions::default()
    };
    stream_logs(client, container, options, false).await
}

/// `berth logs`.
pub async fn logs(client: &Client, cmd: LogsCmd) -> Result<i32> {
    let now = SystemTime::now();
    let options = LogsOptions {
        follow: cmd.follow,
        tail: parse_tail(&cmd.tail)?,
        timestamps: cmd.timestamps,
        since: cmd
            .since
            .as_deref()
            .map(|s| parse::parse_time(s, now))
            .transpose()?,
        until: cmd
            .until
            .as_deref()
            .map(|s| parse::parse_time(s, now))
            .transpose()?,
        stdout: true,
        stderr: true,
    };
    stream_logs(client, &cmd.container, options, cmd.timestamps).await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_values() {
        assert_eq!(parse_tail("all").unwrap(), None);
        assert_eq!(parse_tail("5").unwrap(), Some(5));
        assert!(parse_tail("x").is_err());
    }

    #[test]
    fn stamps_each_line() {
        let mut start = true;
        assert_eq!(stamp_lines(b"a\nb", "T", &mut start), b"T a\nT b".to_vec());
        assert!(!start);
        assert_eq!(stamp_lines(b"c\n", "U", &mut start), b"c\n".to_vec());
        assert!(start);
    }
}
