//! The signer's store: one redb file. Every change is one write transaction
//! committed with immediate durability, and carries its audit entry, so the
//! store and its audit trail cannot disagree.
//!
//! Tables: `meta` (officers, quorum, admin identity), `cas`, `proposals`, the
//! enrollment tables of [`Table`], and
//! `audit`, an append-only hash chain: each entry's hash is SHA-256 over the
//! previous hash and the entry's JSON.

pub mod commit;
pub mod health;
pub mod indexes;
pub mod rows;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::Digest;

use crate::error::Clash;
use crate::error::StoreError;
use crate::store::rows::CaRecord;
use crate::{Error, Result};
use proto::governance::Proposal;
use proto::roles::{Assignment, Grants, RoleDef};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CAS: TableDefinition<&str, &[u8]> = TableDefinition::new("cas");
const PROPOSALS: TableDefinition<&str, &[u8]> = TableDefinition::new("proposals");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// Signed checkpoints of the audit tree (C2SP signed notes), by tree size.
const CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_checkpoints");

/// The enrollment tables, all keyed by strings and holding JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// SCEP profiles by name.
    Profiles,
    /// Issued certificates by `CA\0SERIAL-HEX`.
    Certs,
    /// SCEP transactions by `PROFILE\0TRANSACTION-ID`: what was answered (idempotent retries).
    Transactions,
    /// One-time challenges by hex SHA-256 of the challenge.
    Challenges,
    /// Signed-challenge nonces already used, by `PROFILE\0NONCE`.
    Nonces,
    /// Requests waiting for manual approval by `PROFILE\0TRANSACTION-ID`.
    Pending,
    /// Revoked certificates by `CA\0SERIAL-HEX` (what each CA's CRL lists). Written only
    /// through `revoke::put_revoked` / `revoke::delete_revoked`, which keep [`Table::CrlEntries`]
    /// in step in the same transaction.
    Revoked,
    /// The CRL entry of each row of [`Table::Revoked`], same key, not JSON: the
    /// certificate's notAfter (8 bytes, big-endian) then the DER revokedCertificates entry,
    /// so a CRL of millions of entries is built without encoding any of them.
    CrlEntries,
    /// Report index: certificates not revoked, by `CA\0{not_after:020}\0SERIAL-HEX` (see `report`).
    ByExpiry,
    /// The same across CAs: `{not_after:020}\0CA\0SERIAL-HEX`.
    ByExpiryAll,
    /// Report index: certificates by name, `{NAME}\0CA\0SERIAL-HEX`, NAME each lowercased
    /// CN of the subject and each SAN value (see `report`); kept when revoked.
    ByName,
    /// Escrowed private keys of PKCS certificates, by `CA\0SERIAL-HEX` (`ca::escrow`),
    /// written in the certificate's transaction.
    Escrow,
    /// Key recoveries fetched, by proposal id: each recovery is fetched once.
    Recoveries,
    /// Report counters (JSON integers): `CA\0revoked`, and `CA\0day\0{day:08}` for the
    /// certificates not revoked whose notAfter falls on that day (days since the epoch).
    Counts,
    /// Certificates issued through an `intune` profile that Intune has not been told about
    /// yet (`successNotification`), by `CA\0SERIAL-HEX` ([`rows::Unnotified`]). Written with
    /// the certificate, removed once Intune accepted the notification; a row left past its
    /// deadline is notified again or the certificate is withdrawn (`enroll::mdm`).
    Unnotified,
}

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(match self {
            Table::Profiles => "profiles",
            Table::Certs => "certs",
            Table::Transactions => "transactions",
            Table::Challenges => "challenges",
            Table::Nonces => "nonces",
            Table::Pending => "pending",
            Table::Revoked => "revoked",
            Table::ByExpiry => "by_expiry",
            Table::ByExpiryAll => "by_expiry_all",
            Table::ByName => "by_name",
            Table::Escrow => "escrow",
            Table::Recoveries => "recoveries",
            Table::Counts => "counts",
            Table::CrlEntries => "crl_entries",
            Table::Unnotified => "unnotified",
        })
    }
    const ALL: [Table; 15] = [
        Table::Unnotified,
        Table::Revoked,
        Table::Profiles,
        Table::Certs,
        Table::Transactions,
        Table::Challenges,
        Table::Nonces,
        Table::Pending,
        Table::ByExpiry,
        Table::ByExpiryAll,
        Table::ByName,
        Table::Escrow,
        Table::Recoveries,
        Table::Counts,
        Table::CrlEntries,
    ];
}

