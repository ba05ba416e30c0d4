//! Upstream pools: which server gets a request, what happens when it fails, and the
//! kept-alive connections to it. Usable on its own by any Rust service.
//!
//! - [`Pool`]: the [`Peer`]s of one upstream (weights, [route names](Peer::with_route),
//!   `max_fails` / `fail_timeout`, backup and down peers) and the balancing between them.
//!   [`Pool::select`] yields the peers to try for one request, best first, each at most
//!   once: the [`Selection`] iterator is the retry order.
//! - Balancing is a [`Balancer`] trait with one type per algorithm, chosen by [`Method`]:
//!   [`RoundRobin`] (nginx's smooth weighted round robin: weights 5, 1, 1 give
//!   `a a b a c a a`), [`IpHash`] (nginx `ip_hash`, byte for byte, proven against a trace
//!   captured from nginx), [`Hash`](struct@Hash) (nginx `hash KEY [consistent]`), [`LeastConn`] (nginx)
//!   and [`ByBusyness`] (Apache `lbmethod=bybusyness`).
//! - [`Sticky`] sessions as Apache's `mod_proxy_balancer` reads them (`JSESSIONID=abc.node2`
//!   as a cookie or a URL parameter, the route after the `.`), and direct routing to a
//!   named peer ([`Pool::select_route`]).
//! - Failure handling: an [`Attempt`] reports [`succeeded`](Attempt::succeeded) or
//!   [`failed`](Attempt::failed); `max_fails` failures within `fail_timeout` take a peer
//!   out for `fail_timeout` (nginx). [`HealthChecker`] runs active checks. [`RetryPolicy`]
//!   says when to try the next peer; [`RetryBody`] lets a streamed request body go to it.
//! - [`InFlight`]: the guard that counts a request (or WebSocket tunnel) as in flight until
//!   its response body ends, for `bybusyness` and `least_conn`.
//! - [`UpstreamClient`]: an HTTP/1.1 client over plain TCP or TLS (a `rustls::ClientConfig`
//!   that the caller built) that keeps a bounded number of idle connections per peer and
//!   reuses them, with a connect timeout. Its connections go back to the pool when their
//!   response body ([`PooledBody`]) ends; its errors are [`SendError`]s.
//!
//! It does not choose a route, rewrite headers or time out a response: the engine does
//! those around [`UpstreamClient::send`]. The engine also drives retries: it walks the
//! selection and asks the policy. See `docs/upstreams.md` for the whole picture.
//!
//! ```
//! use gangway_upstream::{Method, Peer, Pool, RequestInfo, Sticky};
//!
//! let pool = Pool::builder(vec![
//!     Peer::new("10.0.0.1", 8080, 1).with_route("nodeID1"),
//!     Peer::new("10.0.0.2", 8080, 1).with_route("nodeID2"),
//!     Peer::new("10.0.0.3", 8080, 1).with_route("nodeID3"),
//! ])
//! .method(Method::IpHash)
//! .sticky(Sticky::new(["rpcid", "JSESSIONID", "jsessionid"]).scolon_path_delim(true))
//! .build()?;
//!
//! // A sticky session wins over the hash.
//! let mut headers = http::HeaderMap::new();
//! headers.insert(http::header::COOKIE, "JSESSIONID=abc.nodeID2".parse()?);
//! let request = RequestInfo::new().client("192.0.2.7".parse()?).headers(&headers);
//! let mut selection = pool.select(request);
//! let attempt = selection.next().ok_or_else(|| selection.error())?;
//! assert_eq!(attempt.peer().route(), Some("nodeID2"));
//!
//! // The engine sends to `attempt.peer().authority()`; on a connect error it calls
//! // `attempt.failed()` and takes `selection.next()`; on a response it keeps the guard
//! // until the body ends.
//! let in_flight = attempt.succeeded();
//! assert_eq!(pool.status(in_flight.peer_index()).in_flight, 1);
//! drop(in_flight);
//!
//! // Without a session, the client address decides, as behind nginx.
//! let mut selection = pool.select(RequestInfo::new().client("192.0.2.7".parse()?));
//! let first = selection.next().ok_or_else(|| selection.error())?;
//! assert_eq!(first.peer().host(), "10.0.0.1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod balance;
mod client;
mod error;
mod hash;
mod health;
mod peer;
mod pool;
mod request;
mod retry;
#[cfg(test)]
mod tests;

pub use balance::{
    Balancer, ByBusyness, Candidates, Cursor, Hash, IpHash, LeastConn, Method, RoundRobin,
    SmoothWeightedRoundRobin,
};
pub use client::{ClientSettings, PooledBody, UpstreamClient, UpstreamScheme};
pub use error::{Error, SendError, Side};
pub use health::{HealthCheck, HealthChecker, HealthTask};
pub use peer::{InFlight, Peer, PeerStatus};
pub use pool::{Attempt, Pool, PoolBuilder, Selection};
pub use request::{RequestInfo, Sticky};
pub use retry::{BoxError, Failure, Reclaim, RetryBody, RetryPolicy};
