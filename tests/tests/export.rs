//! MDM exports end to end: `castellan export mobileconfig` read back with Python's plistlib
//! (the independent parser: plutil is macOS only), `castellan export bundle` checked with
//! openssl, and the refusals (unknown profile, existing output, wrong static challenge,
//! a subject the profile refuses) leaving no file behind.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use serde_json::{Value, json};
use tests::{Appliance, InitOptions, openssl_ok, run};

/// Markup characters on purpose: the plist must escape them.
const SECRET: &str = "s3cret <&> \"quoted\"";
const ORGANIZATION: &str = "Castellan <Tests> & \"Co\"";

/// One officer (quorum 1), a signer with a signing socket (so its public URL is the edge's,
/// as `Appliance::scep_url` spells it; the edge itself is not needed), an EC root and an RSA
/// issuing CA, and two profiles on the issuing CA:
/// - `devices`: defaults (RSA 2048..4096, digital signature + key encipherment, 1 year,
///   renewal 30 days), GetCACert returns the full chain;
/// - `signers`: RSA 3072..4096, digital signature only, CN only, manual approval.
fn appliance() -> Appliance {
    let mut a = Appliance::init_with(
        1,
        &["alice"],
        &InitOptions {
            socket: true,
            socket_uid: None,
        },
    );
    a.start();
    a.create_root_and_issuing(
        "CN=Export Root,O=Castellan Tests,C=US",
        "issuing",
        "CN=Export Issuing,O=Castellan Tests,C=US",
    );
    a.create_static_profile("devices", "issuing", SECRET, &["--ca-chain", "full"]);
    a.create_static_profile(
        "signers",
        "issuing",
        "signers-secret-1",
        &[
            "--key-usage",
            "digital-signature",
            "--rsa-min-bits",
            "3072",
            "--subject-attrs",
            "CN",
            "--approval",
            "manual",
        ],
    );
    a
}

/// A CA certificate, DER.
fn ca_der(a: &Appliance, ca: &str) -> Vec<u8> {
    let p = a.path(&format!("{ca}.der"));
    a.cli_ok(
        "alice",
        &["ca", "cert", ca, "--der", "-o", p.to_str().unwrap()],
    );
    fs::read(p).unwrap()
}

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

/// The file parsed by Python's plistlib (XML format only), as JSON with data as base64.
fn plistlib(path: &Path) -> Value {
    const PY: &str = "import base64, json, plistlib, sys\n\
                      with open(sys.argv[1], 'rb') as f:\n    \
                      p = plistlib.load(f, fmt=plistlib.FMT_XML)\n\
                      print(json.dumps(p, default=lambda b: base64.b64encode(b).decode()))\n";
    let out = run(Command::new("python3").args(["-c", PY]).arg(path));
    serde_json::from_str(out.expect_ok()).unwrap()
}

