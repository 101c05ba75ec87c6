//! Image verbs of the agent beyond import and listing: `load`, `save`, `rmi`, `tag`,
//! `image inspect`, `history` and `image prune`. An image is in use while any container's record
//! (running or not) was made from it; such an image is never deleted, only untagged by `rmi -f`, so
//! the container keeps its layers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use protocol::messages::{
    ApiError, HistoryEntry, ImageDeleted, ImageInspect, ImageRunConfig, LoadedImage, Response,
};
use protocol::transport::Responder;
use runtime::image::{Image, ImageError, Reference, RemoveReport};

use crate::record::Record;
use crate::Shared;

type Reply<T> = Result<T, ApiError>;

/// An image store error as the caller should see it.
pub fn image_error(e: ImageError) -> ApiError {
    match e {
        ImageError::NotFound(_) => ApiError::not_found(e.to_string()),
        ImageError::Io { .. } | ImageError::Corrupt { .. } => ApiError::internal(e.to_string()),
        other => ApiError::invalid(other.to_string()),
    }
}

/// `load`: the archive follows the request.
pub async fn load(shared: Arc<Shared>, mut responder: Responder) {
    let result = async {
        let body = responder
            .body()
            .ok_or_else(|| ApiError::invalid("load needs an archive after the request"))?;
        let store = shared.images.clone();
        let loaded = crate::transfer::upload(body, move |reader| {
            store.load_archive(reader).map_err(image_error)
        })
        .await?;
        Ok(Response::ImagesLoaded(
            loaded
                .into_iter()
                .map(|l| LoadedImage {
                    id: l.id.to_string(),
                    repo_tags: l.references.iter().map(|r| r.to_string()).collect(),
                })
                .collect(),
        ))
    }
    .await;
    let _ = responder.reply(result).await;
}

/// `save`: every name is resolved before the download starts, so a bad one is a clean error.
pub async fn save(shared: Arc<Shared>, images: Vec<String>, responder: Responder) {
    if images.is_empty() {
        let _ = responder
            .fail(ApiError::invalid("save needs at least one image"))
            .await;
        return;
    }
    for name in &images {
        if let Err(e) = shared.images.resolve(name) {
            let _ = responder.fail(image_error(e)).await;
            return;
        }
    }
    let Ok(send) = responder.into_download().await else {
        return;
    };
    let store = shared.images.clone();
    crate::transfer::download(send, "save", move |w| {
        store
            .save_archive(&images, w)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
}

/// Containers (short ids) by the image id they were made from.
fn containers_by_image(shared: &Shared) -> BTreeMap<String, Vec<String>> {
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(shared.layout.containers()) else {
        return used;
    };
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if let Ok(r) = Record::load(&shared.layout.container(&id)) {
            used.entry(r.image_id.clone())
                .or_default()
                .push(r.short_id().to_owned());
        }
    }
    used
}

fn report_items(report: RemoveReport) -> Vec<ImageDeleted> {
    let mut items: Vec<ImageDeleted> = report
        .untagged
        .iter()
        .map(|r| ImageDeleted::Untagged(r.to_string()))
        .collect();
    items.extend(
        report
            .deleted
            .iter()
            .chain(&report.deleted_layers)
            .map(|d| ImageDeleted::Deleted(d.to_string())),
    );
    items
}

/// `rmi`, with docker's rules: removing one of several references only untags; the last
/// reference or an id deletes the image unless a container uses it (then `-f` untags it and keeps
/// its content for the container); an id with several references needs `-f`.
pub fn remove(shared: &Shared, name: &str, force: bool) -> Reply<Response> {
    let store = &shared.images;
    let image = store.resolve(name).map_err(image_error)?;
    let by_reference = Reference::parse(name)
        .ok()
        .filter(|r| image.references.contains(r));
    let users = containers_by_image(shared)
        .remove(&image.id.to_string())
        .unwrap_or_default();
    let items = match &by_reference {
        Some(r) if image.references.len() > 1 => {
            report_items(store.remove_reference(r).map_err(image_error)?)
        }
        _ if !users.is_empty() => {
            if !force {
                let what = match &by_reference {
                    Some(r) => format!("unable to remove repository reference \"{r}\""),
                    None => format!("unable to delete {}", image.id.short()),
                };
                return Err(ApiError::conflict(format!(
                    "conflict: {what} (must force) - container {} is using its referenced image {}",
                    users[0],
                    image.id.short()
                )));
            }
            store
                .untag_all(&image.id.to_string())
                .map_err(image_error)?
                .into_iter()
                .map(|r| ImageDeleted::Untagged(r.to_string()))
                .collect()
        }
        Some(r) => report_items(store.remove_reference(r).map_err(image_error)?),
        None => {
            if image.references.len() > 1 && !force {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    image.id.short()
                )));
            }
            report_items(
                store
                    .remove_image(&image.id.to_string())
                    .map_err(image_error)?,
            )
        }
    };
    Ok(Response::ImagesDeleted {
        items,
        space_reclaimed: 0,
    })
}

