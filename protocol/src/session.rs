//! The byte layout of an exec/attach session after its header frame.
//!
//! Once the [`SessionHeader`](crate::messages::SessionHeader) frame has been sent, the stream
//! stops carrying [`codec`](crate::codec) frames:
//!
//! - **caller → container**: plain stdin bytes, unframed, so a CLI can copy its stdin straight
//!   in; finishing the send side closes the process's stdin.
//! - **container → caller**: a sequence of chunks, each `kind: u8`, `len: u32` big endian, then
//!   `len` bytes. Kinds: 1 stdout, 2 stderr, 3 exit (payload: the exit code as `i64` big endian,
//!   always last). With a tty everything is sent as stdout, so the bytes are exactly the
//!   terminal's; the chunking only adds 5 bytes per write and lets the exit code arrive on the
//!   same stream without a second round trip.
//!
//! Terminal resizes do not travel in this stream: they are separate
//! [`Request::Resize`](crate::messages::Request::Resize) requests on their own streams that name
//! the session id from the header. That keeps stdin a pure byte stream (no escaping of control
//! messages in user data) and lets a resize overtake buffered stdin.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest chunk payload written or accepted; larger writes are split.
pub const MAX_CHUNK_LEN: usize = 1024 * 1024;

const KIND_STDOUT: u8 = 1;
const KIND_STDERR: u8 = 2;
const KIND_EXIT: u8 = 3;
const HEADER_LEN: usize = 5;

/// A decoding failure of a session's output stream.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The stream ended inside a chunk.
    #[error("session stream ended inside a chunk")]
    Truncated,
    /// A chunk longer than [`MAX_CHUNK_LEN`].
    #[error("session chunk of {0} bytes exceeds the limit")]
    TooLarge(u32),
    /// A chunk kind this version does not know.
    #[error("unknown session chunk kind {0}")]
    UnknownKind(u8),
    /// An exit chunk whose payload is not 8 bytes.
    #[error("malformed exit chunk of {0} bytes")]
    BadExit(u32),
    /// The stream failed.
    #[error("session stream i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

/// One decoded piece of a session's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputEvent {
    /// Bytes written to stdout (or the terminal).
    Stdout(Vec<u8>),
    /// Bytes written to stderr.
    Stderr(Vec<u8>),
    /// The process exited with this code; nothing follows.
    Exit(i64),
}

/// Which output a chunk carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Standard output, or the terminal when the session has a tty.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Writes process output as chunks (splitting writes larger than [`MAX_CHUNK_LEN`]).
pub async fn write_output<W>(w: &mut W, kind: OutputKind, data: &[u8]) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let k = match kind {
        OutputKind::Stdout => KIND_STDOUT,
        OutputKind::Stderr => KIND_STDERR,
    };
    for piece in data.chunks(MAX_CHUNK_LEN) {
        write_chunk(w, k, piece).await?;
    }
    Ok(())
}

/// Writes the final exit chunk.
pub async fn write_exit<W>(w: &mut W, code: i64) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    write_chunk(w, KIND_EXIT, &code.to_be_bytes()).await
}

async fn write_chunk<W>(w: &mut W, kind: u8, data: &[u8]) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    // Callers split at MAX_CHUNK_LEN, so the length always fits in u32.
    let len = data.len() as u32;
    let mut header = [0u8; HEADER_LEN];
    header[0] = kind;
    header[1..].copy_from_slice(&len.to_be_bytes());
    w.write_all(&header).await?;
    w.write_all(data).await
}

/// Reads the next output event; `Ok(None)` when the stream ended cleanly between chunks (a
/// session that ends without an exit chunk was cut off, e.g. by a detach).
pub async fn read_output<R>(r: &mut R) -> Result<Option<OutputEvent>, SessionError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(SessionError::Truncated)
            };
        }
        got += n;
    }
    let kind = header[0];
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if len as usize > MAX_CHUNK_LEN {
        return Err(SessionError::TooLarge(len));
    }
    if kind == KIND_EXIT && len != 8 {
        return Err(SessionError::BadExit(len));
    }
    if !matches!(kind, KIND_STDOUT | KIND_STDERR | KIND_EXIT) {
        return Err(SessionError::UnknownKind(kind));
    }
    let mut data = vec![0u8; len as usize];
    r.read_exact(&mut data).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            SessionError::Truncated
        } else {
            SessionError::Io(e)
        }
    })?;
    Ok(Some(match kind {
        KIND_STDOUT => OutputEvent::Stdout(data),
        KIND_STDERR => OutputEvent::Stderr(data),
        _ => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&data);
            OutputEvent::Exit(i64::from_be_bytes(b))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_round_trip() {
        let mut buf = Vec::new();
        write_output(&mut buf, OutputKind::Stdout, b"hello\n")
            .await
            .unwrap();
        write_output(&mut buf, OutputKind::Stderr, b"oops\n")
            .await
            .unwrap();
        let big = vec![7u8; MAX_CHUNK_LEN + 10];
        write_output(&mut buf, OutputKind::Stdout, &big)
            .await
            .unwrap();
        write_exit(&mut buf, -3).await.unwrap();
        let mut r: &[u8] = &buf;
        let mut events = Vec::new();
        while let Some(e) = read_output(&mut r).await.unwrap() {
            events.push(e);
        }
        assert_eq!(events.len(), 5);
        assert_eq!(events[0], OutputEvent::Stdout(b"hello\n".to_vec()));
        assert_eq!(events[1], OutputEvent::Stderr(b"oops\n".to_vec()));
        assert_eq!(events[2], OutputEvent::Stdout(vec![7u8; MAX_CHUNK_LEN]));
        assert_eq!(events[3], OutputEvent::Stdout(vec![7u8; 10]));
        assert_eq!(events[4], OutputEvent::Exit(-3));
    }

    #[tokio::test]
    async fn bad_chunks_are_errors() {
        let mut r: &[u8] = &[1, 0, 0];
        assert!(matches!(
            read_output(&mut r).await,
            Err(SessionError::Truncated)
        ));
        let mut r: &[u8] = &[1, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_output(&mut r).await,
            Err(SessionError::TooLarge(_))
        ));
        let mut r: &[u8] = &[9, 0, 0, 0, 0];
        assert!(matches!(
            read_output(&mut r).await,
            Err(SessionError::UnknownKind(9))
        ));
        let mut r: &[u8] = &[3, 0, 0, 0, 1, 0];
        assert!(matches!(
            read_output(&mut r).await,
            Err(SessionError::BadExit(1))
        ));
        let mut r: &[u8] = &[2, 0, 0, 0, 4, b'a'];
        assert!(matches!(
            read_output(&mut r).await,
            Err(SessionError::Truncated)
        ));
    }
}
