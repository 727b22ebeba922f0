//! castellan-edge under a connection flood, and its metrics, with the real edge in front
//! of the real signer (RA key in SoftHSM2) and the strict client of the `scep` crate.
//!
//! - `a_flood_of_half_sent_requests_does_not_starve_devices`: thousands of connections
//!   that send half a request line and stop, from one address and from twenty others; a
//!   GetCACaps and a whole enrolment must still be answered within 2 s each, and every
//!   flood connection must be closed within the header timeout.
//! - `metrics_are_valid_prometheus_text_and_move_with_traffic`: `/metrics` on its own port
//!   only, every line strictly parsed, counters that move by exactly the traffic sent.
//! - `log_lines_have_no_timestamp_only_when_stderr_is_the_journal`: the shared logging
//!   set-up (castellan-systemd) leaves the timestamp to journald, and only to journald.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use scep::client::{self, Device, RequestSpec};
use tests::{Appliance, InitOptions, free_port, http};
use x509_cert::Certificate;

const ISSUING: &str = "issuing";
const SECRET: &str = "edge-limits-secret";
/// `--header-timeout` in these tests (seconds): short, so the flood test ends quickly, and
/// still longer than opening the whole flood takes (about 2.5 s here on 2 cores), so that
/// all of it is held at once.
const HEADER_TIMEOUT: u64 = 6;
/// What every flood connection sends, then nothing more.
const PARTIAL: &[u8] = b"GET /scep/x?oper";

/// A signer with a signing socket, an edge with `edge_args`, a root and an RSA issuing CA,
/// and the profile `devices` (static challenge). Quorum 1: governance is not under test.
fn appliance(edge_args: &[&str]) -> Appliance {
    let mut a = Appliance::init_with(
        1,
        &["alice"],
        &InitOptions {
            socket: true,
            socket_uid: None,
        },
    );
    a.start();
    a.start_edge_with(edge_args);
    a.create_root_and_issuing(
        "CN=Edge IT Root,O=Castellan Tests,C=US",
        ISSUING,
        "CN=Edge IT Issuing,O=Castellan Tests,C=US",
    );
    a.create_static_profile("devices", ISSUING, SECRET, &[]);
    a
}

/// From GetCACert: what to encrypt to (the NDES convention) and what signs CertReps.
fn ra_cert(a: &Appliance) -> (Vec<scep::envelope::Recipient>, Certificate) {
    let r = a.scep_get("devices", "operation=GetCACert");
    assert_eq!(r.status, 200, "GetCACert: {}", r.text());
    let bag = client::ca_certs(&r.body).unwrap();
    let to = client::recipients(&bag, client::RecipientChoice::Ndes).unwrap();
    let signer = client::reply_signer(&bag)
        .expect("an RA certificate in GetCACert")
        .clone();
    (to, signer)
}

/// Raise this process's RLIMIT_NOFILE soft limit to the hard limit; `Err` with the reason
/// if even the hard limit is below `needed` (the test is then skipped).
fn raise_nofile(needed: u64) -> Result<u64, String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if hard < needed {
        return Err(format!(
            "the RLIMIT_NOFILE hard limit is {hard}; this test needs {needed} descriptors \
             (raise it with ulimit -Hn or LimitNOFILE=)"
        ));
    }
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    Ok(hard)
}

/// A flood connection: its socket (non-blocking) and what it has read so far.
struct Held {
    tcp: std::net::TcpStream,
    connected: Instant,
    read: Vec<u8>,
    closed: Option<Instant>,
}

/// `count` connections from each of `sources` to the edge, each sending [`PARTIAL`];
/// up to 64 connects in flight at once, so thousands take well under the header timeout.
fn flood(port: u16, sources: &[Ipv4Addr], count: usize) -> Vec<Held> {
    let sources = sources.to_vec();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        let mut held = Vec::with_capacity(count * sources.len());
        let mut tasks = tokio::task::JoinSet::new();
        for source in sources.iter().flat_map(|s| std::iter::repeat_n(*s, count)) {
            if tasks.len() >= 64
                && let Some(done) = tasks.join_next().await
            {
                held.push(done.unwrap());
            }
            tasks.spawn(async move {
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.bind(SocketAddr::new(IpAddr::V4(source), 0)).unwrap();
                let tcp = sock.connect(target).await.unwrap();
                tcp.try_write(PARTIAL).unwrap();
                (tcp.into_std().unwrap(), Instant::now())
            });
        }
        while let Some(done) = tasks.join_next().await {
            held.push(done.unwrap());
        }
        held.into_iter()
            .map(|(tcp, connected)| Held {
                tcp,
                connected,
                read: Vec::new(),
                closed: None,
            })
            .collect()
    })
}

