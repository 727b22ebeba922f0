//! Weak or malformed CA parameters are refused by the CLI before sending and, when a client
//! sends them anyway, by the signer; nothing is created.
#![allow(clippy::unwrap_used)]

use cli::officer::sign_approval;
use proto::admin::Request;
use proto::governance::{Operation, ProposalBody};
use proto::model::{CaName, CaSpec, Eku, Lifetime, Subject};
use tests::Appliance;

fn spec(name: &str) -> CaSpec {
    CaSpec {
        name: CaName::new(name).unwrap(),
        subject: Subject::new("CN=Bad Input CA,O=Castellan Tests,C=US").unwrap(),
        key: "ec-p256".parse().unwrap(),
        hash: "sha256".parse().unwrap(),
        validity: Some(Lifetime::new("1y").unwrap()),
        ekus: Eku::list("client-auth").unwrap(),
        path_len: None,
        tags: vec![],
    }
}

/// Propose `op` as alice through the library (signature over its real digest).
fn propose(a: &Appliance, op: Operation) -> cli::Result<proto::admin::Response> {
    let alice = a.officer("alice").clone();
    let body = ProposalBody::new(op, "alice", 3600).unwrap();
    let approval = sign_approval(&alice.key_pem(), &body.digest().unwrap(), "alice").unwrap();
    a.call("alice", &Request::Propose { body, approval })
}

