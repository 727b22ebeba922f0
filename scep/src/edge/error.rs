//! The edge's errors, and their one mapping to HTTP (status and short public reason).

use std::borrow::Cow;

use hyper::StatusCode;

use crate::ScepError;
use proto::wire::{FrameError, Refusal, VERSION};

/// Everything that can stop the edge from answering a request with the signer's reply.
///
/// [`Error::status`] and [`Error::public_reason`] are the only place an error becomes
/// an HTTP answer; the detail (the `Display` form) is logged, never sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No SCEP endpoint at this path.
    #[error("no such endpoint")]
    NotFound,
    /// The profile name is not 1–64 characters of `[a-z0-9-_.]`.
    #[error("invalid profile name")]
    BadProfile,
    /// `/cgi-bin/pkiclient.exe` without `profile=` and no default profile is configured.
    #[error("no profile given")]
    NoProfile,
    /// Neither GET nor POST (RFC 8894 §4.1).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A malformed query or request, with a short reason.
    #[error("{0}")]
    BadRequest(&'static str),
    /// An `operation` this edge does not know (RFC 8894 §4.1 lists the known ones).
    #[error("unknown operation")]
    UnknownOperation,
    /// The request body is larger than `--max-body`.
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The GET `message` parameter is larger than [`super::route::MAX_GET_MESSAGE`].
    #[error("message parameter too long")]
    UriTooLong,
    /// The client did not send its body in time.
    #[error("request body not received in time")]
    RequestTimeout,
    /// The client started a request head but did not finish it within `--header-timeout`
    /// (answered on the raw connection, which is then closed).
    #[error("request head not received in time")]
    HeadTimeout,
    /// hyper could not frame the request and answered with this status itself (400: a
    /// malformed request line or header; 414: URI too long; 431: head too large); the
    /// edge supplies the body.
    #[error("request not framed (HTTP {0})")]
    Unframed(u16),
    /// A connection cap is reached and every connection under it is answering a request:
    /// the new connection is refused.
    #[error("connection cap {0} reached and every connection is busy")]
    Busy(&'static str),
    /// The PKIMessage failed the edge's screening (RFC 8894 §3.2); the signer was not asked.
    #[error("malformed PKIMessage: {0}")]
    BadMessage(ScepError),
    /// The signer could not be asked, or did not answer.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The signer refused before building a CertRep; its reason decides the status, its
    /// message is passed on.
    #[error("refused by the signer ({reason:?}): {message}")]
    Refused { reason: Refusal, message: String },
    /// The signer answered with a reply that does not fit the operation.
    #[error("unexpected reply from the signer to {0}")]
    UnexpectedReply(&'static str),
    /// Unusable configuration (exit code 78 in `castellan-edge`).
    #[error("{0}")]
    Config(String),
}

/// Why the signer could not answer. Always HTTP 503 "signer unavailable" to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// The socket could not be opened (absent, refused, permission).
    #[error("cannot connect to the signer socket: {0}")]
    Connect(String),
    /// Every connection failed recently; the pool waits before trying again.
    #[error("signer connections are backing off after failures")]
    BackingOff,
    /// The signer answered Hello with another protocol version.
    #[error("signer speaks protocol version {0}, this edge speaks {VERSION}")]
    Version(u32),
    /// The signer broke the framing or the protocol.
    #[error("signer protocol error: {0}")]
    Protocol(String),
    /// The connection closed while the request was in flight.
    #[error("signer connection lost")]
    Disconnected,
    /// No reply within the per-request timeout.
    #[error("signer did not answer in time")]
    Timeout,
    /// The request could not be framed (cannot happen for a PKIMessage within its size cap).
    #[error("cannot frame the request: {0}")]
    Frame(FrameError),
}

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NotFound | Error::BadProfile | Error::NoProfile => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::BadRequest(_) | Error::UnknownOperation | Error::BadMessage(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UriTooLong => StatusCode::URI_TOO_LONG,
            Error::RequestTimeout | Error::HeadTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::Unframed(414) => StatusCode::URI_TOO_LONG,
            Error::Unframed(431) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::Unframed(_) => StatusCode::BAD_REQUEST,
            Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Signer(SignerError::Frame(_)) | Error::Config(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Error::Signer(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Refused { reason, .. } => refused_status(*reason),
            Error::UnexpectedReply(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The short reason sent to the client (`text/plain; charset=utf-8`).
    pub fn public_reason(&self) -> Cow<'static, str> {
        match self {
            Error::NotFound => "not found".into(),
            Error::BadProfile => "invalid profile name".into(),
            Error::NoProfile => "no profile given: use /scep/<profile>".into(),
            Error::MethodNotAllowed => "method not allowed: use GET or POST".into(),
            Error::BadRequest(r) => (*r).into(),
            Error::UnknownOperation => "unknown operation".into(),
            Error::BodyTooLarge(n) => format!("request body larger than {n} bytes").into(),
            Error::UriTooLong => "message parameter too long".into(),
            Error::RequestTimeout => "request body not received in time".into(),
            Error::HeadTimeout => "request head not received in time".into(),
            Error::Unframed(414) => "request URI too long".into(),
            Error::Unframed(431) => "request head too large".into(),
            Error::Unframed(_) => "malformed request line or header".into(),
            Error::Busy(_) => "edge busy, try again".into(),
            Error::BadMessage(e) => sanitize(&e.text).into(),
            Error::Signer(SignerError::Frame(_)) | Error::Config(_) => "internal error".into(),
            Error::Signer(_) => "signer unavailable".into(),
            Error::Refused { message, .. } => sanitize(message).into(),
            Error::UnexpectedReply(_) => "bad gateway".into(),
        }
    }
}

/// The whole HTTP/1.1 answer to `e`, for the answers written on the raw connection rather
/// than through hyper (a head that timed out, a request hyper could not frame, a refused
/// connection); the connection is closed after it.
pub fn raw_answer(e: &Error) -> Vec<u8> {
    let status = e.status();
    let mut reason = e.public_reason().into_owned();
    reason.push('\n');
    let retry = match retry_after(status) {
        Some(secs) => format!("Retry-After: {secs}\r\n"),
        None => String::new(),
    };
    format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n{reason}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        reason.len()
    )
    .into_bytes()
}

/// Seconds a client is told to wait before it asks again, for a status that says "later"
/// (503: the edge is busy, the signer unreachable, its token gone or its store reopening).
pub fn retry_after(status: StatusCode) -> Option<u32> {
    (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1)
}

/// A refusal must carry a 4xx or 5xx status; anything else is the signer's bug.
/// The HTTP status of a signer's refusal: the one place a [`Refusal`] becomes a number.
fn refused_status(reason: Refusal) -> StatusCode {
    match reason {
        Refusal::BadRequest => StatusCode::BAD_REQUEST,
        Refusal::NotFound => StatusCode::NOT_FOUND,
        Refusal::Changed => StatusCode::CONFLICT,
        Refusal::OutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
        Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Most characters of a reason sent to a client.
const MAX_REASON: usize = 256;

/// One short line: control characters become spaces, long texts are cut.
fn sanitize(text: &str) -> String {
    text.chars()
        .take(MAX_REASON)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_error_statuses_only() {
        let r = |reason| Error::Refused {
            reason,
            message: "no\nsuch profile".into(),
        };
        assert_eq!(r(Refusal::NotFound).status(), StatusCode::NOT_FOUND);
        assert_eq!(r(Refusal::NotFound).public_reason(), "no such profile");
        assert_eq!(r(Refusal::BadRequest).status(), StatusCode::BAD_REQUEST);
        assert_eq!(r(Refusal::Changed).status(), StatusCode::CONFLICT);
        assert_eq!(
            r(Refusal::OutOfRange).status(),
            StatusCode::RANGE_NOT_SATISFIABLE
        );
        assert_eq!(
            r(Refusal::Internal).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            r(Refusal::Unavailable).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            Error::Signer(SignerError::Timeout).public_reason(),
            "signer unavailable"
        );
        let long = Error::Refused {
            reason: Refusal::BadRequest,
            message: "x".repeat(10_000),
        };
        assert_eq!(long.public_reason().len(), MAX_REASON);
    }

    #[test]
    fn raw_answers_carry_status_reason_and_length() {
        let a = String::from_utf8(raw_answer(&Error::HeadTimeout)).unwrap();
        assert_eq!(
            a,
            "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 34\r\nConnection: close\r\n\r\nrequest head not received in time\n"
        );
        let a = String::from_utf8(raw_answer(&Error::Unframed(431))).unwrap();
        assert!(
            a.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{a}"
        );
        assert!(a.ends_with("\r\n\r\nrequest head too large\n"), "{a}");
        let a = String::from_utf8(raw_answer(&Error::Busy("global_cap"))).unwrap();
        assert!(a.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{a}");
        assert!(a.contains("\r\nRetry-After: 1\r\n"), "{a}");
        assert!(a.contains("\r\nContent-Length: 21\r\n"), "{a}");
    }
}
