//! Revocation and publication end to end: revoke a SCEP-issued certificate and see it on
//! the CRL served by castellan-edge within 2 s (checked with `openssl crl -verify` and
//! `openssl verify -crl_check`), SCEP GetCRL, the edge serving the last CRL while the
//! signer is down (from memory, and from disk after an edge restart), the CRL number
//! growing across restarts, and revoking an issuing CA onto its root's CRL.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tests::{Appliance, HttpReply, http, openssl, openssl_ok, scepclient};

const ISSUING: &str = "issuing";
const SECRET: &str = "revocation-secret-1";

/// quorum 2 of alice and bob; an EC root, an RSA issuing CA, a legacy static profile.
fn appliance() -> Appliance {
    let a = Appliance::with_edge(2, &["alice", "bob"]);
    a.create_root_and_issuing("CN=Revocation IT Root", ISSUING, "CN=Revocation IT Issuing");
    a.create_static_profile("legacy", ISSUING, SECRET, &["--legacy-algorithms"]);
    a
}

/// Enrol a device with micromdm scepclient; returns its certificate file and serial (hex).
fn enrol(a: &Appliance, cn: &str) -> (PathBuf, String) {
    let dir = a.path(cn);
    fs::create_dir_all(&dir).unwrap();
    let out = scepclient(&dir, &a.scep_url("legacy"), Some(SECRET), cn);
    let cert = dir.join("cert.pem");
    assert!(
        cert.exists(),
        "scepclient got no certificate: {}",
        out.stderr
    );
    let serial = openssl_ok(
        a.dir(),
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    );
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    (cert, serial)
}

/// `castellan cert revoke SERIAL --ca issuing --reason REASON` as alice; panics if refused.
fn revoke(a: &Appliance, serial: &str, reason: &str) -> String {
    a.cli_ok(
        "alice",
        &[
            "cert", "revoke", serial, "--ca", ISSUING, "--reason", reason,
        ],
    )
}

/// `openssl verify -crl_check_all` of `cert` under `root` and `issuing`, with these CRLs.
fn verify_crl_check_all(
    a: &Appliance,
    root: &std::path::Path,
    issuing: &std::path::Path,
    crls: &[&std::path::Path],
    cert: &std::path::Path,
) -> tests::Out {
    let mut args = vec![
        "verify",
        "-crl_check_all",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        issuing.to_str().unwrap(),
    ];
    for crl in crls {
        args.extend(["-CRLfile", crl.to_str().unwrap()]);
    }
    args.push(cert.to_str().unwrap());
    openssl(a.dir(), &args)
}

fn get_crl(a: &Appliance, ca: &str) -> HttpReply {
    http(a.edge_port, "GET", &format!("/crl/{ca}.crl"), None)
}

/// The CRL as `openssl crl -text`, after writing it to `file`.
fn crl_text(a: &Appliance, der: &[u8], file: &str) -> String {
    let path = a.path(file);
    fs::write(&path, der).unwrap();
    openssl_ok(
        a.dir(),
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            path.to_str().unwrap(),
            "-noout",
            "-text",
        ],
    )
}

fn crl_number(text: &str) -> u64 {
    let i = text.find("CRL Number:").expect("CRL number");
    text[i..].lines().nth(1).unwrap().trim().parse().unwrap()
}

/// Wait (at most `limit`) until the served CRL of `ca` lists `serial`.
fn wait_listed(a: &Appliance, ca: &str, serial: &str, limit: Duration) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    loop {
        let r = get_crl(a, ca);
        if r.status == 200
            && crl_text(a, &r.body, "poll.crl")
                .to_ascii_lowercase()
                .contains(serial)
        {
            return (start.elapsed(), r.body);
        }
        assert!(
            start.elapsed() < limit,
            "{serial} not on the CRL of {ca} after {limit:?}\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn der_to_pem_crl(a: &Appliance, der: &[u8], file: &str) -> PathBuf {
    let d = a.path(&format!("{file}.der"));
    fs::write(&d, der).unwrap();
    let p = a.path(file);
    openssl_ok(
        a.dir(),
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            d.to_str().unwrap(),
            "-out",
            p.to_str().unwrap(),
        ],
    );
    p
}

