//! The daemon crate's error type, and the one place it becomes a wire status.

/// Everything the signer can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed or violates policy (nothing was changed).
    #[error("{0}")]
    Invalid(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(Missing),
    /// The request conflicts with the current state (nothing was changed).
    #[error("{0}")]
    Conflict(Clash),
    /// The caller is not allowed to do this.
    #[error("{0}")]
    Forbidden(Denied),
    /// The configuration is unusable: the signer refuses to start (exit 78).
    #[error("configuration: {0}")]
    Config(ConfigError),
    /// The HSM failed.
    #[error("HSM: {0}")]
    Hsm(#[from] hsm::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(StoreError),
    /// Encoding or building a certificate, CRL or PKCS#7 failed.
    #[error("encoding: {0}")]
    Encoding(EncodeError),
    /// The signer failed inside (HSM, store or encoding) on a path that reports it as text;
    /// the detail is in the signer's log.
    #[error("internal: {0}")]
    Internal(InternalError),
}

/// What was not found (HTTP 404, CLI exit 4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Missing {
    #[error("no CA named {0:?}")]
    Ca(String),
    #[error("no profile named {0:?}")]
    Profile(String),
    #[error("no proposal {0}")]
    Proposal(String),
    #[error("no role named {0:?}")]
    Role(String),
    #[error("no admin named {0:?}")]
    Admin(String),
    #[error("no pending request {0}")]
    PendingRequest(String),
    /// A pending request's CA was deleted meanwhile.
    #[error("CA is gone")]
    PendingCa,
    #[error("CA {ca} issued no certificate with serial {serial}")]
    Certificate { ca: String, serial: String },
    #[error("no certificate with serial {0}")]
    Serial(String),
    #[error("CA {0} has no CRL yet (it is published within seconds)")]
    Crl(String),
    #[error("POST {0} is the only endpoint")]
    Endpoint(&'static str),
    #[error("the console has no page {0}")]
    Page(String),
}

/// How a request conflicts with the current state (HTTP 409, CLI exit 5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Clash {
    #[error("a CA named {0} already exists")]
    CaExists(String),
    #[error(
        "key recovery {proposal} is {status}: its key is fetched once a quorum has approved it"
    )]
    RecoveryNotApproved {
        proposal: String,
        status: proto::governance::Status,
    },
    #[error(
        "the key of recovery {0} was already fetched: a recovery gives its key once (propose another)"
    )]
    RecoveryFetched(String),
    #[error("an admin named {0} already exists")]
    AdminExists(String),
    #[error("this certificate is already registered, as admin {0}")]
    CertRegistered(String),
    #[error("admin {admin} does not hold role {role}")]
    NotAssigned { admin: String, role: String },
    #[error("a role named {0} already exists")]
    RoleExists(String),
    #[error("role {role} is held by {holders}: unassign it first")]
    RoleInUse { role: String, holders: String },
    #[error(
        "after this change only {able} admins could approve CA creation, fewer than the quorum of {quorum}"
    )]
    QuorumUnreachable { able: usize, quorum: u32 },
    #[error("the checkpoint is not the latest any more: fetch it again and sign that")]
    NotLatestCheckpoint,
    #[error("{officer} already rejected proposal {id}")]
    AlreadyRejected { officer: String, id: String },
    #[error("a profile named {0} already exists")]
    ProfileExists(String),
    #[error("CA {0} has no certificate yet")]
    NoCertificateYet(String),
    #[error(
        "CA {0} has no certificate yet (status signing-required: import the externally signed certificate)"
    )]
    AwaitingImport(String),
    #[error("CA {0} is not a bring-your-own CA: it has no CSR")]
    NoCsr(String),
    #[error("CA {name} is {status}")]
    CaStatus { name: String, status: CaStatus },
    #[error("CA {name} is {status}, not active")]
    CaNotActive { name: String, status: CaStatus },
    #[error("CA {name} is {status}, not disabled")]
    CaNotDisabled { name: String, status: CaStatus },
    #[error(
        "CA {name} is {status}: only a bring-your-own CA in status signing-required accepts an import"
    )]
    NotAwaitingImport { name: String, status: CaStatus },
    #[error("parent CA {name} is {status}: it cannot sign")]
    ParentCannotSign { name: String, status: CaStatus },
    #[error("CA {0} changed meanwhile")]
    CaChanged(String),
    /// A certificate Intune was to be told about was settled by another request meanwhile.
    #[error("certificate {0} was already notified or withdrawn")]
    AlreadySettled(String),
    #[error("CA {0} expires too soon for an OCSP responder certificate")]
    CaExpiresTooSoon(String),
    #[error("proposal {0} already exists")]
    ProposalExists(String),
    #[error("proposal {id} expired at {at}: it can no longer be approved (propose again)")]
    ProposalExpired { id: String, at: String },
    #[error("proposal {id} is already {status}: approvals are no longer accepted")]
    ProposalClosed { id: String, status: Status },
    #[error("proposal {id} is already {status}")]
    ProposalDecided { id: String, status: Status },
    #[error(
        "{officer} has already approved proposal {id}; each officer counts once (approvals {have}/{need})"
    )]
    AlreadyApproved {
        officer: String,
        id: String,
        have: usize,
        need: u32,
    },
    #[error("{serial} of CA {ca} is already revoked")]
    AlreadyRevoked { serial: String, ca: String },
    #[error("{0} is not on hold: removeFromCRL only lifts a certificateHold")]
    NotOnHold(String),
    #[error("serial {serial} was issued by several CAs ({cas}): give --ca")]
    AmbiguousSerial { serial: String, cas: String },
    #[error("a newer CRL was published meanwhile")]
    NewerCrl,
    #[error("the one-time challenge is unknown")]
    ChallengeUnknown,
    #[error("the one-time challenge was already used")]
    ChallengeUsed,
    #[error("the signed challenge was already used")]
    SignedChallengeUsed,
    /// A row a batch creates exists already (a duplicate serial or transaction).
    #[error("{0} already exists")]
    RowExists(String),
    #[error("{0} is already initialised")]
    AlreadyInitialised(String),
    #[error("{0} already exists: this state directory is initialised")]
    StoreExists(String),
}

