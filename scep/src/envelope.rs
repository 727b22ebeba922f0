//! pkcsPKIEnvelope (RFC 8894 §3.2.2): CMS EnvelopedData with RSA key-transport
//! recipients. `cms` cannot decrypt, its builder only encrypts with AES, and its
//! RecipientIdentifier cannot hold the long serial numbers of clients' throwaway
//! certificates, so both directions are done here: [`decode`] reads an envelope into an
//! [`Envelope`] (every KeyTransRecipientInfo, each with its identifier as sent), [`open`]
//! unwraps the content key with a key we hold (in the HSM, through a callback) and
//! CBC-decrypts, and [`seal`] encrypts to one or more [`Recipient`]s.

use cms::content_info::CmsVersion;
use cms::enveloped_data::EncryptedContentInfo;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::{CertificateInner, Profile};

use crate::error::{Result, ScepError};
use crate::message::{IssuerSerial, key_identifiers};
use crate::oids;

/// Largest encrypted content accepted (a CSR or a small request).
pub const MAX_CIPHERTEXT: usize = 32 * 1024;
/// Most RecipientInfos looked at: a client that encrypts to every certificate of a
/// GetCACert bag (two RA certificates and a chain of up to four CAs) stays under it.
pub const MAX_RECIPIENTS: usize = 8;

/// A content-encryption algorithm. RC2 and anything else are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentAlg {
    Aes128,
    Aes192,
    Aes256,
    /// des-ede3-cbc: legacy, only on profiles that allow legacy algorithms.
    Des3,
    /// des-cbc: legacy, only on profiles that allow legacy algorithms.
    Des,
}

impl ContentAlg {
    pub fn from_oid(oid: &const_oid::ObjectIdentifier) -> Result<Self> {
        Ok(match *oid {
            oids::AES128_CBC => ContentAlg::Aes128,
            oids::AES192_CBC => ContentAlg::Aes192,
            oids::AES256_CBC => ContentAlg::Aes256,
            oids::DES_EDE3_CBC => ContentAlg::Des3,
            oids::DES_CBC => ContentAlg::Des,
            oids::RC2_CBC => return Err(ScepError::bad_alg("RC2 content encryption is refused")),
            other => {
                return Err(ScepError::bad_alg(format!(
                    "content encryption {other} is not supported (use AES-CBC)"
                )));
            }
        })
    }
    pub fn oid(self) -> const_oid::ObjectIdentifier {
        match self {
            ContentAlg::Aes128 => oids::AES128_CBC,
            ContentAlg::Aes192 => oids::AES192_CBC,
            ContentAlg::Aes256 => oids::AES256_CBC,
            ContentAlg::Des3 => oids::DES_EDE3_CBC,
            ContentAlg::Des => oids::DES_CBC,
        }
    }
    pub fn key_len(self) -> usize {
        match self {
            ContentAlg::Aes128 => 16,
            ContentAlg::Aes192 => 24,
            ContentAlg::Aes256 => 32,
            ContentAlg::Des3 => 24,
            ContentAlg::Des => 8,
        }
    }
    pub fn block_len(self) -> usize {
        if self.is_legacy() { 8 } else { 16 }
    }
    /// DES and 3DES: accepted only where a profile allows legacy algorithms.
    pub fn is_legacy(self) -> bool {
        matches!(self, ContentAlg::Des3 | ContentAlg::Des)
    }
    pub fn name(self) -> &'static str {
        match self {
            ContentAlg::Aes128 => "AES-128-CBC",
            ContentAlg::Aes192 => "AES-192-CBC",
            ContentAlg::Aes256 => "AES-256-CBC",
            ContentAlg::Des3 => "3DES-CBC",
            ContentAlg::Des => "DES-CBC",
        }
    }

    fn decrypt(self, key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
        use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
        macro_rules! dec {
            ($c:ty) => {
                cbc::Decryptor::<$c>::new_from_slices(key, iv)
                    .ok()?
                    .decrypt_padded_vec::<Pkcs7>(ct)
                    .ok()
            };
        }
        match self {
            ContentAlg::Aes128 => dec!(aes::Aes128),
            ContentAlg::Aes192 => dec!(aes::Aes192),
            ContentAlg::Aes256 => dec!(aes::Aes256),
            ContentAlg::Des3 => dec!(des::TdesEde3),
            ContentAlg::Des => dec!(des::Des),
        }
    }

    fn encrypt(self, key: &[u8], iv: &[u8], pt: &[u8]) -> Result<Vec<u8>> {
        use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
        macro_rules! enc {
            ($c:ty) => {
                cbc::Encryptor::<$c>::new_from_slices(key, iv)
                    .map_err(|_| ScepError::bad_request("bad key length"))?
                    .encrypt_padded_vec::<Pkcs7>(pt)
            };
        }
        Ok(match self {
            ContentAlg::Aes128 => enc!(aes::Aes128),
            ContentAlg::Aes192 => enc!(aes::Aes192),
            ContentAlg::Aes256 => enc!(aes::Aes256),
            ContentAlg::Des3 => enc!(des::TdesEde3),
            ContentAlg::Des => enc!(des::Des),
        })
    }
}

