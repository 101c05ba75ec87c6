//! Syscall-frugal file helpers for cgroupfs (one open + one write per value, no size probing on
//! reads), errors that name the file and the value, directory creation/removal, and the bounded
//! backoff used by every wait in this module.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;

/// Reads a (small) cgroup file whole.
pub(crate) fn read(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes `value` with a single write(2), without O_CREAT/O_TRUNC, so a missing control file is
/// reported as `NotFound` (the way to detect an absent optional controller feature).
pub(crate) fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(value.as_bytes())
}

/// [`write_raw`] with an error naming the file and the value.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_raw(path, value).map_err(|source| write_error(path, value, source))
}

/// Like [`write()`], but a missing file is not an error: returns whether the value was written.
pub(crate) fn write_if_exists(path: &Path, value: &str) -> Result<bool, CgroupError> {
    match write_raw(path, value) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(write_error(path, value, source)),
    }
}

pub(crate) fn write_error(path: &Path, value: &str, source: io::Error) -> CgroupError {
    CgroupError::Write {
        path: path.to_path_buf(),
        value: value.trim_end().to_owned(),
        source,
    }
}

/// [`read`] with an error naming the file.
pub(crate) fn read_checked(path: &Path) -> Result<String, CgroupError> {
    read(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Like [`read_checked`], but a missing file gives `None` (controller or feature absent).
pub(crate) fn read_if_exists(path: &Path) -> Result<Option<String>, CgroupError> {
    match read(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub(crate) fn io_error(op: &'static str, path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates one directory; `Ok(false)` when it already existed.
pub(crate) fn mkdir(dir: &Path) -> io::Result<bool> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates `dir` and missing parents, trying the leaf first (one mkdir in the common case where
/// the parent exists). Returns whether the leaf was created by this call.
pub(crate) fn mkdir_p(dir: &Path) -> Result<bool, CgroupError> {
    match mkdir(dir) {
        Ok(created) => Ok(created),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match dir.parent() {
                Some(parent) if parent != dir => {
                    mkdir_p(parent)?;
                }
                _ => return Err(io_error("creating", dir, e)),
            }
            mkdir(dir).map_err(|e| io_error("creating", dir, e))
        }
        Err(e) => Err(io_error("creating", dir, e)),
    }
}

/// Removes a cgroup directory and its descendant cgroups (children first). A missing directory
/// is fine. `EBUSY` (tasks still leaving, or a child cgroup) is retried until `timeout`.
pub(crate) fn remove_cgroup_dir(dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    let mut backoff = Backoff::new(timeout);
    let mut children_removed = false;
    loop {
        let err = match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
        };
        let busy = matches!(
            err.raw_os_error(),
            Some(libc::EBUSY) | Some(libc::ENOTEMPTY)
        );
        if !busy {
            return Err(io_error("removing", dir, err));
        }
        let children = child_dirs(dir)?;
        if !children.is_empty() {
            for child in children {
                remove_cgroup_dir(&child, timeout)?;
            }
            if !children_removed {
                children_removed = true;
                continue; // retry at once, the children were what kept it busy
            }
        } else {
            kill_stragglers(dir);
        }
        if !backoff.wait() {
            return Err(io_error("removing", dir, err));
        }
    }
}

/// SIGKILLs processes still listed in `dir` (e.g. one left in a single v1 hierarchy by an
/// interrupted `add_task`, invisible to the hierarchy `procs` reads). Best effort.
fn kill_stragglers(dir: &Path) {
    let file = dir.join("cgroup.procs");
    let Ok(content) = read(&file) else { return };
    let Ok(pids) = super::parse::parse_pids(&content, &file) else {
        return;
    };
    if let Err(e) = super::kill_all(&pids, dir) {
        tracing::debug!(error = %e, "killing stragglers");
    }
}

/// The sub-directories (child cgroups) of `dir`; none if `dir` does not exist.
pub(crate) fn child_dirs(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("listing", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("listing", dir, e))?;
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.push(entry.path()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("listing", dir, e)),
        }
    }
    Ok(out)
}

/// Exponential sleep (50µs doubling up to 10ms) bounded by a total time budget.
pub(crate) struct Backoff {
    start: Instant,
    limit: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(limit: Duration) -> Self {
        Backoff {
            start: Instant::now(),
            limit,
            next: Duration::from_micros(50),
        }
    }

    /// Sleeps one step; `false` (without sleeping) once the budget is spent.
    pub(crate) fn wait(&mut self) -> bool {
        let elapsed = self.start.elapsed();
        if elapsed >= self.limit {
            return false;
        }
        std::thread::sleep(self.next.min(self.limit - elapsed));
        self.next = (self.next * 2).min(Duration::from_millis(10));
        true
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Reads a counter file; `None` when the file (controller) is absent.
pub(crate) fn read_u64_opt(path: &Path) -> Result<Option<u64>, CgroupError> {
    read_if_exists(path)?
        .map(|c| super::parse::parse_u64(&c, path))
        .transpose()
}

/// Reads a limit file; `None` when absent or unlimited.
pub(crate) fn read_limit_opt(path: &Path) -> Result<Option<u64>, CgroupError> {
    Ok(read_if_exists(path)?
        .map(|c| super::parse::parse_limit(&c, path))
        .transpose()?
        .flatten())
}
