//! SCEP end to end: castellan-edge in front of castellan-signer's signing socket, the RA key
//! in SoftHSM2, driven by micromdm's scepclient (legacy DES + SHA-1) and by the strict
//! client of the `scep` crate (AES-256 + SHA-256, and the malformed messages it can build).
//! Issued certificates are checked with openssl.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use der::{Encode, EncodePem};
use scep::client::{self, Device, RecipientChoice, Reply, RequestSpec};
use scep::envelope::ContentAlg;
use scep::envelope::Recipient;
use tests::{Appliance, HttpReply, InitOptions, openssl_ok, scepclient, url_encode, verify};
use x509_cert::Certificate;
use x509_cert::name::Name;

const ISSUING: &str = "issuing";
const STATIC_SECRET: &str = "static-secret-1";
/// The subject micromdm scepclient sends for `-cn NAME` (its default OU, O and C).
fn scepclient_subject(cn: &str) -> String {
    format!("CN={cn},OU=MDM,O=scep-client,C=US")
}

/// RFC 8894 §3.3.3: IssuerAndSubject ::= SEQUENCE { issuer Name, subject Name }, the
/// content of a CertPoll.
#[derive(Clone, Debug, der::Sequence)]
struct IssuerAndSubject {
    issuer: Name,
    subject: Name,
}

/// An appliance (quorum 2 of alice and bob) with an edge, a root and an RSA issuing CA
/// (scepclient encrypts to every certificate GetCACert returns, so it must be RSA).
fn appliance() -> Appliance {
    let a = Appliance::with_edge(2, &["alice", "bob"]);
    a.create_root_and_issuing(
        "CN=SCEP IT Root,O=Castellan Tests,C=US",
        ISSUING,
        "CN=SCEP IT Issuing,O=Castellan Tests,C=US",
    );
    a
}

/// `profile create NAME --ca issuing ARGS`, proposed by alice and approved by bob.
fn profile(a: &Appliance, name: &str, args: &[&str]) {
    let mut v = vec!["profile", "create", name, "--ca", ISSUING];
    v.extend_from_slice(args);
    a.propose_and_run(&v);
}

/// A one-time challenge for `profile`, optionally bound to a subject.
fn one_time(a: &Appliance, profile: &str, subject: Option<&str>) -> String {
    let mut v = vec!["challenge", "new", "--profile", profile, "--json"];
    if let Some(s) = subject {
        v.extend(["--subject", s]);
    }
    let c = a.cli_json("alice", &v);
    assert_eq!(c["profile"], profile, "{c:#}");
    c["challenge"].as_str().unwrap().to_owned()
}

/// A certificate's serial as openssl prints it.
fn serial_of(dir: &Path, cert: &Path) -> String {
    openssl_ok(
        dir,
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    )
    .trim()
    .to_owned()
}

fn write_pem(path: &Path, cert: &Certificate) {
    fs::write(path, cert.to_pem(der::pem::LineEnding::LF).unwrap()).unwrap();
}

/// The root and issuing CA certificates as PEM files, for openssl verify.
fn ca_pems(a: &Appliance) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        a.save_cert("root", "root.pem"),
        a.save_cert(ISSUING, "issuing.pem"),
    )
}

/// `cert` verifies under root/issuing with `openssl verify -x509_strict`.
fn assert_verifies(a: &Appliance, cert: &Path) {
    let root = a.path("root.pem");
    let issuing = a.path("issuing.pem");
    if !root.exists() {
        ca_pems(a);
    }
    let (ok, text) = verify(a.dir(), &root, Some(&issuing), cert);
    assert!(ok, "{} does not verify: {text}", cert.display());
}

/// The strict client against one profile: the certificates from GetCACert, the envelope's
/// recipients chosen from them by one client convention, then PKIOperations over POST (or GET).
struct Strict<'a> {
    a: &'a Appliance,
    profile: String,
    /// What the envelope is encrypted to.
    to: Vec<Recipient>,
    /// The certificate that signs CertReps.
    ra: Certificate,
}

