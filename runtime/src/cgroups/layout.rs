//! Where the host mounts its cgroup hierarchies: detection (statfs of `/sys/fs/cgroup`, then
//! `/proc/self/mountinfo` for v1), parsing of the mount table and of controller lists, and the
//! small controller-set type the rest of the module uses to decide which directories to touch.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::fsutil;

/// The conventional place for cgroup mounts; only its filesystem type is inspected (to tell a v2
/// host from a v1/hybrid one). v1 mount points themselves always come from the mount table.
pub(crate) const CGROUP_MOUNT: &str = "/sys/fs/cgroup";
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// A cgroup controller Berth knows how to drive (v1 hierarchy name or v2 controller name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Controller {
    Cpu,
    Cpuacct,
    Cpuset,
    Memory,
    Devices,
    Freezer,
    Blkio,
    Pids,
}

impl Controller {
    const ALL: [Controller; 8] = [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Cpuset,
        Controller::Memory,
        Controller::Devices,
        Controller::Freezer,
        Controller::Blkio,
        Controller::Pids,
    ];

    /// The name the kernel uses in mount options, `cgroup.controllers` and `subtree_control`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Devices => "devices",
            Controller::Freezer => "freezer",
            Controller::Blkio => "blkio",
            Controller::Pids => "pids",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Controller::ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of [`Controller`]s (bit set: cheap to copy and compare).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Controllers(u16);

impl Controllers {
    pub(crate) const EMPTY: Controllers = Controllers(0);

    pub(crate) fn of(list: &[Controller]) -> Self {
        list.iter().fold(Self::EMPTY, |set, c| set.with(*c))
    }

    pub(crate) fn with(self, c: Controller) -> Self {
        Controllers(self.0 | c.bit())
    }

    pub(crate) fn contains(self, c: Controller) -> bool {
        self.0 & c.bit() != 0
    }

    pub(crate) fn intersect(self, other: Controllers) -> Self {
        Controllers(self.0 & other.0)
    }

    pub(crate) fn is_subset_of(self, other: Controllers) -> bool {
        self.0 & !other.0 == 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Controller> {
        Controller::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// The first controller of `self` that `other` lacks (for error messages).
    pub(crate) fn first_missing_from(self, other: Controllers) -> Option<Controller> {
        self.iter().find(|c| !other.contains(*c))
    }
}

impl std::fmt::Debug for Controllers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Controller::name))
            .finish()
    }
}

/// Parses a v2 controller list (`cgroup.controllers`, `cgroup.subtree_control`), keeping only the
/// controllers Berth drives.
pub(crate) fn parse_controller_list(content: &str) -> Controllers {
    content
        .split_ascii_whitespace()
        .filter_map(Controller::from_name)
        .fold(Controllers::EMPTY, Controllers::with)
}

/// One mounted v1 hierarchy carrying at least one controller Berth drives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct V1Mount {
    pub(crate) controllers: Controllers,
    pub(crate) mount_point: PathBuf,
}

/// The cgroup mounts found in a mount table.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct MountTable {
    pub(crate) v1: Vec<V1Mount>,
    pub(crate) v2: Option<PathBuf>,
}

/// Parses `/proc/self/mountinfo` (proc(5)) for cgroup and cgroup2 mounts. A hierarchy mounted
/// more than once is listed once, preferring a mount of the hierarchy's root (`/`) over a mount
/// of a sub-directory (as bind mounts into containers have).
pub(crate) fn parse_mountinfo(content: &str) -> MountTable {
    let mut table = MountTable::default();
    // Whether the recorded entry (same index as `table.v1`) mounts the hierarchy root.
    let mut at_root: Vec<bool> = Vec::new();
    let mut v2_at_root = false;
    for line in content.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        let Some(sep) = fields.iter().skip(6).position(|f| *f == "-").map(|p| p + 6) else {
            continue;
        };
        let (Some(fstype), Some(super_opts)) = (fields.get(sep + 1), fields.get(sep + 3)) else {
            continue;
        };
        let root_is_slash = fields[3] == "/";
        let mount_point = PathBuf::from(unescape_octal(fields[4]));
        match *fstype {
            "cgroup2" if table.v2.is_none() || (root_is_slash && !v2_at_root) => {
                table.v2 = Some(mount_point);
                v2_at_root = root_is_slash;
            }
            "cgroup" => {
                let controllers = super_opts
                    .split(',')
                    .filter_map(Controller::from_name)
                    .fold(Controllers::EMPTY, Controllers::with);
                if controllers.is_empty() {
                    continue; // named hierarchies such as name=systemd
                }
                match table.v1.iter().position(|m| m.controllers == controllers) {
                    Some(i) if root_is_slash && !at_root[i] => {
                        table.v1[i].mount_point = mount_point;
                        at_root[i] = true;
                    }
                    Some(_) => {}
                    None => {
                        table.v1.push(V1Mount {
                            controllers,
                            mount_point,
                        });
                        at_root.push(root_is_slash);
                    }
                }
            }
            _ => {}
        }
    }
    table
}

