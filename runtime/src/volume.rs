//! Named volumes: directories under `<root>/volumes/<name>/_data` that outlive containers, with their
//! metadata in `<root>/volumes/<name>/meta.json`, plus the copy-up that seeds a fresh volume with the
//! image's content at its mount point (as docker does on a volume's first mount).
//!
//! Creation and removal are atomic: a volume is built under `.tmp-*` and renamed into place, and
//! removed by renaming it to `.rm-*` first, so a crash never leaves a half-made volume under a valid
//! name (`VolumeStore::open` removes the leftovers). Names cannot start with `.`, so they never clash.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::image::fsutil::{self, Time};

const META_FILE: &str = "meta.json";
const DATA_DIR: &str = "_data";
const TMP_PREFIX: &str = ".tmp-";
const RM_PREFIX: &str = ".rm-";

/// Errors of volume operations, one line each, naming the volume.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("invalid volume name {0:?}: use 2-255 characters [a-zA-Z0-9_.-], starting with a letter or digit")]
    InvalidName(String),
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error("volume {0} is in use")]
    InUse(String),
    #[error("volume {name}: {what}: {source}")]
    Io {
        name: String,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("volume {name}: meta.json is corrupt: {problem}")]
    Corrupt { name: String, problem: String },
}

impl VolumeError {
    fn io(name: &str, what: impl Into<String>, source: io::Error) -> Self {
        VolumeError::Io {
            name: name.to_string(),
            what: what.into(),
            source,
        }
    }
}

/// Results of volume operations.
pub type Result<T, E = VolumeError> = std::result::Result<T, E>;

/// A volume as `berth volume inspect` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    /// RFC 3339 creation time.
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Always `local`: volumes are directories on this host.
    pub driver: String,
    /// Created without a name (for an image's VOLUME or `-v /path`): pruned by default.
    #[serde(default)]
    pub anonymous: bool,
    /// The `_data` directory a container bind-mounts.
    #[serde(skip)]
    pub mountpoint: PathBuf,
}

/// What `berth volume prune` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: Vec<String>,
    /// Bytes of file content freed.
    pub reclaimed: u64,
}

