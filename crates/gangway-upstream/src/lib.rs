//! Upstream pools: which server gets a request, and the kept-alive connections to it.
//!
//! - [`Pool`]: the configured peers of one upstream and the balancing between them.
//!   [`SmoothWeightedRoundRobin`] is nginx's algorithm: weights 5, 1, 1 give the exact,
//!   interleaved sequence `a a b a c a a`, not bursts.
//! - [`UpstreamClient`]: an HTTP/1.1 client over plain TCP or TLS (a `rustls::ClientConfig`
//!   that the caller built) that keeps a bounded number of idle connections per peer and
//!   reuses them, with a connect timeout.
//!
//! It is not for choosing a route, rewriting headers or timing out a response: the engine
//! does those around [`UpstreamClient::send`].
//!
//! ```
//! use gangway_upstream::{Peer, Pool};
//!
//! let pool = Pool::new(vec![
//!     Peer::new("10.0.0.1", 8080, 5),
//!     Peer::new("10.0.0.2", 8080, 1),
//!     Peer::new("10.0.0.3", 8080, 1),
//! ])?;
//! let picks: String = (0..7).map(|_| pool.next_peer().host().chars().last().unwrap_or('?')).collect();
//! assert_eq!(picks, "1121311");
//! # Ok::<(), gangway_upstream::Error>(())
//! ```

mod balance;
mod client;
mod error;
#[cfg(test)]
mod tests;

pub use balance::{Peer, Pool, SmoothWeightedRoundRobin};
pub use client::{ClientSettings, UpstreamClient, UpstreamScheme};
pub use error::Error;
