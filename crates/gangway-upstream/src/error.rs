use http::StatusCode;

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