/// `image prune`: dangling images (with `all`, every image) that no container uses.
pub fn prune(shared: &Shared, all: bool) -> Reply<Response> {
    let used = containers_by_image(shared);
    let mut items = Vec::new();
    let mut space = 0;
    for img in shared.images.list().map_err(image_error)? {
        if used.contains_key(&img.id.to_string()) || (!all && !img.references.is_empty()) {
            continue;
        }
        match shared.images.remove_image(&img.id.to_string()) {
            Ok(report) => {
                if !report.deleted.is_empty() {
                    space += img.size;
                }
                items.extend(report_items(report));
            }
            Err(ImageError::NotFound(_)) => {}
            Err(e) => return Err(image_error(e)),
        }
    }
    Ok(Response::ImagesDeleted {
        items,
        space_reclaimed: space,
    })
}

/// `tag`.
pub fn tag(shared: &Shared, source: &str, target: &str) -> Reply<Response> {
    let new = Reference::parse(target).map_err(image_error)?;
    shared.images.tag(source, &new).map_err(image_error)?;
    Ok(Response::Done)
}

fn unix_secs(t: Option<std::time::SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `image inspect`.
pub fn inspect(shared: &Shared, name: &str) -> Reply<Response> {
    let img = shared.images.resolve(name).map_err(image_error)?;
    let c = img.config.config().clone().unwrap_or_default();
    let mut repo_digests: Vec<String> = img
        .references
        .iter()
        .filter(|r| r.digest().is_some())
        .map(|r| r.to_string())
        .collect();
    for r in img.references.iter().filter(|r| r.tag().is_some()) {
        let d = format!("{}@{}", r.familiar_repository(), img.manifest_digest);
        if !repo_digests.contains(&d) {
            repo_digests.push(d);
        }
    }
    Ok(Response::ImageInspect(Box::new(ImageInspect {
        id: img.id.to_string(),
        repo_tags: img
            .references
            .iter()
            .filter(|r| r.tag().is_some())
            .map(|r| r.to_string())
            .collect(),
        repo_digests,
        created: img.config.created().clone().unwrap_or_default(),
        author: img.config.author().clone().unwrap_or_default(),
        size: img.size,
        architecture: img.config.architecture().to_string(),
        os: img.config.os().to_string(),
        config: ImageRunConfig {
            user: c.user().clone().unwrap_or_default(),
            exposed_ports: c.exposed_ports().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            cmd: c.cmd().clone(),
            entrypoint: c.entrypoint().clone(),
            volumes: c.volumes().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().unwrap_or_default(),
            labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
            stop_signal: c.stop_signal().clone().unwrap_or_default(),
        },
        layers: img.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        node: shared.node_name.clone(),
    })))
}

/// `history`: one row per history entry, newest first; rows with a layer carry its size.
pub fn history(shared: &Shared, name: &str) -> Reply<Response> {
    let img = shared.images.resolve(name).map_err(image_error)?;
    Ok(Response::History(history_rows(&img)))
}

fn history_rows(img: &Image) -> Vec<HistoryEntry> {
    let mut layers = img.layers.iter();
    let mut rows: Vec<HistoryEntry> = img
        .config
        .history()
        .iter()
        .flatten()
        .map(|h| {
            let empty = h.empty_layer().unwrap_or(false);
            let size = if empty {
                0
            } else {
                layers.next().map(|l| l.size).unwrap_or(0)
            };
            HistoryEntry {
                id: "<missing>".into(),
                created: unix_secs(
                    h.created()
                        .as_deref()
                        .and_then(|c| humantime::parse_rfc3339_weak(c).ok()),
                ),
                created_by: h.created_by().clone().unwrap_or_default(),
                size,
                comment: h.comment().clone().unwrap_or_default(),
                empty_layer: empty,
            }
        })
        .collect();
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top.id = img.id.to_string();
    }
    rows
}
