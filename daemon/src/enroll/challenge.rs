//! One-time challenges minted by operators (signed MDM challenges are `proto::challenge`).

use crate::enroll::Enroll;
use crate::{Error, Result};
use proto::admin::Response;

/// Key under which a one-time challenge is stored.
pub fn one_time_key(challenge: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(challenge.as_bytes()))
}

/// A new random one-time challenge value.
pub fn new_one_time() -> Result<String> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| Error::Encoding(crate::error::EncodeError::Random(e)))?;
    Ok(hex::encode(b))
}

impl Enroll {
    pub fn new_challenge(
        &self,
        officer: &str,
        profile: &str,
        subject: Option<String>,
        sans: Vec<proto::model::San>,
        ttl_secs: i64,
    ) -> Result<Response> {
        use proto::profile::ChallengeMode;
        let spec = self.cas.profile(profile)?;
        if spec.challenge != ChallengeMode::OneTime {
            return Err(Error::Invalid(format!(
                "profile {profile} does not use one-time challenges"
            )));
        }
        if !(60..=30 * 86400).contains(&ttl_secs) {
            return Err(Error::Invalid(
                "a challenge lives from 1 minute to 30 days".into(),
            ));
        }
        if let Some(s) = &subject {
            proto::model::Subject::new(s)?;
        }
        let value = crate::enroll::challenge::new_one_time()?;
        let expires_at = crate::now() + ttl_secs;
        let rec = crate::store::rows::OneTime {
            profile: profile.to_owned(),
            subject,
            sans,
            expires_at,
            used_by: None,
            created_by: officer.to_owned(),
        };
        let key = crate::enroll::challenge::one_time_key(&value);
        self.store.write(|tx| {
            tx.put(crate::store::Table::Challenges, &key, &rec)?;
            tx.audit(
                officer,
                "challenge-new",
                format!("profile {profile}, expires {expires_at}"),
            )
        })?;
        Ok(Response::Challenge {
            challenge: value,
            expires_at,
        })
    }
}
