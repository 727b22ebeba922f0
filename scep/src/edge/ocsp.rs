//! `/ocsp` over HTTP (RFC 6960 Appendix A.1): `POST /ocsp` with the DER request as the
//! body, or `GET /ocsp/<url-encoding of the base64 of the DER request>`; the answer is
//! always `application/ocsp-response`, HTTP 200, even for the error statuses. A GET answer
//! without a nonce carries the RFC 5019 §6.2 caching headers (max-age until nextUpdate,
//! Expires, Last-Modified, ETag); every other answer is `no-store`. The ASN.1 and the
//! request parser are in [`proto::ocsp`].

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, EXPIRES, HeaderValue, LAST_MODIFIED,
};
use hyper::{Method, Request, Response, StatusCode};

use super::signer::SignerPool;
use proto::ocsp::*;
use proto::wire::{Op, Reply};

// ---------------------------------------------------------------------- HTTP

/// `/ocsp` and everything under it.
pub fn is_ocsp_path(path: &str) -> bool {
    path == "/ocsp" || path.starts_with("/ocsp/")
}

/// Base64 with the standard alphabet, padding optional, trailing bits tolerated.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why an HTTP request gets no OCSP answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HttpError {
    NotFound,
    MethodNotAllowed,
    BadRequest(&'static str),
    TooLarge,
    UriTooLong,
    Timeout,
}

impl HttpError {
    /// The one mapping to HTTP.
    fn answer(self) -> (StatusCode, &'static str) {
        match self {
            HttpError::NotFound => (StatusCode::NOT_FOUND, "not found"),
            HttpError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use GET or POST",
            ),
            HttpError::BadRequest(r) => (StatusCode::BAD_REQUEST, r),
            HttpError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "OCSP request larger than 16384 bytes",
            ),
            HttpError::UriTooLong => (StatusCode::URI_TOO_LONG, "OCSP request too long"),
            HttpError::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            ),
        }
    }
}

/// The request of `GET /ocsp/<rest>` (RFC 6960 Appendix A.1): the url-encoding of the
/// base64 of the DER. Clients differ, so this accepts `/` and `+` raw or escaped, the
/// URL-safe alphabet (`-`, `_`), a space for `+`, padding or none, and line breaks.
fn decode_get(rest: &str) -> Result<Vec<u8>, HttpError> {
    // Base64 of MAX_REQUEST bytes, then up to three characters per escaped character.
    const MAX_B64: usize = MAX_REQUEST.div_ceil(3) * 4;
    if rest.is_empty() {
        return Err(HttpError::BadRequest(
            "GET /ocsp/<url-encoded base64 OCSP request>, or POST the DER request to /ocsp",
        ));
    }
    if rest.len() > 3 * MAX_B64 {
        return Err(HttpError::UriTooLong);
    }
    let b = rest.as_bytes();
    let mut text = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let byte = if c == b'%' {
            let hex = |x: Option<&u8>| x.and_then(|h| char::from(*h).to_digit(16));
            match (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    i += 3;
                    (hi * 16 + lo) as u8
                }
                _ => return Err(HttpError::BadRequest("malformed percent-encoding")),
            }
        } else {
            i += 1;
            c
        };
        match byte {
            b'\r' | b'\n' | b'=' => {}
            b' ' | b'-' => text.push(b'+'),
            b'_' => text.push(b'/'),
            other => text.push(other),
        }
    }
    if text.len() > MAX_B64 {
        return Err(HttpError::UriTooLong);
    }
    let der = LENIENT_B64
        .decode(&text)
        .map_err(|_| HttpError::BadRequest("the OCSP request in the path is not base64"))?;
    if der.len() > MAX_REQUEST {
        return Err(HttpError::UriTooLong);
    }
    Ok(der)
}

/// The POST body, at most [`MAX_REQUEST`] bytes, within `timeout`.
async fn read_body(req: Request<Incoming>, timeout: Duration) -> Result<Vec<u8>, HttpError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST as u64) {
        return Err(HttpError::TooLarge);
    }
    let body = Limited::new(req.into_body(), MAX_REQUEST).collect();
    match tokio::time::timeout(timeout, body).await {
        Err(_) => Err(HttpError::Timeout),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(HttpError::TooLarge),
        Ok(Err(_)) => Err(HttpError::BadRequest("cannot read the request body")),
        Ok(Ok(c)) => Ok(c.to_bytes().to_vec()),
    }
}

/// An OCSP answer from the signer, or one the edge makes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OcspAnswer {
    der: Vec<u8>,
    /// Set only when HTTP caches may keep it (no nonce, successful).
    produced_at: Option<i64>,
    next_update: Option<i64>,
    /// For the log.
    what: &'static str,
}

impl OcspAnswer {
    fn error(status: ResponseStatus, what: &'static str) -> Self {
        OcspAnswer {
            der: OcspResponse::error_der(status),
            produced_at: None,
            next_update: None,
            what,
        }
    }
}

/// Caching headers for an answer (RFC 5019 §6.2): only a GET answer that the signer
/// marked cacheable is kept, until its nextUpdate; everything else is `no-store`.
fn cache_headers(
    a: &OcspAnswer,
    is_get: bool,
    now: i64,
) -> Vec<(hyper::header::HeaderName, String)> {
    match (is_get, a.produced_at, a.next_update) {
        (true, Some(produced), Some(next)) if next > now => {
            use sha2::Digest;
            let etag = hex_prefix(&sha2::Sha256::digest(&a.der));
            vec![
                (
                    CACHE_CONTROL,
                    format!(
                        "max-age={}, public, no-transform, must-revalidate",
                        next - now
                    ),
                ),
                (LAST_MODIFIED, super::publish::http_date(produced)),
                (EXPIRES, super::publish::http_date(next)),
                (ETAG, format!("\"{etag}\"")),
            ]
        }
        _ => vec![(CACHE_CONTROL, "no-store".to_owned())],
    }
}

