use std::fmt;
use std::time::Duration;

use http::StatusCode;
use http::uri::Authority;

use crate::BoxError;

/// What went wrong in building a pool, or why a selection found no peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A pool needs at least one peer.
    #[error("an upstream pool needs at least one peer")]
    NoPeers,
    /// A peer's weight must be at least 1.
    #[error("peer {peer} has weight 0; expected a weight of at least 1")]
    ZeroWeight {
        /// The peer as `host:port`.
        peer: String,
    },
    /// Every peer is a backup peer.
    #[error("every peer is a backup peer; expected at least one primary peer")]
    OnlyBackupPeers,
    /// A peer has an empty route name.
    #[error("peer {peer} has an empty route name; expected a name such as `node1`")]
    EmptyRoute {
        /// The peer as `host:port`.
        peer: String,
    },
    /// Two peers share a route name.
    #[error("route `{route}` names two peers; expected each route name once")]
    DuplicateRoute {
        /// The route name.
        route: String,
    },
    /// Sticky sessions without names, or with an empty name.
    #[error("sticky session names {names:?}: expected at least one, none empty")]
    StickyNames {
        /// The names as given.
        names: Vec<String>,
    },
    /// A health check that cannot be sent.
    #[error("health check `{path}`: {reason}")]
    HealthCheck {
        /// The path as given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No peer is available for the request: all are down, unhealthy, out for failures, or
    /// already tried.
    #[error("no upstream peer is available (tried {tried})")]
    NoPeerAvailable {
        /// Peers the request tried.
        tried: u32,
    },
    /// A sticky route without failover, or a direct route, names a peer that is not
    /// available.
    #[error("the peer of route `{route}` is not available")]
    RouteUnavailable {
        /// The route name.
        route: String,
    },
    /// A direct route names no peer.
    #[error("no peer has route `{route}`")]
    UnknownRoute {
        /// The route as asked for.
        route: String,
    },
}

/// Which party an error is the fault of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client asked for something that does not exist.
    Downstream,
    /// The upstream peers failed.
    Upstream,
    /// The configuration is wrong.
    Internal,
}

impl Error {
    /// Whose fault it is.
    pub fn side(&self) -> Side {
        match self {
            Self::NoPeers
            | Self::ZeroWeight { .. }
            | Self::OnlyBackupPeers
            | Self::EmptyRoute { .. }
            | Self::DuplicateRoute { .. }
            | Self::StickyNames { .. }
            | Self::HealthCheck { .. } => Side::Internal,
            Self::NoPeerAvailable { .. } | Self::RouteUnavailable { .. } => Side::Upstream,
            Self::UnknownRoute { .. } => Side::Downstream,
        }
    }

    /// The status the client gets: 502 when no peer is available (nginx), 503 when a
    /// route's peer is not available (Apache `nofailover`), 404 for a route no peer has,
    /// 500 for a configuration error met at request time.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoPeers
            | Self::ZeroWeight { .. }
            | Self::OnlyBackupPeers
            | Self::EmptyRoute { .. }
            | Self::DuplicateRoute { .. }
            | Self::StickyNames { .. }
            | Self::HealthCheck { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NoPeerAvailable { .. } => StatusCode::BAD_GATEWAY,
            Self::RouteUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnknownRoute { .. } => StatusCode::NOT_FOUND,
        }
    }
}

