//! Profiles whose challenges an outside service decides (`intune`, `webhook`), through the
//! castellan-mdm connector ([`proto::mdm`]).
//!
//! For an `intune` profile, after the signer's own checks passed:
//! 1. ask the connector to validate (Intune's `validateRequest`); anything but allow is a
//!    FAILURE badRequest and nothing is issued;
//! 2. issue as usual; the certificate's record carries an [`Unnotified`] row, written in
//!    the same transaction, so a certificate Intune was not told about is always known;
//! 3. once it is durable, notify success (`successNotification`); only then does the
//!    CertRep leave the signer, and the row is removed;
//! 4. if the notification fails, the certificate is revoked (cessationOfOperation), its
//!    transaction marked rejected (a retry gets the same FAILURE), all in one transaction,
//!    and Intune gets a `failureNotification`;
//! 5. if validation passed but issuance failed, Intune gets a `failureNotification`;
//! 6. a row left behind (the signer killed between 2 and 3) is notified again by the
//!    sweep once past its deadline, or the certificate is withdrawn as in 4.
//!
//! A retry of a transaction whose row still exists notifies before it delivers.

use std::fmt::Debug;

use base64::Engine;
use proto::mdm::{Answer, Op, Validator};
use proto::profile::ProfileSpec;
use scep::{FailInfo, ScepError};
use sha1::Digest;

use super::Enroll;
use crate::store::Table;
use crate::store::rows::{CertRecord, TransactionRecord, Unnotified};

/// How long an unnotified certificate may wait before the sweep acts (well beyond the
/// connector's own timeouts, so it never races a request still in flight).
pub const NOTIFY_DEADLINE_SECS: i64 = 300;

/// The actor the audit trail names for what the connector caused.
pub const ACTOR: &str = "mdm-connector";

/// The signer's side of the connector socket: one call, one answer. Every failure to reach
/// the connector is an [`Answer::Unavailable`], which refuses.
pub trait Connector: Send + Sync + Debug {
    fn call(&self, op: Op) -> Answer;
}

/// No `[mdm]` section: every MDM-decided request is refused with a clear reason.
#[derive(Debug)]
pub struct NoConnector;

