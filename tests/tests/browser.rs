//! The web console in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! Debian's chromedriver (fantoccini). The officer's `.p12` (made with `openssl pkcs12
//! -export`) is imported into a fresh NSS store with `pk12util`, the admin CA is trusted
//! with `certutil`, and Chromium's managed policy `AutoSelectCertificateForUrls` picks the
//! certificate for the admin origin, so the browser's own client-certificate path is what is
//! tested. Screenshots of every page are kept in `target/console-screenshots/`.
//!
//! Needs root (CI runs as root; `cargo xtask test` installs chromium, chromium-driver and
//! libnss3-tools): the policy lives in `/etc/chromium/policies/managed/`.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use der::Decode;
use fantoccini::{Client, ClientBuilder, Locator};
use scep::client::{self, Device, RequestSpec};
use tests::{Appliance, bin_dir, block_on, free_port, http, openssl_ok, scepclient};

const POLICY_DIR: &str = "/etc/chromium/policies/managed";
const POLICY_FILE: &str = "/etc/chromium/policies/managed/castellan-test.json";
const P12_PASSWORD: &str = "browser-test";

/// Chromium's managed policy for the test, removed when dropped.
struct Policy;

impl Policy {
    fn install() -> Policy {
        // Any port of 127.0.0.1; the only certificate in the NSS store is the officer's.
        let policy = serde_json::json!({
            "AutoSelectCertificateForUrls": [r#"{"pattern":"https://127.0.0.1","filter":{}}"#]
        });
        fs::create_dir_all(POLICY_DIR)
            .and_then(|()| fs::write(POLICY_FILE, policy.to_string()))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot write Chromium's managed policy {POLICY_FILE} ({e}): the browser \
                     test needs root, as in CI"
                )
            });
        Policy
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = fs::remove_file(POLICY_FILE);
    }
}

/// A fresh NSS store in `home/.pki/nssdb` trusting the admin CA for websites, with `p12`
/// imported when given.
fn nss_home(a: &Appliance, home: &Path, p12: Option<&Path>) {
    let db = home.join(".pki/nssdb");
    fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]));
    run(Command::new("certutil")
        .args(["-A", "-d", &db, "-n", "castellan-admin", "-t", "C,,", "-i"])
        .arg(a.admin_ca()));
    if let Some(p12) = p12 {
        run(Command::new("pk12util")
            .args(["-d", &db, "-W", P12_PASSWORD, "-i"])
            .arg(p12));
    }
}

/// chromedriver in a process group of its own (Chromium too), killed as a group on drop,
/// and a WebDriver session on it.
struct Browser {
    driver: Child,
    client: Option<Client>,
    shots: PathBuf,
}

