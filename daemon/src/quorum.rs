//! Quorum governance: every CA-changing operation is a proposal with a canonical
//! digest, executed once M distinct registered officers have signed that digest
//! before it expires.
//!
//! The digest is SHA-256 over `"castellan-proposal-v1\n"` followed by the JSON of
//! [`ProposalBody`] as serde_json writes it (fields in declaration order, no maps,
//! so the encoding is canonical). An approval is an officer's signature over
//! `"castellan-approval-v1\n" || digest`, with the key of the officer's registered
//! certificate. The CLI computes the digest itself from the body before signing,
//! so an officer never signs something the signer merely claims.

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::model::{CaName, CaSpec};
use crate::{Error, Result};

/// Default time a proposal stays open.
pub const DEFAULT_TTL_SECS: i64 = 24 * 3600;
/// Longest a proposal may stay open.
pub const MAX_TTL_SECS: i64 = 7 * 24 * 3600;
/// Clock skew tolerated between an officer's machine and the signer.
pub const MAX_SKEW_SECS: i64 = 300;

/// What a proposal will do, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Operation {
    /// Create a self-signed root CA.
    CreateRoot { spec: CaSpec },
    /// Create a CA signed by `parent`.
    CreateIssuing { parent: CaName, spec: CaSpec },
    /// Create a bring-your-own CA: key here, status signing-required, CSR to export.
    CreateByoca { spec: CaSpec },
    /// Install the externally signed certificate and its chain on a BYOCA.
    ImportCa {
        name: CaName,
        #[serde(with = "crate::b64")]
        cert: Vec<u8>,
        #[serde(with = "crate::b64::vec")]
        chain: Vec<Vec<u8>>,
    },
    /// Stop a CA from signing.
    DisableCa { name: CaName },
    /// Let a disabled CA sign again.
    EnableCa { name: CaName },
    /// Create a SCEP profile on an issuing CA (and the CA's RA key if it has none).
    CreateProfile { spec: crate::profile::ProfileSpec },
    /// Revoke an issuing CA: it goes on its parent's CRL and signs nothing more.
    RevokeCa { name: CaName, reason: String },
}

impl Operation {
    /// A one-line description for listings.
    pub fn summary(&self) -> String {
        match self {
            Operation::CreateRoot { spec } => format!("create root CA {}", spec.name),
            Operation::CreateIssuing { parent, spec } => {
                format!("create issuing CA {} under {parent}", spec.name)
            }
            Operation::CreateByoca { spec } => format!("create bring-your-own CA {}", spec.name),
            Operation::ImportCa { name, chain, .. } => format!(
                "import the signed certificate of {name} (+{} chain certificates)",
                chain.len()
            ),
            Operation::DisableCa { name } => format!("disable CA {name}"),
            Operation::EnableCa { name } => format!("enable CA {name}"),
            Operation::CreateProfile { spec } => {
                format!("create SCEP profile {} on CA {}", spec.name, spec.ca)
            }
            Operation::RevokeCa { name, reason } => format!("revoke CA {name} ({reason})"),
        }
    }
}

/// Exactly what the officers sign (through its digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalBody {
    /// 128 random bits, hex.
    pub id: String,
    pub operation: Operation,
    /// The officer who proposed it.
    pub proposer: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl ProposalBody {
    /// A new body with a random id, proposed now, expiring after `ttl` seconds.
    pub fn new(operation: Operation, proposer: &str, ttl: i64) -> Result<Self> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| Error::Encoding(e.to_string()))?;
        let now = crate::now();
        Ok(ProposalBody {
            id: hex::encode(id),
            operation,
            proposer: proposer.to_owned(),
            created_at: now,
            expires_at: now + ttl,
        })
    }

    /// The canonical digest (see the module docs).
    pub fn digest(&self) -> Result<[u8; 32]> {
        let mut h = sha2::Sha256::new();
        h.update(b"castellan-proposal-v1\n");
        h.update(serde_json::to_vec(self)?);
        Ok(h.finalize().into())
    }
}

/// The message an officer signs to approve a digest.
pub fn approval_message(digest: &[u8; 32]) -> Vec<u8> {
    let mut m = b"castellan-approval-v1\n".to_vec();
    m.extend_from_slice(digest);
    m
}

/// One officer's signature over a proposal digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub officer: String,
    /// X.509 signature algorithm OID (e.g. 1.2.840.10045.4.3.2 = ecdsa-with-SHA256).
    pub algorithm: String,
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
    pub at: i64,
}

/// Where a proposal stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pending,
    Executed,
    Rejected,
    Expired,
    /// Quorum was reached but the operation failed (nothing changed); the reason is kept.
    Failed,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pending => "pending",
            Status::Executed => "executed",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Failed => "failed",
        })
    }
}

/// A proposal as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub body: ProposalBody,
    /// Hex of [`ProposalBody::digest`].
    pub digest: String,
    pub quorum: u32,
    pub approvals: Vec<Approval>,
    pub status: Status,
    /// What happened when it ran, or why it failed / who rejected it.
    pub outcome: Option<String>,
}

impl Proposal {
    /// The status as of `now`: a pending proposal past its expiry is expired.
    pub fn status_at(&self, now: i64) -> Status {
        if self.status == Status::Pending && now >= self.body.expires_at {
            Status::Expired
        } else {
            self.status.clone()
        }
    }
}

