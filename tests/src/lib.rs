//! The integration-test harness: a whole appliance in a temporary directory.
//!
//! [`Appliance::new`] does what an operator does, with the real tools:
//!
//! 1. a SoftHSM2 config and token of its own (`softhsm2-util --init-token`), PIN file mode 0600;
//! 2. officer keys and self-signed client certificates made with `openssl req -x509`;
//! 3. `castellan-signer init` on a free port of 127.0.0.1;
//! 4. `castellan-signer run`, waiting for its `castellan-signer ready` line (stderr goes to a
//!    log file that is printed when something goes wrong).
//!
//! Each appliance has its own token directory, state directory and port, so tests run in
//! parallel. Dropping it stops the signer (SIGTERM, then SIGKILL).
//!
//! For SCEP, [`Appliance::init_with`] adds a signing socket (`--socket`, optionally
//! `--socket-uid`) and [`Appliance::start_edge`] runs `castellan-edge` on it, waiting for its
//! `castellan-edge ready` line; [`Appliance::scep_get`] and [`Appliance::scep_post`] talk
//! plain HTTP/1.1 to the edge, and [`scepclient`] runs micromdm's client.
//!
//! The binaries are the ones `cargo build -p daemon -p scep --bins` leaves in `target/debug/`.
#![forbid(unsafe_code)]
// Test support: a failed step is a failed test, with the step's output in the panic message.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod intune;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use serde_json;

/// The SoftHSM2 PKCS#11 module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The user PIN of every test token.
pub const PIN: &str = "1234";
/// What `castellan-signer run` prints on stderr once it serves.
pub const READY_MARKER: &str = "castellan-signer ready";
/// What `castellan-edge run` prints on stderr once it listens.
pub const EDGE_READY_MARKER: &str = "castellan-edge ready";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// `castellan-signer` exit code for an unusable configuration (sysexits EX_CONFIG).
pub const EX_CONFIG: i32 = 78;
/// castellan-signer's exit code for what a restart may heal (sysexits.h EX_TEMPFAIL).
pub const EX_TEMPFAIL: i32 = 75;

/// `target/debug` of this workspace (or `$CARGO_TARGET_DIR/debug`).
pub fn bin_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    target.join("debug")
}

/// A built example (the benchmarks: crl-bench, store-bench, hsm-bench); panics with the
/// command to run when it is missing.
pub fn example(name: &str) -> PathBuf {
    let p = bin_dir().join("examples").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run cargo build --workspace --examples first (cargo xtask test does it)",
        p.display()
    );
    p
}

/// A built binary; panics with the command to run when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run cargo build --workspace --bins first (cargo xtask test does it)",
        p.display()
    );
    p
}

/// A finished command: exit code and text output.
#[derive(Debug, Clone)]
pub struct Out {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

impl Out {
    fn from(what: String, o: Output) -> Out {
        Out {
            what,
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            raw_stdout: o.stdout,
        }
    }
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    /// Panic unless the command exited 0; returns stdout.
    pub fn expect_ok(&self) -> &str {
        assert!(self.ok(), "{} failed:\n{self}", self.what);
        &self.stdout
    }
    /// Panic unless the command exited with `code`; returns stderr.
    pub fn expect_code(&self, code: i32) -> &str {
        assert_eq!(
            self.code,
            Some(code),
            "{}: expected exit code {code}:\n{self}",
            self.what
        );
        &self.stderr
    }
    /// Panic unless the command exited with `code` and stderr contains every one of `needles`
    /// (case-insensitive).
    pub fn expect_refused(&self, code: i32, needles: &[&str]) {
        let err = self.expect_code(code).to_lowercase();
        for n in needles {
            assert!(
                err.contains(&n.to_lowercase()),
                "{}: stderr does not mention {n:?}:\n{self}",
                self.what
            );
        }
    }
    /// stdout as JSON.
    pub fn json(&self) -> Value {
        self.expect_ok();
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("{}: stdout is not JSON ({e}):\n{self}", self.what))
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Run a command to completion.
pub fn run(cmd: &mut Command) -> Out {
    let what = format!("{cmd:?}");
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    Out::from(what, o)
}

/// `openssl ARGS` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) -> Out {
    run(Command::new("openssl").args(args).current_dir(dir))
}

/// `openssl ARGS` in `dir`, which must succeed; returns stdout.
pub fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    openssl(dir, args).expect_ok().to_owned()
}

/// Write a file with a mode.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>, mode: u32) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
/// A port for a process under test to listen on, from 20000..32000: below Linux's
/// ephemeral range (32768-60999), so that no outgoing connection of this or another test
/// can be holding it when the process binds it later (a port from `bind(0)` comes from that
/// range, and a test's thousands of client connections made such collisions real). Ports
/// already handed out by this process are not handed out again.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    for attempt in 0u32..10_000 {
        let port = 20_000 + (RandomState::new().hash_one(attempt) % 12_000) as u16;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}

