//! The typed, validated configuration: what the engine runs from.
//!
//! Every value here has passed validation: addresses parse, files exist, upstream names
//! resolve, limits are positive. Embedders may build these types directly in code instead
//! of going through a TOML file.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use gangway_headers::{HeaderOps, Network, Template};
use gangway_route::{HostMatch, MatchMode, PathMatch};
use gangway_tls::{
    CertificateSource, ClientCertPolicy, Sha256Fingerprint, TlsVersion, TlsVersions, UnknownSni,
};
use gangway_upstream::Method;

/// The whole configuration of one gangway process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Process-wide settings.
    pub server: Server,
    /// The admin listener (metrics, health, tunnels); `None` (the default) runs none.
    pub admin: Option<Admin>,
    /// Listening sockets, each with its own routes.
    pub listeners: Vec<Listener>,
    /// Named upstream pools that `proxy` routes refer to.
    pub upstreams: Vec<Upstream>,
}

/// Process-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// How long requests in flight may run on after SIGTERM/SIGINT before the process
    /// closes them.
    pub drain_timeout: Duration,
    /// How often certificate, key, CA and CRL files are checked for changes (reloaded
    /// when their content changed); `None` reloads on SIGHUP only.
    pub certificate_watch_interval: Option<Duration>,
    /// Where the access log goes, and in which format.
    pub access_log: AccessLog,
}

/// The access log: one line per request, written when its response ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessLog {
    /// How each line is written.
    pub format: AccessLogFormat,
    /// The file lines are appended to (created if missing, reopened on SIGUSR1); `None`
    /// writes to standard error.
    pub path: Option<PathBuf>,
}

/// How an access-log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// gangway's own `key=value` line: listener, client, method, URI, status, bytes in
    /// and out, route, upstream, peer, duration, and why a response was cut.
    #[default]
    Default,
    /// One JSON object per line with the fields of the default line, the time, the
    /// protocol, the `Referer` and the `User-Agent`.
    Json,
    /// nginx's predefined `combined` format, byte for byte:
    /// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
    /// "$http_referer" "$http_user_agent"`.
    Combined,
}

impl AccessLogFormat {
    /// The name used in the configuration file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Json => "json",
            Self::Combined => "combined",
        }
    }
}

/// The admin listener: `/metrics`, `/healthz`, `/readyz` and the tunnel calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Address and port to bind; a loopback address unless `allow_remote`.
    pub address: SocketAddr,
    /// Whether `address` may be reachable from other hosts; then `token_file` is required.
    pub allow_remote: bool,
    /// A file holding the bearer token that `/tunnels` and `/tunnels/close` require.
    pub token_file: Option<PathBuf>,
}

impl Admin {
    /// An admin listener on `127.0.0.1:port`, without a token.
    pub fn loopback(port: u16) -> Self {
        Self {
            address: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
            allow_remote: false,
            token_file: None,
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// A name for logs and for routes that pick listeners.
    pub name: String,
    /// Address and port to bind.
    pub address: SocketAddr,
    /// TLS termination; `None` serves plain HTTP.
    pub tls: Option<ListenerTls>,
    /// Which TLS versions a TLS listener offers.
    pub tls_versions: TlsVersions,
    /// Whether a TLS listener asks for client certificates, and what it does with them.
    pub client_certificates: ClientCertPolicy,
    /// PEM bundle of the CAs that client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// PEM files of certificate revocation lists that client certificates are checked
    /// against.
    pub client_crls: Vec<PathBuf>,
    /// Every connection starts with a PROXY protocol header (v1 or v2) from an L4 balancer
    /// in these networks; the address it carries is the client's. `None`: no header.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Open connections the listener accepts at once; more are closed at accept.
    pub max_connections: Option<usize>,
    /// Open connections one client address may hold at once; more are closed at accept.
    pub max_connections_per_client: Option<usize>,
    /// A slow client that has not sent a whole request head within this time gets 408.
    pub header_read_timeout: Duration,
    /// Largest request head (request line plus headers) accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// How long an idle keep-alive client connection stays open between requests.
    pub keepalive_timeout: Duration,
    /// An HTTP/1.1 client that takes none of the bytes written to it for this long is
    /// disconnected (nginx `send_timeout`).
    pub send_timeout: Duration,
    /// How routes are chosen: nginx `location` precedence or the first match in order.
    pub match_mode: MatchMode,
    /// Whether runs of `/` are merged before matching (nginx `merge_slashes`).
    pub merge_slashes: bool,
    /// Header operations for every route of the listener.
    pub headers: HeaderRules,
    /// Which forwarding headers are set, and whose incoming values are trusted.
    pub forwarding: Forwarding,
    /// Routes in declaration order.
    pub routes: Vec<Route>,
}

/// The PROXY protocol on a listener behind an L4 load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// Peers allowed to send the header (the balancers); a connection from anywhere else is
    /// closed at once.
    pub trusted: Vec<Network>,
}

/// The certificates of a TLS listener, chosen by the SNI a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// The certificates, in configuration order.
    pub certificates: Vec<ServerCertificate>,
    /// What a handshake gets whose SNI names no certificate, or that sends none.
    pub unknown_sni: UnknownSni,
}

