//! SCEP profiles: what an enrolment through a profile may obtain, and how it is
//! authorised. A profile is created by a quorum-approved proposal and never changes.

use serde::{Deserialize, Serialize};

use crate::model::{CaName, Eku, Lifetime};
use crate::{Error, Result};

pub use crate::model::SanType;

/// Key usages a leaf may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyUsageName {
    DigitalSignature,
    KeyEncipherment,
    NonRepudiation,
    KeyAgreement,
}

impl KeyUsageName {
    pub fn parse_list(s: &str) -> Result<Vec<KeyUsageName>> {
        let mut v = Vec::new();
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            v.push(match p {
                "digital-signature" => KeyUsageName::DigitalSignature,
                "key-encipherment" => KeyUsageName::KeyEncipherment,
                "non-repudiation" => KeyUsageName::NonRepudiation,
                "key-agreement" => KeyUsageName::KeyAgreement,
                _ => {
                    return Err(Error::Invalid(format!(
                        "unknown key usage {p:?}: use digital-signature, key-encipherment, non-repudiation, key-agreement"
                    )));
                }
            });
        }
        v.sort();
        v.dedup();
        if v.is_empty() {
            return Err(Error::Invalid(
                "a profile needs at least one key usage".into(),
            ));
        }
        Ok(v)
    }
}

/// How requests through a profile are authorised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ChallengeMode {
    /// One secret for the profile. Only its SHA-256 (with a domain prefix) is stored;
    /// requests are compared in constant time.
    Static { secret_hash: String },
    /// Single-use challenges minted by an operator (`castellan challenge new`).
    OneTime,
    /// Compact JWS (ES256) minted by an MDM holding one of these P-256 keys
    /// (SubjectPublicKeyInfo DER, base64).
    Signed { keys: Vec<String> },
    /// Intune's partner-CA API decides, through castellan-mdm (`validateRequest`, then
    /// `successNotification` before the certificate leaves the signer).
    Intune,
    /// A webhook decides, through castellan-mdm (an HMAC-signed HTTPS POST; only an
    /// explicit allow issues).
    Webhook,
    /// No SCEP at all: a `pkcs` profile, whose certificates (and keys) admins with
    /// `pkcs12.issue` ask for.
    None,
}

impl ChallengeMode {
    /// The outside service that decides this mode's challenges, if any.
    pub fn validator(&self) -> Option<crate::mdm::Validator> {
        match self {
            ChallengeMode::Intune => Some(crate::mdm::Validator::Intune),
            ChallengeMode::Webhook => Some(crate::mdm::Validator::Webhook),
            _ => None,
        }
    }
}

/// Hash of a static challenge as stored.
pub fn static_hash(secret: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"castellan-static-challenge-v1\n");
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Manual or automatic issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalMode {
    Auto,
    /// Requests wait as PENDING until `castellan request approve`.
    Manual,
}

/// Allowed requester keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicy {
    /// Smallest RSA modulus accepted (at least 2048).
    pub rsa_min_bits: u32,
    /// Largest RSA modulus accepted (at most 4096); 0 refuses RSA.
    pub rsa_max_bits: u32,
    /// Allowed curves: "p256", "p384".
    pub ec_curves: Vec<String>,
}

impl KeyPolicy {
    pub fn check(&self) -> Result<()> {
        if self.rsa_max_bits != 0
            && (self.rsa_min_bits < 2048
                || self.rsa_max_bits > 4096
                || self.rsa_min_bits > self.rsa_max_bits)
        {
            return Err(Error::Invalid(
                "RSA key sizes must be within 2048..=4096 (RSA-1024 is never accepted)".into(),
            ));
        }
        for c in &self.ec_curves {
            if c != "p256" && c != "p384" {
                return Err(Error::Invalid(format!(
                    "unsupported curve {c:?}: use p256 or p384"
                )));
            }
        }
        if self.rsa_max_bits == 0 && self.ec_curves.is_empty() {
            return Err(Error::Invalid("the profile allows no key type".into()));
        }
        Ok(())
    }
}

