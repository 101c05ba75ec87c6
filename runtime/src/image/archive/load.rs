//! `berth load`: an image archive on a stream becomes images in the store.
//!
//! The outer archive is spooled once into a private directory under `blobs/tmp/` (names checked:
//! no absolute paths, no `..`; symlinks are kept as name → target and only followed inside the
//! spool; every `blobs/sha256/<hex>` file is verified while it is written). Then the index
//! (`index.json`, preferred) or `manifest.json` is read, every referenced file and every count is
//! checked before anything enters the store, and each layer goes through [`Store::import_layer`]
//! (digest checks and the safe unpacker). If anything fails after content entered the store, the
//! blobs and layers this load added are removed again: a failed load leaves the store as it was.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};

use super::{DockerManifest, CONTAINERD_NAME, OCI_REF_NAME};
use crate::image::digest::Digest;
use crate::image::error::{ImageError, Result};
use crate::image::fsutil;
use crate::image::reference::Reference;
use crate::image::store::{BlobInfo, Store};

/// JSON documents (index, manifests, configs) larger than this are refused.
const MAX_JSON: u64 = 16 << 20;
/// Symlink hops followed inside the spool.
const MAX_LINKS: usize = 16;

/// One image a load added: its id and the names it was given (none for an untagged image).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    pub id: Digest,
    pub references: Vec<Reference>,
}

/// The spooled outer archive, removed when dropped.
struct Spool {
    dir: PathBuf,
    /// Symlinks of the archive: name → target, both relative to the spool.
    links: HashMap<PathBuf, PathBuf>,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What to import for one image, checked before anything is stored.
struct Plan {
    config: Vec<u8>,
    /// Layer files in the spool, bottom first, with the blob digest the manifest promises.
    layers: Vec<(PathBuf, Option<Digest>)>,
    /// The archive's own manifest (OCI layout), kept as is.
    manifest: Option<ImageManifest>,
    references: Vec<Reference>,
}

fn bad(problem: impl Into<String>) -> ImageError {
    ImageError::Invalid(format!("invalid image archive: {}", problem.into()))
}

/// A name of the outer archive as a relative path of normal components; `./` prefixes are
/// dropped, absolute names and `..` refused.
fn archive_path(raw: &[u8]) -> Result<PathBuf> {
    let shown = String::from_utf8_lossy(raw);
    let p = Path::new(os_str(raw)?);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err(bad(format!("entry {shown:?} leaves the archive"))),
        }
    }
    Ok(out)
}

fn os_str(raw: &[u8]) -> Result<&OsStr> {
    if raw.contains(&0) {
        return Err(bad("an entry name contains a NUL byte"));
    }
    Ok(OsStr::from_bytes(raw))
}

impl Spool {
    fn read(dir: PathBuf, input: impl Read) -> Result<Spool> {
        fs::create_dir(&dir).map_err(|e| ImageError::io(format!("create {}", dir.display()), e))?;
        let mut spool = Spool {
            dir,
            links: HashMap::new(),
        };
        let mut archive = tar::Archive::new(input);
        let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
        let mut count = 0usize;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad(format!("unreadable archive: {e}")))?;
            count += 1;
            let rel = archive_path(&entry.path_bytes())?;
            if rel.as_os_str().is_empty() {
                continue;
            }
            match entry.header().entry_type() {
                tar::EntryType::Directory => {}
                kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| bad(format!("link {} has no target", rel.display())))?;
                    let target = Path::new(os_str(&target)?);
                    // A symlink's target is relative to its directory, a hard link's to the root.
                    let resolved = if kind == tar::EntryType::Symlink {
                        rel.parent().unwrap_or(Path::new("")).join(target)
                    } else {
                        target.to_path_buf()
                    };
                    spool.links.insert(rel, resolved);
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    spool.write_file(&rel, &mut entry)?;
                }
                other => {
                    return Err(bad(format!(
                        "entry {} has an unexpected type {other:?}",
                        rel.display()
                    )))
                }
            }
        }
        if count == 0 {
            return Err(bad("the archive is empty"));
        }
        Ok(spool)
    }

    fn write_file(&self, rel: &Path, entry: &mut impl Read) -> Result<()> {
        let dest = self.dir.join(rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| ImageError::io(format!("spool {}", rel.display()), e))?;
        }
        let mut file = File::create(&dest)
            .map_err(|e| ImageError::io(format!("spool {}", rel.display()), e))?;
        // Content-addressed names are verified while they stream by.
        let promised = blob_digest_of(rel);
        let mut hasher = promised.as_ref().map(|_| Sha256::new());
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(bad(format!("reading {}: {e}", rel.display()))),
            };
            if let Some(h) = &mut hasher {
                h.update(&buf[..n]);
            }
            file.write_all(&buf[..n])
                .map_err(|e| ImageError::io(format!("spool {}", rel.display()), e))?;
        }
        if let (Some(want), Some(h)) = (promised, hasher) {
            let got = Digest::from_hasher(h);
            if got != want {
                return Err(ImageError::Blob {
                    digest: want.to_string(),
                    problem: format!("the archive's content has digest {got}"),
                });
            }
        }
        Ok(())
    }

    /// The spooled file an archive name refers to, following the archive's symlinks inside it.
    fn resolve(&self, name: &str) -> Result<PathBuf> {
        let mut rel = archive_path(name.as_bytes())?;
        for _ in 0..MAX_LINKS {
            match self.links.get(&rel) {
                Some(target) => rel = normalize(target)?,
                None => {
                    let p = self.dir.join(&rel);
                    return if p.is_file() {
                        Ok(p)
                    } else {
                        Err(bad(format!("{name} is missing from the archive")))
                    };
                }
            }
        }
        Err(bad(format!("{name}: too many levels of symbolic links")))
    }

    fn exists(&self, name: &str) -> bool {
        self.resolve(name).is_ok()
    }

    fn read_json(&self, name: &str) -> Result<Vec<u8>> {
        let p = self.resolve(name)?;
        let len = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        if len > MAX_JSON {
            return Err(bad(format!("{name} is too large ({len} bytes)")));
        }
        fs::read(&p).map_err(|e| ImageError::io(format!("read {name}"), e))
    }

    /// A blob of the OCI layout, checked against its digest.
    fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let bytes = self.read_json(&blob_name(digest))?;
        let got = Digest::of(&bytes);
        if &got != digest {
            return Err(ImageError::Blob {
                digest: digest.to_string(),
                problem: format!("the archive's content has digest {got}"),
            });
        }
        Ok(bytes)
    }
}

