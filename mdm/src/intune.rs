//! Intune's partner-CA API (see ../shared/reference/intune-scep-api.md and docs/mdm.md):
//! OAuth2 client credentials against Entra ID, Graph discovery of the tenant's service
//! endpoints, `ScepActions/*` for validation and notifications, and
//! `CertificateAuthorityRequests/*` for revocation.
//!
//! Tokens are cached per audience until five minutes before `expires_in`; the endpoint map
//! for 30 minutes. Both caches are single-flight (one fetch at a time). A call that cannot
//! reach its endpoint drops the endpoint map and is tried once more after re-discovery; a
//! 401 drops the token and is tried once more with a new one. Every call carries a fresh
//! `client-request-id` (logged with the transactionID) and the `api-version` header.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use hyper::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::config::{Credential, IntuneSection};
use crate::http::{Client, HttpError, form, uuid};

/// Intune's first-party application ID, whose service principal lists the endpoints.
pub const INTUNE_APP_ID: &str = "0000000a-0000-0000-c000-000000000000";
/// The SCEP validation service's name in the endpoint list.
pub const SCEP_SERVICE: &str = "ScepRequestValidationFEService";
/// The PKI connector (revocation) service's name in the endpoint list.
pub const PKI_SERVICE: &str = "PkiConnectorFEService";
/// `api-version` of `ScepActions/*`.
pub const SCEP_API_VERSION: &str = "2018-02-20";
/// `api-version` of `CertificateAuthorityRequests/*` (sic: both reference libraries).
pub const PKI_API_VERSION: &str = "5019-05-05";
/// `callerInfo`: the provider's name and version.
pub const CALLER_INFO: &str = concat!("Castellan/", env!("CARGO_PKG_VERSION"));

const ENDPOINTS_FOR: Duration = Duration::from_secs(30 * 60);
const REFRESH_EARLY: Duration = Duration::from_secs(5 * 60);

/// Why Intune could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum IntuneError {
    #[error("Entra ID refused a token: {0}")]
    Token(String),
    #[error("service discovery: {0}")]
    Discovery(String),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("Intune answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("Intune's answer is not what the contract says: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Audience {
    Graph,
    Intune,
}

#[derive(Debug, Clone)]
struct Endpoints {
    scep: Option<String>,
    pki: Option<String>,
}

/// One revocation request as Intune hands it out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevocationRequest {
    pub request_context: String,
    pub serial_number: String,
    #[serde(default)]
    pub issuer_name: Option<String>,
    #[serde(default)]
    pub ca_configuration: Option<String>,
}

/// A result of one revocation request, with the contract's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationResult {
    pub request_context: String,
    pub code: ErrorCode,
    pub message: String,
}

/// The partner API's revocation error codes (both reference libraries list these numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    None = 0,
    NonRetryableServiceException = 4000,
    ParameterDataInvalidError = 4002,
    CertificateNotFoundError = 4004,
    ConflictError = 4005,
    RetryableServiceException = 4100,
    ServiceUnavailableException = 4101,
}

impl ErrorCode {
    /// The enum name, as the C# reference library sends it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::None => "None",
            ErrorCode::NonRetryableServiceException => "NonRetryableServiceException",
            ErrorCode::ParameterDataInvalidError => "ParameterDataInvalidError",
            ErrorCode::CertificateNotFoundError => "CertificateNotFoundError",
            ErrorCode::ConflictError => "ConflictError",
            ErrorCode::RetryableServiceException => "RetryableServiceException",
            ErrorCode::ServiceUnavailableException => "ServiceUnavailableException",
        }
    }
}

/// The Intune client of one tenant.
#[derive(Debug)]
pub struct Intune {
    cfg: IntuneSection,
    credential: Credential,
    http: Client,
    tokens: Mutex<HashMap<Audience, (String, Instant)>>,
    endpoints: Mutex<Option<(Endpoints, Instant)>>,
}

