//! PKIMessage (RFC 8894 §3.2): a CMS SignedData, signed by the requester, whose
//! content is a pkcsPKIEnvelope and whose signed attributes carry the SCEP fields.
//!
//! Lenient where the RFC allows it, strict where it matters: the certificate that signs a
//! PKCSReq is a throwaway (RFC 8894 §2.3), so it is read with x509-cert's `Raw` profile
//! ([`RequesterCert`]): serial numbers up to [`MAX_SERIAL`] octets (also in the
//! SignerInfo's issuerAndSerialNumber), UTCTime or GeneralizedTime in any year, and the
//! signer named by subjectKeyIdentifier as well as by issuer and serial. Its signature over
//! the request, its key against the CSR's, and the CSR's own signature are still checked
//! (here and in the signer). `docs/scep-clients.md` lists every deviation and the decision.

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{EncapsulatedContentInfo, SignedData};
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tag, Tagged};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::certificate::{CertificateInner, Raw};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use crate::envelope::Envelope;
use crate::error::{Result, ScepError};
use crate::oids;

/// A requester's certificate as sent: x509-cert's `Raw` profile, which keeps serial numbers
/// over 20 octets and the time encoding as received (it re-encodes byte for byte).
pub type RequesterCert = CertificateInner<Raw>;
/// A serial number as a requester sent it (no RFC 5280 length limit on decode).
pub type RawSerial = SerialNumber<Raw>;
/// Longest serial number accepted in a requester's certificate and in the SignerInfo
/// (RFC 5280 caps what a CA issues at 20 octets; throwaway certificates of real clients
/// use up to 32).
pub const MAX_SERIAL: usize = 64;

/// IssuerAndSerialNumber (RFC 5652 §10.2.4) with a [`RawSerial`].
///
/// ```text
/// IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber CertificateSerialNumber }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence, der::ValueOrd)]
pub struct IssuerSerial {
    pub issuer: Name,
    pub serial_number: RawSerial,
}

impl IssuerSerial {
    /// The issuer and serial of any certificate, as `Raw`.
    pub fn of<P: x509_cert::certificate::Profile>(cert: &CertificateInner<P>) -> Result<Self> {
        let tbs = cert.tbs_certificate();
        Ok(IssuerSerial {
            issuer: tbs.issuer().clone(),
            serial_number: raw_serial(tbs.serial_number().as_bytes())?,
        })
    }
}

/// A [`RawSerial`] from the INTEGER's content octets.
pub fn raw_serial(bytes: &[u8]) -> Result<RawSerial> {
    let bad = |_| ScepError::bad_request("bad serial number");
    let int = der::asn1::IntRef::new(bytes).map_err(bad)?;
    RawSerial::from_der(&int.to_der().map_err(bad)?).map_err(bad)
}

/// SignerIdentifier (RFC 5652 §5.3) with a [`RawSerial`].
///
/// ```text
/// SignerIdentifier ::= CHOICE {
///   issuerAndSerialNumber IssuerAndSerialNumber,
///   subjectKeyIdentifier [0] SubjectKeyIdentifier }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, der::Choice)]
pub enum SignerId {
    IssuerAndSerialNumber(IssuerSerial),
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    SubjectKeyIdentifier(OctetString),
}

/// SignerInfo (RFC 5652 §5.3) with a [`SignerId`]; what a requester signs with.
///
/// ```text
/// SignerInfo ::= SEQUENCE {
///   version CMSVersion, sid SignerIdentifier, digestAlgorithm DigestAlgorithmIdentifier,
///   signedAttrs [0] IMPLICIT SignedAttributes OPTIONAL,
///   signatureAlgorithm SignatureAlgorithmIdentifier, signature SignatureValue,
///   unsignedAttrs [1] IMPLICIT UnsignedAttributes OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub struct RequestSignerInfo {
    pub version: CmsVersion,
    pub sid: SignerId,
    pub digest_alg: AlgorithmIdentifierOwned,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub signed_attrs: Option<SetOfVec<Attribute>>,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub signature: OctetString,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub unsigned_attrs: Option<SetOfVec<Attribute>>,
}

