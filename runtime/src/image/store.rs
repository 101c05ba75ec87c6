//! The content store: verified blobs, unpacked layers and the reference index under one root
//! directory, with crash-safe writes and reference-counted garbage collection.
//!
//! ```text
//! <root>/blobs/sha256/<hex>         layer blobs (as received), image configs, manifests
//! <root>/blobs/tmp/                 blobs being written (removed by Store::open after a crash)
//! <root>/layers/<chain-hex>/diff/   an unpacked layer: an overlay lowerdir
//! <root>/layers/<chain-hex>/meta.json   {chain_id, diff_id, parent, size}
//! <root>/layers/tmp-*               layers being unpacked or deleted (removed by Store::open)
//! <root>/images/references.json     {images: {manifest digest: {config}}, references: {name: manifest}}
//! <root>/images/references.lock     flock'ed by writers of references.json
//! <root>/images/gc.lock             shared while content is added, exclusive while it is deleted
//! ```
//!
//! Every digest is computed while the data streams through once. A blob becomes visible only by a
//! rename after it was verified and fsynced; a layer only by the rename of its fully unpacked
//! directory, so a reader never sees partial content, and two writers of the same layer cannot
//! corrupt it (the loser of the rename discards its copy).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageManifest, ImageManifestBuilder, MediaType,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::compression::{Compression, Decoder, MAGIC_LEN};
use super::digest::{Digest, HashingReader, TeeReader};
use super::error::{ImageError, Result};
use super::fsutil::{self, FileLock};
use super::pipeline::{chunk_channel, WritebackFile};
use super::reference::Reference;
use super::unpack::{unpack_layer, UnpackStats};

const TMP_PREFIX: &str = "tmp-";
const INDEX_FILE: &str = "references.json";
const INDEX_LOCK: &str = "references.lock";
const GC_LOCK: &str = "gc.lock";
const STREAM_BUFFER: usize = 256 << 10;
const BLOB_WRITE_BUFFER: usize = 1 << 20;

/// The image store rooted at one directory (default `/var/lib/berth`). Cheap to clone-by-open; all
/// state is on disk, and every method is safe to call from several threads and processes at once.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    blobs: PathBuf,
    blob_tmp: PathBuf,
    layers: PathBuf,
    images: PathBuf,
}

/// A stored blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// The outcome of importing one layer blob: what a manifest and a config need to reference it.
#[derive(Clone, Debug)]
pub struct LayerImport {
    /// The blob as received (compressed or not) and its OCI media type.
    pub blob: BlobInfo,
    pub media_type: MediaType,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The layer's identity on top of its parent (its directory name under `layers/`).
    pub chain_id: Digest,
    /// Bytes of file content in the layer.
    pub size: u64,
    pub stats: UnpackStats,
    /// True when the layer was already present (this import's copy was discarded).
    pub existed: bool,
}

/// An unpacked layer of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    pub chain_id: Digest,
    pub diff_id: Digest,
    /// The blob the layer came from (from the manifest).
    pub digest: Digest,
    /// The `diff/` directory: an overlay lowerdir.
    pub path: PathBuf,
    /// Bytes of file content.
    pub size: u64,
}

/// Everything about one image that running, inspecting or exporting it needs.
#[derive(Clone, Debug)]
pub struct Image {
    /// The image id: the digest of its config JSON.
    pub id: Digest,
    /// The digest of its manifest (what `name@sha256:` references name).
    pub manifest_digest: Digest,
    /// Tags and digest references pointing at it; empty for a dangling image.
    pub references: Vec<Reference>,
    pub config: ImageConfiguration,
    /// Bottom layer first, as in the manifest.
    pub layers: Vec<LayerInfo>,
    pub created: Option<SystemTime>,
    /// Sum of the layers' sizes.
    pub size: u64,
}

/// One line of `berth images`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    pub id: Digest,
    pub manifest_digest: Digest,
    pub references: Vec<Reference>,
    pub created: Option<SystemTime>,
    pub size: u64,
    pub layers: usize,
}

