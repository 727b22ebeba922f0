//! PKCS#12 (RFC 7292) files for server-generated keys: the private key, its certificate and
//! the chain, under a password, in one of two encodings every platform imports.
//!
//! | encoding | key bag and certificates | MAC | for |
//! |---|---|---|---|
//! | `modern` | PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC | HMAC-SHA256 | Windows 10 1709+, current macOS/iOS and Android (OpenSSL 3's default) |
//! | `compat` | pbeWithSHAAnd3-KeyTripleDES-CBC | HMAC-SHA1 | older Apple and Android (`openssl pkcs12 -legacy` reads it) |
//!
//! Never RC2. The layout is OpenSSL's (`openssl pkcs12 -export`): the authenticated safe
//! holds an encryptedData with the certificate bags (the leaf first, with friendlyName and
//! localKeyId; then the chain) and a data with the shrouded key bag (same attributes). The
//! localKeyId is the SHA-1 of the leaf certificate, as OpenSSL sets it.
//!
//! Only the structure is assembled here, with `der` and `cms` types; the ciphers are the
//! RustCrypto ones the SCEP envelope uses, PBKDF2 and HMAC are ring's, and the PKCS#12 key
//! derivation (RFC 7292 appendix B) is [`p12_kdf`].

use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use cms::enveloped_data::EncryptedContentInfo;
use const_oid::ObjectIdentifier;
use der::asn1::{Any, BmpString, OctetString, SetOfVec};
use der::{Encode, Sequence};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use zeroize::Zeroizing;

use crate::{Error, Result};

pub use proto::profile::P12Encoding as Encoding;

/// PBKDF2 iterations of the `modern` encoding (OpenSSL's default is 2048; passwords we make
/// have 128 bits, but a given one may be weaker).
const PBKDF2_ITERATIONS: u32 = 10_000;
/// Iterations of the PKCS#12 key derivation (3DES key and MAC key), OpenSSL's default.
const P12_ITERATIONS: u32 = 2048;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const ID_SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const ID_CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const ID_X509_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const ID_FRIENDLY_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.20");
const ID_LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");
const ID_PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
const ID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const ID_PBKDF2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.12");
const ID_HMAC_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");
const ID_AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// `PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData MacData OPTIONAL }`
#[derive(Sequence)]
struct Pfx {
    version: u8,
    auth_safe: ContentInfo,
    mac_data: MacData,
}

/// `MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }`
/// (the iterations are never 1 here, so always encoded).
#[derive(Sequence)]
struct MacData {
    mac: DigestInfo,
    mac_salt: OctetString,
    iterations: u32,
}

#[derive(Sequence)]
struct DigestInfo {
    algorithm: AlgorithmIdentifierOwned,
    digest: OctetString,
}

/// `SafeBag ::= SEQUENCE { bagId OID, bagValue [0] EXPLICIT ANY, bagAttributes SET OF
/// PKCS12Attribute OPTIONAL }`
#[derive(Sequence)]
struct SafeBag {
    bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    bag_value: Any,
    bag_attributes: Option<SetOfVec<Attribute>>,
}

/// `CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT OCTET STRING }`
#[derive(Sequence)]
struct CertBag {
    cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    cert_value: OctetString,
}

/// PKCS#8 `EncryptedPrivateKeyInfo`.
#[derive(Sequence)]
struct EncryptedPrivateKeyInfo {
    algorithm: AlgorithmIdentifierOwned,
    encrypted_data: OctetString,
}

/// `pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }`
#[derive(Sequence)]
struct Pkcs12PbeParams {
    salt: OctetString,
    iterations: u32,
}

/// RFC 8018 `PBES2-params`.
#[derive(Sequence)]
struct Pbes2Params {
    key_derivation_func: AlgorithmIdentifierOwned,
    encryption_scheme: AlgorithmIdentifierOwned,
}

/// RFC 8018 `PBKDF2-params` (no keyLength; the PRF given, as it is not HMAC-SHA1).
#[derive(Sequence)]
struct Pbkdf2Params {
    salt: OctetString,
    iteration_count: u32,
    prf: AlgorithmIdentifierOwned,
}

/// What goes into one file.
pub struct Contents<'a> {
    /// PKCS#8 `PrivateKeyInfo` DER of the key.
    pub key: &'a [u8],
    /// The key's certificate, DER.
    pub cert: &'a [u8],
    /// The issuing CA's chain, DER, issuing CA first.
    pub chain: &'a [Vec<u8>],
    /// Shown by Windows and Apple as the certificate's name.
    pub friendly_name: &'a str,
}

impl std::fmt::Debug for Contents<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Contents({:?}, key hidden)", self.friendly_name)
    }
}

