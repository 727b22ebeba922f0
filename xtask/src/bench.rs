//! `cargo xtask bench ca`: how long CA creation and signer start-up take, on release binaries
//! and a SoftHSM2 token, measured the way an operator sees them (CLI commands, process spawn).
//!
//! It sets up two fresh appliances with the demo's code (token `castellan-bench`, officers
//! alice/bob/carol, quorum 2, a free admin port on 127.0.0.1):
//!
//! - `var/bench-ca/`: for each key type, `--runs N` root CAs proposed by alice and approved by
//!   bob. The approve command is where the proposal executes (key generation in the token and
//!   certificate signing), so it is timed separately from the propose command.
//! - `var/bench-start/`: exactly 10 CAs (2 roots and 8 issuing CAs of mixed key types); the
//!   signer is started 5 times and timed from spawn to its `castellan-signer ready` line.
//!
//! The summary is printed and written to `var/bench-ca/results.json`. Every wait is bounded
//! (60 s), and every signer started here is stopped on the way out, on failure too.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::demo::{self, Demo, Officer, Paths, Service};
use crate::tools;
use crate::{Context, Failure, Result};

const TOKEN_LABEL: &str = "castellan-bench";
/// The key types measured, each with the hash its root CA signs with.
const KEY_TYPES: [(&str, &str); 5] = [
    ("rsa-2048", "sha256"),
    ("rsa-3072", "sha256"),
    ("rsa-4096", "sha256"),
    ("ec-p256", "sha256"),
    ("ec-p384", "sha384"),
];
/// The start-up appliance: 2 roots, then 8 issuing CAs (name, key, hash, parent).
const START_ROOTS: [(&str, &str, &str); 2] = [
    ("start-root-1", "ec-p384", "sha384"),
    ("start-root-2", "rsa-3072", "sha256"),
];
const START_ISSUING: [(&str, &str, &str, &str); 8] = [
    ("start-issuing-1", "rsa-2048", "sha256", "start-root-1"),
    ("start-issuing-2", "rsa-3072", "sha256", "start-root-1"),
    ("start-issuing-3", "rsa-4096", "sha256", "start-root-1"),
    ("start-issuing-4", "ec-p256", "sha256", "start-root-1"),
    ("start-issuing-5", "ec-p384", "sha384", "start-root-2"),
    ("start-issuing-6", "rsa-2048", "sha256", "start-root-2"),
    ("start-issuing-7", "ec-p256", "sha256", "start-root-2"),
    ("start-issuing-8", "ec-p384", "sha384", "start-root-2"),
];
const START_CAS: usize = START_ROOTS.len() + START_ISSUING.len();
const START_RUNS: usize = 5;
/// The longest any single wait may take: a CLI command, the ready line, a port to be freed.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Options {
    /// Repetitions per key type.
    pub runs: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { runs: 3 }
    }
}

/// Min, median and max of some samples, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
struct Stats {
    samples: Vec<f64>,
    min: f64,
    median: f64,
    max: f64,
}

