//! `castellan pkcs12 issue`: a key pair made by the signer, its certificate and the chain in
//! a PKCS#12 file (a `pkcs` profile; permission `pkcs12.issue`); `castellan key recover` and
//! `key fetch`: an escrowed key back, after a quorum (permission `key.recover`).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use proto::admin::{Request, Response};

use crate::args::{KeyCommand, Pkcs12Command};
use crate::session::Session;
use crate::{Error, Result};

pub async fn pkcs12(s: &Session, c: &Pkcs12Command) -> Result<()> {
    let Pkcs12Command::Issue {
        profile,
        subject,
        san,
        key,
        encoding,
        password_file,
        output,
    } = c;
    let password = password_file.as_ref().map(password_from).transpose()?;
    let req = Request::Pkcs12Issue {
        profile: profile.clone(),
        subject: subject.clone(),
        sans: san
            .iter()
            .map(|s| proto::model::San::parse(s))
            .collect::<std::result::Result<_, _>>()?,
        key: key.as_deref().map(proto::model::key_spec).transpose()?,
        encoding: encoding.as_deref().map(str::parse).transpose()?,
        password,
    };
    write_p12(s, &req, output).await
}

pub async fn key(s: &Session, c: &KeyCommand) -> Result<()> {
    match c {
        KeyCommand::Recover { serial, ca, json } => {
            let serial = proto::model::Serial::parse(serial)?.into_hex();
            let op = proto::governance::Operation::RecoverKey {
                ca: proto::model::CaName::new(ca)?,
                serial,
            };
            crate::proposal::propose(s, op, json.json).await
        }
        KeyCommand::Fetch {
            proposal,
            encoding,
            output,
        } => {
            let req = Request::KeyFetch {
                proposal: proposal.clone(),
                encoding: encoding.as_deref().map(str::parse).transpose()?,
            };
            write_p12(s, &req, output).await
        }
    }
}

/// Send `req`, whose answer is a PKCS#12 file, into a new file `output` (mode 0600, never
/// overwritten: refused before the request is sent); print the password the signer made.
async fn write_p12(s: &Session, req: &Request, output: &std::path::Path) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output)
        .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", output.display())))?;
    let answer = s.client.call(req).await;
    let (ca, serial, p12, password) = match answer {
        Ok(Response::Pkcs12 {
            ca,
            serial,
            p12,
            password,
        }) => (ca, serial, p12, password),
        Ok(_) => {
            let _ = std::fs::remove_file(output);
            return Err(Error::Transport("unexpected answer".into()));
        }
        Err(e) => {
            let _ = std::fs::remove_file(output);
            return Err(e);
        }
    };
    file.write_all(&p12)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::Invalid(format!("cannot write {}: {e}", output.display())))?;
    println!(
        "issued {serial} of CA {ca}: {} ({} bytes)",
        output.display(),
        p12.len()
    );
    if let Some(p) = password {
        // Shown once; give it to the user by another channel than the file.
        println!("password: {}", p.0);
    }
    Ok(())
}

/// A password from a file only its owner can read (one line; a trailing newline is not
/// part of it).
fn password_from(path: &std::path::PathBuf) -> Result<proto::Secret> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::Invalid(format!(
            "{} can be read by others (mode {:o}): chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    let text = String::from_utf8(crate::session::read(path, "password file")?)
        .map_err(|_| Error::Invalid(format!("{} is not UTF-8", path.display())))?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(Error::Invalid(format!("{} is empty", path.display())));
    }
    Ok(proto::Secret(password.to_owned()))
}
