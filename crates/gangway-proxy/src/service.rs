//! One request, from route lookup to the response the client gets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gangway_headers::{ForwardedProto, Rendered, strip_hop_by_hop, strip_hop_by_hop_keep_upgrade};
use gangway_tunnel::{
    WebSocketClose, accepts_key, is_upgrade_request, splice_websocket,
    upgrade_from_extended_connect, validate_upgrade_request,
};
use gangway_upstream::{Failure, Reclaim, RequestInfo, RetryBody};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION, SEC_WEBSOCKET_ACCEPT};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::access::AccessRecord;
use crate::body::{Finish, RequestBody, RequestBodyFacts, ResponseBody, UpstreamBody};
use crate::conn_io::ConnState;
use crate::error::{RequestError, Side};
use crate::runtime::{ListenerRuntime, PathRewrite, RouteAction, RouteRuntime, UpstreamRuntime};
use crate::server::Tracker;
use crate::tunnels::{TunnelInfo, TunnelKind};
use crate::vars::RequestFacts;

/// The close frame a WebSocket tunnel gets when an admin call closes it: 1001, as for a
/// server going away, so that the client reconnects (through the balancer, to another
/// peer when the call drained one).
const ADMIN_CLOSE: WebSocketClose = WebSocketClose {
    code: 1001,
    reason: "closed by the operator",
    timeout: Duration::from_secs(3),
};

/// The close frame a WebSocket tunnel gets near the end of the drain at shutdown; the
/// handshake gets the time the drain leaves it instead of this timeout.
pub(crate) const SHUTDOWN_CLOSE: WebSocketClose = WebSocketClose {
    code: 1001,
    reason: "going away",
    timeout: Duration::from_secs(3),
};

/// What the engine knows about the connection a request came on.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) listener: Arc<ListenerRuntime>,
    pub(crate) client: SocketAddr,
    /// The client's address as the forwarding headers of each request carry it.
    pub(crate) client_addr: gangway_headers::ClientAddr,
    pub(crate) local: SocketAddr,
    /// The TLS session of a TLS listener's connection, with the client's identity.
    pub(crate) tls: Option<gangway_tls::TlsSession>,
    pub(crate) server_name: Option<String>,
    pub(crate) state: Arc<ConnState>,
    pub(crate) tunnels: Tracker,
}

impl Connection {
    /// The SHA-256 fingerprint of the certificate the client presented, verified or not.
    pub(crate) fn client_fingerprint(&self) -> Option<gangway_tls::Sha256Fingerprint> {
        let tls = self.tls.as_ref()?;
        Some(tls.identity().presented()?.sha256_fingerprint())
    }

    /// The variables of one request on this connection.
    pub(crate) fn facts<'a>(
        &'a self,
        method: &'a http::Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        host: Option<&'a str>,
        captures: Option<&'a gangway_route::Captures<'a>>,
        forwarding: Option<&'a gangway_headers::ForwardingPolicy>,
    ) -> RequestFacts<'a> {
        RequestFacts {
            method,
            uri,
            headers,
            client: self.client,
            local: self.local,
            tls: self.tls.as_ref(),
            server_name: self.server_name.as_deref(),
            host,
            captures,
            forwarding,
        }
    }
}

/// A header value rendered from variables that would have split the header (CR, LF, NUL)
/// is never sent; the event is logged here.
fn log_dropped(dropped: &[gangway_headers::Dropped], conn: &Connection) {
    for event in dropped {
        tracing::warn!(client = %conn.client, "header dropped: {event}");
    }
}

