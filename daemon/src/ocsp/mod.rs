//! The OCSP responder (RFC 6960) in the signer: `Op::Ocsp` from the edge's `/ocsp`.
//!
//! Every CA with a certificate (roots included) answers through a delegated responder
//! (RFC 6960 §4.2.2.2): an EC P-256 key in the token (label `castellan-ocsp:CA`) and a
//! certificate from the CA with id-kp-OCSPSigning, id-pkix-ocsp-nocheck and
//! digitalSignature, valid for min(90 days, the CA's end). It is made the first time a
//! request names the CA and re-certified (same key) when fewer than 30 days remain.
//!
//! Answering one request, step by step (the answer is always an OCSPResponse):
//! 1. parse and check it again ([`proto::ocsp::parse_request`]): at most 16 KiB,
//!    DER, 1 to 16 CertIDs hashed with SHA-1 or SHA-256, a nonce of at most 64 octets;
//!    else `malformedRequest`;
//! 2. find each CertID's CA by issuerNameHash and issuerKeyHash (the hashes of every CA
//!    certificate are kept in memory, rebuilt from the store on a miss). No CertID names
//!    one of our CAs → `unauthorized` (RFC 6960 §2.3, what `openssl ocsp` expects). The
//!    first CA named answers; CertIDs of another CA are `unknown` to its responder;
//! 3. one CertID and no nonce: a response this CA signed in the last 10 minutes for this
//!    serial is returned as is, without HSM work, if the CA's status and the serial's
//!    Revoked row are still what it was signed from;
//! 4. the status of each serial: its row in Revoked (revoked, with time and reason),
//!    else its row in Certs (good, even after notAfter: the record decides), else a
//!    certificate the CA issued to a sub-CA, its SCEP RA or its responder (good), else
//!    `unknown`. Every known certificate of a revoked CA is revoked, at the CA's
//!    revocation time (reason cACompromise for a key compromise, else the CA's reason),
//!    unless it was revoked earlier on its own;
//! 5. sign ResponseData (responderID byKey, producedAt = thisUpdate = now, nextUpdate =
//!    now + 1 hour, the nonce echoed) with the responder key in the HSM, and include the
//!    responder certificate. A single good or revoked answer without nonce is kept for
//!    step 3. HSM failures answer `tryLater`, other failures `internalError`.
//!
//! The in-memory state (issuer hashes, pre-signed responses) belongs to the [`Ocsp`]
//! service, one per signer. Entries are checked against the store before use (CA key id,
//! CA status, the serial's Revoked row), so a stale entry is never served; the engine's
//! `revoke_cert` also drops the revoked serial's entries at once ([`Ocsp::forget`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der::{Decode, Encode};
use hsm::{HashAlg, KeyId, KeySpec, KeyUse};
use proto::ocsp::{
    self as asn1, BasicOcspResponse, CertId, CertIdHash, CertStatus, OcspResponse, ResponderId,
    ResponseData, ResponseStatus, RevokedInfo, SingleResponse,
};
use proto::wire::Reply;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{CrlReason, ExtendedKeyUsage, KeyUsages};

use crate::issuance::x509::{self, Profile};
use crate::keys::KeyRing;
use crate::store::rows::RevokedRow;
use crate::store::rows::{CaRecord, RaRecord};
use crate::store::{Store, Table};
use crate::{Error, Result};
use proto::model::CaStatus;

/// How long a pre-signed response is served from memory.
pub const PRESIGNED_SECS: i64 = 600;
/// nextUpdate − thisUpdate.
pub const VALIDITY_SECS: i64 = 3600;
/// Longest life of a responder certificate.
pub const RESPONDER_SECS: i64 = 90 * 86400;
/// A responder certificate is renewed when fewer than this many seconds remain.
pub const RENEW_SECS: i64 = 30 * 86400;
/// Most pre-signed responses kept (about 1.5 KB each).
const MAX_PRESIGNED: usize = 20_000;
/// The responder key: EC P-256, ECDSA with SHA-256.
const KEY: KeySpec = KeySpec::EcP256;
const HASH: HashAlg = HashAlg::Sha256;