/// The volumes of one host, under `<root>/volumes`.
#[derive(Clone, Debug)]
pub struct VolumeStore {
    dir: PathBuf,
}

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl VolumeStore {
    /// Opens (creating) `<root>/volumes` and removes half-created or half-removed volumes a crash
    /// left behind.
    pub fn open(root: impl AsRef<Path>) -> Result<VolumeStore> {
        let dir = root.as_ref().join("volumes");
        fs::create_dir_all(&dir)
            .map_err(|e| VolumeError::io("store", format!("create {}", dir.display()), e))?;
        // Volume data may hold setuid binaries copied from images: no host user may reach it.
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| VolumeError::io("store", format!("chmod {}", dir.display()), e))?;
        let rd = fs::read_dir(&dir)
            .map_err(|e| VolumeError::io("store", format!("read {}", dir.display()), e))?;
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) || name.starts_with(RM_PREFIX) {
                tracing::info!(path = %ent.path().display(), "removing an unfinished volume");
                fs::remove_dir_all(ent.path())
                    .map_err(|e| VolumeError::io(&name, "remove leftover", e))?;
            }
        }
        Ok(VolumeStore { dir })
    }

    /// The `_data` directory of a volume (whether or not it exists).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(DATA_DIR)
    }

    /// Creates a volume; `None` makes an anonymous one with a random 64-hex name. Creating a name
    /// that exists returns the existing volume unchanged, as docker does.
    pub fn create(&self, name: Option<&str>, labels: BTreeMap<String, String>) -> Result<Volume> {
        let (name, anonymous) = match name {
            Some(n) => (n.to_string(), false),
            None => (fsutil::random_hex(32), true),
        };
        if !valid_name(&name) {
            return Err(VolumeError::InvalidName(name));
        }
        if let Ok(v) = self.get(&name) {
            return Ok(v);
        }
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{}", fsutil::random_hex(8)));
        let vol = Volume {
            name: name.clone(),
            created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            labels,
            driver: "local".into(),
            anonymous,
            mountpoint: self.data_dir(&name),
        };
        let build = || -> io::Result<()> {
            fs::create_dir(&tmp)?;
            fs::create_dir(tmp.join(DATA_DIR))?;
            let bytes = serde_json::to_vec_pretty(&vol).map_err(io::Error::other)?;
            crate::atomic_file::write_atomic(&tmp.join(META_FILE), &bytes)
        };
        if let Err(e) = build() {
            let _ = fs::remove_dir_all(&tmp);
            return Err(VolumeError::io(&name, "create", e));
        }
        match fsutil::rename_noreplace(&tmp, &self.dir.join(&name)) {
            Ok(()) => {
                fsutil::sync_dir(&self.dir).map_err(|e| VolumeError::io(&name, "sync", e))?;
                Ok(vol)
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {
                // Created concurrently: theirs wins.
                let _ = fs::remove_dir_all(&tmp);
                self.get(&name)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(VolumeError::io(&name, "create", e))
            }
        }
    }

    /// One volume by name.
    pub fn get(&self, name: &str) -> Result<Volume> {
        if !valid_name(name) {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let bytes = match fs::read(self.dir.join(name).join(META_FILE)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(e) => return Err(VolumeError::io(name, "read meta.json", e)),
        };
        let mut v: Volume = serde_json::from_slice(&bytes).map_err(|e| VolumeError::Corrupt {
            name: name.to_string(),
            problem: e.to_string(),
        })?;
        v.mountpoint = self.data_dir(name);
        Ok(v)
    }

    /// All volumes, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let rd = fs::read_dir(&self.dir).map_err(|e| VolumeError::io("store", "list", e))?;
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| VolumeError::io("store", "list", e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if !valid_name(&name) {
                continue;
            }
            match self.get(&name) {
                Ok(v) => out.push(v),
                Err(VolumeError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(volume = %name, error = %e, "skipping an unreadable volume")
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a volume and its data; refuses while `in_use(name)` says a container uses it.
    pub fn remove(&self, name: &str, in_use: &dyn Fn(&str) -> bool) -> Result<()> {
        self.get(name)?;
        if in_use(name) {
            return Err(VolumeError::InUse(name.to_string()));
        }
        self.delete(name).map(|_| ())
    }

    fn delete(&self, name: &str) -> Result<u64> {
        let doomed = self
            .dir
            .join(format!("{RM_PREFIX}{}", fsutil::random_hex(8)));
        match fs::rename(self.dir.join(name), &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(e) => return Err(VolumeError::io(name, "remove", e)),
        }
        let size = du(&doomed.join(DATA_DIR));
        fs::remove_dir_all(&doomed).map_err(|e| VolumeError::io(name, "remove", e))?;
        Ok(size)
    }

    /// Removes unused volumes: anonymous ones, and named ones too when `include_named` (docker's
    /// `volume prune` and `volume prune --all`).
    pub fn prune(&self, in_use: &dyn Fn(&str) -> bool, include_named: bool) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        for v in self.list()? {
            if in_use(&v.name) || !(v.anonymous || include_named) {
                continue;
            }
            match self.delete(&v.name) {
                Ok(size) => {
                    report.reclaimed += size;
                    report.removed.push(v.name);
                }
                Err(VolumeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}

/// Bytes of file content under `dir` (not following symlinks).
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total += m.len();
            }
        }
    }
    total
}

/// What a copy-up copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub entries: u64,
    pub bytes: u64,
}

/// Seeds the empty volume directory `dest` with the content of `src` (the image's directory at the
/// mount point), preserving modes, ownership, times, xattrs, symlinks (copied, never followed),
/// hard links and device nodes; `dest` itself takes `src`'s owner and mode. Returns `None` without
/// touching anything when `dest` is not empty (docker copies only into a fresh volume) or `src` is
/// not a directory.
pub fn copy_up(src: &Path, dest: &Path) -> Result<Option<CopyStats>> {
    let src_fd = match fsutil::open_dir(src) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Ok(None)
        }
        Err(e) => {
            return Err(VolumeError::io(
                &dest.display().to_string(),
                format!("open {}", src.display()),
                e,
            ))
        }
    };
    copy_up_fd(src_fd.as_fd(), dest)
}