/// Serves one request. Never fails: every error becomes a response.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn's future would hold the request twice: as passed, and as moved into \
              the body"
)]
pub(crate) fn serve(
    conn: Arc<Connection>,
    request: Request<Incoming>,
) -> impl Future<Output = Result<Response<ResponseBody>, std::convert::Infallible>> + Send {
    async move {
        conn.state.request_started();
        let started = Instant::now();
        let mut record =
            AccessRecord::new(conn.client, conn.listener.name.clone(), &request, started);
        // What the proxy's own error answers may need for their `always` header operations.
        let uri = request.uri().clone();
        let host = RequestHost::of(&request);
        let mut route_index = None;
        // Routing and preparing the upstream request are synchronous; only forwarding waits,
        // and its future holds the prepared request by reference (futures that hold their
        // state by value are copied whole at each level of nesting). The prepared request is
        // borrowed where dispatch returned it: a binding of its own would take a second place
        // of its size in this future, and a copy.
        let answer = match dispatch(
            &conn,
            request,
            host.as_ref().map(RequestHost::as_str),
            &mut record,
            &mut route_index,
        ) {
            Ok(Dispatched::Answer(response)) => Ok(response),
            Ok(Dispatched::Forward(ref mut job)) => forward(&conn, job, &mut record).await,
            Err(error) => Err(error),
        };
        let mut response = match answer {
            Ok(response) => response,
            Err(error) => {
                let mut response = error_response(&error, &record, &conn);
                let ops = match route_index {
                    Some(index) => &conn.listener.route_list[index].response_ops,
                    None => &conn.listener.response_ops,
                };
                let empty = HeaderMap::new();
                let host = host.as_ref().map(RequestHost::as_str);
                let facts = conn.facts(&record.method, &uri, &empty, host, None, None);
                log_dropped(&ops.apply_always(response.headers_mut(), &facts), &conn);
                response
            }
        };
        record.status = response.status();
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            conn.state.upgraded();
        }
        response.body_mut().on_finish(Finish {
            record,
            conn: conn.state.clone(),
            metrics: conn.listener.metrics.route(route_index).clone(),
        });
        Ok(response)
    }
}

fn error_response(
    error: &RequestError,
    record: &AccessRecord,
    conn: &Connection,
) -> Response<ResponseBody> {
    let status = error.status();
    let route = record.route.as_deref().unwrap_or("-");
    let upstream = record.upstream.as_deref().unwrap_or("-");
    let peer = record.peer.as_deref().unwrap_or("-");
    match error.side() {
        Side::Downstream => {
            tracing::debug!(client = %conn.client, route, status = status.as_u16(), "{error}")
        }
        Side::Upstream => {
            // The cause chain says why: refused, reset, or which certificate check failed.
            let reason = crate::error::cause_chain(error);
            tracing::warn!(client = %conn.client, route, upstream, peer, status = status.as_u16(), "{reason}")
        }
        Side::Internal => {
            tracing::error!(client = %conn.client, route, peer, status = status.as_u16(), "{error}")
        }
    }
    plain_response(
        status,
        format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
    )
}

