//! Start-up: the signer finds everything again after a restart, and refuses to start
//! (exit 78, EX_CONFIG; 75, EX_TEMPFAIL, for a token no slot holds) on an exposed PIN file, a bad config, or a CA key that is missing or
//! not provably generated in the token.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;

use tests::{Appliance, EX_CONFIG, EX_TEMPFAIL, verify};

fn chmod(path: &std::path::Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn restart_finds_every_ca_and_the_chain_still_verifies() {
    let mut a = Appliance::new(2, &["alice", "bob", "carol"]);
    a.propose_and_run(&[
        "ca",
        "create-root",
        "root",
        "--subject",
        "CN=Restart Root,C=US",
        "--key",
        "ec-p384",
        "--hash",
        "sha384",
        "--validity",
        "20y",
        "--eku",
        "client-auth,server-auth",
    ]);
    a.propose_and_run(&[
        "ca",
        "create-issuing",
        "issuing",
        "--parent",
        "root",
        "--subject",
        "CN=Restart Issuing,C=US",
        "--key",
        "ec-p256",
        "--validity",
        "10y",
        "--eku",
        "server-auth",
    ]);
    let pending = a.propose(
        "alice",
        &[
            "ca",
            "create-root",
            "later",
            "--subject",
            "CN=Later",
            "--key",
            "ec-p256",
            "--validity",
            "1y",
            "--eku",
            "client-auth",
        ],
    );
    let list = a.ca_list();
    let shows: Vec<_> = ["root", "issuing"].iter().map(|n| a.ca_show(n)).collect();
    let root_pem = a.save_cert("root", "root.pem");

    a.stop();
    let check = a.check_config();
    let out = check.expect_ok();
    assert!(out.contains("configuration ok"), "{check}");
    for ca in ["root", "issuing"] {
        assert!(out.contains(&format!("CA {ca} key ")), "{check}");
    }
    a.start();
    assert!(a.log().matches("castellan-signer ready").count() == 2);
    assert!(a.log().contains("2 CAs"), "{}", a.log());
    // SIGTERM and check-config closed the store cleanly: no repair at this start.
    assert!(!a.log().contains("not closed cleanly"), "{}", a.log());

    assert_eq!(a.ca_list(), list);
    for (n, before) in ["root", "issuing"].iter().zip(&shows) {
        assert_eq!(&a.ca_show(n), before, "CA {n} after restart");
    }
    let issuing_pem = a.save_cert("issuing", "issuing.pem");
    let (chain, count) = a.save_chain("issuing", "chain.pem");
    assert_eq!(count, 2);
    let (ok, out) = verify(a.dir(), &root_pem, Some(&chain), &issuing_pem);
    assert!(ok, "{out}");
    // The pending proposal survived too, and the keys still sign: approving it runs it.
    let id = pending["id"].as_str().unwrap();
    assert_eq!(a.proposal(id)["approvals"], 1);
    assert_eq!(a.approve("bob", id)["status"], "executed");
    assert_eq!(a.ca_show("later")["status"], "active");
}

#[test]
fn exposed_pin_file_and_bad_config_refuse_to_start() {
    let a = Appliance::init(1, &["alice"]);
    let check = a.check_config();
    assert!(check.expect_ok().contains("configuration ok"), "{check}");

    // PIN file readable by others.
    chmod(&a.pin_file, 0o644);
    let run = a.run_expect_exit();
    run.expect_refused(EX_CONFIG, &["PIN file", "mode 644", "chmod 600"]);
    a.check_config()
        .expect_refused(EX_CONFIG, &["PIN file", "mode 644"]);
    chmod(&a.pin_file, 0o600);

    // Wrong PIN.
    fs::write(&a.pin_file, "9999\n").unwrap();
    a.run_expect_exit()
        .expect_refused(EX_CONFIG, &["C_Login", "PIN is incorrect"]);
    fs::write(&a.pin_file, format!("{}\n", tests::PIN)).unwrap();

    // Unknown key in signer.toml.
    let config = a.state.join("signer.toml");
    let good = fs::read_to_string(&config).unwrap();
    fs::write(&config, format!("bogus-setting = 1\n{good}")).unwrap();
    a.run_expect_exit()
        .expect_refused(EX_CONFIG, &["unknown field", "bogus-setting"]);
    a.check_config()
        .expect_refused(EX_CONFIG, &["bogus-setting"]);
    // ... also inside [hsm].
    fs::write(&config, good.replace("[hsm]\n", "[hsm]\nslot = 3\n")).unwrap();
    a.run_expect_exit()
        .expect_refused(EX_CONFIG, &["unknown field", "slot"]);

    // A config others can write.
    fs::write(&config, &good).unwrap();
    chmod(&config, 0o666);
    a.run_expect_exit()
        .expect_refused(EX_CONFIG, &["must not be writable"]);
    chmod(&config, 0o600);

    // A token label that no slot holds: a token may be missing only for now (an HSM still
    // starting after a power cut), so the exit is 75 and systemd tries again.
    let label = format!("token-label = \"{}\"", a.token_label);
    assert!(good.contains(&label), "{good}");
    fs::write(
        &config,
        good.replace(&label, "token-label = \"no-such-token\""),
    )
    .unwrap();
    a.run_expect_exit().expect_refused(
        EX_TEMPFAIL,
        &["no PKCS#11 token labelled \"no-such-token\""],
    );
    fs::write(&config, &good).unwrap();

    assert!(a.check_config().expect_ok().contains("configuration ok"));
}

/// Create a root `victim` (EC P-256) on a quorum-1 appliance, stop it; returns its key id.
fn appliance_with_victim() -> (Appliance, String) {
    let mut a = Appliance::new(1, &["alice"]);
    a.propose_and_run(&[
        "ca",
        "create-root",
        "anchor",
        "--subject",
        "CN=Anchor",
        "--key",
        "ec-p256",
        "--validity",
        "5y",
        "--eku",
        "client-auth",
    ]);
    a.propose_and_run(&[
        "ca",
        "create-issuing",
        "victim",
        "--parent",
        "anchor",
        "--subject",
        "CN=Victim",
        "--key",
        "ec-p256",
        "--validity",
        "2y",
        "--eku",
        "client-auth",
    ]);
    let ca = a.ca_show("victim");
    assert_eq!(ca["key_attributes"]["sound"], true);
    let id = ca["key_id"].as_str().unwrap().to_owned();
    a.stop();
    (a, id)
}

#[test]
fn missing_ca_key_refuses_to_start() {
    let (a, id) = appliance_with_victim();
    a.pkcs11_tool(&["--delete-object", "--type", "privkey", "--id", &id])
        .expect_ok();
    let left = a.pkcs11_tool(&["--list-objects", "--type", "privkey"]);
    assert!(!left.expect_ok().contains(&id), "{left}");
    a.run_expect_exit()
        .expect_refused(EX_CONFIG, &["CA victim"]);
    a.check_config().expect_refused(EX_CONFIG, &["CA victim"]);
}

/// The keys of a split RA (made with the first profile that chose the layout) are checked
/// at start-up like the CA's: a missing encryption RA key stops the signer, saying which.
#[test]
fn missing_split_ra_key_refuses_to_start() {
    let (mut a, _) = appliance_with_victim();
    a.start();
    a.create_static_profile("ndes", "victim", "static-secret-1", &[]);
    a.stop();
    let listing = a
        .pkcs11_tool(&["--list-objects", "--type", "privkey"])
        .expect_ok()
        .to_owned();
    let block = listing
        .split("Private Key Object")
        .find(|b| b.contains("castellan-ra-encrypt:victim"))
        .unwrap_or_else(|| panic!("no encryption RA key in the token:\n{listing}"));
    let id = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("ID:"))
        .unwrap()
        .trim()
        .to_owned();
    a.pkcs11_tool(&["--delete-object", "--type", "privkey", "--id", &id])
        .expect_ok();
    a.run_expect_exit().expect_refused(
        EX_CONFIG,
        &["RA encryption key of CA victim (layout split)"],
    );
}

