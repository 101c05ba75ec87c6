//! Cluster PKI and TLS configurations: the cluster CA, certificate issuance (directly or from a
//! CSR), identities on disk, the rustls configs for mutual TLS, and the join-token primitives.
//!
//! Trust model:
//! - one self-signed cluster CA, created by the controller on first start and kept as PEM files
//!   (`ca.pem`, `ca-key.pem` with mode 0600) in its state directory;
//! - every certificate names its holder in the common name (and a DNS SAN) and its [`Role`] in the
//!   organizational unit, so a peer's role and name come from what the CA signed, not from what
//!   the peer says; controller certificates alone carry the serverAuth usage;
//! - servers require a client certificate chaining to the cluster CA (refused during the TLS
//!   handshake otherwise) and clients trust only the cluster CA; a certificate that passed is not
//!   checked against the CA again while valid ([`crate::known_certs`]);
//! - ALPN is [`ALPN`]; 0-RTT is disabled on both sides and session resumption is off, so every
//!   connection runs a full mutual authentication;
//! - an agent joins with a [`JoinToken`] (`berth1-<ca sha256>-<secret>`): it dials the separate
//!   join endpoint trusting only a CA whose hash equals the token's ([`PinnedCaVerifier`]), sends
//!   the secret and a CSR, and gets its signed certificate back.

use crate::messages::Role;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
    UnixTime,
};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// ALPN protocol of the main Berth endpoint. A peer speaking anything else fails the TLS
/// handshake.
pub const ALPN: &[u8] = b"berth/1";

/// ALPN protocol of the join endpoint, which accepts peers without certificates and serves only
/// the join exchange.
pub const JOIN_ALPN: &[u8] = b"berth-join/1";

/// Lifetime of the cluster CA certificate.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Lifetime of node and client certificates.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Backdating of `not_before`, tolerating clocks that lag the issuer's.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";

/// Failures of certificate handling and TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused to build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file does not hold the PEM object expected.
    #[error("{}: {reason}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Only one of the CA's certificate and key exists; refusing to guess.
    #[error("{}: CA certificate and key must both exist or both be absent", dir.display())]
    IncompleteCa {
        /// The CA directory.
        dir: PathBuf,
    },
    /// rustls refused a configuration (bad key, unsupported certificate...).
    #[error("tls configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// A certificate verifier could not be built.
    #[error("certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A certificate signing request was malformed or badly signed.
    #[error("invalid certificate signing request: {0}")]
    BadCsr(String),
    /// A node name cannot be used in a certificate.
    #[error("invalid node name {name:?}: must be a DNS name such as node-1")]
    BadName {
        /// The offending name.
        name: String,
    },
    /// An address given for a certificate is neither an IP address nor a DNS name.
    #[error("invalid certificate address {0:?}")]
    BadAddress(String),
    /// A certificate lacks the Berth name or role fields.
    #[error("certificate does not identify a berth node: {0}")]
    NotBerthCert(String),
    /// A signed certificate does not belong to the key that asked for it.
    #[error("issued certificate does not match this node's key")]
    KeyMismatch,
    /// The system random generator failed.
    #[error("system random number generator failed")]
    Random,
}