/// An answer, and whether HTTP caches may keep it.
#[derive(Debug)]
struct Answer {
    der: Vec<u8>,
    /// (producedAt, nextUpdate) of a successful answer without nonce.
    cacheable: Option<(i64, i64)>,
}

impl Answer {
    fn status(s: ResponseStatus) -> Self {
        Answer {
            der: OcspResponse::error_der(s),
            cacheable: None,
        }
    }
}

/// The one mapping of a failure to its OCSP status.
fn failure_status(e: &Error) -> ResponseStatus {
    match e {
        Error::Hsm(_) => ResponseStatus::TryLater,
        _ => ResponseStatus::InternalError,
    }
}

/// A CA as CertIDs name it.
#[derive(Debug, Clone)]
struct Issuer {
    ca: String,
    key_id: String,
    /// (algorithm, issuerNameHash, issuerKeyHash).
    hashes: Vec<(CertIdHash, Vec<u8>, Vec<u8>)>,
}

impl Issuer {
    fn of(ca: &CaRecord) -> Option<Issuer> {
        let cert = Certificate::from_der(ca.cert.as_deref()?).ok()?;
        let hashes = CertIdHash::ALL
            .iter()
            .map(|h| asn1::issuer_hashes(&cert, *h).map(|(n, k)| (*h, n, k)))
            .collect::<der::Result<_>>()
            .ok()?;
        Some(Issuer {
            ca: ca.spec.name.to_string(),
            key_id: ca.key_id.clone(),
            hashes,
        })
    }

    fn names(&self, id: &CertId, h: CertIdHash) -> bool {
        self.hashes.iter().any(|(a, n, k)| {
            *a == h
                && n.as_slice() == id.issuer_name_hash.as_bytes()
                && k.as_slice() == id.issuer_key_hash.as_bytes()
        })
    }
}

/// (CA, serial hex, CertID hash): the CertID hash is part of the key because the
/// response echoes the CertID.
type PresignedKey = (String, String, CertIdHash);

/// A signed single response and what it was signed from.
#[derive(Debug, Clone)]
struct Presigned {
    der: Vec<u8>,
    produced_at: i64,
    next_update: i64,
    ca_key_id: String,
    ca_status: CaStatus,
    basis: Option<RevokedRow>,
}

/// The responder's in-memory state for one store.
#[derive(Debug, Default)]
struct State {
    issuers: Mutex<Vec<Issuer>>,
    presigned: Mutex<HashMap<PresignedKey, Presigned>>,
    /// One responder key or certificate made at a time.
    provisioning: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn gt(unix: i64) -> Result<GeneralizedTime> {
    Ok(GeneralizedTime::from_unix_duration(Duration::from_secs(
        unix.max(0) as u64,
    ))?)
}

fn reason_code(name: Option<&str>) -> Option<CrlReason> {
    let r: crl::Reason = name?.parse().ok()?;
    CrlReason::try_from(r as u32).ok()
}

fn serial_of(der: &[u8]) -> Option<String> {
    let c = Certificate::from_der(der).ok()?;
    Some(hex::encode(c.tbs_certificate().serial_number().as_bytes()))
}

/// The OCSP responder (RFC 6960): its delegated certificates and its cache of signed
/// answers, owned here (one per signer).
#[derive(Debug)]
pub struct Ocsp {
    store: Arc<Store>,
    keys: Arc<KeyRing>,
    state: State,
}

impl Ocsp {
    pub fn new(store: Arc<Store>, keys: Arc<KeyRing>) -> Self {
        Ocsp {
            store,
            keys,
            state: State::default(),
        }
    }

