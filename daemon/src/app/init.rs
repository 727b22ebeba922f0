//! Making and opening an appliance's state: `castellan-signer init`, and the start-up of a
//! signer (token, store, services, key check).

use std::path::Path;
use std::sync::Arc;

use der::Encode;
use hsm::{Hsm, HsmSigner, KeyStore, KeyUse};

use crate::app::config::{self, Config, HsmSection, Loaded};
use crate::engine::{Settings, Signer};
use crate::error::ConfigError;
use crate::issuance::x509::{self, Profile};
use crate::store::{AdminIdentity, Governance, Officer, Store};
use crate::{Error, Result};

/// What `castellan-signer init` needs.
#[derive(Debug)]
pub struct InitOptions<'a> {
    pub state_dir: &'a Path,
    pub hsm: HsmSection,
    pub quorum: u32,
    pub officers: Vec<(String, Vec<u8>)>,
    pub admin_listen: std::net::SocketAddr,
    /// DNS names and IP addresses for the admin TLS certificate.
    pub admin_names: Vec<String>,
    /// Base URL of the edge for CDP/AIA in issued certificates.
    pub public_url: String,
    /// The signing socket for the edge.
    pub socket: Option<config::SocketSection>,
}

/// Officer name: 1–64 of a-z, A-Z, 0-9, '-', '_', '.'.
pub fn check_officer_name(n: &str) -> Result<()> {
    Ok(proto::model::check_admin_name(n)?)
}

/// Create a new appliance state: store, officers, quorum, admin TLS identity (keys in the token).
pub fn init(opts: InitOptions<'_>) -> Result<()> {
    let opts = &opts;
    if opts.officers.is_empty() {
        return Err(Error::Invalid(
            "register at least one officer (--officer NAME=CERT.pem)".into(),
        ));
    }
    if opts.quorum == 0 || opts.quorum as usize > opts.officers.len() {
        return Err(Error::Invalid(format!(
            "quorum must be between 1 and the number of officers ({})",
            opts.officers.len()
        )));
    }
    let mut officers = Vec::new();
    for (name, pem) in &opts.officers {
        check_officer_name(name)?;
        if officers.iter().any(|o: &Officer| &o.name == name) {
            return Err(Error::Invalid(format!("officer {name} is listed twice")));
        }
        let certs = x509::parse_certificates(pem, &format!("the certificate of officer {name}"))?;
        let [cert] = certs.as_slice() else {
            return Err(Error::Invalid(format!(
                "give exactly one certificate for officer {name}"
            )));
        };
        let der = cert.to_der()?;
        if officers.iter().any(|o: &Officer| o.cert == der) {
            return Err(Error::Invalid(format!(
                "officer {name} has the same certificate as another officer"
            )));
        }
        officers.push(Officer {
            name: name.clone(),
            cert: der,
            assignments: vec![proto::roles::Assignment::administrator_everywhere()],
        });
    }
    std::fs::create_dir_all(opts.state_dir)
        .map_err(|e| Error::Config(ConfigError::io(opts.state_dir.display(), e)))?;
    let store_path = opts.state_dir.join(config::STORE_FILE);
    if store_path.exists() {
        return Err(Error::Conflict(crate::error::Clash::AlreadyInitialised(
            opts.state_dir.display().to_string(),
        )));
    }
    init_with(opts, officers, Hsm::open(&opts.hsm.to_hsm_config()?)?)
}

