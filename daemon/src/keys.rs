//! The signer's keys: one [`KeyRing`] over the key store (the token in production; software
//! keys in unit tests, behind the same [`KeyStore`] trait), with a cache of signers so that
//! a key's public half is read from the token once, not per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use der::Decode;
use hsm::{HsmSigner, KeyId, KeyStore};
use x509_cert::Certificate;

use crate::store::rows::CaRecord;

#[cfg(test)]
pub mod soft;
use crate::error::EncodeError;
use crate::{Error, Result};

/// A new random CKA_ID.
pub fn new_key_id() -> Result<KeyId> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Encoding(EncodeError::Random(e)))?;
    KeyId::new(b.to_vec()).map_err(|e| Error::Encoding(EncodeError::KeyId(e)))
}

/// A CKA_ID as the store keeps it (hex).
pub fn key_id(s: &str) -> Result<KeyId> {
    s.parse()
        .map_err(|e| Error::Store(crate::error::StoreError::KeyId(e)))
}

/// The key store and the signers made from it.
#[derive(Debug)]
pub struct KeyRing {
    store: Arc<dyn KeyStore>,
    /// Token signers by key ID and hash: one public-key lookup per key, not per request.
    signers: Mutex<HashMap<String, HsmSigner>>,
}

impl KeyRing {
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        KeyRing {
            store,
            signers: Mutex::default(),
        }
    }

    /// The key store itself (generation, decryption, attributes).
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    /// The token signer of `key_id`, made once (it reads the public key from the token)
    /// and then shared. Key IDs are random and never reused, so an entry cannot go stale.
    pub fn signer(
        &self,
        key_id: &str,
        spec: hsm::KeySpec,
        hash: hsm::HashAlg,
    ) -> Result<HsmSigner> {
        let mut cache = self.signers.lock().unwrap_or_else(|p| p.into_inner());
        // One key may sign with two hashes (a CA's own, and SHA-256 for CertReps when the
        // CA is its own RA).
        let cache_key = format!("{key_id}/{hash:?}");
        if let Some(s) = cache.get(&cache_key) {
            return Ok(s.clone());
        }
        let s = HsmSigner::new(self.store.clone(), self::key_id(key_id)?, spec, hash)?;
        cache.insert(cache_key, s.clone());
        Ok(s)
    }

    /// The signer for a CA's own key.
    pub fn ca_signer(&self, ca: &CaRecord) -> Result<HsmSigner> {
        let spec = ca.spec.key;
        let hash = ca.spec.hash;
        self.signer(&ca.key_id, spec, hash)
    }

    /// The start-up check of one key: present, sound attributes, and (with a certificate)
    /// the key the certificate names.
    pub fn check(
        &self,
        what: &str,
        id: &str,
        spec: hsm::KeySpec,
        cert: Option<&Vec<u8>>,
    ) -> Result<()> {
        let kid = key_id(id)?;
        let fail = |reason: String| {
            Error::Config(crate::error::ConfigError::Key {
                what: what.to_owned(),
                reason,
            })
        };
        self.store
            .check_key(&kid)
            .map_err(|e| fail(e.to_string()))?;
        if let Some(cert) = cert {
            let cert = Certificate::from_der(cert)?;
            let spki = self
                .store
                .public_key(spec, &kid)
                .map_err(|e| fail(e.to_string()))?;
            if cert.tbs_certificate().subject_public_key_info() != &spki {
                return Err(fail(format!(
                    "the key {id} in the token does not match the certificate"
                )));
            }
        }
        Ok(())
    }
}
