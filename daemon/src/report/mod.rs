//! Certificate reporting: `castellan cert list|show|get|stats`, for any number of
//! certificates (the store is meant to hold millions).
//!
//! # Listing: key-ordered sources and opaque cursors
//!
//! A page is a walk over one redb table in key order, starting after a cursor. The cursor
//! is the last key the page covered, tagged with the table it belongs to and encoded in
//! unpadded base64url: it is opaque to clients, and since keys never change, rows written
//! after a page was served never shift the next one (no duplicates, nothing skipped; new
//! rows behind the cursor simply are not in this walk). Which table is walked depends on
//! the filter:
//!
//! | filter                          | table (key), range                                   | order         |
//! |---------------------------------|------------------------------------------------------|---------------|
//! | none; any search but revoked/pending | `certs` (`CA\0SERIAL`)                          | CA, serial    |
//! | active, `--ca`                  | `by_expiry` (`CA\0{not_after:020}\0SERIAL`) from `CA\0{now:020}` | soonest expiry first |
//! | expired, `--ca`                 | `by_expiry` up to `CA\0{now:020}`                    | oldest first  |
//! | active / expired, all CAs       | `by_expiry_all` (`{not_after:020}\0CA\0SERIAL`), split at `{now:020}` | expiry |
//! | revoked                         | `revoked` (`CA\0SERIAL`, what the CRLs list)         | CA, serial    |
//! | pending                         | `pending` (request id; few rows by nature)           | id            |
//!
//! A cursor belongs to its table: one from another listing is refused, not misread.
//!
//! `active` and `expired` are the two halves of the same range, split at the current
//! time, so a status-filtered page is a B-tree seek plus 100 rows (and 100 point reads of
//! `certs` for the details). Revoked certificates are *removed* from both expiry indexes
//! when revoked (and put back when a certificateHold is lifted), so those ranges hold
//! exactly the certificates of their status and never need skipping. The `revoked` table
//! also lists CA certificates put on their parent's CRL; those are not in `certs` and are
//! skipped.
//!
//! The index rows are written in the same write transaction as the certificate: in
//! `issue_leaf`'s [`Batch`] (group-committed) and in `revoke_cert`'s transaction, through
//! [`index_issued`], [`index_revoked`] and [`index_unrevoked`]. A store written before
//! the indexes existed is indexed once, in one write transaction, by the first report
//! request ([`ensure_indexes`]; it tells such a store by its counters not adding up to
//! the number of certificates).
//!
//! # Search is a scan
//!
//! `--search TEXT` (case-insensitive substring of the subject, a SAN or the serial) has
//! no index: it filters the rows of `certs` (of one CA with `--ca`), also by status when
//! one is given, in key order (sequential reads cost half of index rows plus point
//! reads); `--status revoked` and `pending` filter their own tables. Each request examines
//! at most [`SCAN_BUDGET`] rows and returns at most `limit` matches; when the budget runs
//! out first, the page is short (possibly empty) and `next` continues the scan where it
//! stopped. The CLI follows `next` until it has `--limit` matches or the table ends, so
//! the signer is never busy for long with one request.
//!
//! `next` is returned only when more rows may follow: a page looks one matching row
//! ahead, so a listing that ends exactly at a page boundary has no empty last page
//! (except when a search's budget runs out right at the end).
//!
//! # Statistics without a scan
//!
//! `cert stats` is O(CAs × days), not O(certificates). The `counts` table keeps, in the
//! same transactions, per CA: the number of revoked certificates (`CA\0revoked`), and the
//! number of certificates not revoked per notAfter day (`CA\0day\0{day:08}`). Days before
//! today are expired, days after are active; only today's certificates are counted from
//! `by_expiry` (a range scan up to now). Pending requests are counted from `pending`. The
//! same day counters give the active certificates expiring within 7, 30 and 90 days.
//!
//! `CA\0issued\0{day:08}` counts the certificates issued on each UTC day (never
//! decremented): the console's 90-day issuance chart is 90 reads. A store from before these
//! counters (index version 1) gets them in one pass over the certificate heads, once.
//!
//! # Measured
//!
//! `store-bench --n 1000000` (release, 2 cores, warm page cache; see `examples/store-bench.rs`):
//! every status-filtered page of 100, first or half-way through, takes under 1 ms; stats
//! under 0.6 ms; a search request (10,000 rows) 40 to 55 ms; 3.6 kB of store file per
//! certificate, of which 2.4 kB are rows (the certificate record is ~1.9 kB of JSON) and
//! under 150 B the report indexes. Indexing a store of a million certificates written
//! before the indexes existed takes about 36 s, once.

use std::collections::HashMap;

use base64::Engine;

use crate::error::Missing;
use crate::store::indexes::{
    cert_key, day, ensure_indexes, exp, expiry_key, issued_key, revoked_key,
};
use crate::store::rows::RevokedRow;
use crate::store::rows::{CertHead, CertRecord, PendingRecord};
use crate::store::{Reader, Store, Table};
use crate::{Error, Result};
use proto::model::San;

pub use proto::admin::{
    CaCertStats, CertDetail, CertSummary, DEFAULT_LIMIT, Expires, MAX_LIMIT, Status,
};
/// Most rows one list request examines (what bounds a search).
pub const SCAN_BUDGET: usize = 10_000;
/// Longest search text.
pub const MAX_SEARCH: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub ca: Option<String>,
    pub status: Option<Status>,
    pub search: Option<String>,
    pub limit: Option<u32>,
    pub after: Option<String>,
    /// Only notAfter in this range: a narrower range of the expiry indexes for `active` and
    /// `expired`, a filter of the scanned rows otherwise (pending requests have none).
    pub expires: Expires,
    /// Only certificates with a CN or SAN starting with this (case-insensitive): a walk of
    /// the `by_name` index from the prefix, the other filters applied to its rows.
    pub name: Option<String>,
}

/// The CAs a caller may see; everything else is left out as if it did not exist.
#[derive(Debug, Clone)]
pub enum Scope {
    All,
    Only(std::collections::BTreeSet<String>),
}

