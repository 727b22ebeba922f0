//! What the store keeps beside its rows, in the same write transaction: the report
//! indexes (`by_expiry`, `by_expiry_all`, `counts`; see `report`) and the CRL entries of
//! revoked rows. Writers call these; nothing else maintains them.

use std::collections::BTreeMap;

use crate::store::rows::{CertHead, CertRecord, RevokedRow};
use crate::store::{Batch, Store, Table, Tx};
use crate::{Error, Result};

/// Meta key holding the version of the report indexes this store has.
pub(crate) const INDEX_META: &str = "report-index";

/// 1: expiry indexes and per-day counts of notAfter; 2: also certificates issued per day
/// (`CA\0issued\0{day:08}`, never decremented: the console's issuance chart) and the name
/// index `by_name`.
const INDEX_VERSION: u32 = 2;

pub fn exp(t: i64) -> String {
    format!("{:020}", t.max(0))
}

/// `by_expiry` key.
pub fn expiry_key(ca: &str, not_after: i64, serial: &str) -> String {
    format!("{ca}\0{}\0{serial}", exp(not_after))
}

/// `by_expiry_all` key.
pub fn expiry_all_key(ca: &str, not_after: i64, serial: &str) -> String {
    format!("{}\0{ca}\0{serial}", exp(not_after))
}

pub fn day(t: i64) -> i64 {
    t.max(0) / 86400
}

pub fn day_key(ca: &str, day: i64) -> String {
    format!("{ca}\0day\0{day:08}")
}

/// Counter of the certificates a CA issued on `day` (days since the epoch).
pub fn issued_key(ca: &str, day: i64) -> String {
    format!("{ca}\0issued\0{day:08}")
}

/// Whether a `counts` key is an issuance counter (not a status count).
fn is_issued_key(key: &str) -> bool {
    key.contains("\0issued\0")
}

/// Longest name indexed (a longer CN or SAN is indexed by its first this many bytes).
const MAX_NAME: usize = 200;

