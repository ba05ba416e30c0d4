//! Listeners, connections and shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use gangway_config::Config;
use gangway_tls::{Reload, ReloadReport};
use gangway_upstream::HealthChecker;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls::crypto::CryptoProvider;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::admin::AdminListener;
use crate::conn_io::{ConnState, GuardedIo};
use crate::edge::{Prefixed, read_proxy_header};
use crate::listeners::{
    Bound, ListenerSet, ReloadHandle, ReloadRequest, TlsListeners, serve_reloads,
};
use crate::metrics::{Metrics, Observer};
use crate::runtime::{ListenerRuntime, build};
use crate::service::{Connection, serve};
use crate::stall::StallExecutor;
use crate::{Error, Workers};

/// `SETTINGS_MAX_CONCURRENT_STREAMS` of every HTTP/2 connection.
const MAX_CONCURRENT_STREAMS: u32 = 100;

/// Counts work that outlives its HTTP connection (WebSocket tunnels) so that shutdown can
/// wait for it, and tells it when the drain is about to end.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracker {
    inner: Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    active: AtomicUsize,
    idle: Notify,
    /// Set once the drain nears its end; the tracked work should close now.
    closing: AtomicBool,
    /// How long the tunnels have for their close handshake, in milliseconds.
    close_window_ms: AtomicU64,
    close: Notify,
}

/// Held while tracked work runs.
#[derive(Debug)]
pub(crate) struct TrackerGuard {
    inner: Arc<TrackerInner>,
}

impl Tracker {
    pub(crate) fn enter(&self) -> TrackerGuard {
        self.inner.active.fetch_add(1, Ordering::AcqRel);
        TrackerGuard {
            inner: self.inner.clone(),
        }
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.inner.active.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Asks every tracked tunnel to close within `window`, and every one entered from now
    /// on.
    fn close_all(&self, window: Duration) {
        let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.inner.close_window_ms.store(millis, Ordering::Release);
        self.inner.closing.store(true, Ordering::Release);
        self.inner.close.notify_waiters();
    }
}

impl TrackerGuard {
    /// Completes when shutdown asks tunnels to close (at once if it already has), with the
    /// time they have for it.
    pub(crate) async fn closing(&self) -> Duration {
        loop {
            let notified = self.inner.close.notified();
            if self.inner.closing.load(Ordering::Acquire) {
                return Duration::from_millis(self.inner.close_window_ms.load(Ordering::Acquire));
            }
            notified.await;
        }
    }
}

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        if self.inner.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

/// How long before the end of the drain WebSocket tunnels are sent their close frames, so
/// that the close handshake still fits in the drain timeout. A drain shorter than twice
/// this closes them half way through instead, with half the drain for the handshake.
pub(crate) const WEBSOCKET_CLOSE_WINDOW: Duration = Duration::from_secs(3);

/// A bound, ready-to-run proxy: every listener's socket is open when [`Server::bind`]
/// returns, so a caller can learn the ports (`:0` in tests) before serving.
#[derive(Debug)]
pub struct Server {
    provider: Arc<CryptoProvider>,
    bound: Vec<Bound>,
    runtimes: Vec<ListenerRuntime>,
    addresses: Vec<SocketAddr>,
    drain_timeout: Duration,
    certificate_watch_interval: Option<Duration>,
    /// Active health checks, started by [`run`](Self::run).
    health: Vec<HealthChecker>,
    tls: TlsListeners,
    reload_requests: mpsc::Sender<ReloadRequest>,
    reloads: mpsc::Receiver<ReloadRequest>,
    /// `/metrics`, readiness and the tunnel registry.
    observer: Arc<Observer>,
    admin: Option<AdminListener>,
    /// Where accepted connections are served.
    workers: Workers,
}

/// Reloads the TLS material (certificates, keys, client CAs, CRLs) of every TLS listener
/// of a [`Server`] in place, without a configuration reload.
///
/// New handshakes use the new material; open connections keep what they negotiated. A
/// listener whose files are missing or broken keeps its previous material, and the
/// failure is logged naming the file. It follows configuration reloads: the listeners it
/// reloads are always those of the configuration in use.
#[derive(Debug, Clone)]
pub struct TlsReloader {
    listeners: TlsListeners,
    observer: Arc<Observer>,
}

/// What reloading one listener's TLS material gave.
#[derive(Debug)]
pub struct TlsReload {
    /// The listener's name.
    pub listener: Arc<str>,
    /// What was read and what changed, or why the old material stays.
    pub result: Result<ReloadReport, gangway_tls::Error>,
}

impl TlsReloader {
    /// Reads every listener's files again now (blocking file reads: call it from a
    /// blocking context such as `tokio::task::spawn_blocking`).
    pub fn reload(&self) -> Vec<TlsReload> {
        self.listeners
            .load()
            .iter()
            .map(|(listener, tls)| {
                let result = tls.reload();
                self.observer.tls_reloaded(result.is_ok());
                if let Ok(report) = &result {
                    tracing::info!(
                        %listener,
                        changed = report.changed.len(),
                        "TLS material reloaded"
                    );
                }
                TlsReload {
                    listener: listener.clone(),
                    result,
                }
            })
            .collect()
    }
}

impl Server {
    /// Compiles `config` and binds every listener. The crypto provider is used for every
    /// TLS listener and upstream.
    pub async fn bind(config: &Config, provider: Arc<CryptoProvider>) -> Result<Self, Error> {
        let observer = Arc::new(Observer::default());
        let (runtimes, health) = build(config, &provider, &observer.tunnels)?;
        let mut bound = Vec::with_capacity(runtimes.len());
        for (listener, runtime) in config.listeners.iter().zip(&runtimes) {
            let socket = Bound::bind(listener).await?;
            tracing::info!(listener = %listener.name, address = %socket.address, tls = runtime.tls.is_some(), "listening");
            bound.push(socket);
        }
        let tls = runtimes
            .iter()
            .filter_map(|runtime| Some((runtime.name.clone(), runtime.tls.clone()?)))
            .collect();
        let (reload_requests, reloads) = mpsc::channel(4);
        observer.publish(&runtimes);
        let admin = match &config.admin {
            Some(admin) => Some(AdminListener::bind(admin).await?),
            None => None,
        };
        Ok(Self {
            provider,
            addresses: bound.iter().map(|bound| bound.address).collect(),
            bound,
            runtimes,
            drain_timeout: config.server.drain_timeout,
            certificate_watch_interval: config.server.certificate_watch_interval,
            health,
            tls: Arc::new(ArcSwap::from_pointee(tls)),
            reload_requests,
            reloads,
            observer,
            admin,
            workers: Workers::here(),
        })
    }

