//! The registry client's error type: one line naming the registry or reference and the problem.

use crate::image::ImageError;

/// Failures of pull, push and login.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or the connection broke (refused, reset, timed out, TLS).
    #[error("cannot reach registry {registry}: {problem}")]
    Unreachable { registry: String, problem: String },
    /// The registry refused the credentials, or wants some and none were given.
    #[error("{action} denied for {repository}: unauthorized: {hint}")]
    Unauthorized {
        action: &'static str,
        repository: String,
        hint: String,
    },
    /// The tag or digest does not exist in the repository.
    #[error("manifest for {reference} not found: manifest unknown")]
    ManifestUnknown { reference: String },
    /// An index without a manifest for this host's platform.
    #[error("no matching manifest for {platform} in the manifest list entries of {reference}")]
    NoPlatform { reference: String, platform: String },
    /// Any other refusal by the registry, with its own message.
    #[error("{what}: registry answered {status}: {message}")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
    /// The registry sent something that is not a valid answer (malformed manifest, wrong digest).
    #[error("{what}: {problem}")]
    Protocol { what: String, problem: String },
    /// Local registry settings are unusable (an unreadable CA file).
    #[error("registry settings: {0}")]
    Config(String),
    /// Storing or reading content failed.
    #[error(transparent)]
    Store(#[from] ImageError),
}

impl RegistryError {
    pub(crate) fn protocol(what: impl Into<String>, problem: impl ToString) -> RegistryError {
        RegistryError::Protocol {
            what: what.into(),
            problem: problem.to_string(),
        }
    }
}

/// Results of the registry client.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
