//! The container's filesystem view, built inside its new mount namespace: the rootfs as a private bind
//! mount, the spec's mounts (targets resolved inside the rootfs), a small `/dev`, `pivot_root`, then the
//! masked and read-only paths and an optionally read-only root.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};

use super::InitError;
use crate::cgroups::V1Hierarchy;
use crate::safe_path::{ensure_in_root, open_in_root, proc_fd_path, Kind};

/// A spec mount translated to mount(2) arguments, prepared before the init is cloned.
#[derive(Debug)]
pub struct MountPlan {
    pub destination: PathBuf,
    pub kind: MountKind,
    pub source: Option<PathBuf>,
    pub flags: MsFlags,
    pub propagation: MsFlags,
    pub data: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum MountKind {
    Bind {
        recursive: bool,
    },
    /// `cgroup`: the host's hierarchies as seen from the container's cgroup namespace.
    Cgroup,
    Fs(String),
}

impl MountPlan {
    pub fn from_spec(m: &Mount, bundle: &Path) -> Result<Self, String> {
        let mut flags = MsFlags::empty();
        let mut propagation = MsFlags::empty();
        let mut data = Vec::new();
        let mut bind = None;
        for opt in m.options().iter().flatten() {
            let (set, clear) = match opt.as_str() {
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
                "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
                "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
                "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
                "bind" => {
                    bind = Some(false);
                    continue;
                }
                "rbind" => {
                    bind = Some(true);
                    continue;
                }
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                | "unbindable" | "runbindable" => {
                    propagation = propagation_flags(opt);
                    continue;
                }
                "tmpcopyup" | "defaults" => continue,
                other if other.starts_with("idmap") || other.starts_with("ridmap") => {
                    return Err(format!(
                        "mount {}: option {other} is not supported",
                        m.destination().display()
                    ))
                }
                other => {
                    data.push(other.to_owned());
                    continue;
                }
            };
            flags |= set;
            flags &= !clear;
        }
        let typ = m.typ().as_deref().unwrap_or("");
        let kind = match (bind, typ) {
            (Some(recursive), _) => MountKind::Bind { recursive },
            (None, "bind") => MountKind::Bind { recursive: false },
            (None, "cgroup") => MountKind::Cgroup,
            (None, "") => {
                return Err(format!(
                    "mount {}: no type and no bind option",
                    m.destination().display()
                ))
            }
            (None, t) => MountKind::Fs(t.to_owned()),
        };
        let source = m.source().as_ref().map(|s| {
            if matches!(kind, MountKind::Bind { .. }) && s.is_relative() {
                bundle.join(s)
            } else {
                s.clone()
            }
        });
        if matches!(kind, MountKind::Bind { .. }) && source.is_none() {
            return Err(format!(
                "bind mount {} has no source",
                m.destination().display()
            ));
        }
        Ok(MountPlan {
            destination: m.destination().clone(),
            kind,
            source,
            flags,
            propagation,
            data: (!data.is_empty()).then(|| data.join(",")),
        })
    }
}

pub fn propagation_flags(opt: &str) -> MsFlags {
    let (base, rec) = match opt.strip_prefix('r') {
        Some(b) if !b.is_empty() && opt != "ro" => (b, MsFlags::MS_REC),
        _ => (opt, MsFlags::empty()),
    };
    rec | match base {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        _ => MsFlags::MS_UNBINDABLE,
    }
}

fn sys(what: impl std::fmt::Display, e: impl std::fmt::Display) -> InitError {
    InitError(format!("{what}: {e}"))
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default()
}

/// Makes the whole tree private (nothing propagates back to the host) and the rootfs a mount point, and
/// returns an fd of the rootfs mount to resolve every later target through.
pub fn prepare_root(rootfs: &Path, propagation: MsFlags) -> Result<OwnedFd, InitError> {
    let prop = if propagation.is_empty() {
        MsFlags::MS_REC | MsFlags::MS_PRIVATE
    } else {
        propagation
    };
    mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
        .map_err(|e| sys("make / private", e))?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| sys(format_args!("bind rootfs {}", rootfs.display()), e))?;
    nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys(format_args!("open rootfs {}", rootfs.display()), e))
}

