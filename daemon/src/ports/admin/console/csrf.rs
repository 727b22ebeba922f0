//! CSRF tokens for the console's forms. The browser sends the admin's client certificate
//! with any request, a forged cross-site one too, so every form carries a token that only a
//! page of this signer, shown to this admin, contains: HMAC-SHA256 under a key made at
//! start (tokens die with the process) over the admin's certificate fingerprint.

use std::sync::OnceLock;

use super::Caller;

/// None if the system gave no randomness: then no form is shown and none is accepted.
fn key() -> Option<&'static ring::hmac::Key> {
    static KEY: OnceLock<Option<ring::hmac::Key>> = OnceLock::new();
    KEY.get_or_init(|| {
        let rng = ring::rand::SystemRandom::new();
        ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).ok()
    })
    .as_ref()
}

fn message(caller: &Caller) -> Vec<u8> {
    format!("castellan-console-v1\n{}", caller.fingerprint).into_bytes()
}

/// The token a form shown to `caller` carries.
pub fn token(caller: &Caller) -> Option<String> {
    key().map(|k| hex::encode(ring::hmac::sign(k, &message(caller)).as_ref()))
}

/// Is `given` the caller's token (compared in constant time)?
pub fn check(caller: &Caller, given: Option<&str>) -> bool {
    match (key(), given.and_then(|g| hex::decode(g).ok())) {
        (Some(k), Some(tag)) => ring::hmac::verify(k, &message(caller), &tag).is_ok(),
        _ => false,
    }
}