impl Scope {
    pub fn allows(&self, ca: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(cas) => cas.contains(ca),
        }
    }
}

/// One page of `cert list`; `next` continues after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub certs: Vec<CertSummary>,
    pub next: Option<String>,
}

// ------------------------------------------------------------------ index rows

// ------------------------------------------------------------------ cursors

/// The table a listing walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Certs,
    ByExpiry,
    ByExpiryAll,
    ByName,
    Revoked,
    Pending,
}

impl Source {
    fn tag(self) -> &'static str {
        match self {
            Source::Certs => "c",
            Source::ByExpiry => "e",
            Source::ByExpiryAll => "E",
            Source::ByName => "n",
            Source::Revoked => "r",
            Source::Pending => "p",
        }
    }
    fn table(self) -> Table {
        match self {
            Source::Certs => Table::Certs,
            Source::ByExpiry => Table::ByExpiry,
            Source::ByExpiryAll => Table::ByExpiryAll,
            Source::ByName => Table::ByName,
            Source::Revoked => Table::Revoked,
            Source::Pending => Table::Pending,
        }
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn encode_cursor(source: Source, key: &str) -> String {
    B64.encode(format!("{}:{key}", source.tag()))
}

fn decode_cursor(cursor: &str, source: Source) -> Result<String> {
    let bad = || {
        Error::Invalid(format!(
            "cursor {cursor:?} is not one this listing returned (same --ca and --status)"
        ))
    };
    let raw = B64.decode(cursor.trim()).map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (tag, key) = s.split_once(':').ok_or_else(bad)?;
    if tag != source.tag() {
        return Err(bad());
    }
    Ok(key.to_owned())
}

// ------------------------------------------------------------------ list

fn status_of(c: &CertHead, now: i64) -> Status {
    if c.revoked_at.is_some() {
        Status::Revoked
    } else if c.not_after < now {
        Status::Expired
    } else {
        Status::Active
    }
}

fn summary(c: CertHead, now: i64) -> CertSummary {
    CertSummary {
        status: status_of(&c, now),
        ca: c.ca,
        serial: Some(c.serial),
        request: None,
        subject: c.subject,
        sans: c.sans,
        profile: c.profile,
        not_before: Some(c.not_before),
        not_after: Some(c.not_after),
        revoked_at: c.revoked_at,
    }
}

/// A search text: lowercase, and without colons for serials.
struct Needle {
    text: String,
    serial: String,
}

impl Needle {
    fn new(s: &str) -> Result<Option<Needle>> {
        let text = s.trim().to_lowercase();
        if text.is_empty() {
            return Ok(None);
        }
        if text.len() > MAX_SEARCH {
            return Err(Error::Invalid(format!(
                "the search text is longer than {MAX_SEARCH} bytes"
            )));
        }
        let serial = text.chars().filter(|c| *c != ':').collect();
        Ok(Some(Needle { text, serial }))
    }
    fn matches(&self, subject: &str, sans: &[San], serial: Option<&str>) -> bool {
        subject.to_lowercase().contains(&self.text)
            || sans
                .iter()
                .any(|s| s.to_string().to_lowercase().contains(&self.text))
            || serial.is_some_and(|s| !self.serial.is_empty() && s.contains(&self.serial))
    }
}

/// Profile name → CA name.
fn profile_cas(r: &Reader) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    r.visit(Table::Profiles, "", |k, v| {
        let p: proto::profile::ProfileSpec = serde_json::from_slice(v)?;
        out.insert(k.to_owned(), p.ca.to_string());
        Ok(true)
    })?;
    Ok(out)
}

