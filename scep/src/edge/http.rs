//! The HTTP/1.1 server (hyper 1): SCEP over HTTP (RFC 8894 §4.1).
//!
//! Each request: 1. route it ([`super::route`]); 2. for GetCACaps, GetCACert and
//! GetNextCACert, answer from the cache or ask the signer ([`super::cache`]); 3. for
//! PKIOperation, take the message from the query (GET) or the body (POST, at most
//! `max_body` bytes), screen it with [`crate::message::screen`] (structure, messageType,
//! transactionID; the signer parses and verifies it once) and only then forward it; 4. map the reply, or the error ([`Error::status`]), to the answer.
//!
//! Around the requests: each connection is registered with the [`Tracker`] (caps,
//! shedding, per-phase timeouts; see [`super::limits`]) and counted in [`Metrics`]; the
//! metrics are served on their own listener only ([`serve_with_metrics`]).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use super::cache::Cache;
use super::error::raw_answer;
use super::limits::{Conn, Expired, Phase, Tracker};
use super::metrics::{self, Metrics, Snapshot};
use super::route::{self, Operation, Profile, Route};
use super::signer::SignerPool;
use super::{Config, Error};
use proto::wire::{Op, Reply};

/// RFC 8894 §3.5.1: GetCACaps answers one capability per line.
const CT_CAPS: &str = "text/plain";
/// RFC 8894 §4.2.1.1: a single CA certificate.
const CT_CA_CERT: &str = "application/x-x509-ca-cert";
/// RFC 8894 §4.2.1.2: a degenerate PKCS#7 with the RA and CA certificates.
const CT_CA_RA_CERT: &str = "application/x-x509-ca-ra-cert";
/// RFC 8894 §4.7.1.
const CT_NEXT_CA_CERT: &str = "application/x-x509-next-ca-cert";
/// RFC 8894 §4.3.1.
const CT_PKI_MESSAGE: &str = "application/x-pki-message";
/// Every error answer.
const CT_ERROR: &str = "text/plain; charset=utf-8";

/// Largest request head hyper buffers: a GET PKIOperation's URI must fit (hyper
/// answers a larger head itself).
const MAX_HEAD: usize = 256 * 1024;
/// Time to let open connections finish after a stop signal.
const DRAIN: Duration = Duration::from_secs(10);
/// Per-connection log lines (timeouts, framing errors, sheds) allowed per second; a flood
/// must not turn into a flood of journal lines. The rest are counted and summarised.
const LOG_LINES_PER_SECOND: u64 = 20;
/// Metrics connections served at once (the metrics port is for one or two scrapers).
const METRICS_CONNECTIONS: usize = 16;
/// errno: this process, or the whole system, is out of file descriptors.
const EMFILE: i32 = nix::errno::Errno::EMFILE as i32;
const ENFILE: i32 = nix::errno::Errno::ENFILE as i32;
/// How long a scrape waits to learn whether the signer answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared state of the server.
#[derive(Debug)]
struct Edge {
    default_profile: Option<Profile>,
    max_body: usize,
    body_timeout: Duration,
    signer: SignerPool,
    cache: Cache,
    publications: super::publish::Publications,
    tracker: Tracker,
    metrics: Arc<Metrics>,
    log_budget: LogBudget,
}

/// A successful answer.
#[derive(Debug)]
struct Answer {
    content_type: &'static str,
    body: Vec<u8>,
}

/// Serve SCEP on `listener` until `shutdown` completes, then let open connections
/// finish (at most 10 s).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    serve_with_metrics(listener, None, config, shutdown).await
}

