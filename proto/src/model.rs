//! Validated domain values. Each has a private field and a constructor that
//! refuses bad input with a message a user can act on.

use std::fmt;
use std::str::FromStr;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc4519;
use hsm::{HashAlg, KeySpec};
use serde::{Deserialize, Serialize};
use x509_cert::name::Name;

use crate::{Error, Result};

/// Names used in URLs and file names: 1–64 of `a-z 0-9 - _ .`, starting with a letter or
/// digit. One validator for every process: the edge refuses a profile name the signer could
/// never have.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(s: &str) -> Result<Self> {
                if valid_name(s) {
                    Ok($name(s.to_owned()))
                } else {
                    Err(Error::Invalid(format!(
                        concat!("invalid ", $what, " {:?}: use 1-64 characters a-z, 0-9, '-', '_', '.', starting with a letter or digit"),
                        s
                    )))
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                $name::new(&s)
            }
        }
        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
    };
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

name_type!(
    /// A CA name (used in URLs and file names).
    CaName,
    "CA name"
);
name_type!(
    /// A SCEP profile name: the last segment of `/scep/<profile>`.
    ProfileName,
    "profile name"
);

name_type!(
    /// A scope tag on CAs and in role assignments.
    Tag,
    "tag"
);
name_type!(
    /// A role's name (built-in or custom).
    RoleName,
    "role name"
);
/// An admin's name (the officers registered at `init` and admins added later): 1–64 of
/// a-z, A-Z, 0-9, '-', '_', '.'.
pub fn check_admin_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid admin name {n:?}: use 1-64 characters a-z, A-Z, 0-9, '-', '_', '.'"
        )))
    }
}

impl Tag {
    /// The tag of a CA created without tags.
    pub fn default_tag() -> Tag {
        Tag("default".to_owned())
    }
}

/// A CA subject: CN required; O, OU, C (exactly two letters), ST, L optional.
/// Written as RFC 4514 text, e.g. `CN=Issuing CA,O=Example,C=US`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subject {
    text: String,
}

