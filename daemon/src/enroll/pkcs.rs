//! PKCS certificates: the signer makes the device's key pair, issues its certificate
//! through the same path as SCEP (`issue_leaf`: profile policy, lint, one signature in the
//! token, durable in the store before anything is returned) and seals the key, the
//! certificate and the chain into a PKCS#12 file under a password. The private key lives
//! only in memory ([`zeroize::Zeroizing`]) until it is sealed; it is never stored or logged.

use std::str::FromStr;

use der::Encode;
use x509_cert::name::Name;
use zeroize::Zeroizing;

use super::{Enroll, Issued, admin_error};
use crate::ca::escrow;
use crate::issuance::leaf::{self, LeafRequest};
use crate::issuance::{keygen, pkcs12};
use crate::store::Table;
use crate::store::rows::CertRecord;
use crate::{Error, Result};
use proto::model::{CaStatus, San};
use proto::profile::P12Encoding;

/// Longest password accepted.
const MAX_PASSWORD: usize = 256;

/// What an admin asks for.
#[derive(Debug)]
pub struct Pkcs12Request {
    pub profile: String,
    pub subject: String,
    pub sans: Vec<San>,
    pub key: Option<hsm::KeySpec>,
    pub encoding: Option<P12Encoding>,
    pub password: Option<proto::Secret>,
}

/// What the admin gets.
pub struct Pkcs12Issued {
    pub ca: String,
    pub serial: String,
    pub p12: Vec<u8>,
    /// The password the signer made, if it made one.
    pub password: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Pkcs12Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pkcs12Issued({} {})", self.ca, self.serial)
    }
}