    /// Serves accepted connections on `workers` (each on the least busy one) instead of the
    /// runtime that runs [`run`](Self::run), which keeps accepting, the admin listener,
    /// health checks and reloads.
    #[must_use]
    pub fn spread_over(mut self, workers: Workers) -> Self {
        self.workers = workers;
        self
    }

    /// The admin listener's bound address, when the configuration has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminListener::local_addr)
    }

    /// The counters `/metrics` shows.
    pub fn metrics(&self) -> Metrics {
        Metrics {
            observer: self.observer.clone(),
        }
    }

    /// A handle that reloads every TLS listener's certificates, keys, CAs and CRLs; it
    /// stays valid while the server runs, across configuration reloads.
    pub fn tls_reloader(&self) -> TlsReloader {
        TlsReloader {
            listeners: self.tls.clone(),
            observer: self.observer.clone(),
        }
    }

    /// A handle that swaps the whole configuration while the server runs.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            requests: self.reload_requests.clone(),
            observer: self.observer.clone(),
        }
    }

    /// The bound address of each listener, in configuration order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// Serves until `shutdown` completes, then stops accepting (closing the listening
    /// sockets, so new connections are refused), lets requests and tunnels in flight finish
    /// for up to the drain timeout, and returns. Reloads sent through
    /// [`reload_handle`](Self::reload_handle) are applied meanwhile.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            provider,
            bound,
            runtimes,
            drain_timeout,
            certificate_watch_interval,
            health,
            tls,
            reload_requests,
            mut reloads,
            observer,
            admin,
            workers,
            ..
        } = self;
        // Only outside handles may ask for reloads now.
        drop(reload_requests);
        observer.show_workers(workers.loads());
        let graceful = Arc::new(GracefulShutdown::new());
        let tunnels = Tracker::default();
        let mut set = ListenerSet::start(
            provider,
            bound,
            runtimes,
            health,
            tls,
            drain_timeout,
            certificate_watch_interval,
            graceful.clone(),
            tunnels.clone(),
            observer.clone(),
            // The workers stop with their last handle: this one lasts until the drain is over.
            workers.clone(),
        );
        // The admin listener answers until the drain is over, so `/readyz` says 503 then.
        let (admin_stop, admin_stopped) = watch::channel(false);
        let admin = admin.map(|admin| tokio::spawn(admin.serve(observer.clone(), admin_stopped)));
        observer.set_ready(true);
        serve_reloads(&mut set, &mut reloads, shutdown).await;
        observer.set_ready(false);
        reloads.close();
        let drain_timeout = set.drain_timeout;
        tracing::info!("shutting down: no new connections; draining for up to {drain_timeout:?}");
        set.stop_accepting().await;
        drop(set);
        let deadline = tokio::time::Instant::now() + drain_timeout;
        let close_window = WEBSOCKET_CLOSE_WINDOW.min(drain_timeout / 2);
        let close_at = deadline - close_window;
        let drain = async {
            // Every accept loop has ended, so this is the last holder.
            if let Ok(graceful) = Arc::try_unwrap(graceful) {
                graceful.shutdown().await;
            }
            tunnels.wait_idle().await;
        };
        tokio::pin!(drain);
        // Requests and tunnels run on until close to the deadline; then WebSockets are
        // sent their close frames, with time left for the close handshake.
        let drained = match tokio::time::timeout_at(close_at, &mut drain).await {
            Ok(()) => Ok(()),
            Err(_) => {
                tracing::info!("drain nearly over: closing the WebSocket tunnels still open");
                tunnels.close_all(close_window);
                tokio::time::timeout_at(deadline, &mut drain).await
            }
        };
        match drained {
            Ok(()) => tracing::info!("drained; stopped"),
            Err(_) => tracing::warn!("drain timeout passed; closing what is still open"),
        }
        let _ = admin_stop.send(true);
        if let Some(admin) = admin {
            // An admin task that panicked has nothing left to close.
            let _ = admin.await;
        }
        drop(workers);
    }
}

