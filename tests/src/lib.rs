//! End-to-end test support: certificates, clients and origins on loopback.
//!
//! Everything here is hermetic: servers bind `127.0.0.1:0` and report the port they got,
//! nothing sleeps to synchronise, and every server stops when the value that owns it is
//! dropped. The pieces:
//!
//! - [`certs`]: a throwaway CA made with rcgen that issues server certificates, self-signed
//!   certificates, PEM files, and a [`certs::TempDir`] removed on drop;
//! - [`clients`]: rustls client configs trusting a test CA, TLS connects, one-shot HTTP/1.1
//!   and HTTP/2 requests over any stream, and raw byte exchanges for malformed input;
//! - [`origins`]: upstreams for the proxy to talk to. [`origins::RecordingOrigin`] records
//!   what it received, [`origins::StreamingOrigin`] proves bodies stream in both directions,
//!   [`origins::StallingOrigin`] and [`origins::SlowOrigin`] never or slowly answer, and
//!   [`origins::refused_addr`] gives a port where nothing listens. The built-in
//!   [`gangway_echo::EchoOrigin`] is re-exported there too.
//!
//! ```
//! use bytes::Bytes;
//! use gangway_e2e::{clients, origins::RecordingOrigin};
//! use http_body_util::Full;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let origin = RecordingOrigin::start().await;
//! let stream = tokio::net::TcpStream::connect(origin.addr()).await?;
//! let request = http::Request::get("/hello")
//!     .header("host", "example.test")
//!     .body(Full::new(Bytes::new()))?;
//!
//! let response = clients::http1_request(stream, request).await;
//!
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.body(), "ok");
//! assert_eq!(origin.requests()[0].uri, "/hello");
//! assert_eq!(origin.connections(), 1);
//! # Ok(())
//! # }
//! ```

pub mod certs;
pub mod clients;
pub mod origins;
#[cfg(test)]
mod tests;
