//! The balancing algorithms: one trait, one type per algorithm.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::hash::{
    IP_HASH_SEED, crc32, ip_hash_bytes, ip_hash_round, ketama_ring, rehash_step, ring_position,
};
use crate::peer::{Peer, Shared};
use crate::request::RequestInfo;

/// A balancing algorithm: given the peers still open for this request, which one next.
///
/// A [`Pool`](crate::Pool) asks its balancer once for the first choice of a request and
/// again for each fallback, with the peers already yielded closed, so an algorithm decides
/// the order of fallbacks too (nginx's `ip_hash` rehashes, `round_robin` moves on). Shared
/// state (round-robin weights, Apache's `lbstatus`) lives in the balancer behind a small
/// lock; per-request state lives in the [`Cursor`].
///
/// The indexes are positions among the pool's primary peers in configured order
/// ([`Candidates::peer`]). A balancer must only return an index for which
/// [`Candidates::is_open`] is true, and `None` when it finds none.
pub trait Balancer: fmt::Debug + Send + Sync {
    /// Builds tables from the primary peers (weights, a hash ring). Called once by
    /// [`PoolBuilder::build`](crate::PoolBuilder::build).
    fn prepare(&mut self, peers: &[Peer]) {
        let _ = peers;
    }

    /// The next peer for `request`, or `None` when no open candidate is left.
    fn pick(
        &self,
        candidates: &Candidates<'_>,
        request: &RequestInfo<'_>,
        cursor: &mut Cursor,
    ) -> Option<usize>;

    /// Told when the pool chose `index` itself (a sticky route), so that the algorithm's
    /// shared accounting sees the request too. The default does nothing.
    fn pinned(&self, candidates: &Candidates<'_>, index: usize) {
        let _ = (candidates, index);
    }
}

/// Per-request state a [`Balancer`] carries from one pick to the next. It starts zeroed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Set by the balancer once it has initialised `hash`.
    pub started: bool,
    /// The running hash (`ip_hash`, `hash`) or ring position (`hash ... consistent`).
    pub hash: u64,
    /// Hash rounds that landed on a closed peer (nginx `tries`; after 20, round robin).
    pub tries: u32,
    /// Hash rounds made (nginx `rehash` of `hash KEY`).
    pub rehash: u32,
    /// Set once hashing gave up and round robin picks the rest.
    pub fallback: bool,
}

/// The peers a balancer chooses among for one pick: the pool's primary (or backup) peers,
/// with those already yielded to this request closed.
#[derive(Debug)]
pub struct Candidates<'a> {
    shared: &'a Shared,
    offset: usize,
    len: usize,
    total_weight: u64,
    tried: &'a Tried,
    now: u64,
}

impl<'a> Candidates<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        offset: usize,
        len: usize,
        tried: &'a Tried,
        now: u64,
    ) -> Self {
        let total_weight = if offset == 0 {
            shared.total_weight[0]
        } else {
            shared.total_weight[1]
        };
        Self {
            shared,
            offset,
            len,
            total_weight,
            tried,
            now,
        }
    }

    /// The number of candidates, open or not.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no candidates at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The peer at `index`.
    ///
    /// # Panics
    ///
    /// When `index >= len()`.
    pub fn peer(&self, index: usize) -> &'a Peer {
        &self.shared.peers[self.offset + index]
    }

    /// The weight of the peer at `index`.
    pub fn weight(&self, index: usize) -> u32 {
        self.shared.weight(self.offset + index)
    }

    /// Requests in flight to the peer at `index`.
    pub fn in_flight(&self, index: usize) -> usize {
        self.shared.in_flight(self.offset + index)
    }

    /// Whether the peer at `index` may be used by this request: not yet yielded to it, not
    /// down, healthy, not out for failures.
    pub fn is_open(&self, index: usize) -> bool {
        index < self.len && !self.tried.contains(self.offset + index) && self.is_available(index)
    }

    /// Whether the peer at `index` is usable at all, whether or not this request has
    /// tried it.
    pub fn is_available(&self, index: usize) -> bool {
        index < self.len && self.shared.available(self.offset + index, self.now)
    }

    /// The sum of all candidates' weights, open or not.
    pub fn total_weight(&self) -> u64 {
        self.total_weight
    }

    /// nginx's weighted walk: the candidate whose share of the total weight contains `w`
    /// (`w < total_weight()`). `starts` holds where each candidate's share starts, if the
    /// balancer prepared it for these candidates: a binary search instead of a walk.
    fn walk(&self, mut w: u64, starts: &[u64]) -> usize {
        if starts.len() == self.len && self.len > 0 {
            return starts.partition_point(|&start| start <= w) - 1;
        }
        for index in 0..self.len {
            let weight = u64::from(self.weight(index));
            if w < weight {
                return index;
            }
            w -= weight;
        }
        self.len.saturating_sub(1)
    }
}

