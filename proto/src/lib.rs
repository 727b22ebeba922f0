//! Every type that crosses a process boundary in Castellan, and nothing that does I/O.
//!
//! - [`model`]: validated domain values (CA and profile names, subjects, EKUs, SANs,
//!   lifetimes, serials, the CA spec with typed key and hash);
//! - [`profile`]: the SCEP profile spec;
//! - [`roles`]: permissions and the built-in roles;
//! - [`governance`]: quorum operations, proposals, approvals and the canonical digest;
//! - [`audit`]: the audit log's Merkle tree and signed checkpoints (signer and verifier);
//! - [`admin`]: the admin port's request and response (officers' CLI and signer);
//! - [`challenge`]: the MDM-signed challenge token (MDM, CLI and signer);
//! - [`wire`]: the signing socket's frames and operations (edge and signer);
//! - [`mdm`]: the connector socket's frames and operations (signer and castellan-mdm);
//! - [`ocsp`]: the OCSP (RFC 6960) ASN.1 (edge and signer).
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod challenge;
pub mod governance;
pub mod mdm;
pub mod model;
pub mod ocsp;
pub mod pem;
pub mod profile;
pub mod roles;
pub mod wire;

/// A value that fails its validating constructor, with the reason in words.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    /// The operating system gave no random bytes.
    #[error("no randomness from the system: {0}")]
    Random(getrandom::Error),
    /// A signature could not be made.
    #[error("{0}")]
    Crypto(&'static str),
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why DER bytes are not an EC P-256 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotP256 {
    /// Not a SubjectPublicKeyInfo at all.
    NotSpki,
    /// A key of another kind or curve.
    OtherKey,
}

/// The uncompressed point of an EC P-256 SubjectPublicKeyInfo (MDM keys, the audit key).
pub(crate) fn p256_point(spki_der: &[u8]) -> std::result::Result<Vec<u8>, NotP256> {
    use der::Decode;
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(|_| NotP256::NotSpki)?;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
    if spki.algorithm.oid != const_oid::db::rfc5912::ID_EC_PUBLIC_KEY
        || curve != Some(const_oid::db::rfc5912::SECP_256_R_1)
    {
        return Err(NotP256::OtherKey);
    }
    Ok(spki.subject_public_key.raw_bytes().to_vec())
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The UTC date and time of a Unix time (before 1970: the epoch; past 9999: the end).
pub fn utc(unix: i64) -> der::DateTime {
    der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix.max(0) as u64))
        .unwrap_or(der::DateTime::INFINITY)
}

/// The text of a DirectoryString-like value (a name attribute, RFC 2985 §5.4.1
/// challengePassword): Windows and .NET clients send BMPString (UTF-16BE), others
/// PrintableString, UTF8String or IA5String.
pub fn directory_string(v: &der::Any) -> Option<String> {
    use der::Tagged;
    match v.tag() {
        der::Tag::PrintableString | der::Tag::Utf8String | der::Tag::Ia5String => {
            std::str::from_utf8(v.value()).ok().map(str::to_owned)
        }
        der::Tag::BmpString => {
            let b = v.value();
            if !b.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// A password on the wire: serialised as the string, never shown by `Debug` (requests and
/// answers may be logged).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Midnight UTC of a `YYYY-MM-DD` date, as Unix time (what an HTML date input sends).
pub fn parse_date(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a date (YYYY-MM-DD)");
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let num = |v: &str| v.parse::<u16>().map_err(|_| bad());
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    let t = der::DateTime::new(y, m as u8, d as u8, 0, 0, 0).map_err(|_| bad())?;
    Ok(t.unix_duration().as_secs() as i64)
}

/// RFC 3339 text of a Unix time, as reports print it.
pub fn rfc3339(unix: i64) -> String {
    der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix.max(0) as u64))
        .map(|d| d.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// Serde helpers: bytes as standard base64 strings.
pub mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
    pub fn decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(s)
    }
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        decode(&s).map_err(serde::de::Error::custom)
    }
    /// The same for `Vec<Vec<u8>>`.
    pub mod vec {
        use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};
        pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for b in v {
                seq.serialize_element(&super::encode(b))?;
            }
            seq.end()
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
            Vec::<String>::deserialize(d)?
                .iter()
                .map(|s| super::decode(s).map_err(serde::de::Error::custom))
                .collect()
        }
    }
    /// The same for `Option<Vec<u8>>`.
    pub mod opt {
        use serde::{Deserialize, Deserializer, Serializer};
        pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(b) => s.serialize_some(&super::encode(b)),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| super::decode(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}