/// [`copy_up`] of `path` inside a container's root file system `rootfs` (its merged overlay):
/// symlinks on the way are resolved as the container would (`RESOLVE_IN_ROOT`), so they can never
/// lead outside the rootfs.
pub fn copy_up_from_rootfs(rootfs: &Path, path: &Path, dest: &Path) -> Result<Option<CopyStats>> {
    let label = dest.display().to_string();
    let root = fsutil::open_dir(rootfs)
        .map_err(|e| VolumeError::io(&label, format!("open {}", rootfs.display()), e))?;
    let src = match crate::safe_path::open_in_root(
        root.as_fd(),
        path,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    ) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Ok(None)
        }
        Err(e) => {
            return Err(VolumeError::io(
                &label,
                format!("open {} in the rootfs", path.display()),
                e,
            ))
        }
    };
    copy_up_fd(src.as_fd(), dest)
}

fn copy_up_fd(src: BorrowedFd<'_>, dest: &Path) -> Result<Option<CopyStats>> {
    let label = dest.display().to_string();
    let io_err = |what: &str, e: io::Error| VolumeError::io(&label, what.to_string(), e);
    let dst = fsutil::open_dir(dest).map_err(|e| io_err("open volume data", e))?;
    if !fsutil::read_dir_fd(dst.as_fd())
        .map_err(|e| io_err("read volume data", e))?
        .is_empty()
    {
        return Ok(None);
    }
    let mut c = Copier {
        links: HashMap::new(),
        stats: CopyStats::default(),
        dest_root: dst,
    };
    let root = c.dest_root.try_clone().map_err(|e| io_err("dup", e))?;
    c.copy_dir(src, root.as_fd(), Path::new(""))
        .map_err(|(p, e)| io_err(&format!("copy {}", p.display()), e))?;
    Ok(Some(c.stats))
}

struct Copier {
    /// First copy of each multiply-linked source inode, by (dev, ino).
    links: HashMap<(u64, u64), PathBuf>,
    stats: CopyStats,
    dest_root: OwnedFd,
}

type CopyResult<T> = std::result::Result<T, (PathBuf, io::Error)>;

fn time(sec: i64, nsec: i64) -> Time {
    Time {
        sec,
        nsec: nsec as u32,
    }
}

