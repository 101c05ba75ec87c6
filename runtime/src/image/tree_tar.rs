//! Directory tree → tar stream: the writer behind `commit` (an overlay upper dir becomes a layer),
//! `export` (a container's merged root) and `cp` out of a container or from the host.
//!
//! Every object is reached relative to its parent directory fd and opened with `O_NOFOLLOW`, so a
//! running container that swaps a directory for a symlink mid-walk cannot make the writer read
//! outside the tree. What a layer needs is preserved: ownership, the full mode (setuid, setgid,
//! sticky), modification times, extended attributes (PAX `SCHILY.xattr.*`, except `trusted.*`),
//! hard links (as link entries to the first name seen), symlinks, devices and fifos. Sockets are
//! skipped, as docker does.
//!
//! With [`TreeOptions::overlay_whiteouts`] the overlay's own markers become OCI whiteouts: a
//! character device 0/0 named `NAME` → an empty `.wh.NAME`, and a directory with
//! `trusted.overlay.opaque=y` → an empty `.wh..wh..opq` inside it.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::error::{ImageError, Result};
use super::fsutil;

const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const WHITEOUT_PREFIX: &str = ".wh.";
const PAX_XATTR: &str = "SCHILY.xattr.";

/// What the walk writes and leaves out.
#[derive(Clone, Debug, Default)]
pub struct TreeOptions {
    /// Convert overlay whiteouts and opaque markers to OCI ones (for an upper dir).
    pub overlay_whiteouts: bool,
    /// Archive paths (relative, no leading `/`) left out with everything below them, e.g. the
    /// mount points the runtime created in a container.
    pub exclude: Vec<PathBuf>,
}

/// Writes the contents of directory `dir` (not the directory itself) as a tar stream to `out` and
/// returns the writer after the end-of-archive marker.
pub fn write_dir<W: Write>(dir: &Path, options: &TreeOptions, out: W) -> Result<W> {
    let fd =
        fsutil::open_dir(dir).map_err(|e| ImageError::io(format!("open {}", dir.display()), e))?;
    let mut w = TreeWriter::new(out, options);
    w.children(fd.as_fd(), Path::new(""))?;
    w.finish()
}

/// Writes the object `name` of directory `parent` (recursively when it is a directory) under the
/// archive name `as_name`: the `cp` case, where the source is one file, link or tree.
pub fn write_object<W: Write>(
    parent: BorrowedFd<'_>,
    name: &CStr,
    as_name: &Path,
    out: W,
) -> Result<W> {
    let options = TreeOptions::default();
    let mut w = TreeWriter::new(out, &options);
    w.object(parent, name, as_name)?;
    w.finish()
}

struct TreeWriter<'a, W: Write> {
    tar: tar::Builder<W>,
    options: &'a TreeOptions,
    /// (dev, ino) of files with several links → the archive name they were first written under.
    links: HashMap<(u64, u64), PathBuf>,
}

fn entry_err(path: &Path, what: &str, e: io::Error) -> ImageError {
    ImageError::io(format!("{what} {}", Path::new("/").join(path).display()), e)
}

