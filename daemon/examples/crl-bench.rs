//! `crl-bench`: the CRL of a CA with a very large revoked list, on a real appliance's
//! state directory and token (the signer must be stopped). Driven by `cargo xtask bench crl`.
//!
//! ```text
//! crl-bench populate --state-dir DIR --ca NAME --n 1000000 [--openssl-dir DIR]
//!     N revoked rows for CA NAME (random 16-byte serials, several reasons and none), as
//!     `cert revoke` writes them, plus one issued, not revoked certificate row whose serial
//!     is printed (for a timed `castellan cert revoke`). With --openssl-dir: the same
//!     entries as an `openssl ca` database (index.txt), the CA certificate, and an
//!     openssl.cnf whose pkcs11 engine signs with the CA's key in the token: run
//!     `OPENSSL_CONF=DIR/openssl.cnf openssl ca -config DIR/openssl.cnf -gencrl -engine pkcs11
//!     -keyform engine -keyfile "$(cat DIR/key-uri)" -out crl.pem`.
//! crl-bench build --state-dir DIR --ca NAME [--runs K]
//!     Open the signer as `castellan-signer run` does, then build, HSM-sign and store the
//!     CA's CRL K times; prints the times, the CRL's size and entries, and the process's
//!     resident memory before and at its peak (VmHWM), one JSON line last.
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use daemon::store::rows::CertRecord;
use daemon::store::rows::RevokedRow;
use daemon::store::{Batch, Store, Table};

const ROWS_PER_TRANSACTION: usize = 100_000;
/// Reasons cycled through the entries (None: no reasonCode).
const REASONS: [Option<&str>; 5] = [
    Some("keyCompromise"),
    Some("superseded"),
    None,
    Some("cessationOfOperation"),
    Some("affiliationChanged"),
];

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("crl-bench: {msg}");
    std::process::exit(1)
}

struct Args {
    command: String,
    state_dir: PathBuf,
    ca: String,
    n: usize,
    runs: usize,
    openssl_dir: Option<PathBuf>,
}

fn args() -> Args {
    let usage = || -> ! {
        die(
            "usage: crl-bench populate|build --state-dir DIR --ca NAME [--n N] [--runs K] \
             [--openssl-dir DIR]",
        )
    };
    let mut it = std::env::args().skip(1);
    let command = it.next().unwrap_or_else(|| usage());
    let mut a = Args {
        command,
        state_dir: PathBuf::new(),
        ca: String::new(),
        n: 1_000_000,
        runs: 3,
        openssl_dir: None,
    };
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--state-dir" => a.state_dir = value.into(),
            "--ca" => a.ca = value,
            "--n" => a.n = value.replace('_', "").parse().unwrap_or_else(|_| usage()),
            "--runs" => a.runs = value.parse().unwrap_or_else(|_| usage()),
            "--openssl-dir" => a.openssl_dir = Some(value.into()),
            _ => usage(),
        }
    }
    if a.state_dir.as_os_str().is_empty() || a.ca.is_empty() {
        usage()
    }
    a
}

fn random(buf: &mut [u8]) {
    getrandom::fill(buf).unwrap_or_else(|e| die(e));
}

/// `YYMMDDHHMMSSZ`, as `openssl ca` keeps dates in index.txt.
fn openssl_time(unix: i64) -> String {
    let t = x509_cert::time::Time::try_from(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64),
    )
    .unwrap_or_else(|e| die(e));
    let d = t.to_date_time();
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        d.year() % 100,
        d.month(),
        d.day(),
        d.hour(),
        d.minutes(),
        d.seconds()
    )
}

