//! OCSP (RFC 6960 §4.1.1, §4.2.1): the ASN.1 of requests and responses as plain
//! `der`-derived structs, and the request parser. castellan-edge parses every request first
//! so that garbage never reaches the signer; castellan-signer parses it again, looks the
//! status up and signs. (The RustCrypto `x509-ocsp` crate is on `der` 0.7, this workspace on
//! 0.8.) No I/O here: `/ocsp` over HTTP is the edge's (`edge::ocsp`).
//!
//! What [`parse_request`] refuses, each with `malformedRequest` for the whole request:
//! more than [`MAX_REQUEST`] bytes, anything but DER, a version other than v1, no
//! CertID or more than [`MAX_CERT_IDS`], a CertID hash other than SHA-1 or SHA-256 (or
//! with hashes of the wrong length), a nonce of more than [`MAX_NONCE`] octets or given
//! twice, and a critical extension it does not understand.
//!
//! An unsupported CertID hash gets `malformedRequest` rather than a signed `unknown`:
//! the hash is how the request names its issuer, so with an unknown hash there is no
//! issuer, hence no delegated responder key to sign an `unknown` with; and
//! `unauthorized` would wrongly say this responder is not authoritative for the issuer.

use const_oid::ObjectIdentifier;
use der::asn1::{Any, BitString, GeneralizedTime, Null, OctetString};
use der::{Choice, Decode, Encode, Enumerated, Sequence, Tagged};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

/// Largest request accepted (body or decoded GET path).
pub const MAX_REQUEST: usize = 16 * 1024;
/// Most CertIDs in one OCSPRequest.
pub const MAX_CERT_IDS: usize = 16;
/// Largest nonce extension value echoed (RFC 8954 §2.1 asks for at most 32 octets; some
/// older clients send a bare or longer nonce, which is echoed as received up to this).
pub const MAX_NONCE: usize = 64;

/// id-pkix-ocsp-basic (RFC 6960 §4.2.1).
pub const ID_PKIX_OCSP_BASIC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
pub const ID_PKIX_OCSP_NONCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1), for the responder certificate.
pub const ID_PKIX_OCSP_NOCHECK: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
/// id-kp-OCSPSigning (RFC 5280 §4.2.1.12).
pub const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-sha1 (RFC 3279 §2.2.1).
pub const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// id-sha256 (RFC 5754 §2.2).
pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// `Content-Type` of a request (RFC 6960 Appendix A.1).
pub const CT_REQUEST: &str = "application/ocsp-request";
/// `Content-Type` of a response (RFC 6960 Appendix A.2).
pub const CT_RESPONSE: &str = "application/ocsp-response";

fn v1() -> u8 {
    0
}

// ------------------------------------------------------------------- requests

/// RFC 6960 §4.1.1.
///
/// ```text
/// OCSPRequest ::= SEQUENCE {
///     tbsRequest                  TBSRequest,
///     optionalSignature   [0]     EXPLICIT Signature OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct OcspRequest {
    pub tbs_request: TbsRequest,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    pub optional_signature: Option<Signature>,
}

/// RFC 6960 §4.1.1.
///
/// ```text
/// TBSRequest ::= SEQUENCE {
///     version             [0]     EXPLICIT Version DEFAULT v1,
///     requestorName       [1]     EXPLICIT GeneralName OPTIONAL,
///     requestList                 SEQUENCE OF Request,
///     requestExtensions   [2]     EXPLICIT Extensions OPTIONAL }
/// Version ::= INTEGER { v1(0) }
/// ```
/// The requestorName is kept as it came: nothing here reads it.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TbsRequest {
    #[asn1(context_specific = "0", default = "v1", tag_mode = "EXPLICIT")]
    pub version: u8,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "EXPLICIT")]
    pub requestor_name: Option<Any>,
    pub request_list: Vec<OneRequest>,
    #[asn1(context_specific = "2", optional = "true", tag_mode = "EXPLICIT")]
    pub request_extensions: Option<Extensions>,
}

/// RFC 6960 §4.1.1. Requests are not required to be signed; a signature is ignored.
///
/// ```text
/// Signature ::= SEQUENCE {
///     signatureAlgorithm      AlgorithmIdentifier,
///     signature               BIT STRING,
///     certs               [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct Signature {
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub signature: BitString,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    pub certs: Option<Vec<Any>>,
}