impl Connector for NoConnector {
    fn call(&self, _op: Op) -> Answer {
        Answer::Unavailable {
            reason: "no castellan-mdm connector is configured ([mdm] in signer.toml)".into(),
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The HRESULT a failureNotification carries: the customer bit plus the SCEP failInfo,
/// so the Intune console shows which of RFC 8894's reasons it was (docs/mdm.md).
pub fn hresult(info: FailInfo) -> i64 {
    0x2000_0000
        + match info {
            FailInfo::BadAlg => 0,
            FailInfo::BadMessageCheck => 1,
            FailInfo::BadRequest => 2,
            FailInfo::BadTime => 3,
            FailInfo::BadCertId => 4,
        }
}

impl Enroll {
    /// Step 1: the connector's verdict on a request the signer already checked.
    pub(super) fn validate_outside(
        &self,
        validator: Validator,
        spec: &ProfileSpec,
        transaction_id: &str,
        csr_der: &[u8],
        req: &crate::issuance::leaf::LeafRequest,
        challenge: &str,
    ) -> Result<(), ScepError> {
        let who = match validator {
            Validator::Intune => "Intune",
            Validator::Webhook => "the webhook",
        };
        let answer = self.connector.call(Op::Validate {
            validator,
            profile: spec.name.to_string(),
            transaction_id: transaction_id.to_owned(),
            csr: b64(csr_der),
            challenge: challenge.to_owned(),
            subject: req.subject.to_string(),
            sans: req.sans.iter().map(ToString::to_string).collect(),
        });
        match answer {
            Answer::Allow => Ok(()),
            Answer::Deny { reason } => {
                tracing::warn!(profile = %spec.name, transaction = transaction_id, %reason, "{who} refused a request (it may be an attack)");
                Err(ScepError::bad_request(format!(
                    "{who} refused the request: {reason}"
                )))
            }
            Answer::Unavailable { reason } => {
                tracing::warn!(profile = %spec.name, transaction = transaction_id, %reason, "the challenge could not be validated");
                Err(ScepError::bad_request(format!(
                    "the challenge could not be validated by {who}: {reason}"
                )))
            }
            Answer::Done => Err(ScepError::bad_request(
                "the connector answered a validation with something else",
            )),
        }
    }

    /// The row written with an `intune` profile's certificate (step 2).
    pub(super) fn unnotified(tx_key: &str, transaction_id: &str, csr: &[u8]) -> Unnotified {
        Unnotified {
            tx_key: tx_key.to_owned(),
            transaction_id: transaction_id.to_owned(),
            csr: csr.to_vec(),
            deadline: crate::now() + NOTIFY_DEADLINE_SECS,
        }
    }

    /// Steps 3 and 4 for a durable certificate with an [`Unnotified`] row: Ok means it
    /// may be delivered.
    pub(super) fn notify_issued(&self, rec: &CertRecord) -> Result<(), ScepError> {
        let key = super::cert_key(&rec.ca, &rec.serial);
        let Some(row) = self
            .store
            .get::<Unnotified>(Table::Unnotified, &key)
            .map_err(super::internal)?
        else {
            return Ok(());
        };
        let issuer = self
            .store
            .ca(&rec.ca)
            .map_err(super::internal)?
            .and_then(|ca| ca.cert)
            .and_then(|der| <x509_cert::Certificate as der::Decode>::from_der(&der).ok())
            .map(|c| c.tbs_certificate().subject().to_string())
            .unwrap_or_default();
        let answer = self.connector.call(Op::NotifySuccess {
            profile: rec.profile.clone(),
            transaction_id: row.transaction_id.clone(),
            csr: b64(&row.csr),
            thumbprint: hex::encode(sha1::Sha1::digest(&rec.der)),
            serial: proto::mdm::intune_serial(&rec.serial),
            expires: proto::mdm::intune_time(rec.not_after),
            issuer,
            ca: rec.ca.clone(),
        });
        let reason = match answer {
            Answer::Done => {
                self.store
                    .write(|tx| {
                        tx.delete(Table::Unnotified, &key)?;
                        tx.record(
                            crate::store::Note::new(
                                ACTOR,
                                "intune-notified",
                                format!(
                                    "{} {} transaction {}",
                                    rec.ca, rec.serial, row.transaction_id
                                ),
                            )
                            .ca(&rec.ca),
                        )
                    })
                    .map_err(super::internal)?;
                return Ok(());
            }
            Answer::Deny { reason } | Answer::Unavailable { reason } => reason,
            Answer::Allow => "the connector answered a notification with something else".into(),
        };
        tracing::warn!(ca = %rec.ca, serial = %rec.serial, %reason, "Intune was not told about a certificate: withdrawing it");
        self.withdraw(rec, &row, &reason)?;
        let text = format!(
            "the certificate was withdrawn because Intune could not be told about it: {reason}"
        );
        self.notify_failure(
            &rec.profile,
            &row.transaction_id,
            &row.csr,
            &ScepError::bad_request(text.clone()),
        );
        Err(ScepError::bad_request(text))
    }

    /// Revoke a certificate Intune was not told about and mark its transaction rejected, in
    /// one transaction; nothing happens if the row is gone (someone else finished it).
    fn withdraw(&self, rec: &CertRecord, row: &Unnotified, reason: &str) -> Result<(), ScepError> {
        let key = super::cert_key(&rec.ca, &rec.serial);
        let res = self.revocation.revoke_cert_with(
            ACTOR,
            &rec.ca,
            &rec.serial,
            crl::Reason::CessationOfOperation,
            |tx, _| {
                if !tx.delete(Table::Unnotified, &key)? {
                    return Err(crate::Error::Conflict(crate::error::Clash::AlreadySettled(
                        rec.serial.clone(),
                    )));
                }
                let mut t: TransactionRecord =
                    tx.get(Table::Transactions, &row.tx_key)?
                        .unwrap_or(TransactionRecord {
                            key_hash: rec.key_hash.clone(),
                            cert: None,
                            pending: false,
                            rejected: None,
                        });
                t.rejected = Some(format!(
                    "Intune could not be told about the certificate: {reason}"
                ));
                tx.put(Table::Transactions, &row.tx_key, &t)?;
                tx.audit(
                    ACTOR,
                    "intune-withdrawn",
                    format!(
                        "{} {} transaction {}: {reason}",
                        rec.ca, rec.serial, row.transaction_id
                    ),
                )
            },
        );
        match res {
            Ok(_) | Err(crate::Error::Conflict(_)) => Ok(()),
            Err(e) => Err(super::internal(e)),
        }
    }

    /// Step 5 (and 4): tell Intune nothing was issued. Best effort: the device gets the
    /// FAILURE whatever the connector answers.
    pub(super) fn notify_failure(
        &self,
        profile: &str,
        transaction_id: &str,
        csr: &[u8],
        e: &ScepError,
    ) {
        let answer = self.connector.call(Op::NotifyFailure {
            profile: profile.to_owned(),
            transaction_id: transaction_id.to_owned(),
            csr: b64(csr),
            hresult: hresult(e.info),
            description: Answer::reason(e.text.clone()),
        });
        if answer != Answer::Done {
            tracing::warn!(
                profile,
                transaction = transaction_id,
                ?answer,
                "Intune's failureNotification was not accepted"
            );
        }
    }

    /// Step 6: notify (or withdraw) every certificate whose row is past its deadline.
    /// Returns how many rows were settled.
    pub fn sweep_unnotified(&self) -> crate::Result<usize> {
        let now = crate::now();
        let rows: Vec<(String, Unnotified)> = self.store.scan(Table::Unnotified, "", None, 1000)?;
        let mut settled = 0;
        for (key, _) in rows.into_iter().filter(|(_, r)| r.deadline <= now) {
            let Some(rec) = self.store.get::<CertRecord>(Table::Certs, &key)? else {
                continue;
            };
            // Ok: notified now (a retry delivers it); Err: withdrawn.
            let _ = self.notify_issued(&rec);
            settled += 1;
        }
        Ok(settled)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use der::Encode;
    use proto::wire::{Op as WireOp, Reply};
    use scep::client::{self, Device, RecipientChoice, RequestSpec};
    use x509_cert::ext::Extension;

    /// Intune as the signer meets it through the connector: allows `intune-ok`, accepts
    /// notifications unless told to fail them, and records every call.
    #[derive(Debug, Default)]
    struct FakeIntune {
        fail_notifications: AtomicBool,
        calls: Mutex<Vec<Op>>,
    }

    impl Connector for FakeIntune {
        fn call(&self, op: Op) -> Answer {
            self.calls.lock().unwrap().push(op.clone());
            match op {
                Op::Validate { challenge, .. } if challenge == "intune-ok" => Answer::Allow,
                Op::Validate { .. } => Answer::Deny {
                    reason: "ChallengeExpired".into(),
                },
                Op::NotifySuccess { .. } if self.fail_notifications.load(Ordering::SeqCst) => {
                    Answer::Unavailable {
                        reason: "HTTP 500".into(),
                    }
                }
                _ => Answer::Done,
            }
        }
    }

    const SID_URI: &str = "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-1001";
    const SID_EXT: &str = "1.3.6.1.4.1.311.25.2";

    struct Bench {
        kit: crate::testkit::Kit,
        fake: Arc<FakeIntune>,
        bag: Vec<x509_cert::Certificate>,
    }

    fn bench() -> Bench {
        use crate::testkit::{Kit, profile};
        let fake = Arc::new(FakeIntune::default());
        let kit = Kit::with_connector(fake.clone()).unwrap();
        kit.two_tier().unwrap();
        let mut spec = profile("phones", proto::profile::RaLayout::Split, "unused").unwrap();
        spec.challenge = proto::profile::ChallengeMode::Intune;
        spec.san_types = vec![proto::profile::SanType::Uri];
        kit.run(proto::governance::Operation::CreateProfile { spec })
            .unwrap();
        let Reply::CaCert { der, ra: true } = kit.signer.enroll().scep(WireOp::GetCaCert {
            profile: "phones".into(),
        }) else {
            panic!("GetCACert");
        };
        let bag = client::ca_certs(&der).unwrap();
        Bench { kit, fake, bag }
    }

    impl Bench {
        /// A PKCSReq with the SID URI SAN and a SID extension, as an Intune device sends it.
        fn request(&self, device: &Device, challenge: &str) -> (Vec<u8>, Vec<u8>) {
            use x509_cert::ext::pkix::SubjectAltName;
            use x509_cert::ext::pkix::name::GeneralName;
            let san = SubjectAltName(vec![GeneralName::UniformResourceIdentifier(
                der::asn1::Ia5String::new(SID_URI).unwrap(),
            )]);
            let exts = vec![
                Extension {
                    extn_id: const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
                    critical: false,
                    extn_value: der::asn1::OctetString::new(san.to_der().unwrap()).unwrap(),
                },
                Extension {
                    extn_id: SID_EXT.parse().unwrap(),
                    critical: false,
                    extn_value: der::asn1::OctetString::new(
                        der::asn1::OctetString::new(b"S-1-5-21-9-9-9-500".to_vec())
                            .unwrap()
                            .to_der()
                            .unwrap(),
                    )
                    .unwrap(),
                },
            ];
            let csr = device
                .csr_with("CN=phone-1", Some(challenge), exts)
                .unwrap();
            let recipients = client::recipients(&self.bag, RecipientChoice::Ndes).unwrap();
            let spec = RequestSpec::pkcs_req(&client::transaction_id(device).unwrap());
            let req = client::request(device, &csr, &recipients, &spec).unwrap();
            (req.der, csr)
        }

        fn send(&self, device: &Device, message: Vec<u8>) -> client::Reply {
            let Reply::CertRep { der } = self.kit.signer.enroll().scep(WireOp::PkiOperation {
                profile: "phones".into(),
                message,
            }) else {
                panic!("PKIOperation");
            };
            let ra = client::reply_signer(&self.bag).unwrap().clone();
            client::read_reply(&der, &ra, device).unwrap()
        }

        fn calls(&self) -> Vec<Op> {
            std::mem::take(&mut *self.fake.calls.lock().unwrap())
        }

        fn cert(&self, serial: &str) -> CertRecord {
            self.kit
                .signer
                .store()
                .get(Table::Certs, &format!("issuing\0{serial}"))
                .unwrap()
                .unwrap()
        }

        /// The row a signer stopped between issuing and notifying leaves behind.
        fn leave_unnotified(&self, serial: &str, csr: Vec<u8>, deadline: i64) {
            let row = Unnotified {
                tx_key: "phones\0lost".into(),
                transaction_id: "lost".into(),
                csr,
                deadline,
            };
            let key = format!("issuing\0{serial}");
            self.kit
                .signer
                .store()
                .write(|tx| tx.put(Table::Unnotified, &key, &row))
                .unwrap();
        }

        fn unnotified(&self) -> usize {
            self.kit
                .signer
                .store()
                .values::<Unnotified>(Table::Unnotified)
                .unwrap()
                .len()
        }
    }

    /// Validated, issued with the SID URI SAN but never the SID extension, notified with
    /// Intune's fields, delivered; a refused challenge issues nothing and notifies nothing.
    #[test]
    fn intune_requests_are_validated_issued_notified_and_the_sid_extension_dropped() {
        let b = bench();
        let device = Device::generate(2048, "CN=phone-1").unwrap();
        let (msg, csr) = b.request(&device, "intune-ok");
        let reply = b.send(&device, msg);
        assert_eq!(reply.status, "0", "{:?}", reply.fail_info_text);
        let cert = &reply.certs[0];
        let tbs = cert.tbs_certificate();
        let exts = tbs.extensions().unwrap();
        assert!(!exts.iter().any(|e| e.extn_id.to_string() == SID_EXT));
        let (_, san) = tbs
            .get_extension::<x509_cert::ext::pkix::SubjectAltName>()
            .unwrap()
            .unwrap();
        assert_eq!(
            format!("{:?}", san.0).matches(SID_URI).count(),
            1,
            "{san:?}"
        );
        let serial = hex::encode(tbs.serial_number().as_bytes());
        let calls = b.calls();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(
            matches!(&calls[0], Op::Validate { validator: Validator::Intune, csr: c, challenge, .. }
            if *c == b64(&csr) && challenge == "intune-ok")
        );
        let Op::NotifySuccess {
            serial: s,
            thumbprint,
            ca,
            csr: c,
            ..
        } = &calls[1]
        else {
            panic!("{calls:?}");
        };
        assert_eq!(*s, proto::mdm::intune_serial(&serial));
        assert_eq!(
            *thumbprint,
            hex::encode(sha1::Sha1::digest(cert.to_der().unwrap()))
        );
        assert_eq!((ca.as_str(), c), ("issuing", &b64(&csr)));
        assert_eq!(b.unnotified(), 0);

        let other = Device::generate(2048, "CN=phone-1").unwrap();
        let (msg, _) = b.request(&other, "forged");
        let reply = b.send(&other, msg);
        assert_eq!(reply.fail_info.as_deref(), Some("2"));
        assert!(reply.fail_info_text.unwrap().contains("ChallengeExpired"));
        assert_eq!(b.calls().len(), 1, "a refused validation is not notified");
    }

    /// A failed notification withdraws the certificate (revoked, transaction rejected, a
    /// retry gets the same FAILURE) and tells Intune; the sweep settles rows left behind
    /// by a signer that stopped between issuing and notifying.
    #[test]
    fn certificates_intune_was_not_told_about_are_withdrawn_or_notified_later() {
        let b = bench();
        b.fake.fail_notifications.store(true, Ordering::SeqCst);
        let device = Device::generate(2048, "CN=phone-1").unwrap();
        let (msg, _) = b.request(&device, "intune-ok");
        let reply = b.send(&device, msg.clone());
        assert_eq!(reply.fail_info.as_deref(), Some("2"));
        assert!(reply.certs.is_empty());
        assert!(reply.fail_info_text.unwrap().contains("withdrawn"));
        let calls = b.calls();
        let Some(Op::NotifyFailure { hresult, .. }) = calls.last() else {
            panic!("{calls:?}");
        };
        assert_eq!(*hresult, 0x2000_0002);
        let certs: Vec<CertRecord> = b.kit.signer.store().values(Table::Certs).unwrap();
        assert_eq!(certs.len(), 1);
        assert!(
            certs[0].revoked_at.is_some(),
            "the certificate is left valid"
        );
        assert_eq!(b.unnotified(), 0);
        // The same transaction again: the same refusal, no certificate.
        let again = b.send(&device, msg);
        assert_eq!(again.fail_info.as_deref(), Some("2"));
        assert!(
            again
                .fail_info_text
                .unwrap()
                .contains("Intune could not be told")
        );

        // Rows a stopped signer left behind: one that Intune now accepts, one it does not.
        b.fake.fail_notifications.store(false, Ordering::SeqCst);
        let mut serials = Vec::new();
        for _ in 0..2 {
            let d = Device::generate(2048, "CN=phone-1").unwrap();
            let (msg, csr) = b.request(&d, "intune-ok");
            let reply = b.send(&d, msg);
            assert_eq!(reply.status, "0");
            let serial = hex::encode(reply.certs[0].tbs_certificate().serial_number().as_bytes());
            b.leave_unnotified(&serial, csr, 0);
            serials.push(serial);
        }
        b.calls();
        assert_eq!(b.kit.signer.enroll().sweep_unnotified().unwrap(), 2);
        assert_eq!(b.unnotified(), 0);
        assert!(
            b.cert(&serials[0]).revoked_at.is_none(),
            "notified: stays valid"
        );
        assert!(b.cert(&serials[1]).revoked_at.is_none());
        // Now with Intune unreachable: withdrawn.
        b.fake.fail_notifications.store(true, Ordering::SeqCst);
        b.leave_unnotified(&serials[0], Vec::new(), 0);
        assert_eq!(b.kit.signer.enroll().sweep_unnotified().unwrap(), 1);
        assert!(b.cert(&serials[0]).revoked_at.is_some(), "withdrawn");
        assert_eq!(b.unnotified(), 0);
        // A row not yet past its deadline is left alone.
        b.leave_unnotified(&serials[1], Vec::new(), crate::now() + 60);
        assert_eq!(b.kit.signer.enroll().sweep_unnotified().unwrap(), 0);
        assert!(b.cert(&serials[1]).revoked_at.is_none());
    }

    #[test]
    fn hresults_carry_the_customer_bit_and_the_fail_info() {
        assert_eq!(hresult(FailInfo::BadRequest), 0x2000_0002);
        assert_eq!(hresult(FailInfo::BadAlg), 0x2000_0000);
        assert!(hresult(FailInfo::BadCertId) & 0x2000_0000 != 0);
    }

    #[test]
    fn without_a_connector_everything_is_refused_with_a_reason() {
        let a = NoConnector.call(Op::NotifyFailure {
            profile: "p".into(),
            transaction_id: "t".into(),
            csr: String::new(),
            hresult: 0,
            description: String::new(),
        });
        assert!(matches!(a, Answer::Unavailable { reason } if reason.contains("[mdm]")));
    }
}
