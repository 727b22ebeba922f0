//! Upgrade: a store, token and config made by the signer before roles, scope tags and admin
//! changes existed (tests/fixtures/pre-roles, made by make-pre-roles.sh at commit 69c1733)
//! open with the current signer: every officer is `administrator` on `*`, every CA carries
//! `default`, old proposals still read, and the old audit entries are the first leaves of
//! the tree that the offline verifier checks.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use tests::{Appliance, bin, run};

#[test]
fn a_store_from_before_roles_opens_with_officers_as_administrators_on_every_tag() {
    let mut a = Appliance::from_fixture("pre-roles", 2, &["alice", "bob"]);
    a.start();
    for who in ["alice", "bob"] {
        let me = a.cli_json(who, &["whoami", "--json"]);
        assert_eq!(
            me["assignments"],
            serde_json::json!([{"role": "administrator", "tags": "*"}]),
            "{me:#}"
        );
        assert_eq!(me["quorum"], 2);
        assert_eq!(me["rejections"], 1);
    }
    let root = a.ca_show("old-root");
    assert_eq!(root["status"], "active", "{root:#}");
    assert_eq!(root["tags"], serde_json::json!(["default"]));

    // The proposal left pending then still reads: within its 24 hours bob's approval runs
    // it, after them it is expired and takes no approval.
    let old = a.proposals();
    let pending: Vec<_> = old
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["summary"].as_str().unwrap().contains("old-byoca"))
        .collect();
    assert_eq!(pending.len(), 1, "{old:#}");
    assert_eq!(pending[0]["rejections_needed"], 1);
    let id = pending[0]["id"].as_str().unwrap();
    let open = pending[0]["expires_at"].as_i64().unwrap() > proto::now() + 60;
    if open {
        assert_eq!(pending[0]["status"], "pending");
        assert_eq!(a.approve("bob", id)["status"], "executed");
        assert_eq!(
            a.ca_show("old-byoca")["tags"],
            serde_json::json!(["default"])
        );
    } else {
        assert_eq!(pending[0]["status"], "expired");
        a.cli("bob", &["proposal", "approve", id])
            .expect_refused(5, &["expired"]);
    }

    // The old entries are the first leaves: the export verifies offline.
    let export = a.path("upgraded.export");
    a.cli_ok(
        "alice",
        &["audit", "export", "-o", export.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(&export).unwrap();
    let first = text.lines().find(|l| l.starts_with("entry ")).unwrap();
    assert!(first.contains(r#""action":"init""#), "{first}");
    let out = run(Command::new(bin("castellan"))
        .args(["audit", "verify"])
        .arg(&export)
        .arg("--root")
        .arg(a.admin_ca())
        .current_dir(a.dir()));
    assert!(out.ok(), "{out}");

    // The upgraded governance changes by quorum like a new one, and survives a restart.
    a.add_admin("carol", "auditor", "*");
    a.restart();
    let me = a.cli_json("carol", &["whoami", "--json"]);
    assert_eq!(
        me["assignments"],
        serde_json::json!([{"role": "auditor", "tags": "*"}])
    );
    let admins = a.cli_json("carol", &["admin", "list", "--json"]);
    assert_eq!(admins.as_array().unwrap().len(), 3, "{admins:#}");
    a.cli("carol", &["ca", "disable", "old-root"])
        .expect_refused(3, &["lacks the permission ca.disable"]);
}
