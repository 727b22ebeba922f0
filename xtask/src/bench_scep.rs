//! `cargo xtask bench scep`: SCEP enrolments per second of castellan-edge + castellan-signer,
//! next to the most the token allows and to micromdm's scepserver, on this machine.
//!
//! Everything lives under `var/bench-scep/` (deleted first):
//!
//! 1. a fresh appliance (token `castellan-bench`, alice/bob/carol, quorum 2, admin port and
//!    edge on free ports of 127.0.0.1), an RSA-2048 root and issuing CA, and the SCEP profile
//!    `bench` with a random static challenge, all made through proposals;
//! 2. the HSM-bound limit: `hsm-bench` on the same token, RSA-2048 sign and decrypt with
//!    `--sessions S`. An enrolment costs three RSA-2048 private-key operations (the RA
//!    decrypts the content key, the CA signs the certificate, the RA signs the CertRep), so
//!    the limit is 1 / (2/sign + 1/decrypt) enrolments per second;
//! 3. `scep-bench` against the edge: a warm-up of [`WARM_UP`] requests, then N at
//!    concurrency C. The CPU the signer, the edge, scep-bench itself and everything else
//!    used during the timed run is sampled from `/proc`, to show what limits the figure;
//! 4. micromdm's `scepserver` (Debian package `scep`) with its own depot in
//!    `var/bench-scep/mdm/`, on a free port (it cannot be bound to 127.0.0.1, so only
//!    127.0.0.1 is sent to), the same warm-up and run, then stopped by its pid.
//!
//! Other work on the machine (a build) takes CPU from whatever is measured, so each
//! measurement waits (at most 60 s) for the machine to be quiet, and is repeated (up to
//! [`ATTEMPTS`] times, keeping the least disturbed) when other processes, or the hypervisor
//! (CPU steal of a virtual machine), took more than [`BUSY_MACHINE`] cores during it; the summary says when the figures were disturbed anyway.
//!
//! The summary is printed and written to `var/bench-scep/results.json`. Every child is
//! stopped on the way out, on failure and on Ctrl-C too; every wait is bounded.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::bench::{WAIT, free_port, interrupted, stop_flag};
use crate::demo::{self, Demo, Paths, Service};
use crate::tools::{self, Requirements};
use crate::{Context, Failure, Result};

const TOKEN_LABEL: &str = "castellan-bench";
const PROFILE: &str = "bench";
const ROOT_CA: &str = "bench-root";
const ISSUING_CA: &str = "bench-issuing";
/// Requests sent before each measured run, not counted.
const WARM_UP: usize = 20;
/// How long hsm-bench runs each operation.
const HSM_SECONDS: u64 = 5;
/// scepserver prints this on stderr when it starts listening.
const SCEPSERVER_READY: &str = "msg=listening";
/// How often the CPU of the processes is sampled during a scep-bench run.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

const SCEP_TOOLS: Requirements = Requirements {
    programs: &["scepserver"],
    libraries: &[],
    packages: &["scep"],
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Enrolments per measured run.
    pub n: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// hsm-bench sessions.
    pub sessions: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            n: 3000,
            concurrency: 8,
            sessions: 2,
        }
    }
}

/// What `scep-bench --json` reports.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    sent: u64,
    verified: u64,
    seconds: f64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    concurrency: u64,
}

impl Run {
    /// The JSON line of `scep-bench --json`'s stdout.
    fn parse(stdout: &str) -> Option<Run> {
        let value: Value = stdout
            .lines()
            .rev()
            .map(str::trim)
            .filter(|l| l.starts_with('{'))
            .find_map(|l| serde_json::from_str(l).ok())?;
        let f = |key: &str| value.get(key).and_then(Value::as_f64);
        let u = |key: &str| value.get(key).and_then(Value::as_u64);
        Some(Run {
            sent: u("sent")?,
            verified: u("verified")?,
            seconds: f("seconds")?,
            per_second: f("per_second")?,
            p50_ms: f("p50_ms")?,
            p99_ms: f("p99_ms")?,
            concurrency: u("concurrency")?,
        })
    }

    fn line(&self) -> String {
        format!(
            "{:.1} enrolments/s, p50 {:.1} ms, p99 {:.1} ms, verified {}/{} ({:.2} s at \
             concurrency {})",
            self.per_second,
            self.p50_ms,
            self.p99_ms,
            self.verified,
            self.sent,
            self.seconds,
            self.concurrency
        )
    }

    fn json(&self) -> Value {
        json!({
            "sent": self.sent,
            "verified": self.verified,
            "seconds": self.seconds,
            "per_second": self.per_second,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "concurrency": self.concurrency,
        })
    }
}

/// The rates hsm-bench measured, in operations per second.
#[derive(Debug, Clone, PartialEq)]
struct HsmLimit {
    sessions: usize,
    sign: f64,
    decrypt: f64,
    sign_cpu: Option<CpuUse>,
    decrypt_cpu: Option<CpuUse>,
}

