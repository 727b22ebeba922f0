//! The web console's query strings (from an admin's browser): must never panic, a value
//! encoded again must decode to itself, and a filter carried on to the next page or the CSV
//! export (`params`) must read back as the same filter.
#![no_main]
use daemon::ports::admin::console::query::{MAX_QUERY, cert_query, encode};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(q) = cert_query(text) {
            for v in [q.ca.clone(), q.status.clone(), q.search.clone(), q.name.clone(), q.after.clone()]
                .into_iter()
                .flatten()
            {
                let back = encode(&v);
                if back.len() + "search=".len() > MAX_QUERY {
                    continue; // too long to send back: refused, as it should be
                }
                assert_eq!(
                    cert_query(&format!("search={back}"))
                        .ok()
                        .and_then(|q| q.search),
                    Some(v).filter(|v| !v.is_empty())
                );
            }
            let params = q.params();
            if params.len() <= MAX_QUERY {
                let again = cert_query(&params).expect("a filter the console wrote reads back");
                assert_eq!(
                    (again.ca, again.status, again.search, again.name, again.expires_from, again.expires_until),
                    (q.ca, q.status, q.search, q.name, q.expires_from, q.expires_until)
                );
            }
        }
    }
});
