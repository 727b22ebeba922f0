//! Connection limits: what keeps the edge answering devices while one host (or many)
//! holds connections open without finishing a request.
//!
//! Every accepted connection is registered with the [`Tracker`] and is, at any time, in
//! one [`Phase`]:
//!
//! | phase | meaning | closed after |
//! |---|---|---|
//! | [`Phase::Head`] | reading a request head (from accept, or from the first byte after an idle keep-alive) | `--header-timeout` (408 if any byte of the head came) |
//! | [`Phase::Idle`] | keep-alive, waiting for the next request; also while a response is still being written | `--idle-timeout` after the last write progress |
//! | [`Phase::Body`] | reading a PKIOperation/OCSP POST body | `--body-timeout` (408, by the request handler) |
//! | [`Phase::Busy`] | the request is being answered (typically in flight to the signer) | the signer's own request timeout |
//!
//! When a cap is reached the new connection is admitted and an old one is *shed*:
//! 1. at `--max-connections-per-address`, the connection of that address that has been
//!    idle or reading its head the longest, else its oldest slow body;
//! 2. at `--max-connections`, the same choice over all connections.
//!
//! A connection whose request is being answered ([`Phase::Busy`]) is never cut: if every
//! candidate is busy, the *new* connection is refused instead (a short 503). Cutting an
//! in-flight enrolment would waste the signer's work, and the device would retry anyway.
//! So a flood of idle or half-sent requests only ever displaces itself and other idle
//! connections, and a device that sends its request promptly is served.
//!
//! Per-address means per IPv4 address, and per /64 for IPv6 (one host normally owns a
//! whole /64, so counting single IPv6 addresses would be no cap at all).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::metrics::Metrics;

/// Default `--header-timeout`: a device sends its request line and headers in well under
/// a second; 10 s leaves room for a slow radio link and still frees a stuck slot quickly.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `--body-timeout`: a PKIOperation body is at most 64 KiB.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(20);
/// Default `--idle-timeout`: SCEP clients send GetCACaps, GetCACert and PKIOperation back
/// to back; a keep-alive connection idle for 5 s (Apache's default) is not coming back soon.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `--max-connections`. Each connection costs one file descriptor and a few KiB
/// (hyper's buffers grow only as a head arrives), so 16384 idle connections are well under
/// 100 MiB; the systemd unit's `LimitNOFILE=` is sized for it plus [`FD_RESERVE`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 16384;
/// Default `--max-connections-per-address`. A SCEP exchange takes a few round trips, so
/// even a large site behind one NAT address rarely has more than a few dozen requests open
/// at once; 256 leaves room for that while keeping a single host to 1/64 of the global cap.
pub const DEFAULT_MAX_PER_ADDRESS: usize = 256;
/// File descriptors the edge needs besides its HTTP connections: the listeners, the
/// signer connections, the cache directory, the runtime's own.
pub const FD_RESERVE: u64 = 256;

/// The limits of the HTTP server (`castellan-edge run --help` documents each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_address: DEFAULT_MAX_PER_ADDRESS,
        }
    }
}

/// What a connection is doing (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Head,
    Idle,
    Body,
    Busy,
}

impl Phase {
    /// Shedding class: lower is shed first.
    fn class(self) -> u8 {
        match self {
            Phase::Head | Phase::Idle => 0,
            Phase::Body => 1,
            Phase::Busy => 2,
        }
    }
}

/// Why a connection was closed by a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedReason {
    PerAddress,
    Global,
}

impl ShedReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::PerAddress => "per_address_cap",
            ShedReason::Global => "global_cap",
        }
    }
}

/// Which timeout closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The head did not arrive in time; `started` if at least one byte of it did.
    Head {
        started: bool,
    },
    Idle,
}

/// One connection's state, shared by its task, its I/O wrapper and its requests.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    pub peer: SocketAddr,
    state: Mutex<State>,
    /// Woken on every phase change and when the connection is shed.
    pub wake: Notify,
    shed: Mutex<Option<ShedReason>>,
    gone: AtomicBool,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    head_started: bool,
    last_write: Instant,
}