/// Read what has arrived on every open flood connection; mark those that reached EOF or
/// were reset. Returns how many are still open.
fn poll_closed(held: &mut [Held]) -> usize {
    let mut buf = [0u8; 512];
    let mut open = 0;
    for h in held.iter_mut().filter(|h| h.closed.is_none()) {
        loop {
            match h.tcp.read(&mut buf) {
                Ok(0) => {
                    h.closed = Some(Instant::now());
                    break;
                }
                Ok(n) => h.read.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    open += 1;
                    break;
                }
                Err(_) => {
                    h.closed = Some(Instant::now());
                    break;
                }
            }
        }
    }
    open
}

#[test]
fn a_flood_of_half_sent_requests_does_not_starve_devices() {
    // 2,000 from 127.0.0.1 and 2,000 from 127.0.0.2..=127.0.0.21 (100 each).
    const FROM_ONE: usize = 2000;
    const ALIASES: u8 = 20;
    const PER_ALIAS: usize = 100;
    const FROM_OTHERS: usize = ALIASES as usize * PER_ALIAS;
    // Caps small enough that the flood reaches both: 127.0.0.1 hits its per-address cap
    // (1,000 shed), then the others push the total to the global cap (500 more shed).
    const MAX: usize = 2500;
    const PER_ADDRESS: usize = 1000;
    // Our sockets, the edge's (it inherits our limit), the harness's tools.
    let needed = (FROM_ONE + FROM_OTHERS + 512) as u64;
    let hard = match raise_nofile(needed) {
        Ok(h) => h,
        Err(why) => {
            eprintln!("SKIPPED a_flood_of_half_sent_requests_does_not_starve_devices: {why}");
            return;
        }
    };
    eprintln!("RLIMIT_NOFILE hard limit {hard}");
    let metrics_port = free_port();
    let a = appliance(&[
        "--header-timeout",
        &HEADER_TIMEOUT.to_string(),
        "--max-connections",
        &MAX.to_string(),
        "--max-connections-per-address",
        &PER_ADDRESS.to_string(),
        "--metrics-listen",
        &format!("127.0.0.1:{metrics_port}"),
    ]);
    // Everything slow (RSA key generation, GetCACert) before the flood.
    let (to, ra) = ra_cert(&a);
    let device = Device::generate(2048, "CN=flood-survivor").unwrap();
    let csr = device.csr("CN=flood-survivor", Some(SECRET)).unwrap();
    let req = client::request(&device, &csr, &to, &RequestSpec::pkcs_req("tx-flood")).unwrap();

    let flood_started = Instant::now();
    let mut held = flood(a.edge_port, &[Ipv4Addr::LOCALHOST], FROM_ONE);
    let aliases: Vec<Ipv4Addr> = (0..ALIASES)
        .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i))
        .collect();
    held.extend(flood(a.edge_port, &aliases, PER_ALIAS));
    let flood_done = Instant::now();
    eprintln!(
        "{} flood connections opened in {:?}",
        held.len(),
        flood_done - flood_started
    );

    // Devices are still served, from the flooding address itself.
    let t = Instant::now();
    let caps = a.scep_get("devices", "operation=GetCACaps");
    let caps_took = t.elapsed();
    assert_eq!(caps.status, 200, "GetCACaps: {}", caps.text());
    assert!(caps.text().contains("POSTPKIOperation"), "{}", caps.text());
    assert!(
        caps_took < Duration::from_secs(2),
        "GetCACaps took {caps_took:?}"
    );

    let t = Instant::now();
    let r = a.scep_post("devices", &req.der);
    let enrol_took = t.elapsed();
    assert_eq!(r.status, 200, "PKIOperation: {}", r.text());
    let reply = client::read_reply(&r.body, &ra, &device).unwrap();
    assert_eq!(reply.status, "0", "{reply:?}");
    assert_eq!(reply.transaction_id, "tx-flood");
    assert_eq!(reply.recipient_nonce, req.sender_nonce);
    let cert = reply.certs.first().expect("the issued certificate");
    assert_eq!(
        cert.tbs_certificate().subject_public_key_info(),
        device.cert.tbs_certificate().subject_public_key_info()
    );
    assert!(
        enrol_took < Duration::from_secs(2),
        "enrolment took {enrol_took:?}"
    );
    eprintln!("under the flood: GetCACaps {caps_took:?}, enrolment {enrol_took:?}");

    // The flood was still there while the devices were served.
    let open_during = poll_closed(&mut held);
    eprintln!("{open_during} flood connections open after the device requests");
    assert!(
        open_during >= MAX / 2,
        "only {open_during} flood connections were open: the test did not hold the edge at its cap"
    );

    // Every flood connection is closed within the header timeout of the end of the flood
    // (plus scheduling slack): shed at once, or answered 408 when its head timed out.
    let deadline = flood_done + Duration::from_secs(HEADER_TIMEOUT) + Duration::from_millis(1500);
    while poll_closed(&mut held) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let still_open = poll_closed(&mut held);
    assert_eq!(
        still_open,
        0,
        "{still_open} flood connections still open {:?} after the flood",
        flood_done.elapsed()
    );
    let timed_out = held
        .iter()
        .filter(|h| h.read.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"))
        .count();
    let silent = held.iter().filter(|h| h.read.is_empty()).count();
    eprintln!(
        "flood closed {:?} after it ended: {timed_out} answered 408, {silent} shed",
        flood_done.elapsed()
    );
    assert_eq!(
        timed_out + silent,
        held.len(),
        "every connection: 408 or closed"
    );
    let header_timeout = Duration::from_secs(HEADER_TIMEOUT);
    for h in held.iter().filter(|h| !h.read.is_empty()) {
        assert!(
            String::from_utf8_lossy(&h.read)
                .ends_with("\r\n\r\nrequest head not received in time\n"),
            "{:?}",
            String::from_utf8_lossy(&h.read)
        );
        // Closed by the header timeout: not before it, and not long after.
        let lived = h.closed.unwrap() - h.connected;
        assert!(
            lived + Duration::from_millis(100) >= header_timeout
                && lived <= header_timeout + Duration::from_millis(1500),
            "a flood connection that got 408 lived {lived:?}"
        );
    }

    // What the metrics say matches.
    let m = scrape(metrics_port);
    let shed_per = m.value(
        "castellan_edge_connections_shed_total",
        &[("reason", "per_address_cap")],
    );
    let shed_global = m.value(
        "castellan_edge_connections_shed_total",
        &[("reason", "global_cap")],
    );
    let header = m.value(
        "castellan_edge_connections_timed_out_total",
        &[("phase", "header")],
    );
    eprintln!(
        "metrics: shed per address {shed_per}, global {shed_global}, header timeouts {header}"
    );
    assert_eq!(shed_per, (FROM_ONE - PER_ADDRESS) as f64);
    // The flood's own 500, and one per device connection opened at the cap (at most 4).
    let flood_global = (FROM_ONE - (FROM_ONE - PER_ADDRESS) + FROM_OTHERS - MAX) as f64;
    assert!(
        (flood_global..=flood_global + 4.0).contains(&shed_global),
        "global sheds {shed_global}"
    );
    // The victims of every shed were flood connections (the oldest idle ones).
    assert_eq!(silent as f64, shed_per + shed_global);
    assert_eq!(header, timed_out as f64);
    assert_eq!(m.value("castellan_edge_connections_open", &[]), 0.0);
    assert!(
        a.edge_log().contains("request head not received within"),
        "the edge log names the timeouts"
    );
}

