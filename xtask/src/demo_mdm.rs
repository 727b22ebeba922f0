//! `cargo xtask demo --mdm`: castellan-mdm beside the demo, with an NDES-style challenge
//! endpoint (`https://127.0.0.1:8444/certsrv/mscep_admin/`, HTTP Basic) for the one-time
//! profile `devices-dynamic` (legacy algorithms too, so micromdm's scepclient can use it).
//! Its files live in `var/demo/mdm/`, made once and reused: the connector's admin-port
//! identity, a self-signed HTTPS certificate, the MDM account's password (stored hashed in
//! `mdm.toml`), and the signer's `[mdm]` section. `demo.json` gets an object `mdm` with the
//! endpoint's `url`, `username`, `password` and `profile`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::demo::{Paths, random_hex, write_file};
use crate::tools;
use crate::{Context, Failure, Result};

pub(crate) const PROFILE: &str = "devices-dynamic";
const USERNAME: &str = "jamf";
const HTTPS_PORT: u16 = 8444;
pub(crate) const READY_MARKER: &str = "castellan-mdm ready";

/// The connector's files.
#[derive(Debug)]
pub(crate) struct Mdm {
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) log: PathBuf,
    password: String,
}

impl Mdm {
    pub(crate) fn url(&self) -> String {
        format!("https://127.0.0.1:{HTTPS_PORT}/certsrv/mscep_admin/")
    }

    /// What demo.json records.
    pub(crate) fn json(&self) -> Value {
        json!({
            "url": self.url(), "username": USERNAME, "password": self.password,
            "profile": PROFILE, "ca_file": self.dir.join("https.pem"),
        })
    }
}

fn q(p: &std::path::Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// Make (or reuse) the connector's files and give the signer its `[mdm]` section; before
/// the signer starts.
pub(crate) fn prepare(paths: &Paths) -> Result<Mdm> {
    let dir = paths.demo.join("mdm");
    let mdm = Mdm {
        config: dir.join("mdm.toml"),
        log: dir.join("mdm.log"),
        password: String::new(),
        dir,
    };
    let password_file = mdm.dir.join("password");
    if mdm.config.is_file() && password_file.is_file() {
        let password = fs::read_to_string(&password_file)
            .context(format!("read {}", password_file.display()))?
            .trim()
            .to_owned();
        return Ok(Mdm { password, ..mdm });
    }
    fs::create_dir_all(&mdm.dir).context(format!("create {}", mdm.dir.display()))?;
    let identity = crate::demo::make_officer(&mdm.dir, "mdm-connector")?;
    let (cert, key) = (mdm.dir.join("https.pem"), mdm.dir.join("https.key"));
    let mut req = Command::new("openssl");
    req.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ])
    .args(["-nodes", "-keyout"])
    .arg(&key)
    .arg("-out")
    .arg(&cert)
    .args(["-subj", "/CN=127.0.0.1", "-days", "825"])
    .args(["-addext", "subjectAltName=IP:127.0.0.1"])
    .args(["-addext", "basicConstraints=critical,CA:FALSE"]);
    tools::run_quietly(&mut req, "openssl req (castellan-mdm HTTPS certificate)")?;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
        .context(format!("chmod {}", key.display()))?;
    let password = random_hex(12)?;
    write_file(&password_file, format!("{password}\n").as_bytes(), 0o600)?;
    let mut hash = Command::new(paths.bin_dir.join("castellan-mdm"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("start castellan-mdm hash-password")?;
    if let Some(mut stdin) = hash.stdin.take() {
        stdin
            .write_all(format!("{password}\n").as_bytes())
            .context("write the password")?;
    }
    let out = hash
        .wait_with_output()
        .context("castellan-mdm hash-password")?;
    if !out.status.success() {
        return Err(Failure::new("castellan-mdm hash-password failed"));
    }
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let sock = mdm.dir.join("mdm.sock");
    let config = format!(
        "socket = {sock}\n\n[signer]\nurl = \"https://127.0.0.1:{admin}\"\nca-file = {ca}\n\
         cert-file = {cert}\nkey-file = {key}\n\n[https]\nlisten = \"127.0.0.1:{HTTPS_PORT}\"\n\
         cert-file = {https_cert}\nkey-file = {https_key}\n\n[[ndes]]\nusername = \"{USERNAME}\"\n\
         password-hash = \"{hash}\"\nprofile = \"{PROFILE}\"\n",
        sock = q(&sock),
        admin = admin_port(paths)?,
        ca = q(&paths.state.join("admin-ca.pem")),
        cert = q(&identity.cert),
        key = q(&identity.key),
        https_cert = q(&cert),
        https_key = q(&key),
    );
    write_file(&mdm.config, config.as_bytes(), 0o600)?;
    let signer_toml = paths.state.join("signer.toml");
    let text =
        fs::read_to_string(&signer_toml).context(format!("read {}", signer_toml.display()))?;
    if !text.contains("[mdm]") {
        let text = format!(
            "{text}\n[mdm]\nsocket = {}\nidentity-cert = {}\n",
            q(&sock),
            q(&identity.cert)
        );
        write_file(&signer_toml, text.as_bytes(), 0o600)?;
    }
    Ok(Mdm { password, ..mdm })
}

/// The admin port from signer.toml's `admin-listen`.
fn admin_port(paths: &Paths) -> Result<u16> {
    let text = fs::read_to_string(paths.state.join("signer.toml")).context("read signer.toml")?;
    text.lines()
        .find_map(|l| l.strip_prefix("admin-listen = "))
        .and_then(|v| v.trim().trim_matches('"').rsplit(':').next()?.parse().ok())
        .ok_or_else(|| Failure::new("signer.toml has no admin-listen"))
}

/// Add the `mdm` object to demo.json.
pub(crate) fn record(paths: &Paths, mdm: &Mdm) -> Result<()> {
    let text = fs::read_to_string(&paths.json).context("read demo.json")?;
    let mut v: Value =
        serde_json::from_str(&text).map_err(|e| Failure::new(format!("demo.json: {e}")))?;
    if let Value::Object(map) = &mut v {
        map.insert("mdm".into(), mdm.json());
    }
    let text = serde_json::to_string_pretty(&v)
        .map_err(|e| Failure::new(format!("encode demo.json: {e}")))?;
    write_file(&paths.json, format!("{text}\n").as_bytes(), 0o600)
}
