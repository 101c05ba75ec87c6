//! Image archives: `berth load` reads what `docker save` writes in both of its layouts (the legacy
//! `manifest.json` + `<id>/layer.tar`, and Docker 25+'s OCI image layout with `manifest.json` beside
//! it) and plain OCI image layout archives (`skopeo copy … oci-archive:`); `berth save` writes the
//! Docker 25+ layout, which docker, podman and skopeo all read.

mod load;
mod save;

pub use load::LoadedImage;

/// The OCI image layout marker file and its content.
const OCI_LAYOUT: &str = "oci-layout";
const OCI_LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// Docker's annotation with an image's full name in `index.json`.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation with an image's tag (or full name) in `index.json`.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One entry of docker's `manifest.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}
