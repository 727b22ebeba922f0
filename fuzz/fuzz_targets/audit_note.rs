//! Signed notes and checkpoints (the offline audit verifier reads them from an export):
//! must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(note) = proto::audit::Note::parse(text) {
            let _ = proto::audit::Checkpoint::parse(&note.text);
            let _ = note.encode();
        }
        let _ = proto::audit::Checkpoint::parse(text);
    }
});
