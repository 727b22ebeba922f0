//! Revocation and CRL publication (RFC 5280 §5).
//!
//! - `cert revoke` marks the certificate and adds a row to the CA's revoked list in one
//!   transaction, then asks for a new CRL; the publisher coalesces bursts and publishes
//!   within the configured delay (default 500 ms, well inside the 2 s promise).
//! - Every CA (roots included) gets a v2 CRL with a persisted, strictly increasing CRL
//!   number (it never goes back, whatever the clock does), AKI, reason codes,
//!   thisUpdate/nextUpdate (default validity 7 days), re-published every 3.5 days.
//! - Expired certificates drop off after their notAfter, never before.
//! - A watchdog logs loudly when a CRL is within a day of nextUpdate without a successor.

use crate::store::Note;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use der::Decode;
use sha2::Digest;
use x509_cert::Certificate;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::error::{Clash, Missing};
use crate::keys::KeyRing;
use crate::store::Store;
use crate::store::Table;
use crate::store::indexes::{delete_revoked, put_revoked};
use crate::store::rows::CaRecord;
use crate::store::rows::CertRecord;
use crate::store::rows::{CrlState, RevokedRow};
use crate::{Error, Result};
use proto::model::CaStatus;

/// A published CRL, kept in memory for the edge (which fetches it in chunks).
#[derive(Debug)]
pub struct CurrentCrl {
    pub state: CrlState,
    pub der: Vec<u8>,
    /// Strong validator: changes with every publication.
    pub etag: String,
}

/// The current CRLs: in memory by CA name, and their files.
#[derive(Debug)]
pub struct CrlCache {
    dir: std::path::PathBuf,
    /// The watchdog's metrics (Prometheus text format, for node_exporter's textfile
    /// collector): the signer listens on no metrics port.
    metrics: std::path::PathBuf,
    current: Mutex<HashMap<String, Arc<CurrentCrl>>>,
    /// One publication at a time (file, then store).
    publishing: Mutex<()>,
}

impl CrlCache {
    pub fn new(dir: std::path::PathBuf, metrics: std::path::PathBuf) -> Self {
        CrlCache {
            dir,
            metrics,
            current: Mutex::default(),
            publishing: Mutex::default(),
        }
    }

    fn file(&self, ca: &str) -> std::path::PathBuf {
        self.dir.join(format!("{ca}.crl"))
    }

