//! `berth commit`, `berth export` and `berth cp`: a container's file system as an image, as a tar,
//! or file by file in both directions. On this side `cp` writes and reads tar streams with the same
//! tree writer and safe unpacker the daemon uses.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use protocol::messages::{CommitOptions, Request, Response};
use runtime::image::{copy, tree_tar};

use super::client::{unexpected, wire, Client};
use super::transfer::{self, Sink};

// `berth commit`.
#[derive(Args, Debug)]
pub struct CommitCmd {
    /// Author (e.g. "Jane <jane@example.com>").
    #[arg(short = 'a', long)]
    author: Option<String>,
    /// Dockerfile instruction to apply (CMD, ENTRYPOINT, ENV, EXPOSE, WORKDIR, ...).
    #[arg(short = 'c', long = "change")]
    changes: Vec<String>,
    /// Commit message.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Pause a running container while its layer is read (default true, as docker).
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    /// The container.
    container: String,
    /// REPOSITORY[:TAG] for the new image.
    reference: Option<String>,
}

// `berth export`.
#[derive(Args, Debug)]
pub struct ExportCmd {
    /// Write to a file instead of stdout.
    #[arg(short = 'o', long)]
    output: Option<String>,
    /// The container.
    container: String,
}

// `berth cp`.
#[derive(Args, Debug)]
pub struct CpCmd {
    /// Accepted for compatibility: ownership is always kept.
    #[arg(short = 'a', long)]
    archive: bool,
    /// Accepted for compatibility.
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Accepted for compatibility.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// CONTAINER:SRC_PATH, a host path, or - (a tar on stdin).
    source: String,
    /// CONTAINER:DEST_PATH, a host path, or - (a tar on stdout).
    dest: String,
}

/// `berth commit`.
pub async fn commit(client: &Client, cmd: CommitCmd) -> Result<i32> {
    let req = Request::Commit {
        container: cmd.container,
        options: CommitOptions {
            reference: cmd.reference,
            message: cmd.message,
            author: cmd.author,
            changes: cmd.changes,
            pause: cmd.pause,
        },
    };
    match client.call(&req).await? {
        Response::Committed { id } => {
            println!("{id}");
            Ok(0)
        }
        other => Err(unexpected("commit", &other)),
    }
}

/// `berth export`.
pub async fn export(client: &Client, cmd: ExportCmd) -> Result<i32> {
    let req = Request::Export {
        container: cmd.container,
    };
    transfer::download(
        client,
        &req,
        Sink::from_option(cmd.output.as_deref()),
        "export",
    )
    .await?;
    Ok(0)
}

/// One side of `cp`.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Container { container: String, path: String },
    Host(String),
    Stdio,
}

/// Docker's rule: `-` is stdio; a path starting with `/` or `.` is local; otherwise text before
/// the first `:` names a container.
fn location(arg: &str) -> Location {
    if arg == "-" {
        return Location::Stdio;
    }
    if arg.starts_with('/') || arg.starts_with('.') {
        return Location::Host(arg.to_string());
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => Location::Container {
            container: c.to_string(),
            path: p.to_string(),
        },
        _ => Location::Host(arg.to_string()),
    }
}

/// A container path as the daemon wants it: absolute (docker takes relative ones from `/`).
fn in_container(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

fn absolute(path: &str) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("invalid path {path}"))
}

/// `berth cp`.
pub async fn cp(client: &Client, cmd: CpCmd) -> Result<i32> {
    let _ = (cmd.archive, cmd.follow_link, cmd.quiet);
    match (location(&cmd.source), location(&cmd.dest)) {
        (Location::Container { container, path }, Location::Stdio) => {
            let req = Request::CopyFrom {
                container,
                path: in_container(&path),
            };
            transfer::download(client, &req, Sink::Stdout, "copy").await?;
        }
        (Location::Container { container, path }, Location::Host(dest)) => {
            let req = Request::CopyFrom {
                container,
                path: in_container(&path),
            };
            copy_out(client, &req, absolute(&dest)?).await?;
        }
        (Location::Stdio, Location::Container { container, path }) => {
            let req = Request::CopyTo {
                container,
                path: in_container(&path),
                into_dir_only: true,
            };
            let answer = client
                .peer()
                .await?
                .request_upload(&req, &mut tokio::io::stdin())
                .await;
            answer.map_err(wire)?;
        }
        (Location::Host(src), Location::Container { container, path }) => {
            let req = Request::CopyTo {
                container,
                path: in_container(&path),
                into_dir_only: false,
            };
            copy_in(client, &req, absolute(&src)?).await?;
        }
        (Location::Container { .. }, Location::Container { .. }) => {
            bail!("copying between containers is not supported")
        }
        _ => bail!("must specify at least one container source (CONTAINER:PATH)"),
    }
    Ok(0)
}

/// Receives the daemon's tar and unpacks it at `dest` with docker's rules (into an existing
/// directory, else as `dest`).
async fn copy_out(client: &Client, req: &Request, dest: PathBuf) -> Result<()> {
    let recv = transfer::start(client, req).await?;
    let (reader, mut writer) = transfer::pipe_to_blocking()?;
    let shown = dest.display().to_string();
    let task =
        tokio::task::spawn_blocking(move || copy::copy_in(Path::new("/"), &dest, reader, false));
    let copied = transfer::copy_to(recv, &mut writer, "copy").await;
    drop(writer);
    let unpacked = task.await.context("unpack task")?;
    match (copied, unpacked) {
        (Ok(_), Ok(())) => Ok(()),
        (Ok(_), Err(e)) => Err(anyhow::Error::new(e).context(format!("cannot copy to {shown}"))),
        (Err(e), _) => Err(e),
    }
}

/// Tars the host path `src` (its last component becomes the top-level entry) into the request.
async fn copy_in(client: &Client, req: &Request, src: PathBuf) -> Result<()> {
    std::fs::symlink_metadata(&src).with_context(|| format!("cannot copy {}", src.display()))?;
    let (mut reader, writer) = transfer::pipe()?;
    let task = tokio::task::spawn_blocking(move || {
        let (dir, name) = tree_tar::open_parent_in_root(Path::new("/"), &src)?;
        let as_name = PathBuf::from(std::ffi::OsStr::new(src.file_name().unwrap_or_default()));
        tree_tar::write_object(dir.as_fd(), &name, &as_name, writer).map(|_| ())
    });
    let answer = client.peer().await?.request_upload(req, &mut reader).await;
    let produced = task.await.context("archive task")?;
    produced?;
    answer.map_err(wire)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_arguments() {
        assert_eq!(location("-"), Location::Stdio);
        assert_eq!(location("./a:b"), Location::Host("./a:b".into()));
        assert_eq!(location("/tmp/x"), Location::Host("/tmp/x".into()));
        assert_eq!(
            location("web:/etc/hosts"),
            Location::Container {
                container: "web".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(location("file"), Location::Host("file".into()));
        assert_eq!(in_container("etc"), "/etc");
    }
}
