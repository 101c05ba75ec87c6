//! Unix sockets at paths of any length. `sun_path` holds 108 bytes, which a deep state root plus a
//! 64-hex container id exceeds; going through an `O_PATH` fd of the socket's directory
//! (`/proc/self/fd/N/name`) keeps the address short whatever the real path is.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// A short alias of a socket path, valid while the value lives (it holds the directory fd).
pub struct ShortPath {
    _dir: OwnedFd,
    alias: PathBuf,
}

impl ShortPath {
    pub fn new(path: &Path) -> io::Result<ShortPath> {
        let (dir, name) = match (path.parent(), path.file_name()) {
            (Some(d), Some(n)) => (
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                },
                n,
            ),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} does not name a socket file", path.display()),
                ))
            }
        };
        let fd: OwnedFd = nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        let alias = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())).join(name);
        Ok(ShortPath { _dir: fd, alias })
    }

    pub fn path(&self) -> &Path {
        &self.alias
    }
}

/// Binds a listening socket at `path`.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    let short = ShortPath::new(path)?;
    UnixListener::bind(short.path())
}

/// Connects to the socket at `path`.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    let short = ShortPath::new(path)?;
    UnixStream::connect(short.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_work() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(100)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let sock = deep.join("attach.sock");
        assert!(sock.as_os_str().len() > 108);
        let listener = bind(&sock).unwrap();
        let _client = connect(&sock).unwrap();
        assert!(listener.accept().is_ok());
    }
}
