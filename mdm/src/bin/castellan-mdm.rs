//! castellan-mdm: `run`, `check-config`, `hash-password`, `revoke-now`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use mdm::{Connector, Error, config};

/// Exit status for a bad config (sysexits EX_CONFIG): systemd's RestartPreventExitStatus.
const EX_CONFIG: i32 = 78;

#[derive(Parser)]
#[command(
    name = "castellan-mdm",
    version,
    about = "Castellan's connector to MDM services"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the signer's socket, the challenge endpoint and Intune revocation polling.
    Run {
        #[arg(long, default_value = "/etc/castellan-mdm/mdm.toml")]
        config: PathBuf,
    },
    /// Load and check the config and the secrets it names; start nothing.
    CheckConfig {
        #[arg(long, default_value = "/etc/castellan-mdm/mdm.toml")]
        config: PathBuf,
    },
    /// Read a password on standard input and print its hash for `[[ndes]] password-hash`.
    HashPassword,
    /// One Intune revocation round now (download, revoke, upload), then exit.
    RevokeNow {
        #[arg(long, default_value = "/etc/castellan-mdm/mdm.toml")]
        config: PathBuf,
    },
}

fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Config(_) => EX_CONFIG,
        _ => 1,
    }
}

fn main() {
    let cli = Cli::parse();
    castellan_systemd::init_logging();
    let code = match run(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("castellan-mdm: {e}");
            exit_code(&e)
        }
    };
    std::process::exit(code);
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(e.to_string()))
}

fn run(cmd: Cmd) -> Result<(), Error> {
    match cmd {
        Cmd::HashPassword => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| Error::Runtime(e.to_string()))?;
            println!(
                "{}",
                mdm::password::Hash::new(line.trim_end_matches(['\r', '\n']))?
            );
            Ok(())
        }
        Cmd::CheckConfig { config: path } => {
            let c = config::load(&path)?;
            Connector::new(&c)?;
            println!(
                "{}: OK (intune: {}, webhooks: {}, NDES accounts: {})",
                path.display(),
                if c.intune.is_some() { "yes" } else { "no" },
                c.webhook.len(),
                c.ndes.len()
            );
            Ok(())
        }
        Cmd::RevokeNow { config: path } => {
            let c = config::load(&path)?;
            let connector = Connector::new(&c)?;
            let results = runtime()?
                .block_on(mdm::revocation::round(&connector))
                .map_err(Error::Runtime)?;
            for r in &results {
                println!("{} {} {}", r.request_context, r.code.name(), r.message);
            }
            Ok(())
        }
        Cmd::Run { config: path } => {
            let c = config::load(&path)?;
            let connector = Arc::new(Connector::new(&c)?);
            runtime()?.block_on(serve(c, connector))
        }
    }
}

async fn serve(c: config::Config, connector: Arc<Connector>) -> Result<(), Error> {
    let signer_uid = c
        .signer_uid
        .unwrap_or_else(|| nix::unistd::getuid().as_raw());
    let socket = mdm::link::bind(&c.socket, c.socket_gid).map_err(Error::Config)?;
    let https = match &c.https {
        Some(h) => {
            let tls = mdm::ndes::tls(h).map_err(Error::Config)?;
            let l = tokio::net::TcpListener::bind(h.listen)
                .await
                .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", h.listen)))?;
            tracing::info!("challenge endpoint https://{}{}", h.listen, mdm::ndes::PATH);
            Some((l, tls))
        }
        None => None,
    };
    tokio::spawn(mdm::revocation::poll(connector.clone()));
    if let Some((l, tls)) = https {
        tokio::spawn(mdm::ndes::serve(l, tls, connector.clone()));
    }
    tracing::info!(socket = %c.socket.display(), signer_uid, "castellan-mdm ready");
    castellan_systemd::notify("READY=1");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Runtime(e.to_string()))?;
    tokio::select! {
        () = mdm::link::serve(socket, connector, signer_uid) => {}
        _ = term.recv() => tracing::info!("stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    let _ = std::fs::remove_file(&c.socket);
    Ok(())
}
