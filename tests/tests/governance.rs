//! Roles, scope tags and quorum rules against the real admin port: a generated matrix of
//! role × tags × action × CA (allowed, forbidden, or not found), invisibility in lists, a
//! help-desk admin revoking a real SCEP certificate in their tag only, and the rules for
//! changing admins, roles, tags and the quorum.
#![allow(clippy::unwrap_used)]

use std::fs;

use serde_json::Value;
use tests::{Appliance, Officer, openssl_ok, scepclient};

const SECRET: &str = "governance-secret";

fn issuing(a: &Appliance, name: &str, tags: &str) {
    let subject = format!("CN={name}");
    a.propose_and_run(&[
        "ca",
        "create-issuing",
        name,
        "--parent",
        "root",
        "--subject",
        &subject,
        "--key",
        "rsa-2048",
        "--validity",
        "5y",
        "--eku",
        "client-auth",
        "--tags",
        tags,
    ]);
}

/// Enrol one device through a profile; returns the certificate's serial (hex, lower case).
fn enrol(a: &Appliance, profile: &str, cn: &str) -> String {
    let dir = a.path(cn);
    fs::create_dir_all(&dir).unwrap();
    let out = scepclient(&dir, &a.scep_url(profile), Some(SECRET), cn);
    let cert = dir.join("cert.pem");
    assert!(
        cert.exists(),
        "scepclient got no certificate: {}",
        out.stderr
    );
    openssl_ok(
        a.dir(),
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    )
    .trim()
    .trim_start_matches("serial=")
    .to_ascii_lowercase()
}

