//! The admin port's protocol (version 1): one JSON request enum posted to `/v1`,
//! one JSON response enum. Removed variants are never reused.

use serde::{Deserialize, Serialize};

use crate::governance::{Approval, Proposal, ProposalBody};
use crate::model::San;
use crate::{Error, Result};

/// Rows per page unless asked otherwise.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most rows per page.
pub const MAX_LIMIT: u32 = 1000;

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
        sans: Vec<San>,
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
        status: Option<Status>,
        /// Case-insensitive substring of the subject, a SAN or the serial (a bounded scan).
        search: Option<String>,
        /// 1 to 1000 (default 100).
        limit: Option<u32>,
        after: Option<String>,
        /// Only certificates whose notAfter is in this range.
        #[serde(default, skip_serializing_if = "Expires::is_any")]
        expires: Expires,
        /// Only certificates with a CN or SAN starting with this (case-insensitive; indexed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// One certificate by serial (hex); without a CA the serial must be unique.
    CertShow {
        ca: Option<String>,
        serial: String,
    },
    /// Certificate counts by CA and status.
    CertStats,
    /// Make a key pair, issue its certificate through a `pkcs` profile and return both, with
    /// the chain, as a PKCS#12 file. Needs `pkcs12.issue` on the profile's CA.
    Pkcs12Issue {
        profile: String,
        /// RFC 4514, e.g. `CN=Ada Lovelace,O=Example`.
        subject: String,
        #[serde(default)]
        sans: Vec<crate::model::San>,
        /// One of the profile's key types; its first when absent.
        #[serde(default, with = "crate::model::text_opt")]
        key: Option<hsm::KeySpec>,
        /// The profile's encoding when absent.
        #[serde(default)]
        encoding: Option<crate::profile::P12Encoding>,
        /// The file's password; the signer makes one (128 bits) when absent.
        #[serde(default)]
        password: Option<crate::Secret>,
    },
    /// The recovered key of an executed `recover-key` proposal, as a new PKCS#12 file with
    /// a new password: for its proposer only, once. Needs `key.recover`.
    KeyFetch {
        proposal: String,
        /// The certificate's profile's encoding when absent.
        #[serde(default)]
        encoding: Option<crate::profile::P12Encoding>,
    },
    /// Every certificate matching a filter, as CSV (a header line, then one line per
    /// certificate in the listing's order; no cap). Needs `report.export`.
    CertExport {
        ca: Option<String>,
        status: Option<Status>,
        search: Option<String>,
        #[serde(default, skip_serializing_if = "Expires::is_any")]
        expires: Expires,
        /// Only certificates with a CN or SAN starting with this (case-insensitive; indexed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Revoke a certificate on Intune's request (the castellan-mdm connector's identity
    /// only): `issuer` is the CA subject DN the signer sent in `successNotification`,
    /// `serial` hex in any case, with or without leading zeros. Only certificates issued
    /// through an `intune` profile can be revoked this way.
    MdmRevoke {
        issuer: String,
        serial: String,
    },
    /// The latest signed checkpoint of the audit log (a fresh one if the log grew), as a
    /// C2SP signed note.
    AuditCheckpoint,
    /// Everything an auditor verifies offline: entries, checkpoints, the audit key's chain
    /// (`proto::audit::Export` as text).
    AuditExport,
    /// A page of audit entries after `after` (a sequence number), optionally only those of
    /// one actor or action; 1 to 1000 (default 100).
    AuditList {
        actor: Option<String>,
        action: Option<String>,
        /// Only entries about this CA (its certificates, profiles and proposals).
        #[serde(default)]
        ca: Option<String>,
        limit: Option<u32>,
        after: Option<u64>,
    },
    /// Every admin with their assignments.
    AdminList,
    /// Every role, built-in and custom.
    RoleList,
    RoleShow {
        name: String,
    },
    /// Add the caller's signature to the latest checkpoint (a signed-note line over the
    /// checkpoint text, made by the CLI with the admin's key).
    AuditCosign {
        /// The checkpoint text that was signed (must be the latest).
        checkpoint: String,
        /// X.509 signature algorithm OID.
        algorithm: String,
        #[serde(with = "crate::b64")]
        signature: Vec<u8>,
    },
}