/// The names a certificate is found by (`by_name`): each CN of its subject and each SAN
/// value, lowercased, without NULs, cut at [`MAX_NAME`] bytes; each once, sorted.
pub fn names(subject: &str, sans: &[proto::model::San]) -> Vec<String> {
    use std::str::FromStr;
    let mut out: Vec<String> = Vec::new();
    if let Ok(name) = x509_cert::name::Name::from_str(subject) {
        for atv in name.iter() {
            if atv.oid == const_oid::db::rfc4519::CN
                && let Some(v) = proto::directory_string(&atv.value)
            {
                out.push(v);
            }
        }
    }
    for s in sans {
        out.push(s.value().to_owned());
    }
    let mut out: Vec<String> = out
        .into_iter()
        .map(|n| {
            let mut n = n.to_lowercase().replace('\0', "");
            if n.len() > MAX_NAME {
                let mut cut = MAX_NAME;
                while !n.is_char_boundary(cut) {
                    cut -= 1;
                }
                n.truncate(cut);
            }
            n
        })
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `by_name` key.
pub fn name_key(name: &str, ca: &str, serial: &str) -> String {
    format!("{name}\0{ca}\0{serial}")
}

pub fn revoked_key(ca: &str) -> String {
    format!("{ca}\0revoked")
}

pub fn cert_key(ca: &str, serial: &str) -> String {
    format!("{ca}\0{serial}")
}

/// Add a new certificate's index rows and counts to its issuance batch.
pub fn index_issued(batch: &mut Batch, rec: &CertRecord) -> Result<()> {
    batch.put(
        Table::ByExpiry,
        &expiry_key(&rec.ca, rec.not_after, &rec.serial),
        &(),
    )?;
    batch.put(
        Table::ByExpiryAll,
        &expiry_all_key(&rec.ca, rec.not_after, &rec.serial),
        &(),
    )?;
    batch.count(Table::Counts, &day_key(&rec.ca, day(rec.not_after)), 1);
    batch.count(Table::Counts, &issued_key(&rec.ca, day(rec.issued_at)), 1);
    for name in names(&rec.subject, &rec.sans) {
        batch.put(Table::ByName, &name_key(&name, &rec.ca, &rec.serial), &())?;
    }
    Ok(())
}

/// A certificate was revoked (it was not before): out of the expiry indexes, counted revoked.
pub fn index_revoked(tx: &mut Tx, rec: &CertRecord) -> Result<()> {
    tx.delete(
        Table::ByExpiry,
        &expiry_key(&rec.ca, rec.not_after, &rec.serial),
    )?;
    tx.delete(
        Table::ByExpiryAll,
        &expiry_all_key(&rec.ca, rec.not_after, &rec.serial),
    )?;
    tx.add(Table::Counts, &day_key(&rec.ca, day(rec.not_after)), -1)?;
    tx.add(Table::Counts, &revoked_key(&rec.ca), 1)?;
    Ok(())
}

/// A certificateHold was lifted: back in the expiry indexes.
pub fn index_unrevoked(tx: &mut Tx, rec: &CertRecord) -> Result<()> {
    tx.put(
        Table::ByExpiry,
        &expiry_key(&rec.ca, rec.not_after, &rec.serial),
        &(),
    )?;
    tx.put(
        Table::ByExpiryAll,
        &expiry_all_key(&rec.ca, rec.not_after, &rec.serial),
        &(),
    )?;
    tx.add(Table::Counts, &day_key(&rec.ca, day(rec.not_after)), 1)?;
    tx.add(Table::Counts, &revoked_key(&rec.ca), -1)?;
    Ok(())
}

/// A new store is indexed from its start: its first report writes nothing (it may be asked
/// for while its disk is full).
pub(super) fn mark_indexed(tx: &mut Tx) -> Result<()> {
    tx.put_meta(INDEX_META, &INDEX_VERSION)
}

/// Build the indexes of a store written before they existed, or the counters a newer
/// version added (once, in one write transaction; issuances wait for it). A no-op on an
/// indexed store.
pub fn ensure_indexes(store: &Store) -> Result<()> {
    if store.meta::<u32>(INDEX_META)? == Some(INDEX_VERSION) {
        return Ok(());
    }
    store.write(|tx| {
        let version = tx.meta::<u32>(INDEX_META)?;
        if version == Some(INDEX_VERSION) {
            return Ok(());
        }
        // Every certificate issued with the indexes in place counts once (in a day
        // bucket or as revoked): if they all do, the store was indexed from its start.
        let (counted, issued) = tx
            .scan::<i64>(Table::Counts, "", None, usize::MAX)?
            .into_iter()
            .fold((0i64, 0i64), |(c, i), (k, n)| {
                if is_issued_key(&k) {
                    (c, i + n)
                } else {
                    (c + n, i)
                }
            });
        let certs = tx.len(Table::Certs)? as i64;
        let indexed = version.is_some_and(|v| v >= 1) || counted == certs;
        let complete = indexed && issued == certs;
        if complete {
            return tx.put_meta(INDEX_META, &INDEX_VERSION);
        }
        if !indexed {
            tx.clear(Table::ByExpiry)?;
            tx.clear(Table::ByExpiryAll)?;
            tx.clear(Table::Counts)?;
        }
        tx.clear(Table::ByName)?;
        // Rebuild what is missing from every certificate's head: the issuance counters and
        // the name index always (rewritten whole, so rows written since the upgrade are
        // not counted twice), the status indexes only for a store that never had them.
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        let mut after: Option<String> = None;
        let mut n = 0usize;
        loop {
            let page = tx.scan::<CertHead>(Table::Certs, "", after.as_deref(), 10_000)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, c) in page {
                n += 1;
                *counts
                    .entry(issued_key(&c.ca, day(c.issued_at.unwrap_or(c.not_before))))
                    .or_default() += 1;
                for name in names(&c.subject, &c.sans) {
                    tx.put(Table::ByName, &name_key(&name, &c.ca, &c.serial), &())?;
                }
                if indexed {
                    continue;
                }
                if c.revoked_at.is_some() {
                    *counts.entry(revoked_key(&c.ca)).or_default() += 1;
                } else {
                    tx.put(
                        Table::ByExpiry,
                        &expiry_key(&c.ca, c.not_after, &c.serial),
                        &(),
                    )?;
                    tx.put(
                        Table::ByExpiryAll,
                        &expiry_all_key(&c.ca, c.not_after, &c.serial),
                        &(),
                    )?;
                    *counts.entry(day_key(&c.ca, day(c.not_after))).or_default() += 1;
                }
            }
        }
        for (k, v) in counts {
            tx.put(Table::Counts, &k, &v)?;
        }
        tx.put_meta(INDEX_META, &INDEX_VERSION)?;
        tracing::info!(certificates = n, rebuilt = !indexed, "report indexes built");
        Ok(())
    })
}

