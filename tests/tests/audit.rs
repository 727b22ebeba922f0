//! The audit log's signed checkpoints and the offline verifier: a real signer signs
//! checkpoints with its audit key in SoftHSM2; `castellan audit verify` checks exports
//! with only the file and the root certificate, and refuses every tampering.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use tests::*;

fn verify(a: &Appliance, export: &Path, root: &Path, previous: Option<&Path>) -> Out {
    let mut c = Command::new(bin("castellan"));
    c.args(["audit", "verify"])
        .arg(export)
        .arg("--root")
        .arg(root);
    if let Some(p) = previous {
        c.arg("--previous").arg(p);
    }
    // Offline: no admin URL, certificate or key is given.
    c.current_dir(a.dir());
    run(&mut c)
}

fn tampered(a: &Appliance, name: &str, text: &str) -> PathBuf {
    let p = a.path(name);
    write_file(&p, text, 0o600);
    p
}

fn entry_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("entry "))
        .map(|(i, _)| i)
        .collect()
}

fn with_lines(text: &str, f: impl FnOnce(&mut Vec<String>)) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    f(&mut lines);
    lines.join("\n") + "\n"
}

#[test]
fn an_auditor_verifies_an_export_offline_and_every_tampering_is_refused() {
    let a = Appliance::new(1, &["alice"]);
    a.create_root_and_issuing("CN=Audit Root", "issuing", "CN=Audit Issuing");
    let first = a.path("first.note");
    a.cli_ok(
        "alice",
        &["audit", "checkpoint", "-o", first.to_str().unwrap()],
    );
    let note = std::fs::read_to_string(&first).unwrap();
    assert!(note.starts_with("castellan.appliance/audit\n"), "{note}");
    assert!(
        note.contains("\n\n\u{2014} castellan.appliance/audit "),
        "{note}"
    );

    // More history after the first checkpoint, then the export.
    a.propose_and_run(&[
        "ca",
        "create-root",
        "second",
        "--subject",
        "CN=Second",
        "--key",
        "ec-p256",
        "--validity",
        "1y",
        "--eku",
        "client-auth",
    ]);
    let export = a.path("audit.export");
    a.cli_ok(
        "alice",
        &["audit", "export", "-o", export.to_str().unwrap()],
    );
    let root = a.admin_ca();
    let ok = verify(&a, &export, &root, Some(&first));
    assert!(ok.ok(), "{ok}");
    assert!(ok.stdout.contains("every entry signed"), "{ok}");
    assert!(
        ok.stdout.contains("extends the previous checkpoint"),
        "{ok}"
    );
    let text = std::fs::read_to_string(&export).unwrap();
    let entries = entry_lines(&text);
    assert!(entries.len() >= 6, "{text}");

    let refused = |name: &str, text: String, previous: Option<&Path>, why: &str| {
        let p = tampered(&a, name, &text);
        verify(&a, &p, &root, previous).expect_refused(2, &[why]);
    };
    // A byte of an entry changed (several entries, several places).
    for (k, &i) in entries.iter().enumerate().step_by(2) {
        let t = with_lines(&text, |l| {
            let line = &mut l[i];
            let at = 10 + (k * 7) % (line.len() - 11);
            let c = line.as_bytes()[at];
            let swap = if c == b'7' { "8" } else { "7" };
            line.replace_range(at..at + 1, swap);
        });
        refused(
            &format!("byte-{i}.export"),
            t,
            None,
            "do not match a signed checkpoint",
        );
    }
    // An entry removed, two reordered.
    let t = with_lines(&text, |l| {
        l.remove(entries[1]);
    });
    refused("removed.export", t, None, "audit verify");
    let t = with_lines(&text, |l| l.swap(entries[1], entries[2]));
    refused(
        "reordered.export",
        t,
        None,
        "do not match a signed checkpoint",
    );
    // An entry appended without a checkpoint.
    let t = with_lines(&text, |l| {
        let last = entries[entries.len() - 1];
        let copy = l[last].clone();
        l.insert(last + 1, copy);
    });
    refused("appended.export", t, None, "not signed");
    // Truncated: the last entries and their checkpoints gone. Alone it still verifies (a
    // shorter history), but not against the checkpoint the auditor kept.
    let latest = a.path("latest.note");
    a.cli_ok(
        "alice",
        &["audit", "checkpoint", "-o", latest.to_str().unwrap()],
    );
    let keep = entry_lines(&text)[2];
    let truncated = with_lines(&text, |l| {
        l.truncate(keep + 1);
        l.retain(|x| !x.starts_with("checkpoint "));
    });
    refused(
        "truncated.export",
        truncated,
        Some(&latest),
        "entries were removed",
    );
    // Another appliance's root, or an audit certificate that is not the root's.
    let other = Appliance::init(1, &["bob"]);
    verify(&a, &export, &other.admin_ca(), None)
        .expect_refused(2, &["does not verify with the root"]);
    let officer_cert = std::fs::read(&a.officer("alice").cert).unwrap();
    let officer_b64: String = String::from_utf8(officer_cert)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let t = with_lines(&text, |l| {
        let i = l.iter().position(|x| x.starts_with("cert ")).unwrap();
        l[i] = format!("cert {officer_b64}");
    });
    refused("other-key.export", t, None, "audit verify");
    // Not an export at all.
    refused(
        "garbage.export",
        "hello\n".into(),
        None,
        "not a castellan audit export",
    );

    // The entries, a page at a time and by actor or action.
    let page = a.cli_json("alice", &["audit", "list", "--limit", "2", "--json"]);
    let first_two = page["entries"].as_array().unwrap();
    assert_eq!(first_two.len(), 2, "{page}");
    assert_eq!(first_two[0]["seq"], 0);
    let next = page["next"].as_u64().unwrap();
    let rest = a.cli_json(
        "alice",
        &["audit", "list", "--after", &next.to_string(), "--json"],
    );
    assert_eq!(rest["entries"][0]["seq"], next + 1, "{rest}");
    assert!(rest["next"].is_null(), "one page holds the rest: {rest}");
    let key = a.cli_json(
        "alice",
        &["audit", "list", "--action", "audit-key", "--json"],
    );
    let key = key["entries"].as_array().unwrap();
    assert_eq!(key.len(), 1, "{key:?}");
    assert_eq!(key[0]["actor"], "castellan-signer");
    let text = a.cli_ok(
        "alice",
        &["audit", "list", "--actor", "alice", "--limit", "1"],
    );
    assert!(text.contains("alice") && text.contains("next: "), "{text}");
}

