//! The signer's background tasks.

use std::sync::Arc;

use crate::engine::Signer;

/// The CRL publisher: publishes at start, on every revocation (coalesced), and on
/// schedule, and runs the CRL watchdog. A publication that fails (its file cannot be
/// written: a full disk) is retried after 0.5 s, doubling to 30 s, not at every wake: each
/// try costs a signature in the token. Runs until the runtime stops.
pub async fn crl_publisher(publisher: Arc<Signer>) {
    let coalesce = std::time::Duration::from_millis(publisher.revocation().timing().coalesce_ms);
    const FIRST_RETRY: std::time::Duration = std::time::Duration::from_millis(500);
    let mut retry = FIRST_RETRY;
    loop {
        let s = publisher.clone();
        let round = tokio::task::spawn_blocking(move || {
            let mut failed = false;
            // While the store refuses writes no CRL can be recorded: publication waits for
            // the reopen (the health watch wakes this task then); the metrics are written.
            let due = match s.store().down_for() {
                Some(_) => Ok(Vec::new()),
                None => s.revocation().crls_due(&s.revocation().dirty().take()),
            };
            match due {
                Ok(due) => {
                    for ca in due {
                        if let Err(e) = s.revocation().publish_crl(&ca) {
                            tracing::error!(ca = %ca, error = %e, "CRL publication failed; retrying");
                            s.revocation().dirty().mark(&ca);
                            failed = true;
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot list CRLs due"),
            }
            let next_check = match s.revocation().crl_watchdog() {
                Ok(w) => w.next_check,
                Err(e) => {
                    tracing::error!(error = %e, "CRL watchdog failed");
                    None
                }
            };
            (next_check, failed)
        })
        .await;
        let (next_check, failed) = round.unwrap_or((None, false));
        if failed {
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(std::time::Duration::from_secs(30));
        } else {
            retry = FIRST_RETRY;
        }
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
        if signer.store().down_for().is_some() {
            // Nothing can be signed into the store now; the healer reopens it.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
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

/// How the signer heals its store (config `[store]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealTiming {
    /// Longest the store may stay down before the signer exits for systemd to restart it.
    pub give_up: std::time::Duration,
}

/// The store healer: when the store goes down after an I/O error, reopen it with back-off
/// (0.25 s doubling to 5 s) until it takes writes again. Returns (for the signer to exit
/// with [`crate::app::EX_TEMPFAIL`]) only if it stayed down longer than `give_up`.
pub async fn store_healer(signer: Arc<Signer>, timing: HealTiming) -> crate::Error {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(250);
    const MOST: std::time::Duration = std::time::Duration::from_secs(5);
    let mut wait = FIRST;
    loop {
        if signer.store().down_for().is_none() {
            wait = FIRST;
            signer.store().went_down().await;
            // The metrics say so at once, not at the publisher's next round.
            signer.revocation().dirty().notify.notify_one();
        }
        tokio::time::sleep(wait).await;
        let s = signer.clone();
        let healed =
            tokio::task::spawn_blocking(move || s.store().heal(std::time::Duration::from_secs(2)))
                .await;
        match healed {
            Ok(Ok(crate::store::health::Healed::Reopened(_))) => {
                signer.revocation().dirty().notify.notify_one();
            }
            Ok(Ok(crate::store::health::Healed::Up)) => {}
            Ok(Err(e)) => {
                let down = signer.store().down_for().unwrap_or_default();
                tracing::warn!(error = %e, down_secs = down.as_secs(), "the store cannot be reopened yet");
                if down >= timing.give_up {
                    return crate::Error::Store(crate::error::StoreError::GaveUp {
                        secs: down.as_secs(),
                        cause: e.to_string(),
                    });
                }
                wait = (wait * 2).min(MOST);
            }
            Err(e) => tracing::error!(error = %e, "the store healer failed"),
        }
    }
}

/// Watches the store's and the token's health every second; on a change the CRL publisher
/// rewrites the metrics file at once (it also does at each of its rounds).
pub async fn health_watch(signer: Arc<Signer>) {
    let mut last = None;
    loop {
        let now = (signer.store().status(), signer.keys().store().health());
        if last.as_ref().is_some_and(|l| *l != now) {
            signer.revocation().dirty().notify.notify_one();
        }
        last = Some(now);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
