//! Quorum governance: every CA-changing operation is a proposal with a canonical
//! digest, executed once M distinct registered officers have signed that digest
//! before it expires.
//!
//! The digest is SHA-256 over `"castellan-proposal-v1\n"` followed by the JSON of
//! [`ProposalBody`] as serde_json writes it (fields in declaration order, no maps,
//! so the encoding is canonical). An approval is an officer's signature over
//! `"castellan-approval-v1\n" || digest`, with the key of the officer's registered
//! certificate. The CLI computes the digest itself from the body before signing,
//! so an officer never signs something the signer merely claims.

use serde::{Deserialize, Serialize};
use sha2::Digest;

use std::collections::BTreeSet;

use crate::Result;
use crate::model::{CaName, CaSpec, RoleName, Tag};
use crate::roles::{Permission, Tags};

/// Default time a proposal stays open.
pub const DEFAULT_TTL_SECS: i64 = 24 * 3600;
/// Longest a proposal may stay open.
pub const MAX_TTL_SECS: i64 = 7 * 24 * 3600;
/// Clock skew tolerated between an officer's machine and the signer.
pub const MAX_SKEW_SECS: i64 = 300;

/// What a proposal will do, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Operation {
    /// Create a self-signed root CA.
    CreateRoot { spec: CaSpec },
    /// Create a CA signed by `parent`.
    CreateIssuing { parent: CaName, spec: CaSpec },
    /// Create a bring-your-own CA: key here, status signing-required, CSR to export.
    CreateByoca { spec: CaSpec },
    /// Install the externally signed certificate and its chain on a BYOCA.
    ImportCa {
        name: CaName,
        #[serde(with = "crate::b64")]
        cert: Vec<u8>,
        #[serde(with = "crate::b64::vec")]
        chain: Vec<Vec<u8>>,
    },
    /// Stop a CA from signing.
    DisableCa { name: CaName },
    /// Let a disabled CA sign again.
    EnableCa { name: CaName },
    /// Create a SCEP profile on an issuing CA (and the CA's RA key if it has none).
    CreateProfile { spec: crate::profile::ProfileSpec },
    /// Revoke an issuing CA: it goes on its parent's CRL and signs nothing more.
    RevokeCa { name: CaName, reason: String },
    /// Recover an escrowed private key: once executed, the proposer (and only they) fetches
    /// it, once, as a new PKCS#12 file with a new password (`castellan key fetch`).
    RecoverKey {
        ca: CaName,
        /// Lowercase hex.
        serial: String,
    },
    /// Register a new admin certificate with its first assignment.
    AddAdmin {
        name: String,
        #[serde(with = "crate::b64")]
        cert: Vec<u8>,
        role: RoleName,
        tags: Tags,
    },
    /// Give an admin a role within tags (replacing their assignment of that role).
    Assign {
        name: String,
        role: RoleName,
        tags: Tags,
    },
    /// Take a role from an admin.
    Unassign { name: String, role: RoleName },
    /// Remove an admin: their certificate opens nothing any more.
    RemoveAdmin { name: String },
    /// Create a custom role.
    CreateRole {
        name: RoleName,
        permissions: BTreeSet<Permission>,
    },
    /// Delete a custom role nobody holds.
    DeleteRole { name: RoleName },
    /// Change a CA's scope tags.
    SetCaTags {
        name: CaName,
        add: Vec<Tag>,
        remove: Vec<Tag>,
    },
    /// Change how many approvals a proposal needs, and how many rejections end one.
    SetQuorum { approvals: u32, rejections: u32 },
}

