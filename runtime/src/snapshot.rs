//! Overlay root file systems for containers: a snapshot is a directory holding `upper/`, `work/` and
//! `merged/`, with an overlay of image layers (read-only lowerdirs) mounted on `merged/`. It also
//! computes `berth diff` from the upper directory.
//!
//! Overlay is mounted with `redirect_dir=off,metacopy=off,index=off` (each dropped only if the kernel
//! does not know it) so that the upper directory is a faithful diff: a renamed directory is copied up
//! whole instead of recorded as a redirect, and a chmod copies data up instead of metadata only. That
//! keeps `diff`, `commit` and `build` simple and exact.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::image::fsutil;

const META_FILE: &str = "snapshot.json";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Option sets tried in order; the first the kernel accepts is remembered for later mounts.
/// `metacopy` appeared in 4.19, `index` in 4.13, `redirect_dir` in 4.10.
const OPTION_SETS: [&str; 4] = [
    ",redirect_dir=off,metacopy=off,index=off",
    ",redirect_dir=off,index=off",
    ",redirect_dir=off",
    "",
];
/// The option that makes a [`Durability::Volatile`] snapshot (Linux 5.10).
const VOLATILE: &str = ",volatile";
static ACCEPTED_OPTIONS: AtomicUsize = AtomicUsize::new(0);
/// Cleared once the kernel refuses `volatile` (before 5.10): later mounts go without it.
static VOLATILE_ACCEPTED: AtomicBool = AtomicBool::new(true);

/// Errors of snapshot operations, one line each, naming the snapshot directory.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {}: {what}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("snapshot {}: mount overlay ({options}): {source}", dir.display())]
    Mount {
        dir: PathBuf,
        options: String,
        #[source]
        source: io::Error,
    },
    #[error("snapshot {}: {problem}", .dir.display())]
    Invalid { dir: PathBuf, problem: String },
}

impl SnapshotError {
    fn io(dir: &Path, what: impl Into<String>, source: io::Error) -> Self {
        SnapshotError::Io {
            dir: dir.to_path_buf(),
            what: what.into(),
            source,
        }
    }
}

/// Results of snapshot operations.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// What happened to a path in a container's file system, as `berth diff` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChangeKind::Added => "A",
            ChangeKind::Changed => "C",
            ChangeKind::Deleted => "D",
        })
    }
}

/// One line of `berth diff`: `C /etc`, `A /etc/new`, `D /etc/old`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute path inside the container.
    pub path: PathBuf,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.path.display())
    }
}

#[derive(Serialize, Deserialize)]
struct Meta {
    lowers: Vec<PathBuf>,
    #[serde(default)]
    durability: Durability,
}

/// Whether a snapshot's writable layer must survive a crash of the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Synced like any file system: the container may be started again, also after a reboot.
    #[default]
    Durable,
    /// Never synced (overlayfs `volatile`, as podman mounts `--rm` containers): for a container
    /// removed when it exits, whose layer nobody reads after a crash. Unmounting it skips the sync
    /// of the whole upper file system, which otherwise waits for a journal commit on the path of
    /// every `run --rm`. Once unmounted, cleanly or by a crash, the kernel refuses to mount it
    /// again (its work directory says `incompat/volatile`): it is unmounted only at removal.
    Volatile,
}

/// A container's overlay root file system. The value is a handle: the mount lives on until
/// [`Snapshot::unmount`] or [`Snapshot::remove`], and [`Snapshot::load`] finds it again after the
/// agent restarts.
#[derive(Clone, Debug)]
pub struct Snapshot {
    dir: PathBuf,
    lowers: Vec<PathBuf>,
    durability: Durability,
}

