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
//! - [`splice_websocket`] copies bytes both ways between the two upgraded connections
//!   without decoding frames or holding data back, passes a half-close on, and ends both
//!   sides when no byte has moved in either direction for the idle timeout. It follows
//!   the frame headers as they pass, so that when the proxy ends the tunnel
//!   ([`WebSocketClose`]) each side gets a close frame between two frames, never inside
//!   one; [`splice`] is the same copy without looking at the bytes at all.
//!
//! A proxied tunnel never decodes or unmasks a payload. The other three parts do speak
//! WebSocket (through `tokio-tungstenite`):
//!
//! - [`Relay`] is the rendezvous for secure shadowing: a device and a viewer each open a
//!   WebSocket to `<prefix>/<session-id>?role=device|viewer[&ticket=...]`;
//!   [`Relay::admit`] (or [`Relay::admit_uri`]) decides before the upgrade is answered
//!   (a [`RelayError`] carries the 400/403/404/409 status), and [`Admission::run`] waits
//!   for the partner and relays messages, passing the close code on. Tickets are made
//!   with [`sign_ticket`]; [`pick_relay_instance`] pins a session to one of several
//!   instances;
//! - [`probe`] checks a `ws://` or `wss://` endpoint step by step (DNS, TCP, TLS, upgrade,
//!   echo) and names the step that failed ([`ProbeError::step`]);
//! - [`bridge_tcp_to_ws`] and [`bridge_ws_to_tcp`] carry TCP connections over WebSockets,
//!   so that a VNC viewer speaking TCP reaches a device through the relay.
//!
//! With the `cli` feature, the `cli` module holds the `probe` and `bridge` subcommands (clap
//! arguments and runners) that the gangway binaries share.
//!
//! The protocol is described in `docs/tunnels.md`.
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
//!
//! // The relay answers before the upgrade: a second device for one session is refused.
//! use gangway_tunnel::{Relay, RelayConfig, RelayRole};
//! let relay = Relay::new(RelayConfig::default());
//! let now = std::time::SystemTime::now();
//! let session = "k3Jd9_aQ-Zx81mNpLr4TbW";
//! let device = relay.admit(session, RelayRole::Device, None, true, now)?;
//! let again = relay.admit(session, RelayRole::Device, None, true, now);
//! assert_eq!(again.map(|_| ()).unwrap_err().status(), http::StatusCode::CONFLICT);
//! // `device.run(upgraded_io).await` would now wait for the viewer.
//! # drop(device);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bridge;
#[cfg(feature = "cli")]
pub mod cli;
mod error;
mod frames;
#[cfg(test)]
mod frames_tests;
#[doc(hidden)]
pub mod fuzzing;
mod gate;
mod handshake;
mod probe;
mod relay;
mod splice;
#[cfg(test)]
mod splice_tests;
#[cfg(test)]
mod tests;
mod ticket;

pub use bridge::{
    BridgeReport, BridgeTarget, bridge_tcp_to_ws, bridge_ws_to_tcp, carry_tcp_over_ws,
    carry_ws_to_tcp,
};
pub use error::Error;
pub use handshake::{
    WebSocketKey, accepts_key, is_upgrade_request, upgrade_from_extended_connect,
    validate_upgrade_request,
};
pub use probe::{ProbeError, ProbeOptions, ProbeReport, ProbeStep, ProbeTimings, probe};
pub use relay::{
    Admission, CLOSE_NO_PARTNER, CLOSE_PARTNER_GONE, Relay, RelayConfig, RelayEnd, RelayError,
    RelayReport, RelayRole, SESSION_ID_MAX_LEN, SESSION_ID_MIN_LEN,
};
pub use splice::{SpliceEnd, SpliceReport, WebSocketClose, splice, splice_websocket};
pub use ticket::{pick_relay_instance, sign_ticket};
