//! `castellan proposal …`: list, show, approve and reject; and sending new proposals.

use proto::admin::{Request, Response};

use crate::args::*;
use crate::session::Session;
use serde_json::json;

use crate::{Error, Result};
use proto::governance::{Operation, Proposal, ProposalBody};

pub async fn propose(s: &Session, operation: Operation, json: bool) -> Result<()> {
    let Response::Whoami { officer, .. } = s.client.call(&Request::Whoami).await? else {
        return Err(Error::Transport("unexpected answer".into()));
    };
    let body = ProposalBody::new(operation, &officer, proto::governance::DEFAULT_TTL_SECS)?;
    let digest = body.digest()?;
    let approval = crate::officer::sign_approval(&s.key_pem, &digest, &officer)?;
    let p = expect_proposal(s.client.call(&Request::Propose { body, approval }).await?)?;
    print_proposal(&p, json);
    Ok(())
}

fn expect_proposal(r: Response) -> Result<Proposal> {
    match r {
        Response::Proposal { proposal } => Ok(proposal),
        _ => Err(Error::Transport("unexpected answer".into())),
    }
}

pub async fn proposal(s: &Session, c: &ProposalCommand) -> Result<()> {
    match c {
        ProposalCommand::List(j) => {
            let Response::Proposals { proposals } = s.client.call(&Request::ProposalList).await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if j.json {
                let v: Vec<_> = proposals.iter().map(proposal_json).collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("{:<32} {:<9} {:<9} SUMMARY", "ID", "STATUS", "APPROVALS");
                for p in proposals {
                    println!(
                        "{:<32} {:<9} {:<9} {}",
                        p.body.id,
                        p.status,
                        format!("{}/{}", p.approvals.len(), p.quorum),
                        p.body.operation.summary()
                    );
                }
            }
            Ok(())
        }
        ProposalCommand::Show { id, json } => {
            let p = expect_proposal(
                s.client
                    .call(&Request::ProposalShow { id: id.clone() })
                    .await?,
            )?;
            if json.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&proposal_json(&p)).unwrap_or_default()
                );
            } else {
                print_proposal(&p, false);
                println!(
                    "operation:\n{}",
                    serde_json::to_string_pretty(&p.body.operation).unwrap_or_default()
                );
            }
            Ok(())
        }
        ProposalCommand::Approve { id, digest, json } => {
            let Response::Whoami { officer, .. } = s.client.call(&Request::Whoami).await? else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            let p = expect_proposal(
                s.client
                    .call(&Request::ProposalShow { id: id.clone() })
                    .await?,
            )?;
            // Sign what the proposal says, not what the signer claims its digest is.
            let ours = p.body.digest()?;
            if hex::encode(ours) != p.digest {
                return Err(Error::Forbidden(format!(
                    "the signer reports digest {} but the proposal's content hashes to {}: not approving",
                    p.digest,
                    hex::encode(ours)
                )));
            }
            if let Some(expected) = digest
                && !expected.eq_ignore_ascii_case(&p.digest)
            {
                return Err(Error::Forbidden(format!(
                    "proposal {id} has digest {}, not the {expected} you reviewed: not approving",
                    p.digest
                )));
            }
            let approval = crate::officer::sign_approval(&s.key_pem, &ours, &officer)?;
            let p = expect_proposal(
                s.client
                    .call(&Request::Approve {
                        id: id.clone(),
                        approval,
                    })
                    .await?,
            )?;
            print_proposal(&p, json.json);
            Ok(())
        }
        ProposalCommand::Reject { id, reason, json } => {
            let p = expect_proposal(
                s.client
                    .call(&Request::Reject {
                        id: id.clone(),
                        reason: reason.clone(),
                    })
                    .await?,
            )?;
            print_proposal(&p, json.json);
            Ok(())
        }
    }
}

/// The stable JSON shape of a proposal for scripts.
pub fn proposal_json(p: &Proposal) -> serde_json::Value {
    json!({
        "id": p.body.id,
        "digest": p.digest,
        "status": p.status.to_string(),
        "approvals": p.approvals.len(),
        "quorum": p.quorum,
        "approved_by": p.approvals.iter().map(|a| a.officer.clone()).collect::<Vec<_>>(),
        "rejected_by": p.rejections.iter().map(|r| r.officer.clone()).collect::<Vec<_>>(),
        "rejections_needed": p.reject_quorum,
        "summary": p.body.operation.summary(),
        "proposer": p.body.proposer,
        "created_at": p.body.created_at,
        "expires_at": p.body.expires_at,
        "outcome": p.outcome,
        "operation": p.body.operation,
    })
}

fn print_proposal(p: &Proposal, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&proposal_json(p)).unwrap_or_default()
        );
        return;
    }
    println!("proposal  {}", p.body.id);
    println!("summary   {}", p.body.operation.summary());
    println!("digest    {}", p.digest);
    println!(
        "approvals {}/{} ({})",
        p.approvals.len(),
        p.quorum,
        p.approvals
            .iter()
            .map(|a| a.officer.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("status    {}", p.status);
    if let Some(o) = &p.outcome {
        println!("outcome   {o}");
    }
}