/// SignedData (RFC 5652 §5.1) as requesters send it: certificates and SignerInfos kept as
/// undecoded elements, so that one odd certificate choice or serial number does not make
/// the whole message unreadable; each is then decoded on its own, leniently.
///
/// ```text
/// SignedData ::= SEQUENCE {
///   version CMSVersion, digestAlgorithms DigestAlgorithmIdentifiers,
///   encapContentInfo EncapsulatedContentInfo,
///   certificates [0] IMPLICIT CertificateSet OPTIONAL,
///   crls [1] IMPLICIT RevocationInfoChoices OPTIONAL, signerInfos SignerInfos }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub struct RequestSignedData {
    pub version: CmsVersion,
    pub digest_algorithms: SetOfVec<AlgorithmIdentifierOwned>,
    pub encap_content_info: EncapsulatedContentInfo,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub certificates: Option<SetOfVec<Any>>,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub crls: Option<SetOfVec<Any>>,
    pub signer_infos: SetOfVec<Any>,
}

/// Largest PKIMessage accepted.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most certificates carried in a request.
pub const MAX_CERTS: usize = 8;

/// RFC 8894 §3.2.1.2 messageType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    CertRep,
    RenewalReq,
    PkcsReq,
    CertPoll,
    GetCert,
    GetCrl,
}

impl MessageType {
    /// Parse the decimal PrintableString. Unknown or unsupported values are refused here,
    /// before anything else looks at the request.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "3" => MessageType::CertRep,
            "17" => MessageType::RenewalReq,
            "19" => MessageType::PkcsReq,
            "20" => MessageType::CertPoll,
            "21" => MessageType::GetCert,
            "22" => MessageType::GetCrl,
            other => {
                return Err(ScepError::bad_request(format!(
                    "unsupported messageType {other:?}"
                )));
            }
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::CertRep => "3",
            MessageType::RenewalReq => "17",
            MessageType::PkcsReq => "19",
            MessageType::CertPoll => "20",
            MessageType::GetCert => "21",
            MessageType::GetCrl => "22",
        }
    }
}

/// The digest a requester used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlg {
    /// Legacy: accepted only on profiles that allow legacy algorithms.
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlg {
    pub fn from_oid(oid: &ObjectIdentifier) -> Result<Self> {
        Ok(match *oid {
            oids::SHA1 => DigestAlg::Sha1,
            oids::SHA256 => DigestAlg::Sha256,
            oids::SHA384 => DigestAlg::Sha384,
            oids::SHA512 => DigestAlg::Sha512,
            oids::MD5 => return Err(ScepError::bad_alg("MD5 is refused")),
            other => {
                return Err(ScepError::bad_alg(format!(
                    "digest {other} is not supported"
                )));
            }
        })
    }
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlg::Sha1 => oids::SHA1,
            DigestAlg::Sha256 => oids::SHA256,
            DigestAlg::Sha384 => oids::SHA384,
            DigestAlg::Sha512 => oids::SHA512,
        }
    }
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            DigestAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            DigestAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            DigestAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            DigestAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// A parsed, signature-checked PKIMessage whose envelope is still closed.
#[derive(Debug, Clone)]
pub struct PkiMessage {
    pub message_type: MessageType,
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
    /// The certificate that signed the message (self-signed for PKCSReq,
    /// the current certificate for RenewalReq).
    pub signer_cert: RequesterCert,
    pub digest: DigestAlg,
    /// The pkcsPKIEnvelope.
    pub envelope: Envelope,
    /// Set when the signer's key is RSA below 2048 bits: the signature was NOT
    /// checked (ring refuses such keys) and the request must be refused; the field
    /// lets the signer refuse with a signed FAILURE that says why.
    pub weak_rsa_bits: Option<u32>,
}

