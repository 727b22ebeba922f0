//! One signature verifier, with one algorithm table, for every signature Castellan checks:
//! SCEP requests (CMS SignerInfos), CSRs, certificates, officer approvals. Each caller maps
//! a [`Refusal`] to its own wire form (a SCEP failInfo, an admin error).
//!
//! Accepted: RSA PKCS#1 v1.5 (keys of 2048 to 8192 bits) with SHA-256/384/512, ECDSA P-256
//! and P-384 with SHA-256/384; RSA with SHA-1 only where the caller allows legacy
//! algorithms. MD5 is always refused, and so are ECDSA with SHA-1, RSA-PSS and anything else.

use const_oid::ObjectIdentifier;
use spki::SubjectPublicKeyInfoOwned;

use crate::message::DigestAlg;
use crate::oids;

/// ecdsa-with-SHA1 (RFC 5758): refused.
const ECDSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// SHA-1 (where not allowed) or MD5.
    Weak(String),
    /// An algorithm, or an algorithm for this key, that Castellan does not verify.
    Unsupported(String),
    /// The signature does not verify.
    Bad,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Rsa,
    Ecdsa,
}

/// Verify `sig` over `msg` with `spki`.
///
/// `sig_alg` is an X.509/CMS signature algorithm; a CMS SignerInfo may instead name
/// `rsaEncryption`, and then `digest` (its digestAlgorithm) gives the hash. When both name
/// a hash, they must agree. `allow_sha1` is whether the caller accepts RSA with SHA-1.
pub fn verify(
    spki: &SubjectPublicKeyInfoOwned,
    sig_alg: &ObjectIdentifier,
    digest: Option<DigestAlg>,
    allow_sha1: bool,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), Refusal> {
    use ring::signature as rs;
    let unsupported = || {
        Refusal::Unsupported(format!(
            "signature algorithm {sig_alg} is not supported for this key (RSA PKCS#1 v1.5 with \
             SHA-2, or ECDSA P-256/P-384)"
        ))
    };
    let (scheme, hash) = match *sig_alg {
        oids::MD5_WITH_RSA => return Err(Refusal::Weak("MD5 signatures are refused".into())),
        ECDSA_SHA1 => return Err(Refusal::Weak("ECDSA with SHA-1 is refused".into())),
        oids::RSA_ENCRYPTION => (Scheme::Rsa, digest.ok_or_else(unsupported)?),
        oids::SHA1_WITH_RSA => (Scheme::Rsa, DigestAlg::Sha1),
        oids::SHA256_WITH_RSA => (Scheme::Rsa, DigestAlg::Sha256),
        oids::SHA384_WITH_RSA => (Scheme::Rsa, DigestAlg::Sha384),
        oids::SHA512_WITH_RSA => (Scheme::Rsa, DigestAlg::Sha512),
        oids::ECDSA_SHA256 => (Scheme::Ecdsa, DigestAlg::Sha256),
        oids::ECDSA_SHA384 => (Scheme::Ecdsa, DigestAlg::Sha384),
        _ => return Err(unsupported()),
    };
    if digest.is_some_and(|d| d != hash) {
        return Err(Refusal::Unsupported(format!(
            "signature algorithm {sig_alg} does not match the digest {digest:?}"
        )));
    }
    if hash == DigestAlg::Sha1 && !allow_sha1 {
        return Err(Refusal::Weak(format!(
            "signature algorithm {sig_alg} uses SHA-1, which is refused here"
        )));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let key = (spki.algorithm.oid, curve);
    let alg: &dyn rs::VerificationAlgorithm = match (scheme, hash, key) {
        (Scheme::Rsa, DigestAlg::Sha1, (oids::RSA_ENCRYPTION, _)) => {
            &rs::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        (Scheme::Rsa, DigestAlg::Sha256, (oids::RSA_ENCRYPTION, _)) => {
            &rs::RSA_PKCS1_2048_8192_SHA256
        }
        (Scheme::Rsa, DigestAlg::Sha384, (oids::RSA_ENCRYPTION, _)) => {
            &rs::RSA_PKCS1_2048_8192_SHA384
        }
        (Scheme::Rsa, DigestAlg::Sha512, (oids::RSA_ENCRYPTION, _)) => {
            &rs::RSA_PKCS1_2048_8192_SHA512
        }
        (Scheme::Ecdsa, DigestAlg::Sha256, (oids::EC_PUBLIC_KEY, Some(oids::SECP256R1))) => {
            &rs::ECDSA_P256_SHA256_ASN1
        }
        (Scheme::Ecdsa, DigestAlg::Sha384, (oids::EC_PUBLIC_KEY, Some(oids::SECP256R1))) => {
            &rs::ECDSA_P256_SHA384_ASN1
        }
        (Scheme::Ecdsa, DigestAlg::Sha256, (oids::EC_PUBLIC_KEY, Some(oids::SECP384R1))) => {
            &rs::ECDSA_P384_SHA256_ASN1
        }
        (Scheme::Ecdsa, DigestAlg::Sha384, (oids::EC_PUBLIC_KEY, Some(oids::SECP384R1))) => {
            &rs::ECDSA_P384_SHA384_ASN1
        }
        _ => return Err(unsupported()),
    };
    rs::UnparsedPublicKey::new(alg, spki.subject_public_key.raw_bytes())
        .verify(msg, sig)
        .map_err(|_| Refusal::Bad)
}

#[cfg(all(test, feature = "client"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rsa() -> (rsa::RsaPrivateKey, SubjectPublicKeyInfoOwned) {
        let d = crate::client::Device::generate(2048, "CN=v").unwrap();
        let spki = d.cert.tbs_certificate().subject_public_key_info().clone();
        (d.key, spki)
    }

    fn sign(key: &rsa::RsaPrivateKey, msg: &[u8]) -> Vec<u8> {
        use signature::{SignatureEncoding, Signer};
        let k = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
        k.sign(msg).to_vec()
    }

    #[test]
    fn one_table_for_x509_and_cms_algorithm_names() {
        let (key, spki) = rsa();
        let sig = sign(&key, b"hello");
        // X.509 name, CMS rsaEncryption + digest, and both agreeing.
        verify(&spki, &oids::SHA256_WITH_RSA, None, false, b"hello", &sig).unwrap();
        verify(
            &spki,
            &oids::RSA_ENCRYPTION,
            Some(DigestAlg::Sha256),
            false,
            b"hello",
            &sig,
        )
        .unwrap();
        verify(
            &spki,
            &oids::SHA256_WITH_RSA,
            Some(DigestAlg::Sha256),
            false,
            b"hello",
            &sig,
        )
        .unwrap();
        assert_eq!(
            verify(&spki, &oids::SHA256_WITH_RSA, None, false, b"hellO", &sig),
            Err(Refusal::Bad)
        );
        // rsaEncryption without a digest, a digest that disagrees, the wrong key kind.
        for (alg, digest) in [
            (oids::RSA_ENCRYPTION, None),
            (oids::SHA256_WITH_RSA, Some(DigestAlg::Sha384)),
            (oids::ECDSA_SHA256, None),
        ] {
            assert!(
                matches!(
                    verify(&spki, &alg, digest, false, b"hello", &sig),
                    Err(Refusal::Unsupported(_))
                ),
                "{alg} {digest:?}"
            );
        }
    }

    #[test]
    fn weak_hashes_are_refused_unless_legacy_sha1_is_allowed() {
        let (_, spki) = rsa();
        for (alg, allow) in [
            (oids::MD5_WITH_RSA, true),
            (ECDSA_SHA1, true),
            (oids::SHA1_WITH_RSA, false),
        ] {
            assert!(
                matches!(
                    verify(&spki, &alg, None, allow, b"m", &[0; 256]),
                    Err(Refusal::Weak(_))
                ),
                "{alg}"
            );
        }
        // Allowed SHA-1 reaches the check itself (and this signature is wrong).
        assert_eq!(
            verify(&spki, &oids::SHA1_WITH_RSA, None, true, b"m", &[0; 256]),
            Err(Refusal::Bad)
        );
    }
}
