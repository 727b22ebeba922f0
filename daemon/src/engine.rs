//! The engine: the services of one signer, built once at start-up and shared by the two
//! ports. It owns no logic of its own beyond what spans two services (a revocation also
//! drops the OCSP responder's cached answers). Everything here runs on blocking threads.

use std::path::PathBuf;
use std::sync::Arc;

use hsm::KeyStore;

use crate::Result;
use crate::ca::Cas;
use crate::enroll::Enroll;
use crate::governance::Governance;
use crate::keys::KeyRing;
use crate::ocsp::Ocsp;
use crate::revocation::{CrlCache, CrlTiming, Revocation};
use crate::store::Store;
use crate::store::rows::CertRecord;

/// What the services are configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Longest a proposal may stay open, in seconds.
    pub ttl: i64,
    /// Base URL of the edge, for CDP and AIA in issued certificates.
    pub public_url: String,
    pub crl: CrlTiming,
    /// Where published CRLs are written.
    pub crl_dir: PathBuf,
    /// Where the CRL metrics are written.
    pub metrics_file: PathBuf,
    /// castellan-mdm, for `intune` and `webhook` profiles.
    pub connector: Arc<dyn crate::enroll::mdm::Connector>,
}

/// The running signer.
#[derive(Debug)]
pub struct Signer {
    store: Arc<Store>,
    keys: Arc<KeyRing>,
    cas: Arc<Cas>,
    revocation: Arc<Revocation>,
    enroll: Enroll,
    governance: Governance,
    ocsp: Ocsp,
    audit: crate::audit::Audit,
    /// Base URL of the edge (from [`Settings`]), for the URLs officers hand to devices.
    public_url: String,
}

impl Signer {
    /// Build the services over a store and a key store (the token; software keys in tests).
    pub fn new(store: Arc<Store>, keys: Arc<dyn KeyStore>, settings: Settings) -> Signer {
        let keys = Arc::new(KeyRing::new(keys));
        let cas = Arc::new(Cas::new(store.clone(), keys.clone()));
        let revocation = Arc::new(Revocation::new(
            store.clone(),
            keys.clone(),
            settings.crl,
            CrlCache::new(settings.crl_dir, settings.metrics_file),
            settings.public_url.clone(),
        ));
        let enroll = Enroll::new(
            store.clone(),
            keys.clone(),
            cas.clone(),
            revocation.clone(),
            settings.public_url.clone(),
            settings.connector,
        );
        let governance = Governance::new(
            store.clone(),
            keys.clone(),
            cas.clone(),
            revocation.clone(),
            settings.ttl,
        );
        let ocsp = Ocsp::new(store.clone(), keys.clone());
        let audit = crate::audit::Audit::new(store.clone(), keys.clone());
        Signer {
            audit,
            public_url: settings.public_url,
            store,
            keys,
            cas,
            revocation,
            enroll,
            governance,
            ocsp,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }
    pub fn cas(&self) -> &Cas {
        &self.cas
    }
    pub fn revocation(&self) -> &Revocation {
        &self.revocation
    }
    pub fn enroll(&self) -> &Enroll {
        &self.enroll
    }
    pub fn governance(&self) -> &Governance {
        &self.governance
    }
    pub fn ocsp(&self) -> &Ocsp {
        &self.ocsp
    }
    pub fn audit(&self) -> &crate::audit::Audit {
        &self.audit
    }
    /// Base URL of the edge, e.g. `https://ca.example.com` (no trailing path).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The start-up key check; returns one line per key checked.
    pub fn check_keys(&self) -> Result<Vec<String>> {
        self.cas.check_keys()
    }

    /// Revoke (or unhold) a certificate, then drop the OCSP answers cached for it.
    pub fn revoke_cert(
        &self,
        officer: &str,
        ca: &str,
        serial: &str,
        reason: crl::Reason,
    ) -> Result<CertRecord> {
        let rec = self.revocation.revoke_cert(officer, ca, serial, reason)?;
        self.ocsp.forget(ca, &rec.serial);
        Ok(rec)
    }
}

/// A DN as compared across systems: case and the spaces around `,`, `+` and `=` do not
/// count (Intune hands back the issuer string it was given, perhaps re-spaced).
fn dn_key(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let p: Vec<String> = part
            .split('=')
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        out.push_str(&p.join("="));
    }
    out
}

impl Signer {
    /// A revocation Intune asked for (through the connector's identity): only certificates
    /// issued through an `intune` profile, found by the issuer DN the signer sent in
    /// `successNotification` (or the CA's name) and the serial in any hex form. Every
    /// answer, refusals included, is in the audit trail.
    pub fn mdm_revoke(
        &self,
        actor: &str,
        issuer: &str,
        serial: &str,
    ) -> Result<proto::admin::MdmRevokeOutcome> {
        use proto::admin::MdmRevokeOutcome as O;
        use proto::profile::ChallengeMode;
        let want = dn_key(issuer);
        let ca = self.store.cas()?.into_iter().find(|c| {
            c.spec.name.as_str() == issuer
                || c.cert
                    .as_deref()
                    .and_then(|d| <x509_cert::Certificate as der::Decode>::from_der(d).ok())
                    .is_some_and(|cert| {
                        dn_key(&cert.tbs_certificate().subject().to_string()) == want
                    })
        });
        let outcome = match (ca, proto::model::Serial::parse(serial)) {
            (None, _) => O::UnknownIssuer,
            (Some(_), Err(_)) => O::NotFound,
            (Some(ca), Ok(s)) => {
                let name = ca.spec.name.to_string();
                let key = format!("{name}\0{s}");
                let rec: Option<CertRecord> = self.store.get(crate::store::Table::Certs, &key)?;
                let intune = |r: &CertRecord| {
                    self.cas
                        .profile(&r.profile)
                        .is_ok_and(|p| p.challenge == ChallengeMode::Intune)
                };
                match rec.filter(intune) {
                    None => O::NotFound,
                    Some(r) if r.revoked_at.is_some() => O::AlreadyRevoked,
                    Some(r) if r.not_after <= crate::now() => O::Expired,
                    Some(r) => {
                        match self.revoke_cert(actor, &name, &r.serial, crl::Reason::Unspecified) {
                            Ok(_) => O::Revoked,
                            Err(crate::Error::Conflict(_)) => O::AlreadyRevoked,
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        };
        if outcome != O::Revoked {
            self.store.write(|tx| {
                tx.audit(
                    actor,
                    "intune-revoke-refused",
                    format!("issuer {issuer:?} serial {serial:?}: {outcome:?}"),
                )
            })?;
        }
        tracing::info!(issuer, serial, ?outcome, "revocation requested by Intune");
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dn_keys_ignore_case_and_spacing() {
        assert_eq!(
            super::dn_key("CN=Issuing CA 1, O=Example"),
            super::dn_key("cn = Issuing CA 1,o=EXAMPLE")
        );
        assert_ne!(super::dn_key("CN=A,O=B"), super::dn_key("CN=A,O=C"));
    }
}