impl<'a> Strict<'a> {
    /// GetCACert (the default split layout: encryption RA, signing RA, issuing CA in a
    /// degenerate PKCS#7); encrypt as NDES-convention clients do.
    fn new(a: &'a Appliance, profile: &str) -> Strict<'a> {
        let s = Strict::choosing(a, profile, RecipientChoice::Ndes);
        let r = a.scep_get(profile, "operation=GetCACert");
        assert_eq!(r.content_type, "application/x-x509-ca-ra-cert");
        s
    }

    /// GetCACert, then recipients as `choice` picks them.
    fn choosing(a: &'a Appliance, profile: &str, choice: RecipientChoice) -> Strict<'a> {
        let r = a.scep_get(profile, "operation=GetCACert");
        assert_eq!(r.status, 200, "GetCACert: {}", r.text());
        let bag = client::ca_certs(&r.body).unwrap();
        let names: Vec<String> = bag
            .iter()
            .map(|c| c.tbs_certificate().subject().to_string())
            .collect();
        assert!(
            names.iter().any(|n| n.contains("CN=SCEP IT Issuing")),
            "{names:?}"
        );
        let to = client::recipients(&bag, choice)
            .unwrap_or_else(|e| panic!("{choice:?} finds no recipient in {names:?}: {e}"));
        let ra = client::reply_signer(&bag)
            .unwrap_or_else(|| panic!("no CertRep signer in GetCACert: {names:?}"))
            .clone();
        Strict {
            a,
            profile: profile.to_owned(),
            to,
            ra,
        }
    }

    fn message(&self, device: &Device, inner: &[u8], spec: &RequestSpec) -> client::Request {
        client::request(device, inner, &self.to, spec).unwrap()
    }

    /// POST a message; the HTTP answer as is.
    fn post_raw(&self, der: &[u8]) -> HttpReply {
        self.a.scep_post(&self.profile, der)
    }

    /// Send over POST (or GET with `message=`); the answer must be a CertRep (HTTP 200,
    /// application/x-pki-message) signed by the RA that echoes the transactionID and nonce.
    fn send(&self, device: &Device, inner: &[u8], spec: &RequestSpec, get: bool) -> Reply {
        let req = self.message(device, inner, spec);
        let r = if get {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&req.der);
            self.a.scep_get(
                &self.profile,
                &format!("operation=PKIOperation&message={}", url_encode(&b64)),
            )
        } else {
            self.post_raw(&req.der)
        };
        assert_eq!(r.status, 200, "PKIOperation: {}", r.text());
        assert_eq!(r.content_type, "application/x-pki-message");
        let reply = client::read_reply(&r.body, &self.ra, device).unwrap();
        assert_eq!(reply.transaction_id, req.transaction_id);
        assert_eq!(reply.recipient_nonce, req.sender_nonce);
        reply
    }

    /// A PKCSReq over POST.
    fn enrol(&self, device: &Device, subject: &str, challenge: Option<&str>, tx: &str) -> Reply {
        let csr = device.csr(subject, challenge).unwrap();
        self.send(device, &csr, &RequestSpec::pkcs_req(tx), false)
    }

    /// A CertPoll (messageType 20) for transaction `tx`, signed by `device`.
    fn poll(&self, device: &Device, subject: &str, tx: &str) -> Reply {
        let ias = IssuerAndSubject {
            issuer: Name::from_str("CN=SCEP IT Issuing,O=Castellan Tests,C=US").unwrap(),
            subject: Name::from_str(subject).unwrap(),
        }
        .to_der()
        .unwrap();
        let mut spec = RequestSpec::pkcs_req(tx);
        spec.message_type = "20".into();
        self.send(device, &ias, &spec, false)
    }
}

/// A SUCCESS with one certificate for `device`'s key; returns the certificate.
fn issued(reply: &Reply, device: &Device) -> Certificate {
    assert_eq!(reply.status, "0", "{reply:?}");
    assert_eq!(reply.fail_info, None, "{reply:?}");
    let cert = reply.certs.first().unwrap_or_else(|| panic!("{reply:?}"));
    assert_eq!(
        cert.tbs_certificate().subject_public_key_info(),
        device.cert.tbs_certificate().subject_public_key_info(),
        "the certificate is not for the device's key"
    );
    cert.clone()
}

/// A FAILURE with `fail_info` ("0" badAlg, "1" badMessageCheck, "2" badRequest, "4"
/// badCertId) and no certificate; returns failInfoText.
fn failed(reply: &Reply, fail_info: &str) -> String {
    assert_eq!(reply.status, "2", "{reply:?}");
    assert_eq!(reply.fail_info.as_deref(), Some(fail_info), "{reply:?}");
    assert!(reply.certs.is_empty(), "{reply:?}");
    reply.fail_info_text.clone().unwrap_or_default()
}

fn serial_hex(cert: &Certificate) -> String {
    cert.tbs_certificate()
        .serial_number()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn device(cn: &str) -> Device {
    Device::generate(2048, &format!("CN={cn}")).unwrap()
}

// ------------------------------------------------------------------ scepclient

/// scepclient in `dir`: the certificate it wrote, after checking it printed success.
fn scepclient_ok(dir: &Path, url: &str, challenge: Option<&str>, cn: &str) -> String {
    let out = scepclient(dir, url, challenge, cn);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(out.ok(), "{out}");
    assert!(
        !text.contains("failInfo") && dir.join("cert.pem").exists(),
        "{out}"
    );
    serial_of(dir, &dir.join("cert.pem"))
}

/// scepclient in `dir` must be refused with `fail_info` (e.g. "badRequest (2)") and
/// write no certificate.
fn scepclient_refused(dir: &Path, url: &str, challenge: Option<&str>, cn: &str, fail_info: &str) {
    let out = scepclient(dir, url, challenge, cn);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains(&format!("failInfo: {fail_info}")),
        "expected failInfo: {fail_info}\n{out}"
    );
    assert!(
        !dir.join("cert.pem").exists(),
        "a certificate was written\n{out}"
    );
}

/// `--legacy-algorithms` (scepclient sends single DES and SHA-1), and certificates that are
/// inside their renewal window from the start, so scepclient can renew at once.
const LEGACY: [&str; 5] = [
    "--legacy-algorithms",
    "--validity",
    "20d",
    "--renewal-window",
    "30d",
];

fn legacy_profile(a: &Appliance, name: &str, challenge: &[&str]) {
    let mut v = challenge.to_vec();
    v.extend_from_slice(&LEGACY);
    profile(a, name, &v);
}

/// Enrol with scepclient in `a.path(cn)`, check the certificate (openssl verify, subject),
/// renew in the same directory (same key, no challenge) and check the new certificate.
fn scepclient_enrol_and_renew(a: &Appliance, profile: &str, challenge: &str, cn: &str) {
    let dir = a.path(cn);
    let url = a.scep_url(profile);
    let first = scepclient_ok(&dir, &url, Some(challenge), cn);
    let cert = dir.join("cert.pem");
    assert_verifies(a, &cert);
    let subject = openssl_ok(
        &dir,
        &[
            "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", "cert.pem",
        ],
    );
    assert_eq!(
        subject.trim(),
        format!("subject=CN={cn},OU=MDM,O=scep-client,C=US"),
        "{profile}"
    );
    let renewed = scepclient_ok(&dir, &url, None, cn);
    assert_ne!(
        first, renewed,
        "{profile}: renewal must issue a new certificate"
    );
    assert_verifies(a, &cert);
}

#[test]
fn scepclient_enrols_and_renews_with_static_and_one_time_challenges() {
    let a = appliance();
    legacy_profile(
        &a,
        "legacy-static",
        &["--challenge", "static", "--secret", STATIC_SECRET],
    );
    legacy_profile(&a, "legacy-once", &["--challenge", "one-time"]);
    ca_pems(&a);

    scepclient_enrol_and_renew(&a, "legacy-static", STATIC_SECRET, "dev1");
    let once = one_time(&a, "legacy-once", None);
    scepclient_enrol_and_renew(&a, "legacy-once", &once, "dev2");
    // The one-time challenge is spent: a new device (new key) with it is refused.
    scepclient_refused(
        &a.path("dev2-again"),
        &a.scep_url("legacy-once"),
        Some(&once),
        "dev2",
        "badRequest (2)",
    );
}

/// Challenges bound to the subject scepclient sends, written as the RFC 4514 string an
/// operator would type. scepclient (Go) encodes the attributes as PrintableString; the
/// binding is to the name, not to one ASN.1 string type.
#[test]
fn scepclient_enrols_and_renews_with_subject_bound_one_time_and_signed_challenges() {
    let a = appliance();
    legacy_profile(&a, "legacy-once", &["--challenge", "one-time"]);
    let (mdm_key, mdm_pub) = mdm_keys(&a, "mdm");
    legacy_profile(
        &a,
        "legacy-signed",
        &[
            "--challenge",
            "signed",
            "--mdm-key",
            mdm_pub.to_str().unwrap(),
        ],
    );
    ca_pems(&a);

    let once = one_time(&a, "legacy-once", Some(&scepclient_subject("dev4")));
    scepclient_enrol_and_renew(&a, "legacy-once", &once, "dev4");
    let signed = sign_challenge(&a, &mdm_key, "legacy-signed", &scepclient_subject("dev5"));
    scepclient_enrol_and_renew(&a, "legacy-signed", &signed, "dev5");
    // Both are spent.
    scepclient_refused(
        &a.path("dev4-again"),
        &a.scep_url("legacy-once"),
        Some(&once),
        "dev4",
        "badRequest (2)",
    );
    scepclient_refused(
        &a.path("dev5-again"),
        &a.scep_url("legacy-signed"),
        Some(&signed),
        "dev5",
        "badRequest (2)",
    );
}

#[test]
fn scepclient_is_refused_bad_alg_on_a_modern_profile_and_bad_request_with_a_wrong_challenge() {
    let a = appliance();
    profile(
        &a,
        "modern",
        &["--challenge", "static", "--secret", STATIC_SECRET],
    );
    profile(
        &a,
        "legacy",
        &[
            "--challenge",
            "static",
            "--secret",
            STATIC_SECRET,
            "--legacy-algorithms",
        ],
    );
    let caps = a.scep_get("modern", "operation=GetCACaps");
    assert_eq!(caps.status, 200, "{}", caps.text());
    let caps = caps.text();
    assert!(caps.lines().any(|l| l == "AES"), "{caps}");
    assert!(caps.lines().any(|l| l == "SHA-256"), "{caps}");
    assert!(!caps.lines().any(|l| l == "DES3" || l == "SHA-1"), "{caps}");
    let legacy_caps = a.scep_get("legacy", "operation=GetCACaps").text();
    assert!(legacy_caps.lines().any(|l| l == "DES3"), "{legacy_caps}");

    scepclient_refused(
        &a.path("modern-dev"),
        &a.scep_url("modern"),
        Some(STATIC_SECRET),
        "modern-dev",
        "badAlg (0)",
    );
    scepclient_refused(
        &a.path("wrong-secret"),
        &a.scep_url("legacy"),
        Some("not-the-secret"),
        "wrong-secret",
        "badRequest (2)",
    );
    // The same client with the right secret is served: the refusals were about them.
    scepclient_ok(
        &a.path("right-secret"),
        &a.scep_url("legacy"),
        Some(STATIC_SECRET),
        "right-secret",
    );
}

// ------------------------------------------------------------------ strict client

#[test]
fn strict_client_enrols_over_post_and_get_and_retries_are_idempotent() {
    let a = appliance();
    profile(
        &a,
        "modern",
        &["--challenge", "static", "--secret", STATIC_SECRET],
    );
    let s = Strict::new(&a, "modern");

    // POST.
    let d1 = device("strict-post");
    let r1 = s.enrol(&d1, "CN=strict-post", Some(STATIC_SECRET), "tx-post");
    let c1 = issued(&r1, &d1);
    assert_eq!(
        r1.alg,
        Some(ContentAlg::Aes256),
        "the reply uses the request's cipher"
    );
    assert_eq!(c1.tbs_certificate().subject().to_string(), "CN=strict-post");
    let pem = a.path("strict-post.pem");
    write_pem(&pem, &c1);
    assert_verifies(&a, &pem);

    // GET with a base64 message.
    let d2 = device("strict-get");
    let csr = d2.csr("CN=strict-get", Some(STATIC_SECRET)).unwrap();
    let r2 = s.send(&d2, &csr, &RequestSpec::pkcs_req("tx-get"), true);
    let c2 = issued(&r2, &d2);
    let pem = a.path("strict-get.pem");
    write_pem(&pem, &c2);
    assert_verifies(&a, &pem);
    assert_ne!(serial_hex(&c1), serial_hex(&c2));

    // A retry of a transaction (same key, same transactionID, fresh nonce) gets the same
    // certificate, not a second one.
    let again = s.enrol(&d1, "CN=strict-post", Some(STATIC_SECRET), "tx-post");
    assert_eq!(serial_hex(&issued(&again, &d1)), serial_hex(&c1));
    assert_eq!(again.certs[0], c1);

    // The same transactionID with another key is refused.
    let other = device("strict-post");
    let r = s.enrol(&other, "CN=strict-post", Some(STATIC_SECRET), "tx-post");
    let text = failed(&r, "2");
    assert!(text.contains("another key"), "{text}");

    // GetCert (messageType 21) finds the issued certificate by issuer and serial.
    let ias = cms::cert::IssuerAndSerialNumber {
        issuer: c1.tbs_certificate().issuer().clone(),
        serial_number: c1.tbs_certificate().serial_number().clone(),
    }
    .to_der()
    .unwrap();
    let mut spec = RequestSpec::pkcs_req("tx-getcert");
    spec.message_type = "21".into();
    let got = s.send(&d1, &ias, &spec, false);
    assert_eq!(issued(&got, &d1), c1);
}

/// An MDM key pair made with openssl: (PKCS#8 private key, public key) paths.
fn mdm_keys(a: &Appliance, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = a.path(&format!("{name}.key"));
    let public = a.path(&format!("{name}.pub"));
    openssl_ok(
        a.dir(),
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            key.to_str().unwrap(),
        ],
    );
    openssl_ok(
        a.dir(),
        &[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ],
    );
    (key, public)
}