/// [`serve`], and the Prometheus exposition on `GET /metrics` of `metrics` if given.
///
/// Steps per accepted connection: 1. register it with the [`Tracker`], which sheds an old
/// idle or slow connection if a cap is reached (or refuses this one with a 503 when every
/// candidate is busy); 2. serve it with hyper in a task of its own that also enforces
/// the header and idle timeouts ([`drive`]); 3. forget it when it closes.
pub async fn serve_with_metrics(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    config.check()?;
    let metrics = Arc::new(Metrics::default());
    let edge = Arc::new(Edge {
        default_profile: config.default_profile,
        max_body: config.max_body,
        body_timeout: config.limits.body_timeout,
        signer: SignerPool::new(config.signer),
        cache: Cache::new(config.cache_ttl),
        publications: super::publish::Publications::new(config.cache_dir),
        tracker: Tracker::new(config.limits, metrics.clone()),
        metrics,
        log_budget: LogBudget::default(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(l) = metrics_listener {
        tokio::spawn(serve_metrics(l, edge.clone(), stop_rx.clone()));
    }
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors (RLIMIT_NOFILE below the caps): free one by
                // shedding the oldest idle connection, as at the global cap. Otherwise,
                // or if every connection is busy, do not spin.
                let no_fd = matches!(e.raw_os_error(), Some(n) if n == EMFILE || n == ENFILE);
                if let Some(suppressed) = edge.log_budget.take() {
                    tracing::warn!(error = %e, suppressed, "accept failed");
                }
                if no_fd && edge.tracker.shed_oldest() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        edge.metrics.accepted();
        match edge.tracker.admit(peer) {
            Ok(conn) => {
                tokio::spawn(drive(edge.clone(), tcp, conn, stop_rx.clone()));
            }
            Err(reason) => {
                if let Some(suppressed) = edge.log_budget.take() {
                    tracing::info!(
                        %peer,
                        cap = reason.as_str(),
                        suppressed,
                        "connection refused: the cap is reached and every connection in it is answering a request"
                    );
                }
                // Best effort: the socket is new, its send buffer empty.
                let _ = tcp.try_write(&raw_answer(&Error::Busy(reason.as_str())));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + DRAIN;
    while edge.tracker.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match edge.tracker.open() {
        0 => tracing::info!("all connections closed"),
        n => tracing::warn!("{n} connections still open after {DRAIN:?}; closing them"),
    }
    Ok(())
}

/// Serve one connection until it closes, is shed, or times out (see [`super::limits`]).
/// hyper's own header timeout is off: this loop applies the edge's, per phase, and answers
/// a head that started but did not finish in time with a 408.
async fn drive(edge: Arc<Edge>, tcp: TcpStream, conn: Arc<Conn>, mut stop: watch::Receiver<bool>) {
    let io = Io {
        tcp,
        conn: conn.clone(),
        edge: edge.clone(),
        rewrite: Rewrite::None,
    };
    let service = EdgeService {
        edge: edge.clone(),
        conn: conn.clone(),
    };
    let mut http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io), service);
    let limits = edge.tracker.limits;
    let mut stopping = false;
    loop {
        let deadline = conn.deadline(&limits);
        let timer = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = &mut http => {
                if let Err(e) = r {
                    edge.log_connection_error(&conn, &e);
                }
                break;
            }
            () = conn.wake.notified() => {
                if let Some(reason) = conn.shed_reason() {
                    if let Some(suppressed) = edge.log_budget.take() {
                        tracing::info!(
                            peer = %conn.peer,
                            cap = reason.as_str(),
                            phase = ?conn.phase(),
                            suppressed,
                            "connection closed to make room for a new one"
                        );
                    }
                    break;
                }
            }
            () = timer => {
                let Some(what) = conn.expired(&limits, Instant::now()) else {
                    continue;
                };
                edge.metrics.timed_out(what);
                if let Expired::Head { started: true } = what {
                    edge.metrics.count_request("unframed", String::new(), 408);
                    if let Some(suppressed) = edge.log_budget.take() {
                        tracing::info!(
                            peer = %conn.peer,
                            status = 408,
                            suppressed,
                            "request head not received within {:?}: closing",
                            limits.header_timeout
                        );
                    }
                    // No response bytes are pending in this phase: hyper is reading.
                    let io = http.into_parts().io.into_inner();
                    let _ = io.tcp.try_write(&raw_answer(&Error::HeadTimeout));
                } else {
                    tracing::debug!(peer = %conn.peer, ?what, "connection timed out");
                }
                break;
            }
            r = stop.changed(), if !stopping => {
                stopping = true;
                // Stopping: a connection with no request being answered is closed now
                // (hyper's graceful shutdown would wait for a half-sent head); the others
                // finish their answer and close.
                if r.is_ok() {
                    if matches!(conn.phase(), Phase::Head | Phase::Idle) {
                        break;
                    }
                    Pin::new(&mut http).graceful_shutdown();
                }
            }
        }
    }
    edge.tracker.remove(&conn);
}

/// The per-connection hyper service: every request goes to [`Edge::handle`].
#[derive(Debug, Clone)]
struct EdgeService {
    edge: Arc<Edge>,
    conn: Arc<Conn>,
}

impl hyper::service::Service<Request<Incoming>> for EdgeService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let (edge, conn) = (self.edge.clone(), self.conn.clone());
        Box::pin(async move { Ok(edge.handle(req, &conn).await) })
    }
}