impl HsmLimit {
    /// Enrolments per second if the token did nothing but the three private-key operations
    /// of each enrolment: two signatures and one decryption.
    fn enrolments_per_second(&self) -> f64 {
        1.0 / (2.0 / self.sign + 1.0 / self.decrypt)
    }
}

/// `R` in hsm-bench's `...: R ops/s`.
fn ops_per_second(line: &str) -> Option<f64> {
    let before = line.trim().strip_suffix("ops/s")?.trim_end();
    before
        .rsplit(|c: char| c.is_whitespace() || c == ':')
        .next()?
        .parse()
        .ok()
        .filter(|r: &f64| r.is_finite() && *r > 0.0)
}

/// CPU use over a timed run, in cores (1.0 = one core busy all the time).
#[derive(Debug, Clone, PartialEq)]
struct CpuUse {
    /// Per process we watched, by name.
    processes: Vec<(String, f64)>,
    /// The whole machine, from `/proc/stat` (busy = not idle and not iowait; includes steal).
    machine: f64,
    /// Taken from this virtual machine by the hypervisor (`steal` in `/proc/stat`): CPU we
    /// waited for and did not get.
    steal: f64,
    cpus: usize,
}

impl CpuUse {
    /// What the processes we did not watch used.
    fn other(&self) -> f64 {
        let ours: f64 = self.processes.iter().map(|(_, c)| c).sum();
        (self.machine - self.steal - ours).max(0.0)
    }

    /// Milliseconds of CPU `process` spent per operation, at `rate` operations per second.
    fn ms_per_op(&self, process: &str, rate: f64) -> Option<f64> {
        let cores = self.processes.iter().find(|(n, _)| n == process)?.1;
        (rate > 0.0).then(|| cores * 1000.0 / rate)
    }

    /// CPU the measured processes could not have: other processes' and the hypervisor's.
    fn disturbance(&self) -> f64 {
        self.other() + self.steal
    }

    fn line(&self) -> String {
        let mut parts: Vec<String> = self
            .processes
            .iter()
            .map(|(name, cores)| format!("{name} {cores:.2}"))
            .collect();
        parts.push(format!("other processes {:.2}", self.other()));
        parts.push(format!("stolen by the hypervisor {:.2}", self.steal));
        parts.push(format!(
            "idle {:.2}",
            (self.cpus as f64 - self.machine).max(0.0)
        ));
        format!("CPU, in cores of {}: {}", self.cpus, parts.join(", "))
    }

    fn json(&self) -> Value {
        let round = |v: f64| (v * 100.0).round() / 100.0;
        let mut map = serde_json::Map::new();
        for (name, cores) in &self.processes {
            map.insert(name.clone(), json!(round(*cores)));
        }
        map.insert("other_processes".into(), json!(round(self.other())));
        map.insert("steal".into(), json!(round(self.steal)));
        map.insert("machine_busy".into(), json!(round(self.machine)));
        map.insert("cpus".into(), json!(self.cpus));
        Value::Object(map)
    }
}

/// One sample: when, the CPU ticks of each watched process (`None` once it is gone), and the
/// machine's busy ticks.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    processes: Vec<Option<u64>>,
    machine: Option<MachineTicks>,
}

/// Ticks of the whole machine (every CPU) from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MachineTicks {
    /// Not idle and not iowait (steal included).
    busy: u64,
    steal: u64,
}

/// utime + stime of a process, in clock ticks, from `/proc/PID/stat`.
fn process_ticks(pid: u32) -> Option<u64> {
    parse_process_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_process_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn machine_ticks() -> Option<MachineTicks> {
    parse_machine_ticks(&fs::read_to_string("/proc/stat").ok()?)
}

fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some(MachineTicks {
        busy: total - idle,
        steal: values.get(7).copied().unwrap_or(0),
    })
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// CPU use between `start` and `end`, from the last sample at or before `start` to the first
/// at or after `end`.
fn cpu_use(
    samples: &[Sample],
    names: &[String],
    start: Instant,
    end: Instant,
    ticks_per_second: f64,
) -> Option<CpuUse> {
    let first = samples.iter().rev().find(|s| s.at <= start)?;
    let last = samples.iter().find(|s| s.at >= end)?;
    let seconds = last.at.checked_duration_since(first.at)?.as_secs_f64();
    if seconds <= 0.0 {
        return None;
    }
    let cores = |a: Option<u64>, b: Option<u64>| {
        Some(b?.checked_sub(a?)? as f64 / ticks_per_second / seconds)
    };
    let processes = names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let a = *first.processes.get(i)?;
            let b = *last.processes.get(i)?;
            Some((name.clone(), cores(a, b)?))
        })
        .collect();
    Some(CpuUse {
        processes,
        machine: cores(first.machine.map(|m| m.busy), last.machine.map(|m| m.busy))?,
        steal: cores(
            first.machine.map(|m| m.steal),
            last.machine.map(|m| m.steal),
        )?,
        cpus: std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
    })
}

