//! Group commit: issuances from many workers share write transactions. A worker
//! hands its [`Batch`] to the committer thread and waits; the thread takes every
//! batch waiting (up to [`MAX_GROUP`]), applies them in one redb transaction with
//! immediate durability, and answers each worker. A certificate is durable before
//! any worker is told it was recorded.

use std::sync::Arc;
use std::sync::mpsc;

use crate::error::StoreError;
use crate::store::{Batch, Store};
use crate::{Error, Result};

/// Most batches in one transaction.
pub const MAX_GROUP: usize = 128;

type Job = (Batch, mpsc::SyncSender<Result<()>>);

/// Handle to the committer thread. Dropping it stops the thread once the batches sent
/// are committed, and waits for it: the thread's reference to the store is gone when the
/// drop returns, so the store can close cleanly (no repair at the next start).
#[derive(Debug)]
pub struct Committer {
    jobs: Option<mpsc::SyncSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Committer {
    pub fn start(store: Arc<Store>) -> Committer {
        let (jobs, rx) = mpsc::sync_channel::<Job>(1024);
        let spawned = std::thread::Builder::new()
            .name("castellan-commit".into())
            .spawn(move || run(&store, &rx));
        let thread = spawned
            .inspect_err(|e| tracing::error!(error = %e, "cannot start the committer thread"))
            .ok();
        Committer {
            jobs: Some(jobs),
            thread,
        }
    }

    /// Apply a batch durably (together with whatever else is waiting).
    pub fn commit(&self, batch: Batch) -> Result<()> {
        self.submit(batch)?.wait()
    }

    /// Hand a batch to the committer and return at once: the caller can do other work
    /// (build its reply) while the group commits, and must [`PendingCommit::wait`] before
    /// anything that depends on the batch leaves the process.
    pub fn submit(&self, batch: Batch) -> Result<PendingCommit> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .ok_or(Error::Store(StoreError::CommitterStopped))?
            .send((batch, tx))
            .map_err(|_| Error::Store(StoreError::CommitterStopped))?;
        Ok(PendingCommit(rx))
    }
}

/// A batch handed to the committer: [`PendingCommit::wait`] says whether it was recorded.
#[derive(Debug)]
#[must_use = "a submitted batch is recorded only once wait() says so"]
pub struct PendingCommit(mpsc::Receiver<Result<()>>);

impl PendingCommit {
    /// Wait until the batch's transaction is durable (Ok) or refused (nothing written).
    pub fn wait(self) -> Result<()> {
        self.0
            .recv()
            .map_err(|_| Error::Store(StoreError::CommitterStopped))?
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(store: &Store, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let batches: Vec<Batch> = group.iter().map(|(b, _)| b.clone()).collect();
        match store.commit_batches(&batches) {
            Ok(results) => {
                for ((_, reply), r) in group.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; nothing in it was recorded");
                let e = std::sync::Arc::new(e);
                for (_, reply) in group {
                    let _ = reply.send(Err(Error::Store(StoreError::Group(e.clone()))));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Table;

    #[test]
    fn one_challenge_used_by_many_workers_succeeds_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::create(&dir.path().join("s.redb")).unwrap());
        store
            .write(|tx| {
                tx.put(
                    Table::Challenges,
                    "c1",
                    &serde_json::json!({"used_by": null}),
                )
            })
            .unwrap();
        let committer = Arc::new(Committer::start(store.clone()));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let committer = committer.clone();
                std::thread::spawn(move || {
                    let mut b = Batch {
                        use_challenge: Some(("c1".into(), format!("tx{i}"))),
                        ..Default::default()
                    };
                    b.put(Table::Certs, &format!("ca\0{i}"), &i).unwrap();
                    committer.commit(b)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        // Refused batches wrote nothing.
        drop(committer);
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "the stopped committer let go of the store"
        );
        assert_eq!(
            store
                .scan::<i32>(Table::Certs, "ca\0", None, 100)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_row_that_must_be_absent_refuses_its_batch_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("s.redb")).unwrap();
        let mut a = Batch::default();
        a.put(Table::Certs, "x", &1).unwrap();
        let mut b = Batch {
            absent: vec![(Table::Certs, "x".into())],
            ..Default::default()
        };
        b.put(Table::Certs, "y", &2).unwrap();
        let r = store.commit_batches(&[a, b]).unwrap();
        assert!(r[0].is_ok() && r[1].is_err());
        assert!(store.get::<i32>(Table::Certs, "y").unwrap().is_none());
    }
}
