//! `scep-bench`: a SCEP load generator. It fetches the CA/RA certificates,
//! pre-builds N distinct PKCSReq messages (`--keys` device keys made ahead of time and
//! used in turn, each request with its own subject and transactionID; AES-256 and SHA-256), sends them to any SCEP URL at a chosen concurrency over keep-alive
//! connections, verifies every reply (RA signature, decryption, issued key), and
//! prints enrollments/s, p50/p99 latency and how many responses verified.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use scep::client::{self, Device, RequestSpec};
use x509_cert::Certificate;

#[derive(Debug, Parser)]
#[command(name = "scep-bench", about = "SCEP enrolment load generator")]
struct Args {
    /// SCEP URL, e.g. http://127.0.0.1:8080/scep/devices
    #[arg(long)]
    url: String,
    /// Static challenge password
    #[arg(long)]
    challenge: String,
    /// Enrolments to send
    #[arg(short, long, default_value_t = 200)]
    n: usize,
    /// Requests in flight
    #[arg(short, long, default_value_t = 8)]
    concurrency: usize,
    /// Device RSA key size
    #[arg(long, default_value_t = 2048)]
    key_bits: usize,
    /// Distinct device keys, used in turn (each request still has its own transactionID and
    /// subject): RSA key generation would otherwise dominate the set-up of long runs
    #[arg(long, default_value_t = 256)]
    keys: usize,
    /// Print the summary as one JSON line too
    #[arg(long)]
    json: bool,
    /// How to choose the envelope's recipients from GetCACert, as real clients do: ndes
    /// (keyEncipherment-only certificate, else the CA), first-non-ca, all, or ca
    #[arg(long, default_value = "ndes", value_parser = parse_choice)]
    recipients: client::RecipientChoice,
}

fn parse_choice(s: &str) -> Result<client::RecipientChoice, String> {
    use client::RecipientChoice::*;
    Ok(match s {
        "ndes" => Ndes,
        "first-non-ca" => FirstNonCa,
        "all" => All,
        "ca" => Ca,
        other => return Err(format!("{other:?}: use ndes, first-non-ca, all or ca")),
    })
}

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("scep-bench: {msg}");
    std::process::exit(1)
}

struct Target {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Target {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| die("only http:// URLs"));
    let (hostport, path) = rest
        .split_once('/')
        .map_or((rest, "".to_owned()), |(h, p)| (h, format!("/{p}")));
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap_or_else(|_| die("bad port"))),
        None => (hostport.to_owned(), 80),
    };
    Target { host, port, path }
}

/// One request's index, latency and HTTP result.
type Outcome = (usize, Duration, Result<(u16, Vec<u8>), String>);

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> Sender {
    let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
        .await
        .unwrap_or_else(|e| die(format!("connect {}:{}: {e}", t.host, t.port)));
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap_or_else(|e| die(e));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

async fn send(
    s: &mut Sender,
    t: &Target,
    method: &str,
    query: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("{}?{query}", t.path))
        .header(hyper::header::HOST, format!("{}:{}", t.host, t.port))
        .header(hyper::header::CONTENT_TYPE, "application/x-pki-message")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body.to_vec()))
}

/// The certificates to encrypt to (by `choice`) and the one that signs CertReps.
fn recipient(
    der: &[u8],
    choice: client::RecipientChoice,
) -> (Vec<scep::envelope::Recipient>, Certificate) {
    let bag = client::ca_certs(der).unwrap_or_else(|e| die(format!("GetCACert: {e}")));
    let to = client::recipients(&bag, choice).unwrap_or_else(|e| die(format!("GetCACert: {e}")));
    let signer = client::reply_signer(&bag)
        .cloned()
        .unwrap_or_else(|| die("GetCACert returned no certificate"));
    (to, signer)
}

static PRINTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args = Args::parse();
    let target = Arc::new(parse_url(&args.url));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(e));

    // 1. The recipient certificate.
    let (to, ra) = rt.block_on(async {
        let mut s = connect(&target).await;
        let (status, body) = send(&mut s, &target, "GET", "operation=GetCACert", vec![])
            .await
            .unwrap_or_else(|e| die(format!("GetCACert: {e}")));
        if status != 200 {
            die(format!("GetCACert: HTTP {status}"));
        }
        recipient(&body, args.recipients)
    });

    // 2. Pre-build N messages (keys are made here, outside the measurement).
    let built = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let keys = args.keys.clamp(1, args.n.max(1));
    let per_key = keys.div_ceil(threads);
    let key_handles: Vec<_> = (0..threads)
        .map(|t| {
            let bits = args.key_bits;
            std::thread::spawn(move || {
                (t * per_key..((t + 1) * per_key).min(keys))
                    .map(|k| {
                        Device::generate(bits, &format!("CN=bench-key-{k}"))
                            .unwrap_or_else(|e| die(e))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let devices: Arc<Vec<Device>> = Arc::new(
        key_handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| die("key thread failed")))
            .collect(),
    );
    let per = args.n.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (to, devices) = (to.clone(), devices.clone());
            let challenge = args.challenge.clone();
            let n = args.n;
            std::thread::spawn(move || {
                (t * per..((t + 1) * per).min(n))
                    .map(|i| {
                        let d = devices[i % devices.len()].clone();
                        let cn = format!("CN=bench-{i}-{}", std::process::id());
                        let csr = d.csr(&cn, Some(&challenge)).unwrap_or_else(|e| die(e));
                        // A transactionID of its own (RFC 8894 §3.2.1.1 only recommends the
                        // key hash): with a shared key, the key hash would make it a retry.
                        let mut nonce = [0u8; 16];
                        scep::envelope::random(&mut nonce).unwrap_or_else(|e| die(e));
                        let tx: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
                        let req = client::request(&d, &csr, &to, &RequestSpec::pkcs_req(&tx))
                            .unwrap_or_else(|e| die(e));
                        (d, req)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let jobs: Arc<Vec<(Device, client::Request)>> = Arc::new(
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| die("builder thread failed")))
            .collect(),
    );
    eprintln!(
        "built {} requests in {:.1} s",
        jobs.len(),
        built.elapsed().as_secs_f64()
    );

    // 3. Send them.
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..args.concurrency.max(1) {
            let (jobs, next, target) = (jobs.clone(), next.clone(), target.clone());
            tasks.push(tokio::spawn(async move {
                let mut s = connect(&target).await;
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, req)) = jobs.get(i) else {
                        break;
                    };
                    let t0 = Instant::now();
                    let r = send(
                        &mut s,
                        &target,
                        "POST",
                        "operation=PKIOperation",
                        req.der.clone(),
                    )
                    .await;
                    let took = t0.elapsed();
                    if r.is_err() {
                        s = connect(&target).await;
                    }
                    // Replies are verified after the run, so the client's own RSA work
                    // (decrypting each reply) does not compete with the server for CPU.
                    out.push((i, took, r));
                }
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        all
    });
    let wall = start.elapsed();
    let verify = |(i, _, r): &Outcome| -> bool {
        let (device, req) = &jobs[*i];
        match r {
            Ok((200, body)) => client::read_reply(body, &ra, device)
                .inspect_err(|e| {
                    if !PRINTED.swap(true, Ordering::Relaxed) {
                        eprintln!("a reply does not verify: {e}");
                    }
                })
                .is_ok_and(|rep| {
                    if rep.status != "0" && !PRINTED.swap(true, Ordering::Relaxed) {
                        eprintln!(
                            "a reply has status {} ({:?}: {:?})",
                            rep.status, rep.fail_info, rep.fail_info_text
                        );
                    }
                    rep.status == "0"
                        && rep.recipient_nonce == req.sender_nonce
                        && rep.certs.iter().any(|c| {
                            spki::SubjectPublicKeyInfoOwned::from_key(&device.key.to_public_key())
                                .ok()
                                .as_ref()
                                == Some(c.tbs_certificate().subject_public_key_info())
                        })
                }),
            Ok((status, body)) => {
                if !PRINTED.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "a reply: HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    );
                }
                false
            }
            Err(e) => {
                if !PRINTED.swap(true, Ordering::Relaxed) {
                    eprintln!("a request failed: {e}");
                }
                false
            }
        }
    };
    let ok = results.iter().filter(|r| verify(r)).count();
    let mut lat: Vec<Duration> = results.iter().map(|(_, d, _)| *d).collect();
    lat.sort();
    let rate = ok as f64 / wall.as_secs_f64();
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
    println!(
        "{} enrolments in {:.2} s at concurrency {}: {:.1} enrolments/s, p50 {:.1} ms, p99 {:.1} ms, verified {}/{}",
        results.len(),
        wall.as_secs_f64(),
        args.concurrency,
        rate,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        ok,
        results.len()
    );
    if args.json {
        println!(
            "{{\"sent\":{},\"verified\":{ok},\"seconds\":{:.3},\"per_second\":{rate:.2},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"concurrency\":{}}}",
            results.len(),
            wall.as_secs_f64(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            args.concurrency
        );
    }
    if ok != results.len() {
        std::process::exit(2);
    }
}
