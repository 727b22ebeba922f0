//! Routing of SCEP requests (RFC 8894 §4.1): which profile, which operation, and for
//! a GET PKIOperation the message. Pure functions over the request line, no I/O.
//!
//! Three path styles name the profile:
//! - `/scep/<profile>` and `/scep/<profile>/pkiclient.exe`;
//! - `/cgi-bin/pkiclient.exe?profile=<profile>`;
//! - `/cgi-bin/pkiclient.exe` alone, when a default profile is configured.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hyper::Method;

use super::Error;

/// Longest GET `message` parameter (base64 text, after percent-decoding): a little more
/// than the base64 form of the largest PKIMessage ([`crate::message::MAX_MESSAGE`]).
/// Behind hyper, a request URI is at most 64 KiB anyway (`http::Uri`; hyper answers 414
/// itself); this bound keeps the router safe on its own.
pub const MAX_GET_MESSAGE: usize = 90 * 1024;

/// A SCEP profile name, checked with the signer's own validator
/// ([`proto::model::ProfileName`]).
///
/// The signer decides whether the profile exists; the edge only refuses names that
/// cannot be one, so they never reach the socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Profile(String);

impl Profile {
    /// Validate a profile name.
    pub fn new(name: &str) -> Result<Self, Error> {
        proto::model::ProfileName::new(name)
            .map(|n| Profile(n.into()))
            .map_err(|_| Error::BadProfile)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Profile::new(s)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `operation` query parameter (RFC 8894 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// RFC 8894 §3.5.1.
    GetCaCaps,
    /// RFC 8894 §4.2.
    GetCaCert,
    /// RFC 8894 §4.7.
    GetNextCaCert,
    /// RFC 8894 §4.3.
    PkiOperation,
}

impl Operation {
    /// The RFC spelling. Matching is ASCII case-insensitive: some old clients are sloppy,
    /// and there is no ambiguity to fear.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Operation::GetCaCaps,
            Operation::GetCaCert,
            Operation::GetNextCaCert,
            Operation::PkiOperation,
        ]
        .into_iter()
        .find(|op| op.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::GetCaCaps => "GetCACaps",
            Operation::GetCaCert => "GetCACert",
            Operation::GetNextCaCert => "GetNextCACert",
            Operation::PkiOperation => "PKIOperation",
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub profile: Profile,
    pub operation: Operation,
    /// The decoded PKIMessage of a GET PKIOperation (RFC 8894 §4.1); `None` for a POST,
    /// whose message is the body, and for the other operations.
    pub message: Option<Vec<u8>>,
}

/// Route a request from its method, path and raw (still percent-encoded) query.
///
/// Steps: 1. the path (404), 2. the method (405), 3. the query (400), 4. the profile
/// (404), 5. the operation (400), 6. for a GET PKIOperation, the base64 message (400/414).
pub fn route(
    method: &Method,
    path: &str,
    query: Option<&str>,
    default_profile: Option<&Profile>,
) -> Result<Route, Error> {
    let in_path = match_path(path)?;
    let is_get = match *method {
        Method::GET => true,
        Method::POST => false,
        _ => return Err(Error::MethodNotAllowed),
    };
    let q = Query::parse(query.unwrap_or(""))?;
    let profile = match in_path {
        Some(name) => Profile::new(name)?,
        None => match &q.profile {
            Some(raw) => Profile::new(&form_text(raw)?)?,
            None => default_profile.cloned().ok_or(Error::NoProfile)?,
        },
    };
    let operation = match &q.operation {
        None => return Err(Error::BadRequest("missing operation parameter")),
        Some(raw) => Operation::parse(&form_text(raw)?).ok_or(Error::UnknownOperation)?,
    };
    let message = match (operation, is_get) {
        (Operation::PkiOperation, true) => {
            let raw = q
                .message
                .ok_or(Error::BadRequest("missing message parameter"))?;
            Some(decode_message(raw)?)
        }
        _ => None,
    };
    Ok(Route {
        profile,
        operation,
        message,
    })
}

/// `Some(name)` for the `/scep/<name>` styles, `None` for `/cgi-bin/pkiclient.exe`.
fn match_path(path: &str) -> Result<Option<&str>, Error> {
    if path == "/cgi-bin/pkiclient.exe" {
        return Ok(None);
    }
    let rest = path.strip_prefix("/scep/").ok_or(Error::NotFound)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    Ok(Some(rest.strip_suffix("/pkiclient.exe").unwrap_or(rest)))
}

/// The query parameters the edge reads, still percent-encoded. Others are ignored;
/// a repeated known parameter is refused rather than guessed at.
#[derive(Debug, Default)]
struct Query<'a> {
    operation: Option<&'a str>,
    message: Option<&'a str>,
    profile: Option<&'a str>,
}

impl<'a> Query<'a> {
    fn parse(query: &'a str) -> Result<Self, Error> {
        let mut q = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match percent_decode(key, true)?.as_slice() {
                b"operation" => &mut q.operation,
                b"message" => &mut q.message,
                b"profile" => &mut q.profile,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(Error::BadRequest("repeated query parameter"));
            }
        }
        Ok(q)
    }
}