fn plain_response(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A page of the proxy's own: HTML that may run its inline script and open WebSockets,
/// and nothing else.
fn page_response(body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src ws: wss:; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

/// The request's host (`Host`, else the HTTP/2 `:authority`) without its port, lower-cased
/// as routing compares it. It shares the `Host` header when that needs no lower-casing
/// (clients send lower-case hosts), so that most requests make no copy of it.
pub(crate) struct RequestHost {
    /// The `Host` header, or the lower-cased host alone.
    value: HeaderValue,
    /// Where the host is in `value`.
    range: std::ops::Range<usize>,
}

impl RequestHost {
    pub(crate) fn of<B>(request: &Request<B>) -> Option<Self> {
        let (header, raw) = match request.headers().get(HOST) {
            Some(value) => (Some(value), value.to_str().ok()?),
            None => (None, request.uri().authority()?.as_str()),
        };
        let range = host_range(raw)?;
        let host = raw.get(range.clone())?;
        match header.filter(|_| !host.bytes().any(|byte| byte.is_ascii_uppercase())) {
            Some(value) => Some(Self {
                value: value.clone(),
                range,
            }),
            None => {
                let value = HeaderValue::from_str(&host.to_ascii_lowercase()).ok()?;
                let range = 0..value.len();
                Some(Self { value, range })
            }
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Both values were made from a `str`, and the range lies on its characters.
        let text = self.value.to_str().unwrap_or_default();
        text.get(self.range.clone()).unwrap_or_default()
    }
}

/// Where the host is in a `Host` value or an authority: without the port, and an IPv6
/// literal without its brackets. `None` when it is empty.
fn host_range(raw: &str) -> Option<std::ops::Range<usize>> {
    let range = match raw.strip_prefix('[') {
        Some(rest) => 1..1 + rest.find(']').unwrap_or(rest.len()),
        None => 0..raw.rfind(':').unwrap_or(raw.len()),
    };
    (!range.is_empty()).then_some(range)
}

/// What routing decided for a request.
// `Forward` is the large one and the common one; it is made once per request and kept in
// the serving future, so boxing it would only add an allocation to every request.
#[allow(clippy::large_enum_variant)]
enum Dispatched<'a> {
    /// The proxy's own answer: a redirect, a fixed response, a page, an error, a relay.
    Answer(Response<ResponseBody>),
    /// A request prepared for the upstream.
    Forward(Forward<'a>),
}

fn dispatch<'a>(
    conn: &'a Arc<Connection>,
    request: Request<Incoming>,
    host: Option<&str>,
    record: &mut AccessRecord,
    route_index: &mut Option<usize>,
) -> Result<Dispatched<'a>, RequestError> {
    if request
        .uri()
        .path_and_query()
        .is_some_and(|target| !target.as_str().starts_with('/'))
        && request.method() != http::Method::OPTIONS
    {
        return Err(RequestError::BadTarget);
    }
    // nginx `ssl_verify_client optional`: an invalid certificate gets 400 (its 495).
    if let Some(tls) = conn
        .tls
        .as_ref()
        .filter(|tls| tls.identity().rejects_request())
    {
        return Err(RequestError::ClientCertificate {
            reason: tls.identity().status().to_string(),
        });
    }
    // A connection is bound to the server its SNI chose: a Host naming another configured
    // server (connection reuse across names, or a forged Host) gets 421 (RFC 9110
    // 15.5.20), so no request reaches a server whose certificate the client never saw.
    if let (Some(sni), Some(host), Some(tls)) = (&conn.server_name, host, &conn.listener.tls) {
        if tls.store().host_conflicts(Some(sni), host) {
            return Err(RequestError::MisdirectedHost {
                host: host.to_owned(),
                sni: sni.clone(),
            });
        }
    }
    // An absolute-form target (or HTTP/2 `:authority`) naming another host than `Host`
    // is ambiguous: routing by one and forwarding the other is how filters are bypassed.
    if let (Some(authority), Some(host)) = (request.uri().authority(), host) {
        if request.headers().contains_key(HOST) {
            let named = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']');
            if !named.eq_ignore_ascii_case(host) {
                return Err(RequestError::AmbiguousHost {
                    target: named.to_owned(),
                    host: host.to_owned(),
                });
            }
        }
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let listener = &conn.listener;
    let matched = listener
        .routes
        .resolve(
            host,
            Some(request.method().as_str()),
            target,
            listener.normalize,
        )
        .map_err(RequestError::BadPath)?
        .ok_or(RequestError::NoRoute)?;
    let route = &listener.route_list[*matched.value()];
    *route_index = Some(*matched.value());
    record.route = Some(route.name.clone());
    if let Some(required) = route.min_tls_version {
        let used = conn.tls.as_ref().and_then(|tls| tls.version());
        if used.is_none_or(|used| used < required) {
            return Err(RequestError::TlsVersionTooOld {
                required: required.as_str(),
                used: used.map_or("no TLS", |used| used.as_str()),
            });
        }
    }
    match &route.action {
        RouteAction::Respond { status, body } => {
            Ok(Dispatched::Answer(plain_response(*status, body.clone())))
        }
        RouteAction::Page { body } => Ok(Dispatched::Answer(page_response(body.clone()))),
        RouteAction::Relay { relay, prefix } => crate::relay::serve(
            conn,
            request,
            relay,
            prefix,
            route.name.clone(),
            route.metrics.clone(),
        )
        .map(Dispatched::Answer),
        RouteAction::Redirect { status, target } => {
            let facts = conn.facts(
                request.method(),
                request.uri(),
                request.headers(),
                host,
                Some(matched.captures()),
                None,
            );
            let location = HeaderValue::try_from(target.render(&facts))
                .map_err(|_| RequestError::BadRedirectTarget)?;
            let mut response = plain_response(*status, format!("{}\n", status.as_u16()));
            response.headers_mut().insert(LOCATION, location);
            Ok(Dispatched::Answer(response))
        }
        RouteAction::Proxy {
            upstream,
            rewrite,
            peer,
        } => {
            let upstream_target = match rewrite {
                None => None,
                Some(PathRewrite::Prefix { from, to }) => {
                    Some(gangway_route::replace_prefix(target, from, to))
                }
                Some(PathRewrite::Template(template)) => {
                    let mut rendered = matched.render(template);
                    // A template that writes no query keeps the client's.
                    if let (false, Some(query)) = (rendered.contains('?'), request.uri().query()) {
                        rendered.push('?');
                        rendered.push_str(query);
                    }
                    Some(rendered)
                }
            };
            let facts = conn.facts(
                request.method(),
                request.uri(),
                request.headers(),
                host,
                Some(matched.captures()),
                Some(&route.forwarding),
            );
            // Rendered now, while the request and the captures are at hand; applied after
            // the client's hop-by-hop and identity headers are gone.
            let rendered = route.request_ops.render(&facts);
            let hash_key = upstream.hash_key.as_ref().map(|key| key.render(&facts));
            let direct_peer = peer.as_ref().map(|peer| matched.render(peer));
            let snapshot = route.rewrites_responses().then(|| ResponseContext {
                method: request.method().clone(),
                uri: request.uri().clone(),
                headers: request.headers().clone(),
                host: host.map(str::to_owned),
            });
            drop(matched);
            let prepared = Outbound {
                upstream_target,
                rendered,
                snapshot,
                host,
                hash_key,
                direct_peer,
            };
            prepare(conn, route, upstream, prepared, request, record).map(Dispatched::Forward)
        }
    }
}

/// What the route prepared for the upstream request and the response.
struct Outbound<'r> {
    /// The rewritten target; `None`: the client's own.
    upstream_target: Option<String>,
    rendered: Rendered<'r>,
    snapshot: Option<ResponseContext>,
    host: Option<&'r str>,
    /// The rendered key of a `hash` upstream.
    hash_key: Option<String>,
    /// The route name of the peer a direct route names.
    direct_peer: Option<String>,
}

