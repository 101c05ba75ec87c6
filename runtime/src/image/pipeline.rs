//! Two-thread layer import: one thread reads the blob, hashes and stores it, decompresses it and
//! hashes the tar (the diff id); the other unpacks. They meet in a bounded channel of reusable
//! buffers, so the unpacker's file system work overlaps the decompression the way
//! `zstd -dc | tar -x` overlaps its two processes, and memory stays at a few buffers.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Size of each buffer passed from the decompressing thread to the unpacker.
const CHUNK: usize = 256 << 10;
/// Buffers in flight (the channel's depth); the decompressor runs at most this far ahead.
const DEPTH: usize = 8;

/// The decompressing side: fills buffers from `source` and sends them to the [`ChunkReader`].
pub(crate) struct ChunkWriter {
    full: SyncSender<io::Result<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
}

/// The unpacking side: a `Read` over the buffers the [`ChunkWriter`] sends. The writer hanging up
/// is end of file.
pub(crate) struct ChunkReader {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

/// A connected writer and reader.
pub(crate) fn chunk_channel() -> (ChunkWriter, ChunkReader) {
    let (full_tx, full_rx) = sync_channel(DEPTH);
    let (empty_tx, empty_rx) = sync_channel(DEPTH + 2);
    (
        ChunkWriter {
            full: full_tx,
            empty: empty_rx,
        },
        ChunkReader {
            full: full_rx,
            empty: empty_tx,
            current: Vec::new(),
            pos: 0,
        },
    )
}

impl ChunkWriter {
    /// Reads `source` to its end into the channel. Returns `Ok(false)` when the reader went away
    /// first (it failed, or it needs no more). A read error is passed on to the reader as well.
    pub(crate) fn pump(&self, source: &mut impl Read) -> io::Result<bool> {
        loop {
            let mut buf = self.empty.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let mut n = 0;
            // Fill the buffer: fewer, fuller chunks mean fewer wake-ups of the unpacker.
            while n < CHUNK {
                match source.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let copy = io::Error::new(e.kind(), e.to_string());
                        let _ = self.full.send(Err(copy));
                        return Err(e);
                    }
                }
            }
            if n == 0 {
                return Ok(true);
            }
            buf.truncate(n);
            if self.full.send(Ok(buf)).is_err() {
                return Ok(false);
            }
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.current.len() {
            let done = std::mem::take(&mut self.current);
            if done.capacity() > 0 {
                let _ = self.empty.try_send(done);
            }
            match self.full.recv() {
                Ok(Ok(buf)) => {
                    self.current = buf;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Bytes written between two writeback starts of a [`WritebackFile`].
const WRITEBACK_STEP: u64 = 8 << 20;

/// A blob being written that asks the kernel to start writing it back every few MB
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait), so the fsync that makes the blob
/// durable before it is published has little left to do instead of flushing the whole layer at
/// the end.
pub(crate) struct WritebackFile {
    file: File,
    written: u64,
    started: u64,
}

impl WritebackFile {
    pub(crate) fn new(file: File) -> Self {
        WritebackFile {
            file,
            written: 0,
            started: 0,
        }
    }

    pub(crate) fn into_file(self) -> File {
        self.file
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITEBACK_STEP {
            // SAFETY: sync_file_range on our own open fd with a range inside what was written. A
            // failure only means the final fsync does all the work, so it is ignored.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.started as libc::off64_t,
                    (self.written - self.started) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_errors_pass_through() {
        let data: Vec<u8> = (0..(3 * CHUNK + 123)).map(|i| (i % 251) as u8).collect();
        let (w, mut r) = chunk_channel();
        let sent = data.clone();
        let producer = std::thread::spawn(move || w.pump(&mut &sent[..]));
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert!(producer.join().unwrap().unwrap());
        assert_eq!(got, data);

        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt stream"))
            }
        }
        let (w, mut r) = chunk_channel();
        let producer = std::thread::spawn(move || w.pump(&mut Broken));
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), "corrupt stream");
        assert!(producer.join().unwrap().is_err());
    }
}