impl Request {
    /// What this request needs of its caller: the one place requests meet permissions.
    /// (An exhaustive match: a new request does not compile until it says what it needs.)
    pub fn need(&self) -> crate::roles::Need {
        use crate::roles::{Need, Permission as P};
        match self {
            Request::Whoami => Need::Admin,
            Request::CaList
            | Request::CaShow { .. }
            | Request::CaCert { .. }
            | Request::CaChain { .. }
            | Request::CaCsr { .. }
            | Request::CaCrl { .. }
            | Request::ProposalList
            | Request::ProposalShow { .. }
            | Request::CertList { .. }
            | Request::CertShow { .. }
            | Request::CertStats => Need::Permission(P::CaRead),
            Request::Propose { body, .. } => Need::Permission(P::for_operation(&body.operation)),
            Request::Approve { .. } | Request::Reject { .. } => Need::ProposalsPermission,
            Request::ProfileList | Request::ProfileShow { .. } => Need::Permission(P::ProfileRead),
            Request::ChallengeNew { .. } => Need::Permission(P::ChallengeIssue),
            Request::RequestList
            | Request::RequestApprove { .. }
            | Request::RequestReject { .. } => Need::Permission(P::RequestApprove),
            Request::CertExport { .. } => Need::Permission(P::ReportExport),
            Request::Pkcs12Issue { .. } => Need::Permission(P::Pkcs12Issue),
            Request::KeyFetch { .. } => Need::Permission(P::KeyRecover),
            Request::CertRevoke { .. } | Request::MdmRevoke { .. } => {
                Need::Permission(P::LeafRevoke)
            }
            Request::AuditCheckpoint | Request::AuditList { .. } | Request::AuditCosign { .. } => {
                Need::Permission(P::AuditRead)
            }
            Request::AuditExport => Need::Permission(P::AuditExport),
            Request::AdminList | Request::RoleList | Request::RoleShow { .. } => {
                Need::Permission(P::RoleRead)
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    Whoami {
        officer: String,
        quorum: u32,
        officers: Vec<String>,
        /// The caller's roles and the permissions they add up to.
        #[serde(default)]
        roles: Vec<String>,
        #[serde(default)]
        permissions: Vec<String>,
        /// The caller's assignments (role and tags).
        #[serde(default)]
        assignments: Vec<crate::roles::Assignment>,
        /// How many rejections end a proposal.
        #[serde(default)]
        rejections: u32,
        /// Each permission the caller has, and on which tags.
        #[serde(default)]
        scopes: std::collections::BTreeMap<crate::roles::Permission, crate::roles::Tags>,
    },
    Admins {
        admins: Vec<AdminView>,
    },
    Roles {
        roles: Vec<crate::roles::RoleView>,
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
    /// A PKCS#12 file made by the signer.
    Pkcs12 {
        ca: String,
        serial: String,
        #[serde(with = "crate::b64")]
        p12: Vec<u8>,
        /// The password the signer made (absent when the caller gave one): shown once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<crate::Secret>,
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
        /// The profile's public SCEP URL (`<public_url>/scep/<name>`) as devices reach it;
        /// empty from a signer that predates it.
        #[serde(default)]
        scep_url: String,
    },
    Challenge {
        challenge: String,
        expires_at: i64,
    },
    Requests {
        requests: Vec<PendingView>,
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
        certs: Vec<CertSummary>,
        /// Give as `after` for the next page; None when the listing is complete.
        next: Option<String>,
    },
    Cert {
        cert: Box<CertDetail>,
    },
    CertStats {
        cas: Vec<CaCertStats>,
    },
    /// The outcome of [`Request::MdmRevoke`].
    MdmRevoked {
        outcome: MdmRevokeOutcome,
    },
    /// A page of audit entries; give `next` as `after` for the next page (None: the end).
    Audit {
        entries: Vec<AuditView>,
        next: Option<u64>,
    },
}

/// An admin as `admin list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminView {
    pub name: String,
    /// Hex SHA-256 of the admin's certificate (DER).
    pub fingerprint: String,
    pub subject: String,
    pub not_after: String,
    pub assignments: Vec<crate::roles::Assignment>,
}

/// An audit entry as `audit list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub seq: u64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
    /// The CA the entry is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Admin requests: hex SHA-256 of the caller's certificate, their address, the
    /// permission used and the outcome (`ok`, or the HTTP status and the refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
}

/// What became of a revocation Intune asked for; the connector maps it to the partner
/// API's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MdmRevokeOutcome {
    Revoked,
    AlreadyRevoked,
    /// No CA has this issuer name.
    UnknownIssuer,
    /// The CA has no such certificate, or not one issued through an `intune` profile.
    NotFound,
    /// The certificate has expired: there is nothing left to revoke.
    Expired,
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
    /// Scope tags.
    #[serde(default)]
    pub tags: Vec<String>,
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

/// A request waiting for manual approval, as `request list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingView {
    pub id: String,
    pub profile: String,
    pub transaction_id: String,
    pub subject: String,
    pub sans: Vec<San>,
    #[serde(with = "crate::b64")]
    pub csr: Vec<u8>,
    pub created_at: i64,
    pub renewed_from: Option<String>,
    /// The transaction's key in the signer's store.
    pub tx_key: String,
}

/// A certificate's status as reports show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not revoked, notAfter not passed.
    Active,
    /// Not revoked, notAfter passed.
    Expired,
    Revoked,
    /// A SCEP request waiting for manual approval (no certificate yet).
    Pending,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Status::Active => "active",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
            Status::Pending => "pending",
        })
    }
}

