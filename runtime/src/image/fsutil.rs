//! Small, explicit wrappers around the `*at` system calls that the layer unpacker, the snapshot differ
//! and the volume copier use: every object is reached relative to a directory fd and never through a
//! symlink. Also atomic file replacement, flock'ed lock files and random names.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A C string of raw path bytes; a NUL byte inside is an `InvalidInput` error.
pub(crate) fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

/// Opens `rel` below `root` with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
/// | RESOLVE_NO_XDEV)`: `..` cannot leave `root` and any symlink on the way (including the last
/// component) fails with `ELOOP`.
pub(crate) fn open_beneath(root: BorrowedFd<'_>, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    use crate::safe_path::{
        openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV,
    };
    openat2(
        root,
        rel,
        flags | libc::O_NOFOLLOW,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    )
}

/// `openat(dir, name, flags | O_CLOEXEC | O_NOFOLLOW, mode)`.
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: valid dirfd and C string.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                mode as libc::c_uint,
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh fd from the kernel that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Opens a directory path of the host (the store's own directories, trusted).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str().as_bytes())?;
    // SAFETY: valid C string.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid dirfd and C string.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
}

pub(crate) fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid dirfd and C strings.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })
}

/// Hard link without following a symlink at the old name.
pub(crate) fn linkat(
    old_dir: BorrowedFd<'_>,
    old: &CStr,
    new_dir: BorrowedFd<'_>,
    new: &CStr,
) -> io::Result<()> {
    // SAFETY: valid dirfds and C strings; flags 0 = do not follow a symlink at `old`.
    check(unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            old.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            0,
        )
    })
}

pub(crate) fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: valid dirfd and C string.
    check(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            name.as_ptr(),
            mode as libc::mode_t,
            dev as libc::dev_t,
        )
    })
}

/// `lchown` relative to a directory (never follows a symlink at `name`).
pub(crate) fn lchownat(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid dirfd and C string.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub(crate) fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })
}

pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })
}

/// chmod of a non-symlink object relative to `dir` (device nodes and fifos, which must not be opened).
pub(crate) fn fchmodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid dirfd and C string.
    check(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, 0) })
}

/// A timestamp as seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Time {
    pub sec: i64,
    pub nsec: u32,
}

impl Time {
    fn ts(self) -> libc::timespec {
        libc::timespec {
            tv_sec: self.sec as libc::time_t,
            tv_nsec: self.nsec as libc::c_long,
        }
    }
}

pub(crate) fn futimens(fd: BorrowedFd<'_>, atime: Time, mtime: Time) -> io::Result<()> {
    let ts = [atime.ts(), mtime.ts()];
    // SAFETY: valid fd and a two-element timespec array.
    check(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) })
}

/// utimensat with `AT_SYMLINK_NOFOLLOW`: a symlink's own times.
pub(crate) fn lutimensat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    atime: Time,
    mtime: Time,
) -> io::Result<()> {
    let ts = [atime.ts(), mtime.ts()];
    // SAFETY: valid dirfd, C string and a two-element timespec array.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub(crate) fn fsetxattr(fd: BorrowedFd<'_>, key: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: valid fd, C string and value buffer.
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// The `/proc/self/fd/N/name` path of `name` inside an already-resolved directory fd: the way to reach
/// an object that cannot be opened (a symlink, a device node) for `l*xattr` calls.
fn proc_path(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<CString> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    cstr(&p)
}

/// lsetxattr of `name` in `dir` (never follows a symlink at `name`).
pub(crate) fn lsetxattrat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    key: &CStr,
    value: &[u8],
) -> io::Result<()> {
    let p = proc_path(dir, name)?;
    // SAFETY: valid C strings and value buffer.
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// lgetxattr of a host path; `None` when the attribute is absent or unsupported.
pub(crate) fn lgetxattr(path: &Path, key: &str) -> io::Result<Option<Vec<u8>>> {
    let p = cstr(path.as_os_str().as_bytes())?;
    let k = cstr(key.as_bytes())?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid C strings; the buffer length is passed.
        let n =
            unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::EOPNOTSUPP) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < 65536 => buf.resize(65536, 0),
            _ => return Err(err),
        }
    }
}

