//! Who is calling, and what they may see and do: default deny, one permission per request,
//! and scope tags. Anything about a CA outside the caller's tags does not exist for them:
//! "not found", never "forbidden" (the CA's name is not confirmed to an outsider).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use sha2::Digest;

use crate::engine::Signer;
use crate::error::{Denied, Missing};
use crate::store::rows::PendingRecord;
use crate::store::{Governance, Store, Table};
use crate::{Error, Result};
use proto::admin::Request;
use proto::governance::Operation;
use proto::model::Tag;
use proto::profile::ProfileSpec;
use proto::roles::{Assignment, BuiltinRole, Grants, Need, Permission, Tags};

/// Who is on the other end of an admin connection.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The admin's name; the castellan-mdm connector's is [`crate::enroll::mdm::ACTOR`].
    pub name: String,
    /// Hex SHA-256 of the caller's certificate (DER).
    pub fingerprint: String,
    pub source: SocketAddr,
    cert: Vec<u8>,
    /// The castellan-mdm connector (`[mdm] identity-cert`): `mdm-connector` on `*`.
    connector: bool,
}

/// What [`Caller::authorize`] found: the caller's grants now, the permission the request
/// uses and the CA it is about.
#[derive(Debug, Clone)]
pub struct Access {
    pub grants: Grants,
    pub permission: Option<Permission>,
    pub ca: Option<String>,
}

impl Caller {
    /// The caller behind a client certificate, if it is a registered admin's or the
    /// connector's.
    pub fn identify(
        signer: &Signer,
        cert: &[u8],
        connector: Option<&[u8]>,
        source: SocketAddr,
    ) -> Result<Option<Caller>> {
        let fingerprint = hex::encode(sha2::Sha256::digest(cert));
        if connector == Some(cert) {
            return Ok(Some(Caller {
                name: crate::enroll::mdm::ACTOR.to_owned(),
                fingerprint,
                source,
                cert: cert.to_vec(),
                connector: true,
            }));
        }
        let g = signer.store().governance()?;
        Ok(g.officers.iter().find(|o| o.cert == cert).map(|o| Caller {
            name: o.name.clone(),
            fingerprint,
            source,
            cert: cert.to_vec(),
            connector: false,
        }))
    }

    /// The caller's assignments now (they change by proposal); None once removed.
    pub fn assignments(&self, g: &Governance) -> Option<Vec<Assignment>> {
        if self.connector {
            return Some(vec![Assignment {
                role: proto::model::RoleName::new(BuiltinRole::MdmConnector.name()).ok()?,
                tags: Tags::All,
            }]);
        }
        g.officers
            .iter()
            .find(|o| o.cert == self.cert)
            .map(|o| o.assignments.clone())
    }

    /// Default deny: may this caller send this request, and about what?
    pub fn authorize(&self, signer: &Signer, request: &Request) -> Result<Access> {
        let g = signer.store().governance()?;
        let grants = self
            .assignments(&g)
            .map(|a| Grants::resolve(&a, &g.roles))
            .ok_or_else(|| Error::Forbidden(Denied::NotAnOfficer(self.name.clone())))?;
        let needed = match request.need() {
            Need::Admin => {
                return Ok(Access {
                    grants,
                    permission: None,
                    ca: None,
                });
            }
            Need::Permission(p) => p,
            Need::ProposalsPermission => match request {
                Request::Approve { id, .. } | Request::Reject { id, .. } => {
                    let p = signer.governance().proposal(id)?;
                    Permission::for_operation(&p.body.operation)
                }
                _ => Permission::RoleWrite,
            },
        };
        let lacks = || {
            Error::Forbidden(Denied::Lacks {
                caller: self.name.clone(),
                permission: needed,
            })
        };
        let target = target(signer.store(), request)?;
        match &target {
            Some(t) if !grants.may(needed, &t.tags) => {
                return Err(if grants.sees(&t.tags) {
                    lacks()
                } else {
                    Error::NotFound(t.missing.clone())
                });
            }
            None if !grants.has(needed) => return Err(lacks()),
            _ => {}
        }
        if let Request::Propose { body, .. } = request {
            self.check_given_tags(signer.store(), &grants, needed, &body.operation)?;
        }
        Ok(Access {
            grants,
            permission: Some(needed),
            ca: target.map(|t| t.ca),
        })
    }

