//! `cargo xtask demo`: a working appliance on this machine, in `var/demo/`.
//!
//! Everything the demo makes lives under `var/demo/` in the workspace root:
//!
//! ```text
//! var/demo/softhsm2.conf      SoftHSM2 config (SOFTHSM2_CONF for every signer process)
//! var/demo/tokens/            the token `castellan-demo` (all appliance keys are made in it)
//! var/demo/pin                the token user PIN, mode 0600
//! var/demo/officers/NAME.key  officer keys and self-signed certificates (alice, bob, carol)
//! var/demo/state/             signer.toml, store.redb, admin-ca.pem (from `castellan-signer init`)
//! var/demo/signer.log         the running signer's stderr
//! var/demo/demo.json          what a client needs: admin URL, CA file, officer files
//! ```
//!
//! Officers are people: their keys are made with openssl, outside the token, as a real officer
//! would. No key of the appliance is ever made outside the token.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::tools::{self, Requirements, shell_quote};
use crate::{Context, Failure, Result};

pub(crate) const DEMO_TOOLS: Requirements = Requirements {
    programs: &["softhsm2-util", "pkcs11-tool", "openssl"],
    libraries: &[],
    packages: &["softhsm2", "opensc", "openssl"],
};

const DEFAULT_ADMIN_PORT: u16 = 8443;
const TOKEN_LABEL: &str = "castellan-demo";
pub(crate) const QUORUM: u64 = 2;
const OFFICERS: [&str; 3] = ["alice", "bob", "carol"];
pub(crate) const READY_MARKER: &str = "castellan-signer ready";
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const EKUS: &str = "client-auth,server-auth,email-protection";

#[derive(Debug, Default)]
pub struct Options {
    pub fresh: bool,
    pub admin_port: Option<u16>,
}

/// Where an appliance keeps its files (all absolute): `var/demo/` for the demo; the
/// benchmarks use the same layout in their own directories.
#[derive(Debug)]
pub(crate) struct Paths {
    pub(crate) root: PathBuf,
    pub(crate) demo: PathBuf,
    pub(crate) softhsm2_conf: PathBuf,
    pub(crate) tokens: PathBuf,
    pub(crate) pin: PathBuf,
    pub(crate) officers: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) json: PathBuf,
    pub(crate) bin_dir: PathBuf,
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `target/` in the workspace root).
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"))
}

impl Paths {
    /// The demo: `var/demo/`, debug binaries.
    fn new(root: PathBuf) -> Self {
        let demo = root.join("var").join("demo");
        let bin_dir = target_dir(&root).join("debug");
        Paths::at(root, demo, bin_dir)
    }

    /// An appliance in `dir` (absolute), run with the binaries in `bin_dir`.
    pub(crate) fn at(root: PathBuf, dir: PathBuf, bin_dir: PathBuf) -> Self {
        let demo = dir;
        Paths {
            softhsm2_conf: demo.join("softhsm2.conf"),
            tokens: demo.join("tokens"),
            pin: demo.join("pin"),
            officers: demo.join("officers"),
            state: demo.join("state"),
            log: demo.join("signer.log"),
            json: demo.join("demo.json"),
            bin_dir,
            demo,
            root,
        }
    }

    pub(crate) fn signer_bin(&self) -> PathBuf {
        self.bin_dir.join("castellan-signer")
    }

    pub(crate) fn cli_bin(&self) -> PathBuf {
        self.bin_dir.join("castellan")
    }