/// A TCP connection as hyper sees it, telling the [`Tracker`] when bytes arrive (a head
/// starts) and leave (a response makes progress), and giving the requests hyper rejects
/// before they reach the service (malformed request line or header: 400; head too large:
/// 431; URI too long: 414) a short text body: hyper sends those answers itself with an
/// empty body, so the bytes of its automatic answer are replaced here.
#[derive(Debug)]
struct Io {
    tcp: TcpStream,
    conn: Arc<Conn>,
    edge: Arc<Edge>,
    rewrite: Rewrite,
}

#[derive(Debug)]
enum Rewrite {
    None,
    /// Writing our answer in place of hyper's; `claimed` is the length hyper asked to write.
    Writing {
        bytes: Vec<u8>,
        at: usize,
        claimed: usize,
    },
    /// Ours is written: whatever hyper still writes is dropped (it closes next).
    Done,
}

/// Our answer in place of hyper's automatic one, if `buf` is one: hyper writes those while
/// no request has reached the service ([`Phase::Head`]), and they carry no Content-Type
/// (every answer of the service does).
fn framing_answer(buf: &[u8]) -> Option<(u16, Vec<u8>)> {
    let status = match buf.get(..13)? {
        b"HTTP/1.1 400 " => 400,
        b"HTTP/1.1 414 " => 414,
        b"HTTP/1.1 431 " => 431,
        _ => return None,
    };
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = buf.get(..head_end)?.to_ascii_lowercase();
    if head.windows(13).any(|w| w == b"content-type:") {
        return None;
    }
    Some((status, raw_answer(&Error::Unframed(status))))
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.edge.tracker.read_some(&this.conn);
        }
        r
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Io {
            tcp,
            conn,
            edge,
            rewrite,
        } = self.get_mut();
        if matches!(rewrite, Rewrite::None) {
            match framing_answer(buf).filter(|_| conn.phase() == Phase::Head) {
                Some((status, bytes)) => {
                    edge.metrics
                        .count_request("unframed", String::new(), status);
                    *rewrite = Rewrite::Writing {
                        bytes,
                        at: 0,
                        claimed: buf.len(),
                    };
                }
                None => {
                    let r = Pin::new(tcp).poll_write(cx, buf);
                    if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
                        conn.wrote();
                    }
                    return r;
                }
            }
        }
        match rewrite {
            Rewrite::None | Rewrite::Done => Poll::Ready(Ok(buf.len())),
            Rewrite::Writing { bytes, at, claimed } => {
                while let Some(rest) = bytes.get(*at..).filter(|r| !r.is_empty()) {
                    match Pin::new(&mut *tcp).poll_write(cx, rest) {
                        Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                        Poll::Ready(Ok(n)) => *at += n,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                let claimed = *claimed;
                *rewrite = Rewrite::Done;
                Poll::Ready(Ok(claimed))
            }
        }
    }

    /// Vectored writes go straight to the socket (a large CRL is not copied), except while
    /// an automatic answer of hyper may be replaced.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if matches!(self.rewrite, Rewrite::None) && self.conn.phase() != Phase::Head {
            let this = self.get_mut();
            let r = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
            if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
                this.conn.wrote();
            }
            return r;
        }
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// At most [`LOG_LINES_PER_SECOND`] per-connection log lines per second.
#[derive(Debug, Default)]
struct LogBudget {
    /// (second since the budget's epoch << 32) | lines logged in that second.
    window: AtomicU64,
    suppressed: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl LogBudget {
    /// `Some(lines suppressed since the last one)` if a line may be logged now.
    fn take(&self) -> Option<u64> {
        let epoch = *self.epoch.get_or_init(Instant::now);
        let second = epoch.elapsed().as_secs() & 0xffff_ffff;
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let (s, n) = (cur >> 32, cur & 0xffff_ffff);
            let next = if s == second {
                if n >= LOG_LINES_PER_SECOND {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                cur + 1
            } else {
                (second << 32) | 1
            };
            match self
                .window
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(actual) => cur = actual,
            }
        }
    }
}

/// The metrics port: `GET /metrics` and nothing else, a few connections at a time.
async fn serve_metrics(listener: TcpListener, edge: Arc<Edge>, mut stop: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(METRICS_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            continue;
        };
        let edge = edge.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let edge = edge.clone();
                async move { Ok::<_, Infallible>(edge.metrics_answer(&req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
            drop(permit);
        });
    }
}