impl std::str::FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> Result<Status> {
        Ok(match s {
            "active" => Status::Active,
            "expired" => Status::Expired,
            "revoked" => Status::Revoked,
            "pending" => Status::Pending,
            _ => {
                return Err(Error::Invalid(format!(
                    "status {s:?}: use active, expired, revoked or pending"
                )));
            }
        })
    }
}

/// One row of `cert list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    pub ca: String,
    /// Hex serial; None for a pending request.
    pub serial: Option<String>,
    /// A pending request's id (for `castellan request approve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    pub status: Status,
    pub subject: String,
    pub sans: Vec<San>,
    pub profile: String,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl CertSummary {
    /// The columns of a CSV line (`cert list --csv`, `cert export`): ca, serial, request,
    /// status, subject, SANs (space-separated), profile, notBefore, notAfter, revokedAt.
    pub fn csv_fields(&self) -> [String; 10] {
        let t = |t: Option<i64>| t.map(crate::rfc3339).unwrap_or_default();
        let sans: Vec<String> = self.sans.iter().map(ToString::to_string).collect();
        [
            self.ca.clone(),
            self.serial.clone().unwrap_or_default(),
            self.request.clone().unwrap_or_default(),
            self.status.to_string(),
            self.subject.clone(),
            sans.join(" "),
            self.profile.clone(),
            t(self.not_before),
            t(self.not_after),
            t(self.revoked_at),
        ]
    }
}

/// `cert show` and `cert get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertDetail {
    pub ca: String,
    pub serial: String,
    pub status: Status,
    pub subject: String,
    pub sans: Vec<San>,
    pub profile: String,
    pub not_before: i64,
    pub not_after: i64,
    pub issued_at: i64,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
    pub transaction_id: String,
    /// Serial of the certificate this one renewed (same CA).
    pub renewed_from: Option<String>,
    /// Hex SHA-256 of the SubjectPublicKeyInfo.
    pub key_hash: String,
    #[serde(with = "crate::b64")]
    pub der: Vec<u8>,
}