/// Modulus size of an RSA SubjectPublicKeyInfo, if it is RSA.
pub fn rsa_bits(spki: &spki::SubjectPublicKeyInfoOwned) -> Option<u32> {
    #[derive(der::Sequence)]
    struct Rsa<'a> {
        n: der::asn1::UintRef<'a>,
        _e: der::asn1::UintRef<'a>,
    }
    if spki.algorithm.oid != oids::RSA_ENCRYPTION {
        return None;
    }
    let k = Rsa::from_der(spki.subject_public_key.raw_bytes()).ok()?;
    let n = k.n.as_bytes();
    let lead = n.first().map_or(0, |b| 8 - b.leading_zeros());
    Some((n.len().saturating_sub(1) * 8) as u32 + lead)
}

/// The string value of a PrintableString/UTF8String/IA5String attribute value.
fn string_value(v: &Any) -> Result<String> {
    match v.tag() {
        Tag::PrintableString | Tag::Utf8String | Tag::Ia5String => {
            String::from_utf8(v.value().to_vec())
                .map_err(|_| ScepError::bad_request("attribute is not text"))
        }
        _ => Err(ScepError::bad_request("attribute has the wrong type")),
    }
}

/// The single value of a signed attribute.
fn single<'a>(
    si: &'a RequestSignerInfo,
    oid: ObjectIdentifier,
    name: &str,
) -> Result<Option<&'a Any>> {
    let Some(attrs) = &si.signed_attrs else {
        return Ok(None);
    };
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let Some(attr) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() || attr.values.len() != 1 {
        return Err(ScepError::bad_request(format!(
            "{name} must appear once with one value"
        )));
    }
    Ok(attr.values.get(0))
}

fn required<'a>(si: &'a RequestSignerInfo, oid: ObjectIdentifier, name: &str) -> Result<&'a Any> {
    single(si, oid, name)?.ok_or_else(|| ScepError::bad_request(format!("{name} is missing")))
}

/// Verify `sig` over `msg` with the key in `cert`: RSA PKCS#1 v1.5 (signatureAlgorithm
/// rsaEncryption with the SignerInfo's digest, or sha*WithRSAEncryption) or ECDSA P-256/P-384.
pub fn verify<P: x509_cert::certificate::Profile>(
    cert: &CertificateInner<P>,
    sig_alg: &ObjectIdentifier,
    digest: DigestAlg,
    msg: &[u8],
    sig: &[u8],
) -> Result<()> {
    verify_spki(
        cert.tbs_certificate().subject_public_key_info(),
        sig_alg,
        digest,
        msg,
        sig,
    )
}

/// [`verify`] with a bare public key (e.g. a CSR's), through the one verifier
/// ([`crate::verify`]); SHA-1 is accepted here only where `digest` names it, and the
/// profile's legacy setting is checked by the callers.
pub fn verify_spki(
    spki: &spki::SubjectPublicKeyInfoOwned,
    sig_alg: &ObjectIdentifier,
    digest: DigestAlg,
    msg: &[u8],
    sig: &[u8],
) -> Result<()> {
    use crate::verify::Refusal;
    crate::verify::verify(spki, sig_alg, Some(digest), true, msg, sig).map_err(|r| match r {
        Refusal::Weak(m) | Refusal::Unsupported(m) => ScepError::bad_alg(m),
        Refusal::Bad => ScepError::bad_check("the message signature does not verify"),
    })
}