/// A registered admin (the officers registered at `init`, and admins added by proposal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Officer {
    pub name: String,
    #[serde(with = "proto::b64")]
    pub cert: Vec<u8>,
    /// Roles within tags. A store from before roles has none stored: each of its officers
    /// is then an `administrator` on `*` (the upgrade).
    #[serde(default = "administrator_everywhere")]
    pub assignments: Vec<Assignment>,
}

fn administrator_everywhere() -> Vec<Assignment> {
    vec![Assignment::administrator_everywhere()]
}

/// Governance settings: the admins, the custom roles and the quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Governance {
    pub quorum: u32,
    pub officers: Vec<Officer>,
    /// How many rejections end a proposal (1 unless changed by `quorum set`).
    #[serde(default = "one")]
    pub rejections: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleDef>,
}

fn one() -> u32 {
    1
}

impl Governance {
    pub fn officer(&self, name: &str) -> Option<&Officer> {
        self.officers.iter().find(|o| o.name == name)
    }

    /// What an admin may do, and where.
    pub fn grants(&self, officer: &Officer) -> Grants {
        Grants::resolve(&officer.assignments, &self.roles)
    }

    /// The admins who may create CAs somewhere: the quorum must never need more.
    pub fn ca_creators(&self) -> usize {
        self.officers
            .iter()
            .filter(|o| self.grants(o).has(proto::roles::Permission::CaCreate))
            .count()
    }
}

/// The admin port's TLS identity: a CA and a server certificate, both keys in the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminIdentity {
    pub ca_key_id: String,
    #[serde(with = "proto::b64")]
    pub ca_cert: Vec<u8>,
    pub tls_key_id: String,
    #[serde(with = "proto::b64")]
    pub tls_cert: Vec<u8>,
    /// The audit key (ECDSA P-256 in the token) that signs checkpoints, and its certificate
    /// issued by the admin CA; made on the first checkpoint (stores from before have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_key_id: Option<String>,
    /// Base64 DER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_cert: Option<String>,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
    /// Hex SHA-256 of the previous entry ("" for the first).
    pub prev: String,
    /// The CA the entry is about, if any (`audit list --ca`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Admin requests: hex SHA-256 of the caller's certificate, their address, the
    /// permission the request used, and how it ended (`ok`, or the refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The proposal the entry is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
}

/// What a new audit entry says; [`Tx::record`] adds its sequence number, time and chain.
#[derive(Debug, Clone, Default)]
pub struct Note {
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub ca: Option<String>,
    pub fingerprint: Option<String>,
    pub source: Option<String>,
    pub permission: Option<String>,
    pub outcome: Option<String>,
    pub proposal: Option<String>,
}

impl Note {
    pub fn new(actor: &str, action: &str, detail: String) -> Note {
        Note {
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail,
            ..Note::default()
        }
    }

    /// About this CA.
    pub fn ca(mut self, ca: &str) -> Note {
        self.ca = Some(ca.to_owned());
        self
    }

    /// About this proposal.
    pub fn proposal(mut self, id: &str) -> Note {
        self.proposal = Some(id.to_owned());
        self
    }
}

/// The writes of one issuance, checked and applied as a unit inside a shared
/// (group-committed) transaction: checks first, then writes, so a refused batch
/// leaves nothing behind.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Rows that must not exist yet.
    pub absent: Vec<(Table, String)>,
    /// A one-time challenge (its key in `challenges`) to mark as used by this transaction ID.
    pub use_challenge: Option<(String, String)>,
    /// A signed-challenge nonce (its key in `nonces`) to record, with its expiry.
    pub use_nonce: Option<(String, i64)>,
    /// Rows to write (JSON).
    pub puts: Vec<(Table, String, Vec<u8>)>,
    /// Counters (JSON integers) to change by a delta, after the puts; see [`Tx::add`].
    pub counters: Vec<(Table, String, i64)>,
    /// The audit entry of this change, appended in the same transaction.
    pub audit: Option<Note>,
}