impl Edge {
    /// One request: mark the connection busy, answer, count it, mark the connection idle.
    async fn handle(&self, req: Request<Incoming>, conn: &Conn) -> Response<Full<Bytes>> {
        let started = Instant::now();
        self.tracker.set_phase(conn, Phase::Busy);
        let (resp, operation, profile) = self.answer(req, conn).await;
        let status = resp.status().as_u16();
        if status == StatusCode::REQUEST_TIMEOUT.as_u16() {
            self.metrics.body_timed_out();
        }
        let profile = self
            .metrics
            .profile_label(profile.as_ref().map(Profile::as_str), status == 200);
        self.metrics
            .request(operation, profile, status, started.elapsed());
        self.tracker.set_phase(conn, Phase::Idle);
        resp
    }

    /// The answer, the `operation` label and the profile asked for (if any).
    async fn answer(
        &self,
        req: Request<Incoming>,
        conn: &Conn,
    ) -> (Response<Full<Bytes>>, &'static str, Option<Profile>) {
        let peer = conn.peer;
        let method = req.method().clone();
        let path: String = req.uri().path().chars().take(128).collect();
        if let Some(matched) = super::publish::match_path(req.uri().path()) {
            let op = match &matched {
                Ok((super::publish::Kind::Crl, _)) => "crl",
                Ok((super::publish::Kind::CaCert, _)) => "aia",
                Err(_) if req.uri().path().starts_with("/crl/") => "crl",
                Err(_) => "aia",
            };
            return (self.publication(matched, &req, peer).await, op, None);
        }
        if super::ocsp::is_ocsp_path(req.uri().path()) {
            self.tracker.set_phase(conn, Phase::Body);
            let resp = super::ocsp::answer(&self.signer, req, peer, self.body_timeout).await;
            return (resp, "ocsp", None);
        }
        let routed = route::route(
            req.method(),
            req.uri().path(),
            req.uri().query(),
            self.default_profile.as_ref(),
        );
        let (operation, profile) = match &routed {
            Ok(r) => (r.operation.as_str(), Some(r.profile.clone())),
            Err(_) => ("other", None),
        };
        let result = match routed {
            Ok(r) => self.dispatch(r, req, conn).await,
            Err(e) => Err(e),
        };
        let resp = match result {
            Ok(a) => {
                tracing::info!(%peer, %method, %path, status = 200, bytes = a.body.len(), "scep");
                let no_store = a.content_type == CT_PKI_MESSAGE;
                let mut resp = response(StatusCode::OK, a.content_type, a.body);
                if no_store {
                    resp.headers_mut()
                        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                resp
            }
            Err(e) => {
                let status = e.status();
                if status.is_server_error() {
                    tracing::warn!(%peer, %method, %path, status = status.as_u16(), error = %e, "scep");
                } else {
                    tracing::info!(%peer, %method, %path, status = status.as_u16(), error = %e, "scep");
                }
                let mut body = e.public_reason().into_owned();
                body.push('\n');
                let mut resp = response(status, CT_ERROR, body.into_bytes());
                if matches!(e, Error::MethodNotAllowed) {
                    resp.headers_mut()
                        .insert(ALLOW, HeaderValue::from_static("GET, POST"));
                }
                if let Some(secs) = super::error::retry_after(status) {
                    resp.headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(secs));
                }
                resp
            }
        };
        (resp, operation, profile)
    }

