//! The edge's client of the signing socket ([`proto::wire`], version [`wire::VERSION`]).
//!
//! A [`SignerPool`] holds a few connections (default 4). Each connection:
//! 1. connects to the unix socket and sends `Op::Hello{version}` (id 0), then checks the
//!    reply is `Reply::Hello` with the same version;
//! 2. runs a writer task (frames from an mpsc channel to the socket) and a reader task
//!    (frames from the socket, dispatched by request id to the waiting oneshot);
//! 3. carries many requests at once, each with its own id and timeout;
//! 4. when either task fails, is marked dead: requests in flight fail at once
//!    ([`SignerError::Disconnected`], HTTP 503), and the next request reconnects.
//!
//! A slot whose connection attempt failed waits (exponential back-off, capped) before
//! trying again, so a missing signer costs one failed `connect` per back-off period
//! rather than one per HTTP request.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::{Instant, timeout};

use super::SignerError;
use proto::wire::{self, Op, Reply};

/// How to reach the signer.
#[derive(Debug, Clone)]
pub struct SignerConfig {
    /// The signing socket's path.
    pub socket: PathBuf,
    /// Connections kept open (at least 1).
    pub connections: usize,
    /// Time for one request's reply.
    pub request_timeout: Duration,
    /// Time to connect and complete Hello.
    pub connect_timeout: Duration,
    /// First wait after a failed connection attempt; doubled per failure.
    pub backoff_min: Duration,
    /// Longest wait between connection attempts.
    pub backoff_max: Duration,
}

