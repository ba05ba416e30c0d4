//! One upstream server as configured, and its live state (in flight, failures, health).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::uri::Scheme;

/// One upstream server: its address and how the pool treats it.
///
/// The defaults are nginx's: weight as given, `max_fails = 1`, `fail_timeout = 10s`, not a
/// backup, not down, plain HTTP, no route name.
///
/// ```
/// use std::time::Duration;
/// use gangway_upstream::Peer;
///
/// let peer = Peer::new("10.0.0.2", 8080, 1)
///     .with_route("nodeID2")
///     .with_max_fails(3)
///     .with_fail_timeout(Duration::from_secs(30));
/// assert_eq!(peer.route(), Some("nodeID2"));
/// assert_eq!(peer.authority(), "10.0.0.2:8080");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    host: String,
    port: u16,
    weight: u32,
    /// Shared: every request's access record names the peer it went to.
    authority: Arc<str>,
    /// `authority` parsed once, so a request's URI is put together without parsing.
    uri_authority: Option<http::uri::Authority>,
    scheme: Scheme,
    route: Option<String>,
    max_fails: u32,
    fail_timeout: Duration,
    backup: bool,
    down: bool,
}

impl Peer {
    /// A peer at `host:port` (an IPv6 address without brackets) with a relative weight.
    pub fn new(host: impl Into<String>, port: u16, weight: u32) -> Self {
        let host = host.into();
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let uri_authority = http::uri::Authority::try_from(authority.as_str()).ok();
        Self {
            host,
            port,
            weight,
            authority: authority.into(),
            uri_authority,
            scheme: Scheme::HTTP,
            route: None,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup: false,
            down: false,
        }
    }

    /// Names the peer for sticky sessions and direct routing (Apache's `route=nodeID1`).
    pub fn with_route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Failures within [`fail_timeout`](Self::fail_timeout) that take the peer out of the
    /// rotation for `fail_timeout` (nginx `max_fails`); `0` never takes it out.
    pub fn with_max_fails(mut self, max_fails: u32) -> Self {
        self.max_fails = max_fails;
        self
    }

    /// The window in which failures are counted and the time a failed peer stays out
    /// (nginx `fail_timeout`).
    pub fn with_fail_timeout(mut self, fail_timeout: Duration) -> Self {
        self.fail_timeout = fail_timeout;
        self
    }

    /// The scheme this peer speaks (the default is `http`). The pool does not use it; the
    /// engine sends to a peer through an [`UpstreamClient`](crate::UpstreamClient) of the
    /// same scheme.
    pub fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Makes this a backup peer (nginx `backup`, Apache hot standby): it gets requests only
    /// when no primary peer is available.
    pub fn backup(mut self) -> Self {
        self.backup = true;
        self
    }

    /// Marks the peer permanently down (nginx `down`): never selected, but it keeps its
    /// place in the hash tables so that other clients do not move.
    pub fn marked_down(mut self) -> Self {
        self.down = true;
        self
    }

    /// Host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Relative share of requests.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// `host:port`, with brackets around an IPv6 address: the URI authority.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// [`authority`](Self::authority), shared rather than copied.
    pub fn shared_authority(&self) -> Arc<str> {
        Arc::clone(&self.authority)
    }

    /// [`authority`](Self::authority) as a URI part, parsed when the peer was made; `None`
    /// when the host cannot appear in a URI.
    pub fn uri_authority(&self) -> Option<&http::uri::Authority> {
        self.uri_authority.as_ref()
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The route name, if the peer has one.
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// nginx `max_fails`.
    pub fn max_fails(&self) -> u32 {
        self.max_fails
    }

    /// nginx `fail_timeout`.
    pub fn fail_timeout(&self) -> Duration {
        self.fail_timeout
    }

    /// Whether this is a backup peer.
    pub fn is_backup(&self) -> bool {
        self.backup
    }

    /// Whether the peer is configured down.
    pub fn is_down(&self) -> bool {
        self.down
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority)
    }
}

/// A snapshot of one peer's live state, for metrics, status pages and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerStatus {
    /// Requests (and WebSocket tunnels) holding an [`InFlight`] guard for this peer.
    pub in_flight: usize,
    /// Failures counted towards `max_fails`.
    pub fails: u32,
    /// Whether the active health check (if any) considers the peer healthy.
    pub healthy: bool,
    /// Whether a selection could use the peer now: not down, healthy, and not out for
    /// failures.
    pub available: bool,
}

/// When the failure window of one peer opened; written only under its lock.
#[derive(Debug, Default)]
struct FailWindow {
    first_failure: u64,
}