/// The permissions of the roles the matrix uses (the issue's table, and one custom role).
fn permissions(role: &str) -> &'static [&'static str] {
    match role {
        "help-desk" => &["ca.read", "leaf.revoke"],
        "read-only-operator" => &["ca.read", "report.export", "profile.read", "audit.read"],
        "auditor" => &["ca.read", "audit.read", "audit.export", "role.read"],
        "pki-operator" => &[
            "ca.read",
            "ca.disable",
            "leaf.revoke",
            "report.export",
            "profile.read",
            "profile.write",
            "challenge.issue",
            "request.approve",
        ],
        "revoker" => &["leaf.revoke"],
        r => panic!("no model for role {r}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allowed,
    Forbidden,
    NotFound,
}

/// The model: allowed with the permission on one of the CA's tags; forbidden where the
/// admin sees the CA (any assignment on its tags) but lacks the permission; otherwise the
/// CA does not exist for them.
fn expect(role: &str, tags: &str, needed: &str, ca_tags: &[&str]) -> Expect {
    let covers = tags == "*" || tags.split(',').any(|t| ca_tags.contains(&t));
    match (covers, permissions(role).contains(&needed)) {
        (true, true) => Expect::Allowed,
        (true, false) => Expect::Forbidden,
        (false, _) => Expect::NotFound,
    }
}

fn names(v: &Value, key: &str) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn the_role_tag_action_matrix_holds_and_out_of_scope_cas_are_invisible() {
    let mut a = Appliance::with_edge(2, &["alice", "bob"]);
    // alice holds administrator on *: a CA she creates without --tags gets `default`.
    a.propose_and_run(&[
        "ca",
        "create-root",
        "root",
        "--subject",
        "CN=Governance Root",
        "--key",
        "ec-p256",
        "--validity",
        "10y",
        "--eku",
        "client-auth",
    ]);
    assert_eq!(a.ca_show("root")["tags"], serde_json::json!(["default"]));
    issuing(&a, "eu-ca", "eu");
    issuing(&a, "us-ca", "us");
    a.create_static_profile("eu-p", "eu-ca", SECRET, &["--legacy-algorithms"]);
    a.create_static_profile("us-p", "us-ca", SECRET, &["--legacy-algorithms"]);
    let eu_serial = enrol(&a, "eu-p", "eu-device");
    let us_serial = enrol(&a, "us-p", "us-device");

    a.propose_and_run(&["role", "create", "revoker", "--permissions", "leaf.revoke"]);
    let admins = [
        ("hd-eu", "help-desk", "eu"),
        ("ro-us", "read-only-operator", "us"),
        ("aud", "auditor", "*"),
        ("ops", "pki-operator", "eu,us"),
        ("rev-us", "revoker", "us"),
    ];
    for (name, role, tags) in admins {
        a.add_admin(name, role, tags);
    }

    let cas: [(&str, &[&str], Option<&str>); 3] = [
        ("root", &["default"], None),
        ("eu-ca", &["eu"], Some("eu-p")),
        ("us-ca", &["us"], Some("us-p")),
    ];
    let mut checked = 0;
    for (admin, role, tags) in admins {
        for (ca, ca_tags, profile) in cas {
            let mut actions: Vec<(Vec<&str>, &str, &str)> = vec![
                (vec!["ca", "show", ca], "ca.read", "no CA named"),
                (vec!["cert", "list", "--ca", ca], "ca.read", "no CA named"),
                (
                    vec!["cert", "revoke", "0badc0de", "--ca", ca],
                    "leaf.revoke",
                    "no CA named",
                ),
                (
                    vec!["ca", "disable", ca, "--json"],
                    "ca.disable",
                    "no CA named",
                ),
            ];
            if let Some(p) = profile {
                actions.push((
                    vec!["profile", "show", p],
                    "profile.read",
                    "no profile named",
                ));
            }
            for (args, needed, hidden) in actions {
                let out = a.cli(admin, &args);
                let want = expect(role, tags, needed, ca_tags);
                let what = format!("{admin} ({role} on {tags}) {}", args.join(" "));
                match want {
                    Expect::Allowed if args[1] == "revoke" => {
                        // Allowed: the request reaches the CA and finds no such serial.
                        out.expect_refused(4, &["issued no certificate"]);
                    }
                    Expect::Allowed => {
                        assert_eq!(out.code, Some(0), "{what}: {}", out.stderr);
                    }
                    Expect::Forbidden => out.expect_refused(3, &["lacks the permission", needed]),
                    Expect::NotFound => {
                        out.expect_refused(4, &[hidden]);
                        assert!(!out.stderr.contains("lacks"), "{what}: {}", out.stderr);
                    }
                }
                checked += 1;
            }
        }
        // Requests about no CA need the permission somewhere.
        for (args, needed) in [
            (vec!["audit", "list", "--limit", "1"], "audit.read"),
            (vec!["admin", "list"], "role.read"),
            (vec!["role", "list"], "role.read"),
        ] {
            let out = a.cli(admin, &args);
            if permissions(role).contains(&needed) {
                assert_eq!(out.code, Some(0), "{admin} {args:?}: {}", out.stderr);
            } else {
                out.expect_refused(3, &["lacks the permission", needed]);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * (3 * 4 + 2 + 3));

    // Lists leave out what is out of scope.
    let listed = |admin: &str| names(&a.cli_json(admin, &["ca", "list", "--json"]), "name");
    assert_eq!(listed("hd-eu"), ["eu-ca"]);
    assert_eq!(listed("ro-us"), ["us-ca"]);
    assert_eq!(listed("aud"), ["eu-ca", "root", "us-ca"]);
    a.cli("rev-us", &["ca", "list"])
        .expect_refused(3, &["lacks the permission ca.read"]);
    let certs = a.cli_json("hd-eu", &["cert", "list", "--json"]);
    let ca_of: Vec<&str> = certs["certs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ca"].as_str().unwrap())
        .collect();
    assert_eq!(ca_of, ["eu-ca"], "{certs:#}");
    let profiles = names(&a.cli_json("ro-us", &["profile", "list", "--json"]), "name");
    assert_eq!(profiles, ["us-p"]);
    let stats = a.cli_json("hd-eu", &["cert", "stats", "--json"]);
    assert_eq!(stats.as_array().unwrap().len(), 1, "{stats:#}");
    // ops's disable proposals are visible to hd-eu only for eu-ca.
    let proposals = a.cli_json("hd-eu", &["proposal", "list", "--json"]);
    for p in proposals.as_array().unwrap() {
        let summary = p["summary"].as_str().unwrap_or_default();
        assert!(
            !summary.contains("us-ca") && !summary.contains("CA root"),
            "hd-eu sees {summary}"
        );
    }

    // The help desk revokes a lost phone in their tag, and cannot even see the other one.
    a.cli("hd-eu", &["cert", "revoke", &eu_serial, "--ca", "eu-ca"])
        .expect_ok();
    let shown = a.cli_json("aud", &["cert", "show", &eu_serial, "--json"]);
    assert_eq!(shown["status"], "revoked", "{shown:#}");
    a.cli("hd-eu", &["cert", "show", &us_serial])
        .expect_refused(4, &["no certificate with serial"]);
    a.cli("hd-eu", &["cert", "revoke", &us_serial, "--ca", "us-ca"])
        .expect_refused(4, &["no CA named"]);

    // The audit trail: the issuance, and who revoked, from where, with which permission.
    let entries = a.cli_json(
        "aud",
        &[
            "audit", "list", "--ca", "eu-ca", "--limit", "1000", "--json",
        ],
    );
    let entries = entries["entries"].as_array().unwrap().clone();
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "issue" && e["detail"].as_str().unwrap().contains(&eu_serial)),
        "no issuance entry"
    );
    let revoke = entries
        .iter()
        .find(|e| {
            e["action"] == "request:cert-revoke"
                && e["actor"] == "hd-eu"
                && e["outcome"] == "ok"
                && e["detail"].as_str().unwrap().contains(&eu_serial)
        })
        .unwrap_or_else(|| panic!("no request entry for the revocation: {entries:#?}"));
    assert_eq!(revoke["permission"], "leaf.revoke");
    assert_eq!(revoke["fingerprint"].as_str().unwrap().len(), 64);
    assert!(revoke["source"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "revoke" && e["actor"] == "hd-eu")
    );
    // A refusal is in the log too, with its reason.
    let all = a.cli_json(
        "aud",
        &[
            "audit", "list", "--actor", "hd-eu", "--limit", "1000", "--json",
        ],
    );
    assert!(
        all["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"].as_str().unwrap_or_default().starts_with("403")),
        "no refused request logged"
    );
}