// ------------------------------------------------------------------ metrics

/// One sample of the text format.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, every line parsed.
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    /// The value of the sample with exactly these labels; 0 if absent (a counter that has
    /// not moved yet is not exposed).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert!(found.len() <= 1, "duplicate samples {found:?}");
        found.first().map_or(0.0, |s| s.value)
    }
}

/// `GET /metrics` on the metrics port, parsed strictly.
fn scrape(port: u16) -> Scrape {
    let r = http(port, "GET", "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    parse_exposition(&r.text())
}

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// The Prometheus text format 0.0.4, strictly: `# HELP name text`, `# TYPE name type`
/// (before the family's samples, once), and `name{label="value",...} value`, where label
/// values escape `\`, `"` and line feeds; no blank lines; a final line feed. Histogram
/// samples (`_bucket` with `le`, `_sum`, `_count`) belong to their family.
fn parse_exposition(text: &str) -> Scrape {
    assert!(text.ends_with('\n'), "no final line feed");
    let mut types = BTreeMap::new();
    let mut helps = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "blank line");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(is_metric_name(name), "{line}");
            assert!(!help.contains('\n'));
            assert!(
                helps.insert(name.to_owned(), help.to_owned()).is_none(),
                "two HELP: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(is_metric_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "two TYPE: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {line}");
        let (name_labels, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match name_labels.split_once('{') {
            None => (name_labels, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                (name, parse_labels(body, line))
            }
        };
        assert!(is_metric_name(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        if name.ends_with("_bucket") && kind == "histogram" {
            assert!(labels.contains_key("le"), "bucket without le: {line}");
        }
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter not named _total: {line}");
            assert!(value >= 0.0, "{line}");
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Scrape { samples, types }
}

/// `k="v",k2="v2"` with the format's escapes.
fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
        assert!(is_label_name(name), "label name {name:?} in {line}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line}"),
            }
        };
        assert!(
            out.insert(name.to_owned(), value).is_none(),
            "label twice: {line}"
        );
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
            assert!(!rest.is_empty(), "trailing comma: {line}");
        } else {
            assert!(rest.is_empty(), "{line}");
        }
    }
    out
}

