//! The container log in Docker's json-file format: one JSON object per line,
//! `{"log":"<text>","stream":"stdout"|"stderr","time":"<RFC 3339, nanoseconds>"}`.
//!
//! Output is split into lines per stream (the newline stays in `log`, as Docker keeps it), so each entry
//! has its own time and `logs --since/--tail/-t` work on lines. A line longer than [`MAX_LINE`] is
//! written in pieces without a newline, as Docker splits long messages, so a process that never writes a
//! newline cannot make the monitor buffer without bound. Bytes that are not UTF-8 become U+FFFD, as in
//! Docker's files.

use std::fs::File;
use std::io::Write;
use std::time::SystemTime;

/// The longest piece of a line held back waiting for its newline (Docker's 16 KiB message size).
pub const MAX_LINE: usize = 16 * 1024;

/// Which output stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// The stream byte of the attach framing.
    pub fn frame_byte(self) -> u8 {
        match self {
            Stream::Stdout => super::frame::STDOUT,
            Stream::Stderr => super::frame::STDERR,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Appends entries to the log file; holds each stream's unfinished line.
pub struct JsonLog<W: Write = File> {
    out: W,
    partial: [Vec<u8>; 2],
    /// Reused for encoding each entry, so that an entry is a single write(2).
    entry: Vec<u8>,
}

impl<W: Write> JsonLog<W> {
    pub fn new(out: W) -> Self {
        JsonLog {
            out,
            partial: [Vec::new(), Vec::new()],
            entry: Vec::new(),
        }
    }

    /// Logs a chunk of output read at `now`.
    pub fn append(&mut self, stream: Stream, mut data: &[u8], now: SystemTime) {
        let i = stream.index();
        while !data.is_empty() {
            let room = MAX_LINE - self.partial[i].len();
            let window = &data[..data.len().min(room)];
            match memchr(b'\n', window) {
                Some(pos) => {
                    let (line, rest) = data.split_at(pos + 1);
                    self.emit_with_partial(stream, line, now);
                    data = rest;
                }
                None if window.len() == room => {
                    // A full piece without a newline: write it as a partial line.
                    let (piece, rest) = data.split_at(room);
                    self.emit_with_partial(stream, piece, now);
                    data = rest;
                }
                None => {
                    self.partial[i].extend_from_slice(data);
                    data = &[];
                }
            }
        }
        self.shrink(i);
    }

    /// Writes out unfinished lines (at exit).
    pub fn flush(&mut self, now: SystemTime) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if !self.partial[stream.index()].is_empty() {
                self.emit_with_partial(stream, &[], now);
            }
            self.shrink(stream.index());
        }
    }

    /// Emits the held partial line of `stream` followed by `tail`.
    fn emit_with_partial(&mut self, stream: Stream, tail: &[u8], now: SystemTime) {
        let i = stream.index();
        if self.partial[i].is_empty() {
            self.emit(stream, tail, now);
        } else {
            let mut held = std::mem::take(&mut self.partial[i]);
            held.extend_from_slice(tail);
            self.emit(stream, &held, now);
            held.clear();
            self.partial[i] = held;
        }
    }

    fn emit(&mut self, stream: Stream, text: &[u8], now: SystemTime) {
        self.entry.clear();
        encode_entry(&mut self.entry, stream, text, now);
        // A failed write (disk full) loses this entry but must never stop the container's output.
        let _ = self.out.write_all(&self.entry);
        if self.entry.capacity() > 2 * MAX_LINE {
            self.entry = Vec::new();
        }
    }

    /// Gives back memory a burst of long lines left behind.
    fn shrink(&mut self, i: usize) {
        if self.partial[i].is_empty() && self.partial[i].capacity() > 4096 {
            self.partial[i] = Vec::new();
        }
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Encodes one json-file entry, newline-terminated.
pub fn encode_entry(out: &mut Vec<u8>, stream: Stream, text: &[u8], now: SystemTime) {
    out.extend_from_slice(b"{\"log\":");
    let text = String::from_utf8_lossy(text);
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text.as_ref());
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    let _ = write!(out, "{}", humantime::format_rfc3339_nanos(now));
    out.extend_from_slice(b"\"}\n");
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}
