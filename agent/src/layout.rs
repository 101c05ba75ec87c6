//! Where the agent keeps things under its root (`/var/lib/berth` by default).

use std::path::{Path, PathBuf};

/// The agent's directory layout; every path the agent touches comes from here.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The OCI runtime's state root (`berth runtime --root`).
    pub fn runtime_root(&self) -> PathBuf {
        self.root.join("runtime")
    }

    /// Where container network namespaces are pinned (`netns/<id>`).
    pub fn netns_dir(&self) -> PathBuf {
        self.root.join("netns")
    }

    /// The pinned network namespace of a container on a bridge network.
    pub fn netns(&self, id: &str) -> PathBuf {
        self.netns_dir().join(id)
    }

    /// The network actor's persisted networks and leases.
    pub fn network_state(&self) -> PathBuf {
        self.root.join("network").join("state.json")
    }

    /// Removed containers' directories, moved aside until they are deleted.
    pub fn trash(&self) -> PathBuf {
        self.root.join("trash")
    }

    /// Shared read-only layers of the mount points images lack (`mount_points`).
    pub fn mount_points(&self) -> PathBuf {
        self.root.join("mountpoints")
    }

    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// A container's directory: state.json, config.json (it is the OCI bundle), the overlay dirs,
    /// the log, the monitor's socket and exit file.
    pub fn container(&self, id: &str) -> ContainerPaths {
        ContainerPaths {
            dir: self.containers().join(id),
        }
    }
}

/// Paths of one container.
#[derive(Clone, Debug)]
pub struct ContainerPaths {
    pub dir: PathBuf,
}

impl ContainerPaths {
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn live(&self) -> PathBuf {
        self.dir.join("live.json")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn snapshot(&self) -> PathBuf {
        self.dir.join("fs")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("container.log")
    }
    pub fn exit_file(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("attach.sock")
    }
    pub fn hostname(&self) -> PathBuf {
        self.dir.join("hostname")
    }
    pub fn hosts(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }
}
