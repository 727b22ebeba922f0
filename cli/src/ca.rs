//! `castellan ca …`: CA proposals, certificates, CSRs, chains and CRLs.

use der::Encode;
use proto::admin::{Request, Response};

use crate::args::*;
use crate::session::{Session, bytes, output, read};
use crate::{Error, Result};
use proto::admin::CaView;
use proto::governance::Operation;
use proto::model::{CaName, CaSpec, Eku, Lifetime, Subject, Tag};
use proto::roles::{Permission, Tags};

use crate::proposal::propose;

/// A new CA's tags: those given, or the proposer's own tags for `ca.create` (none, which
/// the signer reads as `default`, when they hold every tag).
async fn new_tags(s: &Session, ca: &NewCa) -> Result<Vec<Tag>> {
    if let Some(t) = &ca.tags {
        return match Tags::parse(t)? {
            Tags::All => Err(Error::Invalid(
                "a CA carries named tags: * is for assignments".into(),
            )),
            Tags::Only(t) => Ok(t.into_iter().collect()),
        };
    }
    let Response::Whoami { scopes, .. } = s.client.call(&Request::Whoami).await? else {
        return Err(Error::Transport("unexpected answer".into()));
    };
    Ok(match scopes.get(&Permission::CaCreate) {
        Some(Tags::Only(t)) => t.iter().cloned().collect(),
        _ => vec![],
    })
}

fn spec(
    ca: &NewCa,
    validity: Option<&str>,
    path_len: Option<u8>,
    tags: Vec<Tag>,
) -> Result<CaSpec> {
    let spec = CaSpec {
        tags,
        name: CaName::new(&ca.name)?,
        subject: Subject::new(&ca.subject)?,
        key: proto::model::key_spec(&ca.key)?,
        hash: proto::model::hash_alg(&ca.hash)?,
        validity: validity.map(Lifetime::new).transpose()?,
        ekus: Eku::list(&ca.eku)?,
        path_len,
    };
    spec.check()?;
    Ok(spec)
}