fn io_err(path: &Path, source: std::io::Error) -> TlsError {
    TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The crypto provider used everywhere (ring), so no process-wide default has to be installed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------------------------------------
// Hashes and tokens
// ---------------------------------------------------------------------------------------------

/// SHA-256 of a certificate's DER, written as 64 hex digits: what a join token pins (the CA's),
/// and how `client.toml` names the controller's certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertHash(pub [u8; 32]);

/// A string that is not 64 hex digits where a [`CertHash`] is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 in hex (64 hex digits)")]
pub struct BadCertHash;

impl FromStr for CertHash {
    type Err = BadCertHash;
    fn from_str(s: &str) -> Result<CertHash, BadCertHash> {
        unhex32(s).map(CertHash).ok_or(BadCertHash)
    }
}

impl CertHash {
    /// Hash of a DER certificate.
    pub fn of(cert_der: &[u8]) -> CertHash {
        let d = ring::digest::digest(&ring::digest::SHA256, cert_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        CertHash(out)
    }
}

impl fmt::Display for CertHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for CertHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertHash({self})")
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Why a join token string was refused; each variant is one line for the CLI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinTokenError {
    /// Not of the form `berth1-<64 hex>-<64 hex>`.
    #[error("malformed join token: expected berth1-<ca hash>-<secret>")]
    Shape,
    /// The CA hash part is not 64 hex digits.
    #[error("malformed join token: the CA hash is not 64 hex digits")]
    CaHash,
    /// The secret part is not 64 hex digits.
    #[error("malformed join token: the secret is not 64 hex digits")]
    Secret,
}

/// What an agent needs to join: the secret proving it may, and the hash of the CA it must trust.
/// Printed by the controller, pasted into `berth agent --join ADDR --token T`.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Hash of the cluster CA certificate.
    pub ca_hash: CertHash,
    secret: [u8; 32],
}

const TOKEN_PREFIX: &str = "berth1";

impl JoinToken {
    /// A new token with a random secret for the CA with hash `ca_hash`.
    pub fn generate(ca_hash: CertHash) -> Result<JoinToken, TlsError> {
        let mut secret = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| TlsError::Random)?;
        Ok(JoinToken { ca_hash, secret })
    }

    /// The secret as the hex string an agent sends in its join request.
    pub fn secret_hex(&self) -> String {
        hex(&self.secret)
    }

    /// Constant-time check of a secret presented by a joining agent.
    pub fn secret_matches(&self, presented_hex: &str) -> bool {
        let Some(p) = unhex32(presented_hex) else {
            return false;
        };
        p.iter()
            .zip(self.secret.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}-{}-{}", self.ca_hash, hex(&self.secret))
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret in logs.
        write!(
            f,
            "JoinToken {{ ca_hash: {}, secret: <elided> }}",
            self.ca_hash
        )
    }
}

impl FromStr for JoinToken {
    type Err = JoinTokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('-');
        let (Some(prefix), Some(hash), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoinTokenError::Shape);
        };
        if prefix != TOKEN_PREFIX {
            return Err(JoinTokenError::Shape);
        }
        let ca_hash = CertHash(unhex32(hash).ok_or(JoinTokenError::CaHash)?);
        let secret = unhex32(secret).ok_or(JoinTokenError::Secret)?;
        Ok(JoinToken { ca_hash, secret })
    }
}

// ---------------------------------------------------------------------------------------------
// Certificate parameters
// ---------------------------------------------------------------------------------------------

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + lifetime;
}

fn random_serial() -> Result<SerialNumber, TlsError> {
    let mut serial = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| TlsError::Random)?;
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x01; // no leading zero byte to be stripped
    Ok(SerialNumber::from_slice(&serial))
}

fn check_name(name: &str) -> Result<(), TlsError> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.parse::<IpAddr>().is_err()
        && rustls::pki_types::DnsName::try_from(name).is_ok();
    if valid {
        Ok(())
    } else {
        Err(TlsError::BadName {
            name: name.to_string(),
        })
    }
}

fn san(addr: &str) -> Result<SanType, TlsError> {
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if rustls::pki_types::DnsName::try_from(addr).is_err() {
        return Err(TlsError::BadAddress(addr.to_string()));
    }
    let ia5 = addr
        .to_string()
        .try_into()
        .map_err(|_| TlsError::BadAddress(addr.to_string()))?;
    Ok(SanType::DnsName(ia5))
}

