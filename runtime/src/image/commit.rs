//! `berth commit`: a container's writable layer (its overlay upper dir) becomes a new layer on top
//! of its image's, and a new image whose config is the container's (command, environment,
//! working dir, user) with `--change` instructions applied and one history entry appended.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use oci_spec::image::{Config, HistoryBuilder};

use super::digest::Digest;
use super::error::{ImageError, Result};
use super::import::ImportConfig;
use super::reference::Reference;
use super::store::{Image, Store};
use super::tree_tar::{self, TreeOptions};

/// What the new image's config takes from the container and from the user.
#[derive(Clone, Debug, Default)]
pub struct CommitSettings {
    /// The container's command, when it set one (replaces the image's `Cmd`).
    pub cmd: Option<Vec<String>>,
    /// The container's entrypoint, when it set one (`Some(vec![])` clears the image's).
    pub entrypoint: Option<Vec<String>>,
    /// The container's extra environment, `KEY=value`, merged over the image's.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `--change` instructions, applied last.
    pub changes: ImportConfig,
    /// `--author`.
    pub author: Option<String>,
    /// `--message`: the history entry's comment.
    pub comment: Option<String>,
    /// The history entry's `created_by`: the container's command line.
    pub created_by: String,
    /// Paths of the upper dir (relative, no leading `/`) left out: mount points the runtime made.
    pub exclude: Vec<PathBuf>,
}

/// `KEY=value` entries with later keys replacing earlier ones in place.
fn merge_env(base: &mut Vec<String>, extra: &[String]) {
    for e in extra {
        let key = e.split_once('=').map(|(k, _)| k).unwrap_or(e);
        match base
            .iter_mut()
            .find(|b| b.split_once('=').map(|(k, _)| k).unwrap_or(b) == key)
        {
            Some(slot) => *slot = e.clone(),
            None => base.push(e.clone()),
        }
    }
}

