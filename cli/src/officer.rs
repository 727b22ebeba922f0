//! The officer's signature over a proposal digest, made with the key in the officer's PEM file.

use proto::governance::{Approval, approval_message};

use crate::{Error, Result};

/// Sign an approval with an officer's private key (PEM: PKCS#8, SEC1 or PKCS#1).
pub fn sign_approval(key_pem: &[u8], digest: &[u8; 32], officer: &str) -> Result<Approval> {
    let (algorithm, signature) = sign(key_pem, &approval_message(digest))?;
    Ok(Approval {
        officer: officer.to_owned(),
        algorithm,
        signature,
        at: proto::now(),
    })
}

/// Sign `message` with the admin's key: ECDSA P-384 or P-256 (SHA-384 or SHA-256) or RSA
/// PKCS#1 v1.5 with SHA-256. Returns the X.509 signature algorithm OID and the signature.
pub fn sign(key_pem: &[u8], message: &[u8]) -> Result<(String, Vec<u8>)> {
    use rustls::SignatureScheme as S;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::Invalid(format!("cannot read the officer key: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::Invalid(format!("unsupported officer key: {e}")))?;
    let schemes = [
        S::ECDSA_NISTP384_SHA384,
        S::ECDSA_NISTP256_SHA256,
        S::RSA_PKCS1_SHA256,
    ];
    let signer = signing
        .choose_scheme(&schemes)
        .ok_or_else(|| Error::Invalid("the officer key must be ECDSA P-256/P-384 or RSA".into()))?;
    let algorithm = match signer.scheme() {
        S::ECDSA_NISTP384_SHA384 => "1.2.840.10045.4.3.3",
        S::ECDSA_NISTP256_SHA256 => "1.2.840.10045.4.3.2",
        _ => "1.2.840.113549.1.1.11",
    };
    let signature = signer
        .sign(message)
        .map_err(|e| Error::Invalid(format!("signing: {e}")))?;
    Ok((algorithm.to_owned(), signature))
}
