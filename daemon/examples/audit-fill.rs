//! `audit-fill`: append synthetic admin-request entries to the audit log of a stopped
//! signer's store, to measure `castellan audit verify` at scale. The signer signs a
//! checkpoint over them when it next starts; `castellan audit export` then writes them.
//!
//! ```text
//! cargo build --release -p daemon --example audit-fill
//! target/release/examples/audit-fill STATE/castellan.redb 1000000
//! ```

use std::time::Instant;

use daemon::store::{Note, Store};

fn main() -> daemon::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(n)) = (args.next(), args.next().and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: audit-fill STORE N");
        std::process::exit(2)
    };
    let store = Store::open(std::path::Path::new(&path))?;
    let t = Instant::now();
    let mut done = 0u64;
    while done < n {
        let k = (n - done).min(10_000);
        store.write(|tx| {
            for i in done..done + k {
                tx.record(Note {
                    actor: "bench-admin".into(),
                    action: "request:cert-list".into(),
                    detail: format!("ca=issuing-{} status= search=device-{i:07}", i % 4),
                    ca: Some(format!("issuing-{}", i % 4)),
                    fingerprint: Some("ab".repeat(32)),
                    source: Some("127.0.0.1:54321".into()),
                    permission: Some("ca.read".into()),
                    outcome: Some("ok".into()),
                    proposal: None,
                })?;
            }
            Ok(())
        })?;
        done += k;
    }
    println!(
        "appended {n} entries in {:.1} s ({} entries in the log)",
        t.elapsed().as_secs_f64(),
        store.audit_len()?
    );
    Ok(())
}
