//! castellan-mdm end to end: micromdm's scepclient → castellan-edge → castellan-signer
//! (SoftHSM2) → castellan-mdm → the emulated Entra ID, Graph and Intune services
//! (tests::intune), the NDES-style challenge endpoint fetched with curl, and webhooks.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tests::intune::{CLIENT_ID, CLIENT_SECRET, Connector, Emulator, Hook, TENANT};
use tests::*;

const ISSUING: &str = "issuing";
const ISSUING_DN: &str = "CN=MDM IT Issuing,O=Castellan Tests,C=US";
const NDES_PASSWORD: &str = "jamf-fetches-challenges";
/// scepclient sends DES and SHA-1; certificates inside their renewal window.
const LEGACY: [&str; 1] = ["--legacy-algorithms"];

struct Setup {
    a: Appliance,
    emu: Emulator,
    mdm: Connector,
    https_port: u16,
}

fn hash_password(pw: &str) -> String {
    use std::io::Write;
    let mut c = Command::new(bin("castellan-mdm"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{pw}\n").as_bytes())
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn q(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// An appliance with edge, an `intune` profile `phones`, a one-time profile `dynamic`
/// served to the MDM account `jamf`, a `webhook` profile `hooked`, the emulator, and a
/// running connector.
fn setup() -> Setup {
    setup_with(false)
}

/// [`setup`], with a certificate credential for Entra ID instead of a client secret.
fn setup_with(certificate_credential: bool) -> Setup {
    let mut a = Appliance::init_with(
        1,
        &["alice"],
        &InitOptions {
            socket: true,
            socket_uid: None,
        },
    );
    let identity = Officer::make(a.dir(), "mdm-identity");
    let mdm_sock = a.path("mdm.sock");
    a.set_config("mdm", "socket", &q(&mdm_sock));
    a.set_config("mdm", "identity-cert", &q(&identity.cert));
    a.start();
    a.start_edge();
    a.create_root_and_issuing("CN=MDM IT Root,O=Castellan Tests,C=US", ISSUING, ISSUING_DN);
    for (name, mode) in [
        ("phones", "intune"),
        ("dynamic", "one-time"),
        ("hooked", "webhook"),
    ] {
        let mut v = vec![
            "profile",
            "create",
            name,
            "--ca",
            ISSUING,
            "--challenge",
            mode,
        ];
        v.extend_from_slice(&LEGACY);
        a.propose_and_run(&v);
    }
    let emu = Emulator::start(&a.path("emulator"));
    emu.state().hook_key = b"hook-secret".to_vec();
    let secret = a.path("intune-secret");
    write_file(&secret, CLIENT_SECRET, 0o600);
    let credential = if certificate_credential {
        let (cert, key) = (a.path("app.pem"), a.path("app.key"));
        openssl_ok(
            a.dir(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
                "-subj",
                "/CN=castellan-mdm app",
                "-days",
                "30",
            ],
        );
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        openssl_ok(
            a.dir(),
            &[
                "x509",
                "-in",
                cert.to_str().unwrap(),
                "-outform",
                "DER",
                "-out",
                "app.der",
            ],
        );
        emu.state().client_cert = Some(std::fs::read(a.path("app.der")).unwrap());
        format!(
            "client-certificate-file = {}\nclient-key-file = {}",
            q(&cert),
            q(&key)
        )
    } else {
        format!("client-secret-file = {}", q(&secret))
    };
    let hook_secret = a.path("hook-secret");
    write_file(&hook_secret, "hook-secret\n", 0o600);
    let https_key = a.path("https.key");
    std::fs::copy(a.path("emulator").join("server.key"), &https_key).unwrap();
    std::fs::set_permissions(
        &https_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let https_port = free_port();
    let config = a.path("mdm.toml");
    write_file(
        &config,
        format!(
            r#"socket = {sock}

[signer]
url = "{admin}"
ca-file = {admin_ca}
cert-file = {cert}
key-file = {key}

[intune]
tenant = "{TENANT}"
client-id = "{CLIENT_ID}"
{credential}
login-url = "{emu}"
graph-url = "{emu}"
graph-resource = "https://graph.microsoft.com"
trust-file = {trust}
revocation-interval-secs = 0

[https]
listen = "127.0.0.1:{https_port}"
cert-file = {https_cert}
key-file = {https_key}

[[ndes]]
username = "jamf"
password-hash = "{hash}"
profile = "dynamic"

[[webhook]]
profile = "hooked"
url = "{emu}/hook"
secret-file = {hook_secret}
trust-file = {trust}
timeout-secs = 2
"#,
            sock = q(&mdm_sock),
            admin = a.url(),
            admin_ca = q(&a.admin_ca()),
            cert = q(&identity.cert),
            key = q(&identity.key),
            emu = emu.url(),
            trust = q(&emu.ca_file),
            https_cert = q(&a.path("emulator").join("server.pem")),
            https_key = q(&https_key),
            hash = hash_password(NDES_PASSWORD),
            hook_secret = q(&hook_secret),
        ),
        0o600,
    );
    let check = run(Command::new(bin("castellan-mdm"))
        .args(["check-config", "--config"])
        .arg(&config));
    assert!(check.expect_ok().contains("OK"), "{check}");
    let mdm = Connector::start(&config, &a.path("mdm.log"));
    Setup {
        a,
        emu,
        mdm,
        https_port,
    }
}

fn cert_der(dir: &Path) -> Vec<u8> {
    let pem = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64_decode(&b64)
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap()
}

fn serial_of(dir: &Path) -> String {
    let s = openssl_ok(dir, &["x509", "-noout", "-serial", "-in", "cert.pem"]);
    s.trim().trim_start_matches("serial=").to_ascii_lowercase()
}

fn enrol(a: &Appliance, profile: &str, challenge: &str, cn: &str) -> (PathBuf, Out) {
    let dir = a.path(cn);
    let out = scepclient(&dir, &a.scep_url(profile), Some(challenge), cn);
    (dir, out)
}

fn enrolled(a: &Appliance, profile: &str, challenge: &str, cn: &str) -> PathBuf {
    let (dir, out) = enrol(a, profile, challenge, cn);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(out.ok() && !text.contains("failInfo"), "{out}\n{}", a.log());
    assert!(dir.join("cert.pem").exists(), "{out}");
    dir
}

fn refused(a: &Appliance, profile: &str, challenge: &str, cn: &str) {
    let (dir, out) = enrol(a, profile, challenge, cn);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("failInfo: badRequest"), "{out}\n{}", a.log());
    assert!(!dir.join("cert.pem").exists(), "{out}");
}

fn count(a: &Appliance, status: &str) -> usize {
    let v = a.cli_json(
        "alice",
        &[
            "cert", "list", "--ca", ISSUING, "--status", status, "--json",
        ],
    );
    v["certs"].as_array().map_or(0, Vec::len)
}

#[test]
fn intune_validates_issues_notifies_and_revokes_end_to_end() {
    let s = setup();
    let a = &s.a;
    {
        let mut st = s.emu.state();
        st.valid_challenges.insert("intune-blob-1".into());
        st.valid_challenges.insert("intune-blob-2".into());
        // The first endpoint list points at a dead address: the connector must discover again.
        st.dead_discoveries = 1;
        // Tokens live 302 s and are refreshed 300 s early: a new one after 2 s.
        st.token_ttl = 302;
    }

    // A genuine request: validated, issued, notified, delivered.
    let dir = enrolled(a, "phones", "intune-blob-1", "phone-1");
    let serial = serial_of(&dir);
    let der = cert_der(&dir);
    let (notification, validated_csr) = {
        let st = s.emu.state();
        assert_eq!(
            st.refusals,
            Vec::<String>::new(),
            "the emulator refused calls"
        );
        assert_eq!(st.discoveries, 2, "one failed endpoint, one re-discovery");
        assert_eq!(st.success_notifications.len(), 1);
        let n = st.success_notifications[0].clone();
        let csr = st.validated[n["transactionId"].as_str().unwrap()].clone();
        (n, csr)
    };
    assert_eq!(n_str(&notification, "certificateRequest"), validated_csr);
    assert_eq!(
        n_str(&notification, "certificateSerialNumber"),
        serial.trim_start_matches('0')
    );
    let thumb = openssl_ok(
        &dir,
        &["x509", "-noout", "-fingerprint", "-sha1", "-in", "cert.pem"],
    );
    assert_eq!(
        n_str(&notification, "certificateThumbprint"),
        thumb
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_ascii_lowercase()
    );
    assert_eq!(n_str(&notification, "caConfiguration"), ISSUING);
    assert_eq!(
        n_str(&notification, "issuingCertificateAuthority"),
        ISSUING_DN
    );
    assert!(n_str(&notification, "certificateExpirationDateUtc").ends_with(".0000000Z"));
    assert!(!der.is_empty());

    // A second genuine request after the Intune token went stale: a new token, no refusal.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    enrolled(a, "phones", "intune-blob-2", "phone-2");
    {
        let st = s.emu.state();
        assert_eq!(st.refusals, Vec::<String>::new());
        assert!(st.tokens_issued["intune"] >= 2, "{:?}", st.tokens_issued);
    }

    // A challenge Intune did not issue: FAILURE badRequest, nothing issued, no notification.
    let before = count(a, "active");
    refused(a, "phones", "forged-blob", "phone-forged");
    assert_eq!(count(a, "active"), before);
    assert_eq!(s.emu.state().success_notifications.len(), 2);
    assert!(
        a.log().contains("Intune refused the request"),
        "{}",
        a.log()
    );

    // A certificate of the same CA that did not come through Intune (a one-time profile).
    let once = a.cli_json(
        "alice",
        &["challenge", "new", "--profile", "dynamic", "--json"],
    );
    let not_intune = enrolled(
        a,
        "dynamic",
        once["challenge"].as_str().unwrap(),
        "laptop-1",
    );
    let not_intune = serial_of(&not_intune);

    // Intune asks to revoke phone-1 (twice), an unknown serial, an unknown issuer, and a
    // certificate outside its scope.
    {
        let mut st = s.emu.state();
        for (ctx, serial, issuer) in [
            ("ctx-out-of-scope", not_intune.as_str(), ISSUING_DN),
            ("ctx-revoke", serial.as_str(), ISSUING_DN),
            ("ctx-again", serial.as_str(), ISSUING_DN),
            ("ctx-unknown-serial", "1234abcd", ISSUING_DN),
            ("ctx-unknown-issuer", serial.as_str(), "CN=Someone Else"),
        ] {
            st.revocation_queue.push(serde_json::json!({
                "requestContext": ctx, "serialNumber": serial.to_ascii_uppercase(),
                "issuerName": issuer, "caConfiguration": ISSUING,
            }));
        }
    }
    let out = run(Command::new(bin("castellan-mdm"))
        .args(["revoke-now", "--config"])
        .arg(&s.mdm.config));
    out.expect_ok();
    let results: Vec<(String, String, bool)> = s
        .emu
        .state()
        .revocation_results
        .iter()
        .map(|r| {
            (
                n_str(r, "requestContext"),
                n_str(r, "errorCode"),
                r["succeeded"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        vec![
            (
                "ctx-out-of-scope".into(),
                "CertificateNotFoundError".into(),
                false
            ),
            ("ctx-revoke".into(), "None".into(), true),
            ("ctx-again".into(), "ConflictError".into(), false),
            (
                "ctx-unknown-serial".into(),
                "CertificateNotFoundError".into(),
                false
            ),
            (
                "ctx-unknown-issuer".into(),
                "ParameterDataInvalidError".into(),
                false
            ),
        ]
    );
    let shown = a.cli_json(
        "alice",
        &["cert", "show", &serial, "--ca", ISSUING, "--json"],
    );
    assert_eq!(shown["status"], "revoked", "{shown}");
    let other = a.cli_json(
        "alice",
        &["cert", "show", &not_intune, "--ca", ISSUING, "--json"],
    );
    assert_eq!(other["status"], "active", "{other}");
    let audit = a.log();
    assert!(audit.contains("revocation requested by Intune"), "{audit}");
    assert_eq!(s.emu.state().refusals, Vec::<String>::new());
}

fn n_str(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_owned()
}

#[test]
fn a_certificate_intune_was_not_told_about_is_withdrawn_and_nothing_issues_without_the_connector() {
    let mut s = setup();
    let a = &s.a;
    s.emu.state().valid_challenges.insert("intune-blob".into());
    s.emu.state().fail_success_notifications = true;
    let (revoked, active) = (count(a, "revoked"), count(a, "active"));
    refused(a, "phones", "intune-blob", "phone-unnotified");
    // Issued, not delivered, and revoked at once; Intune heard of the failure.
    assert_eq!(count(a, "revoked"), revoked + 1);
    assert_eq!(count(a, "active"), active);
    {
        let st = s.emu.state();
        assert_eq!(st.failure_notifications.len(), 1, "{:?}", st.refusals);
        let f = &st.failure_notifications[0];
        assert_eq!(f["hResult"], serde_json::json!(0x2000_0002));
        assert!(n_str(f, "errorDescription").contains("withdrawn"));
    }

    // Manual approval cannot be combined with intune.
    let out = a.cli(
        "alice",
        &[
            "profile",
            "create",
            "manual-intune",
            "--ca",
            ISSUING,
            "--challenge",
            "intune",
            "--approval",
            "manual",
        ],
    );
    assert!(!out.ok(), "{out}");

    // Intune's answers that are not the contract's: refused, nothing issued.
    s.emu.state().fail_success_notifications = false;
    for (status, body) in [
        (200, br#"{"code": 5}"#.to_vec()),
        (200, b"not json".to_vec()),
        (
            500,
            br#"{"error":{"code":"InternalError","message":"x"}}"#.to_vec(),
        ),
        (200, [vec![b' '; 2 * 1024 * 1024], b"{}".to_vec()].concat()),
    ] {
        s.emu.state().validate_answer = Some((status, body));
        let active = count(a, "active");
        refused(a, "phones", "intune-blob", "phone-malformed");
        assert_eq!(count(a, "active"), active);
        let _ = std::fs::remove_dir_all(a.path("phone-malformed"));
    }
    assert!(a.log().contains("larger than 1048576 bytes"), "{}", a.log());
    s.emu.state().validate_answer = None;

    // Intune stops accepting the cached token (401): the connector gets a new one.
    let issued = s.emu.state().tokens_issued["intune"];
    s.emu.state().expire_tokens();
    enrolled(a, "phones", "intune-blob", "phone-new-token");
    assert!(s.emu.state().tokens_issued["intune"] > issued);

    // The connector is down: FAILURE badRequest with the reason, nothing issued.
    s.mdm.stop();
    let active = count(a, "active");
    refused(a, "phones", "intune-blob", "phone-no-connector");
    assert_eq!(count(a, "active"), active);
    assert!(
        a.log().contains("castellan-mdm is not reachable"),
        "{}",
        a.log()
    );
}

/// The page's challenge, decoded from NDES's UTF-16.
fn fetch_challenge(s: &Setup, user: &str, password: &str) -> (String, String) {
    let page = s.a.path("page.html");
    let _ = std::fs::remove_file(&page);
    let out = run(Command::new("curl")
        .args(["-s", "-o"])
        .arg(&page)
        .args(["-w", "%{http_code}", "--cacert"])
        .arg(&s.emu.ca_file)
        .args(["-u", &format!("{user}:{password}")])
        .arg(format!(
            "https://127.0.0.1:{}/certsrv/mscep_admin/",
            s.https_port
        )));
    let status = out.stdout.trim().to_owned();
    let bytes = std::fs::read(&page).unwrap_or_default();
    let text = if bytes.starts_with(&[0xff, 0xfe]) {
        let units: Vec<u16> = bytes[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).unwrap()
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let challenge = text
        .split("The enrollment challenge password is: <B> ")
        .nth(1)
        .and_then(|t| t.split(" </B>").next())
        .unwrap_or_default()
        .to_owned();
    (status, challenge)
}

#[test]
fn ndes_style_challenges_are_one_time_and_webhooks_decide() {
    let s = setup();
    let a = &s.a;

    // Jamf fetches a challenge; scepclient enrols with it once, not twice.
    let (status, challenge) = fetch_challenge(&s, "jamf", NDES_PASSWORD);
    assert_eq!(status, "200");
    assert_eq!(challenge.len(), 48, "{challenge:?}");
    enrolled(a, "dynamic", &challenge, "mac-1");
    refused(a, "dynamic", &challenge, "mac-2");

    // The connector's certificate is the mdm-connector role: it mints challenges and
    // revokes leaves (challenge.issue, leaf.revoke), and may do nothing else.
    let (cert, key) = (a.path("mdm-identity.pem"), a.path("mdm-identity.key"));
    let minted = a.cli_as(&cert, &key, &["challenge", "new", "--profile", "dynamic"]);
    assert!(minted.ok(), "{minted}");
    let me = a.cli_as(&cert, &key, &["whoami"]);
    assert!(
        me.stdout.contains("assignments: mdm-connector on *")
            && me
                .stdout
                .contains("permissions: leaf.revoke, challenge.issue"),
        "{me}"
    );
    a.cli_as(&cert, &key, &["ca", "list"])
        .expect_refused(3, &["lacks the permission ca.read"]);
    a.cli_as(&cert, &key, &["profile", "list"])
        .expect_refused(3, &["lacks the permission profile.read"]);
    a.cli_as(&cert, &key, &["cert", "revoke", "01", "--ca", ISSUING])
        .expect_refused(4, &["01"]);
    // An administrator holds leaf.revoke too: mdm-revoke answers, and audits them.
    let (status, body) = a.raw_call(
        "alice",
        r#"{"request":"mdm-revoke","issuer":"CN=x","serial":"01"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("unknown-issuer"), "{body}");

    // Wrong credentials: 401 with nothing minted, then 429 once the address has failed 5 times.
    for _ in 0..5 {
        let (status, challenge) = fetch_challenge(&s, "jamf", "wrong-password");
        assert_eq!((status.as_str(), challenge.as_str()), ("401", ""));
    }
    let (status, _) = fetch_challenge(&s, "jamf", NDES_PASSWORD);
    assert_eq!(
        status, "429",
        "the right password is refused too while limited"
    );
    let (status, _) = fetch_challenge(&s, "nobody", "whatever-password");
    assert_eq!(status, "429");

    // Webhook: allow issues; the hook saw the hash of the challenge, never the challenge.
    enrolled(a, "hooked", "hook-challenge", "hooked-1");
    {
        let st = s.emu.state();
        assert_eq!(st.refusals, Vec::<String>::new(), "bad signature or shape");
        let body = &st.hook_bodies[0];
        assert_eq!(body["profile"], "hooked");
        assert!(body.get("challenge").is_none(), "{body}");
        assert_eq!(n_str(body, "challengeSha256").len(), 64);
        assert!(n_str(body, "subject").contains("CN=hooked-1"), "{body}");
    }
    // Deny, a malformed answer and a slow hook (timeout) all refuse.
    for (mode, cn) in [
        (Hook::Deny, "hooked-deny"),
        (Hook::Malformed, "hooked-malformed"),
        (Hook::Slow, "hooked-slow"),
    ] {
        s.emu.state().hook = mode;
        refused(a, "hooked", "hook-challenge", cn);
    }
    let log = a.log();
    assert!(log.contains("device not in inventory"), "{log}");
    assert!(log.contains("no answer within 2 s"), "{log}");
    assert!(log.contains("allowed"), "{log}");
}

#[test]
fn the_signer_refuses_a_connector_socket_served_by_another_uid() {
    let mut s = setup();
    s.emu.state().valid_challenges.insert("intune-blob".into());
    s.a.stop();
    s.a.set_config("mdm", "uid", "4242");
    s.a.start();
    refused(&s.a, "phones", "intune-blob", "phone-wrong-uid");
    assert!(s.a.log().contains("served by uid"), "{}", s.a.log());
    assert_eq!(s.emu.state().validations, 0);
}

#[test]
fn castellan_mdm_refuses_a_signer_with_the_wrong_uid_and_bad_configs_exit_78() {
    let mut s = setup();
    s.emu.state().valid_challenges.insert("intune-blob".into());
    // The connector accepts only uid 4242 on its socket: the signer (our uid) is refused.
    s.mdm.stop();
    let text = std::fs::read_to_string(&s.mdm.config).unwrap();
    let wrong = s.a.path("mdm-wrong-uid.toml");
    write_file(&wrong, format!("signer-uid = 4242\n{text}"), 0o600);
    let mdm = Connector::start(&wrong, &s.a.path("mdm-wrong-uid.log"));
    refused(&s.a, "phones", "intune-blob", "phone-refused-peer");
    assert!(
        mdm.log_text().contains("refused a peer with the wrong uid"),
        "{}",
        mdm.log_text()
    );
    assert_eq!(s.emu.state().validations, 0);

    // Bad connector configs: exit 78 with the reason, for check-config and run alike.
    for (name, config, needle) in [
        ("unknown-key", format!("{text}\nbogus = 1\n"), "bogus"),
        (
            "plain-http",
            text.replace(&s.emu.url(), "http://127.0.0.1:1"),
            "https://",
        ),
        (
            "deadline",
            format!("call-deadline-secs = 0\n{text}"),
            "call-deadline-secs",
        ),
    ] {
        let path = s.a.path(&format!("bad-{name}.toml"));
        write_file(&path, config, 0o600);
        for cmd in ["check-config", "run"] {
            let out = run(Command::new(bin("castellan-mdm"))
                .args([cmd, "--config"])
                .arg(&path));
            out.expect_refused(78, &[needle]);
        }
    }
    let loose = s.a.path("loose-secret");
    write_file(&loose, "secret", 0o644);
    let path = s.a.path("bad-secret.toml");
    write_file(
        &path,
        text.replace(&q(&s.a.path("intune-secret")), &q(&loose)),
        0o600,
    );
    run(Command::new(bin("castellan-mdm"))
        .args(["check-config", "--config"])
        .arg(&path))
    .expect_refused(78, &["readable by others"]);

    // A bad [mdm] section in the signer's config: exit 78 too.
    s.a.stop();
    s.a.set_config("mdm", "timeout-secs", "0");
    s.a.check_config().expect_refused(78, &["timeout-secs"]);
}

#[test]
fn intune_accepts_a_certificate_credential() {
    let s = setup_with(true);
    s.emu.state().valid_challenges.insert("intune-blob".into());
    enrolled(&s.a, "phones", "intune-blob", "phone-cert-credential");
    {
        let st = s.emu.state();
        assert_eq!(st.refusals, Vec::<String>::new());
        assert_eq!(st.success_notifications.len(), 1);
        assert!(st.tokens_issued["intune"] >= 1 && st.tokens_issued["graph"] >= 1);
    }
    // Entra ID now holds another certificate for the app: no token, nothing issued.
    let other = Officer::make(s.a.dir(), "other-app");
    let der = openssl_ok(
        s.a.dir(),
        &[
            "x509",
            "-in",
            other.cert.to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            "other.der",
        ],
    );
    assert!(der.is_empty());
    {
        let mut st = s.emu.state();
        st.client_cert = Some(std::fs::read(s.a.path("other.der")).unwrap());
        st.expire_tokens();
    }
    refused(&s.a, "phones", "intune-blob", "phone-wrong-credential");
    let st = s.emu.state();
    assert!(
        st.refusals.iter().any(|r| r.contains("client assertion")),
        "{:?}",
        st.refusals
    );
    assert_eq!(st.success_notifications.len(), 1);
}
