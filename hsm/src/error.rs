//! The hsm crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong between Castellan and a PKCS#11 token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The module could not be loaded or initialised.
    #[cfg(feature = "pkcs11")]
    #[error("cannot load PKCS#11 module {path}: {source}")]
    Module {
        path: PathBuf,
        source: cryptoki::error::Error,
    },
    /// No slot holds a token with this label.
    #[error(
        "no PKCS#11 token labelled {label:?} (initialise one, e.g. softhsm2-util --init-token --free --label {label})"
    )]
    TokenNotFound { label: String },
    /// The PIN could not be read, or its file is unsafe.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// A PKCS#11 call failed.
    #[cfg(feature = "pkcs11")]
    #[error("PKCS#11 {op} failed: {source}")]
    Pkcs11 {
        op: &'static str,
        source: cryptoki::error::Error,
    },
    /// No key with this CKA_ID (of the needed class) is in the token.
    #[error("no key with CKA_ID {id} in the token")]
    KeyNotFound { id: String },
    /// A key with this CKA_ID already exists: refuse to create a second one.
    #[error("a key with CKA_ID {id} already exists in the token")]
    KeyExists { id: String },
    /// A key's attributes show it was not generated and kept inside the token.
    #[error("key {id} fails the attribute check: {problems}")]
    KeyAttributes { id: String, problems: String },
    /// The token returned something we cannot interpret.
    #[error("unexpected data from the token: {0}")]
    Encoding(String),
    /// A key/hash combination that Castellan refuses.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl Error {
    /// The token is gone, or its session or login was lost and could not be restored yet:
    /// a temporary condition (the next operation looks for the token again).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::TokenNotFound { .. } => true,
            #[cfg(feature = "pkcs11")]
            Error::Pkcs11 { source, .. } => crate::token::recoverable(source),
            _ => false,
        }
    }
}

/// Why a PIN could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    #[error("cannot read PIN file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "PIN file {path} has mode {mode:o}: it must not be readable or writable by others nor writable by the group (chmod 600)"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("PIN file {path} is empty")]
    Empty { path: PathBuf },
    #[error("systemd credential {name:?} requested but $CREDENTIALS_DIRECTORY is not set")]
    NoCredentialsDirectory { name: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
