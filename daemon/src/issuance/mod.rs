//! Certificate issuance: CSR to request, policy, extensions, lint of the TBS, then one
//! signature by the token.

pub mod leaf;
pub mod x509;