/// The [`Table::CrlEntries`] value of a revoked row keyed `CA\0SERIAL-HEX`: notAfter
/// (8 bytes, big-endian), then the DER CRL entry.
pub fn crl_entry(key: &str, row: &RevokedRow) -> Result<Vec<u8>> {
    let hex_serial = key.split_once('\0').map(|(_, s)| s).ok_or_else(|| {
        Error::Store(crate::error::StoreError::BadRow {
            what: "revoked row key",
            key: key.to_owned(),
        })
    })?;
    let mut serial = [0u8; 32];
    let serial = decode_hex(hex_serial, &mut serial).ok_or_else(|| {
        Error::Store(crate::error::StoreError::BadRow {
            what: "revoked row",
            key: hex_serial.to_owned(),
        })
    })?;
    let reason = row.reason.as_deref().and_then(crl::Reason::from_rfc_name);
    let der = crl::encode_entry(serial, row.revoked_at, reason)
        .map_err(|e| Error::Encoding(crate::error::EncodeError::Crl(e)))?;
    let mut value = row.not_after.to_be_bytes().to_vec();
    value.extend_from_slice(&der);
    Ok(value)
}

/// Record a revocation (`CA\0SERIAL-HEX`) and its CRL entry, in the caller's transaction.
pub fn put_revoked(tx: &mut crate::store::Tx, key: &str, row: &RevokedRow) -> Result<()> {
    tx.put(Table::Revoked, key, row)?;
    tx.put_bytes(Table::CrlEntries, key, &crl_entry(key, row)?)
}

/// The same into a batch (bulk loads: the benchmarks).
pub fn put_revoked_batch(
    batch: &mut crate::store::Batch,
    key: &str,
    row: &RevokedRow,
) -> Result<()> {
    batch.put(Table::Revoked, key, row)?;
    batch.put_bytes(Table::CrlEntries, key, crl_entry(key, row)?);
    Ok(())
}

/// Remove a revocation and its CRL entry (a lifted hold), in the caller's transaction.
pub fn delete_revoked(tx: &mut crate::store::Tx, key: &str) -> Result<()> {
    tx.delete(Table::Revoked, key)?;
    tx.delete(Table::CrlEntries, key)?;
    Ok(())
}

/// Meta key: the CRL entries were built from the revoked rows (stores of versions before
/// `crl_entries` existed get them at their first start).
const CRL_ENTRIES_BUILT: &str = "crl-entries-built";

/// Build [`Table::CrlEntries`] from [`Table::Revoked`] once, for a store written before the
/// table existed. Runs at start-up, before anything is served.
pub fn ensure_crl_entries(store: &crate::store::Store) -> Result<()> {
    if store.meta::<bool>(CRL_ENTRIES_BUILT)?.unwrap_or(false) {
        return Ok(());
    }
    let mut rows = Vec::new();
    store.reader()?.visit(Table::Revoked, "", |key, value| {
        let row: RevokedRow = serde_json::from_slice(value)?;
        rows.push((key.to_owned(), crl_entry(key, &row)?));
        Ok(true)
    })?;
    let n = rows.len();
    store.write(|tx| {
        tx.clear(Table::CrlEntries)?;
        for (key, value) in &rows {
            tx.put_bytes(Table::CrlEntries, key, value)?;
        }
        tx.put_meta(CRL_ENTRIES_BUILT, &true)
    })?;
    if n > 0 {
        tracing::info!(
            entries = n,
            "CRL entries built for the revoked certificates"
        );
    }
    Ok(())
}

/// Decode a stored serial (even-length lowercase or uppercase hex, at most `out.len()`
/// bytes) into `out`.
pub fn decode_hex<'a>(hex: &str, out: &'a mut [u8]) -> Option<&'a [u8]> {
    /// Nibble value of each byte; 0xff: not a hex digit.
    const NIBBLE: [u8; 256] = {
        let mut t = [0xffu8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            t[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(2) || bytes.len() / 2 > out.len() {
        return None;
    }
    let out = &mut out[..bytes.len() / 2];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let (hi, lo) = (NIBBLE[pair[0] as usize], NIBBLE[pair[1] as usize]);
        bad |= (hi | lo) & 0xf0;
        *o = hi << 4 | (lo & 0x0f);
    }
    (bad == 0).then_some(&*out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stored_serials_decode() {
        let mut buf = [0u8; 4];
        assert_eq!(decode_hex("00ff7A", &mut buf), Some(&[0, 0xff, 0x7a][..]));
        assert_eq!(decode_hex("", &mut buf), Some(&[][..]));
        assert_eq!(decode_hex("0", &mut buf), None);
        assert_eq!(decode_hex("0g", &mut buf), None);
        assert_eq!(decode_hex("0102030405", &mut buf), None);
    }
}
