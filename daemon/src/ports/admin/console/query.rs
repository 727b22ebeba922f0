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
    /// A CN or SAN prefix (the name index).
    pub name: Option<String>,
    pub after: Option<String>,
    /// The expiry range, `YYYY-MM-DD` days (both included).
    pub expires_from: Option<String>,
    pub expires_until: Option<String>,
}

impl CertQuery {
    /// The filter (not the cursor) as query parameters, each followed by `&`: what a next
    /// page or an export carries on.
    pub fn params(&self) -> String {
        let mut out = String::new();
        for (k, v) in [
            ("ca", &self.ca),
            ("status", &self.status),
            ("search", &self.search),
            ("name", &self.name),
            ("expires_from", &self.expires_from),
            ("expires_until", &self.expires_until),
        ] {
            if let Some(v) = v {
                out.push_str(&format!("{k}={}&", encode(v)));
            }
        }
        out
    }

    /// The expiry range of the dates given.
    pub fn expires(&self) -> Result<proto::admin::Expires, String> {
        proto::admin::Expires::from_dates(
            self.expires_from.as_deref(),
            self.expires_until.as_deref(),
        )
    }
}

/// Parse `query` (without the `?`) into the values of `keys`. Empty values count as
/// absent; an unknown key, a repeated one or a bad escape is refused.
pub fn parse(
    query: &str,
    keys: &[&'static str],
) -> Result<std::collections::BTreeMap<&'static str, String>, String> {
    if query.len() > MAX_QUERY {
        return Err(format!("the query is longer than {MAX_QUERY} bytes"));
    }
    let mut out = std::collections::BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = keys
            .iter()
            .find(|known| **known == k)
            .ok_or_else(|| format!("unknown query parameter {k:?}"))?;
        let v = decode(v)?;
        if !v.is_empty() && out.insert(*key, v).is_some() {
            return Err(format!("query parameter {k:?} given twice"));
        }
    }
    Ok(out)
}

/// The parameters of the certificates page.
pub fn cert_query(query: &str) -> Result<CertQuery, String> {
    let mut m = parse(
        query,
        &[
            "ca",
            "status",
            "search",
            "name",
            "after",
            "expires_from",
            "expires_until",
        ],
    )?;
    let q = CertQuery {
        ca: m.remove("ca"),
        status: m.remove("status"),
        search: m.remove("search"),
        name: m.remove("name"),
        after: m.remove("after"),
        expires_from: m.remove("expires_from"),
        expires_until: m.remove("expires_until"),
    };
    q.expires()?;
    Ok(q)
}

/// The parameters of the audit page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub ca: Option<String>,
    pub after: Option<u64>,
}

pub fn audit_query(query: &str) -> Result<AuditQuery, String> {
    let mut m = parse(query, &["actor", "action", "ca", "after"])?;
    Ok(AuditQuery {
        actor: m.remove("actor"),
        action: m.remove("action"),
        ca: m.remove("ca"),
        after: m
            .remove("after")
            .map(|a| {
                a.parse()
                    .map_err(|_| format!("after={a:?} is not an entry number"))
            })
            .transpose()?,
    })
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
        for bad in [
            "x=1",
            "search=%",
            "search=%G1",
            "search=%FF",
            "search=%2",
            "ca=a&ca=b",
        ] {
            assert!(cert_query(bad).is_err(), "{bad}");
        }
        assert!(cert_query(&"a".repeat(MAX_QUERY + 1)).is_err());
        let a = audit_query("actor=alice&after=41").unwrap();
        assert_eq!((a.actor.as_deref(), a.after), (Some("alice"), Some(41)));
        assert!(audit_query("after=-1").is_err() && audit_query("status=x").is_err());
    }
}