/// A symlink target resolved against its directory, kept inside the spool.
fn normalize(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(bad(format!(
                        "symlink to {} leaves the archive",
                        p.display()
                    )));
                }
            }
            _ => {
                return Err(bad(format!(
                    "symlink to {} leaves the archive",
                    p.display()
                )))
            }
        }
    }
    Ok(out)
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// `blobs/sha256/<hex>` → the digest it promises.
fn blob_digest_of(rel: &Path) -> Option<Digest> {
    let s = rel.to_str()?;
    let hex = s.strip_prefix("blobs/sha256/")?;
    Digest::from_hex(hex).ok()
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| bad(format!("{what}: {e}")))
}

fn parse_config(what: &str, bytes: &[u8]) -> Result<ImageConfiguration> {
    ImageConfiguration::from_reader(bytes).map_err(|e| bad(format!("{what}: {e}")))
}

fn plan_oci(spool: &Spool) -> Result<Vec<Plan>> {
    let index: ImageIndex = parse_json("index.json", &spool.read_json("index.json")?)?;
    let mut plans = Vec::new();
    for desc in index.manifests() {
        let names = names_of(desc.annotations().as_ref());
        let digest = Digest::try_from(desc.digest())?;
        let mut bytes = spool.read_blob(&digest)?;
        // A nested index (multi-platform): take this host's platform, else the first.
        if matches!(desc.media_type(), MediaType::ImageIndex)
            || parse_json::<serde_json::Value>("manifest", &bytes)?
                .get("manifests")
                .is_some()
        {
            let nested: ImageIndex = parse_json(&format!("index {digest}"), &bytes)?;
            let pick = nested
                .manifests()
                .iter()
                .find(|m| {
                    m.platform().as_ref().is_some_and(|p| {
                        p.architecture() == &oci_spec::image::Arch::default()
                            && p.os() == &oci_spec::image::Os::default()
                    })
                })
                .or_else(|| nested.manifests().first())
                .ok_or_else(|| bad(format!("index {digest} lists no manifest")))?;
            bytes = spool.read_blob(&Digest::try_from(pick.digest())?)?;
        }
        let manifest = ImageManifest::from_reader(&bytes[..])
            .map_err(|e| bad(format!("manifest {digest}: {e}")))?;
        let config_digest = Digest::try_from(manifest.config().digest())?;
        let config = spool.read_blob(&config_digest)?;
        let mut layers = Vec::new();
        for l in manifest.layers() {
            let d = Digest::try_from(l.digest())?;
            layers.push((spool.resolve(&blob_name(&d))?, Some(d)));
        }
        plans.push(Plan {
            config,
            layers,
            manifest: Some(manifest),
            references: names,
        });
    }
    Ok(plans)
}

/// The image name an `index.json` entry carries: docker's full name, or an OCI ref name that is
/// a whole reference (a bare tag names nothing).
fn names_of(annotations: Option<&HashMap<String, String>>) -> Vec<Reference> {
    let Some(a) = annotations else {
        return Vec::new();
    };
    let name = a.get(CONTAINERD_NAME).or_else(|| {
        a.get(OCI_REF_NAME)
            .filter(|n| n.contains(':') || n.contains('/'))
    });
    name.and_then(|n| Reference::parse(n).ok())
        .filter(|r| r.tag().is_some())
        .into_iter()
        .collect()
}

