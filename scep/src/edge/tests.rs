//! The edge end to end over real sockets: a real HTTP client (hyper's, and curl when
//! installed) against [`super::serve`], with a fake signer speaking [`proto::wire`] on a
//! temporary unix socket and answering canned replies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Config, Profile};
use crate::client::{self, Device, RequestSpec};
use proto::wire::{self, Op, Refusal, Reply};

// ---------------------------------------------------------------- fixtures

/// A valid PKIMessage (PKCSReq) from a fresh device to a fake RA.
fn pki_message() -> &'static [u8] {
    static MSG: OnceLock<Vec<u8>> = OnceLock::new();
    MSG.get_or_init(|| {
        let ra = Device::generate(2048, "CN=fake RA").unwrap();
        let device = Device::generate(2048, "CN=x").unwrap();
        let csr = device.csr("CN=x", Some("secret")).unwrap();
        client::request(
            &device,
            &csr,
            &[crate::envelope::Recipient::of(&ra.cert).unwrap()],
            &RequestSpec::pkcs_req("tx"),
        )
        .unwrap()
        .der
    })
}

const CAPS: [&str; 3] = ["AES", "POSTPKIOperation", "SHA-256"];

/// A fake castellan-signer: records every operation, answers by profile name.
/// - `refused`: `Refused` (not found for GetCA*, bad request for PKIOperation);
/// - `hang`: never answers; `slow`: answers after 300 ms;
/// - `wrong`: a reply of the wrong kind;
/// - `single`: GetCACert without RA (`ra: false`);
/// - otherwise: canned caps, `b"chain"`, `b"next"`, and PKIOperation echoes the message.
struct FakeSigner {
    path: PathBuf,
    seen: Arc<Mutex<Vec<Op>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FakeSigner {
    fn start(path: &Path) -> FakeSigner {
        Self::start_with_version(path, wire::VERSION)
    }

    fn start_with_version(path: &Path, version: u32) -> FakeSigner {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (seen, tasks) = (seen.clone(), tasks.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let t = tokio::spawn(fake_connection(stream, seen.clone(), version));
                    tasks.lock().unwrap().push(t);
                }
            })
        };
        tasks.lock().unwrap().push(accept);
        FakeSigner {
            path: path.to_owned(),
            seen,
            tasks,
        }
    }

    fn ops(&self) -> Vec<Op> {
        self.seen.lock().unwrap().clone()
    }

    fn saw_pki_operation(&self) -> bool {
        self.ops()
            .iter()
            .any(|o| matches!(o, Op::PkiOperation { .. }))
    }

    /// Go away: close every connection and remove the socket.
    fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for FakeSigner {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn fake_connection(stream: tokio::net::UnixStream, seen: Arc<Mutex<Vec<Op>>>, version: u32) {
    let (mut rd, wr) = stream.into_split();
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let mut replies = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if rd.read_exact(&mut len).await.is_err() {
            break;
        }
        let len = wire::check_len::<Op>(u32::from_be_bytes(len)).unwrap();
        let mut body = vec![0; len];
        rd.read_exact(&mut body).await.unwrap();
        let (id, op): (u64, Op) = wire::decode(&body).unwrap();
        seen.lock().unwrap().push(op.clone());
        let wr = wr.clone();
        replies.push(tokio::spawn(async move {
            let Some((delay, reply)) = canned(op, version) else {
                return;
            };
            tokio::time::sleep(delay).await;
            let frame = wire::encode(id, &reply).unwrap();
            let _ = wr.lock().await.write_all(&frame).await;
        }));
    }
    for r in replies {
        r.abort();
    }
}

