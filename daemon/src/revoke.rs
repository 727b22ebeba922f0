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

use std::collections::HashSet;
use std::sync::Mutex;

use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use x509_cert::Certificate;

use crate::enroll::CertRecord;
use crate::model::{CaRecord, CaStatus};
use crate::signer::Signer;
use crate::store::Table;
use crate::{Error, Result};

/// A row of a CA's revoked list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRow {
    pub revoked_at: i64,
    /// RFC 5280 reason name; None: no reasonCode.
    pub reason: Option<String>,
    /// The certificate's notAfter: the row leaves the CRL after it.
    pub not_after: i64,
}

/// The current CRL of a CA (meta key `crl:CA`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlState {
    pub number: u64,
    pub this_update: i64,
    pub next_update: i64,
    pub entries: usize,
    #[serde(with = "crate::b64")]
    pub der: Vec<u8>,
}

/// CRL timing, from `[crl]` in signer.toml.
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

impl Default for CrlTiming {
    fn default() -> Self {
        CrlTiming {
            validity_secs: d_validity(),
            republish_secs: d_republish(),
            coalesce_ms: d_coalesce(),
        }
    }
}

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

/// Normalise a serial given by an operator: hex, optional colons, leading zeros as encoded.
pub fn parse_serial(s: &str) -> Result<String> {
    let hexs: String = s
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hexs.is_empty() || hexs.len() > 42 || !hexs.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid(format!(
            "serial {s:?} must be hex (as `openssl x509 -serial` prints it)"
        )));
    }
    let bytes = hex::decode(if hexs.len() % 2 == 1 {
        format!("0{hexs}")
    } else {
        hexs
    })
    .map_err(|_| Error::Invalid(format!("serial {s:?} is not hex")))?;
    // The stored form is the DER content octets: strip extra leading zeros, keep one if the top bit is set.
    let mut b: &[u8] = &bytes;
    while b.len() > 1 && b[0] == 0 && b[1] & 0x80 == 0 {
        b = &b[1..];
    }
    let b = if b.first().is_some_and(|x| x & 0x80 != 0) {
        [&[0u8][..], b].concat()
    } else {
        b.to_vec()
    };
    Ok(hex::encode(b))
}

