//! `store-bench`: the report indexes at scale, without an HSM.
//!
//! Creates a store in a temporary directory, inserts `--n` synthetic certificates (random
//! serials, 1.1 kB of random bytes standing in for the DER) spread over `--cas` CAs, each
//! with its transaction row and its index rows, in the batches `issue_leaf` builds,
//! `--group` batches per write transaction; revokes `--revoked-per-mille` of them the way
//! `revoke_cert` does; then times report queries (median of `--runs`): status-filtered
//! pages of 100 (first page, and a page deep in after walking half of the listing with
//! pages of 1000), a search request that spends its whole scan budget, `cert show` and
//! `cert stats`. Prints the bytes on disk per certificate (and after redb's compaction
//! with `--compact`); `--rebuild` also times indexing the store as if an older version
//! had written it. `--audit-cost R` also times issuance in group commits of 16 with and
//! without its audit entry (R alternating rounds).
//!
//! With `--into STORE --ca-names A,B`, the certificates go into an existing store (a
//! stopped signer's `store.redb`, whose CAs A and B exist) and nothing is timed: `cargo
//! xtask bench console` fills a real appliance this way.
//!
//! ```text
//! cargo build --release -p daemon --bin store-bench
//! target/release/store-bench --n 1000000
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use daemon::error::StoreError;
use daemon::report::{self, ListQuery, Status};
use daemon::store::rows::RevokedRow;
use daemon::store::rows::{CertRecord, TransactionRecord};
use daemon::store::{Batch, Store, Table};
use proto::model::San;

const DAY: i64 = 86400;

#[derive(Debug)]
struct Options {
    n: usize,
    cas: usize,
    group: usize,
    revoked_per_mille: usize,
    runs: usize,
    dir: Option<PathBuf>,
    keep: bool,
    rebuild: bool,
    compact: bool,
    audit_rounds: usize,
    /// Fill this existing store instead of a new one, and stop after inserting.
    into: Option<PathBuf>,
    /// The CAs of `into` to spread the certificates over.
    ca_names: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: store-bench [--n N (1000000)] [--cas C (4)] [--group G (10000)] \
         [--revoked-per-mille R (10)] [--runs K (5)] [--dir DIR] [--keep] [--rebuild] [--compact] [--audit-cost ROUNDS] [--into STORE --ca-names A,B]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        n: 1_000_000,
        cas: 4,
        group: 10_000,
        revoked_per_mille: 10,
        runs: 5,
        dir: None,
        keep: false,
        rebuild: false,
        compact: false,
        audit_rounds: 0,
        into: None,
        ca_names: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || -> usize {
            args.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--n" => o.n = num(),
            "--cas" => o.cas = num().max(1),
            "--group" => o.group = num().max(1),
            "--revoked-per-mille" => o.revoked_per_mille = num().min(1000),
            "--runs" => o.runs = num().max(1),
            "--dir" => o.dir = Some(args.next().unwrap_or_else(|| usage()).into()),
            "--keep" => o.keep = true,
            "--rebuild" => o.rebuild = true,
            "--compact" => o.compact = true,
            "--audit-cost" => o.audit_rounds = num(),
            "--into" => o.into = Some(args.next().unwrap_or_else(|| usage()).into()),
            "--ca-names" => {
                o.ca_names = args
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .map(str::to_owned)
                    .collect();
                o.cas = o.ca_names.len();
            }
            _ => usage(),
        }
    }
    // --into and --ca-names go together.
    if o.into.is_some() == o.ca_names.is_empty() {
        usage()
    }
    o
}

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("getrandom");
    b
}

fn ca_name(i: usize) -> String {
    format!("issuing-{i}")
}

/// A CA row (reports only need its name).
fn add_ca(store: &Store, name: &str) -> daemon::Result<()> {
    let rec: daemon::store::rows::CaRecord = serde_json::from_value(serde_json::json!({
        "spec": {
            "name": name, "subject": format!("CN={name}"), "key": "ec-p256", "hash": "sha256",
            "validity": null, "ekus": ["client-auth"], "path_len": 0
        },
        "kind": "issuing", "parent": null, "status": "active", "key_id": "00",
        "cert": null, "csr": null, "created_at": 0, "proposal": "bench",
    }))?;
    store.write(|tx| tx.put_ca(&rec))
}