/// The signed attributes of the (single) SignerInfo exactly as encoded, re-tagged as
/// the SET OF that the signature covers (RFC 5652 §5.4). Walks the structure with
/// `der::AnyRef`, which keeps the original bytes.
pub(crate) fn raw_signed_attrs(message: &[u8]) -> Option<Vec<u8>> {
    use der::asn1::AnyRef;
    use der::{Reader, SliceReader};
    fn items(bytes: &[u8]) -> Option<Vec<AnyRef<'_>>> {
        let mut r = SliceReader::new(bytes).ok()?;
        let mut v = Vec::new();
        while !r.is_finished() {
            v.push(r.decode::<AnyRef<'_>>().ok()?);
            if v.len() > 16 {
                return None;
            }
        }
        Some(v)
    }
    let ci = AnyRef::from_der(message).ok()?;
    let ci_items = items(ci.value())?;
    let explicit = ci_items.get(1)?;
    let sd = AnyRef::from_der(explicit.value()).ok()?;
    let sd_items = items(sd.value())?;
    let signer_infos = sd_items.last()?;
    let si = AnyRef::from_der(signer_infos.value()).ok()?;
    let si_items = items(si.value())?;
    let attrs = si_items.get(3)?;
    if attrs.tag()
        != (Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber(0),
        })
    {
        return None;
    }
    AnyRef::new(Tag::Set, attrs.value()).ok()?.to_der().ok()
}

/// What [`screen`] reads of a PKIMessage: steps 1 to 4 of [`parse`].
struct Head<'a> {
    /// The message as DER (rewritten from BER if it came so).
    der: std::borrow::Cow<'a, [u8]>,
    sd: RequestSignedData,
    si: RequestSignerInfo,
    message_type: MessageType,
    digest: DigestAlg,
    transaction_id: String,
    sender_nonce: Box<[u8]>,
}

/// Screen a PKIMessage cheaply, as the edge does before it asks the signer: steps 1 to 4
/// of [`parse`] (size, ContentInfo and SignedData, one SignerInfo, a known messageType,
/// digestAlgorithms, transactionID and senderNonce), without finding the signer
/// certificate, checking the signature or decoding the envelope: the signer parses and
/// verifies the message once.
pub fn screen(der: &[u8]) -> Result<MessageType> {
    head(der, true).map(|h| h.message_type)
}

fn head(der: &[u8], allow_sha1: bool) -> Result<Head<'_>> {
    if der.is_empty() || der.len() > MAX_MESSAGE {
        return Err(ScepError::bad_request(format!(
            "a PKIMessage must be 1 to {MAX_MESSAGE} bytes"
        )));
    }
    // A strict decode first; BER (indefinite lengths, as jscep, Apple and CryptoAPI send)
    // is rewritten as DER only when that fails, so a DER message keeps its bytes.
    let (der, ci) = match ContentInfo::from_der(der) {
        Ok(ci) => (std::borrow::Cow::Borrowed(der), ci),
        Err(_) => {
            let normalized = crate::ber::to_der(der)
                .map_err(|e| ScepError::bad_request(format!("not a CMS ContentInfo ({e})")))?;
            let ci = ContentInfo::from_der(&normalized)
                .map_err(|_| ScepError::bad_request("not a CMS ContentInfo"))?;
            (std::borrow::Cow::Owned(normalized), ci)
        }
    };
    if ci.content_type != oids::ID_SIGNED_DATA {
        return Err(ScepError::bad_request("the PKIMessage is not SignedData"));
    }
    let sd: RequestSignedData = ci
        .content
        .decode_as()
        .map_err(|e| ScepError::bad_request(format!("malformed SignedData: {e}")))?;
    let [si] = sd.signer_infos.as_slice() else {
        return Err(ScepError::bad_request(
            "a PKIMessage has exactly one SignerInfo",
        ));
    };
    let si: RequestSignerInfo = si
        .decode_as()
        .map_err(|e| ScepError::bad_request(format!("malformed SignerInfo: {e}")))?;
    if let SignerId::IssuerAndSerialNumber(ias) = &si.sid {
        check_serial(&ias.serial_number, "the SignerInfo's serial number")?;
    }
    let message_type = MessageType::parse(&string_value(required(
        &si,
        oids::MESSAGE_TYPE,
        "messageType",
    )?)?)?;
    if message_type == MessageType::CertRep {
        return Err(ScepError::bad_request(
            "CertRep is a response, not a request",
        ));
    }
    if sd.digest_algorithms.is_empty() {
        return Err(ScepError::bad_request("digestAlgorithms is empty"));
    }
    let digest = DigestAlg::from_oid(&si.digest_alg.oid)?;
    if !sd
        .digest_algorithms
        .iter()
        .any(|a| a.oid == si.digest_alg.oid)
    {
        return Err(ScepError::bad_request(
            "the signer's digest is not listed in digestAlgorithms",
        ));
    }
    if digest == DigestAlg::Sha1 && !allow_sha1 {
        return Err(ScepError::bad_alg(
            "SHA-1 is refused on this profile: use SHA-256 (GetCACaps lists SHA-256)",
        ));
    }
    let transaction_id = string_value(required(&si, oids::TRANSACTION_ID, "transactionID")?)?;
    if transaction_id.is_empty() || transaction_id.len() > 128 {
        return Err(ScepError::bad_request(
            "transactionID must be 1 to 128 characters",
        ));
    }
    let sender_nonce = required(&si, oids::SENDER_NONCE, "senderNonce")?
        .decode_as::<OctetString>()
        .map_err(|_| ScepError::bad_request("senderNonce is not an OCTET STRING"))?
        .into_bytes();
    if sender_nonce.len() != 16 {
        return Err(ScepError::bad_request("senderNonce must be 16 bytes"));
    }
    Ok(Head {
        der,
        sd,
        si,
        message_type,
        digest,
        transaction_id,
        sender_nonce,
    })
}

