//! SCEP enrolment in the signer (RFC 8894 §3.3, §4). The edge forwards the client's
//! bytes; everything is parsed and decided here again.
//!
//! PKIOperation, step by step:
//! 1. find the profile and its CA (and RA); parse the PKIMessage: messageType first,
//!    then digest, transactionID, nonce, signer certificate, messageDigest, signature.
//!    A message that fails here gets an HTTP 400 (no CertRep can be addressed);
//! 2. from here on, every refusal is a signed CertRep FAILURE with failInfo and text;
//! 3. refuse SHA-1 and DES/3DES unless the profile allows legacy algorithms;
//! 4. open the envelope with the RA key in the HSM (no padding oracle);
//! 5. by type: PKCSReq / RenewalReq → idempotency by transactionID, authorisation
//!    (challenge, or the current certificate for renewal), policy, then manual approval
//!    (PENDING) or issuance; CertPoll → the pending request's state; GetCert → a stored
//!    certificate;
//! 6. issuance: build the leaf's TBS, lint it, sign it once in the HSM (nothing that fails
//!    the lint reaches the token), check the signature, record it durably
//!    (certificate, transaction and challenge use in one transaction), then reply.

pub mod challenge;
pub mod mdm;
mod pkcs;

pub use pkcs::{Pkcs12Issued, Pkcs12Request};

use der::{Decode, Encode};
use hsm::{HsmSigner, KeyId};
use proto::wire::{Op, Refusal, Reply};
use scep::ScepError;
use scep::certrep::{self, Outcome, ReplyTo};
use scep::envelope::{self, ContentAlg, Envelope, KeyTransport, Recipient};
use scep::message::{DigestAlg, MessageType, PkiMessage};
use sha2::Digest;
use x509_cert::Certificate;

use std::sync::Arc;

use crate::ca::Cas;
use crate::issuance::leaf::{self, LeafRequest};
use crate::issuance::x509::{self, Profile};
use crate::keys::KeyRing;
use crate::revocation::Revocation;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::Table;
use crate::store::commit::Committer;
use crate::store::rows::CaRecord;
use crate::store::rows::{CertRecord, OneTime, PendingRecord, TransactionRecord};
use crate::store::{Reader, Store};
use proto::model::CaStatus;
use proto::model::San;
use proto::profile::{ApprovalMode, CaCertChain, ChallengeMode, ProfileSpec, RaLayout};

fn key_hash(spki: &spki::SubjectPublicKeyInfoOwned) -> Result<String, ScepError> {
    let der = spki
        .to_der()
        .map_err(|_| ScepError::bad_request("bad key"))?;
    Ok(hex::encode(sha2::Sha256::digest(der)))
}

fn tx_key(profile: &str, tx: &str) -> String {
    format!("{profile}\0{tx}")
}

/// A renewal's transaction key: the transactionID plus the serial of the certificate
/// that signs it (the one being renewed).
fn renewal_tx_key(profile: &str, msg: &PkiMessage) -> String {
    let serial = hex::encode(msg.signer_cert.tbs_certificate().serial_number().as_bytes());
    tx_key(profile, &format!("{}\0renew\0{serial}", msg.transaction_id))
}

fn cert_key(ca: &str, serial: &str) -> String {
    format!("{ca}\0{serial}")
}

/// A profile's RA as one request meets it: who signs the CertRep, which keys open the
/// envelope, and the RA certificates GetCACert publishes (encryption first).
#[derive(Debug)]
struct Ra {
    signer: HsmSigner,
    signer_cert: Certificate,
    /// The token keys that open envelopes, with the certificate each is named by.
    decrypt: Vec<(KeyId, Recipient)>,
    /// RA certificates for GetCACert, in order (none for layout `ca`).
    published: Vec<Certificate>,
    ca_cert: Certificate,
}

/// A profile's RA and what it was made from ([`ra_sources`]).
type CachedRa = (Vec<Vec<u8>>, Arc<Ra>);

/// What a profile's [`Ra`] is made from: the CA certificate and key id, and the chosen RA
/// records' certificates and key ids. The same sources make the same RA.
fn ra_sources<'a>(spec: &ProfileSpec, ca: &'a CaRecord) -> Vec<&'a [u8]> {
    let mut out = vec![
        ca.cert.as_deref().unwrap_or_default(),
        ca.key_id.as_bytes(),
        spec.ra_layout.as_str().as_bytes(),
    ];
    let records = match spec.ra_layout {
        RaLayout::Ca => Vec::new(),
        RaLayout::Combined if !spec.ra_windows_eku => ca.ra.iter().collect(),
        layout => ca
            .ra_sets
            .iter()
            .filter(|r| r.layout == layout && r.windows_eku == spec.ra_windows_eku)
            .flat_map(|r| std::iter::once(&r.sign).chain(r.encrypt.as_ref()))
            .collect(),
    };
    for r in records {
        out.push(&r.cert);
        out.push(r.key_id.as_bytes());
    }
    out
}

/// A badCertId from [`envelope::open`], made specific: which published certificate the
/// client encrypted to, and which one this profile's layout decrypts with.
fn wrong_recipient(e: ScepError, spec: &ProfileSpec, ra: &Ra, env: &Envelope) -> ScepError {
    if e.info != scep::FailInfo::BadCertId {
        return e;
    }
    let to_ca = Recipient::of(&ra.ca_cert).is_ok_and(|r| env.is_addressed_to(&r));
    let to_signer = Recipient::of(&ra.signer_cert).is_ok_and(|r| env.is_addressed_to(&r));
    let want = match spec.ra_layout {
        RaLayout::Split => "the RA encryption certificate (keyEncipherment only)",
        RaLayout::Combined => "the RA certificate",
        RaLayout::Ca => "the CA certificate",
    };
    let got = if to_ca && spec.ra_layout != RaLayout::Ca {
        "the CA certificate"
    } else if to_signer && spec.ra_layout == RaLayout::Split {
        "the RA signing certificate"
    } else {
        "a certificate this profile does not publish"
    };
    ScepError::bad_cert_id(format!(
        "the envelope is encrypted to {got}; profile {} (RA layout {}) decrypts only with {want} \
         from GetCACert",
        spec.name,
        spec.ra_layout.as_str()
    ))
}

