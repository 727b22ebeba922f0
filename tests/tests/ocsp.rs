//! OCSP (RFC 6960) end to end: castellan-edge's `/ocsp` in front of castellan-signer, the
//! delegated responder key in SoftHSM2, queried with `openssl ocsp` (POST, with and
//! without nonce, SHA-1 and SHA-256 CertIDs) and with plain HTTP (GET, caching headers,
//! refusals). Certificates are enrolled with `scep-bench`; their serials come from the
//! signer log.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use tests::{Appliance, Out, bin, http, openssl, run, url_encode};

const SECRET: &str = "ocsp-static-1";

/// An appliance (quorum 1) with an edge, an EC root, an RSA issuing CA with a static
/// challenge profile, and two enrolled leaves.
struct Setup {
    a: Appliance,
    root: PathBuf,
    issuing: PathBuf,
    serials: Vec<String>,
}

fn setup() -> Setup {
    let a = Appliance::with_edge(1, &["alice"]);
    a.create_root_and_issuing("CN=OCSP IT Root", "issuing", "CN=OCSP IT Issuing");
    a.create_static_profile("devices", "issuing", SECRET, &[]);
    run(Command::new(bin("scep-bench"))
        .args(["--url", &a.scep_url("devices"), "--challenge", SECRET])
        .args(["-n", "2", "-c", "1"]))
    .expect_ok();
    let serials = issued_serials(&a.log());
    assert_eq!(serials.len(), 2, "{}", a.log());
    let root = a.save_cert("root", "root.pem");
    let issuing = a.save_cert("issuing", "issuing.pem");
    Setup {
        a,
        root,
        issuing,
        serials,
    }
}

/// Serials from the signer's `issued ... serial=HEX` lines (colour codes removed).
fn issued_serials(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("issued") && l.contains("profile"))
        .filter_map(|l| {
            let plain = strip_ansi(l);
            let rest = plain.split("serial=").nth(1)?;
            Some(rest.split_whitespace().next()?.to_owned())
        })
        .collect()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

impl Setup {
    fn url(&self) -> String {
        format!("{}/ocsp", self.a.edge_url())
    }

    /// `openssl ocsp -issuer ISSUER -url EDGE/ocsp -CAfile root.pem ARGS`: stdout + stderr.
    fn ocsp(&self, issuer: &Path, args: &[&str]) -> String {
        let url = self.url();
        let mut v = vec![
            "ocsp",
            "-issuer",
            issuer.to_str().unwrap(),
            "-url",
            &url,
            "-CAfile",
            self.root.to_str().unwrap(),
        ];
        v.extend_from_slice(args);
        let o: Out = openssl(self.a.dir(), &v);
        format!("{}{}", o.stdout, o.stderr)
    }

    fn ocsp_serial(&self, serial: &str, args: &[&str]) -> String {
        let s = format!("0x{serial}");
        let mut v = vec!["-serial", &s];
        v.extend_from_slice(args);
        self.ocsp(&self.issuing, &v)
    }

    /// An OCSPRequest for a serial of the issuing CA, DER, made by openssl.
    fn request(&self, serial: &str, nonce: bool) -> Vec<u8> {
        let out = self.a.path(&format!("req-{serial}-{nonce}.der"));
        let s = format!("0x{serial}");
        let mut v = vec![
            "ocsp",
            "-issuer",
            self.issuing.to_str().unwrap(),
            "-serial",
            &s,
            "-reqout",
            out.to_str().unwrap(),
        ];
        if !nonce {
            v.push("-no_nonce");
        }
        openssl(self.a.dir(), &v).expect_ok();
        std::fs::read(out).unwrap()
    }

    /// Check a DER response with openssl: returns its text and the verdict lines.
    fn check_response(&self, der: &[u8], name: &str) -> String {
        let p = self.a.path(name);
        std::fs::write(&p, der).unwrap();
        let o = openssl(
            self.a.dir(),
            &[
                "ocsp",
                "-respin",
                p.to_str().unwrap(),
                "-issuer",
                self.issuing.to_str().unwrap(),
                "-CAfile",
                self.root.to_str().unwrap(),
                "-resp_text",
            ],
        );
        format!("{}{}", o.stdout, o.stderr)
    }
}