fn populate(a: &Args) {
    let store = Store::open(&a.state_dir.join("store.redb")).unwrap_or_else(|e| die(e));
    daemon::store::indexes::ensure_crl_entries(&store).unwrap_or_else(|e| die(e));
    let ca = store
        .ca(&a.ca)
        .unwrap_or_else(|e| die(e))
        .unwrap_or_else(|| die(format!("no CA {:?} in the store", a.ca)));
    let now = daemon::now();
    let not_after = now + 365 * 86400;
    let mut index = a.openssl_dir.as_ref().map(|dir| {
        openssl_ca(a, dir, &ca);
        std::io::BufWriter::new(
            std::fs::File::create(dir.join("index.txt")).unwrap_or_else(|e| die(e)),
        )
    });
    let started = Instant::now();
    let mut serial = [0u8; 16];
    let mut done = 0;
    while done < a.n {
        let rows = ROWS_PER_TRANSACTION.min(a.n - done);
        let mut batch = Batch::default();
        for i in done..done + rows {
            random(&mut serial);
            serial[0] = (serial[0] & 0x7f) | 0x40; // positive, 16 octets
            let hex_serial = hex::encode(serial);
            let revoked_at = now - 86400 - (i as i64 % 86400);
            let reason = REASONS[i % REASONS.len()];
            let row = RevokedRow {
                revoked_at,
                reason: reason.map(str::to_owned),
                not_after,
            };
            daemon::store::indexes::put_revoked_batch(
                &mut batch,
                &format!("{}\0{hex_serial}", a.ca),
                &row,
            )
            .unwrap_or_else(|e| die(e));
            if let Some(w) = index.as_mut() {
                let revoked = match reason {
                    Some(r) => format!("{},{r}", openssl_time(revoked_at)),
                    None => openssl_time(revoked_at),
                };
                writeln!(
                    w,
                    "R\t{}\t{revoked}\t{}\tunknown\t/CN=bench-{i}",
                    openssl_time(not_after),
                    hex_serial.to_uppercase()
                )
                .unwrap_or_else(|e| die(e));
            }
        }
        store.commit_batches(&[batch]).unwrap_or_else(|e| die(e))[0]
            .as_ref()
            .unwrap_or_else(|e| die(e));
        done += rows;
    }
    if let Some(mut w) = index {
        w.flush().unwrap_or_else(|e| die(e));
    }
    // One issued certificate, not revoked, for a timed `castellan cert revoke`.
    random(&mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let spare = CertRecord {
        ca: a.ca.clone(),
        serial: hex::encode(serial),
        profile: "crl-bench".into(),
        transaction_id: "crl-bench".into(),
        subject: "CN=crl-bench spare".into(),
        sans: vec![],
        not_before: now,
        not_after,
        issued_at: now,
        key_hash: String::new(),
        der: vec![0x30, 0x00],
        revoked_at: None,
        renewed_from: None,
    };
    let mut batch = Batch::default();
    batch
        .put(Table::Certs, &format!("{}\0{}", a.ca, spare.serial), &spare)
        .unwrap_or_else(|e| die(e));
    daemon::store::indexes::index_issued(&mut batch, &spare).unwrap_or_else(|e| die(e));
    store.commit_batches(&[batch]).unwrap_or_else(|e| die(e))[0]
        .as_ref()
        .unwrap_or_else(|e| die(e));
    eprintln!(
        "populated {} revoked rows of CA {} in {:.1} s",
        a.n,
        a.ca,
        started.elapsed().as_secs_f64()
    );
    println!("{}", spare.serial);
}

/// An `openssl ca` directory for the same CA: its certificate, an empty database, the
/// next CRL number, an openssl.cnf with the pkcs11 engine, and the key's `pkcs11:` URI.
fn openssl_ca(a: &Args, dir: &std::path::Path, ca: &daemon::store::rows::CaRecord) {
    let loaded = daemon::app::config::load(Some(&a.state_dir), None).unwrap_or_else(|e| die(e));
    let hsm = &loaded.config.hsm;
    let pin_file = hsm
        .pin_file
        .as_ref()
        .unwrap_or_else(|| die("the bench needs a PIN file"));
    let pin = std::fs::read_to_string(pin_file).unwrap_or_else(|e| die(e));
    let cert = ca
        .cert
        .as_deref()
        .unwrap_or_else(|| die("the CA has no certificate"));
    std::fs::create_dir_all(dir).unwrap_or_else(|e| die(e));
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).unwrap_or_else(|e| die(e));
    };
    write(
        "ca.pem",
        daemon::issuance::x509::to_pem("CERTIFICATE", cert),
    );
    write("crlnumber", "01\n".into());
    let id: String = ca
        .key_id
        .as_bytes()
        .chunks(2)
        .map(|c| format!("%{}", String::from_utf8_lossy(c)))
        .collect();
    write(
        "key-uri",
        format!(
            "pkcs11:token={};id={id};type=private;pin-value={}",
            hsm.token_label,
            pin.trim()
        ),
    );
    // It holds the token PIN.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("key-uri"), std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| die(e));
    let d = dir.display();
    write(
        "openssl.cnf",
        format!(
            "openssl_conf = openssl_init\n\
             [openssl_init]\nengines = engine_section\n\
             [engine_section]\npkcs11 = pkcs11_section\n\
             [pkcs11_section]\nengine_id = pkcs11\nMODULE_PATH = {}\ninit = 0\n\
             [ca]\ndefault_ca = bench\n\
             [bench]\ndatabase = {d}/index.txt\ncrlnumber = {d}/crlnumber\n\
             certificate = {d}/ca.pem\ndefault_md = sha256\ndefault_crl_days = 7\n\
             crl_extensions = crl_ext\n\
             [crl_ext]\nauthorityKeyIdentifier = keyid:always\n",
            hsm.module.display()
        ),
    );
}

/// VmRSS and VmHWM of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn build(a: &Args) {
    let loaded = daemon::app::config::load(Some(&a.state_dir), None).unwrap_or_else(|e| die(e));
    let signer = daemon::app::init::open(&loaded).unwrap_or_else(|e| die(e));
    let (rss_before, _) = memory();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..a.runs.max(1) {
        let t = Instant::now();
        let state = signer
            .revocation()
            .publish_crl(&a.ca)
            .unwrap_or_else(|e| die(e));
        let took = t.elapsed().as_secs_f64();
        eprintln!(
            "CRL {} of {}: {} entries built, signed and stored in {took:.3} s",
            state.number, a.ca, state.entries
        );
        times.push(took);
        last = Some(state);
    }
    let (_, peak) = memory();
    let state = last.unwrap_or_else(|| die("nothing was built"));
    let bytes = signer
        .revocation()
        .current_crl(&a.ca)
        .unwrap_or_else(|e| die(e))
        .map_or(0, |c| c.der.len());
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "median {median:.3} s over {} runs; CRL {bytes} bytes; resident memory {:.0} MiB \
         before, peak {:.0} MiB",
        times.len(),
        mb(rss_before),
        mb(peak)
    );
    println!(
        "{}",
        serde_json::json!({
            "entries": state.entries,
            "bytes": bytes,
            "seconds": times,
            "median_seconds": median,
            "rss_before_bytes": rss_before,
            "peak_rss_bytes": peak,
        })
    );
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let a = args();
    match a.command.as_str() {
        "populate" => populate(&a),
        "build" => build(&a),
        other => die(format!("unknown command {other:?}")),
    }
}
