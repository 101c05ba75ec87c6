//! Replacing a small file atomically: readers, and the file system after a crash, see the old
//! content or the new one, never a mix.
//!
//! Two strengths, chosen by what the file describes:
//! - [`write_atomic`] is durable: records that must survive a power loss (image index, snapshots,
//!   volumes, the agent's container and network state) are on disk before the call returns.
//! - [`replace`] is not fsynced: it suits records of live processes (the runtime's state, a
//!   monitor's exit file, which processes serve a container). A process crash cannot lose them (the
//!   page cache outlives it) and a power loss ends the processes they describe. runc keeps such
//!   state on tmpfs for the same reason. Skipping the two fsyncs saves about half a millisecond
//!   on every container start and exit here.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` durably: a uniquely named temporary file in the same directory,
/// fsync, rename, fsync of the directory. The temporary file is removed on failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    swap_in(path, bytes, true)
}

/// Replaces `path` with `bytes` atomically but not durably (no fsync): see the module notes for
/// which files may use it. The temporary file is removed on failure.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    swap_in(path, bytes, false)
}

/// Makes a file written with [`replace`] durable: fsync of the file, then of its directory (for
/// the rename). Lets a caller overlap the fsyncs with other work and still wait for them before it
/// acknowledges anything.
pub fn sync(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

fn swap_in(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = temp_name(dir, path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn temp_name(dir: &Path, path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(
        ".{name}.tmp-{}",
        crate::image::fsutil::random_hex(6)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_strengths_replace_the_whole_file_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        write_atomic(&path, b"first, and longer").unwrap();
        replace(&path, b"second").unwrap();
        sync(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        write_atomic(&path, b"third").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("record.json")]);
    }

    #[test]
    fn a_failed_replacement_keeps_the_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        replace(&path, b"old").unwrap();
        // A directory in the way makes the rename fail after the temporary file was written.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        assert!(replace(&blocked, b"new").is_err());
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["blocked".to_string(), "record.json".to_string()]
        );
    }
}
