//! The configuration compiled for serving: route tables, upstream clients, TLS acceptors.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gangway_config::{
    Action, Config, Forwarding, Listener, ListenerTls, LocationRewriting, RelaySettings, Rewrite,
    Scheme, Upstream,
};
use gangway_headers::Template;
use gangway_headers::{CookieRewrite, ForwardingPolicy, HeaderOps, LocationRewrite};
use gangway_route::{NormalizeOptions, PathMatch, RouteExpr, RouteTable, RouteTableBuilder};
use gangway_tls::{
    CertificateStore, ClientCa, PemSource, UnknownSni, UpstreamRoots, UpstreamVerification,
};
use gangway_upstream::{
    ClientSettings, HealthChecker, Peer, Pool, RetryPolicy, Sticky, UpstreamClient, UpstreamScheme,
};
use http::HeaderName;
use http::StatusCode;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;

use crate::Error;
use crate::body::UpstreamBody;
use crate::metrics::{ListenerMetrics, RouteMetrics};
use crate::tunnels::TunnelRegistry;

/// The `websocket_test_page` route's page; `__TARGET__` is the WebSocket it checks.
const WEBSOCKET_TEST_PAGE: &str = include_str!("pages/websocket_test.html");

/// One upstream pool, ready to send to.
#[derive(Debug)]
pub(crate) struct UpstreamRuntime {
    pub(crate) name: Arc<str>,
    pub(crate) pool: Pool,
    pub(crate) client: UpstreamClient<UpstreamBody>,
    pub(crate) response_header_timeout: Duration,
    /// When a failed try goes on to the next peer.
    pub(crate) retry: RetryPolicy,
    /// Whether a request may go to a second peer at all: only then is its body kept
    /// reclaimable and its headers copied per try.
    pub(crate) may_retry: bool,
    /// The key of `hash` / `hash_consistent`, rendered per request.
    pub(crate) hash_key: Option<Template>,
}

/// What a matched route does.
#[derive(Debug)]
pub(crate) enum RouteAction {
    Proxy {
        upstream: Arc<UpstreamRuntime>,
        rewrite: Option<PathRewrite>,
        /// Direct routing: the route name of the one peer, rendered from the captures.
        peer: Option<gangway_route::Template>,
    },
    Redirect {
        status: StatusCode,
        target: Template,
    },
    Respond {
        status: StatusCode,
        body: Bytes,
    },
    /// A page served as it is (HTML).
    Page {
        body: Bytes,
    },
    /// The route's own rendezvous; the session id follows `prefix`.
    Relay {
        relay: gangway_tunnel::Relay,
        prefix: String,
    },
}

/// How a proxy route makes the upstream path.
#[derive(Debug)]
pub(crate) enum PathRewrite {
    /// Replace the route's literal prefix (`from`) with `to`.
    Prefix { from: String, to: String },
    /// Render from the match's captures.
    Template(gangway_route::Template),
}

/// One route with its limits.
#[derive(Debug)]
pub(crate) struct RouteRuntime {
    pub(crate) name: Arc<str>,
    /// Listener, route and upstream request operations, merged in that order.
    pub(crate) request_ops: HeaderOps,
    /// Listener, route and upstream response operations, merged in that order.
    pub(crate) response_ops: HeaderOps,
    pub(crate) forwarding: ForwardingPolicy,
    pub(crate) location: LocationRewrite,
    pub(crate) cookies: CookieRewrite,
    pub(crate) min_tls_version: Option<gangway_tls::TlsVersion>,
    pub(crate) action: RouteAction,
    pub(crate) max_body_bytes: u64,
    pub(crate) body_idle_timeout: Duration,
    pub(crate) websocket: bool,
    pub(crate) websocket_idle_timeout: Duration,
    /// The route's series for `/metrics`; also in the listener's [`ListenerMetrics`].
    pub(crate) metrics: Arc<RouteMetrics>,
}

impl RouteRuntime {
    /// Whether responses on this route need the request's variables: only then are they
    /// kept past the request.
    pub(crate) fn rewrites_responses(&self) -> bool {
        !self.response_ops.is_empty()
            || self.location != LocationRewrite::Off
            || !self.cookies.is_empty()
    }
}