/// The live state of one peer, shared by all requests: plain atomics on the selection
/// path, a lock only when a failure is recorded. The settings a selection reads are copied
/// here from the [`Peer`] so that a pick over many peers touches little memory.
#[derive(Debug)]
pub(crate) struct PeerSlot {
    weight: u32,
    max_fails: u32,
    fail_timeout: u64,
    down: bool,
    in_flight: AtomicUsize,
    fails: AtomicU32,
    /// Milliseconds since the pool epoch from which a peer out for failures may be tried.
    retry_at: AtomicU64,
    healthy: AtomicBool,
    /// Consecutive active-check results: positive successes, negative failures.
    streak: Mutex<i64>,
    window: Mutex<FailWindow>,
}

impl PeerSlot {
    fn new(peer: &Peer) -> Self {
        Self {
            weight: peer.weight,
            max_fails: peer.max_fails,
            fail_timeout: millis_of(peer.fail_timeout),
            down: peer.down,
            in_flight: AtomicUsize::new(0),
            fails: AtomicU32::new(0),
            retry_at: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            streak: Mutex::new(0),
            window: Mutex::new(FailWindow::default()),
        }
    }
}

/// The peers of a pool and their live state, shared with in-flight guards and the health
/// checker. Primary peers come first, in configured order, then backup peers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) peers: Box<[Peer]>,
    slots: Box<[PeerSlot]>,
    pub(crate) primary: usize,
    /// The total weight of the primary peers and of the backup peers.
    pub(crate) total_weight: [u64; 2],
    /// nginx never takes the only peer of an upstream out for failures.
    ignore_failures: bool,
    epoch: Instant,
}