impl Browser {
    async fn start(home: &Path, profile: &Path, log: &Path) -> Browser {
        let port = free_port();
        let mut chromedriver = Command::new("chromedriver");
        chromedriver.arg(format!("--port={port}")).env("HOME", home);
        let driver = tests::dies_with_test(&chromedriver)
            .stdin(Stdio::null())
            .stdout(fs::File::create(log).unwrap())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("chromedriver (Debian package chromium-driver)");
        let mut browser = Browser {
            driver,
            client: None,
            shots: bin_dir().join("../console-screenshots"),
        };
        fs::create_dir_all(&browser.shots).unwrap();
        let caps = serde_json::json!({
            "browserName": "chrome",
            // A certificate request nobody answers hangs the load: fail in 20 s instead.
            "timeouts": { "pageLoad": 20000 },
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1024",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => {
                    browser.client = Some(c);
                    return browser;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session from chromedriver: {e}"),
            }
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Open `url`; the page's source.
    async fn open(&self, url: &str) -> String {
        self.c().goto(url).await.unwrap();
        self.c().source().await.unwrap()
    }

    async fn shot(&self, name: &str) {
        let png = self.c().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn click(&self, css: &str) {
        self.c()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn source(&self) -> String {
        self.c().source().await.unwrap()
    }

    /// The page once it contains `needle` (a form's answer may still be loading when the
    /// click returns); the last page seen after 15 s.
    async fn page_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let page = self.source().await;
            if page.contains(needle) || Instant::now() > deadline {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn quit(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium it started, even after a panic.
        let group = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}

fn serial_of(a: &Appliance, cert: &Path) -> String {
    openssl_ok(
        a.dir(),
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    )
    .trim()
    .trim_start_matches("serial=")
    .to_ascii_lowercase()
}

/// The serials (lowercase hex) the edge's CRL of `ca` lists.
fn crl_serials(a: &Appliance, ca: &str) -> Vec<String> {
    let reply = http(a.edge_port, "GET", &format!("/crl/{ca}.crl"), None);
    let crl = x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(
        reply.expect_ok(),
    )
    .unwrap();
    crl.tbs_cert_list
        .revoked_certificates
        .unwrap_or_default()
        .iter()
        .map(|r| hex::encode(r.serial_number.as_bytes()))
        .collect()
}

/// A PKCSReq to a manual-approval profile, answered PENDING (strict client of the `scep`
/// crate: micromdm's scepclient would poll on).
fn pending_request(a: &Appliance, profile: &str, cn: &str) {
    let r = a.scep_get(profile, "operation=GetCACert");
    let bag = client::ca_certs(&r.body).unwrap();
    let to = client::recipients(&bag, client::RecipientChoice::Ndes).unwrap();
    let ra = client::reply_signer(&bag).unwrap().clone();
    let d = Device::generate(2048, &format!("CN={cn}")).unwrap();
    let csr = d.csr(&format!("CN={cn}"), Some("browser-secret")).unwrap();
    let req = client::request(&d, &csr, &to, &RequestSpec::pkcs_req(&format!("tx-{cn}"))).unwrap();
    let r = a.scep_post(profile, &req.der);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(client::read_reply(&r.body, &ra, &d).unwrap().status, "3");
}

#[test]
fn an_officer_finds_and_revokes_a_certificate_in_chromium() {
    let a = Appliance::with_edge(1, &["alice"]);
    a.create_root_and_issuing("CN=Browser Root", "issuing", "CN=Browser <Issuing> CA");
    a.create_static_profile(
        "devices",
        "issuing",
        "browser-secret",
        &["--legacy-algorithms"],
    );
    let mut serials = Vec::new();
    for device in ["laptop-41", "laptop-42"] {
        let dir = a.path(device);
        let out = scepclient(&dir, &a.scep_url("devices"), Some("browser-secret"), device);
        let cert = dir.join("cert.pem");
        assert!(cert.exists(), "{out}");
        serials.push(serial_of(&a, &cert));
    }
    let (doomed, kept) = (serials[0].clone(), serials[1].clone());
    a.create_static_profile(
        "by-hand",
        "issuing",
        "browser-secret",
        &["--approval", "manual"],
    );
    pending_request(&a, "by-hand", "kiosk-1");
    pending_request(&a, "by-hand", "kiosk-2");

    // The officer's browser: their certificate in NSS, picked by policy.
    let alice = a.officer("alice").clone();
    let p12 = a.path("alice.p12");
    openssl_ok(
        a.dir(),
        &[
            "pkcs12",
            "-export",
            "-inkey",
            alice.key.to_str().unwrap(),
            "-in",
            alice.cert.to_str().unwrap(),
            "-name",
            "castellan officer alice",
            "-passout",
            &format!("pass:{P12_PASSWORD}"),
            "-out",
            p12.to_str().unwrap(),
        ],
    );
    let home = a.path("home-alice");
    nss_home(&a, &home, Some(&p12));
    let stranger = a.path("home-stranger");
    nss_home(&a, &stranger, None);
    let _policy = Policy::install();
    let origin = a.url();

    block_on(async {
        let b = Browser::start(&home, &a.path("profile-alice"), &a.path("chromedriver.log")).await;

        // The overview: every CA, its counts and CRL.
        let page = b.open(&format!("{origin}/")).await;
        assert!(page.contains("href=\"/ca/issuing\""), "{page}");
        assert!(page.contains("<h1>Certificate authorities</h1>"), "{page}");
        b.shot("overview").await;

        // Find the SCEP-issued certificate by its name (the index) and open it.
        let page = b.open(&format!("{origin}/certs?name=LAPTOP-41")).await;
        assert!(page.contains("1 on this page"), "{page}");
        b.shot("certificates").await;
        b.click(&format!("a[href='/cert/issuing/{doomed}']")).await;
        let page = b.page_with("CN=laptop-41").await;
        assert!(page.contains("CN=laptop-41"), "{page}");
        b.shot("certificate").await;

        // Revoke: a reason, the confirmation box, the button.
        b.c()
            .find(Locator::Css("select#reason"))
            .await
            .unwrap()
            .select_by_value("keyCompromise")
            .await
            .unwrap();
        b.click("input#confirm").await;
        b.click("form[action$='/revoke'] button[type=submit]").await;
        let done = format!("revoked {doomed} of CA issuing (keyCompromise)");
        let page = b.page_with(&done).await;
        assert!(page.contains(&done), "{page}");
        b.shot("revoked").await;

        // A page elsewhere posts a revocation of the other certificate: the browser sends
        // the officer's certificate with it, but the form has no token.
        let forged = format!(
            "data:text/html,<form method=post action='{origin}/cert/issuing/{kept}/revoke'>\
             <input name=confirm value=yes><input name=reason value=keyCompromise>\
             <button id=go>go</button></form>"
        );
        b.open(&forged).await;
        b.click("#go").await;
        let page = b.page_with("CSRF token is missing or wrong").await;
        assert!(page.contains("CSRF token is missing or wrong"), "{page}");
        b.shot("csrf-refused").await;

        // Requests waiting for approval: approve one, reject the other with a reason.
        let page = b.open(&format!("{origin}/requests")).await;
        assert!(
            page.contains("CN=kiosk-1") && page.contains("CN=kiosk-2"),
            "{page}"
        );
        b.shot("requests").await;
        let row = |cn: &str| {
            page.split("<tr>")
                .find(|r| r.contains(&format!("CN={cn}")))
                .and_then(|r| r.split("action=\"/request/").nth(1))
                .and_then(|r| r.split('/').next())
                .unwrap_or_else(|| panic!("no form for {cn}: {page}"))
                .to_owned()
        };
        let (approve, reject) = (row("kiosk-1"), row("kiosk-2"));
        b.click(&format!("form[action='/request/{approve}/approve'] button"))
            .await;
        let done = b.page_with("Issued certificate").await;
        assert!(done.contains("Issued certificate"), "{done}");
        b.open(&format!("{origin}/requests")).await;
        b.c()
            .find(Locator::Css(&format!("input#reason-{reject}")))
            .await
            .unwrap()
            .send_keys("not one of our kiosks")
            .await
            .unwrap();
        b.click(&format!("form[action='/request/{reject}/reject'] button"))
            .await;
        let rejected = format!("request {reject} rejected");
        let done = b.page_with(&rejected).await;
        assert!(done.contains(&rejected), "{done}");
        let page = b.open(&format!("{origin}/requests")).await;
        assert!(page.contains("None."), "{page}");

        // The other pages render for the officer.
        for (path, title, shot) in [
            ("/ca/issuing", "CA issuing", "ca"),
            ("/proposals", "Proposals", "proposals"),
            ("/audit", "Audit log", "audit"),
        ] {
            let page = b.open(&format!("{origin}{path}")).await;
            assert!(
                page.contains(&format!("<h1>{title}</h1>")),
                "{path}: {page}"
            );
            b.shot(shot).await;
        }
        let page = b.open(&format!("{origin}/ca/issuing")).await;
        assert!(page.contains("<svg"), "no issuance chart: {page}");
        assert!(
            page.contains("3 certificates issued in the last 90 days"),
            "{page}"
        );
        b.quit().await;

        // A browser without a client certificate gets no page at all.
        let s = Browser::start(
            &stranger,
            &a.path("profile-stranger"),
            &a.path("chromedriver-stranger.log"),
        )
        .await;
        // Chromium either shows its own error page or fails the navigation outright
        // (ERR_SOCKET_NOT_CONNECTED or ERR_BAD_SSL_CLIENT_AUTH_CERT, depending on when the
        // server's refusal arrives): never a page of ours.
        let page = match s.c().goto(&format!("{origin}/")).await {
            Ok(()) => s.source().await,
            Err(e) => e.to_string(),
        };
        assert!(!page.contains("Certificate authorities"), "{page}");
        assert!(!page.contains("href=\"/ca/"), "{page}");
        assert!(page.contains("ERR_"), "{page}");
        s.shot("no-client-certificate").await;
        s.quit().await;
    });

    // The revocation is in the CRL the edge serves (re-published in the background); the
    // forged one changed nothing.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = crl_serials(&a, "issuing");
        if listed.contains(&doomed) {
            assert!(!listed.contains(&kept), "the forged revocation took effect");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{doomed} not in the edge's CRL: {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let shown = a.cli_json(
        "alice",
        &["cert", "show", &kept, "--ca", "issuing", "--json"],
    );
    assert_eq!(shown["status"], "active", "{shown}");
    // The forged post is in the audit trail as refused.
    let audit = a.cli_ok("alice", &["audit", "list", "--json"]);
    assert!(audit.contains("CSRF"), "{audit}");

    // The approved request is a certificate; the rejected one is not.
    let list = a.cli_json("alice", &["cert", "list", "--search", "kiosk", "--json"]);
    let certs = list["certs"].as_array().unwrap();
    assert_eq!(certs.len(), 1, "{list:#}");
    assert_eq!(certs[0]["subject"], "CN=kiosk-1", "{list:#}");

    // The filtered list, exported: a header and the one match, with its status.
    let (status, head, csv) = a.get("alice", "/certs.csv?search=laptop-41");
    assert_eq!(status, 200, "{head}{csv}");
    assert!(
        head.to_ascii_lowercase().contains("content-type: text/csv"),
        "{head}"
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].contains(&format!("\"{doomed}\"")) && lines[1].contains("\"revoked\""));
}