/// Who a KeyTransRecipientInfo is for (RFC 5652 §6.2.1).
///
/// ```text
/// RecipientIdentifier ::= CHOICE {
///   issuerAndSerialNumber IssuerAndSerialNumber,
///   subjectKeyIdentifier [0] SubjectKeyIdentifier }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, der::Choice)]
pub enum RecipientId {
    IssuerAndSerialNumber(IssuerSerial),
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    SubjectKeyIdentifier(OctetString),
}

/// KeyTransRecipientInfo (RFC 5652 §6.2.1).
///
/// ```text
/// KeyTransRecipientInfo ::= SEQUENCE {
///   version CMSVersion, rid RecipientIdentifier,
///   keyEncryptionAlgorithm KeyEncryptionAlgorithmIdentifier, encryptedKey EncryptedKey }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub struct KeyTrans {
    pub version: CmsVersion,
    pub rid: RecipientId,
    pub key_enc_alg: AlgorithmIdentifierOwned,
    pub enc_key: OctetString,
}

impl der::ValueOrd for KeyTrans {
    fn value_cmp(&self, other: &Self) -> der::Result<std::cmp::Ordering> {
        Ok(self.to_der()?.cmp(&other.to_der()?))
    }
}

/// A pkcsPKIEnvelope as received: its key-transport recipients (other RecipientInfo kinds
/// are counted, not read), the content algorithm with its IV, and the ciphertext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub recipients: Vec<KeyTrans>,
    /// RecipientInfos of other kinds (key agreement, KEK, password): never ours.
    pub other_recipients: usize,
    pub content_alg: AlgorithmIdentifierOwned,
    pub ciphertext: Vec<u8>,
}

/// A certificate whose key an envelope can be addressed to: what names it in a
/// RecipientInfo, and its public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub issuer_serial: IssuerSerial,
    /// Its subjectKeyIdentifier extension and the RFC 5280 method-1 key identifier.
    pub key_ids: Vec<Vec<u8>>,
    pub spki: SubjectPublicKeyInfoOwned,
}

impl Recipient {
    /// The recipient identity of any certificate (a CA's, an RA's, or a device's throwaway).
    pub fn of<P: Profile>(cert: &CertificateInner<P>) -> Result<Self> {
        Ok(Recipient {
            issuer_serial: IssuerSerial::of(cert)?,
            key_ids: key_identifiers(cert),
            spki: cert.tbs_certificate().subject_public_key_info().clone(),
        })
    }

    /// Does `rid` name this certificate?
    pub fn is_named_by(&self, rid: &RecipientId) -> bool {
        match rid {
            RecipientId::IssuerAndSerialNumber(ias) => {
                ias.issuer == self.issuer_serial.issuer
                    && ias.serial_number.as_bytes() == self.issuer_serial.serial_number.as_bytes()
            }
            RecipientId::SubjectKeyIdentifier(ski) => {
                self.key_ids.iter().any(|k| k.as_slice() == ski.as_bytes())
            }
        }
    }
}

