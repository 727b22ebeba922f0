//! An emulator of the Microsoft services castellan-mdm talks to, for tests on machines
//! that reach none of them: the Entra ID token endpoint, Graph's endpoint discovery, and
//! Intune's SCEP validation and PKI connector services, over HTTPS on loopback with a test
//! CA. It checks what the real services check, from the partner API contract
//! (../shared/reference/intune-scep-api.md): client credentials, bearer tokens with the
//! right audience and not expired, the `api-version` and `client-request-id` headers, the
//! JSON field names and types (no others), that a notification's transactionID and CSR
//! are those of a validated request, and it hands out revocation requests.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use der::Decode;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use serde_json::{Value, json};

pub const TENANT: &str = "contoso.onmicrosoft.com";
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_SECRET: &str = "emulated-client-secret";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const INTUNE_SCOPE: &str = "https://api.manage.microsoft.com//.default";

/// What the emulator saw and how it behaves; tests read and change it.
#[derive(Debug, Default)]
pub struct State {
    /// Challenges Intune "generated" for devices; validateRequest succeeds only for these.
    pub valid_challenges: HashSet<String>,
    /// `expires_in` of new tokens.
    pub token_ttl: u64,
    tokens: HashMap<String, (&'static str, Instant)>,
    pub tokens_issued: HashMap<&'static str, u32>,
    pub discoveries: u32,
    /// While positive, discovery hands out a dead SCEP service address (then decrements).
    pub dead_discoveries: u32,
    /// Validated requests: transactionID -> base64 CSR.
    pub validated: HashMap<String, String>,
    pub validations: u32,
    pub success_notifications: Vec<Value>,
    pub failure_notifications: Vec<Value>,
    /// Answer successNotification with HTTP 500.
    pub fail_success_notifications: bool,
    /// The app registration's certificate (DER), for certificate credentials: a client
    /// assertion must be signed by its key and name it by `x5t`.
    pub client_cert: Option<Vec<u8>>,
    /// Answer validateRequest with this status and raw body instead (malformed answers).
    pub validate_answer: Option<(u16, Vec<u8>)>,
    /// Requests handed out by downloadRevocationRequests.
    pub revocation_queue: Vec<Value>,
    pub revocation_results: Vec<Value>,
    /// Every refusal the emulator made, with its reason (tests assert on none or some).
    pub refusals: Vec<String>,
    /// How the webhook at `/hook` answers, its HMAC key, and what it was sent.
    pub hook: Hook,
    pub hook_key: Vec<u8>,
    pub hook_bodies: Vec<Value>,
}

/// What the emulated webhook answers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    #[default]
    Allow,
    Deny,
    /// `{"allowed": true}`: not the contract's shape.
    Malformed,
    /// Answers allow after 4 s (longer than the connector waits).
    Slow,
}

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    /// The test CA the emulator's certificate chains to (the connector's trust file).
    pub ca_file: PathBuf,
    _runtime: tokio::runtime::Runtime,
}

impl State {
    /// Forget every token handed out, as if all had expired early: the next call with one
    /// gets 401.
    pub fn expire_tokens(&mut self) {
        self.tokens.clear();
    }
}