/// Parameters of a node/client certificate: CN = name, OU = role, DNS SAN = name plus
/// `addresses` (IPs or DNS names).
fn leaf_params(
    name: &str,
    role: Role,
    addresses: &[String],
) -> Result<CertificateParams, TlsError> {
    check_name(name)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "berth");
    dn.push(DnType::OrganizationalUnitName, role.as_str());
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.subject_alt_names.push(san(name)?);
    for a in addresses {
        let s = san(a)?;
        if !params.subject_alt_names.contains(&s) {
            params.subject_alt_names.push(s);
        }
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match role {
        // Only a controller serves the main endpoint; an agent certificate cannot pose as one.
        Role::Controller => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::Agent | Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    validity(&mut params, LEAF_VALIDITY);
    Ok(params)
}

// ---------------------------------------------------------------------------------------------
// The cluster CA
// ---------------------------------------------------------------------------------------------

/// The cluster certificate authority: signs every node and client certificate. Lives on the
/// controller only.
pub struct ClusterCa {
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("hash", &self.hash())
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new self-signed CA; `cluster_name` goes into its common name for humans.
    pub fn generate(cluster_name: &str) -> Result<ClusterCa, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "berth");
        dn.push(
            DnType::CommonName,
            format!("berth cluster CA {cluster_name}"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial()?);
        validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key)?;
        Ok(ClusterCa {
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the CA from `dir` (`ca.pem`, `ca-key.pem`).
    pub fn load(dir: &Path) -> Result<ClusterCa, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_der = read_cert_pem(&cert_path)?;
        warn_if_readable_by_others(&key_path);
        let key_pem = std::fs::read_to_string(&key_path).map_err(|e| io_err(&key_path, e))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::BadPem {
            path: key_path.clone(),
            reason: format!("not a private key: {e}"),
        })?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| TlsError::BadPem {
            path: cert_path,
            reason: format!("not a usable CA certificate: {e}"),
        })?;
        Ok(ClusterCa { cert_der, issuer })
    }

    /// Writes the CA into `dir` (created with mode 0700 if missing); the key file gets mode
    /// 0600.
    pub fn save(&self, dir: &Path) -> Result<(), TlsError> {
        create_private_dir(dir)?;
        write_file(
            &dir.join(CA_CERT_FILE),
            pem_cert(&self.cert_der).as_bytes(),
            0o644,
        )?;
        write_file(
            &dir.join(CA_KEY_FILE),
            self.issuer.key().serialize_pem().as_bytes(),
            0o600,
        )
    }

    /// Loads the CA from `dir` if it is there, otherwise creates and saves a new one: what a
    /// controller does at every start.
    pub fn load_or_create(dir: &Path, cluster_name: &str) -> Result<ClusterCa, TlsError> {
        let has_cert = dir.join(CA_CERT_FILE).exists();
        let has_key = dir.join(CA_KEY_FILE).exists();
        match (has_cert, has_key) {
            (true, true) => ClusterCa::load(dir),
            (false, false) => {
                let ca = ClusterCa::generate(cluster_name)?;
                ca.save(dir)?;
                tracing::info!(ca_hash = %ca.hash(), dir = %dir.display(), "created cluster CA");
                Ok(ca)
            }
            _ => Err(TlsError::IncompleteCa {
                dir: dir.to_path_buf(),
            }),
        }
    }

    /// The CA certificate (DER), what every node trusts.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// SHA-256 of the CA certificate, what join tokens pin.
    pub fn hash(&self) -> CertHash {
        CertHash::of(&self.cert_der)
    }

    /// Issues a certificate and a fresh key for `name` in `role`, with `addresses` (IPs or DNS
    /// names) as extra SANs: used for the controller's own identity, for `berth daemon`'s local
    /// agent and for admin client certificates.
    pub fn issue(
        &self,
        name: &str,
        role: Role,
        addresses: &[String],
    ) -> Result<Identity, TlsError> {
        let key = KeyPair::generate()?;
        let params = leaf_params(name, role, addresses)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Identity {
            cert_der: cert.der().clone(),
            key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
            ca_der: self.cert_der.clone(),
        })
    }

    /// Signs a joining node's CSR. Only the public key (and its proof of possession) is taken
    /// from the CSR: name, role, SANs and usages are decided here, so a CSR asking for more
    /// (a CA bit, another name) gains nothing.
    pub fn sign_csr(
        &self,
        csr_der: &[u8],
        name: &str,
        role: Role,
        addresses: &[String],
    ) -> Result<CertificateDer<'static>, TlsError> {
        let csr = CertificateSigningRequestDer::from(csr_der);
        let parsed = CertificateSigningRequestParams::from_der(&csr)
            .map_err(|e| TlsError::BadCsr(e.to_string()))?;
        let request = CertificateSigningRequestParams {
            params: leaf_params(name, role, addresses)?,
            public_key: parsed.public_key,
        };
        Ok(request.signed_by(&self.issuer)?.der().clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Identities
// ---------------------------------------------------------------------------------------------

/// What a node or client holds to take part in the cluster: its certificate, its private key and
/// the CA certificate it trusts.
pub struct Identity {
    /// This node's certificate.
    pub cert_der: CertificateDer<'static>,
    key_der: PrivatePkcs8KeyDer<'static>,
    /// The cluster CA certificate.
    pub ca_der: CertificateDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            cert_der: self.cert_der.clone(),
            key_der: self.key_der.clone_key(),
            ca_der: self.ca_der.clone(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("cert", &cert_identity(&self.cert_der).ok())
            .field("ca_hash", &CertHash::of(&self.ca_der))
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Name and role written in this identity's certificate.
    pub fn cert_identity(&self) -> Result<CertIdentity, TlsError> {
        cert_identity(&self.cert_der)
    }

    /// Hash of the CA this identity trusts.
    pub fn ca_hash(&self) -> CertHash {
        CertHash::of(&self.ca_der)
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }

    /// Saves as `<stem>.pem`, `<stem>-key.pem` (0600) and `ca.pem` in `dir` (created 0700).
    pub fn save(&self, dir: &Path, stem: &str) -> Result<(), TlsError> {
        create_private_dir(dir)?;
        write_file(
            &dir.join(format!("{stem}.pem")),
            pem_cert(&self.cert_der).as_bytes(),
            0o644,
        )?;
        let key_pem = pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            self.key_der.secret_pkcs8_der().to_vec(),
        ));
        write_file(
            &dir.join(format!("{stem}-key.pem")),
            key_pem.as_bytes(),
            0o600,
        )?;
        write_file(
            &dir.join(CA_CERT_FILE),
            pem_cert(&self.ca_der).as_bytes(),
            0o644,
        )
    }

    /// Loads an identity from three PEM files named independently (a client config may point
    /// anywhere): the certificate, its PKCS#8 private key and the CA certificate.
    pub fn load_files(cert: &Path, key: &Path, ca: &Path) -> Result<Identity, TlsError> {
        let cert_der = read_cert_pem(cert)?;
        let ca_der = read_cert_pem(ca)?;
        warn_if_readable_by_others(key);
        let key = read_pem(key, "PRIVATE KEY")?;
        Ok(Identity {
            cert_der,
            key_der: PrivatePkcs8KeyDer::from(key),
            ca_der,
        })
    }

    /// Loads what [`Identity::save`] wrote.
    pub fn load(dir: &Path, stem: &str) -> Result<Identity, TlsError> {
        let cert_der = read_cert_pem(&dir.join(format!("{stem}.pem")))?;
        let ca_der = read_cert_pem(&dir.join(CA_CERT_FILE))?;
        let key_path = dir.join(format!("{stem}-key.pem"));
        warn_if_readable_by_others(&key_path);
        let key = read_pem(&key_path, "PRIVATE KEY")?;
        Ok(Identity {
            cert_der,
            key_der: PrivatePkcs8KeyDer::from(key),
            ca_der,
        })
    }
}

