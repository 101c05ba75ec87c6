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

impl ImportConfig {
    /// Applies one `--change` instruction as `docker import -c` does: `CMD`, `ENTRYPOINT` (JSON
    /// array or shell form), `ENV` and `LABEL` (`k=v …` or `k v`), `EXPOSE`, `VOLUME`, `USER`,
    /// `WORKDIR`, `STOPSIGNAL`.
    pub fn apply_change(&mut self, change: &str) -> Result<()> {
        let bad = |why: &str| ImageError::Invalid(format!("invalid change {change:?}: {why}"));
        let change = change.trim();
        let (word, rest) = change
            .split_once(char::is_whitespace)
            .map(|(w, r)| (w, r.trim()))
            .unwrap_or((change, ""));
        if rest.is_empty() {
            return Err(bad("the instruction needs an argument"));
        }
        match word.to_ascii_uppercase().as_str() {
            "CMD" => self.cmd = Some(exec_or_shell(rest)),
            "ENTRYPOINT" => self.entrypoint = Some(exec_or_shell(rest)),
            "ENV" => {
                for (k, v) in key_values(rest).map_err(&bad)? {
                    self.env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                    self.env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                for (k, v) in key_values(rest).map_err(&bad)? {
                    self.labels.insert(k, v);
                }
            }
            "EXPOSE" => self
                .exposed_ports
                .extend(rest.split_whitespace().map(str::to_string)),
            "VOLUME" => match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) => self.volumes.extend(v),
                Err(_) => self.volumes.extend(rest.split_whitespace().map(str::to_string)),
            },
            "USER" => self.user = Some(rest.to_string()),
            "WORKDIR" => self.working_dir = Some(rest.to_string()),
            "STOPSIGNAL" => self.stop_signal = Some(rest.to_string()),
            other => {
                return Err(bad(&format!(
                    "{other} is not one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR"
                )))
            }
        }
        Ok(())
    }
}

/// `["a","b"]` (exec form) or `a b` (shell form, run by `/bin/sh -c`).
fn exec_or_shell(rest: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) if rest.starts_with('[') => v,
        _ => vec!["/bin/sh".into(), "-c".into(), rest.to_string()],
    }
}

/// `k=v k2="v 2"` or the legacy `k v with spaces`.
fn key_values(rest: &str) -> std::result::Result<Vec<(String, String)>, &'static str> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut token = String::new();
        let mut quote = None;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => {
                    if let Some(n) = chars.next() {
                        token.push(n);
                    }
                }
                (None, c) if c.is_whitespace() => break,
                (_, c) => token.push(c),
            }
        }
        if quote.is_some() {
            return Err("unterminated quote");
        }
        let (k, v) = token.split_once('=').ok_or("expected key=value")?;
        if k.is_empty() {
            return Err("empty key");
        }
        out.push((k.to_string(), v.to_string()));
    }
}

impl Store {
    /// Imports a root file system tarball (plain, gzip or zstd; detected) as a one-layer image named
    /// `reference`. The layer blob is stored exactly as received (no recompression); the config
    /// (host architecture and OS, `rootfs.diff_ids`, one history entry) and an OCI manifest are
    /// written, and the reference is pointed at the new image.
    pub fn import_rootfs(
        &self,
        reader: impl Read + Send,
        reference: &Reference,
        changes: &ImportConfig,
    ) -> Result<ImageSummary> {
        if reference.tag().is_none() {
            return Err(ImageError::Invalid(format!(
                "cannot import as a digest reference: {reference}"
            )));
        }
        // Content written below is unreferenced until add_image: keep garbage collection out.
        let _guard = self.write_guard()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_like_docker_import() {
        let mut c = ImportConfig::default();
        for ch in [
            r#"CMD ["/bin/sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /init --flag",
            r#"ENV A=1 B="two words" C=x\ y"#,
            "env A 3",
            r#"LABEL maintainer="me" version=1"#,
            "EXPOSE 80 53/udp",
            r#"VOLUME ["/data", "/logs"]"#,
            "VOLUME /cache",
            "USER 1000:1000",
            "WORKDIR /srv",
            "STOPSIGNAL SIGTERM",
        ] {
            c.apply_change(ch).unwrap();
        }
        assert_eq!(c.cmd.unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "/init --flag"]);
        assert_eq!(c.env, vec!["B=two words", "C=x y", "A=3"]);
        assert_eq!(c.labels.get("maintainer").map(String::as_str), Some("me"));
        assert_eq!(c.exposed_ports, vec!["80", "53/udp"]);
        assert_eq!(c.volumes, vec!["/data", "/logs", "/cache"]);
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGTERM"));
        let mut c = ImportConfig::default();
        for bad in ["ONBUILD RUN x", "CMD", "ENV A=\"open", "FROM x"] {
            let e = c.apply_change(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid change"), "{e}");
        }
    }
}