fn apply(config: &mut Config, s: &CommitSettings) {
    let c = &s.changes;
    if let Some(v) = c.cmd.clone().or_else(|| s.cmd.clone()) {
        config.set_cmd(Some(v));
    }
    if let Some(v) = c.entrypoint.clone().or_else(|| s.entrypoint.clone()) {
        config.set_entrypoint((!v.is_empty()).then_some(v));
    }
    let mut env = config.env().clone().unwrap_or_default();
    merge_env(&mut env, &s.env);
    merge_env(&mut env, &c.env);
    config.set_env((!env.is_empty()).then_some(env));
    if let Some(w) = c.working_dir.clone().or_else(|| s.working_dir.clone()) {
        config.set_working_dir(Some(w));
    }
    if let Some(u) = c.user.clone().or_else(|| s.user.clone()) {
        config.set_user(Some(u));
    }
    if !c.exposed_ports.is_empty() {
        let mut ports = config.exposed_ports().clone().unwrap_or_default();
        for p in &c.exposed_ports {
            let p = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        config.set_exposed_ports(Some(ports));
    }
    if !c.volumes.is_empty() {
        let mut vols = config.volumes().clone().unwrap_or_default();
        vols.extend(
            c.volumes
                .iter()
                .filter(|v| !vols.contains(v))
                .cloned()
                .collect::<Vec<_>>(),
        );
        config.set_volumes(Some(vols));
    }
    if let Some(sig) = &c.stop_signal {
        config.set_stop_signal(Some(sig.clone()));
    }
    if !c.labels.is_empty() {
        let mut labels = config.labels().clone().unwrap_or_default();
        labels.extend(c.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        config.set_labels(Some(labels));
    }
}

impl Store {
    /// Commits the overlay upper dir `upper` of a container made from `base` as a new image, named
    /// `reference` if given (else dangling). Overlay whiteouts and opaque directories become OCI
    /// ones; the layer is stored as an uncompressed tar.
    pub fn commit(
        &self,
        base: &Image,
        upper: &Path,
        settings: &CommitSettings,
        reference: Option<&Reference>,
    ) -> Result<Image> {
        if let Some(r) = reference {
            if r.tag().is_none() {
                return Err(ImageError::Invalid(format!(
                    "cannot commit to a digest reference: {r}"
                )));
            }
        }
        let _guard = self.write_guard()?;
        let options = TreeOptions {
            overlay_whiteouts: true,
            exclude: settings.exclude.clone(),
        };
        let parent = base.layers.last().map(|l| l.chain_id.clone());
        let (reader, writer) = nix::unistd::pipe()
            .map(|(r, w)| (File::from(r), File::from(w)))
            .map_err(|e| ImageError::io("create a pipe", e.into()))?;
        let layer = std::thread::scope(|scope| {
            // The writer must be closed when done, or the importer never sees the end.
            let producer =
                scope.spawn(move || tree_tar::write_dir(upper, &options, writer).map(drop));
            let imported = self.import_layer(reader, parent.as_ref(), None);
            let produced = producer
                .join()
                .map_err(|_| ImageError::Invalid("the layer writer panicked".into()))?;
            // The writer's error explains a reader's broken pipe: report it first.
            produced?;
            imported
        })?;

        let mut config = base.config.clone();
        let created = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        let mut exec = config.config().clone().unwrap_or_default();
        apply(&mut exec, settings);
        config.set_config(Some(exec));
        config.set_created(Some(created.clone()));
        config.set_author(settings.author.clone());
        config
            .rootfs_mut()
            .diff_ids_mut()
            .push(layer.diff_id.to_string());
        let mut entry = HistoryBuilder::default()
            .created(created)
            .created_by(settings.created_by.clone());
        if let Some(a) = &settings.author {
            entry = entry.author(a.clone());
        }
        if let Some(m) = &settings.comment {
            entry = entry.comment(m.clone());
        }
        let entry = entry
            .build()
            .map_err(|e| ImageError::corrupt("history entry", e))?;
        config
            .history_mut()
            .get_or_insert_with(Vec::new)
            .push(entry);

        let bytes =
            serde_json::to_vec(&config).map_err(|e| ImageError::corrupt("image config", e))?;
        let config_blob = self.write_blob_bytes(&bytes)?;
        let manifest = self.load_base_manifest(base)?;
        let mut layers: Vec<_> = manifest
            .layers()
            .iter()
            .map(|d| {
                Ok((
                    super::store::BlobInfo {
                        digest: Digest::try_from(d.digest())?,
                        size: d.size(),
                    },
                    d.media_type().clone(),
                ))
            })
            .collect::<Result<_>>()?;
        layers.push((layer.blob, layer.media_type));
        let manifest = self.write_manifest(&config_blob, &layers, None)?;
        let refs: Vec<Reference> = reference.cloned().into_iter().collect();
        self.add_image(&manifest, &refs)
    }

    fn load_base_manifest(&self, base: &Image) -> Result<oci_spec::image::ImageManifest> {
        let bytes = self.read_blob(&base.manifest_digest)?;
        oci_spec::image::ImageManifest::from_reader(&bytes[..])
            .map_err(|e| ImageError::corrupt(format!("manifest {}", base.manifest_digest), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_settings_then_changes() {
        let mut config = Config::default();
        config.set_env(Some(vec!["PATH=/bin".into(), "A=1".into()]));
        config.set_cmd(Some(vec!["sh".into()]));
        let mut s = CommitSettings {
            cmd: Some(vec!["echo".into(), "hi".into()]),
            env: vec!["A=2".into(), "B=3".into()],
            ..Default::default()
        };
        apply(&mut config, &s);
        assert_eq!(config.cmd().clone().unwrap(), vec!["echo", "hi"]);
        assert_eq!(
            config.env().clone().unwrap(),
            vec!["PATH=/bin", "A=2", "B=3"]
        );
        s.changes.apply_change(r#"CMD ["cat", "/x"]"#).unwrap();
        s.changes.apply_change("EXPOSE 80").unwrap();
        s.changes.apply_change("ENTRYPOINT []").unwrap();
        apply(&mut config, &s);
        assert_eq!(config.cmd().clone().unwrap(), vec!["cat", "/x"]);
        assert_eq!(config.exposed_ports().clone().unwrap(), vec!["80/tcp"]);
        assert_eq!(config.entrypoint(), &None);
    }
}
