//! The signer's background tasks.

use std::sync::Arc;

use crate::engine::Signer;

/// The CRL publisher: publishes at start, on every revocation (coalesced), and on
/// schedule, and runs the CRL watchdog. Runs until the runtime stops.
pub async fn crl_publisher(publisher: Arc<Signer>) {
    let coalesce = std::time::Duration::from_millis(publisher.revocation().timing().coalesce_ms);
    loop {
        let s = publisher.clone();
        let next_check = tokio::task::spawn_blocking(move || {
            let dirty = s.revocation().dirty().take();
            match s.revocation().crls_due(&dirty) {
                Ok(due) => {
                    for ca in due {
                        if let Err(e) = s.revocation().publish_crl(&ca) {
                            tracing::error!(ca = %ca, error = %e, "CRL publication failed; retrying");
                            s.revocation().dirty().mark(&ca);
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot list CRLs due"),
            }
            match s.revocation().crl_watchdog() {
                Ok(w) => w.next_check,
                Err(e) => {
                    tracing::error!(error = %e, "CRL watchdog failed");
                    None
                }
            }
        })
        .await
        .ok()
        .flatten();
        // Wake on a revocation, when the next CRL crosses a threshold, or at the
        // latest after 30 s (the clock may jump).
        tokio::select! {
            _ = publisher.revocation().dirty().notify.notified() => tokio::time::sleep(coalesce).await,
            _ = tokio::time::sleep(crate::revocation::until(next_check, std::time::Duration::from_secs(30))) => {}
        }
    }
}

/// Certificates Intune was not told about (the signer stopped between issuing and
/// notifying): notified again or withdrawn once past their deadline. At start, then every
/// minute.
pub async fn intune_sweeper(signer: Arc<Signer>) {
    loop {
        let s = signer.clone();
        match tokio::task::spawn_blocking(move || s.enroll().sweep_unnotified()).await {
            Ok(Ok(0)) | Err(_) => {}
            Ok(Ok(n)) => tracing::info!(n, "settled certificates Intune had not been told about"),
            Ok(Err(e)) => tracing::error!(error = %e, "the Intune notification sweep failed"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
}

/// Audit checkpoints: at start, then when `checkpoint-entries` entries are unsigned
/// (looked at every second) or `checkpoint-secs` passed and the log grew (docs/audit.md).
pub async fn audit_checkpointer(signer: Arc<Signer>, timing: crate::audit::AuditTiming) {
    let mut last = std::time::Instant::now();
    let mut first = true;
    loop {
        let s = signer.clone();
        let due = first || last.elapsed().as_secs() >= timing.checkpoint_secs;
        let run = tokio::task::spawn_blocking(move || {
            let unsigned = s.audit().unsigned()?;
            if unsigned >= timing.checkpoint_entries || (due && unsigned > 0) {
                s.audit().checkpoint().map(|_| true)
            } else {
                Ok(false)
            }
        })
        .await;
        match run {
            Ok(Ok(true)) => last = std::time::Instant::now(),
            Ok(Ok(false)) if due => last = std::time::Instant::now(),
            Ok(Err(e)) => tracing::error!(error = %e, "audit checkpoint failed"),
            _ => {}
        }
        first = false;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
