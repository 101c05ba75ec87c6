//! Create-time and remove-time work on the host for one container, run off the actors (it blocks):
//! resolving the image, the overlay snapshot over its layers, volumes and binds, the hostname and
//! hosts files, and the OCI bundle (`config.json`) the monitor starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use protocol::messages::{
    ApiError, ChangeKind, ContainerConfig, FilesystemChange, MountPoint, MountSpec, NetworkMode,
    PortBinding, PortProtocol,
};

use crate::lifecycle::State;
use crate::names;
use crate::record::{now_nanos, Record};
use crate::spec::{self, BindMount, ImageDefaults};
use crate::Shared;

type Reply<T> = Result<T, ApiError>;

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
}

/// A container set up on disk (bundle, root filesystem, volumes) whose records are not durable yet:
/// its monitor may set it up while [`persist`] runs.
pub struct Built {
    pub record: Record,
    snapshot: runtime::snapshot::Snapshot,
}

/// Creates everything a new container needs, with its first record (state Created). On any error
/// nothing is left behind.
pub fn create(shared: &Shared, id: &str, name: &str, config: ContainerConfig) -> Reply<Built> {
    let paths = shared.layout.container(id);
    std::fs::create_dir_all(&paths.dir).map_err(|e| internal("create container directory", e))?;
    let mut anonymous = Vec::new();
    match build(shared, id, name, config, &mut anonymous) {
        Ok(built) => Ok(built),
        Err(e) => {
            let _ = remove_snapshot(&paths.snapshot());
            for v in &anonymous {
                let _ = shared.volumes.remove(v, &|_: &str| false);
            }
            let _ = std::fs::remove_dir_all(&paths.dir);
            Err(e)
        }
    }
}

/// Makes a built container durable: its snapshot's record, then its own. Until this returns, a
/// crash leaves a directory without `state.json`, which the agent deletes when it starts again.
pub fn persist(shared: &Shared, built: &Built) -> Reply<()> {
    built
        .snapshot
        .persist()
        .map_err(|e| internal("persist root filesystem", e))?;
    built
        .record
        .save(&shared.layout.container(&built.record.id))
        .map_err(|e| internal("persist container state", e))
}