impl Batch {
    pub fn put<T: Serialize>(&mut self, table: Table, key: &str, value: &T) -> Result<()> {
        self.puts
            .push((table, key.to_owned(), serde_json::to_vec(value)?));
        Ok(())
    }

    /// A row of raw bytes (tables that are not JSON: [`Table::CrlEntries`]).
    pub fn put_bytes(&mut self, table: Table, key: &str, value: Vec<u8>) {
        self.puts.push((table, key.to_owned(), value));
    }

    /// Change a counter by `delta` when the batch is applied.
    pub fn count(&mut self, table: Table, key: &str, delta: i64) {
        self.counters.push((table, key.to_owned(), delta));
    }
}

/// The store. After an I/O error (a full disk, EIO, a failed fsync) redb refuses every
/// later write until the file is closed and opened again: [`Store::heal`] does that, and
/// until it has, every write fails closed ([`health`]).
pub struct Store {
    /// Opens the file again (the path, or a test's storage backend).
    opener: Opener,
    /// `None` while the store is being reopened.
    db: RwLock<Option<Arc<Database>>>,
    health: health::Health,
}

/// How to open the store's file again, and how to tell first whether that can work.
struct Opener {
    open: Box<dyn Fn() -> std::result::Result<Database, redb::DatabaseError> + Send + Sync>,
    /// Whether the file's disk takes writes again ([`health::PROBE_BYTES`] written and
    /// synced): until it does the open file stays, and answers reads.
    probe: Box<dyn Fn() -> std::io::Result<()> + Send + Sync>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("health", &self.health.status())
            .finish()
    }
}

/// A read transaction (a snapshot) with typed accessors.
pub struct Reader {
    tx: redb::ReadTransaction,
    /// Keeps the database open (a reopen waits for it) while the snapshot lives.
    _db: Arc<Database>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
}

impl Reader {
    /// Read one JSON row.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        get(&self.tx.open_table(table.def())?, key)
    }

    pub fn ca(&self, name: &str) -> Result<Option<CaRecord>> {
        get(&self.tx.open_table(CAS)?, name)
    }

    pub fn cas(&self) -> Result<Vec<CaRecord>> {
        all(&self.tx.open_table(CAS)?)
    }

    /// The first and last keys starting with `prefix`, if any.
    pub fn key_bounds(&self, table: Table, prefix: &str) -> Result<Option<(String, String)>> {
        let t = self.tx.open_table(table.def())?;
        let mut range = t.range(prefix..)?;
        let Some(first) = range.next() else {
            return Ok(None);
        };
        let first = first?.0.value().to_owned();
        if !first.starts_with(prefix) {
            return Ok(None);
        }
        // The prefix's successor: every key with the prefix sorts below it.
        let mut end = prefix.as_bytes().to_vec();
        end.push(0xff);
        let end = String::from_utf8_lossy(&end).into_owned();
        let last = match t.range(prefix..end.as_str())?.next_back() {
            Some(row) => row?.0.value().to_owned(),
            None => first.clone(),
        };
        Ok(Some((first, last)))
    }

    /// Visit rows in key order from `start` (inclusive) while `f(key, raw JSON)` returns true.
    pub fn visit(
        &self,
        table: Table,
        start: &str,
        mut f: impl FnMut(&str, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let t = self.tx.open_table(table.def())?;
        for row in t.range(start..)? {
            let (k, v) = row?;
            if !f(k.value(), v.value())? {
                break;
            }
        }
        Ok(())
    }
}

/// A write transaction with typed accessors.
pub struct Tx {
    tx: redb::WriteTransaction,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>> {
    match table.get(key)? {
        Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
        None => Ok(None),
    }
}

/// JSON rows whose key starts with `prefix`, in key order, after `after` (exclusive), at
/// most `limit`.
fn scan<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, T)>> {
    let mut out = Vec::new();
    for row in table.range(after.unwrap_or(prefix)..)? {
        let (k, v) = row?;
        let key = k.value();
        if !key.starts_with(prefix) || out.len() >= limit {
            break;
        }
        if Some(key) == after {
            continue;
        }
        out.push((key.to_owned(), serde_json::from_slice(v.value())?));
    }
    Ok(out)
}

