//! A pool of peers: selection with fallbacks, sticky and direct routes, failure accounting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::Error;
use crate::balance::{Balancer, Candidates, Cursor, Method, RoundRobin, Tried};
use crate::peer::{InFlight, Peer, PeerStatus, Shared};
use crate::request::{RequestInfo, Sticky};

/// The peers of one upstream and the balancing between them.
///
/// Build one with [`Pool::new`] (round robin) or [`Pool::builder`]; then, per request,
/// [`select`](Self::select) gives the peers to try in order. Primary peers are balanced by
/// the pool's [`Balancer`]; backup peers, by round robin, once no primary peer is left.
#[derive(Debug)]
pub struct Pool {
    shared: Arc<Shared>,
    balancer: Box<dyn Balancer>,
    backup: RoundRobin,
    sticky: Option<Sticky>,
    routes: HashMap<String, usize>,
}

/// Builds a [`Pool`]: peers, balancing method, sticky sessions.
#[derive(Debug)]
pub struct PoolBuilder {
    peers: Vec<Peer>,
    balancer: Box<dyn Balancer>,
    sticky: Option<Sticky>,
}

impl PoolBuilder {
    /// Balances primary peers by `method` (the default is round robin).
    pub fn method(mut self, method: Method) -> Self {
        self.balancer = method.balancer();
        self
    }

    /// Balances primary peers with `balancer`.
    pub fn balancer(mut self, balancer: impl Balancer + 'static) -> Self {
        self.balancer = Box::new(balancer);
        self
    }

    /// Honours sticky sessions before balancing.
    pub fn sticky(mut self, sticky: Sticky) -> Self {
        self.sticky = Some(sticky);
        self
    }

    /// The pool, or what is wrong with its configuration.
    pub fn build(self) -> Result<Pool, Error> {
        let Self {
            peers,
            mut balancer,
            sticky,
        } = self;
        if peers.is_empty() {
            return Err(Error::NoPeers);
        }
        if let Some(peer) = peers.iter().find(|peer| peer.weight() == 0) {
            return Err(Error::ZeroWeight {
                peer: peer.authority().to_owned(),
            });
        }
        if peers.iter().all(Peer::is_backup) {
            return Err(Error::OnlyBackupPeers);
        }
        if let Some(sticky) = &sticky {
            if sticky.names().is_empty() || sticky.names().iter().any(String::is_empty) {
                return Err(Error::StickyNames {
                    names: sticky.names().to_vec(),
                });
            }
        }
        let shared = Shared::new(peers);
        let mut routes = HashMap::new();
        for (index, peer) in shared.peers.iter().enumerate() {
            let Some(route) = peer.route() else { continue };
            if route.is_empty() {
                return Err(Error::EmptyRoute {
                    peer: peer.authority().to_owned(),
                });
            }
            if routes.insert(route.to_owned(), index).is_some() {
                return Err(Error::DuplicateRoute {
                    route: route.to_owned(),
                });
            }
        }
        balancer.prepare(&shared.peers[..shared.primary]);
        let mut backup = RoundRobin::new();
        backup.prepare(&shared.peers[shared.primary..]);
        Ok(Pool {
            shared: Arc::new(shared),
            balancer,
            backup,
            sticky,
            routes,
        })
    }
}

impl Pool {
    /// A round-robin pool over `peers`, in configured order.
    pub fn new(peers: Vec<Peer>) -> Result<Self, Error> {
        Self::builder(peers).build()
    }

    /// A builder over `peers`, in configured order (backup peers may be anywhere; they keep
    /// their order among themselves).
    pub fn builder(peers: Vec<Peer>) -> PoolBuilder {
        PoolBuilder {
            peers,
            balancer: Box::new(RoundRobin::new()),
            sticky: None,
        }
    }

    /// The peers: primary peers in configured order, then backup peers. Indexes elsewhere
    /// in this API ([`Attempt::index`], [`status`](Self::status)) are positions here.
    pub fn peers(&self) -> &[Peer] {
        &self.shared.peers
    }

