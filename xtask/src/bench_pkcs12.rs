//! `cargo xtask bench pkcs12 [-n N]`: PKCS#12 issuances per second on release binaries, in
//! a fresh appliance under `var/bench-pkcs12/` (deleted first):
//!
//! 1. the appliance (token `castellan-bench-pkcs12`, alice/bob/carol, quorum 2), an RSA-2048
//!    root and issuing CA and a pkcs profile `bench-pkcs` (EC P-256 and RSA-2048 keys, the
//!    `modern` encoding), made through proposals;
//! 2. for EC P-256 and RSA-2048, one after the other for at least S seconds (default 5)
//!    and 5 times: `castellan pkcs12 issue` (the CLI process, its TLS handshake, key
//!    generation in the signer, issuance with a signature in the token and a durable
//!    commit, the PKCS#12 file);
//! 3. the same work with openssl, in the same run, as a script would do it: `openssl req
//!    -newkey` (key and CSR), `openssl x509 -req` signing with the same issuing CA key in
//!    the same token (pkcs11 engine), `openssl pkcs12 -export` (AES-256, the default),
//!    for as long.
//!
//! Prints issuances per second for each and the ratio; writes `var/bench-pkcs12/results.json`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;

use crate::bench::{interrupted, stop_flag};
use crate::demo::{self, Paths};
use crate::{Context, Failure, Result};

const TOKEN_LABEL: &str = "castellan-bench-pkcs12";
const ROOT_CA: &str = "p12-root";
const ISSUING_CA: &str = "p12-issuing";
const PROFILE: &str = "bench-pkcs";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Seconds each tool runs per key type (at least 5 issuances).
    pub seconds: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { seconds: 5 }
    }
}

pub fn run(options: &Options) -> Result<()> {
    let root = crate::workspace_root();
    let bin_dir = crate::bench::release_binaries(None)?;
    let stop = stop_flag()?;

    let dir = root.join("var").join("bench-pkcs12");
    println!("\n=== appliance");
    let (paths, demo, _, mut signer) =
        crate::bench::appliance_with_cas(&dir, bin_dir, TOKEN_LABEL, (ROOT_CA, ISSUING_CA), &stop)?;
    let [alice, bob, ..] = demo.officers.as_slice() else {
        return Err(Failure::new("the appliance needs two officers"));
    };
    demo::propose_and_approve(
        &paths,
        &demo,
        alice,
        bob,
        &[
            "profile",
            "create",
            PROFILE,
            "--ca",
            ISSUING_CA,
            "--pkcs-keys",
            "ec-p256,rsa-2048",
            "--subject-attrs",
            "CN,O",
            "--json",
        ],
    )?;
    let work = dir.join("work");
    fs::create_dir_all(&work).context("create the work directory")?;
    let openssl = OpensslCa::new(&paths, &demo, &work)?;

    let mut rows = Vec::new();
    for (key, openssl_key) in [
        (
            "ec-p256",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
        ("rsa-2048", &["-newkey", "rsa:2048"][..]),
    ] {
        println!("\n=== {key}: {} s each", options.seconds);
        let budget = std::time::Duration::from_secs(options.seconds as u64);
        let started = Instant::now();
        let mut i = 0;
        while i < 5 || started.elapsed() < budget {
            i += 1;
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(interrupted());
            }
            let file = work.join(format!("castellan-{key}-{i}.p12"));
            let subject = format!("CN=user-{key}-{i},O=Bench");
            demo::cli_within(
                &paths,
                &demo,
                alice,
                &[
                    "pkcs12",
                    "issue",
                    "--profile",
                    PROFILE,
                    "--subject",
                    &subject,
                    "--key",
                    key,
                    "-o",
                    &file.to_string_lossy(),
                ],
                None,
            )?;
        }
        let (ours_n, ours) = (i, i as f64 / started.elapsed().as_secs_f64());
        let started = Instant::now();
        let mut j = 0;
        while j < 5 || started.elapsed() < budget {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(interrupted());
            }
            j += 1;
            openssl.issue(&work, &format!("openssl-{key}-{j}"), openssl_key)?;
        }
        let theirs = j as f64 / started.elapsed().as_secs_f64();
        println!(
            "    castellan pkcs12 issue: {ours:.1}/s ({ours_n}); openssl req + x509 -req (token \
             key) + pkcs12 -export: {theirs:.1}/s ({j}); ratio {:.2}",
            ours / theirs
        );
        rows.push(json!({
            "key": key,
            "castellan_issuances": ours_n,
            "openssl_issuances": j,
            "castellan_per_second": ours,
            "openssl_per_second": theirs,
            "ratio": ours / theirs,
        }));
    }
    signer.stop();
    let file = dir.join("results.json");
    fs::write(
        &file,
        serde_json::to_vec_pretty(&json!({ "results": rows })).unwrap_or_default(),
    )
    .context(format!("write {}", file.display()))?;
    println!("\nwritten to {}", paths.show(&file));
    Ok(())
}

