//! `berth save`: images as one archive in Docker 25+'s layout — an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/*`) plus docker's `manifest.json` and `repositories` pointing at the
//! same blobs — streamed straight from the store's blobs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use serde_json::json;
use tar::{EntryType, Header};

use super::{DockerManifest, CONTAINERD_NAME, OCI_LAYOUT, OCI_LAYOUT_CONTENT, OCI_REF_NAME};
use crate::image::digest::Digest;
use crate::image::error::{ImageError, Result};
use crate::image::reference::Reference;
use crate::image::store::{Image, Store};

/// One image to write and the names to write it under.
struct Entry {
    image: Image,
    tags: Vec<Reference>,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn write_err(e: io::Error) -> ImageError {
    ImageError::io("write the archive", e)
}

/// A header owned by root with a fixed time, so the same images always give the same archive.
fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut h = header(EntryType::Regular, 0o644, bytes.len() as u64);
    tar.append_data(&mut h, name, bytes).map_err(write_err)
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut h = header(EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, name, io::empty())
        .map_err(write_err)
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

impl Store {
    /// Writes the images `names` (references or ids) to `out` as one archive. A reference saves
    /// the image under that name; an id saves it without names. Every name is resolved before a
    /// byte is written, so a bad name fails cleanly.
    pub fn save_archive<W: Write>(&self, names: &[String], out: W) -> Result<W> {
        let mut entries: Vec<Entry> = Vec::new();
        for name in names {
            let image = self.resolve(name)?;
            let tag = Reference::parse(name)
                .ok()
                .and_then(|r| image.references.iter().find(|x| **x == r).cloned())
                .filter(|r| r.tag().is_some());
            match entries
                .iter_mut()
                .find(|e| e.image.manifest_digest == image.manifest_digest)
            {
                Some(e) => e.tags.extend(tag),
                None => entries.push(Entry {
                    image,
                    tags: tag.into_iter().collect(),
                }),
            }
        }
        let mut tar = tar::Builder::new(out);
        append_dir(&mut tar, "blobs/")?;
        append_dir(&mut tar, "blobs/sha256/")?;
        let mut written = BTreeSet::new();
        let mut index = Vec::new();
        let mut docker = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for e in &entries {
            let img = &e.image;
            let mut blobs = vec![img.manifest_digest.clone(), img.id.clone()];
            blobs.extend(img.layers.iter().map(|l| l.digest.clone()));
            for b in blobs {
                if written.insert(b.clone()) {
                    self.append_blob(&mut tar, &b)?;
                }
            }
            let manifest = self.read_blob(&img.manifest_digest)?;
            let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
                .ok()
                .and_then(|m| m["mediaType"].as_str().map(str::to_string))
                .unwrap_or_else(|| OCI_MANIFEST.to_string());
            let descriptor = |annotations: Option<serde_json::Value>| {
                let mut d = json!({
                    "mediaType": media_type,
                    "digest": img.manifest_digest.to_string(),
                    "size": manifest.len(),
                });
                if let Some(a) = annotations {
                    d["annotations"] = a;
                }
                d
            };
            if e.tags.is_empty() {
                index.push(descriptor(None));
            }
            for t in &e.tags {
                let tag = t.tag().unwrap_or("latest");
                index.push(descriptor(Some(json!({
                    CONTAINERD_NAME: t.canonical(),
                    OCI_REF_NAME: tag,
                }))));
                if let Some(top) = img.layers.last() {
                    repositories
                        .entry(t.familiar_repository())
                        .or_default()
                        .insert(tag.to_string(), top.digest.hex().to_string());
                }
            }
            docker.push(DockerManifest {
                config: blob_name(&img.id),
                repo_tags: Some(e.tags.iter().map(|t| t.to_string()).collect()),
                layers: img.layers.iter().map(|l| blob_name(&l.digest)).collect(),
            });
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": index,
        });
        append_bytes(&mut tar, "index.json", &to_json(&index)?)?;
        append_bytes(&mut tar, "manifest.json", &to_json(&docker)?)?;
        append_bytes(&mut tar, OCI_LAYOUT, OCI_LAYOUT_CONTENT.as_bytes())?;
        append_bytes(&mut tar, "repositories", &to_json(&repositories)?)?;
        tar.into_inner().map_err(write_err)
    }

    fn append_blob<W: Write>(&self, tar: &mut tar::Builder<W>, d: &Digest) -> Result<()> {
        let file = self.open_blob(d)?;
        let size = file
            .metadata()
            .map_err(|e| ImageError::io(format!("stat blob {d}"), e))?
            .len();
        let mut h = header(EntryType::Regular, 0o644, size);
        tar.append_data(&mut h, blob_name(d), file)
            .map_err(write_err)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| ImageError::corrupt("archive index", e))
}
