//! The connector socket between castellan-signer and castellan-mdm (version 1).
//!
//! The signer connects to the connector's unix socket (each side checks the other's uid
//! with SO_PEERCRED) and sends one [`Call`] per connection; the connector answers one
//! [`Answer`]. A frame is a 4-byte big-endian length and that many bytes of JSON. The op
//! set is closed and removed variants are never reused.
//!
//! The connector never makes the signer issue: the signer has parsed the request, checked
//! proof of possession and its own profile policy before it asks, and it takes the
//! connector's verdict only as the challenge decision. Revocations that Intune asks for
//! travel the other way, on the admin port, under the connector's own certificate
//! ([`crate::admin::Request::MdmRevoke`]), so the signer still listens on no new socket.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Protocol version, carried by every [`Call`].
pub const VERSION: u32 = 1;
/// Largest frame either side accepts (a CSR of a 4096-bit key is under 2 KiB).
pub const MAX_FRAME: usize = 64 * 1024;
/// Longest reason text passed on to a device or an admin.
pub const MAX_REASON: usize = 255;

/// One request from the signer. (Unknown fields are refused by [`Op`]: serde cannot deny
/// them on a struct with a flattened member.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub version: u32,
    #[serde(flatten)]
    pub op: Op,
}

/// Which outside service decides a profile's challenges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validator {
    /// Intune's partner-CA API (`ScepActions/validateRequest`).
    Intune,
    /// The profile's webhook (an HMAC-signed HTTPS POST).
    Webhook,
}

/// What the signer may ask the connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Op {
    /// Is this request's challenge genuine? Asked after the signer decrypted the envelope,
    /// checked the CSR's signature, the signer certificate and the profile's policy.
    Validate {
        validator: Validator,
        profile: String,
        transaction_id: String,
        /// The PKCS#10 DER, base64 (standard alphabet, no line breaks), as Intune wants it.
        csr: String,
        /// The challengePassword (the webhook gets only its SHA-256 unless the connector's
        /// profile config says otherwise).
        challenge: String,
        /// The request's subject (RFC 4514 string) and SANs (`dns:…`), for webhooks.
        subject: String,
        sans: Vec<String>,
    },
    /// Intune's `successNotification`: sent after the certificate is durable and before
    /// the CertRep leaves the signer.
    NotifySuccess {
        profile: String,
        transaction_id: String,
        csr: String,
        /// SHA-1 of the certificate DER, lower-case hex.
        thumbprint: String,
        /// Minimal lower-case hex, no leading zeros.
        serial: String,
        /// `YYYY-MM-DDThh:mm:ss.0000000Z`.
        expires: String,
        /// The issuing CA's subject DN (RFC 4514); Intune hands it back in revocation
        /// requests as `issuerName`.
        issuer: String,
        /// The CA's name in Castellan (Intune's `caConfiguration`).
        ca: String,
    },
    /// Intune's `failureNotification`: validation passed but nothing was issued.
    NotifyFailure {
        profile: String,
        transaction_id: String,
        csr: String,
        /// HRESULT with the customer bit: 0x20000000 + SCEP failInfo (docs/mdm.md).
        hresult: i64,
        description: String,
    },
}

/// The connector's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Answer {
    /// The challenge is genuine: the signer may issue (if its own checks passed).
    Allow,
    /// The service said no; the reason goes to the device as failInfoText.
    Deny { reason: String },
    /// The notification was accepted.
    Done,
    /// The service could not be asked or did not answer well (network, token, 5xx,
    /// malformed answer, timeout): treated as a refusal.
    Unavailable { reason: String },
}

impl Answer {
    /// A reason capped for a failInfoText.
    pub fn reason(s: impl Into<String>) -> String {
        let mut s: String = s.into();
        if s.len() > MAX_REASON {
            let mut end = MAX_REASON;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        s
    }
}

/// Encode one frame.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let body = serde_json::to_vec(value)?;
    if body.len() > MAX_FRAME {
        return Err(Error::Invalid(format!(
            "connector frame of {} bytes exceeds {MAX_FRAME}",
            body.len()
        )));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The length announced by a frame header, refused above [`MAX_FRAME`].
pub fn frame_len(header: [u8; 4]) -> Result<usize> {
    let n = u32::from_be_bytes(header) as usize;
    if n > MAX_FRAME {
        return Err(Error::Invalid(format!(
            "connector frame of {n} bytes exceeds {MAX_FRAME}"
        )));
    }
    Ok(n)
}

/// Decode a frame body, checking the version of a [`Call`].
pub fn decode_call(body: &[u8]) -> Result<Call> {
    let call: Call = serde_json::from_slice(body)?;
    if call.version != VERSION {
        return Err(Error::Invalid(format!(
            "connector protocol version {} (this side speaks {VERSION})",
            call.version
        )));
    }
    Ok(call)
}

/// Decode an [`Answer`] frame body.
pub fn decode_answer(body: &[u8]) -> Result<Answer> {
    Ok(serde_json::from_slice(body)?)
}

/// Intune's `certificateSerialNumber`: minimal lower-case hex without leading zeros.
pub fn intune_serial(serial_hex: &str) -> String {
    let s = serial_hex.trim_start_matches('0').to_ascii_lowercase();
    if s.is_empty() { "0".into() } else { s }
}

/// Intune's `certificateExpirationDateUtc` for a Unix time: ISO 8601 UTC with seven
/// fraction digits, as Microsoft's own examples write it.
pub fn intune_time(unix: i64) -> String {
    let t = crate::utc(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.0000000Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minutes(),
        t.seconds()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn calls_round_trip_and_carry_their_version() {
        let call = Call {
            version: VERSION,
            op: Op::Validate {
                validator: Validator::Intune,
                profile: "phones".into(),
                transaction_id: "t1".into(),
                csr: "MIIB".into(),
                challenge: "c".into(),
                subject: "CN=x".into(),
                sans: vec!["dns:x".into()],
            },
        };
        let frame = encode(&call).unwrap();
        let n = frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(decode_call(&frame[4..4 + n]).unwrap(), call);
        let json = String::from_utf8(frame[4..].to_vec()).unwrap();
        assert!(json.contains(r#""op":"validate""#), "{json}");
        let old = json.replace(r#""version":1"#, r#""version":7"#);
        assert!(decode_call(old.as_bytes()).is_err());
        let extra = json.replace(r#""op":"validate""#, r#""op":"validate","x":1"#);
        assert!(decode_call(extra.as_bytes()).is_err());
    }

    #[test]
    fn oversized_frames_are_refused() {
        assert!(frame_len((MAX_FRAME as u32 + 1).to_be_bytes()).is_err());
        assert!(frame_len(u32::MAX.to_be_bytes()).is_err());
        let huge = Answer::Deny {
            reason: "x".repeat(MAX_FRAME),
        };
        assert!(encode(&huge).is_err());
    }

    #[test]
    fn intune_field_formats() {
        assert_eq!(intune_serial("00ab01"), "ab01");
        assert_eq!(intune_serial("7F"), "7f");
        assert_eq!(intune_serial("00"), "0");
        assert_eq!(intune_time(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(intune_time(1_528_733_480), "2018-06-11T16:11:20.0000000Z");
        assert_eq!(intune_time(951_782_400), "2000-02-29T00:00:00.0000000Z");
        assert_eq!(Answer::reason("é".repeat(200)).len(), 254);
    }
}
