//! Webhook validation (step-ca style): a POST of the request's details to the profile's
//! HTTPS URL, signed with HMAC-SHA256, and issuance only on an explicit allow.
//!
//! Request body (JSON): `{"profile", "transactionId", "subject", "sans": ["dns:…"],
//! "csr": base64 DER, "challengeSha256": hex}` (or `"challenge"` in clear when the
//! webhook's `send-challenge` is set). Headers: `x-castellan-timestamp: UNIX` and
//! `x-castellan-signature: sha256=HEX(HMAC-SHA256(key, TIMESTAMP "." BODY))`.
//! Answer: HTTP 200 with exactly `{"allow": true}` or `{"allow": false, "reason": "…"}`.
//! Anything else (other status, other shape, extra fields, more than 4 KiB, no answer
//! within the timeout) is a denial.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::config::WebhookSection;
use crate::http::Client;
use proto::mdm::Answer;

/// Largest answer a webhook may give.
pub const MAX_ANSWER: usize = 4096;

/// One configured webhook.
#[derive(Debug)]
pub struct Webhook {
    url: String,
    key: ring::hmac::Key,
    send_challenge: bool,
    http: Client,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Verdict {
    allow: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// The signature header's value for a body sent at `timestamp`.
pub fn signature(key: &ring::hmac::Key, timestamp: i64, body: &[u8]) -> String {
    let mut ctx = ring::hmac::Context::with_key(key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex::encode(ctx.sign().as_ref()))
}

impl Webhook {
    pub fn new(cfg: &WebhookSection) -> Result<Webhook, String> {
        let secret = cfg
            .secret
            .read(&format!("[[webhook]] {}", cfg.profile))
            .map_err(|e| e.to_string())?;
        let trust = match &cfg.trust_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?),
            None => None,
        };
        Ok(Webhook {
            url: cfg.url.clone(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, trim_secret(&secret)),
            send_challenge: cfg.send_challenge,
            http: Client::new(trust.as_deref(), Duration::from_secs(cfg.timeout_secs))?,
        })
    }

    /// Ask the webhook about one request.
    pub async fn validate(
        &self,
        profile: &str,
        transaction_id: &str,
        subject: &str,
        sans: &[String],
        csr: &str,
        challenge: &str,
    ) -> Answer {
        use sha2::Digest;
        let mut body = json!({
            "profile": profile,
            "transactionId": transaction_id,
            "subject": subject,
            "sans": sans,
            "csr": csr,
        });
        if self.send_challenge {
            body["challenge"] = json!(challenge);
        } else {
            body["challengeSha256"] = json!(hex::encode(sha2::Sha256::digest(challenge)));
        }
        let body = body.to_string().into_bytes();
        let ts = proto::now();
        let sent = self
            .http
            .send(
                hyper::Method::POST,
                &self.url,
                &[
                    ("content-type", "application/json".to_owned()),
                    ("x-castellan-timestamp", ts.to_string()),
                    ("x-castellan-signature", signature(&self.key, ts, &body)),
                ],
                body,
            )
            .await;
        let unavailable = |reason: String| {
            tracing::warn!(profile, transaction = transaction_id, %reason, "webhook gave no verdict");
            Answer::Unavailable { reason }
        };
        let ans = match sent {
            Ok(a) => a,
            Err(e) => return unavailable(format!("webhook: {e}")),
        };
        if ans.status != 200 {
            return unavailable(format!("webhook answered HTTP {}", ans.status));
        }
        if ans.body.len() > MAX_ANSWER {
            return unavailable(format!("webhook answer is larger than {MAX_ANSWER} bytes"));
        }
        match serde_json::from_slice::<Verdict>(&ans.body) {
            Ok(Verdict { allow: true, .. }) => Answer::Allow,
            Ok(Verdict {
                allow: false,
                reason,
            }) => Answer::Deny {
                reason: Answer::reason(reason.unwrap_or_else(|| "denied".into())),
            },
            Err(e) => unavailable(format!(
                "webhook answer is not {{\"allow\": bool, \"reason\"?: string}}: {e}"
            )),
        }
    }
}

/// A secret file's key, without a trailing newline.
fn trim_secret(s: &[u8]) -> &[u8] {
    let mut s = s;
    while let [rest @ .., b'\n' | b'\r'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_timestamp_and_the_body() {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k");
        let a = signature(&k, 1, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, signature(&k, 2, b"{}"));
        assert_ne!(a, signature(&k, 1, b"{ }"));
        assert_eq!(trim_secret(b"abc\r\n"), b"abc");
    }
}
