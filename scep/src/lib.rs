//! SCEP (RFC 8894) for Castellan: the message layer shared by castellan-edge
//! (which parses untrusted bytes first) and castellan-signer (which parses them
//! again, opens the envelope with the RA key in the HSM, and decides).
//!
//! No sockets and no runtime here, so every part can be unit-tested and fuzzed.
//! - [`ber`]: BER (indefinite lengths, segmented OCTET STRINGs) to DER, for clients that send it;
//! - [`message`]: parse a PKIMessage, check messageType first, messageDigest and signature;
//! - [`envelope`]: open and seal pkcsPKIEnvelopes (AES; DES/3DES for legacy profiles; no oracle);
//! - [`certrep`]: build signed CertReps (SUCCESS, FAILURE with failInfo + failInfoText, PENDING);
//! - [`client`]: a strict client (AES, SHA-256) for tests and `scep-bench`;
//! - [`verify`]: the one signature verifier (one algorithm table) for requests, CSRs, certificates;
//!
//! The signing socket's frames and the OCSP ASN.1 live in the `proto` crate.
#![forbid(unsafe_code)]

pub mod ber;
pub mod certrep;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "edge")]
pub mod edge;
pub mod envelope;
pub mod error;
pub mod message;
pub mod oids;
pub mod verify;

pub use error::{FailInfo, ScepError};

