//! Life behind an L4 balancer: the PROXY protocol header (v1 text, v2 binary, parsed by
//! the `ppp` crate) that names the real client, and per-listener connection limits.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use gangway_headers::Network;
use ppp::{HeaderResult, PartialResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Longest header accepted: v1 is at most 107 bytes; v2 carries TLVs, which balancers keep
/// small (a few hundred bytes).
const MAX_HEADER: usize = 4096;

/// Why a PROXY header was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyHeaderError {
    #[error("connection from {peer}, which is not a trusted balancer")]
    Untrusted { peer: IpAddr },
    #[error("reading the PROXY header failed: {0}")]
    Io(#[from] io::Error),
    #[error("the connection ended inside the PROXY header")]
    Truncated,
    #[error("no valid PROXY header: {0}")]
    Invalid(String),
    #[error("PROXY header longer than {MAX_HEADER} bytes")]
    TooLong,
}

/// Reads the PROXY header that must open a connection from one of `trusted`; returns the
/// client it names (`None` for `UNKNOWN`/`LOCAL`: the balancer's own connection, such as
/// a health check) and the bytes read past the header.
pub(crate) async fn read_proxy_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    trusted: &[Network],
) -> Result<(Option<SocketAddr>, Vec<u8>), ProxyHeaderError> {
    if !trusted.iter().any(|network| network.contains(peer.ip())) {
        return Err(ProxyHeaderError::Untrusted { peer: peer.ip() });
    }
    let mut buffer = Vec::with_capacity(256);
    loop {
        let mut chunk = [0u8; 512];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(ProxyHeaderError::Truncated);
        }
        buffer.extend_from_slice(&chunk[..read]);
        let parsed = HeaderResult::parse(&buffer);
        if parsed.is_incomplete() {
            if buffer.len() > MAX_HEADER {
                return Err(ProxyHeaderError::TooLong);
            }
            continue;
        }
        let (length, client) = match parsed {
            HeaderResult::V1(Ok(header)) => {
                let client = match header.addresses {
                    ppp::v1::Addresses::Tcp4(a) => {
                        Some(SocketAddr::new(a.source_address.into(), a.source_port))
                    }
                    ppp::v1::Addresses::Tcp6(a) => {
                        Some(SocketAddr::new(a.source_address.into(), a.source_port))
                    }
                    ppp::v1::Addresses::Unknown => None,
                };
                (header.header.len(), client)
            }
            HeaderResult::V2(Ok(header)) => {
                let client = match (header.command, header.addresses) {
                    (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => {
                        Some(SocketAddr::new(a.source_address.into(), a.source_port))
                    }
                    (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => {
                        Some(SocketAddr::new(a.source_address.into(), a.source_port))
                    }
                    _ => None,
                };
                (header.len(), client)
            }
            HeaderResult::V1(Err(error)) => {
                return Err(ProxyHeaderError::Invalid(error.to_string()));
            }
            HeaderResult::V2(Err(error)) => {
                return Err(ProxyHeaderError::Invalid(error.to_string()));
            }
        };
        let rest = buffer.get(length..).unwrap_or_default().to_vec();
        return Ok((client, rest));
    }
}

/// A stream that first yields bytes already read from it (past a PROXY header).
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    position: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(inner: S, prefix: Vec<u8>) -> Self {
        Self {
            prefix,
            position: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(rest) = this
            .prefix
            .get(this.position..)
            .filter(|rest| !rest.is_empty())
        {
            let taken = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..taken]);
            this.position += taken;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A listener's connection limits; the counts live as long as the configuration that set
/// them (a reload starts new counts for new connections).
#[derive(Debug, Default)]
pub(crate) struct ConnectionLimits {
    max_total: Option<usize>,
    max_per_client: Option<usize>,
    open: AtomicUsize,
    /// Only kept with a per-client limit; touched once per connection, not per request.
    by_client: Mutex<HashMap<IpAddr, usize>>,
}

/// An admitted connection; its counts drop with it.
#[derive(Debug)]
pub(crate) struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    client: IpAddr,
}

impl ConnectionLimits {
    pub(crate) fn new(max_total: Option<usize>, max_per_client: Option<usize>) -> Self {
        Self {
            max_total,
            max_per_client,
            ..Self::default()
        }
    }

    /// Counts a new connection from `client`, or `None` when a limit is reached.
    pub(crate) fn admit(self: &Arc<Self>, client: IpAddr) -> Option<ConnectionPermit> {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        if self.max_total.is_some_and(|max| open > max) {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if let Some(max) = self.max_per_client {
            let mut by_client = self
                .by_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let count = by_client.entry(client).or_insert(0);
            if *count >= max {
                drop(by_client);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return None;
            }
            *count += 1;
        }
        Some(ConnectionPermit {
            limits: self.clone(),
            client,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
        if self.limits.max_per_client.is_some() {
            let mut by_client = self
                .limits
                .by_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = by_client.get_mut(&self.client) {
                *count -= 1;
                if *count == 0 {
                    by_client.remove(&self.client);
                }
            }
        }
    }
}