/// RFC 6960 §4.1.1 (`Request`; renamed so as not to clash with HTTP's).
///
/// ```text
/// Request ::= SEQUENCE {
///     reqCert                     CertID,
///     singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct OneRequest {
    pub req_cert: CertId,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    pub single_request_extensions: Option<Extensions>,
}

/// RFC 6960 §4.1.1. Echoed unchanged in the SingleResponse.
///
/// ```text
/// CertID ::= SEQUENCE {
///     hashAlgorithm       AlgorithmIdentifier,
///     issuerNameHash      OCTET STRING, -- Hash of issuer's DN
///     issuerKeyHash       OCTET STRING, -- Hash of issuer's public key
///     serialNumber        CertificateSerialNumber }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertId {
    pub hash_algorithm: AlgorithmIdentifierOwned,
    pub issuer_name_hash: OctetString,
    pub issuer_key_hash: OctetString,
    pub serial_number: SerialNumber,
}

// ------------------------------------------------------------------ responses

/// RFC 6960 §4.2.1.
///
/// ```text
/// OCSPResponseStatus ::= ENUMERATED {
///     successful            (0),  -- Response has valid confirmations
///     malformedRequest      (1),  -- Illegal confirmation request
///     internalError         (2),  -- Internal error in issuer
///     tryLater              (3),  -- Try again later
///                                 -- (4) is not used
///     sigRequired           (5),  -- Must sign the request
///     unauthorized          (6)   -- Request unauthorized }
/// ```
#[derive(Clone, Copy, Debug, Eq, PartialEq, Hash, Enumerated)]
#[repr(u32)]
pub enum ResponseStatus {
    Successful = 0,
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    SigRequired = 5,
    Unauthorized = 6,
}

/// RFC 6960 §4.2.1.
///
/// ```text
/// OCSPResponse ::= SEQUENCE {
///     responseStatus          OCSPResponseStatus,
///     responseBytes       [0] EXPLICIT ResponseBytes OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct OcspResponse {
    pub response_status: ResponseStatus,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    pub response_bytes: Option<ResponseBytes>,
}

/// RFC 6960 §4.2.1.
///
/// ```text
/// ResponseBytes ::= SEQUENCE {
///     responseType            OBJECT IDENTIFIER,
///     response                OCTET STRING }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ResponseBytes {
    pub response_type: ObjectIdentifier,
    pub response: OctetString,
}

/// RFC 6960 §4.2.1 (the content of `response` for id-pkix-ocsp-basic).
///
/// ```text
/// BasicOCSPResponse ::= SEQUENCE {
///     tbsResponseData         ResponseData,
///     signatureAlgorithm      AlgorithmIdentifier,
///     signature               BIT STRING,
///     certs               [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct BasicOcspResponse {
    pub tbs_response_data: ResponseData,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub signature: BitString,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    pub certs: Option<Vec<Certificate>>,
}

/// RFC 6960 §4.2.1.
///
/// ```text
/// ResponseData ::= SEQUENCE {
///     version             [0] EXPLICIT Version DEFAULT v1,
///     responderID             ResponderID,
///     producedAt              GeneralizedTime,
///     responses               SEQUENCE OF SingleResponse,
///     responseExtensions  [1] EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ResponseData {
    #[asn1(context_specific = "0", default = "v1", tag_mode = "EXPLICIT")]
    pub version: u8,
    pub responder_id: ResponderId,
    pub produced_at: GeneralizedTime,
    pub responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "EXPLICIT")]
    pub response_extensions: Option<Extensions>,
}

/// RFC 6960 §4.2.1 (the module uses EXPLICIT tags).
///
/// ```text
/// ResponderID ::= CHOICE {
///     byName              [1] Name,
///     byKey               [2] KeyHash }
/// KeyHash ::= OCTET STRING -- SHA-1 hash of responder's public key
///                          -- (excluding the tag and length fields)
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum ResponderId {
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    ByName(Name),
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

/// RFC 6960 §4.2.1.
///
/// ```text
/// SingleResponse ::= SEQUENCE {
///     certID                       CertID,
///     certStatus                   CertStatus,
///     thisUpdate                   GeneralizedTime,
///     nextUpdate         [0]       EXPLICIT GeneralizedTime OPTIONAL,
///     singleExtensions   [1]       EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SingleResponse {
    pub cert_id: CertId,
    pub cert_status: CertStatus,
    pub this_update: GeneralizedTime,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    pub next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "EXPLICIT")]
    pub single_extensions: Option<Extensions>,
}

