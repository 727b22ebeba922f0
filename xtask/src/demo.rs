//! `cargo xtask demo`: a working appliance on this machine, in `var/demo/`.
//!
//! Everything the demo makes lives under `var/demo/` in the workspace root:
//!
//! ```text
//! var/demo/softhsm2.conf      SoftHSM2 config (SOFTHSM2_CONF for every signer process)
//! var/demo/tokens/            the token `castellan-demo` (all appliance keys are made in it)
//! var/demo/pin                the token user PIN, mode 0600
//! var/demo/officers/NAME.key  officer keys and self-signed certificates (alice, bob, carol);
//!                             NAME.p12 the same for a browser (password `castellan-demo`)
//! var/demo/state/             signer.toml, store.redb, admin-ca.pem (from `castellan-signer init`)
//! var/demo/signer.sock        the signing socket between castellan-edge and castellan-signer
//! var/demo/signer.log         the running signer's stderr
//! var/demo/edge.log           the running edge's stderr
//! var/demo/demo.json          what a client needs: admin URL, CA file, officer files, SCEP
//!                             URLs and challenges (mode 0600: it holds the challenges)
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
const DEFAULT_HTTP_PORT: u16 = 8080;
const TOKEN_LABEL: &str = "castellan-demo";
pub(crate) const QUORUM: u64 = 2;
const OFFICERS: [&str; 3] = ["alice", "bob", "carol"];
pub(crate) const READY_MARKER: &str = "castellan-signer ready";
const EDGE_READY_MARKER: &str = "castellan-edge ready";
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const EKUS: &str = "client-auth,server-auth,email-protection";
/// The SCEP profiles of the demo, on `demo-issuing`: name, and whether it accepts legacy
/// algorithms (DES/3DES envelopes, SHA-1 signatures).
const PROFILES: [(&str, bool); 2] = [("devices", false), ("devices-legacy", true)];
/// The profile the summary's scepclient command uses (scepclient sends DES and SHA-1).
const LEGACY_PROFILE: &str = "devices-legacy";
/// `sun_path` holds 108 bytes, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, Default)]
pub struct Options {
    pub fresh: bool,
    /// Also run castellan-mdm with an NDES-style challenge endpoint (`demo_mdm`).
    pub mdm: bool,
    pub admin_port: Option<u16>,
    pub http_port: Option<u16>,
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
    pub(crate) socket: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) edge_log: PathBuf,
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
            socket: demo.join("signer.sock"),
            log: demo.join("signer.log"),
            edge_log: demo.join("edge.log"),
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

    fn edge_bin(&self) -> PathBuf {
        self.bin_dir.join("castellan-edge")
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
    /// `None`: no edge (the benchmarks, or a demo.json from before SCEP).
    pub(crate) scep: Option<Scep>,
    /// The PKCS profiles (none in a demo.json from before them).
    pub(crate) pkcs: Vec<String>,
}

/// The edge and the SCEP profiles, as `demo.json` records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scep {
    /// `http://127.0.0.1:PORT`
    pub(crate) edge_url: String,
    pub(crate) http_port: u16,
    pub(crate) profiles: Vec<ScepProfile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScepProfile {
    pub(crate) profile: String,
    /// `EDGE_URL/scep/PROFILE`
    pub(crate) url: String,
    /// The profile's static challenge.
    pub(crate) challenge: String,
}