fn build(
    shared: &Shared,
    id: &str,
    name: &str,
    mut config: ContainerConfig,
    anonymous: &mut Vec<String>,
) -> Reply<Built> {
    let paths = shared.layout.container(id);
    let image = shared.images.resolve(&config.image).map_err(|e| match e {
        runtime::image::ImageError::NotFound(_) => {
            ApiError::not_found(format!("no such image: {}", config.image))
        }
        other => ApiError::invalid(other.to_string()),
    })?;
    let defaults = image_defaults(&image);
    if config.publish_all {
        publish_exposed(&mut config, &image);
    }
    let mut lowers = shared.images.lowerdirs(&image);
    if let Some(layer) = shared
        .mount_points
        .for_image(&image.id.to_string(), &lowers)
        .map_err(|e| internal("make the mount points layer", e))?
    {
        lowers.insert(0, layer);
    }
    // A container removed when it exits has nothing to keep across a crash.
    let durability = if config.auto_remove {
        runtime::snapshot::Durability::Volatile
    } else {
        runtime::snapshot::Durability::Durable
    };
    let snapshot = runtime::snapshot::Snapshot::prepare(&paths.snapshot(), &lowers, durability)
        .map_err(|e| internal("prepare root filesystem", e))?;
    let rootfs = snapshot.merged();

    let hostname = config
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_owned());
    write_etc_files(&paths, &hostname, name).map_err(|e| internal("write /etc files", e))?;

    let mut binds = Vec::new();
    let mut tmpfs = Vec::new();
    let mut mounts = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    for m in &config.mounts {
        targets.push(m.target().to_owned());
        match m {
            MountSpec::Named {
                name,
                target,
                read_only,
            } => {
                let vol = named_volume(shared, &rootfs, name, target)?;
                mounts.push(volume_point(&vol.name, &vol.mountpoint, target, *read_only));
                binds.push(BindMount {
                    source: vol.mountpoint.clone(),
                    target: target.clone(),
                    read_only: *read_only,
                });
            }
            MountSpec::Anonymous { target } => {
                let vol = anonymous_volume(shared, &rootfs, target, anonymous)?;
                mounts.push(volume_point(&vol.0, &vol.1, target, false));
                binds.push(BindMount {
                    source: vol.1,
                    target: target.clone(),
                    read_only: false,
                });
            }
            MountSpec::Bind {
                source,
                target,
                read_only,
            } => {
                let src = Path::new(source);
                if !src.is_absolute() {
                    return Err(ApiError::invalid(format!(
                        "bind source {source:?} must be an absolute path"
                    )));
                }
                if !src.exists() {
                    std::fs::create_dir_all(src)
                        .map_err(|e| internal(&format!("create bind source {source}"), e))?;
                }
                mounts.push(MountPoint {
                    kind: "bind".into(),
                    name: String::new(),
                    source: source.clone(),
                    destination: target.clone(),
                    driver: String::new(),
                    mode: if *read_only {
                        "ro".into()
                    } else {
                        String::new()
                    },
                    rw: !read_only,
                    propagation: "rprivate".into(),
                });
                binds.push(BindMount {
                    source: src.to_path_buf(),
                    target: target.clone(),
                    read_only: *read_only,
                });
            }
            MountSpec::Tmpfs { target, size } => tmpfs.push((target.clone(), *size)),
        }
    }
    // The image's VOLUME entries not covered by a mount get anonymous volumes, as in Docker.
    for target in &defaults.volumes {
        if !targets
            .iter()
            .any(|t| t.trim_end_matches('/') == target.trim_end_matches('/'))
        {
            let vol = anonymous_volume(shared, &rootfs, target, anonymous)?;
            mounts.push(volume_point(&vol.0, &vol.1, target, false));
            binds.push(BindMount {
                source: vol.1,
                target: target.clone(),
                read_only: false,
            });
        }
    }
    for (file, target) in [
        (paths.hostname(), "/etc/hostname"),
        (paths.hosts(), "/etc/hosts"),
        (paths.resolv_conf(), "/etc/resolv.conf"),
    ] {
        if !targets.iter().any(|t| t == target) {
            binds.push(BindMount {
                source: file,
                target: target.to_owned(),
                read_only: false,
            });
        }
    }

    let args =
        spec::process_args(&config, &defaults).map_err(|e| ApiError::invalid(e.to_string()))?;
    let env = spec::merged_env(&config, &defaults, &hostname);
    let user = config.user.as_deref().or(defaults.user.as_deref());
    let identity =
        spec::resolve_user(&rootfs, user).map_err(|e| ApiError::invalid(e.to_string()))?;
    let cwd = config
        .working_dir
        .clone()
        .or(defaults.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    let oci = spec::build(
        &config,
        &spec::SpecInputs {
            hostname: &hostname,
            rootfs: &rootfs,
            args: args.clone(),
            env,
            cwd,
            identity,
            binds: &binds,
            tmpfs: &tmpfs,
            cgroup_path: format!("/berth/{id}"),
            netns: matches!(config.network, NetworkMode::Bridge | NetworkMode::Named(_))
                .then(|| shared.layout.netns(id))
                .as_deref(),
        },
    )
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let json = serde_json::to_vec(&oci).map_err(|e| internal("encode config.json", e))?;
    std::fs::write(paths.config(), json).map_err(|e| internal("write config.json", e))?;

    let record = Record {
        id: id.to_owned(),
        name: name.to_owned(),
        created: now_nanos(),
        image_id: image.id.to_string(),
        args,
        hostname,
        state: State::Created,
        pid: None,
        monitor: None,
        exit_code: 0,
        oom_killed: false,
        started_at: 0,
        finished_at: 0,
        restart_count: 0,
        manually_stopped: false,
        anonymous_volumes: anonymous.clone(),
        mounts,
        image_stop_signal: defaults.stop_signal.clone(),
        network: None,
        config,
    };
    Ok(Built { record, snapshot })
}

fn anonymous_volume(
    shared: &Shared,
    rootfs: &Path,
    target: &str,
    anonymous: &mut Vec<String>,
) -> Reply<(String, PathBuf)> {
    let vol = shared
        .volumes
        .create(None, BTreeMap::new())
        .map_err(|e| internal("create anonymous volume", e))?;
    anonymous.push(vol.name.clone());
    runtime::volume::copy_up_from_rootfs(rootfs, Path::new(target), &vol.mountpoint)
        .map_err(|e| internal("seed volume", e))?;
    Ok((vol.name, vol.mountpoint))
}

/// A named volume, created on first use and then seeded with the image's content at its target, as
/// Docker does.
fn named_volume(
    shared: &Shared,
    rootfs: &Path,
    name: &str,
    target: &str,
) -> Reply<runtime::volume::Volume> {
    match shared.volumes.get(name) {
        Ok(v) => Ok(v),
        Err(runtime::volume::VolumeError::NotFound(_)) => {
            let v = shared
                .volumes
                .create(Some(name), BTreeMap::new())
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            runtime::volume::copy_up_from_rootfs(rootfs, Path::new(target), &v.mountpoint)
                .map_err(|e| internal("seed volume", e))?;
            Ok(v)
        }
        Err(e) => Err(ApiError::invalid(e.to_string())),
    }
}

