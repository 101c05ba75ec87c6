//! Manifests as registries serve them: the four media types berth accepts (OCI manifest and index,
//! Docker v2 schema2 manifest and manifest list), telling them apart, and picking this host's
//! platform out of an index.

use oci_spec::image::{Arch, ImageIndex, ImageManifest, Os};

use super::error::{RegistryError, Result};
use crate::image::Digest;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

/// The `Accept` header of a manifest request.
pub(crate) const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests and indexes are small; a registry sending more is refused.
pub(crate) const MAX_MANIFEST: u64 = 4 << 20;
/// So is an image config.
pub(crate) const MAX_CONFIG: u64 = 16 << 20;

/// A parsed manifest answer.
pub(crate) enum Fetched {
    Manifest(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

/// The `mediaType` written inside a manifest, if any.
#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u32>,
}

/// Parses a manifest answer by its `Content-Type`, falling back to the document's own
/// `mediaType` and shape (registries are not all careful about the header).
pub(crate) fn parse(bytes: &[u8], content_type: Option<&str>, what: &str) -> Result<Fetched> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| RegistryError::protocol(what, e))?;
    let declared = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
        .filter(|c| is_known(c))
        .or(probe.media_type.clone());
    if probe.schema_version == Some(1)
        || declared
            .as_deref()
            .is_some_and(|d| d.starts_with(DOCKER_SCHEMA1))
    {
        return Err(RegistryError::protocol(
            what,
            "Docker schema 1 manifests are not supported (push the image again with a current client)",
        ));
    }
    let is_index = match declared.as_deref() {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        _ => probe.manifests.is_some(),
    };
    if is_index {
        ImageIndex::from_reader(bytes)
            .map(|i| Fetched::Index(Box::new(i)))
            .map_err(|e| RegistryError::protocol(what, e))
    } else {
        ImageManifest::from_reader(bytes)
            .map(|m| Fetched::Manifest(Box::new(m)))
            .map_err(|e| RegistryError::protocol(what, e))
    }
}

fn is_known(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST
    ) || media_type.starts_with(DOCKER_SCHEMA1)
}

/// The media type a stored manifest declares (OCI when it says nothing).
pub(crate) fn media_type_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<Probe>(bytes)
        .ok()
        .and_then(|p| p.media_type)
        .unwrap_or_else(|| OCI_MANIFEST.to_string())
}

/// This host's platform as an index names it: `linux/amd64`.
pub(crate) fn host_platform() -> (Os, Arch) {
    (Os::Linux, Arch::default())
}

/// The digest of the manifest for `os`/`arch` in an index.
pub(crate) fn select(index: &ImageIndex, os: &Os, arch: &Arch) -> Option<Digest> {
    index
        .manifests()
        .iter()
        .find(|m| {
            m.platform()
                .as_ref()
                .is_some_and(|p| p.os() == os && p.architecture() == arch)
        })
        .and_then(|m| Digest::try_from(m.digest()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"manifests":[
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":10,
         "digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111",
         "platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":10,
         "digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222",
         "platform":{"architecture":"amd64","os":"linux"}}]}"#;

    #[test]
    fn an_index_without_content_type_is_recognised_and_the_platform_picked() {
        let Fetched::Index(i) = parse(INDEX.as_bytes(), None, "x").unwrap() else {
            panic!("not an index")
        };
        assert_eq!(
            select(&i, &Os::Linux, &Arch::Amd64).unwrap().hex(),
            "2".repeat(64)
        );
        assert_eq!(
            select(&i, &Os::Linux, &Arch::ARM64).unwrap().hex(),
            "1".repeat(64)
        );
        assert!(select(&i, &Os::Linux, &Arch::s390x).is_none());
    }

    #[test]
    fn docker_schema2_parses_and_schema1_is_refused() {
        let m = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":5,
              "digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333"},
            "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":7,
              "digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444"}]}"#;
        assert!(matches!(
            parse(m.as_bytes(), Some(DOCKER_MANIFEST), "x").unwrap(),
            Fetched::Manifest(_)
        ));
        assert_eq!(media_type_of(m.as_bytes()), DOCKER_MANIFEST);
        let old = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let e = parse(old.as_bytes(), None, "x").err().unwrap().to_string();
        assert!(e.contains("schema 1"), "{e}");
        assert!(parse(b"nonsense", None, "x").is_err());
    }
}
