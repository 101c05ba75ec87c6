//! A streaming tar reader with bounded memory: it walks the 512-byte block structure itself (ustar,
//! GNU and PAX formats, GNU long names, old-GNU sparse files) and uses the `tar` crate only to decode
//! header fields. Extension headers larger than a fixed limit are refused instead of being read into
//! memory, so a hostile archive cannot exhaust memory with a giant PAX or long-name record.

use std::io::{self, Read};

use tar::{EntryType, GnuExtSparseHeader, PaxExtensions};

use super::error::{ImageError, Result};
use super::fsutil::Time;

const BLOCK: u64 = 512;
/// Largest PAX extended header accepted (Go's archive/tar uses the same 1 MiB bound).
const MAX_PAX: u64 = 1 << 20;
/// Largest GNU long name or long link name accepted.
const MAX_LONG_NAME: u64 = 64 << 10;
/// Largest number of sparse extension blocks accepted for one file.
const MAX_SPARSE_BLOCKS: usize = 4096;

/// What an entry creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

/// One archive member with every extension applied.
#[derive(Debug)]
pub(crate) struct Header {
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: Time,
    pub atime: Option<Time>,
    /// Bytes of data stored in the archive for this entry.
    pub size: u64,
    /// The file's length once sparse holes are filled in (equal to `size` when not sparse).
    pub real_size: u64,
    /// For a sparse file, the (offset, length) of each stored data region, in archive order.
    pub sparse: Option<Vec<(u64, u64)>>,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads headers and entry data from an uncompressed tar stream.
pub(crate) struct TarReader<R> {
    inner: R,
    offset: u64,
    remaining: u64,
    padding: u64,
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        TarReader {
            inner,
            offset: 0,
            remaining: 0,
            padding: 0,
        }
    }

    fn malformed(&self, at: u64, problem: impl Into<String>) -> ImageError {
        let _ = self;
        ImageError::Archive {
            offset: at,
            problem: problem.into(),
        }
    }