    /// `GET /metrics` on the metrics port; 404 for any other path, 405 for other methods.
    async fn metrics_answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path() != "/metrics" {
            return response(StatusCode::NOT_FOUND, CT_ERROR, &b"not found\n"[..]);
        }
        if req.method() != hyper::Method::GET {
            let mut resp = response(
                StatusCode::METHOD_NOT_ALLOWED,
                CT_ERROR,
                &b"method not allowed: use GET\n"[..],
            );
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET"));
            return resp;
        }
        let signer_up = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, self.signer.probe()).await,
            Ok(true)
        );
        let snapshot = Snapshot {
            connections_open: self.tracker.open(),
            signer_up,
            signer_reconnects: self.signer.reconnects(),
            published_age: self.publications.ages(),
        };
        response(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            self.metrics.render(&snapshot),
        )
    }

    /// Log why hyper gave up on a connection: for a request it could not frame, the client
    /// address and the reason (it answered 400/414/431 itself, with our body from [`Io`]).
    fn log_connection_error(&self, conn: &Conn, e: &hyper::Error) {
        if e.is_parse() || e.is_parse_too_large() || e.is_parse_status() {
            if let Some(suppressed) = self.log_budget.take() {
                tracing::info!(peer = %conn.peer, error = %e, suppressed, "malformed request refused");
            }
        } else {
            tracing::debug!(peer = %conn.peer, error = %e, "connection ended");
        }
    }

    async fn dispatch(
        &self,
        route: Route,
        req: Request<Incoming>,
        conn: &Conn,
    ) -> Result<Answer, Error> {
        let Route {
            profile,
            operation,
            message,
        } = route;
        let name = profile.as_str().to_owned();
        match operation {
            Operation::GetCaCaps => {
                match self
                    .cached(&profile, operation, Op::GetCaCaps { profile: name })
                    .await?
                {
                    Reply::Caps { caps } => Ok(Answer {
                        content_type: CT_CAPS,
                        body: caps
                            .iter()
                            .flat_map(|c| [c.as_str(), "\n"])
                            .collect::<String>()
                            .into_bytes(),
                    }),
                    other => Err(unexpected(other, operation)),
                }
            }
            Operation::GetCaCert => {
                match self
                    .cached(&profile, operation, Op::GetCaCert { profile: name })
                    .await?
                {
                    Reply::CaCert { der, ra } => Ok(Answer {
                        content_type: if ra { CT_CA_RA_CERT } else { CT_CA_CERT },
                        body: der,
                    }),
                    other => Err(unexpected(other, operation)),
                }
            }
            Operation::GetNextCaCert => {
                match self
                    .cached(&profile, operation, Op::GetNextCaCert { profile: name })
                    .await?
                {
                    Reply::CaCert { der, .. } => Ok(Answer {
                        content_type: CT_NEXT_CA_CERT,
                        body: der,
                    }),
                    other => Err(unexpected(other, operation)),
                }
            }
            Operation::PkiOperation => {
                let message = match message {
                    Some(m) => m,
                    None => {
                        self.tracker.set_phase(conn, Phase::Body);
                        let body = self.read_body(req).await;
                        self.tracker.set_phase(conn, Phase::Busy);
                        body?
                    }
                };
                // RFC 8894 §3.2: refuse what is not a well-formed PKIMessage of a known
                // type here; the signer never sees it. The signature and the envelope are
                // the signer's to check, once.
                crate::message::screen(&message).map_err(Error::BadMessage)?;
                let op = Op::PkiOperation {
                    profile: name,
                    message,
                };
                match self.signer.call(op).await? {
                    Reply::CertRep { der } => Ok(Answer {
                        content_type: CT_PKI_MESSAGE,
                        body: der,
                    }),
                    other => Err(unexpected(other, operation)),
                }
            }
        }
    }

    /// `/crl/<ca>.crl` and `/aia/<ca>.crt` (GET or HEAD), with cache validators.
    async fn publication(
        &self,
        matched: Result<(super::publish::Kind, String), Error>,
        req: &Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        use hyper::header::{ETAG, EXPIRES, IF_NONE_MATCH, LAST_MODIFIED};
        let path: String = req.uri().path().chars().take(128).collect();
        let head = req.method() == hyper::Method::HEAD;
        let result = match matched {
            _ if req.method() != hyper::Method::GET && !head => Err(Error::MethodNotAllowed),
            Ok((kind, ca)) => self
                .publications
                .get(&self.signer, kind, &ca)
                .await
                .map(|c| (kind, c)),
            Err(e) => Err(e),
        };
        match result {
            Ok((kind, c)) => {
                let not_modified = req
                    .headers()
                    .get(IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.split(',').any(|t| t.trim() == c.etag || t.trim() == "*"));
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                // Keep a CRL until its successor is due; a CA certificate for a day.
                let max_age = c.next_update.map_or(86_400, |n| (n - now).max(0));
                let status = if not_modified {
                    StatusCode::NOT_MODIFIED
                } else {
                    StatusCode::OK
                };
                tracing::info!(%peer, %path, status = status.as_u16(), "publication");
                let body = if not_modified || head {
                    Bytes::new()
                } else {
                    c.der.clone()
                };
                let mut resp = response(status, kind.content_type(), body);
                let h = resp.headers_mut();
                if head {
                    h.insert(CONTENT_LENGTH, HeaderValue::from(c.der.len()));
                }
                let mut set = |name, value: String| {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        h.insert(name, v);
                    }
                };
                set(ETAG, c.etag.clone());
                set(LAST_MODIFIED, super::publish::http_date(c.issued_at));
                set(CACHE_CONTROL, format!("public, max-age={max_age}"));
                if let Some(n) = c.next_update {
                    set(EXPIRES, super::publish::http_date(n));
                }
                resp
            }
            Err(e) => {
                tracing::info!(%peer, %path, status = e.status().as_u16(), error = %e, "publication");
                let mut body = e.public_reason().into_owned();
                body.push('\n');
                let mut resp = response(e.status(), CT_ERROR, body.into_bytes());
                if matches!(e, Error::MethodNotAllowed) {
                    resp.headers_mut()
                        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                }
                resp
            }
        }
    }

    /// Answer from a fresh cached copy, else ask the signer; if the signer cannot be
    /// reached, fall back on the last good copy.
    async fn cached(&self, profile: &Profile, op: Operation, wire_op: Op) -> Result<Reply, Error> {
        if let Some(r) = self.cache.fresh(profile, op) {
            return Ok(r);
        }
        match self.signer.call(wire_op).await {
            Ok(r) if fits(op, &r) => {
                self.cache.put(profile, op, r.clone());
                Ok(r)
            }
            Ok(r) => {
                if matches!(r, Reply::Refused { .. }) {
                    self.cache.remove(profile, op);
                }
                Ok(r)
            }
            Err(e) => match self.cache.last_good(profile, op) {
                Some(r) => {
                    tracing::warn!(
                        %profile,
                        operation = op.as_str(),
                        error = %e,
                        "signer unavailable: serving the last good copy"
                    );
                    Ok(r)
                }
                None => Err(e.into()),
            },
        }
    }

    /// The POST body, at most `max_body` bytes, received within `--body-timeout`.
    async fn read_body(&self, req: Request<Incoming>) -> Result<Vec<u8>, Error> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(Error::BodyTooLarge(self.max_body));
        }
        let body = Limited::new(req.into_body(), self.max_body).collect();
        match tokio::time::timeout(self.body_timeout, body).await {
            Err(_) => Err(Error::RequestTimeout),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                Err(Error::BodyTooLarge(self.max_body))
            }
            Ok(Err(_)) => Err(Error::BadRequest("cannot read the request body")),
            Ok(Ok(c)) => Ok(c.to_bytes().to_vec()),
        }
    }
}

