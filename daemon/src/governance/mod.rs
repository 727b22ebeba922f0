//! Quorum governance on the signer's side: checking a new proposal body, and verifying
//! approvals against officers' registered certificates (the types and the canonical digest
//! are `proto::governance`).

use proto::governance::{Approval, MAX_SKEW_SECS, MAX_TTL_SECS, ProposalBody, approval_message};

use crate::{Error, Result};

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
    crate::issuance::x509::verify_signature(
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
    use proto::governance::{DEFAULT_TTL_SECS, Operation};
    use proto::model::CaName;

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
    fn approvals_verify_only_over_their_digest() {
        // An officer key and certificate made once with openssl, for this test only.
        let key = include_bytes!("../../testdata/officer.key");
        let cert_pem = include_bytes!("../../testdata/officer.pem");
        let cert = crate::issuance::x509::parse_certificates(cert_pem, "t")
            .unwrap()
            .remove(0);
        let cert_der = der::Encode::to_der(&cert).unwrap();
        let d = body().digest().unwrap();
        let a = cli::officer::sign_approval(key, &d, "alice").unwrap();
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
