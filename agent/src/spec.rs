//! Translates a container's configuration (what `docker run` flags say) plus its image's defaults into
//! the OCI runtime spec written to the container's bundle, with Docker's defaults: the 14 default
//! capabilities adjusted by `--cap-add/--cap-drop`, the default seccomp profile, masked and read-only
//! paths, a private `/dev`, and the limits of `-m/--cpus/--pids-limit`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, Spec};
use protocol::messages::{ContainerConfig, NetworkMode};
use serde_json::{json, Value};

use runtime::defaults::{DOCKER_CAPABILITIES, MASKED_PATHS, READONLY_PATHS};

/// The image settings a container inherits unless its own configuration overrides them.
#[derive(Debug, Clone, Default)]
pub struct ImageDefaults {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    pub volumes: Vec<String>,
}

/// A resolved bind into the container: host source, container target, read-only.
#[derive(Debug, Clone)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// The numeric identity a container process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// Why a configuration cannot become a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("no command specified: the image has no CMD or ENTRYPOINT and none was given")]
    NoCommand,
    #[error("invalid capability {0:?}")]
    BadCapability(String),
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("generated spec is invalid: {0}")]
    Invalid(String),
}

/// The process arguments: entrypoint + cmd, where an explicit entrypoint drops the image's cmd as
/// Docker does.
pub fn process_args(
    cfg: &ContainerConfig,
    image: &ImageDefaults,
) -> Result<Vec<String>, SpecError> {
    let (entrypoint, default_cmd) = match &cfg.entrypoint {
        Some(ep) => (ep.clone(), Vec::new()),
        None => (image.entrypoint.clone(), image.cmd.clone()),
    };
    let cmd = cfg.cmd.clone().unwrap_or(default_cmd);
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(args)
}

/// Image env, then the container's `-e` values (later keys win), then HOSTNAME and a default PATH.
pub fn merged_env(cfg: &ContainerConfig, image: &ImageDefaults, hostname: &str) -> Vec<String> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut put = |kv: &str| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if vars.insert(k.to_owned(), v.to_owned()).is_none() {
            order.push(k.to_owned());
        }
    };
    put("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    put(&format!("HOSTNAME={hostname}"));
    for kv in image.env.iter().chain(&cfg.env) {
        put(kv);
    }
    if cfg.tty {
        put("TERM=xterm");
    }
    order
        .into_iter()
        .map(|k| {
            let v = &vars[&k];
            format!("{k}={v}")
        })
        .collect()
}

/// Docker's default set with `--cap-add`/`--cap-drop` applied (`ALL` allowed on either side).
pub fn capabilities(cfg: &ContainerConfig) -> Result<Vec<Capability>, SpecError> {
    let parse = |name: &str| -> Result<Capability, SpecError> {
        let upper = name.to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        bare.parse::<Capability>()
            .map_err(|_| SpecError::BadCapability(name.to_owned()))
    };
    let mut caps: Vec<Capability> = DOCKER_CAPABILITIES.to_vec();
    if cfg.cap_drop.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        caps.clear();
    } else {
        for c in &cfg.cap_drop {
            let cap = parse(c)?;
            caps.retain(|x| *x != cap);
        }
    }
    if cfg.cap_add.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        caps = all_capabilities();
    } else {
        for c in &cfg.cap_add {
            let cap = parse(c)?;
            if !caps.contains(&cap) {
                caps.push(cap);
            }
        }
    }
    Ok(caps)
}

fn all_capabilities() -> Vec<Capability> {
    caps::runtime::thread_all_supported()
        .into_iter()
        .filter_map(|c| c.to_string().trim_start_matches("CAP_").parse().ok())
        .collect()
}

