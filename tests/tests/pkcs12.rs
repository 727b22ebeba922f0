//! PKCS certificates: `castellan pkcs12 issue` through a `pkcs` profile, in both encodings,
//! opened by `openssl pkcs12` and by Python's `cryptography` (an independent parser); the
//! key matches the certificate, the chain is complete and verifies; the device key is
//! nowhere in the signer's state or log; bad requests are refused with nothing issued.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use tests::{Appliance, openssl, openssl_ok, write_file};

fn appliance() -> Appliance {
    let mut a = Appliance::new(1, &["alice"]);
    for (args, name) in [
        (
            vec![
                "ca",
                "create-root",
                "root",
                "--subject",
                "CN=P12 Root",
                "--key",
                "ec-p256",
            ],
            "root",
        ),
        (
            vec![
                "ca",
                "create-issuing",
                "issuing",
                "--parent",
                "root",
                "--subject",
                "CN=P12 Issuing",
                "--key",
                "rsa-2048",
            ],
            "issuing",
        ),
    ] {
        let mut args = args;
        args.extend([
            "--validity",
            if name == "root" { "10y" } else { "5y" },
            "--eku",
            "client-auth,email-protection",
        ]);
        a.propose_and_run(&args);
    }
    a.propose_and_run(&[
        "profile",
        "create",
        "users-pkcs",
        "--ca",
        "issuing",
        "--pkcs-keys",
        "ec-p256,rsa-2048",
        "--subject-attrs",
        "CN,O",
        "--san-types",
        "email",
        "--eku",
        "client-auth,email-protection",
        "--key-usage",
        "digital-signature,key-encipherment",
    ]);
    a.add_admin("desk", "help-desk", "*");
    a
}

/// The number of certificates the signer has issued (leaves).
fn issued(a: &Appliance) -> u64 {
    let stats = a.cli_json("alice", &["cert", "stats", "--json"]);
    stats
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["total"].as_u64().unwrap())
        .sum()
}

fn field<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {out}"))
        .trim()
}

/// `openssl pkcs12` of `file` with `args`.
fn p12(a: &Appliance, file: &Path, password: &str, args: &[&str]) -> String {
    let pass = format!("pass:{password}");
    let mut all = vec!["pkcs12", "-in", file.to_str().unwrap(), "-passin", &pass];
    all.extend(args);
    let out = openssl(a.dir(), &all);
    assert!(out.ok(), "openssl pkcs12 {args:?}: {out:?}");
    format!("{}{}", out.stdout, out.stderr)
}

