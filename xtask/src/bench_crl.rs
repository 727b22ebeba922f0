//! `cargo xtask bench crl [-n N]`: a CRL with N (default 1,000,000) revoked entries, in a
//! fresh appliance under `var/bench-crl/` (deleted first), on release binaries:
//!
//! 1. the appliance (token `castellan-bench-crl`, alice/bob/carol, quorum 2), an RSA-2048
//!    root and issuing CA made through proposals; then the signer and edge are stopped;
//! 2. `crl-bench populate` writes N revoked rows for the issuing CA into the store (as
//!    `cert revoke` writes them; revoking a million certificates one command at a time would
//!    take hours) and the same entries as an `openssl ca` database, plus one issued
//!    certificate that is not revoked;
//! 3. `crl-bench build`: build, sign in the token and store the CRL, 3 times, in a fresh
//!    process that opened the signer as `castellan-signer run` does: time and peak memory;
//! 4. `openssl ca -gencrl` over the same N entries, signing with the same CA key in the same
//!    token through the pkcs11 engine: time, and peak memory sampled from /proc every 20 ms;
//! 5. the signer and the edge again: the edge serves the CRL (fetched from the signer in
//!    pieces); then `castellan cert revoke` of the spare certificate, and the time until the
//!    edge serves a CRL with it (polled every 20 ms with If-None-Match, as a cache
//!    revalidates), checked with `openssl crl -verify`.
//!
//! The summary is printed and written to `var/bench-crl/results.json`.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bench::{WAIT, interrupted, stop_flag};
use crate::demo::{self, Paths, Service};
use crate::{Context, Failure, Result};

const TOKEN_LABEL: &str = "castellan-bench-crl";
const ROOT_CA: &str = "crl-root";
const ISSUING_CA: &str = "crl-issuing";
/// Targets from the issue.
const BUILD_TARGET_SECONDS: f64 = 1.5;
const MEMORY_TARGET_BYTES: f64 = 300.0 * 1024.0 * 1024.0;
const OPENSSL_TARGET: f64 = 20.0;
const SERVED_TARGET_SECONDS: f64 = 2.0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Revoked entries.
    pub n: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { n: 1_000_000 }
    }
}

