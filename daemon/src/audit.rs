//! Signed checkpoints of the audit log (docs/audit.md). The entries stay where they are
//! written, in the same store transaction as each change; their stored bytes are the
//! leaves of an RFC 6962 tree ([`proto::audit`]). A checkpoint:
//! 1. takes the tree as of the last checkpoint (its compact range, kept in the store) and
//!    appends the entries written since, so every checkpoint extends the one before: the
//!    appliance cannot sign two inconsistent checkpoints;
//! 2. signs the C2SP checkpoint text with the audit key (ECDSA P-256 in the token; made when
//!    the signer starts if the store has none, with a certificate from the admin CA, which
//!    auditors pin);
//! 3. records the note and the new compact range in one transaction, before anyone sees it.
//!
//! Checkpoints are made every minute when the log grew, after each executed proposal, at
//! shutdown, and before `audit checkpoint` and `audit export` answer.

use std::sync::{Arc, Mutex};

use proto::audit::{Checkpoint, Export, Note, NoteSignature, Tree, ecdsa_key_id, leaf_hash};

use crate::issuance::x509::{self, Profile};
use crate::keys::KeyRing;
use crate::store::Store;
use crate::{Error, Result};

/// When checkpoints are signed besides executed proposals and shutdown: `[audit]` in
/// signer.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuditTiming {
    /// Sign when the log grew and this long has passed since the last checkpoint.
    #[serde(default = "d_secs")]
    pub checkpoint_secs: u64,
    /// Sign as soon as this many entries are unsigned.
    #[serde(default = "d_entries")]
    pub checkpoint_entries: u64,
}

fn d_secs() -> u64 {
    60
}

fn d_entries() -> u64 {
    10_000
}

impl Default for AuditTiming {
    fn default() -> Self {
        AuditTiming {
            checkpoint_secs: d_secs(),
            checkpoint_entries: d_entries(),
        }
    }
}

/// The checkpoints' origin (and the signing key's name).
pub const ORIGIN: &str = "castellan.appliance/audit";

/// How many entries the last signed checkpoint covers (0 without one).
pub fn last_checkpoint_size(store: &Store) -> Result<u64> {
    Ok(match store.last_checkpoint()? {
        Some(n) => Checkpoint::parse(&Note::parse(&n)?.text)?.size,
        None => 0,
    })
}

/// The audit checkpointer.
#[derive(Debug)]
pub struct Audit {
    store: Arc<Store>,
    keys: Arc<KeyRing>,
    /// One checkpoint at a time; the tree as of the last one.
    tree: Mutex<Option<Tree>>,
}

impl Audit {
    pub fn new(store: Arc<Store>, keys: Arc<KeyRing>) -> Audit {
        Audit {
            store,
            keys,
            tree: Mutex::new(None),
        }
    }

    /// The audit key's id and SPKI, made (with its certificate) if the store has none yet.
    /// `castellan-signer run` calls it at start, before anything else uses the token.
    pub fn ensure_key(&self) -> Result<(hsm::KeyId, Vec<u8>)> {
        use der::{Decode, Encode};
        let mut id = self.store.admin_identity()?;
        if let (Some(k), Some(c)) = (&id.audit_key_id, &id.audit_cert) {
            let der = proto::b64::decode(c).map_err(|e| Error::Invalid(e.to_string()))?;
            let cert = x509_cert::Certificate::from_der(&der)?;
            let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
            return Ok((crate::keys::key_id(k)?, spki));
        }
        let hsm = self.keys.store();
        let (spec, hash) = (hsm::KeySpec::EcP256, hsm::HashAlg::Sha256);
        let key_id = crate::keys::new_key_id()?;
        let spki = hsm.generate(spec, &key_id, "castellan-audit", hsm::KeyUse::Sign)?;
        let ca_cert = x509_cert::Certificate::from_der(&id.ca_cert)?;
        let ca_signer = self.keys.signer(&id.ca_key_id, spec, hash)?;
        let cert = x509::issue(
            Profile {
                subject: "CN=Castellan audit log".parse()?,
                issuer: Some(ca_cert.tbs_certificate().subject().clone()),
                issuer_key_id: Some(x509::ca_key_id(&ca_cert)),
                extensions: x509::end_entity(
                    x509_cert::ext::pkix::KeyUsages::DigitalSignature.into(),
                )?,
            },
            x509::random_serial()?,
            x509::validity(std::time::SystemTime::now(), 20 * 365 * 86400)?,
            spki.clone(),
            &ca_signer,
        )?;
        id.audit_key_id = Some(key_id.to_string());
        id.audit_cert = Some(proto::b64::encode(&cert.to_der()?));
        self.store.write(|tx| {
            tx.put_meta("admin", &id)?;
            tx.audit(
                "castellan-signer",
                "audit-key",
                format!("made the audit key {key_id}"),
            )
        })?;
        tracing::info!(key = %key_id, "made the audit key");
        Ok((key_id, spki.to_der()?))
    }

