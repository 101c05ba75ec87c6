//! `pull`: manifest (through an index to this host's platform), config, then the layers in
//! parallel, each streamed from the socket into the store's single verifying and unpacking pass;
//! the image is registered only after every layer is in. Concurrent pulls fetch a shared blob once
//! through the caller's [`Coalesce`].

use std::io::{self, Read};

use oci_spec::image::{ImageConfiguration, ImageManifest};
use ureq::http::{header, Method};

use super::auth::Credentials;
use super::endpoint::RegistryConfig;
use super::error::{RegistryError, Result};
use super::manifest::{self, Fetched};
use super::session::{read_limited, Session};
use super::{workers, Progress, ProgressSink};
use crate::image::{Digest, ImageError, Reference, Store};

/// Layers transferred at once.
const PARALLEL_LAYERS: usize = 4;
/// Downloading progress is reported every this many bytes.
const PROGRESS_STEP: u64 = 512 << 10;
/// How often a layer is claimed again when the pull that fetched it for us failed.
const CLAIM_ATTEMPTS: usize = 3;

/// How a blob claim ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetch {
    /// This caller ran the fetch.
    Done,
    /// Another pull was fetching the blob; it has finished (successfully or not: look at the store).
    Waited,
}

/// Coalesces fetches of one blob by concurrent pulls: the agent keys them by digest so two pulls of
/// images sharing layers download each shared blob once.
pub trait Coalesce: Sync {
    /// Runs `fetch` unless another caller is fetching `blob` right now, in which case it waits for
    /// that one to finish instead.
    fn once(&self, blob: &Digest, fetch: &mut dyn FnMut() -> Result<()>) -> Result<Fetch>;
}

/// What a pull did.
#[derive(Clone, Debug)]
pub struct PullOutcome {
    /// The manifest digest (what `name@sha256:` names).
    pub digest: Digest,
    /// The image id (config digest).
    pub id: Digest,
    /// False when the reference already pointed at this manifest.
    pub downloaded: bool,
}

/// One layer to bring in.
struct LayerJob {
    blob: Digest,
    size: u64,
    diff_id: Digest,
    chain: Digest,
    parent: Option<Digest>,
}

/// Pulls `reference` into `store` and points the reference at it.
pub fn pull(
    store: &Store,
    config: &RegistryConfig,
    reference: &Reference,
    credentials: Option<Credentials>,
    coalesce: &dyn Coalesce,
    progress: ProgressSink,
) -> Result<PullOutcome> {
    let path = reference.path();
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => crate::image::DEFAULT_TAG.to_string(),
    };
    let session = Session::new(
        config,
        reference.domain(),
        credentials,
        "pull access",
        reference.familiar_repository(),
        vec![format!("repository:{path}:pull")],
    )?;
    progress(Progress::line(
        Some(&wanted),
        format!("Pulling from {path}"),
    ));
    // No `GET /v2/` first: the manifest request learns the authentication (one round trip less),
    // and the layers, fetched in parallel, start after it.
    // Content added below is unreferenced until the image is registered: keep removals out.
    let _guard = store.write_guard()?;
    let (bytes, content_type, digest) =
        fetch_manifest(&session, reference, &wanted, reference.digest())?;
    // What the tag names (an index, for a multi-platform image): docker's `Digest:` line.
    let repo_digest = digest.clone();
    let (bytes, digest, manifest) = match manifest::parse(
        &bytes,
        content_type.as_deref(),
        &format!("manifest {digest}"),
    )? {
        Fetched::Manifest(m) => (bytes, digest, m),
        Fetched::Index(index) => {
            let (os, arch) = manifest::host_platform();
            let chosen =
                manifest::select(&index, &os, &arch).ok_or_else(|| RegistryError::NoPlatform {
                    reference: reference.to_string(),
                    platform: format!("{os}/{arch}"),
                })?;
            let (bytes, ct, digest) =
                fetch_manifest(&session, reference, &chosen.to_string(), Some(&chosen))?;
            match manifest::parse(&bytes, ct.as_deref(), &format!("manifest {digest}"))? {
                Fetched::Manifest(m) => (bytes, digest, m),
                Fetched::Index(_) => {
                    return Err(RegistryError::protocol(
                        format!("manifest {digest}"),
                        "an index names another index for this platform",
                    ))
                }
            }
        }
    };
    if let Ok(img) = store.resolve(&reference.canonical()) {
        if img.manifest_digest == digest {
            progress(Progress::line(None, format!("Digest: {repo_digest}")));
            progress(Progress::line(
                None,
                format!("Status: Image is up to date for {reference}"),
            ));
            return Ok(PullOutcome {
                digest,
                id: img.id,
                downloaded: false,
            });
        }
    }
    let id = Digest::try_from(manifest.config().digest())?;
    let mut missing = Vec::new();
    let (jobs, unstored_config) = layer_jobs(store, &session, path, &manifest, &id)?;
    for job in jobs {
        let present = store.has_layer(&job.chain) && store.has_blob(&job.blob);
        let status = if present {
            "Already exists"
        } else {
            "Pulling fs layer"
        };
        progress(Progress::line(Some(job.blob.short()), status));
        if !present {
            missing.push(job);
        }
    }
    std::thread::scope(|s| {
        // The config's write (and its fsyncs) overlaps the layer transfers.
        let config = unstored_config.map(|bytes| s.spawn(move || store.write_blob_bytes(&bytes)));
        let layers = pull_layers(store, &session, path, &missing, coalesce, progress);
        if let Some(handle) = config {
            handle.join().map_err(|_| {
                RegistryError::protocol(format!("image config {id}"), "storing it failed")
            })??;
        }
        layers
    })?;
    store.add_image_manifest(&bytes, std::slice::from_ref(reference))?;
    progress(Progress::line(None, format!("Digest: {repo_digest}")));
    progress(Progress::line(
        None,
        format!("Status: Downloaded newer image for {reference}"),
    ));
    Ok(PullOutcome {
        digest,
        id,
        downloaded: true,
    })
}