impl Copier {
    /// Copies the contents of `src` into `dst`, then `src`'s own metadata onto `dst`.
    fn copy_dir(&mut self, src: BorrowedFd<'_>, dst: BorrowedFd<'_>, rel: &Path) -> CopyResult<()> {
        let at = |e: io::Error| (rel.to_path_buf(), e);
        for name in fsutil::read_dir_fd(src).map_err(at)? {
            let child = rel.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            let at = |e: io::Error| (child.clone(), e);
            let st = fsutil::lstatat(src, &name).map_err(at)?;
            self.stats.entries += 1;
            let atime = time(st.st_atime, st.st_atime_nsec);
            let mtime = time(st.st_mtime, st.st_mtime_nsec);
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => {
                    fsutil::mkdirat(dst, &name, 0o700).map_err(at)?;
                    let s = fsutil::openat(src, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                        .map_err(at)?;
                    let d = fsutil::openat(dst, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                        .map_err(at)?;
                    self.copy_dir(s.as_fd(), d.as_fd(), &child)?;
                }
                libc::S_IFREG => {
                    let key = (st.st_dev, st.st_ino);
                    if st.st_nlink > 1 {
                        if let Some(first) = self.links.get(&key) {
                            let (fparent, fname) = (
                                first.parent().unwrap_or(Path::new("")),
                                first.file_name().unwrap_or_default(),
                            );
                            let fp = fsutil::open_beneath(
                                self.dest_root.as_fd(),
                                fparent,
                                libc::O_PATH | libc::O_DIRECTORY,
                            )
                            .map_err(at)?;
                            let fname = fsutil::cstr(fname.as_encoded_bytes()).map_err(at)?;
                            fsutil::linkat(fp.as_fd(), &fname, dst, &name).map_err(at)?;
                            continue;
                        }
                        self.links.insert(key, child.clone());
                    }
                    let s = fsutil::openat(src, &name, libc::O_RDONLY, 0).map_err(at)?;
                    let d = fsutil::openat(
                        dst,
                        &name,
                        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                        0o600,
                    )
                    .map_err(at)?;
                    let (mut s, mut d) = (File::from(s), File::from(d));
                    self.stats.bytes += io::copy(&mut s, &mut d).map_err(at)?;
                    copy_fd_meta(s.as_fd(), d.as_fd(), &st).map_err(at)?;
                }
                libc::S_IFLNK => {
                    let target = fsutil::readlinkat(src, &name).map_err(at)?;
                    let target = fsutil::cstr(&target).map_err(at)?;
                    fsutil::symlinkat(&target, dst, &name).map_err(at)?;
                    fsutil::lchownat(dst, &name, st.st_uid, st.st_gid).map_err(at)?;
                    fsutil::lutimensat(dst, &name, atime, mtime).map_err(at)?;
                }
                libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                    fsutil::mknodat(dst, &name, (st.st_mode & libc::S_IFMT) | 0o600, st.st_rdev)
                        .map_err(at)?;
                    fsutil::lchownat(dst, &name, st.st_uid, st.st_gid).map_err(at)?;
                    fsutil::fchmodat(dst, &name, st.st_mode & 0o7777).map_err(at)?;
                    fsutil::lutimensat(dst, &name, atime, mtime).map_err(at)?;
                }
                // Sockets belong to running processes, not to content.
                _ => {}
            }
        }
        let st = fsutil::fstat(src).map_err(at)?;
        copy_fd_meta(src, dst, &st).map_err(at)
    }
}

