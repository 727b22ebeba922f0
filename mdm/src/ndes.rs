//! The NDES-style dynamic challenge endpoint for Jamf Pro, Workspace ONE and other MDMs
//! that fetch a one-time challenge per device: `GET /certsrv/mscep_admin/` over HTTPS with
//! HTTP Basic credentials (one `[[ndes]]` entry per MDM, bound to one profile) answers a
//! page in NDES's shape, "The enrollment challenge password is: <B> … </B>", in UTF-16
//! (NDES's encoding; `encoding = "utf-8"` per MDM otherwise).
//!
//! Each fetch mints a challenge through the signer's one-time mechanism (single use,
//! expiry), under the connector's admin identity. Passwords are checked against PBKDF2
//! hashes in constant time; an unknown user costs the same as a wrong password. After
//! [`MAX_FAILURES`] failures in a minute an address gets 429 until the minute is over.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::Connector;
use crate::config::{HttpsSection, NdesSection};
use crate::password::Hash;
use proto::admin::{Request, Response};

/// The path MDMs know from NDES.
pub const PATH: &str = "/certsrv/mscep_admin/";
/// Failed logins an address may make per minute.
pub const MAX_FAILURES: u32 = 5;
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (the oldest windows are dropped first).
const MAX_TRACKED: usize = 10_000;

/// One MDM's credentials and profile.
#[derive(Debug)]
struct Account {
    hash: Hash,
    cfg: NdesSection,
}

/// The endpoint's state.
#[derive(Debug)]
pub struct Ndes {
    accounts: HashMap<String, Account>,
    /// Checked for unknown users, so they take as long as a wrong password.
    dummy: Hash,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// PBKDF2 checks at once (they take a core each).
    checks: tokio::sync::Semaphore,
}

impl Ndes {
    pub fn new(sections: &[NdesSection]) -> Result<Ndes, String> {
        let mut accounts = HashMap::new();
        for s in sections {
            let hash = Hash::parse(&s.password_hash).map_err(|e| e.to_string())?;
            accounts.insert(
                s.username.clone(),
                Account {
                    hash,
                    cfg: s.clone(),
                },
            );
        }
        Ok(Ndes {
            accounts,
            dummy: Hash::new("castellan-unknown-user").map_err(|e| e.to_string())?,
            failures: Mutex::default(),
            checks: tokio::sync::Semaphore::new(2),
        })
    }