/// Parse a PKIMessage and check its integrity.
///
/// Steps: (1) cap the size and decode ContentInfo → SignedData; (2) exactly one
/// SignerInfo, non-empty digestAlgorithms that include its digest; (3) read
/// messageType first and refuse unknown types; (4) read transactionID and
/// senderNonce; (5) find the signer certificate (by issuer and serial, or by
/// subjectKeyIdentifier); (6) check messageDigest against the content and the signature
/// over the signed attributes; (7) decode the envelope.
/// `allow_sha1` is whether the profile allows legacy algorithms.
pub fn parse(der: &[u8], allow_sha1: bool) -> Result<PkiMessage> {
    let Head {
        der,
        sd,
        si,
        message_type,
        digest,
        transaction_id,
        sender_nonce,
    } = head(der, allow_sha1)?;
    let si = &si;
    let signer_cert = signer_certificate(&sd, &si.sid)?;

    // messageDigest over the eContent octets, then the signature over the signed attributes.
    let content = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| ScepError::bad_request("the PKIMessage has no content"))?;
    let content = content
        .decode_as::<OctetString>()
        .map_err(|_| ScepError::bad_request("the content is not an OCTET STRING"))?;
    let md = required(si, oids::MESSAGE_DIGEST, "messageDigest")?
        .decode_as::<OctetString>()
        .map_err(|_| ScepError::bad_request("messageDigest is not an OCTET STRING"))?;
    if md.as_bytes() != digest.digest(content.as_bytes()).as_slice() {
        return Err(ScepError::bad_check(
            "messageDigest does not match the content",
        ));
    }
    if si.signed_attrs.is_none() {
        return Err(ScepError::bad_request("no signed attributes"));
    }
    // The signature covers the attributes as the client encoded them; some clients
    // (Go's pkcs7) do not sort the SET, so re-encoding would change the bytes.
    let signed =
        raw_signed_attrs(&der).ok_or_else(|| ScepError::bad_request("bad signed attributes"))?;
    let weak_rsa_bits =
        rsa_bits(signer_cert.tbs_certificate().subject_public_key_info()).filter(|b| *b < 2048);
    if weak_rsa_bits.is_none() {
        verify(
            &signer_cert,
            &si.signature_algorithm.oid,
            digest,
            &signed,
            si.signature.as_bytes(),
        )?;
    }

    let env_ci = ContentInfo::from_der(content.as_bytes())
        .or_else(|_| {
            let der = crate::ber::to_der(content.as_bytes())?;
            ContentInfo::from_der(&der).map_err(|_| ScepError::bad_request("not DER"))
        })
        .map_err(|_| ScepError::bad_request("the content is not a pkcsPKIEnvelope"))?;
    if env_ci.content_type != oids::ID_ENVELOPED_DATA {
        return Err(ScepError::bad_request("the content is not EnvelopedData"));
    }
    let envelope = crate::envelope::decode(
        &env_ci
            .content
            .to_der()
            .map_err(|_| ScepError::bad_request("malformed EnvelopedData"))?,
    )?;
    Ok(PkiMessage {
        message_type,
        transaction_id,
        sender_nonce: sender_nonce.into_vec(),
        signer_cert,
        digest,
        envelope,
        weak_rsa_bits,
    })
}

