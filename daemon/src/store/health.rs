//! The store heals itself after an I/O error.
//!
//! redb answers every write after a failed one (a full disk, EIO, a failed fsync) with
//! "Previous I/O error occurred": the file must be closed and opened again. So the first
//! I/O error marks the store *down*: every write is refused at once with
//! [`StoreError::Unavailable`] (nothing is acknowledged that was not committed), reads go on
//! while the open file answers them, and [`Store::heal`] (run by the signer's healer task,
//! with back-off) closes the file, opens it again (redb's repair pass runs then) and proves
//! that a write commits, with an audit entry `store-reopened`. A signer that cannot heal
//! within its limit exits with 75 (EX_TEMPFAIL), for systemd to restart it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::StoreError;
use crate::store::Store;
use crate::{Error, Result};

/// Why and since when the store is down.
#[derive(Debug, Clone)]
struct Down {
    since: Instant,
    at: i64,
    cause: String,
}

/// The store's health, shared by every thread that uses it.
#[derive(Debug, Default)]
pub(super) struct Health {
    down: Mutex<Option<Down>>,
    failures: AtomicU64,
    reopens: AtomicU64,
    /// Woken when the store goes down (the healer waits on it).
    wake: tokio::sync::Notify,
}

/// What the log, the metrics and the console say about the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    pub up: bool,
    /// When it went down (Unix seconds), and why.
    pub down_since: Option<i64>,
    pub cause: Option<String>,
    /// I/O failures that took it down, and reopens that brought it back, since start.
    pub failures: u64,
    pub reopens: u64,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Down>> {
        self.down.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An I/O error: the store is down until it is reopened.
    pub(super) fn failed(&self, e: &Error) {
        let mut down = self.lock();
        if down.is_none() {
            tracing::error!(
                error = %e,
                "store write failed: every write is refused until the store is reopened \
                 (retried automatically)"
            );
            *down = Some(Down {
                since: Instant::now(),
                at: crate::now(),
                cause: e.to_string(),
            });
            self.failures.fetch_add(1, Ordering::Relaxed);
            self.wake.notify_one();
        }
    }

    /// Refuse a write while the store is down.
    pub(super) fn writable(&self) -> Result<()> {
        match &*self.lock() {
            None => Ok(()),
            Some(d) => Err(Error::Store(StoreError::Unavailable(d.cause.clone()))),
        }
    }

    pub(super) fn cause(&self) -> String {
        self.lock()
            .as_ref()
            .map_or_else(|| "the store is being reopened".into(), |d| d.cause.clone())
    }

    pub(super) fn status(&self) -> StoreStatus {
        let down = self.lock().clone();
        StoreStatus {
            up: down.is_none(),
            down_since: down.as_ref().map(|d| d.at),
            cause: down.map(|d| d.cause),
            failures: self.failures.load(Ordering::Relaxed),
            reopens: self.reopens.load(Ordering::Relaxed),
        }
    }
}

/// Free space a reopen needs (written and synced to a probe file, then removed): redb's
/// repair pass rewrites the allocator state, and the first commits need pages.
pub const PROBE_BYTES: usize = 4 * 1024 * 1024;

/// Whether `path`'s filesystem takes [`PROBE_BYTES`] and an fsync.
pub(super) fn probe_space(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let written = std::fs::File::create(path).and_then(|mut f| {
        f.write_all(&vec![0u8; PROBE_BYTES])?;
        f.sync_all()
    });
    let removed = std::fs::remove_file(path);
    written.and(removed)
}

/// What [`Store::heal`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Healed {
    /// The store was up: nothing to do.
    Up,
    /// The store was reopened after being down this long.
    Reopened(Duration),
}

impl Store {
    /// The store's health.
    pub fn status(&self) -> StoreStatus {
        self.health.status()
    }

    /// How long the store has been down, if it is.
    pub fn down_for(&self) -> Option<Duration> {
        self.health.lock().as_ref().map(|d| d.since.elapsed())
    }

    /// Resolves when the store goes down (at once if it went down since the last call).
    pub async fn went_down(&self) {
        self.health.wake.notified().await
    }

    /// If the store is down: close the file (waiting up to `drain` for the readers and
    /// writers still holding it), open it again and commit an audit entry to prove that
    /// writes succeed. On failure the store stays down, and without an open file until
    /// the next attempt: reads fail too then, with the same cause.
    pub fn heal(&self, drain: Duration) -> Result<Healed> {
        let Some(since) = self.health.lock().as_ref().map(|d| d.since) else {
            return Ok(Healed::Up);
        };
        // The open file answers reads; it is closed only once a new one can take writes.
        (self.opener.probe)().map_err(|e| {
            Error::Store(StoreError::Unavailable(format!(
                "its disk does not take writes yet: {e}"
            )))
        })?;
        let old = self
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(old) = old {
            // Everyone who took the database before it went down ends with an error soon.
            let deadline = Instant::now() + drain;
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if Arc::strong_count(&old) > 1 {
                let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
                if slot.is_none() {
                    *slot = Some(old);
                }
                return Err(Error::Store(StoreError::Unavailable(
                    "the store is still in use; reopening it later".into(),
                )));
            }
            drop(old);
        }
        let db = (self.opener.open)()?;
        let down = since.elapsed();
        let cause = self.health.cause();
        let tx = db.begin_write()?;
        {
            let mut tx = crate::store::Tx { tx };
            tx.audit(
                "castellan-signer",
                "store-reopened",
                format!(
                    "the store was reopened after {} ms without writes ({cause})",
                    down.as_millis()
                ),
            )?;
            tx.tx.commit()?;
        }
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(db));
        *self.health.lock() = None;
        self.health.reopens.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            down_ms = down.as_millis() as u64,
            "the store was reopened: writes are accepted again"
        );
        Ok(Healed::Reopened(down))
    }
}