fn internal(e: impl std::fmt::Display) -> ScepError {
    tracing::error!(error = %e, "enrolment failed inside the signer");
    ScepError::internal("the CA could not complete the request; try again later")
}

/// A refusal on the admin port: the request's fault is invalid (400, exit 2), the CA's own
/// fault is internal (500, exit 1).
fn admin_error(e: ScepError) -> crate::Error {
    if e.internal {
        crate::Error::Internal(crate::error::InternalError::Scep(e.text))
    } else {
        crate::Error::Invalid(e.text)
    }
}

/// A leaf certificate signed and handed to the group committer.
#[derive(Debug)]
struct Issued {
    rec: CertRecord,
    commit: crate::store::commit::PendingCommit,
    /// For an `intune` profile, the CSR (DER): Intune must be told before delivery.
    intune_csr: Option<Vec<u8>>,
}

impl Issued {
    /// Wait until the certificate is durable; only then may its bytes leave the signer.
    fn finish(self) -> Result<CertRecord, ScepError> {
        commit_result(self.commit.wait())?;
        let rec = self.rec;
        tracing::info!(ca = %rec.ca, serial = %rec.serial, subject = %rec.subject, profile = %rec.profile, "issued");
        Ok(rec)
    }
}

/// A group commit's result as a SCEP refusal: a conflict (a one-time challenge or nonce
/// used by another request first) is the client's; anything else is ours.
fn commit_result(r: crate::Result<()>) -> Result<(), ScepError> {
    match r {
        Ok(()) => Ok(()),
        Err(crate::Error::Conflict(c)) => Err(ScepError::bad_request(c.to_string())),
        Err(e) => Err(internal(e)),
    }
}

/// The enrolment service: SCEP (RFC 8894) for devices, and manual approval of pending
/// requests for operators.
#[derive(Debug)]
pub struct Enroll {
    store: Arc<Store>,
    keys: Arc<KeyRing>,
    cas: Arc<Cas>,
    revocation: Arc<Revocation>,
    committer: Committer,
    public_url: String,
    /// Each profile's RA, with the CA and RA certificates and key ids it was made from.
    ras: Mutex<HashMap<String, CachedRa>>,
    /// castellan-mdm, for profiles whose challenges an outside service decides.
    connector: Arc<dyn mdm::Connector>,
}

impl Enroll {
    pub fn new(
        store: Arc<Store>,
        keys: Arc<KeyRing>,
        cas: Arc<Cas>,
        revocation: Arc<Revocation>,
        public_url: String,
        connector: Arc<dyn mdm::Connector>,
    ) -> Self {
        Enroll {
            connector,
            committer: Committer::start(store.clone()),
            store,
            keys,
            cas,
            revocation,
            public_url,
            ras: Mutex::default(),
        }
    }

    /// Answer one SCEP operation of the signing socket.
    pub fn scep(&self, op: Op) -> Reply {
        match op {
            Op::Hello { version } => Reply::Hello { version },
            Op::GetCaCaps { profile } => match self.scep_profile(&profile) {
                Ok((spec, ..)) => Reply::Caps { caps: caps(&spec) },
                Err(r) => r,
            },
            Op::GetCaCert { profile } => match self
                .scep_profile(&profile)
                .and_then(|(spec, ca, _)| self.ca_ra_chain(&spec, &ca))
            {
                Ok(r) | Err(r) => r,
            },
            Op::GetNextCaCert { profile } => match self.scep_profile(&profile) {
                Ok(_) => Reply::Refused {
                    reason: Refusal::NotFound,
                    message: "there is no next CA certificate".into(),
                },
                Err(r) => r,
            },
            Op::PkiOperation { profile, message } => self.pki_operation(&profile, &message),
            _ => Reply::Refused {
                reason: Refusal::BadRequest,
                message: "not a SCEP operation".into(),
            },
        }
    }

    /// A profile and its CA, read from one store snapshot, which the caller may go on
    /// reading from (one snapshot per request).
    fn scep_profile(&self, name: &str) -> Result<(ProfileSpec, CaRecord, Reader), Reply> {
        let not_found = || Reply::Refused {
            reason: Refusal::NotFound,
            message: format!("no SCEP profile {name:?}"),
        };
        let fault = |e: crate::Error| Reply::Refused {
            reason: Refusal::Internal,
            message: internal(e).text,
        };
        let snap = self.store.reader().map_err(fault)?;
        let spec: ProfileSpec = snap
            .get(Table::Profiles, name)
            .map_err(fault)?
            .filter(|s: &ProfileSpec| s.pkcs.is_none())
            .ok_or_else(not_found)?;
        let ca = snap
            .ca(spec.ca.as_str())
            .map_err(fault)?
            .ok_or_else(not_found)?;
        Ok((spec, ca, snap))
    }

    /// The RA a profile presents (RFC 8894 §2.1, §2.2), by its layout.
    /// The RA of a profile, parsed once and kept until the CA or RA certificates it was
    /// made from change (a new RA set, a renewed CA).
    fn ra(&self, spec: &ProfileSpec, ca: &CaRecord) -> Result<Arc<Ra>, ScepError> {
        let sources = ra_sources(spec, ca);
        let mut cache = self.ras.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((made_from, ra)) = cache.get(spec.name.as_str())
            && made_from
                .iter()
                .map(Vec::as_slice)
                .eq(sources.iter().copied())
        {
            return Ok(ra.clone());
        }
        let ra = Arc::new(self.make_ra(spec, ca)?);
        cache.insert(
            spec.name.to_string(),
            (sources.iter().map(|s| s.to_vec()).collect(), ra.clone()),
        );
        Ok(ra)
    }