/// A profile name follows the CA-name rules (it appears in URLs).
pub use crate::model::ProfileName;

/// Everything a SCEP profile fixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    pub name: ProfileName,
    /// The issuing CA.
    pub ca: CaName,
    /// Subject attributes a request may carry: of CN, O, OU, C, ST, L, E.
    pub subject_attrs: Vec<String>,
    pub san_types: Vec<SanType>,
    /// EKUs of issued certificates: a subset of the CA's.
    pub ekus: Vec<Eku>,
    pub key_usage: Vec<KeyUsageName>,
    pub keys: KeyPolicy,
    pub validity: Lifetime,
    /// A renewal is accepted this long before the current certificate expires.
    pub renewal_window: Lifetime,
    pub approval: ApprovalMode,
    pub challenge: ChallengeMode,
    /// Also accept DES/3DES envelopes and SHA-1 signatures (old clients); logged as a warning.
    pub legacy_algorithms: bool,
    /// How the RA is presented and which key opens envelopes. Profiles stored before RA
    /// layouts existed read as `combined` (what they had); new ones default to `split`.
    #[serde(default, skip_serializing_if = "RaLayout::is_combined")]
    pub ra_layout: RaLayout,
    /// RA certificates also carry the Windows Certificate Request Agent EKU
    /// (1.3.6.1.4.1.311.20.2.1), as NDES's do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ra_windows_eku: bool,
    /// What GetCACert returns besides the RA certificates.
    #[serde(default, skip_serializing_if = "CaCertChain::is_issuing")]
    pub ca_chain: CaCertChain,
    /// A `pkcs` profile: the signer makes each key pair and returns it with the certificate
    /// and chain as a PKCS#12 file. Such a profile has no SCEP (`challenge` is `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs: Option<PkcsPolicy>,
}

/// What a `pkcs` profile generates and how it seals it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkcsPolicy {
    /// The key types it generates; the first is the default. Within the profile's key
    /// policy.
    #[serde(with = "crate::model::text_vec")]
    pub key_types: Vec<hsm::KeySpec>,
    /// The default encoding of its files.
    pub encoding: P12Encoding,
    /// Keep a copy of each private key, encrypted to an escrow key in the token, for
    /// quorum-approved recovery (encryption keys only).
    #[serde(default)]
    pub escrow: bool,
}

/// How a PKCS#12 file is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum P12Encoding {
    /// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and an HMAC-SHA256 MAC: Windows 10 1709 and
    /// later, current macOS, iOS and Android.
    Modern,
    /// pbeWithSHAAnd3-KeyTripleDES-CBC and an HMAC-SHA1 MAC: older Apple and Android.
    Compat,
}

impl std::str::FromStr for P12Encoding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "modern" => Ok(P12Encoding::Modern),
            "compat" => Ok(P12Encoding::Compat),
            _ => Err(Error::Invalid(format!(
                "encoding {s:?}: use modern or compat"
            ))),
        }
    }
}

impl std::fmt::Display for P12Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            P12Encoding::Modern => "modern",
            P12Encoding::Compat => "compat",
        })
    }
}

impl KeyPolicy {
    /// Does this policy accept keys of `spec`?
    pub fn allows(&self, spec: hsm::KeySpec) -> bool {
        use hsm::KeySpec as K;
        let rsa = |bits: u32| {
            self.rsa_max_bits != 0 && (self.rsa_min_bits..=self.rsa_max_bits).contains(&bits)
        };
        match spec {
            K::Rsa2048 => rsa(2048),
            K::Rsa3072 => rsa(3072),
            K::Rsa4096 => rsa(4096),
            K::EcP256 => self.ec_curves.iter().any(|c| c == "p256"),
            K::EcP384 => self.ec_curves.iter().any(|c| c == "p384"),
        }
    }
}

pub use crate::model::RaLayout;

/// The CA certificates GetCACert returns with the RA certificates (RFC 8894 §4.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaCertChain {
    /// The issuing CA only (a single `application/x-x509-ca-cert` certificate without an RA).
    #[default]
    Issuing,
    /// The issuing CA and every CA above it, up to the root.
    Full,
}

