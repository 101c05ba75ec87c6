//! Content digests (`sha256:<hex>`) and the streaming hashers that compute them while data flows, so
//! that no blob or layer is ever read twice.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use super::error::ImageError;

/// A SHA-256 content digest. Blobs, diff ids, chain ids and image ids are all of this form; only
/// sha256 is supported, as in docker.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The digest of `bytes` (used for small blobs such as configs and manifests).
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    pub(crate) fn from_hasher(h: Sha256) -> Digest {
        Digest {
            hex: hex::encode(h.finalize()),
        }
    }

    /// Parses a bare 64-digit hex string (as used in file names under `blobs/sha256/`).
    pub fn from_hex(hex: &str) -> Result<Digest, ImageError> {
        if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Digest {
                hex: hex.to_string(),
            })
        } else {
            Err(ImageError::InvalidDigest(hex.to_string()))
        }
    }

    /// The 64 hex digits, without the `sha256:` prefix (file names in the store).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The 12-digit short form that `berth images` shows.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    /// The OCI chain id of a layer on top of `parent` (OCI image spec: `chain(L0) = diff(L0)`,
    /// `chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))`).
    pub fn chain(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
        match parent {
            None => diff_id.clone(),
            Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
        }
    }

    /// The chain ids of a whole stack of diff ids, bottom layer first.
    pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let next = Digest::chain(out.last(), d);
            out.push(next);
        }
        out
    }

    /// The same digest as oci-spec's type, for manifests and configs.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        oci_spec::image::Digest::from_str(&self.to_string())
            .expect("a validated sha256 digest is a valid OCI digest")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("sha256:") {
            Some(hex) => Digest::from_hex(hex).map_err(|_| ImageError::InvalidDigest(s.into())),
            None => Err(ImageError::InvalidDigest(s.to_string())),
        }
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = ImageError;

    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        Digest::from_str(d.as_ref())
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::from_str(&s).map_err(serde::de::Error::custom)
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`; nothing has been hashed yet.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Ends hashing: the inner reader, the digest and the byte count of what was read.
    pub fn finish(self) -> (R, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A reader that hashes everything read through it and copies it to a writer (the blob being stored),
/// so that the received bytes are hashed, stored and passed on in one pass.
pub(crate) struct TeeReader<R, W> {
    inner: R,
    copy: W,
    hasher: Sha256,
    count: u64,
}

impl<R: Read, W: Write> TeeReader<R, W> {
    pub(crate) fn new(inner: R, copy: W) -> Self {
        TeeReader {
            inner,
            copy,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub(crate) fn finish(self) -> (W, Digest, u64) {
        (self.copy, Digest::from_hasher(self.hasher), self.count)
    }
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.copy.write_all(&buf[..n])?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parse_display_and_chain() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::from_str(&d.to_string()).unwrap(), d);
        assert_eq!(d.short(), "ba7816bf8f01");
        assert!(Digest::from_str("sha256:ABC").is_err());
        assert!(Digest::from_str("md5:ba7816bf8f01cfea414140de5dae2223").is_err());
        let e = Digest::of(b"def");
        let chain = Digest::chain_ids(&[d.clone(), e.clone()]);
        assert_eq!(chain[0], d);
        assert_eq!(chain[1], Digest::of(format!("{d} {e}").as_bytes()));
        assert_eq!(d.to_oci().digest(), d.hex());
    }
}