impl Envelope {
    /// Is one of the RecipientInfos addressed to `r`?
    pub fn is_addressed_to(&self, r: &Recipient) -> bool {
        self.recipients.iter().any(|k| r.is_named_by(&k.rid))
    }
}

/// Read an EnvelopedData (its SEQUENCE, definite lengths).
///
/// ```text
/// EnvelopedData ::= SEQUENCE {
///   version CMSVersion, originatorInfo [0] IMPLICIT OriginatorInfo OPTIONAL,
///   recipientInfos RecipientInfos, encryptedContentInfo EncryptedContentInfo,
///   unprotectedAttrs [1] IMPLICIT UnprotectedAttributes OPTIONAL }
/// EncryptedContentInfo ::= SEQUENCE {
///   contentType ContentType, contentEncryptionAlgorithm ContentEncryptionAlgorithmIdentifier,
///   encryptedContent [0] IMPLICIT EncryptedContent OPTIONAL }
/// ```
///
/// encryptedContent may be primitive (DER) or, as Go's pkcs7 (micromdm scepclient) sends
/// it, constructed from OCTET STRING segments (BER); both give the same ciphertext.
pub fn decode(der_bytes: &[u8]) -> Result<Envelope> {
    use der::asn1::AnyRef;
    use der::{Reader, SliceReader, Tag, TagNumber, Tagged};
    let bad = |what: &str| ScepError::bad_request(format!("malformed EnvelopedData: {what}"));
    let items = |bytes, what: &str| -> Result<Vec<AnyRef<'_>>> {
        let mut r = SliceReader::new(bytes).map_err(|_| bad(what))?;
        let mut v = Vec::new();
        while !r.is_finished() {
            v.push(r.decode::<AnyRef<'_>>().map_err(|_| bad(what))?);
            if v.len() > 16 {
                return Err(bad(what));
            }
        }
        Ok(v)
    };
    let context = |n: u32, constructed: bool| Tag::ContextSpecific {
        constructed,
        number: TagNumber(n),
    };
    let seq = AnyRef::from_der(der_bytes).map_err(|_| bad("not a SEQUENCE"))?;
    if seq.tag() != Tag::Sequence {
        return Err(bad("not a SEQUENCE"));
    }
    let parts = items(seq.value(), "fields")?;
    // version, [originatorInfo], recipientInfos, encryptedContentInfo, [unprotectedAttrs]
    let mut fields = parts.iter().filter(|p| p.tag() != context(0, true));
    let (Some(version), Some(recips), Some(eci)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(bad("missing fields"));
    };
    version
        .decode_as::<CmsVersion>()
        .map_err(|_| bad("version"))?;
    if recips.tag() != Tag::Set {
        return Err(bad("recipientInfos is not a SET"));
    }
    let infos = items(recips.value(), "recipientInfos")?;
    if infos.is_empty() || infos.len() > MAX_RECIPIENTS {
        return Err(ScepError::bad_request(format!(
            "the envelope must have 1 to {MAX_RECIPIENTS} RecipientInfos"
        )));
    }
    let mut recipients = Vec::new();
    let mut other_recipients = 0;
    for ri in infos {
        if ri.tag() == Tag::Sequence {
            recipients.push(
                ri.decode_as::<KeyTrans>()
                    .map_err(|_| bad("RecipientInfo"))?,
            );
        } else {
            other_recipients += 1;
        }
    }
    let eci_parts = items(eci.value(), "encryptedContentInfo")?;
    let [ct, alg, content] = eci_parts.as_slice() else {
        return Err(bad("encryptedContentInfo"));
    };
    ct.decode_as::<const_oid::ObjectIdentifier>()
        .map_err(|_| bad("contentType"))?;
    let content_alg = alg
        .decode_as::<AlgorithmIdentifierOwned>()
        .map_err(|_| bad("contentEncryptionAlgorithm"))?;
    let ciphertext = if content.tag() == context(0, false) {
        content.value().to_vec()
    } else if content.tag() == context(0, true) {
        let mut data = Vec::new();
        for seg in items(content.value(), "encryptedContent")? {
            if seg.tag() != Tag::OctetString {
                return Err(bad("encryptedContent"));
            }
            data.extend_from_slice(seg.value());
        }
        data
    } else {
        return Err(bad("encryptedContent"));
    };
    Ok(Envelope {
        recipients,
        other_recipients,
        content_alg,
        ciphertext,
    })
}

