//! `push`: uploads a stored image's layers and config (skipping blobs the registry has, mounting
//! them from another repository of the same registry when the image is known there), then its
//! manifest, byte for byte, under the tag.

use std::collections::HashMap;

use oci_spec::image::ImageManifest;
use ureq::http::{self, header, Method, StatusCode};

use super::auth::Credentials;
use super::endpoint::RegistryConfig;
use super::error::{RegistryError, Result};
use super::manifest;
use super::session::Session;
use super::{workers, Progress, ProgressSink};
use crate::image::{Digest, ImageError, Reference, Store};

/// Blobs uploaded at once.
const PARALLEL_BLOBS: usize = 4;

/// What a push did.
#[derive(Clone, Debug)]
pub struct PushOutcome {
    /// The tag pushed.
    pub tag: String,
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest's size in bytes.
    pub size: u64,
}

/// Pushes the stored image `reference` names to its registry.
pub fn push(
    store: &Store,
    config: &RegistryConfig,
    reference: &Reference,
    credentials: Option<Credentials>,
    progress: ProgressSink,
) -> Result<PushOutcome> {
    let Some(tag) = reference.tag().filter(|_| reference.digest().is_none()) else {
        return Err(ImageError::Invalid(format!(
            "cannot push a digest reference: {reference} (push a tag)"
        ))
        .into());
    };
    let image = store.resolve(&reference.canonical()).map_err(|e| match e {
        ImageError::NotFound(_) => ImageError::NotFound(format!(
            "{reference} (an image does not exist locally with this tag)"
        )),
        other => other,
    })?;
    let path = reference.path();
    let sources = mount_sources(store, reference);
    let mut scopes = vec![format!("repository:{path}:pull,push")];
    let mut lenders: Vec<&String> = sources.values().collect();
    lenders.sort();
    lenders.dedup();
    scopes.extend(
        lenders
            .into_iter()
            .map(|src| format!("repository:{src}:pull")),
    );
    let session = Session::new(
        config,
        reference.domain(),
        credentials,
        "push access",
        reference.familiar_repository(),
        scopes,
    )?;
    progress(Progress::line(
        None,
        format!("The push refers to repository [{}]", reference.repository()),
    ));
    session.ping()?;
    let bytes = store.read_blob(&image.manifest_digest)?;
    let parsed = ImageManifest::from_reader(&bytes[..])
        .map_err(|e| RegistryError::protocol(format!("manifest {}", image.manifest_digest), e))?;
    let mut blobs = Vec::new();
    for d in parsed.layers().iter().rev() {
        blobs.push(Digest::try_from(d.digest())?);
    }
    blobs.push(Digest::try_from(parsed.config().digest())?);
    for b in &blobs {
        progress(Progress::line(Some(b.short()), "Preparing"));
    }
    push_blobs(store, &session, path, &blobs, &sources, progress)?;

    let media_type = manifest::media_type_of(&bytes);
    let url = session.url(&format!("/v2/{path}/manifests/{tag}"));
    let resp = session.send(|auth| {
        let mut b = http::Request::builder()
            .method(Method::PUT)
            .uri(&url)
            .header(header::CONTENT_TYPE, &media_type);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(bytes.clone())
            .map_err(|e| RegistryError::protocol(&url, e))
    })?;
    if !resp.status().is_success() {
        return Err(session.status_error(format!("manifest for {reference}"), resp));
    }
    progress(Progress::line(
        None,
        format!(
            "{tag}: digest: {} size: {}",
            image.manifest_digest,
            bytes.len()
        ),
    ));
    Ok(PushOutcome {
        tag: tag.to_string(),
        digest: image.manifest_digest,
        size: bytes.len() as u64,
    })
}

/// Other repositories of the same registry that hold a blob of this image, by blob: stored images
/// with a reference there came from (or went to) it, so the registry can mount the blob instead of
/// receiving it again.
fn mount_sources(store: &Store, reference: &Reference) -> HashMap<Digest, String> {
    let mut sources = HashMap::new();
    let Ok(images) = store.list() else {
        return sources;
    };
    for summary in images {
        let Some(lender) = summary
            .references
            .iter()
            .find(|r| r.domain() == reference.domain() && r.path() != reference.path())
        else {
            continue;
        };
        let Ok(image) = store.resolve(&summary.id.to_string()) else {
            continue;
        };
        for blob in image.layers.iter().map(|l| &l.digest).chain([&image.id]) {
            sources
                .entry(blob.clone())
                .or_insert_with(|| lender.path().to_string());
        }
    }
    sources
}

fn push_blobs(
    store: &Store,
    session: &Session,
    path: &str,
    blobs: &[Digest],
    sources: &HashMap<Digest, String>,
    progress: ProgressSink,
) -> Result<()> {
    workers::for_each(blobs, PARALLEL_BLOBS, |blob| {
        let lender = sources.get(blob).map(String::as_str);
        let status = push_blob(store, session, path, blob, lender)?;
        progress(Progress::line(Some(blob.short()), status));
        Ok(())
    })
}

/// Makes one blob present in the repository; says how (docker's wording).
fn push_blob(
    store: &Store,
    session: &Session,
    path: &str,
    blob: &Digest,
    mount_from: Option<&str>,
) -> Result<String> {
    let what = || format!("blob {blob}");
    let head = session.get_like(Method::HEAD, &format!("/v2/{path}/blobs/{blob}"), None)?;
    match head.status() {
        s if s.is_success() => return Ok("Layer already exists".into()),
        StatusCode::NOT_FOUND => {}
        _ => return Err(session.status_error(what(), head)),
    }
    let start = match mount_from {
        Some(src) => format!("/v2/{path}/blobs/uploads/?mount={blob}&from={src}"),
        None => format!("/v2/{path}/blobs/uploads/"),
    };
    let start_url = session.url(&start);
    let resp = session.send(|auth| {
        let mut b = http::Request::builder()
            .method(Method::POST)
            .uri(&start_url)
            .header(header::CONTENT_LENGTH, "0");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(())
            .map_err(|e| RegistryError::protocol(&start_url, e))
    })?;
    if let (StatusCode::CREATED, Some(src)) = (resp.status(), mount_from) {
        return Ok(format!("Mounted from {src}"));
    }
    if resp.status() != StatusCode::ACCEPTED {
        return Err(session.status_error(what(), resp));
    }
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::protocol(what(), "the upload answer has no Location"))?;
    let sep = if location.contains('?') { '&' } else { '?' };
    let put_url = session.url(&format!("{location}{sep}digest={blob}"));
    let resp = session.send(|auth| {
        let file = store.open_blob(blob)?;
        let mut b = http::Request::builder()
            .method(Method::PUT)
            .uri(&put_url)
            .header(header::CONTENT_TYPE, "application/octet-stream");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(file)
            .map_err(|e| RegistryError::protocol(&put_url, e))
    })?;
    if !resp.status().is_success() {
        return Err(session.status_error(what(), resp));
    }
    Ok("Pushed".into())
}
