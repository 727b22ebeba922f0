//! A strict SCEP client (AES-256-CBC and SHA-256 by default): builds PKCSReq /
//! RenewalReq / GetCert messages and reads CertReps. Used by `scep-bench` and the
//! tests; its knobs build the malformed messages the tests need.
//!
//! The device key is a software RSA key: this code plays the device, and devices
//! make their own keys.

use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::ContentInfo;
use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerIdentifier};
use der::asn1::{OctetString, PrintableStringRef, SetOfVec};
use der::{Any, Decode, Encode};
use rsa::RsaPrivateKey;
use sha2::Sha256;
use spki::{AlgorithmIdentifierOwned, EncodePublicKey};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::builder::{Builder, CertificateBuilder, RequestBuilder};
use x509_cert::name::Name;

use crate::envelope::{self, ContentAlg};
use crate::error::{Result, ScepError};
use crate::message::{self, DigestAlg};
use crate::oids;

fn err<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ScepError {
    move |e| ScepError::bad_request(format!("{what}: {e}"))
}

/// A device: its RSA key and a certificate for it (self-signed before enrolment,
/// the issued one for renewal).
#[derive(Debug, Clone)]
pub struct Device {
    pub key: RsaPrivateKey,
    pub cert: Certificate,
}

impl Device {
    /// Make a key and a self-signed certificate (RFC 8894 §2.3).
    pub fn generate(bits: usize, subject: &str) -> Result<Device> {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let key = RsaPrivateKey::new(&mut rng, bits).map_err(err("key generation"))?;
        Device::with_key(key, subject)
    }

    pub fn with_key(key: RsaPrivateKey, subject: &str) -> Result<Device> {
        use std::str::FromStr;
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
        let name = Name::from_str(subject).map_err(err("subject"))?;
        let spki =
            spki::SubjectPublicKeyInfoOwned::from_key(&key.to_public_key()).map_err(err("spki"))?;
        let mut serial = [0u8; 8];
        envelope::random(&mut serial)?;
        serial[0] &= 0x7f;
        serial[0] |= 1;
        let cert = CertificateBuilder::new(
            SelfSigned(name),
            x509_cert::serial_number::SerialNumber::new(&serial).map_err(err("serial"))?,
            x509_cert::time::Validity::from_now(std::time::Duration::from_secs(3600))
                .map_err(err("validity"))?,
            spki,
        )
        .map_err(err("certificate"))?
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .map_err(err("certificate"))?;
        Ok(Device { key, cert })
    }

    /// A PKCS#10 request for this key, with a challengePassword if given.
    pub fn csr(&self, subject: &str, challenge: Option<&str>) -> Result<Vec<u8>> {
        use std::str::FromStr;
        use x509_cert::request::attributes::ChallengePassword;
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(self.key.clone());
        let mut b = RequestBuilder::new(Name::from_str(subject).map_err(err("subject"))?)
            .map_err(err("csr"))?;
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

/// A self-signed profile with no extensions.
#[derive(Debug)]
struct SelfSigned(Name);
impl x509_cert::builder::profile::BuilderProfile for SelfSigned {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }
    fn get_subject(&self) -> Name {
        self.0.clone()
    }
    fn build_extensions(
        &self,
        _: spki::SubjectPublicKeyInfoRef<'_>,
        _: spki::SubjectPublicKeyInfoRef<'_>,
        _: &x509_cert::certificate::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<x509_cert::ext::Extension>> {
        Ok(vec![])
    }
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
    /// Add this many extra RecipientInfos naming the RA.
    pub duplicate_recipients: usize,
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

/// Build a PKIMessage carrying `inner` (a CSR, or IssuerAndSerialNumber for GetCert),
/// enveloped to `ra` and signed by `signer` (the device).
pub fn request(
    signer: &Device,
    inner: &[u8],
    ra: &Certificate,
    spec: &RequestSpec,
) -> Result<Request> {
    let mut env = envelope::seal(inner, ra, spec.alg)?;
    if let Some(oid) = spec.alg_oid {
        env.encrypted_content.content_enc_alg.oid = oid;
    }
    for _ in 0..spec.duplicate_recipients {
        let first = env.recip_infos.0.as_slice()[0].clone();
        let mut v = env.recip_infos.0.into_vec();
        let mut dup = first;
        if let cms::enveloped_data::RecipientInfo::Ktri(k) = &mut dup {
            let mut b = k.enc_key.as_bytes().to_vec();
            b[0] ^= 1; // differ, or the SET would reject the duplicate
            k.enc_key = OctetString::new(b).map_err(err("dup"))?;
        }
        v.push(dup);
        env.recip_infos.0 = SetOfVec::try_from(v).map_err(err("dup"))?;
    }
    let env_ci = ContentInfo {
        content_type: oids::ID_ENVELOPED_DATA,
        content: Any::encode_from(&env).map_err(err("envelope"))?,
    };
    let env_der = env_ci.to_der().map_err(err("envelope"))?;
    let content = EncapsulatedContentInfo {
        econtent_type: oids::ID_DATA,
        econtent: Some(
            Any::encode_from(&OctetString::new(env_der.clone()).map_err(err("content"))?)
                .map_err(err("content"))?,
        ),
    };
    let digest_alg = AlgorithmIdentifierOwned {
        oid: DigestAlg::Sha256.oid(),
        parameters: None,
    };
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: signer.cert.tbs_certificate().issuer().clone(),
        serial_number: signer.cert.tbs_certificate().serial_number().clone(),
    });
    let mut nonce = vec![0u8; 16];
    envelope::random(&mut nonce)?;
    let printable = |s: &str| -> Result<Any> {
        Any::encode_from(&PrintableStringRef::new(s).map_err(err("printable"))?)
            .map_err(err("printable"))
    };
    let mut si =
        SignerInfoBuilder::new(sid, digest_alg.clone(), &content, None).map_err(err("signer"))?;
    si.add_signed_attribute(attr(oids::MESSAGE_TYPE, printable(&spec.message_type)?)?)
        .map_err(err("attr"))?;
    si.add_signed_attribute(attr(
        oids::TRANSACTION_ID,
        printable(&spec.transaction_id)?,
    )?)
    .map_err(err("attr"))?;
    si.add_signed_attribute(attr(
        oids::SENDER_NONCE,
        Any::encode_from(&OctetString::new(nonce.clone()).map_err(err("nonce"))?)
            .map_err(err("nonce"))?,
    )?)
    .map_err(err("attr"))?;
    let signing_key = rsa::pkcs1v15::SigningKey::<Sha256>::new(signer.key.clone());
    let mut b = SignedDataBuilder::new(&content);
    if !spec.digest_algorithms_empty {
        b.add_digest_algorithm(digest_alg).map_err(err("digest"))?;
    }
    b.add_certificate(CertificateChoices::Certificate(signer.cert.clone()))
        .map_err(err("cert"))?;
    let tamper = spec.tamper_message_digest;
    b.add_signer_info_cb::<_, rsa::pkcs1v15::Signature, _>(si, &signing_key, |_si| Ok(()))
        .map_err(err("sign"))?;
    let mut der = b
        .build()
        .map_err(err("build"))?
        .to_der()
        .map_err(err("build"))?;
    if tamper {
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
        let opened = envelope::open(&env, &device.cert, true, &mut |ek| {
            key.decrypt(rsa::Pkcs1v15Encrypt, ek).ok()
        })?;
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
