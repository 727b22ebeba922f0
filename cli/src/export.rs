//! `castellan export …`: what an MDM administrator needs to enrol devices through a profile.
//!
//! Both commands read the profile, its SCEP URL and its CA chain over the admin port (any
//! registered officer may), build every byte in memory, and only then write: through a
//! temporary file (or directory) beside the target, renamed into place, so a failed export
//! leaves nothing behind. An existing target is kept unless `--force`.
//!
//! - `mobileconfig`: an unsigned Apple configuration profile (Apple's Configuration Profile
//!   Reference: `Configuration` with `com.apple.security.root`/`pkcs1` certificate payloads
//!   and one `com.apple.security.scep` payload).
//! - `bundle`: the CA certificates as DER `.cer`, `chain.p7b`, `scep-url.txt` and a
//!   `README.txt` listing the values to enter in an MDM's trusted-certificate and SCEP
//!   profiles (Intune, Jamf Pro).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use der::{Decode, Encode};
use proto::admin::{Request, Response};
use proto::profile::{ApprovalMode, CaCertChain, ChallengeMode, KeyPolicy, KeyUsageName};
use proto::profile::{ProfileSpec, SanType};
use x509_cert::Certificate;

use crate::args::{ExportCommand, MobileconfigArgs};
use crate::session::{Session, bytes};
use crate::{Error, Result};

/// The challenge written when `--challenge` is not given: the MDM administrator replaces it
/// (or puts the MDM's challenge variable there).
const CHALLENGE_PLACEHOLDER: &str = "$SCEP_CHALLENGE";
/// The subject requested when `--subject` is not given: Jamf Pro's serial-number variable.
const DEFAULT_SUBJECT: &str = "CN=$SERIALNUMBER";
/// Most CAs followed up from a profile's CA (a guard against a loop of parents).
const MAX_DEPTH: usize = 16;