    /// A path relative to the workspace root, for messages.
    pub(crate) fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// An officer's files.
#[derive(Debug, Clone)]
pub(crate) struct Officer {
    pub(crate) name: String,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// What `demo.json` records; everything a client needs to talk to the demo.
#[derive(Debug)]
pub(crate) struct Demo {
    pub(crate) admin_url: String,
    pub(crate) admin_port: u16,
    pub(crate) admin_ca: PathBuf,
    pub(crate) officers: Vec<Officer>,
    pub(crate) cas: Vec<String>,
}

/// The demo, step by step:
///
/// 1. install softhsm2, opensc and openssl if missing; build the daemon binaries;
/// 2. with `--fresh`, delete `var/demo/`; a `var/demo/` without `demo.json` is an unfinished
///    set-up and is deleted too;
/// 3. on first set-up: SoftHSM2 config, token, PIN file, officers, `castellan-signer init`;
/// 4. start `castellan-signer run` and wait for its ready line;
/// 5. on first set-up: create `demo-root` and `demo-issuing` through proposals (alice proposes,
///    bob approves), then write `demo.json`;
/// 6. print how to use the CLI, and wait for Ctrl-C/SIGTERM or the signer's exit; stop the
///    signer.
pub fn run(options: &Options) -> Result<()> {
    tools::ensure(&DEMO_TOOLS)?;
    let paths = Paths::new(crate::workspace_root());
    let mut build = Command::new(crate::cargo());
    build
        .args(["build", "-p", "daemon", "--bins"])
        .current_dir(&paths.root);
    tools::run_step(&mut build)?;
    for bin in [paths.signer_bin(), paths.cli_bin()] {
        if !bin.is_file() {
            return Err(Failure::new(format!(
                "{} was not built by `cargo build -p daemon --bins`",
                bin.display()
            )));
        }
    }

    if options.fresh && paths.demo.exists() {
        println!("==> --fresh: deleting {}", paths.show(&paths.demo));
        fs::remove_dir_all(&paths.demo).context(format!("delete {}", paths.demo.display()))?;
    }
    let existing = if paths.json.is_file() {
        let demo = read_demo_json(&paths.json)?;
        if let Some(port) = options.admin_port.filter(|p| *p != demo.admin_port) {
            println!(
                "note: the existing demo listens on port {}, not {port}; use --fresh to set it \
                 up again on another port",
                demo.admin_port
            );
        }
        println!(
            "==> reusing the demo in {} (use --fresh to start over)",
            paths.show(&paths.demo)
        );
        Some(demo)
    } else {
        if paths.demo.exists() {
            println!(
                "==> {} has no demo.json (an earlier set-up did not finish): starting over",
                paths.show(&paths.demo)
            );
            fs::remove_dir_all(&paths.demo).context(format!("delete {}", paths.demo.display()))?;
        }
        None
    };

    let admin_port = existing
        .as_ref()
        .map(|d| d.admin_port)
        .or(options.admin_port)
        .unwrap_or(DEFAULT_ADMIN_PORT);
    let officers = match &existing {
        Some(demo) => demo.officers.clone(),
        None => set_up(&paths, admin_port, TOKEN_LABEL)?,
    };

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal asks for a clean stop; a second one while stopping exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .context("install the signal handler")?;
    }

    check_port_free(admin_port)?;
    let mut signer = Signer::start(&paths)?;
    if !signer.wait_ready(&stop)? {
        println!("==> stopped before the signer was ready");
        return Ok(());
    }

    let demo = match existing {
        Some(demo) => demo,
        None => {
            let demo = Demo {
                admin_url: format!("https://127.0.0.1:{admin_port}"),
                admin_port,
                admin_ca: paths.state.join("admin-ca.pem"),
                officers,
                cas: vec!["demo-root".into(), "demo-issuing".into()],
            };
            create_cas(&paths, &demo)?;
            write_demo_json(&paths, &demo)?;
            demo
        }
    };
    print_summary(&paths, &demo);

