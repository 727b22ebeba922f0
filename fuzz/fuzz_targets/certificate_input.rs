//! Certificates and chains an officer imports (DER, PEM bundles, .p7b): must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = daemon::issuance::x509::parse_certificates(data, "fuzz") {
        // Chain building over whatever parsed must not panic either.
        if let Some(first) = certs.first() {
            let spki = first.tbs_certificate().subject_public_key_info().clone();
            let _ = daemon::issuance::x509::check_external_ca(first, &certs, &spki, 1_800_000_000);
        }
    }
});
