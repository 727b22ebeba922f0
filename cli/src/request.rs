//! `castellan request …`: SCEP requests waiting for manual approval.

use proto::admin::{Request, Response};

use crate::args::*;
use crate::session::Session;
use serde_json::json;

use crate::{Error, Result};

pub async fn request(s: &Session, c: &RequestCommand) -> Result<()> {
    match c {
        RequestCommand::List(j) => {
            let Response::Requests { requests } = s.client.call(&Request::RequestList).await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            if j.json {
                let v: Vec<_> = requests
                    .iter()
                    .map(|r| json!({"id": r.id, "profile": r.profile, "transaction_id": r.transaction_id, "subject": r.subject, "sans": r.sans, "created_at": r.created_at, "renewal": r.renewed_from.is_some()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("{:<16} {:<16} SUBJECT", "ID", "PROFILE");
                for r in requests {
                    println!("{:<16} {:<16} {}", r.id, r.profile, r.subject);
                }
            }
            Ok(())
        }
        RequestCommand::Approve { id } => {
            let Response::Issued { ca, serial } = s
                .client
                .call(&Request::RequestApprove { id: id.clone() })
                .await?
            else {
                return Err(Error::Transport("unexpected answer".into()));
            };
            println!("issued {serial} from CA {ca}");
            Ok(())
        }
        RequestCommand::Reject { id, reason } => {
            s.client
                .call(&Request::RequestReject {
                    id: id.clone(),
                    reason: reason.clone(),
                })
                .await?;
            println!("request {id} rejected");
            Ok(())
        }
    }
}
