//! The HTTP/1.1 server (hyper 1): SCEP over HTTP (RFC 8894 §4.1).
//!
//! Each request: 1. route it ([`super::route`]); 2. for GetCACaps, GetCACert and
//! GetNextCACert, answer from the cache or ask the signer ([`super::cache`]); 3. for
//! PKIOperation, take the message from the query (GET) or the body (POST, at most
//! `max_body` bytes), pre-parse it with [`crate::message::parse`] and only then forward
//! it; 4. map the reply, or the error ([`Error::status`]), to the answer.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::cache::Cache;
use super::route::{self, Operation, Profile, Route};
use super::signer::SignerPool;
use super::{Config, Error};
use crate::wire::{Op, Reply};

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

/// The shared state of the server.
#[derive(Debug)]
struct Edge {
    default_profile: Option<Profile>,
    max_body: usize,
    request_timeout: Duration,
    signer: SignerPool,
    cache: Cache,
    publications: super::publish::Publications,
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
    config.check()?;
    let header_timeout = config.request_timeout;
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let edge = Arc::new(Edge {
        default_profile: config.default_profile,
        max_body: config.max_body,
        request_timeout: config.request_timeout,
        signer: SignerPool::new(config.signer),
        cache: Cache::new(config.cache_ttl),
        publications: super::publish::Publications::new(config.cache_dir),
    });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // E.g. EMFILE: do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let edge = edge.clone();
        let service = hyper::service::service_fn(move |req| {
            let edge = edge.clone();
            async move { Ok::<_, Infallible>(edge.answer(req, peer).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_HEAD)
            .serve_connection(TokioIo::new(tcp), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(DRAIN) => tracing::warn!("connections still open after {DRAIN:?}; closing them"),
    }
    Ok(())
}

impl Edge {
    async fn answer(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let method = req.method().clone();
        let path: String = req.uri().path().chars().take(128).collect();
        if let Some(matched) = super::publish::match_path(req.uri().path()) {
            return self.publication(matched, &req, peer).await;
        }
        if super::ocsp::is_ocsp_path(req.uri().path()) {
            return super::ocsp::answer(&self.signer, req, peer, self.request_timeout).await;
        }
        let routed = route::route(
            req.method(),
            req.uri().path(),
            req.uri().query(),
            self.default_profile.as_ref(),
        );
        let result = match routed {
            Ok(r) => self.dispatch(r, req).await,
            Err(e) => Err(e),
        };
        match result {
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
                resp
            }
        }
    }

    async fn dispatch(&self, route: Route, req: Request<Incoming>) -> Result<Answer, Error> {
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
                    None => self.read_body(req).await?,
                };
                // RFC 8894 §3.2: refuse what is not a well-formed, correctly signed
                // PKIMessage here; the signer never sees it. (One RSA verification on
                // at most 64 KiB: cheap enough to run on the runtime thread.)
                crate::message::parse(&message, true).map_err(Error::BadMessage)?;
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

    /// The POST body, at most `max_body` bytes, received within the request timeout.
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
        match tokio::time::timeout(self.request_timeout, body).await {
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
        Reply::Refused { status, message } => Error::Refused { status, message },
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