/// Undoes the `\ooo` octal escapes the kernel uses for spaces, tabs, newlines and backslashes
/// in mount table paths.
fn unescape_octal(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How and where this host exposes cgroups.
#[derive(Debug)]
pub(crate) enum Layout {
    /// One mount per (group of) v1 controller(s); hybrid hosts also have a v2 mount, unused here.
    V1 { mounts: Vec<V1Mount> },
    /// The unified hierarchy rooted at `root`; `available` caches the root's `cgroup.controllers`.
    V2 {
        root: PathBuf,
        available: OnceLock<Controllers>,
    },
}

impl Layout {
    pub(crate) fn v2(root: PathBuf) -> Self {
        Layout::V2 {
            root,
            available: OnceLock::new(),
        }
    }

    /// Inspects the running host. Falls back to a cgroup2 mount found elsewhere in the mount
    /// table when `/sys/fs/cgroup` is not cgroup2 and no v1 controller is mounted.
    fn detect() -> Self {
        if is_cgroup2(Path::new(CGROUP_MOUNT)) {
            return Layout::v2(PathBuf::from(CGROUP_MOUNT));
        }
        let table = match fsutil::read(Path::new(MOUNTINFO)) {
            Ok(content) => parse_mountinfo(&content),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the mount table; no cgroup hierarchy usable");
                MountTable::default()
            }
        };
        match table {
            MountTable { v1, v2: Some(root) } if v1.is_empty() => Layout::v2(root),
            MountTable { v1, .. } => Layout::V1 { mounts: v1 },
        }
    }

    /// The controllers the v2 root offers (read once; empty if unreadable).
    pub(crate) fn v2_available(root: &Path, cache: &OnceLock<Controllers>) -> Controllers {
        *cache.get_or_init(|| match fsutil::read(&root.join("cgroup.controllers")) {
            Ok(content) => parse_controller_list(&content),
            Err(e) => {
                tracing::warn!(root = %root.display(), error = %e, "cannot read cgroup.controllers");
                Controllers::EMPTY
            }
        })
    }
}

fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The host's layout, detected on first use and cached for the life of the process.
pub(crate) fn host() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(Layout::detect)
}

/// The cgroup2 mount point listed in this process's mount table, if any (hybrid hosts have one
/// next to the v1 hierarchies).
#[cfg(test)]
pub(crate) fn cgroup2_mount() -> Option<PathBuf> {
    fsutil::read(Path::new(MOUNTINFO))
        .ok()
        .and_then(|c| parse_mountinfo(&c).v2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 23 0:32 /docker/abc /mnt/mem\\040cg rw - cgroup cgroup rw,memory
";

    #[test]
    fn mountinfo_hybrid() {
        let t = parse_mountinfo(HYBRID);
        assert_eq!(t.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        let names: Vec<(Vec<&str>, &Path)> =
            t.v1.iter()
                .map(|m| {
                    (
                        m.controllers.iter().map(Controller::name).collect(),
                        m.mount_point.as_path(),
                    )
                })
                .collect();
        assert_eq!(
            names,
            vec![
                (vec!["cpu"], Path::new("/sys/fs/cgroup/cpu")),
                (vec!["cpuacct"], Path::new("/sys/fs/cgroup/cpuacct")),
                (vec!["memory"], Path::new("/sys/fs/cgroup/memory")),
            ]
        );
    }

    #[test]
    fn mountinfo_comounted_and_prefers_root() {
        let content = "\
50 1 0:40 /sub /x/sub rw - cgroup cgroup rw,cpu,cpuacct
51 1 0:40 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu
52 1 0:41 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
";
        let t = parse_mountinfo(content);
        assert_eq!(t.v1.len(), 1);
        assert_eq!(
            t.v1[0].controllers,
            Controllers::of(&[Controller::Cpu, Controller::Cpuacct])
        );
        assert_eq!(t.v1[0].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(t.v2.as_deref(), Some(Path::new("/sys/fs/cgroup")));
    }

    #[test]
    fn mountinfo_escapes_and_garbage() {
        let t = parse_mountinfo(
            "garbage\n1 2 3\n99 23 0:32 / /mnt/mem\\040cg rw - cgroup cgroup rw,memory\n",
        );
        assert_eq!(t.v1.len(), 1);
        assert_eq!(t.v1[0].mount_point, Path::new("/mnt/mem cg"));
        assert_eq!(unescape_octal("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape_octal("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn controller_lists() {
        let c = parse_controller_list("cpuset cpu io memory hugetlb pids rdma misc\n");
        assert_eq!(
            c,
            Controllers::of(&[
                Controller::Cpuset,
                Controller::Cpu,
                Controller::Memory,
                Controller::Pids
            ])
        );
        assert!(parse_controller_list("hugetlb\n").is_empty());
        assert_eq!(
            Controllers::of(&[Controller::Memory, Controller::Pids])
                .first_missing_from(Controllers::of(&[Controller::Pids])),
            Some(Controller::Memory)
        );
    }
}
