//! SCEP (RFC 8894) for Castellan: the message layer shared by castellan-edge
//! (which parses untrusted bytes first) and castellan-signer (which parses them
//! again, opens the envelope with the RA key in the HSM, and decides).
//!
//! No sockets and no runtime here, so every part can be unit-tested and fuzzed.
//! - [`message`]: parse a PKIMessage, check messageType first, messageDigest and signature;
//! - [`envelope`]: open and seal pkcsPKIEnvelopes (AES; DES/3DES for legacy profiles; no oracle);
//! - [`certrep`]: build signed CertReps (SUCCESS, FAILURE with failInfo + failInfoText, PENDING);
//! - [`client`]: a strict client (AES, SHA-256) for tests and `scep-bench`.
#![forbid(unsafe_code)]

pub mod certrep;
pub mod client;
pub mod envelope;
pub mod error;
pub mod message;
pub mod oids;

pub use error::{FailInfo, ScepError};
