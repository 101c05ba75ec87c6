//! Which URL and trust a registry host gets: plain HTTP for loopback registries and those named
//! insecure, HTTPS with a per-registry CA from a docker-style `certs.d/HOST:PORT/ca.crt`, HTTPS with
//! the public web roots otherwise.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::error::{RegistryError, Result};
use crate::image::DEFAULT_DOMAIN;

/// docker.io's API lives on another host name.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const CA_FILE: &str = "ca.crt";

/// How this host reaches registries (`berth daemon --insecure-registry`, `--registry-certs`).
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    /// `HOST[:PORT]`s spoken to over plain HTTP besides loopback ones.
    pub insecure: Vec<String>,
    /// A directory of `HOST:PORT/ca.crt` files: the CA that registry's certificate must chain to.
    pub certs_dir: Option<PathBuf>,
}

/// One registry as the HTTP layer sees it.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    /// The host as references name it (`127.0.0.1:5000`), for messages.
    pub registry: String,
    /// `http://127.0.0.1:5000` or `https://registry-1.docker.io`.
    pub base: String,
    pub tls: TlsConfig,
}

impl RegistryConfig {
    /// Picks the scheme and trust for the registry `domain` (a reference's domain).
    pub(crate) fn endpoint(&self, domain: &str) -> Result<Endpoint> {
        let host = if domain == DEFAULT_DOMAIN {
            DOCKER_HUB_API
        } else {
            domain
        };
        if let Some(ca) = self.custom_ca(domain)? {
            return Ok(Endpoint {
                registry: domain.to_string(),
                base: format!("https://{host}"),
                tls: TlsConfig::builder()
                    .root_certs(RootCerts::Specific(Arc::new(ca)))
                    .build(),
            });
        }
        let plain = is_loopback(domain) || self.insecure.iter().any(|i| i == domain);
        Ok(Endpoint {
            registry: domain.to_string(),
            base: format!("{}://{host}", if plain { "http" } else { "https" }),
            tls: TlsConfig::builder().root_certs(RootCerts::WebPki).build(),
        })
    }

    fn custom_ca(&self, domain: &str) -> Result<Option<Vec<Certificate<'static>>>> {
        let Some(dir) = &self.certs_dir else {
            return Ok(None);
        };
        // A domain is a host name or address and an optional port: never a path.
        if domain.contains('/') || domain.starts_with('.') {
            return Ok(None);
        }
        let path = dir.join(domain).join(CA_FILE);
        let pem = match std::fs::read(&path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RegistryError::Config(format!("{}: {e}", path.display()))),
        };
        let certs = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| RegistryError::Config(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(RegistryError::Config(format!(
                "{}: no PEM certificate in it",
                path.display()
            )));
        }
        Ok(Some(certs))
    }
}

/// `localhost`, 127.0.0.0/8 and ::1, with or without a port: registries docker also speaks plain
/// HTTP to.
pub(crate) fn is_loopback(domain: &str) -> bool {
    let host = match domain.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => domain.rsplit_once(':').map_or(domain, |(h, _)| h),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_insecure() {
        for d in [
            "127.0.0.1:5000",
            "127.3.4.5",
            "localhost:5000",
            "[::1]:5000",
        ] {
            assert!(is_loopback(d), "{d}");
        }
        for d in [
            "10.0.0.1:5000",
            "registry.example:5000",
            "docker.io",
            "[::2]:1",
        ] {
            assert!(!is_loopback(d), "{d}");
        }
        let cfg = RegistryConfig {
            insecure: vec!["reg.lan:5000".into()],
            certs_dir: None,
        };
        assert_eq!(
            cfg.endpoint("reg.lan:5000").unwrap().base,
            "http://reg.lan:5000"
        );
        assert_eq!(
            cfg.endpoint("reg.lan:5001").unwrap().base,
            "https://reg.lan:5001"
        );
        assert_eq!(
            cfg.endpoint("127.0.0.1:80").unwrap().base,
            "http://127.0.0.1:80"
        );
        assert_eq!(
            cfg.endpoint("docker.io").unwrap().base,
            "https://registry-1.docker.io"
        );
    }

    #[test]
    fn a_certs_dir_ca_means_https_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("127.0.0.1:5000")).unwrap();
        std::fs::write(dir.path().join("127.0.0.1:5000/ca.crt"), "not a pem").unwrap();
        let cfg = RegistryConfig {
            insecure: Vec::new(),
            certs_dir: Some(dir.path().to_path_buf()),
        };
        let e = cfg.endpoint("127.0.0.1:5000").unwrap_err().to_string();
        assert!(e.contains("ca.crt"), "{e}");
        assert_eq!(
            cfg.endpoint("127.0.0.1:5001").unwrap().base,
            "http://127.0.0.1:5001"
        );
    }
}
