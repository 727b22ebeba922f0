//! pkcsPKIEnvelope (RFC 8894 §3.2.2): CMS EnvelopedData with one RSA key-transport
//! recipient. `cms` cannot decrypt and its builder only encrypts with AES, so both
//! directions are done here over the `cms` structures: unwrap the content key with
//! the RA key (in the HSM, through a callback), then CBC with the algorithm named.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::error::{Result, ScepError};
use crate::oids;

/// Largest encrypted content accepted (a CSR or a small request).
pub const MAX_CIPHERTEXT: usize = 32 * 1024;
/// Most RecipientInfos looked at.
pub const MAX_RECIPIENTS: usize = 4;

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

/// Decode an EnvelopedData (its DER SEQUENCE). Strict DER first; if that fails,
/// accept what Go's pkcs7 (micromdm scepclient) sends: encryptedContent as a
/// constructed `[0]` holding OCTET STRING segments (BER), which is rebuilt as the
/// DER form. Nothing else is relaxed.
pub fn decode(der_bytes: &[u8]) -> Result<EnvelopedData> {
    use der::asn1::AnyRef;
    use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};
    if let Ok(env) = EnvelopedData::from_der(der_bytes) {
        return Ok(env);
    }
    let bad = || ScepError::bad_request("malformed EnvelopedData");
    let items = |bytes| -> Result<Vec<AnyRef<'_>>> {
        let mut r = SliceReader::new(bytes).map_err(|_| bad())?;
        let mut v = Vec::new();
        while !r.is_finished() {
            v.push(r.decode::<AnyRef<'_>>().map_err(|_| bad())?);
            if v.len() > 16 {
                return Err(bad());
            }
        }
        Ok(v)
    };
    let seq = AnyRef::from_der(der_bytes).map_err(|_| bad())?;
    let parts = items(seq.value())?;
    // version, recipientInfos, encryptedContentInfo (no originatorInfo / unprotectedAttrs here).
    let [version, recips, eci] = parts.as_slice() else {
        return Err(bad());
    };
    let version = version.decode_as::<CmsVersion>().map_err(|_| bad())?;
    let recip_infos =
        RecipientInfos::from_der(&recips.to_der().map_err(|_| bad())?).map_err(|_| bad())?;
    let eci_parts = items(eci.value())?;
    let [ct, alg, content] = eci_parts.as_slice() else {
        return Err(bad());
    };
    if content.tag()
        != (Tag::ContextSpecific {
            constructed: true,
            number: TagNumber(0),
        })
    {
        return Err(bad());
    }
    let mut data = Vec::new();
    for seg in items(content.value())? {
        if seg.tag() != Tag::OctetString {
            return Err(bad());
        }
        data.extend_from_slice(seg.value());
    }
    Ok(EnvelopedData {
        version,
        originator_info: None,
        recip_infos,
        encrypted_content: EncryptedContentInfo {
            content_type: ct.decode_as().map_err(|_| bad())?,
            content_enc_alg: alg.decode_as().map_err(|_| bad())?,
            encrypted_content: Some(OctetString::new(data).map_err(|_| bad())?),
        },
        unprotected_attrs: None,
    })
}

/// Fill a buffer from the OS CSPRNG.
pub fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|_| ScepError::bad_request("no randomness available"))
}

/// Does this recipient identifier name `cert`?
fn names(rid: &RecipientIdentifier, cert: &Certificate) -> bool {
    match rid {
        RecipientIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == *cert.tbs_certificate().issuer()
                && ias.serial_number == *cert.tbs_certificate().serial_number()
        }
        RecipientIdentifier::SubjectKeyIdentifier(ski) => cert
            .tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
            .and_then(|e| der::Decode::from_der(e.extn_value.as_bytes()).ok())
            .is_some_and(|k: OctetString| k == ski.0),
    }
}

/// A decrypted envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub content: Vec<u8>,
    pub alg: ContentAlg,
}

