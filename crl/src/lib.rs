//! Certificate revocation lists (RFC 5280 §5). No keys: the signer pushes the revoked
//! entries into a [`CrlWriter`], signs the finished TBSCertList with the CA key in the
//! HSM, then [`Tbs::assemble`]s the CertificateList. The writer encodes entries as they
//! come into one buffer, so a CRL of millions of entries costs about its own size in
//! memory.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use const_oid::db::rfc5280;
use der::asn1::{AnyRef, BitString, ContextSpecific, IntRef, OctetString};
use der::{
    Decode, Encode, EncodeValue, Enumerated, FixedTag, Header, Length, Tag, TagMode, TagNumber,
    Writer,
};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::name::Name;
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

impl Reason {
    /// The RFC 5280 name exactly as [`fmt::Display`] writes it (no allocation: for
    /// reading stored rows); [`FromStr`] is the lenient parser for people.
    pub fn from_rfc_name(name: &str) -> Option<Reason> {
        Reason::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
    }
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

/// One revokedCertificates entry, encoded straight from borrowed parts (no allocation
/// per entry): userCertificate, revocationDate and the pre-encoded crlEntryExtensions.
struct EntryRef<'a> {
    serial: IntRef<'a>,
    date: Time,
    extensions: Option<AnyRef<'a>>,
}

impl EncodeValue for EntryRef<'_> {
    fn value_len(&self) -> der::Result<Length> {
        self.serial.encoded_len()? + self.date.encoded_len()? + self.extensions.encoded_len()?
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.serial.encode(writer)?;
        self.date.encode(writer)?;
        self.extensions.encode(writer)
    }
}

impl FixedTag for EntryRef<'_> {
    const TAG: Tag = Tag::Sequence;
}

/// Room left in front of the entries for the headers and the fields before them, so that
/// the TBSCertList and then the CertificateList are finished in place.
const HEADER_ROOM: usize = 64;

/// About the encoded size of one entry with a 16-octet serial and a reason code.
const ENTRY_SIZE_HINT: usize = 48;

/// Encoded revokedCertificates entries: a [`CrlWriter`]'s own, or a part made with
/// [`CrlWriter::part`] (filled on another thread) and then [`CrlWriter::append`]ed.
#[derive(Debug)]
pub struct Entries {
    buf: Vec<u8>,
    count: usize,
}

impl Entries {
    /// Add one revoked certificate (see [`encode_entry`]).
    pub fn push(
        &mut self,
        serial: &[u8],
        revoked_at: i64,
        reason: Option<Reason>,
    ) -> Result<(), Error> {
        self.push_encoded(&encode_entry(serial, revoked_at, reason)?)
    }

    /// Add one entry already encoded by [`encode_entry`] (checked to be one whole DER
    /// SEQUENCE, nothing more).
    pub fn push_encoded(&mut self, der: &[u8]) -> Result<(), Error> {
        let mut reader = der::SliceReader::new(der)?;
        let header = Header::decode(&mut reader)?;
        let whole = (header.encoded_len()? + header.length())?;
        if header.tag() != Tag::Sequence || usize::try_from(whole)? != der.len() {
            return Err(Error::Invalid("not one encoded CRL entry".into()));
        }
        self.buf.extend_from_slice(der);
        self.count += 1;
        Ok(())
    }