/// Unmounts and deletes a snapshot directory, if there is one.
fn remove_snapshot(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    match runtime::snapshot::Snapshot::load(dir) {
        Ok(s) => s.remove().map_err(|e| e.to_string()),
        // Not fully prepared: unmount in case the mount happened before the failure, then remove.
        Err(_) => {
            let _ = nix::mount::umount2(&dir.join("merged"), nix::mount::MntFlags::MNT_DETACH);
            std::fs::remove_dir_all(dir).map_err(|e| format!("remove {}: {e}", dir.display()))
        }
    }
}

fn volume_point(name: &str, data: &Path, target: &str, read_only: bool) -> MountPoint {
    MountPoint {
        kind: "volume".into(),
        name: name.to_owned(),
        source: data.display().to_string(),
        destination: target.to_owned(),
        driver: "local".into(),
        mode: if read_only { "ro".into() } else { "z".into() },
        rw: !read_only,
        propagation: String::new(),
    }
}

/// `-P`: every port the image exposes (`80/tcp`, `53/udp`, `8080`) not already published gets an
/// ephemeral host port.
fn publish_exposed(config: &mut ContainerConfig, image: &runtime::image::Image) {
    let exposed = image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.exposed_ports().clone())
        .unwrap_or_default();
    for e in exposed {
        let (port, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        let protocol = match proto {
            "udp" => PortProtocol::Udp,
            _ => PortProtocol::Tcp,
        };
        let Ok(container_port) = port.parse::<u16>() else {
            continue;
        };
        if !config
            .ports
            .iter()
            .any(|p| p.container_port == container_port && p.protocol == protocol)
        {
            config.ports.push(PortBinding {
                host_ip: None,
                host_port: None,
                container_port,
                protocol,
            });
        }
    }
}

fn image_defaults(image: &runtime::image::Image) -> ImageDefaults {
    let Some(c) = image.config.config() else {
        return ImageDefaults::default();
    };
    ImageDefaults {
        env: c.env().clone().unwrap_or_default(),
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        working_dir: c.working_dir().clone(),
        user: c.user().clone(),
        stop_signal: c.stop_signal().clone(),
        volumes: c.volumes().clone().unwrap_or_default(),
    }
}