    /// Write a CA's CRL file: a temporary file renamed over the old one. Not fsynced: the
    /// store's record (committed durably after this) vouches for the file by its hash, so
    /// a file a crash tore or lost is simply not served, and a new CRL (with a new number)
    /// is published at the next start. Durability of a CRL is its number's, in the store.
    fn write(&self, ca: &str, der: &[u8]) -> Result<()> {
        let io = |e: std::io::Error| {
            Error::Store(StoreError::File {
                what: format!("CRL file of {ca}"),
                source: e,
            })
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        replace_file(&self.file(ca), der).map_err(io)
    }
}

/// Replace a file by writing a temporary beside it and renaming it over the old one: a
/// reader sees the old file or the new one. On failure (a full disk) the temporary is
/// removed and the old file stays.
fn replace_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// The store's and the token's health, in the metrics file.
fn health_metrics(store: &crate::store::health::StoreStatus, token: &hsm::TokenHealth) -> String {
    let mut text = String::from(
        "# HELP castellan_store_up 0 while the store refuses writes after an I/O error (it is reopened automatically).\n\
         # TYPE castellan_store_up gauge\n\
         # HELP castellan_store_io_failures_total I/O failures that took the store down, since start.\n\
         # TYPE castellan_store_io_failures_total counter\n\
         # HELP castellan_store_reopens_total Times the store was reopened after an I/O failure, since start.\n\
         # TYPE castellan_store_reopens_total counter\n\
         # HELP castellan_token_up 0 while the PKCS#11 token is unreachable (removed, failed, or its login lost).\n\
         # TYPE castellan_token_up gauge\n\
         # HELP castellan_token_losses_total Times the token's sessions were lost, since start.\n\
         # TYPE castellan_token_losses_total counter\n\
         # HELP castellan_token_recoveries_total Times the token was found again and logged in, since start.\n\
         # TYPE castellan_token_recoveries_total counter\n",
    );
    for (name, value) in [
        ("store_up", u64::from(store.up)),
        ("store_io_failures_total", store.failures),
        ("store_reopens_total", store.reopens),
        ("token_up", u64::from(token.up)),
        ("token_losses_total", token.losses),
        ("token_recoveries_total", token.recoveries),
    ] {
        text.push_str(&format!("castellan_{name} {value}\n"));
    }
    text
}

/// Largest piece of a published object in one signing-socket reply (base64 and JSON keep
/// it under [`proto::wire::MAX_REPLY`]).
pub const CHUNK: usize = 2 * 1024 * 1024;

/// Most threads reading a CA's revoked list for its CRL.
const CRL_THREADS: usize = 4;

/// Largest CRL a SCEP GetCRL answers with (it travels inside one CertRep); larger ones
/// are fetched from the CRL distribution point.
const SCEP_CRL_MAX: usize = 128 * 1024;

/// CAs whose CRL must be re-published soon.
#[derive(Debug, Default)]
pub struct Dirty {
    cas: Mutex<HashSet<String>>,
    pub notify: tokio::sync::Notify,
}

impl Dirty {
    pub fn mark(&self, ca: &str) {
        self.cas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ca.to_owned());
        self.notify.notify_one();
    }
    pub fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.cas.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn crl_key(ca: &str) -> String {
    format!("crl:{ca}")
}

/// CRL timing, from `[crl]` in signer.toml (read by `app::config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CrlTiming {
    /// nextUpdate - thisUpdate.
    #[serde(default = "d_validity")]
    pub validity_secs: i64,
    /// A new CRL is published this long after the last one even without revocations.
    #[serde(default = "d_republish")]
    pub republish_secs: i64,
    /// Revocations within this window share one new CRL.
    #[serde(default = "d_coalesce")]
    pub coalesce_ms: u64,
    /// The watchdog alarms when a CRL is this close to its nextUpdate with no successor.
    #[serde(default = "d_warn_before")]
    pub warn_before_secs: i64,
}

fn d_validity() -> i64 {
    7 * 86400
}
fn d_republish() -> i64 {
    7 * 86400 / 2
}
fn d_coalesce() -> u64 {
    500
}
fn d_warn_before() -> i64 {
    86400
}

impl Default for CrlTiming {
    fn default() -> Self {
        CrlTiming {
            validity_secs: d_validity(),
            republish_secs: d_republish(),
            coalesce_ms: d_coalesce(),
            warn_before_secs: d_warn_before(),
        }
    }
}

/// The revocation service: revoking certificates, and building, signing, storing and
/// publishing CRLs.
#[derive(Debug)]
pub struct Revocation {
    store: Arc<Store>,
    keys: Arc<KeyRing>,
    timing: CrlTiming,
    dirty: Dirty,
    crls: CrlCache,
    public_url: String,
}

impl Revocation {
    pub fn new(
        store: Arc<Store>,
        keys: Arc<KeyRing>,
        timing: CrlTiming,
        crls: CrlCache,
        public_url: String,
    ) -> Self {
        Revocation {
            store,
            keys,
            timing,
            dirty: Dirty::default(),
            crls,
            public_url,
        }
    }

    /// The CAs whose CRL must be published again.
    pub fn dirty(&self) -> &Dirty {
        &self.dirty
    }
    pub fn timing(&self) -> CrlTiming {
        self.timing
    }

    /// Revoke a certificate this CA issued (RFC 5280 reasons; `removeFromCRL` lifts a hold).
    pub fn revoke_cert(
        &self,
        officer: &str,
        ca: &str,
        serial: &str,
        reason: crl::Reason,
    ) -> Result<CertRecord> {
        self.revoke_cert_with(officer, ca, serial, reason, |_, _| Ok(()))
    }

