//! Key escrow for `pkcs` profiles that ask for it (encryption keys: a lost S/MIME key is
//! mail nobody can read again).
//!
//! The escrow key is an RSA-3072 key pair made in the token (label `castellan-escrow`,
//! decrypt only) when the first escrowing profile is created; only its public key is kept
//! in the store. Each escrowed private key (PKCS#8) is sealed to it: a fresh 64-byte secret
//! wrapped with RSA-OAEP (SHA-1, which the token supports) to the escrow key, the key
//! encrypted with AES-256-CBC under the secret's first half and authenticated with
//! HMAC-SHA256 under its second half (encrypt-then-MAC over IV and ciphertext). The row
//! lives beside the certificate (`escrow`, `CA\0SERIAL`), written in its transaction.
//! Opening needs the token: it unwraps the secret; the escrow key never leaves it.

use der::{Decode, Encode};
use hsm::{KeySpec, KeyUse, RsaPadding};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Cas;
use crate::keys::KeyRing;
use crate::{Error, Result};

const META: &str = "escrow-key";
const LABEL: &str = "castellan-escrow";

/// The escrow key: its id in the token and its public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EscrowKey {
    pub key_id: String,
    #[serde(with = "proto::b64")]
    pub spki: Vec<u8>,
}

/// A private key sealed to the escrow key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Escrowed {
    /// The escrow key it is sealed to.
    pub key_id: String,
    #[serde(with = "proto::b64")]
    pub wrapped: Vec<u8>,
    #[serde(with = "proto::b64")]
    pub iv: Vec<u8>,
    #[serde(with = "proto::b64")]
    pub ciphertext: Vec<u8>,
    #[serde(with = "proto::b64")]
    pub tag: Vec<u8>,
}

fn fault(what: impl std::fmt::Display) -> Error {
    Error::Internal(crate::error::InternalError::Pkcs12(format!(
        "escrow: {what}"
    )))
}

impl Cas {
    /// The escrow key; with `create`, made in the token if there is none yet (profile
    /// creation, in the governance path: never concurrently).
    pub fn escrow_key(&self, create: bool) -> Result<Option<EscrowKey>> {
        if let Some(k) = self.store.meta::<EscrowKey>(META)? {
            return Ok(Some(k));
        }
        if !create {
            return Ok(None);
        }
        let id = crate::keys::new_key_id()?;
        let spki = self
            .keys
            .store()
            .generate(KeySpec::Rsa3072, &id, LABEL, KeyUse::Decrypt)?;
        let key = EscrowKey {
            key_id: id.to_string(),
            spki: spki.to_der()?,
        };
        self.store.write(|tx| tx.put_meta(META, &key))?;
        tracing::info!(key = %key.key_id, "escrow key made in the token");
        Ok(Some(key))
    }
}

/// Seal `pkcs8` to the escrow key.
pub fn seal(key: &EscrowKey, pkcs8: &[u8]) -> Result<Escrowed> {
    use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
    use rsa::pkcs8::DecodePublicKey;
    let public = rsa::RsaPublicKey::from_public_key_der(&key.spki).map_err(fault)?;
    let mut secret = Zeroizing::new([0u8; 64]);
    let mut iv = [0u8; 16];
    getrandom::fill(secret.as_mut()).map_err(fault)?;
    getrandom::fill(&mut iv).map_err(fault)?;
    let mut rng = rand_core::UnwrapErr(getrandom4::SysRng);
    let wrapped = public
        .encrypt(&mut rng, rsa::Oaep::<sha1::Sha1>::new(), secret.as_ref())
        .map_err(fault)?;
    let ciphertext = cbc::Encryptor::<aes::Aes256>::new_from_slices(&secret[..32], &iv)
        .map_err(fault)?
        .encrypt_padded_vec::<Pkcs7>(pkcs8);
    let tag = mac(&secret[32..], &iv, &ciphertext);
    Ok(Escrowed {
        key_id: key.key_id.clone(),
        wrapped,
        iv: iv.to_vec(),
        ciphertext,
        tag,
    })
}

fn mac(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(iv);
    ctx.update(ciphertext);
    ctx.sign().as_ref().to_vec()
}

/// Open a sealed key with the token (the escrow key unwraps the secret).
pub fn open(keys: &KeyRing, e: &Escrowed) -> Result<Zeroizing<Vec<u8>>> {
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
    let id = crate::keys::key_id(&e.key_id)?;
    let secret = Zeroizing::new(keys.store().rsa_decrypt_with(
        &id,
        RsaPadding::OaepSha1,
        &e.wrapped,
    )?);
    if secret.len() != 64 {
        return Err(fault("the unwrapped secret has the wrong length"));
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret[32..]);
    let mut signed = e.iv.clone();
    signed.extend_from_slice(&e.ciphertext);
    ring::hmac::verify(&key, &signed, &e.tag)
        .map_err(|_| fault("the sealed key fails its MAC: the row was altered"))?;
    let plain = cbc::Decryptor::<aes::Aes256>::new_from_slices(&secret[..32], &e.iv)
        .map_err(fault)?
        .decrypt_padded_vec::<Pkcs7>(&e.ciphertext)
        .map_err(fault)?;
    Ok(Zeroizing::new(plain))
}

/// The SubjectPublicKeyInfo (DER) of a PKCS#8 private key made by `keygen`: what a
/// recovered key is checked against (its certificate's).
pub fn public_of(pkcs8: &[u8]) -> Result<Vec<u8>> {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8) {
        return Ok(k
            .to_public_key()
            .to_public_key_der()
            .map_err(fault)?
            .as_bytes()
            .to_vec());
    }
    use ring::signature::{self, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    for (alg, curve) in [
        (
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            const_oid::db::rfc5912::SECP_256_R_1,
        ),
        (
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            const_oid::db::rfc5912::SECP_384_R_1,
        ),
    ] {
        if let Ok(pair) = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng) {
            let spki = spki::SubjectPublicKeyInfoOwned {
                algorithm: spki::AlgorithmIdentifierOwned {
                    oid: const_oid::db::rfc5912::ID_EC_PUBLIC_KEY,
                    parameters: Some(der::asn1::Any::encode_from(&curve)?),
                },
                subject_public_key: der::asn1::BitString::from_bytes(pair.public_key().as_ref())?,
            };
            return Ok(spki.to_der()?);
        }
    }
    Err(fault("the recovered key is neither RSA nor EC P-256/P-384"))
}

/// The certificate's SubjectPublicKeyInfo, DER.
pub fn cert_spki(der: &[u8]) -> Result<Vec<u8>> {
    let cert = x509_cert::Certificate::from_der(der)?;
    Ok(cert.tbs_certificate().subject_public_key_info().to_der()?)
}
