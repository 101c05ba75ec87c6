//! Verbs on a container's file system: `commit` (its upper dir becomes an image layer), `export`
//! (the merged root as a tar) and `cp` in both directions. They work on running and stopped
//! containers alike through the overlay mount the agent holds for each container; every path of
//! the container is resolved inside its root (openat2 `RESOLVE_IN_ROOT`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::messages::{ApiError, CommitOptions, Response};
use protocol::transport::Responder;
use runtime::image::{copy, tree_tar, CommitSettings, ImportConfig, Reference};
use runtime::snapshot::Snapshot;

use crate::container;
use crate::images::image_error;
use crate::lifecycle::State;
use crate::record::Record;
use crate::Shared;

type Reply<T> = Result<T, ApiError>;

async fn record(shared: &Shared, key: &str) -> Reply<Record> {
    ask(shared, key, container::RecordCopy).await
}

/// The container's overlay, mounted (a stopped container's may have been unmounted by a reboot).
fn snapshot(shared: &Shared, record: &Record) -> Reply<Snapshot> {
    let snap = Snapshot::load(&shared.layout.container(&record.id).snapshot())
        .map_err(|e| ApiError::internal(format!("container {}: {e}", record.name)))?;
    snap.mount()
        .map_err(|e| ApiError::internal(format!("container {}: {e}", record.name)))?;
    Ok(snap)
}

/// Mount points the runtime made for the container (`proc`, `dev`, `etc/hosts`, volume targets),
/// relative to its root: not the container's doing, so not committed.
fn runtime_mount_points(shared: &Shared, record: &Record) -> Vec<PathBuf> {
    let spec: Option<oci_spec::runtime::Spec> =
        std::fs::read(shared.layout.container(&record.id).config())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
    spec.iter()
        .flat_map(|s| s.mounts().iter().flatten())
        .map(|m| {
            m.destination()
                .strip_prefix("/")
                .unwrap_or(m.destination())
                .to_path_buf()
        })
        .collect()
}

