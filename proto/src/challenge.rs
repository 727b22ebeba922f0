//! Challenges that authorise a SCEP request: one-time challenges minted by an
//! operator, and signed challenge tokens minted by an MDM.
//!
//! A signed token is a compact JWS (RFC 7515) with ES256 (RFC 7518 §3.4):
//! `BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(r || s)` where the header
//! is `{"alg":"ES256","typ":"castellan-challenge"}` and the payload is
//! `{"profile":P,"sub":SUBJECT,"sans":["dns:…","email:…","upn:…","uri:…"],"exp":UNIX,"nonce":N}`.
//! The signer checks the signature against the profile's registered MDM keys, the
//! profile, the expiry, that the CSR's subject and SANs are exactly the bound ones,
//! and that the nonce was never used.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub use crate::model::San;

/// The claims of a signed challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub profile: String,
    pub sub: String,
    #[serde(default)]
    pub sans: Vec<San>,
    pub exp: i64,
    pub nonce: String,
}

const HEADER: &str = r#"{"alg":"ES256","typ":"castellan-challenge"}"#;
/// Longest signed challenge accepted.
pub const MAX_TOKEN: usize = 4096;

fn b64u() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// Decode an MDM public key (SubjectPublicKeyInfo DER in base64) into its P-256 point.
pub fn mdm_key(spki_b64: &str) -> Result<Vec<u8>> {
    let der =
        crate::b64::decode(spki_b64).map_err(|_| Error::Invalid("MDM key is not base64".into()))?;
    crate::p256_point(&der).map_err(|e| {
        Error::Invalid(
            match e {
                crate::NotP256::NotSpki => "MDM key is not a SubjectPublicKeyInfo",
                crate::NotP256::OtherKey => "an MDM key must be an EC P-256 public key (ES256)",
            }
            .into(),
        )
    })
}

/// Read a public key (PEM "PUBLIC KEY" or a certificate) into the base64 SPKI a profile stores.
pub fn mdm_key_from_pem(pem: &[u8]) -> Result<String> {
    use der::{Decode, Encode};
    let text =
        std::str::from_utf8(pem).map_err(|_| Error::Invalid("MDM key file is not PEM".into()))?;
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = crate::b64::decode(b64.trim())
        .map_err(|_| Error::Invalid("MDM key file is not PEM".into()))?;
    let spki = if text.contains("BEGIN CERTIFICATE") {
        let bad = |e: der::Error| Error::Invalid(format!("MDM certificate: {e}"));
        x509_cert::Certificate::from_der(&der)
            .map_err(bad)?
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(bad)?
    } else {
        der
    };
    let s = crate::b64::encode(&spki);
    mdm_key(&s)?;
    Ok(s)
}

/// Mint a signed challenge with an MDM's P-256 private key (PKCS#8 PEM).
pub fn sign(key_pem: &[u8], claims: &Claims) -> Result<String> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject;
    let der = PrivatePkcs8KeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::Invalid(format!("the MDM key must be a PKCS#8 EC P-256 key: {e}")))?;
    let rng = ring::rand::SystemRandom::new();
    let kp = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        der.secret_pkcs8_der(),
        &rng,
    )
    .map_err(|e| Error::Invalid(format!("the MDM key must be an EC P-256 key: {e}")))?;
    let payload = serde_json::to_vec(claims)?;
    let input = format!("{}.{}", b64u().encode(HEADER), b64u().encode(payload));
    let sig = kp
        .sign(&rng, input.as_bytes())
        .map_err(|_| Error::Crypto("signing the challenge failed"))?;
    Ok(format!("{input}.{}", b64u().encode(sig.as_ref())))
}

/// Does this challenge look like a signed token (three base64url parts)?
pub fn looks_signed(challenge: &str) -> bool {
    challenge.split('.').count() == 3
}

/// Verify a signed challenge's signature against any of `keys` and return its claims.
/// Expiry, profile, binding and nonce are checked by the caller, which has the request.
pub fn verify(token: &str, keys: &[String]) -> std::result::Result<Claims, String> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    if token.len() > MAX_TOKEN {
        return Err("the signed challenge is too long".into());
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the signed challenge is not a compact JWS".into());
    };
    let header = b64u().decode(h).map_err(|_| "bad JWS header")?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| "bad JWS header")?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("ES256") {
        return Err("the signed challenge must use ES256".into());
    }
    let sig = b64u().decode(s).map_err(|_| "bad JWS signature")?;
    let input = format!("{h}.{p}");
    let ok = keys.iter().any(|k| {
        mdm_key(k)
            .map(|point| {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .verify(input.as_bytes(), &sig)
                    .is_ok()
            })
            .unwrap_or(false)
    });
    if !ok {
        return Err(
            "the signed challenge's signature does not verify with the profile's MDM keys".into(),
        );
    }
    let payload = b64u().decode(p).map_err(|_| "bad JWS payload")?;
    serde_json::from_slice(&payload).map_err(|e| format!("bad challenge claims: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mdm() -> (Vec<u8>, String) {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let pem = crate::pem::to_pem("PRIVATE KEY", pkcs8.as_ref());
        // SPKI for P-256: fixed prefix + point.
        let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        spki.extend_from_slice(kp.public_key().as_ref());
        (pem.into_bytes(), crate::b64::encode(&spki))
    }

    fn claims() -> Claims {
        Claims {
            profile: "devices".into(),
            sub: "CN=device-1".into(),
            sans: vec![San::parse("dns:device-1.example").unwrap()],
            exp: 2_000_000_000,
            nonce: "n1".into(),
        }
    }

    #[test]
    fn signed_challenges_verify_only_with_the_registered_key() {
        let (key, spki) = mdm();
        let (_, other) = mdm();
        let t = sign(&key, &claims()).unwrap();
        assert!(looks_signed(&t));
        assert_eq!(verify(&t, std::slice::from_ref(&spki)).unwrap(), claims());
        assert!(verify(&t, &[other]).is_err());
        // Any change to the payload breaks the signature.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = b64u().encode(
            serde_json::to_vec(&Claims {
                sub: "CN=admin".into(),
                ..claims()
            })
            .unwrap(),
        );
        parts[1] = &forged;
        assert!(verify(&parts.join("."), std::slice::from_ref(&spki)).is_err());
        assert!(verify("a.b", std::slice::from_ref(&spki)).is_err());
        assert!(verify(&"x".repeat(5000), &[spki]).is_err());
    }

    #[test]
    fn sans_parse_and_print() {
        for s in [
            "dns:a.example",
            "email:a@b.example",
            "upn:u@corp",
            "uri:tag:microsoft.com,2022-09-14:sid:S-1-5-21-1",
        ] {
            assert_eq!(San::parse(s).unwrap().to_string(), s);
        }
        assert!(San::parse("ip:1.2.3.4").is_err());
        assert!(San::parse("dns:").is_err());
    }
}