/// GETs a manifest by tag or digest; verifies it against `expected` when pulling by digest.
fn fetch_manifest(
    session: &Session,
    reference: &Reference,
    tag_or_digest: &str,
    expected: Option<&Digest>,
) -> Result<(Vec<u8>, Option<String>, Digest)> {
    let path = reference.path();
    let mut resp = session.get_like(
        Method::GET,
        &format!("/v2/{path}/manifests/{tag_or_digest}"),
        Some(manifest::ACCEPT),
    )?;
    if resp.status().as_u16() == 404 {
        return Err(RegistryError::ManifestUnknown {
            reference: reference.to_string(),
        });
    }
    if !resp.status().is_success() {
        return Err(session.status_error(format!("manifest for {reference}"), resp));
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let what = format!("manifest for {reference}");
    let bytes = read_limited(&mut resp, &what, manifest::MAX_MANIFEST)?;
    let digest = Digest::of(&bytes);
    if let Some(e) = expected {
        if *e != digest {
            return Err(RegistryError::protocol(
                what,
                format!("the registry sent content with digest {digest}, not {e}"),
            ));
        }
    }
    Ok((bytes, content_type, digest))
}

/// Fetches (or reads) the config and lines each layer up with its diff id and chain id. A fetched
/// config comes back too, verified but not stored yet.
fn layer_jobs(
    store: &Store,
    session: &Session,
    path: &str,
    manifest: &ImageManifest,
    config_digest: &Digest,
) -> Result<(Vec<LayerJob>, Option<Vec<u8>>)> {
    let what = format!("image config {config_digest}");
    let (bytes, unstored) = if store.has_blob(config_digest) {
        (store.read_blob(config_digest)?, false)
    } else {
        let mut resp = session.get_like(
            Method::GET,
            &format!("/v2/{path}/blobs/{config_digest}"),
            None,
        )?;
        if !resp.status().is_success() {
            return Err(session.status_error(what, resp));
        }
        let bytes = read_limited(&mut resp, &what, manifest::MAX_CONFIG)?;
        let actual = Digest::of(&bytes);
        if actual != *config_digest {
            return Err(RegistryError::protocol(
                what,
                format!("the registry sent content with digest {actual}"),
            ));
        }
        (bytes, true)
    };
    let config = ImageConfiguration::from_reader(&bytes[..])
        .map_err(|e| RegistryError::protocol(&what, e))?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse::<Digest>())
        .collect::<std::result::Result<Vec<_>, ImageError>>()?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(RegistryError::protocol(
            what,
            format!(
                "it lists {} layers but the manifest {}",
                diff_ids.len(),
                manifest.layers().len()
            ),
        ));
    }
    let chains = Digest::chain_ids(&diff_ids);
    let mut jobs = Vec::with_capacity(diff_ids.len());
    for (i, (desc, diff_id)) in manifest.layers().iter().zip(diff_ids).enumerate() {
        jobs.push(LayerJob {
            blob: Digest::try_from(desc.digest())?,
            size: desc.size(),
            diff_id,
            chain: chains[i].clone(),
            parent: i.checked_sub(1).map(|p| chains[p].clone()),
        });
    }
    Ok((jobs, unstored.then_some(bytes)))
}

