//! Why the echo origin refused a request.

use http::{Method, StatusCode, Version};

/// A request the echo origin answers with an error status instead of an echo.
///
/// Every variant is the client's fault; [`Error::status`] gives the status it is answered
/// with, and the `Display` text becomes the `error` field of the JSON body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// The request body is larger than the echo limit.
    #[error("request body is larger than the {limit}-byte echo limit")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Reading the request body failed part way.
    #[error("reading the request body failed")]
    Body {
        /// What went wrong underneath.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A WebSocket upgrade used a method other than GET.
    #[error("a WebSocket upgrade must use GET, not {method}")]
    UpgradeMethod {
        /// The method received.
        method: Method,
    },
    /// A WebSocket upgrade did not arrive over HTTP/1.1.
    #[error("a WebSocket upgrade must use HTTP/1.1, not {version:?}")]
    UpgradeVersion {
        /// The version received.
        version: Version,
    },
    /// The `Upgrade` header is missing or does not name `websocket`.
    #[error("expected `Upgrade: websocket`")]
    UpgradeHeader,
    /// The `Connection` header is missing or does not list `upgrade`.
    #[error("expected a `Connection` header listing `upgrade`")]
    ConnectionHeader,
    /// `Sec-WebSocket-Key` is missing or is not 16 base64-encoded bytes.
    #[error("expected a `Sec-WebSocket-Key` of 16 base64-encoded bytes")]
    Key,
    /// `Sec-WebSocket-Version` is missing or is not 13.
    #[error("expected `Sec-WebSocket-Version: 13`, got {got:?}")]
    WebSocketVersion {
        /// The value received, if any.
        got: Option<String>,
    },
}

impl Error {
    /// The status code this error is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Body { .. } => StatusCode::BAD_REQUEST,
            Error::UpgradeMethod { .. } => StatusCode::BAD_REQUEST,
            Error::UpgradeVersion { .. } => StatusCode::BAD_REQUEST,
            Error::UpgradeHeader => StatusCode::BAD_REQUEST,
            Error::ConnectionHeader => StatusCode::BAD_REQUEST,
            Error::Key => StatusCode::BAD_REQUEST,
            Error::WebSocketVersion { .. } => StatusCode::BAD_REQUEST,
        }
    }
}