impl ListenerTls {
    /// One certificate, served whatever the SNI.
    pub fn single(source: CertificateSource) -> Self {
        Self {
            certificates: vec![ServerCertificate {
                source,
                names: Vec::new(),
                default: false,
            }],
            unknown_sni: UnknownSni::Default,
        }
    }
}

/// One certificate of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCertificate {
    /// Chain (leaf first) and private key: PEM files, or PEM text held in memory as the
    /// demo's generated certificate is.
    pub source: CertificateSource,
    /// Server names it is chosen for: exact names and one-label wildcards
    /// (`*.devices.example.com`); empty takes the certificate's DNS names.
    pub names: Vec<String>,
    /// Served to unknown or absent SNI (otherwise the first certificate is).
    pub default: bool,
}

/// One route: which requests it takes and what it does with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Host the route answers for: any, exact, `*.` wildcard or regex.
    pub host: HostMatch,
    /// Path the route answers for: exact, prefix, `^~` prefix or regex.
    pub path: PathMatch,
    /// Methods the route answers for; empty for every method.
    pub methods: Vec<String>,
    /// What the route does.
    pub action: Action,
    /// Largest request body accepted; larger gets 413.
    pub max_body_bytes: u64,
    /// A request or response body that moves no byte for this long is aborted.
    pub body_idle_timeout: Duration,
    /// Whether WebSocket upgrades are accepted and tunnelled on this route.
    pub websocket: bool,
    /// A WebSocket tunnel with no byte in either direction for this long is closed.
    pub websocket_idle_timeout: Duration,
    /// The lowest TLS version this route serves on a TLS listener; a request that arrived
    /// over an older one gets 421. `None` serves whatever the listener negotiated.
    pub min_tls_version: Option<TlsVersion>,
    /// Header operations of this route, merged over the listener's.
    pub headers: HeaderRules,
    /// How `Location`, `Content-Location` and `Refresh` from the upstream are rewritten.
    pub location_rewrite: LocationRewriting,
    /// `Set-Cookie` domain rewriting: (domain as the upstream sets it, public domain).
    pub cookie_domain: Vec<(String, Template)>,
    /// `Set-Cookie` path rewriting: (path prefix as the upstream sets it, public prefix).
    pub cookie_path: Vec<(String, Template)>,
}

/// Request and response header operations of one level (listener, route or upstream).
/// Levels merge: a later level's operation replaces an earlier one for the same header
/// name, and every other operation is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// Applied to the request sent upstream.
    pub request: HeaderOps,
    /// Applied to the response; operations marked `always` also to the proxy's own.
    pub response: HeaderOps,
}

/// The forwarding headers of a listener. `X-Forwarded-For` (appended), `X-Real-IP` and
/// `X-Forwarded-Proto` are always set; these add the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarding {
    /// Peers whose incoming `X-Forwarded-For` and `Forwarded` are kept and appended to;
    /// from anyone else they are replaced. Empty: every incoming list is appended to.
    pub trusted_proxies: Vec<Network>,
    /// Set `X-Forwarded-Host`.
    pub x_forwarded_host: bool,
    /// Set `X-Forwarded-Port`.
    pub x_forwarded_port: bool,
    /// Set RFC 7239 `Forwarded`.
    pub forwarded: bool,
}

/// How a proxy route rewrites URLs in `Location`, `Content-Location` and `Refresh`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LocationRewriting {
    /// Passed on as the upstream sent them.
    #[default]
    Off,
    /// nginx `proxy_redirect default`: each peer's own URL (with the upstream path prefix)
    /// becomes `$scheme://$host` with the route's path prefix.
    Default,
    /// Explicit (prefix as the upstream writes it, public replacement) pairs, first match.
    Pairs(Vec<(String, Template)>),
}