fn hex_prefix(b: &[u8]) -> String {
    b.iter().take(16).map(|x| format!("{x:02x}")).collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Answer `/ocsp` (GET or POST): 1. take the request from the path or the body; 2. parse
/// it ([`parse_request`]), answering `malformedRequest` here; 3. ask the signer
/// (`Op::Ocsp`); if it cannot be reached, `tryLater`; 4. answer with caching headers.
pub(super) async fn answer(
    signer: &SignerPool,
    req: Request<Incoming>,
    peer: SocketAddr,
    timeout: Duration,
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(128).collect();
    let is_get = method == Method::GET;
    let bytes = match method {
        Method::GET => match req.uri().path().strip_prefix("/ocsp/") {
            Some(rest) => decode_get(rest),
            None => decode_get(""),
        },
        Method::POST => {
            if !is_ocsp_path(req.uri().path()) {
                Err(HttpError::NotFound)
            } else {
                read_body(req, timeout).await
            }
        }
        _ => Err(HttpError::MethodNotAllowed),
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            let (status, reason) = e.answer();
            tracing::info!(%peer, %method, %path, status = status.as_u16(), reason, "ocsp");
            let mut resp = response(
                status,
                "text/plain; charset=utf-8",
                format!("{reason}\n").into_bytes(),
            );
            if e == HttpError::MethodNotAllowed {
                resp.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, POST"));
            }
            return resp;
        }
    };
    let a = match parse_request(&bytes) {
        Err(e) => {
            tracing::info!(%peer, %method, error = %e, "ocsp: malformed request");
            OcspAnswer::error(e.status(), "malformedRequest")
        }
        Ok(_) => match signer.call(Op::Ocsp { request: bytes }).await {
            Ok(Reply::Ocsp {
                der,
                produced_at,
                next_update,
            }) => OcspAnswer {
                der,
                produced_at,
                next_update,
                what: "signer",
            },
            Ok(other) => {
                tracing::warn!(%peer, reply = ?std::mem::discriminant(&other), "ocsp: unexpected reply from the signer");
                OcspAnswer::error(ResponseStatus::InternalError, "internalError")
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "ocsp: signer unavailable");
                OcspAnswer::error(ResponseStatus::TryLater, "tryLater")
            }
        },
    };
    tracing::info!(%peer, %method, %path, status = 200, bytes = a.der.len(), answer = a.what, "ocsp");
    let headers = cache_headers(&a, is_get, unix_now());
    let mut resp = response(StatusCode::OK, CT_RESPONSE, a.der);
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let len = body.len();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
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
    /// What `openssl ocsp -issuer r.pem -serial 0x1234 -reqout req.der` wrote (with a nonce).
    const OPENSSL_REQUEST: &str = "MGgwZjA/MD0wOzAJBgUrDgMCGgUABBRSIUbemXtIWEHdfOYxZEhtR6R4lQQUTluGHMLBwwGfuqfrWe72cM78FTYCAhI0oiMwITAfBgkrBgEFBQcwAQIEEgQQnlK31gzJQPg0C5LF4K2eTw==";

    #[test]
    fn get_paths_decode_leniently() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(OPENSSL_REQUEST)
            .unwrap();
        let escaped: String = OPENSSL_REQUEST
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let url_safe = OPENSSL_REQUEST.replace('+', "-").replace('/', "_");
        for form in [
            OPENSSL_REQUEST,
            &escaped,
            &url_safe,
            OPENSSL_REQUEST.trim_end_matches('='),
        ] {
            assert_eq!(decode_get(form).unwrap(), der, "{form}");
        }
        assert!(matches!(decode_get(""), Err(HttpError::BadRequest(_))));
        assert!(matches!(decode_get("%zz"), Err(HttpError::BadRequest(_))));
        assert!(matches!(decode_get("!!!"), Err(HttpError::BadRequest(_))));
        assert_eq!(decode_get(&"A".repeat(100_000)), Err(HttpError::UriTooLong));
        assert!(is_ocsp_path("/ocsp") && is_ocsp_path("/ocsp/MEow"));
        assert!(!is_ocsp_path("/ocspx") && !is_ocsp_path("/crl/x.crl"));
    }

    #[test]
    fn only_cacheable_get_answers_are_cached() {
        let a = OcspAnswer {
            der: vec![1, 2, 3],
            produced_at: Some(1_000),
            next_update: Some(4_600),
            what: "t",
        };
        let h = cache_headers(&a, true, 1_000);
        assert_eq!(
            h[0].1,
            "max-age=3600, public, no-transform, must-revalidate"
        );
        assert!(h.iter().any(|(n, _)| n == EXPIRES));
        assert_eq!(cache_headers(&a, false, 1_000)[0].1, "no-store");
        assert_eq!(cache_headers(&a, true, 5_000)[0].1, "no-store");
        let nonce = OcspAnswer {
            produced_at: None,
            next_update: None,
            ..a
        };
        assert_eq!(cache_headers(&nonce, true, 1_000)[0].1, "no-store");
    }
}