fn produced_at(text: &str) -> String {
    text.lines()
        .find(|l| l.contains("Produced At"))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn openssl_ocsp_good_revoked_unknown_unauthorized() {
    let mut s = setup();
    let (leaf, other) = (s.serials[0].clone(), s.serials[1].clone());

    // Good, with a nonce (openssl's default) and without; SHA-256 CertIDs too.
    let t = s.ocsp_serial(&leaf, &["-resp_text"]);
    assert!(t.contains("Response verify OK"), "{t}");
    assert!(t.contains(&format!("0x{leaf}: good")), "{t}");
    assert!(t.contains("OCSP Nonce"), "the nonce is echoed: {t}");
    assert!(t.contains("CN=issuing OCSP Responder"), "{t}");
    assert!(
        t.contains("OCSP Signing") && t.contains("OCSP No Check"),
        "{t}"
    );
    let hex_leaf = format!("0x{leaf}");
    let t = s.ocsp(&s.issuing, &["-sha256", "-serial", &hex_leaf, "-resp_text"]);
    assert!(t.contains("Hash Algorithm: sha256"), "{t}");
    assert!(t.contains(&format!("0x{leaf}: good")), "{t}");

    // Without a nonce the second answer is the pre-signed first one.
    let first = s.ocsp_serial(&leaf, &["-no_nonce", "-resp_text"]);
    assert!(first.contains("Response verify OK"), "{first}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = s.ocsp_serial(&leaf, &["-no_nonce", "-resp_text"]);
    assert_eq!(produced_at(&first), produced_at(&second));
    assert!(!first.contains("OCSP Nonce"), "{first}");

    // Revoked at once, pre-signed answer or not.
    s.a.cli_ok(
        "alice",
        &[
            "cert",
            "revoke",
            &leaf,
            "--ca",
            "issuing",
            "--reason",
            "keyCompromise",
        ],
    );
    for args in [&["-no_nonce"][..], &[][..]] {
        let t = s.ocsp_serial(&leaf, args);
        assert!(t.contains("Response verify OK"), "{t}");
        assert!(t.contains(&format!("0x{leaf}: revoked")), "{t}");
        assert!(t.contains("Reason: keyCompromise"), "{t}");
    }
    let t = s.ocsp_serial(&other, &[]);
    assert!(t.contains(&format!("0x{other}: good")), "{t}");

    // A serial the CA never issued; a CA certificate asked of the root.
    let t = s.ocsp_serial("0123456789abcdef", &[]);
    assert!(t.contains("Response verify OK"), "{t}");
    assert!(t.contains("0x0123456789abcdef: unknown"), "{t}");
    let issuing = s.issuing.to_str().unwrap().to_owned();
    let root = s.root.clone();
    let t = s.ocsp(&root, &["-cert", &issuing]);
    assert!(t.contains("Response verify OK"), "{t}");
    assert!(t.contains(": good"), "{t}");

    // An issuer this responder does not serve.
    openssl(
        s.a.dir(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "stranger.key",
            "-out",
            "stranger.pem",
            "-subj",
            "/CN=stranger",
            "-days",
            "2",
        ],
    )
    .expect_ok();
    let t = s.ocsp(&s.a.path("stranger.pem"), &["-serial", "0x1234"]);
    assert!(t.contains("unauthorized (6)"), "{t}");

    // The responder keys pass the start-up check after a restart, and still answer.
    s.a.stop();
    let check = s.a.check_config();
    let report = format!("{}{}", check.stdout, check.stderr);
    assert!(
        report.contains("OCSP responder of CA issuing")
            && report.contains("OCSP responder of CA root"),
        "{report}"
    );
    s.a.start();
    let t = s.ocsp_serial(&other, &[]);
    assert!(t.contains(&format!("0x{other}: good")), "{t}");

    // Revoking the issuing CA revokes its certificates (cACompromise), and the root
    // says the issuing CA certificate is revoked.
    s.a.propose_and_run(&["ca", "revoke", "issuing", "--reason", "keyCompromise"]);
    let t = s.ocsp_serial(&other, &["-no_nonce"]);
    assert!(t.contains(&format!("0x{other}: revoked")), "{t}");
    assert!(t.contains("Reason: cACompromise"), "{t}");
    let t = s.ocsp(&root, &["-cert", &issuing]);
    assert!(
        t.contains(": revoked") && t.contains("Reason: keyCompromise"),
        "{t}"
    );
}

#[test]
fn http_get_post_caching_and_refusals() {
    let s = setup();
    let port = s.a.edge_port;
    let leaf = s.serials[0].clone();

    // POST: no-store.
    let r = http(port, "POST", "/ocsp", Some(&s.request(&leaf, false)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type, "application/ocsp-response");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let t = s.check_response(&r.body, "post.der");
    assert!(
        t.contains("Cert Status: good") && t.contains("Response verify OK"),
        "{t}"
    );

    // GET without nonce (RFC 6960 Appendix A.1): cacheable until nextUpdate.
    let b64 = base64::engine::general_purpose::STANDARD.encode(s.request(&leaf, false));
    let r = http(port, "GET", &format!("/ocsp/{}", url_encode(&b64)), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let cc = r.header("cache-control").unwrap();
    assert!(cc.starts_with("max-age=") && cc.contains("public"), "{cc}");
    assert!(r.header("etag").is_some() && r.header("expires").is_some());
    assert!(r.header("last-modified").is_some());
    let t = s.check_response(&r.body, "get.der");
    assert!(
        t.contains("Cert Status: good") && t.contains("Response verify OK"),
        "{t}"
    );
    // The same with the URL-safe alphabet and raw slashes.
    let url_safe = b64.replace('+', "-").replace('/', "_").replace('=', "");
    let r2 = http(port, "GET", &format!("/ocsp/{url_safe}"), None);
    assert_eq!(r2.status, 200);
    let r3 = http(
        port,
        "GET",
        &format!("/ocsp/{}", b64.replace('+', "%2B")),
        None,
    );
    assert_eq!(r3.status, 200);

    // GET with a nonce: fresh, echoed, not cacheable.
    let b64 = base64::engine::general_purpose::STANDARD.encode(s.request(&leaf, true));
    let r = http(port, "GET", &format!("/ocsp/{}", url_encode(&b64)), None);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let t = s.check_response(&r.body, "nonce.der");
    assert!(
        t.contains("OCSP Nonce") && t.contains("Response verify OK"),
        "{t}"
    );

    // Refusals: malformed (answered by the edge), too large, wrong method, no request.
    let r = http(port, "POST", "/ocsp", Some(b"not an OCSP request"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, [0x30, 0x03, 0x0a, 0x01, 0x01], "malformedRequest");
    let mut truncated = s.request(&leaf, true);
    truncated.truncate(30);
    let r = http(port, "POST", "/ocsp", Some(&truncated));
    assert_eq!(r.body, [0x30, 0x03, 0x0a, 0x01, 0x01], "malformedRequest");
    assert_eq!(
        http(port, "POST", "/ocsp", Some(&[0x30; 20_000])).status,
        413
    );
    let r = http(port, "PUT", "/ocsp", Some(b"x"));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("GET, POST"));
    assert_eq!(http(port, "GET", "/ocsp", None).status, 400);
    assert_eq!(http(port, "GET", "/ocsp/!!!", None).status, 400);
}

#[test]
fn signer_down_is_try_later() {
    let mut a = Appliance::with_edge(1, &["alice"]);
    a.stop();
    let r = http(
        a.edge_port,
        "POST",
        "/ocsp",
        Some(
            &base64::engine::general_purpose::STANDARD
                .decode("MGgwZjA/MD0wOzAJBgUrDgMCGgUABBRSIUbemXtIWEHdfOYxZEhtR6R4lQQUTluGHMLBwwGfuqfrWe72cM78FTYCAhI0oiMwITAfBgkrBgEFBQcwAQIEEgQQnlK31gzJQPg0C5LF4K2eTw==")
                .unwrap(),
        ),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, [0x30, 0x03, 0x0a, 0x01, 0x03], "tryLater");
}