/// The peers a selection has already yielded: a bit set, inline up to 128 peers.
#[derive(Debug, Clone)]
pub(crate) enum Tried {
    Inline(u128),
    Heap(Vec<u64>),
}

impl Tried {
    pub(crate) fn new(len: usize) -> Self {
        if len <= 128 {
            Self::Inline(0)
        } else {
            Self::Heap(vec![0; len.div_ceil(64)])
        }
    }

    pub(crate) fn contains(&self, index: usize) -> bool {
        match self {
            Self::Inline(bits) => index < 128 && bits & (1 << index) != 0,
            Self::Heap(words) => words
                .get(index / 64)
                .is_some_and(|word| word & (1 << (index % 64)) != 0),
        }
    }

    pub(crate) fn insert(&mut self, index: usize) {
        match self {
            Self::Inline(bits) => {
                if index < 128 {
                    *bits |= 1 << index;
                }
            }
            Self::Heap(words) => {
                if let Some(word) = words.get_mut(index / 64) {
                    *word |= 1 << (index % 64);
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another request panicked mid-pick; the numbers are still
    // a valid balancing state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where each peer's share of the total weight starts, for [`Candidates::walk`].
fn share_starts(peers: &[Peer]) -> Vec<u64> {
    let mut start = 0;
    peers
        .iter()
        .map(|peer| {
            let this = start;
            start += u64::from(peer.weight());
            this
        })
        .collect()
}

/// Sizes a per-peer table to the candidates (a balancer used without `prepare`).
fn fit(table: &mut Vec<i64>, len: usize) {
    if table.len() != len {
        table.clear();
        table.resize(len, 0);
    }
}

/// nginx's smooth weighted round robin: each pick adds every peer's weight to its current
/// score, takes the highest score (the first on a tie) and subtracts the total weight from
/// the winner. The sequence is exact and interleaved.
#[derive(Debug, Clone)]
pub struct SmoothWeightedRoundRobin {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl SmoothWeightedRoundRobin {
    /// Balancing over peers with these weights, in order.
    pub fn new(weights: &[u32]) -> Self {
        let weights: Vec<i64> = weights.iter().map(|&weight| i64::from(weight)).collect();
        Self {
            total: weights.iter().sum(),
            current: vec![0; weights.len()],
            weights,
        }
    }

    /// The index of the next peer.
    pub fn next_index(&mut self) -> usize {
        self.next_index_among(|_| true).unwrap_or(0)
    }

    /// The index of the next peer among those for which `open` is true (nginx skips down,
    /// failed and already tried peers this way: only they take part in the round), or
    /// `None` when none is open.
    pub fn next_index_among(&mut self, mut open: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut total = 0;
        for index in 0..self.weights.len() {
            if !open(index) {
                continue;
            }
            self.current[index] += self.weights[index];
            total += self.weights[index];
            if best.is_none_or(|best| self.current[index] > self.current[best]) {
                best = Some(index);
            }
        }
        if let Some(best) = best {
            self.current[best] -= total;
        }
        best
    }

    /// The weights, in order.
    pub fn weights(&self) -> impl Iterator<Item = u32> + '_ {
        self.weights
            .iter()
            .map(|&weight| u32::try_from(weight).unwrap_or(u32::MAX))
    }

    /// The sum of the weights used in full rounds (all peers open).
    pub fn total_weight(&self) -> i64 {
        self.total
    }
}

/// `round_robin` (nginx's default): smooth weighted round robin over the open peers. With
/// equal weights it is a lock-free rotating counter.
#[derive(Debug, Default)]
pub struct RoundRobin {
    uniform: bool,
    counter: AtomicUsize,
    table: Mutex<Option<SmoothWeightedRoundRobin>>,
}

impl RoundRobin {
    /// Round robin; [`Balancer::prepare`] learns the weights.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Balancer for RoundRobin {
    fn prepare(&mut self, peers: &[Peer]) {
        self.uniform = peers
            .first()
            .is_none_or(|first| peers.iter().all(|peer| peer.weight() == first.weight()));
        let weights: Vec<u32> = peers.iter().map(Peer::weight).collect();
        self.table = Mutex::new(Some(SmoothWeightedRoundRobin::new(&weights)));
    }

    fn pick(
        &self,
        candidates: &Candidates<'_>,
        _request: &RequestInfo<'_>,
        _cursor: &mut Cursor,
    ) -> Option<usize> {
        let len = candidates.len();
        if len == 0 {
            return None;
        }
        if self.uniform {
            let start = self.counter.fetch_add(1, Ordering::Relaxed) % len;
            return (0..len)
                .map(|step| (start + step) % len)
                .find(|&index| candidates.is_open(index));
        }
        let mut table = lock(&self.table);
        let table = match &mut *table {
            Some(table) if table.weights.len() == len => table,
            slot => {
                let weights: Vec<u32> = (0..len).map(|index| candidates.weight(index)).collect();
                slot.insert(SmoothWeightedRoundRobin::new(&weights))
            }
        };
        table.next_index_among(|index| candidates.is_open(index))
    }
}

/// `ip_hash`, exactly as nginx: the hash starts at 89 and takes, for each of the first
/// three octets of an IPv4 client (all sixteen bytes of an IPv6 one),
/// `hash = (hash * 113 + byte) % 6271`; `hash % total_weight` walks the peers' weights in
/// order to a peer. If that peer is closed (down, failed, already tried), the hash is taken
/// again from where it stands, up to 20 times, then round robin picks. A fallback for the
/// same request continues the same way, so the order of fallbacks is nginx's too.
///
/// A request without a client address hashes as nginx hashes a UNIX-socket client (three
/// zero bytes).
#[derive(Debug, Default)]
pub struct IpHash {
    starts: Vec<u64>,
    fallback: RoundRobin,
}

impl IpHash {
    /// `ip_hash`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Balancer for IpHash {
    fn prepare(&mut self, peers: &[Peer]) {
        self.starts = share_starts(peers);
        self.fallback.prepare(peers);
    }

    fn pick(
        &self,
        candidates: &Candidates<'_>,
        request: &RequestInfo<'_>,
        cursor: &mut Cursor,
    ) -> Option<usize> {
        if candidates.len() < 2 || cursor.fallback || cursor.tries > 20 {
            return self.fallback.pick(candidates, request, cursor);
        }
        let (bytes, len) = match request.client_addr() {
            Some(addr) => ip_hash_bytes(addr),
            None => ([0; 16], 3),
        };
        if !cursor.started {
            cursor.started = true;
            cursor.hash = u64::from(IP_HASH_SEED);
        }
        let total = candidates.total_weight();
        let mut hash = u32::try_from(cursor.hash).unwrap_or(IP_HASH_SEED);
        loop {
            hash = ip_hash_round(hash, &bytes[..len]);
            cursor.hash = u64::from(hash);
            let index = candidates.walk(u64::from(hash) % total, &self.starts);
            if candidates.is_open(index) {
                return Some(index);
            }
            cursor.tries += 1;
            if cursor.tries > 20 {
                cursor.fallback = true;
                return self.fallback.pick(candidates, request, cursor);
            }
        }
    }
}

/// `hash KEY` and `hash KEY consistent`, as nginx, over the key the request carries
/// ([`RequestInfo::hash_key`]).
///
/// Plain: the hash grows by `(crc32([n] KEY) >> 16) & 0x7fff` each round (`n`, the round
/// number in decimal, omitted the first time) and `hash % total_weight` walks the weights;
/// closed peers cost a round, 20 of them fall back to round robin.
///
/// Consistent (ketama, compatible with `Cache::Memcached::Fast`): each peer has
/// `160 × weight` points on a ring, the CRC-32 of `host \0 port` and the previous point;
/// the key's CRC-32 finds the first point at or after it, and fallbacks walk the ring on.
/// Peers are named by [`Peer::authority`] (`host:port`), as nginx names them by the
/// `server` text: a ring is the same as nginx's when the `server` lines are written as
/// `host:port`.
///
/// An empty key, or a single peer, uses round robin, as nginx does.
#[derive(Debug, Default)]
pub struct Hash {
    consistent: bool,
    starts: Vec<u64>,
    ring: Vec<(u32, usize)>,
    /// The number of peers the ring was built for.
    ring_peers: usize,
    fallback: RoundRobin,
}

impl Hash {
    /// `hash KEY`.
    pub fn new() -> Self {
        Self::default()
    }

    /// `hash KEY consistent`.
    pub fn consistent() -> Self {
        Self {
            consistent: true,
            ..Self::default()
        }
    }

    /// Whether this is the consistent variant.
    pub fn is_consistent(&self) -> bool {
        self.consistent
    }

    fn pick_plain(
        &self,
        candidates: &Candidates<'_>,
        key: &[u8],
        cursor: &mut Cursor,
    ) -> Option<usize> {
        let total = candidates.total_weight();
        loop {
            let step = rehash_step(key, cursor.rehash);
            let hash = u32::try_from(cursor.hash).unwrap_or(0).wrapping_add(step);
            cursor.hash = u64::from(hash);
            cursor.rehash = cursor.rehash.saturating_add(1);
            let index = candidates.walk(u64::from(hash) % total, &self.starts);
            if candidates.is_open(index) {
                return Some(index);
            }
            cursor.tries += 1;
            if cursor.tries > 20 {
                cursor.fallback = true;
                return None;
            }
        }
    }

    fn pick_ring(
        &self,
        candidates: &Candidates<'_>,
        key: &[u8],
        cursor: &mut Cursor,
    ) -> Option<usize> {
        if !cursor.started {
            cursor.started = true;
            cursor.hash = ring_position(&self.ring, crc32(key)) as u64;
        }
        let points = self.ring.len() as u64;
        loop {
            let (_, index) = self.ring[usize::try_from(cursor.hash % points).unwrap_or(0)];
            if candidates.is_open(index) {
                return Some(index);
            }
            cursor.hash += 1;
            cursor.tries += 1;
            if cursor.tries > 20 {
                cursor.fallback = true;
                return None;
            }
        }
    }
}

impl Balancer for Hash {
    fn prepare(&mut self, peers: &[Peer]) {
        self.fallback.prepare(peers);
        self.starts = share_starts(peers);
        self.ring_peers = peers.len();
        if self.consistent {
            let named: Vec<(&str, u32)> = peers
                .iter()
                .map(|peer| (peer.authority(), peer.weight()))
                .collect();
            self.ring = ketama_ring(&named);
        }
    }

    fn pick(
        &self,
        candidates: &Candidates<'_>,
        request: &RequestInfo<'_>,
        cursor: &mut Cursor,
    ) -> Option<usize> {
        let key = request.hash_key_bytes();
        let ring_fits =
            !self.consistent || (!self.ring.is_empty() && self.ring_peers == candidates.len());
        if candidates.len() < 2 || key.is_empty() || cursor.fallback || !ring_fits {
            return self.fallback.pick(candidates, request, cursor);
        }
        let picked = if self.consistent {
            self.pick_ring(candidates, key, cursor)
        } else {
            self.pick_plain(candidates, key, cursor)
        };
        match picked {
            Some(index) => Some(index),
            None => self.fallback.pick(candidates, request, cursor),
        }
    }
}

/// `least_conn`, as nginx: the open peer with the fewest requests in flight relative to
/// its weight (`in_flight / weight`, compared by cross-multiplying); ties go to smooth
/// weighted round robin among the tied peers.
#[derive(Debug, Default)]
pub struct LeastConn {
    current: Mutex<Vec<i64>>,
}

impl LeastConn {
    /// `least_conn`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Balancer for LeastConn {
    fn prepare(&mut self, peers: &[Peer]) {
        self.current = Mutex::new(vec![0; peers.len()]);
    }

    fn pick(
        &self,
        candidates: &Candidates<'_>,
        _request: &RequestInfo<'_>,
        _cursor: &mut Cursor,
    ) -> Option<usize> {
        let load = |index: usize| {
            (
                candidates.in_flight(index) as u128,
                u128::from(candidates.weight(index)),
            )
        };
        let mut best: Option<usize> = None;
        let mut many = false;
        for index in 0..candidates.len() {
            if !candidates.is_open(index) {
                continue;
            }
            match best {
                None => best = Some(index),
                Some(current) => {
                    let ((conns, weight), (best_conns, best_weight)) = (load(index), load(current));
                    if conns * best_weight < best_conns * weight {
                        best = Some(index);
                        many = false;
                    } else if conns * best_weight == best_conns * weight {
                        many = true;
                    }
                }
            }
        }
        let first = best?;
        let mut current = lock(&self.current);
        fit(&mut current, candidates.len());
        let (best_conns, best_weight) = load(first);
        let mut chosen = first;
        let mut total = 0;
        if many {
            for index in first..candidates.len() {
                if !candidates.is_open(index) {
                    continue;
                }
                let (conns, weight) = load(index);
                if conns * best_weight != best_conns * weight {
                    continue;
                }
                current[index] += i64::from(candidates.weight(index));
                total += i64::from(candidates.weight(index));
                if current[index] > current[chosen] {
                    chosen = index;
                }
            }
        }
        current[chosen] -= total;
        Some(chosen)
    }
}

/// `bybusyness`, as Apache's `mod_lbmethod_bybusyness`: the open peer with the fewest
/// requests in flight. Each pick adds every open peer's weight (Apache's `lbfactor`) to its
/// `lbstatus`; among the least busy the highest `lbstatus` wins (the first on a tie), and
/// the winner's `lbstatus` drops by the total. A request pinned by a sticky route updates
/// `lbstatus` the same way over all usable peers, as Apache's default does.
#[derive(Debug, Default)]
pub struct ByBusyness {
    lbstatus: Mutex<Vec<i64>>,
}

impl ByBusyness {
    /// `bybusyness`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Balancer for ByBusyness {
    fn prepare(&mut self, peers: &[Peer]) {
        self.lbstatus = Mutex::new(vec![0; peers.len()]);
    }

    fn pick(
        &self,
        candidates: &Candidates<'_>,
        _request: &RequestInfo<'_>,
        _cursor: &mut Cursor,
    ) -> Option<usize> {
        let mut lbstatus = lock(&self.lbstatus);
        fit(&mut lbstatus, candidates.len());
        let mut best: Option<(usize, usize)> = None;
        let mut total = 0;
        for index in 0..candidates.len() {
            if !candidates.is_open(index) {
                continue;
            }
            let weight = i64::from(candidates.weight(index));
            lbstatus[index] += weight;
            total += weight;
            let busy = candidates.in_flight(index);
            let better = match best {
                None => true,
                Some((best_index, best_busy)) => {
                    busy < best_busy
                        || (busy == best_busy && lbstatus[index] > lbstatus[best_index])
                }
            };
            if better {
                best = Some((index, busy));
            }
        }
        let (chosen, _) = best?;
        lbstatus[chosen] -= total;
        Some(chosen)
    }

    fn pinned(&self, candidates: &Candidates<'_>, index: usize) {
        let mut lbstatus = lock(&self.lbstatus);
        fit(&mut lbstatus, candidates.len());
        let mut total = 0;
        for other in 0..candidates.len() {
            if candidates.is_available(other) {
                let weight = i64::from(candidates.weight(other));
                lbstatus[other] += weight;
                total += weight;
            }
        }
        if let Some(status) = lbstatus.get_mut(index) {
            *status -= total;
        }
    }
}

/// The balancing methods by name, for building a pool from configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// [`RoundRobin`] (`round_robin`).
    #[default]
    RoundRobin,
    /// [`IpHash`] (`ip_hash`).
    IpHash,
    /// [`Hash::new`] (`hash`).
    Hash,
    /// [`Hash::consistent`] (`hash_consistent`).
    ConsistentHash,
    /// [`LeastConn`] (`least_conn`).
    LeastConn,
    /// [`ByBusyness`] (`bybusyness`).
    ByBusyness,
}

impl Method {
    /// Every method, in the order above.
    pub const ALL: [Method; 6] = [
        Method::RoundRobin,
        Method::IpHash,
        Method::Hash,
        Method::ConsistentHash,
        Method::LeastConn,
        Method::ByBusyness,
    ];

    /// The method's configuration name: `round_robin`, `ip_hash`, `hash`,
    /// `hash_consistent`, `least_conn` or `bybusyness`.
    pub fn name(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::IpHash => "ip_hash",
            Self::Hash => "hash",
            Self::ConsistentHash => "hash_consistent",
            Self::LeastConn => "least_conn",
            Self::ByBusyness => "bybusyness",
        }
    }

    /// The method named `name` (see [`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|method| method.name() == name)
    }

    /// Whether the method needs [`RequestInfo::hash_key`].
    pub fn needs_hash_key(self) -> bool {
        matches!(self, Self::Hash | Self::ConsistentHash)
    }

    /// A new balancer of this method.
    pub fn balancer(self) -> Box<dyn Balancer> {
        match self {
            Self::RoundRobin => Box::new(RoundRobin::new()),
            Self::IpHash => Box::new(IpHash::new()),
            Self::Hash => Box::new(Hash::new()),
            Self::ConsistentHash => Box::new(Hash::consistent()),
            Self::LeastConn => Box::new(LeastConn::new()),
            Self::ByBusyness => Box::new(ByBusyness::new()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
