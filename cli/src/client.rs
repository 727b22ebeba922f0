//! The CLI's side of the admin port.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use crate::{Error, Result};
use proto::admin::{self, Request, Response};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
            config: Arc::new(client_config(admin_ca_pem, cert_pem, key_pem)?),
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
        let body = serde_json::to_vec(request).map_err(|e| Error::Transport(e.to_string()))?;
        let req = hyper::Request::post(admin::PATH)
            .header(hyper::header::HOST, self.host.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Transport(e.to_string()))?;
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

/// The CLI's client config: trust the admin CA, present the officer's certificate.
pub fn client_config(
    admin_ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<_> = CertificateDer::pem_slice_iter(admin_ca_pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Invalid(format!("cannot read the admin CA file: {e}")))?;
    if cas.is_empty() {
        return Err(Error::Invalid(
            "the admin CA file holds no certificate".into(),
        ));
    }
    for c in cas {
        roots
            .add(c)
            .map_err(|e| Error::Invalid(format!("bad admin CA certificate: {e}")))?;
    }
    let certs: Vec<_> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Invalid(format!("cannot read the officer certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Invalid(
            "the officer certificate file holds no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::Invalid(format!("cannot read the officer key: {e}")))?;
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| Error::Invalid(e.to_string()))?
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .map_err(|e| {
        Error::Invalid(format!(
            "the officer certificate and key do not fit together: {e}"
        ))
    })
}