impl Subject {
    pub fn new(text: &str) -> Result<Self> {
        let bad = |why: String| Error::Invalid(format!("invalid subject {text:?}: {why}"));
        if text.len() > 1024 {
            return Err(bad("longer than 1024 characters".into()));
        }
        let name = Name::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut cn = 0;
        for atv in name.iter() {
            let oid = atv.oid;
            let value = atv.value.value();
            if oid == rfc4519::CN {
                cn += 1;
            } else if oid == rfc4519::C {
                if value.len() != 2 || !value.iter().all(|b| b.is_ascii_uppercase()) {
                    return Err(bad(
                        "country (C) must be exactly two upper-case letters (ISO 3166), e.g. C=US"
                            .into(),
                    ));
                }
            } else if ![rfc4519::O, rfc4519::OU, rfc4519::ST, rfc4519::L].contains(&oid) {
                return Err(bad(format!(
                    "attribute {oid} is not allowed: use CN, O, OU, C, ST, L"
                )));
            }
            if value.is_empty() || value.len() > 64 {
                return Err(bad(format!("attribute {oid} must be 1 to 64 characters")));
            }
        }
        if cn != 1 {
            return Err(bad("exactly one common name (CN=...) is required".into()));
        }
        Ok(Subject {
            text: text.to_owned(),
        })
    }
    pub fn name(&self) -> Result<Name> {
        Name::from_str(&self.text).map_err(|e| Error::Invalid(e.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
}
impl TryFrom<String> for Subject {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Subject::new(&s)
    }
}
impl From<Subject> for String {
    fn from(s: Subject) -> String {
        s.text
    }
}

/// An extended key usage a CA may allow: a named one or a custom OID.
/// "Any Purpose" (2.5.29.37.0) is refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Eku(ObjectIdentifier);

const NAMED_EKUS: &[(&str, &str)] = &[
    ("server-auth", "1.3.6.1.5.5.7.3.1"),
    ("client-auth", "1.3.6.1.5.5.7.3.2"),
    ("code-signing", "1.3.6.1.5.5.7.3.3"),
    ("email-protection", "1.3.6.1.5.5.7.3.4"),
    ("ipsec-end-system", "1.3.6.1.5.5.7.3.5"),
    ("time-stamping", "1.3.6.1.5.5.7.3.8"),
    ("ocsp-signing", "1.3.6.1.5.5.7.3.9"),
    ("ipsec-ike", "1.3.6.1.5.5.7.3.17"),
    ("smartcard-logon", "1.3.6.1.4.1.311.20.2.2"),
    ("document-signing", "1.3.6.1.4.1.311.10.3.12"),
];
const ANY_PURPOSE: &str = "2.5.29.37.0";

impl Eku {
    pub fn new(s: &str) -> Result<Self> {
        let s = s.trim();
        let dotted = NAMED_EKUS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map_or(s, |(_, o)| *o);
        if dotted == ANY_PURPOSE
            || s.eq_ignore_ascii_case("any-purpose")
            || s.eq_ignore_ascii_case("any")
        {
            return Err(Error::Invalid(
                "the Any Purpose EKU (2.5.29.37.0) is refused: list the usages the CA may issue"
                    .into(),
            ));
        }
        let oid = ObjectIdentifier::new(dotted).map_err(|_| {
            Error::Invalid(format!(
                "unknown EKU {s:?}: use one of {} or a dotted OID such as 1.3.6.1.4.1.99999.1",
                NAMED_EKUS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        // A usable OID has at least 3 arcs; `ObjectIdentifier::new` already refused malformed ones.
        if oid.arcs().count() < 3 {
            return Err(Error::Invalid(format!("EKU OID {s:?} is too short")));
        }
        Ok(Eku(oid))
    }

    /// Parse a comma-separated list; duplicates are dropped, order is kept sorted.
    pub fn list(s: &str) -> Result<Vec<Eku>> {
        let mut v: Vec<Eku> = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Eku::new)
            .collect::<Result<_>>()?;
        v.sort();
        v.dedup();
        Ok(v)
    }

    pub fn oid(&self) -> ObjectIdentifier {
        self.0
    }
}
impl TryFrom<String> for Eku {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Eku::new(&s)
    }
}
impl From<Eku> for String {
    fn from(e: Eku) -> String {
        e.to_string()
    }
}
impl fmt::Display for Eku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dotted = self.0.to_string();
        match NAMED_EKUS.iter().find(|(_, o)| *o == dotted) {
            Some((n, _)) => f.write_str(n),
            None => f.write_str(&dotted),
        }
    }
}

/// A validity period: `20y`, `18m` (months of 30 days), `90d` or `12h`.
/// Stored as seconds; at most 50 years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Lifetime(u64);

impl Lifetime {
    pub fn new(s: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!(
                "invalid validity {s:?}: use a number and a unit, e.g. 20y, 18m, 90d, 12h"
            ))
        };
        let s = s.trim();
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let unit_secs = match unit {
            "y" => 365 * 86400 + 21600, // 365.25 days
            "m" => 30 * 86400,
            "d" => 86400,
            "h" => 3600,
            _ => return Err(bad()),
        };
        let secs = n.checked_mul(unit_secs).ok_or_else(bad)?;
        if n == 0 || secs > 50 * (365 * 86400 + 21600) {
            return Err(Error::Invalid(format!(
                "validity {s:?} must be more than zero and at most 50 years"
            )));
        }
        Ok(Lifetime(secs))
    }
    pub fn secs(self) -> u64 {
        self.0
    }
}
impl TryFrom<String> for Lifetime {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Lifetime::new(&s)
    }
}
impl From<Lifetime> for String {
    fn from(l: Lifetime) -> String {
        format!("{}h", l.0 / 3600)
    }
}

/// Parse a key spec, mapping the hsm crate's message into our error.
pub fn key_spec(s: &str) -> Result<KeySpec> {
    s.parse().map_err(Error::Invalid)
}