impl SignerConfig {
    pub fn new(socket: PathBuf) -> Self {
        SignerConfig {
            socket,
            connections: 4,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// A small pool of multiplexed connections to the signer.
#[derive(Debug)]
pub struct SignerPool {
    config: SignerConfig,
    slots: Box<[Slot]>,
    next: AtomicUsize,
    /// Connections opened again after one failed or was lost (a metric).
    reconnects: AtomicU64,
}

#[derive(Debug, Default)]
struct Slot {
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    conn: Option<Arc<Conn>>,
    failures: u32,
    retry_at: Option<Instant>,
    /// A connection was opened in this slot before (so the next one is a reconnect).
    opened: bool,
}

impl SignerPool {
    pub fn new(config: SignerConfig) -> Self {
        let slots = (0..config.connections.max(1))
            .map(|_| Slot::default())
            .collect();
        SignerPool {
            config,
            slots,
            next: AtomicUsize::new(0),
            reconnects: AtomicU64::new(0),
        }
    }

    /// Whether the signer can be reached now: a live connection, or a new one opened
    /// (a slot that is backing off after failures counts as unreachable).
    pub async fn probe(&self) -> bool {
        self.connection().await.is_ok()
    }

    /// How many connections were opened again after one failed or was lost.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Send one operation and wait for its reply.
    pub async fn call(&self, op: Op) -> Result<Reply, SignerError> {
        let conn = self.connection().await?;
        conn.call(op, self.config.request_timeout).await
    }

    /// A live connection: round-robin over the slots, skipping those backing off.
    /// At most one connection attempt is made per call.
    async fn connection(&self) -> Result<Arc<Conn>, SignerError> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let Some(slot) = self.slots.get((start + i) % n) else {
                break;
            };
            match self.slot_connection(slot).await {
                Ok(c) => return Ok(c),
                Err(SignerError::BackingOff) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(SignerError::BackingOff)
    }

    async fn slot_connection(&self, slot: &Slot) -> Result<Arc<Conn>, SignerError> {
        let mut st = slot.state.lock().await;
        if let Some(c) = &st.conn {
            if c.shared.is_alive() {
                return Ok(c.clone());
            }
            st.conn = None;
        }
        if st.retry_at.is_some_and(|t| Instant::now() < t) {
            return Err(SignerError::BackingOff);
        }
        let attempt = timeout(self.config.connect_timeout, Conn::open(&self.config.socket)).await;
        match attempt.unwrap_or(Err(SignerError::Timeout)) {
            Ok(c) => {
                if st.failures > 0 {
                    tracing::info!(socket = %self.config.socket.display(), "signer connection restored");
                }
                if st.opened || st.failures > 0 {
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                st.opened = true;
                st.failures = 0;
                st.retry_at = None;
                let c = Arc::new(c);
                st.conn = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                st.failures = st.failures.saturating_add(1);
                let wait = backoff(&self.config, st.failures);
                st.retry_at = Some(Instant::now() + wait);
                tracing::warn!(
                    socket = %self.config.socket.display(),
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot reach the signer"
                );
                Err(e)
            }
        }
    }
}

/// `backoff_min * 2^(failures-1)`, at most `backoff_max`.
fn backoff(config: &SignerConfig, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    config
        .backoff_min
        .saturating_mul(factor)
        .min(config.backoff_max)
}

/// One connection: the writer's channel, the waiting requests, and the two tasks.
#[derive(Debug)]
struct Conn {
    shared: Arc<Shared>,
    writer: mpsc::Sender<Vec<u8>>,
    next_id: AtomicU64,
    tasks: [AbortHandle; 2],
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    dead: bool,
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // The map stays consistent whatever panicked while holding the lock.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn is_alive(&self) -> bool {
        !self.lock().dead
    }
    /// Mark the connection dead; dropping the senders fails every request in flight.
    fn kill(&self) {
        let mut p = self.lock();
        p.dead = true;
        p.waiting.clear();
    }
}

/// Removes a request's entry when its caller stops waiting (reply, timeout, or the
/// HTTP client went away), so late replies are dropped and the map does not grow.
struct Waiting<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared.lock().waiting.remove(&self.id);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Frames queued for the writer before senders wait.
const WRITE_QUEUE: usize = 64;

impl Conn {
    /// Connect, say Hello, check the version, start the reader and writer tasks.
    async fn open(path: &std::path::Path) -> Result<Conn, SignerError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| SignerError::Connect(e.to_string()))?;
        let (mut rd, mut wr) = stream.into_split();
        let hello = wire::encode(
            0,
            &Op::Hello {
                version: wire::VERSION,
            },
        )
        .map_err(SignerError::Frame)?;
        wr.write_all(&hello)
            .await
            .map_err(|e| SignerError::Connect(e.to_string()))?;
        match read_frame(&mut rd).await? {
            (0, Reply::Hello { version }) if version == wire::VERSION => {}
            (_, Reply::Hello { version }) if version != wire::VERSION => {
                return Err(SignerError::Version(version));
            }
            (_, Reply::Refused { reason, message }) => {
                return Err(SignerError::Protocol(format!(
                    "hello refused ({reason:?}): {message}"
                )));
            }
            (id, _) => {
                return Err(SignerError::Protocol(format!(
                    "unexpected reply to hello (id {id})"
                )));
            }
        }

        let shared = Arc::new(Shared::default());
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        let writer = {
            let shared = shared.clone();
            tokio::spawn(async move {
                while let Some(frame) = rx.recv().await {
                    if let Err(e) = wr.write_all(&frame).await {
                        tracing::warn!(error = %e, "signer connection: write failed");
                        shared.kill();
                        return;
                    }
                }
            })
        };
        let reader = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    match read_frame(&mut rd).await {
                        Ok((id, reply)) => {
                            let waiter = shared.lock().waiting.remove(&id);
                            match waiter {
                                // The caller may have given up meanwhile: nothing to do.
                                Some(w) => drop(w.send(reply)),
                                None => tracing::debug!(id, "signer reply for no waiting request"),
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "signer connection closed");
                            shared.kill();
                            return;
                        }
                    }
                }
            })
        };
        Ok(Conn {
            shared,
            writer: tx,
            next_id: AtomicU64::new(1),
            tasks: [writer.abort_handle(), reader.abort_handle()],
        })
    }

    /// Send `op` and wait at most `limit` for its reply.
    async fn call(&self, op: Op, limit: Duration) -> Result<Reply, SignerError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode(id, &op).map_err(SignerError::Frame)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.shared.lock();
            if p.dead {
                return Err(SignerError::Disconnected);
            }
            p.waiting.insert(id, tx);
        }
        let _waiting = Waiting {
            shared: &self.shared,
            id,
        };
        let exchange = async {
            self.writer
                .send(frame)
                .await
                .map_err(|_| SignerError::Disconnected)?;
            rx.await.map_err(|_| SignerError::Disconnected)
        };
        timeout(limit, exchange)
            .await
            .unwrap_or(Err(SignerError::Timeout))
    }
}

/// Read one frame: 4-byte length, [`wire::check_len`], body, [`wire::decode`].
async fn read_frame<R: AsyncRead + Unpin>(rd: &mut R) -> Result<(u64, Reply), SignerError> {
    let body = wire::read_frame::<Reply, _>(rd)
        .await
        .map_err(|e| SignerError::Protocol(e.to_string()))?
        .ok_or(SignerError::Disconnected)?;
    wire::decode(&body).map_err(|e| SignerError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = SignerConfig::new("/nonexistent".into());
        assert_eq!(backoff(&c, 1), Duration::from_millis(100));
        assert_eq!(backoff(&c, 2), Duration::from_millis(200));
        assert_eq!(backoff(&c, 4), Duration::from_millis(800));
        assert_eq!(backoff(&c, 10), Duration::from_secs(5));
        assert_eq!(backoff(&c, u32::MAX), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn frames_from_a_hostile_signer_are_errors() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0, 0],
            u32::MAX.to_be_bytes().to_vec(),
            [&5u32.to_be_bytes()[..], &[0; 5]].concat(),
            [&12u32.to_be_bytes()[..], &[0; 8], b"{\"x\""].concat(),
            [&20u32.to_be_bytes()[..], &[0; 8]].concat(),
        ];
        for bytes in cases {
            let mut rd = bytes.as_slice();
            assert!(read_frame(&mut rd).await.is_err(), "{bytes:?}");
        }
    }
}