    fn make_ra(&self, spec: &ProfileSpec, ca: &CaRecord) -> Result<Ra, ScepError> {
        let ca_cert =
            Certificate::from_der(ca.cert.as_deref().unwrap_or_default()).map_err(internal)?;
        let sha256 = |id: &str| {
            self.keys
                .signer(id, hsm::KeySpec::Rsa2048, hsm::HashAlg::Sha256)
                .map_err(internal)
        };
        let cert =
            |r: &crate::store::rows::RaRecord| Certificate::from_der(&r.cert).map_err(internal);
        let key = |id: &str| -> Result<KeyId, ScepError> { id.parse().map_err(internal) };
        let missing = || {
            internal(format!(
                "CA {} has no RA for profile {}",
                ca.spec.name, spec.name
            ))
        };
        Ok(match spec.ra_layout {
            RaLayout::Ca => {
                let key_spec = ca.spec.key;
                let signer = self
                    .keys
                    .signer(&ca.key_id, key_spec, hsm::HashAlg::Sha256)
                    .map_err(internal)?;
                Ra {
                    decrypt: vec![(key(&ca.key_id)?, Recipient::of(&ca_cert)?)],
                    published: Vec::new(),
                    signer,
                    signer_cert: ca_cert.clone(),
                    ca_cert,
                }
            }
            layout => {
                let (sign, encrypt) = if layout == RaLayout::Combined && !spec.ra_windows_eku {
                    (ca.ra.as_ref().ok_or_else(missing)?, None)
                } else {
                    let set = ca
                        .ra_sets
                        .iter()
                        .find(|r| r.layout == layout && r.windows_eku == spec.ra_windows_eku)
                        .ok_or_else(missing)?;
                    (&set.sign, set.encrypt.as_ref())
                };
                let signer_cert = cert(sign)?;
                let (dec, dec_cert) = match encrypt {
                    Some(e) => (e, cert(e)?),
                    None => (sign, signer_cert.clone()),
                };
                // The encryption certificate first: clients that take the first non-CA
                // certificate of GetCACert encrypt to it.
                let mut published = vec![dec_cert.clone()];
                if encrypt.is_some() {
                    published.push(signer_cert.clone());
                }
                Ra {
                    decrypt: vec![(key(&dec.key_id)?, Recipient::of(&dec_cert)?)],
                    published,
                    signer: sha256(&sign.key_id)?,
                    signer_cert,
                    ca_cert,
                }
            }
        })
    }

    /// GetCACert (RFC 8894 §4.2.1): the profile's RA certificates (encryption first) and the
    /// issuing CA, or with `ca-chain full` every CA up to the root, as a degenerate PKCS#7
    /// in that order; a profile without an RA and without the chain gets the single CA
    /// certificate (`application/x-x509-ca-cert`).
    fn ca_ra_chain(&self, spec: &ProfileSpec, ca: &CaRecord) -> Result<Reply, Reply> {
        let fail = |e: String| Reply::Refused {
            reason: Refusal::Internal,
            message: internal(e).text,
        };
        let ra = self.ra(spec, ca).map_err(|e| fail(e.text))?;
        let mut certs = ra.published.clone();
        match spec.ca_chain {
            CaCertChain::Issuing => certs.push(ra.ca_cert.clone()),
            CaCertChain::Full => certs.extend(self.cas.chain(ca).map_err(|e| fail(e.to_string()))?),
        }
        if let [single] = certs.as_slice() {
            return Ok(Reply::CaCert {
                der: single.to_der().map_err(|e| fail(e.to_string()))?,
                ra: false,
            });
        }
        Ok(Reply::CaCert {
            der: certrep::degenerate(&certs).map_err(|e| fail(e.text))?,
            ra: true,
        })
    }

    /// Instead of a refusal for the signer's own failure: if its store is down or its token
    /// gone, conditions that heal by themselves, the device is told to come back later
    /// (HTTP 503 with Retry-After) rather than given a FAILURE.
    fn unavailable(&self) -> Option<Reply> {
        let store = self.store.status();
        let token = self.keys.store().health();
        let why = match (store.up, token.up) {
            (true, true) => return None,
            (false, _) => {
                "the CA's store is refusing writes after an I/O error and is being reopened; try again shortly"
            }
            (true, false) => "the CA's HSM token is unavailable; try again shortly",
        };
        Some(Reply::Refused {
            reason: Refusal::Unavailable,
            message: why.into(),
        })
    }

    fn pki_operation(&self, profile: &str, bytes: &[u8]) -> Reply {
        match self.pki_reply(profile, bytes) {
            Reply::Refused {
                reason: Refusal::Internal,
                message,
            } => self.unavailable().unwrap_or(Reply::Refused {
                reason: Refusal::Internal,
                message,
            }),
            other => other,
        }
    }

