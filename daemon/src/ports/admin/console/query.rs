//! The console's query strings (`?ca=x&status=active&search=...&after=CURSOR`): parsed with
//! a cap, percent-decoded, never panicking; an unknown key or a bad escape is refused.

/// Longest query string accepted.
pub const MAX_QUERY: usize = 2048;

/// The parameters of a certificates page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertQuery {
    pub ca: Option<String>,
    pub status: Option<String>,
    pub search: Option<String>,
    pub after: Option<String>,
}

/// Parse `query` (without the `?`). Empty values count as absent.
pub fn cert_query(query: &str) -> Result<CertQuery, String> {
    if query.len() > MAX_QUERY {
        return Err(format!("the query is longer than {MAX_QUERY} bytes"));
    }
    let mut q = CertQuery::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v)?;
        let slot = match k {
            "ca" => &mut q.ca,
            "status" => &mut q.status,
            "search" => &mut q.search,
            "after" => &mut q.after,
            _ => return Err(format!("unknown query parameter {k:?}")),
        };
        *slot = (!v.is_empty()).then_some(v);
    }
    Ok(q)
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; the result
/// must be UTF-8.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or("a % escape is cut short")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "a bad % escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "a bad % escape")?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "the query is not UTF-8".into())
}

/// Encode a value for a query string (everything but unreserved characters escaped).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded_and_bad_ones_refused() {
        let q = cert_query("ca=eu-ca&status=active&search=device+7%2F%C3%A9&after=").unwrap();
        assert_eq!(q.ca.as_deref(), Some("eu-ca"));
        assert_eq!(q.search.as_deref(), Some("device 7/é"));
        assert_eq!(q.after, None);
        assert_eq!(
            cert_query(&format!("search={}", encode("a&b=c d")))
                .unwrap()
                .search
                .as_deref(),
            Some("a&b=c d")
        );
        for bad in ["x=1", "search=%", "search=%G1", "search=%FF", "search=%2"] {
            assert!(cert_query(bad).is_err(), "{bad}");
        }
        assert!(cert_query(&"a".repeat(MAX_QUERY + 1)).is_err());
    }
}