    /// [`Revocation::revoke_cert`], with more writes of the caller's in the same
    /// transaction (they see the certificate's record; an error from them undoes all).
    pub fn revoke_cert_with(
        &self,
        officer: &str,
        ca: &str,
        serial: &str,
        reason: crl::Reason,
        also: impl FnOnce(&mut crate::store::Tx, &CertRecord) -> Result<()>,
    ) -> Result<CertRecord> {
        let serial = proto::model::Serial::parse(serial)?.into_hex();
        let key = format!("{ca}\0{serial}");
        let ca_rec = self
            .store
            .ca(ca)?
            .ok_or_else(|| Error::NotFound(Missing::Ca(ca.to_owned())))?;
        let rec = self.store.write(|tx| {
            let mut rec: CertRecord = tx.get(Table::Certs, &key)?.ok_or_else(|| {
                Error::NotFound(Missing::Certificate {
                    ca: ca.to_owned(),
                    serial: serial.clone(),
                })
            })?;
            let row: Option<RevokedRow> = tx.get(Table::Revoked, &key)?;
            let on_hold = row
                .as_ref()
                .is_some_and(|r| r.reason.as_deref() == Some("certificateHold"));
            if reason == crl::Reason::RemoveFromCrl {
                if !on_hold {
                    return Err(Error::Conflict(Clash::NotOnHold(serial.clone())));
                }
                delete_revoked(tx, &key)?;
                rec.revoked_at = None;
                tx.put(Table::Certs, &key, &rec)?;
                crate::store::indexes::index_unrevoked(tx, &rec)?;
                tx.record(Note::new(officer, "unhold", format!("{ca} {serial}")).ca(ca))?;
                return Ok(rec);
            }
            if row.is_some() && !(on_hold && reason != crl::Reason::CertificateHold) {
                return Err(Error::Conflict(Clash::AlreadyRevoked {
                    serial: serial.clone(),
                    ca: ca.to_owned(),
                }));
            }
            let now = crate::now();
            let revoked_at = row.as_ref().map_or(now, |r| r.revoked_at);
            rec.revoked_at = Some(revoked_at);
            tx.put(Table::Certs, &key, &rec)?;
            if row.is_none() {
                crate::store::indexes::index_revoked(tx, &rec)?;
            }
            put_revoked(
                tx,
                &key,
                &RevokedRow {
                    revoked_at,
                    reason: Some(reason.to_string()),
                    not_after: rec.not_after,
                },
            )?;
            tx.record(Note::new(officer, "revoke", format!("{ca} {serial} {reason}")).ca(ca))?;
            also(tx, &rec)?;
            Ok(rec)
        })?;
        tracing::info!(ca, serial = %rec.serial, %reason, %officer, "certificate revoked");
        self.dirty.mark(ca_rec.spec.name.as_str());
        Ok(rec)
    }

    /// Put a revoked CA's certificate on its parent's CRL (called when a CA revocation executes).
    pub(crate) fn revoke_ca_cert(
        &self,
        tx: &mut crate::store::Tx,
        ca: &CaRecord,
        parent: &str,
        reason: crl::Reason,
    ) -> Result<()> {
        let cert = Certificate::from_der(ca.cert.as_deref().unwrap_or_default())?;
        let serial = hex::encode(cert.tbs_certificate().serial_number().as_bytes());
        let (_, not_after) = crate::issuance::x509::cert_window(&cert);
        put_revoked(
            tx,
            &format!("{parent}\0{serial}"),
            &RevokedRow {
                revoked_at: crate::now(),
                reason: Some(reason.to_string()),
                not_after,
            },
        )
    }

    /// What is known of a CA's current CRL, if one was published.
    pub fn crl_state(&self, ca: &str) -> Result<Option<CrlState>> {
        self.store.meta(&crl_key(ca))
    }