fn all<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, v) = row?;
        out.push(serde_json::from_slice(v.value())?);
    }
    Ok(out)
}

/// redb's own page cache (its default is 1 GiB). Reads past it come from the OS page
/// cache; it bounds what a scan over millions of rows (a CRL build, a report) keeps resident.
const CACHE_BYTES: usize = 128 * 1024 * 1024;

fn opener(path: PathBuf) -> Opener {
    let mut probe = path.clone().into_os_string();
    probe.push(".probe");
    let probe = PathBuf::from(probe);
    Opener {
        open: Box::new(move || builder().open(&path)),
        probe: Box::new(move || health::probe_space(&probe)),
    }
}

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(CACHE_BYTES);
    b.set_repair_callback(|session| {
        // Called when the file was not closed cleanly (a crash or kill -9): nothing
        // committed is lost, but the whole file is read once to rebuild its allocator state.
        if session.progress() == 0.0 {
            tracing::warn!("the store was not closed cleanly: checking and repairing it");
        }
    });
    b
}

impl Store {
    /// Create a new store file; refuses to overwrite one.
    pub fn create(path: &Path) -> Result<Store> {
        if path.exists() {
            return Err(Error::Conflict(Clash::StoreExists(
                path.display().to_string(),
            )));
        }
        let db = builder().create(path)?;
        let store = Store::init(db, opener(path.to_owned()))?;
        store.write(indexes::mark_indexed)?;
        Ok(store)
    }

    /// A new store on a test's storage backend (which it reopens on).
    #[cfg(test)]
    pub(crate) fn on_backend(disk: Arc<health::faulty::Disk>) -> Result<Store> {
        let reopen = disk.clone();
        let open = move || builder().create_with_backend(health::faulty::Handle(reopen.clone()));
        let db = open()?;
        let probe = move || health::faulty::Handle(disk.clone()).probe();
        Store::init(
            db,
            Opener {
                open: Box::new(open),
                probe: Box::new(probe),
            },
        )
    }

    fn init(db: Database, opener: Opener) -> Result<Store> {
        let tx = db.begin_write()?;
        tx.open_table(META)?;
        tx.open_table(CAS)?;
        tx.open_table(PROPOSALS)?;
        tx.open_table(AUDIT)?;
        tx.open_table(CHECKPOINTS)?;
        for t in Table::ALL {
            tx.open_table(t.def())?;
        }
        tx.commit()?;
        Ok(Store::with(db, opener))
    }

    /// Open an existing store.
    pub fn open(path: &Path) -> Result<Store> {
        if !path.is_file() {
            return Err(Error::Config(crate::error::ConfigError::NoStore(
                path.display().to_string(),
            )));
        }
        let db = builder().open(path)?;
        // Tables added by later versions are created on first open.
        let tx = db.begin_write()?;
        for t in Table::ALL {
            tx.open_table(t.def())?;
        }
        tx.open_table(CHECKPOINTS)?;
        tx.commit()?;
        Ok(Store::with(db, opener(path.to_owned())))
    }

    fn with(db: Database, opener: Opener) -> Store {
        Store {
            opener,
            db: RwLock::new(Some(Arc::new(db))),
            health: health::Health::default(),
        }
    }

    /// The open database, or why there is none (it is being reopened after an I/O error).
    fn db(&self) -> Result<Arc<Database>> {
        let db = self
            .db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        db.ok_or_else(|| Error::Store(StoreError::Unavailable(self.health.cause())))
    }

