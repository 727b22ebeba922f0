//! The cache of GetCACaps, GetCACert and GetNextCACert replies (RFC 8894 §3.5.1, §4.2,
//! §4.7), per profile and operation.
//!
//! A copy younger than the TTL is served without asking the signer. An older copy is
//! kept as the last good one: when the signer cannot be reached it is still served
//! (the design brief: the edge keeps serving CA certificates while the signer is down).
//! Only successful replies are stored, and the signer answers those only for profiles
//! that exist, so untrusted profile names cannot grow the cache.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::route::{Operation, Profile};
use proto::wire::Reply;

/// Default time a copy is served without asking the signer.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// Cached replies, keyed by profile and operation.
#[derive(Debug)]
pub struct Cache {
    ttl: Duration,
    entries: Mutex<HashMap<(Profile, Operation), (Instant, Reply)>>,
}

impl Cache {
    pub fn new(ttl: Duration) -> Self {
        Cache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<(Profile, Operation), (Instant, Reply)>) -> T,
    ) -> T {
        // A panic while holding this lock cannot leave the map inconsistent.
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut map)
    }

    /// A copy younger than the TTL.
    pub fn fresh(&self, profile: &Profile, op: Operation) -> Option<Reply> {
        self.with(|m| {
            m.get(&(profile.clone(), op))
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, r)| r.clone())
        })
    }

    /// The last good copy, however old.
    pub fn last_good(&self, profile: &Profile, op: Operation) -> Option<Reply> {
        self.with(|m| m.get(&(profile.clone(), op)).map(|(_, r)| r.clone()))
    }

    pub fn put(&self, profile: &Profile, op: Operation, reply: Reply) {
        self.with(|m| m.insert((profile.clone(), op), (Instant::now(), reply)));
    }

    /// Forget a copy: the signer has refused the request (e.g. the profile was removed).
    pub fn remove(&self, profile: &Profile, op: Operation) {
        self.with(|m| m.remove(&(profile.clone(), op)));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fresh_then_last_good() {
        let p = Profile::new("p").unwrap();
        let caps = Reply::Caps {
            caps: vec!["AES".into()],
        };
        let c = Cache::new(Duration::from_millis(30));
        assert_eq!(c.fresh(&p, Operation::GetCaCaps), None);
        c.put(&p, Operation::GetCaCaps, caps.clone());
        assert_eq!(c.fresh(&p, Operation::GetCaCaps), Some(caps.clone()));
        assert_eq!(c.fresh(&p, Operation::GetCaCert), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.fresh(&p, Operation::GetCaCaps), None);
        assert_eq!(c.last_good(&p, Operation::GetCaCaps), Some(caps));
        c.remove(&p, Operation::GetCaCaps);
        assert_eq!(c.last_good(&p, Operation::GetCaCaps), None);
    }
}