/// RFC 6960 §4.2.1.
///
/// ```text
/// CertStatus ::= CHOICE {
///     good                [0]     IMPLICIT NULL,
///     revoked             [1]     IMPLICIT RevokedInfo,
///     unknown             [2]     IMPLICIT UnknownInfo }
/// UnknownInfo ::= NULL
/// ```
#[derive(Clone, Copy, Debug, Eq, PartialEq, Choice)]
pub enum CertStatus {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

/// RFC 6960 §4.2.1.
///
/// ```text
/// RevokedInfo ::= SEQUENCE {
///     revocationTime              GeneralizedTime,
///     revocationReason    [0]     EXPLICIT CRLReason OPTIONAL }
/// ```
#[derive(Clone, Copy, Debug, Eq, PartialEq, Sequence)]
pub struct RevokedInfo {
    pub revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    pub revocation_reason: Option<CrlReason>,
}

impl OcspResponse {
    /// An answer without responseBytes: every status but `successful` (RFC 6960 §2.3).
    pub fn error_der(status: ResponseStatus) -> Vec<u8> {
        OcspResponse {
            response_status: status,
            response_bytes: None,
        }
        .to_der()
        // Five fixed bytes: encoding cannot fail.
        .unwrap_or_default()
    }

    /// A `successful` answer carrying a BasicOCSPResponse.
    pub fn successful_der(basic: &BasicOcspResponse) -> der::Result<Vec<u8>> {
        OcspResponse {
            response_status: ResponseStatus::Successful,
            response_bytes: Some(ResponseBytes {
                response_type: ID_PKIX_OCSP_BASIC,
                response: OctetString::new(basic.to_der()?)?,
            }),
        }
        .to_der()
    }

    /// The BasicOCSPResponse inside a `successful` answer.
    pub fn basic(&self) -> Option<BasicOcspResponse> {
        let rb = self.response_bytes.as_ref()?;
        if rb.response_type != ID_PKIX_OCSP_BASIC {
            return None;
        }
        BasicOcspResponse::from_der(rb.response.as_bytes()).ok()
    }
}

// -------------------------------------------------------------------- hashes

/// The CertID hash algorithms accepted (see the module doc).
#[derive(Clone, Copy, Debug, Eq, PartialEq, Hash, PartialOrd, Ord)]
pub enum CertIdHash {
    /// SHA-1: an identifier here, not a signature; what RFC 5019 clients send.
    Sha1,
    Sha256,
}

impl CertIdHash {
    pub const ALL: [CertIdHash; 2] = [CertIdHash::Sha1, CertIdHash::Sha256];

    /// The algorithm of a CertID, if accepted (parameters absent or NULL).
    pub fn of(alg: &AlgorithmIdentifierOwned) -> Option<Self> {
        let params_ok = alg
            .parameters
            .as_ref()
            .is_none_or(|p| p.tag() == der::Tag::Null && p.value().is_empty());
        if !params_ok {
            return None;
        }
        match alg.oid {
            o if o == ID_SHA1 => Some(CertIdHash::Sha1),
            o if o == ID_SHA256 => Some(CertIdHash::Sha256),
            _ => None,
        }
    }

    /// The AlgorithmIdentifier a client would send (NULL parameters, as openssl does).
    pub fn algorithm(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: match self {
                CertIdHash::Sha1 => ID_SHA1,
                CertIdHash::Sha256 => ID_SHA256,
            },
            parameters: Some(Null.into()),
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            CertIdHash::Sha1 => 20,
            CertIdHash::Sha256 => 32,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            CertIdHash::Sha1 => {
                use sha1::Digest;
                sha1::Sha1::digest(data).to_vec()
            }
            CertIdHash::Sha256 => {
                use sha2::Digest;
                sha2::Sha256::digest(data).to_vec()
            }
        }
    }
}

/// An issuer as CertIDs name it: the hash of its subject (DER) and of its public key
/// (the subjectPublicKey BIT STRING value).
pub fn issuer_hashes(issuer: &Certificate, h: CertIdHash) -> der::Result<(Vec<u8>, Vec<u8>)> {
    let tbs = issuer.tbs_certificate();
    Ok((
        h.digest(&tbs.subject().to_der()?),
        h.digest(tbs.subject_public_key_info().subject_public_key.raw_bytes()),
    ))
}

/// A CertID for a serial number of `issuer` (what a client sends).
pub fn cert_id(issuer: &Certificate, serial: SerialNumber, h: CertIdHash) -> der::Result<CertId> {
    let (name, key) = issuer_hashes(issuer, h)?;
    Ok(CertId {
        hash_algorithm: h.algorithm(),
        issuer_name_hash: OctetString::new(name)?,
        issuer_key_hash: OctetString::new(key)?,
        serial_number: serial,
    })
}

