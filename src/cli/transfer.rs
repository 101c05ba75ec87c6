//! Moving archives between the CLI and the daemon: downloads (save, export, cp out) go to a file
//! that appears only when complete, or to stdout unless it is a terminal; a blocking tar writer or
//! reader on this side (cp) is joined to the async stream through a pipe.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use protocol::messages::{Request, Response};
use quinn::{ReadError, RecvStream};
use tokio::io::AsyncWriteExt;

use super::client::{unexpected, wire, Client};

/// Where a download goes.
pub enum Sink {
    /// A file, written under a temporary name and renamed into place when complete.
    File(PathBuf),
    /// Standard output (refused when it is a terminal).
    Stdout,
}

impl Sink {
    /// `-o FILE`, or stdout when none is given.
    pub fn from_option(output: Option<&str>) -> Sink {
        match output {
            Some(p) if p != "-" => Sink::File(PathBuf::from(p)),
            _ => Sink::Stdout,
        }
    }

    /// Refuses a terminal before anything is asked of the daemon (docker's wording).
    pub fn check(&self) -> Result<()> {
        if matches!(self, Sink::Stdout) && std::io::stdout().is_terminal() {
            bail!(
                "cowardly refusing to write an archive to a terminal: use the -o flag or redirect"
            );
        }
        Ok(())
    }
}

/// Starts a download and checks its header.
pub async fn start(client: &Client, req: &Request) -> Result<RecvStream> {
    let (header, recv) = client
        .peer()
        .await?
        .request_download(req)
        .await
        .map_err(wire)?;
    match header {
        Response::Download => Ok(recv),
        other => Err(unexpected(req.verb(), &other)),
    }
}

/// Copies a download to `w`; a reset stream (the daemon failed part-way) is an error.
pub async fn copy_to<W: tokio::io::AsyncWrite + Unpin>(
    mut recv: RecvStream,
    w: &mut W,
    what: &str,
) -> Result<u64> {
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => {
                w.write_all(&buf[..n])
                    .await
                    .with_context(|| format!("write the {what}"))?;
                total += n as u64;
            }
            Ok(None) => break,
            Err(ReadError::Reset(_)) => {
                bail!("the daemon failed while sending the {what} (see its log)")
            }
            Err(e) => bail!("receiving the {what}: {e}"),
        }
    }
    w.flush()
        .await
        .with_context(|| format!("write the {what}"))?;
    Ok(total)
}

/// Runs a download into `sink`.
pub async fn download(client: &Client, req: &Request, sink: Sink, what: &str) -> Result<()> {
    sink.check()?;
    match sink {
        Sink::Stdout => {
            let recv = start(client, req).await?;
            copy_to(recv, &mut tokio::io::stdout(), what).await?;
        }
        Sink::File(path) => {
            let tmp = temp_beside(&path)?;
            let result = async {
                let recv = start(client, req).await?;
                let mut f = tokio::fs::File::create(&tmp)
                    .await
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                copy_to(recv, &mut f, what).await?;
                f.sync_all().await.context("sync the archive")?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .with_context(|| format!("cannot write {}", path.display()))
            }
            .await;
            if result.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            result?;
        }
    }
    Ok(())
}

/// A temporary name in the same directory as `path` (so the final rename is atomic).
fn temp_beside(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", path.display()))?;
    let mut tmp = name.to_os_string();
    tmp.push(format!(".berth-tmp-{}", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// A pipe whose write end goes to a blocking producer and whose read end is async.
pub fn pipe() -> Result<(tokio::fs::File, std::fs::File)> {
    let (r, w) = nix::unistd::pipe().context("create a pipe")?;
    Ok((
        tokio::fs::File::from_std(std::fs::File::from(r)),
        std::fs::File::from(w),
    ))
}

/// A pipe whose read end goes to a blocking consumer and whose write end is async.
pub fn pipe_to_blocking() -> Result<(std::fs::File, tokio::fs::File)> {
    let (r, w) = nix::unistd::pipe().context("create a pipe")?;
    Ok((
        std::fs::File::from(r),
        tokio::fs::File::from_std(std::fs::File::from(w)),
    ))
}