/// `cert stats`: one CA's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaCertStats {
    pub ca: String,
    pub active: u64,
    pub expired: u64,
    pub revoked: u64,
    /// Requests waiting for manual approval on this CA's profiles.
    pub pending: u64,
    /// Certificates issued: active + expired + revoked.
    pub total: u64,
    /// Active certificates whose notAfter falls within 7, 30 and 90 days (by UTC day:
    /// today's and the next N days').
    #[serde(default)]
    pub expiring: Expiring,
}

/// A range of notAfter times for listings: `after <= notAfter < before` (Unix times; either
/// end open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expires {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
}

impl Expires {
    /// No bound.
    pub fn is_any(&self) -> bool {
        self.after.is_none() && self.before.is_none()
    }

    pub fn contains(&self, not_after: i64) -> bool {
        self.after.is_none_or(|a| not_after >= a) && self.before.is_none_or(|b| not_after < b)
    }

    /// From `YYYY-MM-DD` dates: from the start of `after`'s day to the end of `before`'s
    /// (both days included).
    pub fn from_dates(after: Option<&str>, before: Option<&str>) -> Result<Expires, String> {
        let after = after.map(crate::parse_date).transpose()?;
        let before = before
            .map(|b| crate::parse_date(b).map(|t| t + 86_400))
            .transpose()?;
        if let (Some(a), Some(b)) = (after, before)
            && a >= b
        {
            return Err("the expiry range is empty: the first date is after the last".into());
        }
        Ok(Expires { after, before })
    }
}

