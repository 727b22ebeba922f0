//! Bring-your-own CA: the key is made in the token, the certificate comes from a corporate
//! CA made with openssl (root → intermediate → Castellan CA).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cli::officer::sign_approval;
use proto::admin::Request;
use proto::governance::{Operation, ProposalBody};
use proto::model::CaName;
use tests::{
    Appliance, EXT_CASTELLAN, EXT_NOT_CA, ExtCa, bundle, ext_intermediate, ext_root, ext_sign,
    openssl, openssl_ok, status, verify,
};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Create a BYOCA through quorum; returns the path of its CSR (PEM, from `ca csr`).
fn create_byoca(a: &Appliance, name: &str) -> PathBuf {
    let p = a.propose_and_run(&[
        "ca",
        "create-byoca",
        name,
        "--subject",
        &format!("CN=Castellan {name},O=Example,C=US"),
        "--key",
        "ec-p256",
        "--hash",
        "sha256",
        "--eku",
        "client-auth,server-auth",
    ]);
    assert!(p["outcome"].as_str().unwrap().contains("ca csr"), "{p:#}");
    let ca = a.ca_show(name);
    assert_eq!(ca["status"], "signing-required", "{ca:#}");
    assert_eq!(ca["kind"], "byoca");
    assert!(ca["serial"].is_null() && ca["issuer"].is_null(), "{ca:#}");
    assert_eq!(ca["key_attributes"]["sound"], true);
    let csr = a.path(&format!("{name}.csr"));
    a.cli_ok("alice", &["ca", "csr", name, "-o", s(&csr)]);
    csr
}

struct Corp {
    root: ExtCa,
    inter: ExtCa,
}

fn corp(dir: &Path) -> Corp {
    let root = ext_root(dir, "corp-root", "/CN=Corp Root CA/O=Corp");
    let inter = ext_intermediate(dir, "corp-inter", "/CN=Corp Intermediate CA/O=Corp", &root);
    Corp { root, inter }
}