impl From<&Image> for ImageSummary {
    fn from(i: &Image) -> Self {
        ImageSummary {
            id: i.id.clone(),
            manifest_digest: i.manifest_digest.clone(),
            references: i.references.clone(),
            created: i.created,
            size: i.size,
            layers: i.layers.len(),
        }
    }
}

/// What a removal did, for docker's `Untagged:` / `Deleted:` lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoveReport {
    pub untagged: Vec<Reference>,
    /// Image ids deleted (empty when other references keep the image).
    pub deleted: Vec<Digest>,
    /// Layers (chain ids) deleted because no remaining image uses them.
    pub deleted_layers: Vec<Digest>,
}

/// meta.json of a layer.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LayerMeta {
    chain_id: Digest,
    diff_id: Digest,
    parent: Option<Digest>,
    size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ImageRecord {
    config: Digest,
}

/// images/references.json: the set of images (by manifest) and the names pointing at them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Index {
    #[serde(default)]
    images: BTreeMap<Digest, ImageRecord>,
    #[serde(default)]
    references: BTreeMap<String, Digest>,
}

impl Index {
    fn references_to(&self, manifest: &Digest) -> Vec<Reference> {
        self.references
            .iter()
            .filter(|(_, m)| *m == manifest)
            .filter_map(|(r, _)| Reference::parse(r).ok())
            .collect()
    }
}

/// While alive, no image removal deletes content (see [`Store::write_guard`]).
pub struct WriteGuard {
    _lock: FileLock,
}

