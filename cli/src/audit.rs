//! `castellan audit …`: signed checkpoints, export, and the offline verifier
//! (docs/audit.md).

use std::path::{Path, PathBuf};

use proto::admin::Request;

use crate::args::AuditCommand;
use crate::session::{Session, bytes, output, read};
use crate::{Error, Result};

/// Each line of a file, without its newline, numbered from 1 (at most
/// [`proto::audit::MAX_LINE`] bytes each, UTF-8).
fn for_each_line(path: &Path, mut f: impl FnMut(usize, &str) -> Result<()>) -> Result<()> {
    use std::io::{BufRead, Read};
    let cannot = |e: std::io::Error| Error::Invalid(format!("cannot read {}: {e}", path.display()));
    let mut r = std::io::BufReader::new(std::fs::File::open(path).map_err(cannot)?);
    let mut buf = Vec::new();
    for n in 1.. {
        buf.clear();
        let got = (&mut r)
            .take(proto::audit::MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(cannot)?;
        if got == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if got > proto::audit::MAX_LINE {
            return Err(Error::Invalid(format!("export line {n}: too long")));
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|_| Error::Invalid(format!("export line {n}: not UTF-8")))?;
        f(n, line)?;
    }
    Ok(())
}

/// `audit verify`: offline, no session and no admin port. Two passes over the file: its
/// head (certificates, checkpoints) and the number of entries, then the entries one at a
/// time, so memory stays small however long the log is.
pub fn verify(
    file: &Path,
    root: &PathBuf,
    previous: Option<&PathBuf>,
    cosigners: &[String],
) -> Result<()> {
    let mut export = proto::audit::Export::default();
    let mut entries = 0u64;
    for_each_line(file, |n, line| {
        if n == 1 {
            return Ok(proto::audit::check_magic(line)?);
        }
        if export.add_line(n, line)?.is_some() {
            entries += 1;
        }
        Ok(())
    })?;
    export.check_head()?;
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
    let failed = |e: proto::Error| Error::Invalid(format!("audit verify: {e}"));
    let mut verifier = proto::audit::Verifier::new(&export, entries, &root, previous.as_deref())
        .map_err(failed)?;
    let mut scratch = proto::audit::Export::default();
    for_each_line(file, |n, line| {
        if n > 1
            && let Some(proto::audit::Line::Entry(e)) = scratch.add_line(n, line)?
        {
            verifier.push(e).map_err(failed)?;
        }
        Ok(())
    })?;
    let r = verifier.finish().map_err(failed)?;
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