/// `cmd` under `setpriv --pdeathsig KILL` (util-linux): the process gets SIGKILL when the
/// thread that started it (the test's) ends, however the test ends, even when the test
/// process itself is killed and no destructor runs. Only that process: a child it forks
/// does not inherit it, which is what the process groups and the `Drop`s are for.
pub fn dies_with_test(cmd: &Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--pdeathsig", "KILL", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// Whether process `pid` is gone (or a zombie nobody reaped: it runs no more).
pub fn process_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // `PID (COMM) STATE ...`; COMM may hold spaces and parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Run a future to completion on a small runtime of its own.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// An officer's files.
#[derive(Debug, Clone)]
pub struct Officer {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Officer {
    /// A P-256 key (PKCS#8, mode 0600) and a self-signed client certificate, made with openssl
    /// the way an officer makes them.
    pub fn make(dir: &Path, name: &str) -> Officer {
        let o = Officer {
            name: name.to_owned(),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        openssl_ok(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                o.key.to_str().unwrap(),
                "-out",
                o.cert.to_str().unwrap(),
                "-subj",
                &format!("/CN={name}"),
                "-days",
                "825",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "keyUsage=critical,digitalSignature",
                "-addext",
                "extendedKeyUsage=clientAuth",
            ],
        );
        fs::set_permissions(&o.key, fs::Permissions::from_mode(0o600)).unwrap();
        o
    }
    pub fn cert_pem(&self) -> Vec<u8> {
        fs::read(&self.cert).unwrap()
    }
    pub fn key_pem(&self) -> Vec<u8> {
        fs::read(&self.key).unwrap()
    }
}

/// A signer, its token, its officers, all in one temporary directory.
#[derive(Debug)]
pub struct Appliance {
    dir: tempfile::TempDir,
    pub softhsm_conf: PathBuf,
    pub token_label: String,
    pub pin_file: PathBuf,
    pub state: PathBuf,
    pub port: u16,
    pub quorum: u32,
    pub officers: Vec<Officer>,
    /// The signing socket, when the appliance was initialised with one.
    pub socket: Option<PathBuf>,
    /// The edge's HTTP port on 127.0.0.1 (also the `--public-url` of the signer).
    pub edge_port: u16,
    log: PathBuf,
    child: Option<Child>,
    edge_log: PathBuf,
    edge: Option<Child>,
}

/// How to initialise an appliance beyond the quorum and the officers.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Configure a signing socket for castellan-edge (`--socket`).
    pub socket: bool,
    /// `--socket-uid` (default: the signer's own uid, which is ours).
    pub socket_uid: Option<u32>,
}

impl Appliance {
    /// A running appliance: `quorum` of `officers`.
    pub fn new(quorum: u32, officers: &[&str]) -> Appliance {
        let mut a = Appliance::init(quorum, officers);
        a.start();
        a
    }

    /// A running signer with a signing socket and a running castellan-edge in front of it.
    pub fn with_edge(quorum: u32, officers: &[&str]) -> Appliance {
        let mut a = Appliance::init_with(
            quorum,
            officers,
            &InitOptions {
                socket: true,
                socket_uid: None,
            },
        );
        a.start();
        a.start_edge();
        a
    }

    /// Token, PIN, officers and `castellan-signer init`, but no running signer.
    pub fn init(quorum: u32, officers: &[&str]) -> Appliance {
        Appliance::init_with(quorum, officers, &InitOptions::default())
    }

    /// [`Appliance::init`] with options (a signing socket).
    pub fn init_with(quorum: u32, officers: &[&str], opts: &InitOptions) -> Appliance {
        let dir = tempfile::Builder::new()
            .prefix("castellan-it-")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        let tokens = root.join("tokens");
        let officer_dir = root.join("officers");
        fs::create_dir_all(&tokens).unwrap();
        fs::create_dir_all(&officer_dir).unwrap();
        let softhsm_conf = root.join("softhsm2.conf");
        write_file(
            &softhsm_conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
            0o644,
        );
        // Token labels are at most 32 characters; the directory name makes this one unique.
        let unique = root
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("castellan-it-", "");
        let token_label = format!("it-{unique}");
        run(Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", &token_label])
            .args(["--so-pin", "5678", "--pin", PIN])
            .env("SOFTHSM2_CONF", &softhsm_conf))
        .expect_ok();
        let pin_file = root.join("pin");
        write_file(&pin_file, format!("{PIN}\n"), 0o600);
        let officers: Vec<Officer> = officers
            .iter()
            .map(|n| Officer::make(&officer_dir, n))
            .collect();
        let port = free_port();
        let state = root.join("state");
        let mut init = Command::new(bin("castellan-signer"));
        init.arg("init")
            .arg("--state-dir")
            .arg(&state)
            .args(["--quorum", &quorum.to_string()]);
        for o in &officers {
            init.arg("--officer")
                .arg(format!("{}={}", o.name, o.cert.display()));
        }
        init.args(["--token-label", &token_label])
            .arg("--pin-file")
            .arg(&pin_file)
            .args(["--admin-listen", &format!("127.0.0.1:{port}")])
            .env("SOFTHSM2_CONF", &softhsm_conf);
        let edge_port = free_port();
        let socket = opts.socket.then(|| root.join("signer.sock"));
        if let Some(sock) = &socket {
            init.arg("--socket")
                .arg(sock)
                .args(["--public-url", &format!("http://127.0.0.1:{edge_port}")]);
            if let Some(uid) = opts.socket_uid {
                init.args(["--socket-uid", &uid.to_string()]);
            }
        }
        run(&mut init).expect_ok();
        Appliance {
            log: root.join("signer.log"),
            edge_log: root.join("edge.log"),
            edge: None,
            socket,
            edge_port,
            dir,
            softhsm_conf,
            token_label,
            pin_file,
            state,
            port,
            quorum,
            officers,
            child: None,
        }
    }

    /// A copy of a fixture appliance in `tests/fixtures/NAME` (made by an older signer: its
    /// token, store, config and officers), on a free port; not started.
    pub fn from_fixture(name: &str, quorum: u32, officers: &[&str]) -> Appliance {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        let dir = tempfile::Builder::new()
            .prefix("castellan-it-")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        copy_tree(&from, &root);
        let softhsm_conf = root.join("softhsm2.conf");
        write_file(
            &softhsm_conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                root.join("tokens").display()
            ),
            0o644,
        );
        let port = free_port();
        let state = root.join("state");
        let config = state.join("signer.toml");
        let text = fs::read_to_string(&config)
            .unwrap()
            .replace("@FIXTURE@", root.to_str().unwrap())
            .replace("@PORT@", &port.to_string());
        write_file(&config, text, 0o600);
        fs::set_permissions(root.join("pin"), fs::Permissions::from_mode(0o600)).unwrap();
        let officers = officers
            .iter()
            .map(|n| {
                let o = Officer {
                    name: (*n).to_owned(),
                    cert: root.join("officers").join(format!("{n}.pem")),
                    key: root.join("officers").join(format!("{n}.key")),
                };
                fs::set_permissions(&o.key, fs::Permissions::from_mode(0o600)).unwrap();
                o
            })
            .collect();
        Appliance {
            log: root.join("signer.log"),
            edge_log: root.join("edge.log"),
            edge: None,
            socket: None,
            edge_port: free_port(),
            softhsm_conf,
            token_label: format!("fixture-{name}"),
            pin_file: root.join("pin"),
            state,
            port,
            quorum,
            officers,
            child: None,
            dir,
        }
    }

    /// The temporary directory (for the test's own files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path in the temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn admin_ca(&self) -> PathBuf {
        self.state.join("admin-ca.pem")
    }

    pub fn officer(&self, name: &str) -> &Officer {
        self.officers
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("no officer {name}"))
    }

    /// The signer log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The edge log so far.
    pub fn edge_log(&self) -> String {
        fs::read_to_string(&self.edge_log).unwrap_or_default()
    }

    /// Start `castellan-edge run --signer-socket SOCKET --listen 127.0.0.1:EDGE_PORT` and wait
    /// for its ready line; panics with its log otherwise.
    pub fn start_edge(&mut self) {
        self.start_edge_with(&[]);
    }

    /// [`Appliance::start_edge`] with extra `castellan-edge run` arguments (e.g. `--cache-dir`).
    pub fn start_edge_with(&mut self, extra: &[&str]) {
        assert!(self.edge.is_none(), "the edge is already running");
        let socket = self
            .socket
            .clone()
            .expect("initialise the appliance with a signing socket (InitOptions::socket)");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.edge_log)
            .unwrap();
        let offset = log.metadata().unwrap().len() as usize;
        let mut edge = Command::new(bin("castellan-edge"));
        edge.arg("run")
            .arg("--signer-socket")
            .arg(&socket)
            .args(["--listen", &format!("127.0.0.1:{}", self.edge_port)])
            .args(extra)
            .env("RUST_LOG", "info");
        let mut child = dies_with_test(&edge)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start castellan-edge run");
        wait_ready(
            &mut child,
            "castellan-edge",
            &self.edge_log,
            offset,
            EDGE_READY_MARKER,
        );
        self.edge = Some(child);
    }

    /// Stop the edge (SIGKILL: it keeps no state). Idempotent.
    pub fn stop_edge(&mut self) {
        if let Some(mut child) = self.edge.take() {
            signal_group(&child, "KILL");
            let _ = child.wait();
        }
    }

    /// The usual SCEP hierarchy through real proposals: an EC P-256 root `root` (10 years)
    /// and an RSA-2048 issuing CA `issuing` under it (5 years), both client-auth. RSA because
    /// `castellan profile create NAME --ca CA --challenge static --secret SECRET EXTRA...`,
    /// proposed and approved.
    pub fn create_static_profile(&self, name: &str, ca: &str, secret: &str, extra: &[&str]) {
        let mut v = vec![
            "profile",
            "create",
            name,
            "--ca",
            ca,
            "--challenge",
            "static",
            "--secret",
            secret,
        ];
        v.extend_from_slice(extra);
        self.propose_and_run(&v);
    }

    /// micromdm scepclient encrypts to every certificate GetCACert returns.
    pub fn create_root_and_issuing(
        &self,
        root_subject: &str,
        issuing: &str,
        issuing_subject: &str,
    ) {
        self.propose_and_run(&[
            "ca",
            "create-root",
            "root",
            "--subject",
            root_subject,
            "--key",
            "ec-p256",
            "--validity",
            "10y",
            "--eku",
            "client-auth",
        ]);
        self.propose_and_run(&[
            "ca",
            "create-issuing",
            issuing,
            "--parent",
            "root",
            "--subject",
            issuing_subject,
            "--key",
            "rsa-2048",
            "--validity",
            "5y",
            "--eku",
            "client-auth",
        ]);
    }

    /// The edge's base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn edge_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.edge_port)
    }

    /// The SCEP URL of a profile (`/scep/PROFILE`), as clients are configured with it.
    pub fn scep_url(&self, profile: &str) -> String {
        format!("{}/scep/{profile}", self.edge_url())
    }

    /// `GET /scep/PROFILE?QUERY` on the edge.
    pub fn scep_get(&self, profile: &str, query: &str) -> HttpReply {
        http(
            self.edge_port,
            "GET",
            &format!("/scep/{profile}?{query}"),
            None,
        )
    }

    /// `POST /scep/PROFILE?operation=PKIOperation` with `body` on the edge.
    pub fn scep_post(&self, profile: &str, body: &[u8]) -> HttpReply {
        http(
            self.edge_port,
            "POST",
            &format!("/scep/{profile}?operation=PKIOperation"),
            Some(body),
        )
    }

    /// A `castellan-signer SUBCOMMAND --state-dir STATE` command with this token's config.
    pub fn signer_cmd(&self, subcommand: &str) -> Command {
        let mut c = Command::new(bin("castellan-signer"));
        c.arg(subcommand)
            .arg("--state-dir")
            .arg(&self.state)
            .env("SOFTHSM2_CONF", &self.softhsm_conf)
            .env("RUST_LOG", "info");
        c
    }

    /// Start `castellan-signer run` and wait for its ready line; panics with the log otherwise.
    pub fn start(&mut self) {
        self.start_wrapped(&[]);
    }

    /// Start `castellan-signer run` under a wrapper command (e.g. `faketime -f -2d`).
    pub fn start_wrapped(&mut self, wrapper: &[&str]) {
        assert!(self.child.is_none(), "the signer is already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let offset = log.metadata().unwrap().len() as usize;
        let mut cmd = self.signer_cmd("run");
        if let Some((program, args)) = wrapper.split_first() {
            let mut wrapped = Command::new(program);
            wrapped
                .args(args)
                .arg(cmd.get_program())
                .args(cmd.get_args());
            for (k, v) in cmd.get_envs() {
                if let Some(v) = v {
                    wrapped.env(k, v);
                }
            }
            cmd = wrapped;
        }
        // Its own process group, so that stopping it also stops what a wrapper (faketime
        // forks) started: a signal to the wrapper alone left signers running after the tests.
        // And killed with its test's thread, should nothing else stop it.
        let mut child = dies_with_test(&cmd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start castellan-signer run");
        wait_ready(
            &mut child,
            "castellan-signer",
            &self.log,
            offset,
            READY_MARKER,
        );
        self.child = Some(child);
    }

    /// Set `key = value` (TOML) in `[section]` of signer.toml, replacing the key if it is
    /// there; the signer reads it at its next start.
    pub fn set_config(&self, section: &str, key: &str, value: &str) {
        let path = self.state.join("signer.toml");
        let text = fs::read_to_string(&path).unwrap();
        let header = format!("[{section}]");
        let mut out = Vec::new();
        let mut in_section = false;
        let mut done = false;
        for line in text.lines() {
            if line.trim_start().starts_with('[') {
                if in_section && !done {
                    out.push(format!("{key} = {value}"));
                    done = true;
                }
                in_section = line.trim() == header;
            }
            if in_section && line.split('=').next().map(str::trim) == Some(key) {
                continue;
            }
            out.push(line.to_owned());
        }
        if !done {
            if !in_section {
                out.push(header);
            }
            out.push(format!("{key} = {value}"));
        }
        write_file(&path, out.join("\n") + "\n", 0o600);
    }

    /// Stop the signer: SIGTERM (a clean stop), SIGKILL after 10 s. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            signal_group(&child, "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Whatever is left of its group (a wrapper's child, or a signer that ignored TERM).
        signal_group(&child, "KILL");
        let _ = child.wait();
    }

    /// The process ids of the running signer and edge.
    pub fn pids(&self) -> Vec<u32> {
        self.child
            .iter()
            .chain(self.edge.iter())
            .map(Child::id)
            .collect()
    }

    /// Kill the signer with SIGKILL (a crash, or a power cut as far as the store can tell).
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(&child, "KILL");
            let _ = child.wait();
        }
    }

    /// The serials (lower-case hex) of every certificate `ca` issued, as `cert list` gives
    /// them; panics if one is listed twice.
    pub fn serials(&self, ca: &str) -> Vec<String> {
        let listed = self.cli_json(
            "alice",
            &["cert", "list", "--ca", ca, "--limit", "1000", "--json"],
        );
        let serials: Vec<String> = listed["certs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["serial"].as_str().unwrap().to_owned())
            .collect();
        let unique: std::collections::BTreeSet<&String> = serials.iter().collect();
        assert_eq!(
            unique.len(),
            serials.len(),
            "a serial is in the store twice"
        );
        serials
    }

    /// Every certificate received (`DIR/cert.pem`, scepclient's output) is active in the
    /// store of `ca`, and no two carry the same serial. Returns the store's serials.
    pub fn assert_received_stored_once(&self, ca: &str, received: &[PathBuf]) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        for dir in received {
            let serial = cert_serial(self.dir(), &dir.join("cert.pem"));
            let shown = self.cli_json("alice", &["cert", "show", &serial, "--ca", ca, "--json"]);
            assert_eq!(shown["status"], "active", "{shown}");
            assert!(
                seen.insert(serial.clone()),
                "two clients got serial {serial}"
            );
        }
        self.serials(ca)
    }

    /// Wait up to `timeout` for the signer to exit by itself; its exit code (None: it
    /// still runs, or a signal ended it).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// Run `castellan-signer run` expecting it to refuse to start; kills it and panics if it
    /// becomes ready or keeps running for 30 s.
    pub fn run_expect_exit(&self) -> Out {
        assert!(self.child.is_none(), "stop the signer first");
        let log = self.path("refused-run.log");
        let mut child = self
            .signer_cmd("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + READY_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            let text = fs::read_to_string(&log).unwrap_or_default();
            if text.contains(READY_MARKER) || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("castellan-signer run did not refuse to start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Out {
            what: "castellan-signer run".into(),
            code: status.code(),
            stdout: String::new(),
            stderr: fs::read_to_string(&log).unwrap_or_default(),
            raw_stdout: Vec::new(),
        }
    }

    /// `castellan-signer check-config`.
    pub fn check_config(&self) -> Out {
        run(&mut self.signer_cmd("check-config"))
    }

    /// The CLI as `officer` (connection options before the subcommand).
    pub fn cli(&self, officer: &str, args: &[&str]) -> Out {
        let o = self.officer(officer);
        self.cli_as(&o.cert, &o.key, args)
    }

    /// The CLI with any certificate and key (e.g. an unregistered one).
    pub fn cli_as(&self, cert: &Path, key: &Path, args: &[&str]) -> Out {
        let mut out = run(Command::new(bin("castellan"))
            .arg("--admin")
            .arg(self.url())
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--admin-ca")
            .arg(self.admin_ca())
            .args(args)
            .current_dir(self.dir()));
        out.what = format!("castellan {} (as {})", args.join(" "), cert.display());
        out
    }

    /// `cli(...)` that must succeed; returns stdout.
    pub fn cli_ok(&self, officer: &str, args: &[&str]) -> String {
        self.cli(officer, args).expect_ok().to_owned()
    }

    /// `cli(...)` whose stdout is JSON.
    pub fn cli_json(&self, officer: &str, args: &[&str]) -> Value {
        self.cli(officer, args).json()
    }

    /// Propose (args without --json) as `proposer`; the answer must be a pending proposal
    /// with one approval (unless the quorum is 1). Returns the proposal JSON.
    pub fn propose(&self, proposer: &str, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let p = self.cli_json(proposer, &a);
        assert_eq!(p["approvals"], 1, "{p:#}");
        assert_eq!(p["approved_by"], serde_json::json!([proposer]), "{p:#}");
        assert_eq!(p["quorum"], self.quorum, "{p:#}");
        let want = if self.quorum <= 1 {
            "executed"
        } else {
            "pending"
        };
        assert_eq!(p["status"], want, "{p:#}");
        p
    }

    /// Approve as `officer`; returns the proposal JSON.
    pub fn approve(&self, officer: &str, id: &str) -> Value {
        self.cli_json(officer, &["proposal", "approve", id, "--json"])
    }

    /// Propose as alice, approve by the others in order until it runs; the proposal must
    /// end `executed`. Returns it.
    pub fn propose_and_run(&self, args: &[&str]) -> Value {
        let mut p = self.propose("alice", args);
        let id = p["id"].as_str().unwrap().to_owned();
        for o in self.officers.iter().filter(|o| o.name != "alice") {
            if p["status"] != "pending" {
                break;
            }
            p = self.approve(&o.name, &id);
        }
        assert_eq!(p["status"], "executed", "{p:#}");
        p
    }

    /// Register an admin by proposal (`admin add`, run by quorum) with a new key and
    /// certificate, and keep them for `cli(name, ...)`.
    pub fn add_admin(&mut self, name: &str, role: &str, tags: &str) {
        let o = Officer::make(self.dir(), name);
        self.propose_and_run(&[
            "admin",
            "add",
            name,
            "--cert",
            o.cert.to_str().unwrap(),
            "--role",
            role,
            "--tags",
            tags,
        ]);
        self.officers.push(o);
    }

    pub fn ca_show(&self, name: &str) -> Value {
        self.cli_json("alice", &["ca", "show", name, "--json"])
    }

    pub fn ca_list(&self) -> Value {
        self.cli_json("alice", &["ca", "list", "--json"])
    }

    pub fn proposals(&self) -> Value {
        self.cli_json("alice", &["proposal", "list", "--json"])
    }

    pub fn proposal(&self, id: &str) -> Value {
        self.cli_json("alice", &["proposal", "show", id, "--json"])
    }

    /// A CA's certificate (PEM) written to `file` in the temp dir; returns the path.
    pub fn save_cert(&self, ca: &str, file: &str) -> PathBuf {
        let p = self.path(file);
        self.cli_ok("alice", &["ca", "cert", ca, "-o", p.to_str().unwrap()]);
        p
    }

    /// A CA's chain: `ca chain` (.p7b, DER) converted by openssl to a PEM bundle; returns the
    /// PEM path and the number of certificates in it.
    pub fn save_chain(&self, ca: &str, file: &str) -> (PathBuf, usize) {
        let p7b = self.path(&format!("{file}.p7b"));
        let pem = self.path(file);
        self.cli_ok("alice", &["ca", "chain", ca, "-o", p7b.to_str().unwrap()]);
        let text = openssl_ok(
            self.dir(),
            &[
                "pkcs7",
                "-inform",
                "DER",
                "-print_certs",
                "-in",
                p7b.to_str().unwrap(),
            ],
        );
        fs::write(&pem, &text).unwrap();
        (pem, text.matches("-----BEGIN CERTIFICATE-----").count())
    }

    /// `pkcs11-tool` on this appliance's token, logged in.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Out {
        run(Command::new("pkcs11-tool")
            .args(["--module", MODULE, "--token-label", &self.token_label])
            .args(["--login", "--pin", PIN])
            .args(args)
            .env("SOFTHSM2_CONF", &self.softhsm_conf))
    }

    /// A library client for the admin port, as `officer`.
    pub fn client(&self, officer: &str) -> cli::client::AdminClient {
        let o = self.officer(officer);
        cli::client::AdminClient::new(
            &self.url(),
            &fs::read(self.admin_ca()).unwrap(),
            &o.cert_pem(),
            &o.key_pem(),
        )
        .unwrap()
    }

    /// One library call as `officer`.
    pub fn call(
        &self,
        officer: &str,
        request: &proto::admin::Request,
    ) -> cli::Result<proto::admin::Response> {
        let client = self.client(officer);
        block_on(client.call(request))
    }

    /// Post raw JSON to `/v1` as `officer` over the real mTLS port, for requests the typed
    /// library cannot even build. Returns the HTTP status and the body.
    pub fn raw_call(&self, officer: &str, json: &str) -> (u16, String) {
        let (status, _, body) = self.raw_request(
            officer,
            &format!(
                "POST /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                json.len()
            ),
        );
        (status, body)
    }

    /// GET `path` as `officer` over the real mTLS port (the web console). Returns the HTTP
    /// status, the header block and the body.
    pub fn get(&self, officer: &str, path: &str) -> (u16, String, String) {
        self.raw_request(
            officer,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )
    }

    /// POST a form (`application/x-www-form-urlencoded`) to `path` as `officer` (the web
    /// console). Returns the HTTP status, the header block and the body.
    pub fn post_form(&self, officer: &str, path: &str, form: &str) -> (u16, String, String) {
        self.raw_request(
            officer,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
                form.len()
            ),
        )
    }

    /// Send one raw HTTP/1.1 request as `officer`; returns the status, headers and body.
    fn raw_request(&self, officer: &str, request: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let o = self.officer(officer);
        let config = cli::client::client_config(
            &fs::read(self.admin_ca()).unwrap(),
            &o.cert_pem(),
            &o.key_pem(),
        )
        .unwrap();
        let port = self.port;
        let request = request.to_owned();
        let response = block_on(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, tcp)
                .await
                .unwrap();
            tls.write_all(request.as_bytes()).await.unwrap();
            tls.flush().await.unwrap();
            let mut buf = Vec::new();
            // The server may close without close_notify; what was read is enough.
            let _ = tls.read_to_end(&mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        });
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {response:?}"));
        let (head, body) = response
            .split_once("\r\n\r\n")
            .map(|(h, b)| (h.to_owned(), b.to_owned()))
            .unwrap_or_default();
        (status, head, body)
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.stop_edge();
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- signer log ({}) ---\n{}",
                self.log.display(),
                self.log()
            );
            if self.socket.is_some() {
                eprintln!(
                    "--- edge log ({}) ---\n{}",
                    self.edge_log.display(),
                    self.edge_log()
                );
            }
        }
    }
}