/// Resolves `user[:group]` (names or numbers) against the container's own /etc/passwd and /etc/group.
pub fn resolve_user(rootfs: &Path, user: Option<&str>) -> Result<Identity, SpecError> {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok(Identity { uid: 0, gid: 0 });
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd =
        runtime::safe_path::read_in_root(rootfs, Path::new("/etc/passwd")).unwrap_or_default();
    let (uid, primary_gid) = match u.parse::<u32>() {
        Ok(uid) => {
            let gid = passwd_entries(&passwd)
                .find(|e| e.1 == uid)
                .map(|e| e.2)
                .unwrap_or(0);
            (uid, gid)
        }
        Err(_) => passwd_entries(&passwd)
            .find(|e| e.0 == u)
            .map(|e| (e.1, e.2))
            .ok_or_else(|| SpecError::UnknownUser(u.to_owned()))?,
    };
    let gid = match g {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let group = runtime::safe_path::read_in_root(rootfs, Path::new("/etc/group"))
                    .unwrap_or_default();
                group
                    .lines()
                    .filter_map(|l| {
                        let mut f = l.split(':');
                        let name = f.next()?;
                        let gid = f.nth(1)?.parse::<u32>().ok()?;
                        Some((name, gid))
                    })
                    .find(|(name, _)| *name == g)
                    .map(|(_, gid)| gid)
                    .ok_or_else(|| SpecError::UnknownGroup(g.to_owned()))?
            }
        },
    };
    Ok(Identity { uid, gid })
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    passwd.lines().filter_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let uid = f.nth(1)?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some((name, uid, gid))
    })
}

/// Everything besides the configuration that goes into a spec.
pub struct SpecInputs<'a> {
    pub hostname: &'a str,
    pub rootfs: &'a Path,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub identity: Identity,
    pub binds: &'a [BindMount],
    pub tmpfs: &'a [(String, Option<u64>)],
    pub cgroup_path: String,
    /// The pinned network namespace to join (bridge networks); `None` gives a fresh one.
    pub netns: Option<&'a Path>,
}

/// Builds the OCI spec for a container.
pub fn build(cfg: &ContainerConfig, inputs: &SpecInputs<'_>) -> Result<Spec, SpecError> {
    let caps = capabilities(cfg)?;
    let cap_names: Vec<String> = caps.iter().map(|c| format!("CAP_{c}")).collect();
    let seccomp = runtime::seccomp::docker_default(&caps);

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}),
    ];
    for (target, size) in inputs.tmpfs {
        let mut options = vec!["nosuid".to_owned(), "nodev".to_owned(), "noexec".to_owned()];
        if let Some(size) = size {
            options.push(format!("size={size}"));
        }
        mounts.push(
            json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options}),
        );
    }
    for b in inputs.binds {
        let mut options = vec!["rbind", "rprivate"];
        if b.read_only {
            options.push("ro");
        }
        mounts.push(json!({"destination": b.target, "type": "bind", "source": b.source, "options": options}));
    }

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    match (&cfg.network, inputs.netns) {
        (NetworkMode::Host, _) => {}
        (_, Some(path)) => namespaces.push(json!({"type": "network", "path": path})),
        (_, None) => namespaces.push(json!({"type": "network"})),
    }

    let mut resources = json!({
        "devices": [
            {"allow": false, "access": "rwm"},
        ],
    });
    if let Some(mem) = cfg.resources.memory_bytes {
        resources["memory"] = json!({"limit": mem, "swap": mem});
    }
    if let Some(nano) = cfg.resources.nano_cpus {
        let period: u64 = 100_000;
        resources["cpu"] =
            json!({"quota": (nano * period / 1_000_000_000) as i64, "period": period});
    }
    if let Some(pids) = cfg.resources.pids_limit {
        resources["pids"] = json!({"limit": pids});
    }

    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": cfg.tty,
            "user": {"uid": inputs.identity.uid, "gid": inputs.identity.gid},
            "args": inputs.args,
            "env": inputs.env,
            "cwd": inputs.cwd,
            "capabilities": {"bounding": cap_names, "effective": cap_names, "permitted": cap_names},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile_limit(), "soft": nofile_limit()}],
            "noNewPrivileges": false,
        },
        "root": {"path": inputs.rootfs, "readonly": cfg.read_only_rootfs},
        "hostname": inputs.hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": inputs.cgroup_path,
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    });
    let mut spec = from_value(spec)?;
    // Set as built: the profile is most of the spec, and a trip through JSON values would cost
    // more than the rest of it.
    if let Some(linux) = spec.linux_mut() {
        linux.set_seccomp(Some(seccomp));
    }
    Ok(spec)
}