impl Stats {
    fn of(samples: &[f64]) -> Option<Stats> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Stats {
            samples: samples.to_vec(),
            min: sorted[0],
            median,
            max: sorted[n - 1],
        })
    }

    fn json(&self) -> Value {
        let round = |v: f64| (v * 10.0).round() / 10.0;
        json!({
            "min": round(self.min),
            "median": round(self.median),
            "max": round(self.max),
            "samples": self.samples.iter().copied().map(round).collect::<Vec<_>>(),
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One key type's CA creation figures.
#[derive(Debug)]
struct CaResult {
    key: &'static str,
    hash: &'static str,
    propose: Stats,
    approve: Stats,
}

#[derive(Debug)]
struct StartResult {
    cas: usize,
    wall: Stats,
    reported: Stats,
}

/// A fresh appliance and its running signer (stopped when this is dropped).
#[derive(Debug)]
struct Appliance {
    paths: Paths,
    demo: Demo,
    signer: Option<Service>,
}

impl Appliance {
    /// Delete `var/NAME/`, set up a token, officers and `castellan-signer init` there on a free
    /// port, and start the signer.
    fn fresh(root: &Path, name: &str, bin_dir: &Path, stop: &AtomicBool) -> Result<Appliance> {
        let dir = root.join("var").join(name);
        let paths = Paths::at(root.to_path_buf(), dir.clone(), bin_dir.to_path_buf());
        if dir.exists() {
            println!("==> deleting {}", paths.show(&dir));
            fs::remove_dir_all(&dir).context(format!("delete {}", dir.display()))?;
        }
        let port = free_port()?;
        let officers = demo::set_up(&paths, port, TOKEN_LABEL, None)?;
        let demo = Demo {
            admin_url: format!("https://127.0.0.1:{port}"),
            admin_port: port,
            admin_ca: paths.state.join("admin-ca.pem"),
            officers,
            cas: Vec::new(),
            scep: None,
            pkcs: Vec::new(),
        };
        let mut appliance = Appliance {
            paths,
            demo,
            signer: None,
        };
        appliance.start(stop)?;
        Ok(appliance)
    }

    /// Start the signer (its stderr goes to the log only) and wait for its ready line.
    fn start(&mut self, stop: &AtomicBool) -> Result<demo::Ready> {
        wait_port_free(self.demo.admin_port)?;
        let signer = self.signer.insert(Service::signer(&self.paths, false)?);
        match signer.wait_ready_line(stop)? {
            Some(ready) => Ok(ready),
            None => Err(interrupted()),
        }
    }

    /// SIGTERM the signer, wait for it to exit and for its port to be free.
    fn stop(&mut self) -> Result<()> {
        if let Some(mut signer) = self.signer.take() {
            signer.stop();
        }
        wait_port_free(self.demo.admin_port)
    }

    fn officers(&self) -> Result<(&Officer, &Officer)> {
        match self.demo.officers.as_slice() {
            [alice, bob, ..] => Ok((alice, bob)),
            _ => Err(Failure::new("the appliance needs two officers")),
        }
    }

    /// Alice proposes, bob approves (which executes the proposal); returns the timings.
    fn create(&self, args: &[&str], stop: &AtomicBool) -> Result<demo::Timings> {
        if stop.load(Ordering::SeqCst) {
            return Err(interrupted());
        }
        let (alice, bob) = self.officers()?;
        demo::propose_and_approve_timed(&self.paths, &self.demo, alice, bob, args, Some(WAIT))
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut signer) = self.signer.take() {
            signer.stop();
        }
    }
}

pub(crate) fn interrupted() -> Failure {
    Failure::with_code("interrupted", Some(130))
}

/// A port on 127.0.0.1 that nothing listens on right now (the kernel picks it).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local address")?.port())
}

fn wait_port_free(port: u16) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(Failure::new(format!(
                    "127.0.0.1:{port} is still in use after {} s: {e}",
                    WAIT.as_secs()
                )));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `N` in `... started in N ms`.
fn reported_ms(line: &str) -> Option<u64> {
    let rest = &line[line.find("started in ")? + "started in ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// `N` in `..., N CAs, ...`.
fn reported_cas(line: &str) -> Option<usize> {
    let before = &line[..line.find(" CAs")?];
    before
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The benchmark to run: `cargo xtask bench ca` or `cargo xtask bench scep`.
#[derive(Debug)]
pub enum Bench {
    Ca(Options),
    Scep(crate::bench_scep::Options),
    Crl(crate::bench_crl::Options),
    Store(StoreOptions),
    Console(crate::bench_console::Options),
    Pkcs12(crate::bench_pkcs12::Options),
}

pub fn run(bench: &Bench) -> Result<()> {
    match bench {
        Bench::Ca(options) => run_ca(options),
        Bench::Scep(options) => crate::bench_scep::run(options),
        Bench::Crl(options) => crate::bench_crl::run(options),
        Bench::Store(options) => run_store(options),
        Bench::Console(options) => crate::bench_console::run(options),
        Bench::Pkcs12(options) => crate::bench_pkcs12::run(options),
    }
}

/// `cargo xtask bench store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Certificates in the store.
    pub n: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { n: 1_000_000 }
    }
}

/// `store-bench --n N --audit-cost 5` on a release build (its store is in a temporary directory, deleted
/// after); its report is printed and kept in `var/bench-store/report.txt`.
fn run_store(options: &StoreOptions) -> Result<()> {
    let root = crate::workspace_root();
    let mut build = Command::new(crate::cargo());
    build
        .args([
            "build",
            "--release",
            "-p",
            "daemon",
            "--example",
            "store-bench",
        ])
        .current_dir(&root);
    tools::run_step(&mut build)?;
    let dir = root.join("var").join("bench-store");
    if dir.exists() {
        fs::remove_dir_all(&dir).context(format!("delete {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).context(format!("create {}", dir.display()))?;
    let bin = demo::target_dir(&root)
        .join("release")
        .join("examples")
        .join("store-bench");
    let out = Command::new(&bin)
        .args(["--n", &options.n.to_string(), "--audit-cost", "5"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("run store-bench")?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{report}");
    demo::write_file(&dir.join("report.txt"), report.as_bytes(), 0o644)?;
    if !out.status.success() {
        return Err(Failure::new(format!("store-bench failed: {}", out.status)));
    }
    println!(
        "
written to var/bench-store/report.txt"
    );
    Ok(())
}

/// What an appliance benchmark needs first: the demo and test tools, and the release build
/// of the signer, the CLI and the edge (and `example` of the daemon); the binaries' directory.
pub(crate) fn release_binaries(example: Option<&str>) -> Result<PathBuf> {
    tools::ensure(&demo::DEMO_TOOLS)?;
    tools::ensure(&crate::suite::TEST_TOOLS)?;
    let root = crate::workspace_root();
    let mut build = Command::new(crate::cargo());
    build
        .args([
            "build",
            "--release",
            "-p",
            "daemon",
            "-p",
            "cli",
            "-p",
            "scep",
            "--bins",
        ])
        .current_dir(&root);
    if let Some(e) = example {
        build.args(["--example", e]);
    }
    tools::run_step(&mut build)?;
    Ok(demo::target_dir(&root).join("release"))
}

/// [`fresh_appliance`] with an RSA-2048 root and issuing CA made through proposals, and its
/// signer running.
pub(crate) fn appliance_with_cas(
    dir: &Path,
    bin_dir: PathBuf,
    token: &str,
    (root_ca, issuing_ca): (&str, &str),
    stop: &AtomicBool,
) -> Result<(Paths, Demo, u16, Service)> {
    let root = crate::workspace_root();
    let (paths, demo, http_port) =
        fresh_appliance(&root, dir, bin_dir, token, &[root_ca, issuing_ca])?;
    let mut signer = Service::signer(&paths, false)?;
    if signer.wait_ready_line(stop)?.is_none() {
        return Err(interrupted());
    }
    create_root_and_issuing(&paths, &demo, stop, root_ca, issuing_ca)?;
    Ok((paths, demo, http_port, signer))
}

/// A fresh appliance for a benchmark in `dir` (deleted first), run with the binaries in
/// `bin_dir`: token `token`, alice/bob/carol with quorum 2, the admin port and the edge's
/// HTTP port free on 127.0.0.1. Returns its paths, its handle (naming `cas`) and the HTTP port.
pub(crate) fn fresh_appliance(
    root: &Path,
    dir: &Path,
    bin_dir: PathBuf,
    token: &str,
    cas: &[&str],
) -> Result<(Paths, Demo, u16)> {
    let paths = Paths::at(root.to_path_buf(), dir.to_path_buf(), bin_dir);
    if dir.exists() {
        println!("==> deleting {}", paths.show(dir));
        fs::remove_dir_all(dir).context(format!("delete {}", dir.display()))?;
    }
    demo::check_socket_path(&paths.socket)?;
    let admin_port = free_port()?;
    let http_port = loop {
        let port = free_port()?;
        if port != admin_port {
            break port;
        }
    };
    let officers = demo::set_up(&paths, admin_port, token, Some(http_port))?;
    let demo = Demo {
        admin_url: format!("https://127.0.0.1:{admin_port}"),
        admin_port,
        admin_ca: paths.state.join("admin-ca.pem"),
        officers,
        cas: cas.iter().map(|c| (*c).to_owned()).collect(),
        scep: None,
        pkcs: Vec::new(),
    };
    Ok((paths, demo, http_port))
}

/// An RSA-2048 root `root` and issuing CA `issuing` (client-auth), each proposed by alice and
/// approved by bob.
pub(crate) fn create_root_and_issuing(
    paths: &Paths,
    demo: &Demo,
    stop: &AtomicBool,
    root: &str,
    issuing: &str,
) -> Result<()> {
    let [alice, bob, ..] = demo.officers.as_slice() else {
        return Err(Failure::new("the appliance needs two officers"));
    };
    let create = |args: &[&str]| {
        if stop.load(Ordering::SeqCst) {
            return Err(interrupted());
        }
        demo::propose_and_approve_timed(paths, demo, alice, bob, args, Some(WAIT)).map(|_| ())
    };
    create(&[
        "ca",
        "create-root",
        root,
        "--subject",
        "CN=Castellan Bench Root,O=Castellan Bench,C=US",
        "--key",
        "rsa-2048",
        "--hash",
        "sha256",
        "--validity",
        "10y",
        "--eku",
        "client-auth",
        "--json",
    ])?;
    create(&[
        "ca",
        "create-issuing",
        issuing,
        "--parent",
        root,
        "--subject",
        "CN=Castellan Bench Issuing,O=Castellan Bench,C=US",
        "--key",
        "rsa-2048",
        "--hash",
        "sha256",
        "--validity",
        "5y",
        "--eku",
        "client-auth",
        "--json",
    ])
}

/// A flag that SIGINT and SIGTERM set: the first signal stops at the next step (stopping the
/// children on the way out); a second one exits at once.
pub(crate) fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .context("install the signal handler")?;
    }
    Ok(stop)
}

fn run_ca(options: &Options) -> Result<()> {
    tools::ensure(&demo::DEMO_TOOLS)?;
    let root = crate::workspace_root();
    let mut build = Command::new(crate::cargo());
    build
        .args(["build", "-p", "daemon", "-p", "cli", "--bins", "--release"])
        .current_dir(&root);
    tools::run_step(&mut build)?;
    let bin_dir = demo::target_dir(&root).join("release");
    for bin in ["castellan-signer", "castellan"] {
        let path = bin_dir.join(bin);
        if !path.is_file() {
            return Err(Failure::new(format!(
                "{} was not built by `cargo build -p daemon -p cli --bins --release`",
                path.display()
            )));
        }
    }

    let stop = stop_flag()?;

    let cas = bench_ca_creation(&root, &bin_dir, options.runs, &stop)?;
    let start = bench_startup(&root, &bin_dir, &stop)?;

    let summary = summary(options.runs, &cas, &start);
    println!();
    print!("{summary}");
    let results = results_path(&root);
    let value = results_json(options.runs, &cas, &start);
    let text = serde_json::to_string_pretty(&value)
        .map_err(|e| Failure::new(format!("encode results.json: {e}")))?;
    demo::write_file(&results, format!("{text}\n").as_bytes(), 0o644)?;
    println!("\nwritten to {}", show(&root, &results));
    Ok(())
}

fn show(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `var/bench-ca/`: `runs` root CAs per key type; the rounds go through every key type in turn
/// so that a slow drift (a growing store, a warming token) spreads over all of them.
fn bench_ca_creation(
    root: &Path,
    bin_dir: &Path,
    runs: usize,
    stop: &AtomicBool,
) -> Result<Vec<CaResult>> {
    println!(
        "\n=== CA creation: {} key types x {runs} runs",
        KEY_TYPES.len()
    );
    let mut appliance = Appliance::fresh(root, "bench-ca", bin_dir, stop)?;
    let mut propose: Vec<Vec<f64>> = vec![Vec::new(); KEY_TYPES.len()];
    let mut approve: Vec<Vec<f64>> = vec![Vec::new(); KEY_TYPES.len()];
    for round in 1..=runs {
        for (i, (key, hash)) in KEY_TYPES.iter().enumerate() {
            let name = format!("bench-root-{key}-{round}");
            let subject = format!("CN=Bench Root {key} {round},O=Castellan Bench,C=US");
            let timings = appliance.create(
                &[
                    "ca",
                    "create-root",
                    &name,
                    "--subject",
                    &subject,
                    "--key",
                    key,
                    "--hash",
                    hash,
                    "--validity",
                    "20y",
                    "--eku",
                    "client-auth",
                    "--json",
                ],
                stop,
            )?;
            let approved = timings.approve.ok_or_else(|| {
                Failure::new(format!("{name} executed without an approval (quorum 1?)"))
            })?;
            println!(
                "    {name}: propose {:.1} ms, approve (execute) {:.1} ms",
                ms(timings.propose),
                ms(approved)
            );
            propose[i].push(ms(timings.propose));
            approve[i].push(ms(approved));
        }
    }
    appliance.stop()?;
    KEY_TYPES
        .iter()
        .zip(propose.iter().zip(&approve))
        .map(|((key, hash), (p, a))| {
            Ok(CaResult {
                key,
                hash,
                propose: Stats::of(p).ok_or_else(|| Failure::new("no samples"))?,
                approve: Stats::of(a).ok_or_else(|| Failure::new("no samples"))?,
            })
        })
        .collect()
}

/// `var/bench-start/`: exactly [`START_CAS`] CAs, then [`START_RUNS`] timed starts.
fn bench_startup(root: &Path, bin_dir: &Path, stop: &AtomicBool) -> Result<StartResult> {
    println!("\n=== signer start-up with {START_CAS} CAs: {START_RUNS} runs");
    let mut appliance = Appliance::fresh(root, "bench-start", bin_dir, stop)?;
    let eku = "client-auth,server-auth";
    for (name, key, hash) in START_ROOTS {
        let subject = format!("CN={name},O=Castellan Bench,C=US");
        appliance.create(
            &[
                "ca",
                "create-root",
                name,
                "--subject",
                &subject,
                "--key",
                key,
                "--hash",
                hash,
                "--validity",
                "20y",
                "--eku",
                eku,
                "--json",
            ],
            stop,
        )?;
    }
    for (name, key, hash, parent) in START_ISSUING {
        let subject = format!("CN={name},O=Castellan Bench,C=US");
        appliance.create(
            &[
                "ca",
                "create-issuing",
                name,
                "--parent",
                parent,
                "--subject",
                &subject,
                "--key",
                key,
                "--hash",
                hash,
                "--validity",
                "5y",
                "--eku",
                eku,
                "--json",
            ],
            stop,
        )?;
    }
    appliance.stop()?;

    let mut wall = Vec::new();
    let mut reported = Vec::new();
    for run in 1..=START_RUNS {
        if stop.load(Ordering::SeqCst) {
            return Err(interrupted());
        }
        let ready = appliance.start(stop)?;
        let spawned_at = appliance
            .signer
            .as_ref()
            .map(|s| s.spawned_at)
            .ok_or_else(|| Failure::new("no signer"))?;
        let took = ready.at.duration_since(spawned_at);
        let line = ready.line;
        let own = reported_ms(&line)
            .ok_or_else(|| Failure::new(format!("no `started in N ms` in: {line}")))?;
        let cas =
            reported_cas(&line).ok_or_else(|| Failure::new(format!("no `N CAs` in: {line}")))?;
        if cas != START_CAS {
            return Err(Failure::new(format!(
                "the signer reports {cas} CAs, not {START_CAS}: {line}"
            )));
        }
        println!(
            "    run {run}: ready after {:.1} ms (signer: started in {own} ms, {cas} CAs)",
            ms(took)
        );
        wall.push(ms(took));
        // The signer's figure is whole milliseconds.
        reported.push(own as f64);
        appliance.stop()?;
    }
    Ok(StartResult {
        cas: START_CAS,
        wall: Stats::of(&wall).ok_or_else(|| Failure::new("no samples"))?,
        reported: Stats::of(&reported).ok_or_else(|| Failure::new("no samples"))?,
    })
}

fn summary(runs: usize, cas: &[CaResult], start: &StartResult) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "CA creation (root CA, SoftHSM2, release build), {runs} runs per key type, ms:"
    );
    let _ = writeln!(
        out,
        "  {:<9} {:<7} | {:<29} | propose",
        "key", "hash", "approve (executes)"
    );
    let _ = writeln!(
        out,
        "  {:<9} {:<7} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "", "", "min", "median", "max", "min", "median", "max"
    );
    for r in cas {
        let _ = writeln!(
            out,
            "  {:<9} {:<7} | {:>9.1} {:>9.1} {:>9.1} | {:>9.1} {:>9.1} {:>9.1}",
            r.key,
            r.hash,
            r.approve.min,
            r.approve.median,
            r.approve.max,
            r.propose.min,
            r.propose.median,
            r.propose.max
        );
    }
    let _ = writeln!(
        out,
        "  (approve = bob's `proposal approve`, which executes: key generation in the token + \
         certificate signing)"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "signer start-up with {} CAs, {} runs, ms: {:>9} {:>9} {:>9}",
        start.cas,
        start.wall.samples.len(),
        "min",
        "median",
        "max"
    );
    for (what, s) in [
        ("spawn -> ready line (measured)", &start.wall),
        ("`started in N ms` (signer's own)", &start.reported),
    ] {
        let _ = writeln!(
            out,
            "  {what:<40} {:>9.1} {:>9.1} {:>9.1}",
            s.min, s.median, s.max
        );
    }
    out
}

fn results_json(runs: usize, cas: &[CaResult], start: &StartResult) -> Value {
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(0);
    json!({
        "benchmark": "cargo xtask bench ca",
        "unix_time": unix_time,
        "cpus": cpus,
        "build": "release",
        "token": format!("SoftHSM2, label {TOKEN_LABEL}"),
        "unit": "ms",
        "ca_creation": {
            "runs": runs,
            "appliance": "var/bench-ca",
            "note": "root CAs, --validity 20y --eku client-auth; propose = alice's create-root \
                     command, approve = bob's proposal approve, which executes it (key \
                     generation in the token + certificate signing); each timed from spawn to \
                     exit of the castellan CLI",
            "key_types": cas.iter().map(|r| json!({
                "key": r.key,
                "hash": r.hash,
                "propose_ms": r.propose.json(),
                "approve_ms": r.approve.json(),
            })).collect::<Vec<_>>(),
        },
        "startup": {
            "appliance": "var/bench-start",
            "cas": start.cas,
            "runs": start.wall.samples.len(),
            "wall_ms": start.wall.json(),
            "self_reported_ms": start.reported.json(),
            "note": "wall = spawn of castellan-signer run to its `castellan-signer ready` \
                     stderr line; self_reported = the `started in N ms` of that line",
        },
    })
}

/// Where `cargo xtask bench ca` writes its results.
fn results_path(root: &Path) -> PathBuf {
    root.join("var").join("bench-ca").join("results.json")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stats_min_median_max() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        let s = Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.5, 4.0));
        assert_eq!(s.samples, vec![4.0, 1.0, 2.0, 3.0]);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn ready_line_is_parsed() {
        let line = "2025-01-01T00:00:00Z  INFO castellan_signer: castellan-signer ready: admin \
                    port https://127.0.0.1:8443, 10 CAs, started in 42 ms";
        assert_eq!(reported_ms(line), Some(42));
        assert_eq!(reported_cas(line), Some(10));
        assert_eq!(reported_ms("castellan-signer ready"), None);
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        wait_port_free(port).unwrap();
    }
}