#[test]
fn byoca_csr_import_three_chain_formats_and_verify() {
    let a = Appliance::new(2, &["alice", "bob", "carol"]);
    let dir = a.dir();
    let corp = corp(dir);

    // PEM bundle, separate files, and a .p7b made by openssl.
    let pem_bundle = a.path("corp-bundle.pem");
    bundle(&pem_bundle, &[&corp.inter.cert, &corp.root.cert]);
    let p7b = a.path("corp-chain.p7b");
    openssl_ok(
        dir,
        &[
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            s(&corp.inter.cert),
            "-certfile",
            s(&corp.root.cert),
            "-outform",
            "DER",
            "-out",
            s(&p7b),
        ],
    );
    let cases: [(&str, Vec<&str>); 3] = [
        ("byo-bundle", vec!["--chain", s(&pem_bundle)]),
        (
            "byo-files",
            vec![
                "--chain",
                s(&corp.inter.cert),
                "--chain",
                s(&corp.root.cert),
            ],
        ),
        ("byo-p7b", vec!["--chain", s(&p7b)]),
    ];
    for (name, chain_args) in cases {
        let csr = create_byoca(&a, name);
        // No certificate and no chain before the import.
        a.cli("alice", &["ca", "cert", name])
            .expect_refused(5, &["signing-required"]);
        a.cli("alice", &["ca", "chain", name])
            .expect_refused(5, &["no certificate"]);

        // The CSR verifies, names the CA and asks for CA:TRUE; --der is the same request.
        let v = openssl(dir, &["req", "-verify", "-noout", "-in", s(&csr)]);
        assert!(
            v.ok() && format!("{}{}", v.stdout, v.stderr).contains("verify OK"),
            "{v}"
        );
        let text = openssl_ok(dir, &["req", "-noout", "-text", "-in", s(&csr)]);
        assert!(text.contains(&format!("CN = Castellan {name}")), "{text}");
        assert!(text.contains("CA:TRUE"), "{text}");
        let der = a.path(&format!("{name}.csr.der"));
        a.cli_ok("alice", &["ca", "csr", name, "--der", "-o", s(&der)]);
        let v = openssl(
            dir,
            &["req", "-inform", "DER", "-verify", "-noout", "-in", s(&der)],
        );
        assert!(v.ok(), "{v}");
        let converted = a.path(&format!("{name}.csr.conv.der"));
        openssl_ok(
            dir,
            &[
                "req",
                "-in",
                s(&csr),
                "-outform",
                "DER",
                "-out",
                s(&converted),
            ],
        );
        assert_eq!(
            std::fs::read(&der).unwrap(),
            std::fs::read(&converted).unwrap()
        );

        // The corporate intermediate signs it; the import is a proposal too.
        let cert = a.path(&format!("{name}.pem"));
        ext_sign(dir, &csr, &corp.inter, EXT_CASTELLAN, &cert, &[]);
        let mut args = vec!["ca", "import", name, "--cert", s(&cert)];
        args.extend(chain_args.iter().copied());
        let p = a.propose("alice", &args);
        assert_eq!(
            p["summary"],
            format!("import the signed certificate of {name} (+2 chain certificates)")
        );
        assert_eq!(status(&a, name), "signing-required", "before the quorum");
        let done = a.approve("bob", p["id"].as_str().unwrap());
        assert_eq!(done["status"], "executed", "{done:#}");

        let ca = a.ca_show(name);
        assert_eq!(ca["status"], "active", "{ca:#}");
        assert!(
            ca["issuer"]
                .as_str()
                .unwrap()
                .contains("Corp Intermediate CA"),
            "{ca:#}"
        );
        assert_eq!(ca["path_len"], 0);
        // What `ca cert` returns is what the corporate CA signed.
        let back = a.save_cert(name, &format!("{name}-back.pem"));
        let fp = |p: &Path| {
            openssl_ok(
                dir,
                &["x509", "-noout", "-fingerprint", "-sha256", "-in", s(p)],
            )
        };
        assert_eq!(fp(&back), fp(&cert));
        // The chain from `ca chain` verifies to the corporate root.
        let (chain, n) = a.save_chain(name, &format!("{name}-chain.pem"));
        assert_eq!(n, 3, "{name}, corp intermediate, corp root");
        let (ok, out) = verify(dir, &corp.root.cert, Some(&chain), &back);
        assert!(ok, "{name}: {out}");

        // An active CA takes no second import.
        a.cli("alice", &args)
            .expect_refused(5, &["signing-required"]);
    }
}