    fn limited(&self, ip: IpAddr) -> bool {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.get(&ip)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < WINDOW)
    }

    fn failed(&self, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() >= MAX_TRACKED {
            f.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        if f.len() >= MAX_TRACKED {
            return;
        }
        let e = f.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    /// The account these Basic credentials open, checked in constant time.
    async fn login(&self, header: Option<&str>) -> Option<&NdesSection> {
        let (user, pass) = header
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
            .unwrap_or_default();
        let account = self.accounts.get(&user);
        let hash = account.map_or(self.dummy.clone(), |a| a.hash.clone());
        let _permit = self.checks.acquire().await.ok()?;
        let ok = tokio::task::spawn_blocking(move || hash.verify(&pass))
            .await
            .unwrap_or(false);
        account.filter(|_| ok).map(|a| &a.cfg)
    }
}

fn page(challenge: &str, ttl_secs: i64, encoding: &str) -> (Vec<u8>, &'static str) {
    let html = format!(
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset={charset}\">\
         <Title>Network Device Enrollment Service</Title></Head><Body BgColor=#FFFFFF>\
         <Font ID=locPageFont Face=\"Arial\"><P ID=locPageDesc> Network Device Enrollment Service \
         allows you to obtain certificates for routers or other network devices using the Simple \
         Certificate Enrollment Protocol (SCEP). </P><P> To complete certificate enrollment for \
         your network device you will need the following information: \
         <P> The enrollment challenge password is: <B> {challenge} </B> \
         <P> This password can be used only once and will expire within {minutes} minutes. \
         <P> Each enrollment requires a new challenge password. You can refresh this web page to \
         obtain a new challenge password. </P></Font></Body></HTML>",
        charset = if encoding == "utf-8" {
            "utf-8"
        } else {
            "utf-16"
        },
        minutes = ttl_secs / 60,
    );
    if encoding == "utf-8" {
        (html.into_bytes(), "text/html; charset=utf-8")
    } else {
        // UTF-16 little-endian with a byte-order mark, as NDES sends it.
        let mut out = vec![0xff, 0xfe];
        for u in html.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        (out, "text/html; charset=utf-16")
    }
}

fn reply(status: StatusCode, text: &str) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn answer(
    req: hyper::Request<Incoming>,
    c: Arc<Connector>,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let Some(ndes) = &c.ndes else {
        return reply(StatusCode::NOT_FOUND, "no challenge endpoint");
    };
    let path = req.uri().path();
    if !matches!(
        path,
        "/certsrv/mscep_admin/" | "/certsrv/mscep_admin" | "/certsrv/mscep_admin/default.aspx"
    ) {
        return reply(StatusCode::NOT_FOUND, "not found");
    }
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    let ip = peer.ip();
    if ndes.limited(ip) {
        tracing::warn!(%ip, "challenge endpoint: too many failed logins");
        let mut r = reply(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins from this address: wait a minute",
        );
        r.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("60"),
        );
        return r;
    }
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let Some(account) = ndes.login(auth).await else {
        ndes.failed(ip);
        tracing::warn!(%ip, "challenge endpoint: wrong credentials");
        let mut r = reply(StatusCode::UNAUTHORIZED, "credentials required");
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static(
                "Basic realm=\"castellan-mdm\", charset=\"UTF-8\"",
            ),
        );
        return r;
    };
    let Some(admin) = &c.admin else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "no signer configured");
    };
    let minted = admin
        .call(&Request::ChallengeNew {
            profile: account.profile.clone(),
            subject: None,
            sans: Vec::new(),
            ttl_secs: account.ttl_secs,
        })
        .await;
    match minted {
        Ok(Response::Challenge { challenge, .. }) => {
            tracing::info!(user = %account.username, profile = %account.profile, %ip, "minted a one-time challenge");
            let (body, ctype) = page(&challenge, account.ttl_secs, &account.encoding);
            let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
            let h = r.headers_mut();
            h.insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(ctype),
            );
            h.insert(
                hyper::header::CACHE_CONTROL,
                hyper::header::HeaderValue::from_static("no-store"),
            );
            r
        }
        Ok(other) => reply(
            StatusCode::BAD_GATEWAY,
            &format!("the CA answered {other:?}"),
        ),
        Err(e) => {
            tracing::warn!(error = %e, profile = %account.profile, "cannot mint a challenge");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the CA could not mint a challenge: {e}"),
            )
        }
    }
}

/// The HTTPS listener's TLS config from the operator's PEM files.
pub fn tls(cfg: &HttpsSection) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert_file)
        .and_then(|i| i.collect())
        .map_err(|e| format!("{}: {e}", cfg.cert_file.display()))?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key_file)
        .map_err(|e| format!("{}: {e}", cfg.key_file.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("[https] certificate and key: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serve the endpoint until the task is dropped.
pub async fn serve(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, c: Arc<Connector>) {
    let conns = Arc::new(tokio::sync::Semaphore::new(256));
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            continue;
        };
        let acceptor = acceptor.clone();
        let c = c.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let c = c.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(req, c, peer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_ndes_shape_in_both_encodings() {
        let (b, ct) = page("ABCDEF0123", 3600, "utf-16");
        assert_eq!(ct, "text/html; charset=utf-16");
        assert_eq!(&b[..2], &[0xff, 0xfe]);
        let units: Vec<u16> = b[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let text = String::from_utf16(&units).unwrap();
        assert!(text.contains("The enrollment challenge password is: <B> ABCDEF0123 </B>"));
        assert!(text.contains("expire within 60 minutes"));
        let (b, _) = page("X", 600, "utf-8");
        assert!(String::from_utf8(b).unwrap().contains("<B> X </B>"));
    }

    #[tokio::test]
    async fn failures_are_limited_per_address() {
        let n = Ndes::new(&[]).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(!n.limited(a));
            n.failed(a);
        }
        assert!(n.limited(a));
        assert!(!n.limited(b));
        assert!(n.login(Some("Basic Zm9vOmJhcg==")).await.is_none());
        assert!(n.login(Some("Basic !!!")).await.is_none());
        assert!(n.login(None).await.is_none());
    }
}
