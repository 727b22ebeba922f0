//! The signer's TOML config (`signer.toml` in the state directory, or `--config FILE`).
//!
//! ```toml
//! admin-listen = "127.0.0.1:8443"
//! proposal-ttl-hours = 24
//! [hsm]
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token-label = "castellan"
//! pin-file = "/etc/castellan/hsm-pin"      # or: pin-credential = "hsm-pin"
//! [mdm]                                    # castellan-mdm, for intune and webhook profiles
//! socket = "/run/castellan-mdm/signer.sock"
//! uid = 993                                # the connector's uid (SO_PEERCRED)
//! identity-cert = "/etc/castellan/mdm-identity.pem"
//! ```

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
pub use crate::revocation::CrlTiming;
use crate::{Error, Result};

/// File name of the config inside a state directory.
pub const CONFIG_FILE: &str = "signer.toml";
/// File name of the store inside a state directory.
pub const STORE_FILE: &str = "store.redb";
/// File name of the admin CA certificate the CLI trusts.
pub const ADMIN_CA_FILE: &str = "admin-ca.pem";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Where the store lives; defaults to the directory holding the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Address of the mTLS admin port.
    pub admin_listen: SocketAddr,
    /// How long a proposal stays open (hours, 1 to 168).
    #[serde(default = "default_ttl")]
    pub proposal_ttl_hours: u32,
    /// Base URL under which the edge publishes CRLs and CA certificates; issued
    /// certificates carry `PUBLIC-URL/crl/CA.crl` and `PUBLIC-URL/aia/CA.crt`.
    #[serde(default = "default_public_url")]
    pub public_url: String,
    pub hsm: HsmSection,
    /// CRL validity, re-publication, coalescing and the watchdog's window (defaults: 7
    /// days, 3.5 days, 500 ms, 1 day).
    #[serde(default)]
    pub crl: CrlTiming,
    /// When audit checkpoints are signed (defaults: every 60 s if the log grew, and at
    /// 10,000 unsigned entries).
    #[serde(default)]
    pub audit: crate::audit::AuditTiming,
    /// How the store heals after an I/O error (default: the signer exits for systemd to
    /// restart it if the store stays down 300 s).
    #[serde(default)]
    pub store: StoreSection,
    /// Where the CRL watchdog writes its metrics (Prometheus text format), e.g. node_exporter's
    /// textfile directory; default `STATE/metrics.prom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_file: Option<PathBuf>,
    /// The signing socket for castellan-edge; absent: no socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<SocketSection>,
    /// The castellan-mdm connector; absent: `intune` and `webhook` profiles refuse every
    /// request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdm: Option<MdmSection>,
}

/// `[store]`: healing after an I/O error (a full disk, EIO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StoreSection {
    /// Longest the store may refuse writes (while it is reopened every few seconds) before
    /// the signer exits with 75 for systemd to restart it (10 to 86400; default 300).
    #[serde(default = "default_give_up")]
    pub give_up_secs: u64,
}

fn default_give_up() -> u64 {
    300
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            give_up_secs: default_give_up(),
        }
    }
}

impl StoreSection {
    pub fn timing(&self) -> crate::app::tasks::HealTiming {
        crate::app::tasks::HealTiming {
            give_up: std::time::Duration::from_secs(self.give_up_secs),
        }
    }
}

/// The castellan-mdm connector, as the signer meets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MdmSection {
    /// The connector's unix socket, which the signer connects to.
    pub socket: PathBuf,
    /// The connector's uid: the socket's peer must be it (SO_PEERCRED); default: the
    /// signer's own uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Longest wait for one answer, in seconds (1 to 60; default 12). Keep it above
    /// castellan-mdm's `call-deadline-secs` (default 10), so the connector answers first,
    /// and validation plus notification below the edge's 30 s, so the device still waits.
    #[serde(default = "default_mdm_timeout")]
    pub timeout_secs: u64,
    /// The connector's admin-port client certificate (PEM). It may mint one-time
    /// challenges and revoke certificates Intune asks for (`mdm-revoke`), nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_cert: Option<PathBuf>,
}

