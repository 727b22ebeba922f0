//! The CLI's side of the admin port.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use crate::admin::{self, Request, Response};
use crate::{Error, Result};

/// A connection target and TLS identity.
#[derive(Debug, Clone)]
pub struct AdminClient {
    host: String,
    port: u16,
    config: Arc<rustls::ClientConfig>,
}

impl AdminClient {
    /// `url` is `https://HOST:PORT`.
    pub fn new(url: &str, admin_ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| Error::Invalid(format!("admin URL {url:?} must start with https://")))?
            .trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                p.parse()
                    .map_err(|_| Error::Invalid(format!("bad port in {url:?}")))?,
            ),
            _ => (rest.to_owned(), 8443),
        };
        Ok(AdminClient {
            host,
            port,
            config: Arc::new(crate::tls::client_config(admin_ca_pem, cert_pem, key_pem)?),
        })
    }

    /// Send one request and read its answer.
    pub async fn call(&self, request: &Request) -> Result<Response> {
        let unreachable = |e: &dyn std::fmt::Display| {
            Error::Transport(format!(
                "cannot reach the admin port at {}:{}: {e}",
                self.host, self.port
            ))
        };
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| unreachable(&e))?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| Error::Invalid(format!("bad host name: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let body = serde_json::to_vec(request).map_err(|e| Error::Encoding(e.to_string()))?;
        let req = hyper::Request::post(admin::PATH)
            .header(hyper::header::HOST, self.host.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Encoding(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| {
            // TLS 1.3 client authentication fails after the handshake, on first use.
            let text = format!("{e:?}");
            if text.contains("CertificateUnknown") || text.contains("BadCertificate") || text.contains("AlertReceived") || text.contains("ApplicationVerificationFailure") {
                Error::Forbidden("the admin port refused this client certificate: it is not a registered officer's".into())
            } else {
                unreachable(&e)
            }
        })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| {
                let text = format!("{e:?}");
                if text.contains("Alert") {
                    Error::Forbidden("the admin port refused this client certificate: it is not a registered officer's".into())
                } else {
                    unreachable(&e)
                }
            })?
            .to_bytes();
        let response: Response = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Transport(format!("unreadable answer (HTTP {status}): {e}")))?;
        match response {
            Response::Error { error } => Err(Error::from_status(status, error)),
            r => Ok(r),
        }
    }
}
