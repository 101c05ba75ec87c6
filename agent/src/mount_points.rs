//! The mount points a container's root file system needs, kept in a shared read-only layer.
//!
//! The runtime mounts `/proc`, `/dev` and `/sys`, and binds the agent's `/etc/hostname`,
//! `/etc/hosts` and `/etc/resolv.conf`, over the container's root. Where the image lacks one, the
//! container's init had to create it in the container's writable layer, through overlayfs, at
//! every start: about 0.36 ms of a `run --rm` of a minimal image here. Instead the overlay of each
//! container gets, above its image, a layer holding exactly the mount points its image lacks
//! (Docker's per-container init layer plays this part). A path the image has, in any form, is
//! never added, nor anything below a parent it has as a non-directory, so nothing of the image is
//! hidden. Layers are named by the set of mount points
//! they hold: at most 2^6 small directories, each shared by every image that lacks the same ones,
//! so none is ever removed.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The agent's mount point layers, with which one each image needs, remembered: an image's layers
/// never change, and looking through them is a few file lookups per mount point and layer on
/// every `create` (hundreds for an image of many layers).
pub struct MountPointLayers {
    dir: PathBuf,
    by_image: Mutex<HashMap<String, Option<PathBuf>>>,
}

impl MountPointLayers {
    /// The layers under `dir`; deletes those a crash left half made, so it must be made before
    /// any container is.
    pub fn new(dir: PathBuf) -> Self {
        purge_unfinished(&dir);
        MountPointLayers {
            dir,
            by_image: Mutex::new(HashMap::new()),
        }
    }

    /// The layer for image `image_id`, whose layer directories are `lowers` ([`layer`]).
    pub fn for_image(&self, image_id: &str, lowers: &[PathBuf]) -> io::Result<Option<PathBuf>> {
        let known = self.cache().get(image_id).cloned();
        match known {
            // A layer deleted by hand is made again below.
            Some(Some(layer)) if layer.is_dir() => return Ok(Some(layer)),
            Some(None) => return Ok(None),
            _ => {}
        }
        let found = layer(&self.dir, lowers)?;
        self.cache().insert(image_id.to_owned(), found.clone());
        Ok(found)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<PathBuf>>> {
        self.by_image.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a mount point is: a directory, or a file where a file is bound over it.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Dir,
    File,
}

/// The mount points of the runtime's own mounts, relative to the container's root.
const MOUNT_POINTS: [(&str, Kind); 6] = [
    ("proc", Kind::Dir),
    ("dev", Kind::Dir),
    ("sys", Kind::Dir),
    ("etc/hostname", Kind::File),
    ("etc/hosts", Kind::File),
    ("etc/resolv.conf", Kind::File),
];

/// The layer, under `dir`, holding the mount points that none of `lowers` (an image's layer
/// directories) has; made now if it does not exist yet. `None` when the image has them all.
fn layer(dir: &Path, lowers: &[PathBuf]) -> io::Result<Option<PathBuf>> {
    let in_image = |rel: &Path| {
        lowers
            .iter()
            .find_map(|l| l.join(rel).symlink_metadata().ok())
    };
    // A parent the image has as anything but a directory (`/etc` as a symlink, say) is left to
    // the image, with what would go below it; so is looking through it, which would follow the
    // link on the host.
    let under_non_dir = |rel: &Path| {
        rel.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .and_then(&in_image)
            .is_some_and(|m| !m.is_dir())
    };
    let missing: Vec<usize> = (0..MOUNT_POINTS.len())
        .filter(|&i| {
            let rel = Path::new(MOUNT_POINTS[i].0);
            !under_non_dir(rel) && in_image(rel).is_none()
        })
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    let set: u32 = missing.iter().map(|i| 1 << i).sum();
    let path = dir.join(format!("{set:02x}"));
    if !path.is_dir() {
        make(dir, &path, &missing)?;
    }
    Ok(Some(path))
}

/// Deletes layers a crash left half made.
fn purge_unfinished(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(UNFINISHED) {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!("remove {}: {err}", e.path().display());
            }
        }
    }
}

/// The name prefix of a layer being made.
const UNFINISHED: &str = ".new-";

