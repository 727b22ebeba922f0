//! `cargo xtask`: the project's task runner (the alias lives in `.cargo/config.toml`).
//!
//! - `cargo xtask demo [--fresh] [--admin-port PORT] [--http-port PORT]`: set up a SoftHSM2 token,
//!   three officers, a signer, two CAs and two SCEP profiles under `var/demo/`, then keep the
//!   signer and `castellan-edge` running until Ctrl-C.
//! - `cargo xtask bench ca [--runs N]`: time CA creation per key type and signer start-up with
//!   10 CAs, on release binaries, in fresh appliances under `var/bench-ca/` and
//!   `var/bench-start/`; results in `var/bench-ca/results.json`.
//! - `cargo xtask bench crl [-n N]`: a CRL of N revoked entries: build + HSM sign time and
//!   memory next to `openssl ca -gencrl`, and revocation to served CRL; `var/bench-crl/`.
//! - `cargo xtask bench store [-n N]`: report queries over N certificates (store-bench).
//! - `cargo xtask bench pkcs12 [--seconds S]`: PKCS#12 issuances per second (RSA-2048, EC P-256)
//!   next to openssl doing the same work with the same token key; `var/bench-pkcs12/`.
//! - `cargo xtask bench console [-n N]`: the web console's page times over N certificates in
//!   a real appliance, next to its style sheet as the baseline; `var/bench-console/`.
//! - `cargo xtask bench scep [-n N] [--concurrency C] [--sessions S]`: SCEP enrolments per second
//!   of castellan-edge + castellan-signer in a fresh appliance under `var/bench-scep/`, next to
//!   the HSM-bound limit (hsm-bench on the same token) and micromdm's scepserver; results in
//!   `var/bench-scep/results.json`.
//! - `cargo xtask fuzz [--target T] [--seconds N]`: every fuzz target on this stable toolchain,
//!   seeded with real messages; executions, coverage, crashes.
//! - `cargo xtask test [-- ARGS]`: install the test tools, then fmt, clippy, build and test the
//!   workspace, stopping at the first failure with its exit code.

