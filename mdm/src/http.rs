//! A small HTTPS client (hyper over rustls): one connection per call, a timeout over the
//! whole exchange, and a cap on the answer's size. Everything the connector sends out goes
//! through [`Client::send`].

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// Largest answer accepted from any MDM service.
pub const MAX_ANSWER: usize = 1024 * 1024;

/// Why a call did not produce an answer. `Transport` failures invalidate cached endpoints.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Url(String),
    #[error("{0}")]
    Transport(String),
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("the answer is larger than {MAX_ANSWER} bytes")]
    TooLarge,
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// An HTTPS client with its trust roots and timeout.
#[derive(Clone)]
pub struct Client {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Client {
    /// Trust the PEM roots in `trust` if given, else the public web roots.
    pub fn new(trust: Option<&[u8]>, timeout: Duration) -> Result<Client, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        match trust {
            Some(pem) => {
                for c in CertificateDer::pem_slice_iter(pem) {
                    let c = c.map_err(|e| format!("trust file: {e}"))?;
                    roots.add(c).map_err(|e| format!("trust file: {e}"))?;
                }
                if roots.is_empty() {
                    return Err("the trust file holds no certificate".into());
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Client {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    /// Send one request to an `https://` URL.
    pub async fn send(
        &self,
        method: hyper::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, HttpError> {
        let secs = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, self.exchange(method, url, headers, body))
            .await
            .map_err(|_| HttpError::Timeout(secs))?
    }

    async fn exchange(
        &self,
        method: hyper::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, HttpError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| HttpError::Url(format!("{url:?}: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(HttpError::Url(format!("{url:?} is not an https:// URL")));
        }
        let host = uri
            .host()
            .ok_or_else(|| HttpError::Url(format!("{url:?} has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let transport = |e: &dyn std::fmt::Display| HttpError::Transport(format!("{host}: {e}"));
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| transport(&e))?;
        let name = ServerName::try_from(host.clone()).map_err(|e| transport(&e))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| transport(&e))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| transport(&e))?;
        tokio::spawn(conn);
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("castellan-mdm/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpError::Url(e.to_string()))?;
        let resp = send.send_request(req).await.map_err(|e| transport(&e))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    HttpError::TooLarge
                } else {
                    HttpError::Transport(format!("{host}: {e}"))
                }
            })?
            .to_bytes();
        Ok(Answer { status, body })
    }
}

/// `application/x-www-form-urlencoded` of name/value pairs (RFC 6749 §4.4.2).
pub fn form(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A random UUID (version 4), lower case, as `client-request-id` wants it.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    // getrandom failing leaves zeros: a correlation id, not a secret.
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_escape_reserved_bytes() {
        assert_eq!(
            form(&[("scope", "https://x//.default"), ("a b", "c&d=e")]),
            "scope=https%3A%2F%2Fx%2F%2F.default&a+b=c%26d%3De"
        );
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(uuid(), u);
    }
}
