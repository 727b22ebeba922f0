//! `castellan-signer`: config and wiring only; the logic is in the `daemon` library.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use castellan_systemd::notify;
use clap::{Parser, Subcommand};
use daemon::Error;
use daemon::app::config::{self, HsmSection};
use daemon::app::init::InitOptions;
use daemon::engine::Signer;
use daemon::error::ConfigError;
use daemon::ports::admin as server;

#[derive(Debug, Parser)]
#[command(
    name = "castellan-signer",
    version,
    about = "Castellan signer: CA keys in PKCS#11, store, quorum, admin port"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Where {
    /// State directory (holds signer.toml, store.redb, admin-ca.pem)
    #[arg(long, conflicts_with = "config")]
    state_dir: Option<PathBuf>,
    /// Config file (its directory is the state directory unless it sets state-dir)
    #[arg(long)]
    config: Option<PathBuf>,
}

// Parsed once at start-up: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new appliance state: officers, quorum, admin TLS identity (keys in the token)
    Init {
        #[arg(long)]
        state_dir: PathBuf,
        /// Approvals needed for every CA operation
        #[arg(long)]
        quorum: u32,
        /// NAME=CERT.pem, once per officer
        #[arg(long = "officer", required = true)]
        officers: Vec<String>,
        /// PKCS#11 module
        #[arg(long, default_value = hsm::SOFTHSM2_MODULE)]
        module: PathBuf,
        #[arg(long, default_value = "castellan")]
        token_label: String,
        /// File holding the token user PIN (mode 600)
        #[arg(long, required_unless_present = "pin_credential")]
        pin_file: Option<PathBuf>,
        /// systemd credential holding the PIN (LoadCredential=NAME:...)
        #[arg(long)]
        pin_credential: Option<String>,
        #[arg(long, default_value = "127.0.0.1:8443")]
        admin_listen: SocketAddr,
        /// Names for the admin TLS certificate (default: localhost, 127.0.0.1, ::1)
        #[arg(long = "admin-host")]
        admin_hosts: Vec<String>,
        /// Base URL of the edge, for CRL and AIA URLs in issued certificates
        #[arg(long, default_value = "http://localhost:8080")]
        public_url: String,
        /// Path of the signing socket for castellan-edge
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Peer uid allowed on the signing socket (default: the signer's own uid)
        #[arg(long)]
        socket_uid: Option<u32>,
        /// Group of the signing socket file
        #[arg(long)]
        socket_gid: Option<u32>,
    },
    /// Serve the admin port
    Run(Where),
    /// Validate the config, the PIN, the token and every key; then exit
    CheckConfig(Where),
}

fn main() {
    castellan_systemd::init_logging();
    let code = match Cli::parse().command {
        Command::Init {
            state_dir,
            quorum,
            officers,
            module,
            token_label,
            pin_file,
            pin_credential,
            admin_listen,
            admin_hosts,
            public_url,
            socket,
            socket_uid,
            socket_gid,
        } => init(Init {
            state_dir,
            quorum,
            officers,
            hsm: HsmSection {
                module,
                token_label,
                pin_file,
                pin_credential,
            },
            admin_listen,
            hosts: admin_hosts,
            public_url,
            socket: socket.map(|path| config::SocketSection {
                path,
                uid: socket_uid,
                gid: socket_gid,
            }),
        }),
        Command::Run(w) => run(w),
        Command::CheckConfig(w) => check(w),
    };
    std::process::exit(code);
}

fn fail(e: Error) -> i32 {
    eprintln!("castellan-signer: {e}");
    daemon::app::exit_code(&e)
}

/// `init`'s arguments.
struct Init {
    state_dir: PathBuf,
    quorum: u32,
    officers: Vec<String>,
    hsm: HsmSection,
    admin_listen: SocketAddr,
    hosts: Vec<String>,
    public_url: String,
    socket: Option<config::SocketSection>,
}