/// One listener: its routes, limits and TLS.
#[derive(Debug)]
pub(crate) struct ListenerRuntime {
    pub(crate) name: Arc<str>,
    pub(crate) routes: RouteTable<usize>,
    pub(crate) normalize: NormalizeOptions,
    pub(crate) route_list: Vec<RouteRuntime>,
    /// The listener's response operations, for answers given before a route is known.
    pub(crate) response_ops: HeaderOps,
    pub(crate) tls: Option<Arc<gangway_tls::ListenerTls>>,
    /// Networks of the L4 balancers that open every connection with a PROXY header.
    pub(crate) proxy_protocol: Option<Vec<gangway_headers::Network>>,
    pub(crate) limits: Arc<crate::edge::ConnectionLimits>,
    pub(crate) header_read_timeout: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) metrics: Arc<ListenerMetrics>,
    /// Where the listener's WebSocket tunnels and relay sessions are registered.
    pub(crate) tunnels: Arc<TunnelRegistry>,
}

impl ListenerRuntime {
    /// The connection guard's limits.
    pub(crate) fn guard_timeouts(&self) -> crate::conn_io::GuardTimeouts {
        crate::conn_io::GuardTimeouts {
            header: self.header_read_timeout,
            idle: self.keepalive_timeout,
            send: self.send_timeout,
        }
    }
}

/// The pool of one upstream: its peers with their route names and failure settings, the
/// balancing method and sticky sessions.
fn build_pool(upstream: &Upstream) -> Result<Pool, gangway_upstream::Error> {
    let peers = upstream
        .peers
        .iter()
        .map(|config| {
            let mut peer = Peer::new(config.host.clone(), config.port, config.weight)
                .with_max_fails(config.max_fails)
                .with_fail_timeout(config.fail_timeout);
            if let Some(route) = &config.route {
                peer = peer.with_route(route.clone());
            }
            if config.backup {
                peer = peer.backup();
            }
            if config.down {
                peer = peer.marked_down();
            }
            peer
        })
        .collect();
    let settings = &upstream.pool;
    let mut builder = Pool::builder(peers).method(settings.balance);
    if let Some(sticky) = &settings.sticky {
        builder = builder.sticky(
            Sticky::new(sticky.names.iter().cloned())
                .scolon_path_delim(sticky.scolon_path_delim)
                .failover(sticky.failover),
        );
    }
    builder.build()
}

/// The active health checker of an upstream that has one configured; spawned by the
/// server when it starts serving.
fn health_checker(
    upstream: &Upstream,
    pool: &Pool,
    scheme: &UpstreamScheme,
) -> Result<Option<HealthChecker>, gangway_upstream::Error> {
    let Some(config) = &upstream.pool.health_check else {
        return Ok(None);
    };
    let mut check = gangway_upstream::HealthCheck::new(config.path.clone())
        .interval(config.interval)
        .timeout(config.timeout)
        .expect_status(config.expect_status.clone())
        .rise(config.rise)
        .fall(config.fall);
    if let Some(host) = &config.host {
        check = check.host(host.clone());
    }
    HealthChecker::new(pool, check, scheme.clone(), upstream.connect_timeout).map(Some)
}

pub(crate) fn build_upstream(
    upstream: &Upstream,
    provider: &Arc<CryptoProvider>,
) -> Result<(UpstreamRuntime, Option<HealthChecker>), Error> {
    let upstream_error = |source| Error::Upstream {
        upstream: upstream.name.clone(),
        source,
    };
    let pool = build_pool(upstream).map_err(upstream_error)?;
    let scheme = match upstream.scheme {
        Scheme::Http => UpstreamScheme::Http,
        Scheme::Https => {
            // The crate logs a warning when verification is skipped.
            let config = upstream_tls(upstream)
                .client_config(provider.clone())
                .map_err(|source| Error::Tls {
                    context: format!("upstream `{}`", upstream.name),
                    source,
                })?;
            let server_name = match &upstream.tls.server_name {
                Some(name) => {
                    Some(
                        ServerName::try_from(name.clone()).map_err(|_| Error::ServerName {
                            upstream: upstream.name.clone(),
                            name: name.clone(),
                        })?,
                    )
                }
                None => None,
            };
            UpstreamScheme::Https {
                config: Box::new(config),
                server_name,
            }
        }
    };
    let settings = ClientSettings {
        connect_timeout: upstream.connect_timeout,
        max_idle_per_peer: upstream.keepalive,
        idle_timeout: upstream.keepalive_timeout,
    };
    let health = health_checker(upstream, &pool, &scheme).map_err(upstream_error)?;
    let retry_settings = upstream.pool.retry;
    let retry = RetryPolicy {
        max_tries: retry_settings.tries,
        timeout: retry_settings.timeout,
        retry_idempotent: retry_settings.idempotent,
    };
    let may_retry = pool.peers().len() > 1 && retry.max_tries != 1;
    let runtime = UpstreamRuntime {
        name: upstream.name.as_str().into(),
        pool,
        client: UpstreamClient::new(scheme, settings),
        response_header_timeout: upstream.response_header_timeout,
        retry,
        may_retry,
        hash_key: upstream.pool.hash_key.clone(),
    };
    Ok((runtime, health))
}

