//! PKCS#10 requests from devices: parse, verify, check against a permissive profile. Must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(req) = daemon::issuance::leaf::parse_csr(data, true) {
        let _ = req.sans.len();
    }
});
