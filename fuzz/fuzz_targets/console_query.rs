//! The web console's query strings (from an admin's browser): must never panic, and a
//! value encoded again must decode to itself.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(q) = daemon::ports::admin::console::query::cert_query(text) {
            for v in [q.ca, q.status, q.search, q.after].into_iter().flatten() {
                let back = daemon::ports::admin::console::query::encode(&v);
                if back.len() + "search=".len() > daemon::ports::admin::console::query::MAX_QUERY {
                    continue; // too long to send back: refused, as it should be
                }
                assert_eq!(
                    daemon::ports::admin::console::query::cert_query(&format!("search={back}"))
                        .ok()
                        .and_then(|q| q.search),
                    Some(v).filter(|v| !v.is_empty())
                );
            }
        }
    }
});
