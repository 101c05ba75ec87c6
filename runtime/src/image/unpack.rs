//! The safe layer unpacker: turns an uncompressed layer tar stream into a directory that can serve as
//! an overlay lowerdir, without ever letting a hostile archive write outside that directory.
//!
//! Rules, in the order they are applied to each entry:
//! - names are normalised; an absolute name, a `..` component or a NUL byte is an error naming the
//!   entry (docker also refuses these);
//! - the parent directory is resolved below the layer root with `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_SYMLINKS)`: a path that passes through a symlink (even one created by an earlier
//!   entry) is refused rather than written through; missing parents are created (0755, root);
//! - the object is then created relative to that parent fd with `O_NOFOLLOW` (files), `mkdirat`,
//!   `symlinkat` (the target is stored, never followed), `linkat` (hard links only to earlier
//!   entries of this layer, resolved the same way) or `mknodat` (char, block, fifo);
//! - ownership (`fchown`/`lchown`), mode including setuid/setgid/sticky, extended attributes (PAX
//!   `SCHILY.xattr.*`, except `trusted.*` and `security.*` other than `security.capability`) and
//!   times are applied to the created object; directory times are set last, after their contents;
//! - OCI whiteouts become overlay whiteouts: `.wh.NAME` a character device 0/0 named NAME,
//!   `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory.
//!
//! An entry that replaces an earlier one of the same name (archives may contain duplicates) removes
//! it first, except that a directory replacing a directory is merged, as tar does.

use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::error::{ImageError, Result};
use super::fsutil::{self, Time};
use super::tarstream::{Header, Kind, TarReader};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";
const COPY_BUFFER: usize = 256 << 10;

/// What an unpack created, for sizes in listings and for benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Archive members processed (extension headers not counted).
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Character and block devices and fifos.
    pub devices: u64,
    /// Whiteouts and opaque markers.
    pub whiteouts: u64,
    /// Bytes of regular file content written: the layer's size as `berth images` reports it.
    pub bytes: u64,
}

/// Unpacks the uncompressed tar stream `reader` into the existing (normally empty) directory `dest`,
/// safely (see the module documentation). The stream is read to its end, past the end-of-archive
/// marker, so that a digest computed around `reader` covers every byte.
///
/// On error the partially unpacked `dest` is left for the caller to remove: the store unpacks into a
/// temporary directory and deletes it.
pub fn unpack_layer(reader: impl Read, dest: &Path) -> Result<UnpackStats> {
    let root = fsutil::open_dir(dest)
        .map_err(|e| ImageError::io(format!("open layer directory {}", dest.display()), e))?;
    let mut tar = TarReader::new(reader);
    let mut u = Unpacker {
        root: Rc::new(root),
        cache: None,
        dir_times: Vec::new(),
        buf: vec![0u8; COPY_BUFFER],
        stats: UnpackStats::default(),
    };
    while let Some(h) = tar.next_header()? {
        u.stats.entries += 1;
        u.entry(&mut tar, &h)?;
    }
    u.finish()?;
    tar.drain()?;
    Ok(u.stats)
}

/// A normalised entry name: relative, no `.`/`..`/empty components. Empty means the layer root.
fn normalize(raw: &[u8]) -> std::result::Result<PathBuf, &'static str> {
    if raw.is_empty() {
        return Err("empty name");
    }
    if raw.contains(&0) {
        return Err("NUL byte in name");
    }
    if raw[0] == b'/' {
        return Err("absolute name: layer entries must be relative to the layer root");
    }
    let mut out = PathBuf::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("'..' component: the name would escape the layer"),
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

