//! A signer for unit tests: a temporary store, software keys behind the key seam, and one
//! officer (quorum 1) whose key signs proposals. Integration tests use the real binaries
//! and a SoftHSM2 token instead.

use std::sync::Arc;

use hsm::KeyStore;
use proto::admin::Response;
use proto::governance::{Operation, Proposal, ProposalBody, Status};
use proto::model::{CaName, CaSpec, Eku, Lifetime, Subject};
use proto::profile::{
    ApprovalMode, CaCertChain, ChallengeMode, KeyPolicy, KeyUsageName, ProfileSpec, RaLayout,
};

use crate::app::config::{self, HsmSection};
use crate::app::init::{InitOptions, init_with};
use crate::engine::{Settings, Signer};
use crate::keys::soft::SoftKeys;
use crate::store::{Officer, Store};
use crate::{Error, Result};

const OFFICER_KEY: &[u8] = include_bytes!("../testdata/officer.key");
const OFFICER_CERT: &[u8] = include_bytes!("../testdata/officer.pem");

/// The signer under test, its software keys, and the directory that holds its store.
#[derive(Debug)]
pub struct Kit {
    pub dir: tempfile::TempDir,
    pub keys: Arc<SoftKeys>,
    pub signer: Signer,
}

impl Kit {
    pub fn new() -> Result<Kit> {
        Kit::with_connector(std::sync::Arc::new(crate::enroll::mdm::NoConnector))
    }

    /// A kit whose `intune` and `webhook` profiles ask `connector` (a fake, in unit tests).
    pub fn with_connector(connector: Arc<dyn crate::enroll::mdm::Connector>) -> Result<Kit> {
        let dir = tempfile::tempdir().map_err(|e| {
            Error::Config(crate::error::ConfigError::io("a temporary directory", e))
        })?;
        let keys = Arc::new(SoftKeys::default());
        let cert = crate::issuance::x509::parse_certificates(OFFICER_CERT, "officer")?;
        let officers = vec![Officer {
            name: "alice".into(),
            cert: der::Encode::to_der(&cert[0])?,
            assignments: vec![proto::roles::Assignment::administrator_everywhere()],
        }];
        let opts = InitOptions {
            state_dir: dir.path(),
            hsm: HsmSection {
                module: "/nonexistent".into(),
                token_label: "unit-tests".into(),
                pin_file: None,
                pin_credential: None,
            },
            quorum: 1,
            officers: Vec::new(),
            admin_listen: "127.0.0.1:0"
                .parse()
                .map_err(|_| Error::Config(crate::error::ConfigError::Rule("admin address")))?,
            admin_names: vec!["localhost".into()],
            public_url: "http://ca.test".into(),
            socket: None,
        };
        init_with(&opts, officers, keys.clone() as Arc<dyn KeyStore>)?;
        let store = Arc::new(Store::open(&dir.path().join(config::STORE_FILE))?);
        let signer = Signer::new(
            store,
            keys.clone(),
            Settings {
                ttl: 24 * 3600,
                public_url: "http://ca.test".into(),
                crl: Default::default(),
                crl_dir: dir.path().join("crls"),
                metrics_file: dir.path().join("metrics"),
                connector,
            },
        );
        Ok(Kit { dir, keys, signer })
    }

    /// Propose `op` as alice; with quorum 1 it runs at once.
    pub fn run(&self, op: Operation) -> Result<Proposal> {
        let body = ProposalBody::new(op, "alice", 3600)?;
        let approval = cli::officer::sign_approval(OFFICER_KEY, &body.digest()?, "alice")
            .map_err(|e| Error::Invalid(e.to_string()))?;
        match self.signer.governance().propose("alice", body, approval)? {
            Response::Proposal { proposal } if proposal.status == Status::Executed => Ok(proposal),
            Response::Proposal { proposal } => Err(Error::Invalid(format!(
                "proposal {:?}: {:?}",
                proposal.status, proposal.outcome
            ))),
            other => Err(Error::Invalid(format!("unexpected answer {other:?}"))),
        }
    }

    /// An EC P-256 root `root` and an RSA-2048 issuing CA `issuing` under it.
    pub fn two_tier(&self) -> Result<()> {
        self.run(Operation::CreateRoot {
            spec: spec("root", "ec-p256", Some("10y"))?,
        })?;
        self.run(Operation::CreateIssuing {
            parent: CaName::new("root")?,
            spec: spec("issuing", "rsa-2048", Some("5y"))?,
        })?;
        Ok(())
    }
}

/// A CA spec with client-auth.
pub fn spec(name: &str, key: &str, validity: Option<&str>) -> Result<CaSpec> {
    Ok(CaSpec {
        name: CaName::new(name)?,
        subject: Subject::new(&format!("CN={name},O=Castellan tests,C=US"))?,
        key: proto::model::key_spec(key)?,
        hash: proto::model::hash_alg("sha256")?,
        validity: validity.map(Lifetime::new).transpose()?,
        ekus: Eku::list("client-auth")?,
        path_len: None,
        tags: vec![],
    })
}

/// A profile of CA `issuing` with a static challenge `secret`.
pub fn profile(name: &str, layout: RaLayout, secret: &str) -> Result<ProfileSpec> {
    Ok(ProfileSpec {
        name: proto::model::ProfileName::new(name)?,
        ca: CaName::new("issuing")?,
        subject_attrs: vec!["CN".into(), "O".into()],
        san_types: vec![],
        ekus: Eku::list("client-auth")?,
        key_usage: vec![
            KeyUsageName::DigitalSignature,
            KeyUsageName::KeyEncipherment,
        ],
        keys: KeyPolicy {
            rsa_min_bits: 2048,
            rsa_max_bits: 4096,
            ec_curves: vec!["p256".into()],
        },
        validity: Lifetime::new("1y")?,
        renewal_window: Lifetime::new("30d")?,
        approval: ApprovalMode::Auto,
        challenge: ChallengeMode::Static {
            secret_hash: proto::profile::static_hash(secret),
        },
        legacy_algorithms: false,
        ra_layout: layout,
        ra_windows_eku: false,
        ca_chain: CaCertChain::Issuing,
        pkcs: None,
    })
}