impl Emulator {
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Start on a free loopback port, with a CA and server certificate made in `dir`.
    pub fn start(dir: &Path) -> Emulator {
        std::fs::create_dir_all(dir).unwrap();
        let ca = crate::ext_root(dir, "ca", "/CN=Emulated Microsoft Root");
        crate::ext_issue(
            dir,
            "server",
            "/CN=127.0.0.1",
            &ca,
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        );
        let tls = server_tls(&dir.join("server.pem"), &dir.join("server.key"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            token_ttl: 3600,
            ..State::default()
        }));
        let s = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let tls = tls.clone();
                let s = s.clone();
                tokio::spawn(async move {
                    let Ok(stream) = tls.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(req, s, port).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Emulator {
            port,
            state,
            ca_file: dir.join("ca.pem"),
            _runtime: runtime,
        }
    }
}

fn server_tls(cert: &Path, key: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

type Resp = hyper::Response<Full<Bytes>>;

fn respond(status: u16, body: Value) -> Resp {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// An OData-style error, as the services answer one.
fn refuse(s: &Mutex<State>, status: u16, why: String) -> Resp {
    s.lock().unwrap().refusals.push(why.clone());
    respond(
        status,
        json!({"error": {"code": "BadRequest", "message": why}}),
    )
}

fn form(body: &[u8]) -> HashMap<String, String> {
    let dec = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && i + 2 < b.len()
                && let Ok(v) =
                    u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (dec(k), dec(v)))
        .collect()
}

/// The JSON object at `key` must have exactly these fields with these types
/// ("s" string, "i" integer, "b" bool, "s?" string or null).
fn shape(v: &Value, key: &str, fields: &[(&str, &str)]) -> Result<Value, String> {
    let obj = v
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get(key))
        .and_then(Value::as_object)
        .ok_or_else(|| format!("the body must be {{\"{key}\": {{…}}}} and nothing else"))?;
    for (k, _) in obj {
        if !fields.iter().any(|(f, _)| f == k) {
            return Err(format!("unknown field {k:?} in {key}"));
        }
    }
    for (f, t) in fields {
        let x = obj.get(*f).ok_or_else(|| format!("{key}.{f} is missing"))?;
        let ok = match *t {
            "s" => x.is_string(),
            "s?" => x.is_string() || x.is_null(),
            "i" => x.is_i64() || x.is_u64(),
            "b" => x.is_boolean(),
            _ => false,
        };
        if !ok {
            return Err(format!("{key}.{f} has the wrong type: {x}"));
        }
    }
    Ok(Value::Object(obj.clone()))
}

/// The challengePassword of a base64 DER PKCS#10, if the CSR parses.
fn challenge_of(csr_b64: &str) -> Result<Option<String>, String> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(csr_b64)
        .map_err(|_| {
            "certificateRequest is not base64 (no PEM armour, no line breaks)".to_owned()
        })?;
    let req = x509_cert::request::CertReq::from_der(&der)
        .map_err(|e| format!("certificateRequest is not a DER PKCS#10: {e}"))?;
    // pkcs-9-at-challengePassword (RFC 2985 §5.4.1)
    let oid = const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");
    for a in req.info.attributes.iter() {
        if a.oid == oid
            && let Some(v) = a.values.iter().next()
        {
            let s = v
                .decode_as::<der::asn1::PrintableStringRef<'_>>()
                .map(|s| s.to_string())
                .or_else(|_| {
                    v.decode_as::<der::asn1::Utf8StringRef<'_>>()
                        .map(|s| s.to_string())
                })
                .map_err(|e| format!("challengePassword: {e}"))?;
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// Check an RFC 7523 client assertion as Entra ID does: RS256 by the registered
/// certificate's key, `x5t` its SHA-1 thumbprint, audience the token endpoint, issuer and
/// subject the client ID, not expired.
fn client_assertion(
    jwt: &str,
    kind: Option<&str>,
    cert: Option<&[u8]>,
    token_url: &str,
) -> Result<(), String> {
    let b64u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if kind != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return Err(format!("client_assertion_type {kind:?}"));
    }
    let cert = cert.ok_or("no certificate is registered")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, p, sig] = parts.as_slice() else {
        return Err("not a compact JWS".into());
    };
    let json = |part: &str| -> Result<Value, String> {
        let bytes = b64u.decode(part).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let (header, claims) = (json(h)?, json(p)?);
    let thumb = b64u.encode(ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        cert,
    ));
    if header["alg"] != "RS256" || header["x5t"] != thumb.as_str() {
        return Err(format!("header {header}"));
    }
    let parsed = x509_cert::Certificate::from_der(cert).map_err(|e| e.to_string())?;
    let key = parsed
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec();
    let sig = b64u.decode(sig).map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
        .verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| "bad signature".to_owned())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let int = |k: &str| claims[k].as_i64().unwrap_or(0);
    if claims["aud"] != token_url
        || claims["iss"] != CLIENT_ID
        || claims["sub"] != CLIENT_ID
        || int("exp") <= now
        || int("nbf") > now + 60
        || claims["jti"].as_str().unwrap_or("").is_empty()
    {
        return Err(format!("claims {claims}"));
    }
    Ok(())
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

async fn handle(req: hyper::Request<Incoming>, s: Arc<Mutex<State>>, port: u16) -> Resp {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let req = hyper::Request::from_parts(parts, ());
    let req_ref = &req;
    // Everything but the token endpoint wants a bearer token of the right audience and a
    // client-request-id; Intune's services also their api-version.
    let check = |aud: &str, api: Option<&str>| -> Result<(), String> {
        let token_ok = {
            let token = req_ref
                .headers()
                .get("authorization")
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "))
                .ok_or("no bearer token")?;
            let st = s.lock().unwrap();
            match st.tokens.get(token) {
                None => Err("unknown token".to_owned()),
                Some((a, _)) if *a != aud => Err(format!("token for {a}, not {aud}")),
                Some((_, exp)) if Instant::now() >= *exp => Err("token expired".to_owned()),
                Some(_) => Ok(()),
            }
        };
        token_ok?;
        let rid = req_ref
            .headers()
            .get("client-request-id")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !is_uuid(rid) {
            return Err(format!("client-request-id {rid:?} is not a UUID"));
        }
        if let Some(v) = api {
            let got = req_ref
                .headers()
                .get("api-version")
                .and_then(|h| h.to_str().ok());
            if got != Some(v) {
                return Err(format!("api-version header {got:?}, want {v}"));
            }
        }
        Ok(())
    };
    if method == hyper::Method::POST && path == format!("/{TENANT}/oauth2/v2.0/token") {
        let f = form(&body);
        if f.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return refuse(&s, 400, "grant_type must be client_credentials".into());
        }
        let token_url = format!("https://127.0.0.1:{port}/{TENANT}/oauth2/v2.0/token");
        let credential = match (f.get("client_secret"), f.get("client_assertion")) {
            (Some(secret), None) => secret == CLIENT_SECRET,
            (None, Some(jwt)) => {
                let cert = s.lock().unwrap().client_cert.clone();
                match client_assertion(
                    jwt,
                    f.get("client_assertion_type").map(String::as_str),
                    cert.as_deref(),
                    &token_url,
                ) {
                    Ok(()) => true,
                    Err(e) => {
                        s.lock()
                            .unwrap()
                            .refusals
                            .push(format!("client assertion: {e}"));
                        false
                    }
                }
            }
            _ => false,
        };
        if f.get("client_id").map(String::as_str) != Some(CLIENT_ID) || !credential {
            s.lock()
                .unwrap()
                .refusals
                .push("bad client credentials".into());
            return respond(
                401,
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
            );
        }
        let aud = match f.get("scope").map(String::as_str) {
            Some(GRAPH_SCOPE) => "graph",
            Some(INTUNE_SCOPE) => "intune",
            other => {
                return refuse(
                    &s,
                    400,
                    format!("scope {other:?} is not a known resource's /.default"),
                );
            }
        };
        let mut t = [0u8; 18];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut t).unwrap();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t);
        let mut st = s.lock().unwrap();
        let ttl = st.token_ttl;
        st.tokens.insert(
            token.clone(),
            (aud, Instant::now() + Duration::from_secs(ttl)),
        );
        *st.tokens_issued.entry(aud).or_default() += 1;
        return respond(
            200,
            json!({"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": token}),
        );
    }
    if method == hyper::Method::GET
        && path == "/v1.0/servicePrincipals/appId=0000000a-0000-0000-c000-000000000000/endpoints"
    {
        if let Err(e) = check("graph", None) {
            return refuse(&s, 401, e);
        }
        let mut st = s.lock().unwrap();
        st.discoveries += 1;
        let scep = if st.dead_discoveries > 0 {
            st.dead_discoveries -= 1;
            // A port nothing listens on: the connector must discover again.
            "https://127.0.0.1:1/scep".to_owned()
        } else {
            format!("https://127.0.0.1:{port}/scep")
        };
        return respond(
            200,
            json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals('appId%3D0000000a-0000-0000-c000-000000000000')/endpoints",
                   "value": [
                {"id": "1", "capability": "Intune", "providerId": "p1", "providerName": "ScepRequestValidationFEService", "providerResourceId": "r1", "uri": scep},
                {"id": "2", "capability": "Intune", "providerId": "p2", "providerName": "PkiConnectorFEService", "providerResourceId": "r2", "uri": format!("https://127.0.0.1:{port}/pki")},
                {"id": "3", "capability": "Intune", "providerId": "p3", "providerName": "SomethingElseFEService", "providerResourceId": "r3", "uri": "https://127.0.0.1:1/other"}
            ]}),
        );
    }
    if path == "/hook" {
        return hook(&s, &req, &body).await;
    }
    let json: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refuse(&s, 400, format!("body is not JSON: {e}")),
    };
    if method != hyper::Method::POST {
        return refuse(&s, 405, format!("{method} {path}"));
    }
    // Intune's services: a token for Intune's audience and their api-version.
    let api = match path.split('/').nth(1) {
        Some("scep") => Some("2018-02-20"),
        Some("pki") => Some("5019-05-05"),
        _ => None,
    };
    if let Some(api) = api
        && let Err(e) = check("intune", Some(api))
    {
        return refuse(&s, 401, e);
    }
    match path.as_str() {
        "/scep/ScepActions/validateRequest" => {
            let r = match shape(
                &json,
                "request",
                &[
                    ("transactionId", "s"),
                    ("certificateRequest", "s"),
                    ("callerInfo", "s"),
                ],
            ) {
                Ok(r) => r,
                Err(e) => return refuse(&s, 400, e),
            };
            let csr = r["certificateRequest"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let tx = r["transactionId"].as_str().unwrap_or_default().to_owned();
            let code = match challenge_of(&csr) {
                Err(_) => "CertificateRequestDecodingFailed",
                Ok(None) => "ChallengePasswordMissing",
                Ok(Some(c)) if s.lock().unwrap().valid_challenges.contains(&c) => "Success",
                Ok(Some(_)) => "ChallengeDecryptionError",
            };
            let mut st = s.lock().unwrap();
            st.validations += 1;
            if let Some((status, body)) = st.validate_answer.clone() {
                let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                return r;
            }
            if code == "Success" {
                st.validated.insert(tx, csr);
            }
            respond(
                200,
                json!({"code": code, "errorDescription": if code == "Success" { "" } else { "the challenge is not one Intune issued" }}),
            )
        }
        "/scep/ScepActions/successNotification" => {
            let n = match shape(
                &json,
                "notification",
                &[
                    ("transactionId", "s"),
                    ("certificateRequest", "s"),
                    ("certificateThumbprint", "s"),
                    ("certificateSerialNumber", "s"),
                    ("certificateExpirationDateUtc", "s"),
                    ("issuingCertificateAuthority", "s"),
                    ("callerInfo", "s"),
                    ("caConfiguration", "s"),
                    ("certificateAuthority", "s"),
                ],
            ) {
                Ok(n) => n,
                Err(e) => return refuse(&s, 400, e),
            };
            let st_validated = s
                .lock()
                .unwrap()
                .validated
                .get(n["transactionId"].as_str().unwrap_or_default())
                .cloned();
            if st_validated.as_deref() != n["certificateRequest"].as_str() {
                return refuse(
                    &s,
                    400,
                    "successNotification for a transaction (and CSR) that was never validated"
                        .into(),
                );
            }
            let thumb = n["certificateThumbprint"].as_str().unwrap_or_default();
            let serial = n["certificateSerialNumber"].as_str().unwrap_or_default();
            let exp = n["certificateExpirationDateUtc"]
                .as_str()
                .unwrap_or_default();
            if thumb.len() != 40
                || !thumb.bytes().all(|b| b.is_ascii_hexdigit())
                || serial.is_empty()
                || !serial.bytes().all(|b| b.is_ascii_hexdigit())
                || !(exp.len() >= 20
                    && exp.ends_with('Z')
                    && &exp[4..5] == "-"
                    && &exp[10..11] == "T")
                || n["issuingCertificateAuthority"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty()
            {
                return refuse(&s, 400, format!("malformed notification fields: {n}"));
            }
            let mut st = s.lock().unwrap();
            if st.fail_success_notifications {
                st.refusals
                    .push("successNotification failed on purpose".into());
                return respond(
                    500,
                    json!({"error": {"code": "InternalError", "message": "emulated outage"}}),
                );
            }
            st.success_notifications.push(n);
            respond(200, json!({"code": "Success", "errorDescription": ""}))
        }
        "/scep/ScepActions/failureNotification" => {
            let n = match shape(
                &json,
                "notification",
                &[
                    ("transactionId", "s"),
                    ("certificateRequest", "s"),
                    ("hResult", "i"),
                    ("errorDescription", "s"),
                    ("callerInfo", "s"),
                ],
            ) {
                Ok(n) => n,
                Err(e) => return refuse(&s, 400, e),
            };
            if n["errorDescription"].as_str().unwrap_or_default().len() > 255 {
                return refuse(
                    &s,
                    400,
                    "errorDescription is longer than 255 characters".into(),
                );
            }
            s.lock().unwrap().failure_notifications.push(n);
            respond(200, json!({"code": "Success", "errorDescription": ""}))
        }
        "/pki/CertificateAuthorityRequests/downloadRevocationRequests" => {
            let p = match shape(
                &json,
                "downloadParameters",
                &[("maxRequests", "i"), ("issuerName", "s?")],
            ) {
                Ok(p) => p,
                Err(e) => return refuse(&s, 400, e),
            };
            let max = p["maxRequests"].as_u64().unwrap_or(0) as usize;
            if !(1..=500).contains(&max) {
                return refuse(&s, 400, format!("maxRequests {max} is not 1 to 500"));
            }
            let mut st = s.lock().unwrap();
            let n = st.revocation_queue.len().min(max);
            let value: Vec<Value> = st.revocation_queue.drain(..n).collect();
            respond(
                200,
                json!({"@odata.context": "https://fef.emulated/$metadata#Collection(microsoft.management.services.api.caRevocationRequest)", "value": value}),
            )
        }
        "/pki/CertificateAuthorityRequests/uploadRevocationResults" => {
            let Some(results) = json
                .as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.get("results"))
                .and_then(Value::as_array)
            else {
                return refuse(&s, 400, "the body must be {\"results\": [...]}".into());
            };
            for r in results {
                let wrapped = json!({"r": r});
                if let Err(e) = shape(
                    &wrapped,
                    "r",
                    &[
                        ("requestContext", "s"),
                        ("succeeded", "b"),
                        ("errorCode", "s"),
                        ("errorMessage", "s"),
                    ],
                ) {
                    return refuse(&s, 400, e);
                }
                // succeeded=true requires errorCode None.
                if r["succeeded"] == json!(true) && r["errorCode"] != json!("None") {
                    return refuse(&s, 400, "succeeded with an error code".into());
                }
            }
            s.lock()
                .unwrap()
                .revocation_results
                .extend(results.iter().cloned());
            respond(
                200,
                json!({"@odata.context": "https://fef.emulated/$metadata#Edm.Boolean", "value": true}),
            )
        }
        _ => refuse(&s, 404, format!("no such endpoint {path}")),
    }
}

