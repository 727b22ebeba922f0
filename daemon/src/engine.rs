//! The signer engine: validates, executes and records CA operations, and
//! answers the admin port's requests. Everything here runs on blocking
//! threads; the server calls [`Signer::handle`] through `spawn_blocking`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use der::{Decode, Encode};
use hsm::{Hsm, HsmSigner, KeyId, KeyUse};
use sha2::Digest;
use x509_cert::Certificate;

use crate::app::config::{self, Config, HsmSection, Loaded};
use crate::issuance::x509::{self, Profile};
use crate::store::rows::CaRecord;
use crate::store::{AdminIdentity, Governance, Officer, Store};
use crate::{Error, Result};
use proto::admin::{CaView, Request, Response};
use proto::governance::{Approval, Operation, Proposal, ProposalBody, Status};
use proto::model::{CaKind, CaName, CaSpec, CaStatus, Eku};

/// The running signer.
#[derive(Debug)]
pub struct Signer {
    hsm: Arc<Hsm>,
    store: Arc<Store>,
    committer: crate::store::commit::Committer,
    /// Serialises approvals and executions: one CA operation at a time.
    ops: Mutex<()>,
    ttl: i64,
    public_url: String,
    /// Token signers by key ID: one public-key lookup per key, not per request.
    signers: Mutex<std::collections::HashMap<String, HsmSigner>>,
    crl_timing: crate::revocation::CrlTiming,
    crl_dirty: crate::revocation::Dirty,
    crls: crate::revocation::CrlCache,
}

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

fn new_key_id() -> Result<KeyId> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Encoding(e.to_string()))?;
    KeyId::new(b.to_vec()).map_err(Error::Encoding)
}

fn key_id(s: &str) -> Result<KeyId> {
    s.parse().map_err(Error::Store)
}

fn rfc3339(unix: i64) -> String {
    der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix.max(0) as u64))
        .map(|d| d.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// Officer name: 1–64 of a-z, A-Z, 0-9, '-', '_', '.'.
pub fn check_officer_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("invalid officer name {n:?}")))
    }
}

