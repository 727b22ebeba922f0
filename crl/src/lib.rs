//! Certificate revocation lists (RFC 5280 §5). Pure functions, no keys: the signer
//! passes the revoked entries and signs the returned TBSCertList with the CA key in
//! the HSM, then [`assemble`]s the CertificateList.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use const_oid::db::rfc5280;
use der::asn1::{BitString, OctetString};
use der::{Encode, Enumerated};
use spki::AlgorithmIdentifierOwned;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

/// Errors building a CRL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("encoding the CRL: {0}")]
    Encoding(#[from] der::Error),
    #[error("{0}")]
    Invalid(String),
}

/// RFC 5280 §5.3.1 CRLReason (7 is unused; aACompromise is not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enumerated)]
#[repr(u32)]
pub enum Reason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    RemoveFromCrl = 8,
    PrivilegeWithdrawn = 9,
}

impl Reason {
    const NAMES: [(&'static str, Reason); 9] = [
        ("unspecified", Reason::Unspecified),
        ("keyCompromise", Reason::KeyCompromise),
        ("cACompromise", Reason::CaCompromise),
        ("affiliationChanged", Reason::AffiliationChanged),
        ("superseded", Reason::Superseded),
        ("cessationOfOperation", Reason::CessationOfOperation),
        ("certificateHold", Reason::CertificateHold),
        ("removeFromCRL", Reason::RemoveFromCrl),
        ("privilegeWithdrawn", Reason::PrivilegeWithdrawn),
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Reason::NAMES
            .iter()
            .find(|(_, r)| r == self)
            .map_or("unspecified", |(n, _)| *n);
        f.write_str(name)
    }
}

impl FromStr for Reason {
    type Err = String;
    /// Accepts the RFC names (`keyCompromise`) and kebab-case (`key-compromise`).
    fn from_str(s: &str) -> Result<Self, String> {
        let squash = |x: &str| x.replace(['-', '_'], "").to_ascii_lowercase();
        Reason::NAMES
            .iter()
            .find(|(n, _)| squash(n) == squash(s))
            .map(|(_, r)| *r)
            .ok_or_else(|| {
                format!(
                    "unknown reason {s:?}: use one of {}",
                    Reason::NAMES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The serial number's DER content octets (positive INTEGER).
    pub serial: Vec<u8>,
    /// Unix seconds.
    pub revoked_at: i64,
    /// None: no reasonCode extension (RFC 5280 §5.3.1: omit rather than unspecified).
    pub reason: Option<Reason>,
}

/// What a CRL says about itself.
#[derive(Debug, Clone)]
pub struct Info {
    pub issuer: Name,
    /// The CA's subject key identifier (authorityKeyIdentifier of the CRL).
    pub authority_key_id: Vec<u8>,
    /// Monotonic CRL number (RFC 5280 §5.2.3).
    pub number: u64,
    pub this_update: i64,
    pub next_update: i64,
    /// The CA key's signature algorithm.
    pub signature: AlgorithmIdentifierOwned,
}

fn time(unix: i64) -> Result<Time, Error> {
    let t = u64::try_from(unix).map_err(|_| Error::Invalid("time before 1970".into()))?;
    Ok(Time::try_from(
        std::time::UNIX_EPOCH + Duration::from_secs(t),
    )?)
}

fn ext<T: Encode>(oid: const_oid::ObjectIdentifier, value: &T) -> Result<Extension, Error> {
    Ok(Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// Build the TBSCertList (v2, with CRL number and AKI; reason codes per entry).
pub fn tbs(info: &Info, entries: impl IntoIterator<Item = Entry>) -> Result<TbsCertList, Error> {
    if info.next_update <= info.this_update {
        return Err(Error::Invalid("nextUpdate must be after thisUpdate".into()));
    }
    let mut revoked = Vec::new();
    for e in entries {
        let crl_entry_extensions = match e.reason {
            Some(r) => Some(vec![ext(rfc5280::ID_CE_CRL_REASONS, &r)?]),
            None => None,
        };
        revoked.push(RevokedCert {
            serial_number: SerialNumber::new(&e.serial)?,
            revocation_date: time(e.revoked_at)?,
            crl_entry_extensions,
        });
    }
    let number = der::asn1::Uint::new(&info.number.to_be_bytes())?;
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(info.authority_key_id.clone())?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    Ok(TbsCertList {
        version: x509_cert::Version::V2,
        signature: info.signature.clone(),
        issuer: info.issuer.clone(),
        this_update: time(info.this_update)?,
        next_update: Some(time(info.next_update)?),
        revoked_certificates: if revoked.is_empty() {
            None
        } else {
            Some(revoked)
        },
        crl_extensions: Some(vec![
            ext(rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER, &aki)?,
            ext(rfc5280::ID_CE_CRL_NUMBER, &number)?,
        ]),
    })
}

/// Put the signature on: the DER CertificateList.
pub fn assemble(tbs: TbsCertList, signature: &[u8]) -> Result<Vec<u8>, Error> {
    let signature_algorithm = tbs.signature.clone();
    Ok(CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm,
        signature: BitString::from_bytes(signature)?,
    }
    .to_der()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use der::Decode;

    fn info() -> Info {
        Info {
            issuer: "CN=Test CA".parse().unwrap(),
            authority_key_id: vec![1; 20],
            number: 7,
            this_update: 1_800_000_000,
            next_update: 1_800_000_000 + 7 * 86400,
            signature: AlgorithmIdentifierOwned {
                oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
                parameters: None,
            },
        }
    }

    #[test]
    fn reasons_parse_both_spellings() {
        assert_eq!(
            "keyCompromise".parse::<Reason>().unwrap(),
            Reason::KeyCompromise
        );
        assert_eq!(
            "key-compromise".parse::<Reason>().unwrap(),
            Reason::KeyCompromise
        );
        assert_eq!(
            "removeFromCRL".parse::<Reason>().unwrap(),
            Reason::RemoveFromCrl
        );
        assert!("stolen".parse::<Reason>().is_err());
    }

    #[test]
    fn a_crl_round_trips_with_its_entries_and_extensions() {
        let entries = vec![
            Entry {
                serial: vec![0x40, 1, 2, 3, 4, 5, 6, 7],
                revoked_at: 1_799_000_000,
                reason: Some(Reason::KeyCompromise),
            },
            Entry {
                serial: vec![0x41; 16],
                revoked_at: 1_799_000_001,
                reason: None,
            },
        ];
        let der = assemble(tbs(&info(), entries).unwrap(), &[0x30, 0x00]).unwrap();
        let crl: CertificateList = CertificateList::from_der(&der).unwrap();
        let t = &crl.tbs_cert_list;
        assert_eq!(t.version, x509_cert::Version::V2);
        assert_eq!(t.revoked_certificates.as_ref().unwrap().len(), 2);
        let exts = t.crl_extensions.as_ref().unwrap();
        assert!(exts.iter().any(|e| e.extn_id == rfc5280::ID_CE_CRL_NUMBER));
        assert!(
            exts.iter()
                .any(|e| e.extn_id == rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER)
        );
        let first = &t.revoked_certificates.as_ref().unwrap()[0];
        assert_eq!(
            first.crl_entry_extensions.as_ref().unwrap()[0].extn_id,
            rfc5280::ID_CE_CRL_REASONS
        );
    }

    #[test]
    fn an_empty_crl_has_no_revoked_list_and_bad_windows_are_refused() {
        let t = tbs(&info(), vec![]).unwrap();
        assert!(t.revoked_certificates.is_none());
        let mut i = info();
        i.next_update = i.this_update;
        assert!(tbs(&i, vec![]).is_err());
    }
}
