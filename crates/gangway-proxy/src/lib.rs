//! The gangway engine: the reverse proxy that composes the capability crates.
//!
//! [`Server`] takes a validated [`gangway_config::Config`], binds its listeners and serves:
//!
//! accept -> TLS handshake (listeners with a certificate; ALPN `h2`, `http/1.1`) ->
//! HTTP/1.1 or HTTP/2 (hyper) -> route lookup by host and path (`gangway-route`) -> action:
//! redirect, fixed response or proxy -> hop-by-hop headers removed, `X-Forwarded-For`
//! appended, `X-Real-IP` and `X-Forwarded-Proto` set (`gangway-headers`) -> a peer from the
//! pool and a kept-alive HTTP/1.1 connection to it (`gangway-upstream`) -> request and
//! response bodies streamed frame by frame, never buffered whole -> access-log line.
//! A WebSocket upgrade on a WebSocket route is checked, forwarded, and after both 101s the
//! bytes are spliced (`gangway-tunnel`).
//!
//! Limits and timeouts answer as a client expects: 408 for a stalled request head, 431 for
//! an oversized one, 413 for a body over the route's limit (by `Content-Length` or while
//! streaming), 502 for an upstream that refuses or fails, 504 for one that does not answer
//! in time. On shutdown the listening sockets close at once and work in flight gets the
//! drain timeout to finish. TLS certificates, keys, client CAs and CRLs are reloaded in
//! place when their files change and on SIGHUP ([`reload_on_hangup`]); a broken file keeps
//! the old material.
//!
//! It is not for reading configuration files (`gangway-config`) or choosing a process-wide
//! crypto provider (the binaries do that).
//!
//! ```no_run
//! # async fn example(config: gangway_config::Config) -> Result<(), gangway_proxy::Error> {
//! let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
//! let server = gangway_proxy::Server::bind(&config, provider).await?;
//! println!("listening on {:?}", server.local_addrs());
//! tokio::spawn(gangway_proxy::reload_on_hangup(server.tls_reloader()));
//! server.run(gangway_proxy::shutdown_signal()).await;
//! # Ok(())
//! # }
//! ```

mod access;
mod admin;
mod body;
mod conn_io;
mod error;
mod metrics;
mod relay;
mod runtime;
mod server;
mod service;
mod signal;
#[cfg(test)]
mod tests;
mod tunnels;
mod vars;

pub use error::{Error, Side};
pub use metrics::Metrics;
pub use server::{Server, TlsReload, TlsReloader};
pub use signal::{reload_on_hangup, shutdown_signal};