/// One page of certificates (or pending requests), `now` deciding active from expired.
pub fn list(store: &Store, q: &ListQuery, scope: &Scope, now: i64) -> Result<Page> {
    ensure_indexes(store)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::Invalid(format!(
            "--limit {limit}: give 1 to {MAX_LIMIT}"
        )));
    }
    let limit = limit as usize;
    let needle = q.search.as_deref().map(Needle::new).transpose()?.flatten();
    let r = store.reader()?;
    if let Some(ca) = &q.ca
        && (!scope.allows(ca) || !r.cas()?.iter().any(|c| c.spec.name.as_str() == ca))
    {
        return Err(Error::NotFound(Missing::Ca(ca.to_owned())));
    }
    let name = match q.name.as_deref().map(str::to_lowercase) {
        Some(n) if n.is_empty() || n.len() > MAX_SEARCH || n.contains('\0') => {
            return Err(Error::Invalid(format!(
                "--name: give 1 to {MAX_SEARCH} bytes without NUL"
            )));
        }
        n => n,
    };
    let source = match (q.status, q.ca.is_some()) {
        // Pending requests have no certificate to be named by; a prefix picks the index.
        (Some(Status::Pending), _) if name.is_some() => {
            return Err(Error::Invalid(
                "--name finds certificates, not pending requests".into(),
            ));
        }
        _ if name.is_some() => Source::ByName,
        // A search reads every row anyway: `certs` in order is cheaper than index + point reads.
        (None | Some(Status::Active | Status::Expired), _) if needle.is_some() => Source::Certs,
        (None, _) => Source::Certs,
        (Some(Status::Active | Status::Expired), true) => Source::ByExpiry,
        (Some(Status::Active | Status::Expired), false) => Source::ByExpiryAll,
        (Some(Status::Revoked), _) => Source::Revoked,
        (Some(Status::Pending), _) => Source::Pending,
    };
    let prefix = match (source, &q.ca) {
        (Source::ByName, _) => name.clone().unwrap_or_default(),
        (Source::Certs | Source::ByExpiry | Source::Revoked, Some(ca)) => format!("{ca}\0"),
        _ => String::new(),
    };
    let after = q
        .after
        .as_deref()
        .map(|c| decode_cursor(c, source))
        .transpose()?;
    if let Some(a) = &after
        && !a.starts_with(&prefix)
    {
        return Err(Error::Invalid(
            "the cursor is from a listing of another CA".into(),
        ));
    }
    // [lo, hi): the expiry indexes split at now.
    let split = format!("{prefix}{}", exp(now));
    let (mut lo, mut hi) = match (source, q.status) {
        (Source::ByExpiry | Source::ByExpiryAll, Some(Status::Active)) => (split, None),
        (Source::ByExpiry | Source::ByExpiryAll, Some(Status::Expired)) => {
            (prefix.clone(), Some(split))
        }
        _ => (prefix.clone(), None),
    };
    if matches!(source, Source::ByExpiry | Source::ByExpiryAll) {
        // The expiry range narrows the walk itself.
        if let Some(a) = q.expires.after {
            lo = lo.max(format!("{prefix}{}", exp(a)));
        }
        if let Some(b) = q.expires.before {
            let b = format!("{prefix}{}", exp(b));
            hi = Some(hi.map_or(b.clone(), |h| h.min(b)));
        }
    }
    let start = match &after {
        Some(a) if *a > lo => a.clone(),
        _ => lo,
    };
    let in_range = |k: &str| k.starts_with(&prefix) && hi.as_deref().is_none_or(|h| k < h);

    let mut cas_of_profiles = None;
    let mut pick = |k: &str, v: &[u8]| -> Result<Option<CertSummary>> {
        let head = match source {
            Source::Certs => serde_json::from_slice::<CertHead>(v)?,
            Source::ByName => {
                // NAME\0CA\0SERIAL; a name holds no NUL.
                let mut parts = k.split('\0');
                let (Some(this), Some(ca), Some(serial)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Ok(None);
                };
                if q.ca.as_ref().is_some_and(|c| c != ca) {
                    return Ok(None);
                }
                let Some(h) = r.get::<CertHead>(Table::Certs, &cert_key(ca, serial))? else {
                    return Ok(None);
                };
                // A certificate with several names under the prefix is listed once: at the
                // first of them in the index's order.
                let first = crate::store::indexes::names(&h.subject, &h.sans)
                    .into_iter()
                    .find(|n| n.starts_with(&prefix));
                if first.as_deref() != Some(this) {
                    return Ok(None);
                }
                h
            }
            Source::ByExpiry | Source::ByExpiryAll | Source::Revoked => {
                let mut parts = k.split('\0');
                let (ca, serial) = match source {
                    Source::ByExpiry => {
                        let ca = parts.next();
                        parts.next();
                        (ca, parts.next())
                    }
                    Source::ByExpiryAll => {
                        parts.next();
                        (parts.next(), parts.next())
                    }
                    _ => (parts.next(), parts.next()),
                };
                let (Some(ca), Some(serial)) = (ca, serial) else {
                    return Ok(None);
                };
                // Not in `certs`: a CA certificate on its parent's CRL.
                match r.get::<CertHead>(Table::Certs, &cert_key(ca, serial))? {
                    Some(h) => h,
                    None => return Ok(None),
                }
            }
            Source::Pending => {
                let p: PendingRecord = serde_json::from_slice(v)?;
                let map = match &mut cas_of_profiles {
                    Some(m) => m,
                    None => cas_of_profiles.insert(profile_cas(&r)?),
                };
                let ca = map.get(&p.profile).cloned().unwrap_or_default();
                if q.ca.as_ref().is_some_and(|c| *c != ca)
                    || !q.expires.is_any()
                    || !scope.allows(&ca)
                    || needle
                        .as_ref()
                        .is_some_and(|n| !n.matches(&p.subject, &p.sans, None))
                {
                    return Ok(None);
                }
                return Ok(Some(CertSummary {
                    ca,
                    serial: None,
                    request: Some(p.id),
                    status: Status::Pending,
                    subject: p.subject,
                    sans: p.sans,
                    profile: p.profile,
                    not_before: None,
                    not_after: None,
                    revoked_at: None,
                }));
            }
        };
        if !scope.allows(&head.ca)
            || !q.expires.contains(head.not_after)
            || q.status.is_some_and(|s| s != status_of(&head, now))
            || needle
                .as_ref()
                .is_some_and(|n| !n.matches(&head.subject, &head.sans, Some(&head.serial)))
        {
            return Ok(None);
        }
        Ok(Some(summary(head, now)))
    };

    let mut certs = Vec::new();
    let mut last_row: Option<String> = None;
    let mut last_seen = String::new();
    let mut scanned = 0usize;
    let mut next = None;
    r.visit(source.table(), &start, |k, v| {
        if after.as_deref() == Some(k) {
            return Ok(true);
        }
        if !in_range(k) {
            return Ok(false);
        }
        if scanned == SCAN_BUDGET {
            next = Some(last_seen.clone());
            return Ok(false);
        }
        scanned += 1;
        if let Some(s) = pick(k, v)? {
            if certs.len() == limit {
                next = last_row.take();
                return Ok(false);
            }
            certs.push(s);
            last_row = Some(k.to_owned());
        }
        last_seen.clear();
        last_seen.push_str(k);
        Ok(true)
    })?;
    Ok(Page {
        certs,
        next: next.map(|k| encode_cursor(source, &k)),
    })
}

// ------------------------------------------------------------------ show