/// Active certificates expiring soon (see [`CaCertStats::expiring`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiring {
    pub days7: u64,
    pub days30: u64,
    pub days90: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod need_tests {
    use super::*;

    #[test]
    fn expiry_ranges_from_dates() {
        let r = Expires::from_dates(Some("2026-01-01"), Some("2026-01-31")).unwrap();
        assert_eq!(r.after, Some(1_767_225_600));
        assert_eq!(r.before, Some(1_767_225_600 + 31 * 86_400));
        assert!(r.contains(1_767_225_600) && !r.contains(1_767_225_599));
        assert!(r.contains(1_767_225_600 + 31 * 86_400 - 1));
        assert!(Expires::from_dates(None, None).unwrap().is_any());
        for (from, until) in [
            (Some("2026-02-01"), Some("2026-01-31")),
            (Some("2026-13-01"), None),
            (Some("2026-02-30"), None),
            (None, Some("26-01-01")),
            (None, Some("2026-1-1")),
            (None, Some("2026-01-01T00:00:00Z")),
            (None, Some("")),
            (None, Some("+026-01-01")),
        ] {
            assert!(
                Expires::from_dates(from, until).is_err(),
                "{from:?} {until:?}"
            );
        }
        // No range: nothing on the wire, and old requests read as no range.
        let r = Request::CertList {
            ca: None,
            status: None,
            search: None,
            limit: None,
            after: None,
            expires: Expires::default(),
            name: None,
        };
        assert!(!serde_json::to_string(&r).unwrap().contains("expires"));
        let old: Request = serde_json::from_str(
            r#"{"request":"cert-export","ca":null,"status":null,"search":null}"#,
        )
        .unwrap();
        assert!(matches!(old, Request::CertExport { expires, .. } if expires.is_any()));
    }
    use crate::roles::{Need, Permission as P};

    /// Every admin request, by its wire name, and what it needs: the table in docs and in
    /// the README. `Request::need` is an exhaustive match, so a new request cannot compile
    /// without an answer; this pins the answers.
    #[test]
    fn every_request_needs_exactly_one_permission() {
        let table: &[(&str, Need)] = &[
            (r#"{"request":"whoami"}"#, Need::Admin),
            (r#"{"request":"ca-list"}"#, Need::Permission(P::CaRead)),
            (
                r#"{"request":"ca-show","name":"x"}"#,
                Need::Permission(P::CaRead),
            ),
            (
                r#"{"request":"ca-cert","name":"x"}"#,
                Need::Permission(P::CaRead),
            ),
            (
                r#"{"request":"ca-chain","name":"x"}"#,
                Need::Permission(P::CaRead),
            ),
            (
                r#"{"request":"ca-csr","name":"x"}"#,
                Need::Permission(P::CaRead),
            ),
            (
                r#"{"request":"ca-crl","name":"x"}"#,
                Need::Permission(P::CaRead),
            ),
            (
                r#"{"request":"proposal-list"}"#,
                Need::Permission(P::CaRead),
            ),
            (
                r#"{"request":"proposal-show","id":"x"}"#,
                Need::Permission(P::CaRead),
            ),
            (
                r#"{"request":"approve","id":"x","approval":{"officer":"a","algorithm":"x","signature":"","at":0}}"#,
                Need::ProposalsPermission,
            ),
            (
                r#"{"request":"reject","id":"x","reason":null}"#,
                Need::ProposalsPermission,
            ),
            (
                r#"{"request":"profile-list"}"#,
                Need::Permission(P::ProfileRead),
            ),
            (
                r#"{"request":"profile-show","name":"x"}"#,
                Need::Permission(P::ProfileRead),
            ),
            (
                r#"{"request":"challenge-new","profile":"x","subject":null,"sans":[],"ttl_secs":60}"#,
                Need::Permission(P::ChallengeIssue),
            ),
            (
                r#"{"request":"request-list"}"#,
                Need::Permission(P::RequestApprove),
            ),
            (
                r#"{"request":"request-approve","id":"x"}"#,
                Need::Permission(P::RequestApprove),
            ),
            (
                r#"{"request":"request-reject","id":"x","reason":null}"#,
                Need::Permission(P::RequestApprove),
            ),
            (
                r#"{"request":"cert-revoke","ca":"x","serial":"01","reason":"unspecified"}"#,
                Need::Permission(P::LeafRevoke),
            ),
            (
                r#"{"request":"mdm-revoke","issuer":"CN=x","serial":"01"}"#,
                Need::Permission(P::LeafRevoke),
            ),
            (
                r#"{"request":"cert-list","ca":null,"status":null,"search":null,"limit":null,"after":null}"#,
                Need::Permission(P::CaRead),
            ),
            (
                r#"{"request":"cert-show","ca":null,"serial":"01"}"#,
                Need::Permission(P::CaRead),
            ),
            (r#"{"request":"cert-stats"}"#, Need::Permission(P::CaRead)),
            (
                r#"{"request":"audit-checkpoint"}"#,
                Need::Permission(P::AuditRead),
            ),
            (
                r#"{"request":"audit-list","actor":null,"action":null,"limit":null,"after":null}"#,
                Need::Permission(P::AuditRead),
            ),
            (
                r#"{"request":"audit-export"}"#,
                Need::Permission(P::AuditExport),
            ),
        ];
        for (json, need) in table {
            let r: Request = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(r.need(), *need, "{json}");
        }
        // Proposals need their operation's permission.
        let body = |operation| crate::governance::ProposalBody {
            id: "x".into(),
            operation,
            proposer: "a".into(),
            created_at: 0,
            expires_at: 1,
        };
        let name = crate::model::CaName::new("x").unwrap();
        for (op, p) in [
            (
                crate::governance::Operation::DisableCa { name: name.clone() },
                P::CaDisable,
            ),
            (
                crate::governance::Operation::RevokeCa {
                    name,
                    reason: "x".into(),
                },
                P::CaRevoke,
            ),
        ] {
            let r = Request::Propose {
                body: body(op),
                approval: crate::governance::Approval {
                    officer: "a".into(),
                    algorithm: String::new(),
                    signature: Vec::new(),
                    at: 0,
                },
            };
            assert_eq!(r.need(), Need::Permission(p));
        }
    }
}