/// The demo, step by step:
///
/// 1. install softhsm2, opensc and openssl if missing; build the daemon and edge binaries;
/// 2. with `--fresh`, delete `var/demo/`; a `var/demo/` without `demo.json` is an unfinished
///    set-up and is deleted too;
/// 3. on first set-up: SoftHSM2 config, token, PIN file, officers, `castellan-signer init`
///    (with the signing socket and the edge's public URL);
/// 4. start `castellan-signer run` and wait for its ready line, then `castellan-edge run` and
///    wait for its ready line;
/// 5. on first set-up: create `demo-root` and `demo-issuing`, then the SCEP profiles `devices`
///    and `devices-legacy`, through proposals (alice proposes, bob approves), then write
///    `demo.json`;
/// 6. print how to use the CLI and enrol a device, and wait for Ctrl-C/SIGTERM or either
///    child's exit; stop the edge, then the signer.
pub fn run(options: &Options) -> Result<()> {
    tools::ensure(&DEMO_TOOLS)?;
    let paths = Paths::new(crate::workspace_root());
    let mut build = Command::new(crate::cargo());
    build
        .args([
            "build", "-p", "daemon", "-p", "cli", "-p", "scep", "-p", "mdm", "--bins",
        ])
        .current_dir(&paths.root);
    tools::run_step(&mut build)?;
    for bin in [paths.signer_bin(), paths.cli_bin(), paths.edge_bin()] {
        if !bin.is_file() {
            return Err(Failure::new(format!(
                "{} was not built by `cargo build -p daemon -p cli -p scep --bins`",
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
        match (&demo.scep, options.http_port) {
            (Some(scep), Some(port)) if port != scep.http_port => println!(
                "note: the existing demo's edge listens on port {}, not {port}; use --fresh to \
                 set it up again on another port",
                scep.http_port
            ),
            (None, _) => println!("{}", predates_scep(&paths)),
            _ => {}
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
    // The edge's port; `None`: an old demo without an edge.
    let http_port = match &existing {
        Some(demo) => demo.scep.as_ref().map(|s| s.http_port),
        None => Some(options.http_port.unwrap_or(DEFAULT_HTTP_PORT)),
    };
    if http_port == Some(admin_port) {
        return Err(Failure::new(format!(
            "the admin port and the HTTP port are both {admin_port}; pick another with \
             --admin-port or --http-port"
        )));
    }
    let officers = match &existing {
        Some(demo) => demo.officers.clone(),
        None => {
            check_socket_path(&paths.socket)?;
            set_up(&paths, admin_port, TOKEN_LABEL, http_port)?
        }
    };

    let mdm = match options.mdm {
        true => Some(crate::demo_mdm::prepare(&paths)?),
        false => None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal asks for a clean stop; a second one while stopping exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .context("install the signal handler")?;
    }

    check_port_free(admin_port, "--admin-port")?;
    if let Some(port) = http_port {
        check_port_free(port, "--http-port")?;
    }
    let mut signer = Service::signer(&paths, true)?;
    if !signer.wait_ready(&stop)? {
        println!("==> stopped before the signer was ready");
        return Ok(());
    }
    // Declared after the signer, so an early return drops (stops) the edge first.
    let mut edge = None;
    if let Some(port) = http_port
        && !edge
            .insert(Service::edge(&paths, port, true)?)
            .wait_ready(&stop)?
    {
        println!("==> stopped before the edge was ready");
        return Ok(());
    }

    let demo = match existing {
        Some(demo) => demo,
        None => {
            let mut demo = Demo {
                admin_url: format!("https://127.0.0.1:{admin_port}"),
                admin_port,
                admin_ca: paths.state.join("admin-ca.pem"),
                officers,
                cas: vec!["demo-root".into(), "demo-issuing".into()],
                scep: None,
                pkcs: Vec::new(),
            };
            create_cas(&paths, &demo)?;
            create_pkcs_profile(&paths, &demo)?;
            demo.pkcs.push(PKCS_PROFILE.into());
            if let Some(port) = http_port {
                let edge_url = format!("http://127.0.0.1:{port}");
                let profiles = create_profiles(&paths, &demo, &edge_url)?;
                demo.scep = Some(Scep {
                    edge_url,
                    http_port: port,
                    profiles,
                });
            }
            write_demo_json(&paths, &demo)?;
            demo
        }
    };
    let mut connector = None;
    if let Some(m) = &mdm {
        let [alice, bob, ..] = demo.officers.as_slice() else {
            return Err(Failure::new("the demo needs two officers"));
        };
        let profile = ["profile", "show", crate::demo_mdm::PROFILE];
        if cli_within(&paths, &demo, alice, &profile, None).is_err() {
            propose_and_approve(
                &paths,
                &demo,
                alice,
                bob,
                &[
                    "profile",
                    "create",
                    crate::demo_mdm::PROFILE,
                    "--ca",
                    "demo-issuing",
                    "--challenge",
                    "one-time",
                    "--legacy-algorithms",
                    "--json",
                ],
            )?;
        }
        let mut cmd = Command::new(paths.bin_dir.join("castellan-mdm"));
        cmd.arg("run").arg("--config").arg(&m.config);
        let service = connector.insert(Service::spawn(
            &paths,
            cmd,
            "castellan-mdm",
            crate::demo_mdm::READY_MARKER,
            &m.log,
            Some("mdm    | "),
        )?);
        if !service.wait_ready(&stop)? {
            println!("==> stopped before castellan-mdm was ready");
            return Ok(());
        }
        crate::demo_mdm::record(&paths, m)?;
        println!(
            "==> NDES-style challenges for {}: {} (user jamf, password in var/demo/demo.json `mdm`)",
            crate::demo_mdm::PROFILE,
            m.url(),
        );
    }
    for officer in &demo.officers {
        officer_p12(officer)?;
    }
    print_summary(&paths, &demo);

    let mut running: Vec<&mut Service> = connector.iter_mut().collect();
    running.extend(edge.iter_mut());
    running.push(&mut signer);
    let outcome = wait_until_stopped(&stop, &mut running);
    // The edge first: it is the signer's client.
    for service in running {
        service.stop();
    }
    outcome
}

fn predates_scep(paths: &Paths) -> String {
    format!(
        "note: the demo in {} predates SCEP (its demo.json has no `scep`): it has no \
         castellan-edge and no SCEP profiles. Run `cargo xtask demo --fresh` to set up a new \
         demo with them.",
        paths.show(&paths.demo)
    )
}

/// The signing socket's path must fit in `sun_path`.
pub(crate) fn check_socket_path(socket: &Path) -> Result<()> {
    let len = socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(Failure::new(format!(
            "the signing socket path {} is {len} bytes long; a unix socket path holds at most \
             {MAX_SOCKET_PATH}. Run the demo from a workspace with a shorter path.",
            socket.display()
        )));
    }
    Ok(())
}

/// First set-up: token `token_label`, PIN, officers and `castellan-signer init` (quorum
/// [`QUORUM`], admin port 127.0.0.1:`admin_port`). With `http_port`, the signer also gets the
/// signing socket `paths.socket` and the public URL `http://127.0.0.1:HTTP_PORT` (for the
/// CRL and AIA URLs in issued certificates). Returns the officers.
pub(crate) fn set_up(
    paths: &Paths,
    admin_port: u16,
    token_label: &str,
    http_port: Option<u16>,
) -> Result<Vec<Officer>> {
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
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")]);
    if let Some(port) = http_port {
        init.arg("--socket")
            .arg(&paths.socket)
            .args(["--public-url", &format!("http://127.0.0.1:{port}")]);
    }
    init.env("SOFTHSM2_CONF", &paths.softhsm2_conf)
        .current_dir(&paths.root);
    tools::run_step(&mut init)?;
    Ok(officers)
}

/// The password of the demo officers' `.p12` files (a demo's; real officers choose theirs).
pub(crate) const OFFICER_P12_PASSWORD: &str = "castellan-demo";

/// `var/demo/officers/NAME.p12`: the officer's key and certificate for a browser (the web
/// console on the admin port), made once with openssl (AES-256, PBKDF2: what Firefox,
/// Chromium's NSS and current Windows and macOS import). 0600, like the key.
pub(crate) fn officer_p12(officer: &Officer) -> Result<PathBuf> {
    let p12 = officer.key.with_extension("p12");
    if p12.exists() {
        return Ok(p12);
    }
    let mut export = Command::new("openssl");
    export
        .args(["pkcs12", "-export", "-inkey"])
        .arg(&officer.key)
        .arg("-in")
        .arg(&officer.cert)
        .args(["-name", &format!("castellan officer {}", officer.name)])
        .args(["-passout", &format!("pass:{OFFICER_P12_PASSWORD}")])
        .arg("-out")
        .arg(&p12);
    tools::run_quietly(
        &mut export,
        &format!("openssl pkcs12 -export (officer {})", officer.name),
    )?;
    fs::set_permissions(&p12, fs::Permissions::from_mode(0o600))
        .context(format!("chmod {}", p12.display()))?;
    Ok(p12)
}

/// An officer's P-256 key (PKCS#8 PEM, 0600) and self-signed client certificate, made the way
/// an officer would make them: with openssl, on their own machine.
pub(crate) fn make_officer(dir: &Path, name: &str) -> Result<Officer> {
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

/// A running child (`castellan-signer run` or `castellan-edge run`), with a thread copying its
/// stderr to its log (and to ours when echoing).
#[derive(Debug)]
pub(crate) struct Service {
    /// The program's name, for messages.
    name: &'static str,
    marker: &'static str,
    child: Child,
    ready: mpsc::Receiver<Ready>,
    log_path: PathBuf,
    reader: Option<JoinHandle<()>>,
    /// Just before the spawn.
    pub(crate) spawned_at: Instant,
}

impl Service {
    /// Start `castellan-signer run --state-dir STATE`; `echo` copies its stderr to ours.
    pub(crate) fn signer(paths: &Paths, echo: bool) -> Result<Service> {
        let mut cmd = Command::new(paths.signer_bin());
        cmd.arg("run")
            .arg("--state-dir")
            .arg(&paths.state)
            .env("SOFTHSM2_CONF", &paths.softhsm2_conf);
        let echo = echo.then_some("signer | ");
        Service::spawn(
            paths,
            cmd,
            "castellan-signer",
            READY_MARKER,
            &paths.log,
            echo,
        )
    }

    /// Start `castellan-edge run` on the signing socket, listening on 127.0.0.1:`port`; `echo`
    /// copies its stderr to ours.
    pub(crate) fn edge(paths: &Paths, port: u16, echo: bool) -> Result<Service> {
        let mut cmd = Command::new(paths.edge_bin());
        cmd.arg("run")
            .arg("--signer-socket")
            .arg(&paths.socket)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        let echo = echo.then_some("edge   | ");
        Service::spawn(
            paths,
            cmd,
            "castellan-edge",
            EDGE_READY_MARKER,
            &paths.edge_log,
            echo,
        )
    }

    /// Spawn `cmd` in the workspace root; its stderr goes to `log` (and to ours, each line
    /// after `echo`); the first line containing `marker` is its ready line.
    pub(crate) fn spawn(
        paths: &Paths,
        mut cmd: Command,
        name: &'static str,
        marker: &'static str,
        log: &Path,
        echo: Option<&'static str>,
    ) -> Result<Service> {
        cmd.current_dir(&paths.root)
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        println!("==> {} (log: {})", tools::describe(&cmd), paths.show(log));
        let log_file = fs::File::create(log).context(format!("create {}", log.display()))?;
        let spawned_at = Instant::now();
        let mut child = cmd.spawn().context(format!("start {name}"))?;
        let (tx, ready) = mpsc::channel();
        let reader = child
            .stderr
            .take()
            .map(|stderr| std::thread::spawn(move || copy_log(stderr, log_file, tx, marker, echo)));
        Ok(Service {
            name,
            marker,
            child,
            ready,
            log_path: log.to_path_buf(),
            reader,
            spawned_at,
        })
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the ready line. `Ok(false)`: a signal asked us to stop first.
    pub(crate) fn wait_ready(&mut self, stop: &AtomicBool) -> Result<bool> {
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
                return Err(self.failure(&format!("{} exited ({status})", self.name)));
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "{} did not print `{}` within {} s",
                    self.name,
                    self.marker,
                    READY_TIMEOUT.as_secs()
                )));
            }
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
                eprintln!("xtask: {} ignored SIGTERM; killing it", self.name);
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

/// Block until a signal, or until one of the children exits on its own (an error: nobody
/// asked it to stop).
fn wait_until_stopped(stop: &AtomicBool, services: &mut [&mut Service]) -> Result<()> {
    loop {
        if stop.load(Ordering::SeqCst) {
            let names: Vec<&str> = services.iter().map(|s| s.name).collect();
            println!("\n==> stopping {}", names.join(" and "));
            return Ok(());
        }
        for service in services.iter_mut() {
            if let Some(status) = service.child.try_wait()? {
                // Ctrl-C reaches the children too; give our own handler a moment to see it.
                std::thread::sleep(Duration::from_millis(200));
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                return Err(Failure::with_code(
                    format!(
                        "{} exited on its own ({status}); see {}",
                        service.name,
                        service.log_path.display()
                    ),
                    status.code(),
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copy a child's stderr, line by line, to the log file and (with `echo`, after that prefix)
/// to our stderr; send the first line containing `marker`. Reads to EOF so the child never
/// blocks on a full pipe.
fn copy_log(
    stderr: impl Read,
    mut log: fs::File,
    ready: mpsc::Sender<Ready>,
    marker: &str,
    echo: Option<&str>,
) {
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
        if let Some(prefix) = echo {
            eprintln!("{prefix}{}", text.trim_end());
        }
        if !seen_ready && text.contains(marker) {
            seen_ready = true;
            let _ = ready.send(Ready {
                at,
                line: text.trim_end().to_owned(),
            });
        }
    }
}

/// `flag`: the option that picks this port, for the message.
fn check_port_free(port: u16, flag: &str) -> Result<()> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(e) => Err(Failure::new(format!(
            "cannot use 127.0.0.1:{port} ({e}). Is another `cargo xtask demo` running? Stop \
             it, or set up a demo on another port with `cargo xtask demo --fresh {flag} N`"
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

/// Create the SCEP profiles [`PROFILES`] on `demo-issuing` the way officers do (alice proposes,
/// bob approves), each with its own random static challenge. The challenge reaches the CLI in
/// a file (mode 0600, deleted afterwards), not on its command line.
fn create_profiles(paths: &Paths, demo: &Demo, edge_url: &str) -> Result<Vec<ScepProfile>> {
    let [alice, bob, ..] = demo.officers.as_slice() else {
        return Err(Failure::new("the demo needs two officers"));
    };
    let mut profiles = Vec::new();
    for (name, legacy) in PROFILES {
        let challenge = random_hex(16)?;
        let secret_file = paths.demo.join(format!("{name}.challenge"));
        write_file(&secret_file, format!("{challenge}\n").as_bytes(), 0o600)?;
        let secret_arg = secret_file.to_string_lossy().into_owned();
        let mut args = vec![
            "profile",
            "create",
            name,
            "--ca",
            "demo-issuing",
            "--challenge",
            "static",
            "--secret-file",
            &secret_arg,
        ];
        if legacy {
            args.push("--legacy-algorithms");
        }
        args.push("--json");
        let created = propose_and_approve(paths, demo, alice, bob, &args);
        let _ = fs::remove_file(&secret_file);
        created?;
        profiles.push(ScepProfile {
            profile: name.to_owned(),
            url: format!("{edge_url}/scep/{name}"),
            challenge,
        });
    }
    Ok(profiles)
}

/// The demo's PKCS profile on `demo-issuing`.
const PKCS_PROFILE: &str = "users-pkcs";

/// The PKCS profile [`PKCS_PROFILE`]: user certificates for client authentication and
/// e-mail (S/MIME), EC P-256 or RSA-2048 keys made by the signer, delivered as PKCS#12, each
/// key escrowed (recovered by quorum with `castellan key recover`).
fn create_pkcs_profile(paths: &Paths, demo: &Demo) -> Result<()> {
    let [alice, bob, ..] = demo.officers.as_slice() else {
        return Err(Failure::new("the demo needs two officers"));
    };
    propose_and_approve(
        paths,
        demo,
        alice,
        bob,
        &[
            "profile",
            "create",
            PKCS_PROFILE,
            "--ca",
            "demo-issuing",
            "--pkcs-keys",
            "ec-p256,rsa-2048",
            "--subject-attrs",
            "CN,O,OU",
            "--san-types",
            "email,upn",
            "--eku",
            "client-auth,email-protection",
            "--key-usage",
            "digital-signature,key-encipherment",
            "--escrow",
            "--json",
        ],
    )
    .map(|_| ())
}

/// Run a proposing command as `proposer`, approve the proposal as `approver`, and check that
/// it executed.
pub(crate) fn propose_and_approve(
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
    let mut value = json!({
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
    if let Value::Object(map) = &mut value
        && !demo.pkcs.is_empty()
    {
        let pkcs: Vec<Value> = demo
            .pkcs
            .iter()
            .map(|p| {
                json!({
                    "profile": p,
                    "ca": "demo-issuing",
                    "issue": format!("castellan pkcs12 issue --profile {p} --subject 'CN=Ada Lovelace,O=Castellan Demo' --san email:ada@example.org -o ada.p12"),
                })
            })
            .collect();
        map.insert("pkcs".into(), Value::Array(pkcs));
    }
    if let (Some(scep), Value::Object(map)) = (&demo.scep, &mut value) {
        let profiles: Vec<Value> = scep
            .profiles
            .iter()
            .map(|p| json!({ "profile": p.profile, "url": p.url, "challenge": p.challenge }))
            .collect();
        map.insert("edge_url".into(), json!(scep.edge_url));
        map.insert("scep".into(), Value::Array(profiles));
    }
    let text = serde_json::to_string_pretty(&value)
        .map_err(|e| Failure::new(format!("encode demo.json: {e}")))?;
    // Written last, and atomically: its presence means the set-up finished. Mode 0600: it
    // holds the SCEP challenges.
    let tmp = paths.json.with_extension("json.tmp");
    write_file(&tmp, format!("{text}\n").as_bytes(), 0o600)?;
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
    let port_of = |url: &str| {
        url.rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
    };
    let admin_url = str_of(&value, "admin_url")?;
    let admin_port = port_of(&admin_url).ok_or_else(|| bad("admin_url has no port"))?;
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
    // No `scep`: a demo from before castellan-edge.
    let scep = match value.get("scep") {
        None => None,
        Some(list) => {
            let edge_url = str_of(&value, "edge_url")?;
            let http_port = port_of(&edge_url).ok_or_else(|| bad("edge_url has no port"))?;
            let profiles = list
                .as_array()
                .ok_or_else(|| bad("`scep` is not a list"))?
                .iter()
                .map(|p| {
                    Ok(ScepProfile {
                        profile: str_of(p, "profile")?,
                        url: str_of(p, "url")?,
                        challenge: str_of(p, "challenge")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Some(Scep {
                edge_url,
                http_port,
                profiles,
            })
        }
    };
    let pkcs = match value.get("pkcs") {
        None => Vec::new(),
        Some(list) => list
            .as_array()
            .ok_or_else(|| bad("`pkcs` is not a list"))?
            .iter()
            .map(|p| {
                p["profile"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad("a `pkcs` entry has no profile"))
            })
            .collect::<Result<_>>()?,
    };
    Ok(Demo {
        admin_url,
        admin_port,
        admin_ca: str_of(&value, "admin_ca")?.into(),
        officers,
        cas,
        scep,
        pkcs,
    })
}

fn print_summary(paths: &Paths, demo: &Demo) {
    let names: Vec<&str> = demo.officers.iter().map(|o| o.name.as_str()).collect();
    println!();
    println!("Castellan demo is running.");
    println!("  admin port  {}", demo.admin_url);
    if let Some(scep) = &demo.scep {
        let profiles: Vec<&str> = scep.profiles.iter().map(|p| p.profile.as_str()).collect();
        println!(
            "  SCEP        {}/scep/PROFILE (profiles {})",
            scep.edge_url,
            profiles.join(", ")
        );
    }
    println!("  officers    {} (quorum {QUORUM})", names.join(", "));
    println!("  CAs         {}", demo.cas.join(", "));
    if !demo.pkcs.is_empty() {
        println!(
            "  PKCS        profile{} {} (castellan pkcs12 issue --profile NAME --subject ... -o FILE.p12)",
            if demo.pkcs.len() == 1 { "" } else { "s" },
            demo.pkcs.join(", ")
        );
    }
    if demo.scep.is_some() {
        println!(
            "  logs        {}, {}",
            paths.show(&paths.log),
            paths.show(&paths.edge_log)
        );
    } else {
        println!("  signer log  {}", paths.show(&paths.log));
    }
    if demo.scep.is_some() {
        println!(
            "  details     {} (SCEP URLs and challenges too)",
            paths.show(&paths.json)
        );
    } else {
        println!("  details     {}", paths.show(&paths.json));
    }
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
        println!();
        println!(
            "Open the web console at {}/ in Firefox or Chromium as {}: import {} (password \
             {OFFICER_P12_PASSWORD}) as your certificate and trust {} for websites \
             (Firefox: Settings > Privacy & Security > Certificates; Chromium on Linux: \
             `pk12util -d sql:$HOME/.pki/nssdb -i FILE.p12` and \
             `certutil -d sql:$HOME/.pki/nssdb -A -n castellan-admin -t C,, -i ADMIN-CA.pem`).",
            demo.admin_url,
            alice.name,
            paths.show(&alice.key.with_extension("p12")),
            paths.show(&demo.admin_ca),
        );
    }
    let legacy = demo
        .scep
        .as_ref()
        .and_then(|s| s.profiles.iter().find(|p| p.profile == LEGACY_PROFILE));
    match (&demo.scep, legacy) {
        (Some(_), Some(profile)) => {
            println!();
            println!(
                "Enrol a device with micromdm's scepclient (Debian package `scep`) on {}, in an \
                 empty directory (scepclient writes ./csr.pem and ./self.pem and reuses them), then \
                 check its certificate (in the shell with the exports above):",
                profile.profile
            );
            println!("  cd \"$(mktemp -d)\"");
            println!(
                "  scepclient -server-url {} -challenge {} -private-key key.pem \
                 -certificate cert.pem -cn device-1",
                profile.url, profile.challenge
            );
            println!("  castellan ca cert demo-root > root.pem");
            println!("  castellan ca cert demo-issuing > issuing.pem");
            println!("  openssl verify -CAfile root.pem -untrusted issuing.pem cert.pem");
            println!(
                "scepclient sends single-DES and SHA-1, which only {} accepts (with a warning \
                 in the signer log); `devices` needs a client with AES and SHA-2.",
                profile.profile
            );
        }
        (Some(_), None) => {}
        (None, _) => {
            println!();
            println!("{}", predates_scep(paths));
        }
    }
    println!();
    if demo.scep.is_some() {
        println!("Press Ctrl-C to stop the edge and the signer.");
    } else {
        println!("Press Ctrl-C to stop the signer.");
    }
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
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
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
            scep: Some(Scep {
                edge_url: "http://127.0.0.1:9080".into(),
                http_port: 9080,
                profiles: vec![ScepProfile {
                    profile: "devices-legacy".into(),
                    url: "http://127.0.0.1:9080/scep/devices-legacy".into(),
                    challenge: "00ff".into(),
                }],
            }),
            pkcs: vec!["users-pkcs".into()],
        };
        write_demo_json(&paths, &demo).unwrap();
        let mode = fs::metadata(&paths.json).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "demo.json holds the challenges");
        let back = read_demo_json(&paths.json).unwrap();
        assert_eq!(back.admin_port, 9443);
        assert_eq!(back.officers[0].key, demo.officers[0].key);
        assert_eq!(back.cas, demo.cas);
        assert_eq!(back.scep, demo.scep);
        assert_eq!(back.pkcs, demo.pkcs);
        let raw: Value = serde_json::from_str(&fs::read_to_string(&paths.json).unwrap()).unwrap();
        assert_eq!(
            raw["scep"][0],
            json!({
                "profile": "devices-legacy",
                "url": "http://127.0.0.1:9080/scep/devices-legacy",
                "challenge": "00ff",
            })
        );
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
            "edge_url",
            "scep",
            "pkcs",
        ] {
            assert!(raw.get(key).is_some(), "demo.json lacks {key}");
        }

        // A demo.json from before SCEP still reads, without an edge.
        let mut old = raw.clone();
        if let Value::Object(map) = &mut old {
            map.remove("scep");
            map.remove("edge_url");
        }
        fs::write(&paths.json, old.to_string()).unwrap();
        let back = read_demo_json(&paths.json).unwrap();
        assert_eq!(back.scep, None);
        assert_eq!(back.cas, demo.cas);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_socket_paths_are_refused() {
        assert!(check_socket_path(Path::new("/work/main/var/demo/signer.sock")).is_ok());
        let long = format!("/{}/signer.sock", "d".repeat(100));
        assert!(check_socket_path(Path::new(&long)).is_err());
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
