//! Key and hash algorithms Castellan accepts, key identifiers, and the
//! X.509 encodings of public keys and signatures.

use std::fmt;
use std::str::FromStr;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;
use der::asn1::{AnyRef, BitString, UintRef};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::error::{Error, Result};

/// A key type and size Castellan generates: RSA 2048/3072/4096, ECDSA P-256/P-384.
/// RSA-1024 and everything else are refused by `FromStr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySpec {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcP256,
    EcP384,
}

impl KeySpec {
    pub const ALL: [KeySpec; 5] = [
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::EcP256,
        KeySpec::EcP384,
    ];

    pub fn is_rsa(self) -> bool {
        matches!(self, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096)
    }

    /// RSA modulus size in bits, or the curve size for ECDSA.
    pub fn bits(self) -> u32 {
        match self {
            KeySpec::Rsa2048 => 2048,
            KeySpec::Rsa3072 => 3072,
            KeySpec::Rsa4096 => 4096,
            KeySpec::EcP256 => 256,
            KeySpec::EcP384 => 384,
        }
    }

    /// The named-curve OID for ECDSA keys.
    pub fn curve_oid(self) -> Option<ObjectIdentifier> {
        match self {
            KeySpec::EcP256 => Some(rfc5912::SECP_256_R_1),
            KeySpec::EcP384 => Some(rfc5912::SECP_384_R_1),
            _ => None,
        }
    }

    /// Hashes allowed with this key: SHA-256/384/512 for RSA, SHA-256/384 for ECDSA.
    pub fn allows(self, hash: HashAlg) -> bool {
        self.is_rsa() || hash != HashAlg::Sha512
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeySpec::Rsa2048 => "rsa-2048",
            KeySpec::Rsa3072 => "rsa-3072",
            KeySpec::Rsa4096 => "rsa-4096",
            KeySpec::EcP256 => "ec-p256",
            KeySpec::EcP384 => "ec-p384",
        })
    }
}

impl FromStr for KeySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        KeySpec::ALL
            .into_iter()
            .find(|k| k.to_string().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unsupported key {s:?}: use rsa-2048, rsa-3072, rsa-4096, ec-p256 or ec-p384"
                )
            })
    }
}

/// A signature hash. SHA-1 and MD5 are refused everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        })
    }
}

impl FromStr for HashAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sha256" => Ok(HashAlg::Sha256),
            "sha384" => Ok(HashAlg::Sha384),
            "sha512" => Ok(HashAlg::Sha512),
            _ => Err(format!(
                "unsupported hash {s:?}: use sha256, sha384 or sha512 (SHA-1 and MD5 are refused)"
            )),
        }
    }
}

/// The X.509 signature AlgorithmIdentifier for a key and hash (RFC 4055, RFC 5758).
pub fn signature_algorithm(spec: KeySpec, hash: HashAlg) -> Result<AlgorithmIdentifierOwned> {
    if !spec.allows(hash) {
        return Err(Error::Unsupported(format!("{spec} with {hash}")));
    }
    let (oid, null_params) = match (spec.is_rsa(), hash) {
        (true, HashAlg::Sha256) => (rfc5912::SHA_256_WITH_RSA_ENCRYPTION, true),
        (true, HashAlg::Sha384) => (rfc5912::SHA_384_WITH_RSA_ENCRYPTION, true),
        (true, HashAlg::Sha512) => (rfc5912::SHA_512_WITH_RSA_ENCRYPTION, true),
        (false, HashAlg::Sha256) => (rfc5912::ECDSA_WITH_SHA_256, false),
        (false, HashAlg::Sha384) => (rfc5912::ECDSA_WITH_SHA_384, false),
        (false, HashAlg::Sha512) => (rfc5912::ECDSA_WITH_SHA_512, false),
    };
    Ok(AlgorithmIdentifierOwned {
        oid,
        parameters: null_params.then(|| AnyRef::NULL.into()),
    })
}

/// A key's CKA_ID: 1 to 64 bytes, shown as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Vec<u8>);

impl KeyId {
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.is_empty() || bytes.len() > 64 {
            return Err("a CKA_ID must be 1 to 64 bytes".into());
        }
        Ok(KeyId(bytes))
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl FromStr for KeyId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        KeyId::new(hex::decode(s).map_err(|e| format!("CKA_ID {s:?} is not hex: {e}"))?)
    }
}

/// What a key is for; decides CKA_SIGN / CKA_DECRYPT on the private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// CA and TLS keys: sign only.
    Sign,
    /// SCEP RA keys: sign CertReps and decrypt (unwrap) request envelopes. RSA only.
    SignDecrypt,
    /// A SCEP encryption RA key (the NDES "CEP Encryption" certificate): decrypt request
    /// envelopes, never sign. RSA only.
    Decrypt,
}

impl KeyUse {
    pub fn signs(self) -> bool {
        matches!(self, KeyUse::Sign | KeyUse::SignDecrypt)
    }
    pub fn decrypts(self) -> bool {
        matches!(self, KeyUse::SignDecrypt | KeyUse::Decrypt)
    }
}

/// The padding of an RSA key transport (RFC 8017): PKCS#1 v1.5, or OAEP with SHA-1 and
/// MGF1-SHA-1 (the defaults of RSAES-OAEP-params, what Windows sends; SoftHSM2 2.6 decrypts
/// no other OAEP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaPadding {
    Pkcs1,
    OaepSha1,
}

