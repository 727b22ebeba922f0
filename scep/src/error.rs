//! SCEP failures: every refusal carries the RFC 8894 failInfo and a short text.

/// RFC 8894 §3.2.1.4: failInfo values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    /// Unrecognized or unsupported algorithm.
    BadAlg = 0,
    /// Integrity check (signature or messageDigest) failed.
    BadMessageCheck = 1,
    /// Transaction not permitted or supported.
    BadRequest = 2,
    /// signingTime not close enough to the system time.
    BadTime = 3,
    /// No certificate could be identified matching the provided criteria.
    BadCertId = 4,
}

impl FailInfo {
    /// The decimal PrintableString SCEP carries.
    pub fn as_str(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "0",
            FailInfo::BadMessageCheck => "1",
            FailInfo::BadRequest => "2",
            FailInfo::BadTime => "3",
            FailInfo::BadCertId => "4",
        }
    }
}

/// A SCEP refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text} (failInfo {info:?})")]
pub struct ScepError {
    pub info: FailInfo,
    pub text: String,
    /// The CA's own fault (HSM, store, encoding), not the request's: a device still gets a
    /// FAILURE with badRequest and a "try again later" text, but an operator's command
    /// that runs the same path reports an internal error, not an invalid request.
    pub internal: bool,
}

impl ScepError {
    pub fn new(info: FailInfo, text: impl Into<String>) -> Self {
        ScepError {
            info,
            text: text.into(),
            internal: false,
        }
    }
    /// A fault of the CA's (see [`ScepError::internal`]); the detail belongs in the log.
    pub fn internal(text: impl Into<String>) -> Self {
        ScepError {
            internal: true,
            ..Self::new(FailInfo::BadRequest, text)
        }
    }
    pub fn bad_alg(text: impl Into<String>) -> Self {
        Self::new(FailInfo::BadAlg, text)
    }
    pub fn bad_check(text: impl Into<String>) -> Self {
        Self::new(FailInfo::BadMessageCheck, text)
    }
    pub fn bad_request(text: impl Into<String>) -> Self {
        Self::new(FailInfo::BadRequest, text)
    }
    pub fn bad_cert_id(text: impl Into<String>) -> Self {
        Self::new(FailInfo::BadCertId, text)
    }
}

pub type Result<T, E = ScepError> = std::result::Result<T, E>;
