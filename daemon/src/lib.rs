//! castellan-signer: the only process that reaches the HSM and the store. Every change to
//! the CA hierarchy is a proposal (types in `proto::governance`) that runs only once M
//! registered officers have signed its digest. Modules:
//! - [`x509`], [`leaf`]: certificate, CSR and PKCS#7 building; linting; verification;
//! - [`governance`]: checking proposals and approvals;
//! - [`store`]: the redb store (CAs, proposals, officers, hash-chained audit log);
//! - [`signer`]: the engine that validates, executes and records operations;
//! - [`server`], [`tls`]: the mTLS admin port; [`socket`]: the edge's signing socket;
//! - [`config`]: the TOML config and its start-up checks;
//! - [`report`]: certificate listings, details and counts over indexes kept with the certificates.
#![forbid(unsafe_code)]

pub mod app;
pub mod ca;
pub mod engine;
pub mod enroll;
pub mod error;
pub mod governance;
pub mod issuance;
pub mod keys;
pub mod ocsp;
pub mod ports;
pub mod report;
pub mod revocation;
pub mod store;

pub use error::{Error, Result};

pub use proto::{b64, now};