/// Fills a temporary directory, makes it durable (containers that outlive a reboot mount it
/// again) and renames it into place, so a layer is complete whenever it exists.
fn make(dir: &Path, path: &Path, missing: &[usize]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{UNFINISHED}{}", crate::names::random_hex(8)));
    std::fs::create_dir(&tmp)?;
    let made = fill(&tmp, missing)
        .and_then(|()| std::fs::rename(&tmp, path))
        .and_then(|()| File::open(dir)?.sync_all());
    match made {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another create made the same layer meanwhile.
            if path.is_dir() {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

fn fill(tmp: &Path, missing: &[usize]) -> io::Result<()> {
    let mut dirs = vec![tmp.to_path_buf()];
    for &i in missing {
        let (rel, kind) = MOUNT_POINTS[i];
        let at = tmp.join(rel);
        if let Some(parent) = at.parent().filter(|p| !p.is_dir()) {
            std::fs::create_dir(parent)?;
            dirs.push(parent.to_path_buf());
        }
        match kind {
            Kind::Dir => std::fs::create_dir(&at)?,
            Kind::File => File::create(&at)?.sync_all()?,
        }
    }
    for d in dirs.iter().rev() {
        File::open(d)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in walk(dir) {
            out.push(e.strip_prefix(dir).unwrap().display().to_string());
        }
        out.sort();
        out
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
        out
    }

    #[test]
    fn a_layer_holds_only_what_no_image_layer_has_and_is_shared() {
        let tmp = tempfile::tempdir().unwrap();
        let (top, base) = (tmp.path().join("top"), tmp.path().join("base"));
        std::fs::create_dir_all(base.join("proc")).unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::write(top.join("etc/hosts"), "127.0.0.1 image\n").unwrap();
        // A symlink counts: the image has the path.
        std::os::unix::fs::symlink("/nowhere", base.join("sys")).unwrap();
        let lowers = vec![top.clone(), base.clone()];
        let dir = tmp.path().join("mountpoints");

        let layer = layer(&dir, &lowers).unwrap().expect("some are missing");
        assert_eq!(
            entries(&layer),
            ["dev", "etc", "etc/hostname", "etc/resolv.conf"]
        );
        assert_eq!(std::fs::read(layer.join("etc/hostname")).unwrap(), b"");
        // The same set of missing mount points is the same layer; nothing else was left behind.
        assert_eq!(super::layer(&dir, &lowers).unwrap(), Some(layer.clone()));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // What a crash left half made goes at the next start; finished layers stay.
        std::fs::create_dir_all(dir.join(format!("{UNFINISHED}0123/etc"))).unwrap();
        purge_unfinished(&dir);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [layer.file_name().unwrap().to_string_lossy()]);
        assert!(layer.join("dev").is_dir());
        // The image's own file is untouched.
        assert_eq!(
            std::fs::read(top.join("etc/hosts")).unwrap(),
            b"127.0.0.1 image\n"
        );
    }

    #[test]
    fn nothing_goes_below_what_the_image_has_as_a_non_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("img");
        std::fs::create_dir_all(&img).unwrap();
        std::os::unix::fs::symlink("/usr/etc", img.join("etc")).unwrap();
        let dir = tmp.path().join("mountpoints");
        let layer = layer(&dir, &[img])
            .unwrap()
            .expect("proc, dev and sys are missing");
        assert_eq!(entries(&layer), ["dev", "proc", "sys"]);
    }

    fn complete(img: &Path) {
        for (rel, kind) in MOUNT_POINTS {
            let p = img.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            match kind {
                Kind::Dir => std::fs::create_dir(&p).unwrap(),
                Kind::File => std::fs::write(&p, "").unwrap(),
            }
        }
    }

    #[test]
    fn an_image_with_every_mount_point_needs_no_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("img");
        complete(&img);
        let dir = tmp.path().join("mountpoints");
        assert_eq!(layer(&dir, &[img]).unwrap(), None);
        assert!(!dir.exists());
    }

    #[test]
    fn each_image_is_looked_through_once() {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("img");
        std::fs::create_dir_all(&img).unwrap();
        let layers = MountPointLayers::new(tmp.path().join("mountpoints"));
        let first = layers.for_image("a", std::slice::from_ref(&img)).unwrap();
        assert!(first.is_some());
        // Image directories never change; here one does, to show the answer is remembered.
        complete(&img);
        assert_eq!(
            layers.for_image("a", std::slice::from_ref(&img)).unwrap(),
            first
        );
        assert_eq!(layers.for_image("b", &[img]).unwrap(), None);
    }
}
