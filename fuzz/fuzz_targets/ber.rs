//! BER from devices (jscep, Apple, CryptoAPI): rewriting it as DER must never panic, and
//! what it returns must be a fixed point (DER in, the same DER out).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(der) = scep::ber::to_der(data) {
        assert_eq!(scep::ber::to_der(&der).ok().as_deref(), Some(&der[..]));
    }
});