/// Parse a hash, mapping the hsm crate's message into our error.
pub fn hash_alg(s: &str) -> Result<HashAlg> {
    s.parse().map_err(Error::Invalid)
}

/// [`text`] for an optional value.
pub mod text_opt {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr<Err = String>,
        D: Deserializer<'de>,
    {
        Option::<String>::deserialize(d)?
            .map(|v| v.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// [`text`] for a list.
pub mod text_vec {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(ToString::to_string))
    }
    pub fn deserialize<'de, T, D>(d: D) -> Result<Vec<T>, D::Error>
    where
        T: FromStr<Err = String>,
        D: Deserializer<'de>,
    {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|v| v.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Serde for values written as their `Display` text and read with `FromStr` (key specs,
/// hashes): the JSON is the text a user types.
mod text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err = String>,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Everything fixed when a CA is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSpec {
    pub name: CaName,
    pub subject: Subject,
    /// `rsa-2048` … `ec-p384`.
    #[serde(with = "text")]
    pub key: KeySpec,
    /// `sha256`, `sha384`, `sha512`.
    #[serde(with = "text")]
    pub hash: HashAlg,
    /// Absent for a bring-your-own CA (the external CA decides).
    pub validity: Option<Lifetime>,
    pub ekus: Vec<Eku>,
    /// basicConstraints pathLenConstraint; None = unlimited.
    pub path_len: Option<u8>,
    /// Scope tags; empty means `default` (and keeps the digests of older proposals).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl CaSpec {
    /// The CA's scope tags: `default` when none were given.
    pub fn scope(&self) -> Vec<Tag> {
        if self.tags.is_empty() {
            vec![Tag::default_tag()]
        } else {
            self.tags.clone()
        }
    }

    /// Check the parts that need no store: key, hash, and their pairing.
    pub fn check(&self) -> Result<(KeySpec, HashAlg)> {
        let (key, hash) = (self.key, self.hash);
        if !key.allows(hash) {
            return Err(Error::Invalid(format!(
                "{key} cannot be used with {hash}: ECDSA keys sign with sha256 or sha384"
            )));
        }
        if self.ekus.is_empty() {
            return Err(Error::Invalid(
                "a CA needs at least one allowed EKU (--eku client-auth,...)".into(),
            ));
        }
        Ok((key, hash))
    }
}

/// Where a CA stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaStatus {
    Active,
    Disabled,
    /// Bring-your-own CA waiting for the external CA's certificate.
    SigningRequired,
    /// Revoked by quorum: on its parent's CRL, signs nothing (but its CRL is still published).
    Revoked,
}

impl fmt::Display for CaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CaStatus::Active => "active",
            CaStatus::Disabled => "disabled",
            CaStatus::SigningRequired => "signing-required",
            CaStatus::Revoked => "revoked",
        })
    }
}

/// How a CA came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaKind {
    Root,
    Issuing,
    /// Bring your own CA: key here, certificate from an external CA.
    External,
}

/// A certificate serial number as operators type it and the store keys it: lowercase hex
/// of the DER INTEGER's content octets (one leading zero kept when the top bit is set).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(String);