fn check_serial(serial: &RawSerial, what: &str) -> Result<()> {
    let len = serial.as_bytes().len();
    if len == 0 || len > MAX_SERIAL {
        return Err(ScepError::bad_request(format!(
            "{what} is {len} octets: 1 to {MAX_SERIAL} are accepted"
        )));
    }
    Ok(())
}

/// The subjectKeyIdentifier a certificate goes by: its extension, or else the SHA-1 of its
/// subjectPublicKey (RFC 5280 §4.2.1.2, method 1), which is what clients that name their
/// throwaway certificate by key identifier compute.
pub fn key_identifiers<P: x509_cert::certificate::Profile>(
    cert: &CertificateInner<P>,
) -> Vec<Vec<u8>> {
    use sha1::Digest;
    let tbs = cert.tbs_certificate();
    let mut ids: Vec<Vec<u8>> = tbs
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
        .filter_map(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
        .map(|k| k.into_bytes().into_vec())
        .collect();
    ids.push(
        sha1::Sha1::digest(tbs.subject_public_key_info().subject_public_key.raw_bytes()).to_vec(),
    );
    ids
}

/// Step 5 of [`parse`]: the certificate `sid` names among those the message carries. Each
/// is read on its own with the `Raw` profile; choices other than a certificate are skipped.
fn signer_certificate(sd: &RequestSignedData, sid: &SignerId) -> Result<RequesterCert> {
    let certs = sd.certificates.as_ref().map_or(&[][..], |c| c.as_slice());
    if certs.len() > MAX_CERTS {
        return Err(ScepError::bad_request(
            "too many certificates in the request",
        ));
    }
    let mut unreadable = None;
    for c in certs.iter().filter(|c| c.tag() == Tag::Sequence) {
        let cert = match c
            .to_der()
            .ok()
            .and_then(|d| RequesterCert::from_der(&d).ok())
        {
            Some(cert) => cert,
            None => {
                unreadable = Some(());
                continue;
            }
        };
        let tbs = cert.tbs_certificate();
        let named = match sid {
            SignerId::IssuerAndSerialNumber(ias) => {
                ias.issuer == *tbs.issuer()
                    && ias.serial_number.as_bytes() == tbs.serial_number().as_bytes()
            }
            SignerId::SubjectKeyIdentifier(ski) => key_identifiers(&cert)
                .iter()
                .any(|k| k.as_slice() == ski.as_bytes()),
        };
        if named {
            check_serial(
                tbs.serial_number(),
                "the signer certificate's serial number",
            )?;
            return Ok(cert);
        }
    }
    Err(ScepError::bad_request(if unreadable.is_some() {
        "the signer certificate in the message is not a readable X.509 certificate"
    } else {
        "the signer certificate is not in the message"
    }))
}

/// The X.509 certificates a SignedData carries (other certificate choices are skipped).
pub fn certificates(sd: &SignedData) -> impl Iterator<Item = &Certificate> {
    sd.certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c),
            _ => None,
        })
}
