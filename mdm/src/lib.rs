//! castellan-mdm: the only process that talks to MDM services. It holds no CA key and no
//! store. The signer asks it, over a unix socket ([`link`]), whether a request's
//! challenge is genuine (Intune's `validateRequest`, or a webhook) and has it notify
//! Intune of what was issued; it mints NDES-style one-time challenges for MDMs that fetch
//! them ([`ndes`]) and relays Intune's revocation requests ([`revocation`]), both through
//! the signer's admin port under its own narrow identity.
#![forbid(unsafe_code)]

pub mod config;
pub mod http;
pub mod intune;
pub mod link;
pub mod ndes;
pub mod password;
pub mod revocation;
pub mod webhook;

use std::collections::HashMap;

use proto::mdm::{Answer, Op, Validator};

/// What can stop the connector; every variant is a bad config (exit 78) but `Runtime`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Runtime(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The connector's services, built once from the config.
#[derive(Debug)]
pub struct Connector {
    pub intune: Option<intune::Intune>,
    pub webhooks: HashMap<String, webhook::Webhook>,
    pub ndes: Option<ndes::Ndes>,
    /// The signer's admin port under the connector's identity.
    pub admin: Option<cli::client::AdminClient>,
    /// Longest time one call of the signer may take.
    pub deadline: std::time::Duration,
}

impl Connector {
    pub fn new(cfg: &config::Config) -> Result<Connector> {
        let admin = match &cfg.signer {
            Some(s) => {
                let read = |p: &std::path::Path| {
                    std::fs::read(p).map_err(|e| Error::Config(format!("{}: {e}", p.display())))
                };
                Some(
                    cli::client::AdminClient::new(
                        &s.url,
                        &read(&s.ca_file)?,
                        &read(&s.cert_file)?,
                        &s.key.read("[signer] key")?,
                    )
                    .map_err(|e| Error::Config(format!("[signer]: {e}")))?,
                )
            }
            None => None,
        };
        let intune = cfg
            .intune
            .clone()
            .map(intune::Intune::new)
            .transpose()
            .map_err(|e| Error::Config(format!("[intune]: {e}")))?;
        let webhooks = cfg
            .webhook
            .iter()
            .map(|w| {
                Ok((
                    w.profile.clone(),
                    webhook::Webhook::new(w).map_err(Error::Config)?,
                ))
            })
            .collect::<Result<_>>()?;
        let ndes = (!cfg.ndes.is_empty())
            .then(|| ndes::Ndes::new(&cfg.ndes))
            .transpose()
            .map_err(Error::Config)?;
        Ok(Connector {
            deadline: std::time::Duration::from_secs(cfg.call_deadline_secs),
            intune,
            webhooks,
            ndes,
            admin,
        })
    }

    /// Answer one call of the signer.
    pub async fn answer(&self, op: Op) -> Answer {
        let unavailable = |reason: String| Answer::Unavailable { reason };
        let intune = || {
            self.intune
                .as_ref()
                .ok_or_else(|| unavailable("castellan-mdm has no [intune] section".into()))
        };
        let from = |r: Result<Option<String>, intune::IntuneError>, yes: Answer| match r {
            Ok(None) => yes,
            Ok(Some(reason)) => Answer::Deny {
                reason: Answer::reason(reason),
            },
            Err(e) => unavailable(Answer::reason(e.to_string())),
        };
        match op {
            Op::Validate {
                validator: Validator::Intune,
                transaction_id,
                csr,
                ..
            } => match intune() {
                Ok(i) => from(i.validate(&transaction_id, &csr).await, Answer::Allow),
                Err(a) => a,
            },
            Op::Validate {
                validator: Validator::Webhook,
                profile,
                transaction_id,
                csr,
                challenge,
                subject,
                sans,
            } => match self.webhooks.get(&profile) {
                Some(w) => {
                    w.validate(&profile, &transaction_id, &subject, &sans, &csr, &challenge)
                        .await
                }
                None => unavailable(format!(
                    "castellan-mdm has no [[webhook]] for profile {profile}"
                )),
            },
            Op::NotifySuccess {
                transaction_id,
                csr,
                thumbprint,
                serial,
                expires,
                issuer,
                ca,
                ..
            } => match intune() {
                Ok(i) => from(
                    i.notify_success(
                        &transaction_id,
                        &csr,
                        &thumbprint,
                        &serial,
                        &expires,
                        &issuer,
                        &ca,
                    )
                    .await,
                    Answer::Done,
                ),
                Err(a) => a,
            },
            Op::NotifyFailure {
                transaction_id,
                csr,
                hresult,
                description,
                ..
            } => match intune() {
                Ok(i) => from(
                    i.notify_failure(&transaction_id, &csr, hresult, &description)
                        .await,
                    Answer::Done,
                ),
                Err(a) => a,
            },
        }
    }
}
