//! The pooled HTTP/1.1 client towards upstream peers.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use hyper::body::Body;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

/// How the client reaches its peers.
#[derive(Debug, Clone)]
pub enum UpstreamScheme {
    /// Plain HTTP.
    Http,
    /// HTTPS with this client configuration, optionally verifying (and sending as SNI) a
    /// fixed name instead of each peer's host.
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
    /// A TCP connect (and TLS handshake) that takes longer fails.
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per peer, reused by later requests. nginx's
    /// `keepalive 100` bounds the idle connections of a whole upstream; here the bound is
    /// per peer, so setting it to 100 keeps at most 100 × peers idle. Connections in use
    /// are not bounded by it: at most this many plus the requests in flight are open.
    pub max_idle_per_peer: usize,
    /// An idle connection unused for this long is closed.
    pub idle_timeout: Duration,
}

/// An HTTP/1.1 client for one upstream's peers, keeping idle connections for reuse.
#[derive(Debug)]
pub struct UpstreamClient<B> {
    inner: Inner<B>,
}

#[derive(Debug)]
enum Inner<B> {
    Http(Client<HttpConnector, B>),
    Https(Client<HttpsConnector<HttpConnector>, B>),
}

impl<B> UpstreamClient<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// A client for peers reached by `scheme`.
    pub fn new(scheme: UpstreamScheme, settings: ClientSettings) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_nodelay(true);
        // Dead peers are noticed even on long-lived (upgraded) connections.
        http.set_keepalive(Some(Duration::from_secs(60)));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_max_idle_per_host(settings.max_idle_per_peer)
            .pool_idle_timeout(settings.idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let inner = match scheme {
            UpstreamScheme::Http => Inner::Http(builder.build(http)),
            UpstreamScheme::Https {
                config,
                server_name,
            } => {
                let tls = HttpsConnectorBuilder::new()
                    .with_tls_config(*config)
                    .https_only();
                let tls = match server_name {
                    Some(name) => tls.with_server_name_resolver(FixedServerNameResolver::new(name)),
                    None => tls,
                };
                Inner::Https(builder.build(tls.enable_http1().wrap_connector(http)))
            }
        };
        Self { inner }
    }

    /// `http` or `https`: the scheme of the URIs [`send`](Self::send) expects.
    pub fn scheme(&self) -> &'static str {
        match self.inner {
            Inner::Http(_) => "http",
            Inner::Https(_) => "https",
        }
    }

    /// [`scheme`](Self::scheme) as a URI part.
    pub fn uri_scheme(&self) -> http::uri::Scheme {
        match self.inner {
            Inner::Http(_) => http::uri::Scheme::HTTP,
            Inner::Https(_) => http::uri::Scheme::HTTPS,
        }
    }

    /// Sends a request whose URI is absolute (`scheme://peer/path?query`). A kept-alive
    /// connection to the peer is reused when one is idle; the `Host` header, when set, is
    /// sent as it is.
    pub fn send(&self, request: Request<B>) -> ResponseFuture {
        match &self.inner {
            Inner::Http(client) => client.request(request),
            Inner::Https(client) => client.request(request),
        }
    }
}
