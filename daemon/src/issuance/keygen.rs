//! Key pairs the signer makes for a device (PKCS certificates): RSA with the `rsa` crate, EC
//! with ring, both from the operating system's CSPRNG. The private key lives only in a
//! [`Zeroizing`] buffer (PKCS#8 DER) until it is sealed into a PKCS#12 file; it is never
//! written, logged or stored in clear. (ring's own PKCS#8 document for EC keys is dropped at
//! once; ring does not zeroize it.)

use der::{Decode, Encode};
use hsm::KeySpec;
use spki::SubjectPublicKeyInfoOwned;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// A generated key pair.
pub struct DeviceKey {
    /// PKCS#8 `PrivateKeyInfo`, DER.
    pub pkcs8: Zeroizing<Vec<u8>>,
    pub spki: SubjectPublicKeyInfoOwned,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

/// A new key pair of `spec` (RSA 2048 to 4096 bits, EC P-256 or P-384).
pub fn generate(spec: KeySpec) -> Result<DeviceKey> {
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => rsa_key(spec),
        KeySpec::EcP256 => ec_key(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING),
        KeySpec::EcP384 => ec_key(&ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING),
    }
}

fn rsa_key(spec: KeySpec) -> Result<DeviceKey> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let bits = match spec {
        KeySpec::Rsa3072 => 3072,
        KeySpec::Rsa4096 => 4096,
        _ => 2048,
    };
    let mut rng = rand_core::UnwrapErr(getrandom4::SysRng);
    let key = rsa::RsaPrivateKey::new(&mut rng, bits).map_err(|e| {
        Error::Internal(crate::error::InternalError::Pkcs12(format!(
            "RSA key generation: {e}"
        )))
    })?;
    let pkcs8 = key.to_pkcs8_der().map_err(|e| {
        Error::Internal(crate::error::InternalError::Pkcs12(format!(
            "RSA key encoding: {e}"
        )))
    })?;
    let spki = key.to_public_key().to_public_key_der().map_err(|e| {
        Error::Internal(crate::error::InternalError::Pkcs12(format!(
            "RSA public key encoding: {e}"
        )))
    })?;
    Ok(DeviceKey {
        pkcs8: Zeroizing::new(pkcs8.as_bytes().to_vec()),
        spki: SubjectPublicKeyInfoOwned::from_der(spki.as_bytes())?,
    })
}

fn ec_key(alg: &'static ring::signature::EcdsaSigningAlgorithm) -> Result<DeviceKey> {
    use ring::signature::KeyPair;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = {
        let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| {
            Error::Internal(crate::error::InternalError::Pkcs12(
                "EC key generation failed".into(),
            ))
        })?;
        Zeroizing::new(doc.as_ref().to_vec())
    };
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, &pkcs8, &rng).map_err(|_| {
        Error::Internal(crate::error::InternalError::Pkcs12(
            "EC key generated unreadable".into(),
        ))
    })?;
    let curve = if std::ptr::eq(alg, &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING) {
        const_oid::db::rfc5912::SECP_384_R_1
    } else {
        const_oid::db::rfc5912::SECP_256_R_1
    };
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_EC_PUBLIC_KEY,
            parameters: Some(der::asn1::Any::encode_from(&curve)?),
        },
        subject_public_key: der::asn1::BitString::from_bytes(pair.public_key().as_ref())?,
    };
    // Round trip: what the certificate will carry is what the key is.
    SubjectPublicKeyInfoOwned::from_der(&spki.to_der()?)?;
    Ok(DeviceKey { pkcs8, spki })
}