impl<'a, W: Write> TreeWriter<'a, W> {
    fn new(out: W, options: &'a TreeOptions) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        TreeWriter {
            tar,
            options,
            links: HashMap::new(),
        }
    }

    fn finish(self) -> Result<W> {
        self.tar
            .into_inner()
            .map_err(|e| ImageError::io("finish the archive", e))
    }

    fn children(&mut self, dir: BorrowedFd<'_>, rel: &Path) -> Result<()> {
        let mut names = fsutil::read_dir_fd(dir).map_err(|e| entry_err(rel, "read", e))?;
        names.sort();
        for name in names {
            let child = rel.join(OsStr::from_bytes(name.to_bytes()));
            self.object(dir, &name, &child)?;
        }
        Ok(())
    }

    fn object(&mut self, parent: BorrowedFd<'_>, name: &CStr, path: &Path) -> Result<()> {
        if self.options.exclude.iter().any(|e| e == path) {
            return Ok(());
        }
        let st = match fsutil::lstatat(parent, name) {
            Ok(st) => st,
            // Gone since the directory was read (a running container): nothing to write.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(entry_err(path, "stat", e)),
        };
        let kind = st.st_mode & libc::S_IFMT;
        if self.options.overlay_whiteouts && fsutil::is_whiteout(&st) {
            let mut wh = OsStr::new(WHITEOUT_PREFIX).to_os_string();
            wh.push(OsStr::from_bytes(name.to_bytes()));
            let marker = path.parent().unwrap_or(Path::new("")).join(wh);
            return self.empty_file(&marker, &st);
        }
        let mut header = Header::new_gnu();
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(st.st_uid as u64);
        header.set_gid(st.st_gid as u64);
        header.set_mtime(st.st_mtime.max(0) as u64);
        header.set_size(0);
        match kind {
            libc::S_IFDIR => {
                let fd = fsutil::openat(parent, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(|e| entry_err(path, "open", e))?;
                let opaque = self.xattrs(fd.as_fd(), path)?;
                header.set_entry_type(EntryType::Directory);
                self.tar
                    .append_data(&mut header, path, io::empty())
                    .map_err(|e| entry_err(path, "write", e))?;
                if opaque && self.options.overlay_whiteouts {
                    self.empty_file(&path.join(OPAQUE_MARKER), &st)?;
                }
                self.children(fd.as_fd(), path)
            }
            libc::S_IFREG => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        header.set_entry_type(EntryType::Link);
                        return self
                            .tar
                            .append_link(&mut header, path, first.clone())
                            .map_err(|e| entry_err(path, "write", e));
                    }
                    self.links.insert(key, path.to_path_buf());
                }
                let fd = fsutil::openat(parent, name, libc::O_RDONLY, 0)
                    .map_err(|e| entry_err(path, "open", e))?;
                self.xattrs(fd.as_fd(), path)?;
                let size = st.st_size.max(0) as u64;
                header.set_entry_type(EntryType::Regular);
                header.set_size(size);
                let body = Exact {
                    inner: File::from(fd).take(size),
                    remaining: size,
                };
                self.tar
                    .append_data(&mut header, path, body)
                    .map_err(|e| entry_err(path, "write", e))
            }
            libc::S_IFLNK => {
                let target = fsutil::readlinkat(parent, name)
                    .map_err(|e| entry_err(path, "read link", e))?;
                header.set_entry_type(EntryType::Symlink);
                self.tar
                    .append_link(&mut header, path, OsStr::from_bytes(&target))
                    .map_err(|e| entry_err(path, "write", e))
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                header.set_entry_type(match kind {
                    libc::S_IFCHR => EntryType::Char,
                    libc::S_IFBLK => EntryType::Block,
                    _ => EntryType::Fifo,
                });
                if kind != libc::S_IFIFO {
                    let (major, minor) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
                    header
                        .set_device_major(major)
                        .and_then(|_| header.set_device_minor(minor))
                        .map_err(|e| entry_err(path, "write", e))?;
                }
                self.tar
                    .append_data(&mut header, path, io::empty())
                    .map_err(|e| entry_err(path, "write", e))
            }
            _ => Ok(()),
        }
    }

    /// Writes the PAX xattr records of an open object (before its header); returns whether it is
    /// an overlay opaque directory.
    fn xattrs(&mut self, fd: BorrowedFd<'_>, path: &Path) -> Result<bool> {
        let all = fsutil::fxattrs(fd).map_err(|e| entry_err(path, "read xattrs of", e))?;
        let mut opaque = false;
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        for (key, value) in all {
            let key = key.to_bytes();
            if key == OPAQUE_XATTR {
                opaque = value == b"y";
            }
            if key.starts_with(b"trusted.") {
                continue;
            }
            let Ok(key) = std::str::from_utf8(key) else {
                continue;
            };
            records.push((format!("{PAX_XATTR}{key}"), value));
        }
        if !records.is_empty() {
            self.tar
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(|e| entry_err(path, "write", e))?;
        }
        Ok(opaque)
    }

    fn empty_file(&mut self, path: &Path, st: &libc::stat) -> Result<()> {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(st.st_mtime.max(0) as u64);
        header.set_size(0);
        self.tar
            .append_data(&mut header, path, io::empty())
            .map_err(|e| entry_err(path, "write", e))
    }
}