fn canned(op: Op, version: u32) -> Option<(Duration, Reply)> {
    let now = Duration::ZERO;
    let refused = |reason: Refusal, message: &str| Reply::Refused {
        reason,
        message: message.into(),
    };
    let profile = match &op {
        Op::Hello { .. } => return Some((now, Reply::Hello { version })),
        Op::GetCaCaps { profile }
        | Op::GetCaCert { profile }
        | Op::GetNextCaCert { profile }
        | Op::PkiOperation { profile, .. } => profile.clone(),
        Op::GetCrl { ca, .. } | Op::GetCaCertByName { ca, .. } => ca.clone(),
        // OCSP: echo the request as the "response".
        Op::Ocsp { request } => {
            let reply = Reply::Ocsp {
                der: request.clone(),
                produced_at: None,
                next_update: None,
            };
            return Some((now, reply));
        }
    };
    let delay = match profile.as_str() {
        "hang" => return None,
        "slow" => Duration::from_millis(300),
        _ => now,
    };
    let reply = match (op, profile.as_str()) {
        (Op::PkiOperation { .. }, "refused") => refused(Refusal::BadRequest, "challenge required"),
        (_, "refused") => refused(Refusal::NotFound, "no such profile"),
        (_, "wrong") => Reply::Hello { version },
        (Op::GetCaCaps { .. }, _) => Reply::Caps {
            caps: CAPS.iter().map(|c| (*c).to_owned()).collect(),
        },
        (Op::GetCaCert { .. }, p) => Reply::CaCert {
            der: b"chain".to_vec(),
            ra: p != "single",
        },
        (Op::GetNextCaCert { .. }, _) => Reply::CaCert {
            der: b"next".to_vec(),
            ra: true,
        },
        (Op::PkiOperation { message, .. }, _) => Reply::CertRep { der: message },
        (Op::GetCrl { .. }, ca) => Reply::Published {
            der: format!("crl-of-{ca}").into_bytes(),
            issued_at: 1_800_000_000,
            next_update: Some(1_800_604_800),
            etag: format!("\"{ca}-1\""),
            offset: 0,
            total: None,
        },
        (Op::GetCaCertByName { .. }, ca) => Reply::Published {
            der: format!("cert-of-{ca}").into_bytes(),
            issued_at: 1_800_000_000,
            next_update: None,
            etag: "\"c1\"".into(),
            offset: 0,
            total: None,
        },
        (Op::Hello { .. } | Op::Ocsp { .. }, _) => return None,
    };
    Some((delay, reply))
}

/// A running edge on 127.0.0.1, stopped on drop.
struct Edge {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), super::Error>>>,
}

impl Edge {
    async fn start(config: Config) -> Edge {
        Edge::start_with(config, None).await
    }

    /// Also serve metrics on `metrics`.
    async fn start_with(config: Config, metrics: Option<tokio::net::TcpListener>) -> Edge {
        let listener = super::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(super::serve_with_metrics(
            listener,
            metrics,
            config,
            async move {
                let _ = rx.await;
            },
        ));
        Edge {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stop and check that `serve` returns cleanly.
    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let r = tokio::time::timeout(Duration::from_secs(5), self.task.take().unwrap()).await;
        assert!(matches!(r, Ok(Ok(Ok(())))), "{r:?}");
    }

    async fn get(&self, uri: &str) -> Answer {
        http(self.addr, "GET", uri, Vec::new()).await
    }

    async fn post(&self, uri: &str, body: Vec<u8>) -> Answer {
        http(self.addr, "POST", uri, body).await
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim_end().to_owned()
    }
    #[track_caller]
    fn expect(&self, status: u16, content_type: &str) -> &Self {
        assert_eq!(
            (self.status, self.content_type.as_str()),
            (status, content_type),
            "{}",
            self.text()
        );
        self
    }
    #[track_caller]
    fn error(&self, status: u16, reason: &str) {
        self.expect(status, "text/plain; charset=utf-8");
        assert!(
            self.text().contains(reason),
            "{:?} lacks {reason:?}",
            self.text()
        );
    }
}

/// One request with hyper's client on a fresh connection; checks Content-Length.
async fn http(addr: SocketAddr, method: &str, uri: &str, body: Vec<u8>) -> Answer {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header(hyper::header::HOST, "edge.test")
        .header(hyper::header::CONTENT_TYPE, "application/x-pki-message")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let content_type = header(hyper::header::CONTENT_TYPE);
    let length = header(hyper::header::CONTENT_LENGTH);
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    assert_eq!(
        length,
        body.len().to_string(),
        "Content-Length on every answer"
    );
    Answer {
        status,
        content_type,
        body,
    }
}

/// Send raw bytes on a fresh connection (with `Connection: close` semantics: read to EOF).
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut resp)).await;
    String::from_utf8_lossy(&resp).into_owned()
}