fn default_mdm_timeout() -> u64 {
    12
}

impl MdmSection {
    /// The connector's admin-port certificate (DER), if one is configured.
    pub fn identity(&self) -> Result<Option<Vec<u8>>> {
        let Some(path) = &self.identity_cert else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|e| {
            Error::Config(ConfigError::io(
                format!("[mdm] identity-cert {}", path.display()),
                e,
            ))
        })?;
        let mut certs = proto::pem::parse_certificates(&pem, "[mdm] identity-cert")
            .map_err(|e| Error::Config(ConfigError::Mdm(e.to_string())))?;
        match (certs.pop(), certs.is_empty()) {
            (Some(c), true) => Ok(Some(der::Encode::to_der(&c).map_err(|e| {
                Error::Config(ConfigError::Mdm(format!("[mdm] identity-cert: {e}")))
            })?)),
            _ => Err(Error::Config(ConfigError::Rule(
                "[mdm] identity-cert must hold exactly one certificate",
            ))),
        }
    }
}

fn default_public_url() -> String {
    "http://localhost:8080".into()
}

/// The signing socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SocketSection {
    /// Path of the unix socket (created mode 0660).
    pub path: PathBuf,
    /// The only peer uid accepted (SO_PEERCRED); default: the signer's own uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Group given to the socket file, so the edge's group can connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

fn default_ttl() -> u32 {
    24
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HsmSection {
    /// PKCS#11 module; SoftHSM2 by default.
    #[serde(default = "default_module")]
    pub module: PathBuf,
    pub token_label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_credential: Option<String>,
}

fn default_module() -> PathBuf {
    hsm::SOFTHSM2_MODULE.into()
}

impl HsmSection {
    pub fn to_hsm_config(&self) -> Result<hsm::HsmConfig> {
        let pin = match (&self.pin_file, &self.pin_credential) {
            (Some(f), None) => hsm::PinSource::File(f.clone()),
            (None, Some(c)) => hsm::PinSource::Credential(c.clone()),
            _ => {
                return Err(Error::Config(ConfigError::Rule(
                    "[hsm] needs exactly one of pin-file or pin-credential",
                )));
            }
        };
        Ok(hsm::HsmConfig {
            module: self.module.clone(),
            token_label: self.token_label.clone(),
            pin,
        })
    }
}

/// A loaded config and the state directory it applies to.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub state_dir: PathBuf,
}

impl Loaded {
    pub fn store_path(&self) -> PathBuf {
        self.state_dir.join(STORE_FILE)
    }
    /// Where the current CRL of each CA is kept (`CA.crl`, DER), next to the store.
    pub fn crl_dir(&self) -> PathBuf {
        self.state_dir.join("crls")
    }
    /// The CRL watchdog's metrics, in Prometheus text format.
    pub fn metrics_file(&self) -> PathBuf {
        self.config
            .metrics_file
            .clone()
            .unwrap_or_else(|| self.state_dir.join("metrics.prom"))
    }
    pub fn ttl_secs(&self) -> i64 {
        i64::from(self.config.proposal_ttl_hours) * 3600
    }
}