#[test]
fn admins_roles_tags_and_the_quorum_change_only_by_quorum_within_the_rules() {
    let mut a = Appliance::new(2, &["alice", "bob", "carol"]);
    let who = a.cli_json("alice", &["whoami", "--json"]);
    assert_eq!(
        who["assignments"],
        serde_json::json!([{"role": "administrator", "tags": "*"}])
    );

    // Nobody changes their own assignments: not as proposer, not as approver.
    a.cli(
        "alice",
        &[
            "admin", "assign", "alice", "--role", "auditor", "--tags", "*",
        ],
    )
    .expect_refused(3, &["own assignments"]);
    let p = a.propose(
        "bob",
        &[
            "admin", "assign", "alice", "--role", "auditor", "--tags", "*",
        ],
    );
    let id = p["id"].as_str().unwrap();
    a.cli("alice", &["proposal", "approve", id])
        .expect_refused(3, &["own assignments"]);
    assert_eq!(a.approve("carol", id)["status"], "executed");
    let roles: Vec<String> = a.cli_json("alice", &["whoami", "--json"])["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(roles, ["administrator", "auditor"]);

    // Bad input, refused at proposal time, nothing stored.
    let before = a.proposals().as_array().unwrap().len();
    let alice_cert = a.officer("alice").cert.clone();
    a.cli(
        "alice",
        &[
            "admin",
            "add",
            "dave",
            "--cert",
            alice_cert.to_str().unwrap(),
            "--role",
            "help-desk",
            "--tags",
            "*",
        ],
    )
    .expect_refused(5, &["already registered", "alice"]);
    let dave = Officer::make(a.dir(), "dave");
    let dave_cert = dave.cert.to_str().unwrap().to_owned();
    a.cli(
        "alice",
        &[
            "admin",
            "add",
            "dave",
            "--cert",
            &dave_cert,
            "--role",
            "help-desk",
            "--tags",
            "",
        ],
    )
    .expect_refused(2, &["at least one tag"]);
    a.cli(
        "alice",
        &[
            "admin", "add", "dave", "--cert", &dave_cert, "--role", "ghost", "--tags", "*",
        ],
    )
    .expect_refused(4, &["no role named"]);
    a.cli(
        "alice",
        &["role", "create", "r", "--permissions", "ca.everything"],
    )
    .expect_refused(2, &["unknown permission"]);
    a.cli("alice", &["role", "create", "r", "--permissions", ""])
        .expect_refused(2, &["at least one permission"]);
    a.cli(
        "alice",
        &["role", "create", "auditor", "--permissions", "ca.read"],
    )
    .expect_refused(5, &["already exists"]);
    a.cli("alice", &["quorum", "set", "4"])
        .expect_refused(5, &["only 3 admins could approve CA creation"]);
    a.cli("alice", &["ca", "tags", "nope", "--add", "x"])
        .expect_refused(4, &["no CA named"]);
    assert_eq!(a.proposals().as_array().unwrap().len(), before);

    // A help-desk admin cannot approve CA creation; a custom role-writer on `eu` cannot give
    // a tag they do not hold; a CA cannot lose its last tag.
    a.add_admin("dave", "help-desk", "*");
    let root = [
        "ca",
        "create-root",
        "eu-root",
        "--subject",
        "CN=EU Root",
        "--key",
        "ec-p256",
        "--validity",
        "5y",
        "--eku",
        "client-auth",
        "--tags",
        "eu",
    ];
    let p = a.propose("alice", &root);
    let id = p["id"].as_str().unwrap().to_owned();
    a.cli("dave", &["proposal", "approve", &id])
        .expect_refused(3, &["lacks the permission ca.create"]);
    assert_eq!(a.approve("bob", &id)["status"], "executed");
    a.propose_and_run(&[
        "role",
        "create",
        "tagger",
        "--permissions",
        "role.write,ca.read",
    ]);
    a.add_admin("erin", "tagger", "eu");
    a.cli("erin", &["ca", "tags", "eu-root", "--add", "us"])
        .expect_refused(3, &["does not hold tag us"]);
    a.cli("alice", &["ca", "tags", "eu-root", "--remove", "eu"])
        .expect_refused(2, &["cannot lose its last tag"]);
    a.propose_and_run(&["ca", "tags", "eu-root", "--add", "emea"]);
    assert_eq!(
        a.ca_show("eu-root")["tags"],
        serde_json::json!(["emea", "eu"])
    );
    a.cli("alice", &["role", "delete", "tagger"])
        .expect_refused(5, &["held by erin"]);
    // Assignments too: only tags one holds (with role.write) can be given.
    for tags in ["us", "*"] {
        a.cli(
            "erin",
            &[
                "admin",
                "assign",
                "dave",
                "--role",
                "help-desk",
                "--tags",
                tags,
            ],
        )
        .expect_refused(3, &[&format!("does not hold tag {tags}")]);
    }
    // A CA made by an admin who may create CAs on `eu` only is tagged `eu`.
    a.propose_and_run(&[
        "role",
        "create",
        "creator",
        "--permissions",
        "ca.create,ca.read",
    ]);
    a.add_admin("frank", "creator", "eu");
    let p = a.propose(
        "frank",
        &[
            "ca",
            "create-root",
            "frank-root",
            "--subject",
            "CN=Frank Root",
            "--key",
            "ec-p256",
            "--validity",
            "5y",
            "--eku",
            "client-auth",
        ],
    );
    assert_eq!(
        a.approve("alice", p["id"].as_str().unwrap())["status"],
        "executed"
    );
    assert_eq!(a.ca_show("frank-root")["tags"], serde_json::json!(["eu"]));
    a.cli(
        "frank",
        &[
            "ca",
            "create-root",
            "frank-us",
            "--subject",
            "CN=Frank US",
            "--key",
            "ec-p256",
            "--validity",
            "5y",
            "--eku",
            "client-auth",
            "--tags",
            "us",
        ],
    )
    .expect_refused(3, &["does not hold tag us"]);

    // Two rejections end a proposal once the rule says so.
    a.propose_and_run(&["quorum", "set", "2", "--rejections", "2"]);
    let p = a.propose("alice", &["ca", "disable", "eu-root"]);
    let id = p["id"].as_str().unwrap().to_owned();
    a.cli_ok("bob", &["proposal", "reject", &id, "--reason", "not now"]);
    assert_eq!(a.proposal(&id)["status"], "pending");
    a.cli("bob", &["proposal", "reject", &id])
        .expect_refused(5, &["already rejected"]);
    a.cli_ok("carol", &["proposal", "reject", &id]);
    assert_eq!(a.proposal(&id)["status"], "rejected");

    // Removing admins down to the quorum, but not below it.
    a.propose_and_run(&["admin", "remove", "carol"]);
    a.propose_and_run(&["admin", "remove", "frank"]);
    a.cli("alice", &["admin", "remove", "bob"])
        .expect_refused(5, &["fewer than the quorum"]);
    a.cli("carol", &["whoami"])
        .expect_refused(3, &["not a registered officer"]);
    let listed = names(&a.cli_json("alice", &["admin", "list", "--json"]), "name");
    assert_eq!(listed, ["alice", "bob", "dave", "erin"]);
}