    /// A CA's current CRL with its DER: from memory, else from the store. None if none was
    /// published (or an older version left no DER: it is then due).
    pub fn current_crl(&self, ca: &str) -> Result<Option<Arc<CurrentCrl>>> {
        let cache = &self.crls;
        if let Some(c) = cache
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ca)
        {
            return Ok(Some(c.clone()));
        }
        let Some(state) = self.crl_state(ca)? else {
            return Ok(None);
        };
        let der = match std::fs::read(cache.file(ca)) {
            Ok(der) => der,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Store(StoreError::File {
                    what: format!("CRL file of {ca}"),
                    source: e,
                }));
            }
        };
        if hex::encode(sha2::Sha256::digest(&der)) != state.sha256 {
            tracing::warn!(
                ca,
                number = state.number,
                "the CRL file does not match the store: publishing a new CRL"
            );
            return Ok(None);
        }
        Ok(Some(self.cache_crl(ca, state, der)))
    }

    fn cache_crl(&self, ca: &str, state: CrlState, der: Vec<u8>) -> Arc<CurrentCrl> {
        let current = Arc::new(CurrentCrl {
            etag: format!("\"{ca}-{}-{}\"", state.number, state.this_update),
            state,
            der,
        });
        let mut cache = self.crls.current.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(ca) {
            // Never replace a newer CRL with an older one.
            Some(c) if c.state.number > current.state.number => c.clone(),
            _ => {
                cache.insert(ca.to_owned(), current.clone());
                current
            }
        }
    }

    /// The CRL for a SCEP GetCRL: the current one, if it fits in a CertRep.
    pub fn crl_for_scep(&self, ca: &str) -> std::result::Result<Vec<u8>, String> {
        match self.current_crl(ca) {
            Ok(Some(c)) if c.der.len() <= SCEP_CRL_MAX => Ok(c.der.clone()),
            Ok(Some(c)) => Err(format!(
                "the CRL ({} bytes) is too large for GetCRL: fetch it from its distribution \
                 point, {}/crl/{ca}.crl",
                c.der.len(),
                self.public_url.clone()
            )),
            Ok(None) => Err("no CRL has been published yet".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Build, sign (in the HSM) and store a new CRL for a CA. The revoked list is read in
    /// one snapshot and encoded as it is read.
    pub fn publish_crl(&self, ca_name: &str) -> Result<CrlState> {
        let ca = self
            .store
            .ca(ca_name)?
            .ok_or_else(|| Error::NotFound(Missing::Ca(ca_name.to_owned())))?;
        let cert = Certificate::from_der(
            ca.cert
                .as_deref()
                .ok_or_else(|| Error::Conflict(Clash::NoCertificateYet(ca_name.to_owned())))?,
        )?;
        let _one_at_a_time = self
            .crls
            .publishing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let timing = self.timing;
        let now = crate::now();
        let prev = self.crl_state(ca_name)?;
        let number = prev.as_ref().map_or(1, |p| p.number + 1);
        let signer = self.keys.ca_signer(&ca)?;
        let info = crl::Info {
            issuer: cert.tbs_certificate().subject().clone(),
            authority_key_id: crate::issuance::x509::ca_key_id(&cert),
            number,
            this_update: now,
            next_update: now + timing.validity_secs,
            signature: hsm::signature_algorithm(signer.spec(), signer.hash())?,
        };
        let encoding = |e: crl::Error| Error::Encoding(crate::error::EncodeError::Crl(e));
        let mut writer =
            crl::CrlWriter::new(info, prev.as_ref().map_or(0, |p| p.entries)).map_err(encoding)?;
        let prefix = format!("{ca_name}\0");
        let started = std::time::Instant::now();
        // The revoked list is read from one snapshot by up to [`CRL_THREADS`] threads, each
        // over a range of (random, so evenly spread) serials, and their entries are
        // appended in key order.
        let reader = self.store.reader()?;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, CRL_THREADS);
        let bounds = match reader.key_bounds(Table::CrlEntries, &prefix)? {
            Some((first, last)) if threads > 1 => split_serials(&prefix, &first, &last, threads),
            _ => vec![prefix.clone(), String::new()],
        };
        let expected = prev.as_ref().map_or(0, |p| p.entries) / (bounds.len() - 1);
        let mut parts: Vec<crl::Entries> =
            (2..bounds.len()).map(|_| writer.part(expected)).collect();
        let fill = |entries: &mut crl::Entries, from: &str, to: &str| -> Result<()> {
            reader.visit(Table::CrlEntries, from, |key, value| {
                if !to.is_empty() && key >= to {
                    return Ok(false);
                }
                if !key.starts_with(prefix.as_str()) {
                    return Ok(false);
                }
                let (not_after, der) = value.split_first_chunk::<8>().ok_or_else(|| {
                    Error::Store(StoreError::BadRow {
                        what: "CRL entry",
                        key: key.to_owned(),
                    })
                })?;
                if i64::from_be_bytes(*not_after) < now {
                    return Ok(true); // expired: may leave the CRL (RFC 5280 §3.3)
                }
                entries.push_encoded(der).map_err(|e| {
                    Error::Store(StoreError::CrlEntry {
                        key: key.to_owned(),
                        source: e,
                    })
                })?;
                Ok(true)
            })
        };
        std::thread::scope(|scope| -> Result<()> {
            let handles: Vec<_> = parts
                .iter_mut()
                .enumerate()
                .map(|(i, part)| {
                    let (from, to) = (&bounds[i + 1], &bounds[i + 2]);
                    scope.spawn(move || fill(part, from, to))
                })
                .collect();
            let first = writer.first_part(|entries| fill(entries, &bounds[0], &bounds[1]));
            for h in handles {
                h.join()
                    .map_err(|_| Error::Store(StoreError::CrlReader))??;
            }
            first
        })?;
        drop(reader);
        for part in parts {
            writer.append(part);
        }
        let count = writer.count();
        let tbs = writer.finish().map_err(encoding)?;
        let built = started.elapsed();
        let sig = signer
            .hsm()
            .sign(signer.spec(), signer.hash(), signer.key_id(), tbs.der())?;
        let der = tbs.assemble(&sig).map_err(encoding)?;
        let signed = started.elapsed();
        let state = CrlState {
            number,
            this_update: now,
            next_update: now + timing.validity_secs,
            entries: count,
            sha256: hex::encode(sha2::Sha256::digest(&der)),
        };
        // The file first, then the store: a crash in between leaves a file the store does
        // not vouch for, which is never served (see [`CrlState`]).
        self.crls.write(ca_name, &der)?;
        self.store.write(|tx| {
            // The number only ever grows, even if two publications race.
            let current: Option<CrlState> = crate::store::Tx::meta(tx, &crl_key(ca_name))?;
            if current.as_ref().is_some_and(|c| c.number >= state.number) {
                return Err(Error::Conflict(Clash::NewerCrl));
            }
            tx.put_meta(&crl_key(ca_name), &state)
        })?;
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        tracing::info!(
            ca = ca_name,
            number,
            entries = count,
            bytes = der.len(),
            build_ms = ms(built),
            sign_ms = ms(signed - built),
            store_ms = ms(started.elapsed() - signed),
            "CRL published"
        );
        self.cache_crl(ca_name, state.clone(), der);
        Ok(state)
    }

    /// CAs whose CRL is missing, marked dirty, or due for re-publication; logs overdue ones.
    pub fn crls_due(&self, dirty: &HashSet<String>) -> Result<Vec<String>> {
        let timing = self.timing;
        let now = crate::now();
        let mut due = Vec::new();
        for ca in self.store.cas()? {
            if ca.cert.is_none() || ca.status == CaStatus::SigningRequired {
                continue;
            }
            let name = ca.spec.name.to_string();
            let state = self.crl_state(&name)?;
            if dirty.contains(&name)
                || state.is_none_or(|s| now >= s.this_update + timing.republish_secs)
                // No usable CRL file (missing, unreadable, or not the one the store vouches for).
                || !matches!(self.current_crl(&name), Ok(Some(_)))
            {
                due.push(name);
            }
        }
        Ok(due)
    }

    /// The watchdog, after each round of publication: an error in the log for every CA whose
    /// CRL is within `warn-before-secs` of its nextUpdate (no successor was published), and
    /// the metrics file rewritten. Returns the CAs alarmed about and when the watchdog must
    /// look again: the earliest time (Unix seconds) at which a CRL crosses its warning
    /// threshold or falls due for re-publication, so the publisher wakes exactly then
    /// instead of on a fixed tick.
    pub fn crl_watchdog(&self) -> Result<Watch> {
        // The store's and the token's health are written even when the store cannot be read.
        let crls = self.crl_metrics();
        let mut text = health_metrics(&self.store.status(), &self.keys.store().health());
        let watch = crls.map(|(crl_text, watch)| {
            text.push_str(&crl_text);
            watch
        });
        let path = &self.crls.metrics;
        replace_file(path, text.as_bytes()).map_err(|e| {
            Error::Store(StoreError::File {
                what: format!("metrics file {}", path.display()),
                source: e,
            })
        })?;
        watch
    }

    fn crl_metrics(&self) -> Result<(String, Watch)> {
        let timing = self.timing;
        let now = crate::now();
        let mut alarms = Vec::new();
        let mut next_check: Option<i64> = None;
        let mut text = String::from(
            "# HELP castellan_crl_next_update_seconds nextUpdate of the CA's current CRL (Unix time).\n\
             # TYPE castellan_crl_next_update_seconds gauge\n\
             # HELP castellan_crl_this_update_seconds thisUpdate of the CA's current CRL (Unix time).\n\
             # TYPE castellan_crl_this_update_seconds gauge\n\
             # HELP castellan_crl_number CRL number of the CA's current CRL.\n\
             # TYPE castellan_crl_number gauge\n\
             # HELP castellan_crl_entries Revoked entries in the CA's current CRL.\n\
             # TYPE castellan_crl_entries gauge\n\
             # HELP castellan_crl_stale 1 if the CA's CRL is within warn-before-secs of nextUpdate (or missing) with no successor.\n\
             # TYPE castellan_crl_stale gauge\n",
        );
        for ca in self.store.cas()? {
            if ca.cert.is_none() || ca.status == CaStatus::SigningRequired {
                continue;
            }
            let name = ca.spec.name.to_string();
            let state = self.crl_state(&name)?;
            let stale = state
                .as_ref()
                .is_none_or(|s| now >= s.next_update - timing.warn_before_secs);
            if let Some(s) = &state {
                let warn_at = s.next_update - timing.warn_before_secs;
                let due_at = s.this_update + timing.republish_secs;
                for t in [warn_at, due_at] {
                    if t > now {
                        next_check = Some(next_check.map_or(t, |n| n.min(t)));
                    }
                }
            }
            if stale {
                tracing::error!(
                    ca = %name,
                    next_update = state.as_ref().map(|s| s.next_update),
                    "CRL watchdog: the CRL is missing or within {} s of its nextUpdate and no \
                     successor was published",
                    timing.warn_before_secs
                );
                alarms.push(name.clone());
            }
            if let Some(s) = &state {
                for (metric, value) in [
                    ("next_update_seconds", s.next_update),
                    ("this_update_seconds", s.this_update),
                    ("number", s.number as i64),
                    ("entries", s.entries as i64),
                ] {
                    text.push_str(&format!(
                        "castellan_crl_{metric}{{ca=\"{name}\"}} {value}\n"
                    ));
                }
            }
            text.push_str(&format!(
                "castellan_crl_stale{{ca=\"{name}\"}} {}\n",
                u8::from(stale)
            ));
        }
        Ok((text, Watch { alarms, next_check }))
    }

    /// `/crl/<ca>.crl` for the edge, in pieces of at most [`CHUNK`] bytes from `offset`.
    /// `NotModified` if the edge's copy (`etag`) is current; a 409 if it asks for a piece
    /// of a CRL that has been replaced meanwhile (it starts again).
    pub fn published_crl(&self, ca: &str, etag: Option<&str>, offset: u64) -> proto::wire::Reply {
        use proto::wire::{Refusal, Reply};
        match self.current_crl(ca) {
            Ok(Some(c)) => piece(
                &c.der,
                &c.etag,
                c.state.this_update,
                Some(c.state.next_update),
                etag,
                offset,
            ),
            Ok(None) => Reply::Refused {
                reason: Refusal::NotFound,
                message: format!("no CRL for {ca:?}"),
            },
            Err(e) => Reply::Refused {
                reason: Refusal::Internal,
                message: e.to_string(),
            },
        }
    }

    /// `/aia/<ca>.crt` for the edge.
    pub fn published_ca_cert(
        &self,
        ca: &str,
        etag: Option<&str>,
        offset: u64,
    ) -> proto::wire::Reply {
        use proto::wire::{Refusal, Reply};
        match self.store.ca(ca) {
            Ok(Some(CaRecord {
                cert: Some(der),
                created_at,
                ..
            })) => piece(
                &der,
                &format!("\"{}\"", &hex::encode(sha2::Sha256::digest(&der))[..32]),
                created_at,
                None,
                etag,
                offset,
            ),
            Ok(_) => Reply::Refused {
                reason: Refusal::NotFound,
                message: format!("no CA certificate {ca:?}"),
            },
            Err(e) => Reply::Refused {
                reason: Refusal::Internal,
                message: e.to_string(),
            },
        }
    }
}

/// `parts + 1` bounds splitting the keys `PREFIX` + hex serial between `first` and `last`
/// into `parts` ranges of about equal width (by the serials' first 8 hex digits): the first
/// bound is the prefix, the last is empty (no end), each range is `[bounds[i], bounds[i+1])`.
fn split_serials(prefix: &str, first: &str, last: &str, parts: usize) -> Vec<String> {
    let head = |key: &str| -> u64 {
        let hex = key.strip_prefix(prefix).unwrap_or("");
        let digits: String = hex.chars().chain(std::iter::repeat('0')).take(8).collect();
        u64::from_str_radix(&digits, 16).unwrap_or(0)
    };
    let (lo, hi) = (head(first), head(last));
    let mut bounds = vec![prefix.to_owned()];
    if hi <= lo {
        bounds.push(String::new());
        return bounds;
    }
    for i in 1..parts as u64 {
        let at = lo + (hi.saturating_sub(lo)) * i / parts as u64;
        let bound = format!("{prefix}{at:08x}");
        if bounds.last().is_some_and(|b| *b < bound) {
            bounds.push(bound);
        }
    }
    bounds.push(String::new());
    bounds
}

/// One piece of a published object for the edge (see [`Signer::published_crl`]).
fn piece(
    der: &[u8],
    current: &str,
    issued_at: i64,
    next_update: Option<i64>,
    known: Option<&str>,
    offset: u64,
) -> proto::wire::Reply {
    use proto::wire::{Refusal, Reply};
    if offset == 0 && known == Some(current) {
        return Reply::NotModified {
            etag: current.to_owned(),
        };
    }
    if offset > 0 && known != Some(current) {
        return Reply::Refused {
            reason: Refusal::Changed,
            message: "the publication changed: fetch it again from the start".into(),
        };
    }
    let Some(rest) = usize::try_from(offset).ok().and_then(|o| der.get(o..)) else {
        return Reply::Refused {
            reason: Refusal::OutOfRange,
            message: format!("offset {offset} is past the end ({} bytes)", der.len()),
        };
    };
    Reply::Published {
        der: rest[..rest.len().min(CHUNK)].to_vec(),
        issued_at,
        next_update,
        etag: current.to_owned(),
        offset,
        total: Some(der.len() as u64),
    }
}

/// How long to sleep until `at` (Unix seconds; the threshold is crossed at the start of that
/// second), at most `cap`; zero if `at` has passed.
pub fn until(at: Option<i64>, cap: std::time::Duration) -> std::time::Duration {
    let Some(at) = at else { return cap };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let target = std::time::Duration::from_secs(u64::try_from(at).unwrap_or(0));
    target.saturating_sub(now).min(cap)
}

/// What one watchdog round found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The CAs alarmed about (CRL missing or within `warn-before-secs` of nextUpdate).
    pub alarms: Vec<String>,
    /// The next time (Unix seconds) a CRL crosses its warning threshold or falls due for
    /// re-publication; `None` if no CRL will.
    pub next_check: Option<i64>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::indexes::{crl_entry, ensure_crl_entries};

    #[test]
    fn the_watchdog_sleeps_until_the_next_threshold_and_no_longer_than_the_cap() {
        use std::time::Duration;
        let cap = Duration::from_secs(30);
        assert_eq!(until(None, cap), cap);
        assert_eq!(until(Some(0), cap), Duration::ZERO);
        let soon = until(Some(crate::now() + 2), cap);
        assert!(
            soon > Duration::from_secs(1) && soon <= Duration::from_secs(2),
            "{soon:?}"
        );
        assert_eq!(until(Some(crate::now() + 3600), cap), cap);
    }

    #[test]
    fn published_objects_go_out_in_pieces_and_unchanged_ones_not_at_all() {
        use proto::wire::{Refusal, Reply};
        let der: Vec<u8> = (0..(2 * CHUNK + 10)).map(|i| i as u8).collect();
        let get =
            |known: Option<&str>, offset: u64| piece(&der, "\"e1\"", 5, Some(9), known, offset);
        let mut got = Vec::new();
        let mut known = None;
        loop {
            match get(known.as_deref(), got.len() as u64) {
                Reply::Published {
                    der: part,
                    etag,
                    total,
                    offset,
                    ..
                } => {
                    assert_eq!(offset, got.len() as u64);
                    assert_eq!(total, Some(der.len() as u64));
                    assert!(part.len() <= CHUNK && !part.is_empty());
                    got.extend(part);
                    known = Some(etag);
                    if got.len() == der.len() {
                        break;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, der);
        assert!(matches!(get(Some("\"e1\""), 0), Reply::NotModified { .. }));
        assert!(matches!(get(Some("\"e0\""), 0), Reply::Published { .. }));
        // A piece of a replaced object, or past the end, is refused.
        assert!(matches!(
            get(Some("\"e0\""), 10),
            Reply::Refused {
                reason: Refusal::Changed,
                ..
            }
        ));
        assert!(matches!(
            get(None, 10),
            Reply::Refused {
                reason: Refusal::Changed,
                ..
            }
        ));
        assert!(matches!(
            get(Some("\"e1\""), der.len() as u64 + 1),
            Reply::Refused {
                reason: Refusal::OutOfRange,
                ..
            }
        ));
    }

    #[test]
    fn serial_ranges_split_the_keys_evenly_and_in_order() {
        let b = split_serials("ca/", "ca/4000aa", "ca/7fffff00", 2);
        assert_eq!(b.len(), 3);
        assert!(
            b[1].as_str() > "ca/4000aa" && b[1].as_str() < "ca/7fffff00",
            "{b:?}"
        );
        assert_eq!(b[1], "ca/60005480");
        let b = split_serials("ca/", "ca/40", "ca/7f", 4);
        assert_eq!(b.len(), 5);
        assert!(b[1..4].windows(2).all(|w| w[0] < w[1]));
        // One key, or keys too close to split: one range.
        assert_eq!(split_serials("ca/", "ca/4a", "ca/4a", 4), vec!["ca/", ""]);
    }

    #[test]
    fn crl_entries_follow_the_revoked_rows_and_older_stores_get_them_once() {
        use crate::store::Store;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("s.redb")).unwrap();
        let key = |serial: &str| format!("ca\0{serial}");
        let row = |reason: Option<&str>| RevokedRow {
            revoked_at: 1_800_000_000,
            reason: reason.map(str::to_owned),
            not_after: 1_900_000_000,
        };
        // An older store: revoked rows only.
        store
            .write(|tx| {
                tx.put(Table::Revoked, &key("4a01"), &row(Some("keyCompromise")))?;
                tx.put(Table::Revoked, &key("4a02"), &row(None))
            })
            .unwrap();
        ensure_crl_entries(&store).unwrap();
        let entries = |store: &Store| {
            let mut out = Vec::new();
            store
                .reader()
                .unwrap()
                .visit(Table::CrlEntries, "", |k, v| {
                    out.push((k.to_owned(), v.to_vec()));
                    Ok(true)
                })
                .unwrap();
            out
        };
        let built = entries(&store);
        assert_eq!(built.len(), 2);
        assert_eq!(
            built[0].1,
            crl_entry(&key("4a01"), &row(Some("keyCompromise"))).unwrap()
        );
        assert_eq!(&built[1].1[..8], &1_900_000_000i64.to_be_bytes());
        // Written and removed together from now on; the build runs once.
        store
            .write(|tx| {
                put_revoked(tx, &key("4a03"), &row(Some("superseded")))?;
                delete_revoked(tx, &key("4a01"))
            })
            .unwrap();
        ensure_crl_entries(&store).unwrap();
        let keys: Vec<String> = entries(&store).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![key("4a02"), key("4a03")]);
        assert!(
            store
                .get::<RevokedRow>(Table::Revoked, &key("4a01"))
                .unwrap()
                .is_none()
        );
    }
}