/// Whether a successful reply is the right kind for the operation (and may be cached).
fn fits(op: Operation, reply: &Reply) -> bool {
    matches!(
        (op, reply),
        (Operation::GetCaCaps, Reply::Caps { .. })
            | (
                Operation::GetCaCert | Operation::GetNextCaCert,
                Reply::CaCert { .. }
            )
    )
}

/// A reply that is not the operation's answer: a refusal, or the signer's bug.
fn unexpected(reply: Reply, op: Operation) -> Error {
    match reply {
        Reply::Refused { reason, message } => Error::Refused { reason, message },
        _ => Error::UnexpectedReply(op.as_str()),
    }
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let body: Bytes = body.into();
    let len = body.len();
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_s_automatic_answers_are_replaced() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 00:00:00 GMT\r\n\r\n";
        let (status, ours) = framing_answer(hyper_400).unwrap();
        assert_eq!(status, 400);
        assert!(ours.ends_with(b"\r\n\r\nmalformed request line or header\n"));
        let (status, _) =
            framing_answer(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n").unwrap();
        assert_eq!(status, 431);
        // The service's own 400 has a Content-Type: never replaced.
        assert!(framing_answer(b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 18\r\n\r\n").is_none());
        assert!(framing_answer(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
        assert!(
            framing_answer(b"HTTP/1.1 400 Bad Request\r\ncontent-le").is_none(),
            "a partial head"
        );
    }

    #[test]
    fn the_log_budget_allows_a_few_lines_a_second_and_counts_the_rest() {
        let b = LogBudget::default();
        for _ in 0..LOG_LINES_PER_SECOND {
            assert_eq!(b.take(), Some(0));
        }
        assert_eq!(b.take(), None);
        assert_eq!(b.take(), None);
        assert_eq!(b.suppressed.load(Ordering::Relaxed), 2);
    }
}