/// The PKCS#12 file of `c` under `password` in `encoding`.
pub fn build(c: &Contents<'_>, password: &str, encoding: Encoding) -> Result<Vec<u8>> {
    let local_key_id = sha1::Sha1::digest(c.cert).to_vec();
    let attributes = bag_attributes(c.friendly_name, &local_key_id)?;

    // The certificates, encrypted.
    let mut cert_bags = Vec::with_capacity(1 + c.chain.len());
    for (i, der) in std::iter::once(c.cert)
        .chain(c.chain.iter().map(Vec::as_slice))
        .enumerate()
    {
        let bag = CertBag {
            cert_id: ID_X509_CERTIFICATE,
            cert_value: OctetString::new(der)?,
        };
        cert_bags.push(SafeBag {
            bag_id: ID_CERT_BAG,
            bag_value: Any::encode_from(&bag)?,
            bag_attributes: (i == 0).then(|| attributes.clone()),
        });
    }
    let (alg, encrypted) = encrypt(encoding, password, &cert_bags.to_der()?)?;
    let certs = EncryptedData {
        version: cms::content_info::CmsVersion::V0,
        enc_content_info: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: alg,
            encrypted_content: Some(OctetString::new(encrypted)?),
        },
        unprotected_attrs: None,
    };

    // The key, shrouded.
    let (alg, encrypted) = encrypt(encoding, password, c.key)?;
    let shrouded = EncryptedPrivateKeyInfo {
        algorithm: alg,
        encrypted_data: OctetString::new(encrypted)?,
    };
    let key_bags = vec![SafeBag {
        bag_id: ID_SHROUDED_KEY_BAG,
        bag_value: Any::encode_from(&shrouded)?,
        bag_attributes: Some(attributes),
    }];

    let auth_safe = vec![
        ContentInfo {
            content_type: ID_ENCRYPTED_DATA,
            content: Any::encode_from(&certs)?,
        },
        data(&key_bags.to_der()?)?,
    ]
    .to_der()?;
    let mac_data = mac(encoding, password, &auth_safe)?;
    Ok(Pfx {
        version: 3,
        auth_safe: data(&auth_safe)?,
        mac_data,
    }
    .to_der()?)
}

/// A `data` ContentInfo around `bytes`.
fn data(bytes: &[u8]) -> Result<ContentInfo> {
    Ok(ContentInfo {
        content_type: ID_DATA,
        content: Any::encode_from(&OctetString::new(bytes)?)?,
    })
}

fn bag_attributes(friendly_name: &str, local_key_id: &[u8]) -> Result<SetOfVec<Attribute>> {
    let name = BmpString::from_utf8(friendly_name)
        .map_err(|e| Error::Invalid(format!("friendly name {friendly_name:?}: {e}")))?;
    let attr = |oid, value: Any| -> Result<Attribute> {
        Ok(Attribute {
            oid,
            values: SetOfVec::try_from(vec![value])?,
        })
    };
    Ok(SetOfVec::try_from(vec![
        attr(ID_FRIENDLY_NAME, Any::encode_from(&name)?)?,
        attr(
            ID_LOCAL_KEY_ID,
            Any::encode_from(&OctetString::new(local_key_id)?)?,
        )?,
    ])?)
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        Error::Internal(crate::error::InternalError::Pkcs12(format!(
            "no randomness: {e}"
        )))
    })?;
    Ok(b)
}

fn alg(oid: ObjectIdentifier, params: Option<Any>) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: params,
    }
}

/// Encrypt `plain` as the encoding says; the AlgorithmIdentifier that says how.
fn encrypt(
    encoding: Encoding,
    password: &str,
    plain: &[u8],
) -> Result<(AlgorithmIdentifierOwned, Vec<u8>)> {
    use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
    let bad = |_| {
        Error::Internal(crate::error::InternalError::Pkcs12(
            "cipher key length".into(),
        ))
    };
    match encoding {
        Encoding::Modern => {
            let salt: [u8; 16] = random()?;
            let iv: [u8; 16] = random()?;
            let mut key = Zeroizing::new([0u8; 32]);
            ring::pbkdf2::derive(
                ring::pbkdf2::PBKDF2_HMAC_SHA256,
                std::num::NonZeroU32::MIN.saturating_add(PBKDF2_ITERATIONS - 1),
                &salt,
                password.as_bytes(),
                key.as_mut(),
            );
            let kdf = Pbkdf2Params {
                salt: OctetString::new(salt)?,
                iteration_count: PBKDF2_ITERATIONS,
                prf: alg(ID_HMAC_SHA256, Some(Any::encode_from(&der::asn1::Null)?)),
            };
            let params = Pbes2Params {
                key_derivation_func: alg(ID_PBKDF2, Some(Any::encode_from(&kdf)?)),
                encryption_scheme: alg(
                    ID_AES256_CBC,
                    Some(Any::encode_from(&OctetString::new(iv)?)?),
                ),
            };
            let ct = cbc::Encryptor::<aes::Aes256>::new_from_slices(key.as_ref(), &iv)
                .map_err(bad)?
                .encrypt_padded_vec::<Pkcs7>(plain);
            Ok((alg(ID_PBES2, Some(Any::encode_from(&params)?)), ct))
        }
        Encoding::Compat => {
            let salt: [u8; 8] = random()?;
            let pw = bmp_password(password);
            let key = p12_kdf(Hash::Sha1, 1, &pw, &salt, P12_ITERATIONS, 24);
            let iv = p12_kdf(Hash::Sha1, 2, &pw, &salt, P12_ITERATIONS, 8);
            let params = Pkcs12PbeParams {
                salt: OctetString::new(salt)?,
                iterations: P12_ITERATIONS,
            };
            let ct = cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                .map_err(bad)?
                .encrypt_padded_vec::<Pkcs7>(plain);
            Ok((alg(ID_PBE_SHA1_3DES, Some(Any::encode_from(&params)?)), ct))
        }
    }
}