/// Open an envelope addressed to `ra`.
///
/// Steps: (1) find the one key-transport RecipientInfo naming the RA certificate
/// (at most [`MAX_RECIPIENTS`] looked at); (2) check the key-transport algorithm
/// (rsaEncryption) and the content algorithm (AES, or DES/3DES if `allow_legacy`);
/// (3) unwrap the content key with `unwrap` (the RA key in the HSM, CKM_RSA_PKCS);
/// (4) CBC-decrypt. A failed unwrap continues with a random key of the right size,
/// so every decryption failure (bad RSA padding, wrong key size, bad CBC padding)
/// gives the same answer at the same point: no padding oracle.
pub fn open(
    env: &EnvelopedData,
    ra: &Certificate,
    allow_legacy: bool,
    unwrap: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Result<Opened> {
    let infos = env.recip_infos.0.as_slice();
    if infos.is_empty() || infos.len() > MAX_RECIPIENTS {
        return Err(ScepError::bad_request(format!(
            "the envelope must have 1 to {MAX_RECIPIENTS} RecipientInfos"
        )));
    }
    let ours: Vec<&KeyTransRecipientInfo> = infos
        .iter()
        .filter_map(|ri| match ri {
            RecipientInfo::Ktri(k) if names(&k.rid, ra) => Some(k),
            _ => None,
        })
        .collect();
    let ktri = match ours.as_slice() {
        [one] => *one,
        [] => {
            return Err(ScepError::bad_cert_id(
                "the envelope is not encrypted to this RA certificate (fetch it again with GetCACert)",
            ));
        }
        _ => {
            return Err(ScepError::bad_request(
                "the envelope names the RA certificate more than once",
            ));
        }
    };
    if ktri.key_enc_alg.oid != oids::RSA_ENCRYPTION {
        return Err(ScepError::bad_alg(format!(
            "key transport {} is not supported (use rsaEncryption)",
            ktri.key_enc_alg.oid
        )));
    }
    let eci = &env.encrypted_content;
    let alg = ContentAlg::from_oid(&eci.content_enc_alg.oid)?;
    if alg.is_legacy() && !allow_legacy {
        return Err(ScepError::bad_alg(format!(
            "{} is refused on this profile: use AES (GetCACaps lists AES)",
            alg.name()
        )));
    }
    let iv = eci
        .content_enc_alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<OctetString>().ok())
        .ok_or_else(|| ScepError::bad_request("the content encryption has no IV"))?;
    if iv.as_bytes().len() != alg.block_len() {
        return Err(ScepError::bad_request("the IV has the wrong length"));
    }
    let ct = eci
        .encrypted_content
        .as_ref()
        .ok_or_else(|| ScepError::bad_request("the envelope has no encrypted content"))?
        .as_bytes();
    if ct.is_empty() || ct.len() > MAX_CIPHERTEXT || ct.len() % alg.block_len() != 0 {
        return Err(ScepError::bad_request(
            "the encrypted content has a bad length",
        ));
    }
    let mut fallback = vec![0u8; alg.key_len()];
    random(&mut fallback)?;
    let key = match unwrap(ktri.enc_key.as_bytes()) {
        Some(k) if k.len() == alg.key_len() => k,
        _ => fallback,
    };
    let content = alg
        .decrypt(&key, iv.as_bytes(), ct)
        .ok_or_else(|| ScepError::bad_check("the request could not be decrypted"))?;
    Ok(Opened { content, alg })
}

/// Encrypt `content` to the RSA key of `recipient` (RFC 8894 §3.2.2), naming it by issuer and serial.
pub fn seal(content: &[u8], recipient: &Certificate, alg: ContentAlg) -> Result<EnvelopedData> {
    use rsa::pkcs8::DecodePublicKey;
    let spki = recipient.tbs_certificate().subject_public_key_info();
    if spki.algorithm.oid != oids::RSA_ENCRYPTION {
        return Err(ScepError::bad_alg(
            "the requester's certificate must hold an RSA key to receive an encrypted reply",
        ));
    }
    let spki_der = spki
        .to_der()
        .map_err(|_| ScepError::bad_request("bad requester key"))?;
    let key = rsa::RsaPublicKey::from_public_key_der(&spki_der)
        .map_err(|_| ScepError::bad_request("bad requester RSA key"))?;
    let mut cek = vec![0u8; alg.key_len()];
    random(&mut cek)?;
    let mut iv = vec![0u8; alg.block_len()];
    random(&mut iv)?;
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let enc_key = key
        .encrypt(&mut rng, rsa::Pkcs1v15Encrypt, &cek)
        .map_err(|_| ScepError::bad_request("cannot encrypt to the requester key"))?;
    let ct = alg.encrypt(&cek, &iv, content)?;
    let der_err = |_| ScepError::bad_request("encoding the envelope failed");
    let ktri = KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: recipient.tbs_certificate().issuer().clone(),
            serial_number: recipient.tbs_certificate().serial_number().clone(),
        }),
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: oids::RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        enc_key: OctetString::new(enc_key).map_err(der_err)?,
    };
    let mut infos = SetOfVec::new();
    infos.insert(RecipientInfo::Ktri(ktri)).map_err(der_err)?;
    Ok(EnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(infos),
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
        unprotected_attrs: None,
    })
}
