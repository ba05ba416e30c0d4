//! Opening a connection to a peer: resolve, TCP, optionally TLS, then HTTP/1.1.

use std::error::Error as StdError;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use hyper::body::Body;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::rt::{Read, Write};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::UpstreamScheme;
use crate::error::SendError;

/// Keep-alive probes start after this much silence, so that a dead peer is noticed even on
/// a long-lived (upgraded) connection.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Opens connections to the peers of one client.
pub(super) struct Connector {
    tls: Option<Tls>,
    timeout: Duration,
    http1: http1::Builder,
}

struct Tls {
    connector: TlsConnector,
    /// The name to verify and send as SNI instead of each peer's host.
    server_name: Option<ServerName<'static>>,
}

impl Connector {
    pub(super) fn new(scheme: UpstreamScheme, timeout: Duration) -> Self {
        let tls = match scheme {
            UpstreamScheme::Http => None,
            UpstreamScheme::Https {
                mut config,
                server_name,
            } => {
                // The client speaks HTTP/1.1 only and offers no ALPN, as before: a server
                // that gets no ALPN extension speaks HTTP/1.1 (RFC 7301 §3.2), and one that
                // only knows h2 must not be told otherwise.
                config.alpn_protocols.clear();
                Some(Tls {
                    connector: TlsConnector::from(Arc::new(*config)),
                    server_name,
                })
            }
        };
        let mut http1 = http1::Builder::new();
        // One buffer and one write per request: cheaper than hyper's queue of buffers for
        // the small heads that are most requests; an upload's body is copied on its way
        // into the buffer, which costs less than the vectored write saves.
        http1.writev(false);
        Self {
            tls,
            timeout,
            http1,
        }
    }

    /// Whether connections are TLS.
    pub(super) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A new connection to `peer`, its HTTP/1.1 driver spawned on the current runtime.
    /// Everything up to the end of the TLS handshake must finish within the timeout.
    pub(super) async fn connect<B>(&self, peer: &Authority) -> Result<SendRequest<B>, SendError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        match tokio::time::timeout(self.timeout, self.open(peer)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::ConnectTimeout {
                peer: peer.clone(),
                timeout: self.timeout,
            }),
        }
    }

    async fn open<B>(&self, peer: &Authority) -> Result<SendRequest<B>, SendError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let host = bare_host(peer);
        let port = peer
            .port_u16()
            .unwrap_or(if self.is_tls() { 443 } else { 80 });
        let tcp = tcp_connect(peer, host, port).await?;
        match &self.tls {
            None => self.start(peer, tcp).await,
            Some(tls) => {
                let name = match &tls.server_name {
                    Some(name) => name.clone(),
                    // An IP literal becomes an IP address name, verified against the
                    // certificate's IP SANs.
                    None => ServerName::try_from(host.to_owned()).map_err(|source| {
                        SendError::ServerName {
                            peer: peer.clone(),
                            source,
                        }
                    })?,
                };
                let stream =
                    tls.connector
                        .connect(name, tcp)
                        .await
                        .map_err(|source| SendError::Tls {
                            peer: peer.clone(),
                            source,
                        })?;
                self.start(peer, stream).await
            }
        }
    }

    /// Starts HTTP/1.1 on `io` and spawns the connection's driver, with upgrades so that a
    /// 101 response hands the connection over.
    async fn start<B, T>(&self, peer: &Authority, io: T) -> Result<SendRequest<B>, SendError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
        TokioIo<T>: Read + Write,
    {
        let (sender, connection) =
            self.http1
                .handshake(TokioIo::new(io))
                .await
                .map_err(|error| SendError::NotSent {
                    peer: peer.clone(),
                    source: error.into(),
                })?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!("upstream connection ended: {error}");
            }
        });
        Ok(sender)
    }
}

/// The peer's host without the brackets of an IPv6 literal.
fn bare_host(peer: &Authority) -> &str {
    let host = peer.host();
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
}

/// A TCP connection to the first address of `host` that accepts one. Peers are mostly IP
/// literals, which skip the resolver.
async fn tcp_connect(peer: &Authority, host: &str, port: u16) -> Result<TcpStream, SendError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return tcp_connect_to(SocketAddr::new(ip, port))
            .await
            .map_err(|source| SendError::Connect {
                peer: peer.clone(),
                source,
            });
    }
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| SendError::Resolve {
            peer: peer.clone(),
            source,
        })?;
    let mut last = None;
    for address in addresses {
        match tcp_connect_to(address).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(match last {
        Some(source) => SendError::Connect {
            peer: peer.clone(),
            source,
        },
        None => SendError::Resolve {
            peer: peer.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "no address"),
        },
    })
}

async fn tcp_connect_to(address: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    if let Err(error) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
        // The connection works without it; only a dead peer is noticed later.
        tracing::debug!("TCP keepalive on the connection to {address}: {error}");
    }
    Ok(stream)
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