#[cfg(test)]
pub(crate) mod faulty {
    //! A storage backend whose writes fail on demand (ENOSPC), over memory that outlives
    //! each `Database`, so that a store can be "reopened" on it.

    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use redb::StorageBackend;
    use redb::backends::InMemoryBackend;

    #[derive(Debug, Default)]
    pub struct Disk {
        memory: InMemoryBackend,
        pub full: AtomicBool,
    }

    #[derive(Debug)]
    pub struct Handle(pub Arc<Disk>);

    impl Handle {
        fn check(&self) -> io::Result<()> {
            if self.0.full.load(Ordering::SeqCst) {
                Err(io::Error::from_raw_os_error(28)) // ENOSPC
            } else {
                Ok(())
            }
        }
    }

    impl Handle {
        pub fn probe(&self) -> io::Result<()> {
            self.check()
        }
    }

    impl StorageBackend for Handle {
        fn len(&self) -> io::Result<u64> {
            self.0.memory.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
            self.0.memory.read(offset, out)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.check()?;
            self.0.memory.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.check()?;
            self.0.memory.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.check()?;
            self.0.memory.write(offset, data)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::store::{Batch, Table};

    fn row(n: u32) -> Batch {
        let mut b = Batch::default();
        b.put_bytes(Table::Profiles, &format!("row-{n}"), b"{}".to_vec());
        b
    }

    #[test]
    fn a_store_that_lost_its_disk_refuses_writes_then_heals_once_space_returns() {
        let disk = Arc::new(faulty::Disk::default());
        let store = Store::on_backend(disk.clone()).unwrap();
        store.commit_batches(&[row(1)]).unwrap();
        assert_eq!(store.heal(Duration::from_secs(1)).unwrap(), Healed::Up);

        disk.full.store(true, Ordering::SeqCst);
        let e = store.commit_batches(&[row(2)]).unwrap_err();
        assert!(e.is_io(), "{e}");
        let status = store.status();
        assert!(!status.up);
        assert_eq!(status.failures, 1);
        // Every later write is refused at once, naming the first cause; reads still answer.
        let again = store
            .write(|tx| tx.audit("t", "x", String::new()))
            .unwrap_err();
        assert!(again.to_string().contains("No space left"), "{again}");
        assert!(
            store
                .get::<serde_json::Value>(Table::Profiles, "row-1")
                .unwrap()
                .is_some()
        );
        // While the disk is full, healing fails and the store stays down, still reading.
        let e = store.heal(Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("does not take writes yet"), "{e}");
        assert!(!store.status().up);
        assert!(store.commit_batches(&[row(3)]).is_err());
        assert!(
            store
                .get::<serde_json::Value>(Table::Profiles, "row-1")
                .unwrap()
                .is_some()
        );

        disk.full.store(false, Ordering::SeqCst);
        assert!(matches!(
            store.heal(Duration::from_secs(1)).unwrap(),
            Healed::Reopened(_)
        ));
        let status = store.status();
        assert!(status.up);
        assert_eq!((status.failures, status.reopens), (1, 1));
        store.commit_batches(&[row(4)]).unwrap();
        // What was refused was never written; what was committed survived.
        let get = |n| {
            store
                .get::<serde_json::Value>(Table::Profiles, &format!("row-{n}"))
                .unwrap()
                .is_some()
        };
        assert_eq!([get(1), get(2), get(3), get(4)], [true, false, false, true]);
        let audit = store.audit().unwrap();
        assert_eq!(audit.last().unwrap().action, "store-reopened");
        assert_eq!(store.verify_audit().unwrap(), audit.len());
    }

    #[test]
    fn a_reopen_waits_for_a_snapshot_still_in_use() {
        let disk = Arc::new(faulty::Disk::default());
        let store = Store::on_backend(disk.clone()).unwrap();
        disk.full.store(true, Ordering::SeqCst);
        assert!(store.commit_batches(&[row(1)]).is_err());
        disk.full.store(false, Ordering::SeqCst);
        let snapshot = store.reader().unwrap();
        let e = store.heal(Duration::from_millis(50)).unwrap_err();
        assert!(e.to_string().contains("still in use"), "{e}");
        drop(snapshot);
        assert!(matches!(
            store.heal(Duration::from_secs(1)).unwrap(),
            Healed::Reopened(_)
        ));
    }
}