#[test]
fn metrics_are_valid_prometheus_text_and_move_with_traffic() {
    let metrics_port = free_port();
    let mut a = appliance(&["--metrics-listen", &format!("127.0.0.1:{metrics_port}")]);
    let caps = |m: &Scrape, profile: &str, status: &str| {
        m.value(
            "castellan_edge_requests_total",
            &[
                ("operation", "GetCACaps"),
                ("profile", profile),
                ("status", status),
            ],
        )
    };
    // The signer publishes a new CA's first CRL within seconds; wait for it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(a.edge_port, "GET", "/crl/issuing.crl", None).status != 200 {
        assert!(Instant::now() < deadline, "no CRL for {ISSUING} published");
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = scrape(metrics_port);
    assert_eq!(
        before.types["castellan_edge_request_duration_seconds"],
        "histogram"
    );
    assert_eq!(before.types["castellan_edge_connections_open"], "gauge");
    let hist_count = |m: &Scrape| {
        m.value(
            "castellan_edge_request_duration_seconds_count",
            &[("operation", "GetCACaps")],
        )
    };

    // Metrics are not served on the device port.
    let r = http(a.edge_port, "GET", "/metrics", None);
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("castellan_edge"), "{}", r.text());
    // Nor anything else on the metrics port.
    assert_eq!(http(metrics_port, "GET", "/", None).status, 404);

    for _ in 0..2 {
        assert_eq!(a.scep_get("devices", "operation=GetCACaps").status, 200);
    }
    assert_eq!(a.scep_get("ghost", "operation=GetCACaps").status, 404);
    assert_eq!(
        http(a.edge_port, "GET", "/crl/issuing.crl", None).status,
        200
    );
    let after = scrape(metrics_port);
    assert_eq!(
        caps(&after, "devices", "200") - caps(&before, "devices", "200"),
        2.0
    );
    // An unknown profile is counted, as "other", with its status.
    assert_eq!(
        caps(&after, "other", "404") - caps(&before, "other", "404"),
        1.0
    );
    assert!(
        !after
            .samples
            .iter()
            .any(|s| s.labels.get("profile").map(String::as_str) == Some("ghost")),
        "an unknown profile became a label value"
    );
    // The device port's /metrics: a 404 of no operation.
    let not_found = |m: &Scrape| {
        m.value(
            "castellan_edge_requests_total",
            &[("operation", "other"), ("profile", ""), ("status", "404")],
        )
    };
    assert_eq!(not_found(&after) - not_found(&before), 1.0);
    assert_eq!(hist_count(&after) - hist_count(&before), 3.0);
    let inf = after.value(
        "castellan_edge_request_duration_seconds_bucket",
        &[("operation", "GetCACaps"), ("le", "+Inf")],
    );
    assert_eq!(inf, hist_count(&after), "+Inf bucket equals the count");
    let crl_ok = |m: &Scrape| {
        m.value(
            "castellan_edge_requests_total",
            &[("operation", "crl"), ("profile", ""), ("status", "200")],
        )
    };
    assert_eq!(crl_ok(&after) - crl_ok(&before), 1.0);
    assert!(
        after.value("castellan_edge_connections_accepted_total", &[])
            - before.value("castellan_edge_connections_accepted_total", &[])
            >= 5.0
    );
    assert_eq!(after.value("castellan_edge_signer_up", &[]), 1.0);
    let age = after.value(
        "castellan_edge_published_cache_age_seconds",
        &[("kind", "crl"), ("ca", ISSUING)],
    );
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.name == "castellan_edge_published_cache_age_seconds"
                && s.labels.get("ca").map(String::as_str) == Some(ISSUING))
    );
    assert!((0.0..60.0).contains(&age), "{age}");

    // The signer goes away: signer_up 0; it comes back: 1, and the edge reconnected.
    a.stop();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        scrape(metrics_port).value("castellan_edge_signer_up", &[]),
        0.0
    );
    a.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    let back = loop {
        let m = scrape(metrics_port);
        if m.value("castellan_edge_signer_up", &[]) == 1.0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(back.value("castellan_edge_signer_up", &[]), 1.0);
    assert!(back.value("castellan_edge_signer_reconnects_total", &[]) >= 1.0);

    // One logging set-up (castellan-systemd): stderr is a file here, so no colour codes,
    // in either daemon's log.
    for (who, log) in [("signer", a.log()), ("edge", a.edge_log())] {
        assert!(log.contains(" INFO "), "{who} log is empty");
        assert!(
            !log.contains('\x1b'),
            "ANSI escape codes in the {who} log:\n{log}"
        );
    }
}