    /// Sign a checkpoint if the log grew since the last one; returns the latest note.
    pub fn checkpoint(&self) -> Result<Option<String>> {
        let mut guard = self.tree.lock().unwrap_or_else(|p| p.into_inner());
        let tree = match guard.as_mut() {
            Some(t) => t,
            None => {
                // Rebuild from the entries the last checkpoint covers, and check them against
                // it: a store whose signed history was rewritten gets no new checkpoint.
                let mut t = Tree::new();
                for e in &self.store.audit_bytes(0..self.last_size()?)? {
                    t.push(leaf_hash(e));
                }
                if let Some(n) = self.store.last_checkpoint()? {
                    let signed = Checkpoint::parse(&Note::parse(&n)?.text)?;
                    if signed.size != t.size() || signed.root != t.root() {
                        tracing::error!(
                            size = signed.size,
                            "the audit entries no longer match the last signed checkpoint: no checkpoint will be signed"
                        );
                        return Err(Error::Store(crate::error::StoreError::AuditBroken(
                            t.size() as usize,
                        )));
                    }
                }
                guard.insert(t)
            }
        };
        let before = tree.size();
        let new = self.store.audit_bytes_from(before)?;
        if new.is_empty() {
            return self.store.last_checkpoint();
        }
        let mut grown = tree.clone();
        for e in &new {
            grown.push(leaf_hash(e));
        }
        let (key_id, spki) = self.ensure_key()?;
        // The key's own audit entry may have just been written: include it too.
        for e in &self.store.audit_bytes_from(grown.size())? {
            grown.push(leaf_hash(e));
        }
        let text = Checkpoint {
            origin: ORIGIN.into(),
            size: grown.size(),
            root: grown.root(),
        }
        .text();
        let signature = self.keys.store().sign(
            hsm::KeySpec::EcP256,
            hsm::HashAlg::Sha256,
            &key_id,
            text.as_bytes(),
        )?;
        let note = Note {
            text,
            signatures: vec![NoteSignature {
                name: ORIGIN.into(),
                key_id: ecdsa_key_id(&spki),
                signature,
            }],
        }
        .encode();
        self.store
            .write(|tx| tx.put_checkpoint(grown.size(), &note))?;
        tracing::info!(size = grown.size(), "signed an audit checkpoint");
        *tree = grown;
        Ok(Some(note))
    }

    /// How many entries no checkpoint covers yet.
    pub fn unsigned(&self) -> Result<u64> {
        Ok(self.store.audit_len()?.saturating_sub(self.last_size()?))
    }

    fn last_size(&self) -> Result<u64> {
        last_checkpoint_size(&self.store)
    }

    /// Everything an auditor needs to verify offline: a fresh checkpoint, and the entries
    /// it covers (entries written after it wait for the next export).
    pub fn export(&self) -> Result<Export> {
        self.checkpoint()?;
        let signed = self.last_size()?;
        let id = self.store.admin_identity()?;
        let audit_cert = id
            .audit_cert
            .as_deref()
            .map(proto::b64::decode)
            .transpose()
            .map_err(|e| Error::Invalid(e.to_string()))?
            .unwrap_or_default();
        Ok(Export {
            origin: ORIGIN.into(),
            chain: vec![audit_cert, id.ca_cert],
            entries: self.store.audit_bytes(0..signed)?,
            checkpoints: self.store.checkpoints()?,
        })
    }
}

impl Audit {
    /// Add an admin's signature to the latest checkpoint: `signature` (ECDSA P-256 with
    /// SHA-256, the signed-note ECDSA type) over the checkpoint text, made with the key of
    /// the admin's registered certificate. The line is named `castellan.admin/NAME`.
    pub fn cosign(
        &self,
        officer: &str,
        checkpoint: &str,
        algorithm: &str,
        signature: &[u8],
    ) -> Result<String> {
        use der::{Decode, Encode};
        let _guard = self.tree.lock().unwrap_or_else(|p| p.into_inner());
        let latest = self
            .store
            .last_checkpoint()?
            .ok_or_else(|| Error::Invalid("there is no checkpoint to cosign yet".into()))?;
        let mut note = Note::parse(&latest)?;
        if note.text != checkpoint {
            return Err(Error::Conflict(crate::error::Clash::NotLatestCheckpoint));
        }
        if algorithm != const_oid::db::rfc5912::ECDSA_WITH_SHA_256.to_string() {
            return Err(Error::Invalid(
                "a cosignature is ECDSA P-256 with SHA-256 (the signed-note ECDSA type): this admin's key cannot cosign".into(),
            ));
        }
        let g = self.store.governance()?;
        let cert = g
            .officer(officer)
            .map(|o| o.cert.clone())
            .ok_or_else(|| Error::Forbidden(crate::error::Denied::NotAnOfficer(officer.into())))?;
        let cert = x509_cert::Certificate::from_der(&cert)?;
        let spki = cert.tbs_certificate().subject_public_key_info();
        let name = format!("castellan.admin/{officer}");
        let line = NoteSignature {
            name: name.clone(),
            key_id: ecdsa_key_id(&spki.to_der()?),
            signature: signature.to_vec(),
        };
        let mut probe = note.clone();
        probe.signatures = vec![line.clone()];
        probe
            .verify_ecdsa_p256(&name, &spki.to_der()?)
            .map_err(|_| Error::Forbidden(crate::error::Denied::BadApproval(officer.into())))?;
        note.signatures.retain(|s| s.name != name);
        note.signatures.push(line);
        let size = Checkpoint::parse(&note.text)?.size;
        let encoded = note.encode();
        self.store.write(|tx| {
            tx.put_checkpoint(size, &encoded)?;
            tx.record(crate::store::Note::new(
                officer,
                "audit-cosign",
                format!("checkpoint of size {size}"),
            ))
        })?;
        Ok(format!("{name} on the checkpoint of size {size}"))
    }
}