pub fn run(options: &Options) -> Result<()> {
    let root = crate::workspace_root();
    let bin_dir = crate::bench::release_binaries(Some("crl-bench"))?;
    let crl_bench = bin_dir.join("examples").join("crl-bench");
    let stop = stop_flag()?;

    let dir = root.join("var").join("bench-crl");
    // 1. The appliance and its CAs.
    println!("\n=== appliance");
    let (paths, demo, http_port, mut signer) =
        crate::bench::appliance_with_cas(&dir, bin_dir, TOKEN_LABEL, (ROOT_CA, ISSUING_CA), &stop)?;
    signer.stop();

    // 2. N revoked entries, in the store and as an openssl database.
    println!("\n=== {} revoked entries for {ISSUING_CA}", options.n);
    let openssl_dir = dir.join("openssl");
    let mut populate = Command::new(&crl_bench);
    populate
        .arg("populate")
        .arg("--state-dir")
        .arg(&paths.state)
        .args(["--ca", ISSUING_CA, "--n", &options.n.to_string()])
        .arg("--openssl-dir")
        .arg(&openssl_dir)
        .env("SOFTHSM2_CONF", &paths.softhsm2_conf);
    let spare = crate::tools::run_quietly(&mut populate, "crl-bench populate")?
        .trim()
        .to_owned();
    check_stop(&stop)?;

    // 3. Castellan: build, sign, store.
    println!("\n=== Castellan: build, HSM-sign and store the CRL (3 times)");
    let mut build = Command::new(&crl_bench);
    build
        .arg("build")
        .arg("--state-dir")
        .arg(&paths.state)
        .args(["--ca", ISSUING_CA, "--runs", "3"])
        .env("SOFTHSM2_CONF", &paths.softhsm2_conf);
    let out = crate::tools::run_quietly(&mut build, "crl-bench build")?;
    let ours: Value = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| Failure::new(format!("crl-bench build printed no JSON: {out}")))?;
    let ours_seconds = ours["median_seconds"].as_f64().unwrap_or(f64::NAN);
    let ours_peak = ours["peak_rss_bytes"].as_f64().unwrap_or(f64::NAN);
    println!(
        "    {} entries, {} bytes: median {ours_seconds:.3} s (runs {}), peak resident memory \
         {:.0} MiB",
        ours["entries"],
        ours["bytes"],
        ours["seconds"],
        ours_peak / MIB
    );
    check_stop(&stop)?;

    // 4. openssl ca -gencrl over the same entries, with the same key in the same token.
    println!("\n=== openssl ca -gencrl over the same entries (pkcs11 engine, same CA key)");
    let (openssl_seconds, openssl_peak) = openssl_gencrl(&paths, &openssl_dir, &stop)?;
    println!(
        "    {openssl_seconds:.3} s, peak resident memory {:.0} MiB (sampled)",
        openssl_peak / MIB
    );

    // 5. Revocation to served CRL.
    println!("\n=== one more revocation until the edge serves it");
    let mut signer = Service::signer(&paths, false)?;
    if signer.wait_ready_line(&stop)?.is_none() {
        return Err(interrupted());
    }
    let mut edge = Service::edge(&paths, http_port, false)?;
    if edge.wait_ready_line(&stop)?.is_none() {
        return Err(interrupted());
    }
    let path = format!("/crl/{ISSUING_CA}.crl");
    let deadline = Instant::now() + WAIT;
    let first = loop {
        check_stop(&stop)?;
        match http_get(http_port, &path, None) {
            Ok((200, etag, body)) => break (etag, body),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok((status, ..)) => {
                return Err(Failure::new(format!("{path}: HTTP {status}")));
            }
            Err(e) => return Err(e),
        }
    };
    println!(
        "    the edge serves {path}: {} bytes, ETag {}",
        first.1.len(),
        first.0
    );
    let [alice, ..] = demo.officers.as_slice() else {
        return Err(Failure::new("no officer"));
    };
    let revoked_at = Instant::now();
    demo::cli_within(
        &paths,
        &demo,
        alice,
        &[
            "cert",
            "revoke",
            &spare,
            "--ca",
            ISSUING_CA,
            "--reason",
            "key-compromise",
        ],
        Some(WAIT),
    )?;
    let (served_seconds, body) = loop {
        check_stop(&stop)?;
        // Conditional, as HTTP caches revalidate: 304 until a new CRL is served.
        if let Ok((200, etag, body)) = http_get(http_port, &path, Some(&first.0))
            && etag != first.0
        {
            break (revoked_at.elapsed().as_secs_f64(), body);
        }
        if revoked_at.elapsed() > WAIT {
            return Err(Failure::new("the edge did not serve a new CRL within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    edge.stop();
    signer.stop();
    let served_file = dir.join("served.crl");
    demo::write_file(&served_file, &body, 0o644)?;
    let listed = openssl_lists(&served_file, &openssl_dir.join("ca.pem"), &spare)?;
    println!(
        "    served {served_seconds:.3} s after `castellan cert revoke` started; openssl crl \
         -verify: ok; the revoked serial is listed: {listed}"
    );

    // Summary.
    let ratio = openssl_seconds / ours_seconds;
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let summary = format!(
        "CRL of {} entries ({} bytes):\n  \
         Castellan build + HSM sign + store: {ours_seconds:.3} s (target < {BUILD_TARGET_SECONDS} \
         s: {}), peak memory {:.0} MiB (target < 300 MB: {})\n  \
         openssl ca -gencrl:                 {openssl_seconds:.3} s, peak memory {:.0} MiB\n  \
         openssl / Castellan:                {ratio:.1}x (target >= {OPENSSL_TARGET}x: {})\n  \
         revocation to served CRL:           {served_seconds:.3} s (target < \
         {SERVED_TARGET_SECONDS} s: {})\n",
        ours["entries"],
        ours["bytes"],
        verdict(ours_seconds < BUILD_TARGET_SECONDS),
        ours_peak / MIB,
        verdict(ours_peak < MEMORY_TARGET_BYTES),
        openssl_peak / MIB,
        verdict(ratio >= OPENSSL_TARGET),
        verdict(served_seconds < SERVED_TARGET_SECONDS && listed),
    );
    println!();
    print!("{summary}");
    let results = json!({
        "benchmark": "cargo xtask bench crl",
        "entries": ours["entries"],
        "crl_bytes": ours["bytes"],
        "castellan": ours,
        "openssl": {"seconds": openssl_seconds, "peak_rss_bytes": openssl_peak},
        "openssl_over_castellan": ratio,
        "revocation_to_served_seconds": served_seconds,
        "served_crl_lists_the_serial": listed,
    });
    let file = dir.join("results.json");
    let text = serde_json::to_string_pretty(&results)
        .map_err(|e| Failure::new(format!("encode results.json: {e}")))?;
    demo::write_file(&file, format!("{text}\n").as_bytes(), 0o644)?;
    println!("\nwritten to {}", paths.show(&file));
    Ok(())
}

const MIB: f64 = 1024.0 * 1024.0;

fn check_stop(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::SeqCst) {
        Err(interrupted())
    } else {
        Ok(())
    }
}

/// Run `openssl ca -gencrl` in `dir` (made by `crl-bench populate`); its wall time and the
/// highest VmHWM seen while it ran.
fn openssl_gencrl(paths: &Paths, dir: &Path, stop: &AtomicBool) -> Result<(f64, f64)> {
    let conf = dir.join("openssl.cnf");
    let key_uri = fs::read_to_string(dir.join("key-uri")).context("read key-uri")?;
    let out = dir.join("crl.pem");
    let started = Instant::now();
    let mut child = Command::new("openssl")
        .args(["ca", "-config"])
        .arg(&conf)
        .args([
            "-gencrl", "-engine", "pkcs11", "-keyform", "engine", "-keyfile",
        ])
        .arg(key_uri.trim())
        .arg("-out")
        .arg(&out)
        .env("OPENSSL_CONF", &conf)
        .env("SOFTHSM2_CONF", &paths.softhsm2_conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start openssl ca -gencrl")?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0.0f64;
    let status = loop {
        if let Ok(s) = fs::read_to_string(&status_path)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        {
            peak = peak.max(kb * 1024.0);
        }
        if let Some(status) = child.try_wait().context("wait for openssl")? {
            break status;
        }
        if stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(600) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::new("openssl ca -gencrl was stopped"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(Failure::new(format!("openssl ca -gencrl failed: {err}")));
    }
    // The same check as for ours: it verifies with the CA certificate.
    let verify = Command::new("openssl")
        .args(["crl", "-noout", "-in"])
        .arg(&out)
        .arg("-CAfile")
        .arg(dir.join("ca.pem"))
        .arg("-verify")
        .output()
        .context("openssl crl -verify")?;
    if !verify.status.success() {
        return Err(Failure::new(format!(
            "openssl's own CRL does not verify: {}",
            String::from_utf8_lossy(&verify.stderr)
        )));
    }
    Ok((seconds, peak))
}

/// `openssl crl -verify` of a DER CRL with the CA certificate; whether `serial` is listed.
fn openssl_lists(crl: &Path, ca: &Path, serial: &str) -> Result<bool> {
    let out = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(crl)
        .arg("-CAfile")
        .arg(ca)
        .arg("-verify")
        .output()
        .context("openssl crl -verify")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.contains("verify OK") {
        return Err(Failure::new(format!(
            "the served CRL does not verify: {stderr}"
        )));
    }
    let wanted = format!("Serial Number: {}", serial.to_uppercase());
    Ok(String::from_utf8_lossy(&out.stdout).contains(&wanted))
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (conditional with `if_none_match`, as a cache asks):
/// status, ETag and body.
fn http_get(port: u16, path: &str, if_none_match: Option<&str>) -> Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).context("connect to the edge")?;
    s.set_read_timeout(Some(WAIT)).context("timeout")?;
    let condition = if_none_match
        .map(|e| format!("If-None-Match: {e}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{condition}Connection: close\r\n\r\n"
    )
    .context("send")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).context("read")?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Failure::new("no HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let etag = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("etag").then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    Ok((status, etag, raw[split + 4..].to_vec()))
}