/// Fill a buffer from the OS CSPRNG.
pub fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|_| ScepError::bad_request("no randomness available"))
}

/// The RSA key transport of a RecipientInfo (RFC 3560): PKCS#1 v1.5 (rsaEncryption), or
/// RSAES-OAEP with SHA-1 and MGF1-SHA-1 (its default parameters, what Windows sends).
/// OAEP with SHA-256 is refused with badAlg: SoftHSM2 2.6 decrypts OAEP with SHA-1 only,
/// and no client is known to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTransport {
    Pkcs1,
    OaepSha1,
}

/// RSAES-OAEP-params (RFC 8017 §A.2.1); absent fields take their defaults.
///
/// ```text
/// RSAES-OAEP-params ::= SEQUENCE {
///   hashAlgorithm      [0] HashAlgorithm     DEFAULT sha1,
///   maskGenAlgorithm   [1] MaskGenAlgorithm  DEFAULT mgf1SHA1,
///   pSourceAlgorithm   [2] PSourceAlgorithm  DEFAULT pSpecifiedEmpty }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct OaepParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mgf: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    label: Option<AlgorithmIdentifierOwned>,
}

impl KeyTransport {
    /// The transport a keyEncryptionAlgorithm names; anything else is badAlg.
    pub fn from_alg(alg: &AlgorithmIdentifierOwned) -> Result<Self> {
        match alg.oid {
            oids::RSA_ENCRYPTION => Ok(KeyTransport::Pkcs1),
            oids::RSAES_OAEP => {
                let refused = || {
                    ScepError::bad_alg(
                        "RSAES-OAEP is accepted with its default parameters only (SHA-1, \
                         MGF1-SHA-1, no label)",
                    )
                };
                let p = match &alg.parameters {
                    None => return Ok(KeyTransport::OaepSha1),
                    Some(p) if p.is_null() => return Ok(KeyTransport::OaepSha1),
                    Some(p) => p.decode_as::<OaepParams>().map_err(|_| refused())?,
                };
                if p.label.is_some() {
                    return Err(refused());
                }
                let hash = p.hash.as_ref().map_or(oids::SHA1, |h| h.oid);
                let mgf_hash = match &p.mgf {
                    None => oids::SHA1,
                    Some(m) if m.oid == oids::MGF1 => m
                        .parameters
                        .as_ref()
                        .and_then(|a| a.decode_as::<AlgorithmIdentifierOwned>().ok())
                        .map(|a| a.oid)
                        .ok_or_else(refused)?,
                    Some(_) => return Err(refused()),
                };
                match (hash, mgf_hash) {
                    (oids::SHA1, oids::SHA1) => Ok(KeyTransport::OaepSha1),
                    _ => Err(refused()),
                }
            }
            other => Err(ScepError::bad_alg(format!(
                "key transport {other} is not supported (use rsaEncryption or RSAES-OAEP)"
            ))),
        }
    }

    /// The keyEncryptionAlgorithm that names this transport.
    pub fn alg(self) -> AlgorithmIdentifierOwned {
        match self {
            KeyTransport::Pkcs1 => AlgorithmIdentifierOwned {
                oid: oids::RSA_ENCRYPTION,
                parameters: Some(der::asn1::Null.into()),
            },
            // Every field at its default: an empty SEQUENCE, as Windows writes it.
            KeyTransport::OaepSha1 => AlgorithmIdentifierOwned {
                oid: oids::RSAES_OAEP,
                parameters: Some(
                    Any::new(der::Tag::Sequence, Vec::new())
                        .unwrap_or_else(|_| der::asn1::Null.into()),
                ),
            },
        }
    }

