//! castellan-mdm's TOML config (`deny_unknown_fields`; `check-config` loads and checks it
//! without starting; exit 78 on a bad config).
//!
//! ```toml
//! socket = "/run/castellan-mdm/signer.sock"   # the signer connects here
//! signer-uid = 994                            # the only peer accepted (SO_PEERCRED)
//! socket-gid = 994                            # group of the socket file (mode 0660)
//!
//! [signer]                                    # the admin port, for challenges and revocations
//! url = "https://127.0.0.1:8443"
//! ca-file = "/etc/castellan-mdm/admin-ca.pem"   # a copy of the signer's admin-ca.pem
//! cert-file = "/etc/castellan-mdm/identity.pem"
//! key-file = "/etc/castellan-mdm/identity.key"          # or key-credential = "identity-key"
//!
//! [intune]
//! tenant = "contoso.onmicrosoft.com"
//! client-id = "00000000-0000-0000-0000-000000000000"
//! client-secret-credential = "intune-secret"            # or client-secret-file, or
//! # client-certificate-file + client-key-file (a certificate credential)
//! revocation-interval-secs = 3600
//!
//! [https]                                     # the NDES-style challenge endpoint
//! listen = "0.0.0.0:8444"
//! cert-file = "/etc/castellan-mdm/https.pem"
//! key-file = "/etc/castellan-mdm/https.key"
//!
//! [[ndes]]                                    # one per MDM: its credentials and profile
//! username = "jamf"
//! password-hash = "pbkdf2-sha256$100000$…$…"  # castellan-mdm hash-password
//! profile = "devices-dynamic"
//!
//! [[webhook]]
//! profile = "lab"
//! url = "https://hooks.example/scep"
//! secret-credential = "lab-hook"
//! ```

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The unix socket the signer connects to.
    pub socket: PathBuf,
    /// The signer's uid; default: our own.
    #[serde(default)]
    pub signer_uid: Option<u32>,
    /// Group of the socket file, so the signer's group can connect (mode 0660).
    #[serde(default)]
    pub socket_gid: Option<u32>,
    /// Longest time one call of the signer may take, all HTTP requests included (seconds,
    /// 1 to 60; default 10). Past it the answer is "unavailable". Keep it below the signer's
    /// `[mdm] timeout-secs` (default 12), and both below the edge's 30 s.
    #[serde(default = "default_call_deadline")]
    pub call_deadline_secs: u64,
    /// The signer's admin port; needed by `[[ndes]]` and by Intune revocation.
    #[serde(default)]
    pub signer: Option<SignerSection>,
    #[serde(default)]
    pub intune: Option<IntuneSection>,
    #[serde(default)]
    pub https: Option<HttpsSection>,
    #[serde(default)]
    pub ndes: Vec<NdesSection>,
    #[serde(default)]
    pub webhook: Vec<WebhookSection>,
}

/// The admin port and the connector's identity on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SignerSection {
    pub url: String,
    /// The admin CA certificate (PEM), as `castellan-signer init` wrote it.
    pub ca_file: PathBuf,
    /// The connector's client certificate (PEM): the signer's `[mdm] identity-cert`.
    pub cert_file: PathBuf,
    #[serde(flatten)]
    pub key: Secret,
}

/// A secret: a file others cannot read, or a systemd credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Secret {
    #[serde(default, alias = "client-secret-file", alias = "secret-file")]
    pub key_file: Option<PathBuf>,
    #[serde(
        default,
        alias = "client-secret-credential",
        alias = "secret-credential"
    )]
    pub key_credential: Option<String>,
}

/// Intune's partner-CA API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IntuneSection {
    /// Tenant ID or `name.onmicrosoft.com`.
    pub tenant: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub client_secret_credential: Option<String>,
    /// A certificate credential instead of a secret: the app registration's certificate
    /// (PEM) and its RSA key (PKCS#8 PEM, a file others cannot read).
    #[serde(default)]
    pub client_certificate_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Entra ID; `https://login.microsoftonline.us` for GCC High.
    #[serde(default = "default_login")]
    pub login_url: String,
    /// Microsoft Graph; `https://graph.microsoft.us` for GCC High.
    #[serde(default = "default_graph")]
    pub graph_url: String,
    /// Graph's resource (the token audience); default: `graph-url`. Set it when graph-url
    /// points elsewhere than the resource's own address (a proxy, a test emulator).
    #[serde(default)]
    pub graph_resource: Option<String>,
    /// Intune's resource; the token scope is this plus `/.default` (note the double slash).
    #[serde(default = "default_resource")]
    pub intune_resource: String,
    /// PEM roots to trust for Entra, Graph and Intune instead of the public web roots.
    #[serde(default)]
    pub trust_file: Option<PathBuf>,
    /// How often to fetch revocation requests (seconds; 0: never).
    #[serde(default = "default_revocation_interval")]
    pub revocation_interval_secs: u64,
    /// Most revocation requests per fetch (1 to 500).
    #[serde(default = "default_revocation_max")]
    pub revocation_max: u32,
    /// Longest wait for one HTTP call (seconds).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_call_deadline() -> u64 {
    10
}
fn default_login() -> String {
    "https://login.microsoftonline.com".into()
}
fn default_graph() -> String {
    "https://graph.microsoft.com".into()
}
fn default_resource() -> String {
    "https://api.manage.microsoft.com/".into()
}
fn default_revocation_interval() -> u64 {
    3600
}
fn default_revocation_max() -> u32 {
    100
}
fn default_timeout() -> u64 {
    10
}