pub async fn export(s: &Session, c: &ExportCommand) -> Result<()> {
    match c {
        ExportCommand::Mobileconfig(a) => {
            refuse_existing(&a.output, a.force)?;
            let src = Source::fetch(s, &a.profile).await?;
            let xml = to_xml(&mobileconfig(&src, a)?)?;
            write_file(&a.output, xml.as_bytes(), a.force, a.challenge.is_some())?;
            println!("wrote {}", a.output.display());
            Ok(())
        }
        ExportCommand::Bundle {
            profile,
            output,
            force,
        } => {
            refuse_existing(output, *force)?;
            let src = Source::fetch(s, profile).await?;
            let mut files: Vec<(String, Vec<u8>)> = src
                .chain
                .iter()
                .map(|ca| (ca.file_name(), ca.der.clone()))
                .collect();
            files.push(("chain.p7b".into(), src.p7b.clone()));
            files.push(("scep-url.txt".into(), format!("{}\n", src.scep_url).into()));
            files.push(("README.txt".into(), readme(&src).into()));
            write_dir(output, &files, *force)?;
            println!("wrote {}", output.display());
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// What the admin port says

/// One CA certificate of a profile's chain.
#[derive(Debug, Clone)]
struct ChainCa {
    /// The CA's name in Castellan; `external-N` for an external issuer of a bring-your-own CA.
    name: String,
    der: Vec<u8>,
    /// Self-issued (subject = issuer): the chain's root.
    root: bool,
}

impl ChainCa {
    fn file_name(&self) -> String {
        format!("{}.cer", self.name)
    }
}

/// Everything an export needs, read before anything is written.
#[derive(Debug)]
struct Source {
    profile: ProfileSpec,
    scep_url: String,
    /// From the root down to the profile's issuing CA.
    chain: Vec<ChainCa>,
    /// The same chain as a degenerate PKCS#7 (`ca chain`).
    p7b: Vec<u8>,
}

impl Source {
    /// Steps: (1) the profile and its SCEP URL; (2) from the profile's CA up through each
    /// `parent` (`ca show`), each CA's certificate (`ca cert`); (3) the chain as PKCS#7, whose
    /// certificates continue the chain above a bring-your-own CA (its external issuers, which
    /// have no CA record), linked by issuer name.
    async fn fetch(s: &Session, profile: &str) -> Result<Source> {
        let req = Request::ProfileShow {
            name: profile.to_owned(),
        };
        let Response::Profile { profile, scep_url } = s.client.call(&req).await? else {
            return Err(Error::Transport("unexpected answer".into()));
        };
        if profile.pkcs.is_some() {
            return Err(Error::Invalid(format!(
                "profile {} is a pkcs profile: it has no SCEP for devices (use `castellan \
                 pkcs12 issue`)",
                profile.name
            )));
        }
        if scep_url.is_empty() {
            return Err(Error::Transport(
                "the signer does not report the profile's SCEP URL: upgrade castellan-signer"
                    .into(),
            ));
        }
        let mut chain: Vec<(ChainCa, Certificate)> = Vec::new();
        let mut next = Some(profile.ca.to_string());
        while let Some(name) = next {
            if chain.len() >= MAX_DEPTH {
                return Err(Error::Transport(format!(
                    "the CA hierarchy above {} is deeper than {MAX_DEPTH}",
                    profile.ca
                )));
            }
            let ca = crate::ca::ca_show(s, &name).await?;
            let der = bytes(s, Request::CaCert { name: name.clone() }).await?;
            chain.push(parsed(name, der)?);
            next = ca.parent;
        }
        let p7b = bytes(
            s,
            Request::CaChain {
                name: profile.ca.to_string(),
            },
        )
        .await?;
        let pool = proto::pem::p7b_certificates(&p7b)
            .map_err(|e| Error::Transport(format!("unreadable CA chain: {e}")))?;
        while let Some((top, cert)) = chain.last()
            && !top.root
            && chain.len() < MAX_DEPTH
        {
            let issuer = cert.tbs_certificate().issuer();
            let Some(up) = pool
                .iter()
                .find(|c| c.tbs_certificate().subject() == issuer)
            else {
                break;
            };
            let name = format!("external-{}", chain.len());
            chain.push(parsed(name, up.to_der()?)?);
        }
        Ok(Source {
            profile,
            scep_url,
            chain: chain.into_iter().rev().map(|(ca, _)| ca).collect(),
            p7b,
        })
    }

    fn root(&self) -> Option<&ChainCa> {
        self.chain.first().filter(|c| c.root)
    }
}

fn parsed(name: String, der: Vec<u8>) -> Result<(ChainCa, Certificate)> {
    let cert = Certificate::from_der(&der)
        .map_err(|e| Error::Transport(format!("unreadable certificate of CA {name}: {e}")))?;
    let tbs = cert.tbs_certificate();
    let root = tbs.issuer() == tbs.subject();
    Ok((ChainCa { name, der, root }, cert))
}

// ---------------------------------------------------------------------------------------
// The property list

/// A property list value (Apple's PropertyList-1.0 DTD), as much of it as a profile needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    String(String),
    Integer(i64),
    Data(Vec<u8>),
    Array(Vec<Value>),
    /// Keys in the order written.
    Dict(Vec<(&'static str, Value)>),
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

/// The XML text of a property list. Written here rather than with the `plist` crate: a
/// profile needs five value types and one escaping rule, a few dozen lines against a
/// dependency with its own XML reader and writer.
fn to_xml(root: &Value) -> Result<String> {
    let mut out = String::from(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" ",
        "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
        "<plist version=\"1.0\">\n"
    ));
    write_value(&mut out, root, 0)?;
    out.push_str("</plist>\n");
    Ok(out)
}

fn write_value(out: &mut String, v: &Value, depth: usize) -> Result<()> {
    let pad = "\t".repeat(depth);
    match v {
        Value::String(s) => {
            let _ = writeln!(out, "{pad}<string>{}</string>", escape(s)?);
        }
        Value::Integer(i) => {
            let _ = writeln!(out, "{pad}<integer>{i}</integer>");
        }
        Value::Data(d) => {
            let _ = writeln!(out, "{pad}<data>");
            let b64 = proto::b64::encode(d);
            for line in b64.as_bytes().chunks(64) {
                let _ = writeln!(out, "{pad}{}", String::from_utf8_lossy(line));
            }
            let _ = writeln!(out, "{pad}</data>");
        }
        Value::Array(items) => {
            let _ = writeln!(out, "{pad}<array>");
            for i in items {
                write_value(out, i, depth + 1)?;
            }
            let _ = writeln!(out, "{pad}</array>");
        }
        Value::Dict(entries) => {
            let _ = writeln!(out, "{pad}<dict>");
            for (k, v) in entries {
                let _ = writeln!(out, "{pad}\t<key>{}</key>", escape(k)?);
                write_value(out, v, depth + 1)?;
            }
            let _ = writeln!(out, "{pad}</dict>");
        }
    }
    Ok(())
}

/// XML 1.0 character data: `&`, `<`, `>` escaped, CR as a character reference (a parser
/// would turn a literal one into LF). Other control characters cannot appear in XML 1.0 at
/// all, not even as references (XML 1.0 §2.2), so they are refused.
fn escape(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                return Err(Error::Invalid(format!(
                    "{s:?} holds a control character a property list cannot carry"
                )));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The configuration profile

/// The `com.apple.security.scep` `Key Usage` bitmask: 1 signing (digitalSignature,
/// nonRepudiation), 4 encryption (keyEncipherment). keyAgreement has no bit: Apple devices
/// request RSA keys only, which do not agree keys.
fn key_usage_bits(usages: &[KeyUsageName]) -> i64 {
    usages.iter().fold(0, |bits, u| {
        bits | match u {
            KeyUsageName::DigitalSignature | KeyUsageName::NonRepudiation => 1,
            KeyUsageName::KeyEncipherment => 4,
            KeyUsageName::KeyAgreement => 0,
        }
    })
}

/// The RSA key size the device generates: 2048 if the profile accepts it, else 4096 (the
/// sizes Apple devices offer besides the refused 1024).
fn key_size(profile: &str, keys: &KeyPolicy) -> Result<i64> {
    if keys.rsa_max_bits == 0 {
        return Err(Error::Invalid(format!(
            "profile {profile} accepts no RSA keys, and Apple devices request RSA keys over SCEP"
        )));
    }
    [2048, 4096]
        .into_iter()
        .find(|b| (keys.rsa_min_bits..=keys.rsa_max_bits).contains(b))
        .map(i64::from)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "profile {profile} accepts RSA {}..{} bits: neither 2048 nor 4096, the sizes Apple devices request",
                keys.rsa_min_bits, keys.rsa_max_bits
            ))
        })
}

/// Short names Apple accepts in a SCEP `Subject`; other attributes go as dotted OIDs.
const SHORT_NAMES: [(&str, &str); 6] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.8", "ST"),
    ("2.5.4.7", "L"),
];

