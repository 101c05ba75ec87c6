//! Images on this host: the content store (verified blobs, unpacked layers, the reference index),
//! docker-compatible reference parsing, `import` of root file system tarballs and the safe layer
//! unpacker; image archives (`load`/`save`), `commit`, and the tree → tar writer behind `commit`,
//! `export` and `cp`. Registries build on [`Store`]'s blob and layer primitives.
//!
//! Synchronous and blocking: the agent runs these calls off its actors' arbiters.

mod archive;
mod commit;
mod compression;
pub mod copy;
mod digest;
mod error;
pub(crate) mod fsutil;
mod import;
mod pipeline;
mod reference;
mod store;
mod tarstream;
pub mod tree_tar;
pub mod unpack;

pub use archive::LoadedImage;
pub use commit::CommitSettings;
pub use compression::Compression;
pub use digest::{Digest, HashingReader};
pub use error::{ImageError, Result};
pub use import::{ImportConfig, DEFAULT_PATH};
pub use reference::{Reference, DEFAULT_DOMAIN, DEFAULT_TAG};
pub use store::{
    BlobInfo, Image, ImageSummary, LayerImport, LayerInfo, RemoveReport, Store, WriteGuard,
};
pub use unpack::{unpack_layer, UnpackStats};

#[cfg(test)]
mod tests;