/// The payload keys every payload carries; returns its PayloadUUID.
fn check_payload(p: &Value, kind: &str, id: &str) -> String {
    assert_eq!(p["PayloadType"], kind, "{p:#}");
    assert_eq!(p["PayloadVersion"], 1, "{p:#}");
    assert_eq!(p["PayloadIdentifier"], id, "{p:#}");
    assert!(
        p["PayloadDisplayName"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let uuid = p["PayloadUUID"].as_str().unwrap().to_owned();
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{uuid}");
    assert_eq!(uuid, uuid.to_uppercase(), "{uuid}");
    assert_eq!(&uuid[14..15], "4", "not a version 4 UUID: {uuid}");
    uuid
}

/// openssl's SHA-1 fingerprint of a DER certificate file, as bytes.
fn sha1_fingerprint(a: &Appliance, der_file: &Path) -> Vec<u8> {
    let out = openssl_ok(
        a.dir(),
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            der_file.to_str().unwrap(),
            "-noout",
            "-fingerprint",
            "-sha1",
        ],
    );
    let hex = out.trim().rsplit('=').next().unwrap().replace(':', "");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Names in a directory that look like an export's temporary files.
fn temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn mobileconfig_and_bundle() {
    let a = appliance();
    let root = ca_der(&a, "root");
    let issuing = ca_der(&a, "issuing");
    let url = a.scep_url("devices");
    let shown = a.cli_json("alice", &["profile", "show", "devices", "--json"]);
    assert_eq!(shown["scep_url"], url.as_str());

    // The full profile: chain, SCEP payload with a challenge, a subject and an organisation.
    let file = a.path("devices.mobileconfig");
    a.cli_ok(
        "alice",
        &[
            "export",
            "mobileconfig",
            "--profile",
            "devices",
            "--challenge",
            SECRET,
            "--subject",
            "CN=$SERIALNUMBER,O=Fleet & Co",
            "--organization",
            ORGANIZATION,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("Castellan &lt;Tests&gt; &amp; \"Co\""),
        "{text}"
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600,
        "a file holding a challenge is private"
    );
    let p = plistlib(&file);
    let mut uuids = vec![check_payload(&p, "Configuration", "castellan.devices")];
    assert_eq!(p["PayloadOrganization"], ORGANIZATION);
    assert!(p["PayloadDescription"].as_str().unwrap().contains(&url));
    let content = p["PayloadContent"].as_array().unwrap();
    assert_eq!(content.len(), 3, "{p:#}");
    for (payload, kind, name, der) in [
        (&content[0], "com.apple.security.root", "root", &root),
        (&content[1], "com.apple.security.pkcs1", "issuing", &issuing),
    ] {
        uuids.push(check_payload(
            payload,
            kind,
            &format!("castellan.devices.ca.{name}"),
        ));
        assert_eq!(payload["PayloadContent"], b64(der));
        assert_eq!(payload["PayloadCertificateFileName"], format!("{name}.cer"));
    }
    let scep = &content[2];
    uuids.push(check_payload(
        scep,
        "com.apple.security.scep",
        "castellan.devices.scep",
    ));
    let c = &scep["PayloadContent"];
    assert_eq!(c["URL"], url.as_str());
    assert_eq!(c["Name"], "devices");
    assert_eq!(
        c["Subject"],
        json!([[["O", "Fleet & Co"]], [["CN", "$SERIALNUMBER"]]])
    );
    assert_eq!(c["Challenge"], SECRET);
    assert_eq!(c["Keysize"], 2048);
    assert_eq!(c["Key Type"], "RSA");
    assert_eq!(c["Key Usage"], 5);
    assert_eq!(c["Retries"], 3);
    assert_eq!(c["RetryDelay"], 10);
    // GetCACert returns the full chain: its top, the root, is pinned by SHA-1.
    assert_eq!(
        c["CAFingerprint"],
        b64(&sha1_fingerprint(&a, &a.path("root.der")))
    );
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 4, "PayloadUUIDs must differ");

    // Defaults: the challenge placeholder, CN=$SERIALNUMBER, sizes and usages from policy.
    let file = a.path("signers.mobileconfig");
    a.cli_ok(
        "alice",
        &[
            "export",
            "mobileconfig",
            "--profile",
            "signers",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    let p = plistlib(&file);
    assert!(p.get("PayloadOrganization").is_none());
    let c = &p["PayloadContent"][2]["PayloadContent"];
    assert_eq!(c["URL"], a.scep_url("signers").as_str());
    assert_eq!(c["Challenge"], "$SCEP_CHALLENGE");
    assert_eq!(c["Subject"], json!([[["CN", "$SERIALNUMBER"]]]));
    assert_eq!(c["Keysize"], 4096);
    assert_eq!(c["Key Usage"], 1);
    assert_eq!(c["Retries"], 30);
    assert_eq!(c["RetryDelay"], 120);
    assert!(
        c.get("CAFingerprint").is_none(),
        "GetCACert returns the issuing CA only: no pin"
    );

    // The bundle.
    let dir = a.path("bundle");
    a.cli_ok(
        "alice",
        &[
            "export",
            "bundle",
            "--profile",
            "devices",
            "-o",
            dir.to_str().unwrap(),
        ],
    );
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "README.txt",
            "chain.p7b",
            "issuing.cer",
            "root.cer",
            "scep-url.txt"
        ]
    );
    for (file, der, cn) in [
        ("root.cer", &root, "Export Root"),
        ("issuing.cer", &issuing, "Export Issuing"),
    ] {
        let path = dir.join(file);
        assert_eq!(&fs::read(&path).unwrap(), der);
        let subject = openssl_ok(
            a.dir(),
            &[
                "x509",
                "-inform",
                "DER",
                "-in",
                path.to_str().unwrap(),
                "-noout",
                "-subject",
            ],
        );
        assert!(subject.contains(cn), "{subject}");
    }
    let certs = openssl_ok(
        a.dir(),
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-print_certs",
            "-in",
            dir.join("chain.p7b").to_str().unwrap(),
        ],
    );
    assert_eq!(certs.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    assert!(certs.contains("Export Root") && certs.contains("Export Issuing"));
    assert_eq!(
        fs::read_to_string(dir.join("scep-url.txt")).unwrap(),
        format!("{url}\n")
    );
    let readme = fs::read_to_string(dir.join("README.txt")).unwrap();
    for needle in [
        url.as_str(),
        "root.cer",
        "issuing.cer",
        "client-auth (1.3.6.1.5.5.7.3.2)",
        "Digital signature, Key encipherment",
        "RSA 2048 to 4096 bits",
        "SHA-2",
        "1 year(s)",
        "8% (renewal is accepted 30 days before expiry)",
        "Challenge: static",
    ] {
        assert!(
            readme.contains(needle),
            "README lacks {needle:?}:\n{readme}"
        );
    }
    assert!(temporaries(a.dir()).is_empty());
}

#[test]
fn refusals_leave_nothing_behind() {
    let a = appliance();
    let export = |args: &[&str]| {
        let mut v = vec!["export"];
        v.extend_from_slice(args);
        a.cli("alice", &v)
    };
    let file = a.path("out.mobileconfig");
    let out = file.to_str().unwrap();
    let dir = a.path("out-bundle");
    let out_dir = dir.to_str().unwrap();

    // Unknown profile: not found (4), like the other commands.
    export(&["mobileconfig", "--profile", "nope", "-o", out])
        .expect_refused(4, &["no profile named \"nope\""]);
    export(&["bundle", "--profile", "nope", "-o", out_dir])
        .expect_refused(4, &["no profile named \"nope\""]);
    assert!(!file.exists() && !dir.exists());

    // A wrong static challenge, a subject attribute the profile refuses: invalid (2).
    export(&[
        "mobileconfig",
        "--profile",
        "devices",
        "--challenge",
        "not-the-secret",
        "-o",
        out,
    ])
    .expect_refused(2, &["not the static secret"]);
    export(&[
        "mobileconfig",
        "--profile",
        "signers",
        "--subject",
        "CN=x,O=y",
        "-o",
        out,
    ])
    .expect_refused(2, &["does not allow subject attribute O"]);
    assert!(!file.exists());

    // An existing file is kept unless --force.
    fs::write(&file, "keep").unwrap();
    export(&["mobileconfig", "--profile", "devices", "-o", out])
        .expect_refused(2, &["exists", "--force"]);
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep");
    export(&["mobileconfig", "--profile", "devices", "-o", out, "--force"]).expect_ok();
    assert_eq!(plistlib(&file)["PayloadType"], "Configuration");

    // A non-empty directory likewise; --force replaces the bundle's files and keeps others.
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("root.cer"), "old").unwrap();
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    export(&["bundle", "--profile", "devices", "-o", out_dir])
        .expect_refused(2, &["exists", "--force"]);
    assert_eq!(fs::read_to_string(dir.join("root.cer")).unwrap(), "old");
    export(&["bundle", "--profile", "devices", "-o", out_dir, "--force"]).expect_ok();
    assert_eq!(fs::read(dir.join("root.cer")).unwrap(), ca_der(&a, "root"));
    assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");

    assert!(
        temporaries(a.dir()).is_empty(),
        "{:?}",
        temporaries(a.dir())
    );
}