/// A SCEP `Subject`: one array per RDN (in DER order, the country first), each an array
/// of `[name, value]` pairs, e.g. `[[["O","Example"]],[["CN","$SERIALNUMBER"]]]`. Refuses
/// attributes the profile does not allow (the signer would refuse the request).
fn subject_array(text: &str, allowed: &[String]) -> Result<Value> {
    let name = proto::model::Subject::new(text)?.name()?;
    let mut rdns = Vec::new();
    for rdn in name.iter_rdn() {
        let mut pairs = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.oid.to_string();
            let short = SHORT_NAMES
                .iter()
                .find(|(o, _)| *o == oid)
                .map_or(oid.as_str(), |(_, s)| s);
            if !allowed.iter().any(|a| a == short) {
                return Err(Error::Invalid(format!(
                    "the profile does not allow subject attribute {short}: it allows {}",
                    allowed.join(", ")
                )));
            }
            let value = std::str::from_utf8(atv.value.value())
                .map_err(|_| Error::Invalid(format!("subject attribute {short} is not text")))?;
            pairs.push(Value::Array(vec![string(short), string(value)]));
        }
        rdns.push(Value::Array(pairs));
    }
    Ok(Value::Array(rdns))
}

/// A random (version 4) UUID in upper case, as Apple writes PayloadUUID.
fn uuid() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Transport(format!("no randomness: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode_upper(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// The keys every payload carries (Configuration Profile Reference, "Payload").
fn payload(kind: &str, id: String, display: String) -> Result<Vec<(&'static str, Value)>> {
    Ok(vec![
        ("PayloadType", string(kind)),
        ("PayloadVersion", Value::Integer(1)),
        ("PayloadIdentifier", string(id)),
        ("PayloadUUID", string(uuid()?)),
        ("PayloadDisplayName", string(display)),
    ])
}

/// The configuration profile. Steps: (1) one certificate payload per CA, root first;
/// (2) the SCEP payload from the profile's policy; (3) the top-level `Configuration`.
///
/// `CAFingerprint` is set only when GetCACert returns the full chain (`--ca-chain full`):
/// Apple's SCEP client hashes the top of the chain it builds from GetCACert, and accepts
/// only an MD5 or SHA-1 fingerprint (16 or 20 bytes; SecSCEPValidateCACertMessage); with the
/// issuing CA alone that top depends on which roots the device already trusts.
fn mobileconfig(src: &Source, a: &MobileconfigArgs) -> Result<Value> {
    let p = &src.profile;
    let base = format!("castellan.{}", p.name);
    let mut content = Vec::new();
    for ca in &src.chain {
        let kind = if ca.root {
            "com.apple.security.root"
        } else {
            "com.apple.security.pkcs1"
        };
        let mut d = payload(
            kind,
            format!("{base}.ca.{}", ca.name),
            format!("CA certificate {}", ca.name),
        )?;
        d.push(("PayloadCertificateFileName", string(ca.file_name())));
        d.push(("PayloadContent", Value::Data(ca.der.clone())));
        content.push(Value::Dict(d));
    }
    let challenge = match (&a.challenge, &p.challenge) {
        (Some(c), ChallengeMode::Static { secret_hash })
            if proto::profile::static_hash(c) != *secret_hash =>
        {
            return Err(Error::Invalid(format!(
                "--challenge is not the static secret of profile {}",
                p.name
            )));
        }
        (Some(c), _) => c.clone(),
        (None, _) => CHALLENGE_PLACEHOLDER.into(),
    };
    let (retries, delay) = match p.approval {
        // Apple's defaults.
        ApprovalMode::Auto => (3, 10),
        // An officer approves: poll for an hour.
        ApprovalMode::Manual => (30, 120),
    };
    let mut scep = vec![
        ("URL", string(&src.scep_url)),
        ("Name", string(p.name.as_str())),
        (
            "Subject",
            subject_array(
                a.subject.as_deref().unwrap_or(DEFAULT_SUBJECT),
                &p.subject_attrs,
            )?,
        ),
        ("Challenge", string(challenge)),
        (
            "Keysize",
            Value::Integer(key_size(p.name.as_str(), &p.keys)?),
        ),
        ("Key Type", string("RSA")),
        ("Key Usage", Value::Integer(key_usage_bits(&p.key_usage))),
        ("Retries", Value::Integer(retries)),
        ("RetryDelay", Value::Integer(delay)),
    ];
    if let (CaCertChain::Full, Some(root)) = (p.ca_chain, src.root()) {
        use sha1::Digest;
        let fp = sha1::Sha1::digest(&root.der).to_vec();
        scep.push(("CAFingerprint", Value::Data(fp)));
    }
    let mut d = payload(
        "com.apple.security.scep",
        format!("{base}.scep"),
        format!("SCEP certificate ({})", p.name),
    )?;
    d.push(("PayloadContent", Value::Dict(scep)));
    content.push(Value::Dict(d));

    let mut top = payload(
        "Configuration",
        base,
        format!("Castellan SCEP profile {}", p.name),
    )?;
    top.push((
        "PayloadDescription",
        string(format!(
            "Trusts the Castellan CA chain of profile {} and requests a device certificate from {}",
            p.name, src.scep_url
        )),
    ));
    if let Some(o) = &a.organization {
        top.push(("PayloadOrganization", string(o)));
    }
    top.push(("PayloadContent", Value::Array(content)));
    Ok(Value::Dict(top))
}

// ---------------------------------------------------------------------------------------
// The bundle's README

/// A lifetime as an MDM asks for it: whole years, else days, else hours.
fn lifetime(secs: u64) -> String {
    const YEAR: u64 = 365 * 86400 + 21600;
    match secs {
        s if s % YEAR == 0 => format!("{} year(s)", s / YEAR),
        s if s % 86400 == 0 => format!("{} days", s / 86400),
        s => format!("{} hours", s / 3600),
    }
}

/// The renewal threshold an MDM asks for (percent of the lifetime left when the device
/// renews): the renewal window as a share of the validity, rounded down so that renewal
/// starts inside the window; 1 to 99.
fn renewal_percent(window: u64, validity: u64) -> u64 {
    (window.saturating_mul(100) / validity.max(1)).clamp(1, 99)
}

/// What to enter in the MDM, in the order Intune and Jamf Pro ask for it.
fn readme(src: &Source) -> String {
    let p = &src.profile;
    let root = src.root();
    let cers: Vec<String> = src.chain.iter().map(ChainCa::file_name).collect();
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let sans = list(
        p.san_types
            .iter()
            .map(|t| {
                match t {
                    SanType::Dns => "DNS name",
                    SanType::Email => "Email address (RFC 822)",
                    SanType::Upn => "User principal name (UPN)",
                    SanType::Uri => "URI",
                }
                .to_owned()
            })
            .collect(),
    );
    let ekus = list(
        p.ekus
            .iter()
            .map(|e| format!("{e} ({})", e.oid()))
            .collect(),
    );
    let usages = list(
        p.key_usage
            .iter()
            .map(|u| {
                match u {
                    KeyUsageName::DigitalSignature => "Digital signature",
                    KeyUsageName::KeyEncipherment => "Key encipherment",
                    KeyUsageName::NonRepudiation => "Non-repudiation",
                    KeyUsageName::KeyAgreement => "Key agreement",
                }
                .to_owned()
            })
            .collect(),
    );
    let rsa = if p.keys.rsa_max_bits == 0 {
        "RSA refused".to_owned()
    } else {
        format!(
            "RSA {} to {} bits",
            p.keys.rsa_min_bits, p.keys.rsa_max_bits
        )
    };
    let ec = list(
        p.keys
            .ec_curves
            .iter()
            .map(|c| c.replacen('p', "P-", 1))
            .collect(),
    );
    let challenge = match &p.challenge {
        ChallengeMode::Static { .. } => format!(
            "static. Enter the profile's static secret as the SCEP challenge (Jamf Pro:\n  \
             Challenge Type Static). Castellan keeps only its hash: ask the officers who\n  \
             created the profile. `castellan export mobileconfig --profile {} --challenge\n  \
             SECRET` checks it.",
            p.name
        ),
        ChallengeMode::OneTime => format!(
            "one-time. Every enrolment needs a fresh single-use challenge:\n  \
             `castellan challenge new --profile {}` (valid 1 hour by default). Deliver one per\n  \
             device (an MDM dynamic-challenge integration or script).",
            p.name
        ),
        ChallengeMode::Signed { .. } => "signed. The MDM mints one challenge per device: a \
             compact JWS (ES256) signed with\n  the MDM key registered on the profile, binding \
             the profile, subject, SANs and\n  an expiry (`castellan challenge sign` makes one \
             by hand)."
            .to_owned(),
        ChallengeMode::Intune => "intune. In Intune, create a SCEP certificate profile with              this SCEP URL; Intune
  generates each device's challenge and Castellan asks Intune              (through castellan-mdm)
  to validate it. Nothing to enter as a challenge. See the              README, section Intune."
            .to_owned(),
        ChallengeMode::Webhook => "webhook. castellan-mdm asks the profile's webhook about each              request; the
  challenge is whatever that service expects from devices."
            .to_owned(),
        // `fetch` refuses pkcs profiles before this.
        ChallengeMode::None => "none (a pkcs profile: no SCEP)".to_owned(),
    };
    let mut r = String::new();
    let _ = writeln!(r, "Castellan SCEP profile {}: settings for an MDM", p.name);
    let _ = writeln!(r, "{}\n", "=".repeat(44 + p.name.as_str().len()));
    let _ = writeln!(r, "Files");
    let _ = writeln!(r, "-----");
    for ca in &src.chain {
        let what = if ca.root {
            "root CA"
        } else {
            "issuing or intermediate CA"
        };
        let _ = writeln!(r, "{:<24} {what} (DER)", ca.file_name());
    }
    let _ = writeln!(r, "{:<24} the same chain as PKCS#7", "chain.p7b");
    let _ = writeln!(r, "{:<24} the SCEP URL\n", "scep-url.txt");

    let _ = writeln!(r, "1. Trusted certificate profile(s)");
    let _ = writeln!(r, "---------------------------------");
    match root {
        Some(root) => {
            let _ = writeln!(
                r,
                "Intune: one Trusted certificate profile per platform with {}; one more per\n\
                 intermediate ({}).\n\
                 Jamf Pro: a Certificate payload with each of {}.\n",
                root.file_name(),
                list(cers[1..].to_vec()),
                cers.join(", ")
            );
        }
        None => {
            let _ = writeln!(
                r,
                "The chain does not reach a self-signed root here: upload {} and the external\n\
                 root that issued the top one.\n",
                cers.join(", ")
            );
        }
    }

    let _ = writeln!(r, "2. SCEP certificate profile");
    let _ = writeln!(r, "---------------------------");
    let rows = [
        ("SCEP server URL", src.scep_url.clone()),
        (
            "Subject name format",
            format!(
                "attributes {} (e.g. Intune CN={{{{SerialNumber}}}}, Jamf Pro CN=$SERIALNUMBER)",
                list(p.subject_attrs.clone())
            ),
        ),
        ("Subject alternative name", sans),
        ("Extended key usage", ekus),
        ("Key usage", usages),
        (
            "Key size",
            format!("{rsa}; EC curves {ec} (Apple SCEP payloads use RSA)"),
        ),
        ("Hash algorithm", "SHA-2".into()),
        (
            "Certificate validity",
            format!("{} (set by the profile)", lifetime(p.validity.secs())),
        ),
        (
            "Renewal threshold",
            format!(
                "{}% (renewal is accepted {} before expiry)",
                renewal_percent(p.renewal_window.secs(), p.validity.secs()),
                lifetime(p.renewal_window.secs())
            ),
        ),
        (
            "Root certificate",
            root.map_or("the external root".into(), |r| {
                format!("the trusted certificate profile of {}", r.file_name())
            }),
        ),
        (
            "Approval",
            match p.approval {
                ApprovalMode::Auto => "automatic".into(),
                ApprovalMode::Manual => {
                    "manual: requests wait for `castellan request approve`".into()
                }
            },
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(r, "{:<26} {v}", format!("{k}:"));
    }
    let _ = writeln!(r, "\nChallenge: {challenge}");
    r
}

// ---------------------------------------------------------------------------------------
// Writing without leaving half a file

fn io_err(what: &Path, e: std::io::Error) -> Error {
    Error::Invalid(format!("cannot write {}: {e}", what.display()))
}

/// Refuse an existing target unless `force` (an empty directory counts as absent).
fn refuse_existing(path: &Path, force: bool) -> Result<()> {
    let empty_dir = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none());
    if !force && path.symlink_metadata().is_ok() && !empty_dir {
        return Err(Error::Invalid(format!(
            "{} exists: give --force to overwrite it",
            path.display()
        )));
    }
    Ok(())
}

/// A fresh name beside `path`: `.NAME.tmp-RANDOM` in the same directory, so that the final
/// rename stays on one file system.
fn temp_beside(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{} names no file", path.display())))?;
    let mut r = [0u8; 6];
    getrandom::fill(&mut r).map_err(|e| Error::Transport(format!("no randomness: {e}")))?;
    Ok(path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        hex::encode(r)
    )))
}