/// Load the config from `--config FILE` or `--state-dir DIR`, and check everything
/// that can be checked without the HSM: syntax, unknown keys, file permissions,
/// the module path, the PIN source.
pub fn load(state_dir: Option<&Path>, config: Option<&Path>) -> Result<Loaded> {
    let (path, default_dir) = match (config, state_dir) {
        (Some(c), _) => (c.to_path_buf(), c.parent().map(Path::to_path_buf)),
        (None, Some(d)) => (d.join(CONFIG_FILE), Some(d.to_path_buf())),
        (None, None) => {
            return Err(Error::Config(ConfigError::Rule(
                "give --state-dir DIR or --config FILE",
            )));
        }
    };
    let meta = std::fs::metadata(&path).map_err(|e| {
        Error::Config(ConfigError::io(
            format!("cannot read {}", path.display()),
            e,
        ))
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(Error::Config(ConfigError::Mode {
            path: path.display().to_string(),
            mode,
        }));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Config(ConfigError::io(
            format!("cannot read {}", path.display()),
            e,
        ))
    })?;
    let config: Config = toml::from_str(&text).map_err(|e| {
        Error::Config(ConfigError::Toml {
            path: path.display().to_string(),
            source: e,
        })
    })?;
    let state_dir = config
        .state_dir
        .clone()
        .or(default_dir)
        .ok_or(Error::Config(ConfigError::Rule("no state directory")))?;
    if !(config.public_url.starts_with("http://") || config.public_url.starts_with("https://"))
        || config.public_url.len() > 200
        || config.public_url.contains(char::is_whitespace)
    {
        return Err(Error::Config(ConfigError::PublicUrl(
            config.public_url.clone(),
        )));
    }
    let c = &config.crl;
    if c.validity_secs < 3600
        || c.republish_secs < 60
        || c.republish_secs >= c.validity_secs
        || c.coalesce_ms > 2000
        || c.warn_before_secs < 0
        || c.warn_before_secs >= c.validity_secs
    {
        return Err(Error::Config(ConfigError::Rule(
            "[crl]: validity-secs >= 3600, 60 <= republish-secs < validity-secs, coalesce-ms <= 2000, \
             0 <= warn-before-secs < validity-secs",
        )));
    }
    if !(1..=168).contains(&config.proposal_ttl_hours) {
        return Err(Error::Config(ConfigError::Rule(
            "proposal-ttl-hours must be 1 to 168",
        )));
    }
    if !config.hsm.module.is_file() {
        return Err(Error::Config(ConfigError::NoModule(
            config.hsm.module.display().to_string(),
        )));
    }
    if !(1..=86_400).contains(&config.audit.checkpoint_secs)
        || !(1..=10_000_000).contains(&config.audit.checkpoint_entries)
    {
        return Err(Error::Config(ConfigError::Rule(
            "[audit] checkpoint-secs must be 1 to 86400 and checkpoint-entries 1 to 10000000",
        )));
    }
    if !(10..=86_400).contains(&config.store.give_up_secs) {
        return Err(Error::Config(ConfigError::Rule(
            "[store] give-up-secs must be 10 to 86400",
        )));
    }
    if let Some(m) = &config.mdm {
        if !(1..=60).contains(&m.timeout_secs) {
            return Err(Error::Config(ConfigError::Rule(
                "[mdm] timeout-secs must be 1 to 60",
            )));
        }
        m.identity()?;
    }
    let hsm_config = config.hsm.to_hsm_config()?;
    hsm_config
        .pin
        .read()
        .map_err(|e| Error::Config(ConfigError::Pin(e)))?;
    Ok(Loaded { config, state_dir })
}

/// Write a config file (mode 0600).
pub fn write(path: &Path, config: &Config) -> Result<()> {
    let text =
        toml::to_string_pretty(config).map_err(|e| Error::Config(ConfigError::TomlWrite(e)))?;
    std::fs::write(path, text).map_err(|e| Error::Config(ConfigError::io(path.display(), e)))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::Config(ConfigError::io(path.display(), e)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write_cfg(dir: &Path, text: &str, mode: u32) {
        let p = dir.join(CONFIG_FILE);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn unknown_keys_are_refused() {
        let d = tempfile::tempdir().unwrap();
        write_cfg(
            d.path(),
            "admin-listen = \"127.0.0.1:1\"\nbogus = 1\n[hsm]\ntoken-label = \"x\"\npin-file = \"/p\"\n",
            0o600,
        );
        let e = load(Some(d.path()), None).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn world_writable_config_is_refused() {
        let d = tempfile::tempdir().unwrap();
        write_cfg(d.path(), "", 0o666);
        let e = load(Some(d.path()), None).unwrap_err().to_string();
        assert!(e.contains("must not be writable"), "{e}");
    }

    #[test]
    fn both_pin_sources_are_refused() {
        let s = HsmSection {
            module: "/x".into(),
            token_label: "t".into(),
            pin_file: Some("/p".into()),
            pin_credential: Some("c".into()),
        };
        assert!(s.to_hsm_config().is_err());
    }
}
