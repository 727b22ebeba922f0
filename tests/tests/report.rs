//! Certificate reporting end to end: ~250 certificates issued over SCEP by the strict client
//! (concurrently, two issuing CAs), some revoked, some held and released, two requests
//! pending; then `cert list` paging (with certificates issued between pages), status
//! filters, search, CSV, `cert stats`, `cert show` and `cert get` (checked with openssl).
//!
//! Expired certificates cannot be made here (the signer issues for at least an hour); the
//! daemon's unit tests cover them with synthetic records.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use scep::client::{self, Device, RequestSpec};
use serde_json::Value;
use tests::{Appliance, openssl_ok};
use x509_cert::Certificate;

const SECRET: &str = "report-secret-1";
/// Certificates issued by each CA before the checks.
const ON_A: usize = 200;
const ON_B: usize = 50;
const WORKERS: usize = 4;

fn appliance() -> Appliance {
    let a = Appliance::with_edge(2, &["alice", "bob"]);
    a.propose_and_run(&[
        "ca",
        "create-root",
        "root",
        "--subject",
        "CN=Report Root,O=Castellan Tests",
        "--key",
        "ec-p256",
        "--validity",
        "10y",
        "--eku",
        "client-auth",
    ]);
    for ca in ["ca-a", "ca-b"] {
        a.propose_and_run(&[
            "ca",
            "create-issuing",
            ca,
            "--parent",
            "root",
            "--subject",
            &format!("CN=Report {ca},O=Castellan Tests"),
            "--key",
            "ec-p256",
            "--validity",
            "5y",
            "--eku",
            "client-auth",
        ]);
    }
    for (profile, ca, extra) in [
        ("pa", "ca-a", &[][..]),
        ("pb", "ca-b", &[][..]),
        ("pm", "ca-a", &["--approval", "manual"][..]),
    ] {
        a.create_static_profile(profile, ca, SECRET, extra);
    }
    a
}

/// The RA of a profile, from GetCACert: what to encrypt to, and what signs CertReps.
fn ra(a: &Appliance, profile: &str) -> (Vec<scep::envelope::Recipient>, Certificate) {
    let r = a.scep_get(profile, "operation=GetCACert");
    assert_eq!(r.status, 200, "GetCACert: {}", r.text());
    let bag = client::ca_certs(&r.body).unwrap();
    let to = client::recipients(&bag, client::RecipientChoice::Ndes).unwrap();
    (
        to,
        client::reply_signer(&bag)
            .expect("an RA certificate")
            .clone(),
    )
}