/// The HTTPS listener of the NDES-style challenge endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpsSection {
    pub listen: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// One MDM allowed to fetch one-time challenges for one profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NdesSection {
    pub username: String,
    /// `castellan-mdm hash-password` output; the password itself is never stored.
    pub password_hash: String,
    pub profile: String,
    /// Lifetime of a challenge (seconds; NDES: 60 minutes).
    #[serde(default = "default_challenge_ttl")]
    pub ttl_secs: i64,
    /// `utf-16` (what NDES sends and Fleet, Jamf and Workspace ONE parse) or `utf-8`.
    #[serde(default = "default_encoding")]
    pub encoding: String,
}

fn default_challenge_ttl() -> i64 {
    3600
}
fn default_encoding() -> String {
    "utf-16".into()
}

/// A profile in `webhook` mode.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WebhookSection {
    pub profile: String,
    /// An `https://` URL.
    pub url: String,
    /// The HMAC-SHA256 key.
    #[serde(flatten)]
    pub secret: Secret,
    /// Longest wait (seconds); no answer in time is a denial.
    #[serde(default = "default_webhook_timeout")]
    pub timeout_secs: u64,
    /// Send the challenge in clear (default: only its SHA-256).
    #[serde(default)]
    pub send_challenge: bool,
    /// PEM roots to trust for this URL instead of the public web roots.
    #[serde(default)]
    pub trust_file: Option<PathBuf>,
}

fn default_webhook_timeout() -> u64 {
    5
}

/// Read a file that holds a secret: it must exist and not be readable by others.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(Error::Config(format!(
            "{} has mode {mode:o}: a secret must not be readable by others (chmod 600 or 640)",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))
}

/// A systemd credential (`LoadCredential=`/`LoadCredentialEncrypted=`), by name.
pub fn read_credential(name: &str) -> Result<Vec<u8>> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
        Error::Config(format!(
            "credential {name:?}: $CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit)"
        ))
    })?;
    if name.contains('/') || name.is_empty() {
        return Err(Error::Config(format!("bad credential name {name:?}")));
    }
    std::fs::read(Path::new(&dir).join(name))
        .map_err(|e| Error::Config(format!("credential {name:?}: {e}")))
}

impl Secret {
    pub fn read(&self, what: &str) -> Result<Vec<u8>> {
        match (&self.key_file, &self.key_credential) {
            (Some(f), None) => read_secret_file(f),
            (None, Some(c)) => read_credential(c),
            _ => Err(Error::Config(format!(
                "{what}: give exactly one of a file or a credential"
            ))),
        }
    }
}

impl IntuneSection {
    /// The client credential: a secret, or a certificate and its key.
    pub fn credential(&self) -> Result<Credential> {
        let secret = Secret {
            key_file: self.client_secret_file.clone(),
            key_credential: self.client_secret_credential.clone(),
        };
        match (
            secret.key_file.is_some() || secret.key_credential.is_some(),
            &self.client_certificate_file,
            &self.client_key_file,
        ) {
            (true, None, None) => {
                let s = secret.read("[intune] client secret")?;
                let s = String::from_utf8(s)
                    .map_err(|_| Error::Config("[intune] the client secret is not text".into()))?;
                Ok(Credential::Secret(s.trim().to_owned()))
            }
            (false, Some(cert), Some(key)) => Ok(Credential::Certificate {
                cert_pem: std::fs::read(cert)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", cert.display())))?,
                key_pem: read_secret_file(key)?,
            }),
            _ => Err(Error::Config(
                "[intune] needs client-secret-file or client-secret-credential, or \
                 client-certificate-file with client-key-file"
                    .into(),
            )),
        }
    }
}

/// How the connector proves itself to Entra ID.
#[derive(Clone)]
pub enum Credential {
    Secret(String),
    Certificate { cert_pem: Vec<u8>, key_pem: Vec<u8> },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Secret(_) => "Credential::Secret(…)",
            Credential::Certificate { .. } => "Credential::Certificate(…)",
        })
    }
}

fn https_url(what: &str, url: &str) -> Result<()> {
    if !url.starts_with("https://") || url.contains(char::is_whitespace) || url.len() > 500 {
        return Err(Error::Config(format!(
            "{what} {url:?} must be an https:// URL"
        )));
    }
    Ok(())
}