/// The programs the benchmark runs.
struct Bins {
    hsm_bench: PathBuf,
    scep_bench: PathBuf,
}

pub fn run(options: &Options) -> Result<()> {
    tools::ensure(&demo::DEMO_TOOLS)?;
    tools::ensure(&SCEP_TOOLS)?;
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
            "-p",
            "hsm",
        ])
        .args(["--bins", "--example", "hsm-bench"])
        .current_dir(&root);
    tools::run_step(&mut build)?;
    let bin_dir = demo::target_dir(&root).join("release");
    for bin in [
        "castellan-signer",
        "castellan",
        "castellan-edge",
        "examples/hsm-bench",
        "scep-bench",
    ] {
        let path = bin_dir.join(bin);
        if !path.is_file() {
            return Err(Failure::new(format!(
                "{} was not built by `cargo build --release -p daemon -p cli -p scep -p hsm --bins --example hsm-bench`",
                path.display()
            )));
        }
    }
    let bins = Bins {
        hsm_bench: bin_dir.join("examples").join("hsm-bench"),
        scep_bench: bin_dir.join("scep-bench"),
    };
    let stop = stop_flag()?;

    let dir = root.join("var").join("bench-scep");
    // 1. The appliance.
    println!("\n=== appliance");
    let (paths, demo, http_port) =
        crate::bench::fresh_appliance(&root, &dir, bin_dir, TOKEN_LABEL, &[ROOT_CA, ISSUING_CA])?;
    // Dropped in reverse order: the edge (the signer's client) stops first.
    let mut signer = Service::signer(&paths, false)?;
    if signer.wait_ready_line(&stop)?.is_none() {
        return Err(interrupted());
    }
    let mut edge = Service::edge(&paths, http_port, false)?;
    if edge.wait_ready_line(&stop)?.is_none() {
        return Err(interrupted());
    }
    let challenge = create_cas_and_profile(&paths, &demo, &stop)?;
    let url = format!("http://127.0.0.1:{http_port}/scep/{PROFILE}");

    // 2. The HSM-bound limit, on the same token (the signer and the edge are idle).
    println!(
        "\n=== HSM-bound limit: hsm-bench, RSA-2048, {} sessions, {HSM_SECONDS} s per operation",
        options.sessions
    );
    let (sign, sign_cpu) = cleanest(&stop, || {
        hsm_bench(&paths, &bins, options.sessions, "sign", &stop)
    })?;
    let (decrypt, decrypt_cpu) = cleanest(&stop, || {
        hsm_bench(&paths, &bins, options.sessions, "decrypt", &stop)
    })?;
    let hsm = HsmLimit {
        sessions: options.sessions,
        sign,
        decrypt,
        sign_cpu,
        decrypt_cpu,
    };
    println!(
        "    limit = 1 / (2/sign + 1/decrypt) = 1 / (2/{sign:.1} + 1/{decrypt:.1}) = {:.1} \
         enrolments/s",
        hsm.enrolments_per_second()
    );

    // 3. Castellan.
    println!(
        "\n=== Castellan: scep-bench against {url}, {} enrolments at concurrency {}",
        options.n, options.concurrency
    );
    let watched = [("signer", signer.pid()), ("edge", edge.pid())];
    let (castellan, castellan_cpu) =
        warm_up_and_measure(&bins, &url, &challenge, options, &watched, &stop)?;
    edge.stop();
    signer.stop();

    // 4. micromdm.
    println!(
        "\n=== micromdm scepserver: {} enrolments at concurrency {}",
        options.n, options.concurrency
    );
    let (mdm_url, mut scepserver, mdm_challenge) = start_scepserver(&paths, &stop)?;
    let watched = [("scepserver", scepserver.pid())];
    let measured = warm_up_and_measure(&bins, &mdm_url, &mdm_challenge, options, &watched, &stop);
    println!("==> stopping scepserver (pid {})", scepserver.pid());
    scepserver.stop();
    let (micromdm, micromdm_cpu) = measured?;

    // 5. Summary.
    let summary = summary(
        options,
        &hsm,
        &castellan,
        &micromdm,
        &castellan_cpu,
        &micromdm_cpu,
    );
    println!();
    print!("{summary}");
    let results = dir.join("results.json");
    let value = results_json(
        options,
        &hsm,
        &castellan,
        castellan_cpu.as_ref(),
        &micromdm,
        micromdm_cpu.as_ref(),
    );
    let text = serde_json::to_string_pretty(&value)
        .map_err(|e| Failure::new(format!("encode results.json: {e}")))?;
    demo::write_file(&results, format!("{text}\n").as_bytes(), 0o644)?;
    println!("\nwritten to {}", paths.show(&results));
    Ok(())
}

