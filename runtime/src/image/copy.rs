//! `cp` in and out of a container's root file system. Every path is resolved inside the root with
//! openat2 `RESOLVE_IN_ROOT`, so a symlink in the container (`/escape -> /`) leads back into the
//! container, never to the host. Archives coming in are unpacked by the safe layer unpacker.

use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::{ImageError, Result};
use super::fsutil;
use super::tree_tar::{self, open_parent_in_root};
use super::unpack::unpack_layer;

/// Writes `path` of the file system at `root` as a tar stream whose single top-level entry is the
/// path's last component (a directory comes with everything below it; a symlink as itself).
pub fn copy_out<W: Write>(root: &Path, path: &Path, out: W) -> Result<W> {
    let (dir, name) = open_parent_in_root(root, path)?;
    fsutil::lstatat(dir.as_fd(), &name).map_err(|e| not_found(path, e))?;
    let as_name = PathBuf::from(OsStr::from_bytes(name.to_bytes()));
    tree_tar::write_object(dir.as_fd(), &name, &as_name, out)
}

/// Writes the directory `dir` itself (a mount's source on the host, which Berth made) as a tar
/// whose single top-level entry is named `as_name`: `cp CONTAINER:/data` when `/data` is a volume.
pub fn copy_dir_out<W: Write>(dir: &Path, as_name: &Path, out: W) -> Result<W> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(ImageError::Invalid(format!(
            "{} does not name a directory",
            dir.display()
        )));
    };
    let parent_fd = fsutil::open_dir(parent)
        .map_err(|e| ImageError::io(format!("open {}", parent.display()), e))?;
    let name =
        fsutil::cstr(name.as_bytes()).map_err(|e| ImageError::io(dir.display().to_string(), e))?;
    tree_tar::write_object(parent_fd.as_fd(), &name, as_name, out)
}

/// Unpacks the tar stream `input` at `dest` in the file system at `root`, as `docker cp` does:
/// into `dest` when it is an existing directory; otherwise the archive's single top-level entry
/// becomes `dest` (created, or replacing a file). With `into_dir_only` (an archive given on stdin)
/// `dest` must be a directory.
pub fn copy_in(root: &Path, dest: &Path, input: impl Read, into_dir_only: bool) -> Result<()> {
    let root_fd = fsutil::open_dir(root)
        .map_err(|e| ImageError::io(format!("open {}", root.display()), e))?;
    let target = crate::safe_path::open_in_root(
        root_fd.as_fd(),
        dest,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    );
    match target {
        Ok(dir) => unpack_into(dir.as_fd(), input),
        Err(e) if into_dir_only => Err(ImageError::Invalid(format!(
            "destination {} must be a directory: {e}",
            dest.display()
        ))),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            let (parent, name) = open_parent_in_root(root, dest)?;
            unpack_as(parent, &name, dest, input)
        }
        Err(e) => Err(ImageError::io(format!("open {}", dest.display()), e)),
    }
}

fn not_found(path: &Path, e: std::io::Error) -> ImageError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ImageError::Invalid(format!(
            "could not find the file {} in container",
            path.display()
        ))
    } else {
        ImageError::io(format!("stat {}", path.display()), e)
    }
}

fn fd_path(dir: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()))
}

fn unpack_into(dir: BorrowedFd<'_>, input: impl Read) -> Result<()> {
    unpack_layer(input, &fd_path(dir)).map(|_| ())
}

/// Unpacks into a fresh directory next to `name`, then renames the archive's one top-level entry
/// to `name`.
fn unpack_as(parent: OwnedFd, name: &CString, dest: &Path, input: impl Read) -> Result<()> {
    let tmp = fsutil::cstr(format!(".berth-cp-{}", fsutil::random_hex(8)).as_bytes())
        .map_err(|e| ImageError::io("name a temporary directory", e))?;
    fsutil::mkdirat(parent.as_fd(), &tmp, 0o700)
        .map_err(|e| ImageError::io(format!("create a directory next to {}", dest.display()), e))?;
    let result = (|| {
        let staging = fsutil::openat(parent.as_fd(), &tmp, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| ImageError::io("open the staging directory", e))?;
        unpack_into(staging.as_fd(), input)?;
        let entries = fsutil::read_dir_fd(staging.as_fd())
            .map_err(|e| ImageError::io("read the staging directory", e))?;
        let [entry] = entries.as_slice() else {
            return Err(ImageError::Invalid(format!(
                "cannot copy {} entries to {}: it is not a directory",
                entries.len(),
                dest.display()
            )));
        };
        // SAFETY: valid dirfds and C strings.
        let r = unsafe {
            libc::renameat(
                staging.as_raw_fd(),
                entry.as_ptr(),
                parent.as_raw_fd(),
                name.as_ptr(),
            )
        };
        if r != 0 {
            return Err(ImageError::io(
                format!("create {}", dest.display()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    })();
    let _ = fsutil::remove_at(parent.as_fd(), &tmp);
    result
}

/// Fails unless `path` exists in the file system at `root` (checked before a download starts, so
/// a missing path is a clean error).
pub fn check_exists(root: &Path, path: &Path) -> Result<()> {
    let (dir, name) = open_parent_in_root(root, path)?;
    fsutil::lstatat(dir.as_fd(), &name)
        .map(|_| ())
        .map_err(|e| not_found(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container root whose `/escape` points at `/`.
    fn root() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        fs_setup(tmp.path());
        tmp
    }

    fn fs_setup(root: &Path) {
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::write(root.join("etc/passwd"), "container\n").unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
    }

    fn one_file_tar(name: &str, body: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, body).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn symlinks_in_the_container_stay_in_the_container() {
        let r = root();
        let out = copy_out(r.path(), Path::new("/escape/etc/passwd"), Vec::new()).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap(), Path::new("passwd"));
        let mut body = String::new();
        e.read_to_string(&mut body).unwrap();
        assert_eq!(body, "container\n");
        assert!(check_exists(r.path(), Path::new("/escape/etc/shadow")).is_err());

        let marker = format!("berth-cp-test-{}", fsutil::random_hex(6));
        let dest = PathBuf::from("/escape/tmp").join(&marker);
        copy_in(r.path(), &dest, &one_file_tar("f", b"in")[..], false).unwrap();
        assert_eq!(
            std::fs::read(r.path().join("tmp").join(&marker)).unwrap(),
            b"in"
        );
        assert!(!Path::new("/tmp").join(&marker).exists());
        // Into an existing directory, the entry keeps its name.
        copy_in(
            r.path(),
            Path::new("/etc"),
            &one_file_tar("motd", b"hi")[..],
            true,
        )
        .unwrap();
        assert_eq!(std::fs::read(r.path().join("etc/motd")).unwrap(), b"hi");
        assert!(copy_in(
            r.path(),
            Path::new("/nope"),
            &one_file_tar("x", b"")[..],
            true
        )
        .is_err());
    }
}
