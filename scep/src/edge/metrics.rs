//! The edge's metrics, and a small hand-written encoder for the Prometheus text
//! exposition format, version 0.0.4 (`# HELP`, `# TYPE`, `name{label="value"} number`).
//!
//! Counters are atomics; the only locks guard the maps from label sets to counters, and
//! every label has a bounded set of values: operations are a fixed list, statuses the few
//! the edge sends, and a profile is named only once the signer has answered a request for
//! it successfully (so it exists); every other profile name is counted as `other`.
//!
//! Served by `castellan-edge run --metrics-listen ADDR` on `GET /metrics`, on that address
//! only (never on the device port).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use super::limits::{Expired, ShedReason};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `operation` label of a request. `unframed`: the request never got as far as a
/// request line and headers hyper could parse (answered 400/414/431) or its head timed out.
pub const OPERATIONS: [&str; 9] = [
    "GetCACaps",
    "GetCACert",
    "GetNextCACert",
    "PKIOperation",
    "ocsp",
    "crl",
    "aia",
    "other",
    "unframed",
];

/// Profile label for a name that is not (yet) known to exist.
pub const OTHER: &str = "other";
/// Most profile names kept as label values (more real profiles are counted as `other`).
const MAX_PROFILES: usize = 256;

/// Upper bounds of the latency histogram buckets, in seconds (`+Inf` is implied).
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A latency histogram: per-bucket (not cumulative) counts, the last one for `+Inf`.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket, ending with `+Inf`; the last is also `_count`, so the
    /// two always agree even while requests are being counted.
    fn cumulative(&self) -> [u64; BUCKETS.len() + 1] {
        let mut out = [0; BUCKETS.len() + 1];
        let mut total = 0u64;
        for (o, b) in out.iter_mut().zip(&self.buckets) {
            total = total.saturating_add(b.load(Ordering::Relaxed));
            *o = total;
        }
        out
    }
}

/// Request, connection and latency metrics of one edge (owned by its server).
#[derive(Debug, Default)]
pub struct Metrics {
    requests: RwLock<HashMap<(&'static str, String, u16), AtomicU64>>,
    profiles: RwLock<HashSet<String>>,
    latency: [Histogram; OPERATIONS.len()],
    accepted: AtomicU64,
    shed_per_address: AtomicU64,
    shed_global: AtomicU64,
    timed_out_header: AtomicU64,
    timed_out_body: AtomicU64,
    timed_out_idle: AtomicU64,
}

/// Values owned by other parts of the edge, read at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub connections_open: usize,
    pub signer_up: bool,
    pub signer_reconnects: u64,
    /// (kind `crl`/`aia`, CA name, seconds since the copy was fetched or confirmed).
    pub published_age: Vec<(&'static str, String, f64)>,
}

impl Metrics {
    /// The `profile` label for `name`: the name itself if a request for it has been
    /// answered successfully (`ok`), else `other`. `None` (not a SCEP request): `""`.
    pub fn profile_label(&self, name: Option<&str>, ok: bool) -> String {
        let Some(name) = name else {
            return String::new();
        };
        if self
            .profiles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(name)
        {
            return name.to_owned();
        }
        if ok {
            let mut known = self
                .profiles
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if known.len() < MAX_PROFILES {
                known.insert(name.to_owned());
                return name.to_owned();
            }
        }
        OTHER.to_owned()
    }

    /// Count one answered request and its latency.
    pub fn request(&self, operation: &'static str, profile: String, status: u16, took: Duration) {
        self.count_request(operation, profile, status);
        if let Some(i) = OPERATIONS.iter().position(|o| *o == operation)
            && let Some(h) = self.latency.get(i)
        {
            h.observe(took);
        }
    }