    fn pki_reply(&self, profile: &str, bytes: &[u8]) -> Reply {
        let (spec, ca, snap) = match self.scep_profile(profile) {
            Ok(x) => x,
            Err(r) => return r,
        };
        // 1. Parse and check integrity; nothing addressable yet → HTTP 400.
        let msg = match scep::message::parse(bytes, true) {
            Ok(m) => m,
            Err(e) => {
                return Reply::Refused {
                    reason: Refusal::BadRequest,
                    message: e.text,
                };
            }
        };
        let refused_500 = |e: ScepError| Reply::Refused {
            reason: Refusal::Internal,
            message: e.text,
        };
        let ra = match self.ra(&spec, &ca) {
            Ok(x) => x,
            Err(e) => return refused_500(e),
        };
        let requester = match Recipient::of(&msg.signer_cert) {
            Ok(r) => r,
            Err(e) => {
                return Reply::Refused {
                    reason: Refusal::BadRequest,
                    message: e.text,
                };
            }
        };
        let reply_to = ReplyTo {
            transaction_id: msg.transaction_id.clone(),
            sender_nonce: msg.sender_nonce.clone(),
            requester,
        };
        // 2-6. Every refusal from here on is a signed FAILURE, but for the signer's own
        // failure while its store or token is down: then the device is asked to come back.
        let temporary = |e: &ScepError| if e.internal { self.unavailable() } else { None };
        let refused = |e: ScepError| {
            tracing::info!(profile, transaction = %msg.transaction_id, fail_info = ?e.info, reason = %e.text, "SCEP request refused");
            Outcome::Failure {
                info: e.info,
                text: e.text,
            }
        };
        let (outcome, issued) = match self.decide(&snap, &spec, &ca, &ra, &msg) {
            Ok(x) => x,
            Err(e) => match temporary(&e) {
                Some(later) => return later,
                None => (refused(e), None),
            },
        };
        let rep = |outcome: &Outcome| {
            certrep::cert_rep::<_, hsm::HsmSignature>(
                &reply_to,
                outcome,
                &ra.signer_cert,
                &ra.signer,
            )
        };
        // A new certificate's CertRep is signed while its group commits; it leaves only once
        // the certificate is durable. If the commit refuses it (a one-time challenge used by
        // another request meanwhile), nothing was recorded and the answer is a FAILURE.
        let mut reply = rep(&outcome);
        if let Some(issued) = issued {
            let intune = issued.intune_csr.clone();
            let done = issued
                .finish()
                .inspect_err(|e| {
                    if let Some(csr) = &intune {
                        self.notify_failure(spec.name.as_str(), &msg.transaction_id, csr, e);
                    }
                })
                // An intune profile's certificate leaves only once Intune knows it.
                .and_then(|rec| match &intune {
                    Some(_) => self.notify_issued(&rec),
                    None => Ok(()),
                });
            if let Err(e) = done {
                if let Some(later) = temporary(&e) {
                    return later;
                }
                reply = rep(&refused(e));
            }
        }
        match reply {
            Ok(der) => Reply::CertRep { der },
            Err(e) => Reply::Refused {
                reason: Refusal::Internal,
                message: internal(e.text).text,
            },
        }
    }

    fn decide(
        &self,
        snap: &Reader,
        spec: &ProfileSpec,
        ca: &CaRecord,
        ra: &Ra,
        msg: &PkiMessage,
    ) -> Result<(Outcome, Option<Issued>), ScepError> {
        if let Some(bits) = msg.weak_rsa_bits {
            return Err(ScepError::bad_alg(format!(
                "RSA-{bits} keys are refused: at least 2048 bits are required"
            )));
        }
        if msg.digest == DigestAlg::Sha1 {
            if !spec.legacy_algorithms {
                return Err(ScepError::bad_alg(
                    "SHA-1 is refused on this profile: use SHA-256 (see GetCACaps)",
                ));
            }
            tracing::warn!(profile = %spec.name, "legacy SCEP request signed with SHA-1");
        }
        let hsm = self.keys.store().clone();
        let keys: Vec<Recipient> = ra.decrypt.iter().map(|(_, r)| r.clone()).collect();
        let opened = envelope::open(
            &msg.envelope,
            &keys,
            spec.legacy_algorithms,
            &mut |i, transport, ek| {
                let padding = match transport {
                    KeyTransport::Pkcs1 => hsm::RsaPadding::Pkcs1,
                    KeyTransport::OaepSha1 => hsm::RsaPadding::OaepSha1,
                };
                let (id, _) = ra.decrypt.get(i)?;
                hsm.rsa_decrypt_with(id, padding, ek).ok()
            },
        )
        .map_err(|e| wrong_recipient(e, spec, ra, &msg.envelope))?;
        if opened.alg.is_legacy() {
            tracing::warn!(profile = %spec.name, alg = opened.alg.name(), "legacy SCEP envelope");
        }
        match msg.message_type {
            MessageType::PkcsReq | MessageType::RenewalReq => {
                self.enrol(snap, spec, ca, msg, &opened.content, opened.alg)
            }
            MessageType::CertPoll => Ok((self.poll(spec, msg, opened.alg)?, None)),
            MessageType::GetCert => Ok((self.get_cert(ca, &opened.content, opened.alg)?, None)),
            MessageType::GetCrl => {
                cms::cert::IssuerAndSerialNumber::from_der(&opened.content)
                    .map_err(|_| ScepError::bad_request("GetCRL needs an IssuerAndSerialNumber"))?;
                let crl = self
                    .revocation
                    .crl_for_scep(ca.spec.name.as_str())
                    .map_err(ScepError::bad_request)?;
                Ok((
                    Outcome::Crl {
                        crl,
                        alg: opened.alg,
                    },
                    None,
                ))
            }
            MessageType::CertRep => Err(ScepError::bad_request("CertRep is not a request")),
        }
    }

    fn stored_cert(&self, key: &str) -> Result<CertRecord, ScepError> {
        self.store
            .get(Table::Certs, key)
            .map_err(internal)?
            .ok_or_else(|| internal("missing certificate"))
    }

    fn success(&self, rec: &CertRecord, alg: ContentAlg) -> Result<Outcome, ScepError> {
        Ok(Outcome::Success {
            certs: vec![Certificate::from_der(&rec.der).map_err(internal)?],
            alg,
        })
    }