/// Why the caller may not do this (HTTP 403, CLI exit 3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    #[error("{0} is not a registered officer")]
    NotAnOfficer(String),
    #[error("the proposal names {named} as proposer but was sent by {sender}")]
    NotTheProposer { named: String, sender: String },
    #[error(
        "the approval signature of {0} does not match this proposal's digest (or was not made with the officer's registered key): nothing was counted"
    )]
    BadApproval(String),
    /// Default deny: the caller's roles do not grant what the request needs.
    #[error("{caller} lacks the permission {permission} that this request needs")]
    Lacks {
        caller: String,
        permission: proto::roles::Permission,
    },
    /// Tags are given only by those who hold them.
    #[error(
        "{caller} does not hold tag {tag} with {permission}: only tags one holds can be given or taken"
    )]
    TagNotHeld {
        caller: String,
        tag: String,
        permission: proto::roles::Permission,
    },
    /// Nobody approves (or proposes) a change of their own assignments.
    #[error("this proposal changes {0}'s own assignments: their approval cannot count")]
    OwnChange(String),
    /// Only the officer who proposed a key recovery fetches its key.
    #[error("recovery {proposal} was proposed by {proposer}: only they fetch its key")]
    NotRecoveryProposer { proposal: String, proposer: String },
    /// A console form without this admin's token from a page of this signer.
    #[error("the form's CSRF token is missing or wrong: reload the page and submit it again")]
    Csrf,
}

use proto::governance::Status;
use proto::model::CaStatus;

impl Error {
    /// The HTTP status the admin port answers with: the only mapping of errors to wire form.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            e if e.is_temporary() => 503,
            Error::Config(_)
            | Error::Hsm(_)
            | Error::Store(_)
            | Error::Encoding(_)
            | Error::Internal(_) => 500,
        }
    }
}

/// How the store (or a file the signer keeps beside it) failed: never the request's fault.
/// An I/O failure is temporary (HTTP 503; at start-up exit 75), anything else internal
/// (HTTP 500, exit 1; at start-up exit 78).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] redb::Error),
    /// A stored row (or a value written to it) is not the JSON its type needs.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("{what}: {source}")]
    File {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} {key:?}")]
    BadRow { what: &'static str, key: String },
    #[error("CRL entry {key:?}: {source}")]
    CrlEntry { key: String, source: crl::Error },
    /// A key id the store holds is not hex.
    #[error("{0}")]
    KeyId(String),
    #[error("audit chain broken at entry {0}")]
    AuditBroken(usize),
    #[error("CA hierarchy loops")]
    HierarchyLoops,
    #[error("transaction missing")]
    TransactionMissing,
    #[error("the committer has stopped")]
    CommitterStopped,
    /// A group commit failed: every batch in it gets the group's error.
    #[error("{0}")]
    Group(std::sync::Arc<Error>),
    #[error("a CRL reader thread failed")]
    CrlReader,
    #[error("worker failed: {0}")]
    Worker(String),
    /// The store is down after an I/O error and refuses writes until it is reopened
    /// (automatically, within seconds of the cause going away).
    #[error("the store is refusing writes after an I/O error, until it is reopened: {0}")]
    Unavailable(String),
    /// The store stayed down longer than the signer waits: it exits for systemd to restart it.
    #[error("the store could not be reopened for {secs} s: {cause}")]
    GaveUp { secs: u64, cause: String },
}