/// Mounts one planned mount onto its target inside the rootfs.
pub fn mount_one(
    root: &OwnedFd,
    m: &MountPlan,
    cgroups_v1: &[V1Hierarchy],
) -> Result<(), InitError> {
    let dest = &m.destination;
    let what = |e: &dyn std::fmt::Display| sys(format_args!("mount {}", dest.display()), e);
    match &m.kind {
        MountKind::Bind { recursive } => {
            let source = m.source.as_deref().unwrap_or(Path::new(""));
            let meta = std::fs::metadata(source)
                .map_err(|e| sys(format_args!("bind source {}", source.display()), e))?;
            let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
            let target = ensure_in_root(root.as_fd(), dest, kind).map_err(|e| what(&e))?;
            let mut flags = MsFlags::MS_BIND;
            if *recursive {
                flags |= MsFlags::MS_REC;
            }
            mount(
                Some(source),
                proc_fd_path(&target).as_c_str(),
                None::<&str>,
                flags,
                None::<&str>,
            )
            .map_err(|e| what(&e))?;
            let extra = m.flags & !MsFlags::MS_BIND;
            if !extra.is_empty() {
                // Re-resolve: the old fd names the directory underneath the new mount.
                let target =
                    open_in_root(root.as_fd(), dest, libc::O_PATH, 0).map_err(|e| what(&e))?;
                mount(
                    None::<&str>,
                    proc_fd_path(&target).as_c_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra,
                    None::<&str>,
                )
                .map_err(|e| what(&e))?;
            }
        }
        MountKind::Cgroup => mount_cgroup(root, m, cgroups_v1)?,
        MountKind::Fs(typ) => {
            let target = ensure_in_root(root.as_fd(), dest, Kind::Dir).map_err(|e| what(&e))?;
            let source = m
                .source
                .as_deref()
                .map(cstr)
                .unwrap_or_else(|| cstr(Path::new(typ)));
            let result = mount(
                Some(source.as_c_str()),
                proc_fd_path(&target).as_c_str(),
                Some(typ.as_str()),
                m.flags,
                m.data.as_deref(),
            );
            match result {
                Ok(()) => {}
                // Without its own network namespace a container may not mount sysfs: bind the host's.
                Err(nix::errno::Errno::EPERM) if typ == "sysfs" => {
                    mount(
                        Some("/sys"),
                        proc_fd_path(&target).as_c_str(),
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None::<&str>,
                    )
                    .map_err(|e| what(&e))?;
                    let target =
                        open_in_root(root.as_fd(), dest, libc::O_PATH, 0).map_err(|e| what(&e))?;
                    mount(
                        None::<&str>,
                        proc_fd_path(&target).as_c_str(),
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | m.flags,
                        None::<&str>,
                    )
                    .map_err(|e| what(&e))?;
                }
                Err(e) => return Err(what(&e)),
            }
        }
    }
    if !m.propagation.is_empty() {
        let target = open_in_root(root.as_fd(), dest, libc::O_PATH, 0).map_err(|e| what(&e))?;
        mount(
            None::<&str>,
            proc_fd_path(&target).as_c_str(),
            None::<&str>,
            m.propagation,
            None::<&str>,
        )
        .map_err(|e| what(&e))?;
    }
    Ok(())
}

/// cgroup v2: one cgroup2 mount. cgroup v1: a tmpfs with one mount per hierarchy, read-only if asked.
fn mount_cgroup(root: &OwnedFd, m: &MountPlan, v1: &[V1Hierarchy]) -> Result<(), InitError> {
    let dest = &m.destination;
    let what =
        |e: &dyn std::fmt::Display| sys(format_args!("mount cgroup at {}", dest.display()), e);
    let target = ensure_in_root(root.as_fd(), dest, Kind::Dir).map_err(|e| what(&e))?;
    if v1.is_empty() {
        return mount(
            Some("cgroup2"),
            proc_fd_path(&target).as_c_str(),
            Some("cgroup2"),
            m.flags,
            None::<&str>,
        )
        .map_err(|e| what(&e));
    }
    let base = (m.flags & !MsFlags::MS_RDONLY)
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        proc_fd_path(&target).as_c_str(),
        Some("tmpfs"),
        base,
        Some("mode=755,size=64k"),
    )
    .map_err(|e| what(&e))?;
    for h in v1 {
        let sub = dest.join(&h.name);
        let t = ensure_in_root(root.as_fd(), &sub, Kind::Dir).map_err(|e| what(&e))?;
        mount(
            Some("cgroup"),
            proc_fd_path(&t).as_c_str(),
            Some("cgroup"),
            m.flags,
            Some(h.options.as_str()),
        )
        .map_err(|e| sys(format_args!("mount cgroup {}", sub.display()), e))?;
    }
    if m.flags.contains(MsFlags::MS_RDONLY) {
        let t = open_in_root(root.as_fd(), dest, libc::O_PATH, 0).map_err(|e| what(&e))?;
        mount(
            None::<&str>,
            proc_fd_path(&t).as_c_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | base,
            None::<&str>,
        )
        .map_err(|e| what(&e))?;
    }
    Ok(())
}