    /// The sticky-session settings, if any.
    pub fn sticky(&self) -> Option<&Sticky> {
        self.sticky.as_ref()
    }

    /// The index of the peer with route name `route`.
    pub fn route_index(&self, route: &str) -> Option<usize> {
        self.routes.get(route).copied()
    }

    /// The peers to try for one request, best first: the sticky route's peer if the pool
    /// has [sticky sessions](PoolBuilder::sticky) and the request names an available one,
    /// then the balancer's choices among the primary peers, then backup peers. No peer
    /// comes twice; peers that are down, unhealthy or out for failures do not come.
    ///
    /// Each [`Attempt`] counts as in flight from the moment it is yielded. When the
    /// iterator ends, [`Selection::error`] says why.
    ///
    /// The selection keeps the client address and a copy of the hash key, but not the
    /// request: the sticky route is read here, so the caller may move the request's parts
    /// while it walks the fallbacks.
    pub fn select(&self, request: RequestInfo<'_>) -> Selection<'_> {
        self.select_with_clock(request, None)
    }

    #[cfg(test)]
    pub(crate) fn select_at(&self, request: RequestInfo<'_>, now: Instant) -> Selection<'_> {
        self.select_with_clock(request, Some(now))
    }

    fn select_with_clock(&self, request: RequestInfo<'_>, clock: Option<Instant>) -> Selection<'_> {
        let stage = self
            .sticky
            .as_ref()
            .and_then(|sticky| sticky.route(&request))
            .and_then(|route| self.route_index(route))
            .map_or(Stage::Primary, Stage::Pinned);
        Selection::new(self, request, stage, clock)
    }

    /// Direct routing: only the peer with route name `route` (for `/websocket/<nodeID>`),
    /// if it is available; no fallback. An unknown route or an unavailable peer ends the
    /// selection with [`Error::UnknownRoute`] or [`Error::RouteUnavailable`].
    pub fn select_route(&self, route: &str) -> Selection<'_> {
        let stage = match self.route_index(route) {
            Some(index) => Stage::Only(index),
            None => Stage::Unknown(route.into()),
        };
        Selection::new(self, RequestInfo::new(), stage, None)
    }

    #[cfg(test)]
    pub(crate) fn select_route_at(&self, route: &str, now: Instant) -> Selection<'_> {
        let mut selection = self.select_route(route);
        selection.clock = Some(now);
        selection
    }

    /// The peer for the next request, by the balancer alone, with no request facts and no
    /// accounting (kept for simple callers; [`select`](Self::select) is the full API). When
    /// no peer is available it returns the first one.
    pub fn next_peer(&self) -> &Peer {
        let index = self
            .select(RequestInfo::new())
            .next()
            .map_or(0, |attempt| attempt.index());
        &self.shared.peers[index]
    }

    /// A snapshot of the live state of the peer at `index` (see [`peers`](Self::peers)).
    ///
    /// # Panics
    ///
    /// When `index` is out of range.
    pub fn status(&self, index: usize) -> PeerStatus {
        self.shared
            .status(index, self.shared.millis(Instant::now()))
    }

    #[cfg(test)]
    pub(crate) fn status_at(&self, index: usize, now: Instant) -> PeerStatus {
        self.shared.status(index, self.shared.millis(now))
    }

    /// Counts a failure of the peer at `index` towards its `max_fails`, outside an
    /// [`Attempt`] (e.g. a response body that broke off).
    pub fn report_failure(&self, index: usize) {
        record_failure(&self.shared, index, Instant::now());
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

pub(crate) fn record_failure(shared: &Shared, index: usize, now: Instant) {
    if index >= shared.len() {
        return;
    }
    if shared.record_failure(index, shared.millis(now)) {
        let peer = &shared.peers[index];
        tracing::warn!(
            peer = %peer.authority(),
            fail_timeout_ms = peer.fail_timeout().as_millis(),
            "upstream peer failed max_fails times; out of the rotation for fail_timeout"
        );
    }
}

#[derive(Debug, Clone)]
enum Stage {
    /// A sticky route named this peer.
    Pinned(usize),
    Primary,
    Backup,
    /// Direct routing to this peer.
    Only(usize),
    /// Direct routing to a route no peer has.
    Unknown(Box<str>),
    Done,
}

#[derive(Debug, Clone)]
enum End {
    Exhausted,
    RouteUnavailable(usize),
    UnknownRoute(Box<str>),
}

/// The hash key, copied out of the request: inline when short (no allocation).
#[derive(Debug, Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; 64] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(key: &[u8]) -> Self {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= 64 => {
                let mut bytes = [0; 64];
                bytes[..key.len()].copy_from_slice(key);
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(key.into()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(bytes) => bytes,
        }
    }
}

/// The peers to try for one request, best first: an iterator of [`Attempt`]s (see
/// [`Pool::select`]). It is cheap (no allocation for pools of up to 128 peers and hash keys
/// of up to 64 bytes), borrows only the pool, and lives as long as the request's retries.
#[derive(Debug)]
pub struct Selection<'p> {
    pool: &'p Pool,
    client: Option<IpAddr>,
    key: Key,
    cursor: Cursor,
    backup_cursor: Cursor,
    tried: Tried,
    stage: Stage,
    end: End,
    yielded: u32,
    clock: Option<Instant>,
}

