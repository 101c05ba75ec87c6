//! Network namespaces that outlive any process: a thread unshares a new namespace and bind-mounts
//! its `/proc/thread-self/ns/net` onto a file (e.g. `ROOT/netns/<id>`), which the container's OCI
//! spec then names as its network namespace. Work inside a namespace also runs on a short-lived
//! thread that enters it, so the daemon's own threads never change namespace.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
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

/// A new network namespace with its loopback up, held only by the returned descriptor. A container
/// that asks for a network namespace of its own (Docker's `--network none`) joins one made ahead
/// instead of paying for it in its clone; Docker brings its loopback up too.
pub fn fresh() -> Result<OwnedFd> {
    on_thread(|| {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| NetError::errno("unshare network", e))?;
        loopback_up()?;
        File::open(THREAD_NS)
            .map(OwnedFd::from)
            .map_err(|e| NetError::io("open the new namespace", e))
    })
}

/// Brings the calling thread's `lo` up: one ioctl, where netlink would need a runtime.
fn loopback_up() -> Result<()> {
    // SAFETY: plain socket(2) call; the result is checked and owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(NetError::io("socket", std::io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a new descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data; all zeros is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    let ioctl = |request, req: &mut libc::ifreq| {
        // SAFETY: SIOCGIFFLAGS / SIOCSIFFLAGS read and write an ifreq, which `req` is.
        if unsafe { libc::ioctl(sock.as_raw_fd(), request, req as *mut libc::ifreq) } < 0 {
            return Err(NetError::io("bring lo up", std::io::Error::last_os_error()));
        }
        Ok(())
    };
    ioctl(libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(libc::SIOCSIFFLAGS, &mut req)
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