/// The request facts kept for rendering response headers, for routes that rewrite them.
struct ResponseContext {
    method: http::Method,
    uri: Uri,
    headers: HeaderMap,
    host: Option<String>,
}

/// A request ready to go upstream: the peers to try, the request to send, and what the
/// response needs.
struct Forward<'a> {
    route: &'a RouteRuntime,
    upstream: &'a Arc<UpstreamRuntime>,
    /// The client's key and upgrade of a WebSocket request.
    websocket: Option<(gangway_tunnel::WebSocketKey, hyper::upgrade::OnUpgrade)>,
    /// An RFC 8441 extended CONNECT, answered with 200 instead of 101.
    http2_websocket: bool,
    selection: gangway_upstream::Selection<'a>,
    /// The peer that a failed try ends the request at, instead of going to another.
    pinned: Option<String>,
    method: Method,
    target: PathAndQuery,
    headers: HeaderMap,
    /// `None` once a try took it.
    body: Option<RequestBody>,
    body_empty: bool,
    facts: Arc<RequestBodyFacts>,
    snapshot: Option<ResponseContext>,
}

/// Everything about the upstream request that needs no waiting: the peers, the target, the
/// headers and the body.
fn prepare<'a>(
    conn: &Arc<Connection>,
    route: &'a RouteRuntime,
    upstream: &'a Arc<UpstreamRuntime>,
    prepared: Outbound<'_>,
    mut request: Request<Incoming>,
    record: &mut AccessRecord,
) -> Result<Forward<'a>, RequestError> {
    // An HTTP/2 WebSocket (RFC 8441 extended CONNECT) goes upstream as an HTTP/1.1 upgrade.
    let http2_websocket = request.method() == Method::CONNECT
        && request.extensions().get::<hyper::ext::Protocol>().is_some();
    let websocket = if http2_websocket || is_upgrade_request(request.headers()) {
        if !route.websocket {
            return Err(RequestError::UpgradeNotAllowed);
        }
        let key = if http2_websocket {
            let protocol = request
                .extensions()
                .get::<hyper::ext::Protocol>()
                .map(|protocol| protocol.as_str().to_owned());
            let method = request.method().clone();
            let key =
                upgrade_from_extended_connect(&method, protocol.as_deref(), request.headers_mut())
                    .map_err(RequestError::BadUpgrade)?;
            *request.method_mut() = Method::GET;
            key
        } else {
            validate_upgrade_request(request.method(), request.headers())
                .map_err(RequestError::BadUpgrade)?
        };
        Some((key, hyper::upgrade::on(&mut request)))
    } else {
        None
    };

    let declared_length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > route.max_body_bytes) {
        return Err(RequestError::BodyTooLarge {
            limit: route.max_body_bytes,
        });
    }

    // The peers to try, chosen before any header changes: sticky sessions read the
    // client's own cookies and target.
    let info = RequestInfo::from_request(&request)
        .client(conn.client.ip())
        .hash_key(prepared.hash_key.as_deref().unwrap_or_default().as_bytes());
    let selection = match &prepared.direct_peer {
        Some(route) => upstream.pool.select_route(route),
        None => upstream.pool.select(info),
    };
    // A direct route's peer, or the session's own peer under Apache `nofailover`: a
    // failed try of it ends the request with 503 instead of going to another peer.
    let pinned = prepared.direct_peer.clone().or_else(|| {
        upstream
            .pool
            .sticky()
            .filter(|sticky| !sticky.fails_over())
            .and_then(|sticky| sticky.route(&info))
            .map(str::to_owned)
    });
    record.upstream = Some(upstream.name.clone());

    let (mut parts, body) = request.into_parts();
    let target = match prepared.upstream_target {
        Some(rewritten) => PathAndQuery::from_maybe_shared(Bytes::from(rewritten))
            .map_err(|error| RequestError::UpstreamRequest(error.into()))?,
        // The client's target as hyper parsed it, shared rather than copied and parsed again.
        None => parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    };

    // An HTTP/2 client names the host in `:authority`; the upstream speaks HTTP/1.1.
    if !parts.headers.contains_key(HOST) {
        if let Some(authority) = parts.uri.authority() {
            if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(HOST, value);
            }
        }
    }
    strip_hop_by_hop_keep_upgrade(&mut parts.headers, websocket.is_some());
    let proto = if conn.tls.is_some() {
        ForwardedProto::Https
    } else {
        ForwardedProto::Http
    };
    let mut dropped = route.forwarding.apply(
        &mut parts.headers,
        &conn.client_addr,
        proto,
        prepared.host,
        conn.local.port(),
    );
    dropped.extend(prepared.rendered.apply(&mut parts.headers));
    log_dropped(&dropped, conn);

    let facts = Arc::new(RequestBodyFacts::default());
    record.request_body = Some(facts.clone());
    let body_empty = body.is_end_stream();
    let body = Some(RequestBody::new(
        body,
        route.max_body_bytes,
        route.body_idle_timeout,
        facts.clone(),
    ));
    Ok(Forward {
        route,
        upstream,
        websocket,
        http2_websocket,
        selection,
        pinned,
        method: parts.method,
        target,
        headers: parts.headers,
        body,
        body_empty,
        facts,
        snapshot: prepared.snapshot,
    })
}