    fn enrol(
        &self,
        snap: &Reader,
        spec: &ProfileSpec,
        ca: &CaRecord,
        msg: &PkiMessage,
        csr_der: &[u8],
        alg: ContentAlg,
    ) -> Result<(Outcome, Option<Issued>), ScepError> {
        let req = leaf::parse_csr(csr_der, spec.legacy_algorithms)?;
        let kh = key_hash(&req.spki)?;
        // Idempotency: the same transaction and key get the same answer. A renewal is
        // its own transaction even if a client reuses the transactionID of its first
        // enrolment (micromdm scepclient derives it from the key): it is keyed by the
        // certificate it renews.
        let txk = match msg.message_type {
            MessageType::RenewalReq => renewal_tx_key(spec.name.as_str(), msg),
            _ => tx_key(spec.name.as_str(), &msg.transaction_id),
        };
        if let Some(t) = snap
            .get::<TransactionRecord>(Table::Transactions, &txk)
            .map_err(internal)?
        {
            if t.key_hash != kh {
                return Err(ScepError::bad_request(
                    "this transactionID was already used with another key",
                ));
            }
            if let Some(r) = t.rejected {
                return Err(ScepError::bad_request(format!(
                    "the request was rejected: {r}"
                )));
            }
            if let Some(c) = t.cert {
                let rec = self.stored_cert(&c)?;
                // A retry of an intune request whose notification is still owed.
                self.notify_issued(&rec)?;
                return Ok((self.success(&rec, alg)?, None));
            }
            if t.pending {
                return Ok((Outcome::Pending, None));
            }
        }
        if ca.status != CaStatus::Active {
            return Err(ScepError::bad_request(format!(
                "CA {} is {} and issues nothing",
                ca.spec.name, ca.status
            )));
        }
        leaf::check_policy(&req, spec)?;
        let mut renewed_from = None;
        let mut one_time = None;
        let mut nonce = None;
        if msg.message_type == MessageType::RenewalReq {
            if spec.challenge == ChallengeMode::Intune {
                return Err(ScepError::bad_request(
                    "an intune profile takes no RenewalReq: Intune renews with a new PKCSReq \
                     and a new challenge",
                ));
            }
            renewed_from = Some(self.authorise_renewal(spec, ca, msg, &req)?);
        } else {
            if msg.signer_cert.tbs_certificate().subject_public_key_info() != &req.spki {
                return Err(ScepError::bad_request(
                    "the signer certificate's key is not the CSR's key",
                ));
            }
            match self.authorise_challenge(spec, &req)? {
                Authorised::OneTime(k) => one_time = Some(k),
                Authorised::Nonce(k, exp) => nonce = Some((k, exp)),
                Authorised::Static => {}
                Authorised::Outside(validator) => self.validate_outside(
                    validator,
                    spec,
                    &msg.transaction_id,
                    csr_der,
                    &req,
                    req.challenge.as_deref().unwrap_or_default(),
                )?,
            }
        }
        if spec.approval == ApprovalMode::Manual {
            let mut id = [0u8; 8];
            envelope::random(&mut id)?;
            let id = hex::encode(id);
            let pending = PendingRecord {
                id: id.clone(),
                profile: spec.name.to_string(),
                transaction_id: msg.transaction_id.clone(),
                subject: req.subject.to_string(),
                sans: req.sans.clone(),
                csr: csr_der.to_vec(),
                created_at: crate::now(),
                renewed_from,
                tx_key: txk.clone(),
            };
            let mut batch = crate::store::Batch {
                audit: Some(
                    crate::store::Note::new(
                        "scep",
                        "request-pending",
                        format!(
                            "{id} {} profile {} transaction {}",
                            pending.subject, pending.profile, pending.transaction_id
                        ),
                    )
                    .ca(ca.spec.name.as_str()),
                ),
                ..Default::default()
            };
            batch.put(Table::Pending, &id, &pending).map_err(internal)?;
            batch
                .put(
                    Table::Transactions,
                    &txk,
                    &TransactionRecord {
                        key_hash: kh.clone(),
                        cert: None,
                        pending: true,
                        rejected: None,
                    },
                )
                .map_err(internal)?;
            commit_result(
                self.submit_batch(&one_time, &nonce, &msg.transaction_id, batch)?
                    .wait(),
            )?;
            tracing::info!(profile = %spec.name, request = %id, "SCEP request waits for manual approval");
            return Ok((Outcome::Pending, None));
        }
        let intune_csr = (spec.challenge == ChallengeMode::Intune).then_some(csr_der);
        let issued = self
            .issue_leaf(
                spec,
                ca,
                &req,
                &msg.transaction_id,
                &txk,
                renewed_from,
                &one_time,
                &nonce,
                intune_csr,
                "scep",
                None,
            )
            .inspect_err(|e| {
                // Intune validated the request; it must hear that nothing came of it.
                if let Some(csr) = intune_csr {
                    self.notify_failure(spec.name.as_str(), &msg.transaction_id, csr, e);
                }
            })?;
        Ok((self.success(&issued.rec, alg)?, Some(issued)))
    }