/// What a route does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward to an upstream pool.
    Proxy {
        /// Index into [`Config::upstreams`].
        upstream: usize,
        /// How the upstream path is made; `None` passes the client's path and query
        /// unchanged.
        rewrite: Option<Rewrite>,
        /// Direct routing: the route name of the one peer to send to, rendered from the
        /// route's captures (`$1`, `${node}`) or fixed; `None` balances over the pool.
        peer: Option<gangway_route::Template>,
    },
    /// Answer with a redirect whose target is rendered from variables.
    Redirect {
        /// One of 301, 302, 303, 307, 308.
        status: u16,
        /// The `Location` value, e.g. `https://$host$request_uri`.
        target: Template,
    },
    /// Pair a device's and a viewer's WebSocket by session id and relay their messages
    /// (secure shadowing): `<route prefix>/<session-id>?role=device|viewer`.
    Relay(RelaySettings),
    /// Serve a page that checks a WebSocket path from the browser (connect, send, expect
    /// the echo), as `gangway probe` does from a shell.
    WebSocketTestPage {
        /// The WebSocket to check: a path on the page's own host (`/ws`) or a `ws://` /
        /// `wss://` URL.
        target: String,
    },
    /// Answer with a fixed response.
    Respond {
        /// Any status from 200 to 599.
        status: u16,
        /// The body, sent as `text/plain; charset=utf-8`.
        body: String,
    },
}

/// How a `relay` route pairs and relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// How long the first peer of a session waits for the second.
    pub pairing_timeout: Duration,
    /// A file holding the secret that signs tickets; with it, every peer needs a valid
    /// ticket (403 otherwise).
    pub ticket_secret_file: Option<PathBuf>,
    /// Whether the device role needs a client certificate that verified.
    pub require_verified_device: bool,
    /// Largest message a peer may send.
    pub max_message_bytes: usize,
}

/// How a proxy route rewrites the path it sends upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// The route's literal path prefix is replaced by this one; the rest of the path and the
    /// query are kept.
    Prefix(String),
    /// The path and query are rendered from the route's captures (`$1`, `${name}`,
    /// `{R:1}`), with the client's query appended when the template has none.
    Template(gangway_route::Template),
}

/// A named pool of upstream servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The name routes refer to.
    pub name: String,
    /// `http` or `https` for every peer of the pool.
    pub scheme: Scheme,
    /// The servers, in configured order.
    pub peers: Vec<Peer>,
    /// Verification of HTTPS peers.
    pub tls: UpstreamTls,
    /// Giving up on a TCP (and TLS) connect after this long answers 502.
    pub connect_timeout: Duration,
    /// Waiting longer than this for the response head, counted from the end of the request
    /// body, answers 504.
    pub response_header_timeout: Duration,
    /// Idle keep-alive connections kept per peer.
    pub keepalive: usize,
    /// How long an idle keep-alive connection to a peer is kept.
    pub keepalive_timeout: Duration,
    /// Header operations of this upstream, merged over the route's.
    pub headers: HeaderRules,
    /// Balancing, sticky sessions, retries and health checks.
    pub pool: PoolSettings,
}

/// How an upstream spreads requests over its peers, and what it does when one fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSettings {
    /// The balancing method (`round_robin`, `ip_hash`, `hash`, `hash_consistent`,
    /// `least_conn`, `bybusyness`).
    pub balance: Method,
    /// The key `hash` and `hash_consistent` hash, such as `$request_uri`; set exactly for
    /// those two methods.
    pub hash_key: Option<Template>,
    /// Apache-style sticky sessions, before balancing.
    pub sticky: Option<StickySessions>,
    /// When a request goes on to the next peer.
    pub retry: Retry,
    /// Active health checks; `None` relies on passive health (`max_fails`) alone.
    pub health_check: Option<HealthCheck>,
}

/// Apache `stickysession`: names read as cookies and as URL parameters, the route after
/// the first `.` of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickySessions {
    /// Cookie and URL parameter names, in order of preference.
    pub names: Vec<String>,
    /// Apache `scolonpathdelim=On`: a URL parameter's value also ends at `;`.
    pub scolon_path_delim: bool,
    /// Whether a route whose peer is not available falls back to balancing; `false` is
    /// Apache `nofailover=On` (503).
    pub failover: bool,
}

