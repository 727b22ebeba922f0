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
        );
        let governance = Governance::new(
            store.clone(),
            keys.clone(),
            cas.clone(),
            revocation.clone(),
            settings.ttl,
        );
        let ocsp = Ocsp::new(store.clone(), keys.clone());
        Signer {
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
