//! `berth import`: a root file system tarball becomes a one-layer image, like `docker import`, with
//! the image config built from the host platform and the user's `--change` settings.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::time::SystemTime;

use oci_spec::image::{
    Arch, ConfigBuilder, HistoryBuilder, ImageConfigurationBuilder, Os, RootFsBuilder,
};

use super::error::{ImageError, Result};
use super::reference::Reference;
use super::store::{ImageSummary, Store};

/// The `PATH` an imported image gets unless the changes set one (docker's default for Linux).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Config settings for an imported image (docker import's `--change` and `--message`). Unset fields
/// are left out of the config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportConfig {
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub working_dir: Option<String>,
    /// `KEY=value` entries; `PATH` defaults to [`DEFAULT_PATH`].
    pub env: Vec<String>,
    /// `80/tcp`, `53/udp`, or a bare port (tcp).
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The history comment; docker's default is `Imported from -`.
    pub message: Option<String>,
    /// The creation time recorded in the config; now when unset.
    pub created: Option<SystemTime>,
}

impl Store {
    /// Imports a root file system tarball (plain, gzip or zstd; detected) as a one-layer image named
    /// `reference`. The layer blob is stored exactly as received (no recompression); the config
    /// (host architecture and OS, `rootfs.diff_ids`, one history entry) and an OCI manifest are
    /// written, and the reference is pointed at the new image.
    pub fn import_rootfs(
        &self,
        reader: impl Read,
        reference: &Reference,
        changes: &ImportConfig,
    ) -> Result<ImageSummary> {
        if reference.tag().is_none() {
            return Err(ImageError::Invalid(format!(
                "cannot import as a digest reference: {reference}"
            )));
        }
        let layer = self.import_layer(reader, None, None)?;
        let created =
            humantime::format_rfc3339_nanos(changes.created.unwrap_or_else(SystemTime::now))
                .to_string();
        let config = build_config(changes, &created, &layer.diff_id.to_string())?;
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| ImageError::corrupt("image config", e))?;
        let config_blob = self.write_blob_bytes(&config_bytes)?;
        let manifest = self.write_manifest(
            &config_blob,
            &[(layer.blob.clone(), layer.media_type.clone())],
            None,
        )?;
        let image = self.add_image(&manifest, std::slice::from_ref(reference))?;
        Ok(ImageSummary::from(&image))
    }
}

fn build_config(
    changes: &ImportConfig,
    created: &str,
    diff_id: &str,
) -> Result<oci_spec::image::ImageConfiguration> {
    let bad = |e: oci_spec::OciSpecError| ImageError::Invalid(format!("image config: {e}"));
    let mut env = changes.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let mut c = ConfigBuilder::default().env(env);
    if let Some(v) = &changes.cmd {
        c = c.cmd(v.clone());
    }
    if let Some(v) = &changes.entrypoint {
        c = c.entrypoint(v.clone());
    }
    if let Some(v) = &changes.working_dir {
        c = c.working_dir(v.clone());
    }
    if !changes.exposed_ports.is_empty() {
        let ports: Vec<String> = changes
            .exposed_ports
            .iter()
            .map(|p| {
                if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                }
            })
            .collect();
        c = c.exposed_ports(ports);
    }
    if !changes.volumes.is_empty() {
        c = c.volumes(changes.volumes.clone());
    }
    if let Some(v) = &changes.stop_signal {
        c = c.stop_signal(v.clone());
    }
    if let Some(v) = &changes.user {
        c = c.user(v.clone());
    }
    if !changes.labels.is_empty() {
        c = c.labels(
            changes
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        );
    }
    let history = HistoryBuilder::default()
        .created(created.to_string())
        .comment(
            changes
                .message
                .clone()
                .unwrap_or_else(|| "Imported from -".to_string()),
        )
        .build()
        .map_err(bad)?;
    ImageConfigurationBuilder::default()
        .created(created.to_string())
        .architecture(Arch::default())
        .os(Os::default())
        .config(c.build().map_err(bad)?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id.to_string()])
                .build()
                .map_err(bad)?,
        )
        .history(vec![history])
        .build()
        .map_err(bad)
}