/// Docker's open-files limit (1048576), capped at what this daemon may grant: raising a hard limit
/// needs CAP_SYS_RESOURCE, which not every host gives its root.
fn nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    let has_resource = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false);
    match (ok, has_resource) {
        (true, false) => lim.rlim_max.min(1_048_576),
        _ => 1_048_576,
    }
}

fn from_value(v: Value) -> Result<Spec, SpecError> {
    serde_json::from_value(v).map_err(|e| SpecError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageDefaults {
        ImageDefaults {
            env: vec!["PATH=/bin".into(), "A=1".into()],
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            ..Default::default()
        }
    }

    #[test]
    fn entrypoint_override_drops_image_cmd() {
        let mut cfg = ContainerConfig::default();
        assert_eq!(process_args(&cfg, &image()).unwrap(), vec!["sh"]);
        cfg.entrypoint = Some(vec!["/bin/echo".into()]);
        assert_eq!(process_args(&cfg, &image()).unwrap(), vec!["/bin/echo"]);
        cfg.cmd = Some(vec!["hi".into()]);
        assert_eq!(
            process_args(&cfg, &image()).unwrap(),
            vec!["/bin/echo", "hi"]
        );
        let empty = ImageDefaults::default();
        assert!(matches!(
            process_args(&ContainerConfig::default(), &empty),
            Err(SpecError::NoCommand)
        ));
    }

    #[test]
    fn env_later_values_win_and_keep_order() {
        let cfg = ContainerConfig {
            env: vec!["A=2".into(), "B=3".into()],
            ..Default::default()
        };
        let env = merged_env(&cfg, &image(), "abc");
        assert_eq!(env, vec!["PATH=/bin", "HOSTNAME=abc", "A=2", "B=3"]);
    }

    #[test]
    fn cap_add_and_drop() {
        let cfg = ContainerConfig {
            cap_add: vec!["SYS_ADMIN".into()],
            cap_drop: vec!["CAP_CHOWN".into()],
            ..Default::default()
        };
        let caps = capabilities(&cfg).unwrap();
        assert!(caps.contains(&Capability::SysAdmin));
        assert!(!caps.contains(&Capability::Chown));
        assert_eq!(caps.len(), 14);
        let bad = ContainerConfig {
            cap_add: vec!["NOPE".into()],
            ..Default::default()
        };
        assert!(matches!(
            capabilities(&bad),
            Err(SpecError::BadCapability(_))
        ));
    }

    #[test]
    fn users_resolve_from_the_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let r = |u| resolve_user(dir.path(), Some(u));
        assert_eq!(
            r("web").unwrap(),
            Identity {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(
            r("1000").unwrap(),
            Identity {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(r("web:staff").unwrap(), Identity { uid: 1000, gid: 50 });
        assert_eq!(r("42:7").unwrap(), Identity { uid: 42, gid: 7 });
        assert!(matches!(r("nobody"), Err(SpecError::UnknownUser(_))));
        assert!(matches!(r("web:nogroup"), Err(SpecError::UnknownGroup(_))));
    }

    #[test]
    fn spec_has_docker_defaults() {
        let cfg = ContainerConfig {
            resources: protocol::messages::Resources {
                memory_bytes: Some(64 << 20),
                nano_cpus: Some(1_500_000_000),
                pids_limit: Some(100),
            },
            ..Default::default()
        };
        let inputs = SpecInputs {
            hostname: "abc",
            rootfs: Path::new("/tmp/rootfs"),
            args: vec!["sh".into()],
            env: vec![],
            cwd: "/".into(),
            identity: Identity { uid: 0, gid: 0 },
            binds: &[],
            tmpfs: &[],
            cgroup_path: "/berth/abc".into(),
            netns: None,
        };
        let spec = build(&cfg, &inputs).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            v["process"]["capabilities"]["effective"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 150_000);
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert!(v["linux"]["seccomp"]["syscalls"].as_array().unwrap().len() > 10);
        assert!(v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
    }
}