#[test]
fn pkcs12_files_in_both_encodings_open_everywhere_and_hold_the_key() {
    let a = appliance();
    let root = a.save_cert("root", "root.pem");
    let issuing = a.save_cert("issuing", "issuing.pem");
    for (key, encoding, algs) in [
        (
            "ec-p256",
            "modern",
            &[
                "PBES2, PBKDF2, AES-256-CBC",
                "PRF hmacWithSHA256",
                "MAC: sha256",
            ][..],
        ),
        (
            "rsa-2048",
            "compat",
            &["pbeWithSHA1And3-KeyTripleDES-CBC", "MAC: sha1"][..],
        ),
    ] {
        let file = a.path(&format!("ada-{encoding}.p12"));
        let out = a.cli_ok(
            "alice",
            &[
                "pkcs12",
                "issue",
                "--profile",
                "users-pkcs",
                "--subject",
                "CN=Ada Lovelace,O=Example",
                "--san",
                "email:ada@example.org",
                "--key",
                key,
                "--encoding",
                encoding,
                "-o",
                file.to_str().unwrap(),
            ],
        );
        let password = field(&out, "password:").to_owned();
        assert!(password.len() >= 26, "{out}");
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // openssl: the algorithms of the encoding, no RC2, the MAC verifies.
        let info = p12(&a, &file, &password, &["-info", "-noout"]);
        for alg in algs {
            assert!(info.contains(alg), "{encoding}: no {alg} in {info}");
        }
        assert!(!info.to_lowercase().contains("rc2"), "{info}");
        // A wrong password: the MAC fails.
        let wrong = openssl(
            a.dir(),
            &[
                "pkcs12",
                "-in",
                file.to_str().unwrap(),
                "-passin",
                "pass:wrong",
                "-noout",
            ],
        );
        assert!(!wrong.ok(), "a wrong password was accepted");

        // Key and certificates out; the key is the certificate's; the chain is complete.
        let certs = a.path(&format!("certs-{encoding}.pem"));
        let keyfile = a.path(&format!("key-{encoding}.pem"));
        fs::write(&certs, p12(&a, &file, &password, &["-nokeys"])).unwrap();
        fs::write(&keyfile, p12(&a, &file, &password, &["-nocerts", "-nodes"])).unwrap();
        let pem = fs::read_to_string(&certs).unwrap();
        assert_eq!(
            pem.matches("-----BEGIN CERTIFICATE-----").count(),
            3,
            "{pem}"
        );
        assert!(pem.contains("friendlyName: Ada Lovelace"), "{pem}");
        assert!(pem.contains("localKeyID:"), "{pem}");
        let leaf = a.path(&format!("leaf-{encoding}.pem"));
        openssl_ok(
            a.dir(),
            &[
                "x509",
                "-in",
                certs.to_str().unwrap(),
                "-out",
                leaf.to_str().unwrap(),
            ],
        );
        let from_cert = openssl_ok(
            a.dir(),
            &["x509", "-in", leaf.to_str().unwrap(), "-noout", "-pubkey"],
        );
        let from_key = openssl_ok(
            a.dir(),
            &["pkey", "-in", keyfile.to_str().unwrap(), "-pubout"],
        );
        assert_eq!(from_cert, from_key, "the key is not the certificate's");
        let verified = openssl_ok(
            a.dir(),
            &[
                "verify",
                "-CAfile",
                root.to_str().unwrap(),
                "-untrusted",
                issuing.to_str().unwrap(),
                leaf.to_str().unwrap(),
            ],
        );
        assert!(verified.contains(": OK"), "{verified}");
        let text = openssl_ok(
            a.dir(),
            &["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"],
        );
        assert!(text.contains("email:ada@example.org"), "{text}");
        assert!(text.contains("E-mail Protection"), "{text}");

        // The same layout as `openssl pkcs12 -export` writes for the same key and chain in
        // the same encoding: the same objects (content types, bags, attributes,
        // algorithms), in the same order.
        let chain = a.path(&format!("chain-{encoding}.pem"));
        let mut both = fs::read_to_string(&issuing).unwrap();
        both.push_str(&fs::read_to_string(&root).unwrap());
        fs::write(&chain, both).unwrap();
        let theirs = a.path(&format!("openssl-{encoding}.p12"));
        let mut export = vec![
            "pkcs12",
            "-export",
            "-inkey",
            keyfile.to_str().unwrap(),
            "-in",
            leaf.to_str().unwrap(),
            "-certfile",
            chain.to_str().unwrap(),
            "-name",
            "Ada Lovelace",
            "-passout",
            "pass:x",
            "-out",
            theirs.to_str().unwrap(),
        ];
        if encoding == "compat" {
            export.extend([
                "-keypbe",
                "PBE-SHA1-3DES",
                "-certpbe",
                "PBE-SHA1-3DES",
                "-macalg",
                "sha1",
            ]);
        }
        openssl_ok(a.dir(), &export);
        // What openssl reports of each file (-info): every content type, bag and algorithm in
        // order, and each bag's attributes; iteration counts and salt lengths aside (ours
        // does 10,000 PBKDF2 rounds, openssl 2,048).
        let layout = |f: &Path, pass: &str| -> Vec<String> {
            let pass = format!("pass:{pass}");
            let out = openssl(
                a.dir(),
                &[
                    "pkcs12",
                    "-in",
                    f.to_str().unwrap(),
                    "-passin",
                    &pass,
                    "-info",
                    "-nodes",
                ],
            );
            assert!(out.ok(), "{out}");
            let info = out.stderr.lines().map(|l| {
                let l = l.split(", Iteration").next().unwrap_or_default();
                l.split(", salt length")
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            });
            let attributes = out
                .stdout
                .lines()
                .filter(|l| {
                    let t = l.trim_start();
                    t.starts_with("Bag Attributes")
                        || t.starts_with("Key Attributes")
                        || t.starts_with("friendlyName")
                        || t.starts_with("localKeyID")
                })
                .map(str::to_owned);
            info.chain(attributes).collect()
        };
        let ours = layout(&file, &password);
        assert!(
            ours.iter()
                .filter(|l| l.contains("Certificate bag"))
                .count()
                == 3
                && ours.iter().any(|l| l.starts_with("Shrouded Keybag"))
                && ours
                    .iter()
                    .any(|l| l.contains("friendlyName: Ada Lovelace")),
            "{ours:#?}"
        );
        assert_eq!(
            ours,
            layout(&theirs, "x"),
            "{encoding}: not openssl's layout"
        );

        // Python's cryptography reads the same file on its own.
        let py = Command::new("python3")
            .args([
                "-c",
                "import sys\n\
                 from cryptography.hazmat.primitives.serialization import pkcs12, PublicFormat, Encoding\n\
                 p = pkcs12.load_pkcs12(open(sys.argv[1], 'rb').read(), sys.argv[2].encode())\n\
                 k = p.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)\n\
                 c = p.cert.certificate.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)\n\
                 assert k == c, 'key and certificate differ'\n\
                 print(p.cert.friendly_name.decode(), len(p.additional_certs), p.cert.certificate.subject.rfc4514_string())\n",
                file.to_str().unwrap(),
                &password,
            ])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&py.stdout);
        assert!(
            py.status.success(),
            "python: {said}{}",
            String::from_utf8_lossy(&py.stderr)
        );
        let said = said.trim();
        assert!(
            said.starts_with("Ada Lovelace 2 ")
                && said.contains("CN=Ada Lovelace")
                && said.contains("O=Example"),
            "{said}"
        );

        // The device key is nowhere in the signer's files or log: neither its secret
        // (the EC scalar or the RSA private exponent) nor its PEM text.
        let secret = secret_bytes(&a, &keyfile);
        let b64_line: String = fs::read_to_string(&keyfile)
            .unwrap()
            .lines()
            .find(|l| l.len() == 64 && !l.starts_with("-----"))
            .unwrap()
            .to_owned();
        assert_not_in(&a.path("state"), &secret, &b64_line);
        assert!(!a.log().contains(&b64_line));
        assert!(!a.log().contains(&password), "the password is in the log");
    }
}