/// ResponderID byKey: the SHA-1 of the responder's subjectPublicKey (RFC 6960 §4.2.1).
pub fn responder_key_hash(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    CertIdHash::Sha1.digest(spki.subject_public_key.raw_bytes())
}

// ------------------------------------------------------------------- parsing

/// Why a request is answered `malformedRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("request larger than {MAX_REQUEST} bytes")]
    TooLarge,
    #[error("not a DER OCSPRequest: {0}")]
    Der(String),
    #[error("{0}")]
    Refused(&'static str),
}

impl RequestError {
    /// The one mapping of a request error to its answer.
    pub fn status(&self) -> ResponseStatus {
        ResponseStatus::MalformedRequest
    }
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    /// The CertIDs, each with its accepted hash algorithm, in request order.
    pub cert_ids: Vec<(CertId, CertIdHash)>,
    /// The nonce extension to echo (RFC 6960 §4.4.1), exactly as received.
    pub nonce: Option<Extension>,
}

/// Parse and check an OCSPRequest (the refusals are listed in the module doc).
pub fn parse_request(der: &[u8]) -> Result<ParsedRequest, RequestError> {
    if der.len() > MAX_REQUEST {
        return Err(RequestError::TooLarge);
    }
    let req = OcspRequest::from_der(der).map_err(|e| RequestError::Der(e.to_string()))?;
    let tbs = req.tbs_request;
    if tbs.version != 0 {
        return Err(RequestError::Refused("only OCSP version 1 requests"));
    }
    if tbs.request_list.is_empty() {
        return Err(RequestError::Refused("the request names no certificate"));
    }
    if tbs.request_list.len() > MAX_CERT_IDS {
        return Err(RequestError::Refused(
            "more than 16 certificates in one request",
        ));
    }
    let mut cert_ids = Vec::with_capacity(tbs.request_list.len());
    for one in tbs.request_list {
        let id = one.req_cert;
        let h = CertIdHash::of(&id.hash_algorithm).ok_or(RequestError::Refused(
            "CertID hash algorithm must be SHA-1 or SHA-256",
        ))?;
        if id.issuer_name_hash.as_bytes().len() != h.output_len()
            || id.issuer_key_hash.as_bytes().len() != h.output_len()
        {
            return Err(RequestError::Refused(
                "CertID hashes do not have the length of their algorithm",
            ));
        }
        if one
            .single_request_extensions
            .iter()
            .flatten()
            .any(|e| e.critical)
        {
            return Err(RequestError::Refused(
                "unsupported critical singleRequestExtension",
            ));
        }
        cert_ids.push((id, h));
    }
    let mut nonce = None;
    for e in tbs.request_extensions.into_iter().flatten() {
        if e.extn_id == ID_PKIX_OCSP_NONCE {
            let n = e.extn_value.as_bytes().len();
            if n == 0 || n > MAX_NONCE {
                return Err(RequestError::Refused("nonce of an unsupported length"));
            }
            if nonce.replace(e).is_some() {
                return Err(RequestError::Refused("two nonces"));
            }
        } else if e.critical {
            return Err(RequestError::Refused(
                "unsupported critical requestExtension",
            ));
        }
    }
    Ok(ParsedRequest { cert_ids, nonce })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine;
    use der::asn1::Uint;
    use std::time::Duration;

    fn gt(unix: u64) -> GeneralizedTime {
        GeneralizedTime::from_unix_duration(Duration::from_secs(unix)).unwrap()
    }

    fn some_cert_id(h: CertIdHash, serial: &[u8]) -> CertId {
        CertId {
            hash_algorithm: h.algorithm(),
            issuer_name_hash: OctetString::new(vec![1; h.output_len()]).unwrap(),
            issuer_key_hash: OctetString::new(vec![2; h.output_len()]).unwrap(),
            serial_number: SerialNumber::new(serial).unwrap(),
        }
    }

    fn request(ids: Vec<CertId>, nonce: Option<&[u8]>) -> OcspRequest {
        OcspRequest {
            tbs_request: TbsRequest {
                version: 0,
                requestor_name: None,
                request_list: ids
                    .into_iter()
                    .map(|req_cert| OneRequest {
                        req_cert,
                        single_request_extensions: None,
                    })
                    .collect(),
                request_extensions: nonce.map(|n| {
                    vec![Extension {
                        extn_id: ID_PKIX_OCSP_NONCE,
                        critical: false,
                        extn_value: OctetString::new(
                            OctetString::new(n).unwrap().to_der().unwrap(),
                        )
                        .unwrap(),
                    }]
                }),
            },
            optional_signature: None,
        }
    }

    /// What `openssl ocsp -issuer r.pem -serial 0x1234 -reqout req.der` wrote (with a
    /// nonce): SHA-1 CertID, NULL parameters, a 16-octet nonce.
    const OPENSSL_REQUEST: &str = "MGgwZjA/MD0wOzAJBgUrDgMCGgUABBRSIUbemXtIWEHdfOYxZEhtR6R4lQQUTluGHMLBwwGfuqfrWe72cM78FTYCAhI0oiMwITAfBgkrBgEFBQcwAQIEEgQQnlK31gzJQPg0C5LF4K2eTw==";

    #[test]
    fn parses_what_openssl_sends() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(OPENSSL_REQUEST)
            .unwrap();
        let p = parse_request(&der).unwrap();
        assert_eq!(p.cert_ids.len(), 1);
        assert_eq!(p.cert_ids[0].1, CertIdHash::Sha1);
        assert_eq!(p.cert_ids[0].0.serial_number.as_bytes(), [0x12, 0x34]);
        let nonce = p.nonce.unwrap();
        assert_eq!(nonce.extn_value.as_bytes().len(), 18);
        // Re-encoding gives the same bytes (DER in, DER out).
        assert_eq!(OcspRequest::from_der(&der).unwrap().to_der().unwrap(), der);
    }

    #[test]
    fn requests_round_trip() {
        for nonce in [None, Some(&[7u8; 32][..])] {
            let r = request(
                vec![
                    some_cert_id(CertIdHash::Sha1, &[1, 2, 3]),
                    some_cert_id(CertIdHash::Sha256, &[0x40; 16]),
                ],
                nonce,
            );
            let der = r.to_der().unwrap();
            assert_eq!(OcspRequest::from_der(&der).unwrap(), r);
            let p = parse_request(&der).unwrap();
            assert_eq!(p.cert_ids.len(), 2);
            assert_eq!(p.nonce.is_some(), nonce.is_some());
        }
    }

    #[test]
    fn bad_requests_are_malformed() {
        let sha384 = AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2"),
            parameters: None,
        };
        let mut unsupported_hash = some_cert_id(CertIdHash::Sha256, &[1]);
        unsupported_hash.hash_algorithm = sha384;
        let mut short_hash = some_cert_id(CertIdHash::Sha1, &[1]);
        short_hash.issuer_key_hash = OctetString::new(vec![1; 19]).unwrap();
        let mut v2 = request(vec![some_cert_id(CertIdHash::Sha1, &[1])], None);
        v2.tbs_request.version = 1;
        let mut critical = request(vec![some_cert_id(CertIdHash::Sha1, &[1])], None);
        critical.tbs_request.request_extensions = Some(vec![Extension {
            extn_id: ObjectIdentifier::new_unwrap("1.2.3.4"),
            critical: true,
            extn_value: OctetString::new(vec![5, 0]).unwrap(),
        }]);
        let cases = [
            ("no_cert_ids", request(vec![], None)),
            (
                "seventeen_cert_ids",
                request(vec![some_cert_id(CertIdHash::Sha1, &[1]); 17], None),
            ),
            ("unsupported_hash", request(vec![unsupported_hash], None)),
            ("short_hash", request(vec![short_hash], None)),
            ("version_2", v2),
            ("critical_extension", critical),
            (
                "long_nonce",
                request(vec![some_cert_id(CertIdHash::Sha1, &[1])], Some(&[1; 80])),
            ),
        ];
        for (name, r) in cases {
            let e = parse_request(&r.to_der().unwrap()).unwrap_err();
            assert_eq!(e.status(), ResponseStatus::MalformedRequest, "{name}");
        }
        assert_eq!(
            parse_request(&vec![0x30; MAX_REQUEST + 1]),
            Err(RequestError::TooLarge)
        );
        assert!(parse_request(b"").is_err());
        assert!(parse_request(b"\x30\x80\x00\x00").is_err()); // BER indefinite length
    }

    #[test]
    fn truncations_and_garbage_never_panic() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(OPENSSL_REQUEST)
            .unwrap();
        for n in 0..der.len() {
            assert!(parse_request(&der[..n]).is_err(), "truncated at {n}");
            let _ = OcspResponse::from_der(&der[..n]);
        }
        // Flip every bit in turn: each parse returns, most fail.
        for i in 0..der.len() * 8 {
            let mut d = der.clone();
            d[i / 8] ^= 1 << (i % 8);
            let _ = parse_request(&d);
        }
        let resp = sample_response();
        for n in 0..resp.len() {
            let _ = OcspResponse::from_der(&resp[..n]).map(|r| r.basic());
        }
    }

    fn sample_response() -> Vec<u8> {
        let revoked = CertStatus::Revoked(RevokedInfo {
            revocation_time: gt(1_800_000_000),
            revocation_reason: Some(CrlReason::KeyCompromise),
        });
        let basic = BasicOcspResponse {
            tbs_response_data: ResponseData {
                version: 0,
                responder_id: ResponderId::ByKey(OctetString::new(vec![9; 20]).unwrap()),
                produced_at: gt(1_800_000_100),
                responses: [CertStatus::Good(Null), revoked, CertStatus::Unknown(Null)]
                    .into_iter()
                    .enumerate()
                    .map(|(i, cert_status)| SingleResponse {
                        cert_id: some_cert_id(CertIdHash::Sha1, &[i as u8 + 1]),
                        cert_status,
                        this_update: gt(1_800_000_100),
                        next_update: Some(gt(1_800_003_700)),
                        single_extensions: None,
                    })
                    .collect(),
                response_extensions: None,
            },
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
                parameters: None,
            },
            signature: BitString::from_bytes(&[1, 2, 3]).unwrap(),
            certs: None,
        };
        OcspResponse::successful_der(&basic).unwrap()
    }

    #[test]
    fn responses_round_trip_with_each_status() {
        let der = sample_response();
        let r = OcspResponse::from_der(&der).unwrap();
        assert_eq!(r.response_status, ResponseStatus::Successful);
        let basic = r.basic().unwrap();
        let statuses: Vec<_> = basic
            .tbs_response_data
            .responses
            .iter()
            .map(|s| s.cert_status)
            .collect();
        assert!(matches!(statuses[0], CertStatus::Good(_)));
        assert!(matches!(
            statuses[1],
            CertStatus::Revoked(RevokedInfo {
                revocation_reason: Some(CrlReason::KeyCompromise),
                ..
            })
        ));
        assert!(matches!(statuses[2], CertStatus::Unknown(_)));
        // RFC 6960 tags: good [0] primitive NULL → 80 00; unknown [2] → 82 00;
        // revoked [1] constructed → A1; the version v1 is left out (DEFAULT).
        let inner = basic.tbs_response_data.to_der().unwrap();
        assert!(inner.windows(2).any(|w| w == [0x80, 0x00]));
        assert!(inner.windows(2).any(|w| w == [0x82, 0x00]));
        assert!(inner.contains(&0xa1));
        // responderID byKey: [2] constructed, EXPLICIT around the OCTET STRING KeyHash.
        assert!(inner.windows(4).any(|w| w == [0xa2, 0x16, 0x04, 0x14]));
        assert_eq!(OcspResponse::from_der(&der).unwrap().to_der().unwrap(), der);
    }

    #[test]
    fn error_responses_are_five_bytes() {
        assert_eq!(
            OcspResponse::error_der(ResponseStatus::Unauthorized),
            [0x30, 0x03, 0x0a, 0x01, 0x06]
        );
        assert_eq!(
            OcspResponse::error_der(ResponseStatus::MalformedRequest),
            [0x30, 0x03, 0x0a, 0x01, 0x01]
        );
        let r = OcspResponse::from_der(&OcspResponse::error_der(ResponseStatus::TryLater)).unwrap();
        assert_eq!(r.response_status, ResponseStatus::TryLater);
        assert!(r.basic().is_none());
    }

    #[test]
    fn cert_id_hash_parameters() {
        let mut a = CertIdHash::Sha1.algorithm();
        assert_eq!(CertIdHash::of(&a), Some(CertIdHash::Sha1));
        a.parameters = None;
        assert_eq!(CertIdHash::of(&a), Some(CertIdHash::Sha1));
        a.parameters = Some(Any::encode_from(&Uint::new(&[1]).unwrap()).unwrap());
        assert_eq!(CertIdHash::of(&a), None);
        assert_eq!(CertIdHash::Sha256.digest(b"").len(), 32);
        assert_eq!(
            CertIdHash::Sha1.digest(b"abc")[..16]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>(),
            "a9993e364706816aba3e25717850c26c"
        );
    }
}
