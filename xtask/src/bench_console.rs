//! `cargo xtask bench console [-n N]`: the web console's page times over N (default
//! 1,000,000) certificates, in a fresh appliance under `var/bench-console/` (deleted first),
//! on release binaries:
//!
//! 1. the appliance (token `castellan-bench-console`, alice/bob/carol, quorum 2) and an
//!    RSA-2048 root and issuing CA made through proposals; then the signer is stopped;
//! 2. `store-bench --into` writes N certificates for the issuing CA into its store, as
//!    `issue_leaf` commits them (with their index rows and counters; 1% revoked): issuing a
//!    million through SCEP would take hours;
//! 3. the signer again; each page is fetched with curl as alice (her certificate, the admin
//!    CA), 3 times to warm up and then `RUNS` times; the figure is the server's share,
//!    curl's time to the first byte minus its time to the end of the TLS handshake, median
//!    of the runs. The baseline, measured the same way in the same run, is the style sheet:
//!    a page that reads nothing from the store, so the ratio is what the data costs.
//!
//! The table is printed and written to `var/bench-console/results.json`.

use std::fs;
use std::process::Command;

use serde_json::json;

use crate::bench::{interrupted, stop_flag};
use crate::demo::{self, Paths, Service};
use crate::{Context, Failure, Result};

const TOKEN_LABEL: &str = "castellan-bench-console";
const ROOT_CA: &str = "console-root";
const ISSUING_CA: &str = "console-issuing";
const RUNS: usize = 21;
/// The goal for every page.
const TARGET_MS: f64 = 100.0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Certificates in the store.
    pub n: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { n: 1_000_000 }
    }
}

pub fn run(options: &Options) -> Result<()> {
    let root = crate::workspace_root();
    let bin_dir = crate::bench::release_binaries(Some("store-bench"))?;
    let store_bench = bin_dir.join("examples").join("store-bench");
    let stop = stop_flag()?;

    let dir = root.join("var").join("bench-console");
    println!("\n=== appliance");
    let (paths, demo, _http_port, mut signer) =
        crate::bench::appliance_with_cas(&dir, bin_dir, TOKEN_LABEL, (ROOT_CA, ISSUING_CA), &stop)?;
    signer.stop();

    println!("\n=== {} certificates for {ISSUING_CA}", options.n);
    let mut fill = Command::new(&store_bench);
    fill.arg("--into")
        .arg(paths.state.join("store.redb"))
        .args(["--ca-names", ISSUING_CA, "--n", &options.n.to_string()]);
    let out = crate::tools::run_quietly(&mut fill, "store-bench --into")?;
    print!("{out}");

    println!("\n=== pages, as alice (median of {RUNS} after 3 to warm up)");
    let mut signer = Service::signer(&paths, false)?;
    if signer.wait_ready_line(&stop)?.is_none() {
        return Err(interrupted());
    }
    let [alice, ..] = demo.officers.as_slice() else {
        return Err(Failure::new("no officer"));
    };
    let page = |path: &str| -> Result<(f64, u64, String)> {
        let url = format!("{}{path}", demo.admin_url);
        let mut times = Vec::with_capacity(RUNS);
        let mut last = (0, String::new());
        for i in 0..RUNS + 3 {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(interrupted());
            }
            let (server, bytes, body) = curl(&paths, &demo, alice, &url)?;
            if i >= 3 {
                times.push(server);
            }
            last = (bytes, body);
        }
        times.sort_by(f64::total_cmp);
        Ok((times[times.len() / 2], last.0, last.1))
    };
    // A serial deep in the store, for a certificate's page: the first of the active list.
    let (_, _, active) = page(&format!("/certs?ca={ISSUING_CA}&status=active"))?;
    let serial = active
        .split(&format!("href=\"/cert/{ISSUING_CA}/"))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| Failure::new("no certificate in the active list"))?
        .to_owned();
    let pages: [(&str, String); 10] = [
        ("style sheet (baseline)", "/console.css".into()),
        ("overview", "/".into()),
        ("CA page (90-day chart)", format!("/ca/{ISSUING_CA}")),
        ("certificates, first page", "/certs".into()),
        (
            "active, soonest expiry first",
            format!("/certs?ca={ISSUING_CA}&status=active"),
        ),
        ("revoked", "/certs?status=revoked".into()),
        (
            "name starts with (the index)",
            "/certs?name=device-099999".into(),
        ),
        (
            "search (one request's scan budget)",
            "/certs?search=device-0999999".into(),
        ),
        ("a certificate", format!("/cert/{ISSUING_CA}/{serial}")),
        ("audit log", "/audit".into()),
    ];
    let mut rows = Vec::new();
    let mut baseline = f64::NAN;
    println!(
        "    {:<38} {:>10} {:>8} {:>9}",
        "page", "server ms", "× base", "bytes"
    );
    for (name, path) in &pages {
        let (ms, bytes, _) = page(path)?;
        if baseline.is_nan() {
            baseline = ms;
        }
        println!(
            "    {name:<38} {ms:>10.2} {:>8.1} {bytes:>9}{}",
            ms / baseline,
            if ms > TARGET_MS { "  over 100 ms" } else { "" }
        );
        rows.push(json!({ "page": name, "path": path, "server_ms": ms, "ratio": ms / baseline, "bytes": bytes }));
    }
    // The CSV export of a search: every row of the store examined, once.
    let t = std::time::Instant::now();
    let (_, bytes, csv) = curl(
        &paths,
        &demo,
        alice,
        &format!("{}/certs.csv?search=device-099", demo.admin_url),
    )?;
    let export_s = t.elapsed().as_secs_f64();
    println!(
        "    CSV export of a search over all {} certificates: {export_s:.1} s, {} rows, {bytes} bytes",
        options.n,
        csv.lines().count().saturating_sub(1)
    );
    signer.stop();
    let results = json!({
        "certificates": options.n,
        "runs": RUNS,
        "pages": rows,
        "csv_export_search_seconds": export_s,
        "csv_export_bytes": bytes,
    });
    let file = dir.join("results.json");
    fs::write(
        &file,
        serde_json::to_vec_pretty(&results).unwrap_or_default(),
    )
    .context(format!("write {}", file.display()))?;
    println!("\nwritten to {}", paths.show(&file));
    Ok(())
}

/// GET `url` with curl as `officer`: the server's share in ms (first byte minus the end of
/// the handshake), the body's size and the body.
fn curl(
    paths: &Paths,
    demo: &demo::Demo,
    officer: &demo::Officer,
    url: &str,
) -> Result<(f64, u64, String)> {
    let body = paths.demo.join("curl-body");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "-o"])
        .arg(&body)
        .arg("--cacert")
        .arg(&demo.admin_ca)
        .arg("--cert")
        .arg(&officer.cert)
        .arg("--key")
        .arg(&officer.key)
        .args([
            "-w",
            "%{time_appconnect} %{time_starttransfer} %{size_download}",
            url,
        ]);
    let out = cmd.output().context("run curl")?;
    if !out.status.success() {
        return Err(Failure::new(format!(
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<f64> = text
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [connected, first_byte, size] = nums[..] else {
        return Err(Failure::new(format!("curl printed {text:?}")));
    };
    let body = fs::read_to_string(&body).unwrap_or_default();
    Ok(((first_byte - connected) * 1e3, size as u64, body))
}