fn config(socket: &Path) -> Config {
    let mut c = Config::new(socket.to_owned());
    c.signer.request_timeout = Duration::from_millis(500);
    c.signer.backoff_min = Duration::from_millis(20);
    c.signer.backoff_max = Duration::from_millis(50);
    c
}

fn socket_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("signer.sock")
}

const PKI_OP: &str = "operation=PKIOperation";

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn three_path_styles_operations_and_content_types() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSigner::start(&socket_in(&dir));
    let mut cfg = config(&socket_in(&dir));
    cfg.default_profile = Some(Profile::new("dflt").unwrap());
    let edge = Edge::start(cfg).await;

    let caps = CAPS.join("\n") + "\n";
    for uri in [
        "/scep/devices?operation=GetCACaps",
        "/scep/devices/pkiclient.exe?operation=GetCACaps",
        "/cgi-bin/pkiclient.exe?operation=GetCACaps&profile=devices",
        "/cgi-bin/pkiclient.exe?operation=GetCACaps",
    ] {
        let a = edge.get(uri).await;
        a.expect(200, "text/plain");
        assert_eq!(a.body, caps.as_bytes(), "{uri}");
    }
    let a = edge
        .get("/scep/devices?operation=GetCACert&message=ca")
        .await;
    a.expect(200, "application/x-x509-ca-ra-cert");
    assert_eq!(a.body, b"chain");
    edge.get("/scep/single?operation=GetCACert")
        .await
        .expect(200, "application/x-x509-ca-cert");
    let a = edge
        .get("/cgi-bin/pkiclient.exe?operation=GetNextCACert&profile=devices")
        .await;
    a.expect(200, "application/x-x509-next-ca-cert");
    assert_eq!(a.body, b"next");

    // What reaches the signer names the right profile.
    assert!(fake.ops().contains(&Op::GetCaCaps {
        profile: "dflt".into()
    }));
    assert!(fake.ops().contains(&Op::GetNextCaCert {
        profile: "devices".into()
    }));

    edge.get("/scep/devices?operation=Frobnicate")
        .await
        .error(400, "unknown operation");
    edge.get("/scep/devices")
        .await
        .error(400, "missing operation");
    edge.get("/scep/Devices?operation=GetCACaps")
        .await
        .error(404, "invalid profile");
    edge.get("/scep/a%20b?operation=GetCACaps")
        .await
        .error(404, "invalid profile");
    let long = format!("/scep/{}?operation=GetCACaps", "a".repeat(65));
    edge.get(&long).await.error(404, "invalid profile");
    edge.get("/cgi-bin/pkiclient.exe?operation=GetCACaps&profile=..")
        .await
        .error(404, "invalid profile");
    edge.get("/index.html").await.error(404, "not found");
    edge.get("/crl/x.pem").await.error(404, "not found");
    edge.get("/crl/../x.crl").await.error(404, "not found");
    let crl = edge.get("/crl/x.crl").await;
    crl.expect(200, "application/pkix-crl");
    assert_eq!(crl.body, b"crl-of-x");
    let aia = edge.get("/aia/x.crt").await;
    aia.expect(200, "application/pkix-cert");
    assert_eq!(aia.body, b"cert-of-x");
    let a = http(
        edge.addr,
        "PUT",
        "/scep/devices?operation=GetCACaps",
        vec![],
    )
    .await;
    a.error(405, "method not allowed");
    let a = http(
        edge.addr,
        "DELETE",
        "/scep/devices?operation=GetCACaps",
        vec![],
    )
    .await;
    a.error(405, "method not allowed");

    // Without --default-profile, the bare cgi-bin path names no profile.
    let plain = Edge::start(config(&socket_in(&dir))).await;
    plain
        .get("/cgi-bin/pkiclient.exe?operation=GetCACaps")
        .await
        .error(404, "no profile");
    plain.shutdown().await;
    edge.shutdown().await;
}

