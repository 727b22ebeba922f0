//! castellan-signer: the only process that reaches the token and the store. Every change
//! to the CA hierarchy is a proposal (types in `proto::governance`) that runs only once M
//! registered officers have signed its digest. The layout and the walk of one enrolment
//! and one quorum operation are in docs/ARCHITECTURE.md. Modules, arrows pointing down:
//! - [`app`]: config, `init` and `open` (the process);
//! - [`ports`]: the mTLS admin port and the edge's signing socket;
//! - [`engine`]: the services of one signer;
//! - services: [`governance`], [`ca`], [`enroll`], [`revocation`], [`ocsp`], and the
//!   read-only [`report`];
//! - [`issuance`]: certificate building, linting before the token signs, verification;
//! - [`keys`]: the key ring over the token (the `hsm::KeyStore` seam);
//! - [`store`]: the redb store, every row type, indexes, group commit, the audit chain.
#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
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
#[cfg(test)]
pub mod testkit;

pub use error::{Error, Result};

pub use proto::{b64, now};
