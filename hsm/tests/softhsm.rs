//! The hsm crate against a real SoftHSM2 token: key generation and attributes,
//! signatures checked by an independent implementation (ring), a certificate
//! built by x509-cert with a token key, recovery after the login is lost, and
//! concurrent signing from several workers.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` from the environment at C_Initialize, and the
//! workspace forbids the `unsafe` that `std::env::set_var` needs, so
//! `against_softhsm2` makes a fresh token and re-runs this test binary with the
//! environment set, running the `inner_*` tests (ignored on their own).
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock, RwLock};

use der::{Decode, Encode};
use hsm::{HashAlg, Hsm, HsmConfig, HsmSigner, KeyId, KeySpec, KeyUse, PinSource};

const CHILD_ENV: &str = "CASTELLAN_HSM_TEST_DIR";

/// The inner tests share one token and one login; the one that logs out runs alone.
static LOGIN: RwLock<()> = RwLock::new(());

#[test]
fn against_softhsm2() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "hsm-test"])
        .args(["--so-pin", "5678", "--pin", "1234"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util must be installed (cargo xtask test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pin = dir.path().join("pin");
    std::fs::write(&pin, "1234\n").unwrap();
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();

    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "inner_"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "inner tests failed");
    assert!(
        stdout.contains("test result: ok. 6 passed"),
        "expected 6 inner tests to run"
    );
}

/// One token per child process, shared by its test threads.
fn hsm() -> &'static Arc<Hsm> {
    static HSM: OnceLock<Arc<Hsm>> = OnceLock::new();
    HSM.get_or_init(|| {
        let dir = PathBuf::from(
            std::env::var_os(CHILD_ENV).expect("run through the against_softhsm2 test"),
        );
        Hsm::open(&HsmConfig {
            module: hsm::SOFTHSM2_MODULE.into(),
            token_label: "hsm-test".into(),
            pin: PinSource::File(dir.join("pin")),
        })
        .unwrap()
    })
}

fn verify(spec: KeySpec, hash: HashAlg, spki_der: &[u8], msg: &[u8], sig: &[u8]) {
    use ring::signature as rs;
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der).unwrap();
    let key = spki.subject_public_key.raw_bytes();
    let alg: &dyn rs::VerificationAlgorithm = match (spec, hash) {
        (KeySpec::EcP256, HashAlg::Sha256) => &rs::ECDSA_P256_SHA256_ASN1,
        (KeySpec::EcP256, HashAlg::Sha384) => &rs::ECDSA_P256_SHA384_ASN1,
        (KeySpec::EcP384, HashAlg::Sha256) => &rs::ECDSA_P384_SHA256_ASN1,
        (KeySpec::EcP384, HashAlg::Sha384) => &rs::ECDSA_P384_SHA384_ASN1,
        (_, HashAlg::Sha256) => &rs::RSA_PKCS1_2048_8192_SHA256,
        (_, HashAlg::Sha384) => &rs::RSA_PKCS1_2048_8192_SHA384,
        (_, HashAlg::Sha512) => &rs::RSA_PKCS1_2048_8192_SHA512,
    };
    rs::UnparsedPublicKey::new(alg, key)
        .verify(msg, sig)
        .unwrap_or_else(|_| panic!("{spec}/{hash} signature does not verify"));
}

#[test]
#[ignore = "run by against_softhsm2"]
fn inner_every_key_type_is_generated_sound_and_signs() {
    let _shared = LOGIN.read().unwrap_or_else(|p| p.into_inner());
    let hsm = hsm();
    for (n, spec) in [
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::EcP256,
        KeySpec::EcP384,
    ]
    .into_iter()
    .enumerate()
    {
        let id = KeyId::new(vec![1, n as u8]).unwrap();
        let spki = hsm
            .generate(spec, &id, &format!("test-{spec}"), KeyUse::Sign)
            .unwrap();
        let attrs = hsm.check_key(&id).unwrap();
        assert!(attrs.sensitive && attrs.never_extractable && attrs.local && !attrs.extractable);
        let spki_der = spki.to_der().unwrap();
        for hash in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            if !spec.allows(hash) {
                assert!(hsm.sign(spec, hash, &id, b"x").is_err());
                continue;
            }
            let sig = hsm.sign(spec, hash, &id, b"castellan").unwrap();
            verify(spec, hash, &spki_der, b"castellan", &sig);
            // Large input (signed in parts), not a multiple of the part size.
            let big: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i * 7) as u8).collect();
            let sig = hsm.sign(spec, hash, &id, &big).unwrap();
            verify(spec, hash, &spki_der, &big, &sig);
        }
        // A second key with the same CKA_ID is refused.
        assert!(matches!(
            hsm.generate(spec, &id, "dup", KeyUse::Sign),
            Err(hsm::Error::KeyExists { .. })
        ));
    }
}