    let outcome = signer.wait_until_stopped(&stop);
    signer.stop();
    outcome
}

/// First set-up: token `token_label`, PIN, officers and `castellan-signer init` (quorum
/// [`QUORUM`], admin port 127.0.0.1:`admin_port`). Returns the officers.
pub(crate) fn set_up(paths: &Paths, admin_port: u16, token_label: &str) -> Result<Vec<Officer>> {
    println!(
        "==> setting up a new appliance in {}",
        paths.show(&paths.demo)
    );
    let mut dirs = fs::DirBuilder::new();
    dirs.recursive(true).mode(0o700);
    for dir in [&paths.demo, &paths.tokens, &paths.officers] {
        dirs.create(dir)
            .context(format!("create {}", dir.display()))?;
    }

    write_file(
        &paths.softhsm2_conf,
        format!(
            "# SoftHSM2 configuration for `cargo xtask` (SOFTHSM2_CONF).\n\
             directories.tokendir = {}\n\
             objectstore.backend = file\n\
             log.level = ERROR\n",
            paths.tokens.display()
        )
        .as_bytes(),
        0o644,
    )?;

    // The PINs are on softhsm2-util's command line for a moment: acceptable for a demo on
    // one's own machine, not for an appliance (there, use `--pin` interactively).
    let so_pin = random_hex(16)?;
    let pin = random_hex(16)?;
    println!("==> softhsm2-util --init-token --free --label {token_label}");
    let mut init_token = Command::new("softhsm2-util");
    init_token
        .args(["--init-token", "--free", "--label", token_label])
        .args(["--so-pin", &so_pin, "--pin", &pin])
        .env("SOFTHSM2_CONF", &paths.softhsm2_conf);
    tools::run_quietly(&mut init_token, "softhsm2-util --init-token")?;
    write_file(&paths.pin, format!("{pin}\n").as_bytes(), 0o600)?;

    let officers = OFFICERS
        .iter()
        .map(|name| make_officer(&paths.officers, name))
        .collect::<Result<Vec<_>>>()?;

    let mut init = Command::new(paths.signer_bin());
    init.arg("init")
        .arg("--state-dir")
        .arg(&paths.state)
        .args(["--quorum", &QUORUM.to_string()]);
    for officer in &officers {
        let mut spec = std::ffi::OsString::from(format!("{}=", officer.name));
        spec.push(&officer.cert);
        init.arg("--officer").arg(spec);
    }
    init.args(["--token-label", token_label])
        .arg("--pin-file")
        .arg(&paths.pin)
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .env("SOFTHSM2_CONF", &paths.softhsm2_conf)
        .current_dir(&paths.root);
    tools::run_step(&mut init)?;
    Ok(officers)
}

/// An officer's P-256 key (PKCS#8 PEM, 0600) and self-signed client certificate, made the way
/// an officer would make them: with openssl, on their own machine.
fn make_officer(dir: &Path, name: &str) -> Result<Officer> {
    let officer = Officer {
        name: name.to_owned(),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    println!("==> officer {name}: key and self-signed certificate");
    let mut req = Command::new("openssl");
    req.args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .arg("-keyout")
        .arg(&officer.key)
        .arg("-out")
        .arg(&officer.cert)
        .args(["-subj", &format!("/CN={name}"), "-days", "825"])
        // A client certificate, not a CA (openssl's default for -x509 is CA:TRUE, which TLS
        // verifiers refuse as an end entity).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "keyUsage=critical,digitalSignature"])
        .args(["-addext", "extendedKeyUsage=clientAuth"]);
    tools::run_quietly(&mut req, &format!("openssl req (officer {name})"))?;
    fs::set_permissions(&officer.key, fs::Permissions::from_mode(0o600))
        .context(format!("chmod {}", officer.key.display()))?;
    Ok(officer)
}

/// The signer's first ready line, and when our reader thread saw it.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) at: Instant,
    pub(crate) line: String,
}

/// The running `castellan-signer run`, with a thread copying its stderr to the log (and to ours
/// when echoing).
#[derive(Debug)]
pub(crate) struct Signer {
    child: Child,
    ready: mpsc::Receiver<Ready>,
    log_path: PathBuf,
    reader: Option<JoinHandle<()>>,
    /// Just before the spawn.
    pub(crate) spawned_at: Instant,
}

impl Signer {
    fn start(paths: &Paths) -> Result<Signer> {
        Signer::spawn(paths, true)
    }