/// The webhook: checks the timestamp and HMAC headers, records the body, answers per
/// [`State::hook`].
async fn hook(s: &Mutex<State>, req: &hyper::Request<()>, body: &[u8]) -> Resp {
    let ts = req
        .headers()
        .get("x-castellan-timestamp")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let sig = req
        .headers()
        .get("x-castellan-signature")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let (mode, key) = {
        let st = s.lock().unwrap();
        (st.hook, st.hook_key.clone())
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let want = hex_decode(sig.strip_prefix("sha256=").unwrap_or(""));
    let signed = [ts.as_bytes(), b".", body].concat();
    if want.is_none() || ring::hmac::verify(&key, &signed, &want.unwrap_or_default()).is_err() {
        return refuse(s, 401, "webhook: bad signature".into());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => s.lock().unwrap().hook_bodies.push(v),
        Err(e) => return refuse(s, 400, format!("webhook body: {e}")),
    }
    match mode {
        Hook::Allow => respond(200, json!({"allow": true})),
        Hook::Deny => respond(
            200,
            json!({"allow": false, "reason": "device not in inventory"}),
        ),
        Hook::Malformed => respond(200, json!({"allowed": true})),
        Hook::Slow => {
            tokio::time::sleep(Duration::from_secs(4)).await;
            respond(200, json!({"allow": true}))
        }
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    s.len()
        .is_multiple_of(2)
        .then(|| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten()
}

/// A running castellan-mdm, killed (with its process group) when dropped.
#[derive(Debug)]
pub struct Connector {
    child: Option<std::process::Child>,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Connector {
    /// `castellan-mdm run --config CONFIG`, waiting for its ready line.
    pub fn start(config: &Path, log: &Path) -> Connector {
        use std::os::unix::process::CommandExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let offset = file.metadata().unwrap().len() as usize;
        let mut mdm = std::process::Command::new(crate::bin("castellan-mdm"));
        mdm.arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info");
        let mut child = crate::dies_with_test(&mdm)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("start castellan-mdm");
        crate::wait_ready(
            &mut child,
            "castellan-mdm",
            log,
            offset,
            "castellan-mdm ready",
        );
        Connector {
            child: Some(child),
            config: config.to_owned(),
            log: log.to_owned(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kill it now (SIGKILL to its group) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::signal_group(&c, "KILL");
            let _ = c.wait();
        }
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.stop();
    }
}