/// When a failed try goes on to the next peer (nginx `proxy_next_upstream`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retry {
    /// The most peers tried for one request, counting the first; 0 tries each peer once.
    pub tries: u32,
    /// No new try starts this long after the first; `None` for no bound beyond the tries.
    pub timeout: Option<Duration>,
    /// Whether an idempotent request (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) whose
    /// response failed after it was sent goes to the next peer. A failed connect always
    /// does.
    pub idempotent: bool,
}

/// An active health check: `GET path` to every peer on an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Path and query, starting with `/`.
    pub path: String,
    /// The `Host` header to send; `None` sends the peer's `host:port`.
    pub host: Option<String>,
    /// Time between rounds.
    pub interval: Duration,
    /// A check without a response head within this time fails.
    pub timeout: Duration,
    /// The statuses that count as healthy.
    pub expect_status: RangeInclusive<u16>,
    /// Consecutive successes that bring an unhealthy peer back.
    pub rise: u32,
    /// Consecutive failures that take a healthy peer out.
    pub fall: u32,
}

/// Upstream transport scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP/1.1.
    Http,
    /// HTTP/1.1 over TLS.
    Https,
}

/// One upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Relative share of requests (smooth weighted round robin).
    pub weight: u32,
    /// Route name for sticky sessions and direct routing (Apache `route=`).
    pub route: Option<String>,
    /// Failures within `fail_timeout` that take the peer out for `fail_timeout`; 0 never.
    pub max_fails: u32,
    /// The window failures are counted in, and how long a failed peer stays out.
    pub fail_timeout: Duration,
    /// Used only when no primary peer is available.
    pub backup: bool,
    /// Never used (kept so that hashing keeps other clients where they are).
    pub down: bool,
}

/// How HTTPS peers are verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM file of CA certificates to trust instead of the system roots.
    pub ca: Option<PathBuf>,
    /// Accept exactly the certificates with these SHA-256 fingerprints (self-signed
    /// devices), instead of verifying a chain.
    pub pins: Vec<Sha256Fingerprint>,
    /// Accept any certificate: anyone on the path can impersonate the peers. A warning is
    /// logged at start; prefer `pins`.
    pub insecure_skip_verify: bool,
    /// Name to send as SNI and to verify the certificate against, instead of the peer host.
    pub server_name: Option<String>,
    /// The TLS versions offered to peers.
    pub versions: TlsVersions,
    /// Certificate chain and key presented when a peer asks for a client certificate.
    pub client_certificate: Option<CertificateSource>,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            drain_timeout: defaults::DRAIN_TIMEOUT,
            certificate_watch_interval: Some(defaults::CERTIFICATE_WATCH_INTERVAL),
            access_log: AccessLog::default(),
        }
    }
}

/// Defaults shared by the parser and by embedders who build a configuration in code.
pub mod defaults {
    use std::time::Duration;

    /// Request head read timeout.
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Largest request head.
    pub const MAX_HEADER_BYTES: usize = 16 * 1024;
    /// Idle client keep-alive.
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
    /// A client taking no response data (nginx's `send_timeout` default).
    pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
    /// Largest request body.
    pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
    /// Body idle timeout.
    pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// WebSocket tunnel idle timeout: an hour, so quiet devices are not cut.
    pub const WEBSOCKET_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
    /// Upstream connect timeout.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Upstream response-head timeout.
    pub const RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
    /// Idle upstream connections kept per peer.
    pub const UPSTREAM_KEEPALIVE: usize = 32;
    /// Idle upstream connection lifetime.
    pub const UPSTREAM_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Graceful drain on shutdown.
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
    /// How long the first relay peer waits for its partner.
    pub const RELAY_PAIRING_TIMEOUT: Duration = Duration::from_secs(30);
    /// Largest relayed message.
    pub const RELAY_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
    /// How often TLS files are checked for changes.
    pub const CERTIFICATE_WATCH_INTERVAL: Duration = Duration::from_secs(5);
    /// Peer failures that take it out (nginx `max_fails`).
    pub const MAX_FAILS: u32 = 1;
    /// Peer failure window and time out (nginx `fail_timeout`).
    pub const FAIL_TIMEOUT: Duration = Duration::from_secs(10);
    /// Active health check interval.
    pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
    /// Active health check timeout.
    pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
    /// Consecutive successes that bring a peer back.
    pub const HEALTH_RISE: u32 = 2;
    /// Consecutive failures that take a peer out.
    pub const HEALTH_FALL: u32 = 1;
    /// The lowest status a health check accepts.
    pub const HEALTH_EXPECT_MIN: u16 = 200;
    /// The highest status a health check accepts.
    pub const HEALTH_EXPECT_MAX: u16 = 399;
}