    /// Sign a leaf and hand its record (with the transaction and the challenge use) to the
    /// group committer; [`Issued::finish`] waits until it is durable.
    #[allow(clippy::too_many_arguments)]
    fn issue_leaf(
        &self,
        spec: &ProfileSpec,
        ca: &CaRecord,
        req: &LeafRequest,
        transaction_id: &str,
        txk: &str,
        renewed_from: Option<String>,
        one_time: &Option<String>,
        nonce: &Option<(String, i64)>,
        intune_csr: Option<&[u8]>,
        actor: &str,
        escrow: Option<&crate::ca::escrow::Escrowed>,
    ) -> Result<Issued, ScepError> {
        let ca_cert =
            Certificate::from_der(ca.cert.as_deref().unwrap_or_default()).map_err(internal)?;
        let (_, ca_end) = x509::cert_window(&ca_cert);
        let now = crate::now();
        let secs = (spec.validity.secs() as i64).min(ca_end - now);
        if secs < 3600 {
            return Err(ScepError::bad_request("the CA expires too soon to issue"));
        }
        let extensions = leaf::extensions(
            spec,
            &req.sans,
            req.subject.is_empty(),
            ca.spec.name.as_str(),
            &self.public_url.clone(),
        )
        .map_err(internal)?;
        let profile = Profile {
            subject: req.subject.clone(),
            issuer: Some(ca_cert.tbs_certificate().subject().clone()),
            issuer_key_id: Some(x509::ca_key_id(&ca_cert)),
            extensions,
        };
        let serial = x509::random_serial().map_err(internal)?;
        let validity =
            x509::validity(std::time::SystemTime::now(), secs as u64).map_err(internal)?;
        let signer = self.keys.ca_signer(ca).map_err(internal)?;
        let ca_ekus: Vec<_> = ca.spec.ekus.iter().map(|e| e.oid()).collect();
        // Lint the TBS first; the HSM signs it once, and only if the lint passes.
        let cert = x509::issue_linted(
            profile,
            serial,
            validity,
            req.spki.clone(),
            &signer,
            |tbs| leaf::lint(tbs, &ca_cert, &ca_ekus),
        )
        .map_err(internal)?;
        // The signature verifies with the CA's certificate (a token fault shows here).
        x509::verify_issued_by(&cert, &ca_cert).map_err(|e| internal(format!("signature: {e}")))?;
        let (nb, na) = x509::cert_window(&cert);
        let serial = hex::encode(cert.tbs_certificate().serial_number().as_bytes());
        let rec = CertRecord {
            ca: ca.spec.name.to_string(),
            serial: serial.clone(),
            profile: spec.name.to_string(),
            transaction_id: transaction_id.to_owned(),
            subject: req.subject.to_string(),
            sans: req.sans.clone(),
            not_before: nb,
            not_after: na,
            issued_at: now,
            key_hash: key_hash(&req.spki)?,
            der: cert.to_der().map_err(internal)?,
            revoked_at: None,
            renewed_from,
        };
        let ck = cert_key(&rec.ca, &serial);
        let mut batch = crate::store::Batch {
            absent: vec![(Table::Certs, ck.clone())],
            audit: Some(
                crate::store::Note::new(
                    actor,
                    "issue",
                    format!(
                        "{serial} {} profile {} transaction {transaction_id}",
                        rec.subject, rec.profile
                    ),
                )
                .ca(&rec.ca),
            ),
            ..Default::default()
        };
        batch.put(Table::Certs, &ck, &rec).map_err(internal)?;
        crate::store::indexes::index_issued(&mut batch, &rec).map_err(internal)?;
        batch
            .put(
                Table::Transactions,
                txk,
                &TransactionRecord {
                    key_hash: rec.key_hash.clone(),
                    cert: Some(ck.clone()),
                    pending: false,
                    rejected: None,
                },
            )
            .map_err(internal)?;
        if let Some(sealed) = escrow {
            batch.put(Table::Escrow, &ck, sealed).map_err(internal)?;
        }
        if let Some(csr) = intune_csr {
            batch
                .put(
                    Table::Unnotified,
                    &ck,
                    &Self::unnotified(txk, transaction_id, csr),
                )
                .map_err(internal)?;
        }
        let commit = self.submit_batch(one_time, nonce, transaction_id, batch)?;
        Ok(Issued {
            rec,
            commit,
            intune_csr: intune_csr.map(<[u8]>::to_vec),
        })
    }

    /// Hand a batch to the group committer, consuming the one-time challenge or nonce in
    /// the same transaction (refused if another request used it first): two concurrent
    /// uses of one challenge give exactly one success.
    fn submit_batch(
        &self,
        one_time: &Option<String>,
        nonce: &Option<(String, i64)>,
        transaction_id: &str,
        mut batch: crate::store::Batch,
    ) -> Result<crate::store::commit::PendingCommit, ScepError> {
        batch.use_challenge = one_time.clone().map(|k| (k, transaction_id.to_owned()));
        batch.use_nonce = nonce.clone();
        self.committer.submit(batch).map_err(internal)
    }

    fn authorise_challenge(
        &self,
        spec: &ProfileSpec,
        req: &LeafRequest,
    ) -> Result<Authorised, ScepError> {
        let challenge = req
            .challenge
            .as_deref()
            .ok_or_else(|| ScepError::bad_request("the request has no challengePassword"))?;
        match &spec.challenge {
            // `scep_profile` does not find pkcs profiles; this is the second lock.
            ChallengeMode::None => Err(ScepError::bad_request("this profile has no SCEP")),
            ChallengeMode::Static { secret_hash } => {
                let given = proto::profile::static_hash(challenge);
                if constant_time_eq(given.as_bytes(), secret_hash.as_bytes()) {
                    Ok(Authorised::Static)
                } else {
                    Err(ScepError::bad_request("wrong challenge password"))
                }
            }
            ChallengeMode::Intune | ChallengeMode::Webhook => Ok(Authorised::Outside(
                spec.challenge
                    .validator()
                    .ok_or_else(|| internal("no validator"))?,
            )),
            ChallengeMode::OneTime => {
                let key = challenge::one_time_key(challenge);
                let c: OneTime = self
                    .store
                    .get(Table::Challenges, &key)
                    .map_err(internal)?
                    .ok_or_else(|| ScepError::bad_request("unknown challenge password"))?;
                if c.profile != spec.name.as_str() {
                    return Err(ScepError::bad_request(
                        "this challenge was minted for another profile",
                    ));
                }
                if c.used_by.is_some() {
                    return Err(ScepError::bad_request(
                        "the one-time challenge was already used",
                    ));
                }
                if crate::now() >= c.expires_at {
                    return Err(ScepError::bad_request("the one-time challenge has expired"));
                }
                check_binding(req, c.subject.as_deref(), &c.sans)?;
                Ok(Authorised::OneTime(key))
            }
            ChallengeMode::Signed { keys } => {
                let claims =
                    proto::challenge::verify(challenge, keys).map_err(ScepError::bad_request)?;
                if claims.profile != spec.name.as_str() {
                    return Err(ScepError::bad_request(
                        "the signed challenge is for another profile",
                    ));
                }
                if crate::now() >= claims.exp {
                    return Err(ScepError::bad_request("the signed challenge has expired"));
                }
                check_binding(req, Some(&claims.sub), &claims.sans)?;
                if claims.sans.is_empty() && !req.sans.is_empty() {
                    return Err(ScepError::bad_request(
                        "the request has SANs the signed challenge does not bind",
                    ));
                }
                let k = format!("{}\0{}", spec.name, claims.nonce);
                if self
                    .store
                    .get::<i64>(Table::Nonces, &k)
                    .map_err(internal)?
                    .is_some()
                {
                    return Err(ScepError::bad_request(
                        "the signed challenge was already used",
                    ));
                }
                Ok(Authorised::Nonce(k, claims.exp))
            }
        }
    }