impl<'p> Selection<'p> {
    fn new(pool: &'p Pool, request: RequestInfo<'_>, stage: Stage, clock: Option<Instant>) -> Self {
        Self {
            pool,
            client: request.client_addr(),
            key: Key::new(request.hash_key_bytes()),
            cursor: Cursor::default(),
            backup_cursor: Cursor::default(),
            tried: Tried::new(pool.shared.len()),
            stage,
            end: End::Exhausted,
            yielded: 0,
            clock,
        }
    }

    /// How many attempts this selection has yielded.
    pub fn tries(&self) -> u32 {
        self.yielded
    }

    /// Why the selection ended (meaningful once [`next`](Iterator::next) returned `None`):
    /// [`Error::NoPeerAvailable`] (502), [`Error::RouteUnavailable`] (503, a sticky route
    /// without failover or a direct route whose peer is not available) or
    /// [`Error::UnknownRoute`] (404, a direct route no peer has).
    pub fn error(&self) -> Error {
        match &self.end {
            End::Exhausted => Error::NoPeerAvailable {
                tried: self.yielded,
            },
            End::RouteUnavailable(index) => Error::RouteUnavailable {
                route: self.pool.shared.peers[*index]
                    .route()
                    .unwrap_or_default()
                    .to_owned(),
            },
            End::UnknownRoute(route) => Error::UnknownRoute {
                route: route.to_string(),
            },
        }
    }

    fn attempt(&mut self, index: usize) -> Attempt {
        self.yielded += 1;
        Attempt {
            guard: InFlight::new(self.pool.shared.clone(), index),
        }
    }

    /// Takes `index` if it may be used now; marks it tried either way.
    fn take(&mut self, index: usize, now: u64) -> bool {
        let shared = &self.pool.shared;
        let open = !self.tried.contains(index) && shared.available(index, now);
        self.tried.insert(index);
        open && shared.claim(index, now)
    }

    /// The next peer among `offset..offset + len` by `balancer`.
    fn pick(&mut self, backup: bool, now: u64) -> Option<usize> {
        let pool = self.pool;
        let shared = &*pool.shared;
        let (offset, len, balancer, cursor): (usize, usize, &dyn Balancer, &mut Cursor) = if backup
        {
            (
                shared.primary,
                shared.len() - shared.primary,
                &pool.backup,
                &mut self.backup_cursor,
            )
        } else {
            (0, shared.primary, &*pool.balancer, &mut self.cursor)
        };
        // Each round closes one peer, so this ends; the bound guards against a balancer
        // that keeps naming a closed peer.
        for _ in 0..=len {
            let candidates = Candidates::new(shared, offset, len, &self.tried, now);
            let mut request = RequestInfo::new().hash_key(self.key.as_slice());
            if let Some(client) = self.client {
                request = request.client(client);
            }
            let index = balancer.pick(&candidates, &request, cursor)?;
            if index >= len {
                return None;
            }
            let open = candidates.is_open(index);
            self.tried.insert(offset + index);
            if open && shared.claim(offset + index, now) {
                return Some(offset + index);
            }
        }
        None
    }
}