/// The security attributes of a private key, as the token reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttributes {
    pub token: bool,
    pub private: bool,
    pub sensitive: bool,
    pub always_sensitive: bool,
    pub extractable: bool,
    pub never_extractable: bool,
    pub local: bool,
}

impl KeyAttributes {
    /// Every reason this key cannot be trusted to have been generated in, and never left, the token.
    pub fn problems(&self) -> Vec<&'static str> {
        let mut p = Vec::new();
        if !self.token {
            p.push("CKA_TOKEN is false");
        }
        if !self.private {
            p.push("CKA_PRIVATE is false");
        }
        if !self.sensitive {
            p.push("CKA_SENSITIVE is false");
        }
        if !self.always_sensitive {
            p.push("CKA_ALWAYS_SENSITIVE is false");
        }
        if self.extractable {
            p.push("CKA_EXTRACTABLE is true");
        }
        if !self.never_extractable {
            p.push("CKA_NEVER_EXTRACTABLE is false");
        }
        if !self.local {
            p.push("CKA_LOCAL is false (key was imported, not generated in the token)");
        }
        p
    }

    pub fn is_sound(&self) -> bool {
        self.problems().is_empty()
    }
}

/// RFC 8017 A.1.1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// RFC 5480 / RFC 3279 `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`
#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// SubjectPublicKeyInfo for an RSA key from its modulus and exponent (big-endian).
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Result<SubjectPublicKeyInfoOwned> {
    let key = RsaPublicKey {
        modulus: UintRef::new(modulus).map_err(enc)?,
        public_exponent: UintRef::new(exponent).map_err(enc)?,
    }
    .to_der()
    .map_err(enc)?;
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::RSA_ENCRYPTION,
            parameters: Some(AnyRef::NULL.into()),
        },
        subject_public_key: BitString::from_bytes(&key).map_err(enc)?,
    })
}

/// SubjectPublicKeyInfo for an EC key from CKA_EC_POINT (raw or DER OCTET STRING wrapped).
pub fn ec_spki(spec: KeySpec, ec_point: &[u8]) -> Result<SubjectPublicKeyInfoOwned> {
    let curve = spec
        .curve_oid()
        .ok_or_else(|| Error::Unsupported(format!("{spec} is not an EC key")))?;
    let point_len = 1 + 2 * (spec.bits() as usize).div_ceil(8);
    let point = if ec_point.len() == point_len && ec_point[0] == 4 {
        ec_point.to_vec()
    } else {
        der::asn1::OctetString::from_der(ec_point)
            .map_err(enc)?
            .as_bytes()
            .to_vec()
    };
    if point.len() != point_len || point[0] != 4 {
        return Err(Error::Encoding(
            "CKA_EC_POINT is not an uncompressed point".into(),
        ));
    }
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::ID_EC_PUBLIC_KEY,
            parameters: Some(der::Any::from(&curve)),
        },
        subject_public_key: BitString::from_bytes(&point).map_err(enc)?,
    })
}

/// Turn CKM_ECDSA's raw `r || s` into the DER `ECDSA-Sig-Value` that X.509 and CMS carry.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(Error::Encoding("ECDSA signature has odd length".into()));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    EcdsaSigValue {
        r: UintRef::new(r).map_err(enc)?,
        s: UintRef::new(s).map_err(enc)?,
    }
    .to_der()
    .map_err(enc)
}

fn enc(e: der::Error) -> Error {
    Error::Encoding(e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_round_trip_and_weak_ones_are_refused() {
        for k in KeySpec::ALL {
            assert_eq!(k.to_string().parse::<KeySpec>().unwrap(), k);
        }
        for bad in ["rsa-1024", "rsa-512", "ec-p521", "ed25519", "", "rsa"] {
            let err = bad.parse::<KeySpec>().unwrap_err();
            assert!(err.contains("unsupported key"), "{bad}: {err}");
        }
    }

    #[test]
    fn weak_hashes_are_refused() {
        assert_eq!("SHA-384".parse::<HashAlg>().unwrap(), HashAlg::Sha384);
        for bad in ["sha1", "md5", "sha224", "sha-1"] {
            assert!(bad.parse::<HashAlg>().is_err(), "{bad}");
        }
        assert!(signature_algorithm(KeySpec::EcP256, HashAlg::Sha512).is_err());
    }

    #[test]
    fn ecdsa_signature_becomes_der_with_sign_padding() {
        let mut raw = vec![0x80; 32];
        raw.extend([0x01; 32]);
        let der = ecdsa_raw_to_der(&raw).unwrap();
        // SEQUENCE { INTEGER 00 80..., INTEGER 01... }
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 33, 0x00]);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_err());
    }

    #[test]
    fn attribute_check_names_each_problem() {
        let good = KeyAttributes {
            token: true,
            private: true,
            sensitive: true,
            always_sensitive: true,
            extractable: false,
            never_extractable: true,
            local: true,
        };
        assert!(good.is_sound());
        let bad = KeyAttributes {
            extractable: true,
            local: false,
            ..good
        };
        assert_eq!(bad.problems().len(), 2);
    }
}