#[tokio::test]
async fn pki_operation_over_post_and_every_get_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSigner::start(&socket_in(&dir));
    let edge = Edge::start(config(&socket_in(&dir))).await;
    let msg = pki_message().to_vec();

    let a = edge
        .post(&format!("/scep/devices?{PKI_OP}"), msg.clone())
        .await;
    a.expect(200, "application/x-pki-message");
    assert_eq!(a.body, msg, "the signer got the exact bytes");

    let std = base64::engine::general_purpose::STANDARD.encode(&msg);
    assert!(std.contains('+') && std.contains('/'));
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&msg);
    let escaped = std
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    for (what, m) in [
        ("standard, raw '+'", std.clone()),
        ("standard, unpadded", std.trim_end_matches('=').to_owned()),
        ("URL-encoded", escaped),
        ("'+' turned into spaces", std.replace('+', "%20")),
        ("URL-safe alphabet", url_safe),
    ] {
        for path in ["/scep/devices", "/cgi-bin/pkiclient.exe"] {
            let uri = format!("{path}?{PKI_OP}&profile=devices&message={m}");
            let a = edge.get(&uri).await;
            a.expect(200, "application/x-pki-message");
            assert_eq!(a.body, msg, "{what}");
        }
    }
    let n = fake
        .ops()
        .iter()
        .filter(|o| matches!(o, Op::PkiOperation { message, profile } if *message == msg && profile == "devices"))
        .count();
    assert_eq!(n, 11);

    edge.get(&format!("/scep/devices?{PKI_OP}"))
        .await
        .error(400, "missing message");
    edge.get(&format!("/scep/devices?{PKI_OP}&message=%ZZ"))
        .await
        .error(400, "percent");
    // Longer than http::Uri allows (64 KiB): sent raw, and hyper answers 414 itself.
    let huge = format!("/scep/devices?{PKI_OP}&message={}", "A".repeat(100 * 1024));
    let resp = raw(
        edge.addr,
        format!("GET {huge} HTTP/1.1\r\nHost: e\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 414"), "{resp}");
    edge.shutdown().await;
}

#[tokio::test]
async fn bodies_over_max_body_get_413_without_reaching_the_signer() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSigner::start(&socket_in(&dir));
    let mut cfg = config(&socket_in(&dir));
    cfg.max_body = 1024;
    let edge = Edge::start(cfg).await;

    let a = edge
        .post(&format!("/scep/devices?{PKI_OP}"), vec![0x30; 2000])
        .await;
    a.error(413, "larger than 1024");

    // Chunked, no Content-Length: Limited stops reading at the cap.
    let mut req = format!(
        "POST /scep/devices?{PKI_OP} HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..4 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[0x30; 0x200]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let resp = raw(edge.addr, &req).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("content-length:"),
        "{resp}"
    );

    assert!(!fake.saw_pki_operation());
    edge.shutdown().await;
}

#[tokio::test]
async fn garbage_pki_messages_are_refused_before_the_signer() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSigner::start(&socket_in(&dir));
    let edge = Edge::start(config(&socket_in(&dir))).await;

    edge.post(&format!("/scep/devices?{PKI_OP}"), b"hello".to_vec())
        .await
        .error(400, "ContentInfo");
    edge.post(&format!("/scep/devices?{PKI_OP}"), vec![])
        .await
        .error(400, "PKIMessage must be");
    let mut truncated = pki_message().to_vec();
    truncated.truncate(truncated.len() / 2);
    edge.post(&format!("/scep/devices?{PKI_OP}"), truncated)
        .await
        .error(400, "");
    // A bad signature is not screened here: the signer parses and verifies each message
    // once and answers 400 (tests/tests/scep.rs, "bad signature", with the real binaries).
    edge.get(&format!("/scep/devices?{PKI_OP}&message=aGVsbG8"))
        .await
        .error(400, "ContentInfo");
    edge.get(&format!("/scep/devices?{PKI_OP}&message=a*b"))
        .await
        .error(400, "not base64");

    assert!(!fake.saw_pki_operation(), "{:?}", fake.ops());
    edge.shutdown().await;
}