/// A key and CSR made by a joining agent, waiting for the controller's signature.
pub struct PendingIdentity {
    key: KeyPair,
    /// The CSR (DER) to send in the join request.
    pub csr_der: Vec<u8>,
}

impl fmt::Debug for PendingIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingIdentity").finish_non_exhaustive()
    }
}

impl PendingIdentity {
    /// Generates a key pair and a CSR for `name` (the private key never leaves this node).
    pub fn generate(name: &str) -> Result<PendingIdentity, TlsError> {
        check_name(name)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.subject_alt_names.push(san(name)?);
        let csr = params.serialize_request(&key)?;
        Ok(PendingIdentity {
            csr_der: csr.der().to_vec(),
            key,
        })
    }

    /// Combines the key with the certificate the controller signed, checking the certificate is
    /// for this key.
    pub fn complete(self, cert_der: Vec<u8>, ca_der: Vec<u8>) -> Result<Identity, TlsError> {
        use x509_parser::prelude::FromDer;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&cert_der)
            .map_err(|e| TlsError::NotBerthCert(e.to_string()))?;
        let public = cert.public_key().subject_public_key.data.as_ref();
        if public != rcgen::PublicKeyData::der_bytes(&self.key) {
            return Err(TlsError::KeyMismatch);
        }
        Ok(Identity {
            cert_der: CertificateDer::from(cert_der),
            key_der: PrivatePkcs8KeyDer::from(self.key.serialize_der()),
            ca_der: CertificateDer::from(ca_der),
        })
    }
}

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// Common name: the node or client name.
    pub name: String,
    /// Organizational unit: the role.
    pub role: Role,
}