/// Check a body a proposer sent: its clock, its lifetime, its proposer.
pub fn check_new_body(body: &ProposalBody, officer: &str, now: i64) -> Result<()> {
    if body.proposer != officer {
        return Err(Error::Forbidden(format!(
            "the proposal names {} as proposer but was sent by {officer}",
            body.proposer
        )));
    }
    if (body.created_at - now).abs() > MAX_SKEW_SECS {
        return Err(Error::Invalid(
            "the proposal's creation time is more than 5 minutes from the signer's clock".into(),
        ));
    }
    let ttl = body.expires_at - body.created_at;
    if ttl <= 0 || ttl > MAX_TTL_SECS {
        return Err(Error::Invalid(format!(
            "a proposal must expire within {} days",
            MAX_TTL_SECS / 86400
        )));
    }
    if body.id.len() != 32 || !body.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid("a proposal id is 32 hex digits".into()));
    }
    Ok(())
}

/// Sign an approval with an officer's private key (PEM: PKCS#8, SEC1 or PKCS#1).
pub fn sign_approval(key_pem: &[u8], digest: &[u8; 32], officer: &str) -> Result<Approval> {
    use rustls::SignatureScheme as S;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::Invalid(format!("cannot read the officer key: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::Invalid(format!("unsupported officer key: {e}")))?;
    let schemes = [
        S::ECDSA_NISTP384_SHA384,
        S::ECDSA_NISTP256_SHA256,
        S::RSA_PKCS1_SHA256,
    ];
    let signer = signing
        .choose_scheme(&schemes)
        .ok_or_else(|| Error::Invalid("the officer key must be ECDSA P-256/P-384 or RSA".into()))?;
    let algorithm = match signer.scheme() {
        S::ECDSA_NISTP384_SHA384 => "1.2.840.10045.4.3.3",
        S::ECDSA_NISTP256_SHA256 => "1.2.840.10045.4.3.2",
        _ => "1.2.840.113549.1.1.11",
    };
    let signature = signer
        .sign(&approval_message(digest))
        .map_err(|e| Error::Invalid(format!("signing the approval: {e}")))?;
    Ok(Approval {
        officer: officer.to_owned(),
        algorithm: algorithm.to_owned(),
        signature,
        at: crate::now(),
    })
}

/// Verify an approval against the officer's registered certificate.
pub fn verify_approval(approval: &Approval, officer_cert: &[u8], digest: &[u8; 32]) -> Result<()> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(officer_cert)?;
    let oid = const_oid::ObjectIdentifier::new(&approval.algorithm)
        .map_err(|_| Error::Invalid("unknown approval algorithm".into()))?;
    let rsa = oid == const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION;
    let alg = spki::AlgorithmIdentifierOwned {
        oid,
        parameters: rsa.then(|| der::asn1::AnyRef::NULL.into()),
    };
    crate::x509::verify_signature(
        cert.tbs_certificate().subject_public_key_info(),
        &alg,
        &approval_message(digest),
        &approval.signature,
    )
    .map_err(|_| {
        Error::Forbidden(format!(
            "the approval signature of {} does not match this proposal's digest (or was not made with the officer's registered key): nothing was counted",
            approval.officer
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::CaName;

    fn body() -> ProposalBody {
        ProposalBody::new(
            Operation::DisableCa {
                name: CaName::new("issuing").unwrap(),
            },
            "alice",
            DEFAULT_TTL_SECS,
        )
        .unwrap()
    }

    #[test]
    fn digest_covers_every_field() {
        let b = body();
        let d = b.digest().unwrap();
        assert_eq!(d, b.clone().digest().unwrap());
        let mut c = b.clone();
        c.expires_at += 1;
        assert_ne!(c.digest().unwrap(), d);
        let mut c = b.clone();
        c.operation = Operation::EnableCa {
            name: CaName::new("issuing").unwrap(),
        };
        assert_ne!(c.digest().unwrap(), d);
        let mut c = b;
        c.proposer = "bob".into();
        assert_ne!(c.digest().unwrap(), d);
    }

    #[test]
    fn new_bodies_are_checked() {
        let now = crate::now();
        let b = body();
        assert!(check_new_body(&b, "alice", now).is_ok());
        assert!(matches!(
            check_new_body(&b, "bob", now),
            Err(Error::Forbidden(_))
        ));
        let mut c = b.clone();
        c.expires_at = c.created_at + MAX_TTL_SECS + 1;
        assert!(check_new_body(&c, "alice", now).is_err());
        assert!(
            check_new_body(&b, "alice", now + 3600).is_err(),
            "clock far off"
        );
    }

    #[test]
    fn expiry_is_a_status() {
        let p = Proposal {
            digest: String::new(),
            quorum: 2,
            approvals: vec![],
            status: Status::Pending,
            outcome: None,
            body: body(),
        };
        assert_eq!(p.status_at(p.body.expires_at - 1), Status::Pending);
        assert_eq!(p.status_at(p.body.expires_at), Status::Expired);
    }

    #[test]
    fn approvals_verify_only_over_their_digest() {
        // An officer key and certificate made once with openssl, for this test only.
        let key = include_bytes!("../testdata/officer.key");
        let cert_pem = include_bytes!("../testdata/officer.pem");
        let cert = crate::x509::parse_certificates(cert_pem, "t")
            .unwrap()
            .remove(0);
        let cert_der = der::Encode::to_der(&cert).unwrap();
        let d = body().digest().unwrap();
        let a = sign_approval(key, &d, "alice").unwrap();
        assert!(verify_approval(&a, &cert_der, &d).is_ok());
        let other = body().digest().unwrap();
        assert!(matches!(
            verify_approval(&a, &cert_der, &other),
            Err(Error::Forbidden(_))
        ));
        let mut tampered = a.clone();
        tampered.signature[10] ^= 1;
        assert!(verify_approval(&tampered, &cert_der, &d).is_err());
    }
}
