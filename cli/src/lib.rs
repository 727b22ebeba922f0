//! The `castellan` admin CLI: argument parsing and the commands, one file per command
//! group. Every CA-changing command builds a proposal, signs its digest with the officer's
//! key and sends it; `proposal approve` recomputes the digest from the proposal itself
//! before signing. It speaks only the admin protocol of the `proto` crate: it links no
//! store, no token and no signer code.
#![forbid(unsafe_code)]

mod admin;
pub mod args;
mod audit;
mod ca;
mod cert;
mod challenge;
pub mod client;
pub mod error;
mod export;
pub mod needs;
pub mod officer;
mod pkcs12;
mod profile;
mod proposal;
mod request;
mod session;

pub use error::{Error, Result};

use proto::admin::{Request, Response};
use proto::model::Lifetime;

use args::{ChallengeCommand, Cli, Command, Json};
use session::read;

/// Run the CLI; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match dispatch(&cli).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(cli: &Cli) -> Result<()> {
    // Minting a signed challenge needs only the MDM key.
    if let Command::Challenge(ChallengeCommand::Sign {
        key,
        profile,
        subject,
        san,
        ttl,
    }) = &cli.command
    {
        proto::model::Subject::new(subject)?;
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| Error::Transport(format!("no randomness: {e}")))?;
        let claims = proto::challenge::Claims {
            profile: profile.clone(),
            sub: subject.clone(),
            sans: san
                .iter()
                .map(|s| proto::model::San::parse(s))
                .collect::<proto::Result<_>>()?,
            exp: proto::now() + Lifetime::new(ttl)?.secs() as i64,
            nonce: hex::encode(nonce),
        };
        println!(
            "{}",
            proto::challenge::sign(&read(key, "MDM key")?, &claims)?
        );
        return Ok(());
    }
    if let Command::Audit(args::AuditCommand::Verify {
        file,
        root,
        previous,
        cosigner,
    }) = &cli.command
    {
        return audit::verify(file, root, previous.as_ref(), cosigner);
    }
    let s = cli.session()?;
    match &cli.command {
        Command::Whoami(Json { json }) => {
            let answer = s.client.call(&Request::Whoami).await?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&answer).unwrap_or_default()
                );
            } else if let Response::Whoami {
                officer,
                quorum,
                rejections,
                officers,
                permissions,
                assignments,
                scopes,
                ..
            } = answer
            {
                println!(
                    "admin {officer}; quorum {quorum} of {} ({}); {rejections} rejection{} end{} a proposal",
                    officers.len(),
                    officers.join(", "),
                    if rejections == 1 { "" } else { "s" },
                    if rejections == 1 { "s" } else { "" },
                );
                let list: Vec<String> = assignments
                    .iter()
                    .map(|a| format!("{} on {}", a.role, a.tags))
                    .collect();
                println!("assignments: {}", list.join("; "));
                println!("permissions: {}", permissions.join(", "));
                if scopes.values().any(|t| *t != proto::roles::Tags::All) {
                    for (p, t) in &scopes {
                        println!("  {p} on {t}");
                    }
                }
            }
            Ok(())
        }
        Command::Ca(c) => ca::ca(&s, c).await,
        Command::Proposal(p) => proposal::proposal(&s, p).await,
        Command::Profile(p) => profile::profile(&s, p).await,
        Command::Challenge(c) => challenge::challenge(&s, c).await,
        Command::Request(r) => request::request(&s, r).await,
        Command::Cert(c) => cert::cert(&s, c).await,
        Command::Export(e) => export::export(&s, e).await,
        Command::Audit(a) => audit::audit(&s, a).await,
        Command::Admin(a) => admin::admin(&s, a).await,
        Command::Role(r) => admin::role(&s, r).await,
        Command::Quorum(q) => admin::quorum(&s, q).await,
        Command::Pkcs12(p) => pkcs12::pkcs12(&s, p).await,
        Command::Key(k) => pkcs12::key(&s, k).await,
    }
}