    /// Count one request without a latency (the unframed ones).
    pub fn count_request(&self, operation: &'static str, profile: String, status: u16) {
        let key = (operation, profile, status);
        if let Some(c) = self
            .requests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            c.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.requests
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn shed(&self, reason: ShedReason) {
        match reason {
            ShedReason::PerAddress => &self.shed_per_address,
            ShedReason::Global => &self.shed_global,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub fn timed_out(&self, what: Expired) {
        match what {
            Expired::Head { .. } => &self.timed_out_header,
            Expired::Idle => &self.timed_out_idle,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub fn body_timed_out(&self) {
        self.timed_out_body.fetch_add(1, Ordering::Relaxed);
    }

    /// The whole exposition.
    pub fn render(&self, s: &Snapshot) -> String {
        let mut e = Encoder::default();
        e.family(
            "castellan_edge_requests_total",
            "HTTP requests answered, by operation, SCEP profile and status.",
            "counter",
        );
        let mut rows: Vec<_> = self
            .requests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((op, profile, status), c)| {
                (*op, profile.clone(), *status, c.load(Ordering::Relaxed))
            })
            .collect();
        rows.sort();
        for (op, profile, status, n) in rows {
            e.sample(
                "castellan_edge_requests_total",
                &[
                    ("operation", op),
                    ("profile", &profile),
                    ("status", &status.to_string()),
                ],
                n,
            );
        }

        e.family(
            "castellan_edge_request_duration_seconds",
            "Time from a request's head to its answer, by operation.",
            "histogram",
        );
        // Unframed requests never reach a handler: they have no latency.
        for (op, h) in OPERATIONS
            .iter()
            .zip(&self.latency)
            .filter(|(op, _)| **op != "unframed")
        {
            let counts = h.cumulative();
            for (le, n) in BUCKETS.iter().map(|b| format!("{b}")).zip(counts) {
                e.sample(
                    "castellan_edge_request_duration_seconds_bucket",
                    &[("operation", op), ("le", &le)],
                    n,
                );
            }
            let count = counts.last().copied().unwrap_or(0);
            e.sample(
                "castellan_edge_request_duration_seconds_bucket",
                &[("operation", op), ("le", "+Inf")],
                count,
            );
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            e.sample(
                "castellan_edge_request_duration_seconds_sum",
                &[("operation", op)],
                sum,
            );
            e.sample(
                "castellan_edge_request_duration_seconds_count",
                &[("operation", op)],
                count,
            );
        }

        e.family(
            "castellan_edge_connections_open",
            "HTTP connections open now.",
            "gauge",
        );
        e.sample("castellan_edge_connections_open", &[], s.connections_open);
        e.family(
            "castellan_edge_connections_accepted_total",
            "HTTP connections accepted.",
            "counter",
        );
        e.sample(
            "castellan_edge_connections_accepted_total",
            &[],
            self.accepted.load(Ordering::Relaxed),
        );
        e.family(
            "castellan_edge_connections_shed_total",
            "Connections closed because a cap was reached (an old idle or slow one, or the new one when all others were busy).",
            "counter",
        );
        for (reason, c) in [
            (ShedReason::PerAddress, &self.shed_per_address),
            (ShedReason::Global, &self.shed_global),
        ] {
            e.sample(
                "castellan_edge_connections_shed_total",
                &[("reason", reason.as_str())],
                c.load(Ordering::Relaxed),
            );
        }
        e.family(
            "castellan_edge_connections_timed_out_total",
            "Connections closed by a timeout: request head, request body, keep-alive idle.",
            "counter",
        );
        for (phase, c) in [
            ("header", &self.timed_out_header),
            ("body", &self.timed_out_body),
            ("idle", &self.timed_out_idle),
        ] {
            e.sample(
                "castellan_edge_connections_timed_out_total",
                &[("phase", phase)],
                c.load(Ordering::Relaxed),
            );
        }

        e.family(
            "castellan_edge_signer_up",
            "1 if the signing socket answered when scraped, else 0.",
            "gauge",
        );
        e.sample("castellan_edge_signer_up", &[], u64::from(s.signer_up));
        e.family(
            "castellan_edge_signer_reconnects_total",
            "Signer connections opened again after one failed or was lost.",
            "counter",
        );
        e.sample(
            "castellan_edge_signer_reconnects_total",
            &[],
            s.signer_reconnects,
        );

        e.family(
            "castellan_edge_published_cache_age_seconds",
            "Seconds since the edge fetched or confirmed its copy of a published CRL or CA certificate.",
            "gauge",
        );
        let mut ages = s.published_age.clone();
        ages.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (kind, ca, age) in &ages {
            e.sample(
                "castellan_edge_published_cache_age_seconds",
                &[("kind", kind), ("ca", ca)],
                *age,
            );
        }
        e.out
    }
}

/// A sample value: integers are written as integers, floats in Rust's shortest form.
pub trait Value {
    fn write(&self, out: &mut String);
}

impl Value for u64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for usize {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// The text format, line by line.
#[derive(Debug, Default)]
pub struct Encoder {
    pub out: String,
}

impl Encoder {
    /// `# HELP name text` and `# TYPE name type`.
    pub fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// `name{k="v",...} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Value) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write(&mut self.out);
        self.out.push('\n');
    }
}

/// A label value: backslash, double quote and line feed are escaped (`\\`, `\"`, `\n`).
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: backslash and line feed are escaped (quotes are not, in HELP).
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("two\nlines"), "two\\nlines");
        assert_eq!(escape_help("say \"hi\"\\\n"), "say \"hi\"\\\\\\n");
        let mut e = Encoder::default();
        e.sample("m", &[("ca", "x\"y"), ("k", "")], 3u64);
        e.sample("g", &[], 0.25f64);
        e.sample("i", &[], f64::INFINITY);
        assert_eq!(e.out, "m{ca=\"x\\\"y\",k=\"\"} 3\ng 0.25\ni +Inf\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_equals_count() {
        let m = Metrics::default();
        for ms in [1, 7, 7, 300, 40_000] {
            m.request("GetCACaps", String::new(), 200, Duration::from_millis(ms));
        }
        let text = m.render(&Snapshot::default());
        let bucket = |le: &str| -> u64 {
            let prefix = format!(
                "castellan_edge_request_duration_seconds_bucket{{operation=\"GetCACaps\",le=\"{le}\"}} "
            );
            let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap();
            line[prefix.len()..].parse().unwrap()
        };
        assert_eq!(bucket("0.005"), 1);
        assert_eq!(bucket("0.01"), 3);
        assert_eq!(bucket("0.25"), 3);
        assert_eq!(bucket("0.5"), 4);
        assert_eq!(bucket("30"), 4);
        assert_eq!(bucket("+Inf"), 5);
        assert!(text.contains(
            "castellan_edge_request_duration_seconds_count{operation=\"GetCACaps\"} 5\n"
        ));
        assert!(text.contains(
            "castellan_edge_request_duration_seconds_sum{operation=\"GetCACaps\"} 40.315\n"
        ));
        // Monotonic over every bucket.
        let mut last = 0;
        for le in BUCKETS.iter().map(|b| format!("{b}")) {
            let n = bucket(&le);
            assert!(n >= last);
            last = n;
        }
    }

    #[test]
    fn unknown_profiles_collapse_to_other() {
        let m = Metrics::default();
        assert_eq!(m.profile_label(Some("nope"), false), "other");
        assert_eq!(m.profile_label(Some("devices"), true), "devices");
        // Known now, whatever the outcome of later requests.
        assert_eq!(m.profile_label(Some("devices"), false), "devices");
        assert_eq!(m.profile_label(None, true), "");
        for i in 0..MAX_PROFILES + 10 {
            m.profile_label(Some(&format!("p{i}")), true);
        }
        assert!(m.profiles.read().unwrap().len() <= MAX_PROFILES);
        m.count_request("GetCACaps", m.profile_label(Some("zzz"), true), 200);
        let text = m.render(&Snapshot::default());
        assert!(text.contains(
            "castellan_edge_requests_total{operation=\"GetCACaps\",profile=\"other\",status=\"200\"} 1\n"
        ));
    }
}