/// Send SIGsig to the process group `child` leads (spawned with `process_group(0)`). A
/// group that is gone already is no error.
pub(crate) fn signal_group(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
}

/// Wait until `log` (from byte `offset` on) contains `marker`; panic with the log if the
/// process exits first or [`READY_TIMEOUT`] passes (the process is then killed).
pub(crate) fn wait_ready(child: &mut Child, what: &str, log: &Path, offset: usize, marker: &str) {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if text.get(offset..).is_some_and(|t| t.contains(marker)) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} run exited ({status}) before it was ready\n--- log ---\n{text}");
        }
        if Instant::now() > deadline {
            signal_group(child, "KILL");
            let _ = child.wait();
            panic!(
                "{what} run did not print `{marker}` within {} s\n--- log ---\n{text}",
                READY_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The response head (status line and headers).
    pub head: String,
}

impl HttpReply {
    /// The body as text (for error reasons and GetCACaps).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A response header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// Panic unless the status is 200; returns the body.
    pub fn expect_ok(&self) -> &[u8] {
        assert_eq!(self.status, 200, "HTTP {}: {}", self.status, self.text());
        &self.body
    }
}

/// One plain HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`), read to the end.
/// Enough of a client for the edge: Content-Length or chunked bodies.
pub fn http(port: u16, method: &str, target: &str, body: Option<&[u8]>) -> HttpReply {
    use std::io::Read;
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/x-pki-message\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).unwrap();
    if let Some(b) = body {
        tcp.write_all(b).unwrap();
    }
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "{method} {target}: no HTTP head in {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {target}: no status in {head:?}"));
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    HttpReply {
        status,
        content_type: header("content-type").unwrap_or_default(),
        body,
        head: head.clone(),
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 4 + size..];
    }
}

