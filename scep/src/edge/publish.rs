//! Publication (RFC 5280 §4.2.1.13 CDP, §4.2.2.1 AIA): `/crl/<ca>.crl` and
//! `/aia/<ca>.crt`, DER, with `Last-Modified`, `ETag`, `Expires` and
//! `Cache-Control` so caches keep a CRL until its successor is due. The last good
//! copy is kept in memory and, with `--cache-dir`, on disk, and is served while the
//! signer is down or restarting.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::Error;
use super::signer::SignerPool;
use crate::wire::{Op, Reply};

/// How long a copy is served without asking the signer (keeps a new CRL visible
/// within the 2-second promise).
const FRESH: Duration = Duration::from_millis(500);

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
    pub der: Vec<u8>,
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
        c.der = std::fs::read(data).ok()?;
        Some(c)
    }

    /// The current copy: fresh from memory, else from the signer, else the last good one.
    pub async fn get(&self, signer: &SignerPool, kind: Kind, ca: &str) -> Result<Copy, Error> {
        let key = (kind, ca.to_owned());
        if let Some((at, c)) = self.mem.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && at.elapsed() < FRESH
        {
            return Ok(c.clone());
        }
        let op = match kind {
            Kind::Crl => Op::GetCrl { ca: ca.to_owned() },
            Kind::CaCert => Op::GetCaCertByName { ca: ca.to_owned() },
        };
        match signer.call(op).await {
            Ok(Reply::Published {
                der,
                issued_at,
                next_update,
                etag,
            }) => {
                let c = Copy {
                    der,
                    issued_at,
                    next_update,
                    etag,
                };
                let changed = self
                    .mem
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, (Instant::now(), c.clone()))
                    .is_none_or(|(_, old)| old.etag != c.etag);
                if changed {
                    self.save(kind, ca, &c);
                }
                Ok(c)
            }
            Ok(Reply::Refused { status: 404, .. }) => Err(Error::NotFound),
            Ok(Reply::Refused { status, message }) => Err(Error::Refused { status, message }),
            Ok(_) => Err(Error::UnexpectedReply("publication")),
            Err(e) => {
                let last = self
                    .mem
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key)
                    .map(|(_, c)| c.clone())
                    .or_else(|| self.load(kind, ca));
                match last {
                    Some(c) => {
                        tracing::warn!(ca, error = %e, "signer unreachable: serving the last good copy");
                        Ok(c)
                    }
                    None => Err(Error::Signer(e)),
                }
            }
        }
    }
}

/// RFC 9110 §5.6.7 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix: i64) -> String {
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
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