/// Create `path` holding `data` (mode 0600 if `private`) and flush it to disk.
fn create(path: &Path, data: &[u8], private: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Write a file through a temporary file renamed over the target.
fn write_file(path: &Path, data: &[u8], force: bool, private: bool) -> Result<()> {
    let tmp = temp_beside(path)?;
    let done = create(&tmp, data, private)
        .map_err(|e| io_err(path, e))
        .and_then(|()| refuse_existing(path, force))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io_err(path, e)));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Write a directory of files: into a temporary directory renamed over the target when the
/// target is absent or empty; with `force` over a non-empty one, file by file (each a
/// rename; other files in it are kept).
fn write_dir(dir: &Path, files: &[(String, Vec<u8>)], force: bool) -> Result<()> {
    let tmp = temp_beside(dir)?;
    let done = (|| {
        std::fs::create_dir(&tmp).map_err(|e| io_err(dir, e))?;
        for (name, data) in files {
            create(&tmp.join(name), data, false).map_err(|e| io_err(&dir.join(name), e))?;
        }
        refuse_existing(dir, force)?;
        if std::fs::rename(&tmp, dir).is_err() {
            for (name, _) in files {
                std::fs::rename(tmp.join(name), dir.join(name))
                    .map_err(|e| io_err(&dir.join(name), e))?;
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    done
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn escape_markup_and_carriage_return() {
        assert_eq!(
            escape("a&b<c>d\"e'f\tg\nh\ri").unwrap(),
            "a&amp;b&lt;c&gt;d\"e'f\tg\nh&#13;i"
        );
        assert_eq!(escape("]]>").unwrap(), "]]&gt;");
        assert_eq!(escape("ünï €").unwrap(), "ünï €");
    }

    #[test]
    fn escape_refuses_what_xml_cannot_hold() {
        for bad in ["nul\0", "bell\u{7}", "esc\u{1b}", "\u{FFFE}"] {
            assert!(escape(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn xml_of_nested_values() {
        let v = Value::Dict(vec![
            ("S", string("x<y")),
            ("I", Value::Integer(-5)),
            ("D", Value::Data(vec![0, 1, 2, 255])),
            ("A", Value::Array(vec![Value::Array(vec![string("CN")])])),
        ]);
        let xml = to_xml(&v).unwrap();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist"));
        let body = "<dict>\n\t<key>S</key>\n\t<string>x&lt;y</string>\n\
                    \t<key>I</key>\n\t<integer>-5</integer>\n\
                    \t<key>D</key>\n\t<data>\n\tAAEC/w==\n\t</data>\n\
                    \t<key>A</key>\n\t<array>\n\t\t<array>\n\t\t\t<string>CN</string>\n\
                    \t\t</array>\n\t</array>\n</dict>\n</plist>\n";
        assert!(xml.ends_with(body), "{xml}");
    }

    #[test]
    fn data_lines_are_wrapped() {
        let xml = to_xml(&Value::Data(vec![7; 100])).unwrap();
        let lines: Vec<&str> = xml.lines().filter(|l| l.starts_with("Bw")).collect();
        assert_eq!(
            lines.iter().map(|l| l.len()).collect::<Vec<_>>(),
            [64, 64, 8]
        );
    }

    #[test]
    fn key_usage_bitmask() {
        use KeyUsageName::*;
        assert_eq!(key_usage_bits(&[DigitalSignature]), 1);
        assert_eq!(key_usage_bits(&[KeyEncipherment]), 4);
        assert_eq!(key_usage_bits(&[DigitalSignature, KeyEncipherment]), 5);
        assert_eq!(key_usage_bits(&[NonRepudiation, KeyAgreement]), 1);
        assert_eq!(key_usage_bits(&[KeyAgreement]), 0);
    }

    #[test]
    fn key_size_prefers_2048() {
        let k = |min, max| KeyPolicy {
            rsa_min_bits: min,
            rsa_max_bits: max,
            ec_curves: vec![],
        };
        assert_eq!(key_size("p", &k(2048, 4096)).unwrap(), 2048);
        assert_eq!(key_size("p", &k(3072, 4096)).unwrap(), 4096);
        assert_eq!(key_size("p", &k(2048, 3072)).unwrap(), 2048);
        assert!(key_size("p", &k(3072, 3072)).is_err());
        assert!(key_size("p", &k(0, 0)).is_err());
    }

    fn all_attrs() -> Vec<String> {
        ["CN", "O", "OU", "C", "ST", "L"].map(String::from).to_vec()
    }

    fn pairs(v: &Value) -> Vec<Vec<(String, String)>> {
        let Value::Array(rdns) = v else { panic!() };
        rdns.iter()
            .map(|rdn| {
                let Value::Array(atvs) = rdn else { panic!() };
                atvs.iter()
                    .map(|p| match p {
                        Value::Array(kv) => match kv.as_slice() {
                            [Value::String(k), Value::String(v)] => (k.clone(), v.clone()),
                            _ => panic!(),
                        },
                        _ => panic!(),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn subject_arrays_in_der_order() {
        let v = subject_array("CN=$SERIALNUMBER,OU=Fleet,O=A&B,C=US", &all_attrs()).unwrap();
        let s = |a: &str, b: &str| vec![(a.to_owned(), b.to_owned())];
        assert_eq!(
            pairs(&v),
            [
                s("C", "US"),
                s("O", "A&B"),
                s("OU", "Fleet"),
                s("CN", "$SERIALNUMBER")
            ]
        );
        assert_eq!(
            pairs(&subject_array(DEFAULT_SUBJECT, &all_attrs()).unwrap()),
            [s("CN", "$SERIALNUMBER")]
        );
    }

    #[test]
    fn subject_attributes_the_profile_refuses() {
        let err = subject_array("CN=x,O=y", &["CN".into()]).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not allow subject attribute O")
        );
        assert!(subject_array("O=no-cn", &all_attrs()).is_err());
    }

    #[test]
    fn uuids_are_version_4_upper_case() {
        let u = uuid().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!("89AB".contains(&u[19..20]));
        assert_eq!(u, u.to_uppercase());
        assert_ne!(u, uuid().unwrap());
    }

    #[test]
    fn renewal_threshold_percent() {
        const DAY: u64 = 86400;
        let year = 365 * DAY + 21600;
        assert_eq!(renewal_percent(30 * DAY, year), 8);
        assert_eq!(renewal_percent(20 * DAY, 100 * DAY), 20);
        assert_eq!(renewal_percent(DAY, 1000 * DAY), 1);
        assert_eq!(renewal_percent(year, year), 99);
        assert_eq!(lifetime(year), "1 year(s)");
        assert_eq!(lifetime(30 * DAY), "30 days");
        assert_eq!(lifetime(12 * 3600), "12 hours");
    }

    #[test]
    fn write_file_refuses_existing_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("out.mobileconfig");
        write_file(&f, b"one", false, true).unwrap();
        assert!(write_file(&f, b"two", false, false).is_err());
        assert_eq!(std::fs::read(&f).unwrap(), b"one");
        write_file(&f, b"three", true, false).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"three");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary files left: {names:?}");
    }

    #[test]
    fn write_dir_into_absent_empty_and_forced() {
        let base = tempfile::tempdir().unwrap();
        let out = base.path().join("bundle");
        let files = vec![("a.cer".to_owned(), b"A".to_vec())];
        write_dir(&out, &files, false).unwrap();
        assert_eq!(std::fs::read(out.join("a.cer")).unwrap(), b"A");
        assert!(write_dir(&out, &files, false).is_err());
        std::fs::write(out.join("keep.txt"), "mine").unwrap();
        let files = vec![("a.cer".to_owned(), b"B".to_vec())];
        write_dir(&out, &files, true).unwrap();
        assert_eq!(std::fs::read(out.join("a.cer")).unwrap(), b"B");
        assert_eq!(std::fs::read(out.join("keep.txt")).unwrap(), b"mine");
        let empty = base.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        write_dir(&empty, &files, false).unwrap();
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 2);
    }
}