/// A blob being written to blobs/tmp/, deleted unless committed.
struct TempBlob {
    path: PathBuf,
    committed: bool,
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A directory under layers/ removed unless disarmed.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Hashes the decompressed stream unless it is the blob itself (plain tar: diff id = blob digest).
struct DiffHasher<R> {
    inner: R,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for DiffHasher<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

impl Store {
    /// Opens (creating if needed) the store at `root`, and removes what a crash may have left: blobs
    /// being written and layers being unpacked or deleted. The cleanup is skipped while another user
    /// of the store is adding content.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        let store = Store {
            blobs: root.join("blobs").join("sha256"),
            blob_tmp: root.join("blobs").join("tmp"),
            layers: root.join("layers"),
            images: root.join("images"),
            root,
        };
        for dir in [&store.blobs, &store.blob_tmp, &store.layers, &store.images] {
            fs::create_dir_all(dir)
                .map_err(|e| ImageError::io(format!("create {}", dir.display()), e))?;
        }
        // Layers hold images' setuid binaries and device nodes: no host user may reach them.
        for dir in [&store.root.join("blobs"), &store.layers] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| ImageError::io(format!("chmod {}", dir.display()), e))?;
        }
        if let Some(_gc) = FileLock::try_exclusive(&store.images.join(GC_LOCK))
            .map_err(|e| ImageError::io("lock the image store", e))?
        {
            store.clean_leftovers()?;
        }
        Ok(store)
    }

    fn clean_leftovers(&self) -> Result<()> {
        let read = |dir: &Path| {
            fs::read_dir(dir).map_err(|e| ImageError::io(format!("read {}", dir.display()), e))
        };
        for ent in read(&self.blob_tmp)? {
            let ent = ent.map_err(|e| ImageError::io("read blobs/tmp", e))?;
            tracing::info!(path = %ent.path().display(), "removing an unfinished blob");
            let _ = fs::remove_file(ent.path()).or_else(|_| fs::remove_dir_all(ent.path()));
        }
        for ent in read(&self.layers)? {
            let ent = ent.map_err(|e| ImageError::io("read layers", e))?;
            if ent.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                tracing::info!(path = %ent.path().display(), "removing an unfinished layer");
                fs::remove_dir_all(ent.path())
                    .map_err(|e| ImageError::io(format!("remove {}", ent.path().display()), e))?;
            }
        }
        Ok(())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Is this blob stored? Lets a puller skip downloads.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a stored blob for streaming (e.g. `berth save`).
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        File::open(self.blob_path(digest)).map_err(|e| ImageError::Blob {
            digest: digest.to_string(),
            problem: format!("cannot open: {e}"),
        })
    }

    /// Reads a small blob (manifest, config) and checks its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let bytes = fs::read(self.blob_path(digest)).map_err(|e| ImageError::Blob {
            digest: digest.to_string(),
            problem: format!("cannot read: {e}"),
        })?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(ImageError::Blob {
                digest: digest.to_string(),
                problem: format!("stored content is corrupt (its digest is {actual})"),
            });
        }
        Ok(bytes)
    }

    fn temp_blob(&self) -> Result<(TempBlob, File)> {
        let path = self.blob_tmp.join(fsutil::random_hex(16));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| ImageError::io(format!("create {}", path.display()), e))?;
        Ok((
            TempBlob {
                path,
                committed: false,
            },
            file,
        ))
    }

    fn commit_blob(&self, mut tmp: TempBlob, file: File, digest: &Digest) -> Result<()> {
        file.sync_all()
            .map_err(|e| ImageError::io(format!("sync blob {digest}"), e))?;
        drop(file);
        let dest = self.blob_path(digest);
        fs::rename(&tmp.path, &dest)
            .map_err(|e| ImageError::io(format!("store blob {digest}"), e))?;
        tmp.committed = true;
        fsutil::sync_dir(&self.blobs).map_err(|e| ImageError::io("sync blobs/sha256", e))
    }

    /// Streams `reader` into a blob, verifying it against `expected` when given; the blob appears
    /// only if complete and correct.
    pub fn write_blob(&self, reader: impl Read, expected: Option<&Digest>) -> Result<BlobInfo> {
        let _gc = self.gc_shared()?;
        let (tmp, file) = self.temp_blob()?;
        let mut hr = HashingReader::new(reader);
        let mut w = BufWriter::with_capacity(BLOB_WRITE_BUFFER, file);
        io::copy(&mut hr, &mut w).map_err(|e| ImageError::io("write blob", e))?;
        let file = w
            .into_inner()
            .map_err(|e| ImageError::io("write blob", e.into_error()))?;
        let (_, digest, size) = hr.finish();
        check_expected(expected, &digest)?;
        self.commit_blob(tmp, file, &digest)?;
        Ok(BlobInfo { digest, size })
    }

    /// Stores a small blob held in memory (a config or manifest).
    pub fn write_blob_bytes(&self, bytes: &[u8]) -> Result<BlobInfo> {
        let digest = Digest::of(bytes);
        if self.has_blob(&digest) {
            return Ok(BlobInfo {
                digest,
                size: bytes.len() as u64,
            });
        }
        self.write_blob(bytes, Some(&digest))
    }

    /// The `diff/` directory of a layer (whether or not it exists).
    pub fn layer_path(&self, chain_id: &Digest) -> PathBuf {
        self.layers.join(chain_id.hex()).join("diff")
    }

    /// Is this layer unpacked? Lets a puller skip a layer it has.
    pub fn has_layer(&self, chain_id: &Digest) -> bool {
        self.layers.join(chain_id.hex()).join("meta.json").is_file()
    }

    fn layer_meta(&self, chain_id: &Digest) -> Result<LayerMeta> {
        let p = self.layers.join(chain_id.hex()).join("meta.json");
        let bytes = fs::read(&p).map_err(|e| ImageError::Corrupt {
            what: format!("layer {chain_id}"),
            problem: format!("cannot read meta.json: {e}"),
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::corrupt(format!("layer {chain_id} meta.json"), e))
    }

    /// Holds off garbage collection while a multi-step writer (a pull: layers, then config, then
    /// [`Store::add_image`]) adds content that no image references yet. Drop it when done.
    pub fn write_guard(&self) -> Result<WriteGuard> {
        Ok(WriteGuard {
            _lock: self.gc_shared()?,
        })
    }

    fn gc_shared(&self) -> Result<FileLock> {
        FileLock::shared(&self.images.join(GC_LOCK))
            .map_err(|e| ImageError::io("lock the image store", e))
    }

    fn gc_exclusive(&self) -> Result<FileLock> {
        FileLock::exclusive(&self.images.join(GC_LOCK))
            .map_err(|e| ImageError::io("lock the image store", e))
    }

    /// Imports one layer blob in a single pass: the bytes are hashed (blob digest) and stored as
    /// received, decompressed (gzip or zstd, detected by magic bytes), hashed again (diff id) and
    /// unpacked safely into `layers/tmp-*`, which is then renamed to `layers/<chain id>`. `parent` is
    /// the chain id of the layer below (None for a base layer); `expected` the blob digest a manifest
    /// promised, checked before anything becomes visible.
    pub fn import_layer(
        &self,
        reader: impl Read + Send,
        parent: Option<&Digest>,
        expected: Option<&Digest>,
    ) -> Result<LayerImport> {
        if let Some(p) = parent {
            if !self.has_layer(p) {
                return Err(ImageError::Invalid(format!(
                    "parent layer {p} is not in the store"
                )));
            }
        }
        self.import_layer_onto(reader, parent, expected)
    }

    /// [`Store::import_layer`] without requiring the parent to be stored yet: a pull that knows all
    /// chain ids from the image config unpacks an image's layers in parallel, and registers the
    /// image only once every layer is in.
    pub fn import_layer_onto(
        &self,
        reader: impl Read + Send,
        parent: Option<&Digest>,
        expected: Option<&Digest>,
    ) -> Result<LayerImport> {
        let _gc = self.gc_shared()?;
        let (tmp_blob, blob_file) = self.temp_blob()?;
        let mut tee = TeeReader::new(
            reader,
            BufWriter::with_capacity(BLOB_WRITE_BUFFER, WritebackFile::new(blob_file)),
        );
        let mut prefix = [0u8; MAGIC_LEN];
        let n = read_up_to(&mut tee, &mut prefix)
            .map_err(|e| ImageError::io("read layer archive", e))?;
        if n == 0 {
            return Err(ImageError::Invalid("the layer archive is empty".into()));
        }
        let compression = Compression::detect(&prefix[..n])?;

        let tmp = TempDir {
            path: self
                .layers
                .join(format!("{TMP_PREFIX}{}", fsutil::random_hex(8))),
            keep: false,
        };
        let diff_dir = tmp.path.join("diff");
        fs::create_dir(&tmp.path)
            .and_then(|_| fs::create_dir(&diff_dir))
            .map_err(|e| ImageError::io(format!("create {}", diff_dir.display()), e))?;

        let input = BufReader::with_capacity(
            STREAM_BUFFER,
            io::Cursor::new(prefix[..n].to_vec()).chain(tee),
        );
        // Reading, hashing, storing and decompressing on one thread; unpacking on this one.
        let (chunks, unpacked_input) = chunk_channel();
        let (stats, produced) = std::thread::scope(|scope| {
            let producer = scope.spawn(move || {
                let decoder = Decoder::new(compression, input)?;
                let mut diff = DiffHasher {
                    inner: decoder,
                    hasher: (compression != Compression::None).then(Sha256::new),
                };
                if !chunks.pump(&mut diff)? {
                    return Ok(None);
                }
                let diff_digest = diff.hasher.take().map(Digest::from_hasher);
                let mut input = diff.inner.into_inner();
                io::copy(&mut input, &mut io::sink())?;
                let (_, tee) = input.into_inner().into_inner();
                Ok::<_, io::Error>(Some((diff_digest, tee.finish())))
            });
            let stats = unpack_layer(unpacked_input, &diff_dir);
            (stats, producer.join())
        });
        let stats = stats.map_err(|e| match e {
            // Decompression errors surface as read errors of the archive.
            ImageError::Archive { offset, problem } => ImageError::Archive {
                offset,
                problem: format!("{problem} ({compression:?} stream)"),
            },
            other => other,
        })?;
        let (diff_digest, (writer, blob_digest, blob_size)) = produced
            .map_err(|_| ImageError::Invalid("the layer reader thread panicked".into()))?
            .map_err(|e| ImageError::io("read the end of the layer archive", e))?
            .ok_or_else(|| ImageError::Invalid("the layer unpacker stopped early".into()))?;
        let blob_file = writer
            .into_inner()
            .map_err(|e| ImageError::io("write layer blob", e.into_error()))?
            .into_file();
        check_expected(expected, &blob_digest)?;
        let diff_id = diff_digest.unwrap_or_else(|| blob_digest.clone());
        self.commit_blob(tmp_blob, blob_file, &blob_digest)?;

        let chain_id = Digest::chain(parent, &diff_id);
        let meta = LayerMeta {
            chain_id: chain_id.clone(),
            diff_id: diff_id.clone(),
            parent: parent.cloned(),
            size: stats.bytes,
        };
        let meta_bytes = serde_json::to_vec_pretty(&meta)
            .map_err(|e| ImageError::corrupt("layer meta.json", e))?;
        crate::atomic_file::write_atomic(&tmp.path.join("meta.json"), &meta_bytes)
            .map_err(|e| ImageError::io("write layer meta.json", e))?;
        let existed = self.publish_layer(tmp, &chain_id)?;
        Ok(LayerImport {
            blob: BlobInfo {
                digest: blob_digest,
                size: blob_size,
            },
            media_type: compression.layer_media_type(),
            diff_id,
            chain_id,
            size: stats.bytes,
            stats,
            existed,
        })
    }

    /// Renames a fully unpacked temporary layer into place; if another writer got there first, its
    /// copy stays and ours is discarded. Returns whether the layer already existed.
    fn publish_layer(&self, mut tmp: TempDir, chain_id: &Digest) -> Result<bool> {
        let dest = self.layers.join(chain_id.hex());
        match fsutil::rename_noreplace(&tmp.path, &dest) {
            Ok(()) => {
                tmp.keep = true;
                fsutil::sync_dir(&self.layers).map_err(|e| ImageError::io("sync layers", e))?;
                Ok(false)
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {
                Ok(true)
            }
            Err(e) => Err(ImageError::io(format!("store layer {chain_id}"), e)),
        }
    }

    /// Writes a manifest (whose config and layers are stored) and registers it as an image under
    /// `references`. Used by import, and by pull/load/commit.
    pub fn add_image(&self, manifest: &ImageManifest, references: &[Reference]) -> Result<Image> {
        let _gc = self.gc_shared()?;
        let config = Digest::try_from(manifest.config().digest())?;
        if !self.has_blob(&config) {
            return Err(ImageError::Blob {
                digest: config.to_string(),
                problem: "image config is not in the store".into(),
            });
        }
        for l in manifest.layers() {
            let d = Digest::try_from(l.digest())?;
            if !self.has_blob(&d) {
                return Err(ImageError::Blob {
                    digest: d.to_string(),
                    problem: "layer blob is not in the store".into(),
                });
            }
        }
        let bytes =
            serde_json::to_vec(manifest).map_err(|e| ImageError::corrupt("image manifest", e))?;
        let blob = self.write_blob_bytes(&bytes)?;
        self.update_index(|idx| {
            idx.images.insert(
                blob.digest.clone(),
                ImageRecord {
                    config: config.clone(),
                },
            );
            for r in references {
                idx.references.insert(r.canonical(), blob.digest.clone());
            }
            Ok(())
        })?;
        let idx = self.read_index()?;
        self.load_image(&idx, &blob.digest)
    }

    fn read_index(&self) -> Result<Index> {
        let p = self.images.join(INDEX_FILE);
        match fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::corrupt(format!("{}", p.display()), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(ImageError::io(format!("read {}", p.display()), e)),
        }
    }

    /// Read-modify-write of the index under its lock, replaced atomically.
    fn update_index<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _lock = FileLock::exclusive(&self.images.join(INDEX_LOCK))
            .map_err(|e| ImageError::io("lock images/references.json", e))?;
        let mut idx = self.read_index()?;
        let out = f(&mut idx)?;
        let bytes = serde_json::to_vec_pretty(&idx)
            .map_err(|e| ImageError::corrupt("images/references.json", e))?;
        crate::atomic_file::write_atomic(&self.images.join(INDEX_FILE), &bytes)
            .map_err(|e| ImageError::io("write images/references.json", e))?;
        Ok(out)
    }

    fn load_manifest(&self, digest: &Digest) -> Result<ImageManifest> {
        let bytes = self.read_blob(digest)?;
        ImageManifest::from_reader(&bytes[..])
            .map_err(|e| ImageError::corrupt(format!("manifest {digest}"), e))
    }

    fn load_config(&self, digest: &Digest) -> Result<ImageConfiguration> {
        let bytes = self.read_blob(digest)?;
        ImageConfiguration::from_reader(&bytes[..])
            .map_err(|e| ImageError::corrupt(format!("image config {digest}"), e))
    }

    fn load_image(&self, idx: &Index, manifest_digest: &Digest) -> Result<Image> {
        let manifest = self.load_manifest(manifest_digest)?;
        let id = Digest::try_from(manifest.config().digest())?;
        let config = self.load_config(&id)?;
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse::<Digest>())
            .collect::<Result<Vec<_>>>()?;
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::corrupt(
                format!("image {id}"),
                format!(
                    "the config lists {} layers but the manifest {}",
                    diff_ids.len(),
                    manifest.layers().len()
                ),
            ));
        }
        let chain_ids = Digest::chain_ids(&diff_ids);
        let mut layers = Vec::with_capacity(diff_ids.len());
        for ((diff_id, chain_id), desc) in
            diff_ids.into_iter().zip(chain_ids).zip(manifest.layers())
        {
            let size = self.layer_meta(&chain_id).map(|m| m.size).unwrap_or(0);
            layers.push(LayerInfo {
                path: self.layer_path(&chain_id),
                chain_id,
                diff_id,
                digest: Digest::try_from(desc.digest())?,
                size,
            });
        }
        let created = config
            .created()
            .as_deref()
            .and_then(|c| humantime::parse_rfc3339_weak(c).ok());
        Ok(Image {
            id,
            manifest_digest: manifest_digest.clone(),
            references: idx.references_to(manifest_digest),
            size: layers.iter().map(|l| l.size).sum(),
            config,
            layers,
            created,
        })
    }

    /// Finds an image by reference (`busybox`, `busybox:1`, `name@sha256:…`), by full image id
    /// (`sha256:…` or 64 hex digits) or by a unique id prefix of at least 12 hex digits.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image> {
        let idx = self.read_index()?;
        let manifest = self.find(&idx, name_or_id)?;
        self.load_image(&idx, &manifest)
    }

    fn find(&self, idx: &Index, name_or_id: &str) -> Result<Digest> {
        if let Ok(r) = Reference::parse(name_or_id) {
            if let Some(m) = idx.references.get(&r.canonical()) {
                return Ok(m.clone());
            }
            if let Some(d) = r.digest() {
                if idx.images.contains_key(d) {
                    return Ok(d.clone());
                }
            }
        }
        let hex = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        if (12..=64).contains(&hex.len())
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            let mut found: BTreeMap<&Digest, &Digest> = BTreeMap::new();
            for (manifest, rec) in &idx.images {
                if rec.config.hex().starts_with(hex) {
                    found.entry(&rec.config).or_insert(manifest);
                }
            }
            match found.len() {
                0 => {}
                1 => return Ok(found.into_values().next().cloned().expect("one entry")),
                _ => return Err(ImageError::Ambiguous(hex.to_string())),
            }
        }
        Err(ImageError::NotFound(name_or_id.to_string()))
    }

    /// All images, newest first (dangling ones have no references).
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let idx = self.read_index()?;
        let mut out = Vec::with_capacity(idx.images.len());
        for manifest in idx.images.keys() {
            match self.load_image(&idx, manifest) {
                Ok(img) => out.push(ImageSummary::from(&img)),
                Err(e) => {
                    tracing::warn!(manifest = %manifest, error = %e, "skipping an unreadable image")
                }
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Points `new` at the image `src` names (`berth tag`). A tag that pointed elsewhere moves; the
    /// image it left may become dangling.
    pub fn tag(&self, src: &str, new: &Reference) -> Result<()> {
        if new.tag().is_none() || new.digest().is_some() {
            return Err(ImageError::Invalid(format!(
                "cannot tag with a digest reference: {new}"
            )));
        }
        self.update_index(|idx| {
            let manifest = self.find(idx, src)?;
            idx.references.insert(new.canonical(), manifest);
            Ok(())
        })
    }

    /// `berth rmi NAME`: removes one reference; when it was the image's last, deletes the image and
    /// whatever of its content no other image uses. The caller refuses first if a container uses the
    /// image.
    pub fn remove_reference(&self, reference: &Reference) -> Result<RemoveReport> {
        let _gc = self.gc_exclusive()?;
        let (removed, dangling) = self.update_index(|idx| {
            let key = reference.canonical();
            let manifest = idx
                .references
                .remove(&key)
                .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
            let dangling = !idx.references.values().any(|m| *m == manifest);
            if dangling {
                idx.images.remove(&manifest);
            }
            Ok((manifest, dangling))
        })?;
        let mut report = RemoveReport {
            untagged: vec![reference.clone()],
            ..Default::default()
        };
        if dangling {
            self.collect(&removed, &mut report)?;
        }
        Ok(report)
    }

    /// `berth rmi ID`: deletes an image with all its references, and whatever of its content no other
    /// image uses. The caller checks first that no container uses it (and asks for force when it has
    /// several references, as docker does).
    pub fn remove_image(&self, name_or_id: &str) -> Result<RemoveReport> {
        let _gc = self.gc_exclusive()?;
        let (manifest, untagged) = self.update_index(|idx| {
            let manifest = self.find(idx, name_or_id)?;
            let untagged = idx.references_to(&manifest);
            idx.references.retain(|_, m| *m != manifest);
            idx.images.remove(&manifest);
            Ok((manifest, untagged))
        })?;
        let mut report = RemoveReport {
            untagged,
            ..Default::default()
        };
        self.collect(&manifest, &mut report)?;
        Ok(report)
    }

    /// Deletes the blobs and layers of the removed image `manifest` that no remaining image
    /// references (reference counting computed from the remaining manifests and configs). Called with
    /// the gc lock held exclusively, so no import is adding content meanwhile.
    fn collect(&self, manifest: &Digest, report: &mut RemoveReport) -> Result<()> {
        let idx = self.read_index()?;
        let mut live_blobs = BTreeSet::new();
        let mut live_layers = BTreeSet::new();
        for m in idx.images.keys() {
            let (blobs, layers) = match self.image_content(m) {
                Ok(c) => c,
                Err(e) => {
                    // Without knowing what an image uses, deleting anything could break it.
                    tracing::warn!(manifest = %m, error = %e, "not collecting garbage: an image is unreadable");
                    return Ok(());
                }
            };
            live_blobs.extend(blobs);
            live_layers.extend(layers);
        }
        let (blobs, layers) = self.image_content(manifest)?;
        if let Some(config) = blobs.get(1) {
            report.deleted.push(config.clone());
        }
        for b in blobs {
            if !live_blobs.contains(&b) {
                match fs::remove_file(self.blob_path(&b)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ImageError::io(format!("remove blob {b}"), e)),
                }
            }
        }
        for l in layers.into_iter().rev() {
            if live_layers.contains(&l) {
                continue;
            }
            let dir = self.layers.join(l.hex());
            let doomed = self
                .layers
                .join(format!("{TMP_PREFIX}rm-{}", fsutil::random_hex(8)));
            match fs::rename(&dir, &doomed) {
                Ok(()) => {
                    fs::remove_dir_all(&doomed)
                        .map_err(|e| ImageError::io(format!("remove layer {l}"), e))?;
                    report.deleted_layers.push(l);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io(format!("remove layer {l}"), e)),
            }
        }
        Ok(())
    }

    /// The blobs (manifest, config, layers — in that order) and layer chain ids an image uses.
    fn image_content(&self, manifest: &Digest) -> Result<(Vec<Digest>, Vec<Digest>)> {
        let m = self.load_manifest(manifest)?;
        let config_digest = Digest::try_from(m.config().digest())?;
        let mut blobs = vec![manifest.clone(), config_digest.clone()];
        for l in m.layers() {
            blobs.push(Digest::try_from(l.digest())?);
        }
        let config = self.load_config(&config_digest)?;
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse::<Digest>())
            .collect::<Result<Vec<_>>>()?;
        Ok((blobs, Digest::chain_ids(&diff_ids)))
    }

    /// The overlay lowerdirs of an image: top layer first, as `lowerdir=` wants them.
    pub fn lowerdirs(&self, image: &Image) -> Vec<PathBuf> {
        image.layers.iter().rev().map(|l| l.path.clone()).collect()
    }

    /// Builds and stores an image manifest for stored config and layer blobs.
    pub(crate) fn write_manifest(
        &self,
        config: &BlobInfo,
        layers: &[(BlobInfo, MediaType)],
        annotations: Option<HashMap<String, String>>,
    ) -> Result<ImageManifest> {
        let mut b = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config.size,
                config.digest.to_oci(),
            ))
            .layers(
                layers
                    .iter()
                    .map(|(b, mt)| Descriptor::new(mt.clone(), b.size, b.digest.to_oci()))
                    .collect::<Vec<_>>(),
            );
        if let Some(a) = annotations {
            b = b.annotations(a);
        }
        b.build()
            .map_err(|e| ImageError::corrupt("image manifest", e))
    }

    /// Registers a manifest received from elsewhere (a registry) exactly as its bytes are, so its
    /// digest stays the one the registry and `name@sha256:` references know. Its config and layer
    /// blobs must be stored already.
    pub fn add_image_manifest(&self, bytes: &[u8], references: &[Reference]) -> Result<Image> {
        let _gc = self.gc_shared()?;
        let manifest = ImageManifest::from_reader(bytes)
            .map_err(|e| ImageError::corrupt("image manifest", e))?;
        let config = Digest::try_from(manifest.config().digest())?;
        let mut needed = vec![config.clone()];
        for l in manifest.layers() {
            needed.push(Digest::try_from(l.digest())?);
        }
        if let Some(missing) = needed.iter().find(|d| !self.has_blob(d)) {
            return Err(ImageError::Blob {
                digest: missing.to_string(),
                problem: "blob of the manifest is not in the store".into(),
            });
        }
        let blob = self.write_blob_bytes(bytes)?;
        self.update_index(|idx| {
            idx.images
                .insert(blob.digest.clone(), ImageRecord { config });
            for r in references {
                idx.references.insert(r.canonical(), blob.digest.clone());
            }
            Ok(())
        })?;
        let idx = self.read_index()?;
        self.load_image(&idx, &blob.digest)
    }

    /// Removes what a failed multi-step writer (a load) added: those of `blobs` and `layers` that no
    /// image references. Call it after dropping the [`WriteGuard`].
    pub fn discard_unused(&self, blobs: &[Digest], layers: &[Digest]) -> Result<()> {
        let _gc = self.gc_exclusive()?;
        let idx = self.read_index()?;
        let mut live_blobs = BTreeSet::new();
        let mut live_layers = BTreeSet::new();
        for m in idx.images.keys() {
            let (b, l) = self.image_content(m)?;
            live_blobs.extend(b);
            live_layers.extend(l);
        }
        for b in blobs.iter().filter(|b| !live_blobs.contains(*b)) {
            match fs::remove_file(self.blob_path(b)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io(format!("remove blob {b}"), e)),
            }
        }
        for l in layers.iter().rev().filter(|l| !live_layers.contains(*l)) {
            let doomed = self
                .layers
                .join(format!("{TMP_PREFIX}rm-{}", fsutil::random_hex(8)));
            if fs::rename(self.layers.join(l.hex()), &doomed).is_ok() {
                fs::remove_dir_all(&doomed)
                    .map_err(|e| ImageError::io(format!("remove layer {l}"), e))?;
            }
        }
        Ok(())
    }

    /// Removes every reference to an image but keeps the image (dangling) and its content: `rmi -f`
    /// of an image a container still runs from.
    pub fn untag_all(&self, name_or_id: &str) -> Result<Vec<Reference>> {
        self.update_index(|idx| {
            let manifest = self.find(idx, name_or_id)?;
            let untagged = idx.references_to(&manifest);
            idx.references.retain(|_, m| *m != manifest);
            Ok(untagged)
        })
    }
}

fn check_expected(expected: Option<&Digest>, actual: &Digest) -> Result<()> {
    match expected {
        Some(e) if e != actual => Err(ImageError::Blob {
            digest: e.to_string(),
            problem: format!("received content has digest {actual}"),
        }),
        _ => Ok(()),
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
