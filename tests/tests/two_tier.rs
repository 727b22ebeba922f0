//! A two- and three-tier hierarchy made through quorum, checked with openssl and pkcs11-tool.
#![allow(clippy::unwrap_used)]

use tests::{Appliance, serial_bits, verify, x509_text};

const EKU: &str = "client-auth,server-auth";

/// The value on the line after `header` in `openssl x509 -text` output.
fn ext_value(text: &str, header: &str) -> String {
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with(header) {
            return lines.next().unwrap_or_default().trim().to_owned();
        }
    }
    panic!("no {header} in:\n{text}");
}

/// The private-key objects pkcs11-tool lists: (ID, label, Access line).
fn private_keys(listing: &str) -> Vec<(String, String, String)> {
    listing
        .split("Private Key Object")
        .skip(1)
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(name))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            (field("ID:"), field("label:"), field("Access:"))
        })
        .collect()
}

#[test]
fn three_tiers_under_quorum_verify_with_openssl_and_keys_stay_in_the_token() {
    let a = Appliance::new(2, &["alice", "bob", "carol"]);

    // Root: alice proposes (1/2), nothing exists until bob approves.
    let p = a.propose(
        "alice",
        &[
            "ca",
            "create-root",
            "root",
            "--subject",
            "CN=IT Root CA,O=Castellan Tests,C=US",
            "--key",
            "ec-p384",
            "--hash",
            "sha384",
            "--validity",
            "20y",
            "--eku",
            EKU,
        ],
    );
    assert_eq!(p["summary"], "create root CA root");
    assert_eq!(p["proposer"], "alice");
    a.cli("alice", &["ca", "show", "root", "--json"])
        .expect_refused(4, &["no CA named"]);
    let id = p["id"].as_str().unwrap();
    let done = a.approve("bob", id);
    assert_eq!(done["status"], "executed", "{done:#}");
    assert_eq!(done["approvals"], 2);
    assert_eq!(done["approved_by"], serde_json::json!(["alice", "bob"]));

    let root = a.ca_show("root");
    assert_eq!(root["kind"], "root");
    assert_eq!(root["status"], "active");
    assert_eq!(root["key"], "ec-p384");
    assert_eq!(root["hash"], "sha384");
    assert_eq!(
        root["ekus"],
        serde_json::json!(["server-auth", "client-auth"])
    );
    assert!(
        root["path_len"].is_null(),
        "a root without --path-len is unlimited: {root:#}"
    );
    assert!(
        root["issuer"].as_str().unwrap().contains("CN=IT Root CA"),
        "{root:#}"
    );

    // Issuing CA with pathLen 1, and a third tier (default pathLen 0) under it.
    a.propose_and_run(&[
        "ca",
        "create-issuing",
        "issuing",
        "--parent",
        "root",
        "--subject",
        "CN=IT Issuing CA,O=Castellan Tests,C=US",
        "--key",
        "rsa-3072",
        "--hash",
        "sha256",
        "--validity",
        "10y",
        "--eku",
        EKU,
        "--path-len",
        "1",
    ]);
    a.propose_and_run(&[
        "ca",
        "create-issuing",
        "sub",
        "--parent",
        "issuing",
        "--subject",
        "CN=IT Sub CA,O=Castellan Tests,C=US",
        "--key",
        "rsa-2048",
        "--hash",
        "sha256",
        "--validity",
        "5y",
        "--eku",
        "client-auth",
    ]);
    let issuing = a.ca_show("issuing");
    assert_eq!(
        (issuing["kind"].as_str(), issuing["parent"].as_str()),
        (Some("issuing"), Some("root"))
    );
    assert_eq!(issuing["path_len"], 1);
    let sub = a.ca_show("sub");
    assert_eq!(sub["parent"], "issuing");
    assert_eq!(sub["path_len"], 0);
    assert_eq!(sub["status"], "active");

    // A fourth tier: pathLen 0 of `sub` forbids it; pathLen 1 of `issuing` forbids another
    // pathLen-1 child. Both refused at proposal time; nothing is created.
    let names_before = tests::ca_names(&a);
    let proposals_before = a.proposals().as_array().unwrap().len();
    a.cli(
        "alice",
        &[
            "ca",
            "create-issuing",
            "too-deep",
            "--parent",
            "sub",
            "--subject",
            "CN=Too Deep",
            "--key",
            "ec-p256",
            "--validity",
            "1y",
            "--eku",
            "client-auth",
        ],
    )
    .expect_refused(2, &["pathLen 0"]);
    a.cli(
        "alice",
        &[
            "ca",
            "create-issuing",
            "wide",
            "--parent",
            "issuing",
            "--subject",
            "CN=Wide",
            "--key",
            "ec-p256",
            "--validity",
            "1y",
            "--eku",
            "client-auth",
            "--path-len",
            "1",
        ],
    )
    .expect_refused(2, &["pathLen 1", "below 1"]);
    assert_eq!(tests::ca_names(&a), names_before);
    assert_eq!(a.proposals().as_array().unwrap().len(), proposals_before);

    // The chain from `ca chain` (.p7b) verifies strictly to the root.
    let root_pem = a.save_cert("root", "root.pem");
    let issuing_pem = a.save_cert("issuing", "issuing.pem");
    let sub_pem = a.save_cert("sub", "sub.pem");
    let (chain, n) = a.save_chain("sub", "sub-chain.pem");
    assert_eq!(n, 3, "sub, issuing, root");
    let (ok, out) = verify(a.dir(), &root_pem, Some(&chain), &sub_pem);
    assert!(ok, "openssl verify of the 3-tier chain: {out}");
    let (chain, n) = a.save_chain("issuing", "issuing-chain.pem");
    assert_eq!(n, 2);
    let (ok, out) = verify(a.dir(), &root_pem, Some(&chain), &issuing_pem);
    assert!(ok, "openssl verify of the issuing CA: {out}");
    // Without the intermediate, the sub CA does not verify (the check is real).
    let (ok, out) = verify(a.dir(), &root_pem, None, &sub_pem);
    assert!(!ok, "sub verified without its issuer: {out}");

    // Extensions, as openssl reads them.
    let root_text = x509_text(a.dir(), &root_pem);
    let root_ski = ext_value(&root_text, "X509v3 Subject Key Identifier");
    assert_eq!(
        ext_value(&root_text, "X509v3 Authority Key Identifier").trim_start_matches("keyid:"),
        root_ski
    );
    for (pem, path_len, bits, sig) in [
        (&root_pem, None, "384 bit", "ecdsa-with-SHA384"),
        (&issuing_pem, Some(1), "3072 bit", "ecdsa-with-SHA384"),
        (&sub_pem, Some(0), "2048 bit", "sha256WithRSAEncryption"),
    ] {
        let text = x509_text(a.dir(), pem);
        assert!(
            text.contains("X509v3 Basic Constraints: critical"),
            "{text}"
        );
        let bc = ext_value(&text, "X509v3 Basic Constraints");
        match path_len {
            Some(n) => assert_eq!(bc, format!("CA:TRUE, pathlen:{n}"), "{text}"),
            None => assert_eq!(bc, "CA:TRUE", "{text}"),
        }
        assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
        let ku = ext_value(&text, "X509v3 Key Usage");
        assert!(
            ku.contains("Certificate Sign") && ku.contains("CRL Sign"),
            "{ku}"
        );
        assert!(!ext_value(&text, "X509v3 Subject Key Identifier").is_empty());
        assert!(!ext_value(&text, "X509v3 Authority Key Identifier").is_empty());
        assert!(text.contains(bits), "{text}");
        assert!(
            text.contains(&format!("Signature Algorithm: {sig}")),
            "{text}"
        );
        let serial = serial_bits(a.dir(), pem);
        assert!(
            serial >= 64,
            "serial of {} has only {serial} bits",
            pem.display()
        );
    }
    let issuing_text = x509_text(a.dir(), &issuing_pem);
    assert_eq!(
        ext_value(&issuing_text, "X509v3 Authority Key Identifier").trim_start_matches("keyid:"),
        root_ski,
        "the issuing CA's AKI is the root's SKI"
    );
    // RFC 4514 text lists the RDNs last-first: "CN=..,O=..,C=US" is C, O, CN in the DER.
    assert!(
        issuing_text.contains("Issuer: C = US, O = Castellan Tests, CN = IT Root CA"),
        "{issuing_text}"
    );
    assert!(
        issuing_text.contains("Subject: C = US, O = Castellan Tests, CN = IT Issuing CA"),
        "{issuing_text}"
    );
    assert!(
        issuing_text.contains("TLS Web Server Authentication, TLS Web Client Authentication")
            || issuing_text
                .contains("TLS Web Client Authentication, TLS Web Server Authentication"),
        "{issuing_text}"
    );
    let sub_text = x509_text(a.dir(), &sub_pem);
    let sub_eku = ext_value(&sub_text, "X509v3 Extended Key Usage");
    assert_eq!(sub_eku, "TLS Web Client Authentication");

    // The CA keys are in the token, sensitive and never extractable; the signer agrees.
    let listing = a.pkcs11_tool(&["--list-objects", "--type", "privkey"]);
    let keys = private_keys(listing.expect_ok());
    for name in ["root", "issuing", "sub"] {
        let ca = a.ca_show(name);
        let key_id = ca["key_id"].as_str().unwrap();
        let (_, label, access) = keys
            .iter()
            .find(|(id, _, _)| id.eq_ignore_ascii_case(key_id))
            .unwrap_or_else(|| panic!("key {key_id} of CA {name} not in the token:\n{listing}"));
        assert_eq!(label, &format!("castellan-ca:{name}"));
        assert_eq!(
            access, "sensitive, always sensitive, never extractable, local",
            "CA {name} key attributes"
        );
        let attrs = &ca["key_attributes"];
        for (field, want) in [
            ("token", true),
            ("private", true),
            ("sensitive", true),
            ("always_sensitive", true),
            ("extractable", false),
            ("never_extractable", true),
            ("local", true),
            ("sound", true),
        ] {
            assert_eq!(
                attrs[field], want,
                "CA {name} key_attributes.{field}: {attrs}"
            );
        }
    }
}