    fn io_err(&self, e: io::Error) -> ImageError {
        ImageError::Archive {
            offset: self.offset,
            problem: format!("read failed: {e}"),
        }
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` on EOF before the first byte.
    fn read_exact_or_eof(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(self.malformed(
                        self.offset,
                        format!("archive ends inside a block ({got} of {} bytes)", buf.len()),
                    ))
                }
                Ok(n) => {
                    got += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        Ok(true)
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(self.malformed(self.offset, "archive ends inside an entry's data"))
                }
                Ok(k) => {
                    n -= k as u64;
                    self.offset += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        Ok(())
    }

    /// Reads a whole small member (an extension header) of `size` bytes plus its padding.
    fn read_member(&mut self, size: u64, limit: u64, what: &str, at: u64) -> Result<Vec<u8>> {
        if size > limit {
            return Err(self.malformed(
                at,
                format!("{what} of {size} bytes exceeds the limit of {limit} bytes"),
            ));
        }
        let mut data = vec![0u8; size as usize];
        if !self.read_exact_or_eof(&mut data)? && size > 0 {
            return Err(self.malformed(at, format!("archive ends inside a {what}")));
        }
        self.skip(pad(size))?;
        Ok(data)
    }

    /// The next entry, or `None` at the end-of-archive marker (or a clean EOF on a block boundary).
    /// Any data of the previous entry that was not read is skipped.
    pub(crate) fn next_header(&mut self) -> Result<Option<Header>> {
        let rest = self.remaining + self.padding;
        self.skip(rest)?;
        self.remaining = 0;
        self.padding = 0;

        let mut pax: Option<Vec<u8>> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut block = [0u8; BLOCK as usize];
        let (at, header) = loop {
            let at = self.offset;
            let pending = pax.is_some() || long_name.is_some() || long_link.is_some();
            if !self.read_exact_or_eof(&mut block)? || block.iter().all(|b| *b == 0) {
                if pending {
                    return Err(self.malformed(at, "extension header without a following entry"));
                }
                return Ok(None);
            }
            let h = tar::Header::from_byte_slice(&block);
            verify_checksum(&block).map_err(|p| self.malformed(at, p))?;
            let size = h
                .entry_size()
                .map_err(|e| self.malformed(at, format!("invalid size field: {e}")))?;
            match h.entry_type() {
                EntryType::XHeader => {
                    if pax.is_some() {
                        return Err(self.malformed(at, "two PAX headers for one entry"));
                    }
                    pax = Some(self.read_member(size, MAX_PAX, "PAX extended header", at)?);
                }
                EntryType::XGlobalHeader => {
                    self.read_member(size, MAX_PAX, "PAX global header", at)?;
                }
                EntryType::GNULongName => {
                    if long_name.is_some() {
                        return Err(self.malformed(at, "two GNU long names for one entry"));
                    }
                    let mut v = self.read_member(size, MAX_LONG_NAME, "GNU long name", at)?;
                    trim_nuls(&mut v);
                    long_name = Some(v);
                }
                EntryType::GNULongLink => {
                    if long_link.is_some() {
                        return Err(self.malformed(at, "two GNU long link names for one entry"));
                    }
                    let mut v = self.read_member(size, MAX_LONG_NAME, "GNU long link name", at)?;
                    trim_nuls(&mut v);
                    long_link = Some(v);
                }
                _ => break (at, h.clone()),
            }
        };
        self.finish_header(at, &header, pax, long_name, long_link)
            .map(Some)
    }

    fn finish_header(
        &mut self,
        at: u64,
        h: &tar::Header,
        pax: Option<Vec<u8>>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<Header> {
        let mut path = long_name.unwrap_or_else(|| h.path_bytes().into_owned());
        let mut link = long_link.unwrap_or_else(|| {
            h.link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default()
        });
        let field = |r: io::Result<u64>, name: &str, path: &[u8]| {
            r.map_err(|e| ImageError::entry(path, format!("invalid {name} field: {e}")))
        };
        let mut size = field(h.entry_size(), "size", &path)?;
        let mut uid = field(h.uid(), "uid", &path)?;
        let mut gid = field(h.gid(), "gid", &path)?;
        let mode = field(h.mode().map(u64::from), "mode", &path)? as u32;
        let mut mtime = Time {
            sec: field(h.mtime(), "mtime", &path)? as i64,
            nsec: 0,
        };
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Some(pax) = &pax {
            for ext in PaxExtensions::new(pax) {
                let ext = ext.map_err(|e| self.malformed(at, format!("bad PAX record: {e}")))?;
                let key = ext.key_bytes();
                let value = ext.value_bytes();
                let num = |v: &[u8]| -> Result<u64> {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| {
                            ImageError::entry(
                                &path,
                                format!(
                                    "PAX {} is not a number: {:?}",
                                    String::from_utf8_lossy(key),
                                    String::from_utf8_lossy(v)
                                ),
                            )
                        })
                };
                match key {
                    b"path" => path = value.to_vec(),
                    b"linkpath" => link = value.to_vec(),
                    b"size" => size = num(value)?,
                    b"uid" => uid = num(value)?,
                    b"gid" => gid = num(value)?,
                    b"mtime" => {
                        mtime = parse_pax_time(value).ok_or_else(|| {
                            ImageError::entry(&path, "PAX mtime is not a valid time")
                        })?
                    }
                    b"atime" => atime = parse_pax_time(value),
                    k if k.starts_with(b"SCHILY.xattr.") => {
                        xattrs.push((k[b"SCHILY.xattr.".len()..].to_vec(), value.to_vec()))
                    }
                    k if k.starts_with(b"GNU.sparse.") => {
                        return Err(ImageError::entry(
                            &path,
                            "PAX-format sparse files are not supported",
                        ))
                    }
                    _ => {}
                }
            }
        }
        let entry_type = h.entry_type();
        let kind = match entry_type {
            // Pre-POSIX archives mark directories with a trailing slash on a regular entry.
            EntryType::Regular | EntryType::Continuous if path.ends_with(b"/") => Kind::Dir,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::File,
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => Kind::Symlink,
            EntryType::Link => Kind::Hardlink,
            EntryType::Char => Kind::Char,
            EntryType::Block => Kind::Block,
            EntryType::Fifo => Kind::Fifo,
            other => {
                return Err(ImageError::entry(
                    &path,
                    format!("unsupported entry type {:?}", other.as_byte() as char),
                ))
            }
        };
        let (mut dev_major, mut dev_minor) = (0, 0);
        if matches!(kind, Kind::Char | Kind::Block) {
            dev_major = h
                .device_major()
                .map_err(|e| ImageError::entry(&path, format!("invalid device major: {e}")))?
                .unwrap_or(0);
            dev_minor = h
                .device_minor()
                .map_err(|e| ImageError::entry(&path, format!("invalid device minor: {e}")))?
                .unwrap_or(0);
        }
        let mut real_size = size;
        let mut sparse = None;
        if entry_type == EntryType::GNUSparse {
            let (map, real) = self.read_sparse_map(at, h, &path, size)?;
            sparse = Some(map);
            real_size = real;
        }
        // Directories, links and devices carry no data even if a size is declared.
        let data = if kind == Kind::File { size } else { 0 };
        if kind != Kind::File {
            self.remaining = 0;
            self.padding = size + pad(size);
        } else {
            self.remaining = data;
            self.padding = pad(data);
        }
        Ok(Header {
            path,
            link,
            kind,
            mode,
            uid,
            gid,
            mtime,
            atime,
            size: data,
            real_size,
            sparse,
            dev_major,
            dev_minor,
            xattrs,
        })
    }

    /// The old-GNU sparse map: up to 4 regions in the header, more in extension blocks that follow it.
    fn read_sparse_map(
        &mut self,
        at: u64,
        h: &tar::Header,
        path: &[u8],
        stored: u64,
    ) -> Result<(Vec<(u64, u64)>, u64)> {
        let bad = |p: &str| ImageError::entry(path, format!("invalid sparse map: {p}"));
        let gnu = h
            .as_gnu()
            .ok_or_else(|| bad("sparse entry without a GNU header"))?;
        let real = gnu.real_size().map_err(|_| bad("bad real size"))?;
        let mut map = Vec::new();
        let mut push = |s: &tar::GnuSparseHeader| -> Result<()> {
            if s.is_empty() {
                return Ok(());
            }
            let off = s.offset().map_err(|_| bad("bad region offset"))?;
            let len = s.length().map_err(|_| bad("bad region length"))?;
            map.push((off, len));
            Ok(())
        };
        for s in gnu.sparse.iter() {
            push(s)?;
        }
        let mut extended = gnu.is_extended();
        let mut blocks = 0;
        while extended {
            blocks += 1;
            if blocks > MAX_SPARSE_BLOCKS {
                return Err(self.malformed(at, "too many sparse extension blocks"));
            }
            let mut block = [0u8; BLOCK as usize];
            if !self.read_exact_or_eof(&mut block)? {
                return Err(self.malformed(at, "archive ends inside a sparse map"));
            }
            // SAFETY-free reinterpretation: GnuExtSparseHeader is a 512-byte plain byte struct.
            let ext = ext_sparse(&block);
            for s in ext.sparse.iter() {
                push(s)?;
            }
            extended = ext.is_extended();
        }
        let mut end = 0u64;
        let mut total = 0u64;
        for (off, len) in &map {
            if *off < end {
                return Err(bad("regions overlap or are out of order"));
            }
            end = off
                .checked_add(*len)
                .ok_or_else(|| bad("region overflows"))?;
            total = total
                .checked_add(*len)
                .ok_or_else(|| bad("size overflows"))?;
        }
        if end > real || total != stored {
            return Err(bad("regions do not match the file size"));
        }
        Ok((map, real))
    }

    /// Reads data of the current entry; `Ok(0)` at its end. An archive that ends early is an
    /// `UnexpectedEof` error.
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "archive ends inside the entry's data",
                    ))
                }
                Ok(n) => {
                    self.remaining -= n as u64;
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the rest of the stream after the end-of-archive marker, so that hashers wrapped around
    /// the reader see every byte (the diff id covers the whole uncompressed stream).
    pub(crate) fn drain(&mut self) -> Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match self.inner.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.offset += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
    }
}

fn ext_sparse(block: &[u8; 512]) -> &GnuExtSparseHeader {
    // GnuExtSparseHeader is #[repr(C)] of byte arrays only (21 * 24 + 1 + 7 = 512 bytes), like
    // tar::Header, so any 512 bytes are a valid value and alignment is 1.
    const _: () = assert!(std::mem::size_of::<GnuExtSparseHeader>() == 512);
    const _: () = assert!(std::mem::align_of::<GnuExtSparseHeader>() == 1);
    // SAFETY: size and alignment checked above; every bit pattern is valid for byte arrays.
    unsafe { &*(block.as_ptr() as *const GnuExtSparseHeader) }
}

fn pad(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

fn trim_nuls(v: &mut Vec<u8>) {
    while v.last() == Some(&0) {
        v.pop();
    }
}

/// The header checksum: the sum of all bytes with the checksum field counted as spaces (unsigned, or
/// signed as some historic tars wrote it).
fn verify_checksum(block: &[u8; 512]) -> std::result::Result<(), String> {
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let text = text.trim_matches(|c: char| c == ' ' || c == '\0');
    let stored = u32::from_str_radix(text, 8)
        .map_err(|_| format!("invalid header checksum field {:?}", text))?;
    let mut unsigned: u32 = 8 * 32;
    let mut signed: i32 = 8 * 32;
    for (i, b) in block.iter().enumerate() {
        if !(148..156).contains(&i) {
            unsigned += *b as u32;
            signed += (*b as i8) as i32;
        }
    }
    if stored == unsigned || stored as i32 == signed {
        Ok(())
    } else {
        Err("header checksum mismatch (not a tar archive, or corrupted)".into())
    }
}

/// A PAX time: `[-]seconds[.fraction]`.
fn parse_pax_time(v: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sec: i64 = int.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: u32 = digits.parse().ok()?;
    Some(if !neg {
        Time { sec, nsec }
    } else if nsec == 0 {
        Time { sec: -sec, nsec: 0 }
    } else {
        Time {
            sec: -sec - 1,
            nsec: 1_000_000_000 - nsec,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"12"), Some(Time { sec: 12, nsec: 0 }));
        assert_eq!(
            parse_pax_time(b"12.5"),
            Some(Time {
                sec: 12,
                nsec: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"-1.25"),
            Some(Time {
                sec: -2,
                nsec: 750_000_000
            })
        );
        assert_eq!(parse_pax_time(b"x"), None);
    }
}
