//! Peers and balancing.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Error;

/// One upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    host: String,
    port: u16,
    weight: u32,
    authority: String,
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
        Self {
            host,
            port,
            weight,
            authority,
        }
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
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority)
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
        let mut best = 0;
        for index in 0..self.weights.len() {
            self.current[index] += self.weights[index];
            if self.current[index] > self.current[best] {
                best = index;
            }
        }
        if let Some(score) = self.current.get_mut(best) {
            *score -= self.total;
        }
        best
    }
}

#[derive(Debug)]
enum Rotation {
    /// Equal weights need no shared table: a counter is enough and takes no lock.
    Uniform(AtomicUsize),
    Weighted(Mutex<SmoothWeightedRoundRobin>),
}

/// The peers of one upstream and the balancing between them.
#[derive(Debug)]
pub struct Pool {
    peers: Vec<Peer>,
    rotation: Rotation,
}

impl Pool {
    /// A pool over `peers`, in configured order.
    pub fn new(peers: Vec<Peer>) -> Result<Self, Error> {
        if peers.is_empty() {
            return Err(Error::NoPeers);
        }
        if let Some(peer) = peers.iter().find(|peer| peer.weight == 0) {
            return Err(Error::ZeroWeight {
                peer: peer.authority.clone(),
            });
        }
        let rotation = if peers.iter().all(|peer| peer.weight == peers[0].weight) {
            Rotation::Uniform(AtomicUsize::new(0))
        } else {
            let weights: Vec<u32> = peers.iter().map(|peer| peer.weight).collect();
            Rotation::Weighted(Mutex::new(SmoothWeightedRoundRobin::new(&weights)))
        };
        Ok(Self { peers, rotation })
    }

    /// The configured peers.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The peer for the next request.
    pub fn next_peer(&self) -> &Peer {
        let index = match &self.rotation {
            Rotation::Uniform(counter) => {
                counter.fetch_add(1, Ordering::Relaxed) % self.peers.len()
            }
            Rotation::Weighted(table) => {
                // A poisoned lock only means another request panicked mid-pick; the table
                // is still a valid rotation.
                let mut table = table
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                table.next_index()
            }
        };
        &self.peers[index]
    }
}
