//! WebSocket tunnelling for a reverse proxy.
//!
//! A proxied WebSocket is an HTTP/1.1 upgrade
//! ([RFC 6455 §4](https://www.rfc-editor.org/rfc/rfc6455#section-4)) followed by raw bytes.
//! This crate holds the two halves of that:
//!
//! - [`validate_upgrade_request`] checks a client's opening handshake (GET, `Upgrade:
//!   websocket`, `Connection: upgrade`, a 16-byte base64 `Sec-WebSocket-Key`, version 13)
//!   and [`accepts_key`] checks that an upstream's 101 carries the matching
//!   `Sec-WebSocket-Accept`;
//! - [`splice`] copies bytes both ways between the two upgraded connections without
//!   parsing frames or holding data back, passes a half-close on, and ends both sides when
//!   no byte has moved in either direction for the idle timeout.
//!
//! It is not for speaking WebSocket frames: the proxy never looks inside the tunnel.
//!
//! ```
//! use gangway_tunnel::{accepts_key, validate_upgrade_request};
//!
//! let request = http::Request::get("/ws")
//!     .header("upgrade", "websocket")
//!     .header("connection", "keep-alive, Upgrade")
//!     .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
//!     .header("sec-websocket-version", "13")
//!     .body(())?;
//! let key = validate_upgrade_request(request.method(), request.headers())?;
//!
//! let mut response = http::HeaderMap::new();
//! response.insert("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".parse()?);
//! assert!(accepts_key(&response, &key));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bridge;
mod error;
mod handshake;
mod probe;
mod relay;
mod splice;
#[cfg(test)]
mod tests;
mod ticket;

pub use bridge::{
    BridgeReport, BridgeTarget, bridge_tcp_to_ws, bridge_ws_to_tcp, carry_tcp_over_ws,
    carry_ws_to_tcp,
};
pub use error::Error;
pub use handshake::{WebSocketKey, accepts_key, is_upgrade_request, validate_upgrade_request};
pub use probe::{ProbeError, ProbeOptions, ProbeReport, ProbeStep, ProbeTimings, probe};
pub use relay::{
    Admission, CLOSE_NO_PARTNER, CLOSE_PARTNER_GONE, Relay, RelayConfig, RelayEnd, RelayError,
    RelayReport, RelayRole, SESSION_ID_MAX_LEN, SESSION_ID_MIN_LEN,
};
pub use splice::{SpliceEnd, SpliceReport, splice};
pub use ticket::{pick_relay_instance, sign_ticket};
