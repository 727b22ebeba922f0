//! `castellan-edge`: arguments and wiring only; the logic is in `scep::edge`.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use std::time::Duration;

use scep::edge::{self, Config, Error, Limits, Profile, limits};

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
        /// Seconds a client has to send a request line and headers (from connecting, or from
        /// the first byte of the next request on a kept-alive connection); a head that
        /// started but did not finish gets 408, then the connection is closed
        #[arg(long, value_name = "SECONDS", default_value_t = secs(limits::DEFAULT_HEADER_TIMEOUT),
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        header_timeout: u64,
        /// Seconds a client has to send a POST body (PKIOperation, OCSP); then 408
        #[arg(long, value_name = "SECONDS", default_value_t = secs(limits::DEFAULT_BODY_TIMEOUT),
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        body_timeout: u64,
        /// Seconds a kept-alive connection may wait for its next request (or make no
        /// progress reading a response) before it is closed
        #[arg(long, value_name = "SECONDS", default_value_t = secs(limits::DEFAULT_IDLE_TIMEOUT),
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        idle_timeout: u64,
        /// Most HTTP connections open at once. At the cap, the connection idle or stuck
        /// reading its head the longest is closed to admit the new one (connections whose
        /// request is being answered are never cut). Each costs a file descriptor: the edge
        /// raises its RLIMIT_NOFILE soft limit to the hard limit and warns if this does not fit
        #[arg(long, default_value_t = limits::DEFAULT_MAX_CONNECTIONS,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
        max_connections: usize,
        /// Most HTTP connections open at once from one client address (IPv4 address, or
        /// IPv6 /64); at the cap, that address's longest idle or stuck connection is closed
        #[arg(long, default_value_t = limits::DEFAULT_MAX_PER_ADDRESS,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
        max_connections_per_address: usize,
        /// Serve Prometheus metrics (text format 0.0.4) on GET /metrics at this address,
        /// e.g. 127.0.0.1:9180; never on the device port
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<SocketAddr>,
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
            header_timeout,
            body_timeout,
            idle_timeout,
            max_connections,
            max_connections_per_address,
            metrics_listen,
        } => {
            let mut config = Config::new(signer_socket);
            config.default_profile = default_profile;
            config.max_body = max_body;
            config.signer.connections = usize::from(signer_connections);
            config.limits = Limits {
                header_timeout: Duration::from_secs(header_timeout),
                body_timeout: Duration::from_secs(body_timeout),
                idle_timeout: Duration::from_secs(idle_timeout),
                max_connections,
                max_per_address: max_connections_per_address,
            };
            config.metrics_listen = metrics_listen;
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

/// A default duration as whole seconds, for `--help`.
const fn secs(d: Duration) -> u64 {
    d.as_secs()
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