    /// RSAES-OAEP with SHA-256 (hash and MGF1): what [`KeyTransport::from_alg`] refuses.
    pub fn oaep_sha256_alg() -> Result<AlgorithmIdentifierOwned> {
        let enc = |_| ScepError::bad_request("encoding the key transport failed");
        let sha256 = || AlgorithmIdentifierOwned {
            oid: oids::SHA256,
            parameters: None,
        };
        Ok(AlgorithmIdentifierOwned {
            oid: oids::RSAES_OAEP,
            parameters: Some(
                Any::encode_from(&OaepParams {
                    hash: Some(sha256()),
                    mgf: Some(AlgorithmIdentifierOwned {
                        oid: oids::MGF1,
                        parameters: Some(Any::encode_from(&sha256()).map_err(enc)?),
                    }),
                    label: None,
                })
                .map_err(enc)?,
            ),
        })
    }
}

/// Unwraps a content key with key `i` of those given to [`open`]: `None` on any failure
/// (which [`open`] does not reveal).
pub type Unwrap<'a> = dyn FnMut(usize, KeyTransport, &[u8]) -> Option<Vec<u8>> + 'a;

/// A decrypted envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub content: Vec<u8>,
    pub alg: ContentAlg,
    /// Which of the `keys` given to [`open`] decrypted it.
    pub key: usize,
}

/// Open an envelope with one of `keys`: the certificates whose private keys we hold for
/// this request (RFC 8894 §2.2: an RA encryption certificate, a combined RA certificate,
/// or the CA itself).
///
/// Steps: (1) take the first key-transport RecipientInfo that names one of `keys`
/// (a client may address several certificates at once; the others are ignored); (2) check
/// the key transport (rsaEncryption, or RSAES-OAEP as Windows sends it) and the content algorithm (AES, or DES/3DES
/// if `allow_legacy`); (3) unwrap the content key with `unwrap(i, transport, encrypted_key)`
/// (key `i`, in the HSM, CKM_RSA_PKCS or CKM_RSA_PKCS_OAEP); (4) CBC-decrypt. A failed unwrap continues with a random key
/// of the right size, so every decryption failure (bad RSA padding, wrong key size, bad
/// CBC padding) gives the same answer at the same point: no padding oracle.
pub fn open(
    env: &Envelope,
    keys: &[Recipient],
    allow_legacy: bool,
    unwrap: &mut Unwrap<'_>,
) -> Result<Opened> {
    let mut named = env.recipients.iter().filter_map(|k| {
        keys.iter()
            .position(|r| r.is_named_by(&k.rid))
            .map(|i| (i, k))
    });
    let Some((key, ktri)) = named.next() else {
        return Err(ScepError::bad_cert_id(
            "the envelope is not encrypted to a certificate this profile decrypts with \
             (fetch them again with GetCACert)",
        ));
    };
    if named.any(|(i, _)| i == key) {
        return Err(ScepError::bad_request(
            "the envelope names the same certificate more than once",
        ));
    }
    let transport = KeyTransport::from_alg(&ktri.key_enc_alg)?;
    let alg = ContentAlg::from_oid(&env.content_alg.oid)?;
    if alg.is_legacy() && !allow_legacy {
        return Err(ScepError::bad_alg(format!(
            "{} is refused on this profile: use AES (GetCACaps lists AES)",
            alg.name()
        )));
    }
    let iv = env
        .content_alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<OctetString>().ok())
        .ok_or_else(|| ScepError::bad_request("the content encryption has no IV"))?;
    if iv.as_bytes().len() != alg.block_len() {
        return Err(ScepError::bad_request("the IV has the wrong length"));
    }
    let ct = env.ciphertext.as_slice();
    if ct.is_empty() || ct.len() > MAX_CIPHERTEXT || !ct.len().is_multiple_of(alg.block_len()) {
        return Err(ScepError::bad_request(
            "the encrypted content has a bad length",
        ));
    }
    let mut fallback = vec![0u8; alg.key_len()];
    random(&mut fallback)?;
    let cek = match unwrap(key, transport, ktri.enc_key.as_bytes()) {
        Some(k) if k.len() == alg.key_len() => k,
        _ => fallback,
    };
    let content = alg
        .decrypt(&cek, iv.as_bytes(), ct)
        .ok_or_else(|| ScepError::bad_check("the request could not be decrypted"))?;
    Ok(Opened { content, alg, key })
}

