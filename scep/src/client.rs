//! A strict SCEP client (AES-256-CBC and SHA-256 by default): builds PKCSReq /
//! RenewalReq / GetCert messages and reads CertReps. Used by `scep-bench` and the
//! tests; its knobs build the malformed messages the tests need, the throwaway
//! certificates of other clients ([`Transient`]), and their ways of choosing the
//! envelope's recipients from GetCACert ([`RecipientChoice`]).
//!
//! The device key is a software RSA key: this code plays the device, and devices
//! make their own keys.

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{EncapsulatedContentInfo, SignedData};
use der::asn1::{BitString, OctetString, PrintableStringRef, SetOfVec};
use der::{Any, Decode, Encode};
use rsa::RsaPrivateKey;
use sha2::Sha256;
use spki::{AlgorithmIdentifierOwned, EncodePublicKey};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::builder::{Builder, RequestBuilder};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::time::Time;

use crate::envelope::{self, ContentAlg, Recipient};
use crate::error::{Result, ScepError};
use crate::message::{
    self, DigestAlg, RequestSignedData, RequestSignerInfo, RequesterCert, SignerId,
};
use crate::oids;

fn err<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ScepError {
    move |e| ScepError::bad_request(format!("{what}: {e}"))
}

/// How a device's throwaway certificate (RFC 8894 §2.3) is made. The default is what a
/// strict client makes; the other settings are what real clients were seen to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transient {
    /// Serial number length in octets (RFC 5280 allows 20; some clients use 32).
    pub serial_len: usize,
    /// GeneralizedTime for dates before 2050 (RFC 5280 wants UTCTime there).
    pub generalized_time: bool,
    /// A version 1 certificate (no extensions).
    pub v1: bool,
    /// An empty subject and issuer.
    pub empty_subject: bool,
    /// basicConstraints CA:TRUE and keyCertSign (some toolkits mark any self-signed
    /// certificate as a CA).
    pub ca_flag: bool,
}

impl Default for Transient {
    fn default() -> Self {
        Transient {
            serial_len: 8,
            generalized_time: false,
            v1: false,
            empty_subject: false,
            ca_flag: false,
        }
    }
}

/// TBSCertificate (RFC 5280 §4.1) as the test client writes it, time encodings and serial
/// length as chosen (x509-cert's builder enforces RFC 5280, which is the point here).
#[derive(Debug, der::Sequence)]
struct TbsOut {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<x509_cert::certificate::Version>,
    serial_number: der::asn1::Int,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: ValidityOut,
    subject: Name,
    subject_public_key_info: spki::SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Vec<x509_cert::ext::Extension>>,
}

#[derive(Debug, der::Sequence)]
struct ValidityOut {
    not_before: Time,
    not_after: Time,
}

#[derive(Debug, der::Sequence)]
struct CertOut {
    tbs: TbsOut,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

fn sha256_with_rsa() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: oids::SHA256_WITH_RSA,
        parameters: Some(der::asn1::Null.into()),
    }
}

fn rsa_sign(key: &RsaPrivateKey, data: &[u8]) -> Result<Vec<u8>> {
    use signature::{SignatureEncoding, Signer};
    let k = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    let sig: rsa::pkcs1v15::Signature = k.try_sign(data).map_err(err("sign"))?;
    Ok(sig.to_vec())
}

/// A device: its RSA key and a certificate for it (self-signed before enrolment,
/// the issued one for renewal).
#[derive(Debug, Clone)]
pub struct Device {
    pub key: RsaPrivateKey,
    pub cert: RequesterCert,
}

impl Device {
    /// Make a key and a self-signed certificate (RFC 8894 §2.3).
    pub fn generate(bits: usize, subject: &str) -> Result<Device> {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let key = RsaPrivateKey::new(&mut rng, bits).map_err(err("key generation"))?;
        Device::with_key(key, subject)
    }

    pub fn with_key(key: RsaPrivateKey, subject: &str) -> Result<Device> {
        Device::transient(key, subject, &Transient::default())
    }

