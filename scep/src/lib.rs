//! castellan-edge: the keyless SCEP (RFC 8894), CDP and AIA front end. Filled by the SCEP issue.
#![forbid(unsafe_code)]
