//! The web console's first pages over the real mTLS admin port: the overview and a CA's
//! page, scoped like the CLI (a hidden CA is "not found"), with a strict CSP and no
//! caching, every view in the audit log. (Browser tests come with the rest of the console.)
#![allow(clippy::unwrap_used)]

use tests::{Appliance, openssl_ok, scepclient};

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn the_overview_and_ca_pages_show_what_the_viewer_may_read() {
    let mut a = Appliance::with_edge(1, &["alice"]);
    a.create_root_and_issuing("CN=Console Root", "issuing", "CN=Console <Issuing> & Co");
    a.create_static_profile(
        "devices",
        "issuing",
        "console-secret",
        &["--legacy-algorithms"],
    );
    let dir = a.path("device");
    let out = scepclient(
        &dir,
        &a.scep_url("devices"),
        Some("console-secret"),
        "phone-7",
    );
    let cert = dir.join("cert.pem");
    assert!(cert.exists(), "{out}");
    let serial = openssl_ok(
        a.dir(),
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    )
    .trim()
    .trim_start_matches("serial=")
    .to_ascii_lowercase();
    a.propose_and_run(&[
        "ca",
        "create-issuing",
        "eu-ca",
        "--parent",
        "root",
        "--subject",
        "CN=EU Issuing",
        "--key",
        "ec-p256",
        "--validity",
        "5y",
        "--eku",
        "client-auth",
        "--tags",
        "eu",
    ]);
    a.add_admin("hd", "help-desk", "eu");

    let (status, head, body) = a.get("alice", "/");
    assert_eq!(status, 200, "{head}\n{body}");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = header(&head, "content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'none'"),
        "{csp}"
    );
    assert_eq!(header(&head, "cache-control"), Some("no-store"));
    assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    assert!(!body.contains("<script"), "{body}");
    for ca in ["root", "issuing", "eu-ca"] {
        assert!(
            body.contains(&format!("href=\"/ca/{ca}\"")),
            "{ca} missing: {body}"
        );
    }

    // The help desk on `eu` sees only eu-ca; the others do not exist for them.
    let (status, _, body) = a.get("hd", "/");
    assert_eq!(status, 200);
    assert!(body.contains("href=\"/ca/eu-ca\""), "{body}");
    assert!(
        !body.contains("/ca/issuing") && !body.contains("/ca/root"),
        "{body}"
    );
    let (status, _, body) = a.get("hd", "/ca/issuing");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no CA named"), "{body}");

    // A CA's page: its properties, escaped, and its certificate to download.
    let (status, _, body) = a.get("alice", "/ca/issuing");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("CN=Console &lt;Issuing&gt; &amp; Co"),
        "the subject is not escaped: {body}"
    );
    assert!(body.contains("/crl/issuing.crl"), "{body}");
    assert!(body.contains("href=\"/ca/issuing/cert.pem\""), "{body}");
    let (status, head, pem) = a.get("alice", "/ca/issuing/cert.pem");
    assert_eq!(status, 200);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(
        header(&head, "content-disposition"),
        Some("attachment; filename=\"issuing-cert.pem\"")
    );

    // Certificates: the filter form, the row linking to the certificate's page.
    let (status, _, body) = a.get("alice", "/certs?ca=issuing&status=active&search=phone");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("href=\"/cert/issuing/{serial}\"")) && body.contains("CN=phone-7"),
        "{body}"
    );
    assert!(
        body.contains("<option value=\"issuing\" selected>"),
        "{body}"
    );
    let (status, _, body) = a.get("alice", "/certs?search=nobody+here");
    assert_eq!(status, 200);
    assert!(!body.contains("CN=phone-7"), "{body}");
    let (status, _, body) = a.get("alice", &format!("/cert/issuing/{serial}"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("CN=phone-7") && body.contains("devices"),
        "{body}"
    );
    // The help desk does not see that CA's certificates at all.
    let (status, _, body) = a.get("hd", "/certs");
    assert_eq!(status, 200);
    assert!(!body.contains("CN=phone-7"), "{body}");
    assert_eq!(a.get("hd", &format!("/cert/issuing/{serial}")).0, 404);
    assert_eq!(a.get("hd", "/certs?ca=issuing").0, 404);
    // Bad queries: 400 with the reason.
    for bad in [
        "/certs?status=bogus",
        "/certs?x=1",
        "/certs?search=%",
        "/certs?search=%FF",
        "/certs?expires_from=2026-02-30",
        "/certs?expires_from=2027-01-01&expires_until=2026-01-01",
        "/certs.csv?expires_until=tomorrow",
    ] {
        assert_eq!(a.get("alice", bad).0, 400, "{bad}");
    }
    // Proposals: the digest, and only what the viewer can see.
    let (status, _, body) = a.get("alice", "/proposals");
    assert_eq!(status, 200);
    assert!(body.contains("create root CA root"), "{body}");
    let (_, _, body) = a.get("hd", "/proposals");
    assert!(
        body.contains("create issuing CA eu-ca") && !body.contains("create root CA root"),
        "{body}"
    );

    // Unknown pages and CAs: 404, not a crash; the style sheet is the only asset.
    assert_eq!(a.get("alice", "/nope").0, 404);
    assert_eq!(a.get("alice", "/ca/ghost").0, 404);
    let (status, head, _) = a.get("alice", "/console.css");
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("text/css; charset=utf-8")
    );

    // Revoking from the browser: the form carries a CSRF token for this admin. Without it,
    // with a wrong one, from another admin, or without the confirmation box: nothing.
    let (_, _, page) = a.get("alice", &format!("/cert/issuing/{serial}"));
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no revocation form: {page}"))
        .to_owned();
    let path = format!("/cert/issuing/{serial}/revoke");
    a.add_admin("desk", "help-desk", "*");
    let refused = [
        ("alice", "reason=keyCompromise&confirm=yes".to_owned(), 403),
        (
            "alice",
            format!("reason=keyCompromise&confirm=yes&csrf={}", "0".repeat(64)),
            403,
        ),
        ("alice", format!("reason=keyCompromise&csrf={token}"), 400),
        // Another admin who may revoke there, with alice's token: the token is per admin.
        (
            "desk",
            format!("reason=keyCompromise&confirm=yes&csrf={token}"),
            403,
        ),
        // Another admin with alice's token: the CA is outside hd's tags, so it is "not
        // found" before the token is even looked at.
        (
            "hd",
            format!("reason=keyCompromise&confirm=yes&csrf={token}"),
            404,
        ),
        (
            "alice",
            format!("reason=bogus&confirm=yes&csrf={token}"),
            400,
        ),
    ];
    for (who, form, want) in refused {
        let (status, _, body) = a.post_form(who, &path, &form);
        assert_eq!(status, want, "{who} {form}: {body}");
    }
    let shown = a.cli_json("alice", &["cert", "show", &serial, "--json"]);
    assert_eq!(shown["status"], "active", "{shown:#}");
    let (status, _, body) = a.post_form(
        "alice",
        &path,
        &format!("reason=keyCompromise&confirm=yes&csrf={token}"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("revoked"), "{body}");
    let shown = a.cli_json("alice", &["cert", "show", &serial, "--json"]);
    assert_eq!(shown["status"], "revoked", "{shown:#}");
    let (_, _, page) = a.get("alice", &format!("/cert/issuing/{serial}"));
    assert!(!page.contains("name=\"csrf\""), "{page}");

    // The audit page: the latest checkpoint checked with the audit key, entries, filters.
    a.cli_ok("alice", &["audit", "checkpoint"]);
    let (status, _, body) = a.get("alice", "/audit?actor=hd");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("signature verified with the audit key"),
        "{body}"
    );
    assert!(body.contains("console:ca-list"), "{body}");
    assert_eq!(a.get("alice", "/audit?after=x").0, 400);
    // What the help desk may not do: 403 with the permission, as in the CLI.
    let (status, _, body) = a.get("hd", "/audit");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("audit.read"), "{body}");
    assert_eq!(a.get("hd", "/requests").0, 403);
    let (status, _, body) = a.get("hd", "/certs.csv");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("report.export"), "{body}");

    // Downloads: the CA's certificate and chain, a leaf certificate, the same bytes as the
    // CLI's; a CSR only for a CA waiting for its certificate.
    let (status, head, pem) = a.get("alice", &format!("/cert/issuing/{serial}/cert.pem"));
    assert_eq!(status, 200, "{pem}");
    assert!(head.contains("attachment; filename="), "{head}");
    assert_eq!(
        pem.trim(),
        std::fs::read_to_string(&cert).unwrap().trim(),
        "the leaf as the device got it"
    );
    let (status, head, _) = a.get("alice", "/ca/issuing/cert.der");
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), Some("application/pkix-cert"));
    let (status, head, _) = a.get("alice", "/ca/issuing/chain.p7b");
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("application/pkcs7-mime")
    );
    let (status, _, pem) = a.get("alice", "/ca/issuing/cert.pem");
    assert_eq!(status, 200);
    assert_eq!(
        pem.trim(),
        std::fs::read_to_string(a.save_cert("issuing", "issuing-cli.pem"))
            .unwrap()
            .trim()
    );
    assert_eq!(a.get("alice", "/ca/issuing/csr.pem").0, 409);
    assert_eq!(a.get("alice", "/ca/issuing/key.pem").0, 404);
    assert_eq!(a.get("hd", "/ca/issuing/cert.der").0, 404);

    // The CSV export of a filter, from the console and the CLI: the same bytes.
    let (status, head, csv) = a.get("alice", "/certs.csv?search=phone-7");
    assert_eq!(status, 200, "{csv}");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains(&format!("\"{serial}\"")), "{csv}");
    let cli = a.cli_ok("alice", &["cert", "export", "--search", "phone-7"]);
    assert_eq!(cli, csv);
    // An expiry range: the certificate (valid about a year) is in this year and the next,
    // not in a range that ended yesterday.
    let day = |offset: i64| proto::rfc3339(proto::now() + offset * 86_400)[..10].to_owned();
    let (_, _, within) = a.get(
        "alice",
        &format!(
            "/certs.csv?expires_from={}&expires_until={}",
            day(0),
            day(800)
        ),
    );
    assert!(within.contains(&serial), "{within}");
    let (_, _, before) = a.get("alice", &format!("/certs.csv?expires_until={}", day(-1)));
    assert_eq!(before.lines().count(), 1, "{before}");
    let listed = a.cli_json(
        "alice",
        &["cert", "list", "--expires-until", &day(-1), "--json"],
    );
    assert_eq!(listed["certs"].as_array().unwrap().len(), 0, "{listed}");
    assert!(
        !a.cli("alice", &["cert", "list", "--expires-from", "someday"])
            .ok()
    );
    let (status, _, body) = a.get("alice", "/requests");
    assert_eq!(status, 200);
    assert!(body.contains("None."), "{body}");

    // Every view is in the audit log, refusals included.
    let log = a.cli_json(
        "alice",
        &[
            "audit", "list", "--actor", "hd", "--limit", "1000", "--json",
        ],
    );
    let actions: Vec<(String, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("console:ca-list".into(), "ok".into())),
        "{actions:?}"
    );
    let alice = a.cli_json(
        "alice",
        &["audit", "list", "--action", "console:cert-revoke", "--json"],
    );
    let outcomes: Vec<&str> = alice["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"ok"), "{alice:#}");
    assert!(
        actions
            .iter()
            .any(|(a, o)| a == "console:ca-show" && o.starts_with("404")),
        "{actions:?}"
    );
}