#[tokio::test]
async fn refusals_keep_the_signers_status_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let _fake = FakeSigner::start(&socket_in(&dir));
    let edge = Edge::start(config(&socket_in(&dir))).await;

    edge.get("/scep/refused?operation=GetCACaps")
        .await
        .error(404, "no such profile");
    edge.get("/scep/refused?operation=GetCACert")
        .await
        .error(404, "no such profile");
    edge.get("/scep/refused?operation=GetNextCACert")
        .await
        .error(404, "no such profile");
    edge.post(
        "/scep/refused?operation=PKIOperation",
        pki_message().to_vec(),
    )
    .await
    .error(400, "challenge required");
    edge.get("/scep/wrong?operation=GetCACaps")
        .await
        .error(502, "bad gateway");
    edge.post("/scep/wrong?operation=PKIOperation", pki_message().to_vec())
        .await
        .error(502, "bad gateway");
    edge.shutdown().await;
}

#[tokio::test]
async fn absent_signer_is_503() {
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::start(config(&socket_in(&dir))).await;
    for _ in 0..3 {
        edge.get("/scep/devices?operation=GetCACaps")
            .await
            .error(503, "signer unavailable");
        edge.post(&format!("/scep/devices?{PKI_OP}"), pki_message().to_vec())
            .await
            .error(503, "signer unavailable");
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn wrong_protocol_version_is_503() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSigner::start_with_version(&socket_in(&dir), wire::VERSION + 1);
    let edge = Edge::start(config(&socket_in(&dir))).await;
    edge.get("/scep/devices?operation=GetCACaps")
        .await
        .error(503, "signer unavailable");
    assert_eq!(
        fake.ops(),
        vec![Op::Hello {
            version: wire::VERSION
        }]
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn cache_answers_then_serves_last_good_copy_when_signer_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSigner::start(&socket_in(&dir));

    // Within the TTL the signer is asked once.
    let edge = Edge::start(config(&socket_in(&dir))).await;
    for _ in 0..3 {
        edge.get("/scep/devices?operation=GetCACaps")
            .await
            .expect(200, "text/plain");
    }
    let asked = |fake: &FakeSigner| {
        fake.ops()
            .iter()
            .filter(|o| matches!(o, Op::GetCaCaps { .. }))
            .count()
    };
    assert_eq!(asked(&fake), 1);
    edge.shutdown().await;

    // With every copy stale, the signer is asked each time; once it is gone, the last
    // good copy is served, and what was never fetched is 503.
    let mut cfg = config(&socket_in(&dir));
    cfg.cache_ttl = Duration::ZERO;
    let edge = Edge::start(cfg).await;
    let caps = edge.get("/scep/devices?operation=GetCACaps").await;
    let cert = edge.get("/scep/devices?operation=GetCACert").await;
    let next = edge.get("/scep/devices?operation=GetNextCACert").await;
    edge.get("/scep/devices?operation=GetCACaps")
        .await
        .expect(200, "text/plain");
    assert_eq!(asked(&fake), 3);
    fake.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..2 {
        let a = edge.get("/scep/devices?operation=GetCACaps").await;
        a.expect(200, "text/plain");
        assert_eq!(a.body, caps.body);
        let a = edge.get("/scep/devices?operation=GetCACert").await;
        a.expect(200, "application/x-x509-ca-ra-cert");
        assert_eq!(a.body, cert.body);
        let a = edge.get("/scep/devices?operation=GetNextCACert").await;
        a.expect(200, "application/x-x509-next-ca-cert");
        assert_eq!(a.body, next.body);
    }
    edge.get("/scep/other?operation=GetCACaps")
        .await
        .error(503, "signer unavailable");
    edge.post(&format!("/scep/devices?{PKI_OP}"), pki_message().to_vec())
        .await
        .error(503, "signer unavailable");
    edge.shutdown().await;
}

#[tokio::test]
async fn one_connection_multiplexes_out_of_order_replies_and_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSigner::start(&socket_in(&dir));
    let mut cfg = config(&socket_in(&dir));
    cfg.signer.connections = 1;
    cfg.cache_ttl = Duration::ZERO;
    let edge = Arc::new(Edge::start(cfg).await);

    let slow = {
        let edge = edge.clone();
        tokio::spawn(async move {
            let a = edge.get("/scep/slow?operation=GetCACaps").await;
            (a.status, std::time::Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fast: Vec<_> = (0..8)
        .map(|_| {
            let edge = edge.clone();
            tokio::spawn(async move {
                let a = edge.get("/scep/fast?operation=GetCACaps").await;
                (a.status, std::time::Instant::now())
            })
        })
        .collect();
    let (slow_status, slow_done) = slow.await.unwrap();
    assert_eq!(slow_status, 200);
    for f in fast {
        let (status, done) = f.await.unwrap();
        assert_eq!(status, 200);
        assert!(
            done < slow_done,
            "fast replies are not held behind the slow one"
        );
    }
    // The signer never answers: the per-request timeout (500 ms here) gives 503.
    let started = std::time::Instant::now();
    edge.get("/scep/hang?operation=GetCACaps")
        .await
        .error(503, "signer unavailable");
    assert!(started.elapsed() < Duration::from_secs(5));
    // ...and the connection still works.
    edge.get("/scep/fast?operation=GetCACaps")
        .await
        .expect(200, "text/plain");

    let hellos = fake
        .ops()
        .iter()
        .filter(|o| matches!(o, Op::Hello { .. }))
        .count();
    assert_eq!(hellos, 1, "one connection carried everything");
    Arc::try_unwrap(edge).ok().unwrap().shutdown().await;
}

#[tokio::test]
async fn reconnects_when_the_signer_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let sock = socket_in(&dir);
    let fake = FakeSigner::start(&sock);
    let edge = Edge::start(config(&sock)).await;
    let uri = format!("/scep/devices?{PKI_OP}");
    edge.post(&uri, pki_message().to_vec())
        .await
        .expect(200, "application/x-pki-message");

    fake.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    edge.post(&uri, pki_message().to_vec())
        .await
        .error(503, "signer unavailable");

    let fake = FakeSigner::start(&sock);
    tokio::time::sleep(Duration::from_millis(100)).await; // past the back-off
    for _ in 0..4 {
        edge.post(&uri, pki_message().to_vec())
            .await
            .expect(200, "application/x-pki-message");
    }
    assert!(fake.saw_pki_operation());
    edge.shutdown().await;
}

#[tokio::test]
async fn in_flight_requests_fail_fast_when_the_signer_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let sock = socket_in(&dir);
    let fake = FakeSigner::start(&sock);
    let mut cfg = config(&sock);
    cfg.signer.request_timeout = Duration::from_secs(20);
    let edge = Arc::new(Edge::start(cfg).await);
    let hung = {
        let edge = edge.clone();
        tokio::spawn(async move { edge.get("/scep/hang?operation=GetCACaps").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    fake.stop();
    let a = hung.await.unwrap();
    a.error(503, "signer unavailable");
    assert!(started.elapsed() < Duration::from_secs(5));
    Arc::try_unwrap(edge).ok().unwrap().shutdown().await;
}

/// A real third-party client, when installed.
#[tokio::test]
async fn curl_get_and_post() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _fake = FakeSigner::start(&socket_in(&dir));
    let edge = Edge::start(config(&socket_in(&dir))).await;
    let msg_file = dir.path().join("req.der");
    std::fs::write(&msg_file, pki_message()).unwrap();
    let base = format!("http://{}", edge.addr);
    let curl = move |out: PathBuf, args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("curl")
                .args(["-sS", "-w", "%{http_code} %{content_type}", "-o"])
                .arg(out)
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let caps = dir.path().join("caps.txt");
    let out = curl(
        caps.clone(),
        vec![format!("{base}/scep/devices?operation=GetCACaps")],
    )
    .await
    .unwrap();
    assert_eq!(out, "200 text/plain");
    assert!(
        std::fs::read_to_string(caps)
            .unwrap()
            .contains("POSTPKIOperation\n")
    );
    let out = curl(
        dir.path().join("rep.der"),
        vec![
            "--data-binary".into(),
            format!("@{}", msg_file.display()),
            "-H".into(),
            "Content-Type: application/x-pki-message".into(),
            format!("{base}/cgi-bin/pkiclient.exe?operation=PKIOperation&profile=devices"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "200 application/x-pki-message");
    assert_eq!(
        std::fs::read(dir.path().join("rep.der")).unwrap(),
        pki_message()
    );
    // curl's --data-urlencode turns '+' into %2B: the GET form.
    let b64 = base64::engine::general_purpose::STANDARD.encode(pki_message());
    let out = curl(
        dir.path().join("rep2.der"),
        vec![
            "-G".into(),
            "--data".into(),
            "operation=PKIOperation".into(),
            "--data-urlencode".into(),
            format!("message={b64}"),
            format!("{base}/scep/devices/pkiclient.exe"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "200 application/x-pki-message");
    assert_eq!(
        std::fs::read(dir.path().join("rep2.der")).unwrap(),
        pki_message()
    );
    edge.shutdown().await;
}

// ---------------------------------------------------------------- limits and metrics

/// Connect from `source` (a loopback alias) to `addr` and send `bytes`.
async fn connect_from(source: &str, addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    let mut tcp = sock.connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    tcp
}

/// Read to EOF (or reset) within `limit`; what was read, or None if still open.
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(limit, tcp.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

const PARTIAL: &[u8] = b"GET /scep/x?oper";

#[tokio::test]
async fn malformed_heads_get_a_status_and_a_short_reason() {
    let dir = tempfile::tempdir().unwrap();
    let _fake = FakeSigner::start(&socket_in(&dir));
    let edge = Edge::start(config(&socket_in(&dir))).await;
    let r = raw(edge.addr, b"GARBAGE\x01 / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
    assert!(r.contains("Content-Type: text/plain; charset=utf-8"), "{r}");
    assert!(
        r.ends_with("\r\n\r\nmalformed request line or header\n"),
        "{r}"
    );
    let r = raw(
        edge.addr,
        b"GET /scep/x?operation=GetCACaps HTTP/1.1\r\nBad Header\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    assert!(r.contains("malformed request line or header"), "{r}");
    // An answer of the service is never rewritten, even a 400.
    edge.get("/scep/devices?operation=Nope")
        .await
        .error(400, "unknown operation");
    edge.shutdown().await;
}

#[tokio::test]
async fn heads_time_out_with_408_and_idle_keep_alives_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let _fake = FakeSigner::start(&socket_in(&dir));
    let mut cfg = config(&socket_in(&dir));
    cfg.limits.header_timeout = Duration::from_millis(400);
    cfg.limits.idle_timeout = Duration::from_millis(300);
    let edge = Edge::start(cfg).await;

    let started = std::time::Instant::now();
    let mut partial = connect_from("127.0.0.1", edge.addr, PARTIAL).await;
    let mut silent = connect_from("127.0.0.1", edge.addr, b"").await;
    let r = closed_within(&mut partial, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(r.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{r}");
    assert!(r.ends_with("request head not received in time\n"), "{r}");
    // Nothing was sent: closed without an answer.
    assert_eq!(
        closed_within(&mut silent, Duration::from_secs(3))
            .await
            .unwrap(),
        ""
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "{took:?}"
    );

    // Keep-alive: answered, then closed once idle.
    let mut ka = connect_from(
        "127.0.0.1",
        edge.addr,
        b"GET /scep/devices?operation=GetCACaps HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let started = std::time::Instant::now();
    let r = closed_within(&mut ka, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "closed before idle"
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn caps_shed_the_longest_idle_connections_and_new_requests_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let _fake = FakeSigner::start(&socket_in(&dir));
    let mut cfg = config(&socket_in(&dir));
    cfg.limits.max_connections = 20;
    cfg.limits.max_per_address = 10;
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let edge = Edge::start_with(cfg, Some(metrics)).await;

    let mut a = Vec::new();
    for _ in 0..10 {
        a.push(connect_from("127.0.0.1", edge.addr, PARTIAL).await);
    }
    let mut b = Vec::new();
    for _ in 0..15 {
        b.push(connect_from("127.0.0.2", edge.addr, PARTIAL).await);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // 127.0.0.2's five oldest were shed by its own cap; 127.0.0.1 is untouched so far.
    for c in &mut b[..5] {
        assert!(closed_within(c, Duration::from_secs(2)).await.is_some());
    }
    for c in a.iter_mut().chain(&mut b[5..]) {
        assert!(closed_within(c, Duration::from_millis(50)).await.is_none());
    }
    // 20 open: a new device is served, at the expense of the globally oldest idle one.
    let reply = connect_from(
        "127.0.0.3",
        edge.addr,
        b"GET /scep/devices?operation=GetCACaps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let mut reply = reply;
    let r = closed_within(&mut reply, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
    assert!(
        closed_within(&mut a[0], Duration::from_secs(2))
            .await
            .is_some()
    );

    let text = http(metrics_addr, "GET", "/metrics", Vec::new())
        .await
        .text();
    let value = |line: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{line} not in\n{text}"))
    };
    assert_eq!(
        value("castellan_edge_connections_shed_total{reason=\"per_address_cap\"}"),
        5
    );
    assert_eq!(
        value("castellan_edge_connections_shed_total{reason=\"global_cap\"}"),
        1
    );
    assert_eq!(value("castellan_edge_connections_accepted_total"), 26);
    assert_eq!(value("castellan_edge_connections_open"), 10 + 10 - 1);
    edge.shutdown().await;
}

#[tokio::test]
async fn metrics_only_on_their_port_and_counters_move() {
    let dir = tempfile::tempdir().unwrap();
    let _fake = FakeSigner::start(&socket_in(&dir));
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maddr = metrics.local_addr().unwrap();
    let edge = Edge::start_with(config(&socket_in(&dir)), Some(metrics)).await;
    edge.get("/metrics").await.error(404, "not found");
    http(maddr, "GET", "/other", Vec::new())
        .await
        .error(404, "not found");
    edge.get("/scep/devices?operation=GetCACaps")
        .await
        .expect(200, "text/plain");
    edge.get("/scep/refused?operation=GetCACaps").await;
    let a = http(maddr, "GET", "/metrics", Vec::new()).await;
    a.expect(200, "text/plain; version=0.0.4; charset=utf-8");
    let text = a.text();
    for want in [
        "castellan_edge_requests_total{operation=\"GetCACaps\",profile=\"devices\",status=\"200\"} 1",
        "castellan_edge_requests_total{operation=\"GetCACaps\",profile=\"other\",status=\"404\"} 1",
        "castellan_edge_requests_total{operation=\"other\",profile=\"\",status=\"404\"} 1",
        "castellan_edge_request_duration_seconds_count{operation=\"GetCACaps\"} 2",
        "castellan_edge_signer_up 1",
    ] {
        assert!(text.lines().any(|l| l == want), "{want} not in\n{text}");
    }
    edge.shutdown().await;
}
