//! Publication (RFC 5280 §4.2.1.13 CDP, §4.2.2.1 AIA): `/crl/<ca>.crl` and
//! `/aia/<ca>.crt`, DER, with `Last-Modified`, `ETag`, `Expires` and
//! `Cache-Control` so caches keep a CRL until its successor is due. The last good
//! copy is kept in memory and, with `--cache-dir`, on disk, and is served while the
//! signer is down or restarting.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use proto::wire::Refusal;
use serde::{Deserialize, Serialize};

use super::error::Error;
use super::signer::SignerPool;
use proto::wire::{Op, Reply};

/// How long a copy is served without asking the signer (keeps a new CRL visible
/// within the 2-second promise).
const FRESH: Duration = Duration::from_millis(500);

/// Largest object the edge accepts from the signer (a CRL of a million entries is about
/// 50 MB).
pub const MAX_PUBLISHED: u64 = 512 * 1024 * 1024;

/// Fetches started again when the object is replaced during one.
const RESTARTS: usize = 3;

/// What is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Crl,
    CaCert,
}

impl Kind {
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Crl => "application/pkix-crl",
            Kind::CaCert => "application/pkix-cert",
        }
    }
    fn ext(self) -> &'static str {
        match self {
            Kind::Crl => "crl",
            Kind::CaCert => "crt",
        }
    }
}

/// `/crl/<ca>.crl` or `/aia/<ca>.crt` → (kind, CA name); None for other paths.
/// A path under /crl/ or /aia/ that is not a valid name is `Err(NotFound)`.
pub fn match_path(path: &str) -> Option<Result<(Kind, String), Error>> {
    let (kind, rest) = if let Some(r) = path.strip_prefix("/crl/") {
        (Kind::Crl, r.strip_suffix(".crl"))
    } else if let Some(r) = path.strip_prefix("/aia/") {
        (Kind::CaCert, r.strip_suffix(".crt"))
    } else {
        return None;
    };
    let ok = rest.filter(|n| {
        !n.is_empty()
            && n.len() <= 64
            && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    });
    Some(ok.map(|n| (kind, n.to_owned())).ok_or(Error::NotFound))
}

/// A published object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    #[serde(skip)]
    pub der: Bytes,
    pub issued_at: i64,
    pub next_update: Option<i64>,
    pub etag: String,
}

/// Memory and disk copies.
#[derive(Debug)]
pub struct Publications {
    dir: Option<PathBuf>,
    mem: Mutex<HashMap<(Kind, String), (Instant, Copy)>>,
}

impl Publications {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Publications {
            dir,
            mem: Mutex::new(HashMap::new()),
        }
    }

    fn paths(&self, kind: Kind, ca: &str) -> Option<(PathBuf, PathBuf)> {
        let d = self.dir.as_ref()?;
        Some((
            d.join(format!("{ca}.{}", kind.ext())),
            d.join(format!("{ca}.{}.json", kind.ext())),
        ))
    }

    fn save(&self, kind: Kind, ca: &str, c: &Copy) {
        let Some((data, meta)) = self.paths(kind, ca) else {
            return;
        };
        let write = |path: &PathBuf, bytes: &[u8]| -> std::io::Result<()> {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)
        };
        let meta_json = serde_json::to_vec(c).unwrap_or_default();
        if let Err(e) = write(&data, &c.der).and_then(|()| write(&meta, &meta_json)) {
            tracing::warn!(ca, error = %e, "cannot keep a disk copy");
        }
    }

    fn load(&self, kind: Kind, ca: &str) -> Option<Copy> {
        let (data, meta) = self.paths(kind, ca)?;
        let mut c: Copy = serde_json::from_slice(&std::fs::read(meta).ok()?).ok()?;
        c.der = std::fs::read(data).ok()?.into();
        Some(c)
    }

    /// For each object held in memory: (`crl` or `aia`, CA name, seconds since it was
    /// fetched from or confirmed by the signer). Only objects the signer published are
    /// held, so the list is as long as the list of CAs.
    pub fn ages(&self) -> Vec<(&'static str, String, f64)> {
        let mem = self.mem.lock().unwrap_or_else(|p| p.into_inner());
        mem.iter()
            .map(|((kind, ca), (at, _))| {
                let kind = match kind {
                    Kind::Crl => "crl",
                    Kind::CaCert => "aia",
                };
                (kind, ca.clone(), at.elapsed().as_secs_f64())
            })
            .collect()
    }

    /// The last good copy: in memory, else on disk.
    fn last(&self, kind: Kind, ca: &str) -> Option<Copy> {
        let mem = self.mem.lock().unwrap_or_else(|p| p.into_inner());
        mem.get(&(kind, ca.to_owned()))
            .map(|(_, c)| c.clone())
            .or_else(|| self.load(kind, ca))
    }

    /// The current copy: fresh from memory, else checked with the signer (fetched only if
    /// it changed), else the last good one.
    pub async fn get(&self, signer: &SignerPool, kind: Kind, ca: &str) -> Result<Copy, Error> {
        let key = (kind, ca.to_owned());
        if let Some((at, c)) = self.mem.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && at.elapsed() < FRESH
        {
            return Ok(c.clone());
        }
        let last = self.last(kind, ca);
        match fetch(signer, kind, ca, last.as_ref().map(|c| c.etag.as_str())).await {
            Ok(fetched) => {
                let (c, changed) = match (fetched, last) {
                    (Some(c), _) => (c, true),
                    (None, Some(last)) => (last, false),
                    (None, None) => return Err(Error::UnexpectedReply("publication")),
                };
                let replaced = self
                    .mem
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, (Instant::now(), c.clone()))
                    .is_none_or(|(_, old)| old.etag != c.etag);
                if changed && replaced {
                    self.save(kind, ca, &c);
                }
                Ok(c)
            }
            Err(FetchError::Refused {
                reason: Refusal::NotFound,
                ..
            }) => Err(Error::NotFound),
            Err(FetchError::Refused { reason, message }) => Err(Error::Refused { reason, message }),
            Err(FetchError::Unexpected) => Err(Error::UnexpectedReply("publication")),
            Err(FetchError::Signer(e)) => match last {
                Some(c) => {
                    tracing::warn!(ca, error = %e, "signer unreachable: serving the last good copy");
                    Ok(c)
                }
                None => Err(Error::Signer(e)),
            },
        }
    }
}