/// openssl signing with the issuing CA's key in the token, through the pkcs11 engine.
struct OpensslCa {
    conf: std::path::PathBuf,
    key_uri: String,
    softhsm2_conf: std::path::PathBuf,
}

impl OpensslCa {
    fn new(paths: &Paths, demo: &demo::Demo, work: &Path) -> Result<OpensslCa> {
        let [alice, ..] = demo.officers.as_slice() else {
            return Err(Failure::new("no officer"));
        };
        let shown = demo::cli_within(
            paths,
            demo,
            alice,
            &["ca", "show", ISSUING_CA, "--json"],
            None,
        )?;
        let view: serde_json::Value = serde_json::from_str(&shown)
            .map_err(|e| Failure::new(format!("ca show --json: {e}")))?;
        let key_id = view["key_id"]
            .as_str()
            .ok_or_else(|| Failure::new("ca show has no key_id"))?;
        let id: String = key_id
            .as_bytes()
            .chunks(2)
            .map(|c| format!("%{}", String::from_utf8_lossy(c)))
            .collect();
        let pin = fs::read_to_string(&paths.pin).context("read the PIN")?;
        let key_uri = format!(
            "pkcs11:token={TOKEN_LABEL};id={id};type=private;pin-value={}",
            pin.trim()
        );
        demo::cli_within(
            paths,
            demo,
            alice,
            &[
                "ca",
                "cert",
                ISSUING_CA,
                "-o",
                &work.join("issuing.pem").to_string_lossy(),
            ],
            None,
        )?;
        let module = [
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        ]
        .into_iter()
        .find(|m| Path::new(m).exists())
        .ok_or_else(|| Failure::new("libsofthsm2.so not found"))?;
        let conf = work.join("openssl.cnf");
        fs::write(
            &conf,
            format!(
                "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n\
                 [engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\n\
                 engine_id = pkcs11\nMODULE_PATH = {module}\ninit = 0\n"
            ),
        )
        .context("write openssl.cnf")?;
        Ok(OpensslCa {
            conf,
            key_uri,
            softhsm2_conf: paths.softhsm2_conf.clone(),
        })
    }

    /// Key and CSR, certificate, PKCS#12: three openssl runs.
    fn issue(&self, work: &Path, name: &str, newkey: &[&str]) -> Result<()> {
        let file = |ext: &str| work.join(format!("{name}.{ext}"));
        let run = |args: &[&str], what: &str| -> Result<()> {
            let out = Command::new("openssl")
                .args(args)
                .env("OPENSSL_CONF", &self.conf)
                .env("SOFTHSM2_CONF", &self.softhsm2_conf)
                .stdin(Stdio::null())
                .output()
                .context(format!("run openssl {what}"))?;
            if !out.status.success() {
                return Err(Failure::new(format!(
                    "openssl {what}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            Ok(())
        };
        let (key, csr, cert, p12) = (file("key"), file("csr"), file("pem"), file("p12"));
        let mut req = vec!["req", "-new", "-nodes"];
        req.extend(newkey);
        let subj = format!("/CN={name}/O=Bench");
        let (key_s, csr_s, cert_s, p12_s) = (
            key.to_string_lossy().into_owned(),
            csr.to_string_lossy().into_owned(),
            cert.to_string_lossy().into_owned(),
            p12.to_string_lossy().into_owned(),
        );
        req.extend(["-keyout", &key_s, "-subj", &subj, "-out", &csr_s]);
        run(&req, "req")?;
        let issuing = work.join("issuing.pem").to_string_lossy().into_owned();
        run(
            &[
                "x509",
                "-req",
                "-in",
                &csr_s,
                "-CA",
                &issuing,
                "-engine",
                "pkcs11",
                "-CAkeyform",
                "engine",
                "-CAkey",
                &self.key_uri,
                "-set_serial",
                &format!("0x{}", random_hex()?),
                "-days",
                "365",
                "-sha256",
                "-out",
                &cert_s,
            ],
            "x509 -req",
        )?;
        run(
            &[
                "pkcs12",
                "-export",
                "-inkey",
                &key_s,
                "-in",
                &cert_s,
                "-certfile",
                &issuing,
                "-passout",
                "pass:bench-password",
                "-out",
                &p12_s,
            ],
            "pkcs12 -export",
        )
    }
}

fn random_hex() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("read /dev/urandom")?;
    b[0] &= 0x7f;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
