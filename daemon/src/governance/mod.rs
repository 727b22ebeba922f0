//! Quorum governance on the signer's side: checking a new proposal body, and verifying
//! approvals against officers' registered certificates (the types and the canonical digest
//! are `proto::governance`).

pub mod admins;

use proto::governance::{Approval, MAX_SKEW_SECS, MAX_TTL_SECS, ProposalBody, approval_message};

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use der::{Decode, Encode};
use hsm::{HsmSigner, KeyId, KeyUse};
use x509_cert::Certificate;

use crate::ca::{Cas, RaRole, oids};
use crate::error::{Clash, Denied, Missing};
use crate::issuance::x509::{self, Profile};
use crate::keys::KeyRing;
use crate::revocation::Revocation;
use crate::store::Store;
use crate::store::rows::CaRecord;
use crate::{Error, Result};
use proto::admin::Response;
use proto::governance::{Operation, Proposal, Status};
use proto::model::{CaKind, CaName, CaSpec, CaStatus};

/// A CA's tags after adding and removing some (sorted, without duplicates).
fn tags_after(
    now: &[proto::model::Tag],
    add: &[proto::model::Tag],
    remove: &[proto::model::Tag],
) -> Vec<proto::model::Tag> {
    let mut set: std::collections::BTreeSet<_> = now.iter().chain(add).cloned().collect();
    for t in remove {
        set.remove(t);
    }
    set.into_iter().collect()
}

/// Check a body a proposer sent: its clock, its lifetime, its proposer.
pub fn check_new_body(body: &ProposalBody, officer: &str, now: i64) -> Result<()> {
    if body.proposer != officer {
        return Err(Error::Forbidden(Denied::NotTheProposer {
            named: body.proposer.clone(),
            sender: officer.to_owned(),
        }));
    }
    if (body.created_at - now).abs() > MAX_SKEW_SECS {
        return Err(Error::Invalid(
            "the proposal's creation time is more than 5 minutes from the signer's clock".into(),
        ));
    }
    let ttl = body.expires_at - body.created_at;
    if ttl <= 0 || ttl > MAX_TTL_SECS {
        return Err(Error::Invalid(format!(
            "a proposal must expire within {} days",
            MAX_TTL_SECS / 86400
        )));
    }
    if body.id.len() != 32 || !body.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid("a proposal id is 32 hex digits".into()));
    }
    Ok(())
}

/// Verify an approval against the officer's registered certificate.
pub fn verify_approval(approval: &Approval, officer_cert: &[u8], digest: &[u8; 32]) -> Result<()> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(officer_cert)?;
    let oid = const_oid::ObjectIdentifier::new(&approval.algorithm)
        .map_err(|_| Error::Invalid("unknown approval algorithm".into()))?;
    let rsa = oid == const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION;
    let alg = spki::AlgorithmIdentifierOwned {
        oid,
        parameters: rsa.then(|| der::asn1::AnyRef::NULL.into()),
    };
    crate::issuance::x509::verify_signature(
        cert.tbs_certificate().subject_public_key_info(),
        &alg,
        &approval_message(digest),
        &approval.signature,
    )
    .map_err(|_| Error::Forbidden(Denied::BadApproval(approval.officer.clone())))
}

/// The governance service: proposals, approvals, and running an operation once it has
/// its quorum (one at a time).
#[derive(Debug)]
pub struct Governance {
    store: Arc<Store>,
    keys: Arc<KeyRing>,
    cas: Arc<Cas>,
    revocation: Arc<Revocation>,
    /// Serialises approvals and executions: one CA operation at a time.
    ops: Mutex<()>,
    /// Longest a proposal may stay open.
    ttl: i64,
}

impl Governance {
    pub fn new(
        store: Arc<Store>,
        keys: Arc<KeyRing>,
        cas: Arc<Cas>,
        revocation: Arc<Revocation>,
        ttl: i64,
    ) -> Self {
        Governance {
            store,
            keys,
            cas,
            revocation,
            ops: Mutex::new(()),
            ttl,
        }
    }

    /// Every admin and their assignments.
    pub fn admins(&self) -> Result<Vec<proto::admin::AdminView>> {
        Ok(admins::admins(&self.store.governance()?))
    }

    /// Every role, built-in and custom, with its holders.
    pub fn roles(&self) -> Result<Vec<proto::roles::RoleView>> {
        Ok(admins::roles(&self.store.governance()?))
    }

