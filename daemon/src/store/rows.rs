//! Every row type the store keeps, as JSON values in its tables.

use proto::model::{CaKind, CaName, CaSpec, CaStatus, RaLayout, San};
use serde::{Deserialize, Serialize};

/// A CA as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    pub spec: CaSpec,
    pub kind: CaKind,
    /// The issuing CA for `Issuing`.
    pub parent: Option<CaName>,
    pub status: CaStatus,
    /// CKA_ID of the CA key in the token, hex.
    pub key_id: String,
    #[serde(with = "proto::b64::opt", default)]
    pub cert: Option<Vec<u8>>,
    /// External CAs: the chain above the certificate, issuer first, ending at the root.
    #[serde(with = "proto::b64::vec", default)]
    pub external_chain: Vec<Vec<u8>>,
    #[serde(with = "proto::b64::opt", default)]
    pub csr: Option<Vec<u8>>,
    pub created_at: i64,
    pub proposal: String,
    /// The SCEP RA key and certificate (layout `combined`, no extra EKU), made when the
    /// first such profile names this CA.
    #[serde(default)]
    pub ra: Option<RaRecord>,
    /// The other RA layouts profiles of this CA chose (`split`, and any with the Windows
    /// EKU), one set per (layout, EKU) pair, shared by the profiles that chose it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ra_sets: Vec<RaSet>,
    /// The delegated OCSP responder key (EC P-256) and certificate (RFC 6960 §4.2.2.2),
    /// made the first time an OCSP request names this CA, renewed before it expires.
    #[serde(default)]
    pub ocsp: Option<RaRecord>,
}

/// A SCEP registration authority: an RSA key in the token (sign + decrypt) and a
/// certificate from its CA with digitalSignature + keyEncipherment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaRecord {
    pub key_id: String,
    #[serde(with = "proto::b64")]
    pub cert: Vec<u8>,
}

/// The RA certificates of one layout: the signing one (also the encryption one when
/// `encrypt` is `None`, layout `combined`) and, for `split`, the encryption one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaSet {
    pub layout: RaLayout,
    pub windows_eku: bool,
    pub sign: RaRecord,
    #[serde(default)]
    pub encrypt: Option<RaRecord>,
}

/// A one-time challenge as stored (keyed by the hash of its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTime {
    pub profile: String,
    /// If set, the request's subject must be exactly this (RFC 4514 text, compared parsed).
    pub subject: Option<String>,
    /// If non-empty, the request's SANs must be exactly these.
    pub sans: Vec<San>,
    pub expires_at: i64,
    /// The transaction that used it.
    pub used_by: Option<String>,
    pub created_by: String,
}

/// An issued certificate as stored (table `certs`, key `CA\0SERIAL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    pub ca: String,
    pub serial: String,
    pub profile: String,
    pub transaction_id: String,
    pub subject: String,
    pub sans: Vec<San>,
    pub not_before: i64,
    pub not_after: i64,
    pub issued_at: i64,
    /// Hex SHA-256 of the SubjectPublicKeyInfo.
    pub key_hash: String,
    #[serde(with = "proto::b64")]
    pub der: Vec<u8>,
    /// Revocation time, when revoked.
    #[serde(default)]
    pub revoked_at: Option<i64>,
    /// The certificate this one renewed.
    #[serde(default)]
    pub renewed_from: Option<String>,
}

/// What a transaction was answered (table `transactions`), for idempotent retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRecord {
    pub key_hash: String,
    /// `CA\0SERIAL` of the issued certificate, once issued.
    pub cert: Option<String>,
    /// True while waiting for manual approval.
    pub pending: bool,
    /// Set when an operator rejected it.
    pub rejected: Option<String>,
}

/// A certificate Intune has not been told about yet (table `unnotified`, keyed like
/// `certs`): it is not delivered until Intune accepts `successNotification`, and it is
/// withdrawn if that cannot happen by `deadline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unnotified {
    /// The transaction's key in `transactions` (marked rejected on withdrawal).
    pub tx_key: String,
    /// The SCEP transactionID and the CSR (DER), as the notification needs them.
    pub transaction_id: String,
    #[serde(with = "proto::b64")]
    pub csr: Vec<u8>,
    /// Unix time after which the sweep notifies again or withdraws.
    pub deadline: i64,
}

/// A request waiting for manual approval (table `pending`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecord {
    pub id: String,
    pub profile: String,
    pub transaction_id: String,
    pub subject: String,
    pub sans: Vec<San>,
    #[serde(with = "proto::b64")]
    pub csr: Vec<u8>,
    pub created_at: i64,
    pub renewed_from: Option<String>,
    /// The transaction's key in the `transactions` table.
    pub tx_key: String,
}

/// A row of a CA's revoked list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRow {
    pub revoked_at: i64,
    /// RFC 5280 reason name; None: no reasonCode.
    pub reason: Option<String>,
    /// The certificate's notAfter: the row leaves the CRL after it.
    pub not_after: i64,
}

/// What is known of the current CRL of a CA (meta key `crl:CA`). Its DER is the file
/// `crls/CA.crl` in the state directory, with this SHA-256: a file that does not match
/// (a crash between writing it and committing this) is not served, and a new CRL is
/// published. (Earlier versions kept the DER here: it is ignored, and republished.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlState {
    pub number: u64,
    pub this_update: i64,
    pub next_update: i64,
    pub entries: usize,
    /// Hex SHA-256 of the DER.
    #[serde(default)]
    pub sha256: String,
}

/// The fields of a [`CertRecord`] reports need (the DER is skipped, not decoded).
#[derive(Debug, Deserialize)]
/// The head of a [`CertRecord`] row: what listings read (not the DER).
pub struct CertHead {
    pub ca: String,
    pub serial: String,
    pub profile: String,
    pub subject: String,
    pub sans: Vec<San>,
    pub not_before: i64,
    pub not_after: i64,
    /// Absent in rows written before it was recorded.
    #[serde(default)]
    pub issued_at: Option<i64>,
    #[serde(default)]
    pub revoked_at: Option<i64>,
}