    /// Tags are given (to a new CA, added to and taken from a CA, or in an assignment) only
    /// by those who hold them with the permission the operation needs; a new issuing CA's
    /// parent must be visible to the proposer.
    fn check_given_tags(
        &self,
        store: &Store,
        grants: &Grants,
        needed: Permission,
        op: &Operation,
    ) -> Result<()> {
        let held = grants.tags_for(needed);
        let new_scope;
        let given: Vec<&Tag> = match op {
            Operation::CreateRoot { spec }
            | Operation::CreateIssuing { spec, .. }
            | Operation::CreateByoca { spec } => {
                new_scope = spec.scope();
                new_scope.iter().collect()
            }
            Operation::SetCaTags { add, remove, .. } => add.iter().chain(remove).collect(),
            Operation::AddAdmin { tags, .. } | Operation::Assign { tags, .. } => match tags {
                Tags::Only(t) => t.iter().collect(),
                Tags::All if held == Some(Tags::All) => vec![],
                Tags::All => {
                    return Err(Error::Forbidden(Denied::TagNotHeld {
                        caller: self.name.clone(),
                        tag: "*".into(),
                        permission: needed,
                    }));
                }
            },
            _ => vec![],
        };
        if let Some(tag) = given
            .into_iter()
            .find(|t| !held.as_ref().is_some_and(|h| h.holds(t)))
        {
            return Err(Error::Forbidden(Denied::TagNotHeld {
                caller: self.name.clone(),
                tag: tag.to_string(),
                permission: needed,
            }));
        }
        if let Operation::CreateIssuing { parent, .. } = op
            && let Some(p) = store.ca(parent.as_str())?
            && !grants.sees(&p.spec.scope())
        {
            return Err(Error::NotFound(Missing::Ca(parent.to_string())));
        }
        Ok(())
    }
}

/// The CA a request is about, its tags, and what "not found" says about the request's
/// object when the CA is out of the caller's scope.
#[derive(Debug, Clone)]
struct Target {
    ca: String,
    tags: Vec<Tag>,
    missing: Missing,
}

