//! The signer's two ports: the officers' mTLS admin port and the edge's signing socket.

pub mod admin;
pub mod socket;
