//! The frame codec: how one typed message becomes bytes on a stream and back.
//!
//! A frame is a `u32` big-endian payload length followed by that many bytes of payload. The
//! payload is the message serialized with bincode 2 (serde flavour). This module is the only place
//! in Berth that names bincode, so the payload format can be swapped by editing this file alone.
//!
//! Safety properties a peer cannot break:
//! - the announced length is checked against [`FrameCodec::max_frame_len`] *before* any buffer is
//!   allocated, and the body buffer then grows only as bytes actually arrive;
//! - the bincode decoder runs with a hard allocation ceiling ([`FRAME_LEN_CEILING`]), so a length
//!   field inside the payload that claims gigabytes fails instead of allocating them;
//! - a clean end of stream, a frame cut short (in its prefix or its body), an oversized frame,
//!   an undecodable payload and a payload with trailing bytes are distinct [`CodecError`]s.

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Frame size used when nothing else is configured: large enough for an inspect of a container
/// with many mounts and labels, small enough that a hostile peer cannot pin much memory.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 16 * 1024 * 1024;

/// The largest frame any [`FrameCodec`] accepts, whatever it is configured to; also the bincode
/// decoder's allocation limit, which must be a compile-time constant.
pub const FRAME_LEN_CEILING: u32 = 64 * 1024 * 1024;

/// Number of bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Initial body buffer; the buffer grows with the bytes received, never to the announced length
/// up front.
const INITIAL_BODY_CAPACITY: usize = 64 * 1024;

/// The bincode configuration of every payload: varint integers, little endian, and a limit on the
/// bytes the decoder may claim so lengths inside a payload cannot force huge allocations.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ FRAME_LEN_CEILING as usize }>()
}

/// Everything that can go wrong turning bytes into frames and frames into messages.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The stream ended exactly on a frame boundary: the peer is done, nothing was lost.
    #[error("stream closed by peer")]
    Closed,
    /// The stream ended inside the 4-byte length prefix.
    #[error("stream ended inside a frame length prefix ({got} of 4 bytes)")]
    TruncatedPrefix {
        /// Bytes of the prefix that did arrive (1 to 3).
        got: usize,
    },
    /// The stream ended inside a frame body.
    #[error("stream ended inside a frame: got {got} of {expected} bytes")]
    TruncatedBody {
        /// Length announced by the prefix.
        expected: usize,
        /// Bytes of the body that did arrive.
        got: usize,
    },
    /// A frame longer than the configured maximum, refused before reading its body.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Announced (or, when encoding, actual) payload length.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// The payload is not a valid encoding of the expected message type.
    #[error("undecodable frame: {0}")]
    Malformed(String),
    /// The payload decoded but bytes were left over, which means the peer and this node disagree
    /// on the message layout.
    #[error("frame has {extra} trailing bytes after the message")]
    TrailingBytes {
        /// Number of unread bytes.
        extra: usize,
    },
    /// The message could not be serialized (a serde impl refused it).
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The underlying stream failed.
    #[error("stream i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

impl CodecError {
    /// True when the peer closed the stream between frames; callers treat this as a normal end
    /// rather than a failure.
    pub fn is_clean_close(&self) -> bool {
        matches!(self, CodecError::Closed)
    }
}

/// Serializes one message into a payload (no length prefix).
pub fn encode<T: Serialize + ?Sized>(msg: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(msg, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Deserializes one message from a whole payload; leftover bytes are an error.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    let (msg, used) = decode_prefix(payload)?;
    if used != payload.len() {
        return Err(CodecError::TrailingBytes {
            extra: payload.len() - used,
        });
    }
    Ok(msg)
}

/// Deserializes a message from the start of a payload and says how many bytes it used. The
/// handshake uses this to read the version number that begins every `Hello`, whatever the rest
/// of a (possibly newer) peer's hello looks like.
pub fn decode_prefix<T: DeserializeOwned>(payload: &[u8]) -> Result<(T, usize), CodecError> {
    bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))
}

/// Reads and writes length-prefixed frames with one size limit. Cheap to copy; each connection
/// or test can carry its own limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame_len: u32,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }
}

impl FrameCodec {
    /// A codec refusing frames longer than `max_frame_len` bytes (clamped to
    /// [`FRAME_LEN_CEILING`]).
    pub fn new(max_frame_len: u32) -> Self {
        FrameCodec {
            max_frame_len: max_frame_len.min(FRAME_LEN_CEILING),
        }
    }