/// A form-encoded text value (`+` is a space), which must be UTF-8.
fn form_text(raw: &str) -> Result<String, Error> {
    String::from_utf8(percent_decode(raw, true)?)
        .map_err(|_| Error::BadRequest("query parameter is not UTF-8"))
}

/// Decode `%XX` escapes; with `plus_is_space`, `+` becomes a space (form encoding).
fn percent_decode(raw: &str, plus_is_space: bool) -> Result<Vec<u8>, Error> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex);
                let lo = bytes.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(Error::BadRequest("malformed percent-encoding"));
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Base64 with the standard alphabet, padding optional, trailing bits tolerated.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decode the GET `message` parameter (RFC 8894 §4.1: base64 of the DER PKIMessage,
/// then URL-encoded).
///
/// Clients differ, so this accepts: a `+` left raw or escaped as `%2B`; a `+` turned into
/// a space by form decoding (raw or `%20`), taken back as `+`; the URL-safe alphabet
/// (`-`, `_`); padding or none; line breaks (`%0A`, `%0D`) from wrapping encoders.
fn decode_message(raw: &str) -> Result<Vec<u8>, Error> {
    if raw.len() > 3 * MAX_GET_MESSAGE {
        return Err(Error::UriTooLong);
    }
    let decoded = percent_decode(raw, false)?;
    if decoded.len() > MAX_GET_MESSAGE {
        return Err(Error::UriTooLong);
    }
    let mut text: Vec<u8> = decoded
        .into_iter()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .map(|b| match b {
            b' ' | b'-' => b'+',
            b'_' => b'/',
            other => other,
        })
        .collect();
    while text.last() == Some(&b'=') {
        text.pop();
    }
    LENIENT_B64
        .decode(&text)
        .map_err(|_| Error::BadRequest("message parameter is not base64"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(name: &str) -> Profile {
        Profile::new(name).unwrap()
    }

    #[test]
    fn profile_names() {
        for ok in ["a", "devices", "wifi-2024_v1.0", &"x".repeat(64)] {
            assert!(Profile::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "a/b",
            "a b",
            "é",
            "..",
            ".",
            &"x".repeat(65),
            "a%2Fb",
            // The signer's rule: a name starts with a letter or digit.
            "-x",
            "_x",
            ".x",
        ] {
            assert!(matches!(Profile::new(bad), Err(Error::BadProfile)), "{bad}");
        }
    }

    #[test]
    fn three_path_styles() {
        let r = |path, q| route(&Method::GET, path, Some(q), None);
        for path in ["/scep/dev", "/scep/dev/", "/scep/dev/pkiclient.exe"] {
            let got = r(path, "operation=GetCACaps").unwrap();
            assert_eq!(
                (got.profile, got.operation),
                (p("dev"), Operation::GetCaCaps)
            );
        }
        let got = r("/cgi-bin/pkiclient.exe", "operation=GetCACert&profile=dev").unwrap();
        assert_eq!(
            (got.profile, got.operation),
            (p("dev"), Operation::GetCaCert)
        );
        let got = route(
            &Method::GET,
            "/cgi-bin/pkiclient.exe",
            Some("operation=GetNextCACert"),
            Some(&p("def")),
        )
        .unwrap();
        assert_eq!(got.profile, p("def"));
        assert!(matches!(
            r("/cgi-bin/pkiclient.exe", "operation=GetCACert"),
            Err(Error::NoProfile)
        ));
        for bad in [
            "/",
            "/scep",
            "/scep/",
            "/scep/a/b",
            "/scep/A",
            "/cgi-bin/x.exe",
        ] {
            let e = r(bad, "operation=GetCACaps").unwrap_err();
            assert_eq!(e.status(), 404, "{bad}");
        }
    }

    #[test]
    fn methods_and_operations() {
        let e = route(&Method::PUT, "/scep/a", Some("operation=GetCACaps"), None).unwrap_err();
        assert!(matches!(e, Error::MethodNotAllowed));
        let e = route(&Method::GET, "/scep/a", Some("operation=Format"), None).unwrap_err();
        assert!(matches!(e, Error::UnknownOperation));
        let e = route(&Method::GET, "/scep/a", None, None).unwrap_err();
        assert_eq!(e.status(), 400);
        let e = route(
            &Method::GET,
            "/scep/a",
            Some("operation=GetCACaps&operation=GetCACert"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.status(), 400);
        let ok = route(
            &Method::GET,
            "/scep/a",
            Some("operation=getcacaps&x=1&&"),
            None,
        );
        assert_eq!(ok.unwrap().operation, Operation::GetCaCaps);
        // POST PKIOperation: the message is the body.
        let ok = route(
            &Method::POST,
            "/scep/a",
            Some("operation=PKIOperation"),
            None,
        )
        .unwrap();
        assert_eq!(ok.message, None);
        let e = route(
            &Method::GET,
            "/scep/a",
            Some("operation=PKIOperation"),
            None,
        );
        assert_eq!(e.unwrap_err().status(), 400);
        // GetCACert's message names a CA: free text, never decoded.
        let ok = route(
            &Method::GET,
            "/scep/a",
            Some("operation=GetCACert&message=%%"),
            None,
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn get_message_encodings() {
        let der: Vec<u8> = (0u8..=255).cycle().take(1000).collect();
        let std = base64::engine::general_purpose::STANDARD.encode(&der);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
        assert!(std.contains('+') && std.contains('/') && std.ends_with('='));
        let escaped = std
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let wrapped: String = std
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("%0A");
        for m in [
            std.clone(),
            std.trim_end_matches('=').to_owned(),
            escaped,
            std.replace('+', "%20"),
            url,
            wrapped,
        ] {
            let q = format!("operation=PKIOperation&message={m}");
            let r = route(&Method::GET, "/scep/a", Some(&q), None).unwrap();
            assert_eq!(r.message.as_deref(), Some(der.as_slice()), "{m}");
        }
        for (bad, status) in [("%ZZ", 400), ("a*b", 400), ("%", 400)] {
            let q = format!("operation=PKIOperation&message={bad}");
            let e = route(&Method::GET, "/scep/a", Some(&q), None).unwrap_err();
            assert_eq!(e.status(), status, "{bad}");
        }
        let q = format!(
            "operation=PKIOperation&message={}",
            "A".repeat(MAX_GET_MESSAGE + 4)
        );
        let e = route(&Method::GET, "/scep/a", Some(&q), None).unwrap_err();
        assert!(matches!(e, Error::UriTooLong));
    }

    #[test]
    fn percent_decoding_never_panics() {
        for s in ["%", "%4", "%4g", "%%41", "\u{e9}%C3%A9", "+%2B"] {
            let _ = percent_decode(s, true);
            let _ = percent_decode(s, false);
        }
        assert_eq!(percent_decode("a+b%2Bc", true).unwrap(), b"a b+c");
        assert_eq!(percent_decode("a+b%2Bc", false).unwrap(), b"a+b+c");
    }
}
