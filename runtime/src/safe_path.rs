//! Path resolution confined to a root directory (openat2 `RESOLVE_IN_ROOT`), so that symlinks and `..`
//! inside an untrusted rootfs can never lead a mount or a write outside it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

pub(crate) const RESOLVE_NO_XDEV: u64 = 0x01;
pub(crate) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub(crate) const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub(crate) const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` as if `root` were `/`: absolute symlinks and `..` stay inside `root`.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    openat2(
        root,
        &relative(path),
        flags,
        mode,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

/// openat2(2) relative to `root` with the given `RESOLVE_*` flags (O_CLOEXEC always added), retried
/// on EAGAIN/EINTR as the kernel asks.
pub(crate) fn openat2(
    root: BorrowedFd<'_>,
    rel: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = CString::new(rel.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: `c` and `how` outlive the call; the kernel copies `how` by the size we pass.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh fd from the kernel that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EAGAIN) && err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Reads a (small) file of an untrusted root filesystem, e.g. the image's /etc/passwd, without
/// following any symlink out of it.
pub fn read_in_root(root: &Path, path: &Path) -> io::Result<String> {
    let dir = std::fs::File::open(root)?;
    let fd = open_in_root(dir.as_fd(), path, libc::O_RDONLY, 0)?;
    io::read_to_string(std::fs::File::from(fd))
}

/// The kind of object to create at the end of [`ensure_in_root`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// Resolves `path` inside `root`, creating missing directories (and the final file or directory), and
/// returns an `O_PATH` fd of the result, suitable as a mount target via `/proc/self/fd/N`.
pub fn ensure_in_root(root: BorrowedFd<'_>, path: &Path, last: Kind) -> io::Result<OwnedFd> {
    let rel = relative(path);
    let mut prefix = PathBuf::new();
    let mut parts = rel.components().peekable();
    let mut fd = open_in_root(root, Path::new("."), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    while let Some(part) = parts.next() {
        let is_last = parts.peek().is_none();
        prefix.push(part);
        match open_in_root(root, &prefix, libc::O_PATH, 0) {
            Ok(next) => fd = next,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let name = CString::new(part.as_os_str().as_encoded_bytes())
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
                // `fd` is the parent, already resolved inside the root.
                let parent = &fd;
                let made = if is_last && last == Kind::File {
                    // SAFETY: valid dirfd and C string.
                    let f = unsafe {
                        libc::openat(
                            parent.as_raw_fd(),
                            name.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                            0o644,
                        )
                    };
                    if f >= 0 {
                        // SAFETY: close the fd we just opened.
                        unsafe { libc::close(f) };
                        0
                    } else {
                        -1
                    }
                } else {
                    // SAFETY: valid dirfd and C string.
                    unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) }
                };
                if made != 0 {
                    let err = io::Error::last_os_error();
                    if err.raw_os_error() != Some(libc::EEXIST) {
                        return Err(err);
                    }
                }
                fd = open_in_root(root, &prefix, libc::O_PATH, 0)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(fd)
}

/// The `/proc/self/fd/N` path through which mount(2) reaches an fd's object.
pub fn proc_fd_path(fd: &impl AsFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
        .expect("a formatted integer path has no NUL")
}

/// `path` without its root, so it can be resolved relative to a directory fd.
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}