    /// Nobody proposes or approves a change of their own assignments.
    fn not_own_change(op: &Operation, officer: &str) -> Result<()> {
        match op.concerns_admin() {
            Some(name) if name == officer => {
                Err(Error::Forbidden(Denied::OwnChange(officer.to_owned())))
            }
            _ => Ok(()),
        }
    }

    pub fn proposal(&self, id: &str) -> Result<Proposal> {
        self.store
            .proposal(id)?
            .ok_or_else(|| Error::NotFound(Missing::Proposal(id.to_owned())))
    }

    fn officer_cert(&self, officer: &str) -> Result<Vec<u8>> {
        self.store
            .governance()?
            .officers
            .into_iter()
            .find(|o| o.name == officer)
            .map(|o| o.cert)
            .ok_or_else(|| Error::Forbidden(Denied::NotAnOfficer(officer.to_owned())))
    }

    pub fn propose(
        &self,
        officer: &str,
        body: ProposalBody,
        mut approval: Approval,
    ) -> Result<Response> {
        let _ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let now = crate::now();
        check_new_body(&body, officer, now)?;
        Self::not_own_change(&body.operation, officer)?;
        if body.expires_at - body.created_at > self.ttl.max(3600) {
            return Err(Error::Invalid(format!(
                "this signer keeps proposals open for at most {} hours",
                self.ttl / 3600
            )));
        }
        if self.store.proposal(&body.id)?.is_some() {
            return Err(Error::Conflict(Clash::ProposalExists(body.id.clone())));
        }
        // The proposer's signature first: an unsigned request learns nothing about the state.
        let digest = body.digest()?;
        approval.officer = officer.to_owned();
        verify_approval(&approval, &self.officer_cert(officer)?, &digest)?;
        self.validate(&body.operation)?;
        let g = self.store.governance()?;
        let proposal = Proposal {
            digest: hex::encode(digest),
            quorum: g.quorum,
            approvals: vec![approval],
            status: Status::Pending,
            outcome: None,
            rejections: vec![],
            reject_quorum: g.rejections,
            body,
        };
        let summary = proposal.body.operation.summary();
        let note = self.note(
            officer,
            "propose",
            &proposal,
            format!("{}: {summary}", proposal.digest),
        );
        self.store.write(|tx| {
            tx.put_proposal(&proposal)?;
            tx.record(note)
        })?;
        tracing::info!(id = %proposal.body.id, %officer, %summary, "proposal created");
        let proposal = self.run_if_quorum(proposal)?;
        Ok(Response::Proposal { proposal })
    }

    pub fn approve(&self, officer: &str, id: &str, mut approval: Approval) -> Result<Response> {
        let _ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let mut p = self.proposal(id)?;
        match p.status_at(crate::now()) {
            Status::Pending => {}
            Status::Expired => {
                return Err(Error::Conflict(Clash::ProposalExpired {
                    id: id.to_owned(),
                    at: proto::rfc3339(p.body.expires_at),
                }));
            }
            s => {
                return Err(Error::Conflict(Clash::ProposalClosed {
                    id: id.to_owned(),
                    status: s,
                }));
            }
        }
        Self::not_own_change(&p.body.operation, officer)?;
        let digest: [u8; 32] = p.body.digest()?;
        approval.officer = officer.to_owned();
        verify_approval(&approval, &self.officer_cert(officer)?, &digest)?;
        if p.approvals.iter().any(|a| a.officer == officer) {
            return Err(Error::Conflict(Clash::AlreadyApproved {
                officer: officer.to_owned(),
                id: id.to_owned(),
                have: p.approvals.len(),
                need: p.quorum,
            }));
        }
        p.approvals.push(approval);
        let n = p.approvals.len();
        if (n as u32) < p.quorum {
            let note = self.note(officer, "approve", &p, format!("{n}/{}", p.quorum));
            self.store.write(|tx| {
                tx.put_proposal(&p)?;
                tx.record(note)
            })?;
            return Ok(Response::Proposal { proposal: p });
        }
        let proposal = self.run_if_quorum(p)?;
        Ok(Response::Proposal { proposal })
    }