#[test]
fn extractable_ca_key_refuses_to_start() {
    let (a, id) = appliance_with_victim();
    // Replace the CA key by an extractable one with the same CKA_ID.
    for t in ["privkey", "pubkey"] {
        a.pkcs11_tool(&["--delete-object", "--type", t, "--id", &id])
            .expect_ok();
    }
    let made = a.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        &id,
        "--label",
        "weak",
        "--extractable",
    ]);
    assert!(made.expect_ok().contains("extractable"), "{made}");
    let listing = a.pkcs11_tool(&["--list-objects", "--type", "privkey"]);
    let block = listing
        .expect_ok()
        .split("Private Key Object")
        .find(|b| b.contains(&id))
        .unwrap_or_else(|| panic!("no key {id}:\n{listing}"));
    assert!(
        block.contains("Access:     sensitive, always sensitive, extractable, local"),
        "{block}"
    );

    a.run_expect_exit()
        .expect_refused(EX_CONFIG, &["CA victim", "CKA_EXTRACTABLE is true"]);
    a.check_config()
        .expect_refused(EX_CONFIG, &["CA victim", "CKA_EXTRACTABLE"]);
}

/// A sound key (sensitive, never extractable, generated in the token) under the CA's CKA_ID
/// that is not the key of the CA certificate: refused too.
#[test]
fn swapped_ca_key_refuses_to_start() {
    let (a, id) = appliance_with_victim();
    for t in ["privkey", "pubkey"] {
        a.pkcs11_tool(&["--delete-object", "--type", t, "--id", &id])
            .expect_ok();
    }
    let made = a.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        &id,
        "--label",
        "swapped",
        "--sensitive",
        "--private",
    ]);
    assert!(made.expect_ok().contains("never extractable"), "{made}");
    a.run_expect_exit()
        .expect_refused(EX_CONFIG, &["CA victim", "does not match the certificate"]);
}

/// After SIGKILL the store opens again with everything that was acknowledged.
#[test]
fn signer_recovers_after_a_crash() {
    let mut a = Appliance::new(1, &["alice"]);
    a.propose_and_run(&[
        "ca",
        "create-root",
        "sturdy",
        "--subject",
        "CN=Sturdy Root",
        "--key",
        "ec-p256",
        "--validity",
        "5y",
        "--eku",
        "client-auth",
    ]);
    let before = a.ca_show("sturdy");
    a.crash();
    a.start();
    assert_eq!(a.ca_show("sturdy"), before);
    a.propose_and_run(&[
        "ca",
        "create-issuing",
        "after",
        "--parent",
        "sturdy",
        "--subject",
        "CN=After Crash",
        "--key",
        "ec-p256",
        "--validity",
        "1y",
        "--eku",
        "client-auth",
    ]);
    assert_eq!(tests::ca_names(&a).len(), 2);
}
