//! The listening sockets of a running server, changed in place by a configuration reload:
//! a listener whose address stays keeps its socket (no refused connection) and gets the
//! new routes for new connections; a new address is bound before anything changes; a
//! listener that is gone stops accepting while its open connections finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use gangway_config::{Config, Listener};
use gangway_upstream::{HealthChecker, HealthTask};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::crypto::CryptoProvider;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::metrics::Observer;
use crate::runtime::{ListenerRuntime, build};
use crate::server::{Tracker, accept_loop};
use crate::{Error, Workers};

/// The TLS listeners of the current configuration, for [`crate::TlsReloader`].
pub(crate) type TlsListeners = Arc<ArcSwap<Vec<(Arc<str>, Arc<gangway_tls::ListenerTls>)>>>;

/// A socket bound for a configured listener, not yet accepting.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) name: String,
    pub(crate) configured: SocketAddr,
    pub(crate) socket: TcpListener,
    pub(crate) address: SocketAddr,
}

impl Bound {
    pub(crate) async fn bind(listener: &Listener) -> Result<Self, Error> {
        let bind_error = |source| Error::Bind {
            listener: listener.name.clone(),
            address: listener.address,
            source,
        };
        let socket = TcpListener::bind(listener.address)
            .await
            .map_err(bind_error)?;
        let address = socket.local_addr().map_err(bind_error)?;
        Ok(Self {
            name: listener.name.clone(),
            configured: listener.address,
            socket,
            address,
        })
    }

    /// Whether this socket serves `listener` after a reload: the same address, and for
    /// port 0 (any free port) also the same name, since several may share `:0`.
    fn serves(name: &str, configured: SocketAddr, listener: &Listener) -> bool {
        configured == listener.address && (configured.port() != 0 || name == listener.name)
    }
}

/// What a reload asks of the running server, and where the answer goes.
#[derive(Debug)]
pub(crate) struct ReloadRequest {
    pub(crate) config: Config,
    pub(crate) done: oneshot::Sender<Result<Vec<SocketAddr>, Error>>,
}

/// Swaps a running [`Server`](crate::Server)'s configuration; cheap to clone.
///
/// The new configuration is compiled and every new listening address bound first; if any
/// of that fails, the running configuration stays untouched and the error is returned.
/// Otherwise new connections use the new configuration at once, while open connections,
/// WebSockets and requests in flight finish on the one they started with.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    pub(crate) requests: mpsc::Sender<ReloadRequest>,
    /// Counts reloads refused before they reach the server (a file that does not load).
    pub(crate) observer: Arc<Observer>,
}

impl ReloadHandle {
    /// Applies `config`; returns each listener's bound address in configuration order.
    /// [`Error::NotRunning`] when the server has stopped (or never ran).
    pub async fn reload(&self, config: Config) -> Result<Vec<SocketAddr>, Error> {
        let (done, answer) = oneshot::channel();
        self.requests
            .send(ReloadRequest { config, done })
            .await
            .map_err(|_| Error::NotRunning)?;
        answer.await.map_err(|_| Error::NotRunning)?
    }
}

/// One accepting listener.
#[derive(Debug)]
struct Accepting {
    name: String,
    configured: SocketAddr,
    address: SocketAddr,
    runtime: Arc<ArcSwap<ListenerRuntime>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Everything `Server::run` keeps running: accept loops, health checks, TLS watchers.
pub(crate) struct ListenerSet {
    provider: Arc<CryptoProvider>,
    accepting: Vec<Accepting>,
    graceful: Arc<GracefulShutdown>,
    tunnels: Tracker,
    health: Vec<HealthTask>,
    watchers: Vec<gangway_tls::Watcher>,
    tls: TlsListeners,
    pub(crate) drain_timeout: Duration,
    watch_interval: Option<Duration>,
    observer: Arc<Observer>,
    workers: Workers,
}

impl ListenerSet {
    /// Starts accepting on `bound` with `runtimes` (same order) and starts `health`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        provider: Arc<CryptoProvider>,
        bound: Vec<Bound>,
        runtimes: Vec<ListenerRuntime>,
        health: Vec<HealthChecker>,
        tls: TlsListeners,
        drain_timeout: Duration,
        watch_interval: Option<Duration>,
        graceful: Arc<GracefulShutdown>,
        tunnels: Tracker,
        observer: Arc<Observer>,
        workers: Workers,
    ) -> Self {
        let mut set = Self {
            provider,
            accepting: Vec::with_capacity(bound.len()),
            graceful,
            tunnels,
            health: health.into_iter().map(HealthChecker::spawn).collect(),
            watchers: Vec::new(),
            tls,
            drain_timeout,
            watch_interval,
            observer,
            workers,
        };
        for (bound, runtime) in bound.into_iter().zip(runtimes) {
            let accepting = set.accept(bound, runtime);
            set.accepting.push(accepting);
        }
        set.watch_tls();
        set
    }

