//! CRL building (RFC 5280 §5). Filled by the revocation issue.
#![forbid(unsafe_code)]