/// Reads name and role out of a Berth certificate; the transport compares them with the peer's
/// hello.
pub fn cert_identity(cert_der: &[u8]) -> Result<CertIdentity, TlsError> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der)
        .map_err(|e| TlsError::NotBerthCert(e.to_string()))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| TlsError::NotBerthCert("no common name".into()))?;
    let role = subject
        .iter_organizational_unit()
        .next()
        .and_then(|a| a.as_str().ok())
        .and_then(Role::from_name)
        .ok_or_else(|| TlsError::NotBerthCert("no berth role".into()))?;
    Ok(CertIdentity {
        name: name.to_string(),
        role,
    })
}

// ---------------------------------------------------------------------------------------------
// rustls configurations
// ---------------------------------------------------------------------------------------------

fn roots(ca_der: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca_der.clone())?;
    Ok(Arc::new(roots))
}

/// Server configuration of the main endpoint: TLS 1.3, ALPN [`ALPN`], a client certificate
/// chaining to the cluster CA required (checked once per certificate:
/// [`crate::known_certs`]), no 0-RTT, no resumption. The CA certificate is sent
/// after the node certificate so joining agents can pin it.
pub fn server_config(identity: &Identity) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(&identity.ca_der)?,
        provider.clone(),
    )
    .build()?;
    let verifier = Arc::new(crate::known_certs::RememberingClientVerifier::new(verifier));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![identity.cert_der.clone(), identity.ca_der.clone()],
            identity.key(),
        )?;
    harden_server(&mut config, ALPN);
    Ok(config)
}

/// Server configuration of the join endpoint: like [`server_config`] but without client
/// authentication (joining agents have no certificate yet) and with ALPN [`JOIN_ALPN`]. Serve it
/// on its own port and answer nothing but the join exchange there.
pub fn join_server_config(identity: &Identity) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            vec![identity.cert_der.clone(), identity.ca_der.clone()],
            identity.key(),
        )?;
    harden_server(&mut config, JOIN_ALPN);
    Ok(config)
}

fn harden_server(config: &mut rustls::ServerConfig, alpn: &[u8]) {
    config.alpn_protocols = vec![alpn.to_vec()];
    config.max_early_data_size = 0;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
}

/// Client configuration of the main endpoint: trusts only the cluster CA, presents this
/// identity's certificate, ALPN [`ALPN`], no early data, no resumption.
pub fn client_config(identity: &Identity) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(&identity.ca_der)?)
        .with_client_auth_cert(vec![identity.cert_der.clone()], identity.key())?;
    harden_client(&mut config, ALPN);
    Ok(config)
}

/// Client configuration of a joining agent: trusts a server whose chain includes a CA
/// certificate with hash `pin` ([`PinnedCaVerifier`]), presents no certificate, ALPN
/// [`JOIN_ALPN`].
pub fn join_client_config(pin: CertHash) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedCaVerifier::new(pin, provider.clone()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    harden_client(&mut config, JOIN_ALPN);
    Ok(config)
}

/// Client configuration without any client certificate, trusting the cluster CA: only useful to
/// show (and test) that the main endpoint refuses such clients.
pub fn anonymous_client_config(
    ca_der: &CertificateDer<'static>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_der)?)
        .with_no_client_auth();
    harden_client(&mut config, ALPN);
    Ok(config)
}