impl Serial {
    /// Normalise a serial given by an operator: hex, optional colons, leading zeros as encoded.
    pub fn parse(s: &str) -> Result<Serial> {
        let hexs: String = s
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        if hexs.is_empty() || hexs.len() > 42 || !hexs.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "serial {s:?} must be hex (as `openssl x509 -serial` prints it)"
            )));
        }
        let bytes = hex::decode(if hexs.len() % 2 == 1 {
            format!("0{hexs}")
        } else {
            hexs
        })
        .map_err(|_| Error::Invalid(format!("serial {s:?} is not hex")))?;
        // The stored form is the DER content octets: strip extra leading zeros, keep one if the top bit is set.
        let mut b: &[u8] = &bytes;
        while b.len() > 1 && b[0] == 0 && b[1] & 0x80 == 0 {
            b = &b[1..];
        }
        let b = if b.first().is_some_and(|x| x & 0x80 != 0) {
            [&[0u8][..], b].concat()
        } else {
            b.to_vec()
        };
        Ok(Serial(hex::encode(b)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_hex(self) -> String {
        self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// SAN types a profile may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SanType {
    Dns,
    Email,
    /// Microsoft UPN (otherName 1.3.6.1.4.1.311.20.2.3).
    Upn,
    /// URI, including the Intune strong-mapping tag `tag:microsoft.com,2022-09-14:sid:<SID>`.
    Uri,
}

impl SanType {
    pub fn parse_list(s: &str) -> Result<Vec<SanType>> {
        let mut v = Vec::new();
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            v.push(match p.to_ascii_lowercase().as_str() {
                "dns" => SanType::Dns,
                "email" | "rfc822" => SanType::Email,
                "upn" => SanType::Upn,
                "uri" | "url" => SanType::Uri,
                _ => {
                    return Err(Error::Invalid(format!(
                        "unknown SAN type {p:?}: use dns, email, upn, uri"
                    )));
                }
            });
        }
        v.sort();
        v.dedup();
        Ok(v)
    }
}

/// A subject alternative name, written `dns:host`, `email:a@b`, `upn:u@d`, `uri:…`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum San {
    Dns(String),
    Email(String),
    Upn(String),
    Uri(String),
}

impl San {
    pub fn parse(s: &str) -> Result<San> {
        let (t, v) = s.split_once(':').ok_or_else(|| {
            Error::Invalid(format!(
                "SAN {s:?}: write TYPE:VALUE, e.g. dns:host.example"
            ))
        })?;
        if v.is_empty() || v.len() > 255 || v.chars().any(|c| c.is_control()) {
            return Err(Error::Invalid(format!("SAN {s:?} has a bad value")));
        }
        Ok(match t.to_ascii_lowercase().as_str() {
            "dns" => San::Dns(v.to_ascii_lowercase()),
            "email" => San::Email(v.to_owned()),
            "upn" => San::Upn(v.to_owned()),
            "uri" | "url" => San::Uri(v.to_owned()),
            _ => {
                return Err(Error::Invalid(format!(
                    "SAN type {t:?}: use dns, email, upn, uri"
                )));
            }
        })
    }
    /// The name without its type.
    pub fn value(&self) -> &str {
        match self {
            San::Dns(v) | San::Email(v) | San::Upn(v) | San::Uri(v) => v,
        }
    }
    pub fn kind(&self) -> SanType {
        match self {
            San::Dns(_) => SanType::Dns,
            San::Email(_) => SanType::Email,
            San::Upn(_) => SanType::Upn,
            San::Uri(_) => SanType::Uri,
        }
    }
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(v) => write!(f, "dns:{v}"),
            San::Email(v) => write!(f, "email:{v}"),
            San::Upn(v) => write!(f, "upn:{v}"),
            San::Uri(v) => write!(f, "uri:{v}"),
        }
    }
}
impl TryFrom<String> for San {
    type Error = Error;
    fn try_from(s: String) -> Result<San> {
        San::parse(&s)
    }
}
impl From<San> for String {
    fn from(s: San) -> String {
        s.to_string()
    }
}

/// The SCEP RA of a profile (RFC 8894 §2.1, §2.2): who signs CertReps and whose key opens
/// request envelopes. Clients choose the envelope's recipient from GetCACert by their own
/// conventions; `split` serves all three common ones (see the README).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaLayout {
    /// One RA certificate with digitalSignature + keyEncipherment.
    #[default]
    Combined,
    /// Microsoft NDES: a signing RA certificate (digitalSignature) and an encryption RA
    /// certificate (keyEncipherment only), each with its own key in the token. GetCACert
    /// lists the encryption certificate first.
    Split,
    /// No RA: the issuing CA signs CertReps and its key decrypts (RSA CAs only).
    Ca,
}

