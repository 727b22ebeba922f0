//! `cargo xtask fuzz [--target T] [--seconds N]`: run the fuzz targets in `fuzz/` on this
//! stable toolchain, with cargo-fuzz (installed with `cargo install` if missing) and
//! `RUSTC_BOOTSTRAP=1`, without a sanitizer (libFuzzer's coverage guidance and its crash
//! detection: a panic is a crash).
//!
//! Each target's corpus (`fuzz/corpus/T`, not committed) is seeded first with real messages
//! made here by the tools that make them in the field: CSRs from `openssl req` (EC and RSA,
//! with a challengePassword), OCSP requests from `openssl ocsp -reqout` (with and without a
//! nonce), the JSON admin requests the CLI sends, console query strings, and the real
//! messages committed in `fuzz/seeds/` (micromdm scepclient's PKIMessages). Then every
//! target runs for N seconds (default 60); the report gives executions, executions per
//! second, coverage (libFuzzer's `cov`) and crashes (files in `fuzz/artifacts/T`), and the
//! command fails if any target crashed.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::tools;
use crate::{Context, Failure, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Only this target.
    pub target: Option<String>,
    /// Seconds per target.
    pub seconds: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: None,
            seconds: 60,
        }
    }
}

pub fn run(options: &Options) -> Result<()> {
    let root = crate::workspace_root();
    let fuzz = root.join("fuzz");
    ensure_cargo_fuzz()?;
    let mut targets: Vec<String> = fs::read_dir(fuzz.join("fuzz_targets"))
        .context("list fuzz/fuzz_targets")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(str::to_owned)
        })
        .collect();
    targets.sort();
    if let Some(t) = &options.target {
        if !targets.contains(t) {
            return Err(Failure::new(format!(
                "no fuzz target {t}: there are {}",
                targets.join(", ")
            )));
        }
        targets = vec![t.clone()];
    }
    let mut build = cargo_fuzz(&fuzz);
    build.args(["build", "--sanitizer", "none", "-O"]);
    if let Some(t) = &options.target {
        build.arg(t);
    }
    tools::run_step(&mut build)?;
    seed(&fuzz)?;

    let mut crashed = Vec::new();
    println!(
        "\n{:<20} {:>14} {:>10} {:>8} {:>8}",
        "target", "executions", "exec/s", "cov", "crashes"
    );
    for t in &targets {
        let corpus = fuzz.join("corpus").join(t);
        let artifacts = fuzz.join("artifacts").join(t);
        fs::create_dir_all(&corpus).context(format!("create {}", corpus.display()))?;
        fs::create_dir_all(&artifacts).context(format!("create {}", artifacts.display()))?;
        let before = count(&artifacts);
        let out = cargo_fuzz(&fuzz)
            .args(["run", "--sanitizer", "none", "-O", t])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={}", options.seconds),
                "-print_final_stats=1",
            ])
            .stdin(Stdio::null())
            .output()
            .context(format!("run fuzz target {t}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let stat = |name: &str| -> String {
            log.lines()
                .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| "?".into())
        };
        let cov = log
            .lines()
            .rev()
            .find_map(|l| l.split_once(" cov: "))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_owned();
        let crashes = count(&artifacts) - before;
        println!(
            "{t:<20} {:>14} {:>10} {cov:>8} {crashes:>8}",
            stat("number_of_executed_units"),
            stat("average_exec_per_sec"),
        );
        if !out.status.success() || crashes > 0 {
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- {t} failed ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
            crashed.push(t.clone());
        }
    }
    if crashed.is_empty() {
        println!("\nno crash");
        Ok(())
    } else {
        Err(Failure::new(format!(
            "crashes in {} (inputs in fuzz/artifacts/TARGET)",
            crashed.join(", ")
        )))
    }
}

fn cargo_fuzz(dir: &Path) -> Command {
    let mut c = Command::new(crate::cargo());
    c.arg("fuzz")
        .current_dir(dir)
        // libFuzzer's instrumentation flags are unstable ones; this toolchain is stable.
        .env("RUSTC_BOOTSTRAP", "1");
    c
}

