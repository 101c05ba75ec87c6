//! The image store's error type: every failure names the object (image, reference, blob, layer entry)
//! and the problem in one line, ready to be printed after `berth: `.

use std::io;

/// Errors of the content store, the reference parser and the layer unpacker.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A name such as `Busybox` or `a//b` that docker would also refuse.
    #[error("invalid reference format {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },
    /// A digest that is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest {0:?}: expected sha256: and 64 lowercase hex digits")]
    InvalidDigest(String),
    /// No image matches a name, reference or id.
    #[error("no such image: {0}")]
    NotFound(String),
    /// A short id prefix matches several images.
    #[error("image id prefix {0} is ambiguous: it matches several images")]
    Ambiguous(String),
    /// One entry of a layer archive is hostile or cannot be created.
    #[error("layer entry {entry:?}: {problem}")]
    Entry { entry: String, problem: String },
    /// The archive itself is malformed (bad header, truncated, oversized extension header).
    #[error("layer archive at byte {offset}: {problem}")]
    Archive { offset: u64, problem: String },
    /// Stored or received content does not match its digest, or is missing.
    #[error("blob {digest}: {problem}")]
    Blob { digest: String, problem: String },
    /// A stored manifest, config or index that cannot be understood.
    #[error("{what}: {problem}")]
    Corrupt { what: String, problem: String },
    /// A request the store refuses (unsupported compression, empty archive, a tag with a digest).
    #[error("{0}")]
    Invalid(String),
    /// A file-system operation on the store failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    /// Wraps an I/O error with what was being done, e.g. `io("create blobs/tmp", e)`.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        ImageError::Io {
            what: what.into(),
            source,
        }
    }

    /// An error about one archive entry, whose name is shown lossily (it may be hostile bytes).
    pub(crate) fn entry(entry: &[u8], problem: impl Into<String>) -> Self {
        ImageError::Entry {
            entry: String::from_utf8_lossy(entry).into_owned(),
            problem: problem.into(),
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, problem: impl ToString) -> Self {
        ImageError::Corrupt {
            what: what.into(),
            problem: problem.to_string(),
        }
    }
}

/// Results of the image module.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
