//! The seam between Castellan and its keys: what the signer asks of a key store. The
//! token ([`crate::Hsm`]) is the one real implementation; unit tests put software keys
//! behind the same trait so that issuance, enrolment and governance run without a token.

use spki::SubjectPublicKeyInfoOwned;

use crate::{HashAlg, KeyAttributes, KeyId, KeySpec, KeyUse, Result, RsaPadding};

/// Keys that are generated and used inside a store and never leave it: no method returns
/// private key material.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Generate a key pair; refuses if a key with this id exists.
    fn generate(
        &self,
        spec: KeySpec,
        id: &KeyId,
        label: &str,
        usage: KeyUse,
    ) -> Result<SubjectPublicKeyInfoOwned>;
    /// The public key of `id`.
    fn public_key(&self, spec: KeySpec, id: &KeyId) -> Result<SubjectPublicKeyInfoOwned>;
    /// Sign `data` (hashed here) with `id`: PKCS#1 v1.5 for RSA, a DER ECDSA-Sig-Value for EC.
    fn sign(&self, spec: KeySpec, hash: HashAlg, id: &KeyId, data: &[u8]) -> Result<Vec<u8>>;
    /// Decrypt an RSA key transport with `id`.
    fn rsa_decrypt_with(
        &self,
        id: &KeyId,
        padding: RsaPadding,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>>;
    /// The security attributes of the private key `id`.
    fn attributes(&self, id: &KeyId) -> Result<KeyAttributes>;
    /// The attributes, refused unless the key was generated in, and never left, the store.
    fn check_key(&self, id: &KeyId) -> Result<KeyAttributes>;
    /// Let an existing RSA key decrypt (a CA that becomes its own SCEP RA).
    fn allow_decrypt(&self, id: &KeyId) -> Result<()>;
    /// Whether the store is reachable (a token can be removed); a store in memory always is.
    fn health(&self) -> TokenHealth {
        TokenHealth {
            up: true,
            down_since: None,
            losses: 0,
            recoveries: 0,
        }
    }
}

/// A key store's reachability, for the metrics and the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenHealth {
    pub up: bool,
    /// Since when (Unix seconds) it has been unreachable.
    pub down_since: Option<i64>,
    /// Times its sessions were lost, and times it was found again, since start.
    pub losses: u64,
    pub recoveries: u64,
}