    /// Start `castellan-signer run --state-dir STATE`; `echo` copies its stderr to ours.
    pub(crate) fn spawn(paths: &Paths, echo: bool) -> Result<Signer> {
        let mut cmd = Command::new(paths.signer_bin());
        cmd.arg("run")
            .arg("--state-dir")
            .arg(&paths.state)
            .env("SOFTHSM2_CONF", &paths.softhsm2_conf)
            .current_dir(&paths.root)
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        println!(
            "==> {} (log: {})",
            tools::describe(&cmd),
            paths.show(&paths.log)
        );
        let log =
            fs::File::create(&paths.log).context(format!("create {}", paths.log.display()))?;
        let spawned_at = Instant::now();
        let mut child = cmd.spawn().context("start castellan-signer")?;
        let (tx, ready) = mpsc::channel();
        let reader = child
            .stderr
            .take()
            .map(|stderr| std::thread::spawn(move || copy_log(stderr, log, tx, echo)));
        Ok(Signer {
            child,
            ready,
            log_path: paths.log.clone(),
            reader,
            spawned_at,
        })
    }

    /// Wait for the ready line. `Ok(false)`: a signal asked us to stop first.
    fn wait_ready(&mut self, stop: &AtomicBool) -> Result<bool> {
        Ok(self.wait_ready_line(stop)?.is_some())
    }