    /// Run a write: an I/O error marks the store failed (every write refused until
    /// [`Store::heal`] has reopened it).
    fn watch<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && e.is_io()
        {
            self.health.failed(e);
        }
        r
    }

    /// Apply several batches in one write transaction (one fsync for all of them).
    /// Each batch succeeds or is refused on its own; the outer error is a store failure.
    pub fn commit_batches(&self, batches: &[Batch]) -> Result<Vec<Result<()>>> {
        self.write(|tx| Ok(batches.iter().map(|b| tx.apply(b)).collect()))
    }

    /// Read one JSON row.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        get(&tx.open_table(table.def())?, key)
    }

    /// Every row of a table, in key order (small tables only: profiles, pending requests).
    pub fn values<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>> {
        Ok(self
            .scan(table, "", None, usize::MAX)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Rows whose key starts with `prefix`, in key order, after `after` (exclusive), at most `limit`.
    pub fn scan<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, T)>> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        scan(&tx.open_table(table.def())?, prefix, after, limit)
    }

    /// A read transaction: one consistent snapshot for several reads (reports).
    pub fn reader(&self) -> Result<Reader> {
        let db = self.db()?;
        Ok(Reader {
            tx: db.begin_read()?,
            _db: db,
        })
    }

    /// Run `f` in one write transaction; commit (durably) only if it succeeds.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx) -> Result<T>) -> Result<T> {
        self.watch(self.health.writable().and_then(|()| {
            let db = self.db()?;
            let mut tx = Tx {
                tx: db.begin_write()?,
            };
            let out = f(&mut tx)?;
            tx.tx.commit()?;
            Ok(out)
        }))
    }

    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        get(&tx.open_table(META)?, key)
    }

    pub fn governance(&self) -> Result<Governance> {
        self.meta("governance")?
            .ok_or(Error::Config(crate::error::ConfigError::NoOfficers))
    }

    pub fn admin_identity(&self) -> Result<AdminIdentity> {
        self.meta("admin")?
            .ok_or(Error::Config(crate::error::ConfigError::NoAdminIdentity))
    }

    pub fn ca(&self, name: &str) -> Result<Option<CaRecord>> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        get(&tx.open_table(CAS)?, name)
    }

    pub fn cas(&self) -> Result<Vec<CaRecord>> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        all(&tx.open_table(CAS)?)
    }

    pub fn proposal(&self, id: &str) -> Result<Option<Proposal>> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        get(&tx.open_table(PROPOSALS)?, id)
    }

    pub fn proposals(&self) -> Result<Vec<Proposal>> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let mut v: Vec<Proposal> = all(&tx.open_table(PROPOSALS)?)?;
        v.sort_by_key(|p| p.body.created_at);
        Ok(v)
    }

    /// Every audit entry in order.
    pub fn audit(&self) -> Result<Vec<AuditEntry>> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let t = tx.open_table(AUDIT)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    /// The audit entries from `seq` on, as stored (the bytes are the Merkle leaves).
    pub fn audit_bytes_from(&self, seq: u64) -> Result<Vec<Vec<u8>>> {
        self.audit_bytes(seq..u64::MAX)
    }

    /// The audit entries with sequence numbers in `range`, as stored.
    pub fn audit_bytes(&self, range: std::ops::Range<u64>) -> Result<Vec<Vec<u8>>> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let t = tx.open_table(AUDIT)?;
        let mut out = Vec::new();
        for row in t.range(range)? {
            let (_, v) = row?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    /// Up to `limit` audit entries after `after` that `keep` accepts, looking at no more than
    /// `scan` entries (a bounded read); with the last sequence number looked at, and whether
    /// there may be more.
    pub fn audit_page(
        &self,
        after: Option<u64>,
        limit: usize,
        scan: usize,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<(Vec<AuditEntry>, Option<u64>, bool)> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let t = tx.open_table(AUDIT)?;
        let from = after.map_or(0, |a| a.saturating_add(1));
        let mut out = Vec::new();
        let mut last = None;
        let mut more = false;
        for (i, row) in t.range(from..)?.enumerate() {
            if out.len() == limit || i == scan {
                more = true;
                break;
            }
            let (k, v) = row?;
            last = Some(k.value());
            let e: AuditEntry = serde_json::from_slice(v.value())?;
            if keep(&e) {
                out.push(e);
            }
        }
        Ok((out, last, more))
    }

    /// How many audit entries there are.
    pub fn audit_len(&self) -> Result<u64> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let t = tx.open_table(AUDIT)?;
        Ok(t.last()?.map_or(0, |(k, _)| k.value() + 1))
    }

    /// The latest signed checkpoint, if any.
    pub fn last_checkpoint(&self) -> Result<Option<String>> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let t = tx.open_table(CHECKPOINTS)?;
        Ok(t.last()?
            .map(|(_, v)| String::from_utf8_lossy(v.value()).into_owned()))
    }

    /// Every signed checkpoint, by size.
    pub fn checkpoints(&self) -> Result<Vec<String>> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let t = tx.open_table(CHECKPOINTS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(String::from_utf8_lossy(v.value()).into_owned());
        }
        Ok(out)
    }

    /// Check the audit hash chain; returns the number of entries.
    pub fn verify_audit(&self) -> Result<usize> {
        self.verify_audit_from(0)
    }

    /// Check the audit hash chain from entry `from` on (the entries before it are covered
    /// by a signed checkpoint); returns the number of entries.
    pub fn verify_audit_from(&self, from: u64) -> Result<usize> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let t = tx.open_table(AUDIT)?;
        let start = from.saturating_sub(1);
        let mut prev: Option<String> = (start == 0 && from == 0).then(String::new);
        let mut count = start as usize;
        for row in t.range(start..)? {
            let (k, v) = row?;
            let e: AuditEntry = serde_json::from_slice(v.value())?;
            let i = k.value();
            if e.seq != i || i != count as u64 || prev.as_ref().is_some_and(|p| &e.prev != p) {
                return Err(Error::Store(StoreError::AuditBroken(i as usize)));
            }
            prev = Some(entry_hash(&e)?);
            count += 1;
        }
        Ok(count)
    }
}

