//! Spreading independent directory trees over the file system.
//!
//! ext4 places a new directory near its parent unless the parent is marked as the top of directory
//! hierarchies (`chattr +T`, `FS_TOPDIR_FL`); then each new subdirectory goes to a block group of
//! its own (the Orlov allocator). Every container's directory is such an independent tree, created
//! and deleted again within seconds by `run --rm`.
//!
//! Left near each other, they all draw inodes from one block group. On ext4 without a journal, as
//! on this project's test machines, each new inode is found by stepping over every inode of the
//! group freed in the last 30 seconds (`recently_deleted`): in a loop of `run --rm`, 10 % of all
//! CPU time. Marking the containers' directory spreads the trees (measured in BENCHMARKS.md).

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `FS_TOPDIR_FL` of `linux/fs.h` (not in the libc crate). The flags ioctls take an `int`,
/// whatever their request number's `long` says.
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// Marks `dir` as the top of directory hierarchies. `Ok(false)`: its file system has no such
/// mark (tmpfs, xfs, ...), which only costs the spreading.
pub fn mark_top_of_hierarchies(dir: &Path) -> io::Result<bool> {
    let dir = std::fs::File::open(dir)?;
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int into `flags`, which lives across the call.
    if unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } < 0 {
        return unsupported(io::Error::last_os_error());
    }
    if flags & FS_TOPDIR_FL != 0 {
        return Ok(true);
    }
    flags |= FS_TOPDIR_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int from `flags`, which lives across the call.
    if unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) } < 0 {
        return unsupported(io::Error::last_os_error());
    }
    Ok(true)
}

/// Errors that mean "this file system has no such flag" become `Ok(false)`.
fn unsupported(e: io::Error) -> io::Result<bool> {
    match e.raw_os_error() {
        Some(libc::ENOTTY | libc::EOPNOTSUPP | libc::EINVAL) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(dir: &Path) -> Option<libc::c_int> {
        let dir = std::fs::File::open(dir).unwrap();
        let mut flags: libc::c_int = 0;
        // SAFETY: as in `mark_top_of_hierarchies`.
        let r = unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
        (r == 0).then_some(flags)
    }

    #[test]
    fn the_mark_is_set_once_where_the_file_system_has_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("containers");
        std::fs::create_dir(&dir).unwrap();
        let marked = mark_top_of_hierarchies(&dir).unwrap();
        let after = flags(&dir);
        if marked {
            assert_ne!(after.unwrap() & FS_TOPDIR_FL, 0);
            assert!(
                mark_top_of_hierarchies(&dir).unwrap(),
                "marking again is fine"
            );
            assert_eq!(flags(&dir), after);
        } else {
            assert!(after.is_none_or(|f| f & FS_TOPDIR_FL == 0));
        }
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = mark_top_of_hierarchies(&tmp.path().join("absent")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