    /// RenewalReq (RFC 8894 §3.3.1.2): signed by a current certificate of this CA,
    /// not revoked, inside the renewal window, same subject, no new SANs.
    fn authorise_renewal(
        &self,
        spec: &ProfileSpec,
        ca: &CaRecord,
        msg: &PkiMessage,
        req: &LeafRequest,
    ) -> Result<String, ScepError> {
        let old = &msg.signer_cert;
        let serial = hex::encode(old.tbs_certificate().serial_number().as_bytes());
        let key = cert_key(ca.spec.name.as_str(), &serial);
        let rec: CertRecord = self
            .store
            .get(Table::Certs, &key)
            .map_err(internal)?
            .ok_or_else(|| {
                ScepError::bad_cert_id("the renewal is not signed by a certificate this CA issued")
            })?;
        if rec.der != old.to_der().map_err(internal)? {
            return Err(ScepError::bad_cert_id(
                "the renewal is not signed by a certificate this CA issued",
            ));
        }
        if rec.revoked_at.is_some() {
            return Err(ScepError::bad_cert_id("the current certificate is revoked"));
        }
        let now = crate::now();
        if now >= rec.not_after {
            return Err(ScepError::bad_cert_id(
                "the current certificate has expired: enrol again",
            ));
        }
        let opens = rec.not_after - spec.renewal_window.secs() as i64;
        if now < opens {
            return Err(ScepError::bad_request(format!(
                "too early to renew: renewal opens {} days before expiry",
                spec.renewal_window.secs() / 86400
            )));
        }
        if !leaf::same_name(&req.subject, old.tbs_certificate().subject()) {
            return Err(ScepError::bad_request("a renewal must keep the subject"));
        }
        if req.sans.iter().any(|s| !rec.sans.contains(s)) {
            return Err(ScepError::bad_request("a renewal cannot add SANs"));
        }
        Ok(key)
    }

    fn poll(
        &self,
        spec: &ProfileSpec,
        msg: &PkiMessage,
        alg: ContentAlg,
    ) -> Result<Outcome, ScepError> {
        // A pending renewal is keyed by the certificate that signs the poll.
        let renewal = renewal_tx_key(spec.name.as_str(), msg);
        let plain = tx_key(spec.name.as_str(), &msg.transaction_id);
        let mut found = None;
        for (k, by_renewal) in [(renewal, true), (plain, false)] {
            if let Some(t) = self
                .store
                .get::<TransactionRecord>(Table::Transactions, &k)
                .map_err(internal)?
            {
                found = Some((t, by_renewal));
                break;
            }
        }
        let (t, by_renewal) =
            found.ok_or_else(|| ScepError::bad_cert_id("no request with this transactionID"))?;
        if !by_renewal
            && t.key_hash != key_hash(msg.signer_cert.tbs_certificate().subject_public_key_info())?
        {
            return Err(ScepError::bad_cert_id(
                "no request with this transactionID for this key",
            ));
        }
        if let Some(r) = t.rejected {
            return Err(ScepError::bad_request(format!(
                "the request was rejected: {r}"
            )));
        }
        match t.cert {
            Some(c) => self.success(&self.stored_cert(&c)?, alg),
            None => Ok(Outcome::Pending),
        }
    }

    /// GetCert (RFC 8894 §3.3.4): IssuerAndSerialNumber of a certificate this CA issued.
    fn get_cert(
        &self,
        ca: &CaRecord,
        content: &[u8],
        alg: ContentAlg,
    ) -> Result<Outcome, ScepError> {
        let ias = cms::cert::IssuerAndSerialNumber::from_der(content)
            .map_err(|_| ScepError::bad_request("GetCert needs an IssuerAndSerialNumber"))?;
        let serial = hex::encode(ias.serial_number.as_bytes());
        let rec: CertRecord = self
            .store
            .get(Table::Certs, &cert_key(ca.spec.name.as_str(), &serial))
            .map_err(internal)?
            .ok_or_else(|| ScepError::bad_cert_id("no such certificate"))?;
        let cert = Certificate::from_der(&rec.der).map_err(internal)?;
        if cert.tbs_certificate().issuer() != &ias.issuer {
            return Err(ScepError::bad_cert_id(
                "no such certificate from this issuer",
            ));
        }
        Ok(Outcome::Success {
            certs: vec![cert],
            alg,
        })
    }

    /// Issue a request that waited for manual approval (`castellan request approve`).
    pub fn approve_request(&self, id: &str, officer: &str) -> crate::Result<CertRecord> {
        let p: PendingRecord = self.store.get(Table::Pending, id)?.ok_or_else(|| {
            crate::Error::NotFound(crate::error::Missing::PendingRequest(id.to_owned()))
        })?;
        let spec = self.cas.profile(&p.profile)?;
        let ca = self
            .store
            .ca(spec.ca.as_str())?
            .ok_or(crate::Error::NotFound(crate::error::Missing::PendingCa))?;
        if ca.status != CaStatus::Active {
            return Err(crate::Error::Conflict(crate::error::Clash::CaStatus {
                name: ca.spec.name.to_string(),
                status: ca.status,
            }));
        }
        let req = leaf::parse_csr(&p.csr, spec.legacy_algorithms).map_err(admin_error)?;
        let rec = self
            .issue_leaf(
                &spec,
                &ca,
                &req,
                &p.transaction_id,
                &p.tx_key,
                p.renewed_from.clone(),
                &None,
                &None,
                None,
                "scep",
                None,
            )
            .and_then(Issued::finish)
            .map_err(admin_error)?;
        self.store.write(|tx| {
            tx.delete(Table::Pending, id)?;
            tx.record(
                crate::store::Note::new(
                    officer,
                    "approve-request",
                    format!("{id}: issued {} {}", rec.ca, rec.serial),
                )
                .ca(&rec.ca),
            )
        })?;
        Ok(rec)
    }

