//! Image and volume verbs of the agent: `import` (a rootfs tarball streamed from the caller), `images`,
//! and `volume create|ls|inspect|rm|prune`. A volume is in use while any container's record mounts it.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use protocol::messages::{
    ApiError, ImageSummary, ImportImage, Response, VolumeInfo, VolumeRequest,
};
use protocol::transport::Responder;
use runtime::image::{ImportConfig, Reference};

use crate::record::Record;
use crate::Shared;

type Reply<T> = Result<T, ApiError>;

/// Applies `docker import -c` changes (`CMD ["sh"]`, `ENV A=b`, `WORKDIR /x`, ...).
pub fn parse_changes(changes: &[String], message: Option<String>) -> Reply<ImportConfig> {
    let mut c = ImportConfig {
        message,
        ..Default::default()
    };
    for change in changes {
        let (verb, rest) = change
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((change.trim(), ""));
        let rest = rest.trim();
        let list = || -> Reply<Vec<String>> {
            if rest.starts_with('[') {
                serde_json::from_str(rest)
                    .map_err(|e| ApiError::invalid(format!("change {change:?}: {e}")))
            } else {
                Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_owned()])
            }
        };
        match verb.to_ascii_uppercase().as_str() {
            "CMD" => c.cmd = Some(list()?),
            "ENTRYPOINT" => c.entrypoint = Some(list()?),
            "WORKDIR" => c.working_dir = Some(rest.to_owned()),
            "ENV" => c.env.push(match rest.split_once('=') {
                Some(_) => rest.to_owned(),
                None => rest.replacen(char::is_whitespace, "=", 1),
            }),
            "EXPOSE" => c.exposed_ports.extend(rest.split_whitespace().map(str::to_owned)),
            "VOLUME" => {
                if rest.starts_with('[') {
                    c.volumes.extend(list()?);
                } else {
                    c.volumes.extend(rest.split_whitespace().map(str::to_owned));
                }
            }
            "USER" => c.user = Some(rest.to_owned()),
            "STOPSIGNAL" => c.stop_signal = Some(rest.to_owned()),
            "LABEL" => {
                let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
                c.labels.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "change {change:?}: {other} is not a supported instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)"
                )))
            }
        }
    }
    Ok(c)
}

/// `import`: reads the tarball that follows the request and stores it as a one-layer image.
pub async fn import(shared: std::sync::Arc<Shared>, req: ImportImage, mut responder: Responder) {
    let result = async {
        let reference = match &req.reference {
            Some(r) => Reference::parse(r).map_err(|e| ApiError::invalid(e.to_string()))?,
            None => Reference::parse("berth-import:latest")
                .map_err(|e| ApiError::internal(e.to_string()))?,
        };
        let changes = parse_changes(&req.changes, req.message.clone())?;
        let body = responder
            .body()
            .ok_or_else(|| ApiError::invalid("import needs a tarball after the request"))?;
        let store = shared.images.clone();
        let reference_copy = reference.clone();
        let summary = crate::transfer::upload(body, move |reader| {
            store
                .import_rootfs(reader, &reference_copy, &changes)
                .map_err(|e| ApiError::invalid(format!("import: {e}")))
        })
        .await?;
        Ok(Response::ImageImported {
            id: summary.id.to_string(),
            reference: req.reference.as_ref().map(|_| reference.to_string()),
        })
    }
    .await;
    let _ = responder.reply(result).await;
}

/// `images`.
pub fn list_images(shared: &Shared) -> Reply<Response> {
    let images = shared
        .images
        .list()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Response::Images(
        images
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id.to_string(),
                repo_tags: i
                    .references
                    .iter()
                    .filter(|r| r.tag().is_some())
                    .map(|r| r.to_string())
                    .collect(),
                repo_digests: i
                    .references
                    .iter()
                    .filter(|r| r.digest().is_some())
                    .map(|r| r.to_string())
                    .collect(),
                created: i
                    .created
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0),
                size: i.size,
                labels: BTreeMap::new(),
                node: shared.node_name.clone(),
            })
            .collect(),
    ))
}

