//! CertRep (RFC 8894 §3.3.2): the RA's signed reply. SUCCESS carries the issued
//! certificate (and chain) in a degenerate SignedData, enveloped to the requester's
//! key with the algorithm the requester used; FAILURE carries failInfo and
//! failInfoText; PENDING carries neither.

use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::ContentInfo;
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use der::asn1::{OctetString, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Any, Decode, Encode};
use signature::{Keypair, Signer};
use spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey,
    SignatureBitStringEncoding,
};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;

use crate::envelope::{self, ContentAlg};
use crate::error::{FailInfo, Result, ScepError};
use crate::message::{DigestAlg, MessageType};
use crate::oids;

/// What the reply says.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The issued certificate first, then any chain certificates to include.
    Success {
        certs: Vec<Certificate>,
        alg: ContentAlg,
    },
    /// GetCRL (RFC 8894 §3.3.4): the CA's current CRL (DER) in a degenerate SignedData.
    Crl {
        crl: Vec<u8>,
        alg: ContentAlg,
    },
    Failure {
        info: FailInfo,
        text: String,
    },
    Pending,
}

/// What a reply must echo from its request.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
    /// The requester's signer certificate: the reply is encrypted to its key and names it
    /// as the requester did (its serial number may be longer than RFC 5280 allows).
    pub requester: envelope::Recipient,
}

fn attr(oid: const_oid::ObjectIdentifier, value: Any) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(enc)?;
    Ok(Attribute { oid, values })
}

fn printable(s: &str) -> Result<Any> {
    Any::encode_from(&PrintableStringRef::new(s).map_err(enc)?).map_err(enc)
}

fn enc<E>(_: E) -> ScepError {
    ScepError::bad_request("encoding the reply failed")
}

/// A degenerate SignedData whose certificates keep the order they were given in.
///
/// ```text
/// SignedData ::= SEQUENCE { version CMSVersion, digestAlgorithms SET OF (empty),
///   encapContentInfo EncapsulatedContentInfo (id-data, no content),
///   certificates [0] IMPLICIT CertificateSet }
/// ```
///
/// The CertificateSet is written in the given order, not DER-sorted (CMS is BER, RFC 5652
/// §1.2): SCEP clients pick certificates by position (the issued certificate first in a
/// SUCCESS; the first non-CA certificate of GetCACert as the encryption recipient).
#[derive(Debug, der::Sequence)]
struct Degenerate {
    version: cms::content_info::CmsVersion,
    digest_algorithms: SetOfVec<AlgorithmIdentifierOwned>,
    encap_content_info: EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true")]
    certificates: Vec<Certificate>,
    signer_infos: SetOfVec<Any>,
}

/// A degenerate SignedData (certificates only, in this order) as DER: what a SUCCESS
/// envelope holds and what GetCACert returns (RFC 8894 §3.4, §4.2.1.2).
pub fn degenerate(certs: &[Certificate]) -> Result<Vec<u8>> {
    let sd = Degenerate {
        version: cms::content_info::CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oids::ID_DATA,
            econtent: None,
        },
        certificates: certs.to_vec(),
        signer_infos: SetOfVec::new(),
    };
    ContentInfo {
        content_type: oids::ID_SIGNED_DATA,
        content: Any::encode_from(&sd).map_err(enc)?,
    }
    .to_der()
    .map_err(enc)
}

/// A degenerate SignedData carrying one CRL.
pub fn degenerate_crl(crl: &[u8]) -> Result<Vec<u8>> {
    use cms::revocation::RevocationInfoChoice;
    let list = x509_cert::crl::CertificateList::from_der(crl).map_err(enc)?;
    let content = EncapsulatedContentInfo {
        econtent_type: oids::ID_DATA,
        econtent: None,
    };
    let mut b = SignedDataBuilder::new(&content);
    b.add_crl(RevocationInfoChoice::Crl(list)).map_err(enc)?;
    b.build().map_err(enc)?.to_der().map_err(enc)
}