pub(crate) fn build_listener(
    listener: &Listener,
    config_upstreams: &[Upstream],
    upstreams: &[Arc<UpstreamRuntime>],
    provider: &Arc<CryptoProvider>,
    tunnels: &Arc<TunnelRegistry>,
) -> Result<ListenerRuntime, Error> {
    let routes_error = |source| Error::Routes {
        listener: listener.name.clone(),
        source,
    };
    let mut table = RouteTableBuilder::new(listener.match_mode);
    let mut route_list = Vec::with_capacity(listener.routes.len());
    for (index, route) in listener.routes.iter().enumerate() {
        let expr = RouteExpr::new(route.host.clone(), route.path.clone())
            .with_methods(route.methods.iter())
            .map_err(routes_error)?;
        let name = expr.to_string();
        let templates: Vec<&gangway_route::Template> = match &route.action {
            Action::Proxy {
                rewrite: Some(Rewrite::Template(template)),
                ..
            } => vec![template],
            _ => Vec::new(),
        };
        table
            .add_with_templates(expr, &templates, index)
            .map_err(routes_error)?;
        let action = match &route.action {
            Action::Proxy {
                upstream,
                rewrite,
                peer,
            } => RouteAction::Proxy {
                upstream: upstreams
                    .get(*upstream)
                    .cloned()
                    .ok_or(Error::UnknownUpstream {
                        listener: listener.name.clone(),
                        index: *upstream,
                    })?,
                rewrite: path_rewrite(&route.path, rewrite.as_ref()),
                peer: peer.clone(),
            },
            Action::Redirect { status, target } => RouteAction::Redirect {
                status: StatusCode::from_u16(*status).unwrap_or(StatusCode::MOVED_PERMANENTLY),
                target: target.clone(),
            },
            Action::Respond { status, body } => RouteAction::Respond {
                status: StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
                body: Bytes::from(body.clone()),
            },
            Action::WebSocketTestPage { target } => RouteAction::Page {
                // Validation keeps quotes, backslashes and angle brackets out of the target.
                body: Bytes::from(WEBSOCKET_TEST_PAGE.replace("__TARGET__", target)),
            },
            Action::Relay(settings) => RouteAction::Relay {
                relay: gangway_tunnel::Relay::new(relay_config(settings)?),
                prefix: match &route.path {
                    PathMatch::Prefix(prefix) | PathMatch::PreferredPrefix(prefix) => {
                        prefix.clone()
                    }
                    // Validation allows prefix routes only; in code, the whole path.
                    other => other.to_string(),
                },
            },
        };
        let upstream_config = match &route.action {
            Action::Proxy { upstream, .. } => config_upstreams.get(*upstream),
            _ => None,
        };
        let mut request_ops = listener.headers.request.merge(&route.headers.request);
        let mut response_ops = listener.headers.response.merge(&route.headers.response);
        if let Some(upstream) = upstream_config {
            request_ops = request_ops.merge(&upstream.headers.request);
            response_ops = response_ops.merge(&upstream.headers.response);
        }
        let name: Arc<str> = name.into();
        let upstream_name = match &action {
            RouteAction::Proxy { upstream, .. } => Some(upstream.name.clone()),
            _ => None,
        };
        route_list.push(RouteRuntime {
            metrics: Arc::new(RouteMetrics::new(name.clone(), upstream_name)),
            name,
            forwarding: forwarding_policy(&listener.forwarding, &request_ops),
            location: location_rewrite(route, upstream_config),
            cookies: cookie_rewrite(route),
            min_tls_version: route.min_tls_version,
            request_ops,
            response_ops,
            action,
            max_body_bytes: route.max_body_bytes,
            body_idle_timeout: route.body_idle_timeout,
            websocket: route.websocket,
            websocket_idle_timeout: route.websocket_idle_timeout,
        });
    }
    let tls = match &listener.tls {
        Some(tls) => Some(Arc::new(listener_tls(listener, tls, provider)?)),
        None => None,
    };
    let name: Arc<str> = listener.name.as_str().into();
    let route_metrics = route_list.iter().map(|route| route.metrics.clone());
    Ok(ListenerRuntime {
        metrics: Arc::new(ListenerMetrics::new(name.clone(), route_metrics.collect())),
        tunnels: tunnels.clone(),
        name,
        routes: table.build().map_err(routes_error)?,
        normalize: NormalizeOptions::new().merge_slashes(listener.merge_slashes),
        route_list,
        response_ops: listener.headers.response.clone(),
        tls,
        proxy_protocol: listener
            .proxy_protocol
            .as_ref()
            .map(|proxy_protocol| proxy_protocol.trusted.clone()),
        limits: Arc::new(crate::edge::ConnectionLimits::new(
            listener.max_connections,
            listener.max_connections_per_client,
        )),
        header_read_timeout: listener.header_read_timeout,
        keepalive_timeout: listener.keepalive_timeout,
        send_timeout: listener.send_timeout,
        max_header_bytes: listener.max_header_bytes,
    })
}

