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
    NotFound(String),
    /// The request conflicts with the current state (nothing was changed).
    #[error("{0}")]
    Conflict(String),
    /// The caller is not allowed to do this (bad approval signature, unknown officer).
    #[error("{0}")]
    Forbidden(String),
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
