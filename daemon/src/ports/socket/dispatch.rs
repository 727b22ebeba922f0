//! What the edge may ask of the signer: the one narrow interface the signing socket sees.

use proto::wire::{Op, Reply};

use crate::engine::Signer;

/// The edge's API: one signing-socket operation in, one reply out. The socket port holds
/// only this, never governance, the store or the keys.
pub trait EdgeApi: Send + Sync + 'static {
    fn answer(&self, op: Op) -> Reply;
}

impl EdgeApi for Signer {
    fn answer(&self, op: Op) -> Reply {
        match op {
            Op::GetCrl { ca, etag, offset } => {
                self.revocation()
                    .published_crl(&ca, etag.as_deref(), offset)
            }
            Op::GetCaCertByName { ca, etag, offset } => {
                self.revocation()
                    .published_ca_cert(&ca, etag.as_deref(), offset)
            }
            Op::Ocsp { request } => self.ocsp().answer(&request),
            scep => self.enroll().scep(scep),
        }
    }
}