// ------------------------------------------------------------------ logs

/// Run `castellan-edge run` (no signer needed) with stderr to a file and `JOURNAL_STREAM`
/// set to `journal(file)`, until it is ready; its log.
fn edge_log_with(journal: impl Fn(&std::fs::Metadata) -> String) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.log");
    let log = std::fs::File::create(&path).unwrap();
    let stream = journal(&log.metadata().unwrap());
    assert!(stream.contains(':'), "{stream}");
    let mut child = std::process::Command::new(tests::bin("castellan-edge"))
        .arg("run")
        .arg("--signer-socket")
        .arg(dir.path().join("absent.sock"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("RUST_LOG", "info")
        .env("JOURNAL_STREAM", stream)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains(tests::EDGE_READY_MARKER) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains(tests::EDGE_READY_MARKER), "{text}");
    text
}

#[test]
fn log_lines_have_no_timestamp_only_when_stderr_is_the_journal() {
    use std::os::unix::fs::MetadataExt as _;
    // systemd sets JOURNAL_STREAM=DEV:INODE of the stream it gave the service.
    let journal = edge_log_with(|m| format!("{}:{}", m.dev(), m.ino()));
    for line in journal.lines() {
        let level = line.trim_start().split(' ').next().unwrap_or_default();
        assert!(
            ["INFO", "WARN", "ERROR"].contains(&level),
            "a journal line that does not start with its level: {line:?}"
        );
    }
    // An inherited JOURNAL_STREAM that is not our stderr changes nothing.
    let file = edge_log_with(|m| format!("{}:{}", m.dev(), m.ino() + 1));
    for line in file.lines() {
        assert!(
            line.starts_with("20") && line.as_bytes().get(10) == Some(&b'T'),
            "a log-file line without its timestamp: {line:?}"
        );
    }
    assert!(!journal.contains('\x1b') && !file.contains('\x1b'));
}