mod bench;
mod bench_console;
mod bench_crl;
mod bench_pkcs12;
mod bench_scep;
mod demo;
mod demo_mdm;
mod fuzz;
mod suite;
mod tools;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  demo [--fresh] [--mdm] [--admin-port PORT] [--http-port PORT]
        Run a demo appliance under var/demo/: a SoftHSM2 token, officers alice, bob and
        carol (quorum 2), castellan-signer with its admin port on https://127.0.0.1:8443
        (--admin-port), the CAs demo-root and demo-issuing, the SCEP profiles devices and
        devices-legacy, and castellan-edge on http://127.0.0.1:8080 (--http-port). A second
        run reuses var/demo/; --fresh wipes it first. --mdm also runs castellan-mdm with an
        NDES-style challenge endpoint on https://127.0.0.1:8444/certsrv/mscep_admin/ for the
        one-time profile devices-dynamic (demo.json `mdm`). Runs until Ctrl-C.
  fuzz [--target T] [--seconds N]
        Run every fuzz target in fuzz/ (or T) for N seconds (default 60) on this stable
        toolchain (cargo-fuzz, installed if missing; RUSTC_BOOTSTRAP=1; no sanitizer), its
        corpus seeded with real messages (openssl CSRs and OCSP requests, the CLI's admin
        requests, console queries); prints executions, exec/s, coverage and crashes, and
        fails on a crash (inputs in fuzz/artifacts/T).
  bench ca [--runs N]
        Benchmark on release binaries (builds them): in a fresh appliance under
        var/bench-ca/, create root CAs of each key type (rsa-2048/3072/4096, ec-p256/384),
        N times each (default 3), timing alice's propose and bob's approve (which generates
        the key in the token and signs) separately; then, in var/bench-start/ with exactly
        10 CAs, time castellan-signer run from spawn to its ready line, 5 times. Prints
        min/median/max and writes var/bench-ca/results.json.
  bench crl [-n N]
        Benchmark on release binaries: in a fresh appliance under var/bench-crl/, N
        (default 1000000) revoked entries on one RSA-2048 issuing CA; time and peak memory
        to build, HSM-sign and store its CRL (crl-bench), next to `openssl ca -gencrl` over
        the same entries with the same key in the same token (pkcs11 engine); then the time
        from `castellan cert revoke` of one more certificate to the edge serving the new
        CRL. Writes var/bench-crl/results.json.
  bench store [-n N]
        Report queries at scale (store-bench, release build, no HSM): N (default 1000000)
        certificates; status-filtered pages of 100, search, stats; bytes on disk per
        certificate.
  bench pkcs12 [--seconds S]
        PKCS#12 issuances per second on release binaries: a fresh appliance under
        var/bench-pkcs12/ with a pkcs profile; `castellan pkcs12 issue` for EC P-256 and for
        RSA-2048 for S seconds each (default 5), next to openssl req -newkey + x509 -req
        (the same CA key in the same token, pkcs11 engine) + pkcs12 -export for as long.
        Writes results.json there.
  bench console [-n N]
        Web console page times on release binaries: a fresh appliance under
        var/bench-console/ whose issuing CA gets N (default 1000000) certificates written
        into its store (store-bench --into); the server's time for the overview, a CA page,
        certificate lists, a search, a certificate and the audit log (curl as alice, median
        of 21), next to the style sheet as the baseline. Writes var/bench-console/results.json.
  bench scep [-n N] [--concurrency C] [--sessions S]
        SCEP enrolment throughput on release binaries (builds them): in a fresh appliance
        under var/bench-scep/ (RSA-2048 root and issuing CA, profile `bench`), measure the
        HSM-bound limit with hsm-bench (S sessions, default 2; RSA-2048 sign and decrypt,
        3 private-key operations per enrolment), then scep-bench against castellan-edge and
        against micromdm's scepserver (N enrolments, default 3000, at concurrency C, default
        8, after a 20-request warm-up). Prints the figures and ratios and writes
        var/bench-scep/results.json.
  test [-- ARGS]
        Install missing test tools (softhsm2, opensc, openssl, scep, pkcs11 engine, faketime), then
        run cargo fmt --check, clippy -D warnings, build and `cargo test --workspace ARGS`.
        Example: cargo xtask test -- -p hsm -- --nocapture
";

/// Why a task stopped, and the exit code to leave with.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
        }
    }

    /// A failure that carries a child's exit code (1 when it had none or it does not fit).
    pub fn with_code(message: impl Into<String>, code: Option<i32>) -> Self {
        let code = code
            .and_then(|c| u8::try_from(c).ok())
            .filter(|c| *c != 0)
            .unwrap_or(1);
        Failure {
            message: message.into(),
            code,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::new(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// Attach the file or command an I/O error is about.
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Failure::new(format!("{what}: {e}")))
    }
}

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo that runs us (cargo sets `CARGO` for `cargo run`), else the one on PATH.
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("xtask: {failure}");
            ExitCode::from(failure.code)
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(());
    };
    match command.as_str() {
        "demo" => demo::run(&parse_demo_args(rest)?),
        "bench" => bench::run(&parse_bench_args(rest)?),
        "test" => suite::run(&parse_test_args(rest)?),
        "fuzz" => fuzz::run(&parse_fuzz_args(rest)?),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(Failure::new(format!(
            "unknown command `{other}`\n\n{USAGE}"
        ))),
    }
}

fn parse_demo_args(args: &[String]) -> Result<demo::Options> {
    let mut options = demo::Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        match flag {
            "--fresh" if inline.is_none() => options.fresh = true,
            "--mdm" if inline.is_none() => options.mdm = true,
            "--admin-port" | "--http-port" => {
                let value = inline
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| Failure::new(format!("{flag} needs a port number")))?;
                let port = value
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| Failure::new(format!("{flag}: bad port `{value}`")))?;
                if flag == "--admin-port" {
                    options.admin_port = Some(port);
                } else {
                    options.http_port = Some(port);
                }
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            _ => {
                return Err(Failure::new(format!(
                    "demo: unknown argument `{arg}`\n\n{USAGE}"
                )));
            }
        }
    }
    Ok(options)
}