    /// The payload size limit in force.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    fn check_len(&self, len: usize) -> Result<u32, CodecError> {
        match u32::try_from(len) {
            Ok(l) if l <= self.max_frame_len => Ok(l),
            _ => Err(CodecError::TooLarge {
                len: len as u64,
                max: self.max_frame_len,
            }),
        }
    }

    /// Encodes a message as a complete frame (prefix and payload) in memory.
    pub fn encode_frame<T: Serialize + ?Sized>(&self, msg: &T) -> Result<Vec<u8>, CodecError> {
        let payload = encode(msg)?;
        let len = self.check_len(payload.len())?;
        let mut frame = Vec::with_capacity(PREFIX_LEN + payload.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&payload);
        Ok(frame)
    }

    /// Writes one message as a frame. Does not flush or finish the stream.
    pub async fn write_frame<W, T>(&self, w: &mut W, msg: &T) -> Result<(), CodecError>
    where
        W: AsyncWrite + Unpin + ?Sized,
        T: Serialize + ?Sized,
    {
        let frame = self.encode_frame(msg)?;
        w.write_all(&frame).await?;
        Ok(())
    }

    /// Reads one frame's payload without decoding it. [`CodecError::Closed`] means the stream
    /// ended cleanly before the first byte of a frame.
    pub async fn read_payload<R>(&self, r: &mut R) -> Result<Vec<u8>, CodecError>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        let mut prefix = [0u8; PREFIX_LEN];
        let mut got = 0;
        while got < PREFIX_LEN {
            let n = r.read(&mut prefix[got..]).await?;
            if n == 0 {
                return Err(if got == 0 {
                    CodecError::Closed
                } else {
                    CodecError::TruncatedPrefix { got }
                });
            }
            got += n;
        }
        let len = u32::from_be_bytes(prefix);
        if len > self.max_frame_len {
            return Err(CodecError::TooLarge {
                len: u64::from(len),
                max: self.max_frame_len,
            });
        }
        let expected = len as usize;
        let mut body = Vec::with_capacity(expected.min(INITIAL_BODY_CAPACITY));
        let mut limited = r.take(u64::from(len));
        limited.read_to_end(&mut body).await?;
        if body.len() != expected {
            return Err(CodecError::TruncatedBody {
                expected,
                got: body.len(),
            });
        }
        Ok(body)
    }

    /// Reads and decodes one typed frame.
    pub async fn read_frame<R, T>(&self, r: &mut R) -> Result<T, CodecError>
    where
        R: AsyncRead + Unpin + ?Sized,
        T: DeserializeOwned,
    {
        let payload = self.read_payload(r).await?;
        decode(&payload)
    }

    /// Reads one typed frame, mapping a clean end of stream to `None`: convenient for loops
    /// over a frame sequence.
    pub async fn read_frame_opt<R, T>(&self, r: &mut R) -> Result<Option<T>, CodecError>
    where
        R: AsyncRead + Unpin + ?Sized,
        T: DeserializeOwned,
    {
        match self.read_frame(r).await {
            Ok(v) => Ok(Some(v)),
            Err(CodecError::Closed) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        n: u64,
        tags: BTreeMap<String, String>,
        data: Vec<u8>,
        choice: Option<Choice>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Choice {
        A,
        B { x: i32 },
    }

    fn sample() -> Sample {
        let mut tags = BTreeMap::new();
        tags.insert("k".to_string(), "v".to_string());
        Sample {
            name: "web".into(),
            n: u64::MAX,
            tags,
            data: vec![1, 2, 3],
            choice: Some(Choice::B { x: -7 }),
        }
    }

    async fn read_all<T: DeserializeOwned>(codec: FrameCodec, bytes: &[u8]) -> Vec<T> {
        let mut r = bytes;
        let mut out = Vec::new();
        while let Some(v) = codec.read_frame_opt(&mut r).await.expect("valid frames") {
            out.push(v);
        }
        out
    }

    #[tokio::test]
    async fn round_trip_several_frames() {
        let codec = FrameCodec::default();
        let mut buf = Vec::new();
        codec.write_frame(&mut buf, &sample()).await.unwrap();
        codec.write_frame(&mut buf, &sample()).await.unwrap();
        let got: Vec<Sample> = read_all(codec, &buf).await;
        assert_eq!(got, vec![sample(), sample()]);
    }

    #[tokio::test]
    async fn empty_stream_is_clean_close() {
        let codec = FrameCodec::default();
        let mut r: &[u8] = &[];
        let err = codec.read_frame::<_, Sample>(&mut r).await.unwrap_err();
        assert!(err.is_clean_close(), "{err}");
    }

    #[tokio::test]
    async fn truncated_prefix() {
        let codec = FrameCodec::default();
        let frame = codec.encode_frame(&sample()).unwrap();
        for cut in 1..PREFIX_LEN {
            let mut r = &frame[..cut];
            let err = codec.read_frame::<_, Sample>(&mut r).await.unwrap_err();
            assert!(
                matches!(err, CodecError::TruncatedPrefix { got } if got == cut),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn truncated_body() {
        let codec = FrameCodec::default();
        let frame = codec.encode_frame(&sample()).unwrap();
        let mut r = &frame[..frame.len() - 1];
        let err = codec.read_frame::<_, Sample>(&mut r).await.unwrap_err();
        match err {
            CodecError::TruncatedBody { expected, got } => {
                assert_eq!(expected, frame.len() - PREFIX_LEN);
                assert_eq!(got, expected - 1);
            }
            other => panic!("unexpected {other}"),
        }
        // A prefix with no body at all.
        let mut r = &frame[..PREFIX_LEN];
        let err = codec.read_frame::<_, Sample>(&mut r).await.unwrap_err();
        assert!(matches!(err, CodecError::TruncatedBody { got: 0, .. }));
    }

    #[tokio::test]
    async fn oversized_rejected_before_reading_body() {
        let codec = FrameCodec::new(1024);
        // Announce 4 GiB - 1 and supply no body: the error must come from the prefix alone
        // (reading a body would report truncation instead, allocating would abort the test).
        let mut r: &[u8] = &u32::MAX.to_be_bytes();
        let err = codec.read_frame::<_, Sample>(&mut r).await.unwrap_err();
        assert!(
            matches!(err, CodecError::TooLarge { len, max: 1024 } if len == u64::from(u32::MAX)),
            "{err}"
        );
        // Just over the limit with a full body present: still refused, body left unread.
        let mut bytes = 1025u32.to_be_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(0u8, 1025));
        let mut r: &[u8] = &bytes;
        let err = codec.read_frame::<_, Sample>(&mut r).await.unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { len: 1025, .. }));
        assert_eq!(r.len(), 1025, "body must not be consumed");
    }

    #[tokio::test]
    async fn oversized_rejected_when_encoding() {
        let codec = FrameCodec::new(16);
        let err = codec.encode_frame(&vec![0u8; 100]).unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { max: 16, .. }));
    }

    #[tokio::test]
    async fn garbage_payload_is_malformed() {
        let codec = FrameCodec::default();
        let garbage = [0xffu8; 12];
        let mut bytes = (garbage.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&garbage);
        let mut r: &[u8] = &bytes;
        let err = codec.read_frame::<_, Sample>(&mut r).await.unwrap_err();
        assert!(matches!(err, CodecError::Malformed(_)), "{err}");
    }

    #[test]
    fn huge_inner_length_fails_without_allocating() {
        // A String whose varint length claims u64::MAX bytes.
        let mut payload = vec![253u8];
        payload.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = decode::<String>(&payload).unwrap_err();
        assert!(matches!(err, CodecError::Malformed(_)), "{err}");
        // A Vec<u8> claiming 1 GiB with 3 bytes present.
        let mut payload = vec![252u8];
        payload.extend_from_slice(&(1u32 << 30).to_le_bytes());
        payload.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(
            decode::<Vec<u8>>(&payload),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut payload = encode(&sample()).unwrap();
        payload.extend_from_slice(&[0, 0]);
        let err = decode::<Sample>(&payload).unwrap_err();
        assert!(
            matches!(err, CodecError::TrailingBytes { extra: 2 }),
            "{err}"
        );
        // decode_prefix tolerates them and reports what it used.
        let (v, used) = decode_prefix::<Sample>(&payload).unwrap();
        assert_eq!(v, sample());
        assert_eq!(used, payload.len() - 2);
    }

    #[test]
    fn ceiling_clamps_configured_limit() {
        assert_eq!(FrameCodec::new(u32::MAX).max_frame_len(), FRAME_LEN_CEILING);
        assert_eq!(FrameCodec::default().max_frame_len(), DEFAULT_MAX_FRAME_LEN);
    }
}