/// Certificate `i`: issued uniformly over the last 18 months for one year, so about a
/// third have expired.
fn record(i: usize, o: &Options, now: i64, rnd: &[u8]) -> CertRecord {
    let mut serial = rnd[..20].to_vec();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    let issued_at = now
        - (u64::from_le_bytes(rnd[20..28].try_into().unwrap_or_default()) % (548 * DAY as u64))
            as i64;
    CertRecord {
        ca: o
            .ca_names
            .get(i % o.cas)
            .cloned()
            .unwrap_or_else(|| ca_name(i % o.cas)),
        serial: hex::encode(&serial),
        profile: "devices".into(),
        transaction_id: hex::encode(&rnd[28..60]),
        subject: format!("CN=device-{i:07},OU=Fleet,O=Bench Corp,C=US"),
        sans: vec![San::Dns(format!("device-{i:07}.fleet.bench.example"))],
        not_before: issued_at,
        not_after: issued_at + 365 * DAY,
        issued_at,
        key_hash: hex::encode(&rnd[60..92]),
        der: rnd[92..92 + 1100].to_vec(),
        revoked_at: None,
        renewed_from: None,
    }
}

/// The batch `issue_leaf` commits for a certificate.
fn batch(rec: &CertRecord) -> daemon::Result<Batch> {
    let ck = format!("{}\0{}", rec.ca, rec.serial);
    let mut b = Batch {
        absent: vec![(Table::Certs, ck.clone())],
        ..Default::default()
    };
    b.put(Table::Certs, &ck, rec)?;
    daemon::store::indexes::index_issued(&mut b, rec)?;
    b.put(
        Table::Transactions,
        &format!("devices\0{}", rec.transaction_id),
        &TransactionRecord {
            key_hash: rec.key_hash.clone(),
            cert: Some(ck),
            pending: false,
            rejected: None,
        },
    )?;
    Ok(b)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Time one list request (median of `runs`); the page it returns.
fn time_list(store: &Store, q: &ListQuery, now: i64, runs: usize) -> (Duration, report::Page) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let p = report::list(store, q, &report::Scope::All, now).expect("list");
        times.push(t.elapsed());
        last = Some(p);
    }
    (median(times), last.expect("one run"))
}

/// Walk about `rows` rows of a listing with pages of up to 1000; the cursor there and how
/// long it took.
fn walk(store: &Store, q: &ListQuery, now: i64, rows: usize) -> (Option<String>, usize, Duration) {
    let mut q = ListQuery {
        limit: Some(rows.clamp(1, 1000) as u32),
        ..q.clone()
    };
    let t = Instant::now();
    let mut seen = 0;
    while seen < rows {
        let p = report::list(store, &q, &report::Scope::All, now).expect("list");
        seen += p.certs.len();
        if p.next.is_none() {
            break;
        }
        q.after = p.next;
    }
    (q.after, seen, t.elapsed())
}

