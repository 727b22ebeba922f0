//! The admin port's dispatch: one [`Request`] from an authenticated officer to the service
//! that answers it.

use crate::engine::Signer;
use crate::issuance::x509;
use crate::{Error, Result};
use proto::admin::{Request, Response};

/// Answer one admin request from an authenticated caller, whose permission for it was
/// checked ([`super::Caller::authorize`]).
pub fn handle(signer: &Signer, caller: &super::Caller, req: Request) -> Result<Response> {
    let officer = caller.name();
    match req {
        Request::Whoami => {
            let g = signer.store().governance()?;
            Ok(Response::Whoami {
                officer: officer.to_owned(),
                quorum: g.quorum,
                officers: g.officers.into_iter().map(|o| o.name).collect(),
                roles: caller.roles().iter().map(ToString::to_string).collect(),
                permissions: caller
                    .permissions()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            })
        }
        Request::CaList => {
            let cas = signer
                .store()
                .cas()?
                .iter()
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
            limit,
            after,
        } => {
            let limit = limit.unwrap_or(100).clamp(1, 1000) as usize;
            let (entries, last, more) = signer.store().audit_page(after, limit, 100_000, |e| {
                actor.as_deref().is_none_or(|a| e.actor == a)
                    && action.as_deref().is_none_or(|a| e.action == a)
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
        Request::ProfileList => Ok(Response::Profiles {
            profiles: signer.store().values(crate::store::Table::Profiles)?,
        }),
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
        Request::RequestList => Ok(Response::Requests {
            requests: signer.store().values(crate::store::Table::Pending)?,
        }),
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
        } => {
            let q = crate::report::ListQuery {
                ca,
                status,
                search,
                limit,
                after,
            };
            let page = crate::report::list(signer.store(), &q, crate::now())?;
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
                crate::now(),
            )?),
        }),
        Request::CertStats => Ok(Response::CertStats {
            cas: crate::report::stats(signer.store(), crate::now())?,
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
