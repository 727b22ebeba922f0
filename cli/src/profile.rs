//! `castellan profile …`: SCEP and PKCS profiles (created by proposal).

use proto::admin::{Request, Response};

use crate::args::*;
use crate::session::{Session, read};
use serde_json::json;

use crate::{Error, Result};
use proto::governance::Operation;
use proto::model::{CaName, Eku, Lifetime};

use crate::proposal::propose;

fn profile_spec(a: &ProfileArgs) -> Result<proto::profile::ProfileSpec> {
    use proto::profile::{
        ApprovalMode, ChallengeMode, KeyPolicy, KeyUsageName, ProfileSpec, SanType,
    };
    let pkcs = match &a.pkcs_keys {
        None => None,
        Some(keys) => Some(proto::profile::PkcsPolicy {
            key_types: keys
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| Ok(proto::model::key_spec(k)?))
                .collect::<Result<_>>()?,
            encoding: a.pkcs_encoding.parse()?,
            escrow: a.escrow,
        }),
    };
    if pkcs.is_none() && a.escrow {
        return Err(Error::Invalid(
            "--escrow is for pkcs profiles (give --pkcs-keys)".into(),
        ));
    }
    let challenge = match (a.challenge.as_deref(), &pkcs) {
        (None, Some(_)) => ChallengeMode::None,
        (Some(c), Some(_)) => {
            return Err(Error::Invalid(format!(
                "--challenge {c}: a pkcs profile has no SCEP, so no challenge"
            )));
        }
        (None, None) => {
            return Err(Error::Invalid(
                "give --challenge (static, one-time, signed, intune or webhook), or --pkcs-keys \
                 for a pkcs profile"
                    .into(),
            ));
        }
        (Some(c), None) => match c {
            "static" => {
                let secret = match (&a.secret, &a.secret_file) {
                    (Some(s), None) => s.clone(),
                    (None, Some(f)) => String::from_utf8(read(f, "secret file")?)
                        .map_err(|_| Error::Invalid("the secret file is not text".into()))?
                        .trim_end()
                        .to_owned(),
                    _ => {
                        return Err(Error::Invalid(
                            "a static challenge needs --secret or --secret-file".into(),
                        ));
                    }
                };
                if secret.len() < 8 {
                    return Err(Error::Invalid(
                        "a static challenge must be at least 8 characters".into(),
                    ));
                }
                ChallengeMode::Static {
                    secret_hash: proto::profile::static_hash(&secret),
                }
            }
            "one-time" => ChallengeMode::OneTime,
            "intune" => ChallengeMode::Intune,
            "webhook" => ChallengeMode::Webhook,
            "signed" => ChallengeMode::Signed {
                keys: a
                    .mdm_key
                    .iter()
                    .map(|f| Ok(proto::challenge::mdm_key_from_pem(&read(f, "MDM key")?)?))
                    .collect::<Result<_>>()?,
            },
            other => {
                return Err(Error::Invalid(format!(
                    "--challenge {other:?}: use static, one-time, signed, intune or webhook"
                )));
            }
        },
    };
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    };
    let spec = ProfileSpec {
        name: proto::model::ProfileName::new(&a.name)?,
        ca: CaName::new(&a.ca)?,
        subject_attrs: list(&a.subject_attrs)
            .into_iter()
            .map(|s| s.to_ascii_uppercase())
            .collect(),
        san_types: SanType::parse_list(&a.san_types)?,
        ekus: Eku::list(&a.eku)?,
        key_usage: KeyUsageName::parse_list(&a.key_usage)?,
        keys: KeyPolicy {
            rsa_min_bits: a.rsa_min_bits,
            rsa_max_bits: a.rsa_max_bits,
            ec_curves: list(&a.ec_curves),
        },
        validity: Lifetime::new(&a.validity)?,
        renewal_window: Lifetime::new(&a.renewal_window)?,
        approval: match a.approval.as_str() {
            "auto" => ApprovalMode::Auto,
            "manual" => ApprovalMode::Manual,
            other => {
                return Err(Error::Invalid(format!(
                    "--approval {other:?}: use auto or manual"
                )));
            }
        },
        challenge,
        legacy_algorithms: a.legacy_algorithms,
        ra_layout: proto::profile::RaLayout::parse(&a.ra_layout)?,
        ra_windows_eku: a.ra_windows_eku,
        ca_chain: proto::profile::CaCertChain::parse(&a.ca_chain)?,
        pkcs,
    };
    spec.check()?;
    Ok(spec)
}

/// A profile as shown: the spec, without the static secret's hash, plus warnings.
pub fn profile_json(p: &proto::profile::ProfileSpec) -> serde_json::Value {
    use proto::profile::ChallengeMode;
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["ra_layout"] = json!(p.ra_layout.as_str());
    v["ca_chain"] = json!(match p.ca_chain {
        proto::profile::CaCertChain::Issuing => "issuing",
        proto::profile::CaCertChain::Full => "full",
    });
    v["ra_windows_eku"] = json!(p.ra_windows_eku);
    v["challenge"] = json!(match &p.challenge {
        ChallengeMode::Static { .. } => "static",
        ChallengeMode::OneTime => "one-time",
        ChallengeMode::Signed { .. } => "signed",
        ChallengeMode::Intune => "intune",
        ChallengeMode::Webhook => "webhook",
        ChallengeMode::None => "none",
    });
    v["kind"] = json!(if p.pkcs.is_some() { "pkcs" } else { "scep" });
    let mut warnings = Vec::new();
    if p.legacy_algorithms {
        warnings.push("legacy algorithms accepted: DES/3DES envelopes and SHA-1 signatures");
    }
    v["warnings"] = json!(warnings);
    v
}

pub async fn profile(s: &Session, c: &ProfileCommand) -> Result<()> {
    match c {
        ProfileCommand::Create(a) => {
            let spec = profile_spec(a)?;
            propose(s, Operation::CreateProfile { spec }, a.json.json).await
        }
        ProfileCommand::List(j) => {
            let Response::Profiles { profiles } = s.client.call(&Request::ProfileList).await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if j.json {
                let v: Vec<_> = profiles.iter().map(profile_json).collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!(
                    "{:<20} {:<20} {:<10} {:<8} LEGACY",
                    "NAME", "CA", "CHALLENGE", "APPROVAL"
                );
                for p in &profiles {
                    let v = profile_json(p);
                    println!(
                        "{:<20} {:<20} {:<10} {:<8} {}",
                        p.name,
                        p.ca,
                        v["challenge"].as_str().unwrap_or(""),
                        v["approval"].as_str().unwrap_or(""),
                        if p.legacy_algorithms {
                            "yes (warning)"
                        } else {
                            "no"
                        }
                    );
                }
            }
            Ok(())
        }
        ProfileCommand::Show { name, json } => {
            let Response::Profile { profile, scep_url } = s
                .client
                .call(&Request::ProfileShow { name: name.clone() })
                .await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            let mut v = profile_json(&profile);
            if !scep_url.is_empty() {
                v["scep_url"] = json!(scep_url);
            }
            if json.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                for w in v["warnings"].as_array().into_iter().flatten() {
                    println!("WARNING: {}", w.as_str().unwrap_or_default());
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            Ok(())
        }
    }
}
