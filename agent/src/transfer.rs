//! Bridges between QUIC streams and the store's blocking readers and writers: an upload body (import,
//! load, cp in) is fed to a blocking task as a `Read`; a blocking task's `Write` (save, export, cp
//! out) becomes a download's raw bytes. Both run the blocking side with `spawn_blocking` and a small
//! bounded channel, so a slow peer slows the disk work instead of filling memory.

use std::io::{self, Read, Write};

use protocol::messages::ApiError;
use quinn::{RecvStream, SendStream, VarInt};

/// Chunks in flight between the network and the blocking side.
const CHANNEL_DEPTH: usize = 8;
const CHUNK: usize = 256 << 10;
/// Application code of a reset download: the sender failed part-way.
const DOWNLOAD_FAILED: u32 = 1;

/// Feeds `body` to `work` as a reader on a blocking thread and returns its result. A body that
/// breaks off is reported as such rather than as whatever the reader made of the short input.
pub async fn upload<T, F>(body: &mut RecvStream, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(ChannelReader) -> Result<T, ApiError> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHANNEL_DEPTH);
    let task = tokio::task::spawn_blocking(move || {
        work(ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        })
    });
    let mut chunk = vec![0u8; CHUNK];
    let mut broken = None;
    loop {
        match body.read(&mut chunk).await {
            Ok(Some(n)) => {
                if tx.send(chunk[..n].to_vec()).is_err() {
                    // The work ended early (a refused archive): tell the sender to stop now.
                    let _ = body.stop(VarInt::from_u32(0));
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                broken = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let result = task
        .await
        .map_err(|e| ApiError::internal(format!("upload: {e}")))?;
    match broken {
        Some(e) if result.is_err() => Err(ApiError::invalid(format!("upload broke off: {e}"))),
        _ => result,
    }
}

/// Runs `work` on a blocking thread with a writer whose bytes go out on `send`; the stream is
/// finished when `work` succeeds and reset when it fails (the caller sees an incomplete download).
pub async fn download<F>(mut send: SendStream, what: &'static str, work: F)
where
    F: FnOnce(&mut dyn Write) -> Result<(), String> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
    let task = tokio::task::spawn_blocking(move || {
        let mut w = io::BufWriter::with_capacity(CHUNK, ChannelWriter { tx });
        work(&mut w)?;
        w.flush().map_err(|e| e.to_string())
    });
    let mut peer_gone = false;
    while let Some(chunk) = rx.recv().await {
        if send.write_all(&chunk).await.is_err() {
            peer_gone = true;
            break;
        }
    }
    // Dropping the receiver makes the blocking writer fail with a broken pipe and stop.
    drop(rx);
    let outcome = task.await.map_err(|e| e.to_string()).and_then(|r| r);
    match outcome {
        Ok(()) if !peer_gone => {
            let _ = send.finish();
        }
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(what, error = %e, "download failed part-way");
            let _ = send.reset(VarInt::from_u32(DOWNLOAD_FAILED));
        }
    }
}

/// Adapts chunks from a channel into `Read`; the sender hanging up is end of file.
pub struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Sends written bytes to the async side; fails once it has gone away.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the receiver went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