/// The root and issuing CA (RSA-2048) and the profile `bench` with a random static challenge,
/// each proposed by alice and approved by bob. Returns the challenge.
fn create_cas_and_profile(paths: &Paths, demo: &Demo, stop: &AtomicBool) -> Result<String> {
    crate::bench::create_root_and_issuing(paths, demo, stop, ROOT_CA, ISSUING_CA)?;
    let [alice, bob, ..] = demo.officers.as_slice() else {
        return Err(Failure::new("the appliance needs two officers"));
    };
    let create = |args: &[&str]| {
        if stop.load(Ordering::SeqCst) {
            return Err(interrupted());
        }
        demo::propose_and_approve_timed(paths, demo, alice, bob, args, Some(WAIT)).map(|_| ())
    };
    let challenge = demo::random_hex(16)?;
    let secret_file = paths.demo.join(format!("{PROFILE}.challenge"));
    demo::write_file(&secret_file, format!("{challenge}\n").as_bytes(), 0o600)?;
    let secret_arg = secret_file.to_string_lossy().into_owned();
    let created = create(&[
        "profile",
        "create",
        PROFILE,
        "--ca",
        ISSUING_CA,
        "--challenge",
        "static",
        "--secret-file",
        &secret_arg,
        "--json",
    ]);
    let _ = fs::remove_file(&secret_file);
    created?;
    Ok(challenge)
}

/// `hsm-bench --op OP` on the appliance's token; returns its operations per second and the
/// CPU used while it measured.
fn hsm_bench(
    paths: &Paths,
    bins: &Bins,
    sessions: usize,
    op: &str,
    stop: &AtomicBool,
) -> Result<(f64, Option<CpuUse>)> {
    let mut cmd = Command::new(&bins.hsm_bench);
    cmd.args(["--token-label", TOKEN_LABEL])
        .arg("--pin-file")
        .arg(&paths.pin)
        .args(["--key", "rsa-2048", "--sessions", &sessions.to_string()])
        .args(["--seconds", &HSM_SECONDS.to_string(), "--op", op])
        .env("SOFTHSM2_CONF", &paths.softhsm2_conf)
        .current_dir(&paths.root);
    let what = tools::describe(&cmd);
    println!("==> {what}");
    let run = run_sampled(&mut cmd, &what, "hsm-bench", &[], WAIT, stop)?;
    if !run.status.success() {
        return Err(Failure::with_code(
            format!(
                "{what} failed ({}):\n{}{}",
                run.status, run.stdout, run.stderr
            ),
            run.status.code(),
        ));
    }
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("ops/s"))
        .ok_or_else(|| Failure::new(format!("{what} printed no `ops/s`:\n{}", run.stdout)))?;
    println!("    {}", line.trim());
    let rate = ops_per_second(line)
        .ok_or_else(|| Failure::new(format!("cannot read the rate in: {line}")))?;
    // It measures for the last HSM_SECONDS of its life (after making its key).
    let cpu = run.samples.last().and_then(|last| {
        let start = last.at.checked_sub(Duration::from_secs(HSM_SECONDS))?;
        run.cpu(start, last.at)
    });
    if let Some(cpu) = &cpu {
        println!("    {}", cpu.line());
    }
    Ok((rate, cpu))
}

/// Wait (at most [`WAIT`]) until the machine is quiet: less than [`BUSY_MACHINE`] cores busy
/// over [`QUIET_WINDOW`], while our own children are idle. Other work on the machine (a build)
/// takes CPU from whatever is measured. Returns the busy cores last seen.
fn wait_until_quiet(stop: &AtomicBool) -> Result<f64> {
    let ticks_per_second = clock_ticks_per_second();
    let deadline = Instant::now() + WAIT;
    let mut announced = false;
    loop {
        let (t0, b0) = (Instant::now(), machine_ticks());
        std::thread::sleep(QUIET_WINDOW);
        let (t1, b1) = (Instant::now(), machine_ticks());
        let busy = match (b0, b1) {
            (Some(b0), Some(b1)) => {
                b1.busy.saturating_sub(b0.busy) as f64 / ticks_per_second / (t1 - t0).as_secs_f64()
            }
            // No /proc/stat: nothing to wait for.
            _ => return Ok(0.0),
        };
        if busy < BUSY_MACHINE {
            return Ok(busy);
        }
        if stop.load(Ordering::SeqCst) {
            return Err(interrupted());
        }
        if Instant::now() >= deadline {
            println!(
                "    the machine is still busy ({busy:.2} cores) after {} s: measuring anyway",
                WAIT.as_secs()
            );
            return Ok(busy);
        }
        if !announced {
            announced = true;
            println!(
                "    other processes keep {busy:.2} cores busy: waiting up to {} s for the \
                 machine to be quiet",
                WAIT.as_secs()
            );
        }
    }
}

