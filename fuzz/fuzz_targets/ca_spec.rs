//! Subjects, EKU lists and validities as typed by users: must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = proto::model::Subject::new(s);
        let _ = proto::model::Eku::list(s);
        let _ = proto::model::Lifetime::new(s);
        let _ = proto::model::CaName::new(s);
    }
});
