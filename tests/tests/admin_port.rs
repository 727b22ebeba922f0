//! The admin port: only registered officers' certificates get in; disabling and enabling a
//! CA go through quorum.
#![allow(clippy::unwrap_used)]

use proto::admin::Request;
use tests::{Appliance, Officer, status};

#[test]
fn unregistered_certificates_are_refused() {
    let a = Appliance::new(2, &["alice", "bob", "carol"]);
    let me = a.cli_ok("alice", &["whoami"]);
    let lines: Vec<&str> = me.lines().collect();
    assert_eq!(
        lines[0],
        "admin alice; quorum 2 of 3 (alice, bob, carol); 1 rejection ends a proposal"
    );
    // Officers registered at init are administrators on every tag: every permission.
    assert_eq!(lines[1], "assignments: administrator on *");
    assert_eq!(
        lines[2],
        "permissions: ca.read, ca.create, ca.disable, ca.revoke, leaf.revoke, report.export, \
         profile.read, profile.write, challenge.issue, request.approve, pkcs12.issue, key.recover, audit.read, \
         audit.export, role.read, role.write"
    );

    // Mallory: same kind of certificate, never registered.
    let outsiders = a.path("outsiders");
    std::fs::create_dir_all(&outsiders).unwrap();
    let mallory = Officer::make(&outsiders, "mallory");
    // An impostor: CN=alice, but not alice's key or certificate.
    let impostor_dir = a.path("impostor");
    std::fs::create_dir_all(&impostor_dir).unwrap();
    let impostor = Officer::make(&impostor_dir, "alice");
    for o in [&mallory, &impostor] {
        for args in [&["ca", "list"][..], &["whoami"], &["proposal", "list"]] {
            a.cli_as(&o.cert, &o.key, args)
                .expect_refused(3, &["not a registered officer"]);
        }
        // A proposal attempt is refused as well, and leaves nothing behind.
        a.cli_as(
            &o.cert,
            &o.key,
            &[
                "ca",
                "create-root",
                "evil",
                "--subject",
                "CN=Evil",
                "--key",
                "ec-p256",
                "--validity",
                "1y",
                "--eku",
                "client-auth",
            ],
        )
        .expect_refused(3, &["not a registered officer"]);
        let client = cli::client::AdminClient::new(
            &a.url(),
            &std::fs::read(a.admin_ca()).unwrap(),
            &o.cert_pem(),
            &o.key_pem(),
        )
        .unwrap();
        let err = tests::block_on(client.call(&Request::CaList)).unwrap_err();
        assert!(matches!(err, cli::Error::Forbidden(_)), "{err:?}");
    }
    // An officer's certificate with another officer's key does not even make a TLS identity
    // that works.
    let bob = a.officer("bob").clone();
    let alice = a.officer("alice").clone();
    let mixed = a.cli_as(&alice.cert, &bob.key, &["whoami"]);
    assert_ne!(mixed.code, Some(0), "{mixed}");
    assert!(a.proposals().as_array().unwrap().is_empty());
    assert!(a.ca_list().as_array().unwrap().is_empty());
}

#[test]
fn disable_and_enable_go_through_quorum() {
    let a = Appliance::new(2, &["alice", "bob", "carol"]);
    a.propose_and_run(&[
        "ca",
        "create-root",
        "root",
        "--subject",
        "CN=Admin Root",
        "--key",
        "ec-p256",
        "--validity",
        "10y",
        "--eku",
        "client-auth,server-auth",
    ]);
    a.propose_and_run(&[
        "ca",
        "create-issuing",
        "iss",
        "--parent",
        "root",
        "--subject",
        "CN=Admin Issuing",
        "--key",
        "ec-p256",
        "--validity",
        "5y",
        "--eku",
        "client-auth",
        "--path-len",
        "1",
    ]);
    let child = |name: &str| {
        a.cli(
            "alice",
            &[
                "ca",
                "create-issuing",
                name,
                "--parent",
                "iss",
                "--subject",
                "CN=Admin Child",
                "--key",
                "ec-p256",
                "--validity",
                "1y",
                "--eku",
                "client-auth",
                "--json",
            ],
        )
    };

    // Disable: nothing changes until bob approves.
    let p = a.propose("alice", &["ca", "disable", "iss"]);
    assert_eq!(p["summary"], "disable CA iss");
    assert_eq!(status(&a, "iss"), "active");
    assert_eq!(
        a.approve("bob", p["id"].as_str().unwrap())["status"],
        "executed"
    );
    assert_eq!(status(&a, "iss"), "disabled");
    assert_eq!(status(&a, "root"), "active", "only iss is disabled");
    // A disabled CA signs nothing: no child CA under it.
    child("child").expect_refused(5, &["iss is disabled", "cannot sign"]);
    a.cli("alice", &["ca", "disable", "iss"])
        .expect_refused(5, &["not active"]);

    // Enable.
    let p = a.propose("alice", &["ca", "enable", "iss"]);
    assert_eq!(status(&a, "iss"), "disabled");
    assert_eq!(
        a.approve("carol", p["id"].as_str().unwrap())["status"],
        "executed"
    );
    assert_eq!(status(&a, "iss"), "active");
    a.cli("alice", &["ca", "enable", "iss"])
        .expect_refused(5, &["not disabled"]);

    // Enabled again, it may have a child.
    let p = child("child").json();
    assert_eq!(p["status"], "pending");
    assert_eq!(
        a.approve("bob", p["id"].as_str().unwrap())["status"],
        "executed"
    );
    assert_eq!(a.ca_show("child")["parent"], "iss");
}

/// The quorum re-checks a proposal when it runs: a child proposed while its parent was
/// active, approved after the parent was disabled, fails and creates nothing.
#[test]
fn proposal_fails_if_its_parent_was_disabled_meanwhile() {
    let a = Appliance::new(2, &["alice", "bob", "carol"]);
    a.propose_and_run(&[
        "ca",
        "create-root",
        "root",
        "--subject",
        "CN=Race Root",
        "--key",
        "ec-p256",
        "--validity",
        "10y",
        "--eku",
        "client-auth",
    ]);
    let child = a.propose(
        "alice",
        &[
            "ca",
            "create-issuing",
            "child",
            "--parent",
            "root",
            "--subject",
            "CN=Race Child",
            "--key",
            "ec-p256",
            "--validity",
            "1y",
            "--eku",
            "client-auth",
        ],
    );
    a.propose_and_run(&["ca", "disable", "root"]);
    let p = a.approve("bob", child["id"].as_str().unwrap());
    assert_eq!(p["status"], "failed", "{p:#}");
    assert!(
        p["outcome"].as_str().unwrap().contains("root is disabled"),
        "{p:#}"
    );
    a.cli("alice", &["ca", "show", "child"])
        .expect_refused(4, &["no CA named"]);
    assert_eq!(
        a.proposal(child["id"].as_str().unwrap())["status"],
        "failed"
    );
}