fn write_etc_files(
    paths: &crate::layout::ContainerPaths,
    hostname: &str,
    name: &str,
) -> std::io::Result<()> {
    std::fs::write(paths.hostname(), format!("{hostname}\n"))?;
    std::fs::write(
        paths.hosts(),
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname} {name}\n"
        ),
    )?;
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv: String = host
        .lines()
        .filter(|l| {
            // Loopback resolvers of the host are unreachable from the container's network.
            !(l.starts_with("nameserver 127.") || l.starts_with("nameserver ::1"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(paths.resolv_conf(), resolv)
}

/// Removes a container: its anonymous volumes (with `volumes`), then its directory, as
/// [`teardown_dir`] does.
pub fn teardown(shared: &Shared, record: &Record, volumes: bool) -> Result<Trashed, String> {
    if volumes {
        for v in &record.anonymous_volumes {
            if let Err(e) = shared.volumes.remove(v, &|_: &str| false) {
                tracing::warn!("remove volume {v}: {e}");
            }
        }
    }
    teardown_dir(shared, &record.id)
}

/// A removed container's directory, moved aside; [`Trashed::purge`] deletes it.
#[must_use = "the directory stays in the trash until purged"]
pub struct Trashed(Option<PathBuf>);

impl Trashed {
    /// Deletes the files (a millisecond or more: done after the removal is answered).
    pub fn purge(self) {
        if let Some(dir) = self.0 {
            match std::fs::remove_dir_all(&dir) {
                // At agent start two purges may meet on one directory.
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!("remove {}: {e}", dir.display());
                }
                _ => {}
            }
        }
    }
}

/// Unmounts a container's root filesystem and moves its directory from `containers/` to the trash
/// (one rename): from then on the container is gone, also for an agent that restarts. Deleting the
/// files is left to [`Trashed::purge`], and to [`purge_trash`] after a crash, as containerd's
/// overlay snapshotter does with removed snapshots.
pub fn teardown_dir(shared: &Shared, id: &str) -> Result<Trashed, String> {
    let paths = shared.layout.container(id);
    let snapshot = paths.snapshot();
    if snapshot.exists() {
        match runtime::snapshot::Snapshot::load(&snapshot) {
            Ok(s) => s.unmount().map_err(|e| e.to_string())?,
            // Not fully prepared: unmount in case the mount happened.
            Err(_) => {
                let _ =
                    nix::mount::umount2(&snapshot.join("merged"), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
    let trash = shared.layout.trash();
    std::fs::create_dir_all(&trash).map_err(|e| format!("create {}: {e}", trash.display()))?;
    let aside = trash.join(format!("{id}-{}", names::random_hex(4)));
    match std::fs::rename(&paths.dir, &aside) {
        Ok(()) => Ok(Trashed(Some(aside))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Trashed(None)),
        // E.g. `containers/` on a file system of its own: delete in place.
        Err(_) => match std::fs::remove_dir_all(&paths.dir) {
            Ok(()) => Ok(Trashed(None)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Trashed(None)),
            Err(e) => Err(format!("remove {}: {e}", paths.dir.display())),
        },
    }
}

/// Deletes whatever removals left in the trash (after a crash, at agent start).
pub fn purge_trash(shared: &Shared) {
    let Ok(entries) = std::fs::read_dir(shared.layout.trash()) else {
        return;
    };
    for e in entries.flatten() {
        Trashed(Some(e.path())).purge();
    }
}

/// `diff`: changes of the container's writable layer against its image. Mount points the runtime
/// created for the container (`/proc`, `/etc/hosts`, volume targets...) are not the container's doing
/// and are left out, with any directory that only exists to hold them (Docker keeps them in a
/// separate init layer for the same reason).
pub fn diff(shared: &Shared, record: &Record) -> Reply<Vec<FilesystemChange>> {
    let paths = shared.layout.container(&record.id);
    let changes = runtime::snapshot::Snapshot::load(&paths.snapshot())
        .and_then(|s| s.diff())
        .map_err(|e| internal("diff", e))?;
    let spec: Option<oci_spec::runtime::Spec> = std::fs::read(paths.config())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mount_points: Vec<PathBuf> = spec
        .iter()
        .flat_map(|s| s.mounts().iter().flatten())
        .map(|m| m.destination().clone())
        .collect();
    Ok(without_mount_points(changes, &mount_points)
        .into_iter()
        .map(|c| FilesystemChange {
            path: c.path.display().to_string(),
            kind: match c.kind {
                runtime::snapshot::ChangeKind::Added => ChangeKind::Added,
                runtime::snapshot::ChangeKind::Changed => ChangeKind::Modified,
                runtime::snapshot::ChangeKind::Deleted => ChangeKind::Deleted,
            },
        })
        .collect())
}

fn without_mount_points(
    changes: Vec<runtime::snapshot::Change>,
    mount_points: &[PathBuf],
) -> Vec<runtime::snapshot::Change> {
    use runtime::snapshot::ChangeKind as K;
    let is_mount = |p: &Path| mount_points.iter().any(|m| m == p);
    let under_mount = |p: &Path| mount_points.iter().any(|m| p.starts_with(m) && p != m);
    let kept: Vec<_> = changes
        .into_iter()
        .filter(|c| !(under_mount(&c.path) || c.kind == K::Added && is_mount(&c.path)))
        .collect();
    // A directory that holds mount points and nothing else the container changed goes too.
    let holds_mount = |p: &Path| mount_points.iter().any(|m| m.starts_with(p) && m != p);
    kept.iter()
        .filter(|c| {
            c.kind == K::Deleted
                || !holds_mount(&c.path)
                || kept
                    .iter()
                    .any(|o| o.path.starts_with(&c.path) && o.path != c.path)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::snapshot::{Change, ChangeKind as K};

    fn ch(kind: K, p: &str) -> Change {
        Change {
            kind,
            path: PathBuf::from(p),
        }
    }

    #[test]
    fn diff_leaves_out_runtime_mount_points() {
        let mounts: Vec<PathBuf> = ["/proc", "/dev", "/dev/pts", "/etc/hosts", "/data"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let changes = vec![
            ch(K::Changed, "/bin"),
            ch(K::Deleted, "/bin/true"),
            ch(K::Added, "/data"),
            ch(K::Added, "/dev"),
            ch(K::Added, "/dev/pts"),
            ch(K::Added, "/etc"),
            ch(K::Added, "/etc/hosts"),
            ch(K::Added, "/etc/motd"),
            ch(K::Added, "/newfile"),
            ch(K::Added, "/proc"),
        ];
        let kept: Vec<String> = without_mount_points(changes, &mounts)
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            kept,
            [
                "C /bin",
                "D /bin/true",
                "A /etc",
                "A /etc/motd",
                "A /newfile"
            ]
        );
        let only_mounts = vec![ch(K::Added, "/etc"), ch(K::Added, "/etc/hosts")];
        assert!(without_mount_points(only_mounts, &mounts).is_empty());
    }
}