#[test]
fn a_revoked_certificate_is_on_the_served_crl_within_two_seconds() {
    let a = appliance();
    let (cert, serial) = enrol(&a, "dev1");
    let root = a.save_cert("root", "root.pem");
    let issuing = a.save_cert(ISSUING, "issuing.pem");

    // Before: a CRL is published for the CA, and the certificate is not on it.
    let start = Instant::now();
    let before = loop {
        let r = get_crl(&a, ISSUING);
        if r.status == 200 {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no CRL published: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        before.header("content-type").as_deref(),
        Some("application/pkix-crl")
    );
    assert!(before.header("etag").is_some() && before.header("last-modified").is_some());
    let cc = before.header("cache-control").unwrap();
    let max_age: i64 = cc.rsplit('=').next().unwrap().parse().unwrap();
    assert!(max_age > 6 * 86400 && max_age <= 7 * 86400, "{cc}");
    let before_text = crl_text(&a, &before.body, "before.crl");
    assert!(!before_text.to_ascii_lowercase().contains(&serial));
    let before_number = crl_number(&before_text);

    // Revoke, and time until the edge serves a CRL that lists it.
    let t0 = Instant::now();
    revoke(&a, &serial, "keyCompromise");
    let (_, der) = wait_listed(&a, ISSUING, &serial, Duration::from_secs(2));
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let text = crl_text(&a, &der, "after.crl");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(crl_number(&text) > before_number);

    // openssl: the CRL verifies under the CA; the certificate fails the CRL check.
    let crl_pem = der_to_pem_crl(&a, &der, "crl.pem");
    let v = openssl(
        a.dir(),
        &[
            "crl",
            "-in",
            crl_pem.to_str().unwrap(),
            "-CAfile",
            issuing.to_str().unwrap(),
            "-noout",
            "-verify",
        ],
    );
    assert!(
        v.stderr.contains("verify OK") || v.stdout.contains("verify OK"),
        "{} {}",
        v.stdout,
        v.stderr
    );
    let root_crl = der_to_pem_crl(&a, &get_crl(&a, "root").body, "root-crl.pem");
    let chk = verify_crl_check_all(&a, &root, &issuing, &[&crl_pem, &root_crl], &cert);
    assert!(!chk.ok(), "a revoked certificate verified");
    assert!(
        format!("{}{}", chk.stdout, chk.stderr).contains("certificate revoked"),
        "{} {}",
        chk.stdout,
        chk.stderr
    );
    // A certificate that is not revoked passes the same check.
    let (good, _) = enrol(&a, "dev2");
    let ok = verify_crl_check_all(&a, &root, &issuing, &[&crl_pem, &root_crl], &good);
    assert!(ok.ok(), "{} {}", ok.stdout, ok.stderr);

    // Refusals change nothing.
    a.cli("alice", &["cert", "revoke", &serial, "--ca", ISSUING])
        .expect_refused(5, &["already revoked"]);
    a.cli(
        "alice",
        &["cert", "revoke", "0123456789abcdef", "--ca", ISSUING],
    )
    .expect_refused(4, &["no certificate"]);
    a.cli("alice", &["cert", "revoke", &serial, "--ca", "root"])
        .expect_refused(4, &["no certificate"]);
    a.cli(
        "alice",
        &[
            "cert", "revoke", &serial, "--ca", ISSUING, "--reason", "stolen",
        ],
    )
    .expect_refused(2, &["unknown reason"]);
    a.cli("alice", &["cert", "revoke", &serial, "--ca", "nope"])
        .expect_refused(4, &["no CA"]);
}

#[test]
fn a_hold_can_be_lifted_and_the_aia_certificate_is_served() {
    let a = appliance();
    let (_, serial) = enrol(&a, "dev-hold");
    revoke(&a, &serial, "certificateHold");
    let (_, der) = wait_listed(&a, ISSUING, &serial, Duration::from_secs(2));
    assert!(crl_text(&a, &der, "hold.crl").contains("Certificate Hold"));
    revoke(&a, &serial, "removeFromCRL");
    let start = Instant::now();
    loop {
        let r = get_crl(&a, ISSUING);
        if !crl_text(&a, &r.body, "unhold.crl")
            .to_ascii_lowercase()
            .contains(&serial)
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "hold not lifted");
        std::thread::sleep(Duration::from_millis(50));
    }
    // removeFromCRL on a certificate that is not on hold is refused.
    a.cli(
        "alice",
        &[
            "cert",
            "revoke",
            &serial,
            "--ca",
            ISSUING,
            "--reason",
            "removeFromCRL",
        ],
    )
    .expect_refused(5, &["not on hold"]);

    let aia = http(a.edge_port, "GET", &format!("/aia/{ISSUING}.crt"), None);
    assert_eq!(aia.status, 200);
    assert_eq!(
        aia.header("content-type").as_deref(),
        Some("application/pkix-cert")
    );
    let pem = a.save_cert(ISSUING, "issuing-cli.pem");
    let der_file = a.path("aia.der");
    fs::write(&der_file, &aia.body).unwrap();
    let from_aia = openssl_ok(
        a.dir(),
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            der_file.to_str().unwrap(),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let from_cli = openssl_ok(
        a.dir(),
        &[
            "x509",
            "-in",
            pem.to_str().unwrap(),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    assert_eq!(from_aia, from_cli);
    // Paths outside the published set.
    assert_eq!(
        http(a.edge_port, "GET", "/crl/../etc.crl", None).status,
        404
    );
    assert_eq!(http(a.edge_port, "GET", "/crl/nope.crl", None).status, 404);
    assert_eq!(
        http(
            a.edge_port,
            "POST",
            &format!("/crl/{ISSUING}.crl"),
            Some(b"x")
        )
        .status,
        405
    );
}

#[test]
fn the_edge_serves_the_last_crl_while_the_signer_is_down_and_numbers_keep_growing() {
    let mut a = appliance();
    // An edge with a disk cache.
    a.stop_edge();
    let cache = a.path("edge-cache");
    a.start_edge_with(&["--cache-dir", cache.to_str().unwrap()]);
    let (_, serial) = enrol(&a, "dev3");
    revoke(&a, &serial, "superseded");
    let (_, der) = wait_listed(&a, ISSUING, &serial, Duration::from_secs(2));
    let number = crl_number(&crl_text(&a, &der, "n1.crl"));

    // Signer down: the edge still serves the same CRL (memory), and after an edge restart (disk).
    a.stop();
    let r = get_crl(&a, ISSUING);
    assert_eq!((r.status, &r.body), (200, &der));
    a.stop_edge();
    a.start_edge_with(&["--cache-dir", cache.to_str().unwrap()]);
    let r = get_crl(&a, ISSUING);
    assert_eq!((r.status, &r.body), (200, &der), "{}", a.edge_log());
    assert!(a.edge_log().contains("last good copy"));

    // Signer back: a new revocation gets a larger CRL number than before the restart.
    a.start();
    let (_, serial2) = enrol(&a, "dev4");
    revoke(&a, &serial2, "affiliationChanged");
    let (_, der2) = wait_listed(&a, ISSUING, &serial2, Duration::from_secs(2));
    let text2 = crl_text(&a, &der2, "n2.crl");
    assert!(crl_number(&text2) > number);
    assert!(
        text2.to_ascii_lowercase().contains(&serial),
        "the first revocation is still listed"
    );
}

#[test]
fn revoking_an_issuing_ca_puts_it_on_the_root_crl_and_stops_it_signing() {
    let a = appliance();
    let issuing_pem = a.save_cert(ISSUING, "issuing.pem");
    let serial = openssl_ok(
        a.dir(),
        &[
            "x509",
            "-noout",
            "-serial",
            "-in",
            issuing_pem.to_str().unwrap(),
        ],
    );
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    // A root cannot be revoked onto a CRL; an unknown reason is refused.
    a.cli("alice", &["ca", "revoke", "root"])
        .expect_refused(2, &["not an issuing CA"]);
    a.cli("alice", &["ca", "revoke", ISSUING, "--reason", "bogus"])
        .expect_refused(2, &["unknown reason"]);
    // Quorum: one approval is not enough.
    let p = a.propose(
        "alice",
        &["ca", "revoke", ISSUING, "--reason", "cACompromise"],
    );
    assert_eq!(p["status"], "pending");
    assert_eq!(a.ca_show(ISSUING)["status"], "active");
    let done = a.approve("bob", p["id"].as_str().unwrap());
    assert_eq!(done["status"], "executed", "{done:#}");
    assert_eq!(a.ca_show(ISSUING)["status"], "revoked");
    let (_, der) = wait_listed(&a, "root", &serial, Duration::from_secs(2));
    assert!(crl_text(&a, &der, "root.crl").contains("CA Compromise"));
    // The revoked CA issues nothing more.
    let dir = a.path("after");
    fs::create_dir_all(&dir).unwrap();
    let out = scepclient(&dir, &a.scep_url("legacy"), Some(SECRET), "dev-late");
    assert!(
        !dir.join("cert.pem").exists(),
        "a revoked CA issued a certificate: {}",
        out.stdout
    );
}

/// `castellan_crl_{metric}{ca="CA"} VALUE` from the watchdog's metrics file.
fn metric(a: &Appliance, metric: &str, ca: &str) -> Option<i64> {
    let text = fs::read_to_string(a.state.join("metrics.prom")).ok()?;
    let prefix = format!("castellan_crl_{metric}{{ca=\"{ca}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_metric(a: &Appliance, name: &str, ca: &str, want: i64) {
    let start = Instant::now();
    while metric(a, name, ca) != Some(want) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "castellan_crl_{name} of {ca} is {:?}, not {want}\n{}",
            metric(a, name, ca),
            a.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_crl_of_twenty_thousand_entries_is_served_whole_and_the_watchdog_reports() {
    let mut a = appliance();
    a.stop_edge();
    a.stop();
    // 20,000 revoked rows written into the store as `cert revoke` writes them (a CRL of
    // about 1 MB: many times the signing socket's frame), and one issued certificate.
    let populate = tests::run(
        std::process::Command::new(tests::example("crl-bench"))
            .args(["populate", "--state-dir"])
            .arg(&a.state)
            .args(["--ca", ISSUING, "--n", "20000"])
            .env("SOFTHSM2_CONF", &a.softhsm_conf),
    );
    let spare = populate.expect_ok().trim().to_owned();
    // A CRL valid 2 h, re-published hourly; the watchdog alarms 1 h before nextUpdate.
    a.set_config("crl", "validity-secs", "7200");
    a.set_config("crl", "republish-secs", "3600");
    a.set_config("crl", "warn-before-secs", "3600");
    a.start();
    a.start_edge();
    revoke(&a, &spare, "keyCompromise");
    let (_, der) = wait_listed(&a, ISSUING, &spare, Duration::from_secs(10));
    assert!(der.len() > 512 * 1024, "{} bytes", der.len());
    let text = crl_text(&a, &der, "big.crl");
    assert_eq!(text.matches("Serial Number:").count(), 20_001);
    let pem = der_to_pem_crl(&a, &der, "big.pem");
    let root = a.save_cert(ISSUING, "issuing.pem");
    let verified = openssl(
        a.dir(),
        &[
            "crl",
            "-in",
            pem.to_str().unwrap(),
            "-CAfile",
            root.to_str().unwrap(),
            "-noout",
            "-verify",
        ],
    );
    assert!(verified.stderr.contains("verify OK"), "{verified}");
    // The edge's copy is revalidated, not fetched again: same bytes, same ETag.
    let again = get_crl(&a, ISSUING);
    assert_eq!(again.body, der);

    // Metrics: a fresh CRL is not stale.
    wait_metric(&a, "entries", ISSUING, 20_001);
    assert_eq!(metric(&a, "stale", ISSUING), Some(0));
    assert!(metric(&a, "next_update_seconds", ISSUING).is_some());
    assert!(!a.log().contains("CRL watchdog"));

    // The alarm window now covers the whole validity: the CRLs (not due for
    // re-publication for an hour) are reported stale, in the log and the metrics.
    a.stop();
    a.set_config("crl", "warn-before-secs", "7199");
    a.start();
    wait_metric(&a, "stale", ISSUING, 1);
    assert!(a.log().contains("CRL watchdog"), "{}", a.log());
}

#[test]
fn the_crl_number_keeps_growing_when_the_clock_goes_back() {
    let mut a = appliance();
    let (_, serial) = enrol(&a, "dev-clock");
    revoke(&a, &serial, "superseded");
    let (_, der) = wait_listed(&a, ISSUING, &serial, Duration::from_secs(5));
    let before = crl_text(&a, &der, "before.crl");
    let number = crl_number(&before);

    // The signer restarts with its clock two days behind (libfaketime) and, its CRL file
    // gone, publishes a new CRL at once: a larger number, an earlier thisUpdate.
    a.stop();
    fs::remove_file(a.state.join("crls").join(format!("{ISSUING}.crl"))).unwrap();
    a.start_wrapped(&["faketime", "-f", "-2d"]);
    let start = Instant::now();
    let after = loop {
        let r = get_crl(&a, ISSUING);
        if r.status == 200 && r.body != der {
            break crl_text(&a, &r.body, "after.crl");
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        crl_number(&after) > number,
        "CRL number {} after the clock went back, {number} before",
        crl_number(&after)
    );
    let last_update = |t: &str| {
        let i = t.find("Last Update:").unwrap();
        t[i..].lines().next().unwrap().to_owned()
    };
    assert_ne!(
        last_update(&before),
        last_update(&after),
        "the clock did go back"
    );
    assert!(after.to_ascii_lowercase().contains(&serial));
}