    pub fn reject(&self, officer: &str, id: &str, reason: Option<String>) -> Result<Response> {
        let _ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let mut p = self.proposal(id)?;
        let status = p.status_at(crate::now());
        if status != Status::Pending {
            return Err(Error::Conflict(Clash::ProposalDecided {
                id: id.to_owned(),
                status,
            }));
        }
        if p.rejections.iter().any(|r| r.officer == officer) {
            return Err(Error::Conflict(Clash::AlreadyRejected {
                officer: officer.to_owned(),
                id: id.to_owned(),
            }));
        }
        let why = reason.unwrap_or_default();
        p.rejections.push(proto::governance::Rejection {
            officer: officer.to_owned(),
            reason: why.clone(),
            at: crate::now(),
        });
        let n = p.rejections.len();
        if n as u32 >= p.reject_quorum.max(1) {
            p.status = Status::Rejected;
            let by: Vec<&str> = p.rejections.iter().map(|r| r.officer.as_str()).collect();
            p.outcome = Some(format!(
                "rejected by {}{}",
                by.join(", "),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            ));
        }
        let note = self.note(
            officer,
            "reject",
            &p,
            format!("{n}/{} {why}", p.reject_quorum.max(1)),
        );
        self.store.write(|tx| {
            tx.put_proposal(&p)?;
            tx.record(note)
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
        let governance = match op.ca() {
            None => Some(admins::apply(&self.store.governance()?, op)),
            Some(_) => None,
        }
        .transpose();
        let result = governance.and_then(|gov| {
            self.validate(op)?;
            Ok(gov)
        });
        let result = result.and_then(|gov| {
            let ran = match op {
                Operation::CreateProfile { spec } => self
                    .create_profile(spec)
                    .map(|(ca, outcome)| (ca, Some(spec.clone()), outcome)),
                _ => self
                    .execute(op, &id)
                    .map(|(ca, outcome)| (ca, None, outcome)),
            }?;
            Ok((ran, gov))
        });
        match result {
            Ok(((record, profile, outcome), gov)) => {
                p.status = Status::Executed;
                p.outcome = Some(outcome.clone());
                self.store.write(|tx| {
                    if let Some(r) = &record {
                        tx.put_ca(r)?;
                    }
                    if let Some(g) = &gov {
                        tx.put_meta("governance", g)?;
                    }
                    if let Some(spec) = &profile {
                        tx.put(crate::store::Table::Profiles, spec.name.as_str(), spec)?;
                    }
                    if let (Operation::RevokeCa { reason, .. }, Some(r)) = (op, &record)
                        && let Some(parent) = &r.parent
                    {
                        let reason = reason.parse::<crl::Reason>().map_err(Error::Invalid)?;
                        self.revocation
                            .revoke_ca_cert(tx, r, parent.as_str(), reason)?;
                    }
                    tx.put_proposal(&p)?;
                    tx.record(self.note(&approvers.join("+"), "execute", &p, outcome.clone()))
                })?;
                tracing::info!(%id, %outcome, "proposal executed");
                if let Some(r) = &record {
                    // A new or changed CA gets its CRL now; a revoked CA changes its parent's.
                    self.revocation.dirty().mark(r.spec.name.as_str());
                    if let Some(parent) = &r.parent {
                        self.revocation.dirty().mark(parent.as_str());
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%id, error = %e, "proposal failed");
                p.status = Status::Failed;
                p.outcome = Some(e.to_string());
                let note = self.note(&approvers.join("+"), "fail", &p, e.to_string());
                self.store.write(|tx| {
                    tx.put_proposal(&p)?;
                    tx.record(note)
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
                return Err(Error::Conflict(Clash::CaExists(name.to_string())));
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
                let parent = self.cas.ca(parent.as_str())?;
                self.check_child(&parent, spec, now)?;
            }
            Operation::CreateByoca { spec } => {
                spec.check()?;
                fresh_name(&spec.name)?;
            }
            Operation::ImportCa { name, cert, chain } => {
                let ca = self.cas.ca(name.as_str())?;
                if ca.status != CaStatus::SigningRequired {
                    return Err(Error::Conflict(Clash::NotAwaitingImport {
                        name: name.to_string(),
                        status: ca.status,
                    }));
                }
                self.check_import(&ca, cert, chain, now)?;
            }
            Operation::DisableCa { name } => {
                let ca = self.cas.ca(name.as_str())?;
                if ca.status != CaStatus::Active {
                    return Err(Error::Conflict(Clash::CaNotActive {
                        name: name.to_string(),
                        status: ca.status,
                    }));
                }
            }
            Operation::EnableCa { name } => {
                let ca = self.cas.ca(name.as_str())?;
                if ca.status != CaStatus::Disabled {
                    return Err(Error::Conflict(Clash::CaNotDisabled {
                        name: name.to_string(),
                        status: ca.status,
                    }));
                }
            }
            Operation::CreateProfile { spec } => self.check_profile(spec)?,
            Operation::RecoverKey { ca, serial } => {
                self.cas.ca(ca.as_str())?;
                let key = crate::store::indexes::cert_key(ca.as_str(), serial);
                if self
                    .store
                    .get::<serde::de::IgnoredAny>(crate::store::Table::Certs, &key)?
                    .is_none()
                {
                    return Err(Error::NotFound(Missing::Certificate {
                        ca: ca.to_string(),
                        serial: serial.clone(),
                    }));
                }
                if self
                    .store
                    .get::<serde::de::IgnoredAny>(crate::store::Table::Escrow, &key)?
                    .is_none()
                {
                    return Err(Error::Invalid(format!(
                        "certificate {serial} of CA {ca} has no escrowed key (only pkcs \
                         profiles with escrow keep one)"
                    )));
                }
            }
            Operation::SetCaTags { name, add, remove } => {
                let ca = self.cas.ca(name.as_str())?;
                if add.is_empty() && remove.is_empty() {
                    return Err(Error::Invalid("give tags to --add or --remove".into()));
                }
                if tags_after(&ca.spec.scope(), add, remove).is_empty() {
                    return Err(Error::Invalid(format!(
                        "CA {name} cannot lose its last tag: add another first"
                    )));
                }
            }
            Operation::AddAdmin { .. }
            | Operation::Assign { .. }
            | Operation::Unassign { .. }
            | Operation::RemoveAdmin { .. }
            | Operation::CreateRole { .. }
            | Operation::DeleteRole { .. }
            | Operation::SetQuorum { .. } => {
                admins::apply(&self.store.governance()?, op)?;
            }
            Operation::RevokeCa { name, reason } => {
                reason.parse::<crl::Reason>().map_err(Error::Invalid)?;
                let ca = self.cas.ca(name.as_str())?;
                if ca.kind != CaKind::Issuing || ca.parent.is_none() {
                    return Err(Error::Invalid(format!(
                        "CA {name} is not an issuing CA under a Castellan CA: only those can be put on their parent's CRL (a BYOCA is revoked by its external CA)"
                    )));
                }
                if !matches!(ca.status, CaStatus::Active | CaStatus::Disabled) {
                    return Err(Error::Conflict(Clash::CaStatus {
                        name: name.to_string(),
                        status: ca.status,
                    }));
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
            return Err(Error::Conflict(Clash::ProfileExists(spec.name.to_string())));
        }
        let ca = self.cas.ca(spec.ca.as_str())?;
        if ca.kind == CaKind::Root {
            return Err(Error::Invalid(format!(
                "CA {} is a root: SCEP profiles issue from an issuing CA",
                spec.ca
            )));
        }
        if ca.status != CaStatus::Active {
            return Err(Error::Conflict(Clash::CaNotActive {
                name: spec.ca.to_string(),
                status: ca.status,
            }));
        }
        let extra = not_allowed(&spec.ekus, &ca.spec.ekus);
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
            return Err(Error::Conflict(Clash::ParentCannotSign {
                name: pname.to_string(),
                status: parent.status,
            }));
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
        let extra = not_allowed(&spec.ekus, &parent.spec.ekus);
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
                proto::rfc3339(parent_end)
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
        let ours = self
            .keys
            .store()
            .public_key(spec, &crate::keys::key_id(&ca.key_id)?)?;
        x509::check_external_ca(&c, &pool, &ours, now)
    }

    /// Run a validated operation. Returns the CA record to store (if any) and a one-line outcome.
    fn execute(&self, op: &Operation, proposal: &str) -> Result<(Option<CaRecord>, String)> {
        let now_sys = SystemTime::now();
        let now = crate::now();
        match op {
            Operation::CreateRoot { spec } => {
                let (key, hash) = spec.check()?;
                let id = crate::keys::new_key_id()?;
                let spki = self.keys.store().generate(
                    key,
                    &id,
                    &format!("castellan-ca:{}", spec.name),
                    KeyUse::Sign,
                )?;
                let signer = HsmSigner::new(self.keys.store().clone(), id.clone(), key, hash)?;
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
                let p = self.cas.ca(parent.as_str())?;
                let pcert = Certificate::from_der(p.cert.as_deref().unwrap_or_default())?;
                let pspec = p.spec.key;
                let phash = p.spec.hash;
                let parent_signer = HsmSigner::new(
                    self.keys.store().clone(),
                    crate::keys::key_id(&p.key_id)?,
                    pspec,
                    phash,
                )?;
                let id = crate::keys::new_key_id()?;
                let spki = self.keys.store().generate(
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
                let id = crate::keys::new_key_id()?;
                self.keys.store().generate(
                    key,
                    &id,
                    &format!("castellan-ca:{}", spec.name),
                    KeyUse::Sign,
                )?;
                let signer = HsmSigner::new(self.keys.store().clone(), id.clone(), key, hash)?;
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
                let mut ca = self.cas.ca(name.as_str())?;
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
                let mut ca = self.cas.ca(name.as_str())?;
                ca.status = CaStatus::Disabled;
                Ok((Some(ca), format!("CA {name} disabled")))
            }
            Operation::EnableCa { name } => {
                let mut ca = self.cas.ca(name.as_str())?;
                ca.status = CaStatus::Active;
                Ok((Some(ca), format!("CA {name} enabled")))
            }
            Operation::RecoverKey { ca, serial } => Ok((
                None,
                format!(
                    "the escrowed key of {serial} (CA {ca}) may be fetched once by the proposer"
                ),
            )),
            Operation::CreateProfile { .. } => Err(Error::Internal(
                crate::error::InternalError::Unreachable("a profile is made by create_profile"),
            )),
            Operation::RevokeCa { name, reason } => {
                let mut ca = self.cas.ca(name.as_str())?;
                ca.status = CaStatus::Revoked;
                Ok((
                    Some(ca),
                    format!("CA {name} revoked ({reason}): on its parent's CRL, signs nothing"),
                ))
            }
            Operation::SetCaTags { name, add, remove } => {
                let mut ca = self.cas.ca(name.as_str())?;
                ca.spec.tags = tags_after(&ca.spec.scope(), add, remove);
                let list: Vec<&str> = ca.spec.tags.iter().map(|t| t.as_str()).collect();
                let outcome = format!("CA {name} has tags {}", list.join(","));
                Ok((Some(ca), outcome))
            }
            Operation::AddAdmin { .. }
            | Operation::Assign { .. }
            | Operation::Unassign { .. }
            | Operation::RemoveAdmin { .. }
            | Operation::CreateRole { .. }
            | Operation::DeleteRole { .. }
            | Operation::SetQuorum { .. } => Ok((None, op.summary())),
        }
    }

    /// An audit note about a proposal (and its CA, if it is about one).
    fn note(&self, actor: &str, action: &str, p: &Proposal, detail: String) -> crate::store::Note {
        let note = crate::store::Note::new(actor, action, detail).proposal(&p.body.id);
        match p.body.operation.ca() {
            Some(ca) => note.ca(ca.as_str()),
            None => note,
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
        let mut ca = self.cas.ca(spec.ca.as_str())?;
        if let Some(p) = &spec.pkcs {
            // No SCEP, so no RA: the signer makes each device's key pair itself. An
            // escrowing profile needs the escrow key (made once, in the token).
            let escrow = match p.escrow {
                true => {
                    let k = self.cas.escrow_key(true)?.ok_or_else(|| {
                        Error::Internal(crate::error::InternalError::Unreachable("escrow key"))
                    })?;
                    format!(", keys escrowed to token key {}", k.key_id)
                }
                false => String::new(),
            };
            let keys: Vec<String> = p.key_types.iter().map(ToString::to_string).collect();
            return Ok((
                None,
                format!(
                    "pkcs profile {} created on CA {} (keys {}, encoding {}{escrow})",
                    spec.name,
                    spec.ca,
                    keys.join(", "),
                    p.encoding
                ),
            ));
        }
        let (layout, eku) = (spec.ra_layout, spec.ra_windows_eku);
        let made = match layout {
            RaLayout::Combined if !eku => {
                if ca.ra.is_none() {
                    ca.ra = Some(self.cas.make_ra(&ca, RaRole::Combined, false)?);
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
                self.keys.store().allow_decrypt(&id)?;
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
                    sign: self.cas.make_ra(&ca, RaRole::Sign, eku)?,
                    encrypt: Some(self.cas.make_ra(&ca, RaRole::Encrypt, eku)?),
                };
                ca.ra_sets.push(set);
                " (signing and encryption RA keys and certificates made)"
            }
            RaLayout::Combined => {
                let set = crate::store::rows::RaSet {
                    layout,
                    windows_eku: eku,
                    sign: self.cas.make_ra(&ca, RaRole::Combined, eku)?,
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
}

/// The EKUs of `wanted` that `allowed` does not list, as text.
fn not_allowed(wanted: &[proto::model::Eku], allowed: &[proto::model::Eku]) -> Vec<String> {
    wanted
        .iter()
        .filter(|e| !allowed.contains(e))
        .map(ToString::to_string)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proto::governance::{DEFAULT_TTL_SECS, Operation};
    use proto::model::CaName;

    fn body() -> ProposalBody {
        ProposalBody::new(
            Operation::DisableCa {
                name: CaName::new("issuing").unwrap(),
            },
            "alice",
            DEFAULT_TTL_SECS,
        )
        .unwrap()
    }

    #[test]
    fn new_bodies_are_checked() {
        let now = crate::now();
        let b = body();
        assert!(check_new_body(&b, "alice", now).is_ok());
        assert!(matches!(
            check_new_body(&b, "bob", now),
            Err(Error::Forbidden(_))
        ));
        let mut c = b.clone();
        c.expires_at = c.created_at + MAX_TTL_SECS + 1;
        assert!(check_new_body(&c, "alice", now).is_err());
        assert!(
            check_new_body(&b, "alice", now + 3600).is_err(),
            "clock far off"
        );
    }

    #[test]
    fn approvals_verify_only_over_their_digest() {
        // An officer key and certificate made once with openssl, for this test only.
        let key = include_bytes!("../../testdata/officer.key");
        let cert_pem = include_bytes!("../../testdata/officer.pem");
        let cert = crate::issuance::x509::parse_certificates(cert_pem, "t")
            .unwrap()
            .remove(0);
        let cert_der = der::Encode::to_der(&cert).unwrap();
        let d = body().digest().unwrap();
        let a = cli::officer::sign_approval(key, &d, "alice").unwrap();
        assert!(verify_approval(&a, &cert_der, &d).is_ok());
        let other = body().digest().unwrap();
        assert!(matches!(
            verify_approval(&a, &cert_der, &other),
            Err(Error::Forbidden(_))
        ));
        let mut tampered = a.clone();
        tampered.signature[10] ^= 1;
        assert!(verify_approval(&tampered, &cert_der, &d).is_err());
    }

    /// A proposal runs once it has its quorum: the root's certificate is made and signed
    /// with a key generated behind the key seam, and the audit trail records it.
    #[test]
    fn a_root_runs_at_quorum_and_is_signed_by_its_own_key() {
        let kit = crate::testkit::Kit::new().unwrap();
        let audit = kit.signer.store().verify_audit().unwrap();
        let p = kit
            .run(Operation::CreateRoot {
                spec: crate::testkit::spec("root", "ec-p256", Some("10y")).unwrap(),
            })
            .unwrap();
        assert_eq!(p.status, proto::governance::Status::Executed);
        let root = kit.signer.store().ca("root").unwrap().unwrap();
        let cert = Certificate::from_der(root.cert.as_deref().unwrap()).unwrap();
        x509::verify_issued_by(&cert, &cert).unwrap();
        assert_eq!(x509::basic_constraints(&cert), (true, None));
        assert!(kit.signer.store().verify_audit().unwrap() > audit);
    }

    /// A proposal whose approval was not made over its digest is refused as forbidden, and
    /// nothing changes: no proposal, no CA, no key generated, no audit entry.
    #[test]
    fn a_forged_approval_is_forbidden_and_changes_nothing() {
        let kit = crate::testkit::Kit::new().unwrap();
        let audit = kit.signer.store().verify_audit().unwrap();
        let body = ProposalBody::new(
            Operation::CreateRoot {
                spec: crate::testkit::spec("root", "ec-p256", Some("10y")).unwrap(),
            },
            "alice",
            3600,
        )
        .unwrap();
        let key = include_bytes!("../../testdata/officer.key");
        let other = body_for("mallory").digest().unwrap();
        let approval = cli::officer::sign_approval(key, &other, "alice").unwrap();
        let signatures = kit.keys.signatures();
        let err = kit
            .signer
            .governance()
            .propose("alice", body, approval)
            .unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
        assert!(kit.signer.store().proposals().unwrap().is_empty());
        assert!(kit.signer.store().cas().unwrap().is_empty());
        assert_eq!(kit.keys.signatures(), signatures);
        assert_eq!(kit.signer.store().verify_audit().unwrap(), audit);
    }

    fn body_for(proposer: &str) -> ProposalBody {
        ProposalBody::new(
            Operation::DisableCa {
                name: CaName::new("root").unwrap(),
            },
            proposer,
            DEFAULT_TTL_SECS,
        )
        .unwrap()
    }
}