fn volume_info(shared: &Shared, v: runtime::volume::Volume) -> VolumeInfo {
    VolumeInfo {
        name: v.name,
        driver: v.driver,
        mountpoint: v.mountpoint.display().to_string(),
        created_at: v.created,
        labels: v.labels,
        options: BTreeMap::new(),
        scope: "local".into(),
        node: shared.node_name.clone(),
    }
}

/// Names of the volumes some container (running or not) mounts, read from the records on disk.
fn volumes_in_use(shared: &Shared) -> std::collections::HashSet<String> {
    let mut used = std::collections::HashSet::new();
    let Ok(entries) = std::fs::read_dir(shared.layout.containers()) else {
        return used;
    };
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if let Ok(r) = Record::load(&shared.layout.container(&id)) {
            used.extend(
                r.mounts
                    .into_iter()
                    .filter(|m| m.kind == "volume")
                    .map(|m| m.name),
            );
        }
    }
    used
}

fn volume_error(e: runtime::volume::VolumeError) -> ApiError {
    use runtime::volume::VolumeError as V;
    match e {
        V::NotFound(_) => ApiError::not_found(e.to_string()),
        V::InUse(_) => ApiError::conflict(e.to_string()),
        V::InvalidName(_) => ApiError::invalid(e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// `volume ...`.
pub fn volume(shared: &Shared, req: VolumeRequest) -> Reply<Response> {
    match req {
        VolumeRequest::Create {
            name,
            driver,
            labels,
            ..
        } => {
            if driver.as_deref().is_some_and(|d| d != "local") {
                return Err(ApiError::invalid(
                    "only the local volume driver is supported",
                ));
            }
            let v = shared
                .volumes
                .create(name.as_deref(), labels)
                .map_err(volume_error)?;
            Ok(Response::Volume(volume_info(shared, v)))
        }
        VolumeRequest::List { filters } => {
            let used = volumes_in_use(shared);
            let dangling = filters
                .get("dangling")
                .and_then(|v| v.first())
                .map(|v| v == "true");
            let volumes = shared
                .volumes
                .list()
                .map_err(volume_error)?
                .into_iter()
                .filter(|v| dangling.is_none_or(|d| d != used.contains(&v.name)))
                .filter(|v| {
                    filters
                        .get("name")
                        .is_none_or(|names| names.iter().any(|n| v.name.contains(n.as_str())))
                })
                .map(|v| volume_info(shared, v))
                .collect();
            Ok(Response::Volumes {
                volumes,
                warnings: Vec::new(),
            })
        }
        VolumeRequest::Inspect { name } => Ok(Response::Volume(volume_info(
            shared,
            shared.volumes.get(&name).map_err(volume_error)?,
        ))),
        VolumeRequest::Remove { name, .. } => {
            let used = volumes_in_use(shared);
            shared
                .volumes
                .remove(&name, &|n: &str| used.contains(n))
                .map_err(volume_error)?;
            Ok(Response::Done)
        }
        VolumeRequest::Prune { filters } => {
            let used = volumes_in_use(shared);
            let all = filters
                .get("all")
                .and_then(|v| v.first())
                .is_some_and(|v| v == "true");
            let report = shared
                .volumes
                .prune(&|n: &str| used.contains(n), all)
                .map_err(volume_error)?;
            Ok(Response::Pruned {
                deleted: report.removed,
                space_reclaimed: report.reclaimed,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_changes() {
        let c = parse_changes(
            &[
                r#"CMD ["sh", "-c", "echo hi"]"#.into(),
                "ENV A=b".into(),
                "ENV C d".into(),
                "WORKDIR /srv".into(),
                "EXPOSE 80 53/udp".into(),
                "ENTRYPOINT /bin/run".into(),
            ],
            Some("m".into()),
        )
        .unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["sh", "-c", "echo hi"]);
        assert_eq!(c.env, vec!["A=b", "C=d"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.exposed_ports, vec!["80", "53/udp"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "/bin/run"]);
        assert!(parse_changes(&["RUN x".into()], None).is_err());
        assert!(parse_changes(&["CMD [broken".into()], None).is_err());
    }
}
