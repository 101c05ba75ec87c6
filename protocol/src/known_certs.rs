//! Certificate checks made once. Every CLI call is a new connection between the same two
//! certificates, and checking a certificate's chain to the cluster CA costs a P-256 signature
//! verification on each side, on the path of every call. Here a certificate already known good is
//! trusted again, while it is valid, without that check:
//! - the server remembers the client certificates its WebPKI verifier accepted
//!   ([`RememberingClientVerifier`]);
//! - the CLI knows the controller's certificate by the SHA-256 that `client.toml` names, written by
//!   the daemon that holds it ([`KnownServerVerifier`]); any other certificate is checked in full.
//!
//! The handshake's own signatures, which prove that each side holds its certificate's key, are
//! checked on every connection as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::tls::CertHash;

/// Bound on remembered certificates (a cluster has few clients); past it the memory starts over.
const CAPACITY: usize = 1024;

/// A [`ClientCertVerifier`] that remembers which certificates its inner verifier accepted.
#[derive(Debug)]
pub struct RememberingClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    /// SHA-256 of an accepted certificate → the end of its validity (Unix seconds).
    accepted: Mutex<HashMap<CertHash, u64>>,
}

impl RememberingClientVerifier {
    /// Wraps `inner`, which decides about every certificate it has not accepted yet.
    pub fn new(inner: Arc<dyn ClientCertVerifier>) -> RememberingClientVerifier {
        RememberingClientVerifier {
            inner,
            accepted: Mutex::new(HashMap::new()),
        }
    }

    fn accepted(&self) -> std::sync::MutexGuard<'_, HashMap<CertHash, u64>> {
        self.accepted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A certificate's validity, in Unix seconds.
fn validity(cert: &CertificateDer<'_>) -> Option<(i64, i64)> {
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref()).ok()?;
    let v = parsed.validity();
    Some((v.not_before.timestamp(), v.not_after.timestamp()))
}

fn not_after(cert: &CertificateDer<'_>) -> Option<u64> {
    validity(cert).and_then(|(_, until)| u64::try_from(until).ok())
}

impl ClientCertVerifier for RememberingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let key = CertHash::of(end_entity);
        if self
            .accepted()
            .get(&key)
            .is_some_and(|&until| now.as_secs() < until)
        {
            return Ok(ClientCertVerified::assertion());
        }
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Some(until) = not_after(end_entity) {
            let mut accepted = self.accepted();
            if accepted.len() >= CAPACITY {
                accepted.clear();
            }
            accepted.insert(key, until);
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The CLI's check of the controller's certificate: the one it knows by SHA-256 passes while
/// valid; any other goes through the WebPKI verifier of the cluster CA.
#[derive(Debug)]
pub struct KnownServerVerifier {
    known: CertHash,
    inner: Arc<WebPkiServerVerifier>,
}

impl KnownServerVerifier {
    /// Trusts the certificate with SHA-256 `known`, and whatever `inner` accepts.
    pub fn new(known: CertHash, inner: Arc<WebPkiServerVerifier>) -> KnownServerVerifier {
        KnownServerVerifier { known, inner }
    }
}

impl ServerCertVerifier for KnownServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if CertHash::of(end_entity) == self.known
            && validity(end_entity)
                .is_some_and(|(from, until)| from <= now_secs && now_secs < until)
        {
            return Ok(ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Role;
    use crate::tls::{provider, ClusterCa, LEAF_VALIDITY};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The real WebPKI verifier, counting how often it is asked.
    #[derive(Debug)]
    struct Counting {
        inner: Arc<dyn ClientCertVerifier>,
        asked: Arc<AtomicUsize>,
    }

    impl ClientCertVerifier for Counting {
        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            self.inner.root_hint_subjects()
        }
        fn verify_client_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            now: UnixTime,
        ) -> Result<ClientCertVerified, rustls::Error> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.inner
                .verify_client_cert(end_entity, intermediates, now)
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    }

    fn verifier(ca: &ClusterCa) -> (RememberingClientVerifier, Arc<AtomicUsize>) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let webpki = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let counting = Arc::new(Counting {
            inner: webpki,
            asked: asked.clone(),
        });
        (RememberingClientVerifier::new(counting), asked)
    }

    #[test]
    fn a_certificate_is_checked_once_until_it_expires_and_a_foreign_one_never_passes() {
        let ca = ClusterCa::generate("c").unwrap();
        let (v, asked) = verifier(&ca);
        let client = ca.issue("admin", Role::Client, &[]).unwrap();
        let now = UnixTime::now();
        v.verify_client_cert(&client.cert_der, &[], now).unwrap();
        v.verify_client_cert(&client.cert_der, &[], now).unwrap();
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "the second check is remembered"
        );

        // Past its validity the certificate is checked again, and refused.
        let later = UnixTime::since_unix_epoch(
            std::time::Duration::from_secs(now.as_secs()) + LEAF_VALIDITY * 2,
        );
        assert!(v.verify_client_cert(&client.cert_der, &[], later).is_err());
        assert_eq!(asked.load(Ordering::SeqCst), 2);

        // A certificate of another cluster is refused every time, never remembered.
        let other = ClusterCa::generate("other").unwrap();
        let stranger = other.issue("admin", Role::Client, &[]).unwrap();
        for _ in 0..2 {
            assert!(v.verify_client_cert(&stranger.cert_der, &[], now).is_err());
        }
        assert_eq!(asked.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn the_known_controller_certificate_passes_while_valid_and_others_are_checked() {
        let ca = ClusterCa::generate("c").unwrap();
        let controller = ca.issue("ctl", Role::Controller, &[]).unwrap();
        let impostor = ca.issue("ctl", Role::Controller, &[]).unwrap();
        // The full check trusts another CA only: whatever passes here passed as known.
        let other = ClusterCa::generate("other").unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(other.cert_der().clone()).unwrap();
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
        let v = KnownServerVerifier::new(CertHash::of(&controller.cert_der), webpki);
        let name = ServerName::try_from("ctl").unwrap();
        let now = UnixTime::now();
        assert!(v
            .verify_server_cert(&controller.cert_der, &[], &name, &[], now)
            .is_ok());
        // Same name, same CA, another certificate: the full check decides (and refuses here).
        assert!(v
            .verify_server_cert(&impostor.cert_der, &[], &name, &[], now)
            .is_err());
        // The known certificate once expired goes to the full check too.
        let later = UnixTime::since_unix_epoch(
            std::time::Duration::from_secs(now.as_secs()) + LEAF_VALIDITY * 2,
        );
        assert!(v
            .verify_server_cert(&controller.cert_der, &[], &name, &[], later)
            .is_err());
    }
}