/// The CA a request is about, if it names one that exists (a request about something
/// that does not exist is answered "not found" by its service).
fn target(store: &Store, request: &Request) -> Result<Option<Target>> {
    let of_ca = |name: &str, missing: Missing| -> Result<Option<Target>> {
        Ok(store.ca(name)?.map(|c| Target {
            ca: name.to_owned(),
            tags: c.spec.scope(),
            missing,
        }))
    };
    let of_profile = |name: &str, missing: Missing| -> Result<Option<Target>> {
        match store.get::<ProfileSpec>(Table::Profiles, name)? {
            Some(p) => of_ca(p.ca.as_str(), missing),
            None => Ok(None),
        }
    };
    match request {
        Request::CaShow { name }
        | Request::CaCert { name }
        | Request::CaChain { name }
        | Request::CaCsr { name }
        | Request::CaCrl { name } => of_ca(name, Missing::Ca(name.clone())),
        Request::CertList { ca: Some(ca), .. }
        | Request::CertExport { ca: Some(ca), .. }
        | Request::CertShow { ca: Some(ca), .. }
        | Request::CertRevoke { ca, .. } => of_ca(ca, Missing::Ca(ca.clone())),
        Request::ProfileShow { name } => of_profile(name, Missing::Profile(name.clone())),
        Request::ChallengeNew { profile, .. } | Request::Pkcs12Issue { profile, .. } => {
            of_profile(profile, Missing::Profile(profile.clone()))
        }
        Request::RequestApprove { id } | Request::RequestReject { id, .. } => {
            match store.get::<PendingRecord>(Table::Pending, id)? {
                Some(p) => of_profile(&p.profile, Missing::PendingRequest(id.clone())),
                None => Ok(None),
            }
        }
        // A new CA is checked tag by tag (`check_given_tags`): the proposer must hold each.
        Request::Propose { body, .. } => match &body.operation {
            Operation::CreateRoot { .. }
            | Operation::CreateIssuing { .. }
            | Operation::CreateByoca { .. } => Ok(None),
            op => Ok(operation_scope(store, op)?.map(|(ca, tags)| Target {
                missing: Missing::Ca(ca.clone()),
                ca,
                tags,
            })),
        },
        Request::Approve { id, .. }
        | Request::Reject { id, .. }
        | Request::ProposalShow { id }
        | Request::KeyFetch { proposal: id, .. } => match store.proposal(id)? {
            Some(p) => Ok(
                operation_scope(store, &p.body.operation)?.map(|(ca, tags)| Target {
                    ca,
                    tags,
                    missing: Missing::Proposal(id.clone()),
                }),
            ),
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

/// The CA an operation is about and its tags: a new CA's own tags, an existing CA's
/// current ones. None for operations about no CA (admins, roles, the quorum), and for a
/// CA that does not exist (validation refuses the operation).
pub fn operation_scope(store: &Store, op: &Operation) -> Result<Option<(String, Vec<Tag>)>> {
    match op {
        Operation::CreateRoot { spec }
        | Operation::CreateIssuing { spec, .. }
        | Operation::CreateByoca { spec } => Ok(Some((spec.name.to_string(), spec.scope()))),
        _ => match op.ca() {
            Some(name) => Ok(store
                .ca(name.as_str())?
                .map(|c| (name.to_string(), c.spec.scope()))),
            None => Ok(None),
        },
    }
}

/// The CAs on which the caller has `p` (for listings).
pub fn cas_with(store: &Store, grants: &Grants, p: Permission) -> Result<BTreeSet<String>> {
    Ok(store
        .cas()?
        .into_iter()
        .filter(|c| grants.may(p, &c.spec.scope()))
        .map(|c| c.spec.name.to_string())
        .collect())
}

/// What an admin request was, for its audit entry: its kind and the object it names
/// (never a secret, nor the bytes of a proposal).
#[derive(Debug, Clone)]
pub struct Described {
    kind: String,
    detail: String,
    proposal: Option<String>,
}

impl Described {
    /// The same request, made by a console page.
    pub fn via_console(mut self) -> Described {
        self.kind = format!("console:{}", self.kind);
        self
    }
}

pub fn describe(request: &Request) -> Described {
    let kind = serde_json::to_value(request)
        .ok()
        .and_then(|v| v.get("request").and_then(|k| k.as_str().map(str::to_owned)))
        .unwrap_or_default();
    let (detail, proposal) = match request {
        Request::CaShow { name }
        | Request::CaCert { name }
        | Request::CaChain { name }
        | Request::CaCsr { name }
        | Request::CaCrl { name }
        | Request::ProfileShow { name }
        | Request::RoleShow { name } => (name.clone(), None),
        Request::CertShow { ca, serial } => {
            (format!("{} {serial}", ca.as_deref().unwrap_or("*")), None)
        }
        Request::CertRevoke { ca, serial, reason } => (format!("{ca} {serial} {reason}"), None),
        Request::CertList {
            ca,
            status,
            search,
            expires,
            name,
            ..
        }
        | Request::CertExport {
            ca,
            status,
            search,
            expires,
            name,
        } => (
            format!(
                "ca={} status={} search={}{}{}",
                ca.as_deref().unwrap_or("*"),
                status
                    .map(|s| format!("{s:?}").to_lowercase())
                    .unwrap_or_default(),
                search.as_deref().unwrap_or(""),
                name.as_deref()
                    .map(|n| format!(" name={n}"))
                    .unwrap_or_default(),
                match (expires.after, expires.before) {
                    (None, None) => String::new(),
                    (a, b) => format!(
                        " expires={}..{}",
                        a.map(proto::rfc3339).unwrap_or_default(),
                        b.map(proto::rfc3339).unwrap_or_default()
                    ),
                }
            ),
            None,
        ),
        Request::ChallengeNew { profile, .. } => (profile.clone(), None),
        // Never the password.
        Request::Pkcs12Issue {
            profile,
            subject,
            key,
            encoding,
            ..
        } => (
            format!(
                "{profile} {subject} key={} encoding={}",
                key.map(|k| k.to_string())
                    .unwrap_or_else(|| "default".into()),
                encoding
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "default".into())
            ),
            None,
        ),
        Request::RequestApprove { id } | Request::RequestReject { id, .. } => (id.clone(), None),
        Request::Propose { body, .. } => (body.operation.summary(), Some(body.id.clone())),
        Request::Approve { id, .. } | Request::Reject { id, .. } | Request::ProposalShow { id } => {
            (String::new(), Some(id.clone()))
        }
        Request::KeyFetch { proposal, encoding } => (
            encoding.map(|e| e.to_string()).unwrap_or_default(),
            Some(proposal.clone()),
        ),
        Request::MdmRevoke { issuer, serial } => (format!("{issuer} {serial}"), None),
        Request::AuditList {
            actor, action, ca, ..
        } => (
            format!(
                "actor={} action={} ca={}",
                actor.as_deref().unwrap_or("*"),
                action.as_deref().unwrap_or("*"),
                ca.as_deref().unwrap_or("*")
            ),
            None,
        ),
        _ => (String::new(), None),
    };
    Described {
        kind,
        detail,
        proposal,
    }
}

/// Authorise `request` for `caller`, answer it with `f`, and append its audit entry (the
/// one path of every admin request and console page).
pub fn audited<T>(
    signer: &Signer,
    caller: &Caller,
    request: Request,
    console: bool,
    f: impl FnOnce(&Access, Request) -> Result<T>,
) -> Result<T> {
    let what = describe(&request);
    let what = if console { what.via_console() } else { what };
    let (granted, result) = match caller.authorize(signer, &request) {
        Ok(a) => {
            let r = f(&a, request);
            (Some(a), r)
        }
        Err(e) => (None, Err(e)),
    };
    record(
        signer,
        caller,
        what,
        granted.as_ref(),
        result.as_ref().map(|_| ()),
    );
    result
}

/// Append the audit entry of one admin request: who (name, certificate fingerprint,
/// address), the permission it used, what, about which CA, and how it ended. Changes are
/// also in their own entry, written in the transaction that made them. `whoami` is not
/// logged. Best effort: a failure is logged, the answer stands.
fn record(
    signer: &Signer,
    caller: &Caller,
    what: Described,
    access: Option<&Access>,
    result: std::result::Result<(), &Error>,
) {
    if what.kind.ends_with("whoami") {
        return;
    }
    let note = crate::store::Note {
        actor: caller.name.clone(),
        action: if what.kind.starts_with("console:") {
            what.kind
        } else {
            format!("request:{}", what.kind)
        },
        detail: what.detail,
        ca: access.and_then(|a| a.ca.clone()),
        fingerprint: Some(caller.fingerprint.clone()),
        source: Some(caller.source.to_string()),
        permission: access.and_then(|a| a.permission.map(|p| p.to_string())),
        outcome: Some(match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("{} {e}", e.http_status()),
        }),
        proposal: what.proposal,
    };
    if let Err(e) = signer.store().write(|tx| tx.record(note)) {
        tracing::error!(error = %e, "could not append an admin request to the audit log");
    }
}
