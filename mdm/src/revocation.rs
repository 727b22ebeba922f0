//! Intune revocation: fetch what Intune asks to revoke, revoke it through the signer's
//! admin port under the connector's identity (`mdm-revoke`: only certificates issued
//! through an `intune` profile), and upload each result with the contract's error code.

use std::sync::Arc;

use proto::admin::{MdmRevokeOutcome, Request, Response};

use crate::Connector;
use crate::intune::{ErrorCode, RevocationResult};

/// One round: download, revoke, upload. Returns the results uploaded.
pub async fn round(c: &Connector) -> Result<Vec<RevocationResult>, String> {
    let (Some(intune), Some(admin)) = (&c.intune, &c.admin) else {
        return Err("revocation needs [intune] and [signer]".into());
    };
    let requests = intune
        .download_revocations(intune.revocation_max())
        .await
        .map_err(|e| e.to_string())?;
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let mut results = Vec::with_capacity(requests.len());
    for r in requests {
        let issuer = r
            .issuer_name
            .clone()
            .or_else(|| r.ca_configuration.clone())
            .unwrap_or_default();
        let asked = admin
            .call(&Request::MdmRevoke {
                issuer: issuer.clone(),
                serial: r.serial_number.clone(),
            })
            .await;
        let (code, message) = match asked {
            Ok(Response::MdmRevoked { outcome }) => match outcome {
                MdmRevokeOutcome::Revoked => (ErrorCode::None, String::new()),
                MdmRevokeOutcome::AlreadyRevoked => {
                    (ErrorCode::ConflictError, "the certificate is already revoked".into())
                }
                MdmRevokeOutcome::UnknownIssuer => (
                    ErrorCode::ParameterDataInvalidError,
                    format!("no CA here has the issuer name {issuer:?}"),
                ),
                MdmRevokeOutcome::NotFound => (
                    ErrorCode::CertificateNotFoundError,
                    "no certificate with this serial was issued through an Intune profile of this CA"
                        .into(),
                ),
                MdmRevokeOutcome::Expired => (
                    ErrorCode::NonRetryableServiceException,
                    "the certificate has expired".into(),
                ),
            },
            Ok(other) => (
                ErrorCode::RetryableServiceException,
                format!("unexpected answer from the CA: {other:?}"),
            ),
            Err(e) => (
                ErrorCode::ServiceUnavailableException,
                format!("the CA could not be asked: {e}"),
            ),
        };
        tracing::info!(serial = %r.serial_number, %issuer, code = code.name(), "Intune revocation request");
        results.push(RevocationResult {
            request_context: r.request_context,
            code,
            message,
        });
    }
    intune
        .upload_revocation_results(&results)
        .await
        .map_err(|e| e.to_string())?;
    Ok(results)
}

/// Poll every `revocation-interval-secs` until the task is dropped.
pub async fn poll(c: Arc<Connector>) {
    let Some(every) = c.intune.as_ref().and_then(|i| i.revocation_interval()) else {
        return;
    };
    loop {
        match round(&c).await {
            Ok(r) if r.is_empty() => {}
            Ok(r) => tracing::info!(n = r.len(), "uploaded Intune revocation results"),
            Err(e) => tracing::warn!(error = %e, "Intune revocation round failed"),
        }
        tokio::time::sleep(every).await;
    }
}
