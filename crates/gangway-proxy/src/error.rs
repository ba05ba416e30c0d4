//! Errors: those that stop the engine from starting, and those that end one request.

use std::net::SocketAddr;

use http::StatusCode;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listening socket could not be bound.
    #[error("listener `{listener}`: cannot bind {address}")]
    Bind {
        /// The listener's name.
        listener: String,
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A listener's or upstream's TLS material could not be loaded or used.
    #[error("{context}: TLS setup failed")]
    Tls {
        /// The listener or upstream.
        context: String,
        /// Why.
        #[source]
        source: gangway_tls::Error,
    },
    /// A listener's routes could not be compiled.
    #[error("listener `{listener}`: route table")]
    Routes {
        /// The listener's name.
        listener: String,
        /// Why.
        #[source]
        source: gangway_route::Error,
    },
    /// An upstream pool could not be built.
    #[error("upstream `{upstream}`")]
    Upstream {
        /// The upstream's name.
        upstream: String,
        /// Why.
        #[source]
        source: gangway_upstream::Error,
    },
    /// An upstream's `server_name` is not a valid DNS name or IP address.
    #[error("upstream `{upstream}`: server_name `{name}` is not a valid DNS name or IP address")]
    ServerName {
        /// The upstream's name.
        upstream: String,
        /// The name as configured.
        name: String,
    },
    /// A reload was asked of a server that is not running (stopped, or not yet started
    /// and gone).
    #[error("the server is not running")]
    NotRunning,
    /// A relay route's ticket secret could not be read or is too short.
    #[error("relay ticket secret {}: {problem}", file.display())]
    RelaySecret {
        /// The secret file.
        file: std::path::PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The admin listener's socket could not be bound.
    #[error("admin listener: cannot bind {address}")]
    AdminBind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The admin listener's token file could not be read or is too short.
    #[error("admin token file {}: {problem}", file.display())]
    AdminToken {
        /// The token file.
        file: std::path::PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The access-log file could not be opened for appending.
    #[error("access log {}: cannot open for appending", path.display())]
    AccessLog {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A route refers to an upstream index that the configuration does not have.
    #[error("listener `{listener}`: a route refers to upstream #{index}, which does not exist")]
    UnknownUpstream {
        /// The listener's name.
        listener: String,
        /// The index.
        index: usize,
    },
}

impl Error {
    /// The error and its causes on one line, for a person reading a terminal:
    /// `listener "a": cannot bind 0.0.0.0:443: Address already in use`.
    pub fn report(&self) -> String {
        cause_chain(self)
    }
}

/// `error` and its causes on one line; a cause whose text the message already ends with
/// (a `{0}` in the message) is not repeated.
pub(crate) fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Which party a request error is the fault of: it decides the status class and the log
/// level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong or too slowly.
    Downstream,
    /// The upstream failed, refused or was too slow.
    Upstream,
    /// The proxy itself could not complete the request.
    Internal,
}

/// Why one request got an error response instead of a proxied one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("no route for this host and path")]
    NoRoute,
    #[error("request body larger than the route's limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("client sent no body bytes for {seconds} s")]
    ClientBodyTimeout { seconds: u64 },
    #[error("request target is not a path")]
    BadTarget,
    #[error("request path refused: {0}")]
    BadPath(#[source] gangway_route::NormalizeError),
    #[error("client certificate refused: {reason}")]
    ClientCertificate { reason: String },
    #[error("Host `{host}` names another server than the TLS server name `{sni}`")]
    MisdirectedHost { host: String, sni: String },
    #[error("route needs TLS {required} or newer; the connection uses {used}")]
    TlsVersionTooOld {
        required: &'static str,
        used: &'static str,
    },
    #[error("WebSocket handshake refused: {0}")]
    BadUpgrade(#[source] gangway_tunnel::Error),
    #[error("the request target names host `{target}` but Host is `{host}`")]
    AmbiguousHost { target: String, host: String },
    #[error("the client's request body is malformed or was cut off")]
    BadRequestBody,
    #[error("relay refused the peer: {0}")]
    Relay(#[source] gangway_tunnel::RelayError),
    #[error("WebSocket upgrade on a route that does not allow it")]
    UpgradeNotAllowed,
    #[error("upstream connection failed: {0}")]
    UpstreamConnect(#[source] gangway_upstream::SendError),
    #[error("upstream pool: {0}")]
    NoPeer(#[source] gangway_upstream::Error),
    #[error("upstream sent no response head within {seconds} s")]
    UpstreamTimeout { seconds: u64 },
    #[error("upstream answered the WebSocket upgrade without a valid Sec-WebSocket-Accept")]
    UpstreamBadUpgrade,
    #[error("could not build the upstream request: {0}")]
    UpstreamRequest(#[source] http::Error),
    #[error("redirect target rendered to an invalid header value")]
    BadRedirectTarget,
}

impl RequestError {
    /// Whose fault it is.
    pub(crate) fn side(&self) -> Side {
        match self {
            Self::NoRoute
            | Self::BodyTooLarge { .. }
            | Self::ClientBodyTimeout { .. }
            | Self::BadTarget
            | Self::BadPath(_)
            | Self::ClientCertificate { .. }
            | Self::TlsVersionTooOld { .. }
            | Self::MisdirectedHost { .. }
            | Self::AmbiguousHost { .. }
            | Self::BadRequestBody
            | Self::Relay(_)
            | Self::BadUpgrade(_)
            | Self::UpgradeNotAllowed => Side::Downstream,
            Self::UpstreamConnect(_) | Self::UpstreamTimeout { .. } | Self::UpstreamBadUpgrade => {
                Side::Upstream
            }
            Self::UpstreamRequest(_) | Self::BadRedirectTarget => Side::Internal,
            Self::NoPeer(error) => match error.side() {
                gangway_upstream::Side::Downstream => Side::Downstream,
                gangway_upstream::Side::Upstream => Side::Upstream,
                gangway_upstream::Side::Internal => Side::Internal,
            },
        }
    }

    /// The status the client gets.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            // As for a Host that names another server: the client may retry elsewhere.
            Self::Relay(refused) => refused.status(),
            Self::TlsVersionTooOld { .. } | Self::MisdirectedHost { .. } => {
                StatusCode::MISDIRECTED_REQUEST
            }
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ClientBodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::BadTarget
            | Self::AmbiguousHost { .. }
            | Self::BadRequestBody
            | Self::BadPath(_)
            | Self::ClientCertificate { .. }
            | Self::BadUpgrade(_)
            | Self::UpgradeNotAllowed => StatusCode::BAD_REQUEST,
            Self::UpstreamConnect(_) | Self::UpstreamBadUpgrade => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamRequest(_) | Self::BadRedirectTarget => StatusCode::INTERNAL_SERVER_ERROR,
            // A direct route naming a node the pool does not have answers as one whose node
            // is down (503), not 404: the path exists, the node behind it does not.
            Self::NoPeer(gangway_upstream::Error::UnknownRoute { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::NoPeer(error) => error.status(),
        }
    }
}
