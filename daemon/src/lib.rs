//! castellan-signer and the castellan admin CLI.
//!
//! The signer is the only process that reaches the HSM and the store. Every
//! change to the CA hierarchy is a [`quorum`] proposal that runs only once M
//! registered officers have signed its digest. Modules:
//! - [`model`]: validated domain values (CA names, subjects, EKUs, key specs, validity);
//! - [`x509`]: certificate, CSR and PKCS#7 building; signature and chain verification;
//! - [`quorum`]: operations, proposals, canonical digests, approval signatures;
//! - [`store`]: the redb store (CAs, proposals, officers, hash-chained audit log);
//! - [`signer`]: the engine that validates, executes and records operations;
//! - [`admin`], [`server`], [`client`], [`tls`]: the mTLS admin port and its client;
//! - [`config`]: the TOML config and its start-up checks; [`cli`]: the `castellan` CLI;
//! - [`report`]: certificate listings, details and counts over indexes kept with the certificates.
#![forbid(unsafe_code)]

pub mod admin;
pub mod challenge;
pub mod cli;
pub mod client;
pub mod commit;
pub mod config;
pub mod enroll;
pub mod error;
pub mod leaf;
pub mod model;
pub mod ocsp;
pub mod profile;
pub mod quorum;
pub mod report;
pub mod revoke;
pub mod server;
pub mod signer;
pub mod socket;
pub mod store;
pub mod tls;
pub mod x509;

pub use error::{Error, Result};

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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
