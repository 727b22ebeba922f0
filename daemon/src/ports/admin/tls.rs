//! TLS for the admin port: TLS 1.3 only, the server key in the token, and
//! client certificates that must be exactly a registered admin's.

use std::sync::Arc;

use hsm::{HashAlg, KeyId, KeySpec, KeyStore};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureAlgorithm, SignatureScheme};

use crate::{Error, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The admin TLS key (ECDSA P-256) in the token, as a rustls signing key.
#[derive(Debug)]
struct TokenKey {
    hsm: Arc<dyn KeyStore>,
    id: KeyId,
}

impl SigningKey for TokenKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| {
                Box::new(TokenSigner {
                    hsm: self.hsm.clone(),
                    id: self.id.clone(),
                }) as _
            })
    }
    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct TokenSigner {
    hsm: Arc<dyn KeyStore>,
    id: KeyId,
}

impl rustls::sign::Signer for TokenSigner {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rustls::Error> {
        self.hsm
            .sign(KeySpec::EcP256, HashAlg::Sha256, &self.id, message)
            .map_err(|e| rustls::Error::General(format!("HSM signing failed: {e}")))
    }
    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// Is this client certificate (DER), byte for byte, a registered admin's? Asked at every
/// handshake, so an admin added or removed by proposal is let in or shut out at once.
pub type Registered = Box<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// Accepts a client certificate only if it is, byte for byte, a registered admin's.
struct OfficerVerifier {
    registered: Registered,
    algs: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for OfficerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfficerVerifier").finish_non_exhaustive()
    }
}

impl ClientCertVerifier for OfficerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        use der::Decode;
        if !(self.registered)(end_entity.as_ref()) {
            tracing::warn!(
                "admin port: refused a client certificate that is not a registered officer's"
            );
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        let cert = x509_cert::Certificate::from_der(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let (nb, na) = crate::issuance::x509::cert_window(&cert);
        let now = now.as_secs() as i64;
        if now < nb - 300 {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidYet,
            ));
        }
        if now > na {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            ));
        }
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[derive(Debug)]
struct OneKey(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for OneKey {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The admin port's server config.
pub fn server_config(
    hsm: Arc<dyn KeyStore>,
    tls_key: &str,
    chain: Vec<Vec<u8>>,
    registered: Registered,
) -> Result<rustls::ServerConfig> {
    let provider = provider();
    let id: KeyId = crate::keys::key_id(tls_key)?;
    let verifier = OfficerVerifier {
        registered,
        algs: provider.signature_verification_algorithms,
    };
    let key = CertifiedKey::new(
        chain.into_iter().map(CertificateDer::from).collect(),
        Arc::new(TokenKey { hsm, id }),
    );
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Config(crate::error::ConfigError::Tls(e)))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(OneKey(Arc::new(key))));
    Ok(config)
}
