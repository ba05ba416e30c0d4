/// Why a client's WebSocket opening handshake was refused (each is answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The upgrade came with another method than GET.
    #[error("WebSocket upgrade by {method}; expected GET")]
    Method {
        /// The method used.
        method: String,
    },
    /// `Upgrade` is missing or names another protocol.
    #[error("`Upgrade` header is not `websocket`")]
    UpgradeHeader,
    /// `Connection` does not contain the `upgrade` token.
    #[error("`Connection` header does not contain `upgrade`")]
    ConnectionHeader,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes in base64.
    #[error("`Sec-WebSocket-Key` is not a base64-encoded 16-byte value")]
    Key,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("`Sec-WebSocket-Version` is not 13")]
    Version,
}