/// One PKCSReq; the SCEP status ("0" success, "3" pending) and the certificate.
fn enrol(
    a: &Appliance,
    profile: &str,
    ra: &(Vec<scep::envelope::Recipient>, Certificate),
    d: &Device,
    subject: &str,
    tx: &str,
) -> (String, Option<Certificate>) {
    let csr = d.csr(subject, Some(SECRET)).unwrap();
    let req = client::request(d, &csr, &ra.0, &RequestSpec::pkcs_req(tx)).unwrap();
    let r = a.scep_post(profile, &req.der);
    assert_eq!(r.status, 200, "PKIOperation: {}", r.text());
    let reply = client::read_reply(&r.body, &ra.1, d).unwrap();
    (reply.status, reply.certs.into_iter().next())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn serial(c: &Certificate) -> String {
    hex(c.tbs_certificate().serial_number().as_bytes())
}

/// Issue `jobs` (profile, subject) at WORKERS in flight; (CA, serial, subject) of each.
fn issue_many(
    a: &Appliance,
    devices: &[Device],
    ras: &BTreeMap<&str, (Vec<scep::envelope::Recipient>, Certificate)>,
    jobs: &[(&str, String)],
) -> Vec<(String, String, String)> {
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..WORKERS)
            .map(|w| {
                sc.spawn(move || {
                    let mut out = Vec::new();
                    for (i, (profile, subject)) in jobs.iter().enumerate().skip(w).step_by(WORKERS)
                    {
                        let d = &devices[i % devices.len()];
                        let tx = format!("tx-{}", subject.replace([',', '='], "-"));
                        let (status, cert) = enrol(a, profile, &ras[profile], d, subject, &tx);
                        assert_eq!(status, "0", "{subject}: not issued");
                        let ca = if *profile == "pb" { "ca-b" } else { "ca-a" };
                        out.push((ca.to_owned(), serial(&cert.unwrap()), subject.clone()));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// `cert list ARGS --json`: (certs, next).
fn page(a: &Appliance, args: &[&str]) -> (Vec<Value>, Option<String>) {
    let mut v = vec!["cert", "list", "--json"];
    v.extend_from_slice(args);
    let j = a.cli_json("alice", &v);
    (
        j["certs"].as_array().unwrap().clone(),
        j["next"].as_str().map(String::from),
    )
}

/// Every page of a listing, limit 100.
fn all_pages(a: &Appliance, args: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut v = args.to_vec();
        v.extend(["--limit", "100"]);
        if let Some(c) = &after {
            v.extend(["--after", c]);
        }
        let (certs, next) = page(a, &v);
        assert!(certs.len() <= 100);
        out.extend(certs);
        match next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

fn keys(rows: &[Value]) -> Vec<(String, String)> {
    rows.iter()
        .map(|c| {
            (
                c["ca"].as_str().unwrap().to_owned(),
                c["serial"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `openssl x509 -serial` form: upper case, colon-separated.
fn colons(serial: &str) -> String {
    serial
        .as_bytes()
        .chunks(2)
        .map(|p| std::str::from_utf8(p).unwrap().to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn list_show_get_and_stats_over_hundreds_of_scep_certificates() {
    let a = appliance();
    let ras: BTreeMap<&str, (Vec<scep::envelope::Recipient>, Certificate)> = ["pa", "pb", "pm"]
        .into_iter()
        .map(|p| (p, ra(&a, p)))
        .collect();
    // A few device keys, each enrolling many subjects (RSA key generation is the slow part).
    let devices: Vec<Device> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..WORKERS)
            .map(|i| sc.spawn(move || Device::generate(2048, &format!("CN=device-{i}")).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let jobs: Vec<(&str, String)> = (0..ON_A + ON_B)
        .map(|i| {
            (
                if i < ON_A { "pa" } else { "pb" },
                format!("CN=dev-{i:03},O=Report Tests"),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let issued = issue_many(&a, &devices, &ras, &jobs);
    eprintln!(
        "{} certificates issued in {:?}",
        issued.len(),
        started.elapsed()
    );
    assert_eq!(issued.len(), ON_A + ON_B);
    let subject_of: BTreeMap<(String, String), String> = issued
        .iter()
        .map(|(ca, s, subj)| ((ca.clone(), s.clone()), subj.clone()))
        .collect();
    assert_eq!(subject_of.len(), ON_A + ON_B, "serials are unique");

    // Revoke 4 of CA a and 2 of CA b; hold one more and release it.
    let on = |ca: &str| -> Vec<&(String, String, String)> {
        issued.iter().filter(|(c, _, _)| c == ca).collect()
    };
    let mut revoked = BTreeSet::new();
    for (ca, n) in [("ca-a", 4), ("ca-b", 2)] {
        for (c, s, _) in on(ca).into_iter().take(n) {
            a.cli_ok(
                "alice",
                &[
                    "cert",
                    "revoke",
                    &colons(s),
                    "--ca",
                    c,
                    "--reason",
                    "keyCompromise",
                ],
            );
            revoked.insert((c.clone(), s.clone()));
        }
    }
    let held = on("ca-a")[10].1.clone();
    a.cli_ok(
        "alice",
        &[
            "cert",
            "revoke",
            &held,
            "--ca",
            "ca-a",
            "--reason",
            "certificateHold",
        ],
    );
    assert_eq!(
        page(&a, &["--status", "revoked", "--ca", "ca-a"]).0.len(),
        5,
        "held counts as revoked"
    );
    a.cli_ok(
        "alice",
        &[
            "cert",
            "revoke",
            &held,
            "--ca",
            "ca-a",
            "--reason",
            "removeFromCRL",
        ],
    );
    // Two requests wait for approval.
    for (i, d) in devices.iter().take(2).enumerate() {
        let (status, cert) = enrol(
            &a,
            "pm",
            &ras["pm"],
            d,
            &format!("CN=waiting-{i},O=Report Tests"),
            &format!("tx-waiting-{i}"),
        );
        assert_eq!((status.as_str(), cert.is_none()), ("3", true));
    }

    // Stats: O(CAs), from counters.
    let stats = a.cli_json("alice", &["cert", "stats", "--json"]);
    let by_ca: BTreeMap<String, Value> = stats
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["ca"].as_str().unwrap().to_owned(), s.clone()))
        .collect();
    let counts = |ca: &str| {
        let s = &by_ca[ca];
        [
            &s["active"],
            &s["expired"],
            &s["revoked"],
            &s["pending"],
            &s["total"],
        ]
        .map(|v| v.as_u64().unwrap())
    };
    assert_eq!(counts("ca-a"), [196, 0, 4, 2, 200], "{stats:#}");
    assert_eq!(counts("ca-b"), [48, 0, 2, 0, 50], "{stats:#}");
    assert_eq!(counts("root"), [0, 0, 0, 0, 0], "{stats:#}");
    let text = a.cli_ok("alice", &["cert", "stats"]);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["(all)", "244", "0", "0", "6", "250", "2"]),
        "{text}"
    );

    // Page through everything, issuing new certificates between pages.
    let (first, mut next) = page(&a, &["--limit", "100"]);
    assert_eq!(first.len(), 100);
    let mut seen = keys(&first);
    let late_jobs: Vec<(&str, String)> = (0..6)
        .map(|i| {
            (
                if i % 2 == 0 { "pa" } else { "pb" },
                format!("CN=late-{i},O=Report Tests"),
            )
        })
        .collect();
    let late = issue_many(&a, &devices, &ras, &late_jobs);
    while let Some(cursor) = next {
        let (rows, n) = page(&a, &["--limit", "100", "--after", &cursor]);
        seen.extend(keys(&rows));
        next = n;
    }
    let uniq: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(uniq.len(), seen.len(), "a certificate was listed twice");
    for k in subject_of.keys() {
        assert!(uniq.contains(k), "{k:?} is missing from the listing");
    }
    assert!(seen.len() <= ON_A + ON_B + late.len());
    let total = ON_A + ON_B + late.len();

    // Status filters, across CAs and per CA.
    let active = all_pages(&a, &["--status", "active"]);
    assert_eq!(active.len(), total - revoked.len());
    assert!(active.iter().all(|c| c["status"] == "active"));
    let not_after: Vec<i64> = active
        .iter()
        .map(|c| c["not_after"].as_i64().unwrap())
        .collect();
    assert!(
        not_after.windows(2).all(|w| w[0] <= w[1]),
        "soonest expiry first"
    );
    let act: BTreeSet<_> = keys(&active).into_iter().collect();
    assert!(revoked.iter().all(|k| !act.contains(k)));
    assert_eq!(
        all_pages(&a, &["--status", "active", "--ca", "ca-b"]).len(),
        48 + 3
    );
    let rev = all_pages(&a, &["--status", "revoked"]);
    assert_eq!(keys(&rev).into_iter().collect::<BTreeSet<_>>(), revoked);
    assert!(rev.iter().all(|c| c["revoked_at"].is_i64()));
    assert!(all_pages(&a, &["--status", "expired"]).is_empty());
    let pending = all_pages(&a, &["--status", "pending", "--ca", "ca-a"]);
    assert_eq!(pending.len(), 2, "{pending:#?}");
    assert!(
        pending
            .iter()
            .all(|p| p["request"].is_string() && p["serial"].is_null())
    );
    assert!(all_pages(&a, &["--status", "pending", "--ca", "ca-b"]).is_empty());

    // Text: a last `next:` line that continues the listing.
    let text = a.cli_ok("alice", &["cert", "list", "--ca", "ca-b", "--limit", "40"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 40 + 1, "{text}");
    let cursor = lines.last().unwrap().strip_prefix("next: ").unwrap();
    let rest = a.cli_ok(
        "alice",
        &["cert", "list", "--ca", "ca-b", "--after", cursor],
    );
    assert_eq!(rest.lines().count(), 1 + 53 - 40, "{rest}");
    assert!(!rest.contains("next:"));
    // CSV: a header and one line per certificate.
    let csv = a.cli_ok(
        "alice",
        &["cert", "list", "--ca", "ca-b", "--csv", "--limit", "1000"],
    );
    assert!(csv.starts_with("ca,serial,"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 53);

    // Search: subject (case-insensitive), serial with colons, bounded by --limit.
    let found = all_pages(&a, &["--search", "DEV-01"]);
    let subjects: BTreeSet<&str> = found
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    let want: BTreeSet<String> = (10..20)
        .map(|i| format!("CN=dev-{i:03},O=Report Tests"))
        .collect();
    assert_eq!(subjects, want.iter().map(String::as_str).collect());
    let (ca0, s0, subj0) = &issued[7];
    let part = colons(&s0[..12]);
    let (rows, _) = page(&a, &["--search", &part]);
    assert_eq!(keys(&rows), [(ca0.clone(), s0.clone())], "search {part}");
    let (rows, next) = page(&a, &["--search", "dev-1", "--limit", "3"]);
    assert_eq!(rows.len(), 3);
    assert!(next.is_some());
    let (rows, _) = page(
        &a,
        &["--search", "late-", "--status", "active", "--ca", "ca-b"],
    );
    assert_eq!(rows.len(), 3);

    // Show: by serial in openssl's form, without --ca.
    let d = a.cli_json("alice", &["cert", "show", &colons(s0), "--json"]);
    assert_eq!(d["serial"], s0.as_str());
    assert_eq!(d["ca"], ca0.as_str());
    assert_eq!(d["subject"], subj0.as_str());
    assert_eq!(d["status"], "active");
    assert_eq!(d["profile"], if ca0 == "ca-a" { "pa" } else { "pb" });
    assert!(d["transaction_id"].as_str().unwrap().starts_with("tx-"));
    assert!(d["not_after"].as_i64().unwrap() > d["not_before"].as_i64().unwrap());
    assert!(d.get("der").is_none());
    let (rca, rs) = revoked.iter().next().unwrap();
    let d = a.cli_json("alice", &["cert", "show", rs, "--ca", rca, "--json"]);
    assert_eq!(d["status"], "revoked");
    assert_eq!(d["revocation_reason"], "keyCompromise");
    let text = a.cli_ok("alice", &["cert", "show", rs]);
    assert!(text.contains("revoked-reason  keyCompromise"), "{text}");
    let d = a.cli_json("alice", &["cert", "show", &held, "--json"]);
    assert_eq!(
        (d["status"].as_str(), d["revoked_at"].is_null()),
        (Some("active"), true)
    );

    // Get: PEM by default, DER with --der; openssl reads the same serial.
    a.cli_ok("alice", &["cert", "get", s0, "-o", "got.pem"]);
    let out = openssl_ok(a.dir(), &["x509", "-in", "got.pem", "-noout", "-serial"]);
    assert_eq!(out.trim().to_lowercase(), format!("serial={s0}"));
    a.cli_ok(
        "alice",
        &[
            "cert",
            "get",
            &colons(s0),
            "--ca",
            ca0,
            "--der",
            "-o",
            "got.der",
        ],
    );
    let out = openssl_ok(
        a.dir(),
        &[
            "x509", "-inform", "DER", "-in", "got.der", "-noout", "-serial", "-subject",
        ],
    );
    assert!(
        out.to_lowercase().contains(&format!("serial={s0}")),
        "{out}"
    );
    let pem = a.cli_ok("alice", &["cert", "get", s0]);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));

    // Refusals: unknown serial or CA → 4; malformed input → 2.
    a.cli("alice", &["cert", "show", "0badc0ffee"])
        .expect_refused(4, &["no certificate"]);
    a.cli("alice", &["cert", "get", "0badc0ffee", "--ca", "ca-a"])
        .expect_refused(4, &["serial"]);
    a.cli("alice", &["cert", "show", s0, "--ca", "nope"])
        .expect_refused(4, &["no CA"]);
    a.cli("alice", &["cert", "list", "--ca", "nope"])
        .expect_code(4);
    a.cli("alice", &["cert", "show", "zz"])
        .expect_refused(2, &["hex"]);
    a.cli("alice", &["cert", "list", "--status", "sleeping"])
        .expect_refused(2, &["status"]);
    a.cli("alice", &["cert", "list", "--limit", "1001"])
        .expect_refused(2, &["limit"]);
    a.cli("alice", &["cert", "list", "--after", "not-a-cursor"])
        .expect_refused(2, &["cursor"]);
    // A cursor of another listing is refused, not misread.
    let (_, other) = page(&a, &["--status", "revoked", "--limit", "1"]);
    a.cli("alice", &["cert", "list", "--after", &other.unwrap()])
        .expect_refused(2, &["cursor"]);
}