/// EnvelopedData as [`seal`] writes it: key-transport recipients only (version 0).
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub struct Sealed {
    pub version: CmsVersion,
    pub recipient_infos: SetOfVec<KeyTrans>,
    pub encrypted_content: EncryptedContentInfo,
}

/// Encrypt `content` to the RSA key of each of `recipients` (RFC 8894 §3.2.2), naming
/// each by issuer and serial as its certificate has them. Returns the EnvelopedData's DER.
pub fn seal(content: &[u8], recipients: &[Recipient], alg: ContentAlg) -> Result<Vec<u8>> {
    seal_parts(content, recipients, alg, KeyTransport::Pkcs1)?
        .to_der()
        .map_err(|_| ScepError::bad_request("encoding the envelope failed"))
}

/// [`seal`], before encoding (the test client changes fields to build bad envelopes).
pub fn seal_parts(
    content: &[u8],
    recipients: &[Recipient],
    alg: ContentAlg,
    transport: KeyTransport,
) -> Result<Sealed> {
    use rsa::pkcs8::DecodePublicKey;
    let der_err = |_| ScepError::bad_request("encoding the envelope failed");
    let mut cek = vec![0u8; alg.key_len()];
    random(&mut cek)?;
    let mut iv = vec![0u8; alg.block_len()];
    random(&mut iv)?;
    let mut infos = SetOfVec::new();
    for r in recipients {
        if r.spki.algorithm.oid != oids::RSA_ENCRYPTION {
            return Err(ScepError::bad_alg(
                "the recipient's certificate must hold an RSA key to receive an encrypted message",
            ));
        }
        let spki_der = r
            .spki
            .to_der()
            .map_err(|_| ScepError::bad_request("bad recipient key"))?;
        let key = rsa::RsaPublicKey::from_public_key_der(&spki_der)
            .map_err(|_| ScepError::bad_request("bad recipient RSA key"))?;
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let enc_key = match transport {
            KeyTransport::Pkcs1 => key.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, &cek),
            KeyTransport::OaepSha1 => key.encrypt(&mut rng, rsa::Oaep::<sha1::Sha1>::new(), &cek),
        }
        .map_err(|_| ScepError::bad_request("cannot encrypt to the recipient key"))?;
        infos
            .insert(KeyTrans {
                version: CmsVersion::V0,
                rid: RecipientId::IssuerAndSerialNumber(r.issuer_serial.clone()),
                key_enc_alg: transport.alg(),
                enc_key: OctetString::new(enc_key).map_err(der_err)?,
            })
            .map_err(der_err)?;
    }
    if infos.is_empty() {
        return Err(ScepError::bad_request("an envelope needs a recipient"));
    }
    let ct = alg.encrypt(&cek, &iv, content)?;
    Ok(Sealed {
        version: CmsVersion::V0,
        recipient_infos: infos,
        encrypted_content: EncryptedContentInfo {
            content_type: oids::ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: alg.oid(),
                parameters: Some(
                    Any::encode_from(&OctetString::new(iv).map_err(der_err)?).map_err(der_err)?,
                ),
            },
            encrypted_content: Some(OctetString::new(ct).map_err(der_err)?),
        },
    })
}
