//! OCSP requests (RFC 6960) as the edge receives them over HTTP, POST body or GET path:
//! must never panic, whatever the bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = proto::ocsp::parse_request(data);
});