#[test]
fn byoca_bad_imports_are_refused_and_change_nothing() {
    let a = Appliance::new(2, &["alice", "bob", "carol"]);
    let dir = a.dir();
    let corp = corp(dir);
    let csr = create_byoca(&a, "byo");
    let proposals = a.proposals().as_array().unwrap().len();
    let chain = a.path("chain.pem");
    bundle(&chain, &[&corp.inter.cert, &corp.root.cert]);

    let import = |cert: &Path, chain: &[&Path]| {
        let mut args = vec!["ca", "import", "byo", "--cert", s(cert)];
        for c in chain {
            args.extend(["--chain", s(c)]);
        }
        a.cli("alice", &args)
    };

    // 1. A certificate for another key: a CSR with the same subject from an openssl key.
    let other_csr = a.path("other.csr");
    openssl_ok(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            s(&a.path("other.key")),
            "-out",
            s(&other_csr),
            "-subj",
            "/C=US/O=Example/CN=Castellan byo",
        ],
    );
    let other = a.path("other.pem");
    ext_sign(dir, &other_csr, &corp.inter, EXT_CASTELLAN, &other, &[]);
    import(&other, &[&chain]).expect_refused(2, &["another key"]);

    // 2. Our key, but an end-entity certificate (CA:FALSE).
    let leaf = a.path("leaf.pem");
    ext_sign(dir, &csr, &corp.inter, EXT_NOT_CA, &leaf, &[]);
    import(&leaf, &[&chain]).expect_refused(2, &["not a CA certificate"]);

    // 3. A chain that does not verify: signed by an intermediate of another root that has
    //    the same subject as the corporate root; the corporate root is what is given.
    let evil_root = ext_root(dir, "evil-root", "/CN=Corp Root CA/O=Corp");
    let evil_inter = ext_intermediate(
        dir,
        "evil-inter",
        "/CN=Corp Intermediate CA/O=Corp",
        &evil_root,
    );
    let evil = a.path("evil.pem");
    ext_sign(dir, &csr, &evil_inter, EXT_CASTELLAN, &evil, &[]);
    import(&evil, &[&evil_inter.cert, &corp.root.cert]).expect_refused(2, &["does not verify"]);

    // 4. A good certificate, but the chain stops short of the self-signed root.
    let good = a.path("good.pem");
    ext_sign(dir, &csr, &corp.inter, EXT_CASTELLAN, &good, &[]);
    import(&good, &[&corp.inter.cert]).expect_refused(2, &["does not reach a self-signed root"]);

    // 5. Garbage and empty files (the CLI refuses them before sending).
    let garbage = a.path("garbage.bin");
    std::fs::write(
        &garbage,
        b"\x30\x82\x01\x00not a certificate at all\xff\xfe",
    )
    .unwrap();
    let empty = a.path("empty.pem");
    std::fs::write(&empty, b"").unwrap();
    import(&garbage, &[&chain]).expect_refused(2, &["not a certificate"]);
    import(&good, &[&garbage]).expect_refused(2, &["not a certificate"]);
    import(&empty, &[&chain]).expect_refused(2, &["empty"]);
    import(&good, &[&empty]).expect_refused(2, &["empty"]);

    // 6. The signer refuses garbage too, when a client sends it anyway.
    let alice = a.officer("alice").clone();
    let body = ProposalBody::new(
        Operation::ImportCa {
            name: CaName::new("byo").unwrap(),
            cert: std::fs::read(&garbage).unwrap(),
            chain: vec![],
        },
        "alice",
        3600,
    )
    .unwrap();
    let approval = sign_approval(&alice.key_pem(), &body.digest().unwrap(), "alice").unwrap();
    let err = a
        .call("alice", &Request::Propose { body, approval })
        .unwrap_err();
    assert!(matches!(err, cli::Error::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("not valid DER"), "{err}");

    // Nothing changed: no proposal, still waiting for its certificate.
    assert_eq!(a.proposals().as_array().unwrap().len(), proposals);
    assert_eq!(status(&a, "byo"), "signing-required");

    // The good import works, and then a second import is a conflict.
    let p = a.propose(
        "alice",
        &[
            "ca",
            "import",
            "byo",
            "--cert",
            s(&good),
            "--chain",
            s(&chain),
        ],
    );
    assert_eq!(
        a.approve("carol", p["id"].as_str().unwrap())["status"],
        "executed"
    );
    assert_eq!(status(&a, "byo"), "active");
    import(&good, &[&chain]).expect_refused(5, &["is active"]);
}

/// RFC 5280 §4.2.1.9: an intermediate with pathLenConstraint 0 may have no CA certificate
/// below it. A Castellan CA is a CA (it issues end-entity certificates), so a chain whose
/// intermediate says pathlen:0 can never validate a certificate this CA issues: the import
/// must be refused.
#[test]
fn byoca_under_a_pathlen_0_intermediate_is_refused() {
    let a = Appliance::new(1, &["alice"]);
    let dir = a.dir();
    let root = ext_root(dir, "corp-root", "/CN=Corp Root CA/O=Corp");
    let csr_inter = a.path("tight.csr");
    let inter = ExtCa {
        cert: a.path("tight.pem"),
        key: a.path("tight.key"),
    };
    openssl_ok(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            s(&inter.key),
            "-out",
            s(&csr_inter),
            "-subj",
            "/CN=Tight Intermediate/O=Corp",
        ],
    );
    ext_sign(
        dir,
        &csr_inter,
        &root,
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        &inter.cert,
        &[],
    );
    let csr = create_byoca(&a, "byo");
    let cert = a.path("byo.pem");
    ext_sign(dir, &csr, &inter, EXT_CASTELLAN, &cert, &[]);
    a.cli(
        "alice",
        &[
            "ca",
            "import",
            "byo",
            "--cert",
            s(&cert),
            "--chain",
            s(&inter.cert),
            "--chain",
            s(&root.cert),
        ],
    )
    .expect_refused(
        2,
        &[
            "Tight Intermediate",
            "allows only 0 CA certificates below it",
        ],
    );
    assert_eq!(status(&a, "byo"), "signing-required");
}
