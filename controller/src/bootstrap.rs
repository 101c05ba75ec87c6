//! First start of a one-host cluster (`berth daemon`): the cluster CA, the controller's
//! certificate, the local agent's node certificate, an admin client identity and the client
//! configuration file the CLI reads. Later starts reuse everything already on disk.
//!
//! Layout under the root:
//! ```text
//! pki/ca/ca.pem, ca-key.pem                     the cluster CA (key 0600)
//! pki/controller/controller.pem, -key.pem, ca.pem
//! pki/node/node.pem, node-key.pem, ca.pem       the local agent
//! pki/admin/admin.pem, admin-key.pem, ca.pem    the CLI's identity
//! client.toml                                   (0600) where the controller is and which files to use
//! ```

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use protocol::messages::Role;
use protocol::tls::{CertHash, ClusterCa, Identity, TlsError};
use serde::{Deserialize, Serialize};

/// Name of the admin client identity (its certificate's common name).
pub const ADMIN_NAME: &str = "admin";

/// Failures of bootstrap and of reading a client configuration.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Certificates.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The client configuration is not valid TOML of the expected shape.
    #[error("{path}: {reason}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the CLI needs to reach the controller: the content of `client.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfigFile {
    /// The controller's QUIC address, `IP:PORT`.
    pub controller: String,
    /// The name in the controller's certificate to verify.
    pub server_name: String,
    /// The client certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
    /// The cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// SHA-256 (hex) of the controller's certificate, which the client then accepts without
    /// checking its chain again (`protocol::known_certs`); absent, or another certificate, means
    /// the full check against `ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_sha256: Option<String>,
}

impl ClientConfigFile {
    /// Reads and parses a client configuration; relative paths are taken from the file's
    /// directory.
    pub fn load(path: &Path) -> Result<ClientConfigFile, BootstrapError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let mut cfg: ClientConfigFile =
            toml::from_str(&text).map_err(|e| BootstrapError::BadConfig {
                path: path.to_path_buf(),
                reason: e.message().to_string(),
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut cfg.cert, &mut cfg.key, &mut cfg.ca] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }

    /// The controller address as a socket address.
    pub fn controller_addr(&self, path: &Path) -> Result<SocketAddr, BootstrapError> {
        self.controller
            .parse()
            .map_err(|_| BootstrapError::BadConfig {
                path: path.to_path_buf(),
                reason: format!(
                    "controller = {:?} is not an IP:PORT address",
                    self.controller
                ),
            })
    }

    /// The controller certificate's SHA-256, if the file names it.
    pub fn controller_fingerprint(&self, path: &Path) -> Result<Option<CertHash>, BootstrapError> {
        let Some(text) = &self.controller_sha256 else {
            return Ok(None);
        };
        text.parse()
            .map(Some)
            .map_err(|e: protocol::tls::BadCertHash| BootstrapError::BadConfig {
                path: path.to_path_buf(),
                reason: format!("controller_sha256 = {text:?} is {e}"),
            })
    }

    /// The client identity the file points at.
    pub fn identity(&self) -> Result<Identity, TlsError> {
        Identity::load_files(&self.cert, &self.key, &self.ca)
    }

    /// Writes the file atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), BootstrapError> {
        let body = toml::to_string(self).map_err(|e| BootstrapError::BadConfig {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let text = format!("# berth client configuration, written by `berth daemon`\n{body}");
        let tmp = path.with_extension("toml.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io(path))
    }
}

/// Everything `berth daemon` needs after bootstrap.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The controller's certificate (server and client auth), name = node name.
    pub controller: Identity,
    /// The local agent's node certificate.
    pub agent: Identity,
    /// The node (and controller) name.
    pub node_name: String,
    /// Where the admin identity's files are.
    pub admin_dir: PathBuf,
    /// `ROOT/client.toml`.
    pub client_config: PathBuf,
}

impl Bootstrap {
    /// Writes `client.toml` pointing at `addr` (called again once a port-0 listener knows its
    /// port).
    pub fn write_client_config(&self, addr: SocketAddr) -> Result<(), BootstrapError> {
        let stem = |s: &str| self.admin_dir.join(s);
        ClientConfigFile {
            controller: connect_addr(addr).to_string(),
            server_name: self.node_name.clone(),
            cert: stem(&format!("{ADMIN_NAME}.pem")),
            key: stem(&format!("{ADMIN_NAME}-key.pem")),
            ca: stem("ca.pem"),
            controller_sha256: Some(CertHash::of(&self.controller.cert_der).to_string()),
        }
        .save(&self.client_config)
    }
}

/// The address a local client dials for a listener on `addr` (an unspecified listen address is
/// reached on loopback).
pub fn connect_addr(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

fn load_or_issue(
    ca: &ClusterCa,
    dir: &Path,
    stem: &str,
    name: &str,
    role: Role,
    addresses: &[String],
) -> Result<Identity, BootstrapError> {
    if dir.join(format!("{stem}.pem")).exists() {
        let id = Identity::load(dir, stem)?;
        // Reuse only what this CA issued for this name; anything else is reissued.
        let who = id.cert_identity()?;
        if id.ca_hash() == ca.hash() && who.name == name && who.role == role {
            return Ok(id);
        }
    }
    let id = ca.issue(name, role, addresses)?;
    id.save(dir, stem)?;
    tracing::info!(name, role = %role, dir = %dir.display(), "issued certificate");
    Ok(id)
}

/// Creates (first start) or loads (later starts) the cluster PKI under `root/pki` and writes
/// `root/client.toml` for `listen`.
pub fn bootstrap(
    root: &Path,
    listen: SocketAddr,
    node_name: &str,
) -> Result<Bootstrap, BootstrapError> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    let pki = root.join("pki");
    let ca = ClusterCa::load_or_create(&pki.join("ca"), node_name)?;
    let mut addresses = vec![Ipv4Addr::LOCALHOST.to_string()];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        addresses.push(listen.ip().to_string());
    }
    let controller = load_or_issue(
        &ca,
        &pki.join("controller"),
        "controller",
        node_name,
        Role::Controller,
        &addresses,
    )?;
    let agent = load_or_issue(&ca, &pki.join("node"), "node", node_name, Role::Agent, &[])?;
    let admin_dir = pki.join(ADMIN_NAME);
    load_or_issue(&ca, &admin_dir, ADMIN_NAME, ADMIN_NAME, Role::Client, &[])?;
    let boot = Bootstrap {
        controller,
        agent,
        node_name: node_name.to_string(),
        admin_dir,
        client_config: root.join("client.toml"),
    };
    if listen.port() != 0 {
        boot.write_client_config(listen)?;
    }
    Ok(boot)
}

