//! The admin port's protocol (version 1): one JSON request enum posted to `/v1`,
//! one JSON response enum. Removed variants are never reused.

use serde::{Deserialize, Serialize};

use crate::quorum::{Approval, Proposal, ProposalBody};

/// Path of the versioned endpoint.
pub const PATH: &str = "/v1";
/// Largest request body accepted.
pub const MAX_REQUEST: usize = 4 << 20;

// One request lives per connection for microseconds: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Who am I, and what is the quorum?
    Whoami,
    CaList,
    CaShow {
        name: String,
    },
    /// The CA certificate, DER.
    CaCert {
        name: String,
    },
    /// The chain from the CA to its root, as a PKCS#7 .p7b, DER.
    CaChain {
        name: String,
    },
    /// The CSR of a bring-your-own CA, DER.
    CaCsr {
        name: String,
    },
    /// Create a proposal; `approval` is the proposer's signature over its digest.
    Propose {
        body: ProposalBody,
        approval: Approval,
    },
    ProposalList,
    ProposalShow {
        id: String,
    },
    Approve {
        id: String,
        approval: Approval,
    },
    Reject {
        id: String,
        reason: Option<String>,
    },
    ProfileList,
    ProfileShow {
        name: String,
    },
    /// Mint a one-time challenge for a profile in one-time mode.
    ChallengeNew {
        profile: String,
        subject: Option<String>,
        sans: Vec<crate::challenge::San>,
        ttl_secs: i64,
    },
    /// Requests waiting for manual approval.
    RequestList,
    RequestApprove {
        id: String,
    },
    RequestReject {
        id: String,
        reason: Option<String>,
    },
    /// Revoke a leaf certificate (operators; no quorum).
    CertRevoke {
        ca: String,
        serial: String,
        reason: String,
    },
    /// The CA's current CRL, DER.
    CaCrl {
        name: String,
    },
    /// A page of certificates (or pending requests), after an opaque cursor; see `report`.
    CertList {
        ca: Option<String>,
        status: Option<crate::report::Status>,
        /// Case-insensitive substring of the subject, a SAN or the serial (a bounded scan).
        search: Option<String>,
        /// 1 to 1000 (default 100).
        limit: Option<u32>,
        after: Option<String>,
    },
    /// One certificate by serial (hex); without a CA the serial must be unique.
    CertShow {
        ca: Option<String>,
        serial: String,
    },
    /// Certificate counts by CA and status.
    CertStats,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    Whoami {
        officer: String,
        quorum: u32,
        officers: Vec<String>,
    },
    Cas {
        cas: Vec<CaView>,
    },
    Ca {
        ca: CaView,
    },
    Bytes {
        #[serde(with = "crate::b64")]
        data: Vec<u8>,
    },
    Proposal {
        proposal: Proposal,
    },
    Proposals {
        proposals: Vec<Proposal>,
    },
    Profiles {
        profiles: Vec<crate::profile::ProfileSpec>,
    },
    Profile {
        profile: crate::profile::ProfileSpec,
    },
    Challenge {
        challenge: String,
        expires_at: i64,
    },
    Requests {
        requests: Vec<crate::enroll::PendingRecord>,
    },
    Issued {
        ca: String,
        serial: String,
    },
    Done {
        message: String,
    },
    Error {
        error: String,
    },
    Certs {
        certs: Vec<crate::report::CertSummary>,
        /// Give as `after` for the next page; None when the listing is complete.
        next: Option<String>,
    },
    Cert {
        cert: Box<crate::report::CertDetail>,
    },
    CertStats {
        cas: Vec<crate::report::CaCertStats>,
    },
}

/// A CA as shown to officers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaView {
    pub name: String,
    pub kind: String,
    pub parent: Option<String>,
    pub status: String,
    pub subject: String,
    pub key: String,
    pub hash: String,
    pub ekus: Vec<String>,
    pub path_len: Option<u8>,
    pub serial: Option<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub issuer: Option<String>,
    pub sha256_fingerprint: Option<String>,
    pub key_id: String,
    pub key_attributes: Option<KeyAttributesView>,
}

/// A CA key's attributes as the token reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttributesView {
    pub token: bool,
    pub private: bool,
    pub sensitive: bool,
    pub always_sensitive: bool,
    pub extractable: bool,
    pub never_extractable: bool,
    pub local: bool,
    pub sound: bool,
}

impl From<hsm::KeyAttributes> for KeyAttributesView {
    fn from(a: hsm::KeyAttributes) -> Self {
        KeyAttributesView {
            token: a.token,
            private: a.private,
            sensitive: a.sensitive,
            always_sensitive: a.always_sensitive,
            extractable: a.extractable,
            never_extractable: a.never_extractable,
            local: a.local,
            sound: a.is_sound(),
        }
    }
}
