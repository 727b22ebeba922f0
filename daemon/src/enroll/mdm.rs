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
                        tx.audit(
                            ACTOR,
                            "intune-notified",
                            format!(
                                "{} {} transaction {}",
                                rec.ca, rec.serial, row.transaction_id
                            ),
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
                    return Err(crate::Error::Conflict(
                        crate::error::Clash::AlreadyRevoked {
                            serial: rec.serial.clone(),
                            ca: rec.ca.clone(),
                        },
                    ));
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
mod tests {
    use super::*;

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