/// The character devices every container gets, as (name, major, minor).
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Populates the container's `/dev` (a tmpfs by now) with the default nodes, the spec's devices and the
/// usual symlinks.
pub fn populate_dev(root: &OwnedFd, devices: &[LinuxDevice]) -> Result<(), InitError> {
    let dev = ensure_in_root(root.as_fd(), Path::new("/dev"), Kind::Dir)
        .map_err(|e| sys("open /dev", e))?;
    for (name, major, minor) in DEFAULT_DEVICES {
        make_node(
            &dev,
            Path::new(name),
            SFlag::S_IFCHR,
            makedev(major, minor),
            0o666,
            0,
            0,
        )?;
    }
    for d in devices {
        let rel = d
            .path()
            .strip_prefix("/dev")
            .map_err(|_| InitError(format!("device {} must be under /dev", d.path().display())))?;
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(InitError(format!(
                    "device {}: type 'a' is not a node",
                    d.path().display()
                )))
            }
        };
        let mode = d.file_mode().unwrap_or(0o666);
        let node = makedev(d.major() as u64, d.minor() as u64);
        make_node(
            &dev,
            rel,
            kind,
            node,
            mode,
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        )?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        match nix::unistd::symlinkat(target, dev.as_fd(), link) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(sys(format_args!("symlink /dev/{link}"), e)),
        }
    }
    Ok(())
}

fn make_node(
    dev: &OwnedFd,
    rel: &Path,
    kind: SFlag,
    node: libc::dev_t,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(), InitError> {
    match mknodat(dev.as_fd(), rel, kind, Mode::from_bits_truncate(mode), node) {
        Ok(()) => {}
        Err(nix::errno::Errno::EEXIST) => return Ok(()),
        Err(e) => return Err(sys(format_args!("mknod /dev/{}", rel.display()), e)),
    }
    nix::unistd::fchownat(
        dev.as_fd(),
        rel,
        Some(uid.into()),
        Some(gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys(format_args!("chown /dev/{}", rel.display()), e))
}

/// Swaps the root to the rootfs and detaches the old root without needing a directory for it.
pub fn pivot(root: &OwnedFd) -> Result<(), InitError> {
    nix::unistd::fchdir(root.as_fd()).map_err(|e| sys("chdir to rootfs", e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| sys("pivot_root", e))?;
    // The old root now sits under the new one at "."; keep its unmount from propagating anywhere.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| sys("make old root a slave", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| sys("detach old root", e))?;
    nix::unistd::chdir("/").map_err(|e| sys("chdir /", e))
}

/// Hides a path: an empty read-only tmpfs over a directory, /dev/null over anything else.
pub fn mask(path: &Path) -> Result<(), InitError> {
    let target = match open_in_root(cwd_root(), path, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(sys(format_args!("mask {}", path.display()), e)),
    };
    let is_dir = nix::sys::stat::fstat(target.as_fd())
        .map(|s| SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
        .unwrap_or(false);
    let target_path = proc_fd_path(&target);
    let result = if is_dir {
        mount(
            Some("tmpfs"),
            target_path.as_c_str(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0k"),
        )
    } else {
        mount(
            Some("/dev/null"),
            target_path.as_c_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    result.map_err(|e| sys(format_args!("mask {}", path.display()), e))
}

/// Makes a path read-only by binding it onto itself and remounting the bind read-only, keeping the
/// nosuid/nodev/noexec flags of the mount it lives on.
pub fn make_readonly(path: &Path) -> Result<(), InitError> {
    let target = match open_in_root(cwd_root(), path, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(sys(format_args!("read-only {}", path.display()), e)),
    };
    let what = |e| sys(format_args!("read-only {}", path.display()), e);
    let p = proc_fd_path(&target);
    mount(
        Some(p.as_c_str()),
        p.as_c_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(what)?;
    let target = open_in_root(cwd_root(), path, libc::O_PATH | libc::O_NOFOLLOW, 0)
        .map_err(|e| sys(format_args!("read-only {}", path.display()), e))?;
    remount_readonly(&proc_fd_path(&target)).map_err(what)
}

/// Remounts the mount at `path` read-only, preserving its other per-mount flags.
pub fn remount_readonly(path: &CStr) -> nix::Result<()> {
    let st = nix::sys::statvfs::statvfs(path)?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    let f = st.flags();
    use nix::sys::statvfs::FsFlags;
    for (have, want) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if f.contains(have) {
            flags |= want;
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

/// After pivot_root the process root is the container's root; resolve from there.
fn cwd_root() -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is a valid "fd" for *at calls; after `pivot` the cwd is "/".
    unsafe { std::os::fd::BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}