/// All extended attribute names and values of an open file or directory.
pub(crate) fn fxattrs(fd: BorrowedFd<'_>) -> io::Result<Vec<(CString, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        // SAFETY: valid fd; the buffer length is passed.
        let n = unsafe { libc::flistxattr(fd.as_raw_fd(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
            Some(libc::ERANGE) if names.len() < 65536 => names.resize(65536, 0),
            _ => return Err(err),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let key = cstr(name)?;
        let mut value = vec![0u8; 256];
        loop {
            // SAFETY: valid fd and C string; the buffer length is passed.
            let r = unsafe {
                libc::fgetxattr(
                    fd.as_raw_fd(),
                    key.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            if r >= 0 {
                value.truncate(r as usize);
                out.push((key, value));
                break;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENODATA) => break,
                Some(libc::ERANGE) if value.len() < 65536 => value.resize(65536, 0),
                _ => return Err(err),
            }
        }
    }
    Ok(out)
}

/// fstatat with `AT_SYMLINK_NOFOLLOW`.
pub(crate) fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid dirfd, C string and output buffer.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(r)?;
    // SAFETY: fstatat succeeded and filled the buffer.
    Ok(unsafe { st.assume_init() })
}

pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid fd and output buffer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded and filled the buffer.
    Ok(unsafe { st.assume_init() })
}

/// readlinkat of a symlink `name` in `dir`.
pub(crate) fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: valid dirfd, C string and buffer of the length passed.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: valid dirfd and C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })
}

/// The names in a directory fd, without `.` and `..`.
pub(crate) fn read_dir_fd(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    // Dir takes ownership of the fd it reads, so read from a duplicate opened at ".".
    let dot = c".";
    let fd = openat(dir, dot, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut d = nix::dir::Dir::from_fd(fd).map_err(io::Error::from)?;
    let mut out = Vec::new();
    for ent in d.iter() {
        let ent = ent.map_err(io::Error::from)?;
        let name = ent.file_name();
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// Removes `name` in `dir` whatever it is; a directory is removed recursively without ever following
/// a symlink.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    match unlinkat(dir, name, 0) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EISDIR) | Some(libc::EPERM)) => {
            let sub = openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            for child in read_dir_fd(sub.as_fd())? {
                remove_at(sub.as_fd(), &child)?;
            }
            unlinkat(dir, name, libc::AT_REMOVEDIR)
        }
        Err(e) => Err(e),
    }
}

/// `renameat2(RENAME_NOREPLACE)` of host paths: fails with `EEXIST` when `to` exists.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let f = cstr(from.as_os_str().as_bytes())?;
    let t = cstr(to.as_os_str().as_bytes())?;
    // SAFETY: valid C strings; AT_FDCWD with absolute or cwd-relative paths.
    check(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    })
}

/// `n` random bytes as lowercase hex, for temporary names and anonymous volume names.
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: the buffer outlives the call and the length is its remaining part.
        let r = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), n - filled, 0) };
        if r > 0 {
            filled += r as usize;
        } else if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // getrandom(2) does not fail for small requests on a kernel that has it; should it
            // anyway, /dev/urandom is the same source.
            use std::io::Read;
            if File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut buf[filled..]))
                .is_err()
            {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
                    ^ ((std::process::id() as u128) << 64);
                for (i, b) in buf.iter_mut().enumerate().skip(filled) {
                    *b = (t >> ((i % 16) * 8)) as u8;
                }
            }
            filled = n;
        }
    }
    hex::encode(buf)
}

/// Fsyncs a directory so that a rename or creation inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An flock(2)'ed lock file, released when dropped. Locks are per open file, so they exclude other
/// threads of this process as well as other processes.
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    fn take(path: &Path, op: libc::c_int) -> io::Result<Option<FileLock>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            // SAFETY: valid fd.
            let r = unsafe { libc::flock(file.as_raw_fd(), op) };
            if r == 0 {
                return Ok(Some(FileLock { _file: file }));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) if op & libc::LOCK_NB != 0 => return Ok(None),
                _ => return Err(err),
            }
        }
    }

    /// Waits for an exclusive lock.
    pub(crate) fn exclusive(path: &Path) -> io::Result<FileLock> {
        Self::take(path, libc::LOCK_EX).map(|l| l.expect("a blocking flock returns a lock"))
    }

    /// Waits for a shared lock.
    pub(crate) fn shared(path: &Path) -> io::Result<FileLock> {
        Self::take(path, libc::LOCK_SH).map(|l| l.expect("a blocking flock returns a lock"))
    }

    /// An exclusive lock if nobody holds one, else `None`.
    pub(crate) fn try_exclusive(path: &Path) -> io::Result<Option<FileLock>> {
        Self::take(path, libc::LOCK_EX | libc::LOCK_NB)
    }
}

/// `major`/`minor` as a `dev_t`.
pub(crate) fn makedev(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}

/// Is this stat an overlay whiteout (a character device 0/0)?
pub(crate) fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}