/// [`client_config`] for a client that knows the controller's certificate by its SHA-256 (from
/// `client.toml`): that certificate passes without the chain check ([`crate::known_certs`]).
pub fn client_config_knowing(
    identity: &Identity,
    controller: CertHash,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots(&identity.ca_der)?,
        provider.clone(),
    )
    .build()?;
    let verifier = Arc::new(crate::known_certs::KnownServerVerifier::new(
        controller, webpki,
    ));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![identity.cert_der.clone()], identity.key())?;
    harden_client(&mut config, ALPN);
    Ok(config)
}

fn harden_client(config: &mut rustls::ClientConfig, alpn: &[u8]) {
    config.alpn_protocols = vec![alpn.to_vec()];
    config.enable_early_data = false;
    config.resumption = rustls::client::Resumption::disabled();
}

/// Server-certificate verifier for the join exchange, before the agent has the CA: accepts a
/// server whose chain contains a certificate with the pinned SHA-256 and whose end-entity
/// certificate is validly signed by it for server authentication (which only controller
/// certificates allow). The server name is not checked: the agent may dial an address the
/// controller's certificate does not list, and the pin already identifies the cluster.
#[derive(Debug)]
pub struct PinnedCaVerifier {
    pin: CertHash,
    provider: Arc<CryptoProvider>,
}

