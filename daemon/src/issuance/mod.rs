//! Certificate issuance: CSR to request, policy, extensions, lint of the TBS, then one
//! signature by the token; and, for PKCS certificates, the device's key pair and its
//! PKCS#12 file.

pub mod keygen;
pub mod leaf;
pub mod pkcs12;
pub mod x509;