/// Percent-encode a query value (everything but RFC 3986 unreserved characters).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// micromdm's `scepclient -server-url URL [-challenge C] -private-key key.pem -certificate
/// cert.pem -cn CN`, run in `dir` (it writes and reuses ./csr.pem and ./self.pem there, so
/// give each device a directory of its own). Its log goes to stderr; the certificate to
/// `dir/cert.pem`.
pub fn scepclient(dir: &Path, url: &str, challenge: Option<&str>, cn: &str) -> Out {
    fs::create_dir_all(dir).unwrap();
    let mut c = Command::new("scepclient");
    c.args(["-server-url", url]);
    if let Some(ch) = challenge {
        c.args(["-challenge", ch]);
    }
    c.args([
        "-private-key",
        "key.pem",
        "-certificate",
        "cert.pem",
        "-cn",
        cn,
    ])
    .current_dir(dir);
    let mut out = run(&mut c);
    out.what = format!("scepclient {url} -cn {cn} in {}", dir.display());
    out
}

/// A PEM certificate's serial, lower-case hex, as openssl prints it.
pub fn cert_serial(dir: &Path, cert: &Path) -> String {
    openssl_ok(
        dir,
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    )
    .trim()
    .trim_start_matches("serial=")
    .to_ascii_lowercase()
}