/// `castellan challenge sign` (offline, with the MDM key).
fn sign_challenge(a: &Appliance, key: &Path, profile: &str, subject: &str) -> String {
    a.cli_ok(
        "alice",
        &[
            "challenge",
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--profile",
            profile,
            "--subject",
            subject,
            "--ttl",
            "1h",
        ],
    )
    .trim()
    .to_owned()
}

#[test]
fn strict_client_signed_challenges_bind_the_subject_and_are_single_use() {
    let a = appliance();
    let (key, public) = mdm_keys(&a, "mdm");
    let (rogue, _) = mdm_keys(&a, "rogue");
    profile(
        &a,
        "signed",
        &[
            "--challenge",
            "signed",
            "--mdm-key",
            public.to_str().unwrap(),
        ],
    );
    profile(
        &a,
        "other",
        &[
            "--challenge",
            "signed",
            "--mdm-key",
            public.to_str().unwrap(),
        ],
    );
    let s = Strict::new(&a, "signed");

    let ok = sign_challenge(&a, &key, "signed", "CN=signed-1,O=Castellan Tests");
    // Another subject than the one signed for.
    let d0 = device("signed-0");
    let r = s.enrol(&d0, "CN=signed-0,O=Castellan Tests", Some(&ok), "tx-s0");
    let text = failed(&r, "2");
    assert!(text.contains("subject"), "{text}");
    // Signed by a key the profile does not know.
    let forged = sign_challenge(&a, &rogue, "signed", "CN=signed-1,O=Castellan Tests");
    let d1 = device("signed-1");
    let r = s.enrol(&d1, "CN=signed-1,O=Castellan Tests", Some(&forged), "tx-s1");
    failed(&r, "2");
    // For another profile.
    let elsewhere = sign_challenge(&a, &key, "other", "CN=signed-1,O=Castellan Tests");
    let r = s.enrol(
        &d1,
        "CN=signed-1,O=Castellan Tests",
        Some(&elsewhere),
        "tx-s1",
    );
    failed(&r, "2");
    // The right one: issued, with the bound subject.
    let r = s.enrol(&d1, "CN=signed-1,O=Castellan Tests", Some(&ok), "tx-s1");
    let cert = issued(&r, &d1);
    assert_eq!(
        cert.tbs_certificate().subject().to_string(),
        "CN=signed-1,O=Castellan Tests"
    );
    let pem = a.path("signed-1.pem");
    write_pem(&pem, &cert);
    assert_verifies(&a, &pem);
    // Used once: another device with the same subject and challenge is refused.
    let d2 = device("signed-1");
    let r = s.enrol(&d2, "CN=signed-1,O=Castellan Tests", Some(&ok), "tx-s2");
    let text = failed(&r, "2");
    assert!(text.contains("already used"), "{text}");
}

