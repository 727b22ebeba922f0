//! One-time challenges minted by operators (signed MDM challenges are `proto::challenge`).

use crate::{Error, Result};

/// Key under which a one-time challenge is stored.
pub fn one_time_key(challenge: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(challenge.as_bytes()))
}

/// A new random one-time challenge value.
pub fn new_one_time() -> Result<String> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| Error::Encoding(e.to_string()))?;
    Ok(hex::encode(b))
}
