//! castellan-edge: the keyless SCEP (RFC 8894) HTTP front end.
//!
//! The edge holds no key and no store. It parses the untrusted HTTP request and the
//! PKIMessage first (so garbage never reaches the signer), then forwards the request
//! over the signing socket ([`proto::wire`]) to castellan-signer, which parses it again
//! and makes every decision.
//!
//! - [`route`]: paths, query and GET message decoding (RFC 8894 §4.1);
//! - [`signer`]: the pooled, multiplexed signing-socket client;
//! - [`ocsp`]: `/ocsp` over HTTP (the ASN.1 is [`proto::ocsp`], shared with the signer);
//! - [`cache`]: GetCACaps/GetCACert/GetNextCACert copies, served while the signer is down;
//! - [`limits`]: header/body/idle timeouts and the connection caps, with shedding;
//! - [`metrics`]: counters and the Prometheus text encoder (`--metrics-listen`);
//! - [`serve`]: the hyper HTTP/1.1 server; [`run`]: bind, READY, serve until SIGTERM/SIGINT.

mod cache;
mod error;
mod http;
pub mod limits;
pub mod metrics;
mod ocsp;
mod publish;
pub mod route;
pub mod signer;

#[cfg(all(test, feature = "client"))]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

pub use cache::DEFAULT_TTL;
use castellan_systemd::notify;
pub use error::{Error, SignerError};
pub use http::{serve, serve_with_metrics};
pub use limits::Limits;
pub use route::{Operation, Profile};
pub use signer::{SignerConfig, SignerPool};

/// Default `--max-body`: the largest PKIMessage the parser accepts.
pub const DEFAULT_MAX_BODY: usize = crate::message::MAX_MESSAGE;

/// The edge's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub signer: SignerConfig,
    /// Profile for `/cgi-bin/pkiclient.exe` without `profile=`.
    pub default_profile: Option<Profile>,
    /// Largest POST body (RFC 8894 §4.3 PKIOperation); more is answered 413.
    pub max_body: usize,
    /// Timeouts and connection caps ([`limits`]).
    pub limits: Limits,
    /// How long a GetCACaps/GetCACert/GetNextCACert reply is served without asking.
    pub cache_ttl: Duration,
    /// Where the last good CRLs and CA certificates are kept (served while the signer is down).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Where to serve `GET /metrics` (Prometheus text format), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// Defaults for everything but the signing socket.
    pub fn new(signer_socket: std::path::PathBuf) -> Self {
        Config {
            signer: SignerConfig::new(signer_socket),
            default_profile: None,
            max_body: DEFAULT_MAX_BODY,
            limits: Limits::default(),
            cache_ttl: DEFAULT_TTL,
            cache_dir: None,
            metrics_listen: None,
        }
    }

    /// Refuse a configuration that cannot work.
    pub fn check(&self) -> Result<(), Error> {
        if self.max_body == 0 || self.max_body > crate::message::MAX_MESSAGE {
            return Err(Error::Config(format!(
                "max body must be 1 to {} bytes (the largest PKIMessage), not {}",
                crate::message::MAX_MESSAGE,
                self.max_body
            )));
        }
        if self.signer.connections == 0 || self.signer.connections > 64 {
            return Err(Error::Config("signer connections must be 1 to 64".into()));
        }
        let l = &self.limits;
        if l.max_connections == 0 || l.max_per_address == 0 {
            return Err(Error::Config(
                "max connections and max connections per address must be at least 1".into(),
            ));
        }
        if [l.header_timeout, l.body_timeout, l.idle_timeout].contains(&Duration::ZERO) {
            return Err(Error::Config("timeouts must be longer than zero".into()));
        }

        if self.signer.socket.as_os_str().is_empty() {
            return Err(Error::Config("the signer socket path is empty".into()));
        }
        Ok(())
    }
}

/// Bind the HTTP listener (an [`Error::Config`] if the address is unusable).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))
}

/// What `castellan-edge run` does: check the config, raise RLIMIT_NOFILE to the hard
/// limit (warning if the caps do not fit), bind the device port and the metrics port, log
/// `castellan-edge ready` and send READY=1 to systemd, serve until SIGTERM or SIGINT.
pub async fn run(listen: SocketAddr, config: Config) -> Result<(), Error> {
    config.check()?;
    if config.metrics_listen == Some(listen) {
        return Err(Error::Config(
            "--metrics-listen must differ from --listen: metrics are never served on the device port".into(),
        ));
    }
    limits::raise_nofile(&config.limits);
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::Config(format!("cannot handle SIGTERM: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| Error::Config(format!("cannot handle SIGINT: {e}")))?;
    let listener = bind(listen).await?;
    let local = listener.local_addr().unwrap_or(listen);
    let metrics = match config.metrics_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    if let Some(m) = &metrics
        && let Ok(addr) = m.local_addr()
    {
        tracing::info!("metrics on http://{addr}/metrics");
    }
    if !config.signer.socket.exists() {
        tracing::warn!(
            socket = %config.signer.socket.display(),
            "the signer socket does not exist yet; requests get 503 until it does"
        );
    }
    tracing::info!(
        "castellan-edge ready: listening on http://{local}, signer socket {}",
        config.signer.socket.display()
    );
    notify("READY=1");
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        notify("STOPPING=1");
    };
    serve_with_metrics(listener, metrics, config, shutdown).await
}