    /// Refuse a request that waited for manual approval.
    pub fn reject_request(&self, id: &str, officer: &str, reason: &str) -> crate::Result<()> {
        let p: PendingRecord = self.store.get(Table::Pending, id)?.ok_or_else(|| {
            crate::Error::NotFound(crate::error::Missing::PendingRequest(id.to_owned()))
        })?;
        let txk = p.tx_key.clone();
        self.store.write(|tx| {
            let mut t: TransactionRecord =
                tx.get(Table::Transactions, &txk)?
                    .ok_or(crate::Error::Store(
                        crate::error::StoreError::TransactionMissing,
                    ))?;
            t.pending = false;
            t.rejected = Some(if reason.is_empty() {
                format!("rejected by {officer}")
            } else {
                reason.to_owned()
            });
            tx.put(Table::Transactions, &txk, &t)?;
            tx.delete(Table::Pending, id)?;
            tx.audit(officer, "reject-request", format!("{id}: {reason}"))
        })
    }
}

/// How a PKCSReq was authorised.
enum Authorised {
    Static,
    /// The one-time challenge to consume (its store key).
    OneTime(String),
    /// The signed challenge's nonce key and expiry.
    Nonce(String, i64),
    /// The connector must ask this service (after the signer's own checks).
    Outside(proto::mdm::Validator),
}

/// If a challenge binds a subject or SANs, the request must have exactly those.
fn check_binding(req: &LeafRequest, subject: Option<&str>, sans: &[San]) -> Result<(), ScepError> {
    use std::str::FromStr;
    if let Some(s) = subject {
        let bound = x509_cert::name::Name::from_str(s)
            .map_err(|_| ScepError::bad_request("the challenge binds a malformed subject"))?;
        if !leaf::same_name(&bound, &req.subject) {
            return Err(ScepError::bad_request(
                "the request's subject is not the one the challenge was issued for",
            ));
        }
    }
    if !sans.is_empty() {
        let mut want = sans.to_vec();
        want.sort();
        want.dedup();
        if want != req.sans {
            return Err(ScepError::bad_request(
                "the request's SANs are not the ones the challenge was issued for",
            ));
        }
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// GetCACaps (RFC 8894 §3.5.2) for a profile.
pub fn caps(spec: &ProfileSpec) -> Vec<String> {
    let mut c: Vec<String> = [
        "AES",
        "POSTPKIOperation",
        "SHA-256",
        "SHA-512",
        "SCEPStandard",
        "Renewal",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if spec.legacy_algorithms {
        c.push("DES3".into());
        c.push("SHA-1".into());
    }
    c
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An operator approving a request is told "invalid" only for the request's faults;
    /// an HSM or store fault on the way is internal (HTTP 500, CLI exit 1).
    #[test]
    fn approval_faults_are_internal_and_refusals_invalid() {
        let fault = admin_error(internal("C_Sign: CKR_DEVICE_ERROR"));
        assert!(matches!(fault, crate::Error::Internal(_)), "{fault:?}");
        assert_eq!(fault.http_status(), 500);
        let refusal = admin_error(ScepError::bad_request("a renewal cannot add SANs"));
        assert!(matches!(refusal, crate::Error::Invalid(_)), "{refusal:?}");
        assert_eq!(refusal.http_status(), 400);
    }

    /// One enrolment through the whole SCEP pipeline, the token replaced by software keys:
    /// the strict client's PKCSReq to the NDES recipient gets a SUCCESS with a certificate
    /// issued by the profile's CA, stored; a wrong challenge gets a signed FAILURE
    /// (badRequest) and stores nothing.
    #[test]
    fn an_enrolment_succeeds_and_a_wrong_challenge_stores_nothing() {
        use crate::testkit::{Kit, profile};
        use proto::governance::Operation;
        use scep::client::{self, Device, RecipientChoice, RequestSpec};
        let kit = Kit::new().unwrap();
        kit.two_tier().unwrap();
        kit.run(Operation::CreateProfile {
            spec: profile("devices", RaLayout::Split, "s3cret").unwrap(),
        })
        .unwrap();
        let enroll = kit.signer.enroll();
        let Reply::CaCert { der, ra: true } = enroll.scep(Op::GetCaCert {
            profile: "devices".into(),
        }) else {
            panic!("GetCACert");
        };
        let bag = client::ca_certs(&der).unwrap();
        let recipients = client::recipients(&bag, RecipientChoice::Ndes).unwrap();
        let ra = client::reply_signer(&bag).unwrap().clone();
        let ca = client::issuing_ca(&bag).unwrap().clone();
        let attempt = |challenge: &str| {
            let device = Device::generate(2048, "CN=laptop-1,O=Castellan tests").unwrap();
            let csr = device
                .csr("CN=laptop-1,O=Castellan tests", Some(challenge))
                .unwrap();
            let spec = RequestSpec::pkcs_req(&client::transaction_id(&device).unwrap());
            let req = client::request(&device, &csr, &recipients, &spec).unwrap();
            let Reply::CertRep { der } = enroll.scep(Op::PkiOperation {
                profile: "devices".into(),
                message: req.der,
            }) else {
                panic!("PKIOperation");
            };
            client::read_reply(&der, &ra, &device).unwrap()
        };
        let certs = || {
            kit.signer
                .store()
                .values::<CertRecord>(Table::Certs)
                .unwrap()
                .len()
        };

        let wrong = attempt("not-the-secret");
        assert_eq!(wrong.status, "2");
        assert_eq!(wrong.fail_info.as_deref(), Some("2"), "badRequest");
        assert_eq!(certs(), 0);

        let ok = attempt("s3cret");
        assert_eq!(ok.status, "0", "{:?}", ok.fail_info_text);
        x509::verify_issued_by(&ok.certs[0], &ca).unwrap();
        assert_eq!(certs(), 1);
    }
}