/// The first 24 bytes of a key's secret, from `openssl pkey -text`: the EC private scalar
/// (`priv:`) or the RSA private exponent (`privateExponent:`).
fn secret_bytes(a: &Appliance, key: &Path) -> Vec<u8> {
    let text = openssl_ok(
        a.dir(),
        &["pkey", "-in", key.to_str().unwrap(), "-noout", "-text"],
    );
    let mut hex = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("priv:") || line.starts_with("privateExponent:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with(' ') {
                break;
            }
            hex.push_str(&line.trim().replace(':', ""));
        }
    }
    let bytes = hex::decode(&hex).unwrap_or_else(|e| panic!("{e}: {text}"));
    let bytes: Vec<u8> = bytes.into_iter().skip_while(|b| *b == 0).collect();
    assert!(bytes.len() >= 24, "{text}");
    bytes[..24].to_vec()
}

/// No file under `dir` holds `bytes` or `text`.
fn assert_not_in(dir: &Path, bytes: &[u8], text: &str) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_not_in(&path, bytes, text);
            continue;
        }
        let data = fs::read(&path).unwrap();
        assert!(
            !data.windows(bytes.len()).any(|w| w == bytes),
            "key bytes in {}",
            path.display()
        );
        assert!(
            !data.windows(text.len()).any(|w| w == text.as_bytes()),
            "key text in {}",
            path.display()
        );
    }
}