/// Sends the prepared request to its peers in turn until one answers, and passes the
/// answer on.
async fn forward(
    conn: &Arc<Connection>,
    job: &mut Forward<'_>,
    record: &mut AccessRecord,
) -> Result<Response<ResponseBody>, RequestError> {
    let Forward {
        route,
        upstream,
        ref mut websocket,
        http2_websocket,
        ref mut selection,
        ref pinned,
        ref method,
        ref target,
        ref mut headers,
        ref mut body,
        body_empty,
        ref facts,
        ref snapshot,
    } = *job;
    // The retry budget runs from the request's start, a moment before the first try.
    let started = record.started;
    let mut last_error = None;
    let (mut response, in_flight) = loop {
        let Some(attempt) = selection.next() else {
            return Err(last_error.unwrap_or_else(|| RequestError::NoPeer(selection.error())));
        };
        record.peer = Some(attempt.peer().shared_authority());
        // The body comes back from a failed try only if it was never read; a request
        // without one gets a fresh empty body for every try.
        let try_body = body.take().unwrap_or_else(|| {
            RequestBody::empty(route.max_body_bytes, route.body_idle_timeout, facts.clone())
        });
        let (try_body, reclaim) = if upstream.may_retry && !body_empty {
            let (wrapped, reclaim) = RetryBody::new(try_body);
            (UpstreamBody::Reclaimable(wrapped), Some(reclaim))
        } else {
            (UpstreamBody::Direct(try_body), None)
        };
        let try_headers = if upstream.may_retry {
            headers.clone()
        } else {
            std::mem::take(headers)
        };
        // The peer's authority was parsed when the pool was built.
        let parsed;
        let peer = match attempt.peer().uri_authority() {
            Some(authority) => authority,
            None => {
                parsed = http::uri::Authority::try_from(attempt.peer().authority())
                    .map_err(|error| RequestError::UpstreamRequest(error.into()))?;
                &parsed
            }
        };
        // Made where it is sent, so that this future keeps no room for it.
        let outbound = || {
            let mut outbound = Request::new(try_body);
            *outbound.method_mut() = method.clone();
            // The client sends origin form; the target was parsed once for every try.
            *outbound.uri_mut() = Uri::from(target.clone());
            *outbound.version_mut() = Version::HTTP_11;
            *outbound.headers_mut() = try_headers;
            outbound
        };

        let timeout = upstream.response_header_timeout;
        let try_started = Instant::now();
        // The upstream's time to answer runs from the end of the request body; while the
        // body streams, the body idle timeout guards against a stalled client.
        let deadline = async {
            facts.sent().await;
            tokio::time::sleep(timeout).await;
        };
        let answer = tokio::select! {
            answer = upstream.client.send(peer, outbound()) => Ok(answer),
            () = deadline => Err(()),
        };
        let (failure, error) = match answer {
            Ok(Ok(response)) => {
                route.metrics.upstream_answered(try_started.elapsed());
                break (response, attempt.succeeded());
            }
            Err(()) => (
                Failure::Response,
                RequestError::UpstreamTimeout {
                    seconds: timeout.as_secs(),
                },
            ),
            Ok(Err(error)) => {
                // A body cut by our own limits is the client's fault, not the peer's.
                if facts.too_large.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(RequestError::BodyTooLarge {
                        limit: route.max_body_bytes,
                    });
                }
                if facts.idle.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(RequestError::ClientBodyTimeout {
                        seconds: route.body_idle_timeout.as_secs(),
                    });
                }
                if facts.broken.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(RequestError::BadRequestBody);
                }
                (Failure::of(&error), RequestError::UpstreamConnect(error))
            }
        };
        let failed_route = attempt.peer().route().map(str::to_owned);
        attempt.failed();
        if pinned.is_some() && failed_route == *pinned {
            tracing::warn!(client = %conn.client, peer = record.peer.as_deref().unwrap_or("-"), "{error}");
            return Err(RequestError::NoPeer(
                gangway_upstream::Error::RouteUnavailable {
                    route: failed_route.unwrap_or_default(),
                },
            ));
        }
        let retry = upstream.may_retry
            && upstream
                .retry
                .should_retry(failure, method, selection.tries(), started.elapsed());
        if !retry {
            return Err(error);
        }
        // Only a body that was never read can go to the next peer.
        if !body_empty {
            match reclaim.and_then(Reclaim::take) {
                Some(taken) => *body = Some(taken),
                None => return Err(error),
            }
        }
        tracing::info!(
            client = %conn.client,
            upstream = %upstream.name,
            peer = record.peer.as_deref().unwrap_or("-"),
            "{error}; trying the next peer"
        );
        last_error = Some(error);
    };

    if let Some((key, client_upgrade)) = websocket.take() {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if !accepts_key(response.headers(), &key) {
                return Err(RequestError::UpstreamBadUpgrade);
            }
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let idle = route.websocket_idle_timeout;
            let (client, peer, route_name) = (
                conn.client,
                record.peer.clone().unwrap_or_default(),
                route.name.clone(),
            );
            let guard = conn.tunnels.enter();
            let tunnel = conn.listener.tunnels.open(
                TunnelInfo {
                    kind: TunnelKind::WebSocket,
                    listener: conn.listener.name.clone(),
                    route: route.name.clone(),
                    peer: record.peer.clone(),
                    client: conn.client,
                    fingerprint: conn.client_fingerprint(),
                },
                route.metrics.clone(),
            );
            tokio::spawn(async move {
                // The tunnel counts as in flight to its peer until it closes.
                let _in_flight = in_flight;
                let (client_io, upstream_io) = match tokio::try_join!(
                    client_upgrade,
                    upstream_upgrade
                ) {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::warn!(%client, peer = &*peer, route = %route_name, "WebSocket upgrade did not complete: {error}");
                        return;
                    }
                };
                let client_io = tunnel.client_io(TokioIo::new(client_io));
                let closed_by = std::sync::OnceLock::new();
                // The proxy ends a tunnel itself with a close handshake (1001 to both
                // sides) when an admin call closes it or the drain nears its end.
                let close = async {
                    tokio::select! {
                        () = tunnel.closed() => {
                            let _ = closed_by.set("admin");
                            ADMIN_CLOSE
                        }
                        window = guard.closing() => {
                            let _ = closed_by.set("shutdown");
                            WebSocketClose { timeout: window, ..SHUTDOWN_CLOSE }
                        }
                    }
                };
                let report =
                    splice_websocket(client_io, TokioIo::new(upstream_io), idle, close).await;
                tracing::info!(
                    target: "gangway::access",
                    %client, peer = &*peer, route = %route_name,
                    client_to_upstream = report.client_to_upstream,
                    upstream_to_client = report.upstream_to_client,
                    end = ?report.end,
                    closed_by = closed_by.get().copied().unwrap_or("-"),
                    "WebSocket tunnel closed"
                );
            });
            let (mut parts, _body) = response.into_parts();
            if http2_websocket {
                // RFC 8441: the stream opens with a 2xx; the HTTP/1.1 handshake headers
                // stay between the proxy and the upstream.
                parts.status = StatusCode::OK;
                strip_hop_by_hop(&mut parts.headers);
                parts.headers.remove(SEC_WEBSOCKET_ACCEPT);
            }
            return Ok(Response::from_parts(parts, ResponseBody::empty()));
        }
    }

    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(context) = snapshot {
        let facts = conn.facts(
            &context.method,
            &context.uri,
            &context.headers,
            context.host.as_deref(),
            None,
            None,
        );
        let mut dropped = route.location.apply(&mut parts.headers, &facts);
        dropped.extend(route.cookies.apply(&mut parts.headers, &facts));
        dropped.extend(route.response_ops.apply(&mut parts.headers, &facts));
        log_dropped(&dropped, conn);
    }
    Ok(Response::from_parts(
        parts,
        ResponseBody::streaming(body, route.body_idle_timeout).holding(in_flight),
    ))
}