impl Snapshot {
    /// Creates `dir/upper`, `dir/work`, `dir/merged` (and `dir/empty` as the single lowerdir when
    /// `lowers` is empty, for scratch images), records the lowers in `dir/snapshot.json` and mounts
    /// the overlay. `lowers` are top layer first, as [`crate::image::Store::lowerdirs`] gives them.
    /// The record is not durable until [`Snapshot::persist`].
    pub fn prepare(dir: &Path, lowers: &[PathBuf], durability: Durability) -> Result<Snapshot> {
        for l in lowers {
            check_option_path(dir, l)?;
        }
        check_option_path(dir, dir)?;
        let mut lowers = lowers.to_vec();
        let mut dirs = vec!["upper", "work", "merged"];
        if lowers.is_empty() {
            dirs.push("empty");
            lowers.push(dir.join("empty"));
        }
        fs::create_dir_all(dir).map_err(|e| SnapshotError::io(dir, "create", e))?;
        // merged/ exposes the image's setuid binaries: no host user may reach it.
        fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| SnapshotError::io(dir, "chmod", e))?;
        for d in dirs {
            match fs::create_dir(dir.join(d)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(SnapshotError::io(dir, format!("create {d}/"), e)),
            }
        }
        let meta = serde_json::to_vec_pretty(&Meta {
            lowers: lowers.clone(),
            durability,
        })
        .map_err(|e| SnapshotError::io(dir, "encode snapshot.json", e.into()))?;
        crate::atomic_file::replace(&dir.join(META_FILE), &meta)
            .map_err(|e| SnapshotError::io(dir, "write snapshot.json", e))?;
        let snap = Snapshot {
            dir: dir.to_path_buf(),
            lowers,
            durability,
        };
        snap.mount()?;
        Ok(snap)
    }

    /// The snapshot prepared earlier in `dir` (after an agent restart); mounts nothing.
    pub fn load(dir: &Path) -> Result<Snapshot> {
        let bytes = fs::read(dir.join(META_FILE))
            .map_err(|e| SnapshotError::io(dir, "read snapshot.json", e))?;
        let meta: Meta = serde_json::from_slice(&bytes)
            .map_err(|e| SnapshotError::io(dir, "parse snapshot.json", e.into()))?;
        Ok(Snapshot {
            dir: dir.to_path_buf(),
            lowers: meta.lowers,
            durability: meta.durability,
        })
    }

    /// Makes the record [`Snapshot::prepare`] wrote durable. Apart so that a container's monitor can
    /// start setting up while the fsyncs run. A volatile snapshot's record is not synced: after a
    /// crash of the host its layer cannot be mounted again, and its container is only removed.
    pub fn persist(&self) -> Result<()> {
        if self.durability == Durability::Volatile {
            return Ok(());
        }
        crate::atomic_file::sync(&self.dir.join(META_FILE))
            .map_err(|e| SnapshotError::io(&self.dir, "sync snapshot.json", e))
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The container's root file system (the overlay mount point).
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }

    /// The writable layer: what the container changed.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// The read-only layers, top first.
    pub fn lowers(&self) -> &[PathBuf] {
        &self.lowers
    }

    /// Whether the writable layer is synced.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Mounts the overlay on `merged/` (nothing to do if it is mounted). Uses mount(2) directly;
    /// when the option string would exceed a page, the lowerdirs are given relative to their common
    /// parent from a helper thread that has its own working directory (unshare(CLONE_FS) + chdir), so
    /// the process's cwd is never touched.
    pub fn mount(&self) -> Result<()> {
        if self.is_mounted()? {
            return Ok(());
        }
        let upper = self.upper();
        let work = self.dir.join("work");
        let merged = self.merged();
        let page = page_size();
        let abs: Vec<&Path> = self.lowers.iter().map(|p| p.as_path()).collect();
        let common = common_parent(&abs);
        let volatile = if self.durability == Durability::Volatile
            && VOLATILE_ACCEPTED.load(Ordering::Relaxed)
        {
            VOLATILE
        } else {
            ""
        };
        let longest_extra = volatile.len() + OPTION_SETS[0].len();
        let fits = |lowers: &[PathBuf]| {
            option_string(lowers, &upper, &work, "").len() + longest_extra < page
        };
        let (chdir, lowers) = if fits(&self.lowers) {
            (None, self.lowers.clone())
        } else {
            let common = common.ok_or_else(|| SnapshotError::Invalid {
                dir: self.dir.clone(),
                problem: "too many layers for one overlay mount".into(),
            })?;
            let rel: Vec<PathBuf> = self
                .lowers
                .iter()
                .map(|l| {
                    l.strip_prefix(&common)
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|_| l.clone())
                })
                .collect();
            if !fits(&rel) {
                return Err(SnapshotError::Invalid {
                    dir: self.dir.clone(),
                    problem: format!(
                        "too many layers ({}) for one overlay mount: the options exceed a page",
                        rel.len()
                    ),
                });
            }
            (Some(common), rel)
        };
        let start = ACCEPTED_OPTIONS.load(Ordering::Relaxed);
        let mut first_err = None;
        for (i, extra) in OPTION_SETS.iter().enumerate().skip(start) {
            let data = option_string(&lowers, &upper, &work, &format!("{volatile}{extra}"));
            match mount_overlay(&merged, &data, chdir.as_deref()) {
                Ok(()) => {
                    ACCEPTED_OPTIONS.store(i, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    first_err.get_or_insert((data, e));
                }
                Err(e) => {
                    return Err(SnapshotError::Mount {
                        dir: self.dir.clone(),
                        options: data,
                        source: e,
                    })
                }
            }
        }
        if !volatile.is_empty() {
            // Every set refused with `volatile`: a kernel without it mounts the plain overlay.
            let plain = Snapshot {
                durability: Durability::Durable,
                ..self.clone()
            };
            if plain.mount().is_ok() {
                VOLATILE_ACCEPTED.store(false, Ordering::Relaxed);
                return Ok(());
            }
        }
        let (options, source) = first_err.expect("at least one option set was tried");
        Err(SnapshotError::Mount {
            dir: self.dir.clone(),
            options,
            source,
        })
    }

    /// Unmounts `merged/` lazily (MNT_DETACH, as Docker's overlay driver does). A plain unmount waits
    /// for an RCU grace period while the dead container's mount namespace still holds a copy of the
    /// mount: 0.5 ms typically and up to 13 ms here, on the path of every `rm` and `run --rm`; the
    /// detach returns in 50 us. Not mounted is fine.
    pub fn unmount(&self) -> Result<()> {
        let merged = self.merged();
        let c = path_cstr(&merged).map_err(|e| SnapshotError::io(&self.dir, "unmount", e))?;
        // SAFETY: valid C string.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(()),
            _ => Err(SnapshotError::io(&self.dir, "unmount", err)),
        }
    }

    /// Is something mounted on `merged/`? statx's `STATX_ATTR_MOUNT_ROOT` answers in one syscall;
    /// kernels before 5.8 fall back to /proc/self/mountinfo.
    pub fn is_mounted(&self) -> Result<bool> {
        let merged = self.merged();
        let c = path_cstr(&merged).map_err(|e| SnapshotError::io(&self.dir, "stat merged/", e))?;
        let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
        // SAFETY: valid C string and output buffer.
        let r = unsafe {
            libc::statx(
                libc::AT_FDCWD,
                c.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                0,
                stx.as_mut_ptr(),
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::NotFound {
                return Ok(false);
            }
            return Err(SnapshotError::io(&self.dir, "stat merged/", e));
        }
        // SAFETY: statx succeeded (and the buffer was zeroed).
        let stx = unsafe { stx.assume_init() };
        let flag = libc::STATX_ATTR_MOUNT_ROOT as u64;
        if stx.stx_attributes_mask & flag != 0 {
            return Ok(stx.stx_attributes & flag != 0);
        }
        let merged = fs::canonicalize(&merged)
            .map_err(|e| SnapshotError::io(&self.dir, "resolve merged/", e))?;
        let info = fs::read("/proc/self/mountinfo")
            .map_err(|e| SnapshotError::io(&self.dir, "read /proc/self/mountinfo", e))?;
        let found = mount_points(&info).any(|p| p == merged.as_os_str().as_bytes());
        Ok(found)
    }

    /// Unmounts and deletes the snapshot directory with the container's changes.
    pub fn remove(self) -> Result<()> {
        self.unmount()?;
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SnapshotError::io(&self.dir, "remove", e)),
        }
    }

    /// The container's changes relative to its image, sorted by path: a whiteout (char device 0/0)
    /// is `D`, the lower contents hidden by an opaque directory are `D`, a path in the upper
    /// directory that exists in a lower layer is `C` (directories there hold changes: docker shows
    /// them as `C` too), anything else `A`.
    pub fn diff(&self) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        self.walk(Path::new(""), false, &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path).then(a.kind.cmp(&b.kind)));
        Ok(out)
    }

    fn walk(&self, rel: &Path, hidden_below: bool, out: &mut Vec<Change>) -> Result<()> {
        let dir = self.upper().join(rel);
        let entries = fs::read_dir(&dir)
            .map_err(|e| SnapshotError::io(&self.dir, format!("read {}", dir.display()), e))?;
        for ent in entries {
            let ent = ent.map_err(|e| SnapshotError::io(&self.dir, "read upper/", e))?;
            let child = rel.join(ent.file_name());
            let path = Path::new("/").join(&child);
            let st = fs::symlink_metadata(ent.path())
                .map_err(|e| SnapshotError::io(&self.dir, format!("stat {}", path.display()), e))?;
            if is_whiteout(&st) {
                out.push(Change {
                    kind: ChangeKind::Deleted,
                    path,
                });
                continue;
            }
            let in_lower = self.in_lowers(&child)?;
            out.push(Change {
                kind: if in_lower {
                    ChangeKind::Changed
                } else {
                    ChangeKind::Added
                },
                path: path.clone(),
            });
            if st.is_dir() {
                let opaque = fsutil::lgetxattr(&ent.path(), OPAQUE_XATTR)
                    .map_err(|e| {
                        SnapshotError::io(
                            &self.dir,
                            format!("read xattrs of {}", path.display()),
                            e,
                        )
                    })?
                    .is_some_and(|v| v == b"y");
                // Below an opaque directory nothing of the lowers shows through, whether or not
                // overlay marked the subdirectory itself.
                if (opaque || hidden_below) && in_lower {
                    for name in self.lower_children(&child)? {
                        if fs::symlink_metadata(ent.path().join(&name)).is_err() {
                            out.push(Change {
                                kind: ChangeKind::Deleted,
                                path: path.join(&name),
                            });
                        }
                    }
                }
                self.walk(&child, hidden_below || opaque, out)?;
            }
        }
        Ok(())
    }

    /// Does `rel` exist in the merged view of the lower layers? Walks each layer top-down one
    /// component at a time (never through a symlink), honouring whiteouts, opaque directories and
    /// non-directories that hide deeper paths.
    fn in_lowers(&self, rel: &Path) -> Result<bool> {
        let comps: Vec<Component> = rel.components().collect();
        for lower in &self.lowers {
            let mut p = lower.clone();
            let mut opaque_above = false;
            let mut missing = false;
            for (i, c) in comps.iter().enumerate() {
                p.push(c);
                let st = match fs::symlink_metadata(&p) {
                    Ok(st) => st,
                    Err(e) if matches!(e.kind(), io::ErrorKind::NotFound) => {
                        missing = true;
                        break;
                    }
                    Err(e) => {
                        return Err(SnapshotError::io(
                            &self.dir,
                            format!("stat {}", p.display()),
                            e,
                        ))
                    }
                };
                if is_whiteout(&st) {
                    return Ok(false);
                }
                if i + 1 == comps.len() {
                    return Ok(true);
                }
                if !st.is_dir() {
                    return Ok(false);
                }
                if fsutil::lgetxattr(&p, OPAQUE_XATTR)
                    .map_err(|e| {
                        SnapshotError::io(&self.dir, format!("read xattrs of {}", p.display()), e)
                    })?
                    .is_some_and(|v| v == b"y")
                {
                    opaque_above = true;
                }
            }
            if missing && opaque_above {
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// Names visible in the lower layers' merged directory `rel`.
    fn lower_children(&self, rel: &Path) -> Result<Vec<std::ffi::OsString>> {
        let mut names = std::collections::BTreeSet::new();
        for lower in &self.lowers {
            let p = lower.join(rel);
            if let Ok(rd) = fs::read_dir(&p) {
                for e in rd.flatten() {
                    names.insert(e.file_name());
                }
            }
        }
        let mut out = Vec::new();
        for n in names {
            if self.in_lowers(&rel.join(&n))? {
                out.push(n);
            }
        }
        Ok(out)
    }
}

fn is_whiteout(st: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    st.file_type().is_char_device() && st.rdev() == 0
}

fn path_cstr(p: &Path) -> io::Result<CString> {
    fsutil::cstr(p.as_os_str().as_bytes())
}

/// Paths in overlay options cannot contain the separators `,` and `:` (nor `\`, the escape).
fn check_option_path(dir: &Path, p: &Path) -> Result<()> {
    if p.as_os_str()
        .as_bytes()
        .iter()
        .any(|b| matches!(b, b',' | b':' | b'\\'))
    {
        return Err(SnapshotError::Invalid {
            dir: dir.to_path_buf(),
            problem: format!(
                "path {} contains ',', ':' or '\\', which overlay options cannot carry",
                p.display()
            ),
        });
    }
    Ok(())
}

fn option_string(lowers: &[PathBuf], upper: &Path, work: &Path, extra: &str) -> String {
    let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    format!(
        "lowerdir={},upperdir={},workdir={}{extra}",
        lower.join(":"),
        upper.display(),
        work.display()
    )
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// The deepest directory containing all `paths`.
fn common_parent(paths: &[&Path]) -> Option<PathBuf> {
    let first = paths.first()?.parent()?;
    let mut common: Vec<Component> = first.components().collect();
    for p in &paths[1..] {
        let parent: Vec<Component> = p.parent()?.components().collect();
        let n = common
            .iter()
            .zip(parent.iter())
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(n);
    }
    if common.is_empty() {
        return None;
    }
    Some(common.iter().collect())
}

fn mount_overlay(target: &Path, data: &str, chdir: Option<&Path>) -> io::Result<()> {
    let target = path_cstr(target)?;
    let data = CString::new(data)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in mount options"))?;
    let raw_mount = || -> io::Result<()> {
        // SAFETY: valid C strings; no flags.
        let r = unsafe {
            libc::mount(
                c"overlay".as_ptr(),
                target.as_ptr(),
                c"overlay".as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    match chdir {
        None => raw_mount(),
        Some(dir) => {
            let dir = path_cstr(dir)?;
            std::thread::scope(|s| {
                s.spawn(|| {
                    // This thread gets its own cwd so that the chdir below does not move the
                    // process's other threads.
                    // SAFETY: plain syscalls on valid C strings.
                    if unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // SAFETY: valid C string.
                    if unsafe { libc::chdir(dir.as_ptr()) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    raw_mount()
                })
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("mount helper thread panicked")))
            })
        }
    }
}

/// Mount points (field 5) of /proc/self/mountinfo, with octal escapes (`\040`) decoded.
fn mount_points(info: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    info.split(|b| *b == b'\n').filter_map(|line| {
        let field = line.split(|b| *b == b' ').nth(4)?;
        let mut out = Vec::with_capacity(field.len());
        let mut i = 0;
        while i < field.len() {
            if field[i] == b'\\'
                && i + 3 < field.len()
                && field[i + 1..i + 4]
                    .iter()
                    .all(|c| (b'0'..=b'7').contains(c))
            {
                let v = field[i + 1..i + 4]
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            } else {
                out.push(field[i]);
                i += 1;
            }
        }
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    //! Real overlayfs: every test works under its own temporary directory, and a guard unmounts
    //! whatever it mounted even when an assertion fails.

    use super::*;
    use std::os::unix::fs::FileTypeExt;
    use std::time::Instant;

    struct Guard {
        tmp: tempfile::TempDir,
        mounted: Vec<PathBuf>,
    }

    impl Guard {
        fn new() -> Guard {
            Guard {
                tmp: tempfile::Builder::new()
                    .prefix("berth-snapshot-test-")
                    .tempdir()
                    .expect("create a temporary directory"),
                mounted: Vec::new(),
            }
        }

        fn path(&self) -> &Path {
            self.tmp.path()
        }

        fn lower(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
            let dir = self.path().join("layers").join(name);
            fs::create_dir_all(&dir).unwrap();
            for (f, content) in files {
                let p = dir.join(f);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(p, content).unwrap();
            }
            dir
        }

        fn prepare(&mut self, name: &str, lowers: &[PathBuf]) -> Snapshot {
            let dir = self.path().join("containers").join(name);
            self.mounted.push(dir.join("merged"));
            let snap = Snapshot::prepare(&dir, lowers, Durability::Durable).unwrap();
            snap.persist().unwrap();
            snap
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            for m in &self.mounted {
                if let Ok(c) = path_cstr(m) {
                    // SAFETY: valid C string; failure (not mounted) is fine.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
            }
        }
    }

    fn changes(s: &Snapshot) -> Vec<String> {
        s.diff().unwrap().iter().map(|c| c.to_string()).collect()
    }

    fn in_mountinfo(p: &Path) -> bool {
        let info = fs::read("/proc/self/mountinfo").unwrap();
        let p = fs::canonicalize(p).unwrap_or(p.to_path_buf());
        let found = mount_points(&info).any(|m| m == p.as_os_str().as_bytes());
        found
    }

    #[test]
    fn writes_go_to_upper_and_deletes_become_whiteouts() {
        let mut g = Guard::new();
        let base = g.lower(
            "base",
            &[
                ("etc/passwd", "root\n"),
                ("etc/group", "root\n"),
                ("bin/sh", "sh"),
            ],
        );
        let top = g.lower("top", &[("etc/hostname", "img\n")]);
        let s = g.prepare("c1", &[top.clone(), base.clone()]);
        assert!(s.is_mounted().unwrap());
        assert!(in_mountinfo(&s.merged()));
        let m = s.merged();
        assert_eq!(fs::read_to_string(m.join("etc/passwd")).unwrap(), "root\n");
        assert_eq!(fs::read_to_string(m.join("etc/hostname")).unwrap(), "img\n");

        fs::write(m.join("etc/new"), "new").unwrap();
        fs::write(m.join("etc/passwd"), "root\nuser\n").unwrap();
        fs::remove_file(m.join("etc/group")).unwrap();
        fs::create_dir_all(m.join("data/sub")).unwrap();
        fs::write(m.join("data/sub/f"), "f").unwrap();

        assert_eq!(
            fs::read_to_string(s.upper().join("etc/new")).unwrap(),
            "new"
        );
        assert!(!base.join("etc/new").exists() && !top.join("etc/new").exists());
        assert_eq!(
            fs::read_to_string(base.join("etc/passwd")).unwrap(),
            "root\n"
        );
        let wh = fs::symlink_metadata(s.upper().join("etc/group")).unwrap();
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
        assert!(base.join("etc/group").exists());

        assert_eq!(
            changes(&s),
            vec![
                "A /data",
                "A /data/sub",
                "A /data/sub/f",
                "C /etc",
                "D /etc/group",
                "A /etc/new",
                "C /etc/passwd"
            ]
        );
    }

    #[test]
    fn opaque_directory_reports_its_lower_contents_deleted() {
        let mut g = Guard::new();
        let base = g.lower(
            "base",
            &[("app/a", "1"), ("app/b", "2"), ("app/keep/x", "3")],
        );
        // A lower layer that already deleted app/b and marked nothing else.
        let mid = g.path().join("layers/mid");
        fs::create_dir_all(mid.join("app")).unwrap();
        let name = path_cstr(&mid.join("app/b")).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mknod(name.as_ptr(), libc::S_IFCHR, 0) }, 0);
        let s = g.prepare("c1", &[mid, base]);
        let m = s.merged();
        assert!(!m.join("app/b").exists());
        fs::remove_dir_all(m.join("app")).unwrap();
        fs::create_dir(m.join("app")).unwrap();
        fs::write(m.join("app/a"), "new").unwrap();
        assert_eq!(
            fsutil::lgetxattr(&s.upper().join("app"), OPAQUE_XATTR)
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(changes(&s), vec!["C /app", "C /app/a", "D /app/keep"]);
    }

    #[test]
    fn snapshots_over_the_same_lowers_are_isolated() {
        let mut g = Guard::new();
        let base = g.lower("base", &[("shared", "orig")]);
        let a = g.prepare("a", std::slice::from_ref(&base));
        let b = g.prepare("b", std::slice::from_ref(&base));
        fs::write(a.merged().join("shared"), "changed by a").unwrap();
        fs::write(a.merged().join("only-a"), "a").unwrap();
        assert_eq!(
            fs::read_to_string(b.merged().join("shared")).unwrap(),
            "orig"
        );
        assert!(!b.merged().join("only-a").exists());
        assert_eq!(fs::read_to_string(base.join("shared")).unwrap(), "orig");
        assert!(changes(&b).is_empty());
        assert_eq!(changes(&a), vec!["A /only-a", "C /shared"]);
    }

    #[test]
    fn unmount_and_remove_leave_nothing() {
        let mut g = Guard::new();
        let base = g.lower("base", &[("f", "x")]);
        let s = g.prepare("c", &[base]);
        let merged = s.merged();
        s.unmount().unwrap();
        assert!(!s.is_mounted().unwrap());
        assert!(!in_mountinfo(&merged));
        s.unmount().unwrap();
        // Re-attach from disk and mount again, as the agent does after a restart.
        let again = Snapshot::load(s.dir()).unwrap();
        again.mount().unwrap();
        again.mount().unwrap();
        assert_eq!(fs::read_to_string(again.merged().join("f")).unwrap(), "x");
        // A busy mount (an open directory inside) is detached.
        let busy = fs::File::open(again.merged()).unwrap();
        let dir = again.dir().to_path_buf();
        again.remove().unwrap();
        drop(busy);
        assert!(!in_mountinfo(&merged));
        assert!(!dir.exists());
    }

    #[test]
    fn scratch_images_get_an_empty_lower() {
        let mut g = Guard::new();
        let s = g.prepare("scratch", &[]);
        assert_eq!(fs::read_dir(s.merged()).unwrap().count(), 0);
        fs::write(s.merged().join("hello"), "hi").unwrap();
        assert_eq!(changes(&s), vec!["A /hello"]);
        assert_eq!(s.lowers(), &[s.dir().join("empty")]);
    }

    /// The mount's line of /proc/self/mountinfo (its super options included).
    fn mountinfo_line(target: &Path) -> String {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let target = target.to_str().unwrap();
        info.lines()
            .find(|l| l.split(' ').nth(4) == Some(target))
            .unwrap_or_else(|| panic!("{target} is not mounted"))
            .to_owned()
    }

    #[test]
    fn volatile_snapshots_are_mounted_volatile_once() {
        let mut g = Guard::new();
        let lower = g.lower("l", &[("f", "x")]);
        let dir = g.path().join("containers").join("v");
        g.mounted.push(dir.join("merged"));
        let volatile = Snapshot::prepare(&dir, &[lower.clone()], Durability::Volatile).unwrap();
        let durable = g.prepare("d", &[lower]);
        assert!(mountinfo_line(&volatile.merged()).contains("volatile"));
        assert!(!mountinfo_line(&durable.merged()).contains("volatile"));
        // An agent that restarts finds it mounted, and volatile, from its record.
        let loaded = Snapshot::load(&dir).unwrap();
        assert_eq!(loaded.durability(), Durability::Volatile);
        loaded.mount().unwrap();
        assert_eq!(fs::read_to_string(loaded.merged().join("f")).unwrap(), "x");
        // Once unmounted the kernel refuses it, as after a crash: the error names the option.
        loaded.unmount().unwrap();
        let err = loaded.mount().unwrap_err().to_string();
        assert!(err.contains("volatile"), "{err}");
        assert!(durable.unmount().is_ok() && durable.mount().is_ok());
    }

    #[test]
    fn long_lowerdir_lists_are_mounted_with_relative_paths() {
        let mut g = Guard::new();
        let mut lowers = Vec::new();
        for i in 0..60 {
            let name = format!("{i:02}-{}", "x".repeat(60));
            lowers.push(g.lower(&name, &[(&format!("f{i}"), "v")]));
        }
        lowers.reverse();
        let upper = g.path().join("u");
        assert!(option_string(&lowers, &upper, &upper, "").len() > page_size());
        let cwd = std::env::current_dir().unwrap();
        let s = g.prepare("many", &lowers);
        assert_eq!(std::env::current_dir().unwrap(), cwd);
        for i in [0, 30, 59] {
            assert_eq!(
                fs::read_to_string(s.merged().join(format!("f{i}"))).unwrap(),
                "v"
            );
        }
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info
            .lines()
            .find(|l| l.contains(s.merged().to_str().unwrap()))
            .unwrap();
        println!("{line}");
        // This kernel (>= 4.19) takes the full option set.
        assert_eq!(ACCEPTED_OPTIONS.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn rejects_paths_overlay_options_cannot_carry() {
        let g = Guard::new();
        let bad = g.path().join("a,b");
        let err = Snapshot::prepare(&g.path().join("c"), &[bad], Durability::Durable).unwrap_err();
        assert!(err.to_string().contains("cannot carry"), "{err}");
    }

    /// Mount + unmount cost with three lowers (printed, not asserted: shared machines are noisy).
    #[test]
    fn mount_unmount_cost() {
        let mut g = Guard::new();
        let lowers: Vec<PathBuf> = (0..3)
            .map(|i| g.lower(&format!("l{i}"), &[("f", "x")]))
            .collect();
        let s = g.prepare("bench", &lowers);
        s.unmount().unwrap();
        let merged = path_cstr(&s.merged()).unwrap();
        let data = option_string(
            &lowers,
            &s.upper(),
            &s.dir().join("work"),
            OPTION_SETS[ACCEPTED_OPTIONS.load(Ordering::Relaxed)],
        );
        let mut mounts = Vec::new();
        let mut umounts = Vec::new();
        let mut api = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            mount_overlay(&s.merged(), &data, None).unwrap();
            mounts.push(t.elapsed());
            let t = Instant::now();
            // SAFETY: valid C string.
            assert_eq!(unsafe { libc::umount2(merged.as_ptr(), 0) }, 0);
            umounts.push(t.elapsed());
            let t = Instant::now();
            s.mount().unwrap();
            s.unmount().unwrap();
            api.push(t.elapsed());
        }
        for v in [&mut mounts, &mut umounts, &mut api] {
            v.sort();
        }
        println!(
            "overlay, 3 lowers, median of 200: mount(2) {:?}, umount2 {:?}; Snapshot::mount+unmount (with statx checks) {:?}",
            mounts[100], umounts[100], api[100]
        );
    }
}