fn entry_hash(e: &AuditEntry) -> Result<String> {
    let mut h = sha2::Sha256::new();
    h.update(e.prev.as_bytes());
    h.update(serde_json::to_vec(e)?);
    Ok(hex::encode(h.finalize()))
}

impl Tx {
    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        get(&self.tx.open_table(META)?, key)
    }

    pub fn put_meta<T: Serialize>(&mut self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.tx.open_table(META)?.insert(key, bytes.as_slice())?;
        Ok(())
    }

    pub fn ca(&self, name: &str) -> Result<Option<CaRecord>> {
        get(&self.tx.open_table(CAS)?, name)
    }

    pub fn put_ca(&mut self, ca: &CaRecord) -> Result<()> {
        let bytes = serde_json::to_vec(ca)?;
        self.tx
            .open_table(CAS)?
            .insert(ca.spec.name.as_str(), bytes.as_slice())?;
        Ok(())
    }

    pub fn proposal(&self, id: &str) -> Result<Option<Proposal>> {
        get(&self.tx.open_table(PROPOSALS)?, id)
    }

    pub fn put_proposal(&mut self, p: &Proposal) -> Result<()> {
        let bytes = serde_json::to_vec(p)?;
        self.tx
            .open_table(PROPOSALS)?
            .insert(p.body.id.as_str(), bytes.as_slice())?;
        Ok(())
    }

    /// Read one JSON row inside this transaction.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        get(&self.tx.open_table(table.def())?, key)
    }

    /// Write one JSON row.
    pub fn put<T: Serialize>(&mut self, table: Table, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.tx
            .open_table(table.def())?
            .insert(key, bytes.as_slice())?;
        Ok(())
    }

    /// Write one row of raw bytes (tables that are not JSON: [`Table::CrlEntries`]).
    pub fn put_bytes(&mut self, table: Table, key: &str, value: &[u8]) -> Result<()> {
        self.tx.open_table(table.def())?.insert(key, value)?;
        Ok(())
    }

    /// Check a batch, then write it. Refusals are `Error::Conflict` and write nothing.
    pub fn apply(&mut self, b: &Batch) -> Result<()> {
        for (t, k) in &b.absent {
            if self.tx.open_table(t.def())?.get(k.as_str())?.is_some() {
                return Err(Error::Conflict(Clash::RowExists(k.to_string())));
            }
        }
        let mut challenge = None;
        if let Some((k, by)) = &b.use_challenge {
            let mut c: serde_json::Value = self
                .get(Table::Challenges, k)?
                .ok_or(Error::Conflict(Clash::ChallengeUnknown))?;
            match c.get("used_by").and_then(|u| u.as_str()) {
                Some(u) if u != by => {
                    return Err(Error::Conflict(Clash::ChallengeUsed));
                }
                _ => {}
            }
            c["used_by"] = serde_json::Value::String(by.clone());
            challenge = Some((k, c));
        }
        if let Some((k, _)) = &b.use_nonce
            && self
                .tx
                .open_table(Table::Nonces.def())?
                .get(k.as_str())?
                .is_some()
        {
            return Err(Error::Conflict(Clash::SignedChallengeUsed));
        }
        if let Some((k, c)) = challenge {
            self.put(Table::Challenges, k, &c)?;
        }
        if let Some((k, exp)) = &b.use_nonce {
            self.put(Table::Nonces, k, exp)?;
        }
        for (t, k, v) in &b.puts {
            self.tx
                .open_table(t.def())?
                .insert(k.as_str(), v.as_slice())?;
        }
        for (t, k, d) in &b.counters {
            self.add(*t, k, *d)?;
        }
        if let Some(n) = &b.audit {
            self.record(n.clone())?;
        }
        Ok(())
    }

    /// Change a counter (a JSON integer, absent = 0) by `delta`; a counter that
    /// reaches 0 is removed. Returns the new value.
    pub fn add(&mut self, table: Table, key: &str, delta: i64) -> Result<i64> {
        let mut t = self.tx.open_table(table.def())?;
        let old: i64 = match t.get(key)? {
            Some(v) => serde_json::from_slice(v.value())?,
            None => 0,
        };
        let new = old + delta;
        if new == 0 {
            t.remove(key)?;
        } else {
            let bytes = serde_json::to_vec(&new)?;
            t.insert(key, bytes.as_slice())?;
        }
        Ok(new)
    }

    /// Number of rows in a table (kept by redb: O(1)).
    pub fn len(&self, table: Table) -> Result<u64> {
        Ok(self.tx.open_table(table.def())?.len()?)
    }

    /// Remove every row of a table.
    pub fn clear(&mut self, table: Table) -> Result<()> {
        self.tx.open_table(table.def())?.retain(|_, _| false)?;
        Ok(())
    }

    /// Rows whose key starts with `prefix`, after `after` (exclusive), at most `limit`.
    pub fn scan<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, T)>> {
        scan(&self.tx.open_table(table.def())?, prefix, after, limit)
    }

    /// Delete one row; true if it existed.
    pub fn delete(&mut self, table: Table, key: &str) -> Result<bool> {
        Ok(self.tx.open_table(table.def())?.remove(key)?.is_some())
    }

    /// Append an audit entry chained to the last one.
    /// Record a signed checkpoint of the audit tree at `size`.
    pub fn put_checkpoint(&mut self, size: u64, note: &str) -> Result<()> {
        self.tx
            .open_table(CHECKPOINTS)?
            .insert(size, note.as_bytes())?;
        Ok(())
    }

    pub fn audit(&mut self, actor: &str, action: &str, detail: String) -> Result<()> {
        self.record(Note::new(actor, action, detail))
    }

    /// Append an audit entry (a leaf of the audit tree) in this transaction.
    pub fn record(&mut self, note: Note) -> Result<()> {
        let mut t = self.tx.open_table(AUDIT)?;
        let (seq, prev) = match t.last()? {
            Some((k, v)) => {
                let last: AuditEntry = serde_json::from_slice(v.value())?;
                (k.value() + 1, entry_hash(&last)?)
            }
            None => (0, String::new()),
        };
        let e = AuditEntry {
            seq,
            at: crate::now(),
            actor: note.actor,
            action: note.action,
            detail: note.detail,
            prev,
            ca: note.ca,
            fingerprint: note.fingerprint,
            source: note.source,
            permission: note.permission,
            outcome: note.outcome,
            proposal: note.proposal,
        };
        let bytes = serde_json::to_vec(&e)?;
        t.insert(seq, bytes.as_slice())?;
        Ok(())
    }
}