/// What `ScepActions/*` answers: `{code, errorDescription}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodeAnswer {
    code: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Intune {
    pub fn new(cfg: IntuneSection) -> Result<Intune, String> {
        let credential = cfg.credential().map_err(|e| e.to_string())?;
        let trust = match &cfg.trust_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?),
            None => None,
        };
        let http = Client::new(trust.as_deref(), Duration::from_secs(cfg.timeout_secs))?;
        Ok(Intune {
            cfg,
            credential,
            http,
            tokens: Mutex::default(),
            endpoints: Mutex::default(),
        })
    }

    pub fn revocation_interval(&self) -> Option<Duration> {
        (self.cfg.revocation_interval_secs > 0)
            .then(|| Duration::from_secs(self.cfg.revocation_interval_secs))
    }

    pub fn revocation_max(&self) -> u32 {
        self.cfg.revocation_max
    }

    fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.cfg.login_url.trim_end_matches('/'),
            self.cfg.tenant
        )
    }

    fn scope(&self, a: Audience) -> String {
        match a {
            Audience::Graph => format!(
                "{}/.default",
                self.cfg
                    .graph_resource
                    .as_deref()
                    .unwrap_or(&self.cfg.graph_url)
                    .trim_end_matches('/')
            ),
            // The resource ends in '/', so the scope has a double slash: Entra takes the
            // audience as everything before the last slash.
            Audience::Intune => format!("{}/.default", self.cfg.intune_resource),
        }
    }

    /// A signed client assertion (RFC 7523) for a certificate credential: RS256 with the
    /// certificate's SHA-1 thumbprint as `x5t`, as Entra ID wants it.
    fn assertion(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<String, IntuneError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
        let b64u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let bad =
            |e: &dyn std::fmt::Display| IntuneError::Token(format!("client certificate: {e}"));
        let cert = CertificateDer::from_pem_slice(cert_pem).map_err(|e| bad(&e))?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem).map_err(|e| bad(&e))?;
        let pair =
            ring::signature::RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()).map_err(|e| bad(&e))?;
        let x5t = b64u.encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            cert.as_ref(),
        ));
        let now = proto::now();
        let header = json!({"alg": "RS256", "typ": "JWT", "x5t": x5t});
        let claims = json!({
            "aud": self.token_url(), "iss": self.cfg.client_id, "sub": self.cfg.client_id,
            "jti": uuid(), "nbf": now, "iat": now, "exp": now + 600,
        });
        let input = format!(
            "{}.{}",
            b64u.encode(header.to_string()),
            b64u.encode(claims.to_string())
        );
        let mut sig = vec![0u8; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .map_err(|e| bad(&e))?;
        Ok(format!("{input}.{}", b64u.encode(sig)))
    }

    async fn token(&self, a: Audience) -> Result<String, IntuneError> {
        let mut tokens = self.tokens.lock().await;
        if let Some((t, until)) = tokens.get(&a)
            && Instant::now() + REFRESH_EARLY < *until
        {
            return Ok(t.clone());
        }
        let scope = self.scope(a);
        let assertion;
        let mut pairs = vec![
            ("client_id", self.cfg.client_id.as_str()),
            ("scope", scope.as_str()),
            ("grant_type", "client_credentials"),
        ];
        match &self.credential {
            Credential::Secret(s) => pairs.push(("client_secret", s.as_str())),
            Credential::Certificate { cert_pem, key_pem } => {
                assertion = self.assertion(cert_pem, key_pem)?;
                pairs.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                pairs.push(("client_assertion", assertion.as_str()));
            }
        }
        let ans = self
            .http
            .send(
                Method::POST,
                &self.token_url(),
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded".to_owned(),
                )],
                form(&pairs).into_bytes(),
            )
            .await?;
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: Option<String>,
            expires_in: Option<u64>,
            /// A string from Entra ID; proxies may send an OData object.
            error: Option<Value>,
            error_description: Option<String>,
        }
        let t: TokenAnswer = serde_json::from_slice(&ans.body)
            .map_err(|e| IntuneError::Token(format!("HTTP {}: not JSON: {e}", ans.status)))?;
        match (ans.status, t.access_token, t.expires_in) {
            (200, Some(token), Some(secs)) if !token.is_empty() => {
                tracing::info!(audience = ?a, expires_in = secs, "new Entra ID token");
                tokens.insert(
                    a,
                    (token.clone(), Instant::now() + Duration::from_secs(secs)),
                );
                Ok(token)
            }
            (status, ..) => Err(IntuneError::Token(format!(
                "HTTP {status}: {} {}",
                t.error.map(|e| e.to_string()).unwrap_or_default(),
                t.error_description
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))),
        }
    }

    async fn endpoints(&self) -> Result<Endpoints, IntuneError> {
        let mut cached = self.endpoints.lock().await;
        if let Some((e, at)) = cached.as_ref()
            && at.elapsed() < ENDPOINTS_FOR
        {
            return Ok(e.clone());
        }
        let url = format!(
            "{}/v1.0/servicePrincipals/appId={INTUNE_APP_ID}/endpoints",
            self.cfg.graph_url.trim_end_matches('/')
        );
        let mut retried = false;
        let ans = loop {
            let token = self.token(Audience::Graph).await?;
            let ans = self
                .http
                .send(
                    Method::GET,
                    &url,
                    &[
                        ("authorization", format!("Bearer {token}")),
                        ("client-request-id", uuid()),
                    ],
                    Vec::new(),
                )
                .await?;
            if ans.status == 401 && !retried {
                self.tokens.lock().await.remove(&Audience::Graph);
                retried = true;
                continue;
            }
            break ans;
        };
        if ans.status != 200 {
            return Err(IntuneError::Discovery(format!(
                "HTTP {} (the app needs Graph Application.Read.All): {}",
                ans.status,
                excerpt(&ans.body)
            )));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Ep {
            provider_name: Option<String>,
            uri: Option<String>,
        }
        #[derive(Deserialize)]
        struct List {
            value: Vec<Ep>,
        }
        let list: List = serde_json::from_slice(&ans.body)
            .map_err(|e| IntuneError::Discovery(format!("malformed endpoint list: {e}")))?;
        let find = |name: &str| {
            list.value
                .iter()
                .find(|e| {
                    e.provider_name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .and_then(|e| e.uri.clone())
                .filter(|u| u.starts_with("https://"))
        };
        let e = Endpoints {
            scep: find(SCEP_SERVICE),
            pki: find(PKI_SERVICE),
        };
        tracing::info!(scep = ?e.scep, pki = ?e.pki, "discovered Intune endpoints");
        *cached = Some((e.clone(), Instant::now()));
        Ok(e)
    }

    /// POST a JSON body to a discovered service: once more after re-discovery if the
    /// endpoint could not be reached, once more with a new token after a 401.
    async fn call(
        &self,
        service: &'static str,
        path: &str,
        api_version: &str,
        body: &Value,
        transaction: &str,
    ) -> Result<Value, IntuneError> {
        let mut rediscovered = false;
        let mut new_token = false;
        loop {
            let eps = self.endpoints().await?;
            let base = match service {
                SCEP_SERVICE => eps.scep,
                _ => eps.pki,
            }
            .ok_or_else(|| {
                IntuneError::Discovery(format!("{service} is not in the tenant's endpoint list"))
            })?;
            let token = self.token(Audience::Intune).await?;
            let request_id = uuid();
            let url = format!("{}/{path}", base.trim_end_matches('/'));
            tracing::debug!(%url, client_request_id = %request_id, transaction, "Intune call");
            let sent = self
                .http
                .send(
                    Method::POST,
                    &url,
                    &[
                        ("authorization", format!("Bearer {token}")),
                        ("content-type", "application/json; charset=utf-8".to_owned()),
                        ("client-request-id", request_id.clone()),
                        ("api-version", api_version.to_owned()),
                    ],
                    body.to_string().into_bytes(),
                )
                .await;
            let ans = match sent {
                Err(HttpError::Transport(e) | HttpError::Url(e)) if !rediscovered => {
                    tracing::warn!(error = %e, %service, "Intune endpoint unreachable: discovering again");
                    *self.endpoints.lock().await = None;
                    rediscovered = true;
                    continue;
                }
                other => other?,
            };
            if ans.status == 401 && !new_token {
                self.tokens.lock().await.remove(&Audience::Intune);
                new_token = true;
                continue;
            }
            if !(200..300).contains(&ans.status) {
                tracing::warn!(status = ans.status, client_request_id = %request_id, transaction, body = %excerpt(&ans.body), "Intune refused a call");
                return Err(IntuneError::Status {
                    status: ans.status,
                    body: excerpt(&ans.body),
                });
            }
            return serde_json::from_slice(&ans.body)
                .map_err(|e| IntuneError::Malformed(format!("not JSON: {e}")));
        }
    }

    async fn scep_action(
        &self,
        action: &str,
        body: Value,
        transaction: &str,
    ) -> Result<CodeAnswer, IntuneError> {
        let v = self
            .call(
                SCEP_SERVICE,
                &format!("ScepActions/{action}"),
                SCEP_API_VERSION,
                &body,
                transaction,
            )
            .await?;
        serde_json::from_value(v).map_err(|e| IntuneError::Malformed(format!("{action}: {e}")))
    }

    /// `validateRequest`: Ok(None) on Success, Ok(Some(reason)) on any other code.
    pub async fn validate(
        &self,
        transaction_id: &str,
        csr_b64: &str,
    ) -> Result<Option<String>, IntuneError> {
        let body = json!({"request": {
            "transactionId": transaction_id,
            "certificateRequest": csr_b64,
            "callerInfo": CALLER_INFO,
        }});
        let a = self
            .scep_action("validateRequest", body, transaction_id)
            .await?;
        Ok(verdict(a))
    }

    /// `successNotification`: Ok(None) when Intune accepted it.
    #[allow(clippy::too_many_arguments)]
    pub async fn notify_success(
        &self,
        transaction_id: &str,
        csr_b64: &str,
        thumbprint: &str,
        serial: &str,
        expires: &str,
        issuer: &str,
        ca: &str,
    ) -> Result<Option<String>, IntuneError> {
        let body = json!({"notification": {
            "transactionId": transaction_id,
            "certificateRequest": csr_b64,
            "certificateThumbprint": thumbprint,
            "certificateSerialNumber": serial,
            "certificateExpirationDateUtc": expires,
            "issuingCertificateAuthority": issuer,
            "callerInfo": CALLER_INFO,
            "caConfiguration": ca,
            "certificateAuthority": issuer,
        }});
        let a = self
            .scep_action("successNotification", body, transaction_id)
            .await?;
        Ok(verdict(a))
    }

    /// `failureNotification`: Ok(None) when Intune accepted it.
    pub async fn notify_failure(
        &self,
        transaction_id: &str,
        csr_b64: &str,
        hresult: i64,
        description: &str,
    ) -> Result<Option<String>, IntuneError> {
        let body = json!({"notification": {
            "transactionId": transaction_id,
            "certificateRequest": csr_b64,
            "hResult": hresult,
            "errorDescription": proto::mdm::Answer::reason(description),
            "callerInfo": CALLER_INFO,
        }});
        let a = self
            .scep_action("failureNotification", body, transaction_id)
            .await?;
        Ok(verdict(a))
    }

    /// `downloadRevocationRequests`: at most `max` requests for any issuer of the tenant.
    pub async fn download_revocations(
        &self,
        max: u32,
    ) -> Result<Vec<RevocationRequest>, IntuneError> {
        let body = json!({"downloadParameters": {"maxRequests": max, "issuerName": null}});
        let v = self
            .call(
                PKI_SERVICE,
                "CertificateAuthorityRequests/downloadRevocationRequests",
                PKI_API_VERSION,
                &body,
                "-",
            )
            .await?;
        #[derive(Deserialize)]
        struct List {
            value: Vec<RevocationRequest>,
        }
        let list: List = serde_json::from_value(v)
            .map_err(|e| IntuneError::Malformed(format!("downloadRevocationRequests: {e}")))?;
        if list.value.len() > max as usize {
            return Err(IntuneError::Malformed(format!(
                "{} revocation requests for a maximum of {max}",
                list.value.len()
            )));
        }
        Ok(list.value)
    }

    /// `uploadRevocationResults`.
    pub async fn upload_revocation_results(
        &self,
        results: &[RevocationResult],
    ) -> Result<(), IntuneError> {
        let results: Vec<Value> = results
            .iter()
            .map(|r| {
                json!({
                    "requestContext": r.request_context,
                    "succeeded": r.code == ErrorCode::None,
                    "errorCode": r.code.name(),
                    "errorMessage": proto::mdm::Answer::reason(r.message.clone()),
                })
            })
            .collect();
        let v = self
            .call(
                PKI_SERVICE,
                "CertificateAuthorityRequests/uploadRevocationResults",
                PKI_API_VERSION,
                &json!({ "results": results }),
                "-",
            )
            .await?;
        match v.get("value") {
            Some(Value::Bool(true)) => Ok(()),
            _ => Err(IntuneError::Malformed(format!(
                "uploadRevocationResults answered {}",
                excerpt(v.to_string().as_bytes())
            ))),
        }
    }
}

fn verdict(a: CodeAnswer) -> Option<String> {
    if a.code.eq_ignore_ascii_case("Success") {
        None
    } else {
        Some(match a.error_description {
            Some(d) if !d.is_empty() => format!("{}: {d}", a.code),
            _ => a.code,
        })
    }
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)])
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_success_is_a_yes() {
        let v = |code: &str| {
            verdict(CodeAnswer {
                code: code.into(),
                error_description: Some("why".into()),
            })
        };
        assert_eq!(v("Success"), None);
        assert_eq!(v("success"), None);
        assert_eq!(
            v("ChallengeExpired").as_deref(),
            Some("ChallengeExpired: why")
        );
        assert!(v("").is_some());
    }
}