#[test]
fn checkpoints_survive_a_restart_and_extend_each_other() {
    let mut a = Appliance::new(1, &["alice"]);
    a.create_root_and_issuing("CN=Audit Root", "issuing", "CN=Audit Issuing");
    let before = a.path("before.note");
    a.cli_ok(
        "alice",
        &["audit", "checkpoint", "-o", before.to_str().unwrap()],
    );
    // A clean stop signs a last checkpoint; the restarted signer goes on from it.
    a.restart();
    a.propose_and_run(&["ca", "disable", "issuing"]);
    let export = a.path("after.export");
    a.cli_ok(
        "alice",
        &["audit", "export", "-o", export.to_str().unwrap()],
    );
    let ok = verify(&a, &export, &a.admin_ca(), Some(&before));
    assert!(ok.ok(), "{ok}\n{}", a.log());
    assert!(a.log().contains("signed an audit checkpoint"));
}

#[test]
fn an_admins_cosignature_is_checked_offline() {
    let a = Appliance::new(2, &["alice", "bob"]);
    let done = a.cli_ok("alice", &["audit", "cosign"]);
    assert!(done.contains("castellan.admin/alice"), "{done}");
    let note = a.cli_ok("alice", &["audit", "checkpoint"]);
    // The cosignature line is on a checkpoint; the log grew since (the cosign itself is
    // logged), so the export also has a newer one without it.
    let export = a.path("cosigned.export");
    a.cli_ok("bob", &["audit", "export", "-o", export.to_str().unwrap()]);
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(!note.is_empty());
    let root = a.admin_ca();
    let cosigner = |export: &Path, name: &str, cert: &Path| -> Out {
        let mut c = Command::new(bin("castellan"));
        c.args(["audit", "verify"])
            .arg(export)
            .arg("--root")
            .arg(&root)
            .arg("--cosigner")
            .arg(format!("{name}={}", cert.display()))
            .current_dir(a.dir());
        run(&mut c)
    };
    let ok = cosigner(&export, "alice", &a.officer("alice").cert);
    assert!(
        ok.ok()
            && ok
                .stdout
                .contains("alice cosigned the checkpoint of the first"),
        "{ok}"
    );
    // bob never cosigned; alice's line checked against bob's key fails.
    cosigner(&export, "bob", &a.officer("bob").cert)
        .expect_refused(2, &["no checkpoint is cosigned by bob"]);
    // One character of alice's cosignature changed: refused.
    let forged = with_lines(&text, |lines| {
        for l in lines.iter_mut() {
            let Some(b) = l.strip_prefix("checkpoint ") else {
                continue;
            };
            let note = String::from_utf8(proto::b64::decode(b).unwrap()).unwrap();
            if let Some(i) = note.find("castellan.admin/alice ") {
                // A character well inside the signature (past the 4-byte key ID).
                let at = i + "castellan.admin/alice ".len() + 12;
                let mut bytes = note.into_bytes();
                bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
                *l = format!("checkpoint {}", proto::b64::encode(&bytes));
            }
        }
    });
    let forged = tampered(&a, "forged.export", &forged);
    cosigner(&forged, "alice", &a.officer("alice").cert).expect_refused(2, &["cosignature"]);
    // A cosignature checked with another key: refused.
    cosigner(&export, "alice", &a.officer("bob").cert).expect_refused(2, &["cosignature"]);
    // An RSA or foreign signature cannot be sent as a cosignature of another checkpoint.
    let stale = proto::admin::Request::AuditCosign {
        checkpoint: "castellan.appliance/audit\n1\nAAAA\n".into(),
        algorithm: "1.2.840.10045.4.3.2".into(),
        signature: vec![1, 2, 3],
    };
    let refused = a.call("alice", &stale);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not the latest")),
        "{refused:?}"
    );
}
