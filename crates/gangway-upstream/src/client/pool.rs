//! The idle keep-alive connections of one client, per peer.
//!
//! An upstream has few peers (a handful, rarely a hundred), so each peer's idle list is
//! found by a linear scan of the authorities rather than by hashing a key: the scan is
//! cheaper at these sizes. A peer's place in the list never changes once made, so a
//! connection goes back to its list by index, without a scan. The lock is held only to
//! push or pop, never across an await.
//!
//! Each connection remembers the thread it was opened on (its [`Home`]), where its driver
//! task runs. A checkout prefers a connection at home on the asking thread: with gangway's
//! workers, each a current-thread runtime, a request then normally neither waits for
//! another thread to write it and read its response nor wakes that thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use http::uri::Authority;
use hyper::client::conn::http1::SendRequest;

/// The reaper wakes at most this often, so that connections expiring close together are
/// closed in one pass.
const REAP_GRANULARITY: Duration = Duration::from_millis(10);

/// How many of the most recently idle connections a checkout looks through for one at home
/// before it takes the most recent.
const HOME_SCAN: usize = 8;

/// The thread a connection was opened on, where its driver task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Home(ThreadId);

impl Home {
    /// The current thread.
    pub(super) fn here() -> Self {
        Self(std::thread::current().id())
    }
}

/// The idle connections of one client; cheap to clone (the clones share the lists).
pub(super) struct IdlePool<B> {
    shared: Arc<Shared<B>>,
}

impl<B> Clone for IdlePool<B> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<B> {
    peers: Mutex<Vec<PeerIdle<B>>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// Whether the reaper task runs; it is started by the first connection made idle,
    /// on the runtime that made it.
    reaper: AtomicBool,
}

struct PeerIdle<B> {
    authority: Authority,
    /// Most recently used last: checkout pops from the end.
    idle: Vec<Idle<B>>,
}

struct Idle<B> {
    sender: SendRequest<B>,
    home: Home,
    since: Instant,
}

impl<B: Send + 'static> IdlePool<B> {
    /// Keeps at most `max_idle` idle connections per peer, each for at most `idle_timeout`.
    pub(super) fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                peers: Mutex::new(Vec::new()),
                // A connection that may not stay idle for any time is not kept at all.
                max_idle: if idle_timeout.is_zero() { 0 } else { max_idle },
                idle_timeout,
                reaper: AtomicBool::new(false),
            }),
        }
    }

    /// Whether connections are kept at all.
    pub(super) fn keeps(&self) -> bool {
        self.shared.max_idle > 0
    }

    /// The most recently used idle connection to `peer` that is not closed, preferring one
    /// at home on this thread, and the peer's slot for [`put`](Self::put). `slot` is the
    /// peer's slot when a previous call found it.
    pub(super) fn pop(
        &self,
        peer: &Authority,
        slot: &mut Option<usize>,
    ) -> Option<(SendRequest<B>, Home)> {
        let mut peers = self.shared.lock();
        let index = match *slot {
            Some(index) => index,
            None => {
                let index = find_or_add(&mut peers, peer);
                *slot = Some(index);
                index
            }
        };
        let idle = &mut peers.get_mut(index)?.idle;
        let here = Home::here();
        let at_home = idle
            .iter()
            .rev()
            .take(HOME_SCAN)
            .position(|entry| entry.home == here && !entry.sender.is_closed());
        if let Some(from_end) = at_home {
            let entry = idle.remove(idle.len() - 1 - from_end);
            return Some((entry.sender, entry.home));
        }
        while let Some(entry) = idle.pop() {
            if !entry.sender.is_closed() {
                return Some((entry.sender, entry.home));
            }
        }
        None
    }

    /// Makes `sender` idle in `slot`, or drops it (which closes its connection) when the
    /// peer has as many idle connections as allowed.
    pub(super) fn put(&self, slot: usize, sender: SendRequest<B>, home: Home) {
        if sender.is_closed() {
            return;
        }
        let refused = {
            let mut peers = self.shared.lock();
            match peers.get_mut(slot) {
                Some(peer) if peer.idle.len() < self.shared.max_idle => {
                    peer.idle.push(Idle {
                        sender,
                        home,
                        since: Instant::now(),
                    });
                    None
                }
                Some(_) | None => Some(sender),
            }
        };
        // Closed outside the lock.
        drop(refused);
        if !self.shared.reaper.load(Ordering::Relaxed) {
            self.start_reaper();
        }
    }

    fn start_reaper(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.shared.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        runtime.spawn(reap(Arc::downgrade(&self.shared), self.shared.idle_timeout));
    }

    /// How many connections are idle, for all peers.
    #[cfg(test)]
    pub(super) fn idle_count(&self) -> usize {
        self.shared.lock().iter().map(|peer| peer.idle.len()).sum()
    }
}

impl<B> Shared<B> {
    fn lock(&self) -> MutexGuard<'_, Vec<PeerIdle<B>>> {
        // The lists stay consistent whatever panicked: each change is one push or pop.
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes the connections idle for `idle_timeout` or closed by their peer; returns
    /// when the next one expires.
    fn reap(&self, now: Instant) -> Duration {
        let timeout = self.idle_timeout;
        let mut next = timeout;
        let mut expired = Vec::new();
        {
            let mut peers = self.lock();
            for peer in peers.iter_mut() {
                // Connections are pushed at the end as they become idle and popped from
                // the end, so the list is oldest first and the expired ones lead it.
                let stale = peer
                    .idle
                    .partition_point(|entry| now.saturating_duration_since(entry.since) >= timeout);
                expired.extend(peer.idle.drain(..stale));
                // Connections their peer closed are dropped too (closing them is cheap).
                peer.idle.retain(|entry| !entry.sender.is_closed());
                if let Some(oldest) = peer.idle.first() {
                    next = next
                        .min(timeout.saturating_sub(now.saturating_duration_since(oldest.since)));
                }
            }
        }
        drop(expired);
        next.max(REAP_GRANULARITY)
    }
}

/// Closes expired idle connections when they expire, until the pool is gone. It holds the
/// pool only while it looks at it, so dropping the client ends it.
async fn reap<B>(shared: Weak<Shared<B>>, timeout: Duration) {
    let mut next = timeout.max(REAP_GRANULARITY);
    loop {
        tokio::time::sleep(next).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        next = shared.reap(Instant::now());
    }
}

fn find_or_add<B>(peers: &mut Vec<PeerIdle<B>>, authority: &Authority) -> usize {
    let wanted = authority.as_str();
    if let Some(index) = peers
        .iter()
        .position(|peer| peer.authority.as_str() == wanted)
    {
        return index;
    }
    peers.push(PeerIdle {
        authority: authority.clone(),
        idle: Vec::new(),
    });
    peers.len() - 1
}

impl<B> std::fmt::Debug for IdlePool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdlePool")
            .field("max_idle", &self.shared.max_idle)
            .field("idle_timeout", &self.shared.idle_timeout)
            .finish_non_exhaustive()
    }
}
