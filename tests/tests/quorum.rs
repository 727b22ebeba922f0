//! Quorum rules: each officer counts once, only signatures over the proposal's own digest
//! count, finished proposals take no approvals, rejected and expired ones never run.
#![allow(clippy::unwrap_used)]

use cli::officer::sign_approval;
use proto::admin::{Request, Response};
use proto::governance::{Operation, Proposal, ProposalBody};
use proto::model::{CaName, CaSpec, Eku, Lifetime, Subject};
use tests::Appliance;

fn root_args(name: &str) -> Vec<String> {
    [
        "ca",
        "create-root",
        name,
        "--subject",
        "CN=Quorum Test Root",
        "--key",
        "ec-p256",
        "--hash",
        "sha256",
        "--validity",
        "5y",
        "--eku",
        "client-auth",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn spec(name: &str) -> CaSpec {
    CaSpec {
        name: CaName::new(name).unwrap(),
        subject: Subject::new("CN=Library Root,O=Castellan Tests").unwrap(),
        key: "ec-p256".parse().unwrap(),
        hash: "sha256".parse().unwrap(),
        validity: Some(Lifetime::new("2y").unwrap()),
        ekus: Eku::list("client-auth").unwrap(),
        path_len: None,
        tags: vec![],
    }
}

/// The proposal as the signer stores it (through the library).
fn stored(a: &Appliance, id: &str) -> Proposal {
    match a
        .call("alice", &Request::ProposalShow { id: id.into() })
        .unwrap()
    {
        Response::Proposal { proposal } => proposal,
        r => panic!("unexpected answer {r:?}"),
    }
}

#[test]
fn each_officer_counts_once_and_only_for_this_digest() {
    let a = Appliance::new(2, &["alice", "bob", "carol"]);
    let p = a.propose("alice", &args(&root_args("qr")));
    let id = p["id"].as_str().unwrap().to_owned();

    // The proposer approving again: refused, still 1/2.
    a.cli("alice", &["proposal", "approve", &id])
        .expect_refused(5, &["already approved", "counts once"]);
    let now = a.proposal(&id);
    assert_eq!(
        (now["approvals"].clone(), now["status"].clone()),
        (1.into(), "pending".into())
    );

    // Bob's signature over another proposal's digest: refused, nothing counted.
    let body = stored(&a, &id).body;
    let other = ProposalBody::new(
        Operation::DisableCa {
            name: CaName::new("qr").unwrap(),
        },
        "bob",
        3600,
    )
    .unwrap();
    let bob = a.officer("bob").clone();
    let wrong = sign_approval(&bob.key_pem(), &other.digest().unwrap(), "bob").unwrap();
    let err = a
        .call(
            "bob",
            &Request::Approve {
                id: id.clone(),
                approval: wrong,
            },
        )
        .unwrap_err();
    assert!(matches!(err, cli::Error::Forbidden(_)), "{err:?}");
    assert!(err.to_string().contains("does not match"), "{err}");
    // Alice's valid signature over the right digest, sent by bob: not bob's key, refused.
    let alice = a.officer("alice").clone();
    let borrowed = sign_approval(&alice.key_pem(), &body.digest().unwrap(), "alice").unwrap();
    let err = a
        .call(
            "bob",
            &Request::Approve {
                id: id.clone(),
                approval: borrowed,
            },
        )
        .unwrap_err();
    assert!(matches!(err, cli::Error::Forbidden(_)), "{err:?}");
    // An approval for a digest bob did not review: the CLI refuses to sign.
    a.cli(
        "bob",
        &["proposal", "approve", &id, "--digest", &"ab".repeat(32)],
    )
    .expect_refused(3, &["not the"]);
    let now = a.proposal(&id);
    assert_eq!(now["approvals"], 1, "{now:#}");
    assert_eq!(now["approved_by"], serde_json::json!(["alice"]));
    assert_eq!(now["status"], "pending");
    a.cli("alice", &["ca", "show", "qr"])
        .expect_refused(4, &["no CA named"]);

    // Bob approves with the digest he reviewed: it runs.
    let digest = p["digest"].as_str().unwrap();
    let done = a.cli_json(
        "bob",
        &["proposal", "approve", &id, "--digest", digest, "--json"],
    );
    assert_eq!(done["status"], "executed", "{done:#}");
    assert_eq!(done["approved_by"], serde_json::json!(["alice", "bob"]));
    assert_eq!(a.ca_show("qr")["status"], "active");

    // After execution no approval is taken.
    a.cli("carol", &["proposal", "approve", &id])
        .expect_refused(5, &["already executed"]);
    let carol = a.officer("carol").clone();
    let late = sign_approval(&carol.key_pem(), &body.digest().unwrap(), "carol").unwrap();
    let err = a
        .call(
            "carol",
            &Request::Approve {
                id: id.clone(),
                approval: late,
            },
        )
        .unwrap_err();
    assert!(matches!(err, cli::Error::Conflict(_)), "{err:?}");
    let after = a.proposal(&id);
    assert_eq!(after["approvals"], 2);
    assert_eq!(after["status"], "executed");

    // A proposal whose proposer signature is over another digest is not even stored.
    let body = ProposalBody::new(
        Operation::CreateRoot {
            spec: spec("never"),
        },
        "alice",
        3600,
    )
    .unwrap();
    let bad = sign_approval(&alice.key_pem(), &other.digest().unwrap(), "alice").unwrap();
    let new_id = body.id.clone();
    let err = a
        .call(
            "alice",
            &Request::Propose {
                body,
                approval: bad,
            },
        )
        .unwrap_err();
    assert!(matches!(err, cli::Error::Forbidden(_)), "{err:?}");
    a.cli("alice", &["proposal", "show", &new_id])
        .expect_refused(4, &["no proposal"]);
    // Nor one that claims another officer as proposer.
    let body = ProposalBody::new(
        Operation::CreateRoot {
            spec: spec("never"),
        },
        "carol",
        3600,
    )
    .unwrap();
    let sig = sign_approval(&alice.key_pem(), &body.digest().unwrap(), "alice").unwrap();
    let err = a
        .call(
            "alice",
            &Request::Propose {
                body,
                approval: sig,
            },
        )
        .unwrap_err();
    assert!(matches!(err, cli::Error::Forbidden(_)), "{err:?}");
    a.cli("alice", &["ca", "show", "never"])
        .expect_refused(4, &["no CA named"]);
}

#[test]
fn rejected_and_unknown_proposals() {
    let a = Appliance::new(2, &["alice", "bob", "carol"]);
    let p = a.propose("alice", &args(&root_args("rj")));
    let id = p["id"].as_str().unwrap().to_owned();
    let r = a.cli_json(
        "bob",
        &[
            "proposal",
            "reject",
            &id,
            "--reason",
            "wrong subject",
            "--json",
        ],
    );
    assert_eq!(r["status"], "rejected", "{r:#}");
    assert_eq!(r["outcome"], "rejected by bob: wrong subject");
    assert_eq!(a.proposal(&id)["status"], "rejected");
    a.cli("carol", &["proposal", "approve", &id])
        .expect_refused(5, &["already rejected"]);
    a.cli("carol", &["proposal", "reject", &id])
        .expect_refused(5, &["already rejected"]);
    let after = a.proposal(&id);
    assert_eq!(after["approvals"], 1, "{after:#}");
    a.cli("alice", &["ca", "show", "rj"])
        .expect_refused(4, &["no CA named"]);

    let unknown = "0123456789abcdef0123456789abcdef";
    a.cli("alice", &["proposal", "show", unknown])
        .expect_refused(4, &["no proposal"]);
    a.cli("bob", &["proposal", "approve", unknown])
        .expect_refused(4, &["no proposal"]);
    a.cli("bob", &["proposal", "reject", unknown])
        .expect_refused(4, &["no proposal"]);
    a.cli("alice", &["ca", "disable", "no-such-ca"])
        .expect_refused(4, &["no CA named"]);
}

/// A proposal that lives 2 seconds: after 3 seconds it is expired and cannot be approved.
#[test]
fn expired_proposal_cannot_be_approved() {
    let a = Appliance::new(2, &["alice", "bob", "carol"]);
    let alice = a.officer("alice").clone();
    let body = ProposalBody::new(Operation::CreateRoot { spec: spec("late") }, "alice", 2).unwrap();
    let id = body.id.clone();
    let approval = sign_approval(&alice.key_pem(), &body.digest().unwrap(), "alice").unwrap();
    let answer = a.call("alice", &Request::Propose { body, approval });
    let Ok(Response::Proposal { proposal }) = answer else {
        panic!("the signer refused a proposal with a 2-second lifetime: {answer:?}");
    };
    assert_eq!(proposal.approvals.len(), 1);
    assert_eq!(proposal.body.expires_at - proposal.body.created_at, 2);
    std::thread::sleep(std::time::Duration::from_secs(3));

    assert_eq!(a.proposal(&id)["status"], "expired");
    let listed = a.proposals();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id.as_str())
        .unwrap();
    assert_eq!(entry["status"], "expired");
    a.cli("bob", &["proposal", "approve", &id])
        .expect_refused(5, &["expired"]);
    // Also through the library, with a correct signature.
    let bob = a.officer("bob").clone();
    let body = stored(&a, &id).body;
    let sig = sign_approval(&bob.key_pem(), &body.digest().unwrap(), "bob").unwrap();
    let err = a
        .call(
            "bob",
            &Request::Approve {
                id: id.clone(),
                approval: sig,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    a.cli("alice", &["ca", "show", "late"])
        .expect_refused(4, &["no CA named"]);
    let after = a.proposal(&id);
    assert_eq!(after["approvals"], 1);
    assert_eq!(after["status"], "expired");
}