/// Exactly `remaining` bytes: a file that shrank while being read is padded with zeros, so the
/// archive stays well-formed (its header already announced the size).
struct Exact<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.remaining as usize);
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Opens the parent of `path` inside `root` (openat2 `RESOLVE_IN_ROOT`: symlinks and `..` in the
/// container's file system stay in it) and returns it with the last component's name.
pub fn open_parent_in_root(root: &Path, path: &Path) -> Result<(OwnedFd, CString)> {
    let name = path
        .file_name()
        .ok_or_else(|| ImageError::Invalid(format!("{} does not name a file", path.display())))?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    let root_fd = fsutil::open_dir(root)
        .map_err(|e| ImageError::io(format!("open {}", root.display()), e))?;
    let dir = crate::safe_path::open_in_root(
        root_fd.as_fd(),
        parent,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
    .map_err(|e| ImageError::io(format!("open {}", parent.display()), e))?;
    let name = fsutil::cstr(name.as_bytes())
        .map_err(|e| ImageError::io(format!("{}", path.display()), e))?;
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    /// (type, mode, uid, link target, xattr keys) by archive path.
    type Listing = BTreeMap<String, (EntryType, u32, u64, Option<String>, Vec<String>)>;

    fn list(bytes: &[u8]) -> Listing {
        let mut out = BTreeMap::new();
        let mut a = tar::Archive::new(bytes);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let xattrs = e
                .pax_extensions()
                .unwrap()
                .map(|exts| {
                    exts.map(|x| x.unwrap().key().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let h = e.header();
            out.insert(
                e.path().unwrap().display().to_string(),
                (
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    e.link_name().unwrap().map(|l| l.display().to_string()),
                    xattrs,
                ),
            );
        }
        out
    }

    #[test]
    fn upper_dir_becomes_a_layer_and_unpacks_back() {
        let tmp = tempfile::tempdir().unwrap();
        let upper = tmp.path().join("upper");
        fs::create_dir_all(upper.join("d")).unwrap();
        fs::create_dir_all(upper.join("proc/self")).unwrap();
        fs::write(upper.join("d/f"), "x").unwrap();
        fs::write(upper.join("suid"), "bin").unwrap();
        let fd = fsutil::open_dir(&upper).unwrap();
        // chown clears setuid: chmod last.
        fsutil::lchownat(fd.as_fd(), c"suid", 1000, 1000).unwrap();
        fsutil::fchmodat(fd.as_fd(), c"suid", 0o4755).unwrap();
        fsutil::linkat(fd.as_fd(), c"suid", fd.as_fd(), c"suid2").unwrap();
        fsutil::symlinkat(c"/etc/passwd", fd.as_fd(), c"ln").unwrap();
        fsutil::mknodat(fd.as_fd(), c"gone", libc::S_IFCHR | 0o600, 0).unwrap();
        fsutil::lsetxattrat(fd.as_fd(), c"d", c"trusted.overlay.opaque", b"y").unwrap();
        fsutil::lsetxattrat(fd.as_fd(), c"d", c"user.k", b"v").unwrap();

        let options = TreeOptions {
            overlay_whiteouts: true,
            exclude: vec![PathBuf::from("proc")],
        };
        let bytes = write_dir(&upper, &options, Vec::new()).unwrap();
        let l = list(&bytes);
        assert!(!l.keys().any(|k| k.starts_with("proc")), "{l:?}");
        assert_eq!(l[".wh.gone"].0, EntryType::Regular);
        assert_eq!(l["d/.wh..wh..opq"].0, EntryType::Regular);
        assert_eq!(
            l["d"].4,
            vec!["SCHILY.xattr.user.k".to_string()],
            "no trusted.*"
        );
        assert_eq!((l["suid"].1, l["suid"].2), (0o4755, 1000));
        assert_eq!(l["suid2"].0, EntryType::Link);
        assert_eq!(l["suid2"].3.as_deref(), Some("suid"));
        assert_eq!(l["ln"].3.as_deref(), Some("/etc/passwd"));

        let back = tmp.path().join("back");
        fs::create_dir(&back).unwrap();
        crate::image::unpack_layer(&bytes[..], &back).unwrap();
        let gone = fs::symlink_metadata(back.join("gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        assert_eq!(
            fsutil::lgetxattr(&back.join("d"), "trusted.overlay.opaque").unwrap(),
            Some(b"y".to_vec())
        );
        assert_eq!(
            fsutil::lgetxattr(&back.join("d"), "user.k").unwrap(),
            Some(b"v".to_vec())
        );
        let suid = fs::metadata(back.join("suid")).unwrap();
        assert_eq!(
            (suid.mode() & 0o7777, suid.uid(), suid.nlink()),
            (0o4755, 1000, 2)
        );
    }
}
