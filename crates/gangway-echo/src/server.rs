//! Accepting connections and serving each in its own task.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{echo, websocket};

/// How long to wait before accepting again after `accept` failed (for example when out of
/// file descriptors), so a persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A bound echo origin, not yet serving.
///
/// Bind it, read its [`local_addr`](Self::local_addr), then [`spawn`](Self::spawn) it (or
/// drive [`run`](Self::run) yourself).
#[derive(Debug)]
pub struct EchoOrigin {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl EchoOrigin {
    /// Binds a listener on `addr`; use port 0 (`127.0.0.1:0`) to have the system pick a
    /// free port, then ask [`local_addr`](Self::local_addr) which one it was.
    ///
    /// # Errors
    ///
    /// The I/O error from binding, or from asking the bound socket its address.
    pub async fn bind(addr: SocketAddr) -> io::Result<EchoOrigin> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(EchoOrigin {
            listener,
            local_addr,
        })
    }

    /// The address the origin is listening on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves connections until this future is dropped (for example because the task
    /// running it was aborted). Each connection runs in its own task, and every such task
    /// ends when this future is dropped.
    pub async fn run(self) {
        // Nothing is ever sent: connection tasks watch for this sender being dropped.
        let (shutdown, _) = watch::channel(());
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    tracing::trace!(%peer, "echo origin accepted a connection");
                    tokio::spawn(serve_connection(stream, shutdown.subscribe()));
                }
                Err(error) => {
                    tracing::warn!(%error, "echo origin failed to accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    /// Spawns [`run`](Self::run) on the current tokio runtime. Dropping the returned
    /// handle stops the origin.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn spawn(self) -> EchoHandle {
        let local_addr = self.local_addr;
        EchoHandle {
            local_addr,
            task: tokio::spawn(self.run()),
        }
    }
}

/// A running echo origin; dropping it aborts the server and all of its connections.
#[derive(Debug)]
pub struct EchoHandle {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EchoHandle {
    /// The address the origin is listening on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for EchoHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until the server's shutdown sender is dropped.
pub(crate) async fn stopped(mut shutdown: watch::Receiver<()>) {
    // No value is ever sent, so this only returns once the sender is gone.
    while shutdown.changed().await.is_ok() {}
}

async fn serve_connection(stream: TcpStream, shutdown: watch::Receiver<()>) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "echo origin could not set TCP_NODELAY");
    }
    let for_requests = shutdown.clone();
    let service = service_fn(move |request| handle(request, for_requests.clone()));
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "echo origin connection ended with an error");
            }
        }
        () = stopped(shutdown) => {}
    }
}

async fn handle(
    request: Request<Incoming>,
    shutdown: watch::Receiver<()>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = if request.uri().path() == "/ws" {
        websocket::accept(request, shutdown)
    } else {
        echo::respond(request).await
    };
    Ok(response)
}
