//! The signing socket between castellan-edge and castellan-signer (version 1).
//!
//! A frame is a 4-byte big-endian length, then that many bytes: an 8-byte big-endian
//! request id, a 4-byte big-endian length of the JSON body, the JSON body, and the
//! payload: the one large byte string the operation carries (a PKIMessage, a CertRep, a
//! CRL piece), raw, never base64 inside the JSON. A connection carries several requests at once; each
//! reply carries the id of its request. The operation set is closed: removed variants
//! are never reused. The signer trusts nothing in a request: it re-parses the
//! PKIMessage and makes every policy decision itself.

use serde::{Deserialize, Serialize};

/// Protocol version, sent by the edge in [`Op::Hello`].
pub const VERSION: u32 = 2;
/// Largest request frame (edge to signer) the signer accepts.
pub const MAX_REQUEST: usize = 256 * 1024;
/// Largest reply frame (signer to edge) the edge accepts: pieces of published objects
/// (a CRL of a million entries is about 50 MB) travel in 2 MiB pieces.
pub const MAX_REPLY: usize = 4 * 1024 * 1024;

/// What travels in frames, with its size cap and its payload (sent after the JSON).
pub trait Frame {
    const MAX: usize;
    /// The large bytes this value carries, if any.
    fn payload(&self) -> &[u8];
    /// Put the payload read from a frame back in its place.
    fn set_payload(&mut self, bytes: Vec<u8>);
}

impl Frame for Op {
    const MAX: usize = MAX_REQUEST;
    fn payload(&self) -> &[u8] {
        match self {
            Op::PkiOperation { message: b, .. } | Op::Ocsp { request: b } => b,
            _ => &[],
        }
    }
    fn set_payload(&mut self, bytes: Vec<u8>) {
        if let Op::PkiOperation { message: b, .. } | Op::Ocsp { request: b } = self {
            *b = bytes;
        }
    }
}

impl Frame for Reply {
    const MAX: usize = MAX_REPLY;
    fn payload(&self) -> &[u8] {
        match self {
            Reply::CaCert { der, .. }
            | Reply::CertRep { der }
            | Reply::Published { der, .. }
            | Reply::Ocsp { der, .. } => der,
            _ => &[],
        }
    }
    fn set_payload(&mut self, bytes: Vec<u8>) {
        if let Reply::CaCert { der, .. }
        | Reply::CertRep { der }
        | Reply::Published { der, .. }
        | Reply::Ocsp { der, .. } = self
        {
            *der = bytes;
        }
    }
}

/// What the edge may ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Op {
    /// First request on a connection: the versions must match.
    Hello { version: u32 },
    /// RFC 8894 §3.5.1 GetCACaps for a profile.
    GetCaCaps { profile: String },
    /// RFC 8894 §4.2 GetCACert: the RA certificate and the CA chain.
    GetCaCert { profile: String },
    /// RFC 8894 §4.7 GetNextCACert.
    GetNextCaCert { profile: String },
    /// RFC 8894 §4.3 PKIOperation: the PKIMessage exactly as the client sent it.
    PkiOperation {
        profile: String,
        #[serde(skip)]
        message: Vec<u8>,
    },
    /// The current CRL of a CA (RFC 5280 §5), DER, for `/crl/<ca>.crl`: the piece from
    /// `offset` (see [`Reply::Published`]). With `etag`, the edge's copy: at offset 0 the
    /// answer is [`Reply::NotModified`] if it is current; past 0 it pins the object (a 409
    /// if it was replaced meanwhile).
    GetCrl {
        ca: String,
        #[serde(default)]
        etag: Option<String>,
        #[serde(default)]
        offset: u64,
    },
    /// A CA certificate by name, DER, for `/aia/<ca>.crt` (RFC 5280 §4.2.2.1); `etag` and
    /// `offset` as for [`Op::GetCrl`].
    GetCaCertByName {
        ca: String,
        #[serde(default)]
        etag: Option<String>,
        #[serde(default)]
        offset: u64,
    },
    /// RFC 6960 OCSP: the DER OCSPRequest exactly as the client sent it (the edge
    /// already checked it with [`crate::ocsp::parse_request`]).
    Ocsp {
        #[serde(skip)]
        request: Vec<u8>,
    },
}