/// RSA-4096 with SHA-512 works end to end (slow key generation: its own test, in parallel).
#[test]
fn rsa_4096_root_with_sha512() {
    let a = Appliance::new(1, &["alice"]);
    let p = a.propose(
        "alice",
        &[
            "ca",
            "create-root",
            "big",
            "--subject",
            "CN=Big Root,C=DE",
            "--key",
            "rsa-4096",
            "--hash",
            "sha512",
            "--validity",
            "25y",
            "--eku",
            "email-protection",
        ],
    );
    assert_eq!(
        p["status"], "executed",
        "quorum 1: the proposer's approval runs it"
    );
    let pem = a.save_cert("big", "big.pem");
    let text = x509_text(a.dir(), &pem);
    assert!(text.contains("Public-Key: (4096 bit)"), "{text}");
    assert!(
        text.contains("Signature Algorithm: sha512WithRSAEncryption"),
        "{text}"
    );
    assert!(text.contains("E-mail Protection"), "{text}");
    let (ok, out) = verify(a.dir(), &pem, None, &pem);
    assert!(ok, "self-signed root: {out}");
    assert_eq!(a.ca_show("big")["key_attributes"]["sound"], true);
}

/// A root valid beyond 2049 needs GeneralizedTime (RFC 5280 §4.1.2.5); 50 years is the limit.
#[test]
fn long_lived_root_and_the_50_year_limit() {
    let a = Appliance::new(1, &["alice"]);
    a.cli(
        "alice",
        &[
            "ca",
            "create-root",
            "ancient",
            "--subject",
            "CN=Ancient",
            "--key",
            "ec-p256",
            "--validity",
            "51y",
            "--eku",
            "client-auth",
        ],
    )
    .expect_refused(2, &["at most 50 years"]);
    a.propose(
        "alice",
        &[
            "ca",
            "create-root",
            "long",
            "--subject",
            "CN=Long Root",
            "--key",
            "ec-p256",
            "--validity",
            "40y",
            "--eku",
            "client-auth",
        ],
    );
    let pem = a.save_cert("long", "long.pem");
    let end = tests::openssl_ok(
        a.dir(),
        &["x509", "-noout", "-enddate", "-in", pem.to_str().unwrap()],
    );
    let year: i32 = end.trim().rsplit(' ').nth(1).unwrap().parse().unwrap();
    assert!(year >= 2060, "{end}");
    let asn1 = tests::openssl_ok(a.dir(), &["asn1parse", "-in", pem.to_str().unwrap()]);
    assert!(asn1.contains("GENERALIZEDTIME"), "{asn1}");
    let (ok, out) = verify(a.dir(), &pem, None, &pem);
    assert!(ok, "{out}");
    assert!(
        a.ca_show("long")["not_after"]
            .as_str()
            .unwrap()
            .starts_with(&year.to_string())
    );
}