/// Certificate text as `openssl x509 -noout -text` prints it.
pub fn x509_text(dir: &Path, cert: &Path) -> String {
    openssl_ok(
        dir,
        &["x509", "-noout", "-text", "-in", cert.to_str().unwrap()],
    )
}

/// Copy a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// `openssl verify -x509_strict -CAfile ROOT -untrusted CHAIN CERT`; returns the output
/// (stdout and stderr) and whether openssl said OK.
pub fn verify(dir: &Path, root: &Path, untrusted: Option<&Path>, cert: &Path) -> (bool, String) {
    let mut args = vec!["verify", "-x509_strict", "-CAfile", root.to_str().unwrap()];
    if let Some(u) = untrusted {
        args.extend(["-untrusted", u.to_str().unwrap()]);
    }
    args.push(cert.to_str().unwrap());
    let o = openssl(dir, &args);
    let text = format!("{}{}", o.stdout, o.stderr);
    let ok = o.ok() && o.stdout.trim_end().ends_with(": OK");
    (ok, text)
}

/// A certificate's serial number in bits (from `openssl x509 -serial`).
pub fn serial_bits(dir: &Path, cert: &Path) -> usize {
    let out = openssl_ok(
        dir,
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    );
    let hex = out
        .trim()
        .trim_start_matches("serial=")
        .trim_start_matches('0');
    let Some(first) = hex.chars().next() else {
        return 0;
    };
    (hex.len() - 1) * 4 + (32 - first.to_digit(16).unwrap().leading_zeros()) as usize
}

