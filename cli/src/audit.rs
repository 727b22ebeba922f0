//! `castellan audit …`: signed checkpoints, export, and the offline verifier
//! (docs/audit.md).

use std::path::PathBuf;

use proto::admin::Request;

use crate::args::AuditCommand;
use crate::session::{Session, bytes, output, read};
use crate::{Error, Result};

/// `audit verify`: offline, no session and no admin port.
pub fn verify(
    file: &PathBuf,
    root: &PathBuf,
    previous: Option<&PathBuf>,
    cosigners: &[String],
) -> Result<()> {
    let text = String::from_utf8(read(file, "audit export")?)
        .map_err(|_| Error::Invalid("the export is not UTF-8 text".into()))?;
    let export = proto::audit::Export::parse(&text)?;
    let roots =
        proto::pem::parse_certificates(&read(root, "root certificate")?, "root certificate")?;
    let root = roots
        .first()
        .ok_or_else(|| Error::Invalid("the root file holds no certificate".into()))?;
    let root = der::Encode::to_der(root).map_err(|e| Error::Invalid(e.to_string()))?;
    let previous = previous
        .map(|p| {
            String::from_utf8(read(p, "previous checkpoint")?)
                .map_err(|_| Error::Invalid("the previous checkpoint is not text".into()))
        })
        .transpose()?;
    let r = proto::audit::verify_export(&export, &root, previous.as_deref())
        .map_err(|e| Error::Invalid(format!("audit verify: {e}")))?;
    println!(
        "OK: {} entries, {} checkpoints, every entry signed",
        r.entries, r.checkpoints
    );
    if previous.is_some() {
        println!("OK: the export extends the previous checkpoint");
    }
    for c in cosigners {
        let (name, pem) = c
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("--cosigner {c}: give NAME=CERT.pem")))?;
        let certs = proto::pem::parse_certificates(
            &read(&PathBuf::from(pem), "cosigner certificate")?,
            pem,
        )?;
        let cert = certs
            .first()
            .ok_or_else(|| Error::Invalid(format!("{pem} holds no certificate")))?;
        let spki = der::Encode::to_der(cert.tbs_certificate().subject_public_key_info())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        // Checkpoints extend each other (checked above): the largest one NAME signed pins
        // every entry up to its size.
        let line = format!("castellan.admin/{name}");
        let mut cosigned = None;
        for c in &export.checkpoints {
            let note = proto::audit::Note::parse(c)?;
            if !note.signatures.iter().any(|s| s.name == line) {
                continue;
            }
            note.verify_ecdsa_p256(&line, &spki)
                .map_err(|e| Error::Invalid(format!("audit verify: a cosignature: {e}")))?;
            cosigned = Some(proto::audit::Checkpoint::parse(&note.text)?.size);
        }
        let Some(size) = cosigned else {
            return Err(Error::Invalid(format!(
                "audit verify: no checkpoint is cosigned by {name}"
            )));
        };
        println!("OK: {name} cosigned the checkpoint of the first {size} entries");
    }
    Ok(())
}

pub async fn audit(s: &Session, cmd: &AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Checkpoint { output: o } => {
            output(&bytes(s, Request::AuditCheckpoint).await?, o.as_ref())
        }
        AuditCommand::Export { output: o } => {
            output(&bytes(s, Request::AuditExport).await?, o.as_ref())
        }
        AuditCommand::Verify {
            file,
            root,
            previous,
            cosigner,
        } => verify(file, root, previous.as_ref(), cosigner),
        AuditCommand::Cosign => {
            let note = String::from_utf8(bytes(s, Request::AuditCheckpoint).await?)
                .map_err(|_| Error::Transport("the checkpoint is not text".into()))?;
            let note = proto::audit::Note::parse(&note)?;
            let (algorithm, signature) = crate::officer::sign(&s.key_pem, note.text.as_bytes())?;
            let answer = s
                .client
                .call(&Request::AuditCosign {
                    checkpoint: note.text,
                    algorithm,
                    signature,
                })
                .await?;
            if let proto::admin::Response::Done { message } = answer {
                println!("{message}");
            }
            Ok(())
        }
        AuditCommand::List {
            actor,
            action,
            ca,
            limit,
            after,
            json,
        } => {
            let r = s
                .client
                .call(&Request::AuditList {
                    actor: actor.clone(),
                    action: action.clone(),
                    ca: ca.clone(),
                    limit: *limit,
                    after: *after,
                })
                .await?;
            let proto::admin::Response::Audit { entries, next } = r else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if json.json {
                let v = serde_json::json!({ "entries": entries, "next": next });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return Ok(());
            }
            for e in &entries {
                let mut extra = String::new();
                for (k, v) in [
                    ("ca", &e.ca),
                    ("proposal", &e.proposal),
                    ("permission", &e.permission),
                    ("outcome", &e.outcome),
                    ("from", &e.source),
                ] {
                    if let Some(v) = v {
                        extra.push_str(&format!(" {k}={v}"));
                    }
                }
                println!(
                    "{:>6}  {}  {:<16} {:<22} {}{extra}",
                    e.seq,
                    proto::rfc3339(e.at),
                    e.actor,
                    e.action,
                    e.detail
                );
            }
            if let Some(n) = next {
                println!("next: {n}");
            }
            Ok(())
        }
    }
}