impl Conn {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn phase(&self) -> Phase {
        self.state().phase
    }

    /// Set by the tracker when a cap shed this connection; its task then closes it.
    pub fn shed_reason(&self) -> Option<ShedReason> {
        *self.shed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the current phase times out (None: no connection-level timeout).
    pub fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let s = self.state();
        match s.phase {
            Phase::Head => Some(s.since + limits.header_timeout),
            Phase::Idle => Some(s.since.max(s.last_write) + limits.idle_timeout),
            Phase::Body | Phase::Busy => None,
        }
    }

    /// Which timeout has passed at `now`, if any.
    pub fn expired(&self, limits: &Limits, now: Instant) -> Option<Expired> {
        let started = self.state().head_started;
        let deadline = self.deadline(limits)?;
        (now >= deadline).then(|| match self.phase() {
            Phase::Head => Expired::Head { started },
            _ => Expired::Idle,
        })
    }

    /// The I/O wrapper wrote some bytes (progress on a response).
    pub fn wrote(&self) {
        self.state().last_write = Instant::now();
    }
}

/// Shedding order key: (class, sequence number of the phase change, connection id).
type Key = (u8, u64, u64);

/// The address a per-address cap counts: IPv4 address, or IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AddrKey {
    V4(u32),
    V6Net(u64),
}

impl AddrKey {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddrKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey::V4(u32::from(v4)),
                None => AddrKey::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug)]
struct Entry {
    addr: AddrKey,
    key: Key,
    conn: Arc<Conn>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    next_seq: u64,
    conns: HashMap<u64, Entry>,
    all: BTreeSet<Key>,
    by_addr: HashMap<AddrKey, BTreeSet<Key>>,
}

impl Inner {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Take a connection out of every index; returns it.
    fn unlink(&mut self, id: u64) -> Option<Arc<Conn>> {
        let e = self.conns.remove(&id)?;
        self.all.remove(&e.key);
        if let Some(set) = self.by_addr.get_mut(&e.addr) {
            set.remove(&e.key);
            if set.is_empty() {
                self.by_addr.remove(&e.addr);
            }
        }
        Some(e.conn)
    }

    /// Shed the first of `candidates` unless it is busy; `false` if nothing may be shed.
    fn shed_first(&mut self, first: Option<Key>, reason: ShedReason) -> bool {
        let Some((class, _, id)) = first else {
            return false;
        };
        if class == Phase::Busy.class() {
            return false;
        }
        if let Some(victim) = self.unlink(id) {
            *victim.shed.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
            victim.gone.store(true, Ordering::Relaxed);
            victim.wake.notify_one();
        }
        true
    }
}

/// Every open connection, indexed for the caps (owned by the server; no statics).
#[derive(Debug)]
pub struct Tracker {
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
}