enum FetchError {
    Signer(super::SignerError),
    Refused { reason: Refusal, message: String },
    Unexpected,
}

/// Fetch a published object piece by piece; `None` if `known` (an ETag) is current.
async fn fetch(
    signer: &SignerPool,
    kind: Kind,
    ca: &str,
    known: Option<&str>,
) -> Result<Option<Copy>, FetchError> {
    let op = |etag: Option<&str>, offset: u64| {
        let (ca, etag) = (ca.to_owned(), etag.map(str::to_owned));
        match kind {
            Kind::Crl => Op::GetCrl { ca, etag, offset },
            Kind::CaCert => Op::GetCaCertByName { ca, etag, offset },
        }
    };
    let mut restarts = 0;
    'again: loop {
        let mut buf: Vec<u8> = Vec::new();
        let mut pinned: Option<(String, i64, Option<i64>, u64)> = None;
        loop {
            let offset = buf.len() as u64;
            let etag = match &pinned {
                Some((etag, ..)) => Some(etag.as_str()),
                None => known,
            };
            let reply = signer
                .call(op(etag, offset))
                .await
                .map_err(FetchError::Signer)?;
            match reply {
                Reply::NotModified { .. } if pinned.is_none() => return Ok(None),
                Reply::Published {
                    der,
                    offset: at,
                    total,
                    issued_at,
                    next_update,
                    etag,
                } => {
                    let total = total.unwrap_or(der.len() as u64);
                    if at != offset
                        || total > MAX_PUBLISHED
                        || (der.is_empty() && offset < total)
                        || offset + der.len() as u64 > total
                    {
                        return Err(FetchError::Unexpected);
                    }
                    match &pinned {
                        Some((e, ..)) if *e != etag => return Err(FetchError::Unexpected),
                        Some(_) => {}
                        None => {
                            buf.reserve_exact(total as usize);
                            pinned = Some((etag, issued_at, next_update, total));
                        }
                    }
                    buf.extend_from_slice(&der);
                    if let Some((etag, issued_at, next_update, total)) = &pinned
                        && buf.len() as u64 == *total
                    {
                        return Ok(Some(Copy {
                            der: buf.into(),
                            issued_at: *issued_at,
                            next_update: *next_update,
                            etag: etag.clone(),
                        }));
                    }
                }
                // Replaced while we fetched it: start again with the new one.
                Reply::Refused {
                    reason: Refusal::Changed,
                    ..
                } if restarts < RESTARTS => {
                    restarts += 1;
                    continue 'again;
                }
                Reply::Refused { reason, message } => {
                    return Err(FetchError::Refused { reason, message });
                }
                _ => return Err(FetchError::Unexpected),
            }
        }
    }
}

/// RFC 9110 §5.6.7 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix: i64) -> String {
    let t = proto::utc(unix);
    let (y, m, d) = (t.year(), t.month(), t.day());
    let days = unix.div_euclid(86400);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][usize::from(m.saturating_sub(1))];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        t.hour(),
        t.minutes(),
        t.seconds()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(
            matches!(match_path("/crl/demo-issuing.crl"), Some(Ok((Kind::Crl, n))) if n == "demo-issuing")
        );
        assert!(matches!(
            match_path("/aia/r.crt"),
            Some(Ok((Kind::CaCert, _)))
        ));
        assert!(matches!(match_path("/crl/../x.crl"), Some(Err(_))));
        assert!(matches!(match_path("/crl/x.pem"), Some(Err(_))));
        assert!(match_path("/scep/x").is_none());
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
    }
}
