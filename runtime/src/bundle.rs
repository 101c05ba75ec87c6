//! OCI bundles: loading and validating `config.json` and the rootfs, and writing a default spec.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// A validated bundle: its spec and the absolute path of its root filesystem.
pub struct Bundle {
    pub path: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Reads `<dir>/config.json` and checks what must hold before anything is created.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = std::path::absolute(dir).map_err(|e| Error::io("resolve bundle path", e))?;
        let config = path.join("config.json");
        let data = std::fs::read(&config).map_err(|e| Error::Bundle {
            path: path.clone(),
            reason: format!("cannot read config.json: {e}"),
        })?;
        let spec: Spec = serde_json::from_slice(&data).map_err(|e| Error::Spec(e.to_string()))?;
        let rootfs = Self::rootfs_of(&path, &spec)?;
        validate(&spec)?;
        Ok(Bundle { path, spec, rootfs })
    }

    fn rootfs_of(bundle: &Path, spec: &Spec) -> Result<PathBuf> {
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::Spec("root.path is missing".into()))?;
        let rootfs = bundle.join(root.path());
        match std::fs::metadata(&rootfs) {
            Ok(m) if m.is_dir() => Ok(rootfs),
            Ok(_) => Err(Error::Bundle {
                path: bundle.to_owned(),
                reason: format!("rootfs {} is not a directory", rootfs.display()),
            }),
            Err(e) => Err(Error::Bundle {
                path: bundle.to_owned(),
                reason: format!("rootfs {}: {e}", rootfs.display()),
            }),
        }
    }
}

fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Spec("process is missing".into()))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Spec("process.args must name a program".into()));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::Spec(format!(
            "process.cwd {} must be an absolute path",
            process.cwd().display()
        )));
    }
    if let Some(linux) = spec.linux() {
        for ns in linux.namespaces().iter().flatten() {
            if ns.typ() == LinuxNamespaceType::User {
                return Err(Error::Unsupported(
                    "user namespaces are not supported yet: remove the \"user\" namespace".into(),
                ));
            }
        }
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(Error::Spec(format!(
                "mount destination {} must be an absolute path",
                m.destination().display()
            )));
        }
    }
    Ok(())
}

/// The spec `berth runtime spec` writes, shaped like runc's: a shell on a terminal with a minimal set of
/// capabilities (no inheritable or ambient ones), all namespaces but user and time, and Docker's masked
/// and read-only paths.
pub fn default_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("berth".into()));
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(true));
        if let Some(mut caps) = process.capabilities().clone() {
            caps.set_inheritable(None);
            caps.set_ambient(None);
            process.set_capabilities(Some(caps));
        }
    }
    spec
}