/// A warm-up of [`WARM_UP`] requests (printed, not counted), then the measured run with the
/// CPU of `watched` sampled.
fn warm_up_and_measure(
    bins: &Bins,
    url: &str,
    challenge: &str,
    options: &Options,
    watched: &[(&str, u32)],
    stop: &AtomicBool,
) -> Result<(Run, Option<CpuUse>)> {
    let warm_up = Options {
        n: WARM_UP,
        ..options.clone()
    };
    let (run, _) = scep_bench(bins, url, challenge, &warm_up, &[], stop)?;
    println!("    warm-up (not counted): {}", run.line());
    cleanest(stop, || {
        let (run, cpu) = scep_bench(bins, url, challenge, options, watched, stop)?;
        println!("    {}", run.line());
        if let Some(cpu) = &cpu {
            println!("    {}", cpu.line());
        }
        Ok((run, cpu))
    })
}

/// Measure once the machine is quiet; if other processes still took more than
/// [`BUSY_MACHINE`] cores meanwhile, measure again, up to [`ATTEMPTS`] times, and keep the
/// measurement they disturbed least.
fn cleanest<T>(
    stop: &AtomicBool,
    mut measure: impl FnMut() -> Result<(T, Option<CpuUse>)>,
) -> Result<(T, Option<CpuUse>)> {
    let mut best: Option<(T, Option<CpuUse>)> = None;
    for attempt in 1..=ATTEMPTS {
        wait_until_quiet(stop)?;
        let (value, cpu) = measure()?;
        let other = cpu.as_ref().map_or(0.0, CpuUse::disturbance);
        let best_other = best
            .as_ref()
            .map(|(_, cpu)| cpu.as_ref().map_or(0.0, CpuUse::disturbance));
        if best_other.is_none_or(|b| other < b) {
            best = Some((value, cpu));
        }
        if other <= BUSY_MACHINE {
            break;
        }
        if attempt < ATTEMPTS {
            println!(
                "    other processes and the hypervisor took {other:.2} cores meanwhile: \
                 measuring again \
                 (attempt {} of {ATTEMPTS})",
                attempt + 1
            );
        } else {
            println!(
                "    other processes or the hypervisor disturbed all {ATTEMPTS} attempts: \
                 keeping the least \
                 disturbed one"
            );
        }
    }
    best.ok_or_else(|| Failure::new("nothing was measured"))
}

/// A finished child, with the CPU samples taken while it ran.
struct Sampled {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// The watched processes, then the child itself.
    names: Vec<String>,
    samples: Vec<Sample>,
    /// When the child printed a stderr line starting with `built ` (scep-bench: its timed
    /// run starts right after).
    built_at: Option<Instant>,
}

impl Sampled {
    fn cpu(&self, start: Instant, end: Instant) -> Option<CpuUse> {
        cpu_use(
            &self.samples,
            &self.names,
            start,
            end,
            clock_ticks_per_second(),
        )
    }
}

/// Run `cmd` with its output captured, sampling the CPU of `watched` and of the child itself
/// every [`SAMPLE_EVERY`]. The child is killed if it has not finished within `allowed`, or on
/// Ctrl-C.
fn run_sampled(
    cmd: &mut Command,
    what: &str,
    name: &str,
    watched: &[(&str, u32)],
    allowed: Duration,
    stop: &AtomicBool,
) -> Result<Sampled> {
    if stop.load(Ordering::SeqCst) {
        return Err(interrupted());
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(format!("start {what}"))?;
    let pid = child.id();
    let (built_tx, built_rx) = mpsc::channel();
    let stderr = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("built ") {
                    let _ = built_tx.send(Instant::now());
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        })
    });
    let stdout = child.stdout.take().map(|mut stdout| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        })
    });

    let mut names: Vec<String> = watched.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.push(name.to_owned());
    let pids: Vec<u32> = watched.iter().map(|(_, p)| *p).chain([pid]).collect();
    let deadline = Instant::now() + allowed;
    let mut samples = Vec::new();
    let status = loop {
        // Taken before `try_wait` reaps the child, so its last sample still reads.
        samples.push(Sample {
            at: Instant::now(),
            processes: pids.iter().map(|p| process_ticks(*p)).collect(),
            machine: machine_ticks(),
        });
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => break Err(Failure::new(format!("wait for {what}: {e}"))),
        }
        if stop.load(Ordering::SeqCst) {
            break Err(interrupted());
        }
        if Instant::now() >= deadline {
            break Err(Failure::new(format!(
                "{what} did not finish within {} s (killed)",
                allowed.as_secs()
            )));
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    if status.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let stdout = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(Sampled {
        status: status?,
        stdout,
        stderr,
        names,
        samples,
        built_at: built_rx.try_recv().ok(),
    })
}