    /// `Op::Ocsp`: answer one OCSPRequest (the steps are in the module doc).
    pub fn answer(&self, request: &[u8]) -> Reply {
        let st = &self.state;
        let a = self.ocsp_answer(st, request).unwrap_or_else(|e| {
            let status = failure_status(&e);
            tracing::error!(error = %e, ?status, "OCSP request failed");
            Answer::status(status)
        });
        Reply::Ocsp {
            der: a.der,
            produced_at: a.cacheable.map(|c| c.0),
            next_update: a.cacheable.map(|c| c.1),
        }
    }

    /// Drop the pre-signed responses of a serial (called when it is revoked or unheld).
    pub fn forget(&self, ca: &str, serial: &str) {
        let st = &self.state;
        let mut p = lock(&st.presigned);
        for h in CertIdHash::ALL {
            p.remove(&(ca.to_owned(), serial.to_owned(), h));
        }
    }

    fn ocsp_answer(&self, st: &State, request: &[u8]) -> Result<Answer> {
        // 1. Parse again.
        let req = match asn1::parse_request(request) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "OCSP request malformed");
                return Ok(Answer::status(e.status()));
            }
        };
        // 2. The CAs named.
        let mut rebuilt = false;
        let mut named = Vec::with_capacity(req.cert_ids.len());
        for (id, h) in &req.cert_ids {
            named.push(self.ocsp_issuer(st, id, *h, &mut rebuilt)?);
        }
        let Some(ca) = named.iter().flatten().next().cloned() else {
            tracing::info!("OCSP request for an issuer this responder does not serve");
            return Ok(Answer::status(ResponseStatus::Unauthorized));
        };
        let ca_name = ca.spec.name.to_string();
        let now = crate::now();
        // 3. A pre-signed response.
        let presign = match req.cert_ids.as_slice() {
            [(id, h)] if req.nonce.is_none() => Some((
                ca_name.clone(),
                hex::encode(id.serial_number.as_bytes()),
                *h,
            )),
            _ => None,
        };
        if let Some(key) = &presign
            && let Some(p) = lock(&st.presigned).get(key).cloned()
            && now - p.produced_at < PRESIGNED_SECS
            && p.next_update > now
            && p.ca_key_id == ca.key_id
            && p.ca_status == ca.status
            && self.revoked_row(&ca_name, &key.1)? == p.basis
        {
            tracing::debug!(ca = %ca_name, serial = %key.1, "OCSP: pre-signed response");
            return Ok(Answer {
                der: p.der,
                cacheable: Some((p.produced_at, p.next_update)),
            });
        }
        // 4. Statuses.
        let mut responses = Vec::with_capacity(req.cert_ids.len());
        let mut bases = Vec::with_capacity(req.cert_ids.len());
        for ((id, _), by) in req.cert_ids.iter().zip(&named) {
            let serial = hex::encode(id.serial_number.as_bytes());
            let (status, basis) = match by {
                Some(c) if c.spec.name == ca.spec.name => self.cert_status(&ca, &serial, now)?,
                _ => (CertStatus::Unknown(Null), None),
            };
            bases.push(basis);
            responses.push(SingleResponse {
                cert_id: id.clone(),
                cert_status: status,
                this_update: gt(now)?,
                next_update: Some(gt(now + VALIDITY_SECS)?),
                single_extensions: None,
            });
        }
        // 5. Sign.
        let (responder, responder_cert) = self.ocsp_responder(st, &ca, now)?;
        let statuses: Vec<&str> = responses
            .iter()
            .map(|r| match r.cert_status {
                CertStatus::Good(_) => "good",
                CertStatus::Revoked(_) => "revoked",
                CertStatus::Unknown(_) => "unknown",
            })
            .collect();
        let first = responses.first().map(|r| r.cert_status);
        let der = self.sign_ocsp(
            &responder,
            &responder_cert,
            responses,
            req.nonce.clone(),
            now,
        )?;
        tracing::info!(ca = %ca_name, statuses = ?statuses, nonce = req.nonce.is_some(), "OCSP response signed");
        let cacheable = req.nonce.is_none().then_some((now, now + VALIDITY_SECS));
        if let Some(key) = presign
            && !matches!(first, Some(CertStatus::Unknown(_)) | None)
        {
            let mut p = lock(&st.presigned);
            if p.len() >= MAX_PRESIGNED {
                p.retain(|_, v| now - v.produced_at < PRESIGNED_SECS);
                if p.len() >= MAX_PRESIGNED {
                    p.clear();
                }
            }
            p.insert(
                key,
                Presigned {
                    der: der.clone(),
                    produced_at: now,
                    next_update: now + VALIDITY_SECS,
                    ca_key_id: ca.key_id.clone(),
                    ca_status: ca.status,
                    basis: bases.into_iter().next().flatten(),
                },
            );
        }
        Ok(Answer { der, cacheable })
    }

    fn revoked_row(&self, ca: &str, serial: &str) -> Result<Option<RevokedRow>> {
        self.store.get(Table::Revoked, &format!("{ca}\0{serial}"))
    }

    /// The CA a CertID names, if it is one of ours with a certificate.
    fn ocsp_issuer(
        &self,
        st: &State,
        id: &CertId,
        h: CertIdHash,
        rebuilt: &mut bool,
    ) -> Result<Option<CaRecord>> {
        let hit = lock(&st.issuers)
            .iter()
            .find(|i| i.names(id, h))
            .map(|i| (i.ca.clone(), i.key_id.clone()));
        if let Some((name, key_id)) = hit
            && let Some(ca) = self.store.ca(&name)?
            && ca.key_id == key_id
            && ca.cert.is_some()
        {
            return Ok(Some(ca));
        }
        if *rebuilt {
            return Ok(None);
        }
        // A miss: a new CA, or not ours. Rebuild the hashes once per request.
        *rebuilt = true;
        let cas = self.store.cas()?;
        let issuers: Vec<Issuer> = cas.iter().filter_map(Issuer::of).collect();
        let found = issuers
            .iter()
            .find(|i| i.names(id, h))
            .map(|i| i.ca.clone());
        *lock(&st.issuers) = issuers;
        Ok(found.and_then(|n| cas.into_iter().find(|c| c.spec.name.as_str() == n)))
    }

    /// Step 4 of the module doc: the status of a serial of `ca`, and the Revoked row
    /// it was read from.
    fn cert_status(
        &self,
        ca: &CaRecord,
        serial: &str,
        now: i64,
    ) -> Result<(CertStatus, Option<RevokedRow>)> {
        let name = ca.spec.name.as_str();
        let key = format!("{name}\0{serial}");
        let row = self.revoked_row(name, serial)?;
        let mut status = if let Some(r) = &row {
            CertStatus::Revoked(RevokedInfo {
                revocation_time: gt(r.revoked_at)?,
                revocation_reason: reason_code(r.reason.as_deref()),
            })
        } else if self
            .store
            .get::<serde::de::IgnoredAny>(Table::Certs, &key)?
            .is_some()
            || self.issued_to_ours(ca, serial)?
        {
            CertStatus::Good(Null)
        } else {
            CertStatus::Unknown(Null)
        };
        if ca.status == CaStatus::Revoked
            && !matches!(status, CertStatus::Unknown(_))
            && let Some((at, reason)) = self.ca_revocation(ca)?
        {
            let earlier = row.as_ref().is_some_and(|r| r.revoked_at <= at);
            if !earlier {
                let reason = match reason {
                    Some(CrlReason::KeyCompromise | CrlReason::CaCompromise) => {
                        Some(CrlReason::CaCompromise)
                    }
                    other => other,
                };
                status = CertStatus::Revoked(RevokedInfo {
                    revocation_time: gt(at.min(now))?,
                    revocation_reason: reason,
                });
            }
        }
        Ok((status, row))
    }

    /// Whether `serial` is the certificate of a sub-CA, the SCEP RA or the responder of `ca`.
    fn issued_to_ours(&self, ca: &CaRecord, serial: &str) -> Result<bool> {
        let own = [ca.ra.as_ref(), ca.ocsp.as_ref()]
            .into_iter()
            .flatten()
            .any(|r| serial_of(&r.cert).as_deref() == Some(serial));
        if own {
            return Ok(true);
        }
        Ok(self.store.cas()?.iter().any(|c| {
            c.parent.as_ref() == Some(&ca.spec.name)
                && c.cert.as_deref().and_then(serial_of).as_deref() == Some(serial)
        }))
    }

    /// When and why a revoked CA's certificate went on its parent's CRL.
    fn ca_revocation(&self, ca: &CaRecord) -> Result<Option<(i64, Option<CrlReason>)>> {
        let (Some(parent), Some(serial)) = (&ca.parent, ca.cert.as_deref().and_then(serial_of))
        else {
            return Ok(None);
        };
        Ok(self
            .revoked_row(parent.as_str(), &serial)?
            .map(|r| (r.revoked_at, reason_code(r.reason.as_deref()))))
    }

    /// The CA's responder key and certificate: the stored one while it has at least
    /// 30 days left (or a new one would not last longer), else made or renewed now and
    /// stored with the CA record.
    fn ocsp_responder(
        &self,
        st: &State,
        ca: &CaRecord,
        now: i64,
    ) -> Result<(RaRecord, Certificate)> {
        if let Some(r) = usable(ca, now)? {
            return Ok(r);
        }
        let _one = lock(&st.provisioning);
        let name = ca.spec.name.as_str();
        let ca = self
            .store
            .ca(name)?
            .ok_or_else(|| Error::NotFound(crate::error::Missing::Ca(name.to_owned())))?;
        if let Some(r) = usable(&ca, now)? {
            return Ok(r);
        }
        let (rec, cert) = self.make_ocsp_responder(&ca, now)?;
        let serial = hex::encode(cert.tbs_certificate().serial_number().as_bytes());
        let renewed = ca.ocsp.is_some();
        self.store.write(|tx| {
            let mut cur = tx
                .ca(name)?
                .ok_or_else(|| Error::NotFound(crate::error::Missing::Ca(name.to_owned())))?;
            if cur.key_id != ca.key_id {
                return Err(Error::Conflict(crate::error::Clash::CaChanged(
                    name.to_string(),
                )));
            }
            cur.ocsp = Some(rec.clone());
            tx.put_ca(&cur)?;
            tx.audit(
                "signer",
                "ocsp-responder",
                format!(
                    "{name}: {} OCSP responder key {} certificate {serial}",
                    if renewed { "renewed" } else { "made" },
                    rec.key_id
                ),
            )
        })?;
        tracing::info!(ca = name, key = %rec.key_id, %serial, renewed, "OCSP responder certificate issued");
        Ok((rec, cert))
    }

    /// A responder certificate for `ca` (RFC 6960 §4.2.2.2): the existing responder key
    /// when there is one, else a new EC P-256 key in the token.
    fn make_ocsp_responder(&self, ca: &CaRecord, now: i64) -> Result<(RaRecord, Certificate)> {
        let name = ca.spec.name.as_str();
        let ca_cert = Certificate::from_der(ca.cert.as_deref().ok_or_else(|| {
            Error::Conflict(crate::error::Clash::NoCertificateYet(name.to_string()))
        })?)?;
        let (_, ca_end) = x509::cert_window(&ca_cert);
        let secs = (ca_end - now).min(RESPONDER_SECS);
        if secs < 3600 {
            return Err(Error::Conflict(crate::error::Clash::CaExpiresTooSoon(
                name.to_string(),
            )));
        }
        let (id, spki) = match &ca.ocsp {
            Some(o) => {
                let id: KeyId = crate::keys::key_id(&o.key_id)?;
                let spki = self.keys.store().public_key(KEY, &id)?;
                (id, spki)
            }
            None => {
                let id = crate::keys::new_key_id()?;
                let spki = self.keys.store().generate(
                    KEY,
                    &id,
                    &format!("castellan-ocsp:{name}"),
                    KeyUse::Sign,
                )?;
                (id, spki)
            }
        };
        let mut extensions = x509::end_entity(KeyUsages::DigitalSignature.into())?;
        extensions.push(x509::ext(
            const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE,
            false,
            &ExtendedKeyUsage(vec![asn1::ID_KP_OCSP_SIGNING]),
        )?);
        extensions.push(x509::ext(asn1::ID_PKIX_OCSP_NOCHECK, false, &Null)?);
        let cert = x509::issue(
            Profile {
                subject: format!("CN={name} OCSP Responder").parse()?,
                issuer: Some(ca_cert.tbs_certificate().subject().clone()),
                issuer_key_id: Some(x509::ca_key_id(&ca_cert)),
                extensions,
            },
            x509::random_serial()?,
            x509::validity(SystemTime::now(), secs as u64)?,
            spki,
            &self.keys.ca_signer(ca)?,
        )?;
        x509::verify_issued_by(&cert, &ca_cert)?;
        Ok((
            RaRecord {
                key_id: id.to_string(),
                cert: cert.to_der()?,
            },
            cert,
        ))
    }

    /// Sign ResponseData with the responder key and wrap it (RFC 6960 §4.2.1).
    fn sign_ocsp(
        &self,
        responder: &RaRecord,
        cert: &Certificate,
        responses: Vec<SingleResponse>,
        nonce: Option<Extension>,
        now: i64,
    ) -> Result<Vec<u8>> {
        let data = ResponseData {
            version: 0,
            responder_id: ResponderId::ByKey(OctetString::new(asn1::responder_key_hash(
                cert.tbs_certificate().subject_public_key_info(),
            ))?),
            produced_at: gt(now)?,
            responses,
            response_extensions: nonce.map(|n| vec![n]),
        };
        let tbs = data.to_der()?;
        let id: KeyId = crate::keys::key_id(&responder.key_id)?;
        let sig = self.keys.store().sign(KEY, HASH, &id, &tbs)?;
        let basic = BasicOcspResponse {
            tbs_response_data: data,
            signature_algorithm: hsm::signature_algorithm(KEY, HASH)?,
            signature: BitString::from_bytes(&sig)?,
            certs: Some(vec![cert.clone()]),
        };
        Ok(OcspResponse::successful_der(&basic)?)
    }
}