/// Load and check a config: syntax, unknown keys, URLs, secrets readable (and not by
/// others), password hashes well-formed, profiles named once.
pub fn load(path: &Path) -> Result<Config> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(Error::Config(format!(
            "{} must not be writable by group or others",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    let c: Config =
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    if !(1..=60).contains(&c.call_deadline_secs) {
        return Err(Error::Config("call-deadline-secs must be 1 to 60".into()));
    }
    if let Some(s) = &c.signer {
        https_url("[signer] url", &s.url)?;
        s.key.read("[signer] key")?;
    }
    if let Some(i) = &c.intune {
        for (what, url) in [("login-url", &i.login_url), ("graph-url", &i.graph_url)] {
            https_url(&format!("[intune] {what}"), url)?;
        }
        https_url("[intune] intune-resource", &i.intune_resource)?;
        if i.tenant.is_empty()
            || !i
                .tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(Error::Config(format!(
                "[intune] tenant {:?} must be a tenant ID or domain",
                i.tenant
            )));
        }
        if !(1..=500).contains(&i.revocation_max) || !(1..=120).contains(&i.timeout_secs) {
            return Err(Error::Config(
                "[intune] revocation-max must be 1 to 500 and timeout-secs 1 to 120".into(),
            ));
        }
        if i.revocation_interval_secs != 0 && i.revocation_interval_secs < 10 {
            return Err(Error::Config(
                "[intune] revocation-interval-secs must be 0 (off) or at least 10".into(),
            ));
        }
        i.credential()?;
        if i.revocation_interval_secs != 0 && c.signer.is_none() {
            return Err(Error::Config(
                "[intune] revocation needs [signer] (the admin port the connector revokes through)"
                    .into(),
            ));
        }
    }
    if !c.ndes.is_empty() && (c.https.is_none() || c.signer.is_none()) {
        return Err(Error::Config(
            "[[ndes]] needs [https] (where MDMs fetch challenges) and [signer] (where they are minted)"
                .into(),
        ));
    }
    let mut users = std::collections::HashSet::new();
    for n in &c.ndes {
        crate::password::Hash::parse(&n.password_hash)
            .map_err(|e| Error::Config(format!("[[ndes]] {}: {e}", n.username)))?;
        if !users.insert(n.username.clone()) {
            return Err(Error::Config(format!(
                "[[ndes]] username {:?} is given twice",
                n.username
            )));
        }
        if !(60..=86400).contains(&n.ttl_secs)
            || !["utf-16", "utf-8"].contains(&n.encoding.as_str())
        {
            return Err(Error::Config(format!(
                "[[ndes]] {}: ttl-secs must be 60 to 86400 and encoding utf-16 or utf-8",
                n.username
            )));
        }
    }
    let mut hooks = std::collections::HashSet::new();
    for w in &c.webhook {
        https_url(&format!("[[webhook]] {}", w.profile), &w.url)?;
        w.secret
            .read(&format!("[[webhook]] {} secret", w.profile))?;
        if !hooks.insert(w.profile.clone()) || !(1..=30).contains(&w.timeout_secs) {
            return Err(Error::Config(format!(
                "[[webhook]] {}: one webhook per profile, timeout-secs 1 to 30",
                w.profile
            )));
        }
    }
    if let Some(h) = &c.https {
        read_secret_file(&h.key_file)?;
    }
    Ok(c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "c.toml", "socket = \"/s\"\nbogus = 1\n", 0o600);
        assert!(load(&p).unwrap_err().to_string().contains("bogus"));
        let p = write(
            d.path(),
            "c.toml",
            "socket = \"/s\"\n[[webhook]]\nprofile = \"p\"\nurl = \"http://x\"\nsecret-file = \"/nonexistent\"\n",
            0o600,
        );
        assert!(load(&p).unwrap_err().to_string().contains("https://"));
        let p = write(d.path(), "c.toml", "socket = \"/s\"\n", 0o666);
        assert!(load(&p).unwrap_err().to_string().contains("writable"));
    }

    #[test]
    fn secrets_readable_by_others_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = write(d.path(), "secret", "k", 0o644);
        let e = read_secret_file(&s).unwrap_err().to_string();
        assert!(e.contains("readable by others"), "{e}");
        let s = write(d.path(), "secret2", "k", 0o600);
        assert_eq!(read_secret_file(&s).unwrap(), b"k");
    }

    #[test]
    fn ndes_needs_https_and_the_signer() {
        let d = tempfile::tempdir().unwrap();
        let hash = crate::password::Hash::new("correct horse")
            .unwrap()
            .to_string();
        let p = write(
            d.path(),
            "c.toml",
            &format!(
                "socket = \"/s\"\n[[ndes]]\nusername = \"jamf\"\npassword-hash = \"{hash}\"\nprofile = \"p\"\n"
            ),
            0o600,
        );
        assert!(load(&p).unwrap_err().to_string().contains("[https]"));
    }
}
