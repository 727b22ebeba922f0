//! The admin port's dispatch: one [`Request`] from an authenticated officer to the service
//! that answers it.

use super::access::{Access, Caller, cas_with, operation_scope};
use crate::engine::Signer;
use crate::issuance::x509;
use crate::report::Scope;
use crate::{Error, Result};
use proto::admin::{Request, Response};
use proto::roles::Permission;

/// Answer one admin request from an authenticated caller, whose permission for it and
/// scope were checked ([`Caller::authorize`]); listings keep only what `access` may see.
pub fn handle(signer: &Signer, caller: &Caller, access: &Access, req: Request) -> Result<Response> {
    let officer = caller.name.as_str();
    let grants = &access.grants;
    let scope =
        |p: Permission| -> Result<Scope> { Ok(Scope::Only(cas_with(signer.store(), grants, p)?)) };
    match req {
        Request::Whoami => {
            let g = signer.store().governance()?;
            let assignments = caller.assignments(&g).unwrap_or_default();
            Ok(Response::Whoami {
                officer: officer.to_owned(),
                quorum: g.quorum,
                rejections: g.rejections,
                officers: g.officers.into_iter().map(|o| o.name).collect(),
                roles: assignments.iter().map(|a| a.role.to_string()).collect(),
                permissions: grants
                    .permissions()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                scopes: grants
                    .permissions()
                    .into_iter()
                    .filter_map(|p| grants.tags_for(p).map(|t| (p, t)))
                    .collect(),
                assignments,
            })
        }
        Request::AdminList => Ok(Response::Admins {
            admins: signer.governance().admins()?,
        }),
        Request::RoleList => Ok(Response::Roles {
            roles: signer.governance().roles()?,
        }),
        Request::RoleShow { name } => signer
            .governance()
            .roles()?
            .into_iter()
            .find(|r| r.name == name)
            .map(|r| Response::Roles { roles: vec![r] })
            .ok_or_else(|| Error::NotFound(crate::error::Missing::Role(name))),
        Request::AuditCosign {
            checkpoint,
            algorithm,
            signature,
        } => {
            let line = signer
                .audit()
                .cosign(officer, &checkpoint, &algorithm, &signature)?;
            Ok(Response::Done {
                message: format!("cosigned: {line}"),
            })
        }
        Request::CaList => {
            let cas = signer
                .store()
                .cas()?
                .iter()
                .filter(|c| grants.may(Permission::CaRead, &c.spec.scope()))
                .map(|c| signer.cas().view(c, false))
                .collect::<Result<_>>()?;
            Ok(Response::Cas { cas })
        }
        Request::CaShow { name } => Ok(Response::Ca {
            ca: signer.cas().view(&signer.cas().ca(&name)?, true)?,
        }),
        Request::CaCert { name } => {
            let ca = signer.cas().ca(&name)?;
            let data = ca.cert.ok_or_else(|| {
                Error::Conflict(crate::error::Clash::AwaitingImport(name.clone()))
            })?;
            Ok(Response::Bytes { data })
        }
        Request::CaChain { name } => {
            let chain = signer.cas().chain(&signer.cas().ca(&name)?)?;
            Ok(Response::Bytes {
                data: x509::p7b(&chain)?,
            })
        }
        Request::CaCsr { name } => {
            let ca = signer.cas().ca(&name)?;
            let data = ca
                .csr
                .ok_or_else(|| Error::Conflict(crate::error::Clash::NoCsr(name.clone())))?;
            Ok(Response::Bytes { data })
        }
        Request::Propose { body, approval } => signer
            .governance()
            .propose(officer, body, approval)
            .inspect(|r| checkpoint_if_executed(signer, r)),
        Request::ProposalList => {
            let now = crate::now();
            let proposals = signer
                .store()
                .proposals()?
                .into_iter()
                .filter(|p| {
                    operation_scope(signer.store(), &p.body.operation)
                        .ok()
                        .flatten()
                        .is_none_or(|(_, tags)| grants.sees(&tags))
                })
                .map(|mut p| {
                    p.status = p.status_at(now);
                    p
                })
                .collect();
            Ok(Response::Proposals { proposals })
        }
        Request::ProposalShow { id } => {
            let mut proposal = signer.governance().proposal(&id)?;
            proposal.status = proposal.status_at(crate::now());
            Ok(Response::Proposal { proposal })
        }
        Request::Approve { id, approval } => signer
            .governance()
            .approve(officer, &id, approval)
            .inspect(|r| checkpoint_if_executed(signer, r)),
        Request::Reject { id, reason } => signer.governance().reject(officer, &id, reason),
        Request::AuditCheckpoint => Ok(Response::Bytes {
            data: signer
                .audit()
                .checkpoint()?
                .unwrap_or_default()
                .into_bytes(),
        }),
        Request::AuditList {
            actor,
            action,
            ca,
            limit,
            after,
        } => {
            let limit = limit.unwrap_or(100).clamp(1, 1000) as usize;
            let (entries, last, more) = signer.store().audit_page(after, limit, 100_000, |e| {
                actor.as_deref().is_none_or(|a| e.actor == a)
                    && action.as_deref().is_none_or(|a| e.action == a)
                    && ca.as_deref().is_none_or(|c| e.ca.as_deref() == Some(c))
            })?;
            Ok(Response::Audit {
                entries: entries
                    .into_iter()
                    .map(|e| proto::admin::AuditView {
                        seq: e.seq,
                        at: e.at,
                        actor: e.actor,
                        action: e.action,
                        detail: e.detail,
                        ca: e.ca,
                        fingerprint: e.fingerprint,
                        source: e.source,
                        permission: e.permission,
                        outcome: e.outcome,
                        proposal: e.proposal,
                    })
                    .collect(),
                next: if more { last } else { None },
            })
        }
        Request::AuditExport => Ok(Response::Bytes {
            data: signer.audit().export()?.encode().into_bytes(),
        }),
        Request::MdmRevoke { issuer, serial } => Ok(Response::MdmRevoked {
            outcome: signer.mdm_revoke(officer, &issuer, &serial)?,
        }),
        Request::ProfileList => {
            let cas = cas_with(signer.store(), grants, Permission::ProfileRead)?;
            Ok(Response::Profiles {
                profiles: signer
                    .store()
                    .values::<proto::profile::ProfileSpec>(crate::store::Table::Profiles)?
                    .into_iter()
                    .filter(|p| cas.contains(p.ca.as_str()))
                    .collect(),
            })
        }
        Request::ProfileShow { name } => Ok(Response::Profile {
            profile: signer.cas().profile(&name)?,
            scep_url: format!(
                "{}/scep/{}",
                signer.public_url().trim_end_matches('/'),
                name
            ),
        }),
        Request::ChallengeNew {
            profile,
            subject,
            sans,
            ttl_secs,
        } => signer
            .enroll()
            .new_challenge(officer, &profile, subject, sans, ttl_secs),
        Request::RequestList => {
            let cas = cas_with(signer.store(), grants, Permission::RequestApprove)?;
            let profiles: std::collections::HashMap<String, String> = signer
                .store()
                .values::<proto::profile::ProfileSpec>(crate::store::Table::Profiles)?
                .into_iter()
                .map(|p| (p.name.to_string(), p.ca.to_string()))
                .collect();
            Ok(Response::Requests {
                requests: signer
                    .store()
                    .values::<proto::admin::PendingView>(crate::store::Table::Pending)?
                    .into_iter()
                    .filter(|r| profiles.get(&r.profile).is_some_and(|ca| cas.contains(ca)))
                    .collect(),
            })
        }
        Request::RequestApprove { id } => {
            let rec = signer.enroll().approve_request(&id, officer)?;
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
            let rec = signer.revoke_cert(officer, &ca, &serial, r)?;
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
            signer.cas().ca(&name)?;
            let c = signer
                .revocation()
                .current_crl(&name)?
                .ok_or_else(|| Error::NotFound(crate::error::Missing::Crl(name.clone())))?;
            Ok(Response::Bytes {
                data: c.der.clone(),
            })
        }
        Request::RequestReject { id, reason } => {
            signer
                .enroll()
                .reject_request(&id, officer, reason.as_deref().unwrap_or(""))?;
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
            expires,
            name,
        } => {
            let q = crate::report::ListQuery {
                ca,
                status,
                search,
                limit,
                after,
                expires,
                name,
            };
            let page = crate::report::list(
                signer.store(),
                &q,
                &scope(Permission::CaRead)?,
                crate::now(),
            )?;
            Ok(Response::Certs {
                certs: page.certs,
                next: page.next,
            })
        }
        Request::CertShow { ca, serial } => Ok(Response::Cert {
            cert: Box::new(crate::report::show(
                signer.store(),
                ca.as_deref(),
                &serial,
                &scope(Permission::CaRead)?,
                crate::now(),
            )?),
        }),
        Request::CertExport {
            ca,
            status,
            search,
            expires,
            name,
        } => Ok(Response::Bytes {
            data: crate::report::export_csv(
                signer.store(),
                &crate::report::ListQuery {
                    ca,
                    status,
                    search,
                    limit: None,
                    after: None,
                    expires,
                    name,
                },
                &scope(Permission::ReportExport)?,
                crate::now(),
            )?,
        }),
        Request::Pkcs12Issue {
            profile,
            subject,
            sans,
            key,
            encoding,
            password,
        } => {
            let issued = signer.enroll().issue_pkcs12(
                officer,
                crate::enroll::Pkcs12Request {
                    profile,
                    subject,
                    sans,
                    key,
                    encoding,
                    password,
                },
            )?;
            Ok(Response::Pkcs12 {
                ca: issued.ca,
                serial: issued.serial,
                p12: issued.p12,
                password: issued.password.map(|p| proto::Secret(p.to_string())),
            })
        }
        Request::KeyFetch { proposal, encoding } => {
            let got = signer
                .enroll()
                .recovered_pkcs12(officer, &proposal, encoding)?;
            Ok(Response::Pkcs12 {
                ca: got.ca,
                serial: got.serial,
                p12: got.p12,
                password: got.password.map(|p| proto::Secret(p.to_string())),
            })
        }
        Request::CertStats => Ok(Response::CertStats {
            cas: crate::report::stats(signer.store(), &scope(Permission::CaRead)?, crate::now())?,
        }),
    }
}

/// Every executed proposal gets a signed audit checkpoint at once (best effort: the
/// periodic checkpoint catches up if this one fails).
fn checkpoint_if_executed(signer: &Signer, r: &Response) {
    if let Response::Proposal { proposal } = r
        && proposal.status == proto::governance::Status::Executed
        && let Err(e) = signer.audit().checkpoint()
    {
        tracing::error!(error = %e, "audit checkpoint after an executed proposal failed");
    }
}