fn ensure_cargo_fuzz() -> Result<()> {
    let have = Command::new(crate::cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if have {
        return Ok(());
    }
    println!("==> cargo-fuzz is missing: cargo install cargo-fuzz --locked");
    tools::run_step(Command::new(crate::cargo()).args(["install", "cargo-fuzz", "--locked"]))
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Real messages into the corpora (kept beside what fuzzing found).
fn seed(fuzz: &Path) -> Result<()> {
    let corpus = |t: &str| -> Result<std::path::PathBuf> {
        let d = fuzz.join("corpus").join(t);
        fs::create_dir_all(&d).context(format!("create {}", d.display()))?;
        Ok(d)
    };
    let work = tempdir(fuzz)?;
    let openssl = |args: &[&str]| -> Result<()> {
        tools::run_quietly(
            Command::new("openssl").args(args).current_dir(&work),
            &format!("openssl {}", args.first().copied().unwrap_or("")),
        )
        .map(|_| ())
    };
    // CSRs as devices send them (SCEP): EC and RSA, with a challengePassword.
    let csr = corpus("csr")?;
    for (name, key) in [
        (
            "openssl-ec",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
        ("openssl-rsa", &["-newkey", "rsa:2048"][..]),
    ] {
        let mut args = vec![
            "req", "-new", "-nodes", "-keyout", "k.pem", "-outform", "DER",
        ];
        args.extend(key);
        let out = csr.join(format!("{name}.der"));
        let out_s = out.to_string_lossy().into_owned();
        args.extend([
            "-subj",
            "/CN=device-1/O=Fuzz",
            "-addext",
            "subjectAltName=DNS:device-1.example",
            "-out",
            &out_s,
        ]);
        openssl(&args)?;
    }
    // OCSP requests as `openssl ocsp` sends them.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=Fuzz CA",
        "-days",
        "1",
    ])?;
    let ocsp = corpus("ocsp_request")?;
    for (name, nonce) in [
        ("openssl-nonce", "-nonce"),
        ("openssl-no-nonce", "-no_nonce"),
    ] {
        let out = ocsp.join(format!("{name}.der"));
        openssl(&[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-serial",
            "0x1234abcd",
            nonce,
            "-reqout",
            &out.to_string_lossy(),
        ])?;
    }
    // Admin requests as the CLI sends them.
    let admin = corpus("admin_request")?;
    for (name, json) in [
        ("whoami", r#"{"request":"whoami"}"#),
        (
            "cert-list",
            r#"{"request":"cert-list","ca":"issuing","status":"active","search":null,"limit":100,"after":null,"name":"laptop"}"#,
        ),
        (
            "cert-export",
            r#"{"request":"cert-export","ca":null,"status":null,"search":"dev","expires":{"after":1767225600,"before":1769904000}}"#,
        ),
        (
            "pkcs12-issue",
            r#"{"request":"pkcs12-issue","profile":"users-pkcs","subject":"CN=Ada,O=Example","sans":["email:ada@example.org"],"key":"ec-p256","encoding":"modern"}"#,
        ),
        (
            "key-fetch",
            r#"{"request":"key-fetch","proposal":"00112233445566778899aabbccddeeff","encoding":"compat"}"#,
        ),
    ] {
        fs::write(admin.join(format!("{name}.json")), json).context("write a seed")?;
    }
    // Console query strings as the pages link them.
    let query = corpus("console_query")?;
    for (name, q) in [
        (
            "filter",
            "name=laptop&ca=issuing&status=active&expires_from=2026-01-01&expires_until=2026-12-31&after=Yzpp",
        ),
        ("search", "search=CN%3Ddevice-1%2CO%3DFuzz&status=revoked"),
    ] {
        fs::write(query.join(format!("{name}.txt")), q).context("write a seed")?;
    }
    // Committed real messages (fuzz/seeds/README.md): micromdm scepclient's PKIMessages.
    if let Ok(targets) = fs::read_dir(fuzz.join("seeds")) {
        for target in targets.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
            let into = corpus(&target.file_name().to_string_lossy())?;
            for file in fs::read_dir(target.path())
                .context("list fuzz/seeds")?
                .flatten()
            {
                fs::copy(file.path(), into.join(file.file_name())).context("copy a seed")?;
            }
        }
    }
    let _ = fs::remove_dir_all(&work);
    Ok(())
}

fn tempdir(fuzz: &Path) -> Result<std::path::PathBuf> {
    let d = fuzz
        .join("target")
        .join(format!("seeds-{}", std::process::id()));
    fs::create_dir_all(&d).context(format!("create {}", d.display()))?;
    Ok(d)
}