/// Brings in every missing layer, [`PARALLEL_LAYERS`] at a time; the first failure stops the rest.
fn pull_layers(
    store: &Store,
    session: &Session,
    path: &str,
    jobs: &[LayerJob],
    coalesce: &dyn Coalesce,
    progress: ProgressSink,
) -> Result<()> {
    workers::for_each(jobs, PARALLEL_LAYERS, |job| {
        pull_layer(store, session, path, job, coalesce, progress)
    })
}

fn pull_layer(
    store: &Store,
    session: &Session,
    path: &str,
    job: &LayerJob,
    coalesce: &dyn Coalesce,
    progress: ProgressSink,
) -> Result<()> {
    for _ in 0..CLAIM_ATTEMPTS {
        if store.has_layer(&job.chain) && store.has_blob(&job.blob) {
            progress(Progress::line(Some(job.blob.short()), "Pull complete"));
            return Ok(());
        }
        let outcome = coalesce.once(&job.blob, &mut || {
            fetch_layer(store, session, path, job, progress)
        })?;
        if outcome == Fetch::Done {
            progress(Progress::line(Some(job.blob.short()), "Pull complete"));
            return Ok(());
        }
    }
    Err(RegistryError::protocol(
        format!("layer {}", job.blob),
        "the concurrent pulls that fetched it kept failing",
    ))
}

/// Streams one layer into the store (or unpacks the stored blob when only the layer is missing) and
/// checks it is the layer the config promised.
fn fetch_layer(
    store: &Store,
    session: &Session,
    path: &str,
    job: &LayerJob,
    progress: ProgressSink,
) -> Result<()> {
    let imported = if store.has_blob(&job.blob) {
        store.import_layer_onto(
            store.open_blob(&job.blob)?,
            job.parent.as_ref(),
            Some(&job.blob),
        )?
    } else {
        let resp =
            session.get_like(Method::GET, &format!("/v2/{path}/blobs/{}", job.blob), None)?;
        if !resp.status().is_success() {
            return Err(session.status_error(format!("layer {}", job.blob), resp));
        }
        let body = resp.into_body().into_reader().take(job.size);
        let reader = Counting {
            inner: body,
            id: job.blob.short().to_string(),
            total: job.size,
            done: 0,
            reported: 0,
            progress,
        };
        store.import_layer_onto(reader, job.parent.as_ref(), Some(&job.blob))?
    };
    if imported.diff_id != job.diff_id {
        return Err(RegistryError::protocol(
            format!("layer {}", job.blob),
            format!(
                "its content has diff id {}, the image config says {}",
                imported.diff_id, job.diff_id
            ),
        ));
    }
    Ok(())
}

/// Reports download progress as the store reads the layer.
struct Counting<'a, R> {
    inner: R,
    id: String,
    total: u64,
    done: u64,
    reported: u64,
    progress: ProgressSink<'a>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.reported >= PROGRESS_STEP || (n == 0 && self.done > self.reported) {
            self.reported = self.done;
            (self.progress)(Progress {
                id: Some(self.id.clone()),
                status: "Downloading".into(),
                current: Some(self.done),
                total: Some(self.total),
            });
        }
        Ok(n)
    }
}
