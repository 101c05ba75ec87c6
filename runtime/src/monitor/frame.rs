//! The attach socket's wire format: Docker's multiplexed stream framing, in both directions.
//!
//! Every frame is an 8-byte header — the stream byte, three zero bytes, the payload length as a
//! big-endian u32 — followed by the payload. The monitor sends [`STDOUT`] and [`STDERR`] frames (a
//! tty container's output is all [`STDOUT`]); clients send [`STDIN`] bytes, [`RESIZE`] (u16 rows,
//! u16 cols, big-endian) and an empty [`CLOSE_STDIN`]. Reusing Docker's framing lets the agent pass
//! the stream through to Docker-compatible clients unchanged.

/// Client → monitor: bytes for the container's stdin.
pub const STDIN: u8 = 0;
/// Monitor → client: container output on stdout (or the tty).
pub const STDOUT: u8 = 1;
/// Monitor → client: container output on stderr.
pub const STDERR: u8 = 2;
/// Client → monitor: a new terminal size, payload `rows: u16, cols: u16` big-endian.
pub const RESIZE: u8 = 3;
/// Client → monitor: close the container's stdin once what was sent has been written.
pub const CLOSE_STDIN: u8 = 4;
/// Client → monitor: let a held container (`--hold`) exec its program. Monitor → that client: the
/// answer, an empty payload when it runs, else the error text.
pub const START: u8 = 5;

pub const HEADER_LEN: usize = 8;

/// The header of a frame carrying `len` bytes on `stream`.
pub fn header(stream: u8, len: u32) -> [u8; HEADER_LEN] {
    let l = len.to_be_bytes();
    [stream, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

/// Appends one frame to `out` (an empty one for an empty payload, as [`CLOSE_STDIN`] needs), split
/// into several when the payload exceeds a u32.
pub fn encode(stream: u8, payload: &[u8], out: &mut Vec<u8>) {
    if payload.is_empty() {
        out.extend_from_slice(&header(stream, 0));
    }
    for chunk in payload.chunks(u32::MAX as usize) {
        out.extend_from_slice(&header(stream, chunk.len() as u32));
        out.extend_from_slice(chunk);
    }
}

/// A frame a client sent, decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Part (or all) of a stdin frame's payload, handed on as it arrives so that no frame needs to be
    /// held in memory whole.
    Stdin(&'a [u8]),
    Resize {
        rows: u16,
        cols: u16,
    },
    CloseStdin,
    Start,
}

/// A client broke the framing; the monitor disconnects it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unknown stream {0} from attach client")]
    UnknownStream(u8),
    #[error("resize frame of {0} bytes (expected 4)")]
    BadResize(u32),
}

/// Incremental decoder of client → monitor frames, fed whatever each read returned.
#[derive(Debug, Default)]
pub struct Decoder {
    header: [u8; HEADER_LEN],
    have: usize,
    /// Payload bytes still expected for the current frame (when `have == HEADER_LEN`).
    left: u32,
    resize: [u8; 4],
    resize_have: usize,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `data`, calling `on` for every event in order.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        mut on: impl FnMut(Event<'_>),
    ) -> Result<(), FrameError> {
        while !data.is_empty() {
            if self.have < HEADER_LEN {
                let n = (HEADER_LEN - self.have).min(data.len());
                self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                data = &data[n..];
                if self.have == HEADER_LEN {
                    self.start_frame(&mut on)?;
                }
                continue;
            }
            let n = (self.left as usize).min(data.len());
            let (payload, rest) = data.split_at(n);
            data = rest;
            self.left -= n as u32;
            match self.header[0] {
                STDIN => on(Event::Stdin(payload)),
                RESIZE => {
                    self.resize[self.resize_have..self.resize_have + n].copy_from_slice(payload);
                    self.resize_have += n;
                }
                // CLOSE_STDIN payloads carry nothing; they are skipped.
                _ => {}
            }
            if self.left == 0 {
                self.end_frame(&mut on);
            }
        }
        Ok(())
    }

    fn start_frame(&mut self, on: &mut impl FnMut(Event<'_>)) -> Result<(), FrameError> {
        let stream = self.header[0];
        let len = u32::from_be_bytes([
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ]);
        match stream {
            STDIN | CLOSE_STDIN | START => {}
            RESIZE if len == 4 => self.resize_have = 0,
            RESIZE => return Err(FrameError::BadResize(len)),
            other => return Err(FrameError::UnknownStream(other)),
        }
        self.left = len;
        if len == 0 {
            self.end_frame(on);
        }
        Ok(())
    }

    fn end_frame(&mut self, on: &mut impl FnMut(Event<'_>)) {
        match self.header[0] {
            RESIZE => on(Event::Resize {
                rows: u16::from_be_bytes([self.resize[0], self.resize[1]]),
                cols: u16::from_be_bytes([self.resize[2], self.resize[3]]),
            }),
            CLOSE_STDIN => on(Event::CloseStdin),
            START => on(Event::Start),
            _ => {}
        }
        self.have = 0;
    }
}