impl CaCertChain {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "issuing" => Ok(CaCertChain::Issuing),
            "full" => Ok(CaCertChain::Full),
            other => Err(Error::Invalid(format!(
                "--ca-chain {other:?}: use issuing or full"
            ))),
        }
    }
    fn is_issuing(&self) -> bool {
        *self == CaCertChain::Issuing
    }
}

const SUBJECT_ATTRS: [&str; 7] = ["CN", "O", "OU", "C", "ST", "L", "E"];

impl PkcsPolicy {
    fn check(&self, spec: &ProfileSpec) -> Result<()> {
        if self.key_types.is_empty() {
            return Err(Error::Invalid(
                "a pkcs profile generates at least one key type".into(),
            ));
        }
        for k in &self.key_types {
            if !spec.keys.allows(*k) {
                return Err(Error::Invalid(format!(
                    "key type {k} is outside the profile's key policy"
                )));
            }
        }
        if spec.approval == ApprovalMode::Manual {
            return Err(Error::Invalid(
                "a pkcs profile issues to an admin at once: manual approval is for SCEP".into(),
            ));
        }
        if self.escrow
            && !spec.key_usage.iter().any(|k| {
                matches!(
                    k,
                    KeyUsageName::KeyEncipherment | KeyUsageName::KeyAgreement
                )
            })
        {
            return Err(Error::Invalid(
                "escrow is for encryption keys: this profile's keys can only sign (add \
                 key-encipherment or key-agreement to --key-usage, or drop --escrow)"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl ProfileSpec {
    /// Checks that need no store.
    pub fn check(&self) -> Result<()> {
        for a in &self.subject_attrs {
            if !SUBJECT_ATTRS.contains(&a.as_str()) {
                return Err(Error::Invalid(format!(
                    "subject attribute {a:?} is not allowed: use {}",
                    SUBJECT_ATTRS.join(", ")
                )));
            }
        }
        if self.subject_attrs.is_empty() && self.san_types.is_empty() {
            return Err(Error::Invalid(
                "a profile must allow a subject attribute or a SAN type".into(),
            ));
        }
        if self.ekus.is_empty() {
            return Err(Error::Invalid("a profile needs at least one EKU".into()));
        }
        self.keys.check()?;
        if let ChallengeMode::Signed { keys } = &self.challenge {
            if keys.is_empty() {
                return Err(Error::Invalid(
                    "a signed-challenge profile needs an MDM key (--mdm-key)".into(),
                ));
            }
            for k in keys {
                crate::challenge::mdm_key(k)?;
            }
        }
        if self.challenge == ChallengeMode::Intune && self.approval == ApprovalMode::Manual {
            return Err(Error::Invalid(
                "an intune profile cannot wait for manual approval: Intune's validate, issue and \
                 notify round trip must finish within the device's request"
                    .into(),
            ));
        }
        if self.challenge == ChallengeMode::Intune && self.keys.rsa_max_bits == 0 {
            return Err(Error::Invalid(
                "an intune profile must allow RSA keys: Intune's SCEP profiles request RSA".into(),
            ));
        }
        if self.ra_layout == RaLayout::Ca && self.ra_windows_eku {
            return Err(Error::Invalid(
                "--ra-windows-eku needs RA certificates: use --ra-layout split or combined".into(),
            ));
        }
        if let ChallengeMode::Static { secret_hash } = &self.challenge
            && (secret_hash.len() != 64 || !secret_hash.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Error::Invalid("bad static challenge hash".into()));
        }
        match (&self.pkcs, &self.challenge) {
            (None, ChallengeMode::None) => {
                return Err(Error::Invalid(
                    "a SCEP profile needs a challenge mode (challenge none is for pkcs profiles)"
                        .into(),
                ));
            }
            (Some(_), c) if *c != ChallengeMode::None => {
                return Err(Error::Invalid(
                    "a pkcs profile has no SCEP, so no challenge: leave --challenge out".into(),
                ));
            }
            (Some(p), _) => p.check(self)?,
            (None, _) => {}
        }
        Ok(())
    }
}