impl PinnedCaVerifier {
    /// A verifier trusting only the CA with hash `pin`.
    pub fn new(pin: CertHash, provider: Arc<CryptoProvider>) -> PinnedCaVerifier {
        PinnedCaVerifier { pin, provider }
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| CertHash::of(c) == self.pin)
            .ok_or(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots,
            &[],
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

fn pem_cert(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

fn read_pem(path: &Path, tag: &str) -> Result<Vec<u8>, TlsError> {
    let text = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let parsed = pem::parse(&text).map_err(|e| TlsError::BadPem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if parsed.tag() != tag {
        return Err(TlsError::BadPem {
            path: path.to_path_buf(),
            reason: format!("expected a {tag}, found a {}", parsed.tag()),
        });
    }
    Ok(parsed.into_contents())
}

fn read_cert_pem(path: &Path) -> Result<CertificateDer<'static>, TlsError> {
    read_pem(path, "CERTIFICATE").map(CertificateDer::from)
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err(dir, e))
}

/// Writes atomically (temporary file with the final mode from creation, fsync, rename, fsync of
/// the directory) so a crash never leaves a half-written key, nor a key briefly world-readable.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, e))?;
    f.write_all(contents).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "private key is readable by group or others");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_errors() {
        let ca = CertHash([0xab; 32]);
        let t = JoinToken::generate(ca).unwrap();
        let s = t.to_string();
        let back: JoinToken = s.parse().unwrap();
        assert_eq!(back, t);
        assert!(back.secret_matches(&t.secret_hex()));
        assert!(!back.secret_matches(&"0".repeat(64)));
        assert!(!back.secret_matches("zz"));
        assert!(!format!("{t:?}").contains(&t.secret_hex()));

        assert_eq!("".parse::<JoinToken>(), Err(JoinTokenError::Shape));
        assert_eq!(
            "berth1-abc".parse::<JoinToken>(),
            Err(JoinTokenError::Shape)
        );
        assert_eq!(
            format!("swarm1-{}-{}", "a".repeat(64), "b".repeat(64)).parse::<JoinToken>(),
            Err(JoinTokenError::Shape)
        );
        assert_eq!(
            format!("berth1-{}-{}", "g".repeat(64), "b".repeat(64)).parse::<JoinToken>(),
            Err(JoinTokenError::CaHash)
        );
        assert_eq!(
            format!("berth1-{}-{}", "a".repeat(64), "b".repeat(63)).parse::<JoinToken>(),
            Err(JoinTokenError::Secret)
        );
        assert_eq!(
            format!("berth1-{}-{}-x", "a".repeat(64), "b".repeat(64)).parse::<JoinToken>(),
            Err(JoinTokenError::Shape)
        );
        let msg = JoinTokenError::CaHash.to_string();
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn issued_certificate_carries_name_and_role() {
        let ca = ClusterCa::generate("test").unwrap();
        let id = ca
            .issue(
                "node-1",
                Role::Agent,
                &["10.0.0.5".into(), "node-1.lan".into()],
            )
            .unwrap();
        let who = id.cert_identity().unwrap();
        assert_eq!(who.name, "node-1");
        assert_eq!(who.role, Role::Agent);
        assert_eq!(id.ca_hash(), ca.hash());
    }

    #[test]
    fn bad_names_are_refused() {
        let ca = ClusterCa::generate("test").unwrap();
        for bad in ["", "has space", "10.0.0.1", "a/b"] {
            assert!(
                matches!(
                    ca.issue(bad, Role::Agent, &[]),
                    Err(TlsError::BadName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            ca.issue("ok", Role::Agent, &["not a name".into()]),
            Err(TlsError::BadAddress(_))
        ));
    }

    #[test]
    fn csr_is_signed_with_controller_chosen_identity() {
        let ca = ClusterCa::generate("test").unwrap();
        let pending = PendingIdentity::generate("node-2").unwrap();
        let cert = ca
            .sign_csr(&pending.csr_der, "node-2", Role::Agent, &[])
            .unwrap();
        let id = pending
            .complete(cert.to_vec(), ca.cert_der().to_vec())
            .unwrap();
        assert_eq!(
            id.cert_identity().unwrap(),
            CertIdentity {
                name: "node-2".into(),
                role: Role::Agent
            }
        );
        // A certificate for another key is refused.
        let other = PendingIdentity::generate("node-3").unwrap();
        assert!(matches!(
            other.complete(cert.to_vec(), ca.cert_der().to_vec()),
            Err(TlsError::KeyMismatch)
        ));
        // Garbage CSR.
        assert!(matches!(
            ca.sign_csr(b"not a csr", "node-2", Role::Agent, &[]),
            Err(TlsError::BadCsr(_))
        ));
    }

    #[test]
    fn ca_persists_and_reloads_with_same_hash() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("pki");
        let ca = ClusterCa::load_or_create(&ca_dir, "c1").unwrap();
        let mode = std::fs::metadata(ca_dir.join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ClusterCa::load_or_create(&ca_dir, "c1").unwrap();
        assert_eq!(again.hash(), ca.hash());
        // The reloaded CA still issues certificates that chain to the same root.
        let id = again.issue("node-9", Role::Agent, &[]).unwrap();
        assert_eq!(id.ca_hash(), ca.hash());
        // Half a CA is an error, not a silent regeneration.
        std::fs::remove_file(ca_dir.join(CA_KEY_FILE)).unwrap();
        assert!(matches!(
            ClusterCa::load_or_create(&ca_dir, "c1"),
            Err(TlsError::IncompleteCa { .. })
        ));
    }

    #[test]
    fn identity_persists() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate("t").unwrap();
        let id = ca.issue("admin", Role::Client, &[]).unwrap();
        id.save(dir.path(), "client").unwrap();
        let back = Identity::load(dir.path(), "client").unwrap();
        assert_eq!(back.cert_der, id.cert_der);
        assert_eq!(back.ca_hash(), ca.hash());
        assert!(client_config(&back).is_ok());
    }

    #[test]
    fn configs_disable_early_data_and_set_alpn() {
        let ca = ClusterCa::generate("t").unwrap();
        let ctl = ca.issue("ctl", Role::Controller, &[]).unwrap();
        let server = server_config(&ctl).unwrap();
        assert_eq!(server.max_early_data_size, 0);
        assert_eq!(server.send_tls13_tickets, 0);
        assert_eq!(server.alpn_protocols, vec![ALPN.to_vec()]);
        let client = client_config(&ctl).unwrap();
        assert!(!client.enable_early_data);
        assert_eq!(client.alpn_protocols, vec![ALPN.to_vec()]);
        let join = join_client_config(ca.hash()).unwrap();
        assert!(!join.enable_early_data);
        assert_eq!(join.alpn_protocols, vec![JOIN_ALPN.to_vec()]);
        assert_eq!(
            join_server_config(&ctl).unwrap().alpn_protocols,
            vec![JOIN_ALPN.to_vec()]
        );
    }
}