/// The MacData over the authenticated safe: HMAC with a key from the PKCS#12 derivation
/// (ID 3) with the encoding's hash.
fn mac(encoding: Encoding, password: &str, auth_safe: &[u8]) -> Result<MacData> {
    let salt: [u8; 16] = random()?;
    let (hash, hmac, oid) = match encoding {
        Encoding::Modern => (Hash::Sha256, ring::hmac::HMAC_SHA256, ID_SHA256),
        Encoding::Compat => (
            Hash::Sha1,
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            ID_SHA1,
        ),
    };
    let key = p12_kdf(
        hash,
        3,
        &bmp_password(password),
        &salt,
        P12_ITERATIONS,
        hash.len(),
    );
    let tag = ring::hmac::sign(&ring::hmac::Key::new(hmac, &key), auth_safe);
    Ok(MacData {
        mac: DigestInfo {
            algorithm: alg(oid, Some(Any::encode_from(&der::asn1::Null)?)),
            digest: OctetString::new(tag.as_ref())?,
        },
        mac_salt: OctetString::new(salt)?,
        iterations: P12_ITERATIONS,
    })
}

/// A password as the PKCS#12 derivation takes it: BMPString (UTF-16BE) with two zero bytes.
fn bmp_password(password: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
    for unit in password.encode_utf16().chain(std::iter::once(0)) {
        out.extend_from_slice(&unit.to_be_bytes());
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }
}

/// The PKCS#12 key derivation (RFC 7292 appendix B.2): `n` bytes for purpose `id` (1 key,
/// 2 IV, 3 MAC key) from a BMPString password. Both hashes here have 64-byte blocks.
fn p12_kdf(
    hash: Hash,
    id: u8,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    n: usize,
) -> Zeroizing<Vec<u8>> {
    const V: usize = 64;
    let fill = |s: &[u8]| -> Vec<u8> {
        if s.is_empty() {
            return Vec::new();
        }
        let len = V * s.len().div_ceil(V);
        s.iter().copied().cycle().take(len).collect()
    };
    let mut i = Zeroizing::new(fill(salt));
    i.extend_from_slice(&fill(password));
    let mut out = Zeroizing::new(Vec::with_capacity(n + hash.len()));
    while out.len() < n {
        let mut input = Zeroizing::new(vec![id; V]);
        input.extend_from_slice(&i);
        let mut a = Zeroizing::new(hash.digest(&input));
        for _ in 1..iterations {
            *a = hash.digest(&a);
        }
        out.extend_from_slice(&a);
        if out.len() >= n {
            break;
        }
        // I_j = (I_j + B + 1) mod 2^(8V) for each V-byte block of I, B = A repeated.
        let b: Vec<u8> = a.iter().copied().cycle().take(V).collect();
        for block in i.chunks_mut(V) {
            let mut carry = 1u16;
            for (x, y) in block.iter_mut().zip(&b).rev() {
                let sum = u16::from(*x) + u16::from(*y) + carry;
                *x = sum as u8;
                carry = sum >> 8;
            }
        }
    }
    out.truncate(n);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 7292 has no vectors; these are from OpenSSL's PKCS12_key_gen_uni (test/pkcs12
    /// and the well-known "smeg" / "queeg" vectors of its tests).
    #[test]
    fn kdf_matches_known_vectors() {
        let salt = hex::decode("0a58cf64530d823f").unwrap();
        let pw = bmp_password("smeg");
        assert_eq!(
            hex::encode(&*p12_kdf(Hash::Sha1, 1, &pw, &salt, 1, 24)),
            "8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3"
        );
        assert_eq!(
            hex::encode(&*p12_kdf(Hash::Sha1, 2, &pw, &salt, 1, 8)),
            "79993dfe048d3b76"
        );
        let salt = hex::decode("1682c0fc5b3f7ec5").unwrap();
        let pw = bmp_password("queeg");
        assert_eq!(
            hex::encode(&*p12_kdf(Hash::Sha1, 1, &pw, &salt, 1000, 24)),
            "483dd6e919d7de2e8e648ba8f862f3fbfbdc2bcb2c02957f"
        );
    }

    #[test]
    fn passwords_are_bmp_strings() {
        assert_eq!(&*bmp_password("ab"), &[0, b'a', 0, b'b', 0, 0]);
        assert_eq!(&*bmp_password(""), &[0, 0]);
        assert_eq!(
            bmp_password("\u{1F600}").len(),
            6,
            "a surrogate pair and the end"
        );
    }
}