/// A node name usable in certificates from a host name: lowercase letters, digits and `-`,
/// `berth-node` when nothing usable is left.
pub fn node_name_from_hostname(host: &str) -> String {
    let cleaned: String = host
        .split('.')
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "berth-node".to_string()
    } else if trimmed.chars().all(|c| c.is_ascii_digit() || c == '-') {
        // An all-numeric label is not a valid certificate name.
        format!("node-{}", trimmed.chars().take(58).collect::<String>())
    } else {
        trimmed.chars().take(63).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn first_start_creates_and_later_starts_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "127.0.0.1:7443".parse().unwrap();
        let a = bootstrap(dir.path(), listen, "host-a").unwrap();
        let cfg_path = dir.path().join("client.toml");
        let mode = std::fs::metadata(&cfg_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let cfg = ClientConfigFile::load(&cfg_path).unwrap();
        assert_eq!(cfg.controller, "127.0.0.1:7443");
        assert_eq!(cfg.server_name, "host-a");
        let admin = cfg.identity().unwrap();
        assert_eq!(admin.cert_identity().unwrap().role, Role::Client);
        assert_eq!(admin.cert_identity().unwrap().name, ADMIN_NAME);
        let b = bootstrap(dir.path(), listen, "host-a").unwrap();
        assert_eq!(a.controller.cert_der, b.controller.cert_der);
        assert_eq!(a.agent.cert_der, b.agent.cert_der);
        assert_eq!(
            a.agent.cert_identity().unwrap().role,
            protocol::messages::Role::Agent
        );
    }

    #[test]
    fn port_zero_writes_config_later() {
        let dir = tempfile::tempdir().unwrap();
        let b = bootstrap(dir.path(), "127.0.0.1:0".parse().unwrap(), "h").unwrap();
        assert!(!b.client_config.exists());
        b.write_client_config("0.0.0.0:4000".parse().unwrap())
            .unwrap();
        let cfg = ClientConfigFile::load(&b.client_config).unwrap();
        assert_eq!(cfg.controller, "127.0.0.1:4000");
        // It names the controller's certificate, which the CLI then trusts without a chain check.
        assert_eq!(
            cfg.controller_fingerprint(&b.client_config).unwrap(),
            Some(CertHash::of(&b.controller.cert_der))
        );
    }

    #[test]
    fn controller_fingerprint_is_optional_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        let base = "controller = \"127.0.0.1:1\"\nserver_name = \"h\"\ncert = \"c\"\nkey = \"k\"\nca = \"a\"\n";
        std::fs::write(&path, base).unwrap();
        let cfg = ClientConfigFile::load(&path).unwrap();
        assert_eq!(cfg.controller_fingerprint(&path).unwrap(), None);
        for bad in ["abc", &"zz".repeat(32), &"é".repeat(32)] {
            std::fs::write(&path, format!("{base}controller_sha256 = \"{bad}\"\n")).unwrap();
            let cfg = ClientConfigFile::load(&path).unwrap();
            let err = cfg.controller_fingerprint(&path).unwrap_err().to_string();
            assert!(err.contains("controller_sha256"), "{err}");
        }
    }

    #[test]
    fn bad_config_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("client.toml");
        std::fs::write(&p, "controller = 3\n").unwrap();
        let e = ClientConfigFile::load(&p).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("client.toml"), "{e}");
    }

    #[test]
    fn hostnames_become_node_names() {
        assert_eq!(
            node_name_from_hostname("Build_Box.example.org"),
            "build-box"
        );
        assert_eq!(node_name_from_hostname(""), "berth-node");
        assert_eq!(node_name_from_hostname("10"), "node-10");
    }
}