    /// Entries pushed so far.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// One revokedCertificates entry as DER, to keep with the revocation and add to every CRL
/// with [`Entries::push_encoded`] (no encoding work per CRL). `serial` is the serial
/// number's DER content octets.
pub fn encode_entry(
    serial: &[u8],
    revoked_at: i64,
    reason: Option<Reason>,
) -> Result<Vec<u8>, Error> {
    // RFC 5280 §4.1.2.2: positive, at most 20 octets (plus a leading zero octet).
    if serial.is_empty() || serial.len() > 21 || serial[0] & 0x80 != 0 {
        return Err(Error::Invalid(format!(
            "serial number {serial:02x?} is not a positive INTEGER of at most 20 octets"
        )));
    }
    let extensions = match reason {
        Some(r) => Some(vec![ext(rfc5280::ID_CE_CRL_REASONS, &r)?].to_der()?),
        None => None,
    };
    Ok(EntryRef {
        serial: IntRef::new(serial)?,
        date: time(revoked_at)?,
        extensions: extensions.as_deref().map(AnyRef::from_der).transpose()?,
    }
    .to_der()?)
}

/// Builds a v2 CRL (RFC 5280 §5) of any size in one buffer: entries are encoded as they
/// are pushed, the TBSCertList is finished in place for signing, then the signature is
/// appended. Memory is about the size of the CRL; nothing is kept per entry.
#[derive(Debug)]
pub struct CrlWriter {
    info: Info,
    /// The DER of version, signature, issuer, thisUpdate and nextUpdate.
    head: Vec<u8>,
    /// Its buffer starts with `HEADER_ROOM + head.len()` bytes of room.
    entries: Entries,
}

impl CrlWriter {
    /// Start a CRL; `capacity` is the expected number of entries (a hint).
    pub fn new(info: Info, capacity: usize) -> Result<Self, Error> {
        if info.next_update <= info.this_update {
            return Err(Error::Invalid("nextUpdate must be after thisUpdate".into()));
        }
        let mut head = Vec::new();
        x509_cert::Version::V2.encode_to_vec(&mut head)?;
        info.signature.encode_to_vec(&mut head)?;
        info.issuer.encode_to_vec(&mut head)?;
        time(info.this_update)?.encode_to_vec(&mut head)?;
        time(info.next_update)?.encode_to_vec(&mut head)?;
        let mut buf =
            Vec::with_capacity(HEADER_ROOM + head.len() + capacity.saturating_mul(ENTRY_SIZE_HINT));
        buf.resize(HEADER_ROOM + head.len(), 0);
        Ok(CrlWriter {
            info,
            head,
            entries: Entries { buf, count: 0 },
        })
    }

    /// Add one revoked certificate. `serial` is the serial number's DER content octets.
    pub fn push(
        &mut self,
        serial: &[u8],
        revoked_at: i64,
        reason: Option<Reason>,
    ) -> Result<(), Error> {
        self.entries.push(serial, revoked_at, reason)
    }

    /// An empty part for entries that come after every entry pushed here so far, to fill
    /// elsewhere (another thread) and [`CrlWriter::append`] in order.
    pub fn part(&self, capacity: usize) -> Entries {
        Entries {
            buf: Vec::with_capacity(capacity.saturating_mul(ENTRY_SIZE_HINT)),
            count: 0,
        }
    }

    /// Fill this writer's own entries with `f` (e.g. on this thread while parts are filled
    /// on others).
    pub fn first_part<T>(&mut self, f: impl FnOnce(&mut Entries) -> T) -> T {
        f(&mut self.entries)
    }

    /// Add a part's entries after the ones here.
    pub fn append(&mut self, part: Entries) {
        self.entries.buf.extend_from_slice(&part.buf);
        self.entries.count += part.count;
    }

    /// Entries so far.
    pub fn count(&self) -> usize {
        self.entries.count
    }

