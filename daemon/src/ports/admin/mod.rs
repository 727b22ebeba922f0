//! The admin port: TLS 1.3 with mandatory officer certificates, HTTP/1.1,
//! JSON requests posted to `/v1`, and the web console's pages (GET).

pub mod access;
pub mod console;
pub mod dispatch;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::engine::Signer;
use crate::{Error, Result};
use access::Caller;
use proto::admin::{self, Request, Response};

/// Bind the admin port. Separate from [`serve`] so that READY is sent only after the bind.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        Error::Config(crate::error::ConfigError::io(
            format!("cannot listen on {addr}"),
            e,
        ))
    })
}

/// Serve until the task is dropped. `connector` is the castellan-mdm connector's client
/// certificate (DER), if one is configured.
pub async fn serve(
    listener: TcpListener,
    signer: Arc<Signer>,
    connector: Option<Vec<u8>>,
) -> Result<()> {
    let admin = signer.store().admin_identity()?;
    let registered: tls::Registered = {
        let signer = signer.clone();
        let connector = connector.clone();
        Box::new(move |cert| {
            connector.as_deref() == Some(cert)
                || signer
                    .store()
                    .governance()
                    .is_ok_and(|g| g.officers.iter().any(|o| o.cert == cert))
        })
    };
    let config = crate::ports::admin::tls::server_config(
        signer.keys().store().clone(),
        &admin.tls_key_id,
        vec![admin.tls_cert.clone(), admin.ca_cert.clone()],
        registered,
    )?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let connector: Arc<Option<Vec<u8>>> = Arc::new(connector);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let signer = signer.clone();
        let connector = connector.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "admin TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec());
            let officer = match cert
                .map(|c| Caller::identify(&signer, &c, connector.as_deref(), peer))
            {
                Some(Ok(Some(o))) => o,
                _ => {
                    tracing::warn!(%peer, "admin connection without a registered officer certificate");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let signer = signer.clone();
                let officer = officer.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(req, signer, officer).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "admin connection ended");
            }
        });
    }
}

async fn answer(
    req: hyper::Request<Incoming>,
    signer: Arc<Signer>,
    caller: Caller,
) -> hyper::Response<Full<Bytes>> {
    if req.method() == Method::GET {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let page =
            tokio::task::spawn_blocking(move || console::answer(&signer, &caller, &path, &query))
                .await;
        return page.unwrap_or_else(|_| {
            let mut r = hyper::Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        });
    }
    if req.method() == Method::POST && req.uri().path() != admin::PATH {
        let path = req.uri().path().to_owned();
        let form = Limited::new(req.into_body(), console::MAX_FORM)
            .collect()
            .await
            .map(|b| b.to_bytes());
        let page = tokio::task::spawn_blocking(move || {
            console::submit(&signer, &caller, &path, form.as_deref().ok())
        })
        .await;
        return page.unwrap_or_else(|_| {
            let mut r = hyper::Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        });
    }
    let result = handle(req, signer, &caller).await;
    let (status, body) = match result {
        Ok(r) => (200, r),
        Err(e) => {
            tracing::info!(caller = %caller.name, error = %e, "admin request refused");
            (
                e.http_status(),
                Response::Error {
                    error: e.to_string(),
                },
            )
        }
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = hyper::Response::new(Full::new(Bytes::from(json)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn handle(
    req: hyper::Request<Incoming>,
    signer: Arc<Signer>,
    caller: &Caller,
) -> Result<Response> {
    if req.method() != Method::POST || req.uri().path() != admin::PATH {
        return Err(Error::NotFound(crate::error::Missing::Endpoint(
            admin::PATH,
        )));
    }
    let body = Limited::new(req.into_body(), admin::MAX_REQUEST)
        .collect()
        .await
        .map_err(|e| Error::Invalid(format!("request body: {e}")))?
        .to_bytes();
    let request: Request = serde_json::from_slice(&body)
        .map_err(|e| Error::Invalid(format!("malformed request: {e}")))?;
    let caller = caller.clone();
    tokio::task::spawn_blocking(move || {
        access::audited(&signer, &caller, request, false, |a, r| {
            dispatch::handle(&signer, &caller, a, r)
        })
    })
    .await
    .map_err(|e| Error::Store(crate::error::StoreError::Worker(e.to_string())))?
}