/// The listener's forwarding headers; a header that the operations set themselves (such
/// as `X-Real-IP $remote_addr`) is left to them, and every header the operations write is
/// removed from the client's request first, so it cannot be smuggled through `add`.
fn forwarding_policy(forwarding: &Forwarding, request_ops: &HeaderOps) -> ForwardingPolicy {
    let mut policy = ForwardingPolicy::new()
        .x_forwarded_host(forwarding.x_forwarded_host)
        .x_forwarded_port(forwarding.x_forwarded_port)
        .forwarded(forwarding.forwarded);
    // No list: every incoming X-Forwarded-For is appended to. A list: only those peers'.
    if !forwarding.trusted_proxies.is_empty() {
        policy = policy.trusted_networks(forwarding.trusted_proxies.iter().copied());
    }
    if request_ops.overrides(&HeaderName::from_static("x-real-ip")) {
        policy = policy.x_real_ip(false);
    }
    if request_ops.overrides(&HeaderName::from_static("x-forwarded-for")) {
        policy = policy.x_forwarded_for(false);
    }
    for (op, _always) in request_ops.iter() {
        policy = policy.identity_header(op.name().clone());
    }
    policy
}

/// `default` becomes one pair per peer: the peer's own URL with the path it is sent
/// becomes `$scheme://$host` with the route's prefix, as nginx `proxy_redirect default`.
fn location_rewrite(route: &gangway_config::Route, upstream: Option<&Upstream>) -> LocationRewrite {
    match (&route.location_rewrite, upstream) {
        (LocationRewriting::Off, _) | (_, None) => LocationRewrite::Off,
        (LocationRewriting::Pairs(pairs), _) => LocationRewrite::Pairs(pairs.clone()),
        (LocationRewriting::Default, Some(upstream)) => {
            let public_prefix = match &route.path {
                PathMatch::Exact(path)
                | PathMatch::PreferredPrefix(path)
                | PathMatch::Prefix(path) => path.clone(),
                _ => "/".to_owned(),
            };
            let upstream_prefix = match &route.action {
                Action::Proxy {
                    rewrite: Some(Rewrite::Prefix(to)),
                    ..
                } => to.clone(),
                _ => public_prefix.clone(),
            };
            let scheme = match upstream.scheme {
                Scheme::Http => "http",
                Scheme::Https => "https",
            };
            let Ok(to) =
                gangway_headers::Template::parse(&format!("$scheme://$host{public_prefix}"))
            else {
                return LocationRewrite::Off;
            };
            let pairs = upstream
                .peers
                .iter()
                .map(|peer| {
                    let peer = Peer::new(peer.host.clone(), peer.port, peer.weight);
                    (
                        format!("{scheme}://{}{upstream_prefix}", peer.authority()),
                        to.clone(),
                    )
                })
                .collect();
            LocationRewrite::Pairs(pairs)
        }
    }
}

/// The relay's settings; the ticket secret is read now, so a missing or short one stops
/// the start instead of refusing every peer later.
fn relay_config(settings: &RelaySettings) -> Result<gangway_tunnel::RelayConfig, Error> {
    let ticket_secret = match &settings.ticket_secret_file {
        None => None,
        Some(file) => {
            let secret = std::fs::read(file).map_err(|error| Error::RelaySecret {
                file: file.clone(),
                problem: format!("cannot be read: {error}"),
            })?;
            // A trailing newline from `echo` or an editor is not part of the secret.
            let secret = secret.trim_ascii().to_vec();
            if secret.len() < 16 {
                return Err(Error::RelaySecret {
                    file: file.clone(),
                    problem: format!(
                        "has {} bytes; at least 16 (128 bits) are needed",
                        secret.len()
                    ),
                });
            }
            Some(secret)
        }
    };
    Ok(gangway_tunnel::RelayConfig {
        pairing_timeout: settings.pairing_timeout,
        ticket_secret,
        require_verified_device: settings.require_verified_device,
        max_message_size: settings.max_message_bytes,
        ..gangway_tunnel::RelayConfig::default()
    })
}