    /// Finish the TBSCertList: the CRL number and authorityKeyIdentifier go last.
    pub fn finish(self) -> Result<Tbs, Error> {
        let CrlWriter {
            info,
            head,
            entries: Entries { mut buf, count, .. },
        } = self;
        let entries_start = HEADER_ROOM + head.len();
        let entries_len = buf.len() - entries_start;
        let number = der::asn1::Uint::new(&info.number.to_be_bytes())?;
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(info.authority_key_id.clone())?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };
        let extensions = ContextSpecific {
            tag_number: TagNumber(0),
            tag_mode: TagMode::Explicit,
            value: vec![
                ext(rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER, &aki)?,
                ext(rfc5280::ID_CE_CRL_NUMBER, &number)?,
            ],
        };
        extensions.encode_to_vec(&mut buf)?;
        // revokedCertificates is left out when empty (RFC 5280 §5.1.2.6).
        let mut list_header = Vec::new();
        if count > 0 {
            Header::new(Tag::Sequence, Length::try_from(entries_len)?)
                .encode_to_vec(&mut list_header)?;
        }
        let content = head.len() + list_header.len() + (buf.len() - entries_start);
        let mut tbs_header = Vec::new();
        Header::new(Tag::Sequence, Length::try_from(content)?).encode_to_vec(&mut tbs_header)?;
        let start = entries_start - list_header.len() - head.len() - tbs_header.len();
        let mut at = start;
        for part in [&tbs_header, &head, &list_header] {
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Ok(Tbs {
            buf,
            start,
            signature: info.signature,
        })
    }
}

/// A finished TBSCertList, with room in front for the CertificateList header.
#[derive(Debug)]
pub struct Tbs {
    buf: Vec<u8>,
    start: usize,
    signature: AlgorithmIdentifierOwned,
}

impl Tbs {
    /// The DER to sign.
    pub fn der(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Put the signature on: the DER CertificateList.
    pub fn assemble(self, signature: &[u8]) -> Result<Vec<u8>, Error> {
        let Tbs {
            mut buf,
            start,
            signature: algorithm,
        } = self;
        let tbs_len = buf.len() - start;
        algorithm.encode_to_vec(&mut buf)?;
        BitString::from_bytes(signature)?.encode_to_vec(&mut buf)?;
        let mut header = Vec::new();
        Header::new(Tag::Sequence, Length::try_from(buf.len() - start)?)
            .encode_to_vec(&mut header)?;
        let begin = start
            .checked_sub(header.len())
            .ok_or_else(|| Error::Invalid("no room for the CRL header".into()))?;
        buf[begin..start].copy_from_slice(&header);
        debug_assert!(tbs_len > 0);
        buf.drain(..begin);
        Ok(buf)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
    use x509_cert::serial_number::SerialNumber;

    fn info() -> Info {
        Info {
            issuer: "CN=Test CA,O=Castellan".parse().unwrap(),
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

    type Row = (Vec<u8>, i64, Option<Reason>);

    /// The same CRL through x509-cert's own structures: what the writer must equal.
    fn reference(info: &Info, rows: &[Row], signature: &[u8]) -> Vec<u8> {
        let revoked: Vec<RevokedCert> = rows
            .iter()
            .map(|(serial, at, reason)| RevokedCert {
                serial_number: SerialNumber::new(serial).unwrap(),
                revocation_date: time(*at).unwrap(),
                crl_entry_extensions: reason
                    .map(|r| vec![ext(rfc5280::ID_CE_CRL_REASONS, &r).unwrap()]),
            })
            .collect();
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(info.authority_key_id.clone()).unwrap()),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };
        let number = der::asn1::Uint::new(&info.number.to_be_bytes()).unwrap();
        let tbs = TbsCertList {
            version: x509_cert::Version::V2,
            signature: info.signature.clone(),
            issuer: info.issuer.clone(),
            this_update: time(info.this_update).unwrap(),
            next_update: Some(time(info.next_update).unwrap()),
            revoked_certificates: (!revoked.is_empty()).then_some(revoked),
            crl_extensions: Some(vec![
                ext(rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER, &aki).unwrap(),
                ext(rfc5280::ID_CE_CRL_NUMBER, &number).unwrap(),
            ]),
        };
        CertificateList {
            tbs_cert_list: tbs,
            signature_algorithm: info.signature.clone(),
            signature: BitString::from_bytes(signature).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    fn written(info: &Info, rows: &[Row], signature: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut w = CrlWriter::new(info.clone(), rows.len()).unwrap();
        for (serial, at, reason) in rows {
            w.push(serial, *at, *reason).unwrap();
        }
        assert_eq!(w.count(), rows.len());
        let tbs = w.finish().unwrap();
        let tbs_der = tbs.der().to_vec();
        (tbs_der, tbs.assemble(signature).unwrap())
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
        for (name, r) in Reason::NAMES {
            assert_eq!(Reason::from_rfc_name(&r.to_string()), Some(r), "{name}");
        }
        assert_eq!(Reason::from_rfc_name("key-compromise"), None);
    }

    #[test]
    fn the_writer_encodes_exactly_what_x509_cert_encodes() {
        // Every reason and none; short and long serials, with and without a leading zero;
        // a revocation date past 2049 (GeneralizedTime); list lengths on both sides of the
        // DER long-form length boundaries (127/128, 255/256 bytes, 65535/65536 bytes).
        let mut reasons: Vec<Option<Reason>> =
            Reason::NAMES.iter().map(|(_, r)| Some(*r)).collect();
        reasons.push(None);
        let serial = |i: usize| -> Vec<u8> {
            match i % 4 {
                0 => vec![0x01],
                1 => vec![0x00, 0x80, i as u8],
                2 => (0..16)
                    .map(|k| (i + k) as u8 | 0x01)
                    .map(|b| b & 0x7f)
                    .collect(),
                _ => vec![
                    0x00, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44,
                    0x33, 0x22, 0x11, 0x10, 0x01, 0x02,
                ],
            }
        };
        for n in [0usize, 1, 2, 3, 5, 6, 7, 40, 2000] {
            let rows: Vec<Row> = (0..n)
                .map(|i| {
                    let at = if i % 7 == 3 {
                        2_600_000_000
                    } else {
                        1_799_000_000 + i as i64
                    };
                    (serial(i), at, reasons[i % reasons.len()])
                })
                .collect();
            for sig in [vec![], vec![0x30, 0x00], vec![7; 512]] {
                let (tbs, der) = written(&info(), &rows, &sig);
                assert_eq!(der, reference(&info(), &rows, &sig), "{n} entries");
                let crl =
                    CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).unwrap();
                assert_eq!(crl.tbs_cert_list.to_der().unwrap(), tbs, "{n} entries");
                assert_eq!(
                    crl.tbs_cert_list
                        .revoked_certificates
                        .map_or(0, |r| r.len()),
                    n
                );
            }
        }
    }

    #[test]
    fn parts_filled_apart_and_appended_in_order_give_the_same_crl() {
        let rows: Vec<Row> = (0..300u32)
            .map(|i| {
                let mut serial = i.to_be_bytes().to_vec();
                serial[0] = 0x11;
                (
                    serial,
                    1_799_000_000 + i64::from(i),
                    Reason::from_rfc_name(if i % 2 == 0 {
                        "superseded"
                    } else {
                        "keyCompromise"
                    }),
                )
            })
            .collect();
        let (_, whole) = written(&info(), &rows, &[1, 2, 3]);
        let mut w = CrlWriter::new(info(), 0).unwrap();
        let mut parts: Vec<Entries> = (0..3).map(|_| w.part(10)).collect();
        for (i, (serial, at, reason)) in rows.iter().enumerate() {
            parts[i / 100].push(serial, *at, *reason).unwrap();
        }
        for p in parts {
            w.append(p);
        }
        assert_eq!(w.count(), 300);
        assert_eq!(w.finish().unwrap().assemble(&[1, 2, 3]).unwrap(), whole);
    }

    #[test]
    fn pre_encoded_entries_give_the_same_crl_and_bad_ones_are_refused() {
        let rows: Vec<Row> = (0..50u8)
            .map(|i| {
                let reason = if i % 3 == 0 {
                    None
                } else {
                    Some(Reason::Superseded)
                };
                (vec![0x10, i, 7], 1_799_000_000 + i64::from(i), reason)
            })
            .collect();
        let (_, whole) = written(&info(), &rows, &[9]);
        let mut w = CrlWriter::new(info(), 0).unwrap();
        w.first_part(|e| {
            for (serial, at, reason) in &rows {
                e.push_encoded(&encode_entry(serial, *at, *reason).unwrap())
                    .unwrap();
            }
        });
        assert_eq!(w.finish().unwrap().assemble(&[9]).unwrap(), whole);
        let good = encode_entry(&[1], 1_799_000_000, None).unwrap();
        let mut e = CrlWriter::new(info(), 0).unwrap().part(1);
        for bad in [
            &good[..good.len() - 1],
            &[good.clone(), vec![0]].concat(),
            &[0x31, 0x00],
            &[],
        ] {
            assert!(e.push_encoded(bad).is_err(), "{bad:02x?}");
        }
        assert_eq!(e.count(), 0);
    }

    #[test]
    fn a_crl_carries_its_entries_and_extensions() {
        let rows = vec![
            (
                vec![0x40, 1, 2, 3, 4, 5, 6, 7],
                1_799_000_000,
                Some(Reason::KeyCompromise),
            ),
            (vec![0x41; 16], 1_799_000_001, None),
        ];
        let (_, der) = written(&info(), &rows, &[0x30, 0x00]);
        let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).unwrap();
        let t = &crl.tbs_cert_list;
        assert_eq!(t.version, x509_cert::Version::V2);
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
        assert!(
            t.revoked_certificates.as_ref().unwrap()[1]
                .crl_entry_extensions
                .is_none()
        );
    }

    #[test]
    fn an_empty_crl_has_no_revoked_list_and_bad_input_is_refused() {
        let (_, der) = written(&info(), &[], &[0x30, 0x00]);
        let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).unwrap();
        assert!(crl.tbs_cert_list.revoked_certificates.is_none());
        let mut i = info();
        i.next_update = i.this_update;
        assert!(CrlWriter::new(i, 0).is_err());
        let mut w = CrlWriter::new(info(), 1).unwrap();
        assert!(w.push(&[], 1_799_000_000, None).is_err(), "an empty serial");
        assert!(w.push(&[1], -5, None).is_err(), "a time before 1970");
        assert!(
            w.push(&[0x80, 1], 1_799_000_000, None).is_err(),
            "a negative serial"
        );
        assert!(
            w.push(&[1; 22], 1_799_000_000, None).is_err(),
            "a serial of 22 octets"
        );
        assert_eq!(w.count(), 0, "refused entries are not counted");
        w.push(&[5], 1_799_000_000, None).unwrap();
        let der = w.finish().unwrap().assemble(&[]).unwrap();
        assert_eq!(
            der,
            reference(&info(), &[(vec![5], 1_799_000_000, None)], &[])
        );
    }
}