#[test]
#[ignore = "run by against_softhsm2"]
fn inner_rsa4096_has_its_size() {
    let _shared = LOGIN.read().unwrap_or_else(|p| p.into_inner());
    let hsm = hsm();
    let id = KeyId::new(vec![4, 9]).unwrap();
    let spki = hsm
        .generate(KeySpec::Rsa4096, &id, "big", KeyUse::Sign)
        .unwrap();
    assert_eq!(hsm::rsa_modulus_bits(&spki).unwrap(), 4096);
    // Asking for it as a different size is an error, not a silent mix-up.
    assert!(hsm.public_key(KeySpec::Rsa2048, &id).is_err());
}

#[test]
#[ignore = "run by against_softhsm2"]
fn inner_x509_builder_signs_with_a_token_key() {
    use std::str::FromStr;
    use x509_cert::builder::{Builder, CertificateBuilder, profile::cabf};
    let _shared = LOGIN.read().unwrap_or_else(|p| p.into_inner());
    let hsm = hsm();
    let id = KeyId::new(vec![2, 1]).unwrap();
    let spki = hsm
        .generate(KeySpec::EcP256, &id, "x509", KeyUse::Sign)
        .unwrap();
    let signer = HsmSigner::new(hsm.clone(), id, KeySpec::EcP256, HashAlg::Sha256).unwrap();
    let name = x509_cert::name::Name::from_str("CN=Token Test,O=Castellan,C=US").unwrap();
    let builder = CertificateBuilder::new(
        cabf::Root::new(false, name).unwrap(),
        x509_cert::serial_number::SerialNumber::from(7u32),
        x509_cert::time::Validity::from_now(std::time::Duration::from_secs(3600)).unwrap(),
        spki.clone(),
    )
    .unwrap();
    let cert = builder.build::<_, hsm::HsmSignature>(&signer).unwrap();
    let tbs = cert.tbs_certificate().to_der().unwrap();
    verify(
        KeySpec::EcP256,
        HashAlg::Sha256,
        &spki.to_der().unwrap(),
        &tbs,
        cert.signature().raw_bytes(),
    );
}

#[test]
#[ignore = "run by against_softhsm2"]
fn inner_decrypt_key_and_sign_only_key_differ() {
    let _shared = LOGIN.read().unwrap_or_else(|p| p.into_inner());
    let hsm = hsm();
    let ra = KeyId::new(vec![3, 1]).unwrap();
    hsm.generate(KeySpec::Rsa2048, &ra, "ra", KeyUse::SignDecrypt)
        .unwrap();
    assert!(
        hsm.generate(
            KeySpec::EcP256,
            &KeyId::new(vec![3, 2]).unwrap(),
            "x",
            KeyUse::SignDecrypt
        )
        .is_err(),
        "EC keys cannot be decryption keys"
    );
    // A sign-only key refuses to decrypt.
    let ca = KeyId::new(vec![3, 3]).unwrap();
    hsm.generate(KeySpec::Rsa2048, &ca, "ca", KeyUse::Sign)
        .unwrap();
    assert!(hsm.rsa_decrypt(&ca, &[0u8; 256]).is_err());
}

#[test]
#[ignore = "run by against_softhsm2"]
fn inner_recovers_after_the_login_is_lost() {
    // A logout ends the login of every session of this process on the token: the other
    // tests wait, or their key lookups would race with it.
    let _alone = LOGIN.write().unwrap_or_else(|p| p.into_inner());
    let hsm = hsm();
    let id = KeyId::new(vec![5, 1]).unwrap();
    hsm.generate(KeySpec::EcP256, &id, "recover", KeyUse::Sign)
        .unwrap();
    for _ in 0..3 {
        hsm.logout().unwrap();
        // Without recovery this fails with CKR_USER_NOT_LOGGED_IN (or a missing key,
        // since private objects are invisible when logged out).
        let sig = hsm.sign(KeySpec::EcP256, HashAlg::Sha256, &id, b"after logout");
        assert!(sig.is_ok(), "{sig:?}");
    }
}

#[test]
#[ignore = "run by against_softhsm2"]
fn inner_concurrent_workers_each_sign() {
    let _shared = LOGIN.read().unwrap_or_else(|p| p.into_inner());
    let hsm = hsm();
    let id = KeyId::new(vec![6, 1]).unwrap();
    let spki = hsm
        .generate(KeySpec::Rsa2048, &id, "conc", KeyUse::Sign)
        .unwrap();
    let spki_der = spki.to_der().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let hsm = hsm.clone();
            let id = id.clone();
            let spki_der = spki_der.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let msg = format!("{t}-{i}");
                    let sig = hsm
                        .sign(KeySpec::Rsa2048, HashAlg::Sha256, &id, msg.as_bytes())
                        .unwrap();
                    verify(
                        KeySpec::Rsa2048,
                        HashAlg::Sha256,
                        &spki_der,
                        msg.as_bytes(),
                        &sig,
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