#[test]
fn weak_and_malformed_ca_parameters_are_refused_by_cli_and_signer() {
    let a = Appliance::new(2, &["alice", "bob", "carol"]);
    a.propose_and_run(&[
        "ca",
        "create-root",
        "short",
        "--subject",
        "CN=Short Root,C=US",
        "--key",
        "ec-p256",
        "--hash",
        "sha256",
        "--validity",
        "2y",
        "--eku",
        "client-auth,server-auth",
    ]);
    let cas_before = a.ca_list();
    let proposals_before = a.proposals().as_array().unwrap().len();

    // The CLI: (flag to change, its value, what the message must say).
    let cases: &[(&str, &str, &[&str])] = &[
        ("--key", "rsa-1024", &["unsupported key", "rsa-2048"]),
        ("--hash", "sha1", &["unsupported hash", "SHA-1"]),
        ("--hash", "md5", &["unsupported hash", "MD5"]),
        ("--eku", "any-purpose", &["Any Purpose"]),
        ("--eku", "2.5.29.37.0", &["Any Purpose"]),
        ("--eku", "client-auth,2.5.29.37.0", &["Any Purpose"]),
        ("--eku", "1.2.x", &["unknown EKU \"1.2.x\""]),
        (
            "--subject",
            "CN=Bad Country,C=USA",
            &["country", "two upper-case letters"],
        ),
        ("--subject", "CN=Bad Country,C=u1", &["country"]),
        ("--subject", "O=No Common Name", &["common name"]),
    ];
    for (flag, value, needles) in cases {
        let mut args = vec![
            "ca",
            "create-root",
            "bad",
            "--subject",
            "CN=Bad Root,C=US",
            "--key",
            "ec-p256",
            "--hash",
            "sha256",
            "--validity",
            "5y",
            "--eku",
            "client-auth",
        ];
        let i = args.iter().position(|x| x == flag).unwrap();
        args[i + 1] = value;
        a.cli("alice", &args).expect_refused(2, needles);
    }
    // ECDSA with SHA-512 is not a pairing Castellan offers.
    a.cli(
        "alice",
        &[
            "ca",
            "create-root",
            "bad",
            "--subject",
            "CN=Bad",
            "--key",
            "ec-p384",
            "--hash",
            "sha512",
            "--validity",
            "5y",
            "--eku",
            "client-auth",
        ],
    )
    .expect_refused(2, &["cannot be used with"]);
    // Only the signer knows the parent: an issuing CA outliving its 2-year root, or wanting an
    // EKU the root does not allow.
    let issuing = |validity: &str, eku: &str| {
        a.cli(
            "alice",
            &[
                "ca",
                "create-issuing",
                "bad-issuing",
                "--parent",
                "short",
                "--subject",
                "CN=Bad Issuing",
                "--key",
                "ec-p256",
                "--validity",
                validity,
                "--eku",
                eku,
            ],
        )
    };
    issuing("5y", "client-auth").expect_refused(2, &["cannot outlive its parent", "short"]);
    issuing("1y", "code-signing").expect_refused(2, &["code-signing", "not allowed by parent"]);

    // The signer: the same refusals for what the CLI never sends. A spec's key and hash are
    // typed, so the library cannot build a weak one: those go as raw JSON over the port.
    for (key, hash, needle) in [
        ("rsa-1024", "sha256", "unsupported key"),
        ("ec-p256", "sha1", "unsupported hash"),
        ("rsa-2048", "md5", "unsupported hash"),
    ] {
        for op in [
            Operation::CreateRoot { spec: spec("bad") },
            Operation::CreateIssuing {
                parent: CaName::new("short").unwrap(),
                spec: spec("bad"),
            },
        ] {
            let alice = a.officer("alice").clone();
            let body = ProposalBody::new(op, "alice", 3600).unwrap();
            let approval =
                sign_approval(&alice.key_pem(), &body.digest().unwrap(), "alice").unwrap();
            let mut json = serde_json::to_value(Request::Propose { body, approval }).unwrap();
            json["body"]["operation"]["spec"]["key"] = key.into();
            json["body"]["operation"]["spec"]["hash"] = hash.into();
            let (status, text) = a.raw_call("alice", &json.to_string());
            assert_eq!(status, 400, "{key}/{hash}: {text}");
            assert!(text.contains(needle), "{key}/{hash}: {text}");
        }
    }
    let mut sp = spec("bad");
    sp.key = "ec-p256".parse().unwrap();
    sp.hash = "sha512".parse().unwrap();
    let err = propose(&a, Operation::CreateRoot { spec: sp.clone() }).unwrap_err();
    assert!(matches!(err, cli::Error::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("cannot be used with"), "{err}");
    let err = propose(
        &a,
        Operation::CreateIssuing {
            parent: CaName::new("short").unwrap(),
            spec: sp,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot be used with"),
        "issuing: {err}"
    );
    let mut long = spec("bad-issuing");
    long.validity = Some(Lifetime::new("5y").unwrap());
    let err = propose(
        &a,
        Operation::CreateIssuing {
            parent: CaName::new("short").unwrap(),
            spec: long,
        },
    )
    .unwrap_err();
    assert!(matches!(err, cli::Error::Invalid(_)), "{err:?}");
    assert!(
        err.to_string().contains("cannot outlive its parent"),
        "{err}"
    );
    let mut none = spec("bad");
    none.ekus.clear();
    let err = propose(&a, Operation::CreateRoot { spec: none }).unwrap_err();
    assert!(
        err.to_string().contains("at least one allowed EKU"),
        "{err}"
    );

    // The signer, with raw JSON the typed library refuses to build: Any Purpose, a malformed
    // OID, a 3-letter country.
    let alice = a.officer("alice").clone();
    let body =
        ProposalBody::new(Operation::CreateRoot { spec: spec("bad") }, "alice", 3600).unwrap();
    let approval = sign_approval(&alice.key_pem(), &body.digest().unwrap(), "alice").unwrap();
    let good = serde_json::to_value(Request::Propose { body, approval }).unwrap();
    for (field, value, needle) in [
        ("ekus", serde_json::json!(["2.5.29.37.0"]), "Any Purpose"),
        ("ekus", serde_json::json!(["any-purpose"]), "Any Purpose"),
        ("ekus", serde_json::json!(["1.2.x"]), "unknown EKU"),
        ("subject", serde_json::json!("CN=Raw,C=USA"), "country"),
        ("key", serde_json::json!("rsa-1024"), "unsupported key"),
        ("hash", serde_json::json!("sha1"), "unsupported hash"),
    ] {
        let mut req = good.clone();
        req["body"]["operation"]["spec"][field] = value;
        // Where the changed body still parses (key and hash are plain strings), sign it
        // properly: the signer checks the proposer's signature before the operation.
        if let Ok(changed) = serde_json::from_value::<ProposalBody>(req["body"].clone()) {
            let approval =
                sign_approval(&alice.key_pem(), &changed.digest().unwrap(), "alice").unwrap();
            req["approval"] = serde_json::to_value(approval).unwrap();
        }
        let (code, body) = a.raw_call("alice", &req.to_string());
        assert_eq!(code, 400, "{field}: {body}");
        assert!(body.contains(needle), "{field}: {body}");
    }
    // The unchanged request is accepted (the raw path itself works).
    let (code, body) = a.raw_call("alice", &good.to_string());
    assert_eq!(code, 200, "{body}");
    let id = good["body"]["id"].as_str().unwrap();
    a.cli_ok("carol", &["proposal", "reject", id, "--reason", "test"]);

    // Nothing was created by any refused request.
    assert_eq!(a.ca_list(), cas_before);
    assert_eq!(
        a.proposals().as_array().unwrap().len(),
        proposals_before + 1
    );
}