/// Why [`UpstreamClient::send`](crate::UpstreamClient::send) got no response head, and
/// from which peer. [`is_connect`](Self::is_connect) tells whether any byte of the request
/// can have reached the peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer's host name did not resolve, or resolved to no address.
    #[error("resolving {peer}: {source}")]
    Resolve {
        /// The peer as `host:port`.
        peer: Authority,
        /// What the resolver said.
        #[source]
        source: std::io::Error,
    },
    /// Every address of the peer refused or failed the TCP connection.
    #[error("connecting to {peer}: {source}")]
    Connect {
        /// The peer as `host:port`.
        peer: Authority,
        /// The failure of the last address tried.
        #[source]
        source: std::io::Error,
    },
    /// Connecting (resolving, TCP and the TLS handshake) took longer than the connect
    /// timeout.
    #[error("connecting to {peer} timed out after {}", Seconds(*timeout))]
    ConnectTimeout {
        /// The peer as `host:port`.
        peer: Authority,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The peer's host cannot be a TLS server name (and no fixed name was configured).
    #[error("TLS server name for {peer}: {source}")]
    ServerName {
        /// The peer as `host:port`.
        peer: Authority,
        /// Why the host is not a name.
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// The TLS handshake failed: an untrusted certificate, a name that does not match, no
    /// common protocol version, or the connection closed during it.
    #[error("TLS handshake with {peer}: {source}")]
    Tls {
        /// The peer as `host:port`.
        peer: Authority,
        /// What rustls or the socket said.
        #[source]
        source: std::io::Error,
    },
    /// A fresh connection closed before any byte of the request was written.
    #[error("{peer} closed a new connection before the request was sent")]
    NotSent {
        /// The peer as `host:port`.
        peer: Authority,
        /// hyper's error.
        #[source]
        source: BoxError,
    },
    /// The peer closed the connection after (part of) the request and before a complete
    /// response head.
    #[error("{peer} closed the connection before answering")]
    Closed {
        /// The peer as `host:port`.
        peer: Authority,
        /// hyper's error.
        #[source]
        source: BoxError,
    },
    /// Writing the request or reading the response head failed otherwise: a reset, a
    /// malformed response, or the request body failing.
    #[error("exchange with {peer} failed: {source}")]
    Exchange {
        /// The peer as `host:port`.
        peer: Authority,
        /// hyper's error.
        #[source]
        source: BoxError,
    },
}

impl SendError {
    /// Whether the request failed before any byte of it was sent: resolving, connecting,
    /// the TLS handshake, or a new connection closing at once. Such a request may go to
    /// another peer whatever its method.
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Resolve { .. }
            | Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::ServerName { .. }
            | Self::Tls { .. }
            | Self::NotSent { .. } => true,
            Self::Closed { .. } | Self::Exchange { .. } => false,
        }
    }

    /// Whose fault it is: always the upstream's.
    pub fn side(&self) -> Side {
        match self {
            Self::Resolve { .. }
            | Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::ServerName { .. }
            | Self::Tls { .. }
            | Self::NotSent { .. }
            | Self::Closed { .. }
            | Self::Exchange { .. } => Side::Upstream,
        }
    }

    /// The status the client gets when no other peer answers: 502, as nginx answers a
    /// failed upstream (the engine answers its own response-header timeout with 504).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Resolve { .. }
            | Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::ServerName { .. }
            | Self::Tls { .. }
            | Self::NotSent { .. }
            | Self::Closed { .. }
            | Self::Exchange { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The peer the request was for.
    pub fn peer(&self) -> &Authority {
        match self {
            Self::Resolve { peer, .. }
            | Self::Connect { peer, .. }
            | Self::ConnectTimeout { peer, .. }
            | Self::ServerName { peer, .. }
            | Self::Tls { peer, .. }
            | Self::NotSent { peer, .. }
            | Self::Closed { peer, .. }
            | Self::Exchange { peer, .. } => peer,
        }
    }

    /// An error of hyper's for a request that was (at least partly) sent.
    pub(crate) fn exchange(peer: &Authority, error: hyper::Error) -> Self {
        let peer = peer.clone();
        if error.is_incomplete_message() || error.is_canceled() {
            Self::Closed {
                peer,
                source: error.into(),
            }
        } else {
            Self::Exchange {
                peer,
                source: error.into(),
            }
        }
    }
}

/// A duration as people write it in a message: `5 s`, `250 ms`.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{} s", self.0.as_secs())
        } else {
            write!(f, "{} ms", self.0.as_millis())
        }
    }
}