/// One certificate by serial (hex, colons allowed). Without a CA, the serial must be
/// unique across CAs.
pub fn show(
    store: &Store,
    ca: Option<&str>,
    serial: &str,
    scope: &Scope,
    now: i64,
) -> Result<CertDetail> {
    let serial = proto::model::Serial::parse(serial)?.into_hex();
    let r = store.reader()?;
    let mut cas = r.cas()?;
    cas.retain(|c| scope.allows(c.spec.name.as_str()));
    let names: Vec<&str> = match ca {
        Some(c) => {
            if !cas.iter().any(|x| x.spec.name.as_str() == c) {
                return Err(Error::NotFound(Missing::Ca(c.to_owned())));
            }
            vec![c]
        }
        None => cas.iter().map(|c| c.spec.name.as_str()).collect(),
    };
    let mut found = Vec::new();
    for n in names {
        if let Some(rec) = r.get::<CertRecord>(Table::Certs, &cert_key(n, &serial))? {
            found.push(rec);
        }
    }
    let rec = match found.len() {
        0 => {
            return Err(Error::NotFound(match ca {
                Some(c) => Missing::Certificate {
                    ca: c.to_owned(),
                    serial: serial.clone(),
                },
                None => Missing::Serial(serial.clone()),
            }));
        }
        1 => found.remove(0),
        _ => {
            let list: Vec<&str> = found.iter().map(|c| c.ca.as_str()).collect();
            return Err(Error::Conflict(crate::error::Clash::AmbiguousSerial {
                serial: serial.clone(),
                cas: list.join(", "),
            }));
        }
    };
    let revoked: Option<RevokedRow> = r.get(Table::Revoked, &cert_key(&rec.ca, &rec.serial))?;
    let status = if rec.revoked_at.is_some() {
        Status::Revoked
    } else if rec.not_after < now {
        Status::Expired
    } else {
        Status::Active
    };
    Ok(CertDetail {
        status,
        revocation_reason: revoked.and_then(|r| r.reason),
        renewed_from: rec
            .renewed_from
            .map(|k| k.rsplit('\0').next().unwrap_or_default().to_owned()),
        ca: rec.ca,
        serial: rec.serial,
        subject: rec.subject,
        sans: rec.sans,
        profile: rec.profile,
        not_before: rec.not_before,
        not_after: rec.not_after,
        issued_at: rec.issued_at,
        revoked_at: rec.revoked_at,
        transaction_id: rec.transaction_id,
        key_hash: rec.key_hash,
        der: rec.der,
    })
}

// ------------------------------------------------------------------ CSV export

/// Every certificate `q` matches (its `limit` and `after` are ignored), as CSV (RFC 4180:
/// CRLF lines, every field quoted), walked page by page through [`list`] so a search's
/// scan budget applies per page and the export is never capped. A field a spreadsheet
/// would take for a formula (it starts with `=`, `+`, `-`, `@`, tab or CR: device subjects
/// are untrusted) is prefixed with `'`.
pub fn export_csv(store: &Store, q: &ListQuery, scope: &Scope, now: i64) -> Result<Vec<u8>> {
    let mut out = String::from(
        "\"ca\",\"serial\",\"request\",\"status\",\"subject\",\"sans\",\"profile\",\"not_before\",\"not_after\",\"revoked_at\"\r\n",
    );
    let mut q = ListQuery {
        limit: Some(MAX_LIMIT),
        after: None,
        ..q.clone()
    };
    loop {
        let page = list(store, &q, scope, now)?;
        for c in &page.certs {
            for (i, f) in c.csv_fields().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_field(&mut out, f);
            }
            out.push_str("\r\n");
        }
        match page.next {
            Some(next) => q.after = Some(next),
            None => return Ok(out.into_bytes()),
        }
    }
}

fn csv_field(out: &mut String, f: &str) {
    out.push('"');
    if f.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        out.push('\'');
    }
    out.push_str(&f.replace('"', "\"\""));
    out.push('"');
}

// ------------------------------------------------------------------ stats

/// Counts by CA and status, from the counters (see the module documentation).
pub fn stats(store: &Store, scope: &Scope, now: i64) -> Result<Vec<CaCertStats>> {
    ensure_indexes(store)?;
    let r = store.reader()?;
    let profiles = profile_cas(&r)?;
    let mut pending: HashMap<String, u64> = HashMap::new();
    r.visit(Table::Pending, "", |_, v| {
        let p: PendingRecord = serde_json::from_slice(v)?;
        if let Some(ca) = profiles.get(&p.profile) {
            *pending.entry(ca.clone()).or_default() += 1;
        }
        Ok(true)
    })?;
    let today = day(now);
    let mut out = Vec::new();
    for ca in r.cas()? {
        let name = ca.spec.name.to_string();
        if !scope.allows(&name) {
            continue;
        }
        let revoked = r
            .get::<i64>(Table::Counts, &revoked_key(&name))?
            .unwrap_or(0);
        let (mut active, mut expired, mut boundary) = (0i64, 0i64, 0i64);
        let mut soon = [0i64; 3];
        let days = format!("{name}\0day\0");
        r.visit(Table::Counts, &days, |k, v| {
            let Some(d) = k.strip_prefix(&days) else {
                return Ok(false);
            };
            let d: i64 = d.parse().map_err(|_| {
                Error::Store(crate::error::StoreError::BadRow {
                    what: "bad counter key",
                    key: k.to_owned(),
                })
            })?;
            let n: i64 = serde_json::from_slice(v)?;
            match d.cmp(&today) {
                std::cmp::Ordering::Less => expired += n,
                std::cmp::Ordering::Greater => {
                    active += n;
                    for (within, days) in soon.iter_mut().zip(EXPIRING_DAYS) {
                        if d <= today + days {
                            *within += n;
                        }
                    }
                }
                std::cmp::Ordering::Equal => boundary = n,
            }
            Ok(true)
        })?;
        if boundary != 0 {
            // Today's certificates: those before now have expired.
            let from = expiry_key(&name, today * 86400, "");
            let until = format!("{name}\0{}", exp(now));
            let mut gone = 0i64;
            r.visit(Table::ByExpiry, &from, |k, _| {
                if k >= until.as_str() {
                    return Ok(false);
                }
                gone += 1;
                Ok(true)
            })?;
            expired += gone;
            active += boundary - gone;
            for within in &mut soon {
                *within += boundary - gone;
            }
        }
        let [days7, days30, days90] = soon.map(|n| n.max(0) as u64);
        let [active, expired, revoked] = [active, expired, revoked].map(|n| n.max(0) as u64);
        out.push(CaCertStats {
            pending: pending.get(&name).copied().unwrap_or(0),
            total: active + expired + revoked,
            ca: name,
            active,
            expired,
            revoked,
            expiring: proto::admin::Expiring {
                days7,
                days30,
                days90,
            },
        });
    }
    Ok(out)
}