/// Owner, mode, xattrs (except overlay's private ones) and times, from one open object to another.
fn copy_fd_meta(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, st: &libc::stat) -> io::Result<()> {
    fsutil::fchown(dst, st.st_uid, st.st_gid)?;
    fsutil::fchmod(dst, st.st_mode & 0o7777)?;
    for (k, v) in fsutil::fxattrs(src)? {
        if k.to_bytes().starts_with(b"trusted.overlay.") {
            continue;
        }
        if let Err(e) = fsutil::fsetxattr(dst, &k, &v) {
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(e);
            }
        }
    }
    fsutil::futimens(
        dst,
        time(st.st_atime, st.st_atime_nsec),
        time(st.st_mtime, st.st_mtime_nsec),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    fn tempdir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("berth-volume-test-")
            .tempdir()
            .expect("create a temporary directory")
    }

    fn never(_: &str) -> bool {
        false
    }

    #[test]
    fn create_get_list_and_idempotence() {
        let tmp = tempdir();
        let store = VolumeStore::open(tmp.path()).unwrap();
        let labels: BTreeMap<String, String> = [("app".to_string(), "db".to_string())].into();
        let v = store.create(Some("data"), labels.clone()).unwrap();
        assert_eq!(
            (v.name.as_str(), v.driver.as_str(), v.anonymous),
            ("data", "local", false)
        );
        assert_eq!(v.mountpoint, tmp.path().join("volumes/data/_data"));
        assert!(v.mountpoint.is_dir());
        fs::write(v.mountpoint.join("f"), "keep").unwrap();
        let again = store.create(Some("data"), BTreeMap::new()).unwrap();
        assert_eq!(again, v);
        assert_eq!(fs::read_to_string(v.mountpoint.join("f")).unwrap(), "keep");
        assert_eq!(store.get("data").unwrap().labels, labels);
        let meta: serde_json::Value =
            serde_json::from_slice(&fs::read(tmp.path().join("volumes/data/meta.json")).unwrap())
                .unwrap();
        assert_eq!(meta["driver"], "local");
        assert_eq!(meta["labels"]["app"], "db");
        assert!(humantime::parse_rfc3339(meta["created"].as_str().unwrap()).is_ok());

        let anon = store.create(None, BTreeMap::new()).unwrap();
        assert!(anon.anonymous);
        assert_eq!(anon.name.len(), 64);
        assert!(anon.name.bytes().all(|b| b.is_ascii_hexdigit()));
        let names: Vec<String> = store.list().unwrap().into_iter().map(|v| v.name).collect();
        let mut expect = vec![anon.name.clone(), "data".to_string()];
        expect.sort();
        assert_eq!(names, expect);
        assert!(matches!(store.get("nope"), Err(VolumeError::NotFound(_))));
    }

    #[test]
    fn names_are_validated_like_docker() {
        let tmp = tempdir();
        let store = VolumeStore::open(tmp.path()).unwrap();
        for ok in ["ab", "my_vol-1.2", "A1"] {
            store.create(Some(ok), BTreeMap::new()).unwrap();
        }
        for bad in ["a", "-x", ".hidden", "x/y", "..", "a b", "", "ü1"] {
            let err = store.create(Some(bad), BTreeMap::new()).unwrap_err();
            assert!(matches!(err, VolumeError::InvalidName(_)), "{bad}");
            assert!(err.to_string().starts_with("invalid volume name"), "{err}");
        }
        assert!(!tmp.path().join("y").exists());
    }

    #[test]
    fn remove_refuses_volumes_in_use_and_prune_spares_them() {
        let tmp = tempdir();
        let store = VolumeStore::open(tmp.path()).unwrap();
        store.create(Some("used"), BTreeMap::new()).unwrap();
        store.create(Some("named"), BTreeMap::new()).unwrap();
        let anon = store.create(None, BTreeMap::new()).unwrap();
        let busy = store.create(None, BTreeMap::new()).unwrap();
        fs::write(anon.mountpoint.join("blob"), vec![0u8; 5000]).unwrap();
        let in_use = |n: &str| n == "used" || n == busy.name;
        let err = store.remove("used", &in_use).unwrap_err();
        assert_eq!(err.to_string(), "volume used is in use");
        assert!(store.get("used").is_ok());
        assert!(matches!(
            store.remove("ghost", &never),
            Err(VolumeError::NotFound(_))
        ));

        let r = store.prune(&in_use, false).unwrap();
        assert_eq!(r.removed, vec![anon.name.clone()]);
        assert_eq!(r.reclaimed, 5000);
        let r = store.prune(&in_use, true).unwrap();
        assert_eq!(r.removed, vec!["named".to_string()]);
        let left: Vec<String> = store.list().unwrap().into_iter().map(|v| v.name).collect();
        let mut expect = vec![busy.name.clone(), "used".to_string()];
        expect.sort();
        assert_eq!(left, expect);
        store.remove("used", &never).unwrap();
        assert!(!tmp.path().join("volumes/used").exists());
    }

    #[test]
    fn open_removes_half_made_volumes() {
        let tmp = tempdir();
        VolumeStore::open(tmp.path()).unwrap();
        fs::create_dir_all(tmp.path().join("volumes/.tmp-abc/_data")).unwrap();
        fs::create_dir_all(tmp.path().join("volumes/.rm-def/_data")).unwrap();
        let store = VolumeStore::open(tmp.path()).unwrap();
        assert_eq!(fs::read_dir(tmp.path().join("volumes")).unwrap().count(), 0);
        assert!(store.list().unwrap().is_empty());
    }

    fn src_tree(root: &Path) {
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::write(root.join("sub/deeper/f"), "deep").unwrap();
        fs::write(root.join("conf"), "x=1").unwrap();
        std::os::unix::fs::chown(root.join("conf"), Some(999), Some(998)).unwrap();
        fs::set_permissions(root.join("conf"), fs::Permissions::from_mode(0o4750)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        fs::hard_link(root.join("conf"), root.join("conf-link")).unwrap();
        let fifo = fsutil::cstr(root.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
        fs::set_permissions(root, fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::chown(root, Some(999), Some(999)).unwrap();
    }

    fn check_copy(dest: &Path) {
        assert_eq!(
            fs::read_to_string(dest.join("sub/deeper/f")).unwrap(),
            "deep"
        );
        let conf = fs::metadata(dest.join("conf")).unwrap();
        assert_eq!(
            (conf.mode() & 0o7777, conf.uid(), conf.gid()),
            (0o4750, 999, 998)
        );
        assert_eq!(
            fs::read_link(dest.join("abs-link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            fs::read_link(dest.join("up")).unwrap(),
            Path::new("../../..")
        );
        assert_eq!(
            conf.ino(),
            fs::metadata(dest.join("conf-link")).unwrap().ino()
        );
        let fifo = fs::symlink_metadata(dest.join("fifo")).unwrap();
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.mode() & 0o7777, 0o640);
        let root = fs::metadata(dest).unwrap();
        assert_eq!((root.mode() & 0o7777, root.uid()), (0o750, 999));
    }

    #[test]
    fn copy_up_preserves_content_and_metadata() {
        let tmp = tempdir();
        let src = tmp.path().join("src");
        src_tree(&src);
        let store = VolumeStore::open(tmp.path()).unwrap();
        let v = store.create(Some("seeded"), BTreeMap::new()).unwrap();
        let stats = copy_up(&src, &v.mountpoint).unwrap().unwrap();
        assert!(stats.entries >= 8);
        check_copy(&v.mountpoint);
        assert_eq!(
            fs::metadata(v.mountpoint.join("sub/deeper/f"))
                .unwrap()
                .mtime(),
            fs::metadata(src.join("sub/deeper/f")).unwrap().mtime()
        );
        // Not empty any more: a second copy does nothing.
        fs::write(src.join("new"), "n").unwrap();
        assert_eq!(copy_up(&src, &v.mountpoint).unwrap(), None);
        assert!(!v.mountpoint.join("new").exists());
        // A missing source is not an error.
        let w = store.create(Some("empty"), BTreeMap::new()).unwrap();
        assert_eq!(
            copy_up(&tmp.path().join("missing"), &w.mountpoint).unwrap(),
            None
        );
    }

    #[test]
    fn copy_up_from_rootfs_resolves_symlinks_inside_the_rootfs() {
        let tmp = tempdir();
        let rootfs = tmp.path().join("rootfs");
        src_tree(&rootfs.join("srv/data"));
        // /data -> /srv/data must resolve inside the rootfs, and /escape -> ../../.. must not leave it.
        std::os::unix::fs::symlink("/srv/data", rootfs.join("data")).unwrap();
        std::os::unix::fs::symlink("../../../../..", rootfs.join("escape")).unwrap();
        let store = VolumeStore::open(tmp.path()).unwrap();
        let v = store.create(Some("viasymlink"), BTreeMap::new()).unwrap();
        copy_up_from_rootfs(&rootfs, Path::new("/data"), &v.mountpoint)
            .unwrap()
            .unwrap();
        check_copy(&v.mountpoint);
        let w = store.create(Some("escape"), BTreeMap::new()).unwrap();
        copy_up_from_rootfs(&rootfs, Path::new("/escape"), &w.mountpoint)
            .unwrap()
            .unwrap();
        // The escape resolved to the rootfs itself, never to the host's /.
        assert!(w.mountpoint.join("srv/data/conf").exists());
        assert!(!w.mountpoint.join("etc").exists());
    }
}
