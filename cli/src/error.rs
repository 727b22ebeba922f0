//! The CLI's errors, and the one place they become exit codes.

/// Why a command failed. The first four come back from the admin port (its HTTP status
/// decides which); the CLI also raises them itself for bad arguments and files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed or violates policy (nothing was changed). Exit 2.
    #[error("{0}")]
    Invalid(String),
    /// The officer is not allowed to do this. Exit 3.
    #[error("{0}")]
    Forbidden(String),
    /// The named thing does not exist. Exit 4.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the signer's state (nothing was changed). Exit 5.
    #[error("{0}")]
    Conflict(String),
    /// The admin port could not be reached, failed inside, or answered nonsense. Exit 1.
    #[error("{0}")]
    Transport(String),
}

impl Error {
    /// Rebuild an error from an admin-port answer.
    pub fn from_status(status: u16, message: String) -> Self {
        match status {
            400 => Error::Invalid(message),
            403 => Error::Forbidden(message),
            404 => Error::NotFound(message),
            409 => Error::Conflict(message),
            _ => Error::Transport(message),
        }
    }

    /// The process exit code: the only mapping of errors to exit codes.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => 2,
            Error::Forbidden(_) => 3,
            Error::NotFound(_) => 4,
            Error::Conflict(_) => 5,
            Error::Transport(_) => 1,
        }
    }
}

impl From<proto::Error> for Error {
    fn from(e: proto::Error) -> Self {
        match e {
            proto::Error::Invalid(m) => Error::Invalid(m),
            other => Error::Transport(other.to_string()),
        }
    }
}

impl From<der::Error> for Error {
    fn from(e: der::Error) -> Self {
        Error::Invalid(format!("cannot encode a certificate that was read: {e}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
