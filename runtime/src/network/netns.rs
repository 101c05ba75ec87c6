//! Network namespaces that outlive any process: a thread unshares a new namespace and bind-mounts
//! its `/proc/thread-self/ns/net` onto a file (e.g. `ROOT/netns/<id>`), which the container's OCI
//! spec then names as its network namespace. Work inside a namespace also runs on a short-lived
//! thread that enters it, so the daemon's own threads never change namespace.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::NetError;

type Result<T> = std::result::Result<T, NetError>;

const THREAD_NS: &str = "/proc/thread-self/ns/net";

fn on_thread<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|_| Err(NetError::Panicked))
    })
}

/// Creates a new network namespace pinned at `path` and runs `setup` inside it with the caller's
/// namespace as argument (where host ends of veths go). On a setup error the namespace is removed.
pub fn create<T: Send>(
    path: &Path,
    setup: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> Result<T> + Send,
) -> Result<T> {
    on_thread(|| {
        let host = File::open(THREAD_NS).map_err(|e| NetError::io("open own namespace", e))?;
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| NetError::errno("unshare network", e))?;
        File::create(path).map_err(|e| NetError::io(format!("create {}", path.display()), e))?;
        if let Err(e) = mount(
            Some(THREAD_NS),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            let _ = std::fs::remove_file(path);
            return Err(NetError::errno(
                format!("pin namespace at {}", path.display()),
                e,
            ));
        }
        let result = setup(host.as_fd());
        if result.is_err() {
            let _ = remove(path);
        }
        result
    })
}

/// Runs `f` inside the namespace pinned at `path`.
pub fn enter<T: Send>(path: &Path, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    on_thread(|| {
        let ns =
            File::open(path).map_err(|e| NetError::io(format!("open {}", path.display()), e))?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetError::errno(format!("enter {}", path.display()), e))?;
        f()
    })
}

/// Unpins and deletes the namespace file; the namespace (and the veths in it) goes away once no
/// process uses it. A missing file is not an error.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(NetError::errno(format!("unpin {}", path.display()), e)),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(NetError::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}