    fn accept(&self, bound: Bound, runtime: ListenerRuntime) -> Accepting {
        let runtime = Arc::new(ArcSwap::from_pointee(runtime));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            bound.socket,
            runtime.clone(),
            self.graceful.clone(),
            self.tunnels.clone(),
            self.workers.clone(),
            stopped,
        ));
        Accepting {
            name: bound.name,
            configured: bound.configured,
            address: bound.address,
            runtime,
            stop,
            task,
        }
    }

    /// The TLS listeners as they are now, for SIGHUP reloads and the file watchers.
    fn tls_listeners(&self) -> Vec<(Arc<str>, Arc<gangway_tls::ListenerTls>)> {
        self.accepting
            .iter()
            .filter_map(|accepting| {
                let runtime = accepting.runtime.load();
                Some((runtime.name.clone(), runtime.tls.clone()?))
            })
            .collect()
    }

    /// Publishes the TLS listeners and (re)starts their file watchers.
    fn watch_tls(&mut self) {
        let listeners = self.tls_listeners();
        self.watchers = match self.watch_interval {
            None => Vec::new(),
            Some(interval) => listeners
                .iter()
                .filter_map(|(listener, tls)| {
                    gangway_tls::spawn_watcher(tls.clone(), interval)
                        .inspect_err(|error| {
                            tracing::error!(%listener, "cannot watch TLS files: {error}");
                        })
                        .ok()
                })
                .collect(),
        };
        self.tls.store(Arc::new(listeners));
    }

    /// Applies a new configuration, all or nothing; see [`ReloadHandle`].
    pub(crate) async fn apply(&mut self, config: &Config) -> Result<Vec<SocketAddr>, Error> {
        let (runtimes, health) = build(config, &self.provider, &self.observer.tunnels)?;
        // Bind every new address before changing anything.
        let mut fresh = Vec::new();
        for listener in &config.listeners {
            let kept = self
                .accepting
                .iter()
                .any(|accepting| Bound::serves(&accepting.name, accepting.configured, listener));
            if !kept {
                fresh.push(Bound::bind(listener).await?);
            }
        }
        let mut previous = std::mem::take(&mut self.accepting);
        let (mut added, mut kept) = (0, 0);
        for (listener, runtime) in config.listeners.iter().zip(runtimes) {
            let reused = previous.iter().position(|accepting| {
                Bound::serves(&accepting.name, accepting.configured, listener)
            });
            let accepting = match reused {
                Some(index) => {
                    let mut accepting = previous.swap_remove(index);
                    accepting.runtime.store(Arc::new(runtime));
                    accepting.name.clone_from(&listener.name);
                    kept += 1;
                    accepting
                }
                None => {
                    let Some(index) = fresh
                        .iter()
                        .position(|bound| Bound::serves(&bound.name, bound.configured, listener))
                    else {
                        // Bound above for every listener not kept.
                        continue;
                    };
                    added += 1;
                    let bound = fresh.swap_remove(index);
                    tracing::info!(listener = %listener.name, address = %bound.address, "listening");
                    self.accept(bound, runtime)
                }
            };
            self.accepting.push(accepting);
        }
        for gone in previous {
            tracing::info!(listener = %gone.name, address = %gone.address, "listener closed by the reload; its open connections finish");
            let _ = gone.stop.send(true);
        }
        // Old checkers stop when dropped; the new pools get their own.
        self.health = health.into_iter().map(HealthChecker::spawn).collect();
        self.drain_timeout = config.server.drain_timeout;
        self.watch_interval = config.server.certificate_watch_interval;
        self.watch_tls();
        let serving: Vec<Arc<ListenerRuntime>> = self
            .accepting
            .iter()
            .map(|accepting| accepting.runtime.load_full())
            .collect();
        self.observer
            .publish(serving.iter().map(|runtime| &**runtime));
        tracing::info!(
            listeners = self.accepting.len(),
            kept,
            added,
            "configuration reloaded"
        );
        Ok(self
            .accepting
            .iter()
            .map(|accepting| accepting.address)
            .collect())
    }

    /// Stops accepting everywhere (closing the sockets) and stops health checks and
    /// watchers; open connections are left to the caller's drain.
    pub(crate) async fn stop_accepting(&mut self) {
        self.health.clear();
        self.watchers.clear();
        for accepting in std::mem::take(&mut self.accepting) {
            let _ = accepting.stop.send(true);
            // An accept loop that panicked has nothing left to close.
            let _ = accepting.task.await;
        }
    }
}

/// Serves reload requests until `shutdown` completes.
pub(crate) async fn serve_reloads(
    set: &mut ListenerSet,
    requests: &mut mpsc::Receiver<ReloadRequest>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            Some(request) = requests.recv() => {
                let result = set.apply(&request.config).await;
                set.observer.reloaded(result.is_ok());
                if let Err(error) = &result {
                    tracing::error!("reload refused; the running configuration stays: {}", error.report());
                }
                // The asker may have given up waiting; the outcome is logged either way.
                let _ = request.done.send(result);
            }
        }
    }
}