fn container_path(path: &str) -> Reply<PathBuf> {
    if !path.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "{path}: the path in the container must be absolute"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Where a container path lives on the host: under a volume or directory bind mount, in the
/// mount's source (the overlay holds only what the mount hides, so a file copied there would be
/// lost from the container's view); anywhere else, in the merged root. Returns the root to
/// resolve in (with `RESOLVE_IN_ROOT`), the path inside it, and whether it may be written.
fn locate(record: &Record, merged: PathBuf, path: &Path) -> (PathBuf, PathBuf, bool) {
    let lexical = !path
        .components()
        .any(|c| c == std::path::Component::ParentDir);
    let mount = record
        .mounts
        .iter()
        .filter(|m| lexical && m.kind != "tmpfs" && Path::new(&m.source).is_dir())
        .filter_map(|m| path.strip_prefix(&m.destination).ok().map(|rest| (m, rest)))
        .max_by_key(|(m, _)| Path::new(&m.destination).components().count());
    match mount {
        Some((m, rest)) => (PathBuf::from(&m.source), Path::new("/").join(rest), m.rw),
        None => (merged, path.to_path_buf(), true),
    }
}

/// `commit`.
pub async fn commit(shared: Arc<Shared>, key: &str, options: CommitOptions) -> Reply<Response> {
    let record = record(&shared, key).await?;
    let reference = options
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()
        .map_err(image_error)?;
    let mut changes = ImportConfig::default();
    for c in &options.changes {
        changes.apply_change(c).map_err(image_error)?;
    }
    // A frozen container cannot change its files while they are read (docker's `commit -p`).
    let frozen = options.pause && record.state == State::Running;
    if frozen {
        ask(&shared, key, container::Pause).await??;
    }
    let key = key.to_owned();
    let thawer = shared.clone();
    let committed = tokio::task::spawn_blocking(move || {
        let base = shared
            .images
            .resolve(&record.image_id)
            .map_err(image_error)?;
        let snap = snapshot(&shared, &record)?;
        let settings = CommitSettings {
            cmd: record.config.cmd.clone(),
            entrypoint: record.config.entrypoint.clone(),
            env: record.config.env.clone(),
            working_dir: record.config.working_dir.clone(),
            user: record.config.user.clone(),
            changes,
            author: options.author,
            comment: options.message,
            created_by: record.args.join(" "),
            exclude: runtime_mount_points(&shared, &record),
        };
        let image = shared
            .images
            .commit(&base, &snap.upper(), &settings, reference.as_ref())
            .map_err(image_error)?;
        Ok(Response::Committed {
            id: image.id.to_string(),
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("commit: {e}")));
    if frozen {
        ask(&thawer, &key, container::Unpause).await??;
    }
    committed?
}

async fn ask<M>(shared: &Shared, key: &str, msg: M) -> Reply<M::Result>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    container::ContainerActor: actix::Handler<M>,
{
    let (_, addr) = shared
        .node
        .send(crate::node::Resolve(key.to_owned()))
        .await
        .map_err(unavailable)??;
    addr.send(msg).await.map_err(unavailable)
}

fn unavailable(e: actix::MailboxError) -> ApiError {
    ApiError::internal(format!("agent actor unavailable: {e}"))
}

/// `export`: the merged root file system as a tar.
pub async fn export(shared: Arc<Shared>, key: &str, responder: Responder) {
    let prepared = async {
        let record = record(&shared, key).await?;
        snapshot(&shared, &record)
    };
    let snap = match prepared.await {
        Ok(s) => s,
        Err(e) => {
            let _ = responder.fail(e).await;
            return;
        }
    };
    let Ok(send) = responder.into_download().await else {
        return;
    };
    crate::transfer::download(send, "export", move |w| {
        tree_tar::write_dir(&snap.merged(), &tree_tar::TreeOptions::default(), w)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
}

/// What `cp` out reads.
enum CopySource {
    /// A path resolved inside `root`.
    Path { root: PathBuf, path: PathBuf },
    /// A mount point itself: the mount's source directory, named as the container calls it.
    Mount { dir: PathBuf, name: PathBuf },
}

/// `cp CONTAINER:PATH …`: the path as a tar.
pub async fn copy_from(shared: Arc<Shared>, key: &str, path: &str, responder: Responder) {
    let prepared = async {
        let record = record(&shared, key).await?;
        let path = container_path(path)?;
        let snap = snapshot(&shared, &record)?;
        let (root, inside, _) = locate(&record, snap.merged(), &path);
        if inside == Path::new("/") {
            if let Some(name) = path.file_name() {
                return Ok::<_, ApiError>(CopySource::Mount {
                    dir: root,
                    name: PathBuf::from(name),
                });
            }
        }
        copy::check_exists(&root, &inside).map_err(|e| match e {
            runtime::image::ImageError::Invalid(m) => ApiError::not_found(m),
            other => image_error(other),
        })?;
        Ok(CopySource::Path { root, path: inside })
    };
    let source = match prepared.await {
        Ok(p) => p,
        Err(e) => {
            let _ = responder.fail(e).await;
            return;
        }
    };
    let Ok(send) = responder.into_download().await else {
        return;
    };
    crate::transfer::download(send, "cp", move |w| {
        let written = match &source {
            CopySource::Mount { dir, name } => copy::copy_dir_out(dir, name, w),
            CopySource::Path { root, path } => copy::copy_out(root, path, w),
        };
        written.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
}

/// `cp … CONTAINER:PATH`: unpacks the tar that follows the request.
pub async fn copy_to(
    shared: Arc<Shared>,
    key: &str,
    path: &str,
    into_dir_only: bool,
    mut responder: Responder,
) {
    let result = async {
        let record = record(&shared, key).await?;
        let path = container_path(path)?;
        let snap = snapshot(&shared, &record)?;
        let (root, inside, writable) = locate(&record, snap.merged(), &path);
        if !writable {
            return Err(ApiError::invalid(format!(
                "{}: the destination is on a read-only mount",
                path.display()
            )));
        }
        let body = responder
            .body()
            .ok_or_else(|| ApiError::invalid("cp needs an archive after the request"))?;
        crate::transfer::upload(body, move |reader| {
            copy::copy_in(&root, &inside, reader, into_dir_only).map_err(image_error)
        })
        .await?;
        Ok(Response::Done)
    }
    .await;
    let _ = responder.reply(result).await;
}