pub async fn ca(s: &Session, c: &CaCommand) -> Result<()> {
    match c {
        CaCommand::List(j) => {
            let Response::Cas { cas } = s.client.call(&Request::CaList).await? else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if j.json {
                println!("{}", serde_json::to_string_pretty(&cas).unwrap_or_default());
            } else {
                println!(
                    "{:<20} {:<8} {:<17} {:<9} {:<10} SUBJECT",
                    "NAME", "KIND", "STATUS", "KEY", "NOT AFTER"
                );
                for ca in cas {
                    println!(
                        "{:<20} {:<8} {:<17} {:<9} {:<10} {}",
                        ca.name,
                        ca.kind,
                        ca.status,
                        ca.key,
                        ca.not_after
                            .as_deref()
                            .map_or("-", |d| d.get(..10).unwrap_or(d)),
                        ca.subject
                    );
                }
            }
            Ok(())
        }
        CaCommand::Show { name, json } => {
            let ca = ca_show(s, name).await?;
            if json.json {
                println!("{}", serde_json::to_string_pretty(&ca).unwrap_or_default());
            } else {
                print_ca(&ca);
            }
            Ok(())
        }
        CaCommand::CreateRoot {
            ca,
            validity,
            path_len,
            json,
        } => {
            let spec = spec(ca, Some(validity), *path_len, new_tags(s, ca).await?)?;
            propose(s, Operation::CreateRoot { spec }, json.json).await
        }
        CaCommand::CreateIssuing {
            ca,
            parent,
            validity,
            path_len,
            json,
        } => {
            let spec = spec(ca, Some(validity), Some(*path_len), new_tags(s, ca).await?)?;
            let parent = CaName::new(parent)?;
            propose(s, Operation::CreateIssuing { parent, spec }, json.json).await
        }
        CaCommand::Tags {
            name,
            add,
            remove,
            json,
        } => {
            let list = |t: &str| -> Result<Vec<Tag>> {
                Ok(t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(Tag::new)
                    .collect::<proto::Result<_>>()?)
            };
            let (add, remove) = (list(add)?, list(remove)?);
            if add.is_empty() && remove.is_empty() {
                return Err(Error::Invalid("give tags to --add or --remove".into()));
            }
            let op = Operation::SetCaTags {
                name: CaName::new(name)?,
                add,
                remove,
            };
            propose(s, op, json.json).await
        }
        CaCommand::CreateByoca { ca, json } => {
            let spec = spec(ca, None, None, new_tags(s, ca).await?)?;
            propose(s, Operation::CreateByoca { spec }, json.json).await
        }
        CaCommand::Csr {
            name,
            der,
            output: o,
        } => {
            let data = bytes(s, Request::CaCsr { name: name.clone() }).await?;
            let data = if *der {
                data
            } else {
                proto::pem::to_pem("CERTIFICATE REQUEST", &data).into_bytes()
            };
            output(&data, o.as_ref())
        }
        CaCommand::Import {
            name,
            cert,
            chain,
            json,
        } => {
            let certs = proto::pem::parse_certificates(
                &read(cert, "certificate")?,
                &cert.display().to_string(),
            )?;
            let [leaf] = certs.as_slice() else {
                return Err(Error::Invalid(format!(
                    "{} must hold exactly one certificate (put the issuers in --chain)",
                    cert.display()
                )));
            };
            let mut pool = Vec::new();
            for f in chain {
                for c in proto::pem::parse_certificates(
                    &read(f, "chain file")?,
                    &f.display().to_string(),
                )? {
                    let d = c.to_der()?;
                    if !pool.contains(&d) {
                        pool.push(d);
                    }
                }
            }
            let op = Operation::ImportCa {
                name: CaName::new(name)?,
                cert: leaf.to_der()?,
                chain: pool,
            };
            propose(s, op, json.json).await
        }
        CaCommand::Disable { name, json } => {
            propose(
                s,
                Operation::DisableCa {
                    name: CaName::new(name)?,
                },
                json.json,
            )
            .await
        }
        CaCommand::Enable { name, json } => {
            propose(
                s,
                Operation::EnableCa {
                    name: CaName::new(name)?,
                },
                json.json,
            )
            .await
        }
        CaCommand::Cert {
            name,
            der,
            output: o,
        } => {
            let data = bytes(s, Request::CaCert { name: name.clone() }).await?;
            let data = if *der {
                data
            } else {
                proto::pem::to_pem("CERTIFICATE", &data).into_bytes()
            };
            output(&data, o.as_ref())
        }
        CaCommand::Revoke { name, reason, json } => {
            reason.parse::<crl::Reason>().map_err(Error::Invalid)?;
            let op = Operation::RevokeCa {
                name: CaName::new(name)?,
                reason: reason.clone(),
            };
            propose(s, op, json.json).await
        }
        CaCommand::Crl {
            name,
            pem,
            output: o,
        } => {
            let data = bytes(s, Request::CaCrl { name: name.clone() }).await?;
            let data = if *pem {
                proto::pem::to_pem("X509 CRL", &data).into_bytes()
            } else {
                data
            };
            output(&data, o.as_ref())
        }
        CaCommand::Chain { name, output: o } => {
            let data = bytes(s, Request::CaChain { name: name.clone() }).await?;
            output(&data, o.as_ref())
        }
    }
}

fn print_ca(ca: &CaView) {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    println!("name        {}", ca.name);
    println!("kind        {}", ca.kind);
    if let Some(p) = &ca.parent {
        println!("parent      {p}");
    }
    println!("status      {}", ca.status);
    println!("subject     {}", ca.subject);
    println!("issuer      {}", opt(&ca.issuer));
    println!("key         {}", ca.key);
    println!("hash        {}", ca.hash);
    println!("ekus        {}", ca.ekus.join(", "));
    println!(
        "path-len    {}",
        ca.path_len.map_or("unlimited".into(), |p| p.to_string())
    );
    println!("serial      {}", opt(&ca.serial));
    println!("not-before  {}", opt(&ca.not_before));
    println!("not-after   {}", opt(&ca.not_after));
    println!("sha256      {}", opt(&ca.sha256_fingerprint));
    println!("key-id      {}", ca.key_id);
    if let Some(a) = &ca.key_attributes {
        println!(
            "key-attrs   token={} private={} sensitive={} always-sensitive={} extractable={} never-extractable={} local={} => {}",
            a.token,
            a.private,
            a.sensitive,
            a.always_sensitive,
            a.extractable,
            a.never_extractable,
            a.local,
            if a.sound { "ok" } else { "FAILS CHECK" }
        );
    }
}

/// One CA as the signer shows it (`ca show`).
pub(crate) async fn ca_show(s: &Session, name: &str) -> Result<proto::admin::CaView> {
    match s
        .client
        .call(&Request::CaShow {
            name: name.to_owned(),
        })
        .await?
    {
        Response::Ca { ca } => Ok(ca),
        _ => Err(Error::Transport("unexpected answer".into())),
    }
}