/// Run scep-bench (killed if it has not finished within the time allowed, or on Ctrl-C) and
/// the CPU `watched` and scep-bench itself used over its timed run. A run in which not every
/// reply verified (exit code 2) still counts: the figures say how many did.
fn scep_bench(
    bins: &Bins,
    url: &str,
    challenge: &str,
    options: &Options,
    watched: &[(&str, u32)],
    stop: &AtomicBool,
) -> Result<(Run, Option<CpuUse>)> {
    let mut cmd = Command::new(&bins.scep_bench);
    cmd.args(["--url", url, "--challenge", challenge])
        .args(["-n", &options.n.to_string()])
        .args(["-c", &options.concurrency.to_string(), "--json"]);
    // The challenge stays out of the messages.
    let what = format!(
        "scep-bench --url {url} --challenge ... -n {} -c {} --json",
        options.n, options.concurrency
    );
    println!("==> {what}");
    // Building the requests makes one RSA key per request before the timed run.
    let allowed = WAIT + Duration::from_millis(200).saturating_mul(options.n as u32);
    let sampled = run_sampled(&mut cmd, &what, "scep-bench", watched, allowed, stop)?;
    let Some(run) = Run::parse(&sampled.stdout) else {
        return Err(Failure::with_code(
            format!(
                "{what} failed ({}):\n{}{}",
                sampled.status, sampled.stdout, sampled.stderr
            ),
            sampled.status.code(),
        ));
    };
    if !sampled.status.success() {
        // Which failure, in scep-bench's words (it prints the first one).
        for line in sampled.stderr.lines().filter(|l| !l.starts_with("built ")) {
            println!("    scep-bench: {line}");
        }
    }
    let cpu = sampled.built_at.and_then(|start| {
        let end = start + Duration::from_secs_f64(run.seconds);
        sampled.cpu(start, end)
    });
    Ok((run, cpu))
}