    /// A device whose throwaway certificate is made as `t` says.
    pub fn transient(key: RsaPrivateKey, subject: &str, t: &Transient) -> Result<Device> {
        use std::str::FromStr;
        let name = if t.empty_subject {
            Name::default()
        } else {
            Name::from_str(subject).map_err(err("subject"))?
        };
        let spki =
            spki::SubjectPublicKeyInfoOwned::from_key(&key.to_public_key()).map_err(err("spki"))?;
        let mut serial = vec![0u8; t.serial_len.max(1)];
        envelope::random(&mut serial)?;
        serial[0] &= 0x7f;
        serial[0] |= 1;
        let now = std::time::SystemTime::now();
        let time = |at: std::time::SystemTime| -> Result<Time> {
            let dt = der::DateTime::from_system_time(at).map_err(err("time"))?;
            Ok(if t.generalized_time {
                Time::GeneralTime(der::asn1::GeneralizedTime::from_date_time(dt))
            } else {
                Time::UtcTime(der::asn1::UtcTime::from_date_time(dt).map_err(err("time"))?)
            })
        };
        let mut extensions = Vec::new();
        if t.ca_flag {
            use x509_cert::ext::ToExtension;
            let subject = &name;
            extensions.push(
                BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                }
                .to_extension(subject, &extensions)
                .map_err(err("extension"))?,
            );
            extensions.push(
                KeyUsage(KeyUsages::KeyCertSign | KeyUsages::DigitalSignature)
                    .to_extension(subject, &extensions)
                    .map_err(err("extension"))?,
            );
        }
        let tbs = TbsOut {
            version: (!t.v1).then_some(x509_cert::certificate::Version::V3),
            serial_number: der::asn1::Int::new(&serial).map_err(err("serial"))?,
            signature: sha256_with_rsa(),
            issuer: name.clone(),
            validity: ValidityOut {
                not_before: time(now - std::time::Duration::from_secs(60))?,
                not_after: time(now + std::time::Duration::from_secs(3600))?,
            },
            subject: name,
            subject_public_key_info: spki,
            extensions: (!t.v1 && !extensions.is_empty()).then_some(extensions),
        };
        let tbs_der = tbs.to_der().map_err(err("certificate"))?;
        let cert = CertOut {
            tbs,
            signature_algorithm: sha256_with_rsa(),
            signature: BitString::from_bytes(&rsa_sign(&key, &tbs_der)?)
                .map_err(err("certificate"))?,
        }
        .to_der()
        .map_err(err("certificate"))?;
        let cert = RequesterCert::from_der(&cert).map_err(err("certificate"))?;
        Ok(Device { key, cert })
    }

    /// A device that signs with a certificate it already has (RenewalReq, GetCert).
    pub fn holding(key: RsaPrivateKey, cert: &Certificate) -> Result<Device> {
        let cert = RequesterCert::from_der(&cert.to_der().map_err(err("certificate"))?)
            .map_err(err("certificate"))?;
        Ok(Device { key, cert })
    }

    /// A PKCS#10 request for this key, with a challengePassword if given.
    pub fn csr(&self, subject: &str, challenge: Option<&str>) -> Result<Vec<u8>> {
        self.csr_with(subject, challenge, Vec::new())
    }

    /// [`Device::csr`] with requested extensions (an extensionRequest attribute), as
    /// Intune-managed devices send a SID extension and SANs.
    pub fn csr_with(
        &self,
        subject: &str,
        challenge: Option<&str>,
        extensions: Vec<x509_cert::ext::Extension>,
    ) -> Result<Vec<u8>> {
        use std::str::FromStr;
        use x509_cert::request::attributes::ChallengePassword;
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(self.key.clone());
        let mut b = RequestBuilder::new(Name::from_str(subject).map_err(err("subject"))?)
            .map_err(err("csr"))?;
        for e in extensions {
            b.add_extension(e).map_err(err("extension"))?;
        }
        if let Some(c) = challenge {
            b.add_attribute(&ChallengePassword(
                x509_cert::ext::pkix::name::DirectoryString::Utf8String(c.into()),
            ))
            .map_err(err("challenge"))?;
        }
        b.build::<_, rsa::pkcs1v15::Signature>(&signer)
            .map_err(err("csr"))?
            .to_der()
            .map_err(err("csr"))
    }
}

