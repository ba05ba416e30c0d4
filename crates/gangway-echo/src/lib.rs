//! A built-in echo origin, used by `gangway demo` and by tests.
//!
//! [`EchoOrigin`] binds a TCP listener and answers every connection with a small origin
//! that shows a client exactly what reached it:
//!
//! - **HTTP** ([RFC 9112](https://www.rfc-editor.org/rfc/rfc9112) HTTP/1.1, and
//!   [RFC 9113](https://www.rfc-editor.org/rfc/rfc9113) HTTP/2 with prior knowledge): any
//!   method on any path gets `200 OK` with an `application/json` body
//!   `{"method", "path", "version", "headers", "body", "body_bytes"}`. `path` is the path and
//!   query as received, `headers` maps each lower-case name to its value, or to an array of
//!   values when the name repeats, and `body` is the request body as UTF-8 (lossily converted
//!   when it is not). Bodies up to [`MAX_ECHO_BODY`] bytes are echoed; a larger one gets
//!   `413 Payload Too Large`.
//! - **WebSocket** ([RFC 6455](https://www.rfc-editor.org/rfc/rfc6455)) on `/ws` with any
//!   query: a valid opening handshake (GET over HTTP/1.1, `Upgrade: websocket`, a
//!   `Connection` header listing `upgrade`, a `Sec-WebSocket-Key` and version 13) gets
//!   `101 Switching Protocols`; after that every text and binary message is sent back as it
//!   came, a close frame is answered with the same close frame and pings get pongs. An
//!   invalid handshake gets `400 Bad Request`.
//!
//! Each connection is served in its own task. Dropping the [`EchoHandle`] returned by
//! [`EchoOrigin::spawn`] (or aborting the task running [`EchoOrigin::run`]) stops the
//! listener and every connection it accepted, WebSockets included.
//!
//! ```
//! use gangway_echo::EchoOrigin;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let origin = EchoOrigin::bind("127.0.0.1:0".parse()?).await?;
//! let addr = origin.local_addr();
//! let _server = origin.spawn();
//!
//! let mut stream = tokio::net::TcpStream::connect(addr).await?;
//! stream
//!     .write_all(b"GET /hello?name=world HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\r\n")
//!     .await?;
//! let mut response = String::new();
//! stream.read_to_string(&mut response).await?;
//!
//! assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
//! assert!(response.contains(r#""path":"/hello?name=world""#));
//! assert!(response.contains(r#""host":"demo""#));
//! # Ok(())
//! # }
//! ```

mod echo;
mod error;
mod server;
#[cfg(test)]
mod tests;
mod websocket;

pub use echo::MAX_ECHO_BODY;
pub use server::{EchoHandle, EchoOrigin};