/// Build and sign a CertRep with the RA key `signer` (its certificate `ra`).
pub fn cert_rep<S, Sig>(
    reply_to: &ReplyTo,
    outcome: &Outcome,
    ra: &Certificate,
    signer: &S,
) -> Result<Vec<u8>>
where
    S: Keypair + DynSignatureAlgorithmIdentifier + Signer<Sig>,
    S::VerifyingKey: EncodePublicKey,
    Sig: SignatureBitStringEncoding,
{
    let econtent = match outcome {
        Outcome::Success { .. } | Outcome::Crl { .. } => {
            let (inner, alg) = match outcome {
                Outcome::Success { certs, alg } => (degenerate(certs)?, *alg),
                Outcome::Crl { crl, alg } => (degenerate_crl(crl)?, *alg),
                _ => return Err(ScepError::bad_request("unreachable")),
            };
            let env = envelope::seal(&inner, std::slice::from_ref(&reply_to.requester), alg)?;
            let ci = ContentInfo {
                content_type: oids::ID_ENVELOPED_DATA,
                content: Any::from_der(&env).map_err(enc)?,
            };
            Some(
                Any::encode_from(&OctetString::new(ci.to_der().map_err(enc)?).map_err(enc)?)
                    .map_err(enc)?,
            )
        }
        _ => None,
    };
    let content = EncapsulatedContentInfo {
        econtent_type: oids::ID_DATA,
        econtent,
    };
    let digest = DigestAlg::Sha256;
    let digest_alg = AlgorithmIdentifierOwned {
        oid: digest.oid(),
        parameters: None,
    };
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: ra.tbs_certificate().issuer().clone(),
        serial_number: ra.tbs_certificate().serial_number().clone(),
    });
    let mut si = SignerInfoBuilder::new(sid, digest_alg.clone(), &content, None).map_err(enc)?;
    let (status, fail) = match outcome {
        Outcome::Success { .. } | Outcome::Crl { .. } => ("0", None),
        Outcome::Failure { info, text } => ("2", Some((info, text))),
        Outcome::Pending => ("3", None),
    };
    let mut sender_nonce = vec![0u8; 16];
    envelope::random(&mut sender_nonce)?;
    si.add_signed_attribute(attr(
        oids::MESSAGE_TYPE,
        printable(MessageType::CertRep.as_str())?,
    )?)
    .map_err(enc)?;
    si.add_signed_attribute(attr(oids::PKI_STATUS, printable(status)?)?)
        .map_err(enc)?;
    si.add_signed_attribute(attr(
        oids::TRANSACTION_ID,
        printable(&reply_to.transaction_id)?,
    )?)
    .map_err(enc)?;
    si.add_signed_attribute(attr(
        oids::RECIPIENT_NONCE,
        Any::encode_from(&OctetString::new(reply_to.sender_nonce.clone()).map_err(enc)?)
            .map_err(enc)?,
    )?)
    .map_err(enc)?;
    si.add_signed_attribute(attr(
        oids::SENDER_NONCE,
        Any::encode_from(&OctetString::new(sender_nonce).map_err(enc)?).map_err(enc)?,
    )?)
    .map_err(enc)?;
    if content.econtent.is_none() {
        // RFC 5652 §5.3: with signed attributes, contentType and messageDigest must be
        // present even when there is no content (FAILURE, PENDING): digest of nothing.
        si.add_signed_attribute(attr(
            oids::CONTENT_TYPE,
            Any::encode_from(&oids::ID_DATA).map_err(enc)?,
        )?)
        .map_err(enc)?;
        si.add_signed_attribute(attr(
            oids::MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.digest(b"")).map_err(enc)?).map_err(enc)?,
        )?)
        .map_err(enc)?;
    }
    if let Some((info, text)) = fail {
        si.add_signed_attribute(attr(oids::FAIL_INFO, printable(info.as_str())?)?)
            .map_err(enc)?;
        let text: String = text.chars().take(256).collect();
        si.add_signed_attribute(attr(
            oids::FAIL_INFO_TEXT,
            Any::encode_from(&Utf8StringRef::new(&text).map_err(enc)?).map_err(enc)?,
        )?)
        .map_err(enc)?;
    }
    let mut b = SignedDataBuilder::new(&content);
    b.add_digest_algorithm(digest_alg).map_err(enc)?;
    b.add_certificate(CertificateChoices::Certificate(ra.clone()))
        .map_err(enc)?;
    b.add_signer_info::<S, Sig>(si, signer)
        .map_err(|_| ScepError::bad_request("signing the reply failed"))?;
    b.build().map_err(enc)?.to_der().map_err(enc)
}
