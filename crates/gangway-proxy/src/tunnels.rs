//! The open WebSocket tunnels and relay sessions, for listing and closing them.
//!
//! A tunnel registers when its upgrade is answered and leaves when its task ends. The
//! map is locked when a tunnel opens or closes and when the admin calls read it, never
//! while bytes move: byte counts are atomics in the entry, updated by [`CountingIo`] on
//! the client's side of the tunnel.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::task::AtomicWaker;
use gangway_tls::Sha256Fingerprint;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::metrics::RouteMetrics;

/// What kind of tunnel an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TunnelKind {
    /// A proxied WebSocket, spliced to an upstream peer.
    WebSocket,
    /// One peer (device or viewer) of a relay session.
    Relay { role: &'static str },
}

/// What is known about a tunnel when it opens.
#[derive(Debug)]
pub(crate) struct TunnelInfo {
    pub(crate) kind: TunnelKind,
    pub(crate) listener: Arc<str>,
    pub(crate) route: Arc<str>,
    /// The upstream peer (`host:port`) of a WebSocket tunnel.
    pub(crate) peer: Option<Arc<str>>,
    pub(crate) client: SocketAddr,
    /// The SHA-256 fingerprint of the certificate the client presented, if any.
    pub(crate) fingerprint: Option<Sha256Fingerprint>,
}

#[derive(Debug)]
struct TunnelEntry {
    id: u64,
    info: TunnelInfo,
    opened: Instant,
    from_client: AtomicU64,
    to_client: AtomicU64,
    closing: AtomicBool,
    /// Woken when closed, so a pending read on the client's side ends.
    read_waker: AtomicWaker,
    closed: Notify,
}

impl TunnelEntry {
    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.read_waker.wake();
        self.closed.notify_waiters();
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Whether closing cuts the client's side (a relay peer). A WebSocket tunnel closes
    /// with a close handshake instead, so its side keeps working.
    fn cuts_when_closing(&self) -> bool {
        matches!(self.info.kind, TunnelKind::Relay { .. }) && self.is_closing()
    }
}

/// Which tunnels a close call means; every field given must match.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TunnelFilter {
    pub(crate) peer: Option<String>,
    pub(crate) route: Option<String>,
    pub(crate) fingerprint: Option<Sha256Fingerprint>,
}

impl TunnelFilter {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn matches(&self, info: &TunnelInfo) -> bool {
        self.peer
            .as_deref()
            .is_none_or(|peer| info.peer.as_deref() == Some(peer))
            && self
                .route
                .as_deref()
                .is_none_or(|route| *info.route == *route)
            && self
                .fingerprint
                .is_none_or(|fingerprint| info.fingerprint == Some(fingerprint))
    }
}

/// Every open tunnel of the process.
#[derive(Debug, Default)]
pub(crate) struct TunnelRegistry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<TunnelEntry>>>,
}

impl TunnelRegistry {
    fn open_map(&self) -> MutexGuard<'_, HashMap<u64, Arc<TunnelEntry>>> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a tunnel; it is listed until the returned handle is dropped.
    pub(crate) fn open(
        self: &Arc<Self>,
        info: TunnelInfo,
        metrics: Arc<RouteMetrics>,
    ) -> OpenTunnel {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(TunnelEntry {
            id,
            info,
            opened: Instant::now(),
            from_client: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            read_waker: AtomicWaker::new(),
            closed: Notify::new(),
        });
        self.open_map().insert(id, entry.clone());
        metrics.tunnel_opened();
        OpenTunnel {
            entry,
            registry: self.clone(),
            metrics,
        }
    }

    /// The open tunnels as JSON, oldest first.
    pub(crate) fn list(&self) -> serde_json::Value {
        let mut entries: Vec<Arc<TunnelEntry>> = self.open_map().values().cloned().collect();
        entries.sort_by_key(|entry| entry.id);
        let tunnels: Vec<serde_json::Value> = entries
            .iter()
            .map(|entry| {
                let info = &entry.info;
                let (kind, role) = match info.kind {
                    TunnelKind::WebSocket => ("websocket", None),
                    TunnelKind::Relay { role } => ("relay", Some(role)),
                };
                serde_json::json!({
                    "id": entry.id,
                    "kind": kind,
                    "role": role,
                    "listener": &*info.listener,
                    "route": &*info.route,
                    "peer": info.peer.as_deref(),
                    "client": info.client.to_string(),
                    "client_fingerprint": info.fingerprint.map(|f| f.to_string()),
                    "age_seconds": entry.opened.elapsed().as_secs_f64(),
                    "bytes_from_client": entry.from_client.load(Ordering::Relaxed),
                    "bytes_to_client": entry.to_client.load(Ordering::Relaxed),
                })
            })
            .collect();
        serde_json::json!({ "tunnels": tunnels })
    }

    /// Closes every open tunnel that `filter` matches; returns how many.
    pub(crate) fn close(&self, filter: &TunnelFilter) -> usize {
        let matching: Vec<Arc<TunnelEntry>> = self
            .open_map()
            .values()
            .filter(|entry| !entry.is_closing() && filter.matches(&entry.info))
            .cloned()
            .collect();
        for entry in &matching {
            tracing::info!(
                client = %entry.info.client,
                route = %entry.info.route,
                peer = entry.info.peer.as_deref().unwrap_or("-"),
                "tunnel closed by an admin call"
            );
            entry.close();
        }
        matching.len()
    }
}

/// A registered tunnel; dropping it unlists it and adds its bytes to the route's counters.
#[derive(Debug)]
pub(crate) struct OpenTunnel {
    entry: Arc<TunnelEntry>,
    registry: Arc<TunnelRegistry>,
    metrics: Arc<RouteMetrics>,
}

impl OpenTunnel {
    /// Wraps the client's side of the tunnel so that its bytes are counted, and, for a
    /// relay peer, so that it reads as closed (end of stream, then failed writes) once an
    /// admin call closes it.
    pub(crate) fn client_io<T>(&self, io: T) -> CountingIo<T> {
        CountingIo {
            inner: io,
            entry: self.entry.clone(),
        }
    }

    /// Completes when an admin call closes the tunnel.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.entry.closed.notified();
            if self.entry.is_closing() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        self.registry.open_map().remove(&self.entry.id);
        self.metrics.tunnel_closed(
            self.entry.from_client.load(Ordering::Relaxed),
            self.entry.to_client.load(Ordering::Relaxed),
        );
    }
}

pin_project_lite::pin_project! {
    /// The client's side of a tunnel, counting bytes each way.
    #[derive(Debug)]
    pub(crate) struct CountingIo<T> {
        #[pin]
        inner: T,
        entry: Arc<TunnelEntry>,
    }
}

impl<T: AsyncRead> AsyncRead for CountingIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        this.entry.read_waker.register(cx.waker());
        if this.entry.cuts_when_closing() {
            // End of stream: the relay or splice ends the session as if the client left.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        let read = buf.filled().len() - before;
        this.entry
            .from_client
            .fetch_add(read as u64, Ordering::Relaxed);
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for CountingIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if this.entry.cuts_when_closing() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let polled = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &polled {
            this.entry
                .to_client
                .fetch_add(*written as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