fn parse_fuzz_args(args: &[String]) -> Result<fuzz::Options> {
    let mut options = fuzz::Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| Failure::new(format!("{flag} needs a value")))
        };
        match arg.as_str() {
            "--target" => options.target = Some(value("--target")?),
            "--seconds" => {
                let v = value("--seconds")?;
                options.seconds = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=86_400).contains(n))
                    .ok_or_else(|| Failure::new(format!("--seconds: bad count `{v}` (1-86400)")))?;
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                return Err(Failure::new(format!(
                    "fuzz: unknown argument `{other}`\n\n{USAGE}"
                )));
            }
        }
    }
    Ok(options)
}

fn parse_bench_args(args: &[String]) -> Result<bench::Bench> {
    let Some((what, rest)) = args.split_first() else {
        return Err(Failure::new(format!(
            "bench: say what to measure (`ca`, `scep`, `crl`, `store`, `console` or `pkcs12`)\n\n{USAGE}"
        )));
    };
    let mut bench = match what.as_str() {
        "ca" => bench::Bench::Ca(bench::Options::default()),
        "scep" => bench::Bench::Scep(bench_scep::Options::default()),
        "crl" => bench::Bench::Crl(bench_crl::Options::default()),
        "store" => bench::Bench::Store(bench::StoreOptions::default()),
        "console" => bench::Bench::Console(bench_console::Options::default()),
        "pkcs12" => bench::Bench::Pkcs12(bench_pkcs12::Options::default()),
        "-h" | "--help" => {
            print!("{USAGE}");
            std::process::exit(0);
        }
        other => {
            return Err(Failure::new(format!(
                "bench: unknown benchmark `{other}` (there are `ca`, `scep`, `crl`, `store`, `console` and `pkcs12`)\n\n{USAGE}"
            )));
        }
    };
    let mut args = rest.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        if flag == "-h" || flag == "--help" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        // Every option takes a count.
        let (slot, range) = match (&mut bench, flag) {
            (bench::Bench::Ca(o), "--runs") => (&mut o.runs, 1..=100),
            (bench::Bench::Scep(o), "-n") => (&mut o.n, 1..=100_000),
            (bench::Bench::Scep(o), "--concurrency" | "-c") => (&mut o.concurrency, 1..=1024),
            (bench::Bench::Scep(o), "--sessions") => (&mut o.sessions, 1..=64),
            (bench::Bench::Crl(o), "-n") => (&mut o.n, 1..=100_000_000),
            (bench::Bench::Store(o), "-n") => (&mut o.n, 1..=100_000_000),
            (bench::Bench::Console(o), "-n") => (&mut o.n, 1..=100_000_000),
            (bench::Bench::Pkcs12(o), "--seconds") => (&mut o.seconds, 1..=3600),
            _ => {
                return Err(Failure::new(format!(
                    "bench {what}: unknown argument `{arg}`\n\n{USAGE}"
                )));
            }
        };
        let value = inline
            .or_else(|| args.next().cloned())
            .ok_or_else(|| Failure::new(format!("{flag} needs a number")))?;
        *slot = value
            .parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                Failure::new(format!(
                    "{flag}: bad count `{value}` ({}-{})",
                    range.start(),
                    range.end()
                ))
            })?;
    }
    Ok(bench)
}