/// How a client picks the envelope's recipients from the certificates GetCACert returned:
/// the conventions of real SCEP stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientChoice {
    /// Microsoft NDES convention (Windows, Intune, many C clients): the first certificate
    /// with keyEncipherment and without digitalSignature, else the first with
    /// dataEncipherment only, else the CA certificate.
    Ndes,
    /// The first certificate that is not a CA.
    FirstNonCa,
    /// Every certificate in the bag (micromdm scepclient).
    All,
    /// The issuing CA's certificate (RFC 8894 §2.2 without an RA).
    Ca,
}

fn key_usage(c: &Certificate) -> Option<KeyUsage> {
    c.tbs_certificate()
        .get_extension::<KeyUsage>()
        .ok()
        .flatten()
        .map(|(_, ku)| ku)
}

/// Is `c` a CA certificate (basicConstraints cA)?
pub fn is_ca(c: &Certificate) -> bool {
    c.tbs_certificate()
        .get_extension::<BasicConstraints>()
        .ok()
        .flatten()
        .is_some_and(|(_, bc)| bc.ca)
}

/// The issuing CA in a GetCACert bag: the CA certificate that issued the non-CA ones, or
/// else the CA certificate that is not self-signed, or else the only CA certificate.
pub fn issuing_ca(bag: &[Certificate]) -> Option<&Certificate> {
    let cas: Vec<&Certificate> = bag.iter().filter(|c| is_ca(c)).collect();
    let issuer_of_leaves = bag
        .iter()
        .find(|c| !is_ca(c))
        .map(|c| c.tbs_certificate().issuer().clone());
    cas.iter()
        .find(|c| Some(c.tbs_certificate().subject()) == issuer_of_leaves.as_ref())
        .or_else(|| {
            cas.iter()
                .find(|c| c.tbs_certificate().subject() != c.tbs_certificate().issuer())
        })
        .or(cas.first())
        .copied()
}

/// The certificates of a GetCACert answer (RFC 8894 §4.2.1): one DER certificate
/// (`application/x-x509-ca-cert`) or a degenerate PKCS#7 (`application/x-x509-ca-ra-cert`),
/// in the order sent.
pub fn ca_certs(der: &[u8]) -> Result<Vec<Certificate>> {
    if let Ok(c) = Certificate::from_der(der) {
        return Ok(vec![c]);
    }
    let ci = ContentInfo::from_der(der).map_err(err("GetCACert"))?;
    // Read in the order sent (a decoded SET OF would be sorted): walk the [0] field.
    let body = ci.content.to_der().map_err(err("GetCACert"))?;
    in_order_certificates(&body)
}

/// The certificates of a SignedData (its DER) in the order they are encoded.
fn in_order_certificates(signed_data: &[u8]) -> Result<Vec<Certificate>> {
    use der::asn1::AnyRef;
    use der::{Reader, SliceReader, Tag, TagNumber, Tagged};
    let bad = || ScepError::bad_request("GetCACert: malformed SignedData");
    let sd = AnyRef::from_der(signed_data).map_err(|_| bad())?;
    let mut r = SliceReader::new(sd.value()).map_err(|_| bad())?;
    while !r.is_finished() {
        let item: AnyRef<'_> = r.decode().map_err(|_| bad())?;
        if item.tag()
            == (Tag::ContextSpecific {
                constructed: true,
                number: TagNumber(0),
            })
        {
            let mut certs = Vec::new();
            let mut c = SliceReader::new(item.value()).map_err(|_| bad())?;
            while !c.is_finished() {
                let one: AnyRef<'_> = c.decode().map_err(|_| bad())?;
                if one.tag() == Tag::Sequence {
                    certs.push(
                        Certificate::from_der(&one.to_der().map_err(|_| bad())?)
                            .map_err(err("GetCACert certificate"))?,
                    );
                }
            }
            return Ok(certs);
        }
    }
    Ok(Vec::new())
}

