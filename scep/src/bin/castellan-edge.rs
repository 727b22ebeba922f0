//! `castellan-edge`: arguments and wiring only; the logic is in `scep::edge`.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use scep::edge::{self, Config, Error, Profile};

/// sysexits.h EX_CONFIG: the configuration is unusable.
const EX_CONFIG: i32 = 78;

#[derive(Debug, Parser)]
#[command(
    name = "castellan-edge",
    version,
    about = "Castellan edge: the keyless SCEP (RFC 8894) HTTP front end"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve SCEP over HTTP, forwarding to castellan-signer's signing socket
    Run {
        /// castellan-signer's signing socket
        #[arg(long)]
        signer_socket: PathBuf,
        /// HTTP address to listen on, e.g. 0.0.0.0:8080
        #[arg(long)]
        listen: SocketAddr,
        /// Profile for /cgi-bin/pkiclient.exe requests without profile=
        #[arg(long)]
        default_profile: Option<Profile>,
        /// Largest PKIOperation POST body, in bytes
        #[arg(long, default_value_t = edge::DEFAULT_MAX_BODY)]
        max_body: usize,
        /// Runtime worker threads (default: one per CPU)
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: Option<u16>,
        /// Connections kept open to the signer
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=64))]
        signer_connections: u8,
        /// Directory for the last good CRLs and CA certificates (served while the signer is down)
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

fn main() {
    castellan_systemd::init_logging();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            let _ = e.print();
            std::process::exit(EX_CONFIG);
        }
    };
    let code = match cli.command {
        Command::Run {
            signer_socket,
            listen,
            default_profile,
            max_body,
            workers,
            signer_connections,
            cache_dir,
        } => {
            let mut config = Config::new(signer_socket);
            config.default_profile = default_profile;
            config.max_body = max_body;
            config.signer.connections = usize::from(signer_connections);
            if let Some(d) = &cache_dir
                && let Err(e) = std::fs::create_dir_all(d)
            {
                eprintln!("castellan-edge: cannot create {}: {e}", d.display());
                std::process::exit(EX_CONFIG);
            }
            config.cache_dir = cache_dir;
            run(listen, config, workers)
        }
    };
    std::process::exit(code);
}

fn run(listen: SocketAddr, config: Config, workers: Option<u16>) -> i32 {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = workers {
        rt.worker_threads(usize::from(n));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => return fail(Error::Config(format!("cannot start the runtime: {e}"))),
    };
    match rt.block_on(edge::run(listen, config)) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

fn fail(e: Error) -> i32 {
    eprintln!("castellan-edge: {e}");
    match e {
        Error::Config(_) => EX_CONFIG,
        _ => 1,
    }
}
