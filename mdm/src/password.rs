//! Passwords of the MDMs that fetch challenges: stored only as PBKDF2-HMAC-SHA256 hashes
//! (`pbkdf2-sha256$ITERATIONS$SALT$HASH`, base64 without padding), checked in constant
//! time (ring's `pbkdf2::verify`).

use std::num::NonZeroU32;

use base64::Engine;
use ring::pbkdf2;

use crate::{Error, Result};

const ALG: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;
/// Iterations for new hashes (OWASP's 2023 figure for PBKDF2-HMAC-SHA256 is 600,000;
/// fetches are rate-limited and a check must stay well under a second).
pub const ITERATIONS: u32 = 210_000;
const PREFIX: &str = "pbkdf2-sha256";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD_NO_PAD
}

/// A stored password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Hash {
    /// Hash a new password with a random salt.
    pub fn new(password: &str) -> Result<Hash> {
        if password.len() < 12 {
            return Err(Error::Config(
                "a password for an MDM must be at least 12 characters".into(),
            ));
        }
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| Error::Config(format!("no randomness: {e}")))?;
        let iterations = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
        let mut hash = vec![0u8; 32];
        pbkdf2::derive(ALG, iterations, &salt, password.as_bytes(), &mut hash);
        Ok(Hash {
            iterations,
            salt,
            hash,
        })
    }

    pub fn parse(s: &str) -> Result<Hash> {
        let bad =
            || Error::Config("a password hash is `pbkdf2-sha256$ITERATIONS$SALT$HASH`".into());
        let mut p = s.split('$');
        let (Some(PREFIX), Some(i), Some(salt), Some(hash), None) =
            (p.next(), p.next(), p.next(), p.next(), p.next())
        else {
            return Err(bad());
        };
        let iterations: u32 = i.parse().map_err(|_| bad())?;
        if !(10_000..=10_000_000).contains(&iterations) {
            return Err(Error::Config(
                "a password hash needs 10,000 to 10,000,000 iterations".into(),
            ));
        }
        let salt = b64().decode(salt).map_err(|_| bad())?;
        let hash = b64().decode(hash).map_err(|_| bad())?;
        if salt.len() < 16 || hash.len() != 32 {
            return Err(bad());
        }
        Ok(Hash {
            iterations: NonZeroU32::new(iterations).ok_or_else(bad)?,
            salt,
            hash,
        })
    }

    /// Constant-time check.
    pub fn verify(&self, password: &str) -> bool {
        pbkdf2::verify(
            ALG,
            self.iterations,
            &self.salt,
            password.as_bytes(),
            &self.hash,
        )
        .is_ok()
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}${}${}${}",
            self.iterations,
            b64().encode(&self.salt),
            b64().encode(&self.hash)
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password_and_round_trip() {
        let h = Hash::new("correct horse battery").unwrap();
        let again = Hash::parse(&h.to_string()).unwrap();
        assert_eq!(h, again);
        assert!(again.verify("correct horse battery"));
        assert!(!again.verify("correct horse batterY"));
        assert!(!again.verify(""));
        assert!(Hash::new("short").is_err());
    }

    #[test]
    fn malformed_hashes_are_refused() {
        for s in [
            "",
            "pbkdf2-sha256$1$AAAAAAAAAAAAAAAAAAAAAA$AAAA",
            "md5$210000$a$b",
            "pbkdf2-sha256$210000$!!$AAAA",
            "pbkdf2-sha256$x$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(Hash::parse(s).is_err(), "{s}");
        }
    }
}