impl Iterator for Selection<'_> {
    type Item = Attempt;

    fn next(&mut self) -> Option<Attempt> {
        let pool = self.pool;
        let shared = &*pool.shared;
        let now = shared.millis(self.clock.unwrap_or_else(Instant::now));
        loop {
            match &self.stage {
                &Stage::Pinned(index) => {
                    self.stage = Stage::Primary;
                    if self.take(index, now) {
                        if index < shared.primary {
                            let candidates =
                                Candidates::new(shared, 0, shared.primary, &self.tried, now);
                            pool.balancer.pinned(&candidates, index);
                        }
                        return Some(self.attempt(index));
                    }
                    if !pool.sticky.as_ref().is_none_or(Sticky::fails_over) {
                        self.stage = Stage::Done;
                        self.end = End::RouteUnavailable(index);
                        return None;
                    }
                }
                &Stage::Only(index) => {
                    self.stage = Stage::Done;
                    if self.take(index, now) {
                        return Some(self.attempt(index));
                    }
                    self.end = End::RouteUnavailable(index);
                    return None;
                }
                Stage::Unknown(route) => {
                    self.end = End::UnknownRoute(route.clone());
                    self.stage = Stage::Done;
                    return None;
                }
                Stage::Primary => match self.pick(false, now) {
                    Some(index) => return Some(self.attempt(index)),
                    None => self.stage = Stage::Backup,
                },
                Stage::Backup => match self.pick(true, now) {
                    Some(index) => return Some(self.attempt(index)),
                    None => self.stage = Stage::Done,
                },
                Stage::Done => return None,
            }
        }
    }
}

/// One try of one peer for one request, counted as in flight from the moment it was
/// yielded. Tell the pool how it went:
///
/// - [`succeeded`](Self::succeeded) once the response head has arrived: it clears a failed
///   peer's count and hands back the [`InFlight`] guard to hold until the response body
///   (or WebSocket tunnel) ends;
/// - [`failed`](Self::failed) when connecting, sending or reading the response head failed
///   in a way that is the peer's fault: it counts towards `max_fails`;
/// - dropping it counts nothing (e.g. the client went away).
#[derive(Debug)]
#[must_use = "an attempt counts as in flight until it is dropped or turned into a guard"]
pub struct Attempt {
    guard: InFlight,
}

impl Attempt {
    /// The peer to send to.
    pub fn peer(&self) -> &Peer {
        self.guard.peer()
    }

    /// Its index in [`Pool::peers`].
    pub fn index(&self) -> usize {
        self.guard.peer_index()
    }

    /// The peer answered: its failure count is cleared if it was out or its failures are
    /// older than `fail_timeout`. Returns the in-flight guard.
    pub fn succeeded(self) -> InFlight {
        self.succeeded_at(Instant::now())
    }

    pub(crate) fn succeeded_at(self, now: Instant) -> InFlight {
        let shared = self.guard.shared();
        shared.record_success(self.index(), shared.millis(now));
        self.guard
    }

    /// The peer failed: counted towards its `max_fails`.
    pub fn failed(self) {
        self.failed_at(Instant::now());
    }

    pub(crate) fn failed_at(self, now: Instant) {
        record_failure(self.guard.shared(), self.index(), now);
    }

    /// The in-flight guard, without a verdict.
    pub fn into_in_flight(self) -> InFlight {
        self.guard
    }
}
