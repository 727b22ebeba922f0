//! `castellan challenge …`: one-time challenges from the signer, and signed MDM
//! challenges minted locally.

use proto::admin::{Request, Response};

use crate::args::*;
use crate::session::Session;
use serde_json::json;

use crate::{Error, Result};
use proto::model::Lifetime;

pub async fn challenge(s: &Session, c: &ChallengeCommand) -> Result<()> {
    let ChallengeCommand::New {
        profile,
        subject,
        san,
        ttl,
        json,
    } = c
    else {
        return Ok(());
    };
    let req = Request::ChallengeNew {
        profile: profile.clone(),
        subject: subject.clone(),
        sans: san
            .iter()
            .map(|s| proto::model::San::parse(s))
            .collect::<proto::Result<_>>()?,
        ttl_secs: Lifetime::new(ttl)?.secs() as i64,
    };
    let Response::Challenge {
        challenge,
        expires_at,
    } = s.client.call(&req).await?
    else {
        return Err(Error::Transport("unexpected answer".into()));
    };
    if json.json {
        println!(
            "{}",
            json!({ "challenge": challenge, "expires_at": expires_at, "profile": profile })
        );
    } else {
        println!("{challenge}");
    }
    Ok(())
}