/// The CA's responder if it can be used as is: present, and with 30 days left or no
/// longer successor possible (the CA ends first).
fn usable(ca: &CaRecord, now: i64) -> Result<Option<(RaRecord, Certificate)>> {
    let Some(rec) = &ca.ocsp else {
        return Ok(None);
    };
    let cert = Certificate::from_der(&rec.cert)?;
    let (_, end) = x509::cert_window(&cert);
    let ca_end = match ca.cert.as_deref() {
        Some(c) => x509::cert_window(&Certificate::from_der(c)?).1,
        None => return Ok(None),
    };
    let best = (now + RESPONDER_SECS).min(ca_end);
    if end - now >= RENEW_SECS || best <= end {
        Ok(Some((rec.clone(), cert)))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reasons_map_to_crl_reason_codes() {
        assert_eq!(
            reason_code(Some("keyCompromise")),
            Some(CrlReason::KeyCompromise)
        );
        assert_eq!(
            reason_code(Some("certificateHold")),
            Some(CrlReason::CertificateHold)
        );
        assert_eq!(reason_code(Some("superseded")), Some(CrlReason::Superseded));
        assert_eq!(reason_code(Some("bogus")), None);
        assert_eq!(reason_code(None), None);
    }

    #[test]
    fn failures_map_to_statuses() {
        assert_eq!(
            failure_status(&Error::Store(crate::error::StoreError::HierarchyLoops)),
            ResponseStatus::InternalError
        );
        assert_eq!(
            failure_status(&Error::Hsm(hsm::Error::Unsupported("x".into()))),
            ResponseStatus::TryLater
        );
    }
}