pub(crate) async fn accept_loop(
    socket: TcpListener,
    runtime: Arc<ArcSwap<ListenerRuntime>>,
    graceful: Arc<GracefulShutdown>,
    tunnels: Tracker,
    workers: Workers,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            _ = stopped.changed() => return,
        };
        match accepted {
            Ok((stream, client)) => {
                // The configuration in use when the connection came; it keeps it.
                let runtime = runtime.load_full();
                let watcher = graceful.watcher();
                let tunnels = tunnels.clone();
                workers.serve(stream, move |stream| {
                    handle_connection(stream, client, runtime, watcher, tunnels)
                });
            }
            Err(error) => {
                // Out of descriptors and similar: back off briefly instead of spinning.
                tracing::warn!(listener = %runtime.load().name, "accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    runtime: Arc<ListenerRuntime>,
    watcher: Watcher,
    tunnels: Tracker,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    // Small writes (response heads, WebSocket frames) go out at once.
    let _ = stream.set_nodelay(true);
    enable_tcp_keepalive(&stream);
    // Behind a balancer, the PROXY header names the client; it must come within the head
    // timeout, and only from the balancers.
    let (client, rest) = match &runtime.proxy_protocol {
        None => (peer, Vec::new()),
        Some(trusted) => {
            let header = read_proxy_header(&mut stream, peer, trusted);
            match tokio::time::timeout(runtime.header_read_timeout, header).await {
                Ok(Ok((named, rest))) => (named.unwrap_or(peer), rest),
                Ok(Err(error)) => {
                    tracing::warn!(%peer, listener = %runtime.name, "connection refused: {error}");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%peer, listener = %runtime.name, "connection refused: no PROXY header in time");
                    return;
                }
            }
        }
    };
    let Some(_permit) = runtime.limits.admit(client.ip()) else {
        tracing::warn!(%client, listener = %runtime.name, "connection refused: connection limit reached");
        return;
    };
    let stream = Prefixed::new(stream, rest);
    let state = Arc::new(ConnState::default());
    let _open = runtime.metrics.connection_opened();
    match runtime.tls.clone() {
        None => {
            let conn = Arc::new(Connection {
                listener: runtime.clone(),
                client,
                client_addr: client.ip().into(),
                local,
                tls: None,
                server_name: None,
                state: state.clone(),
                tunnels,
            });
            let io = GuardedIo::new(stream, state, runtime.guard_timeouts(), false);
            serve_http(io, conn, &runtime, watcher).await;
        }
        Some(listener_tls) => {
            let acceptor = TlsAcceptor::from(listener_tls.server_config());
            // Boxed, and the handshake's result dropped with this block: otherwise the
            // connection's task keeps room for the TLS state (over 1 KiB) twice more, for
            // as long as the connection lives.
            let tls_stream = {
                let handshake =
                    tokio::time::timeout(runtime.header_read_timeout, acceptor.accept(stream))
                        .await;
                match handshake {
                    Ok(Ok(tls_stream)) => Box::new(tls_stream),
                    Ok(Err(error)) => {
                        runtime.metrics.handshake(None);
                        tracing::debug!(%client, listener = %runtime.name, "TLS handshake failed: {error}");
                        return;
                    }
                    Err(_) => {
                        runtime.metrics.handshake(None);
                        tracing::debug!(%client, listener = %runtime.name, "TLS handshake timed out");
                        return;
                    }
                }
            };
            let session = listener_tls.session(tls_stream.get_ref().1);
            runtime.metrics.handshake(Some(session.identity().status()));
            let server_name = session.server_name().map(str::to_owned);
            let http2 = session.alpn() == Some(b"h2");
            if let gangway_tls::VerifyStatus::Failed(reason) = session.identity().status() {
                // Forwarded or refused per the policy; either way the reason is logged.
                tracing::info!(%client, listener = %runtime.name, "client certificate not verified: {reason}");
            }
            let conn = Arc::new(Connection {
                listener: runtime.clone(),
                client,
                client_addr: client.ip().into(),
                local,
                tls: Some(session),
                server_name,
                state: state.clone(),
                tunnels,
            });
            let io = GuardedIo::new(tls_stream, state, runtime.guard_timeouts(), http2);
            serve_http(io, conn, &runtime, watcher).await;
        }
    }
}

/// TCP keep-alive on a client connection, so a device that vanished without a FIN (power
/// cut, NAT timeout) is noticed within minutes instead of holding its tunnel until the
/// idle timeout: first probe after 60 s of silence, then every 10 s, 6 tries.
pub(crate) fn enable_tcp_keepalive(stream: &TcpStream) {
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    let keepalive = keepalive
        .with_interval(Duration::from_secs(10))
        .with_retries(6);
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!("cannot enable TCP keep-alive: {error}");
    }
}

