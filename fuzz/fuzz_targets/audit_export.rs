//! Audit exports (the offline verifier reads them from an auditor's file): parsing and
//! verification, whole and line by line, must never panic.
#![no_main]

/// A root the fuzzer cannot have signed for: verification must fail cleanly.
const ROOT: &[u8] = include_bytes!("../../daemon/testdata/officer.pem");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let root = proto::pem::parse_certificates(ROOT, "root")
        .ok()
        .and_then(|c| c.first().and_then(|c| der::Encode::to_der(c).ok()))
        .unwrap_or_default();
    if let Ok(x) = proto::audit::Export::parse(text) {
        let _ = proto::audit::verify_export(&x, &root, None);
        let _ = x.encode();
    }
    let mut head = proto::audit::Export::default();
    let mut entries = 0u64;
    for (i, line) in text.split('\n').enumerate() {
        if let Ok(Some(_)) = head.add_line(i + 1, line) {
            entries += 1;
        }
    }
    if let Ok(mut v) = proto::audit::Verifier::new(&head, entries, &root, Some(text)) {
        for line in text.split('\n') {
            if let Some(e) = line.strip_prefix("entry ") {
                let _ = v.push(e.as_bytes());
            }
        }
        let _ = v.finish();
    }
});
