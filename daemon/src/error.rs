//! The daemon crate's error type, and the one place it becomes a wire status.

/// Everything the signer can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed or violates policy (nothing was changed).
    #[error("{0}")]
    Invalid(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(Missing),
    /// The request conflicts with the current state (nothing was changed).
    #[error("{0}")]
    Conflict(String),
    /// The caller is not allowed to do this.
    #[error("{0}")]
    Forbidden(Denied),
    /// The configuration is unusable: the signer refuses to start (exit 78).
    #[error("configuration: {0}")]
    Config(String),
    /// The HSM failed.
    #[error("HSM: {0}")]
    Hsm(#[from] hsm::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
    /// Encoding or building a certificate failed.
    #[error("encoding: {0}")]
    Encoding(String),
    /// The signer failed inside (HSM, store or encoding) on a path that reports it as text;
    /// the detail is in the signer's log.
    #[error("internal: {0}")]
    Internal(String),
}

/// What was not found (HTTP 404, CLI exit 4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Missing {
    #[error("no CA named {0:?}")]
    Ca(String),
    #[error("no profile named {0:?}")]
    Profile(String),
    #[error("no proposal {0}")]
    Proposal(String),
    #[error("no pending request {0}")]
    PendingRequest(String),
    /// A pending request's CA was deleted meanwhile.
    #[error("CA is gone")]
    PendingCa,
    #[error("CA {ca} issued no certificate with serial {serial}")]
    Certificate { ca: String, serial: String },
    #[error("no certificate with serial {0}")]
    Serial(String),
    #[error("CA {0} has no CRL yet (it is published within seconds)")]
    Crl(String),
    #[error("POST {0} is the only endpoint")]
    Endpoint(&'static str),
}

/// Why the caller may not do this (HTTP 403, CLI exit 3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    #[error("{0} is not a registered officer")]
    NotAnOfficer(String),
    #[error("the proposal names {named} as proposer but was sent by {sender}")]
    NotTheProposer { named: String, sender: String },
    #[error(
        "the approval signature of {0} does not match this proposal's digest (or was not made with the officer's registered key): nothing was counted"
    )]
    BadApproval(String),
}

impl Error {
    /// The HTTP status the admin port answers with: the only mapping of errors to wire form.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::Config(_)
            | Error::Hsm(_)
            | Error::Store(_)
            | Error::Encoding(_)
            | Error::Internal(_) => 500,
        }
    }
}

macro_rules! store_err {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { Error::Store(e.to_string()) }
        }
    )*};
}
store_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    serde_json::Error
);

impl From<proto::Error> for Error {
    fn from(e: proto::Error) -> Self {
        match e {
            proto::Error::Invalid(m) => Error::Invalid(m),
            other => Error::Encoding(other.to_string()),
        }
    }
}

impl From<der::Error> for Error {
    fn from(e: der::Error) -> Self {
        Error::Encoding(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