/// The rest of [`init`], with the token (or, in unit tests, software keys) open: the
/// admin TLS identity, the store with its officers and quorum, the config file.
pub fn init_with(
    opts: &InitOptions<'_>,
    officers: Vec<Officer>,
    hsm: Arc<dyn KeyStore>,
) -> Result<()> {
    let store_path = opts.state_dir.join(config::STORE_FILE);
    // Admin TLS: a CA (trusted by the CLI) and a server certificate, both keys in the token.
    let now = std::time::SystemTime::now();
    let spec = hsm::KeySpec::EcP256;
    let hash = hsm::HashAlg::Sha256;
    let ca_id = crate::keys::new_key_id()?;
    let ca_spki = hsm.generate(spec, &ca_id, "castellan-admin-ca", KeyUse::Sign)?;
    let ca_signer = HsmSigner::new(hsm.clone(), ca_id.clone(), spec, hash)?;
    let ca_name: x509_cert::name::Name = "CN=Castellan admin CA".parse()?;
    let ca_cert = x509::issue(
        Profile {
            subject: ca_name.clone(),
            issuer: None,
            issuer_key_id: None,
            extensions: x509::ca_extensions(Some(0), &[])?,
        },
        x509::random_serial()?,
        x509::validity(now, 10 * 365 * 86400)?,
        ca_spki.clone(),
        &ca_signer,
    )?;
    let tls_id = crate::keys::new_key_id()?;
    let tls_spki = hsm.generate(spec, &tls_id, "castellan-admin-tls", KeyUse::Sign)?;
    let tls_cert = x509::issue(
        Profile {
            subject: "CN=castellan-signer admin".parse()?,
            issuer: Some(ca_name),
            issuer_key_id: Some(x509::key_identifier(&ca_spki)),
            extensions: x509::tls_server_extensions(&opts.admin_names)?,
        },
        x509::random_serial()?,
        x509::validity(now, 2 * 365 * 86400)?,
        tls_spki,
        &ca_signer,
    )?;
    let identity = AdminIdentity {
        ca_key_id: ca_id.to_string(),
        ca_cert: ca_cert.to_der()?,
        tls_key_id: tls_id.to_string(),
        tls_cert: tls_cert.to_der()?,
        audit_key_id: None,
        audit_cert: None,
    };
    let config = Config {
        state_dir: None,
        admin_listen: opts.admin_listen,
        proposal_ttl_hours: 24,
        crl: Default::default(),
        audit: Default::default(),
        store: Default::default(),
        metrics_file: None,
        public_url: opts.public_url.clone(),
        hsm: opts.hsm.clone(),
        socket: opts.socket.clone(),
        mdm: None,
    };
    let store = Store::create(&store_path)?;
    let names: Vec<String> = officers.iter().map(|o| o.name.clone()).collect();
    store.write(|tx| {
        tx.put_meta(
            "governance",
            &Governance {
                quorum: opts.quorum,
                officers: officers.clone(),
                rejections: 1,
                roles: vec![],
            },
        )?;
        tx.put_meta("admin", &identity)?;
        tx.audit(
            "init",
            "init",
            format!("quorum {} of officers {}", opts.quorum, names.join(", ")),
        )
    })?;
    config::write(&opts.state_dir.join(config::CONFIG_FILE), &config)?;
    std::fs::write(
        opts.state_dir.join(config::ADMIN_CA_FILE),
        x509::to_pem("CERTIFICATE", &identity.ca_cert),
    )
    .map_err(|e| Error::Config(ConfigError::io(config::ADMIN_CA_FILE, e)))?;
    Ok(())
}

/// Open the token and the store, build the services, and run every start-up check: each
/// CA, RA and OCSP key and the admin keys present in the token with sound attributes, and
/// matching their certificates.
pub fn open(loaded: &Loaded) -> Result<Signer> {
    let hsm = Hsm::open(&loaded.config.hsm.to_hsm_config()?)?;
    let store = Arc::new(Store::open(&loaded.store_path())?);
    crate::store::indexes::ensure_crl_entries(&store)?;
    let signer = Signer::new(
        store,
        hsm,
        Settings {
            ttl: loaded.ttl_secs(),
            public_url: loaded.config.public_url.clone(),
            crl: loaded.config.crl,
            crl_dir: loaded.crl_dir(),
            metrics_file: loaded.metrics_file(),
            connector: match &loaded.config.mdm {
                Some(m) => std::sync::Arc::new(crate::ports::mdm::UnixConnector::new(
                    m.socket.clone(),
                    m.uid,
                    std::time::Duration::from_secs(m.timeout_secs),
                )),
                None => std::sync::Arc::new(crate::enroll::mdm::NoConnector),
            },
        },
    );
    signer.check_keys()?;
    Ok(signer)
}