impl Shared {
    pub(crate) fn new(peers: Vec<Peer>) -> Self {
        let (mut primary, backup): (Vec<Peer>, Vec<Peer>) =
            peers.into_iter().partition(|peer| !peer.backup);
        let primary_count = primary.len();
        let ignore_failures = primary_count == 1 && backup.is_empty();
        primary.extend(backup);
        let slots = primary.iter().map(PeerSlot::new).collect();
        let weight = |peers: &[Peer]| peers.iter().map(|peer| u64::from(peer.weight)).sum();
        let total_weight = [
            weight(&primary[..primary_count]),
            weight(&primary[primary_count..]),
        ];
        Self {
            peers: primary.into_boxed_slice(),
            slots,
            primary: primary_count,
            total_weight,
            ignore_failures,
            epoch: Instant::now(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Milliseconds from the pool epoch to `at` (0 before it).
    pub(crate) fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn slot(&self, index: usize) -> &PeerSlot {
        &self.slots[index]
    }

    pub(crate) fn weight(&self, index: usize) -> u32 {
        self.slot(index).weight
    }

    pub(crate) fn in_flight(&self, index: usize) -> usize {
        self.slot(index).in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn enter(&self, index: usize) {
        self.slot(index).in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn leave(&self, index: usize) {
        self.slot(index).in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether a selection may use the peer at `now`: not configured down, healthy, and not
    /// out for failures (or its `fail_timeout` has passed, so it may be tried again).
    pub(crate) fn available(&self, index: usize, now: u64) -> bool {
        let slot = self.slot(index);
        if slot.down || !slot.healthy.load(Ordering::Relaxed) {
            return false;
        }
        if self.ignore_failures || slot.max_fails == 0 {
            return true;
        }
        slot.fails.load(Ordering::Relaxed) < slot.max_fails
            || now >= slot.retry_at.load(Ordering::Relaxed)
    }

    /// Takes a peer that [`available`](Self::available) allowed. A peer that is out for
    /// failures and whose `fail_timeout` has passed is let through once per `fail_timeout`,
    /// as nginx does: the first selection to claim it wins, the others skip it.
    pub(crate) fn claim(&self, index: usize, now: u64) -> bool {
        let slot = self.slot(index);
        if self.ignore_failures
            || slot.max_fails == 0
            || slot.fails.load(Ordering::Relaxed) < slot.max_fails
        {
            return true;
        }
        let retry_at = slot.retry_at.load(Ordering::Relaxed);
        now >= retry_at
            && slot
                .retry_at
                .compare_exchange(
                    retry_at,
                    now.saturating_add(slot.fail_timeout),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Counts a failure: the first failure opens a window of `fail_timeout`; `max_fails`
    /// failures within it take the peer out until `fail_timeout` after the last one. A
    /// peer that is out and fails again (its one trial after `fail_timeout`) goes straight
    /// back out. Returns whether the peer is now out.
    pub(crate) fn record_failure(&self, index: usize, now: u64) -> bool {
        let peer = &self.peers[index];
        if peer.max_fails == 0 {
            return false;
        }
        let slot = self.slot(index);
        let timeout = millis_of(peer.fail_timeout);
        let mut window = slot.window.lock().unwrap_or_else(PoisonError::into_inner);
        let fails = slot.fails.load(Ordering::Relaxed);
        let fails = if fails == 0
            || (fails < peer.max_fails && now.saturating_sub(window.first_failure) > timeout)
        {
            window.first_failure = now;
            1
        } else {
            fails.saturating_add(1)
        };
        slot.fails.store(fails, Ordering::Relaxed);
        let out = fails >= peer.max_fails;
        if out {
            slot.retry_at
                .store(now.saturating_add(timeout), Ordering::Relaxed);
        }
        // Never both locks here: `record_check` takes the streak lock, then this one.
        drop(window);
        if out {
            // Active checks bring it back only after `rise` passes from now on.
            let mut streak = slot.streak.lock().unwrap_or_else(PoisonError::into_inner);
            *streak = (*streak).min(0);
        }
        out
    }

    /// Counts a success: a peer that was out comes back; failures older than
    /// `fail_timeout` are forgotten. Lock-free when the peer has no failures.
    pub(crate) fn record_success(&self, index: usize, now: u64) {
        let slot = self.slot(index);
        if slot.fails.load(Ordering::Relaxed) == 0 {
            return;
        }
        let peer = &self.peers[index];
        let window = slot.window.lock().unwrap_or_else(PoisonError::into_inner);
        let fails = slot.fails.load(Ordering::Relaxed);
        if fails >= peer.max_fails
            || now.saturating_sub(window.first_failure) > millis_of(peer.fail_timeout)
        {
            slot.fails.store(0, Ordering::Relaxed);
        }
    }

    /// Records one active health-check result; returns `Some(healthy)` when the peer
    /// changed state. `rise` consecutive successes bring an unhealthy peer back (and clear
    /// its failure count), `fall` consecutive failures take a healthy one out. A peer out
    /// for passive failures comes back the same way: `rise` consecutive successes since it
    /// went out clear its count, so a restarted peer need not wait for `fail_timeout`.
    pub(crate) fn record_check(
        &self,
        index: usize,
        ok: bool,
        rise: u32,
        fall: u32,
    ) -> Option<bool> {
        let slot = self.slot(index);
        let mut streak = slot.streak.lock().unwrap_or_else(PoisonError::into_inner);
        *streak = match (ok, *streak) {
            (true, s) if s > 0 => s.saturating_add(1),
            (true, _) => 1,
            (false, s) if s < 0 => s.saturating_sub(1),
            (false, _) => -1,
        };
        let healthy = slot.healthy.load(Ordering::Relaxed);
        if healthy && !ok && *streak <= -i64::from(fall.max(1)) {
            slot.healthy.store(false, Ordering::Relaxed);
            return Some(false);
        }
        if !healthy && ok && *streak >= i64::from(rise.max(1)) {
            slot.fails.store(0, Ordering::Relaxed);
            slot.healthy.store(true, Ordering::Relaxed);
            return Some(true);
        }
        let out_for_failures = slot.max_fails != 0
            && !self.ignore_failures
            && slot.fails.load(Ordering::Relaxed) >= slot.max_fails;
        if healthy && out_for_failures && *streak >= i64::from(rise.max(1)) {
            // The window lock orders this against a failure being recorded meanwhile.
            let _window = slot.window.lock().unwrap_or_else(PoisonError::into_inner);
            slot.fails.store(0, Ordering::Relaxed);
            return Some(true);
        }
        None
    }

    pub(crate) fn status(&self, index: usize, now: u64) -> PeerStatus {
        let slot = self.slot(index);
        PeerStatus {
            in_flight: slot.in_flight.load(Ordering::Relaxed),
            fails: slot.fails.load(Ordering::Relaxed),
            healthy: slot.healthy.load(Ordering::Relaxed),
            available: self.available(index, now),
        }
    }
}

fn millis_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Counts one request (or WebSocket tunnel) in flight to a peer until dropped: hold it
/// until the response body has ended or the tunnel has closed. `bybusyness` and
/// `least_conn` balance on these counts.
///
/// It owns a reference to the pool's state, so it can move into a spawned task.
#[derive(Debug)]
#[must_use = "the request stops counting as in flight when the guard is dropped"]
pub struct InFlight {
    shared: Arc<Shared>,
    index: usize,
}

impl InFlight {
    pub(crate) fn new(shared: Arc<Shared>, index: usize) -> Self {
        shared.enter(index);
        Self { shared, index }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The index of the peer in [`Pool::peers`](crate::Pool::peers).
    pub fn peer_index(&self) -> usize {
        self.index
    }

    /// The peer.
    pub fn peer(&self) -> &Peer {
        &self.shared.peers[self.index]
    }

    /// The peer failed after it answered (its response body broke off or stalled): counted
    /// towards its `max_fails` as a failed try is, and the request is no longer in flight.
    pub fn failed(self) {
        crate::pool::record_failure(&self.shared, self.index, Instant::now());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.leave(self.index);
    }
}