impl RaLayout {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "combined" => Ok(RaLayout::Combined),
            "split" => Ok(RaLayout::Split),
            "ca" => Ok(RaLayout::Ca),
            other => Err(Error::Invalid(format!(
                "--ra-layout {other:?}: use split, combined or ca"
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RaLayout::Combined => "combined",
            RaLayout::Split => "split",
            RaLayout::Ca => "ca",
        }
    }
    pub fn is_combined(&self) -> bool {
        *self == RaLayout::Combined
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn subjects_need_one_cn_and_a_two_letter_country() {
        assert!(Subject::new("CN=Issuing CA,O=Example,OU=IT,C=US,ST=CA,L=SF").is_ok());
        for bad in [
            "O=Example",
            "CN=a,CN=b",
            "CN=a,C=USA",
            "CN=a,C=u",
            "CN=a,C=12",
            "CN=a,DC=example",
            "CN=",
            "garbage",
        ] {
            assert!(Subject::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ekus_named_and_custom_but_never_any_purpose() {
        let l = Eku::list("client-auth,server-auth,1.3.6.1.4.1.99999.1,client-auth").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(Eku::new("client-auth").unwrap().to_string(), "client-auth");
        for bad in [
            "any-purpose",
            "2.5.29.37.0",
            "1.2.x",
            "1..2",
            "frobnicate",
            "1",
        ] {
            assert!(Eku::new(bad).is_err(), "{bad}");
        }
        assert!(
            Eku::new("2.5.29.37.0")
                .unwrap_err()
                .to_string()
                .contains("Any Purpose")
        );
    }

    #[test]
    fn lifetimes() {
        assert_eq!(Lifetime::new("1d").unwrap().secs(), 86400);
        assert!(Lifetime::new("20y").is_ok());
        for bad in [
            "",
            "0y",
            "10",
            "y",
            "51y",
            "10w",
            "-1d",
            "99999999999999999999y",
        ] {
            assert!(Lifetime::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ca_names() {
        assert!(CaName::new("corp-issuing.2026").is_ok());
        for bad in ["", "-x", "Upper", "a/b", "a b", &"x".repeat(65)] {
            assert!(CaName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ec_keys_refuse_sha512_and_weak_keys_are_refused() {
        let spec = |key: &str, hash: &str| CaSpec {
            name: CaName::new("x").unwrap(),
            subject: Subject::new("CN=x").unwrap(),
            key: key_spec(key).unwrap(),
            hash: hash_alg(hash).unwrap(),
            validity: None,
            ekus: Eku::list("client-auth").unwrap(),
            path_len: None,
            tags: vec![],
        };
        assert!(spec("ec-p256", "sha256").check().is_ok());
        assert!(spec("ec-p256", "sha512").check().is_err());
        assert!(key_spec("rsa-1024").is_err());
        assert!(hash_alg("sha1").is_err());
        assert!(hash_alg("md5").is_err());
        // The JSON of a spec is the text a user types, and is read back through the same checks.
        let json = serde_json::to_value(spec("ec-p384", "sha384")).unwrap();
        assert_eq!(
            (json["key"].as_str(), json["hash"].as_str()),
            (Some("ec-p384"), Some("sha384"))
        );
        let mut bad = json.clone();
        bad["key"] = "rsa-1024".into();
        assert!(serde_json::from_value::<CaSpec>(bad).is_err());
    }

    #[test]
    fn serials_normalise_as_the_der_content_octets() {
        assert_eq!(Serial::parse("7C:B5:66").unwrap().as_str(), "7cb566");
        assert!(Serial::parse("0x").is_err());
        assert_eq!(Serial::parse("00ff").unwrap().as_str(), "00ff");
        assert_eq!(Serial::parse("ff").unwrap().as_str(), "00ff");
        assert_eq!(Serial::parse("00007f").unwrap().as_str(), "7f");
        assert!(Serial::parse("zz").is_err());
    }
}
