//! Admin port request bodies (JSON from an authenticated officer): must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<proto::admin::Request>(data) {
        if let proto::admin::Request::Propose { body, .. } = req {
            let _ = body.digest();
            let _ = daemon::governance::check_new_body(&body, "fuzz", 1_800_000_000);
        }
    }
});