/// An external CA made with openssl: key and certificate files in `dir`.
#[derive(Debug, Clone)]
pub struct ExtCa {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A self-signed external root (CA:TRUE, keyCertSign).
pub fn ext_root(dir: &Path, file: &str, subject: &str) -> ExtCa {
    let ca = ExtCa {
        cert: dir.join(format!("{file}.pem")),
        key: dir.join(format!("{file}.key")),
    };
    openssl_ok(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            ca.key.to_str().unwrap(),
            "-out",
            ca.cert.to_str().unwrap(),
            "-subj",
            subject,
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    ca
}

/// Sign `csr` with `issuer` using the extension lines `ext` (an openssl extfile); writes
/// `out`.
pub fn ext_sign(dir: &Path, csr: &Path, issuer: &ExtCa, ext: &str, out: &Path, extra: &[&str]) {
    let extfile = dir.join(format!(
        "{}.ext",
        out.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&extfile, ext).unwrap();
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        issuer.cert.to_str().unwrap(),
        "-CAkey",
        issuer.key.to_str().unwrap(),
        "-CAcreateserial",
        "-days",
        "1825",
        "-sha256",
        "-extfile",
        extfile.to_str().unwrap(),
        "-out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    openssl_ok(dir, &args);
}

/// The extensions of an external intermediate or of a signed Castellan CA.
pub const EXT_CA: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";
/// The extensions for a Castellan BYOCA certificate, as the brief for corp CAs says.
pub const EXT_CASTELLAN: &str = "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";
/// An end-entity certificate's extensions.
pub const EXT_NOT_CA: &str = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";

/// An external intermediate under `root`: new key, CSR, signed with CA extensions.
pub fn ext_intermediate(dir: &Path, file: &str, subject: &str, root: &ExtCa) -> ExtCa {
    ext_issue(dir, file, subject, root, EXT_CA)
}

/// A new P-256 key and a certificate for it from `issuer` with the extension lines `ext`:
/// `FILE.key`, `FILE.csr`, `FILE.pem` in `dir`.
pub fn ext_issue(dir: &Path, file: &str, subject: &str, issuer: &ExtCa, ext: &str) -> ExtCa {
    let ca = ExtCa {
        cert: dir.join(format!("{file}.pem")),
        key: dir.join(format!("{file}.key")),
    };
    let csr = dir.join(format!("{file}.csr"));
    openssl_ok(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            ca.key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
            "-subj",
            subject,
        ],
    );
    ext_sign(dir, &csr, issuer, ext, &ca.cert, &[]);
    ca
}

/// Concatenate files into one (a PEM bundle).
pub fn bundle(out: &Path, parts: &[&Path]) {
    let mut f = fs::File::create(out).unwrap();
    for p in parts {
        f.write_all(&fs::read(p).unwrap()).unwrap();
    }
}

/// The status of a CA from `ca show --json`.
pub fn status(a: &Appliance, ca: &str) -> String {
    a.ca_show(ca)["status"].as_str().unwrap().to_owned()
}

/// Names in `ca list --json`.
pub fn ca_names(a: &Appliance) -> Vec<String> {
    a.ca_list()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A tmpfs of `megabytes` mounted over `dir` (which keeps its contents: they are copied in)
/// while this lives; unmounted (the contents copied back) when dropped. Tests run as root.
#[derive(Debug)]
pub struct SmallDisk {
    dir: PathBuf,
    saved: PathBuf,
}

impl SmallDisk {
    pub fn mount(dir: &Path, megabytes: u32) -> Result<SmallDisk, String> {
        let saved = dir.with_extension("saved");
        fs::rename(dir, &saved).map_err(|e| e.to_string())?;
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m,mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !mounted.status.success() {
            let _ = fs::remove_dir(dir);
            let _ = fs::rename(&saved, dir);
            return Err(String::from_utf8_lossy(&mounted.stderr).into_owned());
        }
        run(Command::new("cp").arg("-a").arg(saved.join(".")).arg(dir)).expect_ok();
        Ok(SmallDisk {
            dir: dir.to_owned(),
            saved,
        })
    }

    /// Write a file of zeros until the filesystem is full; returns its path.
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        // Whatever a partial page left: byte by byte to the last one.
        while f.write_all(&[0]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.dir.join("filler"));
        let _ = Command::new("cp")
            .arg("-a")
            .arg(self.dir.join("."))
            .arg(&self.saved)
            .status();
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = fs::remove_dir(&self.dir);
        let _ = fs::rename(&self.saved, &self.dir);
    }
}