fn init(a: Init) -> i32 {
    let Init {
        state_dir,
        quorum,
        officers,
        hsm,
        admin_listen,
        mut hosts,
        public_url,
        socket,
    } = a;
    let mut list = Vec::new();
    for o in officers {
        let Some((name, path)) = o.split_once('=') else {
            return fail(Error::Invalid(format!(
                "--officer {o:?}: use NAME=CERT.pem"
            )));
        };
        match std::fs::read(path) {
            Ok(pem) => list.push((name.to_owned(), pem)),
            Err(e) => return fail(Error::Invalid(format!("cannot read {path}: {e}"))),
        }
    }
    if hosts.is_empty() {
        hosts = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let ip = admin_listen.ip();
        if !ip.is_unspecified() && !hosts.contains(&ip.to_string()) {
            hosts.push(ip.to_string());
        }
    }
    let opts = InitOptions {
        state_dir: &state_dir,
        hsm,
        quorum,
        officers: list,
        admin_listen,
        admin_names: hosts,
        public_url,
        socket,
    };
    match daemon::app::init::init(opts) {
        Ok(()) => {
            println!(
                "initialised {}: give officers {}",
                state_dir.display(),
                state_dir.join(config::ADMIN_CA_FILE).display()
            );
            0
        }
        Err(e) => fail(e),
    }
}

fn open(w: &Where) -> Result<(config::Loaded, Signer), Error> {
    let loaded = config::load(w.state_dir.as_deref(), w.config.as_deref())?;
    let signer = daemon::app::init::open(&loaded)?;
    Ok((loaded, signer))
}

fn check(w: Where) -> i32 {
    match open(&w).and_then(|(_, s)| s.check_keys()) {
        Ok(report) => {
            for line in report {
                println!("{line}");
            }
            println!("configuration ok");
            0
        }
        Err(e) => fail(e),
    }
}

fn run(w: Where) -> i32 {
    let started = std::time::Instant::now();
    let (loaded, signer) = match open(&w) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    // The audit key is made (once) before anything else can use the token: SoftHSM2 does
    // not generate two key pairs at the same time.
    if let Err(e) = signer.audit().ensure_key() {
        return fail(e);
    }
    let signer = Arc::new(signer);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(Error::Config(ConfigError::io(
                "cannot start the runtime",
                e,
            )));
        }
    };
    rt.block_on(async move {
        let addr = loaded.config.admin_listen;
        let listener = match server::bind(addr).await {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        let socket = match &loaded.config.socket {
            Some(sock) => match daemon::ports::socket::bind(&sock.path, sock.gid) {
                Ok(l) => Some((
                    l,
                    sock.uid.unwrap_or_else(|| nix::unistd::getuid().as_raw()),
                    sock.path.clone(),
                )),
                Err(e) => return fail(e),
            },
            None => None,
        };
        // Checked by config::load already; an unreadable file now is a config error too.
        let connector = match loaded.config.mdm.as_ref().map(|m| m.identity()) {
            Some(Ok(c)) => c,
            Some(Err(e)) => return fail(e),
            None => None,
        };
        let cas = signer.store().cas().map(|c| c.len()).unwrap_or(0);
        notify("READY=1");
        tracing::info!(
            "castellan-signer ready: admin port https://{addr}, {cas} CAs, started in {} ms",
            started.elapsed().as_millis()
        );
        if let Some((_, uid, path)) = &socket {
            tracing::info!("signing socket {} (peer uid {uid})", path.display());
        }
        let sock_task = async {
            match socket {
                Some((l, uid, _)) => daemon::ports::socket::serve(l, signer.clone(), uid).await,
                None => std::future::pending().await,
            }
        };
        tokio::spawn(daemon::app::tasks::crl_publisher(signer.clone()));
        tokio::spawn(daemon::app::tasks::intune_sweeper(signer.clone()));
        tokio::spawn(daemon::app::tasks::health_watch(signer.clone()));
        tokio::spawn(daemon::app::tasks::audit_checkpointer(
            signer.clone(),
            loaded.config.audit,
        ));
        let healer = daemon::app::tasks::store_healer(signer.clone(), loaded.config.store.timing());
        let serve = async {
            tokio::select! {
                r = server::serve(listener, signer.clone(), connector) => r,
                r = sock_task => r,
                e = healer => Err(e),
            }
        };
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => return fail(Error::Config(ConfigError::io("cannot watch SIGTERM", e))),
            };
        let code = tokio::select! {
            r = serve => match r { Ok(()) => 0, Err(e) => fail(e) },
            _ = term.recv() => { notify("STOPPING=1"); tracing::info!("stopping"); 0 }
            _ = tokio::signal::ctrl_c() => { notify("STOPPING=1"); tracing::info!("stopping"); 0 }
        };
        // A last audit checkpoint covers everything logged before the stop.
        if let Err(e) = signer.audit().checkpoint() {
            tracing::error!(error = %e, "audit checkpoint at shutdown failed");
        }
        code
    })
}