impl Operation {
    /// A one-line description for listings.
    pub fn summary(&self) -> String {
        match self {
            Operation::CreateRoot { spec } => format!("create root CA {}", spec.name),
            Operation::CreateIssuing { parent, spec } => {
                format!("create issuing CA {} under {parent}", spec.name)
            }
            Operation::CreateByoca { spec } => format!("create bring-your-own CA {}", spec.name),
            Operation::ImportCa { name, chain, .. } => format!(
                "import the signed certificate of {name} (+{} chain certificates)",
                chain.len()
            ),
            Operation::DisableCa { name } => format!("disable CA {name}"),
            Operation::EnableCa { name } => format!("enable CA {name}"),
            Operation::CreateProfile { spec } => {
                let kind = if spec.pkcs.is_some() { "pkcs" } else { "SCEP" };
                format!("create {kind} profile {} on CA {}", spec.name, spec.ca)
            }
            Operation::RevokeCa { name, reason } => format!("revoke CA {name} ({reason})"),
            Operation::RecoverKey { ca, serial } => {
                format!("recover the escrowed key of certificate {serial} of CA {ca}")
            }
            Operation::AddAdmin {
                name, role, tags, ..
            } => format!("add admin {name} as {role} on {tags}"),
            Operation::Assign { name, role, tags } => {
                format!("assign {role} on {tags} to admin {name}")
            }
            Operation::Unassign { name, role } => format!("take {role} from admin {name}"),
            Operation::RemoveAdmin { name } => format!("remove admin {name}"),
            Operation::CreateRole { name, permissions } => format!(
                "create role {name} ({})",
                permissions
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Operation::DeleteRole { name } => format!("delete role {name}"),
            Operation::SetCaTags { name, add, remove } => {
                let list = |t: &[Tag]| t.iter().map(Tag::as_str).collect::<Vec<_>>().join(",");
                format!(
                    "tags of CA {name}: add [{}], remove [{}]",
                    list(add),
                    list(remove)
                )
            }
            Operation::SetQuorum {
                approvals,
                rejections,
            } => format!("quorum: {approvals} approvals, {rejections} rejections end a proposal"),
        }
    }

    /// The CA the operation is about, if it is about one (its tags scope the proposal).
    pub fn ca(&self) -> Option<&CaName> {
        match self {
            Operation::CreateRoot { spec }
            | Operation::CreateIssuing { spec, .. }
            | Operation::CreateByoca { spec } => Some(&spec.name),
            Operation::ImportCa { name, .. }
            | Operation::DisableCa { name }
            | Operation::EnableCa { name }
            | Operation::RevokeCa { name, .. }
            | Operation::SetCaTags { name, .. } => Some(name),
            Operation::CreateProfile { spec } => Some(&spec.ca),
            Operation::RecoverKey { ca, .. } => Some(ca),
            Operation::AddAdmin { .. }
            | Operation::Assign { .. }
            | Operation::Unassign { .. }
            | Operation::RemoveAdmin { .. }
            | Operation::CreateRole { .. }
            | Operation::DeleteRole { .. }
            | Operation::SetQuorum { .. } => None,
        }
    }

    /// The admin whose own assignments the operation changes: their approval does not
    /// count (nor may they propose it).
    pub fn concerns_admin(&self) -> Option<&str> {
        match self {
            Operation::AddAdmin { name, .. }
            | Operation::Assign { name, .. }
            | Operation::Unassign { name, .. }
            | Operation::RemoveAdmin { name } => Some(name),
            _ => None,
        }
    }
}

/// Exactly what the officers sign (through its digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalBody {
    /// 128 random bits, hex.
    pub id: String,
    pub operation: Operation,
    /// The officer who proposed it.
    pub proposer: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl ProposalBody {
    /// A new body with a random id, proposed now, expiring after `ttl` seconds.
    pub fn new(operation: Operation, proposer: &str, ttl: i64) -> Result<Self> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(crate::Error::Random)?;
        let now = crate::now();
        Ok(ProposalBody {
            id: hex::encode(id),
            operation,
            proposer: proposer.to_owned(),
            created_at: now,
            expires_at: now + ttl,
        })
    }

    /// The canonical digest (see the module docs).
    pub fn digest(&self) -> Result<[u8; 32]> {
        let mut h = sha2::Sha256::new();
        h.update(b"castellan-proposal-v1\n");
        h.update(serde_json::to_vec(self)?);
        Ok(h.finalize().into())
    }
}

/// The message an officer signs to approve a digest.
pub fn approval_message(digest: &[u8; 32]) -> Vec<u8> {
    let mut m = b"castellan-approval-v1\n".to_vec();
    m.extend_from_slice(digest);
    m
}

/// One officer's signature over a proposal digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub officer: String,
    /// X.509 signature algorithm OID (e.g. 1.2.840.10045.4.3.2 = ecdsa-with-SHA256).
    pub algorithm: String,
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
    pub at: i64,
}

/// Where a proposal stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pending,
    Executed,
    Rejected,
    Expired,
    /// Quorum was reached but the operation failed (nothing changed); the reason is kept.
    Failed,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pending => "pending",
            Status::Executed => "executed",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Failed => "failed",
        })
    }
}

/// A proposal as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub body: ProposalBody,
    /// Hex of [`ProposalBody::digest`].
    pub digest: String,
    pub quorum: u32,
    pub approvals: Vec<Approval>,
    pub status: Status,
    /// What happened when it ran, or why it failed / who rejected it.
    pub outcome: Option<String>,
    /// The admins who rejected it so far, with their reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<Rejection>,
    /// How many rejections end it (1 for proposals made before this was configurable).
    #[serde(default = "one")]
    pub reject_quorum: u32,
}

fn one() -> u32 {
    1
}

/// One admin's rejection of a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub officer: String,
    pub reason: String,
    pub at: i64,
}

impl Proposal {
    /// The status as of `now`: a pending proposal past its expiry is expired.
    pub fn status_at(&self, now: i64) -> Status {
        if self.status == Status::Pending && now >= self.body.expires_at {
            Status::Expired
        } else {
            self.status.clone()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::CaName;

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
    fn digest_covers_every_field() {
        let b = body();
        let d = b.digest().unwrap();
        assert_eq!(d, b.clone().digest().unwrap());
        let mut c = b.clone();
        c.expires_at += 1;
        assert_ne!(c.digest().unwrap(), d);
        let mut c = b.clone();
        c.operation = Operation::EnableCa {
            name: CaName::new("issuing").unwrap(),
        };
        assert_ne!(c.digest().unwrap(), d);
        let mut c = b;
        c.proposer = "bob".into();
        assert_ne!(c.digest().unwrap(), d);
    }

    #[test]
    fn expiry_is_a_status() {
        let p = Proposal {
            digest: String::new(),
            quorum: 2,
            approvals: vec![],
            status: Status::Pending,
            outcome: None,
            rejections: vec![],
            reject_quorum: 1,
            body: body(),
        };
        assert_eq!(p.status_at(p.body.expires_at - 1), Status::Pending);
        assert_eq!(p.status_at(p.body.expires_at), Status::Expired);
    }
}