/// What the signer answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Reply {
    Hello {
        version: u32,
    },
    Caps {
        caps: Vec<String>,
    },
    /// DER: one certificate (`ra` false) or a degenerate PKCS#7 with the RA and CA chain (`ra` true).
    CaCert {
        #[serde(skip)]
        der: Vec<u8>,
        ra: bool,
    },
    /// A signed CertRep (SUCCESS, FAILURE or PENDING).
    CertRep {
        #[serde(skip)]
        der: Vec<u8>,
    },
    /// Refused before a CertRep could be built; the edge alone turns `reason` into an
    /// HTTP status.
    Refused {
        reason: Refusal,
        message: String,
    },
    /// A piece of a published object (CRL or certificate) with what caches need: the bytes
    /// from `offset`, at most 2 MiB (a CRL of a million entries is about 50 MB); the edge
    /// asks for the next piece until it has `total` bytes.
    Published {
        #[serde(skip)]
        der: Vec<u8>,
        #[serde(default)]
        offset: u64,
        /// The whole object's length (absent: `der` is all of it).
        #[serde(default)]
        total: Option<u64>,
        /// Unix seconds: when it was made (Last-Modified).
        issued_at: i64,
        /// Unix seconds: when a successor is due (Expires / max-age).
        next_update: Option<i64>,
        /// A strong validator (ETag).
        etag: String,
    },
    /// The edge's copy of a published object is current.
    NotModified {
        etag: String,
    },
    /// RFC 6960: always a DER OCSPResponse, error statuses included.
    Ocsp {
        #[serde(skip)]
        der: Vec<u8>,
        /// Unix seconds, set only if HTTP caches may keep the answer (no nonce,
        /// successful): producedAt (Last-Modified) and nextUpdate (max-age, Expires).
        #[serde(default)]
        produced_at: Option<i64>,
        #[serde(default)]
        next_update: Option<i64>,
    },
}

/// Why the signer refused a request it could not answer with a CertRep or object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Refusal {
    /// The request is malformed (a PKIMessage the signer cannot read).
    BadRequest,
    /// No such profile or CA, or nothing published for it yet.
    NotFound,
    /// The published object was replaced between two pieces: fetch it again from 0.
    Changed,
    /// The offset lies past the end of the published object.
    OutOfRange,
    /// The signer failed inside (token or store); the detail is in its log.
    Internal,
    /// The signer cannot answer for now and heals by itself (its token is gone or its store
    /// is reopening after an I/O error): ask again later (HTTP 503 with Retry-After).
    Unavailable,
}

/// Frame errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is larger than {1}")]
    TooLarge(usize, usize),
    #[error("frame shorter than its id")]
    Short,
    #[error("malformed frame body: {0}")]
    Body(String),
}

/// Encode a frame: length, id, JSON length, JSON, payload.
pub fn encode<T: Serialize + Frame>(id: u64, body: &T) -> Result<Vec<u8>, FrameError> {
    let json = serde_json::to_vec(body).map_err(|e| FrameError::Body(e.to_string()))?;
    let payload = body.payload();
    let len = 12 + json.len() + payload.len();
    if len > T::MAX {
        return Err(FrameError::TooLarge(len, T::MAX));
    }
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(payload);
    Ok(out)
}

/// Check the length of a frame of `T` read from the stream before reading the body.
pub fn check_len<T: Frame>(len: u32) -> Result<usize, FrameError> {
    let len = len as usize;
    if len > T::MAX {
        Err(FrameError::TooLarge(len, T::MAX))
    } else if len < 12 {
        Err(FrameError::Short)
    } else {
        Ok(len)
    }
}