/// The certificates a client following `choice` encrypts to.
pub fn recipients(bag: &[Certificate], choice: RecipientChoice) -> Result<Vec<Recipient>> {
    let none = || ScepError::bad_request(format!("no recipient for {choice:?} in GetCACert"));
    let chosen: Vec<&Certificate> = match choice {
        RecipientChoice::All => bag.iter().collect(),
        RecipientChoice::FirstNonCa => vec![bag.iter().find(|c| !is_ca(c)).ok_or_else(none)?],
        RecipientChoice::Ca => vec![issuing_ca(bag).ok_or_else(none)?],
        RecipientChoice::Ndes => {
            let non_ca = || bag.iter().filter(|c| !is_ca(c));
            let enc_only = non_ca().find(|c| {
                key_usage(c).is_some_and(|ku| ku.key_encipherment() && !ku.digital_signature())
            });
            let data_only = || {
                non_ca().find(|c| {
                    key_usage(c).is_some_and(|ku| {
                        ku.data_encipherment() && !ku.key_encipherment() && !ku.digital_signature()
                    })
                })
            };
            vec![
                enc_only
                    .or_else(data_only)
                    .or_else(|| issuing_ca(bag))
                    .ok_or_else(none)?,
            ]
        }
    };
    chosen.into_iter().map(Recipient::of).collect()
}

/// The certificate that signs CertReps in a GetCACert bag: the first non-CA certificate
/// with digitalSignature, else the issuing CA (no RA).
pub fn reply_signer(bag: &[Certificate]) -> Option<&Certificate> {
    bag.iter()
        .find(|c| !is_ca(c) && key_usage(c).is_some_and(|ku| ku.digital_signature()))
        .or_else(|| issuing_ca(bag))
}

/// How to build a request. The defaults are what a strict modern client sends;
/// tests change fields to build malformed messages.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// "19" PKCSReq, "17" RenewalReq, "21" GetCert, ... (any string, for tests).
    pub message_type: String,
    pub transaction_id: String,
    pub alg: ContentAlg,
    /// Overrides the content-encryption OID (e.g. RC2) when set.
    pub alg_oid: Option<const_oid::ObjectIdentifier>,
    pub digest_algorithms_empty: bool,
    pub tamper_message_digest: bool,
    /// Add this many extra RecipientInfos naming the first recipient.
    pub duplicate_recipients: usize,
    /// Name the signer by subjectKeyIdentifier (SHA-1 of its key) instead of issuer and serial.
    pub signer_by_key_id: bool,
    /// The key transport (Windows sends RSAES-OAEP).
    pub transport: envelope::KeyTransport,
    /// Write the message and its envelope in BER with indefinite lengths and OCTET STRINGs
    /// in segments of this many octets, as Bouncy Castle (jscep) does.
    pub ber_chunks: Option<usize>,
}

impl RequestSpec {
    pub fn pkcs_req(transaction_id: &str) -> Self {
        RequestSpec {
            message_type: "19".into(),
            transaction_id: transaction_id.into(),
            alg: ContentAlg::Aes256,
            alg_oid: None,
            digest_algorithms_empty: false,
            tamper_message_digest: false,
            duplicate_recipients: 0,
            signer_by_key_id: false,
            transport: envelope::KeyTransport::Pkcs1,
            ber_chunks: None,
        }
    }
}

/// A request ready to send, and what its reply must echo.
#[derive(Debug, Clone)]
pub struct Request {
    pub der: Vec<u8>,
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
}

fn attr(oid: const_oid::ObjectIdentifier, value: Any) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(err("attribute"))?;
    Ok(Attribute { oid, values })
}

