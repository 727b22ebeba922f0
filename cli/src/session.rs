//! The officer's session: the admin client and key read from the global options, and
//! reading inputs and writing outputs.

use std::io::Write;
use std::path::PathBuf;

use proto::admin::{Request, Response};

use crate::args::Cli;
use crate::client::AdminClient;
use crate::{Error, Result};

/// Connection details read from the global options.
pub(crate) struct Session {
    pub client: AdminClient,
    pub key_pem: Vec<u8>,
}

pub(crate) fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("cannot read {what} {}: {e}", path.display())))?;
    if bytes.len() > proto::pem::MAX_INPUT {
        return Err(Error::Invalid(format!(
            "{what} {} is too large",
            path.display()
        )));
    }
    Ok(bytes)
}

impl Cli {
    pub(crate) fn session(&self) -> Result<Session> {
        let need = |o: &Option<PathBuf>, flag: &str, env: &str| {
            o.clone()
                .ok_or_else(|| Error::Invalid(format!("give {flag} or set {env}")))
        };
        let admin = self
            .admin
            .clone()
            .ok_or_else(|| Error::Invalid("give --admin URL or set CASTELLAN_ADMIN".into()))?;
        let ca = read(
            &need(&self.admin_ca, "--admin-ca FILE", "CASTELLAN_ADMIN_CA")?,
            "admin CA",
        )?;
        let cert = read(
            &need(&self.cert, "--cert FILE", "CASTELLAN_CERT")?,
            "officer certificate",
        )?;
        let key_pem = read(
            &need(&self.key, "--key FILE", "CASTELLAN_KEY")?,
            "officer key",
        )?;
        Ok(Session {
            client: AdminClient::new(&admin, &ca, &cert, &key_pem)?,
            key_pem,
        })
    }
}

pub(crate) async fn bytes(s: &Session, req: Request) -> Result<Vec<u8>> {
    match s.client.call(&req).await? {
        Response::Bytes { data } => Ok(data),
        _ => Err(Error::Transport("unexpected answer".into())),
    }
}

pub(crate) fn output(data: &[u8], to: Option<&PathBuf>) -> Result<()> {
    match to {
        Some(p) => std::fs::write(p, data)
            .map_err(|e| Error::Invalid(format!("cannot write {}: {e}", p.display()))),
        None => std::io::stdout()
            .write_all(data)
            .map_err(|e| Error::Transport(e.to_string())),
    }
}