/// The UTC day (days since the epoch) of a time, as the counters use.
pub fn day_of(t: i64) -> i64 {
    day(t)
}

/// The windows of [`CaCertStats::expiring`], in days after today.
const EXPIRING_DAYS: [i64; 3] = [7, 30, 90];

/// Certificates a CA issued on each of the `days` UTC days up to today's (oldest first;
/// days without issuance are 0): `days` point reads of its counters, whatever the number
/// of certificates.
pub fn issued_per_day(store: &Store, ca: &str, days: usize, now: i64) -> Result<Vec<u64>> {
    ensure_indexes(store)?;
    let r = store.reader()?;
    let today = day(now);
    let first = today - days as i64 + 1;
    let mut out = vec![0u64; days];
    let prefix = format!("{ca}\0issued\0");
    r.visit(Table::Counts, &issued_key(ca, first), |k, v| {
        let Some(d) = k.strip_prefix(&prefix).and_then(|d| d.parse::<i64>().ok()) else {
            return Ok(false);
        };
        if d > today {
            return Ok(false);
        }
        let n: i64 = serde_json::from_slice(v)?;
        if let Some(slot) = out.get_mut((d - first) as usize) {
            *slot = n.max(0) as u64;
        }
        Ok(true)
    })?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Batch;
    use crate::store::indexes::{INDEX_META, index_issued, index_revoked, index_unrevoked};
    use crate::store::rows::CaRecord;

    const NOW: i64 = 1_700_000_000;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::create(&dir.path().join("s.redb")).unwrap();
        (dir, s)
    }

    /// A CA row: only the name matters to reports.
    fn add_ca(s: &Store, name: &str) {
        let spec = proto::model::CaSpec {
            name: proto::model::CaName::new(name).unwrap(),
            subject: proto::model::Subject::new(&format!("CN={name}")).unwrap(),
            key: hsm::KeySpec::EcP256,
            hash: hsm::HashAlg::Sha256,
            validity: None,
            ekus: vec![],
            path_len: None,
            tags: vec![],
        };
        let rec: CaRecord = serde_json::from_value(serde_json::json!({
            "spec": spec,
            "kind": "root",
            "parent": null,
            "status": "active",
            "key_id": "00",
            "cert": null,
            "csr": null,
            "created_at": 0,
            "proposal": "p",
        }))
        .unwrap_or_else(|e| panic!("CaRecord shape changed: {e}"));
        s.write(|tx| tx.put_ca(&rec)).unwrap();
    }

    fn rec(ca: &str, serial: &str, subject: &str, not_after: i64) -> CertRecord {
        CertRecord {
            ca: ca.into(),
            serial: serial.into(),
            profile: "p".into(),
            transaction_id: format!("tx-{serial}"),
            subject: subject.into(),
            sans: vec![San::Dns(format!("{serial}.example"))],
            not_before: not_after - 1000,
            not_after,
            issued_at: not_after - 1000,
            key_hash: "kh".into(),
            der: vec![1, 2, 3],
            revoked_at: None,
            renewed_from: None,
        }
    }

    fn issue(s: &Store, r: &CertRecord) {
        let mut b = Batch::default();
        b.put(Table::Certs, &cert_key(&r.ca, &r.serial), r).unwrap();
        index_issued(&mut b, r).unwrap();
        assert!(s.commit_batches(&[b]).unwrap()[0].is_ok());
    }

    /// What revoke_cert does to the tables.
    fn revoke(s: &Store, ca: &str, serial: &str) {
        s.write(|tx| {
            let key = cert_key(ca, serial);
            let mut r: CertRecord = tx.get(Table::Certs, &key)?.unwrap();
            r.revoked_at = Some(NOW - 5);
            tx.put(Table::Certs, &key, &r)?;
            tx.put(
                Table::Revoked,
                &key,
                &RevokedRow {
                    revoked_at: NOW - 5,
                    reason: Some("keyCompromise".into()),
                    not_after: r.not_after,
                },
            )?;
            index_revoked(tx, &r)
        })
        .unwrap();
    }

    fn all(s: &Store, q: &ListQuery) -> Vec<CertSummary> {
        let mut q = q.clone();
        let mut out = Vec::new();
        loop {
            let p = list(s, &q, &Scope::All, NOW).unwrap();
            out.extend(p.certs);
            match p.next {
                Some(n) => q.after = Some(n),
                None => return out,
            }
        }
    }

    fn serials(v: &[CertSummary]) -> Vec<String> {
        v.iter().map(|c| c.serial.clone().unwrap()).collect()
    }

    /// Two CAs, 30 certificates: a-00..a-19 (even: expired), b-00..b-09 (active).
    fn fixture() -> (tempfile::TempDir, Store) {
        let (d, s) = store();
        add_ca(&s, "a");
        add_ca(&s, "b");
        for i in 0..20 {
            let na = if i % 2 == 0 {
                NOW - 100 * (i + 1)
            } else {
                NOW + 100 * i
            };
            issue(
                &s,
                &rec("a", &format!("{i:02x}aa"), &format!("CN=Dev-{i:02}"), na),
            );
        }
        for i in 0..10 {
            issue(
                &s,
                &rec(
                    "b",
                    &format!("{i:02x}bb"),
                    &format!("CN=other-{i}"),
                    NOW + 86400 * 3,
                ),
            );
        }
        (d, s)
    }

    #[test]
    fn pages_cover_everything_once_and_stop_at_the_end() {
        let (_d, s) = fixture();
        let q = ListQuery {
            limit: Some(7),
            ..Default::default()
        };
        let got = all(&s, &q);
        assert_eq!(got.len(), 30);
        let mut v = serials(&got);
        v.dedup();
        assert_eq!(v.len(), 30);
        // Exactly at a boundary: no empty last page.
        let p = list(
            &s,
            &ListQuery {
                limit: Some(30),
                ..Default::default()
            },
            &Scope::All,
            NOW,
        )
        .unwrap();
        assert_eq!((p.certs.len(), p.next), (30, None));
        let p = list(
            &s,
            &ListQuery {
                limit: Some(29),
                ..Default::default()
            },
            &Scope::All,
            NOW,
        )
        .unwrap();
        assert!(p.next.is_some());
    }

    #[test]
    fn status_filters_use_the_expiry_split_and_skip_revoked() {
        let (_d, s) = fixture();
        revoke(&s, "a", "01aa"); // active one
        revoke(&s, "a", "02aa"); // expired one
        for ca in [Some("a".to_string()), None] {
            let q = |st| ListQuery {
                ca: ca.clone(),
                status: Some(st),
                limit: Some(3),
                ..Default::default()
            };
            let active = all(&s, &q(Status::Active));
            let expired = all(&s, &q(Status::Expired));
            let revoked = all(&s, &q(Status::Revoked));
            let extra = if ca.is_none() { 10 } else { 0 };
            assert_eq!(active.len(), 9 + extra, "{active:#?}");
            assert_eq!(expired.len(), 9);
            assert_eq!(serials(&revoked), ["01aa", "02aa"]);
            assert!(active.iter().all(|c| c.status == Status::Active));
            assert!(expired.iter().all(|c| c.status == Status::Expired));
            // Soonest expiry first.
            let na: Vec<i64> = active.iter().map(|c| c.not_after.unwrap()).collect();
            assert!(na.windows(2).all(|w| w[0] <= w[1]));
        }
        let st = stats(&s, &Scope::All, NOW).unwrap();
        assert_eq!(
            (st[0].active, st[0].expired, st[0].revoked, st[0].total),
            (9, 9, 2, 20)
        );
        assert_eq!((st[1].active, st[1].expired, st[1].total), (10, 0, 10));
        // Unhold puts it back.
        s.write(|tx| {
            let key = cert_key("a", "01aa");
            let mut r: CertRecord = tx.get(Table::Certs, &key)?.unwrap();
            r.revoked_at = None;
            tx.put(Table::Certs, &key, &r)?;
            tx.delete(Table::Revoked, &key)?;
            index_unrevoked(tx, &r)
        })
        .unwrap();
        assert_eq!(stats(&s, &Scope::All, NOW).unwrap()[0].active, 10);
        assert_eq!(stats(&s, &Scope::All, NOW).unwrap()[0].revoked, 1);
    }

    #[test]
    fn stats_split_today_at_now() {
        let (_d, s) = store();
        add_ca(&s, "a");
        let midnight = day(NOW) * 86400;
        issue(&s, &rec("a", "01", "CN=x", midnight + 1));
        issue(&s, &rec("a", "02", "CN=x", NOW - 1));
        issue(&s, &rec("a", "03", "CN=x", NOW));
        issue(&s, &rec("a", "04", "CN=x", midnight + 86399));
        issue(&s, &rec("a", "05", "CN=x", midnight - 1));
        let st = &stats(&s, &Scope::All, NOW).unwrap()[0];
        assert_eq!((st.active, st.expired), (2, 3));
    }

    #[test]
    fn expiring_windows_and_issuance_per_day() {
        let (_d, s) = store();
        add_ca(&s, "a");
        let d = 86_400;
        for (serial, not_after) in [
            ("01", NOW + 60),      // today, later: within 7
            ("02", NOW + 6 * d),   // within 7
            ("03", NOW + 20 * d),  // within 30
            ("04", NOW + 80 * d),  // within 90
            ("05", NOW + 200 * d), // later
            ("06", NOW - 5),       // expired
        ] {
            issue(&s, &rec("a", serial, "CN=x", not_after));
        }
        revoke(&s, "a", "02");
        let st = &stats(&s, &Scope::All, NOW).unwrap()[0];
        assert_eq!(st.active, 4);
        assert_eq!(
            (st.expiring.days7, st.expiring.days30, st.expiring.days90),
            (1, 2, 3)
        );
        // `rec` issues 1000 s before notAfter: on the day of NOW - 1000 and so on.
        let per_day = issued_per_day(&s, "a", 300, NOW + 250 * d).unwrap();
        assert_eq!(per_day.len(), 300);
        assert_eq!(
            per_day.iter().sum::<u64>(),
            6,
            "revocation does not uncount"
        );
        let first = day(NOW + 250 * d) - 299;
        assert_eq!(per_day[(day(NOW + 200 * d - 1000) - first) as usize], 1);
        assert!(
            issued_per_day(&s, "zz", 90, NOW)
                .unwrap()
                .iter()
                .all(|n| *n == 0)
        );
    }

    #[test]
    fn a_version_1_store_gets_its_issuance_counters_once() {
        let (_d, s) = fixture();
        let before = stats(&s, &Scope::All, NOW).unwrap();
        let total = |s: &Store| -> u64 {
            ["a", "b"]
                .iter()
                .flat_map(|ca| issued_per_day(s, ca, 4000, NOW + 3000 * 86_400).unwrap())
                .sum()
        };
        let n = total(&s);
        assert!(n > 0);
        // As version 1 left it: status counts, no issuance counters.
        let downgrade = |s: &Store| {
            s.write(|tx| {
                for (k, _) in tx.scan::<i64>(Table::Counts, "", None, usize::MAX)? {
                    if k.contains("\0issued\0") {
                        tx.delete(Table::Counts, &k)?;
                    }
                }
                tx.clear(Table::ByName)?;
                tx.put_meta(INDEX_META, &1u32)
            })
            .unwrap()
        };
        downgrade(&s);
        assert_eq!(total(&s), n);
        assert_eq!(stats(&s, &Scope::All, NOW).unwrap(), before);
        // The name index too.
        let q = ListQuery {
            name: Some("dev-1".into()),
            ..Default::default()
        };
        assert_eq!(all(&s, &q).len(), 10);
        // Issued by the new version before the backfill ran: still counted once.
        downgrade(&s);
        issue(&s, &rec("a", "7777", "CN=late", NOW + 10));
        assert_eq!(total(&s), n + 1);
    }

    #[test]
    fn csv_export_quotes_and_defuses_formulas() {
        let (_d, s) = store();
        add_ca(&s, "a");
        issue(&s, &rec("a", "01", "=HYPERLINK(\"http://x\")", NOW + 10));
        issue(&s, &rec("a", "02", "CN=plain, O=\"q\"", NOW + 10));
        let csv =
            String::from_utf8(export_csv(&s, &ListQuery::default(), &Scope::All, NOW).unwrap())
                .unwrap();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines.len(), 4, "header, two rows, empty tail: {csv}");
        assert!(lines[0].starts_with("\"ca\",\"serial\""));
        assert!(lines[1].contains("\"'=HYPERLINK(\"\"http://x\"\")\""));
        assert!(lines[2].contains("\"CN=plain, O=\"\"q\"\"\""));
        // Out of scope: nothing but the header.
        let none = export_csv(
            &s,
            &ListQuery::default(),
            &Scope::Only(Default::default()),
            NOW,
        )
        .unwrap();
        assert_eq!(none.iter().filter(|b| **b == b'\n').count(), 1);
    }

    #[test]
    fn names_are_found_by_prefix_through_the_index_once_each() {
        let (_d, s) = store();
        add_ca(&s, "a");
        add_ca(&s, "b");
        let named = |ca: &str, serial: &str, subject: &str, sans: Vec<San>| {
            let mut r = rec(ca, serial, subject, NOW + 1000);
            r.sans = sans;
            issue(&s, &r);
        };
        named(
            "a",
            "01",
            "CN=Laptop-41,O=Fleet",
            vec![San::Dns("laptop-41.corp".into())],
        );
        named("a", "02", "CN=laptop-410", vec![]);
        named(
            "b",
            "03",
            "O=Fleet",
            vec![San::Email("Laptop-4@corp.example".into())],
        );
        named(
            "a",
            "04",
            "CN=phone-1",
            vec![San::Upn("laptop-41@corp".into())],
        );
        let find = |name: &str, ca: Option<&str>, limit: u32| {
            let q = ListQuery {
                name: Some(name.into()),
                ca: ca.map(str::to_owned),
                limit: Some(limit),
                ..Default::default()
            };
            let mut v = serials(&all(&s, &q));
            v.sort();
            v
        };
        // CN, DNS, e-mail and UPN; case-insensitive; each certificate once, whatever the
        // page size (01 has two names under the prefix).
        for limit in [1, 2, 100] {
            assert_eq!(find("LAPTOP-4", None, limit), ["01", "02", "03", "04"]);
        }
        assert_eq!(find("laptop-41", None, 1), ["01", "02", "04"]);
        assert_eq!(find("laptop-41.", None, 10), ["01"]);
        assert_eq!(find("laptop-4", Some("b"), 10), ["03"]);
        assert!(find("o=fleet", None, 10).is_empty(), "only CNs and SANs");
        assert!(find("zzz", None, 10).is_empty());
        // With a status: revoked ones are still found by name.
        revoke(&s, "a", "02");
        let q = ListQuery {
            name: Some("laptop-41".into()),
            status: Some(Status::Revoked),
            ..Default::default()
        };
        assert_eq!(serials(&all(&s, &q)), ["02"]);
        for bad in ["", &"x".repeat(MAX_SEARCH + 1), "a\0b"] {
            let q = ListQuery {
                name: Some(bad.to_owned()),
                ..Default::default()
            };
            assert!(list(&s, &q, &Scope::All, NOW).is_err(), "{bad:?}");
        }
        let q = ListQuery {
            name: Some("x".into()),
            status: Some(Status::Pending),
            ..Default::default()
        };
        assert!(list(&s, &q, &Scope::All, NOW).is_err());
    }

    #[test]
    fn expiry_ranges_narrow_the_index_walk_and_filter_scans() {
        let (_d, s) = fixture();
        // Fixture: CA a, serial i (hex) + "aa", notAfter NOW - 100(i+1) for even i, NOW + 100 i
        // for odd i; CA b: ten more.
        let range = Expires {
            after: Some(NOW + 300),
            before: Some(NOW + 1000),
        };
        let active = |ca: Option<&str>, status: Option<Status>| {
            let q = ListQuery {
                ca: ca.map(str::to_owned),
                status,
                limit: Some(2),
                expires: range,
                ..Default::default()
            };
            let got = all(&s, &q);
            assert!(
                got.iter()
                    .all(|c| c.not_after.is_some_and(|t| range.contains(t)))
            );
            serials(&got)
        };
        // Odd i with 300 <= 100 i < 1000: 3, 5, 7, 9.
        assert_eq!(
            active(Some("a"), Some(Status::Active)),
            ["03aa", "05aa", "07aa", "09aa"]
        );
        let everywhere = active(None, Some(Status::Active));
        assert!(everywhere.len() >= 4, "{everywhere:?}");
        // Without a status the rows of `certs` are filtered: the same certificates.
        let mut scanned = active(Some("a"), None);
        scanned.sort();
        assert_eq!(scanned, ["03aa", "05aa", "07aa", "09aa"]);
        // Expired within a range: even i with NOW - 100(i+1) >= NOW - 500: 0, 2, 4.
        let q = ListQuery {
            ca: Some("a".into()),
            status: Some(Status::Expired),
            expires: Expires {
                after: Some(NOW - 500),
                before: None,
            },
            ..Default::default()
        };
        let mut expired = serials(&all(&s, &q));
        expired.sort();
        assert_eq!(expired, ["00aa", "02aa", "04aa"]);
        // Pending requests have no notAfter: none in a range.
        let q = ListQuery {
            status: Some(Status::Pending),
            expires: range,
            ..Default::default()
        };
        assert!(all(&s, &q).is_empty());
    }

    #[test]
    fn new_rows_do_not_shift_pages() {
        let (_d, s) = fixture();
        let mut q = ListQuery {
            limit: Some(10),
            ..Default::default()
        };
        let first = list(&s, &q, &Scope::All, NOW).unwrap();
        let before: Vec<String> = serials(&all(&s, &q));
        // Rows before and after the cursor appear meanwhile.
        issue(&s, &rec("a", "0000", "CN=new", NOW + 5));
        issue(&s, &rec("b", "ffff", "CN=new", NOW + 5));
        q.after = first.next;
        let mut seen = serials(&first.certs);
        seen.extend(serials(&all(&s, &q)));
        let mut uniq = seen.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), seen.len(), "duplicates");
        assert!(before.iter().all(|x| seen.contains(x)), "missing rows");
        assert!(seen.contains(&"ffff".to_string()) && !seen.contains(&"0000".to_string()));
    }

    #[test]
    fn search_is_case_insensitive_bounded_and_continues() {
        let (_d, s) = fixture();
        let q = |t: &str| ListQuery {
            search: Some(t.into()),
            ..Default::default()
        };
        assert_eq!(serials(&all(&s, &q("dev-1"))).len(), 10);
        assert_eq!(serials(&all(&s, &q("05:AA"))), ["05aa"]);
        assert_eq!(serials(&all(&s, &q("DNS:03BB.EXAMPLE"))), ["03bb"]);
        let mut q2 = q("other");
        q2.status = Some(Status::Active);
        q2.ca = Some("b".into());
        assert_eq!(all(&s, &q2).len(), 10);
        assert!(all(&s, &q("nothing")).is_empty());
    }

    #[test]
    fn a_search_stops_at_its_budget_and_its_cursor_continues() {
        let (_d, s) = store();
        add_ca(&s, "a");
        let batches: Vec<Batch> = (0..SCAN_BUDGET + 5)
            .map(|i| {
                let subject = if i >= SCAN_BUDGET {
                    "CN=Needle"
                } else {
                    "CN=hay"
                };
                let r = rec("a", &format!("{i:06x}"), subject, NOW + 10);
                let mut b = Batch::default();
                b.put(Table::Certs, &cert_key(&r.ca, &r.serial), &r)
                    .unwrap();
                index_issued(&mut b, &r).unwrap();
                b
            })
            .collect();
        assert!(
            s.commit_batches(&batches)
                .unwrap()
                .iter()
                .all(|r| r.is_ok())
        );
        let mut q = ListQuery {
            search: Some("needle".into()),
            limit: Some(3),
            ..Default::default()
        };
        let p = list(&s, &q, &Scope::All, NOW).unwrap();
        assert!(
            p.certs.is_empty() && p.next.is_some(),
            "the budget ends the first request"
        );
        q.after = p.next;
        let p = list(&s, &q, &Scope::All, NOW).unwrap();
        assert_eq!(p.certs.len(), 3);
        q.after = p.next;
        let p = list(&s, &q, &Scope::All, NOW).unwrap();
        assert_eq!((p.certs.len(), p.next), (2, None));
        assert_eq!(
            stats(&s, &Scope::All, NOW).unwrap()[0].active,
            SCAN_BUDGET as u64 + 5
        );
    }

    #[test]
    fn bad_cursors_and_limits_are_refused() {
        let (_d, s) = fixture();
        let page = list(
            &s,
            &ListQuery {
                limit: Some(2),
                ..Default::default()
            },
            &Scope::All,
            NOW,
        )
        .unwrap();
        let wrong = ListQuery {
            status: Some(Status::Revoked),
            after: page.next.clone(),
            ..Default::default()
        };
        assert!(matches!(
            list(&s, &wrong, &Scope::All, NOW),
            Err(Error::Invalid(_))
        ));
        let garbage = ListQuery {
            after: Some("!!".into()),
            ..Default::default()
        };
        assert!(matches!(
            list(&s, &garbage, &Scope::All, NOW),
            Err(Error::Invalid(_))
        ));
        for l in [0, 1001] {
            let q = ListQuery {
                limit: Some(l),
                ..Default::default()
            };
            assert!(matches!(
                list(&s, &q, &Scope::All, NOW),
                Err(Error::Invalid(_))
            ));
        }
        let q = ListQuery {
            ca: Some("zz".into()),
            ..Default::default()
        };
        assert!(matches!(
            list(&s, &q, &Scope::All, NOW),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn show_finds_by_serial_and_refuses_ambiguity() {
        let (_d, s) = fixture();
        let d = show(&s, None, "05:AA", &Scope::All, NOW).unwrap();
        assert_eq!((d.ca.as_str(), d.status), ("a", Status::Active));
        assert!(matches!(
            show(&s, None, "abcdef", &Scope::All, NOW),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            show(&s, Some("b"), "05aa", &Scope::All, NOW),
            Err(Error::NotFound(_))
        ));
        issue(&s, &rec("b", "05aa", "CN=twin", NOW + 5));
        assert!(matches!(
            show(&s, None, "05aa", &Scope::All, NOW),
            Err(Error::Conflict(_))
        ));
        assert_eq!(
            show(&s, Some("b"), "05aa", &Scope::All, NOW)
                .unwrap()
                .subject,
            "CN=twin"
        );
        revoke(&s, "a", "05aa");
        let d = show(&s, Some("a"), "05aa", &Scope::All, NOW).unwrap();
        assert_eq!(d.status, Status::Revoked);
        assert_eq!(d.revocation_reason.as_deref(), Some("keyCompromise"));
    }

    #[test]
    fn an_unindexed_store_is_indexed_on_first_use() {
        let (_d, s) = fixture();
        revoke(&s, "a", "01aa");
        // As an older version left it: certificates only.
        s.write(|tx| {
            tx.clear(Table::ByExpiry)?;
            tx.clear(Table::ByExpiryAll)?;
            tx.clear(Table::Counts)?;
            tx.put_meta(INDEX_META, &0u32)
        })
        .unwrap();
        let st = stats(&s, &Scope::All, NOW).unwrap();
        assert_eq!((st[0].active, st[0].expired, st[0].revoked), (9, 10, 1));
        let q = ListQuery {
            status: Some(Status::Active),
            ..Default::default()
        };
        assert_eq!(all(&s, &q).len(), 19);
    }
}
