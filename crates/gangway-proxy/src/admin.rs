//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/tunnels`, `/tunnels/close`.
//!
//! Plain HTTP/1.1 on its own socket, apart from the proxied traffic, so a scrape or a
//! probe never competes with a route and no route can reach it. It is bound with the
//! listeners and stops after the drain, so `/readyz` answers 503 while work drains.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Error;
use crate::metrics::Observer;
use crate::tunnels::TunnelFilter;

/// The Prometheus text format's content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The bound admin socket, and the token its tunnel calls require.
#[derive(Debug)]
pub(crate) struct AdminListener {
    socket: TcpListener,
    address: SocketAddr,
    token: Option<Arc<[u8]>>,
}

impl AdminListener {
    /// Binds `config.address` and reads the token file, if any.
    pub(crate) async fn bind(config: &gangway_config::Admin) -> Result<Self, Error> {
        let token = match &config.token_file {
            None => None,
            Some(file) => Some(read_token(file)?),
        };
        let bind_error = |source| Error::AdminBind {
            address: config.address,
            source,
        };
        let socket = TcpListener::bind(config.address)
            .await
            .map_err(bind_error)?;
        let address = socket.local_addr().map_err(bind_error)?;
        tracing::info!(%address, token = token.is_some(), "admin listener");
        Ok(Self {
            socket,
            address,
            token,
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Answers admin calls until `stopped` turns true.
    pub(crate) async fn serve(self, observer: Arc<Observer>, mut stopped: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                accepted = self.socket.accept() => accepted,
                _ = stopped.wait_for(|stop| *stop) => return,
            };
            let (stream, _) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!("admin accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let observer = observer.clone();
            let token = self.token.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = answer(&observer, token.as_deref(), &request);
                    std::future::ready(Ok::<_, std::convert::Infallible>(response))
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(connection);
                let stopping = async move {
                    // A dropped sender also means the server is gone.
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                tokio::select! {
                    _ = connection.as_mut() => {}
                    () = stopping => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            });
        }
    }
}

/// The token, trimmed of surrounding whitespace (a trailing newline from `echo`).
fn read_token(file: &Path) -> Result<Arc<[u8]>, Error> {
    let token = std::fs::read(file).map_err(|error| Error::AdminToken {
        file: file.to_path_buf(),
        problem: format!("cannot be read: {error}"),
    })?;
    let token = token.trim_ascii();
    if token.len() < 16 {
        return Err(Error::AdminToken {
            file: file.to_path_buf(),
            problem: format!("has {} bytes; at least 16 are needed", token.len()),
        });
    }
    Ok(token.into())
}

fn answer(
    observer: &Observer,
    token: Option<&[u8]>,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let method = request.method();
    let get = method == Method::GET || method == Method::HEAD;
    match request.uri().path() {
        "/metrics" if get => respond(StatusCode::OK, METRICS_CONTENT_TYPE, observer.render()),
        "/healthz" if get => text(StatusCode::OK, "ok\n"),
        "/readyz" if get => {
            if observer.is_ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/tunnels" if get => guarded(token, request, || {
            json(StatusCode::OK, &observer.tunnels.list())
        }),
        "/tunnels/close" if method == Method::POST => {
            guarded(token, request, || {
                match tunnel_filter(request.uri().query().unwrap_or("")) {
                    Err(problem) => json(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({ "error": problem }),
                    ),
                    Ok(filter) => {
                        let closed = observer.tunnels.close(&filter);
                        json(StatusCode::OK, &serde_json::json!({ "closed": closed }))
                    }
                }
            })
        }
        "/metrics" | "/healthz" | "/readyz" | "/tunnels" | "/tunnels/close" => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz, /readyz, /tunnels, POST /tunnels/close\n",
        ),
    }
}

/// With a token configured, the tunnel calls need `Authorization: Bearer <token>`; without
/// it they get 401 and `then` is not run.
fn guarded(
    token: Option<&[u8]>,
    request: &Request<Incoming>,
    then: impl FnOnce() -> Response<Full<Bytes>>,
) -> Response<Full<Bytes>> {
    let Some(token) = token else {
        return then();
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
    if presented.is_some_and(|presented| constant_time_eq(presented, token)) {
        return then();
    }
    let mut response = text(StatusCode::UNAUTHORIZED, "a bearer token is required\n");
    response
        .headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    response
}

/// Compares without stopping at the first difference, so timing does not reveal how much
/// of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// `peer=HOST:PORT`, `route=NAME`, `fingerprint=HEX` (with or without colons); at least
/// one, so that a bare call cannot close everything by accident.
pub(crate) fn tunnel_filter(query: &str) -> Result<TunnelFilter, String> {
    let mut filter = TunnelFilter::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value);
        match name {
            "peer" => filter.peer = Some(value),
            "route" => filter.route = Some(value),
            "fingerprint" => {
                let parsed = value
                    .parse()
                    .map_err(|_| format!("fingerprint `{value}` is not 64 hex digits"))?;
                filter.fingerprint = Some(parsed);
            }
            other => {
                return Err(format!(
                    "unknown parameter `{other}`; expected peer, route or fingerprint"
                ));
            }
        }
    }
    if filter.is_empty() {
        return Err("name the tunnels to close: peer=, route= or fingerprint=".to_owned());
    }
    Ok(filter)
}

/// A query value, form-decoded (`+` is a space, `%XX` a byte).
fn decode(value: &str) -> String {
    let spaced = value.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.to_owned())
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut body = value.to_string();
    body.push('\n');
    respond(status, "application/json", body)
}