#[test]
fn manual_approval_is_pending_until_approved_and_rejection_fails() {
    let a = appliance();
    profile(
        &a,
        "manual",
        &[
            "--challenge",
            "static",
            "--secret",
            STATIC_SECRET,
            "--approval",
            "manual",
        ],
    );
    let s = Strict::new(&a, "manual");

    let d = device("manual-1");
    let r = s.enrol(&d, "CN=manual-1", Some(STATIC_SECRET), "tx-manual-1");
    assert_eq!(r.status, "3", "PENDING expected: {r:?}");
    assert!(r.certs.is_empty());
    let d2 = device("manual-2");
    let r2 = s.enrol(&d2, "CN=manual-2", Some(STATIC_SECRET), "tx-manual-2");
    assert_eq!(r2.status, "3", "PENDING expected: {r2:?}");

    let list = a.cli_json("alice", &["request", "list", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:#?}");
    let id_of = |tx: &str| {
        let e = list
            .iter()
            .find(|e| e["transaction_id"] == tx)
            .unwrap_or_else(|| panic!("{tx} not in {list:#?}"));
        assert_eq!(e["profile"], "manual");
        assert_eq!(e["renewal"], false);
        e["id"].as_str().unwrap().to_owned()
    };
    let id1 = id_of("tx-manual-1");
    let id2 = id_of("tx-manual-2");
    assert!(
        list.iter()
            .any(|e| e["subject"].as_str().unwrap().contains("CN=manual-1")),
        "{list:#?}"
    );

    // Still pending: a poll and a retry of the PKCSReq both say so.
    assert_eq!(s.poll(&d, "CN=manual-1", "tx-manual-1").status, "3");
    assert_eq!(
        s.enrol(&d, "CN=manual-1", Some(STATIC_SECRET), "tx-manual-1")
            .status,
        "3"
    );
    // Another key cannot poll someone else's transaction.
    let stranger = device("manual-1");
    let r = s.poll(&stranger, "CN=manual-1", "tx-manual-1");
    failed(&r, "4");

    // Approve: the poll now gets the certificate.
    let out = a.cli_ok("bob", &["request", "approve", &id1]);
    assert!(out.contains("issued"), "{out}");
    let polled = s.poll(&d, "CN=manual-1", "tx-manual-1");
    let cert = issued(&polled, &d);
    let pem = a.path("manual-1.pem");
    write_pem(&pem, &cert);
    assert_verifies(&a, &pem);
    // And again: the same certificate.
    assert_eq!(issued(&s.poll(&d, "CN=manual-1", "tx-manual-1"), &d), cert);

    // Reject: the poll fails, the request is gone from the list.
    a.cli_ok(
        "bob",
        &["request", "reject", &id2, "--reason", "unknown device"],
    );
    let r = s.poll(&d2, "CN=manual-2", "tx-manual-2");
    let text = failed(&r, "2");
    assert!(text.contains("unknown device"), "{text}");
    let list = a.cli_json("alice", &["request", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 0, "{list:#}");
    // Approving the rejected request is refused.
    assert!(!a.cli("bob", &["request", "approve", &id2]).ok());
}

/// The PKIMessage `der` with one byte of its encapsulated content (the encrypted envelope)
/// flipped, re-encoded: the signature over the signed attributes still verifies, the
/// messageDigest attribute no longer matches the content.
fn tamper_content(der: &[u8]) -> Vec<u8> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    use der::asn1::OctetString;
    use der::{Any, Decode};
    let mut ci = ContentInfo::from_der(der).unwrap();
    let mut sd: SignedData = ci.content.decode_as().unwrap();
    let content: OctetString = sd
        .encap_content_info
        .econtent
        .as_ref()
        .unwrap()
        .decode_as()
        .unwrap();
    let mut bytes = content.into_bytes().into_vec();
    let n = bytes.len();
    bytes[n - 5] ^= 0x01; // in the last block of the encrypted content
    sd.encap_content_info.econtent =
        Some(Any::encode_from(&OctetString::new(bytes).unwrap()).unwrap());
    ci.content = Any::encode_from(&sd).unwrap();
    let out = ci.to_der().unwrap();
    assert_eq!(
        out.len(),
        der.len(),
        "the re-encoding changed the message size"
    );
    out
}

/// A CSR for `device` that asks for CA:TRUE in an extensionRequest.
fn csr_asking_for_ca(device: &Device, subject: &str, challenge: &str) -> Vec<u8> {
    use x509_cert::builder::{Builder, RequestBuilder};
    use x509_cert::ext::pkix::BasicConstraints;
    use x509_cert::ext::pkix::name::DirectoryString;
    use x509_cert::request::attributes::ChallengePassword;
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(device.key.clone());
    let mut b = RequestBuilder::new(Name::from_str(subject).unwrap()).unwrap();
    b.add_extension(&BasicConstraints {
        ca: true,
        path_len_constraint: None,
    })
    .unwrap();
    b.add_attribute(&ChallengePassword(DirectoryString::Utf8String(
        challenge.into(),
    )))
    .unwrap();
    b.build::<_, rsa::pkcs1v15::Signature>(&signer)
        .unwrap()
        .to_der()
        .unwrap()
}

#[test]
fn malformed_and_disallowed_requests_are_refused_and_issue_nothing() {
    let a = appliance();
    profile(
        &a,
        "modern",
        &["--challenge", "static", "--secret", STATIC_SECRET],
    );
    profile(
        &a,
        "legacy",
        &[
            "--challenge",
            "static",
            "--secret",
            STATIC_SECRET,
            "--legacy-algorithms",
        ],
    );
    let s = Strict::new(&a, "modern");
    let d = device("bad-inputs");
    let csr = d.csr("CN=bad-inputs", Some(STATIC_SECRET)).unwrap();
    let spec = |tx: &str, f: &dyn Fn(&mut RequestSpec)| {
        let mut sp = RequestSpec::pkcs_req(tx);
        f(&mut sp);
        sp
    };

    // Before a CertRep can be addressed: HTTP 400 with a reason.
    let cases: [(&str, RequestSpec, &str); 3] = [
        (
            "unknown messageType",
            spec("tx-99", &|s| s.message_type = "99".into()),
            "messagetype",
        ),
        (
            "empty digestAlgorithms",
            spec("tx-nodigest", &|s| s.digest_algorithms_empty = true),
            "digestalgorithms",
        ),
        // The client's `tamper_message_digest` changes the envelope after signing.
        (
            "messageDigest mismatch (client knob)",
            spec("tx-tamper", &|s| s.tamper_message_digest = true),
            "messagedigest",
        ),
    ];
    // A bad signature: the last byte of the message is the end of the SignerInfo's signature.
    {
        let mut der = s.message(&d, &csr, &spec("tx-badsig", &|_| {})).der;
        let n = der.len();
        der[n - 1] ^= 0x01;
        let r = s.post_raw(&der);
        assert_eq!(r.status, 400, "bad signature: {}", r.text());
        assert!(
            r.text().to_lowercase().contains("signature"),
            "bad signature: {:?}",
            r.text()
        );
    }
    for (what, sp, reason) in &cases {
        let r = s.post_raw(&s.message(&d, &csr, sp).der);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(
            r.text().to_lowercase().contains(reason),
            "{what}: reason {:?} does not mention {reason}",
            r.text()
        );
    }
    // A real messageDigest mismatch: the content changed, the signed attributes (and
    // their signature) did not.
    let tampered = tamper_content(&s.message(&d, &csr, &RequestSpec::pkcs_req("tx-md")).der);
    let r = s.post_raw(&tampered);
    assert_eq!(r.status, 400, "messageDigest: {}", r.text());
    assert!(
        r.text().contains("messageDigest"),
        "reason {:?} does not mention messageDigest",
        r.text()
    );

    let good = s.message(&d, &csr, &RequestSpec::pkcs_req("tx-trunc")).der;
    for (what, body) in [
        ("garbage", b"this is not a PKIMessage".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ] {
        let r = s.post_raw(&body);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(!r.text().trim().is_empty(), "{what}: no reason given");
    }

    // After: signed FAILUREs with failInfo.
    let des = s.send(
        &d,
        &csr,
        &spec("tx-des", &|s| s.alg = ContentAlg::Des),
        false,
    );
    failed(&des, "0");
    let des3 = s.send(
        &d,
        &csr,
        &spec("tx-3des", &|s| s.alg = ContentAlg::Des3),
        false,
    );
    failed(&des3, "0");
    // RC2 is refused even where DES is allowed.
    let legacy = Strict::new(&a, "legacy");
    let rc2_spec = spec("tx-rc2", &|s| {
        s.alg = ContentAlg::Des;
        s.alg_oid = Some(scep::oids::RC2_CBC);
    });
    let rc2 = legacy.send(&d, &csr, &rc2_spec, false);
    let text = failed(&rc2, "0");
    assert!(text.contains("RC2"), "{text}");
    let dup = s.send(
        &d,
        &csr,
        &spec("tx-dup", &|s| s.duplicate_recipients = 1),
        false,
    );
    assert_eq!(dup.status, "2", "{dup:?}");
    assert!(dup.certs.is_empty());
    assert!(
        dup.fail_info_text
            .as_deref()
            .unwrap_or_default()
            .contains("more than once"),
        "{dup:?}"
    );

    let ca_csr = csr_asking_for_ca(&d, "CN=bad-inputs", STATIC_SECRET);
    let r = s.send(&d, &ca_csr, &RequestSpec::pkcs_req("tx-ca"), false);
    failed(&r, "2");

    let no_challenge = d.csr("CN=bad-inputs", None).unwrap();
    let r = s.send(&d, &no_challenge, &RequestSpec::pkcs_req("tx-none"), false);
    let text = failed(&r, "2");
    assert!(text.contains("challengePassword"), "{text}");

    let wrong = d.csr("CN=bad-inputs", Some("wrong-secret")).unwrap();
    let r = s.send(&d, &wrong, &RequestSpec::pkcs_req("tx-wrong"), false);
    failed(&r, "2");

    // The CSR's key must be the signer's.
    let other = device("bad-inputs");
    let r = s.send(&other, &csr, &RequestSpec::pkcs_req("tx-otherkey"), false);
    let text = failed(&r, "2");
    assert!(text.contains("key"), "{text}");

    // Nothing was recorded for the refused transactions: the same transaction, now well
    // formed, is evaluated afresh and issued.
    for tx in ["tx-des", "tx-dup", "tx-ca", "tx-none", "tx-wrong"] {
        let r = s.enrol(&d, "CN=bad-inputs", Some(STATIC_SECRET), tx);
        issued(&r, &d);
    }
}

/// A well-formed request from a device with an RSA-1024 key (below the profile's 2048-bit
/// minimum) is a policy refusal: a signed CertRep FAILURE that says the key is too small,
/// not an HTTP 400 claiming the signature is bad.
#[test]
fn an_rsa_1024_device_gets_a_failure_that_says_the_key_is_too_small() {
    let a = appliance();
    profile(
        &a,
        "modern",
        &["--challenge", "static", "--secret", STATIC_SECRET],
    );
    let s = Strict::new(&a, "modern");
    let small = Device::generate(1024, "CN=small-key").unwrap();
    let csr = small.csr("CN=small-key", Some(STATIC_SECRET)).unwrap();
    let req = s.message(&small, &csr, &RequestSpec::pkcs_req("tx-1024"));
    let r = s.post_raw(&req.der);
    assert_eq!(
        r.status,
        200,
        "expected a CertRep FAILURE, got HTTP {}: {}",
        r.status,
        r.text()
    );
    let reply = client::read_reply(&r.body, &s.ra, &small).unwrap();
    assert_eq!(reply.status, "2", "{reply:?}");
    assert!(reply.certs.is_empty());
    assert!(
        matches!(reply.fail_info.as_deref(), Some("0" | "2")),
        "badAlg or badRequest: {reply:?}"
    );
    let text = reply.fail_info_text.unwrap_or_default();
    assert!(
        text.contains("1024") || text.contains("bits"),
        "the reason must name the key size: {text:?}"
    );
}

#[test]
fn one_time_challenge_raced_by_eight_devices_issues_exactly_once() {
    let a = appliance();
    profile(&a, "once", &["--challenge", "one-time"]);
    let challenge = one_time(&a, "once", None);
    let s = Strict::new(&a, "once");
    let devices: Vec<Device> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|i| sc.spawn(move || device(&format!("racer-{i}"))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let messages: Vec<Vec<u8>> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let csr = d.csr(&format!("CN=racer-{i}"), Some(&challenge)).unwrap();
            s.message(d, &csr, &RequestSpec::pkcs_req(&format!("tx-race-{i}")))
                .der
        })
        .collect();
    let barrier = std::sync::Barrier::new(messages.len());
    let answers: Vec<HttpReply> = std::thread::scope(|sc| {
        let hs: Vec<_> = messages
            .iter()
            .map(|m| {
                let (s, barrier) = (&s, &barrier);
                sc.spawn(move || {
                    barrier.wait();
                    s.post_raw(m)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut wins = 0;
    for (r, d) in answers.iter().zip(&devices) {
        assert_eq!(r.status, 200, "{}", r.text());
        let reply = client::read_reply(&r.body, &s.ra, d).unwrap();
        if reply.status == "0" {
            issued(&reply, d);
            wins += 1;
        } else {
            let text = failed(&reply, "2");
            assert!(text.contains("already used"), "{text}");
        }
    }
    assert_eq!(wins, 1, "exactly one device may use a one-time challenge");
}

#[test]
fn a_signing_socket_for_another_uid_gives_the_edge_no_service() {
    let mut a = Appliance::init_with(
        2,
        &["alice", "bob"],
        &InitOptions {
            socket: true,
            socket_uid: Some(12345),
        },
    );
    a.start();
    assert!(
        a.log().contains("(peer uid 12345)"),
        "the signer must say which uid it serves:\n{}",
        a.log()
    );
    a.start_edge();
    let r = a.scep_get("any", "operation=GetCACaps");
    assert_eq!(r.status, 503, "{}", r.text());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !a.log().contains("refused a peer with the wrong uid") {
        assert!(
            std::time::Instant::now() < deadline,
            "the signer did not log the refusal:\n{}",
            a.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

// ------------------------------------------------------- RA layouts and client conventions

/// The key usage bits of a certificate, as (digitalSignature, keyEncipherment).
fn ds_ke(c: &Certificate) -> (bool, bool) {
    let (_, ku) = c
        .tbs_certificate()
        .get_extension::<x509_cert::ext::pkix::KeyUsage>()
        .unwrap()
        .unwrap();
    (ku.digital_signature(), ku.key_encipherment())
}

fn subjects(certs: &[Certificate]) -> Vec<String> {
    certs
        .iter()
        .map(|c| c.tbs_certificate().subject().to_string())
        .collect()
}

/// Each recipient-selection convention of real clients against each RA layout: it enrols
/// where the layout serves it (the certificate verifies), and where it does not, the
/// signed FAILURE says badCertId and which certificate to encrypt to.
#[test]
fn every_recipient_convention_enrols_where_the_ra_layout_serves_it() {
    let a = appliance();
    let challenge = ["--challenge", "static", "--secret", STATIC_SECRET];
    for layout in ["split", "combined", "ca"] {
        let mut args = challenge.to_vec();
        args.extend(["--ra-layout", layout]);
        profile(&a, &format!("ra-{layout}"), &args);
    }
    // The default layout is split.
    profile(&a, "ra-default", &challenge);

    // GetCACert: what each layout publishes, in order.
    let bag = |p: &str| {
        let r = a.scep_get(p, "operation=GetCACert");
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        (r.content_type.clone(), client::ca_certs(&r.body).unwrap())
    };
    let (ct, split) = bag("ra-split");
    assert_eq!(ct, "application/x-x509-ca-ra-cert");
    assert_eq!(split.len(), 3, "{:?}", subjects(&split));
    assert_eq!(ds_ke(&split[0]), (false, true), "encryption RA first");
    assert_eq!(ds_ke(&split[1]), (true, false), "then the signing RA");
    assert!(client::is_ca(&split[2]), "then the issuing CA");
    assert_eq!(bag("ra-default").1, split, "split is the default layout");
    let (_, combined) = bag("ra-combined");
    assert_eq!(combined.len(), 2);
    assert_eq!(ds_ke(&combined[0]), (true, true));
    let (ct, ca) = bag("ra-ca");
    assert_eq!(
        ct, "application/x-x509-ca-cert",
        "no RA: the single CA certificate"
    );
    assert_eq!(
        subjects(&ca),
        vec!["CN=SCEP IT Issuing,O=Castellan Tests,C=US"]
    );
    assert!(client::recipients(&ca, RecipientChoice::FirstNonCa).is_err());

    use RecipientChoice::*;
    let matrix = [
        ("ra-split", Ndes, true),
        ("ra-split", FirstNonCa, true),
        ("ra-split", All, true),
        ("ra-split", Ca, false),
        ("ra-combined", Ndes, false), // no keyEncipherment-only certificate: NDES clients pick the CA
        ("ra-combined", FirstNonCa, true),
        ("ra-combined", All, true),
        ("ra-combined", Ca, false),
        ("ra-ca", Ndes, true),
        ("ra-ca", All, true),
        ("ra-ca", Ca, true),
    ];
    for (i, (p, choice, enrols)) in matrix.into_iter().enumerate() {
        let s = Strict::choosing(&a, p, choice);
        let cn = format!("conv-{i}");
        let d = device(&cn);
        let r = s.enrol(
            &d,
            &format!("CN={cn}"),
            Some(STATIC_SECRET),
            &format!("tx-{i}"),
        );
        if enrols {
            let c = issued(&r, &d);
            let pem = a.path(&format!("{cn}.pem"));
            write_pem(&pem, &c);
            assert_verifies(&a, &pem);
        } else {
            let text = failed(&r, "4");
            assert!(
                text.contains("encrypted to the CA certificate") && text.contains(p),
                "{p} {choice:?}: {text}"
            );
        }
    }
}

/// A Windows-style client against an NDES-style profile: the RA certificates carry the
/// Certificate Request Agent EKU, the envelope uses RSAES-OAEP (SHA-1 defaults) and
/// AES-128; and GetCACert with the full chain lists the root last.
#[test]
fn windows_style_requests_enrol_on_an_ndes_profile_with_the_full_chain() {
    let a = appliance();
    profile(
        &a,
        "ndes",
        &[
            "--challenge",
            "static",
            "--secret",
            STATIC_SECRET,
            "--ra-windows-eku",
            "--ca-chain",
            "full",
        ],
    );
    let r = a.scep_get("ndes", "operation=GetCACert");
    let certs = client::ca_certs(&r.body).unwrap();
    assert_eq!(
        subjects(&certs)[2..],
        [
            "CN=SCEP IT Issuing,O=Castellan Tests,C=US",
            "CN=SCEP IT Root,O=Castellan Tests,C=US"
        ]
    );
    for ra in &certs[..2] {
        let (_, eku) = ra
            .tbs_certificate()
            .get_extension::<x509_cert::ext::pkix::ExtendedKeyUsage>()
            .unwrap()
            .expect("an EKU extension on the RA certificate");
        assert_eq!(eku.0, vec!["1.3.6.1.4.1.311.20.2.1".parse().unwrap()]);
    }
    let s = Strict::new(&a, "ndes");
    for (i, transport) in [
        scep::envelope::KeyTransport::OaepSha1,
        scep::envelope::KeyTransport::Pkcs1,
    ]
    .into_iter()
    .enumerate()
    {
        let cn = format!("win-{i}");
        let d = device(&cn);
        let csr = d.csr(&format!("CN={cn}"), Some(STATIC_SECRET)).unwrap();
        let mut spec = RequestSpec::pkcs_req(&format!("tx-win-{i}"));
        spec.alg = ContentAlg::Aes128;
        spec.transport = transport;
        let r = s.send(&d, &csr, &spec, false);
        issued(&r, &d);
        assert_eq!(
            r.alg,
            Some(ContentAlg::Aes128),
            "the reply uses the request's cipher"
        );
    }
}

/// Throwaway certificates as real clients make them (RFC 8894 §2.3 makes them throwaways),
/// and BER messages: each deviation enrols on the default profile; one past the limits is
/// refused with its reason and issues nothing.
#[test]
fn throwaway_certificates_of_real_clients_enrol_on_the_default_profile() {
    use client::Transient;
    let a = appliance();
    profile(
        &a,
        "default",
        &["--challenge", "static", "--secret", STATIC_SECRET],
    );
    let s = Strict::new(&a, "default");
    let cases = [
        (
            "serial32",
            Transient {
                serial_len: 32,
                ..Transient::default()
            },
            false,
        ),
        (
            "gentime",
            Transient {
                generalized_time: true,
                ..Transient::default()
            },
            false,
        ),
        (
            "v1",
            Transient {
                v1: true,
                ..Transient::default()
            },
            false,
        ),
        (
            "emptysubject",
            Transient {
                empty_subject: true,
                ..Transient::default()
            },
            false,
        ),
        (
            "caflag",
            Transient {
                ca_flag: true,
                ..Transient::default()
            },
            false,
        ),
        ("bykeyid", Transient::default(), true),
        (
            "sscep",
            Transient {
                serial_len: 32,
                generalized_time: true,
                ..Transient::default()
            },
            true,
        ),
    ];
    for (cn, t, by_key_id) in cases {
        let d = Device::transient(device(cn).key, "CN=SCEP SIGNER", &t).unwrap();
        let csr = d.csr(&format!("CN={cn}"), Some(STATIC_SECRET)).unwrap();
        let mut spec = RequestSpec::pkcs_req(&format!("tx-{cn}"));
        spec.signer_by_key_id = by_key_id;
        let c = issued(&s.send(&d, &csr, &spec, false), &d);
        assert_eq!(
            c.tbs_certificate().subject().to_string(),
            format!("CN={cn}")
        );
        let pem = a.path(&format!("{cn}.pem"));
        write_pem(&pem, &c);
        assert_verifies(&a, &pem);
    }

    // BER as Bouncy Castle (jscep) writes it: indefinite lengths, OCTET STRINGs in
    // 1000-octet segments, the envelope inside too.
    let d = device("ber");
    let csr = d.csr("CN=ber", Some(STATIC_SECRET)).unwrap();
    let mut spec = RequestSpec::pkcs_req("tx-ber");
    spec.ber_chunks = Some(1000);
    issued(&s.send(&d, &csr, &spec, false), &d);

    // Past the limits: a 65-octet serial is refused before decryption (HTTP 400, a reason).
    let before = a.cli_json("alice", &["cert", "stats", "--json"]);
    let t = Transient {
        serial_len: 65,
        ..Transient::default()
    };
    let d = Device::transient(device("long").key, "CN=long", &t).unwrap();
    let csr = d.csr("CN=long", Some(STATIC_SECRET)).unwrap();
    let req = s.message(&d, &csr, &RequestSpec::pkcs_req("tx-long"));
    let r = s.post_raw(&req.der);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("65 octets"), "{}", r.text());
    assert_eq!(a.cli_json("alice", &["cert", "stats", "--json"]), before);

    // The throwaway certificate's key must be the CSR's: another key is refused.
    let d = Device::transient(device("other").key, "CN=x", &Transient::default()).unwrap();
    let csr = device("mismatch")
        .csr("CN=mismatch", Some(STATIC_SECRET))
        .unwrap();
    let r = s.send(&d, &csr, &RequestSpec::pkcs_req("tx-mismatch"), false);
    let text = failed(&r, "2");
    assert!(text.contains("not the CSR's key"), "{text}");
    assert_eq!(a.cli_json("alice", &["cert", "stats", "--json"]), before);
}