fn split_parent(rel: &Path) -> (&Path, &[u8]) {
    let name = rel.file_name().map(|n| n.as_bytes()).unwrap_or(b"");
    (rel.parent().unwrap_or(Path::new("")), name)
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// May this extended attribute from an archive be set? `trusted.*` (overlay's own metadata among
/// them) and `security.*` (SELinux labels, IMA) are host policy, not image content; file
/// capabilities are image content.
fn xattr_allowed(name: &[u8]) -> bool {
    if name.starts_with(b"trusted.") {
        return false;
    }
    if name.starts_with(b"security.") {
        return name == b"security.capability";
    }
    !name.is_empty()
}

struct Unpacker {
    root: Rc<OwnedFd>,
    /// The last parent directory resolved, by relative path; entries come grouped by directory, so
    /// this saves a path walk per entry. Cleared whenever anything is removed.
    cache: Option<(PathBuf, Rc<OwnedFd>)>,
    dir_times: Vec<(PathBuf, Time, Time)>,
    buf: Vec<u8>,
    stats: UnpackStats,
}

impl Unpacker {
    fn entry<R: Read>(&mut self, tar: &mut TarReader<R>, h: &Header) -> Result<()> {
        let err = |p: String| ImageError::entry(&h.path, p);
        let rel = normalize(&h.path).map_err(|p| err(p.to_string()))?;
        let atime = h.atime.unwrap_or(h.mtime);
        if rel.as_os_str().is_empty() {
            if h.kind != Kind::Dir {
                return Err(err("the layer root can only be a directory".into()));
            }
            let root = self.root.clone();
            self.apply_fd_meta(root.as_fd(), h)?;
            self.dir_times.push((PathBuf::new(), atime, h.mtime));
            return Ok(());
        }
        let (parent_rel, name) = split_parent(&rel);
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(parent_rel, name, target, h);
        }
        let parent = self.parent(parent_rel, &h.path)?;
        let parent = parent.as_fd();
        let cname = fsutil::cstr(name).map_err(|e| err(e.to_string()))?;
        match h.kind {
            Kind::File => {
                let fd = self
                    .create(parent, &cname, false, |p, n| {
                        fsutil::openat(p, n, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)
                    })
                    .map_err(|e| err(format!("create file: {e}")))?
                    .ok_or_else(|| err("create file: a directory is in the way".into()))?;
                let mut file = File::from(fd);
                self.write_data(tar, &mut file, h)?;
                self.apply_fd_meta(file.as_fd(), h)?;
                fsutil::futimens(file.as_fd(), atime, h.mtime)
                    .map_err(|e| err(format!("set times: {e}")))?;
                self.stats.files += 1;
            }
            Kind::Dir => {
                self.create(parent, &cname, true, |p, n| fsutil::mkdirat(p, n, 0o700))
                    .map_err(|e| err(format!("create directory: {e}")))?;
                let fd = fsutil::openat(parent, &cname, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(|e| err(format!("open directory: {e}")))?;
                self.apply_fd_meta(fd.as_fd(), h)?;
                self.dir_times.push((rel.clone(), atime, h.mtime));
                self.stats.dirs += 1;
            }
            Kind::Symlink => {
                if h.link.is_empty() {
                    return Err(err("symlink with an empty target".into()));
                }
                let target =
                    fsutil::cstr(&h.link).map_err(|e| err(format!("symlink target: {e}")))?;
                self.create(parent, &cname, false, |p, n| {
                    fsutil::symlinkat(&target, p, n)
                })
                .map_err(|e| err(format!("create symlink: {e}")))?;
                self.apply_at_meta(parent, &cname, h, false)?;
                self.stats.symlinks += 1;
            }
            Kind::Hardlink => {
                self.hardlink(parent, &cname, &rel, h)?;
                self.stats.hardlinks += 1;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let (fmt, dev) = match h.kind {
                    Kind::Char => (libc::S_IFCHR, fsutil::makedev(h.dev_major, h.dev_minor)),
                    Kind::Block => (libc::S_IFBLK, fsutil::makedev(h.dev_major, h.dev_minor)),
                    _ => (libc::S_IFIFO, 0),
                };
                self.create(parent, &cname, false, |p, n| {
                    fsutil::mknodat(p, n, fmt | 0o600, dev)
                })
                .map_err(|e| err(format!("create device node: {e}")))?;
                self.apply_at_meta(parent, &cname, h, true)?;
                self.stats.devices += 1;
            }
        }
        Ok(())
    }

    /// Runs `make` to create `name`; if something is already there, removes it (or keeps it when a
    /// directory meets a directory) and tries once more.
    fn create<T>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        is_dir: bool,
        make: impl Fn(BorrowedFd<'_>, &CStr) -> io::Result<T>,
    ) -> io::Result<Option<T>> {
        match make(parent, name) {
            Ok(v) => Ok(Some(v)),
            Err(e) if errno(&e) == libc::EEXIST => {
                let st = fsutil::lstatat(parent, name)?;
                let existing_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                if existing_dir && is_dir {
                    return Ok(None);
                }
                if existing_dir {
                    self.cache = None;
                    fsutil::remove_at(parent, name)?;
                } else {
                    fsutil::unlinkat(parent, name, 0)?;
                }
                make(parent, name).map(Some)
            }
            Err(e) => Err(e),
        }
    }

    fn write_data<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        file: &mut File,
        h: &Header,
    ) -> Result<()> {
        let err = |p: String| ImageError::entry(&h.path, p);
        let regions = match &h.sparse {
            Some(map) => map.clone(),
            None => vec![(0, h.size)],
        };
        let mut written = 0u64;
        for (offset, len) in regions {
            if h.sparse.is_some() {
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| err(format!("seek: {e}")))?;
            }
            let mut left = len;
            while left > 0 {
                let want = left.min(self.buf.len() as u64) as usize;
                let n = match tar.read_data(&mut self.buf[..want]) {
                    Ok(0) => 0,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                    Err(e) => return Err(err(format!("read archive: {e}"))),
                };
                if n == 0 {
                    return Err(err(format!(
                        "archive is truncated: it ends after {written} of the entry's {} bytes",
                        h.size
                    )));
                }
                file.write_all(&self.buf[..n])
                    .map_err(|e| err(format!("write: {e}")))?;
                left -= n as u64;
                written += n as u64;
            }
        }
        if h.sparse.is_some() {
            file.set_len(h.real_size)
                .map_err(|e| err(format!("set sparse file length: {e}")))?;
        }
        self.stats.bytes += h.real_size;
        Ok(())
    }

    /// Owner, mode and xattrs through an open fd (files, directories, the root).
    fn apply_fd_meta(&mut self, fd: BorrowedFd<'_>, h: &Header) -> Result<()> {
        let err = |p: String| ImageError::entry(&h.path, p);
        let (uid, gid) = ids(h)?;
        fsutil::fchown(fd, uid, gid).map_err(|e| err(format!("chown: {e}")))?;
        // After chown, which clears setuid/setgid.
        fsutil::fchmod(fd, h.mode & 0o7777).map_err(|e| err(format!("chmod: {e}")))?;
        for (key, value) in &h.xattrs {
            if !xattr_allowed(key) {
                continue;
            }
            let k = fsutil::cstr(key).map_err(|e| err(format!("xattr name: {e}")))?;
            if let Err(e) = fsutil::fsetxattr(fd, &k, value) {
                xattr_error(h, key, e)?;
            }
        }
        Ok(())
    }

    /// Owner, mode (not for symlinks), xattrs and times of a non-openable object by name.
    fn apply_at_meta(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        h: &Header,
        chmod: bool,
    ) -> Result<()> {
        let err = |p: String| ImageError::entry(&h.path, p);
        let (uid, gid) = ids(h)?;
        fsutil::lchownat(parent, name, uid, gid).map_err(|e| err(format!("chown: {e}")))?;
        if chmod {
            fsutil::fchmodat(parent, name, h.mode & 0o7777)
                .map_err(|e| err(format!("chmod: {e}")))?;
        }
        for (key, value) in &h.xattrs {
            if !xattr_allowed(key) {
                continue;
            }
            let k = fsutil::cstr(key).map_err(|e| err(format!("xattr name: {e}")))?;
            if let Err(e) = fsutil::lsetxattrat(parent, name, &k, value) {
                xattr_error(h, key, e)?;
            }
        }
        fsutil::lutimensat(parent, name, h.atime.unwrap_or(h.mtime), h.mtime)
            .map_err(|e| err(format!("set times: {e}")))
    }

    fn hardlink(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        rel: &Path,
        h: &Header,
    ) -> Result<()> {
        let err = |p: String| ImageError::entry(&h.path, p);
        let target = normalize(&h.link).map_err(|p| err(format!("hard link target: {p}")))?;
        if target.as_os_str().is_empty() {
            return Err(err("hard link to the layer root".into()));
        }
        let (tparent_rel, tname) = split_parent(&target);
        let not_earlier = || {
            err(format!(
                "hard link target {:?} is not an earlier entry of this layer",
                target.display().to_string()
            ))
        };
        let tparent = fsutil::open_beneath(
            self.root.as_fd(),
            tparent_rel,
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .map_err(|e| match errno(&e) {
            libc::ENOENT | libc::ENOTDIR => not_earlier(),
            libc::ELOOP | libc::EXDEV => err(format!(
                "hard link target {:?} passes through a symlink",
                target.display().to_string()
            )),
            _ => err(format!("resolve hard link target: {e}")),
        })?;
        let tcname = fsutil::cstr(tname).map_err(|e| err(e.to_string()))?;
        if target == rel {
            return match fsutil::lstatat(tparent.as_fd(), &tcname) {
                Ok(_) => Ok(()),
                Err(_) => Err(not_earlier()),
            };
        }
        let tst = fsutil::lstatat(tparent.as_fd(), &tcname).map_err(|_| not_earlier())?;
        if tst.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(err("hard link to a directory".into()));
        }
        self.create(parent, name, false, |p, n| {
            fsutil::linkat(tparent.as_fd(), &tcname, p, n)
        })
        .map_err(|e| match errno(&e) {
            libc::ENOENT => not_earlier(),
            _ => err(format!("create hard link: {e}")),
        })?;
        Ok(())
    }

    fn whiteout(
        &mut self,
        parent_rel: &Path,
        name: &[u8],
        target: &[u8],
        h: &Header,
    ) -> Result<()> {
        let err = |p: String| ImageError::entry(&h.path, p);
        let parent = self.parent(parent_rel, &h.path)?;
        if name == OPAQUE_MARKER {
            fsutil::fsetxattr(parent.as_fd(), OPAQUE_XATTR, b"y")
                .map_err(|e| err(format!("mark directory opaque: {e}")))?;
            self.stats.whiteouts += 1;
            return Ok(());
        }
        if target.starts_with(WHITEOUT_PREFIX) {
            // Other `.wh..wh.*` names are aufs bookkeeping with no meaning here.
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(err("whiteout of an invalid name".into()));
        }
        let ctarget = fsutil::cstr(target).map_err(|e| err(e.to_string()))?;
        // A whiteout hides lower layers only; an entry of the same name in this layer wins.
        if fsutil::lstatat(parent.as_fd(), &ctarget).is_ok() {
            return Ok(());
        }
        fsutil::mknodat(parent.as_fd(), &ctarget, libc::S_IFCHR, 0)
            .map_err(|e| err(format!("create whiteout: {e}")))?;
        let (uid, gid) = ids(h)?;
        fsutil::lchownat(parent.as_fd(), &ctarget, uid, gid)
            .map_err(|e| err(format!("chown whiteout: {e}")))?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// The directory `rel` below the root, created if missing; never reached through a symlink.
    fn parent(&mut self, rel: &Path, entry: &[u8]) -> Result<Rc<OwnedFd>> {
        if rel.as_os_str().is_empty() {
            return Ok(self.root.clone());
        }
        if let Some((p, fd)) = &self.cache {
            if p == rel {
                return Ok(fd.clone());
            }
        }
        let fd = match fsutil::open_beneath(
            self.root.as_fd(),
            rel,
            libc::O_RDONLY | libc::O_DIRECTORY,
        ) {
            Ok(fd) => fd,
            Err(e) if matches!(errno(&e), libc::ENOENT | libc::ENOTDIR) => {
                self.make_parents(rel, entry)?
            }
            Err(e) if matches!(errno(&e), libc::ELOOP | libc::EXDEV) => {
                return Err(ImageError::entry(
                    entry,
                    "its parent path passes through a symlink; refusing to write through it",
                ))
            }
            Err(e) => {
                return Err(ImageError::entry(
                    entry,
                    format!("open parent directory: {e}"),
                ))
            }
        };
        let fd = Rc::new(fd);
        self.cache = Some((rel.to_path_buf(), fd.clone()));
        Ok(fd)
    }

    /// Walks `rel` one component at a time with `O_NOFOLLOW`, creating missing directories. A
    /// whiteout in the way (this layer deleted the directory and then adds to it) becomes an opaque
    /// directory.
    fn make_parents(&mut self, rel: &Path, entry: &[u8]) -> Result<OwnedFd> {
        let err = |p: String| ImageError::entry(entry, p);
        let mut cur = fsutil::openat(
            self.root.as_fd(),
            c".",
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .map_err(|e| err(format!("open layer root: {e}")))?;
        let dir_flags = libc::O_RDONLY | libc::O_DIRECTORY;
        for comp in rel.components() {
            let c = fsutil::cstr(comp.as_os_str().as_bytes()).map_err(|e| err(e.to_string()))?;
            let show = comp.as_os_str().to_string_lossy().into_owned();
            let next = match fsutil::openat(cur.as_fd(), &c, dir_flags, 0) {
                Ok(fd) => fd,
                Err(e) if errno(&e) == libc::ENOENT => {
                    match fsutil::mkdirat(cur.as_fd(), &c, 0o755) {
                        Ok(()) => {}
                        Err(e) if errno(&e) == libc::EEXIST => {}
                        Err(e) => {
                            return Err(err(format!("create parent directory {show:?}: {e}")))
                        }
                    }
                    let fd = fsutil::openat(cur.as_fd(), &c, dir_flags, 0)
                        .map_err(|e| err(format!("open parent directory {show:?}: {e}")))?;
                    fsutil::fchmod(fd.as_fd(), 0o755)
                        .map_err(|e| err(format!("chmod parent directory {show:?}: {e}")))?;
                    fd
                }
                Err(e) if errno(&e) == libc::ELOOP => {
                    return Err(err(format!(
                        "parent {show:?} is a symlink; refusing to write through it"
                    )))
                }
                Err(e) if errno(&e) == libc::ENOTDIR => {
                    let st = fsutil::lstatat(cur.as_fd(), &c)
                        .map_err(|e| err(format!("stat parent {show:?}: {e}")))?;
                    if !fsutil::is_whiteout(&st) {
                        return Err(err(format!("parent {show:?} is not a directory")));
                    }
                    self.cache = None;
                    fsutil::unlinkat(cur.as_fd(), &c, 0)
                        .and_then(|_| fsutil::mkdirat(cur.as_fd(), &c, 0o755))
                        .map_err(|e| err(format!("replace whiteout {show:?}: {e}")))?;
                    let fd = fsutil::openat(cur.as_fd(), &c, dir_flags, 0)
                        .map_err(|e| err(format!("open parent directory {show:?}: {e}")))?;
                    fsutil::fchmod(fd.as_fd(), 0o755)
                        .and_then(|_| fsutil::fsetxattr(fd.as_fd(), OPAQUE_XATTR, b"y"))
                        .map_err(|e| err(format!("make {show:?} opaque: {e}")))?;
                    fd
                }
                Err(e) => return Err(err(format!("open parent directory {show:?}: {e}"))),
            };
            cur = next;
        }
        Ok(cur)
    }

    /// Directory times, set after everything inside them has been created.
    fn finish(&mut self) -> Result<()> {
        for (rel, atime, mtime) in self.dir_times.iter().rev() {
            let fd = if rel.as_os_str().is_empty() {
                fsutil::openat(
                    self.root.as_fd(),
                    c".",
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    0,
                )
            } else {
                fsutil::open_beneath(self.root.as_fd(), rel, libc::O_RDONLY | libc::O_DIRECTORY)
            };
            match fd {
                Ok(fd) => fsutil::futimens(fd.as_fd(), *atime, *mtime).map_err(|e| {
                    ImageError::entry(rel.as_os_str().as_bytes(), format!("set times: {e}"))
                })?,
                // Replaced by a later entry: its times were the later entry's business.
                Err(_) => continue,
            }
        }
        Ok(())
    }
}

fn ids(h: &Header) -> Result<(u32, u32)> {
    let uid = u32::try_from(h.uid)
        .map_err(|_| ImageError::entry(&h.path, format!("uid {} is out of range", h.uid)))?;
    let gid = u32::try_from(h.gid)
        .map_err(|_| ImageError::entry(&h.path, format!("gid {} is out of range", h.gid)))?;
    Ok((uid, gid))
}

/// File systems without xattr support (or without user xattrs on special files) skip the attribute
/// with a warning, as docker does; anything else is an error.
fn xattr_error(h: &Header, key: &[u8], e: io::Error) -> Result<()> {
    let name = String::from_utf8_lossy(key);
    if matches!(errno(&e), libc::EOPNOTSUPP | libc::EPERM) && !key.starts_with(b"security.") {
        tracing::warn!(entry = %String::from_utf8_lossy(&h.path), xattr = %name, error = %e, "skipping extended attribute");
        return Ok(());
    }
    Err(ImageError::entry(&h.path, format!("set xattr {name}: {e}")))
}