/// Read one frame's body (after its length, checked against `T`'s cap) from a stream:
/// `None` at a clean end of stream before a frame. The one frame reader, for the signer's
/// socket and the edge's connection alike; [`decode`] then reads the body.
#[cfg(feature = "io")]
pub async fn read_frame<T: Frame, R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = check_len::<T>(u32::from_be_bytes(len))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Decode a frame body (after its length).
pub fn decode<T: for<'de> Deserialize<'de> + Frame>(frame: &[u8]) -> Result<(u64, T), FrameError> {
    if frame.len() > T::MAX {
        return Err(FrameError::TooLarge(frame.len(), T::MAX));
    }
    let (Some(id), Some(json_len)) = (frame.get(..8), frame.get(8..12)) else {
        return Err(FrameError::Short);
    };
    let id = u64::from_be_bytes(id.try_into().map_err(|_| FrameError::Short)?);
    let json_len = u32::from_be_bytes(json_len.try_into().map_err(|_| FrameError::Short)?);
    let rest = &frame[12..];
    let Some((json, payload)) = rest.split_at_checked(json_len as usize) else {
        return Err(FrameError::Body(format!(
            "the JSON length {json_len} runs past the frame"
        )));
    };
    let mut body: T = serde_json::from_slice(json).map_err(|e| FrameError::Body(e.to_string()))?;
    if !payload.is_empty() {
        body.set_payload(payload.to_vec());
        if body.payload().len() != payload.len() {
            return Err(FrameError::Body(
                "a payload on an operation that carries none".into(),
            ));
        }
    }
    Ok((id, body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let op = Op::PkiOperation {
            profile: "devices".into(),
            message: vec![1, 2, 3],
        };
        let f = encode(7, &op).unwrap();
        let len = check_len::<Op>(u32::from_be_bytes(f[..4].try_into().unwrap())).unwrap();
        assert_eq!(len, f.len() - 4);
        let (id, back): (u64, Op) = decode(&f[4..]).unwrap();
        assert_eq!((id, back), (7, op));
        // The payload travels raw after the JSON, not base64 inside it.
        let message = vec![0x30; 3000];
        let op = Op::PkiOperation {
            profile: "devices".into(),
            message: message.clone(),
        };
        let f = encode(8, &op).unwrap();
        assert_eq!(
            f.len(),
            4 + 12 + r#"{"op":"pki-operation","profile":"devices"}"#.len() + 3000
        );
        assert!(f.ends_with(&message));
        assert_eq!(decode::<Op>(&f[4..]).unwrap(), (8, op));
        let reply = Reply::CertRep { der: vec![1; 10] };
        let f = encode(9, &reply).unwrap();
        assert_eq!(decode::<Reply>(&f[4..]).unwrap(), (9, reply));
    }

    #[test]
    fn bad_frames_are_errors() {
        assert!(check_len::<Op>(u32::MAX).is_err());
        assert!(check_len::<Op>(3).is_err());
        // A reply may be larger than a request, within its own cap.
        let big = (MAX_REQUEST + 1) as u32;
        assert!(check_len::<Op>(big).is_err());
        assert!(check_len::<Reply>(big).is_ok());
        assert!(check_len::<Reply>((MAX_REPLY + 1) as u32).is_err());
        assert!(decode::<Op>(&[0; 4]).is_err());
        let frame = |json: &str, payload: &[u8]| {
            let mut f = 1u64.to_be_bytes().to_vec();
            f.extend_from_slice(&(json.len() as u32).to_be_bytes());
            f.extend_from_slice(json.as_bytes());
            f.extend_from_slice(payload);
            f
        };
        let caps = r#"{"op":"get-ca-caps","profile":"p"}"#;
        assert!(decode::<Op>(&frame(caps, b"")).is_ok());
        assert!(decode::<Op>(&frame(r#"{"op":"format-disk"}"#, b"")).is_err());
        assert!(decode::<Op>(&frame(r#"{"op":"get-ca-caps","profile":"p","x":1}"#, b"")).is_err());
        // A payload where the operation carries none, and a JSON length past the frame.
        assert!(decode::<Op>(&frame(caps, b"extra")).is_err());
        let mut long = frame(caps, b"");
        long[11] = 0xff;
        assert!(decode::<Op>(&long).is_err());
        for n in 0..40 {
            let f = encode(
                1,
                &Op::GetCaCaps {
                    profile: "p".into(),
                },
            )
            .unwrap();
            let _ = decode::<Op>(&f[4..(4 + n).min(f.len())]);
        }
    }

    #[cfg(feature = "io")]
    #[tokio::test]
    async fn the_frame_reader_stops_cleanly_and_refuses_what_is_too_large_or_cut() {
        let reply = Reply::CertRep { der: vec![7; 100] };
        let frame = encode(3, &reply).unwrap();
        let mut two = [frame.clone(), frame.clone()].concat();
        let mut r: &[u8] = &two;
        for _ in 0..2 {
            let body = read_frame::<Reply, _>(&mut r).await.unwrap().unwrap();
            assert_eq!(decode::<Reply>(&body).unwrap(), (3, reply.clone()));
        }
        assert!(
            read_frame::<Reply, _>(&mut r).await.unwrap().is_none(),
            "end of stream"
        );
        // Too large for a request, cut in the middle of the body.
        let mut r: &[u8] = &frame;
        assert!(
            read_frame::<Op, _>(&mut r).await.is_ok(),
            "a small reply fits a request cap"
        );
        two[0] = 0x7f;
        let mut r: &[u8] = &two;
        assert!(read_frame::<Op, _>(&mut r).await.is_err(), "over the cap");
        let mut r: &[u8] = &frame[..frame.len() - 1];
        assert!(read_frame::<Reply, _>(&mut r).await.is_err(), "cut short");
    }
}
