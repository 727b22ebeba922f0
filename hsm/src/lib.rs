//! Castellan's PKCS#11 key store.
//!
//! One [`Hsm`] per process (one PKCS#11 context, initialised with OS locking),
//! a pool of sessions so that each worker uses its own, and automatic recovery:
//! when the token says a session handle is invalid, the device was removed or
//! the user is not logged in, the pool is dropped, the slot is found again by
//! its token label, the user logs in again and the operation is retried once.
//!
//! Keys are generated inside the token with CKA_TOKEN, CKA_PRIVATE and
//! CKA_SENSITIVE true and CKA_EXTRACTABLE false; no function here can read a
//! private key's value. [`HsmSigner`] lets `x509-cert` and `cms` builders sign
//! with a token key.
#![forbid(unsafe_code)]

mod error;
mod key;
mod keystore;
mod pin;
mod signer;
#[cfg(feature = "pkcs11")]
mod token;

use std::path::Path;

use spki::SubjectPublicKeyInfoOwned;

pub use error::{Error, PinError, Result};
pub use key::{
    HashAlg, KeyAttributes, KeyId, KeySpec, KeyUse, RsaPadding, ec_spki, ecdsa_raw_to_der,
    rsa_spki, signature_algorithm,
};
pub use keystore::{KeyStore, TokenHealth};
pub use pin::{PinSource, check_private, read_private_file};
pub use signer::{HsmSignature, HsmSigner, PublicKey};

#[cfg(feature = "pkcs11")]
pub use token::{Hsm, HsmConfig, SOFTHSM2_MODULE};

/// Modulus size of an RSA SubjectPublicKeyInfo.
pub fn rsa_modulus_bits(spki: &SubjectPublicKeyInfoOwned) -> Result<u32> {
    use der::Decode;
    #[derive(der::Sequence)]
    struct Rsa<'a> {
        n: der::asn1::UintRef<'a>,
        _e: der::asn1::UintRef<'a>,
    }
    let bytes = spki.subject_public_key.raw_bytes();
    let k = Rsa::from_der(bytes).map_err(|e| Error::Encoding(e.to_string()))?;
    let n = k.n.as_bytes();
    let lead = n.first().map_or(0, |b| 8 - b.leading_zeros());
    Ok((n.len().saturating_sub(1) * 8) as u32 + lead)
}

/// Check whether a path looks like a loadable module file (for config checks).
pub fn module_exists(path: &Path) -> bool {
    path.is_file()
}
