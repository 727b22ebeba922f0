//! SCEP PKIMessages from devices (RFC 8894): parse, then open the envelope with a
//! key-unwrap stand-in. Must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = scep::message::parse(data, true) {
        let ra = msg.signer_cert.clone();
        let _ = scep::envelope::open(&msg.envelope, &ra, true, &mut |ek| Some(ek.iter().take(16).copied().collect()));
    }
    let _ = scep::envelope::decode(data);
});