impl Signer {
    /// Revoke a certificate this CA issued (RFC 5280 reasons; `removeFromCRL` lifts a hold).
    pub fn revoke_cert(
        &self,
        officer: &str,
        ca: &str,
        serial: &str,
        reason: crl::Reason,
    ) -> Result<CertRecord> {
        let serial = parse_serial(serial)?;
        let key = format!("{ca}\0{serial}");
        let ca_rec = self
            .store()
            .ca(ca)?
            .ok_or_else(|| Error::NotFound(format!("no CA named {ca:?}")))?;
        let rec = self.store().write(|tx| {
            let mut rec: CertRecord = tx.get(Table::Certs, &key)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "CA {ca} issued no certificate with serial {serial}"
                ))
            })?;
            let row: Option<RevokedRow> = tx.get(Table::Revoked, &key)?;
            let on_hold = row
                .as_ref()
                .is_some_and(|r| r.reason.as_deref() == Some("certificateHold"));
            if reason == crl::Reason::RemoveFromCrl {
                if !on_hold {
                    return Err(Error::Conflict(format!(
                        "{serial} is not on hold: removeFromCRL only lifts a certificateHold"
                    )));
                }
                tx.delete(Table::Revoked, &key)?;
                rec.revoked_at = None;
                tx.put(Table::Certs, &key, &rec)?;
                crate::report::index_unrevoked(tx, &rec)?;
                tx.audit(officer, "unhold", format!("{ca} {serial}"))?;
                return Ok(rec);
            }
            if row.is_some() && !(on_hold && reason != crl::Reason::CertificateHold) {
                return Err(Error::Conflict(format!(
                    "{serial} of CA {ca} is already revoked"
                )));
            }
            let now = crate::now();
            let revoked_at = row.as_ref().map_or(now, |r| r.revoked_at);
            rec.revoked_at = Some(revoked_at);
            tx.put(Table::Certs, &key, &rec)?;
            if row.is_none() {
                crate::report::index_revoked(tx, &rec)?;
            }
            tx.put(
                Table::Revoked,
                &key,
                &RevokedRow {
                    revoked_at,
                    reason: Some(reason.to_string()),
                    not_after: rec.not_after,
                },
            )?;
            tx.audit(officer, "revoke", format!("{ca} {serial} {reason}"))?;
            Ok(rec)
        })?;
        tracing::info!(ca, serial = %rec.serial, %reason, %officer, "certificate revoked");
        self.ocsp_forget(ca, &rec.serial);
        self.crl_dirty().mark(ca_rec.spec.name.as_str());
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
        let (_, not_after) = crate::x509::cert_window(&cert);
        tx.put(
            Table::Revoked,
            &format!("{parent}\0{serial}"),
            &RevokedRow {
                revoked_at: crate::now(),
                reason: Some(reason.to_string()),
                not_after,
            },
        )
    }

    /// The CRL state of a CA, if one was published.
    pub fn crl_state(&self, ca: &str) -> Result<Option<CrlState>> {
        self.store().meta(&crl_key(ca))
    }

    /// Build, sign (in the HSM) and store a new CRL for a CA.
    pub fn publish_crl(&self, ca_name: &str) -> Result<CrlState> {
        let ca = self
            .store()
            .ca(ca_name)?
            .ok_or_else(|| Error::NotFound(format!("no CA named {ca_name:?}")))?;
        let cert = Certificate::from_der(
            ca.cert
                .as_deref()
                .ok_or_else(|| Error::Conflict(format!("CA {ca_name} has no certificate yet")))?,
        )?;
        let timing = self.crl_timing();
        let now = crate::now();
        let prev = self.crl_state(ca_name)?;
        let number = prev.as_ref().map_or(1, |p| p.number + 1);
        let mut entries = Vec::new();
        let mut after: Option<String> = None;
        let prefix = format!("{ca_name}\0");
        loop {
            let page = self.store().scan::<RevokedRow>(
                Table::Revoked,
                &prefix,
                after.as_deref(),
                10_000,
            )?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (k, row) in page {
                if row.not_after < now {
                    continue; // expired: may leave the CRL (RFC 5280 §3.3)
                }
                let serial =
                    hex::decode(&k[prefix.len()..]).map_err(|e| Error::Store(e.to_string()))?;
                entries.push(crl::Entry {
                    serial,
                    revoked_at: row.revoked_at,
                    reason: row.reason.as_deref().and_then(|r| r.parse().ok()),
                });
            }
        }
        let signer = self.ca_signer(&ca)?;
        let info = crl::Info {
            issuer: cert.tbs_certificate().subject().clone(),
            authority_key_id: crate::x509::cert_ski(&cert).unwrap_or_else(|| {
                crate::x509::key_identifier(cert.tbs_certificate().subject_public_key_info())
            }),
            number,
            this_update: now,
            next_update: now + timing.validity_secs,
            signature: hsm::signature_algorithm(signer.spec(), signer.hash())?,
        };
        let count = entries.len();
        let tbs = crl::tbs(&info, entries).map_err(|e| Error::Encoding(e.to_string()))?;
        let tbs_der = tbs.to_der()?;
        let sig = signer
            .hsm()
            .sign(signer.spec(), signer.hash(), signer.key_id(), &tbs_der)?;
        let der = crl::assemble(tbs, &sig).map_err(|e| Error::Encoding(e.to_string()))?;
        let state = CrlState {
            number,
            this_update: now,
            next_update: now + timing.validity_secs,
            entries: count,
            der,
        };
        self.store().write(|tx| {
            // The number only ever grows, even if two publications race.
            let current: Option<CrlState> = crate::store::Tx::meta(tx, &crl_key(ca_name))?;
            if current.as_ref().is_some_and(|c| c.number >= state.number) {
                return Err(Error::Conflict(
                    "a newer CRL was published meanwhile".into(),
                ));
            }
            tx.put_meta(&crl_key(ca_name), &state)
        })?;
        tracing::info!(ca = ca_name, number, entries = count, "CRL published");
        Ok(state)
    }

    /// CAs whose CRL is missing, marked dirty, or due for re-publication; logs overdue ones.
    pub fn crls_due(&self, dirty: &HashSet<String>) -> Result<Vec<String>> {
        let timing = self.crl_timing();
        let now = crate::now();
        let mut due = Vec::new();
        for ca in self.store().cas()? {
            if ca.cert.is_none() || ca.status == CaStatus::SigningRequired {
                continue;
            }
            let name = ca.spec.name.to_string();
            let state = self.crl_state(&name)?;
            if let Some(s) = &state
                && now >= s.next_update - 86400
            {
                tracing::error!(ca = %name, next_update = s.next_update, "CRL is within a day of its nextUpdate without a successor");
            }
            if dirty.contains(&name)
                || state.is_none_or(|s| now >= s.this_update + timing.republish_secs)
            {
                due.push(name);
            }
        }
        Ok(due)
    }

    /// `/crl/<ca>.crl` for the edge.
    pub fn published_crl(&self, ca: &str) -> scep::wire::Reply {
        use scep::wire::Reply;
        match self.crl_state(ca) {
            Ok(Some(s)) => Reply::Published {
                der: s.der,
                issued_at: s.this_update,
                next_update: Some(s.next_update),
                etag: format!("\"{ca}-{}\"", s.number),
            },
            Ok(None) => Reply::Refused {
                status: 404,
                message: format!("no CRL for {ca:?}"),
            },
            Err(e) => Reply::Refused {
                status: 500,
                message: e.to_string(),
            },
        }
    }

    /// `/aia/<ca>.crt` for the edge.
    pub fn published_ca_cert(&self, ca: &str) -> scep::wire::Reply {
        use scep::wire::Reply;
        match self.store().ca(ca) {
            Ok(Some(CaRecord {
                cert: Some(der),
                created_at,
                ..
            })) => Reply::Published {
                etag: format!("\"{}\"", &hex::encode(sha2::Sha256::digest(&der))[..32]),
                der,
                issued_at: created_at,
                next_update: None,
            },
            Ok(_) => Reply::Refused {
                status: 404,
                message: format!("no CA certificate {ca:?}"),
            },
            Err(e) => Reply::Refused {
                status: 500,
                message: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_normalised_like_the_store_keeps_them() {
        assert_eq!(parse_serial("7C:B5:66").unwrap(), "7cb566");
        assert!(parse_serial("0x").is_err());
        assert_eq!(parse_serial("00ff").unwrap(), "00ff");
        assert_eq!(parse_serial("ff").unwrap(), "00ff");
        assert_eq!(parse_serial("00007f").unwrap(), "7f");
        assert!(parse_serial("zz").is_err());
    }
}