/// `scepserver ca -init` a depot in `var/bench-scep/mdm/`, then start scepserver on a free
/// port with a random challenge, and wait until 127.0.0.1 accepts connections. Returns its
/// SCEP URL, the service and its challenge.
fn start_scepserver(paths: &Paths, stop: &AtomicBool) -> Result<(String, Service, String)> {
    let depot = paths.demo.join("mdm");
    let mut init = Command::new("scepserver");
    init.args(["ca", "-init", "-depot"])
        .arg(&depot)
        .args(["-keySize", "2048"])
        .current_dir(&paths.demo);
    let what = tools::describe(&init);
    println!("==> {what}");
    tools::run_quietly_within(&mut init, &what, WAIT)?;

    let port = free_port()?;
    let challenge = demo::random_hex(16)?;
    let mut cmd = Command::new("scepserver");
    cmd.arg("-depot")
        .arg(&depot)
        .args(["-port", &port.to_string(), "-challenge", &challenge]);
    let log = paths.demo.join("mdm.log");
    let mut service = Service::spawn(paths, cmd, "scepserver", SCEPSERVER_READY, &log, None)?;
    if service.wait_ready_line(stop)?.is_none() {
        return Err(interrupted());
    }
    // It logs `listening` just before it binds.
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err() {
        if stop.load(Ordering::SeqCst) {
            return Err(interrupted());
        }
        if Instant::now() >= deadline {
            return Err(service.failure(&format!(
                "scepserver does not accept connections on 127.0.0.1:{port} after {} s",
                WAIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("    scepserver pid {} on 127.0.0.1:{port}", service.pid());
    Ok((format!("http://127.0.0.1:{port}/scep"), service, challenge))
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// The HSM-bound ratio should be at least this.
const HSM_TARGET: f64 = 0.75;
/// Castellan over micromdm should be at least this.
const MICROMDM_TARGET: f64 = 5.0;
/// Other processes using more than this many cores during a measurement make it unreliable.
const BUSY_MACHINE: f64 = 0.25;
/// Measurements per figure, at most, while other processes disturb them.
const ATTEMPTS: usize = 3;
/// How long the machine is watched to decide whether it is quiet.
const QUIET_WINDOW: Duration = Duration::from_millis(1000);

fn verdict(value: Option<f64>, target: f64) -> String {
    match value {
        Some(v) if v >= target => format!("{v:.2} (target >= {target}: met)"),
        Some(v) => format!("{v:.2} (target >= {target}: NOT met)"),
        None => format!("n/a (target >= {target})"),
    }
}

fn summary(
    options: &Options,
    hsm: &HsmLimit,
    castellan: &Run,
    micromdm: &Run,
    castellan_cpu: &Option<CpuUse>,
    micromdm_cpu: &Option<CpuUse>,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let cpus = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(0);
    let limit = hsm.enrolments_per_second();
    let _ = writeln!(
        out,
        "SCEP enrolment throughput (RSA-2048 CA and RA, SoftHSM2, release build, {cpus} CPUs), \
         {} enrolments at concurrency {}:",
        options.n, options.concurrency
    );
    let _ = writeln!(
        out,
        "  HSM-bound limit   {limit:>7.1} enrolments/s = 1 / (2/sign + 1/decrypt), RSA-2048 with \
         {} sessions: sign {:.1} ops/s, decrypt {:.1} ops/s",
        hsm.sessions, hsm.sign, hsm.decrypt
    );
    for (op, cpu) in [("sign", &hsm.sign_cpu), ("decrypt", &hsm.decrypt_cpu)] {
        if let Some(cpu) = cpu {
            let _ = writeln!(out, "                    {op}: {}", cpu.line());
        }
    }
    for (name, run, cpu) in [
        ("Castellan", castellan, castellan_cpu),
        ("micromdm", micromdm, micromdm_cpu),
    ] {
        let _ = writeln!(
            out,
            "  {name:<17} {:>7.1} enrolments/s, p50 {:.1} ms, p99 {:.1} ms, verified {}/{}",
            run.per_second, run.p50_ms, run.p99_ms, run.verified, run.sent
        );
        if let Some(cpu) = cpu {
            let _ = writeln!(out, "                    {}", cpu.line());
            for process in ["signer", "scepserver"] {
                if let Some(ms) = cpu.ms_per_op(process, run.per_second) {
                    let _ = writeln!(
                        out,
                        "                    {process} CPU per enrolment: {ms:.2} ms"
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "  Castellan / HSM-bound limit: {}",
        verdict(ratio(castellan.per_second, limit), HSM_TARGET)
    );
    let _ = writeln!(
        out,
        "  Castellan / micromdm:        {}",
        verdict(
            ratio(castellan.per_second, micromdm.per_second),
            MICROMDM_TARGET
        )
    );
    let busiest = [&hsm.sign_cpu, &hsm.decrypt_cpu, castellan_cpu, micromdm_cpu]
        .into_iter()
        .flatten()
        .map(CpuUse::disturbance)
        .fold(0.0, f64::max);
    if busiest > BUSY_MACHINE {
        let _ = writeln!(
            out,
            "  note: other processes and the hypervisor (steal) took up to {busiest:.2} cores \
             during the measurements: the machine was not idle, so the figures above are low and \
             their ratios unfair; run it again on an idle machine"
        );
    }
    for (name, run) in [("Castellan", castellan), ("micromdm", micromdm)] {
        if run.verified < run.sent {
            let _ = writeln!(
                out,
                "  note: {} of {name}'s {} replies did not verify (enrolments/s counts verified \
                 replies only)",
                run.sent - run.verified,
                run.sent
            );
        }
    }
    out
}

fn results_json(
    options: &Options,
    hsm: &HsmLimit,
    castellan: &Run,
    castellan_cpu: Option<&CpuUse>,
    micromdm: &Run,
    micromdm_cpu: Option<&CpuUse>,
) -> Value {
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(0);
    let limit = hsm.enrolments_per_second();
    let with_cpu = |run: &Run, cpu: Option<&CpuUse>| {
        let mut value = run.json();
        if let (Value::Object(map), Some(cpu)) = (&mut value, cpu) {
            map.insert("cpu_cores".into(), cpu.json());
            for process in ["signer", "scepserver"] {
                if let Some(ms) = cpu.ms_per_op(process, run.per_second) {
                    map.insert(
                        format!("{process}_cpu_ms_per_enrolment"),
                        json!((ms * 100.0).round() / 100.0),
                    );
                }
            }
        }
        value
    };
    json!({
        "benchmark": "cargo xtask bench scep",
        "unix_time": unix_time,
        "cpus": cpus,
        "build": "release",
        "token": format!("SoftHSM2, label {TOKEN_LABEL}"),
        "n": options.n,
        "concurrency": options.concurrency,
        "warm_up": WARM_UP,
        "hsm_bound": {
            "key": "rsa-2048",
            "sessions": hsm.sessions,
            "seconds_per_op": HSM_SECONDS,
            "sign_per_second": hsm.sign,
            "decrypt_per_second": hsm.decrypt,
            "enrolments_per_second": (limit * 10.0).round() / 10.0,
            "sign_cpu_cores": hsm.sign_cpu.as_ref().map(CpuUse::json),
            "decrypt_cpu_cores": hsm.decrypt_cpu.as_ref().map(CpuUse::json),
            "formula": "1 / (2/sign + 1/decrypt): per enrolment, the RA decrypts the content \
                        key, the CA signs the certificate and the RA signs the CertRep",
        },
        "castellan": with_cpu(castellan, castellan_cpu),
        "micromdm": with_cpu(micromdm, micromdm_cpu),
        "ratios": {
            "castellan_over_hsm_bound": ratio(castellan.per_second, limit),
            "castellan_over_hsm_bound_target": HSM_TARGET,
            "castellan_over_micromdm": ratio(castellan.per_second, micromdm.per_second),
            "castellan_over_micromdm_target": MICROMDM_TARGET,
        },
        "note": "scep-bench pre-builds the requests (RSA-2048 device keys, AES-256, SHA-256), \
                 sends them over keep-alive connections and verifies every reply after the \
                 timed run; enrolments/s counts verified replies only. cpu_cores: CPU used over \
                 the timed run, from /proc, 1.0 = one core; scep-bench runs on the same machine.",
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scep_bench_json_is_read() {
        let out = "300 enrolments in 2.34 s at concurrency 8: 128.1 enrolments/s, p50 51.1 ms, \
                   p99 125.2 ms, verified 300/300\n\
                   {\"sent\":300,\"verified\":298,\"seconds\":2.340,\"per_second\":127.35,\
                   \"p50_ms\":51.10,\"p99_ms\":125.20,\"concurrency\":8}\n";
        let run = Run::parse(out).unwrap();
        assert_eq!((run.sent, run.verified, run.concurrency), (300, 298, 8));
        assert_eq!(run.per_second, 127.35);
        assert_eq!((run.p50_ms, run.p99_ms), (51.1, 125.2));
        assert!(Run::parse("no json").is_none());
        assert!(Run::parse("{\"sent\":1}").is_none());
    }

    #[test]
    fn hsm_bench_rate_is_read() {
        let line = "rsa-2048 sign: 2163 operations in 3.00 s with 2 sessions: 720.1 ops/s";
        assert_eq!(ops_per_second(line), Some(720.1));
        assert_eq!(
            ops_per_second("rsa-2048 sign: 0 operations: 0.0 ops/s"),
            None
        );
        assert_eq!(ops_per_second("nothing"), None);
    }

    #[test]
    fn hsm_limit_counts_two_signatures_and_one_decryption() {
        let hsm = HsmLimit {
            sessions: 2,
            sign: 3000.0,
            decrypt: 3000.0,
            sign_cpu: None,
            decrypt_cpu: None,
        };
        assert!((hsm.enrolments_per_second() - 1000.0).abs() < 1e-9);
        let hsm = HsmLimit {
            sessions: 2,
            sign: 2000.0,
            decrypt: 1000.0,
            sign_cpu: None,
            decrypt_cpu: None,
        };
        assert!((hsm.enrolments_per_second() - 500.0).abs() < 1e-9);
    }

    #[test]
    fn proc_stat_is_read() {
        let stat = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 40 0 0 20 0 \
                    3 0 100 1000 10 18446744073709551615";
        assert_eq!(parse_process_ticks(stat), Some(290));
        let machine = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 50 2 25 500 10 0 1 1 0 0\n";
        assert_eq!(
            parse_machine_ticks(machine),
            Some(MachineTicks {
                busy: 161,
                steal: 3
            })
        );
        // Our own process is readable.
        assert!(process_ticks(std::process::id()).is_some());
        assert!(machine_ticks().is_some());
    }

    #[test]
    fn cpu_use_spans_the_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let samples = vec![
            Sample {
                at: at(0),
                processes: vec![Some(0), Some(0)],
                machine: Some(MachineTicks { busy: 0, steal: 0 }),
            },
            Sample {
                at: at(1000),
                processes: vec![Some(100), Some(50)],
                machine: Some(MachineTicks {
                    busy: 200,
                    steal: 20,
                }),
            },
            Sample {
                at: at(2000),
                processes: vec![Some(200), None],
                machine: Some(MachineTicks {
                    busy: 400,
                    steal: 40,
                }),
            },
        ];
        let names = vec!["signer".to_owned(), "edge".to_owned()];
        let cpu = cpu_use(&samples, &names, at(500), at(1500), 100.0).unwrap();
        // From the sample at 0 to the one at 2000: 2 s.
        assert_eq!(cpu.processes, vec![("signer".to_owned(), 1.0)]);
        assert_eq!(cpu.machine, 2.0);
        assert_eq!(cpu.steal, 0.2);
        // The machine's busy CPU minus steal minus what we watched.
        assert!((cpu.other() - 0.8).abs() < 1e-9, "{cpu:?}");
        assert!((cpu.disturbance() - 1.0).abs() < 1e-9, "{cpu:?}");
        let cpu = cpu_use(&samples, &names, at(0), at(1000), 100.0).unwrap();
        assert_eq!(
            cpu.processes,
            vec![("signer".to_owned(), 1.0), ("edge".to_owned(), 0.5)]
        );
        assert!(cpu_use(&samples, &names, at(500), at(2500), 100.0).is_none());
    }

    #[test]
    fn cpu_per_enrolment_is_cores_over_rate() {
        let cpu = CpuUse {
            processes: vec![("signer".to_owned(), 1.75), ("edge".to_owned(), 0.1)],
            machine: 1.9,
            steal: 0.0,
            cpus: 2,
        };
        let ms = cpu.ms_per_op("signer", 250.0).unwrap();
        assert!((ms - 7.0).abs() < 1e-9, "{ms}");
        assert_eq!(cpu.ms_per_op("scepserver", 250.0), None);
        assert_eq!(cpu.ms_per_op("signer", 0.0), None);
    }

    #[test]
    fn ratios_and_verdicts() {
        assert_eq!(ratio(10.0, 0.0), None);
        assert_eq!(ratio(10.0, 4.0), Some(2.5));
        assert!(verdict(Some(0.8), HSM_TARGET).contains("met"));
        assert!(verdict(Some(0.5), HSM_TARGET).contains("NOT met"));
    }
}
