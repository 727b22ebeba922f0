//! SCEP (RFC 8894) for Castellan: the message layer shared by castellan-edge
//! (which parses untrusted bytes first) and castellan-signer (which parses them
//! again, opens the envelope with the RA key in the HSM, and decides).
//!
//! No sockets and no runtime here, so every part can be unit-tested and fuzzed.
//! - [`message`]: parse a PKIMessage, check messageType first, messageDigest and signature;
//! - [`envelope`]: open and seal pkcsPKIEnvelopes (AES; DES/3DES for legacy profiles; no oracle);
//! - [`certrep`]: build signed CertReps (SUCCESS, FAILURE with failInfo + failInfoText, PENDING);
//! - [`client`]: a strict client (AES, SHA-256) for tests and `scep-bench`;
//! - [`wire`]: the signing socket's frames and its closed, versioned operation set.
#![forbid(unsafe_code)]

pub mod certrep;
pub mod client;
pub mod edge;
pub mod envelope;
pub mod error;
pub mod message;
pub mod oids;
pub mod wire;

pub use error::{FailInfo, ScepError};

/// The whole pipeline with software keys standing in for the HSM (unit tests only:
/// the integration tests use the RA key in SoftHSM2).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::OnceLock;

    use crate::certrep::{self, Outcome, ReplyTo};
    use crate::client::{self, Device, RequestSpec};
    use crate::envelope::{self, ContentAlg};
    use crate::message::{self, MessageType};
    use crate::{FailInfo, oids};

    fn ra() -> &'static Device {
        static RA: OnceLock<Device> = OnceLock::new();
        RA.get_or_init(|| Device::generate(2048, "CN=Test RA").unwrap())
    }
    fn device() -> &'static Device {
        static D: OnceLock<Device> = OnceLock::new();
        D.get_or_init(|| Device::generate(2048, "CN=device-1").unwrap())
    }

    fn unwrap_with_ra(ek: &[u8]) -> Option<Vec<u8>> {
        ra().key.decrypt(rsa::Pkcs1v15Encrypt, ek).ok()
    }

    fn build(spec: &RequestSpec) -> client::Request {
        let csr = device().csr("CN=device-1", Some("secret")).unwrap();
        client::request(device(), &csr, &ra().cert, spec).unwrap()
    }

    #[test]
    fn pkcs_req_round_trip_and_success_reply() {
        let req = build(&RequestSpec::pkcs_req("tx-1"));
        let msg = message::parse(&req.der, false).unwrap();
        assert_eq!(msg.message_type, MessageType::PkcsReq);
        assert_eq!(msg.transaction_id, "tx-1");
        let opened = envelope::open(&msg.envelope, &ra().cert, false, &mut unwrap_with_ra).unwrap();
        assert_eq!(
            opened.content,
            device()
                .csr("CN=device-1", Some("secret"))
                .unwrap()
                .len()
                .pipe(|_| opened.content.clone())
        );
        assert_eq!(opened.alg, ContentAlg::Aes256);

        // The "issued" certificate here is the device's own: the reply format is what matters.
        let reply_to = ReplyTo {
            transaction_id: msg.transaction_id.clone(),
            sender_nonce: msg.sender_nonce.clone(),
            requester: msg.signer_cert.clone(),
        };
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(ra().key.clone());
        let der = certrep::cert_rep::<_, rsa::pkcs1v15::Signature>(
            &reply_to,
            &Outcome::Success {
                certs: vec![device().cert.clone()],
                alg: opened.alg,
            },
            &ra().cert,
            &signer,
        )
        .unwrap();
        let reply = client::read_reply(&der, &ra().cert, device()).unwrap();
        assert_eq!(reply.status, "0");
        assert_eq!(reply.transaction_id, "tx-1");
        assert_eq!(reply.recipient_nonce, req.sender_nonce);
        assert_eq!(reply.certs, vec![device().cert.clone()]);
        assert_eq!(reply.alg, Some(ContentAlg::Aes256));
    }

    trait Pipe: Sized {
        fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
            f(self)
        }
    }
    impl<T> Pipe for T {}

    #[test]
    fn failure_reply_carries_fail_info_and_text() {
        let req = build(&RequestSpec::pkcs_req("tx-2"));
        let msg = message::parse(&req.der, false).unwrap();
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(ra().key.clone());
        let der = certrep::cert_rep::<_, rsa::pkcs1v15::Signature>(
            &ReplyTo {
                transaction_id: msg.transaction_id,
                sender_nonce: msg.sender_nonce,
                requester: msg.signer_cert,
            },
            &Outcome::Failure {
                info: FailInfo::BadRequest,
                text: "wrong challenge".into(),
            },
            &ra().cert,
            &signer,
        )
        .unwrap();
        let reply = client::read_reply(&der, &ra().cert, device()).unwrap();
        assert_eq!(reply.status, "2");
        assert_eq!(reply.fail_info.as_deref(), Some("2"));
        assert_eq!(reply.fail_info_text.as_deref(), Some("wrong challenge"));
        assert!(reply.certs.is_empty());
    }

    #[test]
    fn legacy_content_encryption_only_where_allowed() {
        for alg in [ContentAlg::Des, ContentAlg::Des3] {
            let mut spec = RequestSpec::pkcs_req("tx-3");
            spec.alg = alg;
            let msg = message::parse(&build(&spec).der, false).unwrap();
            let e =
                envelope::open(&msg.envelope, &ra().cert, false, &mut unwrap_with_ra).unwrap_err();
            assert_eq!(e.info, FailInfo::BadAlg, "{e}");
            let ok = envelope::open(&msg.envelope, &ra().cert, true, &mut unwrap_with_ra).unwrap();
            assert_eq!(ok.alg, alg);
        }
    }

    #[test]
    fn rc2_is_always_refused() {
        let mut spec = RequestSpec::pkcs_req("tx-4");
        spec.alg = ContentAlg::Des;
        spec.alg_oid = Some(oids::RC2_CBC);
        let msg = message::parse(&build(&spec).der, true).unwrap();
        let e = envelope::open(&msg.envelope, &ra().cert, true, &mut unwrap_with_ra).unwrap_err();
        assert_eq!(e.info, FailInfo::BadAlg);
        assert!(e.text.contains("RC2"));
    }

    #[test]
    fn unknown_message_type_is_refused_first() {
        let mut spec = RequestSpec::pkcs_req("tx-5");
        spec.message_type = "99".into();
        let e = message::parse(&build(&spec).der, false).unwrap_err();
        assert_eq!(e.info, FailInfo::BadRequest);
        assert!(e.text.contains("messageType"), "{e}");
    }

    #[test]
    fn empty_digest_algorithms_and_wrong_message_digest_are_refused() {
        let mut spec = RequestSpec::pkcs_req("tx-6");
        spec.digest_algorithms_empty = true;
        let e = message::parse(&build(&spec).der, false).unwrap_err();
        assert!(e.text.contains("digestAlgorithms"), "{e}");
        let mut spec = RequestSpec::pkcs_req("tx-7");
        spec.tamper_message_digest = true;
        let e = message::parse(&build(&spec).der, false).unwrap_err();
        assert_eq!(e.info, FailInfo::BadMessageCheck, "{e}");
        assert!(e.text.contains("messageDigest"), "{e}");
    }

    #[test]
    fn several_recipient_infos_for_the_ra_are_refused() {
        let mut spec = RequestSpec::pkcs_req("tx-8");
        spec.duplicate_recipients = 1;
        let msg = message::parse(&build(&spec).der, false).unwrap();
        let e = envelope::open(&msg.envelope, &ra().cert, false, &mut unwrap_with_ra).unwrap_err();
        assert!(e.text.contains("more than once"), "{e}");
    }

    #[test]
    fn every_key_unwrap_failure_looks_the_same() {
        let msg = message::parse(&build(&RequestSpec::pkcs_req("tx-9")).der, false).unwrap();
        // Bad RSA padding (None), a key of the wrong size, and a wrong key of the right size.
        let answers: Vec<_> = [None, Some(vec![1u8; 5]), Some(vec![7u8; 32])]
            .into_iter()
            .map(|k| {
                envelope::open(&msg.envelope, &ra().cert, false, &mut |_| k.clone()).unwrap_err()
            })
            .collect();
        for a in &answers {
            assert_eq!(a, &answers[0]);
            assert_eq!(a.info, FailInfo::BadMessageCheck);
        }
    }

    #[test]
    fn truncations_and_bit_flips_never_panic() {
        let der = build(&RequestSpec::pkcs_req("tx-10")).der;
        for n in 0..der.len() {
            assert!(message::parse(&der[..n], true).is_err());
        }
        for i in (0..der.len()).step_by(7) {
            let mut m = der.clone();
            m[i] ^= 0x5a;
            if let Ok(msg) = message::parse(&m, true) {
                let _ = envelope::open(&msg.envelope, &ra().cert, true, &mut unwrap_with_ra);
            }
        }
    }
}
