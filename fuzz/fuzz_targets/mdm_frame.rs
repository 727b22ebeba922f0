//! Connector-socket frames (signer and castellan-mdm read them from each other): must
//! never panic, and an oversized length is refused before anything is allocated.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = proto::mdm::frame_len([data[0], data[1], data[2], data[3]]);
    }
    let _ = proto::mdm::decode_call(data);
    let _ = proto::mdm::decode_answer(data);
});