impl Error {
    /// An I/O failure of the store or of a file beside it (a full disk, EIO, a failed
    /// fsync), or a refusal because of one: a temporary condition, not the request's fault.
    pub fn is_io(&self) -> bool {
        match self {
            Error::Store(StoreError::Db(redb::Error::Io(_) | redb::Error::PreviousIo))
            | Error::Store(StoreError::File { .. })
            | Error::Store(StoreError::Unavailable(_))
            | Error::Store(StoreError::GaveUp { .. }) => true,
            Error::Store(StoreError::Group(e)) => e.is_io(),
            _ => false,
        }
    }

    /// A condition that passes without anyone acting: the store's disk (it heals), the
    /// token gone or its session lost (it is found again). HTTP 503.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Hsm(e) => e.is_unavailable(),
            Error::Store(StoreError::Group(e)) => e.is_temporary(),
            e => e.is_io(),
        }
    }
}

macro_rules! store_err {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { Error::Store(StoreError::Db(e.into())) }
        }
    )*};
}
store_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Store(StoreError::Json(e))
    }
}

impl From<proto::Error> for Error {
    fn from(e: proto::Error) -> Self {
        match e {
            proto::Error::Invalid(m) => Error::Invalid(m),
            other => Error::Encoding(EncodeError::Proto(other)),
        }
    }
}

impl From<der::Error> for Error {
    fn from(e: der::Error) -> Self {
        Error::Encoding(EncodeError::Der(e))
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Error::Encoding(e)
    }
}

/// Why the signer cannot start (or run) with this configuration, state directory, token
/// or sockets: exit 78.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file, directory or socket the signer needs, and what the system said.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "{path} has mode {mode:o}: a config file must not be writable by group or others (chmod 644 or 600)"
    )]
    Mode { path: String, mode: u32 },
    #[error("{path}: {source}")]
    Toml {
        path: String,
        source: toml::de::Error,
    },
    #[error(transparent)]
    TomlWrite(toml::ser::Error),
    /// A rule of signer.toml or the command line, stated as the rule.
    #[error("{0}")]
    Rule(&'static str),
    /// The `[mdm]` section: what is wrong with the connector's settings.
    #[error("{0}")]
    Mdm(String),
    #[error("public-url {0:?} must be an http:// or https:// URL")]
    PublicUrl(String),
    #[error("PKCS#11 module {0} does not exist (install softhsm2, or set [hsm] module)")]
    NoModule(String),
    #[error(transparent)]
    Pin(hsm::PinError),
    #[error("no store at {0} (run castellan-signer init first)")]
    NoStore(String),
    #[error("the store has no officers (not initialised?)")]
    NoOfficers,
    #[error("the store has no admin TLS identity")]
    NoAdminIdentity,
    /// The start-up check of a key: which key, and what is wrong with it.
    #[error("{what}: {reason}")]
    Key { what: String, reason: String },
    #[error("cannot give {path} to group {gid}: {source}")]
    Chown {
        path: String,
        gid: u32,
        source: nix::Error,
    },
    #[error(transparent)]
    Tls(rustls::Error),
}

impl ConfigError {
    /// An I/O error on `what` (a path or a description).
    pub fn io(what: impl std::fmt::Display, source: std::io::Error) -> Self {
        ConfigError::Io {
            what: what.to_string(),
            source,
        }
    }
}

/// What failed while encoding or building (HTTP 500, exit 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error(transparent)]
    Der(der::Error),
    #[error(transparent)]
    Crl(crl::Error),
    #[error(transparent)]
    Proto(proto::Error),
    #[error("no randomness: {0}")]
    Random(getrandom::Error),
    /// A builder refused: which object, and its reason.
    #[error("{what}: {reason}")]
    Build { what: &'static str, reason: String },
    /// The lint refused a TBS; nothing was signed.
    #[error("lint (nothing was signed): {0}")]
    Lint(String),
    #[error("{0}")]
    KeyId(String),
}

/// A fault inside the signer that is not the request's (HTTP 500, exit 1); the detail is in
/// the signer's log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InternalError {
    /// The SCEP pipeline failed inside (token, store or encoding) on an operator's path.
    #[error("{0}")]
    Scep(String),
    /// A code path that cannot be reached was reached.
    #[error("unreachable: {0}")]
    Unreachable(&'static str),
    /// Making a device's key pair or its PKCS#12 file failed.
    #[error("PKCS#12: {0}")]
    Pkcs12(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