impl Signer {
    /// Create a new appliance state: store, officers, quorum, admin TLS identity (keys in the token).
    pub fn init(opts: InitOptions<'_>) -> Result<()> {
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
            let certs =
                x509::parse_certificates(pem, &format!("the certificate of officer {name}"))?;
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
            });
        }
        std::fs::create_dir_all(opts.state_dir)
            .map_err(|e| Error::Config(format!("{}: {e}", opts.state_dir.display())))?;
        let store_path = opts.state_dir.join(config::STORE_FILE);
        if store_path.exists() {
            return Err(Error::Conflict(format!(
                "{} is already initialised",
                opts.state_dir.display()
            )));
        }
        let hsm = Hsm::open(&opts.hsm.to_hsm_config()?)?;

        // Admin TLS: a CA (trusted by the CLI) and a server certificate, both keys in the token.
        let now = SystemTime::now();
        let spec = hsm::KeySpec::EcP256;
        let hash = hsm::HashAlg::Sha256;
        let ca_id = new_key_id()?;
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
        let tls_id = new_key_id()?;
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
        };
        let config = Config {
            state_dir: None,
            admin_listen: opts.admin_listen,
            proposal_ttl_hours: 24,
            crl: Default::default(),
            metrics_file: None,
            public_url: opts.public_url.clone(),
            hsm: opts.hsm.clone(),
            socket: opts.socket.clone(),
        };
        let store = Store::create(&store_path)?;
        let names: Vec<String> = officers.iter().map(|o| o.name.clone()).collect();
        store.write(|tx| {
            tx.put_meta(
                "governance",
                &Governance {
                    quorum: opts.quorum,
                    officers: officers.clone(),
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
        .map_err(|e| Error::Config(e.to_string()))?;
        Ok(())
    }

    /// Open the HSM and store and run every start-up check: each CA key and the
    /// admin keys present in the token with sound attributes, and matching their certificates.
    pub fn open(loaded: &Loaded) -> Result<Signer> {
        let hsm = Hsm::open(&loaded.config.hsm.to_hsm_config()?)?;
        let store = Arc::new(Store::open(&loaded.store_path())?);
        crate::store::indexes::ensure_crl_entries(&store)?;
        let signer = Signer {
            hsm,
            committer: crate::store::commit::Committer::start(store.clone()),
            store,
            ops: Mutex::new(()),
            ttl: loaded.ttl_secs(),
            public_url: loaded.config.public_url.clone(),
            signers: Default::default(),
            crl_timing: loaded.config.crl,
            crl_dirty: Default::default(),
            crls: crate::revocation::CrlCache::new(loaded.crl_dir(), loaded.metrics_file()),
        };
        signer.check_keys()?;
        Ok(signer)
    }

    /// The start-up key check; returns one line per key checked.
    pub fn check_keys(&self) -> Result<Vec<String>> {
        let mut report = Vec::new();
        let admin = self.store.admin_identity()?;
        for (what, id, cert) in [
            ("admin CA", &admin.ca_key_id, &admin.ca_cert),
            ("admin TLS", &admin.tls_key_id, &admin.tls_cert),
        ] {
            self.check_key(what, id, hsm::KeySpec::EcP256, Some(cert))?;
            report.push(format!("{what} key {id}: ok"));
        }
        self.store.verify_audit()?;
        for ca in self.store.cas()? {
            let spec = ca.spec.key;
            self.check_key(
                &format!("CA {}", ca.spec.name),
                &ca.key_id,
                spec,
                ca.cert.as_ref(),
            )?;
            report.push(format!("CA {} key {}: ok", ca.spec.name, ca.key_id));
            if let Some(ra) = &ca.ra {
                let what = format!("RA of CA {}", ca.spec.name);
                self.check_key(&what, &ra.key_id, hsm::KeySpec::Rsa2048, Some(&ra.cert))?;
                report.push(format!("{what} key {}: ok", ra.key_id));
            }
            for set in &ca.ra_sets {
                let keys = [
                    ("RA signing", Some(&set.sign)),
                    ("RA encryption", set.encrypt.as_ref()),
                ];
                for (role, ra) in keys {
                    let Some(ra) = ra else { continue };
                    let what = format!(
                        "{role} key of CA {} (layout {}{})",
                        ca.spec.name,
                        set.layout.as_str(),
                        if set.windows_eku { ", Windows EKU" } else { "" }
                    );
                    self.check_key(&what, &ra.key_id, hsm::KeySpec::Rsa2048, Some(&ra.cert))?;
                    report.push(format!("{what} {}: ok", ra.key_id));
                }
            }
            if let Some(o) = &ca.ocsp {
                let what = format!("OCSP responder of CA {}", ca.spec.name);
                self.check_key(&what, &o.key_id, hsm::KeySpec::EcP256, Some(&o.cert))?;
                report.push(format!("{what} key {}: ok", o.key_id));
            }
        }
        Ok(report)
    }

    fn check_key(
        &self,
        what: &str,
        id: &str,
        spec: hsm::KeySpec,
        cert: Option<&Vec<u8>>,
    ) -> Result<()> {
        let kid = key_id(id)?;
        let fail = |why: String| Error::Config(format!("{what}: {why}"));
        self.hsm.check_key(&kid).map_err(|e| fail(e.to_string()))?;
        if let Some(cert) = cert {
            let cert = Certificate::from_der(cert)?;
            let spki = self
                .hsm
                .public_key(spec, &kid)
                .map_err(|e| fail(e.to_string()))?;
            if cert.tbs_certificate().subject_public_key_info() != &spki {
                return Err(fail(format!(
                    "the key {id} in the token does not match the certificate"
                )));
            }
        }
        Ok(())
    }

    pub fn crl_timing(&self) -> crate::revocation::CrlTiming {
        self.crl_timing
    }
    pub fn crl_dirty(&self) -> &crate::revocation::Dirty {
        &self.crl_dirty
    }
    pub(crate) fn crl_cache(&self) -> &crate::revocation::CrlCache {
        &self.crls
    }
    pub(crate) fn committer(&self) -> &crate::store::commit::Committer {
        &self.committer
    }
    /// The token signer of `key_id`, made once (it reads the public key from the token)
    /// and then shared. Key IDs are random and never reused, so an entry cannot go stale.
    pub(crate) fn key_signer(
        &self,
        key_id: &str,
        spec: hsm::KeySpec,
        hash: hsm::HashAlg,
    ) -> Result<HsmSigner> {
        let mut cache = self.signers.lock().unwrap_or_else(|p| p.into_inner());
        // One key may sign with two hashes (a CA's own, and SHA-256 for CertReps when the
        // CA is its own RA).
        let cache_key = format!("{key_id}/{hash:?}");
        if let Some(s) = cache.get(&cache_key) {
            return Ok(s.clone());
        }
        let s = HsmSigner::new(self.hsm.clone(), self::key_id(key_id)?, spec, hash)?;
        cache.insert(cache_key, s.clone());
        Ok(s)
    }
    pub fn public_url(&self) -> String {
        self.public_url.clone()
    }
    pub fn hsm(&self) -> &Arc<Hsm> {
        &self.hsm
    }
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Which officer holds this client certificate (DER), if any.
    pub fn officer_for(&self, cert: &[u8]) -> Result<Option<String>> {
        Ok(self
            .store
            .governance()?
            .officers
            .into_iter()
            .find(|o| o.cert == cert)
            .map(|o| o.name))
    }

    /// Answer one admin request from an authenticated officer.
    pub fn handle(&self, officer: &str, req: Request) -> Result<Response> {
        match req {
            Request::Whoami => {
                let g = self.store.governance()?;
                Ok(Response::Whoami {
                    officer: officer.to_owned(),
                    quorum: g.quorum,
                    officers: g.officers.into_iter().map(|o| o.name).collect(),
                })
            }
            Request::CaList => {
                let cas = self
                    .store
                    .cas()?
                    .iter()
                    .map(|c| self.view(c, false))
                    .collect::<Result<_>>()?;
                Ok(Response::Cas { cas })
            }
            Request::CaShow { name } => Ok(Response::Ca {
                ca: self.view(&self.ca(&name)?, true)?,
            }),
            Request::CaCert { name } => {
                let ca = self.ca(&name)?;
                let data = ca.cert.ok_or_else(|| {
                    Error::Conflict(format!(
                        "CA {name} has no certificate yet (status signing-required: import the externally signed certificate)"
                    ))
                })?;
                Ok(Response::Bytes { data })
            }
            Request::CaChain { name } => {
                let chain = self.chain(&self.ca(&name)?)?;
                Ok(Response::Bytes {
                    data: x509::p7b(&chain)?,
                })
            }
            Request::CaCsr { name } => {
                let ca = self.ca(&name)?;
                let data = ca.csr.ok_or_else(|| {
                    Error::Conflict(format!(
                        "CA {name} is not a bring-your-own CA: it has no CSR"
                    ))
                })?;
                Ok(Response::Bytes { data })
            }
            Request::Propose { body, approval } => self.propose(officer, body, approval),
            Request::ProposalList => {
                let now = crate::now();
                let proposals = self
                    .store
                    .proposals()?
                    .into_iter()
                    .map(|mut p| {
                        p.status = p.status_at(now);
                        p
                    })
                    .collect();
                Ok(Response::Proposals { proposals })
            }
            Request::ProposalShow { id } => {
                let mut proposal = self.proposal(&id)?;
                proposal.status = proposal.status_at(crate::now());
                Ok(Response::Proposal { proposal })
            }
            Request::Approve { id, approval } => self.approve(officer, &id, approval),
            Request::Reject { id, reason } => self.reject(officer, &id, reason),
            Request::ProfileList => Ok(Response::Profiles {
                profiles: self.store.values(crate::store::Table::Profiles)?,
            }),
            Request::ProfileShow { name } => Ok(Response::Profile {
                profile: self.profile(&name)?,
            }),
            Request::ChallengeNew {
                profile,
                subject,
                sans,
                ttl_secs,
            } => self.new_challenge(officer, &profile, subject, sans, ttl_secs),
            Request::RequestList => Ok(Response::Requests {
                requests: self.store.values(crate::store::Table::Pending)?,
            }),
            Request::RequestApprove { id } => {
                let rec = self.approve_request(&id, officer)?;
                Ok(Response::Issued {
                    ca: rec.ca,
                    serial: rec.serial,
                })
            }
            Request::CertRevoke { ca, serial, reason } => {
                let r: crl::Reason = reason.parse().map_err(Error::Invalid)?;
                if r == crl::Reason::CaCompromise {
                    return Err(Error::Invalid(
                        "cACompromise is for CAs: use `castellan ca revoke`".into(),
                    ));
                }
                let rec = self.revoke_cert(officer, &ca, &serial, r)?;
                Ok(Response::Done {
                    message: if rec.revoked_at.is_some() {
                        format!(
                            "revoked {} of CA {ca} ({r}); the CRL is being re-published",
                            rec.serial
                        )
                    } else {
                        format!(
                            "hold lifted on {} of CA {ca}; the CRL is being re-published",
                            rec.serial
                        )
                    },
                })
            }
            Request::CaCrl { name } => {
                self.ca(&name)?;
                let c = self.current_crl(&name)?.ok_or_else(|| {
                    Error::NotFound(format!(
                        "CA {name} has no CRL yet (it is published within seconds)"
                    ))
                })?;
                Ok(Response::Bytes {
                    data: c.der.clone(),
                })
            }
            Request::RequestReject { id, reason } => {
                self.reject_request(&id, officer, reason.as_deref().unwrap_or(""))?;
                Ok(Response::Done {
                    message: format!("request {id} rejected"),
                })
            }
            Request::CertList {
                ca,
                status,
                search,
                limit,
                after,
            } => {
                let q = crate::report::ListQuery {
                    ca,
                    status,
                    search,
                    limit,
                    after,
                };
                let page = crate::report::list(&self.store, &q, crate::now())?;
                Ok(Response::Certs {
                    certs: page.certs,
                    next: page.next,
                })
            }
            Request::CertShow { ca, serial } => Ok(Response::Cert {
                cert: Box::new(crate::report::show(
                    &self.store,
                    ca.as_deref(),
                    &serial,
                    crate::now(),
                )?),
            }),
            Request::CertStats => Ok(Response::CertStats {
                cas: crate::report::stats(&self.store, crate::now())?,
            }),
        }
    }

    fn new_challenge(
        &self,
        officer: &str,
        profile: &str,
        subject: Option<String>,
        sans: Vec<proto::model::San>,
        ttl_secs: i64,
    ) -> Result<Response> {
        use proto::profile::ChallengeMode;
        let spec = self.profile(profile)?;
        if spec.challenge != ChallengeMode::OneTime {
            return Err(Error::Invalid(format!(
                "profile {profile} does not use one-time challenges"
            )));
        }
        if !(60..=30 * 86400).contains(&ttl_secs) {
            return Err(Error::Invalid(
                "a challenge lives from 1 minute to 30 days".into(),
            ));
        }
        if let Some(s) = &subject {
            proto::model::Subject::new(s)?;
        }
        let value = crate::enroll::challenge::new_one_time()?;
        let expires_at = crate::now() + ttl_secs;
        let rec = crate::store::rows::OneTime {
            profile: profile.to_owned(),
            subject,
            sans,
            expires_at,
            used_by: None,
            created_by: officer.to_owned(),
        };
        let key = crate::enroll::challenge::one_time_key(&value);
        self.store.write(|tx| {
            tx.put(crate::store::Table::Challenges, &key, &rec)?;
            tx.audit(
                officer,
                "challenge-new",
                format!("profile {profile}, expires {expires_at}"),
            )
        })?;
        Ok(Response::Challenge {
            challenge: value,
            expires_at,
        })
    }

    /// A SCEP profile by name, or NotFound.
    pub fn profile(&self, name: &str) -> Result<proto::profile::ProfileSpec> {
        self.store
            .get(crate::store::Table::Profiles, name)?
            .ok_or_else(|| Error::NotFound(format!("no profile named {name:?}")))
    }

    fn ca(&self, name: &str) -> Result<CaRecord> {
        self.store
            .ca(name)?
            .ok_or_else(|| Error::NotFound(format!("no CA named {name:?}")))
    }

    fn proposal(&self, id: &str) -> Result<Proposal> {
        self.store
            .proposal(id)?
            .ok_or_else(|| Error::NotFound(format!("no proposal {id}")))
    }

    /// The certificates from this CA up to its root, this CA first.
    pub fn chain(&self, ca: &CaRecord) -> Result<Vec<Certificate>> {
        let mut out = Vec::new();
        let mut current = ca.clone();
        loop {
            let der = current.cert.as_ref().ok_or_else(|| {
                Error::Conflict(format!("CA {} has no certificate yet", current.spec.name))
            })?;
            out.push(Certificate::from_der(der)?);
            match (&current.kind, &current.parent) {
                (CaKind::Issuing, Some(parent)) => current = self.ca(parent.as_str())?,
                (CaKind::External, _) => {
                    for c in &current.external_chain {
                        out.push(Certificate::from_der(c)?);
                    }
                    return Ok(out);
                }
                _ => return Ok(out),
            }
            if out.len() > 32 {
                return Err(Error::Store("CA hierarchy loops".into()));
            }
        }
    }

    fn view(&self, ca: &CaRecord, with_token: bool) -> Result<CaView> {
        let cert = ca
            .cert
            .as_ref()
            .map(|d| Certificate::from_der(d))
            .transpose()?;
        let key_attributes = if with_token {
            Some(self.hsm.attributes(&key_id(&ca.key_id)?)?.into())
        } else {
            None
        };
        Ok(CaView {
            name: ca.spec.name.to_string(),
            kind: match ca.kind {
                CaKind::Root => "root",
                CaKind::Issuing => "issuing",
                CaKind::External => "byoca",
            }
            .into(),
            parent: ca.parent.as_ref().map(ToString::to_string),
            status: ca.status.to_string(),
            subject: ca.spec.subject.as_str().to_owned(),
            key: ca.spec.key.to_string(),
            hash: ca.spec.hash.to_string(),
            ekus: ca.spec.ekus.iter().map(ToString::to_string).collect(),
            path_len: cert
                .as_ref()
                .and_then(|c| x509::basic_constraints(c).1)
                .or(ca.spec.path_len),
            serial: cert
                .as_ref()
                .map(|c| hex::encode(c.tbs_certificate().serial_number().as_bytes())),
            not_before: cert.as_ref().map(|c| rfc3339(x509::cert_window(c).0)),
            not_after: cert.as_ref().map(|c| rfc3339(x509::cert_window(c).1)),
            issuer: cert
                .as_ref()
                .map(|c| c.tbs_certificate().issuer().to_string()),
            sha256_fingerprint: ca
                .cert
                .as_ref()
                .map(|d| hex::encode(sha2::Sha256::digest(d))),
            key_id: ca.key_id.clone(),
            key_attributes,
        })
    }

    fn officer_cert(&self, officer: &str) -> Result<Vec<u8>> {
        self.store
            .governance()?
            .officers
            .into_iter()
            .find(|o| o.name == officer)
            .map(|o| o.cert)
            .ok_or_else(|| Error::Forbidden(format!("{officer} is not a registered officer")))
    }

    fn propose(
        &self,
        officer: &str,
        body: ProposalBody,
        mut approval: Approval,
    ) -> Result<Response> {
        let _ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let now = crate::now();
        crate::governance::check_new_body(&body, officer, now)?;
        if body.expires_at - body.created_at > self.ttl.max(3600) {
            return Err(Error::Invalid(format!(
                "this signer keeps proposals open for at most {} hours",
                self.ttl / 3600
            )));
        }
        if self.store.proposal(&body.id)?.is_some() {
            return Err(Error::Conflict(format!(
                "proposal {} already exists",
                body.id
            )));
        }
        // The proposer's signature first: an unsigned request learns nothing about the state.
        let digest = body.digest()?;
        approval.officer = officer.to_owned();
        crate::governance::verify_approval(&approval, &self.officer_cert(officer)?, &digest)?;
        self.validate(&body.operation)?;
        let proposal = Proposal {
            digest: hex::encode(digest),
            quorum: self.store.governance()?.quorum,
            approvals: vec![approval],
            status: Status::Pending,
            outcome: None,
            body,
        };
        let summary = proposal.body.operation.summary();
        self.store.write(|tx| {
            tx.put_proposal(&proposal)?;
            tx.audit(
                officer,
                "propose",
                format!("{} {}: {summary}", proposal.body.id, proposal.digest),
            )
        })?;
        tracing::info!(id = %proposal.body.id, %officer, %summary, "proposal created");
        let proposal = self.run_if_quorum(proposal)?;
        Ok(Response::Proposal { proposal })
    }

    fn approve(&self, officer: &str, id: &str, mut approval: Approval) -> Result<Response> {
        let _ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let mut p = self.proposal(id)?;
        match p.status_at(crate::now()) {
            Status::Pending => {}
            Status::Expired => {
                return Err(Error::Conflict(format!(
                    "proposal {id} expired at {}: it can no longer be approved (propose again)",
                    rfc3339(p.body.expires_at)
                )));
            }
            s => {
                return Err(Error::Conflict(format!(
                    "proposal {id} is already {s}: approvals are no longer accepted"
                )));
            }
        }
        let digest: [u8; 32] = p.body.digest()?;
        approval.officer = officer.to_owned();
        crate::governance::verify_approval(&approval, &self.officer_cert(officer)?, &digest)?;
        if p.approvals.iter().any(|a| a.officer == officer) {
            return Err(Error::Conflict(format!(
                "{officer} has already approved proposal {id}; each officer counts once (approvals {}/{})",
                p.approvals.len(),
                p.quorum
            )));
        }
        p.approvals.push(approval);
        let n = p.approvals.len();
        if (n as u32) < p.quorum {
            self.store.write(|tx| {
                tx.put_proposal(&p)?;
                tx.audit(officer, "approve", format!("{id} ({n}/{})", p.quorum))
            })?;
            return Ok(Response::Proposal { proposal: p });
        }
        let proposal = self.run_if_quorum(p)?;
        Ok(Response::Proposal { proposal })
    }

    fn reject(&self, officer: &str, id: &str, reason: Option<String>) -> Result<Response> {
        let _ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let mut p = self.proposal(id)?;
        let status = p.status_at(crate::now());
        if status != Status::Pending {
            return Err(Error::Conflict(format!(
                "proposal {id} is already {status}"
            )));
        }
        p.status = Status::Rejected;
        let why = reason.unwrap_or_default();
        p.outcome = Some(format!(
            "rejected by {officer}{}",
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        ));
        self.store.write(|tx| {
            tx.put_proposal(&p)?;
            tx.audit(officer, "reject", format!("{id} {why}"))
        })?;
        Ok(Response::Proposal { proposal: p })
    }

    /// With the ops lock held: if the proposal has its quorum, validate again and run it,
    /// then record the result, the approvals and the audit entry in one transaction.
    fn run_if_quorum(&self, mut p: Proposal) -> Result<Proposal> {
        if (p.approvals.len() as u32) < p.quorum {
            return Ok(p);
        }
        let id = p.body.id.clone();
        let approvers: Vec<String> = p.approvals.iter().map(|a| a.officer.clone()).collect();
        let op = &p.body.operation;
        let result = self.validate(op).and_then(|()| match op {
            Operation::CreateProfile { spec } => self
                .create_profile(spec)
                .map(|(ca, outcome)| (ca, Some(spec.clone()), outcome)),
            _ => self
                .execute(op, &id)
                .map(|(ca, outcome)| (ca, None, outcome)),
        });
        match result {
            Ok((record, profile, outcome)) => {
                p.status = Status::Executed;
                p.outcome = Some(outcome.clone());
                self.store.write(|tx| {
                    if let Some(r) = &record {
                        tx.put_ca(r)?;
                    }
                    if let Some(spec) = &profile {
                        tx.put(crate::store::Table::Profiles, spec.name.as_str(), spec)?;
                    }
                    if let (Operation::RevokeCa { reason, .. }, Some(r)) = (op, &record)
                        && let Some(parent) = &r.parent
                    {
                        let reason = reason.parse::<crl::Reason>().map_err(Error::Invalid)?;
                        self.revoke_ca_cert(tx, r, parent.as_str(), reason)?;
                    }
                    tx.put_proposal(&p)?;
                    tx.audit(&approvers.join("+"), "execute", format!("{id}: {outcome}"))
                })?;
                tracing::info!(%id, %outcome, "proposal executed");
                if let Some(r) = &record {
                    // A new or changed CA gets its CRL now; a revoked CA changes its parent's.
                    self.crl_dirty.mark(r.spec.name.as_str());
                    if let Some(parent) = &r.parent {
                        self.crl_dirty.mark(parent.as_str());
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%id, error = %e, "proposal failed");
                p.status = Status::Failed;
                p.outcome = Some(e.to_string());
                self.store.write(|tx| {
                    tx.put_proposal(&p)?;
                    tx.audit(&approvers.join("+"), "fail", format!("{id}: {e}"))
                })?;
            }
        }
        Ok(p)
    }

    /// Check an operation against the current state; changes nothing.
    pub fn validate(&self, op: &Operation) -> Result<()> {
        let now = crate::now();
        let fresh_name = |name: &CaName| -> Result<()> {
            if self.store.ca(name.as_str())?.is_some() {
                return Err(Error::Conflict(format!("a CA named {name} already exists")));
            }
            Ok(())
        };
        match op {
            Operation::CreateRoot { spec } => {
                spec.check()?;
                fresh_name(&spec.name)?;
                if spec.validity.is_none() {
                    return Err(Error::Invalid(
                        "a root CA needs a validity (--validity 20y)".into(),
                    ));
                }
            }
            Operation::CreateIssuing { parent, spec } => {
                spec.check()?;
                fresh_name(&spec.name)?;
                let parent = self.ca(parent.as_str())?;
                self.check_child(&parent, spec, now)?;
            }
            Operation::CreateByoca { spec } => {
                spec.check()?;
                fresh_name(&spec.name)?;
            }
            Operation::ImportCa { name, cert, chain } => {
                let ca = self.ca(name.as_str())?;
                if ca.status != CaStatus::SigningRequired {
                    return Err(Error::Conflict(format!(
                        "CA {name} is {}: only a bring-your-own CA in status signing-required accepts an import",
                        ca.status
                    )));
                }
                self.check_import(&ca, cert, chain, now)?;
            }
            Operation::DisableCa { name } => {
                let ca = self.ca(name.as_str())?;
                if ca.status != CaStatus::Active {
                    return Err(Error::Conflict(format!(
                        "CA {name} is {}, not active",
                        ca.status
                    )));
                }
            }
            Operation::EnableCa { name } => {
                let ca = self.ca(name.as_str())?;
                if ca.status != CaStatus::Disabled {
                    return Err(Error::Conflict(format!(
                        "CA {name} is {}, not disabled",
                        ca.status
                    )));
                }
            }
            Operation::CreateProfile { spec } => self.check_profile(spec)?,
            Operation::RevokeCa { name, reason } => {
                reason.parse::<crl::Reason>().map_err(Error::Invalid)?;
                let ca = self.ca(name.as_str())?;
                if ca.kind != CaKind::Issuing || ca.parent.is_none() {
                    return Err(Error::Invalid(format!(
                        "CA {name} is not an issuing CA under a Castellan CA: only those can be put on their parent's CRL (a BYOCA is revoked by its external CA)"
                    )));
                }
                if !matches!(ca.status, CaStatus::Active | CaStatus::Disabled) {
                    return Err(Error::Conflict(format!("CA {name} is {}", ca.status)));
                }
            }
        }
        Ok(())
    }

    /// A profile must be new, on an active issuing CA, with EKUs inside the CA's.
    fn check_profile(&self, spec: &proto::profile::ProfileSpec) -> Result<()> {
        spec.check()?;
        if self
            .store
            .get::<proto::profile::ProfileSpec>(crate::store::Table::Profiles, spec.name.as_str())?
            .is_some()
        {
            return Err(Error::Conflict(format!(
                "a profile named {} already exists",
                spec.name
            )));
        }
        let ca = self.ca(spec.ca.as_str())?;
        if ca.kind == CaKind::Root {
            return Err(Error::Invalid(format!(
                "CA {} is a root: SCEP profiles issue from an issuing CA",
                spec.ca
            )));
        }
        if ca.status != CaStatus::Active {
            return Err(Error::Conflict(format!(
                "CA {} is {}, not active",
                spec.ca, ca.status
            )));
        }
        let extra: Vec<String> = spec
            .ekus
            .iter()
            .filter(|e| !ca.spec.ekus.contains(e))
            .map(ToString::to_string)
            .collect();
        if !extra.is_empty() {
            return Err(Error::Invalid(format!(
                "EKUs {} are not allowed by CA {} (it allows {})",
                extra.join(", "),
                spec.ca,
                ca.spec
                    .ekus
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }

    /// A child CA must fit inside its parent: parent active, path length, EKUs, validity.
    fn check_child(&self, parent: &CaRecord, spec: &CaSpec, now: i64) -> Result<()> {
        let pname = &parent.spec.name;
        if parent.status != CaStatus::Active {
            return Err(Error::Conflict(format!(
                "parent CA {pname} is {}: it cannot sign",
                parent.status
            )));
        }
        let pcert = Certificate::from_der(parent.cert.as_deref().unwrap_or_default())?;
        if let (_, Some(max)) = x509::basic_constraints(&pcert) {
            if max == 0 {
                return Err(Error::Invalid(format!(
                    "parent CA {pname} has pathLen 0: it may only issue end-entity certificates (create it with a larger --path-len)"
                )));
            }
            if spec.path_len.is_none_or(|p| p >= max) {
                return Err(Error::Invalid(format!(
                    "parent CA {pname} has pathLen {max}: give --path-len below {max}"
                )));
            }
        }
        let extra: Vec<String> = spec
            .ekus
            .iter()
            .filter(|e| !parent.spec.ekus.contains(e))
            .map(ToString::to_string)
            .collect();
        if !extra.is_empty() {
            return Err(Error::Invalid(format!(
                "EKUs {} are not allowed by parent CA {pname} (it allows {})",
                extra.join(", "),
                parent
                    .spec
                    .ekus
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let secs = spec
            .validity
            .ok_or_else(|| {
                Error::Invalid("an issuing CA needs a validity (--validity 10y)".into())
            })?
            .secs();
        let (_, parent_end) = x509::cert_window(&pcert);
        if now + secs as i64 > parent_end {
            return Err(Error::Invalid(format!(
                "an issuing CA cannot outlive its parent: {pname} expires at {}, give a shorter --validity",
                rfc3339(parent_end)
            )));
        }
        Ok(())
    }

    fn check_import(
        &self,
        ca: &CaRecord,
        cert: &[u8],
        chain: &[Vec<u8>],
        now: i64,
    ) -> Result<Vec<Certificate>> {
        let c = Certificate::from_der(cert)
            .map_err(|e| Error::Invalid(format!("the certificate is not valid DER: {e}")))?;
        let pool = chain
            .iter()
            .map(|d| {
                Certificate::from_der(d).map_err(|e| {
                    Error::Invalid(format!("a chain certificate is not valid DER: {e}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let spec = ca.spec.key;
        let ours = self.hsm.public_key(spec, &key_id(&ca.key_id)?)?;
        x509::check_external_ca(&c, &pool, &ours, now)
    }

    /// Run a validated operation. Returns the CA record to store (if any) and a one-line outcome.
    fn execute(&self, op: &Operation, proposal: &str) -> Result<(Option<CaRecord>, String)> {
        let now_sys = SystemTime::now();
        let now = crate::now();
        match op {
            Operation::CreateRoot { spec } => {
                let (key, hash) = spec.check()?;
                let id = new_key_id()?;
                let spki = self.hsm.generate(
                    key,
                    &id,
                    &format!("castellan-ca:{}", spec.name),
                    KeyUse::Sign,
                )?;
                let signer = HsmSigner::new(self.hsm.clone(), id.clone(), key, hash)?;
                let secs = spec.validity.map_or(0, |v| v.secs());
                let cert = x509::issue(
                    Profile {
                        subject: spec.subject.name()?,
                        issuer: None,
                        issuer_key_id: None,
                        extensions: x509::ca_extensions(spec.path_len, &oids(&spec.ekus))?,
                    },
                    x509::random_serial()?,
                    x509::validity(now_sys, secs)?,
                    spki,
                    &signer,
                )?;
                x509::verify_issued_by(&cert, &cert)?;
                let record = self.record(
                    spec,
                    CaKind::Root,
                    None,
                    CaStatus::Active,
                    &id,
                    Some(cert.to_der()?),
                    None,
                    proposal,
                    now,
                );
                Ok((Some(record), format!("root CA {} created", spec.name)))
            }
            Operation::CreateIssuing { parent, spec } => {
                let (key, hash) = spec.check()?;
                let p = self.ca(parent.as_str())?;
                let pcert = Certificate::from_der(p.cert.as_deref().unwrap_or_default())?;
                let pspec = p.spec.key;
                let phash = p.spec.hash;
                let parent_signer =
                    HsmSigner::new(self.hsm.clone(), key_id(&p.key_id)?, pspec, phash)?;
                let id = new_key_id()?;
                let spki = self.hsm.generate(
                    key,
                    &id,
                    &format!("castellan-ca:{}", spec.name),
                    KeyUse::Sign,
                )?;
                let _ = hash;
                let secs = spec.validity.map_or(0, |v| v.secs());
                let cert = x509::issue(
                    Profile {
                        subject: spec.subject.name()?,
                        issuer: Some(pcert.tbs_certificate().subject().clone()),
                        issuer_key_id: Some(x509::ca_key_id(&pcert)),
                        extensions: x509::ca_extensions(spec.path_len, &oids(&spec.ekus))?,
                    },
                    x509::random_serial()?,
                    x509::validity(now_sys, secs)?,
                    spki,
                    &parent_signer,
                )?;
                // Lint before it is recorded: the signature verifies and the validity nests.
                x509::verify_issued_by(&cert, &pcert)?;
                if x509::cert_window(&cert).1 > x509::cert_window(&pcert).1 {
                    return Err(Error::Invalid(
                        "an issuing CA cannot outlive its parent".into(),
                    ));
                }
                let record = self.record(
                    spec,
                    CaKind::Issuing,
                    Some(parent.clone()),
                    CaStatus::Active,
                    &id,
                    Some(cert.to_der()?),
                    None,
                    proposal,
                    now,
                );
                Ok((
                    Some(record),
                    format!("issuing CA {} created under {parent}", spec.name),
                ))
            }
            Operation::CreateByoca { spec } => {
                let (key, hash) = spec.check()?;
                let id = new_key_id()?;
                self.hsm.generate(
                    key,
                    &id,
                    &format!("castellan-ca:{}", spec.name),
                    KeyUse::Sign,
                )?;
                let signer = HsmSigner::new(self.hsm.clone(), id.clone(), key, hash)?;
                let csr = x509::ca_csr(spec.subject.name()?, &signer)?;
                let record = self.record(
                    spec,
                    CaKind::External,
                    None,
                    CaStatus::SigningRequired,
                    &id,
                    None,
                    Some(csr),
                    proposal,
                    now,
                );
                Ok((
                    Some(record),
                    format!(
                        "bring-your-own CA {} created: export its CSR with `castellan ca csr {}`",
                        spec.name, spec.name
                    ),
                ))
            }
            Operation::ImportCa { name, cert, chain } => {
                let mut ca = self.ca(name.as_str())?;
                let path = self.check_import(&ca, cert, chain, now)?;
                ca.cert = Some(cert.clone());
                ca.external_chain = path
                    .iter()
                    .map(|c| c.to_der())
                    .collect::<der::Result<_>>()?;
                ca.status = CaStatus::Active;
                Ok((
                    Some(ca),
                    format!(
                        "CA {name} imported and active ({} certificates above it)",
                        path.len()
                    ),
                ))
            }
            Operation::DisableCa { name } => {
                let mut ca = self.ca(name.as_str())?;
                ca.status = CaStatus::Disabled;
                Ok((Some(ca), format!("CA {name} disabled")))
            }
            Operation::EnableCa { name } => {
                let mut ca = self.ca(name.as_str())?;
                ca.status = CaStatus::Active;
                Ok((Some(ca), format!("CA {name} enabled")))
            }
            Operation::CreateProfile { .. } => Err(Error::Store("unreachable".into())),
            Operation::RevokeCa { name, reason } => {
                let mut ca = self.ca(name.as_str())?;
                ca.status = CaStatus::Revoked;
                Ok((
                    Some(ca),
                    format!("CA {name} revoked ({reason}): on its parent's CRL, signs nothing"),
                ))
            }
        }
    }

    /// Create a profile, and the RA its layout needs first if the CA has none yet (RA sets
    /// are shared by the profiles of a CA that chose the same layout and EKU). The caller
    /// writes the profile, the CA record and the proposal in one transaction.
    fn create_profile(
        &self,
        spec: &proto::profile::ProfileSpec,
    ) -> Result<(Option<CaRecord>, String)> {
        use proto::profile::RaLayout;
        let mut ca = self.ca(spec.ca.as_str())?;
        let (layout, eku) = (spec.ra_layout, spec.ra_windows_eku);
        let made = match layout {
            RaLayout::Combined if !eku => {
                if ca.ra.is_none() {
                    ca.ra = Some(self.make_ra(&ca, RaRole::Combined, false)?);
                    " (RA key and certificate made)"
                } else {
                    ""
                }
            }
            RaLayout::Ca => {
                if !ca.spec.key.is_rsa() {
                    return Err(Error::Invalid(format!(
                        "--ra-layout ca needs an RSA issuing CA: {} has an {} key, which cannot \
                         decrypt (use --ra-layout split)",
                        ca.spec.name, ca.spec.key
                    )));
                }
                let id: KeyId = ca.key_id.parse().map_err(Error::Invalid)?;
                self.hsm.allow_decrypt(&id)?;
                tracing::warn!(ca = %ca.spec.name, profile = %spec.name, "the CA key may now decrypt SCEP envelopes (RA layout ca)");
                " (no RA: the CA key decrypts)"
            }
            _ if ca
                .ra_sets
                .iter()
                .any(|r| r.layout == layout && r.windows_eku == eku) =>
            {
                ""
            }
            RaLayout::Split => {
                let set = crate::store::rows::RaSet {
                    layout,
                    windows_eku: eku,
                    sign: self.make_ra(&ca, RaRole::Sign, eku)?,
                    encrypt: Some(self.make_ra(&ca, RaRole::Encrypt, eku)?),
                };
                ca.ra_sets.push(set);
                " (signing and encryption RA keys and certificates made)"
            }
            RaLayout::Combined => {
                let set = crate::store::rows::RaSet {
                    layout,
                    windows_eku: eku,
                    sign: self.make_ra(&ca, RaRole::Combined, eku)?,
                    encrypt: None,
                };
                ca.ra_sets.push(set);
                " (RA key and certificate made)"
            }
        };
        if spec.legacy_algorithms {
            tracing::warn!(profile = %spec.name, "profile allows legacy algorithms (DES/3DES envelopes, SHA-1 signatures)");
        }
        Ok((
            Some(ca),
            format!(
                "SCEP profile {} created on CA {} (RA layout {}){made}",
                spec.name,
                spec.ca,
                layout.as_str()
            ),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        spec: &CaSpec,
        kind: CaKind,
        parent: Option<CaName>,
        status: CaStatus,
        id: &KeyId,
        cert: Option<Vec<u8>>,
        csr: Option<Vec<u8>>,
        proposal: &str,
        now: i64,
    ) -> CaRecord {
        CaRecord {
            spec: spec.clone(),
            kind,
            parent,
            status,
            key_id: id.to_string(),
            cert,
            external_chain: Vec::new(),
            csr,
            created_at: now,
            proposal: proposal.to_owned(),
            ra: None,
            ra_sets: Vec::new(),
            ocsp: None,
        }
    }

    /// The signer for a CA's own key.
    pub fn ca_signer(&self, ca: &CaRecord) -> Result<HsmSigner> {
        let spec = ca.spec.key;
        let hash = ca.spec.hash;
        self.key_signer(&ca.key_id, spec, hash)
    }

    /// Make one SCEP RA certificate of a CA (RFC 8894 §2.1): an RSA-2048 key in the token
    /// with the usage its role needs, and a certificate from the CA with the matching key
    /// usage (and the Windows Certificate Request Agent EKU if `windows_eku`).
    fn make_ra(
        &self,
        ca: &CaRecord,
        role: RaRole,
        windows_eku: bool,
    ) -> Result<crate::store::rows::RaRecord> {
        use x509_cert::ext::pkix::KeyUsages;
        let ca_cert = Certificate::from_der(ca.cert.as_deref().unwrap_or_default())?;
        let id = new_key_id()?;
        let (usage, key_usage, label, cn) = match role {
            RaRole::Combined => (
                KeyUse::SignDecrypt,
                KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
                "castellan-ra",
                "SCEP RA",
            ),
            RaRole::Sign => (
                KeyUse::Sign,
                KeyUsages::DigitalSignature.into(),
                "castellan-ra-sign",
                "SCEP RA Signing",
            ),
            RaRole::Encrypt => (
                KeyUse::Decrypt,
                KeyUsages::KeyEncipherment.into(),
                "castellan-ra-encrypt",
                "SCEP RA Encryption",
            ),
        };
        let spki = self.hsm.generate(
            hsm::KeySpec::Rsa2048,
            &id,
            &format!("{label}:{}", ca.spec.name),
            usage,
        )?;
        let mut extensions = x509::end_entity(key_usage)?;
        if windows_eku {
            extensions.push(x509::ext(
                const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE,
                false,
                &x509_cert::ext::pkix::ExtendedKeyUsage(vec![WINDOWS_CERTIFICATE_REQUEST_AGENT]),
            )?);
        }
        let (_, ca_end) = x509::cert_window(&ca_cert);
        let secs = (ca_end - crate::now()).clamp(3600, 2 * 365 * 86400) as u64;
        let cert = x509::issue(
            Profile {
                subject: format!("CN={} {cn}", ca.spec.name).parse()?,
                issuer: Some(ca_cert.tbs_certificate().subject().clone()),
                issuer_key_id: Some(x509::ca_key_id(&ca_cert)),
                extensions,
            },
            x509::random_serial()?,
            x509::validity(SystemTime::now(), secs)?,
            spki,
            &self.ca_signer(ca)?,
        )?;
        x509::verify_issued_by(&cert, &ca_cert)?;
        Ok(crate::store::rows::RaRecord {
            key_id: id.to_string(),
            cert: cert.to_der()?,
        })
    }
}

/// What an RA certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RaRole {
    /// Signs CertReps and decrypts envelopes (layout `combined`).
    Combined,
    /// Signs CertReps only (layout `split`).
    Sign,
    /// Decrypts envelopes only (layout `split`): keyEncipherment without digitalSignature,
    /// which is how NDES-convention clients find it.
    Encrypt,
}

/// Microsoft Certificate Request Agent EKU (szOID_ENROLLMENT_AGENT), on NDES's RA certificates.
const WINDOWS_CERTIFICATE_REQUEST_AGENT: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.20.2.1");

fn oids(ekus: &[Eku]) -> Vec<const_oid::ObjectIdentifier> {
    ekus.iter().map(Eku::oid).collect()
}
