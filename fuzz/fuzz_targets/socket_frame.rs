//! Signing-socket frames (the signer reads them from the edge): must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = proto::wire::check_len::<proto::wire::Op>(u32::from_be_bytes([data[0], data[1], data[2], data[3]]));
    }
    let _ = proto::wire::decode::<proto::wire::Op>(data);
    let _ = proto::wire::decode::<proto::wire::Reply>(data);
});