async fn serve_http<I>(io: I, conn: Arc<Connection>, runtime: &ListenerRuntime, watcher: Watcher)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // HTTP/2 streams run as their own tasks, each under a guard that resets a stream whose
    // client takes no response data for the route's body idle timeout.
    let mut builder = auto::Builder::new(StallExecutor);
    builder
        .http1()
        .timer(TokioTimer::new())
        // The connection guard answers slow heads with 408; hyper's own timeout would
        // close silently.
        .header_read_timeout(None)
        // A response's head and a small body go out in one buffer and one write instead of
        // hyper's queue of buffers and a vectored write: about 5 % less CPU per proxied
        // small request; large bodies pay a copy into the buffer (docs/benchmarks.md).
        .writev(false)
        .max_buf_size(runtime.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Also bounds CONTINUATION floods: h2 allows about this many bytes of header block
        // in 16 KiB frames (at least 5 frames) before GOAWAY ENHANCE_YOUR_CALM.
        .max_header_list_size(u32::try_from(runtime.max_header_bytes).unwrap_or(u32::MAX))
        // Each stream is an upstream request: this caps the fan-out of one connection.
        // 100 is the floor RFC 9113 §6.5.2 recommends; hyper's default is 200.
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        // Rapid reset (CVE-2023-44487): streams the client resets before they are
        // accepted; past this many at once the connection gets GOAWAY ENHANCE_YOUR_CALM.
        // h2's default, pinned so that an upgrade cannot loosen it unnoticed.
        .max_pending_accept_reset_streams(20)
        // Streams the proxy has to reset for the client's protocol errors (RUSTSEC-2024-0003);
        // hyper's default, pinned likewise.
        .max_local_error_reset_streams(1024)
        // WebSockets over HTTP/2 (RFC 8441).
        .enable_connect_protocol()
        // A client that leaves the keep-alive PING unanswered for 20 s is disconnected,
        // also one that stopped reading its socket (hyper's default timeout, pinned).
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let client = conn.client;
    // hyper keeps room for one request's future per connection for the connection's whole
    // life; boxed, that room is a pointer, and the future's several KiB exist only while a
    // request is served (idle keep-alive connections are most of a busy proxy's).
    let service = service_fn(move |request| Box::pin(serve(conn.clone(), request)));
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%client, "connection ended: {error}");
    }
}