/// The recommended transactionID: hex SHA-256 of the public key (RFC 8894 §3.2.1.1).
pub fn transaction_id(device: &Device) -> Result<String> {
    use sha2::Digest;
    let der = device
        .key
        .to_public_key()
        .to_public_key_der()
        .map_err(err("key"))?;
    Ok(hex(&Sha256::digest(der.as_bytes())))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `content` in a ContentInfo of `content_type`, as DER, or as BER with indefinite lengths
/// when `spec.ber_chunks` asks for it.
fn content_info(
    content_type: const_oid::ObjectIdentifier,
    content: &(impl der::EncodeValue + der::Tagged),
    spec: &RequestSpec,
) -> Result<Vec<u8>> {
    let der = ContentInfo {
        content_type,
        content: Any::encode_from(content).map_err(err("ContentInfo"))?,
    }
    .to_der()
    .map_err(err("ContentInfo"))?;
    match spec.ber_chunks {
        Some(chunk) => crate::ber::to_indefinite(&der, chunk),
        None => Ok(der),
    }
}

/// Build a PKIMessage carrying `inner` (a CSR, or IssuerAndSerialNumber for GetCert),
/// enveloped to `recipients` and signed by `signer` (the device).
pub fn request(
    signer: &Device,
    inner: &[u8],
    recipients: &[Recipient],
    spec: &RequestSpec,
) -> Result<Request> {
    let mut env = envelope::seal_parts(inner, recipients, spec.alg, spec.transport)?;
    if let Some(oid) = spec.alg_oid {
        env.encrypted_content.content_enc_alg.oid = oid;
    }
    for i in 0..spec.duplicate_recipients {
        let mut dup = env.recipient_infos.as_slice()[0].clone();
        let mut b = dup.enc_key.as_bytes().to_vec();
        let at = i % b.len();
        b[at] ^= 1; // differ, or the SET would reject the duplicate
        dup.enc_key = OctetString::new(b).map_err(err("dup"))?;
        env.recipient_infos.insert(dup).map_err(err("dup"))?;
    }
    let env_der = content_info(oids::ID_ENVELOPED_DATA, &env, spec)?;
    let digest_alg = AlgorithmIdentifierOwned {
        oid: DigestAlg::Sha256.oid(),
        parameters: None,
    };
    let tbs = signer.cert.tbs_certificate();
    let sid = if spec.signer_by_key_id {
        let ids = message::key_identifiers(&signer.cert);
        SignerId::SubjectKeyIdentifier(
            OctetString::new(ids.last().cloned().unwrap_or_default()).map_err(err("ski"))?,
        )
    } else {
        SignerId::IssuerAndSerialNumber(message::IssuerSerial {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        })
    };
    let mut nonce = vec![0u8; 16];
    envelope::random(&mut nonce)?;
    let printable = |s: &str| -> Result<Any> {
        Any::encode_from(&PrintableStringRef::new(s).map_err(err("printable"))?)
            .map_err(err("printable"))
    };
    let octets = |b: Vec<u8>| -> Result<Any> {
        Any::encode_from(&OctetString::new(b).map_err(err("octets"))?).map_err(err("octets"))
    };
    let mut attrs = SetOfVec::new();
    for a in [
        attr(
            oids::CONTENT_TYPE,
            Any::encode_from(&oids::ID_DATA).map_err(err("attr"))?,
        )?,
        attr(
            oids::MESSAGE_DIGEST,
            octets(DigestAlg::Sha256.digest(&env_der))?,
        )?,
        attr(oids::MESSAGE_TYPE, printable(&spec.message_type)?)?,
        attr(oids::TRANSACTION_ID, printable(&spec.transaction_id)?)?,
        attr(oids::SENDER_NONCE, octets(nonce.clone())?)?,
    ] {
        attrs.insert(a).map_err(err("attr"))?;
    }
    let signature = rsa_sign(&signer.key, &attrs.to_der().map_err(err("attrs"))?)?;
    let si = RequestSignerInfo {
        version: if spec.signer_by_key_id {
            CmsVersion::V3
        } else {
            CmsVersion::V1
        },
        sid,
        digest_alg: digest_alg.clone(),
        signed_attrs: Some(attrs),
        signature_algorithm: sha256_with_rsa(),
        signature: OctetString::new(signature).map_err(err("sign"))?,
        unsigned_attrs: None,
    };
    let mut digest_algorithms = SetOfVec::new();
    if !spec.digest_algorithms_empty {
        digest_algorithms
            .insert(digest_alg)
            .map_err(err("digest"))?;
    }
    let mut certificates = SetOfVec::new();
    certificates
        .insert(Any::encode_from(&signer.cert).map_err(err("cert"))?)
        .map_err(err("cert"))?;
    let mut signer_infos = SetOfVec::new();
    signer_infos
        .insert(Any::encode_from(&si).map_err(err("signer"))?)
        .map_err(err("signer"))?;
    let sd = RequestSignedData {
        version: CmsVersion::V1,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oids::ID_DATA,
            econtent: Some(
                Any::encode_from(&OctetString::new(env_der.clone()).map_err(err("content"))?)
                    .map_err(err("content"))?,
            ),
        },
        certificates: Some(certificates),
        crls: None,
        signer_infos,
    };
    let mut der = content_info(oids::ID_SIGNED_DATA, &sd, spec)?;
    if spec.tamper_message_digest {
        // Change one byte of the encapsulated envelope after signing: the signature
        // over the attributes still verifies, the messageDigest no longer matches.
        if let Some(pos) = der
            .windows(env_der.len().min(64))
            .position(|w| w == &env_der[..env_der.len().min(64)])
        {
            let i = pos + env_der.len() / 2;
            der[i] ^= 0x01;
        }
    }
    Ok(Request {
        der,
        transaction_id: spec.transaction_id.clone(),
        sender_nonce: nonce,
    })
}

