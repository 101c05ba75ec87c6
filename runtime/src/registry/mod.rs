//! The OCI distribution client: pulls images from registries into the image [`Store`] and pushes
//! stored images to registries (Docker v2 schema2 and OCI manifests, manifest lists and indexes,
//! basic and bearer-token auth, plain HTTP only for loopback and `--insecure-registry` hosts).
//!
//! Layers stream from the socket straight into [`Store::import_layer_onto`]: the blob digest, the
//! decompression, the diff id and the unpacking happen in that one pass, and nothing becomes
//! visible before it was verified. Blocking: the agent runs these calls off its actors' arbiters.
//!
//! [`Store`]: crate::image::Store
//! [`Store::import_layer_onto`]: crate::image::Store::import_layer_onto

mod auth;
mod endpoint;
mod error;
mod manifest;
mod pull;
mod push;
mod session;
#[cfg(test)]
mod tests;
mod workers;

pub use auth::Credentials;
pub use endpoint::RegistryConfig;
pub use error::RegistryError;
pub use pull::{pull, Coalesce, Fetch, PullOutcome};
pub use push::{push, PushOutcome};
pub use session::login;

/// One step of a pull or push, shaped like docker's JSON progress messages: `id` names a layer (its
/// 12-digit short digest) or a tag, `status` says what happened to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// A layer's short digest or a tag, when the step is about one.
    pub id: Option<String>,
    /// What happened (`Pull complete`, `Digest: sha256:…`).
    pub status: String,
    /// Bytes transferred so far and in total, while downloading or uploading.
    pub current: Option<u64>,
    pub total: Option<u64>,
}

impl Progress {
    pub(crate) fn line(id: Option<&str>, status: impl Into<String>) -> Progress {
        Progress {
            id: id.map(str::to_string),
            status: status.into(),
            current: None,
            total: None,
        }
    }
}

/// Where progress goes; called from several transfer threads at once.
pub type ProgressSink<'a> = &'a (dyn Fn(Progress) + Sync);