/// `pkcs12 issue` as `who` through `profile`: the file and its password.
fn issue_p12(
    a: &Appliance,
    who: &str,
    profile: &str,
    cn: &str,
    key: &str,
) -> (std::path::PathBuf, String, String) {
    let file = a.path(&format!("{cn}-{key}.p12"));
    let out = a.cli_ok(
        who,
        &[
            "pkcs12",
            "issue",
            "--profile",
            profile,
            "--subject",
            &format!("CN={cn},O=Example"),
            "--san",
            &format!("email:{cn}@example.org"),
            "--key",
            key,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    let serial = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no serial in {out}"))
        .to_owned();
    (file, field(&out, "password:").to_owned(), serial)
}

/// The SubjectPublicKeyInfo (PEM) of the key in a PKCS#12 file.
fn p12_public_key(a: &Appliance, file: &Path, password: &str) -> String {
    let key = a.path("p12-key.pem");
    fs::write(&key, p12(a, file, password, &["-nocerts", "-nodes"])).unwrap();
    let public = openssl_ok(a.dir(), &["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    fs::remove_file(&key).unwrap();
    public
}

#[test]
fn escrowed_keys_come_back_once_to_the_proposer_after_a_quorum() {
    let mut a = Appliance::new(2, &["alice", "bob"]);
    a.propose_and_run(&[
        "ca",
        "create-root",
        "root",
        "--subject",
        "CN=Escrow Root",
        "--key",
        "ec-p256",
        "--validity",
        "10y",
        "--eku",
        "client-auth,email-protection",
    ]);
    a.propose_and_run(&[
        "ca",
        "create-issuing",
        "issuing",
        "--parent",
        "root",
        "--subject",
        "CN=Escrow Issuing",
        "--key",
        "ec-p256",
        "--validity",
        "5y",
        "--eku",
        "client-auth,email-protection",
    ]);
    for (name, escrow) in [("smime", true), ("plain", false)] {
        let mut args = vec![
            "profile",
            "create",
            name,
            "--ca",
            "issuing",
            "--pkcs-keys",
            "rsa-2048,ec-p256",
            "--subject-attrs",
            "CN,O",
            "--san-types",
            "email",
            "--eku",
            "email-protection",
            "--key-usage",
            "key-encipherment,digital-signature",
        ];
        if escrow {
            args.push("--escrow");
        }
        a.propose_and_run(&args);
    }
    // The escrow key is in the token, made for decryption and never extractable.
    let objects = a.pkcs11_tool(&["--list-objects", "--type", "privkey"]);
    assert!(objects.stdout.contains("castellan-escrow"), "{objects}");
    a.add_admin("desk", "help-desk", "*");

    let (file, password, serial) = issue_p12(&a, "alice", "smime", "grace", "rsa-2048");
    let original = p12_public_key(&a, &file, &password);

    // Recovery is a proposal; until the quorum approves, nothing comes back.
    let proposal = a.propose("alice", &["key", "recover", &serial, "--ca", "issuing"]);
    let id = proposal["id"].as_str().unwrap().to_owned();
    let early = a.path("early.p12");
    let r = a.cli(
        "alice",
        &["key", "fetch", &id, "-o", early.to_str().unwrap()],
    );
    assert!(!r.ok() && r.stderr.contains("pending"), "{r}");
    assert!(!early.exists());
    // The help desk may neither propose nor fetch.
    let r = a.cli("desk", &["key", "recover", &serial, "--ca", "issuing"]);
    assert!(!r.ok() && r.stderr.contains("key.recover"), "{r}");
    a.approve("bob", &id);

    // Bob approved, but only alice, who asked, fetches it.
    let bobs = a.path("bobs.p12");
    let r = a.cli("bob", &["key", "fetch", &id, "-o", bobs.to_str().unwrap()]);
    assert!(!r.ok() && r.stderr.contains("only they fetch"), "{r}");
    let back = a.path("recovered.p12");
    let out = a.cli_ok(
        "alice",
        &["key", "fetch", &id, "-o", back.to_str().unwrap()],
    );
    let new_password = field(&out, "password:").to_owned();
    assert_ne!(new_password, password);
    assert_eq!(
        p12_public_key(&a, &back, &new_password),
        original,
        "not the same key"
    );
    // Once.
    let again = a.path("again.p12");
    let r = a.cli(
        "alice",
        &["key", "fetch", &id, "-o", again.to_str().unwrap()],
    );
    assert!(!r.ok() && r.stderr.contains("already fetched"), "{r}");
    assert!(!again.exists());
    // The audit trail: who asked, who approved, who fetched.
    let audit = a.cli_ok("alice", &["audit", "list", "--limit", "1000", "--json"]);
    assert!(audit.contains("key-recovered"), "{audit}");
    assert!(audit.contains(&id), "{audit}");

    // Nothing escrowed, nothing to recover; an unknown serial neither.
    let (_, _, plain) = issue_p12(&a, "alice", "plain", "henry", "ec-p256");
    for (serial, needle) in [
        (plain.as_str(), "no escrowed key"),
        ("0badc0de", "issued no certificate"),
    ] {
        let r = a.cli("alice", &["key", "recover", serial, "--ca", "issuing"]);
        assert!(!r.ok(), "{serial}: {r}");
        assert!(r.stderr.contains(needle), "{serial}: {r}");
    }
    // The escrowed row is not the key in clear: its secret is nowhere in the state.
    let key = a.path("grace-key.pem");
    fs::write(&key, p12(&a, &file, &password, &["-nocerts", "-nodes"])).unwrap();
    let secret = secret_bytes(&a, &key);
    assert_not_in(&a.path("state"), &secret, "-----BEGIN PRIVATE KEY-----");
}

#[test]
fn bad_pkcs12_requests_are_refused_and_issue_nothing() {
    let a = appliance();
    let before = issued(&a);
    let out = |name: &str| a.path(name).to_str().unwrap().to_owned();
    let base = |file: &str| -> Vec<String> {
        [
            "pkcs12",
            "issue",
            "--profile",
            "users-pkcs",
            "--subject",
            "CN=Bob,O=Example",
            "-o",
            file,
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |who: &str, extra: &[&str], file: &str| {
        let mut args = base(file);
        match extra {
            ["--subject", subject] => args[5] = subject.to_string(),
            _ => args.extend(extra.iter().map(|s| s.to_string())),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        a.cli(who, &args)
    };
    let loose = a.path("loose-password");
    write_file(&loose, "correct horse\n", 0o644);
    let empty = a.path("empty-password");
    write_file(&empty, "\n", 0o600);
    let f = out("refused.p12");
    for (who, extra, needle) in [
        (
            "alice",
            vec!["--subject", "CN=Bob,L=Paris"],
            "subject attribute L",
        ),
        (
            "alice",
            vec!["--san", "dns:bob.example"],
            "type this profile does not allow",
        ),
        ("alice", vec!["--key", "rsa-1024"], "rsa-1024"),
        (
            "alice",
            vec!["--key", "ec-p384"],
            "generates ec-p256, rsa-2048",
        ),
        ("alice", vec!["--key", "ec-p999"], "ec-p999"),
        ("alice", vec!["--encoding", "rc2"], "modern or compat"),
        ("alice", vec!["--subject", "CN=Bob,,="], "subject"),
        (
            "alice",
            vec!["--password-file", loose.to_str().unwrap()],
            "read by others",
        ),
        (
            "alice",
            vec!["--password-file", empty.to_str().unwrap()],
            "is empty",
        ),
        ("desk", vec![], "pkcs12.issue"),
    ] {
        let r = run(who, &extra, &f);
        assert!(!r.ok(), "{extra:?} was accepted: {r:?}");
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(said.contains(needle), "{extra:?}: {said}");
        assert!(!Path::new(&f).exists(), "{extra:?} left a file");
    }
    // A SCEP profile is not a pkcs one.
    a.create_static_profile("devices", "issuing", "device-secret", &[]);
    let mut args = base(&f);
    args[3] = "devices".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = a.cli("alice", &args);
    assert!(!r.ok() && r.stderr.contains("SCEP profile"), "{r:?}");
    // An existing file is not overwritten, and nothing is issued for it.
    let taken = a.path("taken.p12");
    fs::write(&taken, b"mine").unwrap();
    let r = run("alice", &[], taken.to_str().unwrap());
    assert!(!r.ok(), "{r:?}");
    assert_eq!(fs::read(&taken).unwrap(), b"mine");
    assert_eq!(issued(&a), before, "a refused request issued a certificate");

    // A given password is used (and not printed).
    let pw = a.path("good-password");
    write_file(&pw, "correct horse battery staple\n", 0o600);
    let file = a.path("bob.p12");
    let r = run(
        "alice",
        &["--password-file", pw.to_str().unwrap()],
        file.to_str().unwrap(),
    );
    assert!(r.ok(), "{r:?}");
    assert!(!r.stdout.contains("password:"), "{}", r.stdout);
    p12(&a, &file, "correct horse battery staple", &["-noout"]);
    assert_eq!(issued(&a), before + 1);

    // Profiles: escrow on a signing-only profile, SCEP challenge on a pkcs one.
    for (extra, needle) in [
        (
            vec!["--key-usage", "digital-signature", "--escrow"],
            "can only sign",
        ),
        (vec!["--challenge", "one-time"], "no SCEP"),
        (vec!["--pkcs-keys", "rsa-1024"], "rsa-1024"),
        (
            vec!["--pkcs-keys", "ec-p384", "--ec-curves", "p256"],
            "outside the profile's key policy",
        ),
    ] {
        let mut args = vec![
            "profile",
            "create",
            "more-pkcs",
            "--ca",
            "issuing",
            "--san-types",
            "email",
        ];
        if !extra.contains(&"--pkcs-keys") {
            args.extend(["--pkcs-keys", "ec-p256"]);
        }
        args.extend(extra.iter());
        let r = a.cli("alice", &args);
        assert!(!r.ok(), "{extra:?}: {r:?}");
        assert!(
            format!("{}{}", r.stdout, r.stderr).contains(needle),
            "{extra:?}: {r:?}"
        );
    }
}

#[test]
fn a_signer_killed_during_issuance_leaves_no_delivered_key_without_its_record() {
    let mut a = appliance();
    let alice = a.officer("alice").clone();
    let (url, admin_ca, dir) = (a.url(), a.admin_ca(), a.path("crash"));
    fs::create_dir_all(&dir).unwrap();
    let watched = dir.clone();
    // Issuances one after the other in a thread of their own; the signer is killed under
    // them.
    let worker = std::thread::spawn(move || {
        (0..400)
            .map(|i| {
                let file = dir.join(format!("user-{i}.p12"));
                let out = Command::new(tests::bin("castellan"))
                    .arg("--admin")
                    .arg(&url)
                    .arg("--cert")
                    .arg(&alice.cert)
                    .arg("--key")
                    .arg(&alice.key)
                    .arg("--admin-ca")
                    .arg(&admin_ca)
                    .args([
                        "pkcs12",
                        "issue",
                        "--profile",
                        "users-pkcs",
                        "--subject",
                        &format!("CN=user-{i},O=Example"),
                        "--key",
                        "ec-p256",
                        "-o",
                    ])
                    .arg(&file)
                    .output()
                    .unwrap();
                (file, out)
            })
            .collect::<Vec<_>>()
    });
    // Kill it once a dozen files have been handed out, in the middle of the next ones.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while fs::read_dir(&watched)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.metadata().is_ok_and(|m| m.len() > 0))
        })
        .count()
        < 12
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    a.crash();
    let runs = worker.join().unwrap();
    a.start();
    let delivered: Vec<_> = runs.iter().filter(|(_, o)| o.status.success()).collect();
    assert!(!delivered.is_empty(), "nothing was issued before the kill");
    assert!(
        delivered.len() < runs.len(),
        "the kill came after the last issuance"
    );
    for (file, out) in &runs {
        let said = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            assert!(!file.exists(), "a failed issuance left {}", file.display());
            continue;
        }
        // Every file handed out: its certificate is in the store, and the file opens.
        let serial = said.split_whitespace().nth(1).unwrap();
        let shown = a.cli_json(
            "alice",
            &["cert", "show", serial, "--ca", "issuing", "--json"],
        );
        assert_eq!(shown["status"], "active", "{shown}");
        p12(&a, file, field(&said, "password:"), &["-noout"]);
    }
    // The store opened after the kill and issues again.
    issue_p12(&a, "alice", "users-pkcs", "after-crash", "ec-p256");
}