fn parse_test_args(args: &[String]) -> Result<suite::Options> {
    match args.split_first() {
        None => Ok(suite::Options::default()),
        Some((first, rest)) if first == "--" => Ok(suite::Options {
            cargo_test_args: rest.to_vec(),
        }),
        Some((first, _)) if first == "-h" || first == "--help" => {
            print!("{USAGE}");
            std::process::exit(0);
        }
        Some((first, _)) => Err(Failure::new(format!(
            "test: unknown argument `{first}` (arguments for cargo test go after `--`)\n\n{USAGE}"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn demo_args_are_parsed() {
        let o = parse_demo_args(&strings(&["--fresh", "--admin-port", "9443"])).unwrap();
        assert!(o.fresh);
        assert_eq!(o.admin_port, Some(9443));
        assert_eq!(o.http_port, None);
        let o = parse_demo_args(&strings(&["--admin-port=9000", "--http-port", "9080"])).unwrap();
        assert!(!o.fresh);
        assert_eq!(o.admin_port, Some(9000));
        assert_eq!(o.http_port, Some(9080));
        let o = parse_demo_args(&strings(&["--http-port=8081"])).unwrap();
        assert_eq!((o.admin_port, o.http_port), (None, Some(8081)));
    }

    #[test]
    fn demo_rejects_bad_port_and_unknown_flag() {
        assert!(parse_demo_args(&strings(&["--admin-port", "0"])).is_err());
        assert!(parse_demo_args(&strings(&["--admin-port", "x"])).is_err());
        assert!(parse_demo_args(&strings(&["--admin-port"])).is_err());
        assert!(parse_demo_args(&strings(&["--http-port", "65536"])).is_err());
        assert!(parse_demo_args(&strings(&["--http-port"])).is_err());
        assert!(parse_demo_args(&strings(&["--fresh=yes"])).is_err());
        assert!(parse_demo_args(&strings(&["--nope"])).is_err());
    }

    fn runs(args: &[&str]) -> usize {
        match parse_bench_args(&strings(args)).unwrap() {
            bench::Bench::Ca(o) => o.runs,
            other => panic!("not bench ca: {other:?}"),
        }
    }

    fn scep(args: &[&str]) -> (usize, usize, usize) {
        match parse_bench_args(&strings(args)).unwrap() {
            bench::Bench::Scep(o) => (o.n, o.concurrency, o.sessions),
            other => panic!("not bench scep: {other:?}"),
        }
    }

    #[test]
    fn bench_args_are_parsed() {
        assert_eq!(runs(&["ca"]), 3);
        assert_eq!(runs(&["ca", "--runs", "5"]), 5);
        assert_eq!(runs(&["ca", "--runs=1"]), 1);
        assert!(parse_bench_args(&strings(&[])).is_err());
        assert!(parse_bench_args(&strings(&["cb"])).is_err());
        assert!(parse_bench_args(&strings(&["ca", "--runs", "0"])).is_err());
        assert!(parse_bench_args(&strings(&["ca", "--runs"])).is_err());
        assert!(parse_bench_args(&strings(&["ca", "--nope"])).is_err());
        assert!(parse_bench_args(&strings(&["ca", "-n", "5"])).is_err());
    }

    #[test]
    fn bench_scep_args_are_parsed() {
        assert_eq!(scep(&["scep"]), (3000, 8, 2));
        assert_eq!(
            scep(&["scep", "-n", "50", "--concurrency", "4", "--sessions=1"]),
            (50, 4, 1)
        );
        assert_eq!(scep(&["scep", "-n=10", "-c", "16"]), (10, 16, 2));
        assert!(parse_bench_args(&strings(&["scep", "-n", "0"])).is_err());
        assert!(parse_bench_args(&strings(&["scep", "--concurrency"])).is_err());
        assert!(parse_bench_args(&strings(&["scep", "--sessions", "x"])).is_err());
        assert!(parse_bench_args(&strings(&["scep", "--runs", "3"])).is_err());
    }

    #[test]
    fn test_args_after_double_dash_go_to_cargo_test() {
        let o = parse_test_args(&strings(&["--", "-p", "hsm", "--", "--nocapture"])).unwrap();
        assert_eq!(
            o.cargo_test_args,
            strings(&["-p", "hsm", "--", "--nocapture"])
        );
        assert!(parse_test_args(&strings(&["-p"])).is_err());
    }

    #[test]
    fn failure_codes_are_clamped() {
        assert_eq!(Failure::with_code("x", Some(101)).code, 101);
        assert_eq!(Failure::with_code("x", None).code, 1);
        assert_eq!(Failure::with_code("x", Some(0)).code, 1);
        assert_eq!(Failure::with_code("x", Some(300)).code, 1);
    }
}
