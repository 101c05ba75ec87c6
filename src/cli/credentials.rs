//! The CLI's registry credentials: `auth.json` next to the client configuration (so each daemon's
//! clients keep their own), mode 0600, in docker's `config.json` shape
//! (`{"auths": {"HOST:PORT": {"auth": base64("user:password")}}}`). Written by `login`, read by
//! every verb that may reach a registry and sent along with its request.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use protocol::messages::RegistryAuth;
use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "auth.json";

#[derive(Default, Serialize, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    auth: String,
}

/// The credentials file that belongs to the client configuration `config`.
pub fn path_for(config: &Path) -> PathBuf {
    config
        .parent()
        .map(|d| d.join(FILE_NAME))
        .unwrap_or_else(|| PathBuf::from(FILE_NAME))
}

/// `https://host:port/` → `host:port`, as docker normalises a login server.
pub fn normalize_server(server: &str) -> String {
    let s = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    s.split('/').next().unwrap_or(s).to_string()
}

fn read(path: &Path) -> Result<AuthFile> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("credentials file {} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthFile::default()),
        Err(e) => Err(anyhow!(
            "cannot read credentials file {}: {e}",
            path.display()
        )),
    }
}

/// Replaces the file atomically; it is created 0600 and never exists with wider permissions.
fn write(path: &Path, file: &AuthFile) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(file).context("encode credentials")?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    let done = f
        .write_all(&bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = done {
        let _ = fs::remove_file(&tmp);
        return Err(anyhow!("cannot write {}: {e}", path.display()));
    }
    Ok(())
}

/// The stored credentials for `registry`, if any.
pub fn lookup(path: &Path, registry: &str) -> Result<Option<RegistryAuth>> {
    let file = read(path)?;
    let Some(entry) = file.auths.get(registry) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            anyhow!(
                "credentials for {registry} in {} are not valid base64",
                path.display()
            )
        })?;
    let (username, password) = decoded.split_once(':').ok_or_else(|| {
        anyhow!(
            "credentials for {registry} in {} lack a ':'",
            path.display()
        )
    })?;
    Ok(Some(RegistryAuth {
        username: username.to_string(),
        password: password.to_string(),
    }))
}

/// The credentials for the registry an image reference names (none for an unparsable name: the
/// node reports that).
pub fn for_image(path: &Path, image: &str) -> Result<Option<RegistryAuth>> {
    match runtime::image::Reference::parse(image) {
        Ok(r) => lookup(path, r.domain()),
        Err(_) => Ok(None),
    }
}

/// Stores credentials for `registry`.
pub fn store(path: &Path, registry: &str, auth: &RegistryAuth) -> Result<()> {
    let mut file = read(path)?;
    let raw = format!("{}:{}", auth.username, auth.password);
    file.auths.insert(
        registry.to_string(),
        Entry {
            auth: base64::engine::general_purpose::STANDARD.encode(raw),
        },
    );
    write(path, &file)
}

/// Forgets `registry`; false when there was nothing to forget.
pub fn remove(path: &Path, registry: &str) -> Result<bool> {
    let mut file = read(path)?;
    if file.auths.remove(registry).is_none() {
        return Ok(false);
    }
    write(path, &file)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn store_lookup_remove_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("client.toml"));
        let auth = RegistryAuth {
            username: "u".into(),
            password: "p:w".into(),
        };
        assert_eq!(lookup(&path, "127.0.0.1:5000").unwrap(), None);
        store(&path, "127.0.0.1:5000", &auth).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(lookup(&path, "127.0.0.1:5000").unwrap(), Some(auth.clone()));
        assert_eq!(
            for_image(&path, "127.0.0.1:5000/a/b:1").unwrap(),
            Some(auth)
        );
        assert_eq!(for_image(&path, "busybox").unwrap(), None);
        assert!(remove(&path, "127.0.0.1:5000").unwrap());
        assert!(!remove(&path, "127.0.0.1:5000").unwrap());
        assert_eq!(lookup(&path, "127.0.0.1:5000").unwrap(), None);
    }

    #[test]
    fn servers_are_normalised_like_docker() {
        assert_eq!(normalize_server("https://reg:5000/"), "reg:5000");
        assert_eq!(normalize_server("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