    /// Wait (at most [`READY_TIMEOUT`]) for the ready line. `Ok(None)`: a signal asked us to
    /// stop first.
    pub(crate) fn wait_ready_line(&mut self, stop: &AtomicBool) -> Result<Option<Ready>> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.ready.recv_timeout(Duration::from_millis(200)) {
                Ok(ready) => return Ok(Some(ready)),
                Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(self.failure(&format!("castellan-signer exited ({status})")));
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "castellan-signer did not print `{READY_MARKER}` within {} s",
                    READY_TIMEOUT.as_secs()
                )));
            }
        }
    }

    /// Block until a signal or the signer's own exit (an error: nobody asked it to stop).
    fn wait_until_stopped(&mut self, stop: &AtomicBool) -> Result<()> {
        loop {
            if stop.load(Ordering::SeqCst) {
                println!("\n==> stopping the signer");
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                // Ctrl-C reaches the signer too; give our own handler a moment to see it.
                std::thread::sleep(Duration::from_millis(200));
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                return Err(Failure::with_code(
                    format!(
                        "castellan-signer exited on its own ({status}); see {}",
                        self.log_path.display()
                    ),
                    status.code(),
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// SIGTERM, a grace period, then SIGKILL. Idempotent.
    pub(crate) fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                eprintln!("xtask: castellan-signer ignored SIGTERM; killing it");
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// A failure that carries the whole log.
    pub(crate) fn failure(&mut self, what: &str) -> Failure {
        self.stop();
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        Failure::new(format!(
            "{what}\n---- {} ----\n{log}---- end of log ----",
            self.log_path.display()
        ))
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copy the signer's stderr, line by line, to the log file and (with `echo`) to our stderr;
/// send the first ready line. Reads to EOF so the signer never blocks on a full pipe.
fn copy_log(stderr: impl Read, mut log: fs::File, ready: mpsc::Sender<Ready>, echo: bool) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut seen_ready = false;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let at = Instant::now();
        let _ = log.write_all(&line);
        let _ = log.flush();
        let text = String::from_utf8_lossy(&line);
        if echo {
            eprintln!("signer | {}", text.trim_end());
        }
        if !seen_ready && text.contains(READY_MARKER) {
            seen_ready = true;
            let _ = ready.send(Ready {
                at,
                line: text.trim_end().to_owned(),
            });
        }
    }
}

fn check_port_free(port: u16) -> Result<()> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(e) => Err(Failure::new(format!(
            "cannot use 127.0.0.1:{port} ({e}). Is another `cargo xtask demo` running? Stop \
             it, or set up a demo on another port with `cargo xtask demo --fresh --admin-port N`"
        ))),
    }
}

/// The admin CLI as one officer, killed after `timeout` if one is given.
pub(crate) fn cli_within(
    paths: &Paths,
    demo: &Demo,
    officer: &Officer,
    args: &[&str],
    timeout: Option<Duration>,
) -> Result<String> {
    let mut cmd = Command::new(paths.cli_bin());
    cmd.args(["--admin", &demo.admin_url])
        .arg("--cert")
        .arg(&officer.cert)
        .arg("--key")
        .arg(&officer.key)
        .arg("--admin-ca")
        .arg(&demo.admin_ca)
        .args(args)
        .current_dir(&paths.root);
    let what = format!("`castellan {}` as {}", args.join(" "), officer.name);
    match timeout {
        None => tools::run_quietly(&mut cmd, &what),
        Some(timeout) => tools::run_quietly_within(&mut cmd, &what, timeout),
    }
}

/// The first JSON object in the CLI's output (it may print notes around it).
fn parse_json_object(output: &str) -> Option<serde_json::Map<String, Value>> {
    if let Ok(Value::Object(map)) = serde_json::from_str(output.trim()) {
        return Some(map);
    }
    let start = output.find('{')?;
    let end = output.rfind('}')?;
    match serde_json::from_str(output.get(start..=end)?) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn string_field(map: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Create the two demo CAs the way officers do: alice proposes, bob approves (quorum 2).
fn create_cas(paths: &Paths, demo: &Demo) -> Result<()> {
    let [alice, bob, ..] = demo.officers.as_slice() else {
        return Err(Failure::new("the demo needs two officers"));
    };
    propose_and_approve(
        paths,
        demo,
        alice,
        bob,
        &[
            "ca",
            "create-root",
            "demo-root",
            "--subject",
            "CN=Castellan Demo Root CA,O=Castellan Demo,C=US",
            "--key",
            "ec-p384",
            "--hash",
            "sha384",
            "--validity",
            "20y",
            "--eku",
            EKUS,
            "--json",
        ],
    )?;
    propose_and_approve(
        paths,
        demo,
        alice,
        bob,
        &[
            "ca",
            "create-issuing",
            "demo-issuing",
            "--parent",
            "demo-root",
            "--subject",
            "CN=Castellan Demo Issuing CA,O=Castellan Demo,C=US",
            "--key",
            "rsa-2048",
            "--hash",
            "sha256",
            "--validity",
            "10y",
            "--eku",
            EKUS,
            "--json",
        ],
    )
}

/// Run a proposing command as `proposer`, approve the proposal as `approver`, and check that
/// it executed.
fn propose_and_approve(
    paths: &Paths,
    demo: &Demo,
    proposer: &Officer,
    approver: &Officer,
    args: &[&str],
) -> Result<()> {
    propose_and_approve_timed(paths, demo, proposer, approver, args, None).map(|_| ())
}

/// How long the two CLI commands of [`propose_and_approve_timed`] took, each from spawn to exit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    pub(crate) propose: Duration,
    /// `None` when the proposal executed without a second approval.
    pub(crate) approve: Option<Duration>,
}

/// [`propose_and_approve`], timing the propose and the approve command separately (a check
/// with `proposal show`, if needed, is not timed); each command is killed after `timeout`.
pub(crate) fn propose_and_approve_timed(
    paths: &Paths,
    demo: &Demo,
    proposer: &Officer,
    approver: &Officer,
    args: &[&str],
    timeout: Option<Duration>,
) -> Result<Timings> {
    let what = format!("castellan {}", args.join(" "));
    println!("==> {what}   (as {})", proposer.name);
    let started = Instant::now();
    let output = cli_within(paths, demo, proposer, args, timeout)?;
    let propose = started.elapsed();
    let proposal = parse_json_object(&output)
        .ok_or_else(|| Failure::new(format!("`{what}` printed no JSON object:\n{output}")))?;
    let id = string_field(&proposal, "id")
        .ok_or_else(|| Failure::new(format!("`{what}` printed no proposal id:\n{output}")))?;
    let count = |p: &serde_json::Map<String, Value>| {
        format!(
            "{}/{}",
            p.get("approvals").unwrap_or(&Value::Null),
            p.get("quorum").unwrap_or(&Value::Null)
        )
    };
    println!(
        "    proposal {id}: {} approvals, status {}",
        count(&proposal),
        string_field(&proposal, "status").unwrap_or_default()
    );
    if string_field(&proposal, "status").as_deref() == Some("executed") {
        return Ok(Timings {
            propose,
            approve: None,
        });
    }

    println!(
        "==> castellan proposal approve {id} --json   (as {})",
        approver.name
    );
    let started = Instant::now();
    let approved = cli_within(
        paths,
        demo,
        approver,
        &["proposal", "approve", &id, "--json"],
        timeout,
    )?;
    let approve = started.elapsed();
    let mut after = parse_json_object(&approved);
    // If the approval does not echo the proposal, ask for it.
    if after
        .as_ref()
        .and_then(|p| string_field(p, "status"))
        .is_none()
    {
        let shown = cli_within(
            paths,
            demo,
            approver,
            &["proposal", "show", &id, "--json"],
            timeout,
        )?;
        after = parse_json_object(&shown);
    }
    let status = after.as_ref().and_then(|p| string_field(p, "status"));
    if status.as_deref() != Some("executed") {
        return Err(Failure::new(format!(
            "proposal {id} ({what}) did not execute after {}'s approval (status {}):\n{approved}",
            approver.name,
            status.as_deref().unwrap_or("unknown")
        )));
    }
    println!(
        "    proposal {id}: {} approvals, executed",
        after.as_ref().map(count).unwrap_or_default()
    );
    Ok(Timings {
        propose,
        approve: Some(approve),
    })
}

fn write_demo_json(paths: &Paths, demo: &Demo) -> Result<()> {
    let officers: Vec<Value> = demo
        .officers
        .iter()
        .map(|o| json!({ "name": o.name, "cert": o.cert, "key": o.key }))
        .collect();
    let value = json!({
        "admin_url": demo.admin_url,
        "admin_ca": demo.admin_ca,
        "quorum": QUORUM,
        "officers": officers,
        "cas": demo.cas,
        "state_dir": paths.state,
        "softhsm2_conf": paths.softhsm2_conf,
        "token_label": TOKEN_LABEL,
        "pin_file": paths.pin,
    });
    let text = serde_json::to_string_pretty(&value)
        .map_err(|e| Failure::new(format!("encode demo.json: {e}")))?;
    // Written last, and atomically: its presence means the set-up finished.
    let tmp = paths.json.with_extension("json.tmp");
    write_file(&tmp, format!("{text}\n").as_bytes(), 0o644)?;
    fs::rename(&tmp, &paths.json).context(format!("write {}", paths.json.display()))?;
    Ok(())
}

fn read_demo_json(path: &Path) -> Result<Demo> {
    let bad = |why: &str| {
        Failure::new(format!(
            "{} is not a demo.json ({why}); run `cargo xtask demo --fresh`",
            path.display()
        ))
    };
    let text = fs::read_to_string(path).context(format!("read {}", path.display()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let str_of = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad(&format!("no string `{key}`")))
    };
    let admin_url = str_of(&value, "admin_url")?;
    let admin_port = admin_url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .ok_or_else(|| bad("admin_url has no port"))?;
    let officers = value
        .get("officers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `officers` list"))?
        .iter()
        .map(|o| {
            Ok(Officer {
                name: str_of(o, "name")?,
                cert: str_of(o, "cert")?.into(),
                key: str_of(o, "key")?.into(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let cas = value
        .get("cas")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Demo {
        admin_url,
        admin_port,
        admin_ca: str_of(&value, "admin_ca")?.into(),
        officers,
        cas,
    })
}

fn print_summary(paths: &Paths, demo: &Demo) {
    let names: Vec<&str> = demo.officers.iter().map(|o| o.name.as_str()).collect();
    println!();
    println!("Castellan demo is running.");
    println!("  admin port  {}", demo.admin_url);
    println!("  officers    {} (quorum {QUORUM})", names.join(", "));
    println!("  CAs         {}", demo.cas.join(", "));
    println!("  signer log  {}", paths.show(&paths.log));
    println!("  details     {}", paths.show(&paths.json));
    if let Some(alice) = demo.officers.first() {
        println!();
        println!("Use the admin CLI as {} (in another shell):", alice.name);
        println!("  export PATH={}:\"$PATH\"", shell_quote(&paths.bin_dir));
        println!("  export CASTELLAN_ADMIN={}", demo.admin_url);
        println!("  export CASTELLAN_CERT={}", shell_quote(&alice.cert));
        println!("  export CASTELLAN_KEY={}", shell_quote(&alice.key));
        println!(
            "  export CASTELLAN_ADMIN_CA={}",
            shell_quote(&demo.admin_ca)
        );
        println!("  castellan ca list");
    }
    println!();
    println!("Press Ctrl-C to stop the signer.");
}

/// Create (or replace) a file with the given mode from the start, so a secret is never
/// readable by others even briefly.
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .context(format!("create {}", path.display()))?;
    file.write_all(contents)
        .context(format!("write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .context(format!("chmod {}", path.display()))
}

/// `bytes` random bytes from the kernel, as lowercase hex.
fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_has_the_right_length_and_varies() {
        let a = random_hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(16).unwrap());
    }

    #[test]
    fn json_is_found_in_noisy_output() {
        let out = "note: something\n{\"id\": \"p1\", \"status\": \"pending\"}\n";
        let map = parse_json_object(out).unwrap();
        assert_eq!(string_field(&map, "id").unwrap(), "p1");
        let map = parse_json_object("{\"id\": 7}").unwrap();
        assert_eq!(string_field(&map, "id").unwrap(), "7");
        assert!(parse_json_object("no json here").is_none());
    }

    #[test]
    fn demo_json_round_trips() {
        let dir = std::env::temp_dir().join(format!("xtask-demo-json-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let paths = Paths::new(dir.clone());
        fs::create_dir_all(&paths.demo).unwrap();
        let demo = Demo {
            admin_url: "https://127.0.0.1:9443".into(),
            admin_port: 9443,
            admin_ca: paths.state.join("admin-ca.pem"),
            officers: vec![Officer {
                name: "alice".into(),
                cert: paths.officers.join("alice.pem"),
                key: paths.officers.join("alice.key"),
            }],
            cas: vec!["demo-root".into(), "demo-issuing".into()],
        };
        write_demo_json(&paths, &demo).unwrap();
        let back = read_demo_json(&paths.json).unwrap();
        assert_eq!(back.admin_port, 9443);
        assert_eq!(back.officers[0].key, demo.officers[0].key);
        assert_eq!(back.cas, demo.cas);
        let raw: Value = serde_json::from_str(&fs::read_to_string(&paths.json).unwrap()).unwrap();
        for key in [
            "admin_url",
            "admin_ca",
            "quorum",
            "officers",
            "cas",
            "state_dir",
            "softhsm2_conf",
            "token_label",
            "pin_file",
        ] {
            assert!(raw.get(key).is_some(), "demo.json lacks {key}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Needs openssl; skipped where it is not installed.
    #[test]
    fn officer_key_is_private_and_cert_is_a_client_cert() {
        if tools::find_program("openssl").is_none() {
            eprintln!("skipped: no openssl");
            return;
        }
        let dir = std::env::temp_dir().join(format!("xtask-officer-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let officer = make_officer(&dir, "alice").unwrap();
        let mode = fs::metadata(&officer.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let key = fs::read_to_string(&officer.key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "not PKCS#8");
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&officer.cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("CN = alice") || text.contains("CN=alice"),
            "{text}"
        );
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
