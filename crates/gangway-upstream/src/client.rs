//! The pooled HTTP/1.1 client towards upstream peers, built on hyper's connection API.
//!
//! A request takes the most recently used idle connection to its peer, or opens one. Its
//! connection goes back to the peer's idle list when the response body ends (see
//! [`PooledBody`]); no task waits for it. A kept-alive connection that the peer closed
//! while it sat idle is noticed when the request cannot be written, and the request goes
//! out again on another connection, so that an upstream closing idle connections does not
//! fail requests.

mod body;
mod connect;
mod pool;

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Body;
use hyper::client::conn::http1::SendRequest;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

pub use body::PooledBody;
use connect::Connector;
use pool::{Home, IdlePool};

use crate::error::SendError;

/// How long a checkout waits for an idle connection that hyper has not yet made ready.
const READY_GRACE: Duration = Duration::from_millis(25);

/// How the client reaches its peers.
#[derive(Debug, Clone)]
pub enum UpstreamScheme {
    /// Plain HTTP.
    Http,
    /// HTTPS with this client configuration, optionally verifying (and sending as SNI) a
    /// fixed name instead of each peer's host. The client offers no ALPN protocol (it
    /// speaks HTTP/1.1 only); the configuration's list is cleared.
    Https {
        /// Verification and protocol settings.
        config: Box<ClientConfig>,
        /// The name to verify instead of the peer host.
        server_name: Option<ServerName<'static>>,
    },
}

/// Connection handling towards one upstream.
#[derive(Debug, Clone, Copy)]
pub struct ClientSettings {
    /// Resolving, the TCP connect and the TLS handshake together must take less.
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per peer, reused by later requests (0: none, every
    /// request opens a connection). nginx's `keepalive 100` bounds the idle connections of
    /// a whole upstream; here the bound is per peer, so setting it to 100 keeps at most
    /// 100 × peers idle. Connections in use are not bounded by it: at most this many plus
    /// the requests in flight are open.
    pub max_idle_per_peer: usize,
    /// An idle connection unused for this long is closed.
    pub idle_timeout: Duration,
}

/// An HTTP/1.1 client for one upstream's peers, keeping idle connections for reuse.
pub struct UpstreamClient<B> {
    connector: Connector,
    pool: IdlePool<B>,
}

impl<B> UpstreamClient<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// A client for peers reached by `scheme`. Idle connections are closed after the
    /// idle timeout by a task started on the runtime of the first request.
    pub fn new(scheme: UpstreamScheme, settings: ClientSettings) -> Self {
        Self {
            connector: Connector::new(scheme, settings.connect_timeout),
            pool: IdlePool::new(settings.max_idle_per_peer, settings.idle_timeout),
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.connector.is_tls() {
            "https"
        } else {
            "http"
        }
    }

    /// Sends `request` to `peer` (`host:port`) and returns the response head.
    ///
    /// The request's URI goes on the wire as it is and should be in origin form
    /// (`/path?query`); an absolute URI is cut down to its path and query. The `Host`
    /// header, when set, is sent as it is; when absent, it is the peer (without the port
    /// when it is the scheme's default). A kept-alive connection to the peer is reused when
    /// one is idle.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn's future would hold the request twice: as passed, and as moved \
                  into the body"
    )]
    pub fn send<'a>(
        &'a self,
        peer: &'a Authority,
        mut request: Request<B>,
    ) -> impl Future<Output = Result<Response<PooledBody<B>>, SendError>> + Send + 'a {
        async move {
            prepare(&mut request, peer, self.connector.is_tls());
            let mut slot = None;
            loop {
                let ((mut sender, home), reused) = match self.checkout(peer, &mut slot).await {
                    Some(pooled) => (pooled, true),
                    // Boxed: connecting (TLS above all) needs a large future, and a request that
                    // reuses a connection should not carry its room. Its driver runs here.
                    None => {
                        let sender = Box::pin(self.connector.connect(peer)).await?;
                        ((sender, Home::here()), false)
                    }
                };
                match sender.try_send_request(request).await {
                    Ok(response) => return Ok(self.pooled(response, (sender, home), slot)),
                    Err(mut error) => match error.take_message() {
                        // A kept-alive connection closed before the request was written: the
                        // peer saw nothing, so it goes out on another connection. Each turn
                        // uses up an idle connection or a fresh one, which is not retried.
                        Some(unsent) if reused => request = unsent,
                        Some(_) => {
                            return Err(SendError::NotSent {
                                peer: peer.clone(),
                                source: error.into_error().into(),
                            });
                        }
                        None => return Err(SendError::exchange(peer, error.into_error())),
                    },
                }
            }
        }
    }

    /// How many connections are idle, for all peers.
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.pool.idle_count()
    }

    /// An idle connection to `peer` that is ready for a request.
    async fn checkout(
        &self,
        peer: &Authority,
        slot: &mut Option<usize>,
    ) -> Option<(SendRequest<B>, Home)> {
        if !self.pool.keeps() {
            return None;
        }
        loop {
            let (mut sender, home) = self.pool.pop(peer, slot)?;
            if sender.is_ready() {
                return Some((sender, home));
            }
            // A connection goes back to the pool as its response body ends, which can be a
            // moment before hyper has finished with the exchange: that moment is worth
            // waiting for. But a peer that answered before reading the whole request body
            // leaves hyper writing it, for as long as the client uploads: such a connection
            // is left to finish its exchange (and close) rather than waited for.
            if let Ok(Ok(())) = tokio::time::timeout(READY_GRACE, sender.ready()).await {
                return Some((sender, home));
            }
        }
    }

    /// The response, with a body that gives the connection back when it ends.
    fn pooled(
        &self,
        response: Response<hyper::body::Incoming>,
        sender: (SendRequest<B>, Home),
        slot: Option<usize>,
    ) -> Response<PooledBody<B>> {
        let (parts, body) = response.into_parts();
        let body = match slot {
            // An upgraded connection belongs to the upgrade.
            Some(slot) if parts.status != StatusCode::SWITCHING_PROTOCOLS => {
                PooledBody::new(body, sender, &self.pool, slot)
            }
            Some(_) | None => PooledBody::unpooled(body),
        };
        Response::from_parts(parts, body)
    }
}

/// Puts the request in the form the wire needs: an origin-form target and a `Host` header.
fn prepare<B>(request: &mut Request<B>, peer: &Authority, tls: bool) {
    if request.uri().scheme().is_some() || request.uri().authority().is_some() {
        let target = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(target);
    }
    if !request.headers().contains_key(HOST) {
        let default_port = if tls { 443 } else { 80 };
        let host = match peer.port_u16() {
            Some(port) if port == default_port => peer.host(),
            Some(_) | None => peer.as_str(),
        };
        // An authority holds only characters a header value may hold.
        if let Ok(value) = HeaderValue::from_str(host) {
            request.headers_mut().insert(HOST, value);
        }
    }
}

impl<B> std::fmt::Debug for UpstreamClient<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("connector", &self.connector)
            .field("pool", &self.pool)
            .finish()
    }
}
