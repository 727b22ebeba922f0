//! The signer's ports: the officers' mTLS admin port and the edge's signing socket (both
//! listening), and the castellan-mdm connector's socket (the signer connects to it).

pub mod admin;
pub mod mdm;
pub mod socket;