/// What a CertRep said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// "0" success, "2" failure, "3" pending.
    pub status: String,
    pub fail_info: Option<String>,
    pub fail_info_text: Option<String>,
    pub transaction_id: String,
    pub recipient_nonce: Vec<u8>,
    /// Issued certificate first (SUCCESS only).
    pub certs: Vec<Certificate>,
    /// The content encryption the reply used (SUCCESS only).
    pub alg: Option<ContentAlg>,
    /// CRLs (DER) in the reply (GetCRL).
    pub crls: Vec<Vec<u8>>,
}

/// Read a CertRep: verify the RA's signature, read the attributes, and on SUCCESS
/// decrypt the certificates with the device key.
pub fn read_reply(der: &[u8], ra: &Certificate, device: &Device) -> Result<Reply> {
    let ci = ContentInfo::from_der(der).map_err(err("CertRep"))?;
    let sd: SignedData = ci.content.decode_as().map_err(err("CertRep"))?;
    let [si] = sd.signer_infos.0.as_slice() else {
        return Err(ScepError::bad_request("CertRep must have one SignerInfo"));
    };
    let digest = DigestAlg::from_oid(&si.digest_alg.oid)?;
    let signed = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| ScepError::bad_request("no signed attributes"))?;
    message::verify(
        ra,
        &si.signature_algorithm.oid,
        digest,
        &message::raw_signed_attrs(der)
            .ok_or_else(|| ScepError::bad_request("bad signed attributes"))?,
        si.signature.as_bytes(),
    )?;
    let get = |oid| {
        signed
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.get(0).cloned())
    };
    let text = |oid| get(oid).map(|v: Any| String::from_utf8_lossy(v.value()).into_owned());
    let status = text(oids::PKI_STATUS).ok_or_else(|| ScepError::bad_request("no pkiStatus"))?;
    let mut reply = Reply {
        status: status.clone(),
        fail_info: text(oids::FAIL_INFO),
        fail_info_text: text(oids::FAIL_INFO_TEXT),
        transaction_id: text(oids::TRANSACTION_ID).unwrap_or_default(),
        recipient_nonce: get(oids::RECIPIENT_NONCE)
            .and_then(|v| v.decode_as::<OctetString>().ok())
            .map(|o| o.into_bytes().into_vec())
            .unwrap_or_default(),
        certs: Vec::new(),
        alg: None,
        crls: Vec::new(),
    };
    if status == "0" {
        let content = sd
            .encap_content_info
            .econtent
            .ok_or_else(|| ScepError::bad_request("SUCCESS without content"))?
            .decode_as::<OctetString>()
            .map_err(err("content"))?;
        let env_ci = ContentInfo::from_der(content.as_bytes()).map_err(err("envelope"))?;
        let env = envelope::decode(&env_ci.content.to_der().map_err(err("envelope"))?)?;
        let key = device.key.clone();
        let opened = envelope::open(
            &env,
            &[Recipient::of(&device.cert)?],
            true,
            &mut |_, _, ek| key.decrypt(rsa::Pkcs1v15Encrypt, ek).ok(),
        )?;
        let inner = ContentInfo::from_der(&opened.content).map_err(err("certs"))?;
        let inner: SignedData = inner.content.decode_as().map_err(err("certs"))?;
        reply.certs = crate::message::certificates(&inner).cloned().collect();
        reply.crls = inner
            .crls
            .as_ref()
            .map(|set| {
                set.0
                    .iter()
                    .filter_map(|c| match c {
                        cms::revocation::RevocationInfoChoice::Crl(l) => l.to_der().ok(),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        reply.alg = Some(opened.alg);
    }
    Ok(reply)
}
