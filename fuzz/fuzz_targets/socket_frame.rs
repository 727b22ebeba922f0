//! Signing-socket frames (the signer reads them from the edge): must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = scep::wire::check_len::<scep::wire::Op>(u32::from_be_bytes([data[0], data[1], data[2], data[3]]));
    }
    let _ = scep::wire::decode::<scep::wire::Op>(data);
    let _ = scep::wire::decode::<scep::wire::Reply>(data);
});