impl Enroll {
    /// Make a key pair, issue its certificate and return both as a PKCS#12 file. Everything
    /// that can be refused is checked before the key is made; the certificate is durable
    /// before the file exists.
    pub fn issue_pkcs12(&self, officer: &str, r: Pkcs12Request) -> Result<Pkcs12Issued> {
        let spec = self.cas.profile(&r.profile)?;
        let policy = spec.pkcs.as_ref().ok_or_else(|| {
            Error::Invalid(format!(
                "profile {} is a SCEP profile: PKCS#12 files come from pkcs profiles",
                spec.name
            ))
        })?;
        let key = r.key.unwrap_or(policy.key_types[0]);
        if !policy.key_types.contains(&key) {
            return Err(Error::Invalid(format!(
                "profile {} generates {}, not {key}",
                spec.name,
                policy
                    .key_types
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let encoding = r.encoding.unwrap_or(policy.encoding);
        let (password, made) = match r.password {
            Some(p) if p.0.is_empty() || p.0.len() > MAX_PASSWORD => {
                return Err(Error::Invalid(format!(
                    "the password must have 1 to {MAX_PASSWORD} bytes"
                )));
            }
            Some(p) => (Zeroizing::new(p.0), false),
            None => (new_password()?, true),
        };
        let subject = Name::from_str(&r.subject)
            .map_err(|e| Error::Invalid(format!("subject {:?}: {e}", r.subject)))?;
        let ca = self
            .store
            .ca(spec.ca.as_str())?
            .ok_or_else(|| Error::NotFound(crate::error::Missing::Ca(spec.ca.to_string())))?;
        if ca.status != CaStatus::Active {
            return Err(Error::Conflict(crate::error::Clash::CaStatus {
                name: ca.spec.name.to_string(),
                status: ca.status,
            }));
        }
        // The names first, against the profile: nothing is generated for a refusal.
        leaf::check_names(&subject, &r.sans, &[], false, &spec).map_err(admin_error)?;

        let escrow_key = match policy.escrow {
            true => Some(self.cas.escrow_key(false)?.ok_or_else(|| {
                Error::Internal(crate::error::InternalError::Pkcs12(
                    "the profile escrows keys but the signer has no escrow key".into(),
                ))
            })?),
            false => None,
        };
        let device = keygen::generate(key)?;
        leaf::check_key(&device.spki, &spec).map_err(admin_error)?;
        let sealed = escrow_key
            .as_ref()
            .map(|k| escrow::seal(k, &device.pkcs8))
            .transpose()?;
        let req = LeafRequest {
            subject,
            sans: r.sans,
            spki: device.spki.clone(),
            challenge: None,
            requested_ekus: Vec::new(),
            requested_ca: false,
        };
        let transaction_id = format!("pkcs12-{}", hex::encode(random::<16>()?));
        let tx_key = format!("{}\0{transaction_id}", spec.name);
        let rec = self
            .issue_leaf(
                &spec,
                &ca,
                &req,
                &transaction_id,
                &tx_key,
                None,
                &None,
                &None,
                None,
                officer,
                sealed.as_ref(),
            )
            .and_then(Issued::finish)
            .map_err(admin_error)?;

        let p12 = self.seal_pkcs12(&ca, &rec, &req.subject, &device.pkcs8, &password, encoding)?;
        tracing::info!(ca = %rec.ca, serial = %rec.serial, profile = %rec.profile, %encoding, key = %key, "PKCS#12 issued");
        Ok(Pkcs12Issued {
            ca: rec.ca,
            serial: rec.serial,
            p12,
            password: made.then_some(password),
        })
    }
}

impl Enroll {
    /// The PKCS#12 file of a certificate and its key, with the CA's chain.
    fn seal_pkcs12(
        &self,
        ca: &crate::store::rows::CaRecord,
        rec: &CertRecord,
        subject: &Name,
        pkcs8: &[u8],
        password: &str,
        encoding: P12Encoding,
    ) -> Result<Vec<u8>> {
        let chain: Vec<Vec<u8>> = self
            .cas
            .chain(ca)?
            .iter()
            .map(|c| c.to_der())
            .collect::<std::result::Result<_, _>>()?;
        let friendly_name = friendly_name(subject, &rec.sans, &rec.serial);
        pkcs12::build(
            &pkcs12::Contents {
                key: pkcs8,
                cert: &rec.der,
                chain: &chain,
                friendly_name: &friendly_name,
            },
            password,
            encoding,
        )
    }

    /// The key of an executed `recover-key` proposal, for its proposer, once: opened with
    /// the escrow key in the token, checked against the certificate, sealed in a new
    /// PKCS#12 file under a new password. The fetch is recorded (and audited) before the
    /// file is returned; a second fetch is refused.
    pub fn recovered_pkcs12(
        &self,
        officer: &str,
        proposal: &str,
        encoding: Option<P12Encoding>,
    ) -> Result<Pkcs12Issued> {
        use proto::governance::{Operation, Status};
        let p = self
            .store
            .proposal(proposal)?
            .ok_or_else(|| Error::NotFound(crate::error::Missing::Proposal(proposal.into())))?;
        let Operation::RecoverKey { ca, serial } = &p.body.operation else {
            return Err(Error::Invalid(format!(
                "proposal {proposal} is not a key recovery"
            )));
        };
        let status = p.status_at(crate::now());
        if status != Status::Executed {
            return Err(Error::Conflict(crate::error::Clash::RecoveryNotApproved {
                proposal: proposal.to_owned(),
                status,
            }));
        }
        if p.body.proposer != officer {
            return Err(Error::Forbidden(
                crate::error::Denied::NotRecoveryProposer {
                    proposal: proposal.to_owned(),
                    proposer: p.body.proposer.clone(),
                },
            ));
        }
        if self
            .store
            .get::<serde::de::IgnoredAny>(Table::Recoveries, proposal)?
            .is_some()
        {
            return Err(Error::Conflict(crate::error::Clash::RecoveryFetched(
                proposal.to_owned(),
            )));
        }
        let key = crate::store::indexes::cert_key(ca.as_str(), serial);
        let rec: CertRecord = self.store.get(Table::Certs, &key)?.ok_or_else(|| {
            Error::NotFound(crate::error::Missing::Certificate {
                ca: ca.to_string(),
                serial: serial.clone(),
            })
        })?;
        let sealed: escrow::Escrowed = self.store.get(Table::Escrow, &key)?.ok_or_else(|| {
            Error::Invalid(format!(
                "certificate {serial} of CA {ca} has no escrowed key"
            ))
        })?;
        let pkcs8 = escrow::open(&self.keys, &sealed)?;
        if escrow::public_of(&pkcs8)? != escrow::cert_spki(&rec.der)? {
            return Err(Error::Internal(crate::error::InternalError::Pkcs12(
                format!("the escrowed key of {serial} is not its certificate's"),
            )));
        }
        let ca_rec = self
            .store
            .ca(ca.as_str())?
            .ok_or_else(|| Error::NotFound(crate::error::Missing::Ca(ca.to_string())))?;
        let encoding = encoding
            .or_else(|| {
                self.cas
                    .profile(&rec.profile)
                    .ok()
                    .and_then(|s| s.pkcs.map(|p| p.encoding))
            })
            .unwrap_or(P12Encoding::Modern);
        let subject = Name::from_str(&rec.subject).unwrap_or_default();
        let password = new_password()?;
        let p12 = self.seal_pkcs12(&ca_rec, &rec, &subject, &pkcs8, &password, encoding)?;
        let (ca_name, serial) = (ca.to_string(), serial.clone());
        self.store.write(|tx| {
            if tx
                .get::<serde::de::IgnoredAny>(Table::Recoveries, proposal)?
                .is_some()
            {
                return Err(Error::Conflict(crate::error::Clash::RecoveryFetched(
                    proposal.to_owned(),
                )));
            }
            tx.put(
                Table::Recoveries,
                proposal,
                &serde_json::json!({ "by": officer, "at": crate::now() }),
            )?;
            tx.record(
                crate::store::Note::new(
                    officer,
                    "key-recovered",
                    format!("{serial}: escrowed key fetched as PKCS#12 ({encoding})"),
                )
                .ca(&ca_name)
                .proposal(proposal),
            )
        })?;
        tracing::info!(ca = %ca_name, %serial, %proposal, "escrowed key recovered");
        Ok(Pkcs12Issued {
            ca: ca_name,
            serial,
            p12,
            password: Some(password),
        })
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        Error::Internal(crate::error::InternalError::Pkcs12(format!(
            "no randomness: {e}"
        )))
    })?;
    Ok(b)
}

/// 128 random bits as 26 base32 characters (no padding, no look-alike case).
fn new_password() -> Result<Zeroizing<String>> {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let bytes = Zeroizing::new(random::<17>()?);
    // 26 characters × 5 bits = 130 bits drawn from 136 random ones.
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Zeroizing::new(String::with_capacity(26));
    for b in bytes.iter() {
        bits = (bits << 8) | u32::from(*b);
        n += 8;
        while n >= 5 && out.len() < 26 {
            n -= 5;
            out.push(ALPHABET[((bits >> n) & 31) as usize] as char);
        }
    }
    Ok(out)
}

/// The name Windows and Apple show: the CN, else the first SAN, else the serial.
fn friendly_name(subject: &Name, sans: &[San], serial: &str) -> String {
    subject
        .iter()
        .find(|a| a.oid == const_oid::db::rfc4519::CN)
        .and_then(|a| leaf::directory_string(&a.value))
        .filter(|n| !n.is_empty())
        .or_else(|| sans.first().map(|s| s.value().to_owned()))
        .unwrap_or_else(|| serial.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn made_passwords_have_128_bits() {
        let a = new_password().unwrap();
        let b = new_password().unwrap();
        assert_eq!(a.len(), 26);
        assert_ne!(*a, *b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn friendly_names() {
        let n = Name::from_str("CN=Ada Lovelace,O=Example").unwrap();
        assert_eq!(friendly_name(&n, &[], "01"), "Ada Lovelace");
        let n = Name::from_str("O=Example").unwrap();
        let sans = [San::Email("ada@example.org".into())];
        assert_eq!(friendly_name(&n, &sans, "01"), "ada@example.org");
        assert_eq!(friendly_name(&n, &[], "01"), "01");
    }
}