/// The whole pipeline with software keys standing in for the HSM (unit tests only:
/// the integration tests use the RA key in SoftHSM2).
#[cfg(all(test, feature = "client"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::OnceLock;

    use crate::certrep::{self, Outcome, ReplyTo};
    use crate::client::{self, Device, RequestSpec};
    use crate::envelope::{self, ContentAlg, Recipient};
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

    fn unwrap_with_ra(_key: usize, t: envelope::KeyTransport, ek: &[u8]) -> Option<Vec<u8>> {
        use envelope::KeyTransport::*;
        let k = &ra().key;
        match t {
            Pkcs1 => k.decrypt(rsa::Pkcs1v15Encrypt, ek),
            OaepSha1 => k.decrypt(rsa::Oaep::<sha1::Sha1>::new(), ek),
        }
        .ok()
    }

    /// The RA as the signer's certificate type.
    fn ra_cert() -> x509_cert::Certificate {
        use der::{Decode, Encode};
        x509_cert::Certificate::from_der(&ra().cert.to_der().unwrap()).unwrap()
    }

    /// The keys the "signer" decrypts with: the RA's.
    fn ra_keys() -> Vec<Recipient> {
        vec![Recipient::of(&ra().cert).unwrap()]
    }

    fn build(spec: &RequestSpec) -> client::Request {
        build_by(device(), spec)
    }

    fn build_by(d: &Device, spec: &RequestSpec) -> client::Request {
        let csr = d.csr("CN=device-1", Some("secret")).unwrap();
        client::request(d, &csr, &ra_keys(), spec).unwrap()
    }

    #[test]
    fn pkcs_req_round_trip_and_success_reply() {
        let req = build(&RequestSpec::pkcs_req("tx-1"));
        let msg = message::parse(&req.der, false).unwrap();
        assert_eq!(msg.message_type, MessageType::PkcsReq);
        assert_eq!(msg.transaction_id, "tx-1");
        let opened = envelope::open(&msg.envelope, &ra_keys(), false, &mut unwrap_with_ra).unwrap();
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
            requester: Recipient::of(&msg.signer_cert).unwrap(),
        };
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(ra().key.clone());
        let der = certrep::cert_rep::<_, rsa::pkcs1v15::Signature>(
            &reply_to,
            &Outcome::Success {
                certs: vec![ra_cert()],
                alg: opened.alg,
            },
            &ra_cert(),
            &signer,
        )
        .unwrap();
        let reply = client::read_reply(&der, &ra_cert(), device()).unwrap();
        assert_eq!(reply.status, "0");
        assert_eq!(reply.transaction_id, "tx-1");
        assert_eq!(reply.recipient_nonce, req.sender_nonce);
        assert_eq!(reply.certs, vec![ra_cert()]);
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
                requester: Recipient::of(&msg.signer_cert).unwrap(),
            },
            &Outcome::Failure {
                info: FailInfo::BadRequest,
                text: "wrong challenge".into(),
            },
            &ra_cert(),
            &signer,
        )
        .unwrap();
        let reply = client::read_reply(&der, &ra_cert(), device()).unwrap();
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
                envelope::open(&msg.envelope, &ra_keys(), false, &mut unwrap_with_ra).unwrap_err();
            assert_eq!(e.info, FailInfo::BadAlg, "{e}");
            let ok = envelope::open(&msg.envelope, &ra_keys(), true, &mut unwrap_with_ra).unwrap();
            assert_eq!(ok.alg, alg);
        }
    }

    #[test]
    fn rc2_is_always_refused() {
        let mut spec = RequestSpec::pkcs_req("tx-4");
        spec.alg = ContentAlg::Des;
        spec.alg_oid = Some(oids::RC2_CBC);
        let msg = message::parse(&build(&spec).der, true).unwrap();
        let e = envelope::open(&msg.envelope, &ra_keys(), true, &mut unwrap_with_ra).unwrap_err();
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

    /// The edge's screen reads the structure and refuses what `parse` refuses first, and
    /// leaves the signature and the envelope to the signer's one full parse.
    #[test]
    fn the_screen_checks_the_structure_and_leaves_the_signature_to_parse() {
        let good = build(&RequestSpec::pkcs_req("tx-scr")).der;
        assert_eq!(
            message::screen(&good).unwrap(),
            message::MessageType::PkcsReq
        );
        let mut spec = RequestSpec::pkcs_req("tx-scr2");
        spec.message_type = "99".into();
        assert!(
            message::screen(&build(&spec).der)
                .unwrap_err()
                .text
                .contains("messageType")
        );
        assert!(message::screen(b"hello").is_err());
        assert!(message::screen(&good[..good.len() / 2]).is_err());
        let mut flipped = good.clone();
        let n = flipped.len();
        flipped[n - 1] ^= 1; // the end of the signature
        assert!(message::screen(&flipped).is_ok());
        assert!(
            message::parse(&flipped, false)
                .unwrap_err()
                .text
                .contains("signature")
        );
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
        let e = envelope::open(&msg.envelope, &ra_keys(), false, &mut unwrap_with_ra).unwrap_err();
        assert!(e.text.contains("more than once"), "{e}");
    }

    #[test]
    fn every_key_unwrap_failure_looks_the_same() {
        let msg = message::parse(&build(&RequestSpec::pkcs_req("tx-9")).der, false).unwrap();
        let right = envelope::open(&msg.envelope, &ra_keys(), false, &mut unwrap_with_ra).unwrap();
        // Bad RSA padding (None), a key of the wrong size, and a wrong key of the right size.
        // Each goes on with a key the client did not send (no oracle), so each fails at the
        // content's padding, the same way; unless the garbage happens to end in valid
        // padding (about one time in 256: the envelope's key and IV are random). Then it is
        // not the request's content, and parsing it as a CSR refuses it next. (This test
        // used to expect an error every time, and so failed now and then.)
        let mut failures = Vec::new();
        for k in [None, Some(vec![1u8; 5]), Some(vec![7u8; 32])] {
            match envelope::open(&msg.envelope, &ra_keys(), false, &mut |_, _, _| k.clone()) {
                Err(e) => failures.push(e),
                Ok(garbage) => assert_ne!(garbage.content, right.content),
            }
        }
        for f in &failures {
            assert_eq!(f, &failures[0]);
            assert_eq!(f.info, FailInfo::BadMessageCheck);
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
                let _ = envelope::open(&msg.envelope, &ra_keys(), true, &mut unwrap_with_ra);
            }
        }
    }

    /// What real clients put in their throwaway certificates (RFC 8894 §2.3): each is read,
    /// its signature over the request checked, and a SUCCESS reply reaches it, naming it
    /// exactly as it named itself.
    #[test]
    fn throwaway_certificates_outside_rfc_5280_are_accepted_and_answered() {
        use client::Transient;
        let key = device().key.clone();
        let cases = [
            (
                "32-octet serial",
                Transient {
                    serial_len: 32,
                    ..Transient::default()
                },
            ),
            (
                "64-octet serial",
                Transient {
                    serial_len: 64,
                    ..Transient::default()
                },
            ),
            (
                "GeneralizedTime before 2050",
                Transient {
                    generalized_time: true,
                    ..Transient::default()
                },
            ),
            (
                "version 1",
                Transient {
                    v1: true,
                    ..Transient::default()
                },
            ),
            (
                "empty subject",
                Transient {
                    empty_subject: true,
                    ..Transient::default()
                },
            ),
            (
                "marked as a CA",
                Transient {
                    ca_flag: true,
                    ..Transient::default()
                },
            ),
            (
                "all at once",
                Transient {
                    serial_len: 32,
                    generalized_time: true,
                    v1: true,
                    empty_subject: true,
                    ca_flag: false,
                },
            ),
        ];
        for (what, t) in cases {
            let d = Device::transient(key.clone(), "CN=device-1", &t).unwrap();
            for by_key_id in [false, true] {
                let mut spec = RequestSpec::pkcs_req("tx-t");
                spec.signer_by_key_id = by_key_id;
                let req = build_by(&d, &spec);
                let msg = message::parse(&req.der, false)
                    .unwrap_or_else(|e| panic!("{what} (key id {by_key_id}): {e}"));
                assert_eq!(msg.signer_cert, d.cert, "{what}");
                let opened =
                    envelope::open(&msg.envelope, &ra_keys(), false, &mut unwrap_with_ra).unwrap();
                let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(ra().key.clone());
                let der = certrep::cert_rep::<_, rsa::pkcs1v15::Signature>(
                    &ReplyTo {
                        transaction_id: msg.transaction_id.clone(),
                        sender_nonce: msg.sender_nonce.clone(),
                        requester: Recipient::of(&msg.signer_cert).unwrap(),
                    },
                    &Outcome::Success {
                        certs: vec![ra_cert()],
                        alg: opened.alg,
                    },
                    &ra_cert(),
                    &signer,
                )
                .unwrap();
                let reply = client::read_reply(&der, &ra_cert(), &d)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(reply.status, "0", "{what}");
                assert_eq!(reply.certs, vec![ra_cert()], "{what}");
            }
        }
    }

    #[test]
    fn a_throwaway_serial_over_64_octets_is_refused_with_the_reason() {
        let t = client::Transient {
            serial_len: 65,
            ..client::Transient::default()
        };
        let d = Device::transient(device().key.clone(), "CN=device-1", &t).unwrap();
        let e =
            message::parse(&build_by(&d, &RequestSpec::pkcs_req("tx-s")).der, false).unwrap_err();
        assert_eq!(e.info, FailInfo::BadRequest);
        assert!(e.text.contains("65 octets"), "{e}");
    }

    #[test]
    fn a_request_signed_by_another_key_than_its_certificate_is_refused() {
        // The throwaway certificate is another device's: the signature cannot verify.
        let other = Device::generate(2048, "CN=other").unwrap();
        let mut d = device().clone();
        d.cert = other.cert.clone();
        let e =
            message::parse(&build_by(&d, &RequestSpec::pkcs_req("tx-k")).der, false).unwrap_err();
        assert_eq!(e.info, FailInfo::BadMessageCheck, "{e}");
    }

    /// A client may address several certificates; the one we hold a key for is used, and
    /// an envelope for none of ours says so (badCertId).
    #[test]
    fn the_recipient_we_hold_a_key_for_is_used_among_several() {
        let other = Device::generate(2048, "CN=Other CA").unwrap();
        let both = vec![
            Recipient::of(&other.cert).unwrap(),
            Recipient::of(&ra().cert).unwrap(),
        ];
        let csr = device().csr("CN=device-1", Some("secret")).unwrap();
        let req = client::request(device(), &csr, &both, &RequestSpec::pkcs_req("tx-r")).unwrap();
        let msg = message::parse(&req.der, false).unwrap();
        assert_eq!(msg.envelope.recipients.len(), 2);
        let opened = envelope::open(&msg.envelope, &ra_keys(), false, &mut unwrap_with_ra).unwrap();
        assert_eq!(opened.content, csr);
        assert_eq!(opened.key, 0);
        let only_other = vec![Recipient::of(&other.cert).unwrap()];
        let req =
            client::request(device(), &csr, &only_other, &RequestSpec::pkcs_req("tx-o")).unwrap();
        let msg = message::parse(&req.der, false).unwrap();
        let e = envelope::open(&msg.envelope, &ra_keys(), false, &mut unwrap_with_ra).unwrap_err();
        assert_eq!(e.info, FailInfo::BadCertId, "{e}");
    }

    /// Windows encrypts the content key with RSAES-OAEP (default parameters: SHA-1), and the
    /// transport reaches the key holder; OAEP with SHA-256 is refused as badAlg, untried.
    #[test]
    fn oaep_key_transport_opens_and_sha256_oaep_is_refused() {
        let mut spec = RequestSpec::pkcs_req("tx-oaep256");
        spec.transport = envelope::KeyTransport::OaepSha1;
        let mut msg = message::parse(&build(&spec).der, false).unwrap();
        msg.envelope.recipients[0].key_enc_alg = envelope::KeyTransport::oaep_sha256_alg().unwrap();
        let e = envelope::open(&msg.envelope, &ra_keys(), false, &mut |_, _, _| {
            panic!("an unsupported transport must not reach the key")
        })
        .unwrap_err();
        assert_eq!(e.info, FailInfo::BadAlg, "{e}");
        for t in [
            envelope::KeyTransport::OaepSha1,
            envelope::KeyTransport::Pkcs1,
        ] {
            let mut spec = RequestSpec::pkcs_req("tx-oaep");
            spec.transport = t;
            let msg = message::parse(&build(&spec).der, false).unwrap();
            let mut seen = None;
            let opened = envelope::open(&msg.envelope, &ra_keys(), false, &mut |i, got, ek| {
                seen = Some(got);
                unwrap_with_ra(i, got, ek)
            })
            .unwrap();
            assert_eq!(seen, Some(t));
            assert_eq!(
                opened.content,
                device().csr("CN=device-1", Some("secret")).unwrap()
            );
        }
    }

    /// jscep (Bouncy Castle), Apple and CryptoAPI send BER: indefinite lengths everywhere and
    /// OCTET STRINGs in segments. It is read as the DER message it stands for.
    #[test]
    fn ber_messages_with_indefinite_lengths_are_read() {
        let mut spec = RequestSpec::pkcs_req("tx-ber");
        spec.ber_chunks = Some(1000);
        let req = build(&spec);
        assert_eq!(
            &req.der[..4],
            &[0x30, 0x80, 0x06, 0x09],
            "indefinite outer SEQUENCE"
        );
        let msg = message::parse(&req.der, false).unwrap();
        assert_eq!(msg.transaction_id, "tx-ber");
        let opened = envelope::open(&msg.envelope, &ra_keys(), false, &mut unwrap_with_ra).unwrap();
        assert_eq!(
            opened.content,
            device().csr("CN=device-1", Some("secret")).unwrap()
        );
        // Truncated BER never panics and is refused.
        for n in (0..req.der.len()).step_by(13) {
            assert!(message::parse(&req.der[..n], false).is_err());
        }
    }
}