fn main() -> daemon::Result<()> {
    let o = options();
    let dir = o.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("store-bench-{}", std::process::id()))
    });
    let own_dir = o.dir.is_none();
    let (path, store) = match &o.into {
        Some(path) => (path.clone(), Store::open(path)?),
        None => {
            std::fs::create_dir_all(&dir).map_err(|e| file_err("the bench directory", e))?;
            let path = dir.join("bench.redb");
            let _ = std::fs::remove_file(&path);
            (path.clone(), Store::create(&path)?)
        }
    };
    daemon::store::indexes::ensure_indexes(&store)?;
    if o.into.is_none() {
        for i in 0..o.cas {
            add_ca(&store, &ca_name(i))?;
        }
    }
    let now = daemon::now();
    println!(
        "store-bench: {} certificates over {} CAs, {} per write transaction, {}‰ revoked, in {}",
        o.n,
        o.cas,
        o.group,
        o.revoked_per_mille,
        path.display()
    );

    // Insert.
    let t = Instant::now();
    let mut serials = Vec::with_capacity(o.n);
    let mut i = 0;
    while i < o.n {
        let k = o.group.min(o.n - i);
        let rnd = random(k * 1200);
        let mut batches = Vec::with_capacity(k);
        for j in 0..k {
            let rec = record(i + j, &o, now, &rnd[j * 1200..(j + 1) * 1200]);
            batches.push(batch(&rec)?);
            serials.push((rec.ca, rec.serial));
        }
        for r in store.commit_batches(&batches)? {
            r?;
        }
        i += k;
        if i % (o.group * 20).max(100_000) < o.group {
            eprintln!(
                "  {i} inserted ({:.0}/s)",
                i as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    let insert = t.elapsed();
    println!(
        "insert:  {} certificates in {:.1} s ({:.0}/s, with index rows, durable commits)",
        o.n,
        insert.as_secs_f64(),
        o.n as f64 / insert.as_secs_f64()
    );

    if o.audit_rounds > 0 {
        audit_cost(&store, &o, now, o.audit_rounds)?;
    }

    // Revoke (what revoke_cert writes), 1000 per transaction.
    // Spread over the CAs (a plain step would pick one CA when it divides by their number).
    let chosen: Vec<&(String, String)> = serials
        .iter()
        .enumerate()
        .filter(|(i, _)| i.wrapping_mul(2_654_435_761) % 1000 < o.revoked_per_mille)
        .map(|(_, s)| s)
        .collect();
    let t = Instant::now();
    for chunk in chosen.chunks(1000) {
        store.write(|tx| {
            for (ca, serial) in chunk {
                let key = format!("{ca}\0{serial}");
                let mut rec: CertRecord = tx.get(Table::Certs, &key)?.ok_or_else(|| {
                    daemon::Error::Store(StoreError::BadRow {
                        what: "no certificate row",
                        key: key.clone(),
                    })
                })?;
                rec.revoked_at = Some(now - 3600);
                tx.put(Table::Certs, &key, &rec)?;
                daemon::store::indexes::index_revoked(tx, &rec)?;
                daemon::store::indexes::put_revoked(
                    tx,
                    &key,
                    &RevokedRow {
                        revoked_at: now - 3600,
                        reason: Some("keyCompromise".into()),
                        not_after: rec.not_after,
                    },
                )?;
            }
            Ok(())
        })?;
    }
    println!(
        "revoke:  {} certificates in {:.1} s",
        chosen.len(),
        t.elapsed().as_secs_f64()
    );
    drop(store);
    if o.into.is_some() {
        return Ok(());
    }
    let size = std::fs::metadata(&path)
        .map_err(|e| file_err("the store file", e))?
        .len();
    let per = |b: u64| b as f64 / o.n.max(1) as f64;
    println!(
        "disk:    {:.2} GB file, {:.0} bytes per certificate (certificate, transaction and index rows)",
        size as f64 / 1e9,
        per(size)
    );
    {
        let store_err = |e: redb::Error| daemon::Error::Store(StoreError::Db(e));
        let mut db = redb::Database::open(&path).map_err(|e| store_err(e.into()))?;
        let st = db
            .begin_write()
            .map_err(|e| store_err(e.into()))?
            .stats()
            .map_err(|e| store_err(e.into()))?;
        println!(
            "         of which {:.0} B/cert stored in leaves, {:.0} B/cert metadata, {:.0} B/cert fragmented (free in pages)",
            per(st.stored_bytes()),
            per(st.metadata_bytes()),
            per(st.fragmented_bytes())
        );
        if o.compact {
            let t = Instant::now();
            while db.compact().map_err(|e| store_err(e.into()))? {}
            let size = std::fs::metadata(&path)
                .map_err(|e| file_err("the store file", e))?
                .len();
            println!(
                "         after compaction ({:.1} s): {:.2} GB, {:.0} bytes per certificate",
                t.elapsed().as_secs_f64(),
                size as f64 / 1e9,
                per(size)
            );
        }
    }
    let store = Store::open(&path)?;

    // Stats.
    let mut times = Vec::new();
    let mut stats = Vec::new();
    for _ in 0..o.runs {
        let t = Instant::now();
        stats = report::stats(&store, &report::Scope::All, now)?;
        times.push(t.elapsed());
    }
    let sum = |f: fn(&report::CaCertStats) -> u64| stats.iter().map(f).sum::<u64>();
    println!(
        "stats:   {} (active {}, expired {}, revoked {}, total {})",
        ms(median(times)),
        sum(|s| s.active),
        sum(|s| s.expired),
        sum(|s| s.revoked),
        sum(|s| s.total)
    );
    let per_ca = |f: fn(&report::CaCertStats) -> u64| {
        stats
            .iter()
            .find(|s| s.ca == ca_name(0))
            .map(f)
            .unwrap_or(0) as usize
    };

    // Status-filtered pages of 100.
    println!("pages of 100 (median of {}):", o.runs);
    let ca0 = Some(ca_name(0));
    let cases: [(&str, Option<String>, Option<Status>, usize); 7] = [
        (
            "active, one CA",
            ca0.clone(),
            Some(Status::Active),
            per_ca(|s| s.active),
        ),
        (
            "expired, one CA",
            ca0.clone(),
            Some(Status::Expired),
            per_ca(|s| s.expired),
        ),
        (
            "revoked, one CA",
            ca0.clone(),
            Some(Status::Revoked),
            per_ca(|s| s.revoked),
        ),
        (
            "active, all CAs",
            None,
            Some(Status::Active),
            sum(|s| s.active) as usize,
        ),
        (
            "expired, all CAs",
            None,
            Some(Status::Expired),
            sum(|s| s.expired) as usize,
        ),
        (
            "revoked, all CAs",
            None,
            Some(Status::Revoked),
            sum(|s| s.revoked) as usize,
        ),
        ("any status, all CAs", None, None, o.n),
    ];
    for (name, ca, status, rows) in cases {
        let q = ListQuery {
            ca,
            status,
            ..Default::default()
        };
        let (first, p) = time_list(&store, &q, now, o.runs);
        assert!(
            p.certs.len() == 100.min(rows),
            "{name}: {} rows",
            p.certs.len()
        );
        let (cursor, walked, took) = walk(&store, &q, now, rows / 2);
        let deep_q = ListQuery {
            after: cursor,
            ..q.clone()
        };
        let (deep, p) = time_list(&store, &deep_q, now, o.runs);
        println!(
            "  {name:<20} first {:>9}   after {walked:>7} rows {:>9}   ({} rows; walk {:.0} rows/s, {} returned)",
            ms(first),
            ms(deep),
            rows,
            walked as f64 / took.as_secs_f64().max(1e-9),
            p.certs.len()
        );
    }

    // Search: no index, one request spends its scan budget.
    let q = ListQuery {
        search: Some("no-such-device".into()),
        ..Default::default()
    };
    let (t, p) = time_list(&store, &q, now, o.runs);
    println!(
        "search:  {} per request of {} rows scanned (no match: {} rows, next {}); a full scan of {} is ~{} requests",
        ms(t),
        report::SCAN_BUDGET,
        p.certs.len(),
        if p.next.is_some() { "given" } else { "none" },
        o.n,
        o.n.div_ceil(report::SCAN_BUDGET)
    );
    let q = ListQuery {
        search: Some(format!("device-{:07}", o.n / 2)),
        status: Some(Status::Active),
        ca: Some(ca_name((o.n / 2) % o.cas)),
        ..Default::default()
    };
    let (t, _) = time_list(&store, &q, now, o.runs);
    println!(
        "search:  {} per request, active + one CA (its certs rows, filtered by status)",
        ms(t)
    );

    // Show.
    let (ca, serial) = &serials[serials.len() / 3];
    let mut times = Vec::new();
    for _ in 0..o.runs {
        let t = Instant::now();
        let d = report::show(&store, None, serial, &report::Scope::All, now)?;
        times.push(t.elapsed());
        assert_eq!(&d.ca, ca);
    }
    println!(
        "show:    {} (serial without --ca: one point read per CA)",
        ms(median(times))
    );

    if o.rebuild {
        // As a store written before the indexes: counters gone, flag unset.
        store.write(|tx| {
            tx.clear(Table::Counts)?;
            tx.put_meta("report-index", &0u32)
        })?;
        let t = Instant::now();
        daemon::store::indexes::ensure_indexes(&store)?;
        println!(
            "rebuild: {:.1} s to index a store written before the indexes",
            t.elapsed().as_secs_f64()
        );
    }
    drop(store);
    if !o.keep {
        let _ = std::fs::remove_file(&path);
        if own_dir {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    Ok(())
}

fn file_err(what: &str, source: std::io::Error) -> daemon::Error {
    daemon::Error::Store(StoreError::File {
        what: what.to_owned(),
        source,
    })
}

/// What the audit entry adds to issuance: `rounds` rounds, each committing `AUDIT_COST_N`
/// certificates in group commits of 16 (a busy SCEP edge's size) without and then with
/// the entry `issue_leaf` appends (alternating which goes first); the medians per
/// certificate and their ratio.
fn audit_cost(store: &Store, o: &Options, now: i64, rounds: usize) -> daemon::Result<()> {
    const AUDIT_COST_N: usize = 2_000;
    const GROUP: usize = 16;
    let mut next = o.n;
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for audited in order {
            let rnd = random(AUDIT_COST_N * 1200);
            let mut batches = Vec::with_capacity(AUDIT_COST_N);
            for j in 0..AUDIT_COST_N {
                let rec = record(next + j, o, now, &rnd[j * 1200..(j + 1) * 1200]);
                let mut b = batch(&rec)?;
                if audited {
                    b.audit = Some(
                        daemon::store::Note::new(
                            "scep",
                            "issue",
                            format!(
                                "{} {} profile {} transaction {}",
                                rec.serial, rec.subject, rec.profile, rec.transaction_id
                            ),
                        )
                        .ca(&rec.ca),
                    );
                }
                batches.push(b);
            }
            next += AUDIT_COST_N;
            let t = Instant::now();
            for group in batches.chunks(GROUP) {
                for r in store.commit_batches(group)? {
                    r?;
                }
            }
            times[usize::from(audited)].push(t.elapsed() / AUDIT_COST_N as u32);
        }
    }
    let [off, on] = times.map(median);
    println!(
        "issue:   {:.1} µs per certificate without the audit entry, {:.1} µs with it ({:.2}×), \
         median of {rounds} rounds of {AUDIT_COST_N} in group commits of {GROUP}",
        off.as_secs_f64() * 1e6,
        on.as_secs_f64() * 1e6,
        on.as_secs_f64() / off.as_secs_f64()
    );
    Ok(())
}
