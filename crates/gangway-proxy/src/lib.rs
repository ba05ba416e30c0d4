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
//! drain timeout to finish; WebSockets still open near its end are closed with a close
//! frame (1001) on both sides. TLS certificates, keys, client CAs and CRLs are reloaded in
//! place when their files change and on SIGHUP ([`reload_on_hangup`]); a broken file keeps
//! the old material.
//!
//! Each request ends with an access-log line. Without an [`AccessLog`] installed it is a
//! `tracing` event on target `gangway::access`; [`AccessLog::install`] sends lines in the
//! configured format (gangway's line, JSON, nginx `combined`) to standard error or a file,
//! through a bounded queue and a writer thread so that responses never wait for the disk.
//! [`reopen_logs_on_usr1`] reopens the file for logrotate.
//!
//! With an `[admin]` table, an admin listener of its own serves `/metrics` (Prometheus
//! text format: requests, latencies, bytes, connections, tunnels, TLS, peers, reloads, all
//! counted with atomics allocated at load), `/healthz`, `/readyz`, and lists and closes
//! open WebSocket tunnels and relay sessions ([`Server::admin_addr`], [`Metrics`];
//! `docs/operations.md`).
//!
//! [`start_threads`] makes the threads the binaries serve on: a main thread that accepts and
//! [`Workers`], one per CPU the process may use (or `TOKIO_WORKER_THREADS`), each serving
//! whole connections on a current-thread runtime of its own ([`Server::spread_over`]); with
//! one CPU, everything runs on the main thread.
//!
//! It is not for reading configuration files (`gangway-config`) or choosing a process-wide
//! crypto provider (the binaries do that).
//!
//! ```no_run
//! # async fn example(config: gangway_config::Config) -> Result<(), gangway_proxy::Error> {
//! let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
//! let server = gangway_proxy::Server::bind(&config, provider).await?;
//! println!("listening on {:?}", server.local_addrs());
//! let _access_log = gangway_proxy::AccessLog::install(&config.server.access_log)?;
//! tokio::spawn(gangway_proxy::reopen_logs_on_usr1());
//! tokio::spawn(gangway_proxy::reload_on_hangup(server.tls_reloader()));
//! server.run(gangway_proxy::shutdown_signal()).await;
//! # Ok(())
//! # }
//! ```

mod access;
mod access_log;
#[cfg(test)]
mod access_tests;
mod admin;
mod body;
mod conn_io;
mod edge;
mod error;
mod listeners;
mod metrics;
mod relay;
mod runtime;
mod server;
mod service;
mod signal;
mod stall;
#[cfg(test)]
mod tests;
mod threads;
mod tunnels;
mod vars;

pub use access_log::{AccessLog, reopen_access_log, reopen_logs_on_usr1};
pub use error::{Error, Side};
pub use listeners::ReloadHandle;
pub use metrics::Metrics;
pub use server::{Server, TlsReload, TlsReloader};
pub use signal::{
    PidFile, reload_config_on_hangup, reload_on_hangup, send_reload_signal, shutdown_signal,
};
pub use threads::{
    RuntimeError, Threads, WORKER_THREADS_VAR, Workers, start_threads, worker_threads,
};