fn cookie_rewrite(route: &gangway_config::Route) -> CookieRewrite {
    let mut rewrite = CookieRewrite::new();
    for (from, to) in &route.cookie_domain {
        rewrite = rewrite.domain(from.clone(), to.clone());
    }
    for (from, to) in &route.cookie_path {
        rewrite = rewrite.path(from.clone(), to.clone());
    }
    rewrite
}

fn path_rewrite(path: &PathMatch, rewrite: Option<&Rewrite>) -> Option<PathRewrite> {
    match rewrite? {
        Rewrite::Template(template) => Some(PathRewrite::Template(template.clone())),
        Rewrite::Prefix(to) => match path {
            PathMatch::Exact(from) | PathMatch::PreferredPrefix(from) | PathMatch::Prefix(from) => {
                Some(PathRewrite::Prefix {
                    from: from.clone(),
                    to: to.clone(),
                })
            }
            // Validation refuses a prefix rewrite on a regex route; one built in code keeps
            // the client's path.
            _ => None,
        },
    }
}

/// The listener's certificates by SNI, TLS versions and client-certificate policy.
fn listener_tls(
    listener: &Listener,
    tls: &ListenerTls,
    provider: &Arc<CryptoProvider>,
) -> Result<gangway_tls::ListenerTls, Error> {
    let context = format!("listener `{}`", listener.name);
    let tls_error = |source| Error::Tls {
        context: context.clone(),
        source,
    };
    let store = match tls.certificates.as_slice() {
        // One certificate without names is served to every client, with or without SNI.
        [only] if only.names.is_empty() && tls.unknown_sni == UnknownSni::Default => {
            CertificateStore::single(only.source.clone(), provider.clone())
        }
        certificates => certificates
            .iter()
            .fold(
                CertificateStore::builder(provider.clone()).unknown_sni(tls.unknown_sni),
                |builder, certificate| {
                    let (source, names) = (certificate.source.clone(), certificate.names.clone());
                    if certificate.default {
                        builder.default_certificate(source, names)
                    } else {
                        builder.certificate(source, names)
                    }
                },
            )
            .build(),
    }
    .map_err(tls_error)?;
    let ca = listener.client_ca.clone().map(|ca| {
        listener
            .client_crls
            .iter()
            .fold(ClientCa::new(PemSource::File(ca)), |ca, crl| {
                ca.crl(PemSource::File(crl.clone()))
            })
    });
    let client_auth =
        gangway_tls::ClientAuth::new(listener.client_certificates, ca, provider.clone())
            .map_err(tls_error)?;
    gangway_tls::ListenerTls::new(
        Arc::new(store),
        Arc::new(client_auth),
        listener.tls_versions,
        &[b"h2", b"http/1.1"],
        provider.clone(),
    )
    .map_err(tls_error)
}

/// How an HTTPS upstream verifies its peers, and what it presents to them.
fn upstream_tls(upstream: &Upstream) -> gangway_tls::UpstreamTls {
    let tls = &upstream.tls;
    let verification = if tls.insecure_skip_verify {
        UpstreamVerification::InsecureSkipVerify
    } else if !tls.pins.is_empty() {
        UpstreamVerification::Pinned(tls.pins.clone())
    } else {
        UpstreamVerification::Roots(
            tls.ca
                .clone()
                .map_or(UpstreamRoots::System, UpstreamRoots::File),
        )
    };
    let mut options = gangway_tls::UpstreamTls::new(verification).versions(tls.versions);
    if let Some(source) = &tls.client_certificate {
        options = options.client_certificate(source.clone());
    }
    options
}

/// Builds every upstream and listener of `config`, and the health checkers of the
/// upstreams that have one (not yet running). Tunnels register in `tunnels`.
pub(crate) fn build(
    config: &Config,
    provider: &Arc<CryptoProvider>,
    tunnels: &Arc<TunnelRegistry>,
) -> Result<(Vec<ListenerRuntime>, Vec<HealthChecker>), Error> {
    let mut upstreams = Vec::with_capacity(config.upstreams.len());
    let mut health = Vec::new();
    for upstream in &config.upstreams {
        let (runtime, checker) = build_upstream(upstream, provider)?;
        upstreams.push(Arc::new(runtime));
        health.extend(checker);
    }
    let listeners = config
        .listeners
        .iter()
        .map(|listener| build_listener(listener, &config.upstreams, &upstreams, provider, tunnels))
        .collect::<Result<_, _>>()?;
    Ok((listeners, health))
}
