//! Layer compression: detection by magic bytes (plain tar, gzip, zstd) and a decoder that can hand
//! back its input afterwards, so the rest of the compressed stream can still be hashed.

use std::io::{self, BufRead, Read};

use oci_spec::image::MediaType;

use super::error::ImageError;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const BZIP2_MAGIC: &[u8] = b"BZh";

/// Bytes needed to tell the formats apart.
pub const MAGIC_LEN: usize = 6;

impl Compression {
    /// Detects the compression from the first bytes of a blob. xz and bzip2, which docker import
    /// also accepts, are refused with a clear message.
    pub fn detect(prefix: &[u8]) -> Result<Compression, ImageError> {
        if prefix.starts_with(GZIP_MAGIC) {
            Ok(Compression::Gzip)
        } else if prefix.starts_with(ZSTD_MAGIC) {
            Ok(Compression::Zstd)
        } else if prefix.starts_with(XZ_MAGIC) {
            Err(ImageError::Invalid(
                "xz-compressed archives are not supported: use a plain, gzip or zstd tar".into(),
            ))
        } else if prefix.starts_with(BZIP2_MAGIC) && prefix.len() > 3 && prefix[3].is_ascii_digit()
        {
            Err(ImageError::Invalid(
                "bzip2-compressed archives are not supported: use a plain, gzip or zstd tar".into(),
            ))
        } else {
            Ok(Compression::None)
        }
    }

    /// The OCI layer media type of a blob with this compression.
    pub fn layer_media_type(self) -> MediaType {
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }
}

/// A decompressing reader over a buffered input that gives the input back with `into_inner`.
pub(crate) enum Decoder<R: BufRead> {
    Plain(R),
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Decoder<R> {
    pub(crate) fn new(compression: Compression, input: R) -> io::Result<Decoder<R>> {
        Ok(match compression {
            Compression::None => Decoder::Plain(input),
            Compression::Gzip => {
                Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(input)))
            }
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(input)?),
        })
    }

    pub(crate) fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}