fn plan_docker(spool: &Spool) -> Result<Vec<Plan>> {
    let manifests: Vec<DockerManifest> =
        parse_json("manifest.json", &spool.read_json("manifest.json")?)?;
    let mut plans = Vec::new();
    for m in manifests {
        let config = spool.read_json(&m.config)?;
        let mut layers = Vec::new();
        for l in &m.layers {
            let path = spool.resolve(l)?;
            layers.push((path, blob_digest_of(Path::new(l))));
        }
        let mut references = Vec::new();
        for t in m.repo_tags.iter().flatten() {
            references.push(Reference::parse(t)?);
        }
        plans.push(Plan {
            config,
            layers,
            manifest: None,
            references,
        });
    }
    Ok(plans)
}

/// What a load added so far, removed again if it fails.
#[derive(Default)]
struct Added {
    blobs: Vec<Digest>,
    layers: Vec<Digest>,
}

impl Store {
    /// Loads every image of a docker-archive or OCI layout archive read from `input`. Nothing is
    /// left in the store when it fails.
    pub fn load_archive(&self, input: impl Read) -> Result<Vec<LoadedImage>> {
        let spool_dir = self
            .root()
            .join("blobs")
            .join("tmp")
            .join(format!("load-{}", fsutil::random_hex(8)));
        let spool = Spool::read(spool_dir, input)?;
        let plans = if spool.exists("index.json") {
            plan_oci(&spool)?
        } else if spool.exists("manifest.json") {
            plan_docker(&spool)?
        } else {
            return Err(bad(
                "neither index.json nor manifest.json found (not a docker or OCI archive)",
            ));
        };
        if plans.is_empty() {
            return Err(bad("the archive holds no image"));
        }
        let mut added = Added::default();
        let result = {
            let _guard = self.write_guard()?;
            plans
                .into_iter()
                .map(|p| self.load_one(p, &mut added))
                .collect::<Result<Vec<_>>>()
        };
        if result.is_err() {
            if let Err(e) = self.discard_unused(&added.blobs, &added.layers) {
                tracing::warn!(error = %e, "could not remove what a failed load added");
            }
        }
        result
    }

    fn load_one(&self, plan: Plan, added: &mut Added) -> Result<LoadedImage> {
        let config = parse_config("image config", &plan.config)?;
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse::<Digest>())
            .collect::<Result<Vec<_>>>()?;
        if diff_ids.len() != plan.layers.len() {
            return Err(bad(format!(
                "the image config lists {} layers but the manifest {}",
                diff_ids.len(),
                plan.layers.len()
            )));
        }
        let mut parent: Option<Digest> = None;
        let mut blobs = Vec::new();
        for ((path, expected), diff_id) in plan.layers.iter().zip(&diff_ids) {
            let chain = Digest::chain(parent.as_ref(), diff_id);
            let known_blob = expected.clone().unwrap_or_else(|| diff_id.clone());
            if self.has_layer(&chain) && self.has_blob(&known_blob) {
                let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let media = plan
                    .manifest
                    .as_ref()
                    .and_then(|m| {
                        m.layers()
                            .iter()
                            .find(|l| l.digest().digest() == known_blob.hex())
                    })
                    .map(|l| l.media_type().clone())
                    .unwrap_or(MediaType::ImageLayer);
                blobs.push((
                    BlobInfo {
                        digest: known_blob,
                        size,
                    },
                    media,
                ));
                parent = Some(chain);
                continue;
            }
            let had_blob = expected.as_ref().is_some_and(|d| self.has_blob(d));
            let file = File::open(path).map_err(|e| ImageError::io("open a spooled layer", e))?;
            let layer = self.import_layer(file, parent.as_ref(), expected.as_ref())?;
            if !had_blob && !added.blobs.contains(&layer.blob.digest) {
                added.blobs.push(layer.blob.digest.clone());
            }
            if !layer.existed {
                added.layers.push(layer.chain_id.clone());
            }
            if &layer.diff_id != diff_id {
                return Err(bad(format!(
                    "layer {} has diff id {} but the config says {diff_id}",
                    layer.blob.digest, layer.diff_id
                )));
            }
            blobs.push((layer.blob, layer.media_type));
            parent = Some(layer.chain_id);
        }
        let config_digest = Digest::of(&plan.config);
        if !self.has_blob(&config_digest) {
            added.blobs.push(config_digest.clone());
        }
        let config_blob = self.write_blob_bytes(&plan.config)?;
        let manifest = match plan.manifest {
            Some(m) => m,
            None => self.write_manifest(&config_blob, &blobs, None)?,
        };
        let image = self.add_image(&manifest, &plan.references)?;
        Ok(LoadedImage {
            id: image.id,
            references: plan.references,
        })
    }
}