impl Tracker {
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Self {
        Tracker {
            limits,
            metrics,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner().conns.len()
    }

    /// Register a new connection from `peer`, shedding an old one if a cap is reached
    /// (see the module doc). `Err(reason)`: refuse the new connection, every candidate
    /// for shedding being busy.
    pub fn admit(&self, peer: SocketAddr) -> Result<Arc<Conn>, ShedReason> {
        let addr = AddrKey::of(peer.ip());
        let mut inner = self.inner();
        let same = inner.by_addr.get(&addr);
        if same.map_or(0, BTreeSet::len) >= self.limits.max_per_address {
            let first = same.and_then(|s| s.first().copied());
            self.metrics.shed(ShedReason::PerAddress);
            if !inner.shed_first(first, ShedReason::PerAddress) {
                return Err(ShedReason::PerAddress);
            }
        }
        if inner.conns.len() >= self.limits.max_connections {
            let first = inner.all.first().copied();
            self.metrics.shed(ShedReason::Global);
            if !inner.shed_first(first, ShedReason::Global) {
                return Err(ShedReason::Global);
            }
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let key = (Phase::Head.class(), inner.seq(), id);
        let now = Instant::now();
        let conn = Arc::new(Conn {
            id,
            peer,
            state: Mutex::new(State {
                phase: Phase::Head,
                since: now,
                head_started: false,
                last_write: now,
            }),
            wake: Notify::new(),
            shed: Mutex::new(None),
            gone: AtomicBool::new(false),
        });
        inner.all.insert(key);
        inner.by_addr.entry(addr).or_default().insert(key);
        inner.conns.insert(
            id,
            Entry {
                addr,
                key,
                conn: conn.clone(),
            },
        );
        Ok(conn)
    }

    /// Shed the connection idle or reading its head the longest, else the oldest slow
    /// body, to free a file descriptor when `accept` fails for lack of one; `false` if
    /// every connection is busy.
    pub fn shed_oldest(&self) -> bool {
        let mut inner = self.inner();
        let first = inner.all.first().copied();
        let shed = inner.shed_first(first, ShedReason::Global);
        if shed {
            self.metrics.shed(ShedReason::Global);
        }
        shed
    }

    /// Move `conn` to `phase` (it goes to the back of its shedding class) and wake its task.
    pub fn set_phase(&self, conn: &Conn, phase: Phase) {
        {
            let mut inner = self.inner();
            let seq = inner.seq();
            let Inner {
                conns,
                all,
                by_addr,
                ..
            } = &mut *inner;
            if let Some(e) = conns.get_mut(&conn.id) {
                all.remove(&e.key);
                let set = by_addr.entry(e.addr).or_default();
                set.remove(&e.key);
                e.key = (phase.class(), seq, conn.id);
                all.insert(e.key);
                set.insert(e.key);
            }
            let mut s = conn.state();
            s.phase = phase;
            s.since = Instant::now();
            s.head_started = false;
        }
        conn.wake.notify_one();
    }

    /// The I/O wrapper read bytes: a keep-alive connection starts a new head (its header
    /// timeout runs from now); a fresh connection's head has started.
    pub fn read_some(&self, conn: &Conn) {
        let idle = {
            let mut s = conn.state();
            match s.phase {
                Phase::Head => {
                    s.head_started = true;
                    false
                }
                Phase::Idle => true,
                Phase::Body | Phase::Busy => false,
            }
        };
        if idle && !conn.gone.load(Ordering::Relaxed) {
            self.set_phase(conn, Phase::Head);
            conn.state().head_started = true;
        }
    }

    /// Forget a closed connection (no-op if it was shed).
    pub fn remove(&self, conn: &Conn) {
        self.inner().unlink(conn.id);
    }
}

/// Raise this process's `RLIMIT_NOFILE` soft limit to its hard limit (the default soft
/// limit, 1024, is far below the default caps) and warn if the caps still do not fit:
/// past the limit, `accept` fails with EMFILE and nobody is served. Returns the soft limit.
pub fn raise_nofile(limits: &Limits) -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    /// Never ask for more than this (an "unlimited" hard limit is capped by the kernel's
    /// nr_open anyway).
    const CEILING: u64 = 1 << 20;
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read RLIMIT_NOFILE");
            return None;
        }
    };
    let want = hard.min(CEILING);
    let soft = if soft < want {
        match setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
            Ok(()) => want,
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "cannot raise RLIMIT_NOFILE");
                soft
            }
        }
    } else {
        soft
    };
    let needed = limits.max_connections as u64 + FD_RESERVE;
    if soft < needed {
        tracing::warn!(
            nofile = soft,
            needed,
            max_connections = limits.max_connections,
            "RLIMIT_NOFILE is below --max-connections plus {FD_RESERVE}: raise LimitNOFILE= \
             (or ulimit -n) or lower --max-connections, or accept() will fail under load"
        );
    }
    Some(soft)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tracker(max: usize, per: usize) -> Tracker {
        Tracker::new(
            Limits {
                max_connections: max,
                max_per_address: per,
                ..Limits::default()
            },
            Arc::new(Metrics::default()),
        )
    }

    fn at(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn per_address_cap_sheds_that_address_oldest_idle_first() {
        let t = tracker(100, 3);
        let a1 = t.admit(at("10.0.0.1")).unwrap();
        let a2 = t.admit(at("10.0.0.1")).unwrap();
        let a3 = t.admit(at("10.0.0.1")).unwrap();
        let b = t.admit(at("10.0.0.2")).unwrap();
        // a1 is answering a request; a2 is the oldest head.
        t.set_phase(&a1, Phase::Busy);
        let a4 = t.admit(at("10.0.0.1")).unwrap();
        assert_eq!(a2.shed_reason(), Some(ShedReason::PerAddress));
        assert_eq!(a1.shed_reason(), None);
        assert_eq!(a3.shed_reason(), None);
        assert_eq!(
            b.shed_reason(),
            None,
            "another address is never shed by this cap"
        );
        assert_eq!(a4.shed_reason(), None);
        assert_eq!(t.open(), 4);
        // A slow body is shed after heads: a3 → body, then a4 is the oldest head.
        t.set_phase(&a3, Phase::Body);
        t.admit(at("10.0.0.1")).unwrap();
        assert_eq!(a4.shed_reason(), Some(ShedReason::PerAddress));
        assert_eq!(a3.shed_reason(), None);
    }

    #[test]
    fn busy_connections_are_never_shed_the_new_one_is_refused() {
        let t = tracker(2, 10);
        let a = t.admit(at("10.0.0.1")).unwrap();
        let b = t.admit(at("10.0.0.2")).unwrap();
        t.set_phase(&a, Phase::Busy);
        t.set_phase(&b, Phase::Busy);
        assert_eq!(t.admit(at("10.0.0.3")).unwrap_err(), ShedReason::Global);
        assert_eq!(t.open(), 2);
        // Back to idle: now b is the oldest idle one, then a.
        t.set_phase(&b, Phase::Idle);
        t.set_phase(&a, Phase::Idle);
        let c = t.admit(at("10.0.0.3")).unwrap();
        assert_eq!(b.shed_reason(), Some(ShedReason::Global));
        assert_eq!(a.shed_reason(), None);
        assert_eq!(t.open(), 2);
        t.remove(&c);
        t.remove(&b); // already shed: a no-op
        assert_eq!(t.open(), 1);
        // Out of descriptors: the oldest non-busy connection goes; busy ones never do.
        assert!(t.shed_oldest());
        assert_eq!(a.shed_reason(), Some(ShedReason::Global));
        let d = t.admit(at("10.0.0.4")).unwrap();
        t.set_phase(&d, Phase::Busy);
        assert!(!t.shed_oldest());
        assert_eq!(t.open(), 1);
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            AddrKey::of("2001:db8:1:2::1".parse().unwrap()),
            AddrKey::of("2001:db8:1:2:ffff::9".parse().unwrap())
        );
        assert_ne!(
            AddrKey::of("2001:db8:1:2::1".parse().unwrap()),
            AddrKey::of("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(
            AddrKey::of("::ffff:192.0.2.7".parse().unwrap()),
            AddrKey::of("192.0.2.7".parse().unwrap())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_phase() {
        let limits = Limits::default();
        let t = tracker(10, 10);
        let c = t.admit(at("10.0.0.1")).unwrap();
        let start = Instant::now();
        assert_eq!(c.deadline(&limits), Some(start + limits.header_timeout));
        tokio::time::advance(limits.header_timeout).await;
        assert_eq!(
            c.expired(&limits, Instant::now()),
            Some(Expired::Head { started: false })
        );
        t.set_phase(&c, Phase::Busy);
        assert_eq!(c.deadline(&limits), None);
        t.set_phase(&c, Phase::Idle);
        let idle_at = Instant::now();
        tokio::time::advance(Duration::from_secs(3)).await;
        c.wrote();
        assert_eq!(
            c.deadline(&limits),
            Some(idle_at + Duration::from_secs(3) + limits.idle_timeout),
            "writing a response is progress"
        );
        t.read_some(&c);
        assert_eq!(c.phase(), Phase::Head);
        assert_eq!(
            c.deadline(&limits),
            Some(Instant::now() + limits.header_timeout)
        );
        tokio::time::advance(limits.header_timeout).await;
        assert_eq!(
            c.expired(&limits, Instant::now()),
            Some(Expired::Head { started: true })
        );
    }
}
