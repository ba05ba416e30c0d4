//! Upstream servers for the proxy to talk to, each on its own `127.0.0.1:0` port.
//!
//! Every origin runs its accept loop in a spawned task and serves each connection in a
//! task owned by that loop; dropping the origin aborts the loop and with it every
//! connection, so nothing outlives the test that started it. Each is started with an
//! `async fn start` and tells its address with `addr()`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

pub use gangway_echo::{EchoHandle, EchoOrigin};

/// Starts the built-in echo origin on `127.0.0.1:0`; its address is
/// [`EchoHandle::local_addr`] and dropping the handle stops it.
///
/// # Panics
///
/// When binding fails.
pub async fn start_echo() -> EchoHandle {
    EchoOrigin::bind(loopback_any_port())
        .await
        .expect("cannot bind the echo origin on 127.0.0.1:0")
        .spawn()
}

/// An address on loopback where nothing listens, so connecting is refused: a port the
/// system handed out a moment ago and that is free again.
///
/// # Panics
///
/// When binding the probe listener fails.
pub fn refused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind(loopback_any_port())
        .expect("cannot bind a probe listener on 127.0.0.1:0");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The SHA-256 of `data` in lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An origin's accept loop; dropping it aborts the loop and every connection task.
#[derive(Debug)]
struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn bind(what: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(loopback_any_port())
        .await
        .unwrap_or_else(|error| panic!("cannot bind the {what} on 127.0.0.1:0: {error}"));
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    (listener, addr)
}

/// Runs `on_connection` for each accepted connection, in tasks that end with the loop.
fn accept_loop<F, Fut>(listener: TcpListener, mut on_connection: F) -> ServerTask
where
    F: FnMut(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    ServerTask(tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        connections.spawn(on_connection(stream));
                    }
                    // Out of descriptors or similar: back off rather than spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }))
}

fn text_response(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// What a [`RecordingOrigin`] received in one request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request method.
    pub method: Method,
    /// The request target as received (origin-form, such as `/a?b`, from a proxy).
    pub uri: Uri,
    /// The HTTP version of the request.
    pub version: Version,
    /// The request headers, in the order received.
    pub headers: HeaderMap,
    /// The whole request body.
    pub body: Bytes,
}

/// An HTTP/1.1 origin that answers every request `200 ok` and records what it received.
///
/// Responses carry `x-origin: <address>` so a test can tell origins apart. Keep-alive is
/// on, so [`connections`](Self::connections) shows whether the proxy reused a connection.
#[derive(Debug)]
pub struct RecordingOrigin {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    _task: ServerTask,
}

impl RecordingOrigin {
    /// Binds `127.0.0.1:0` and starts serving.
    ///
    /// # Panics
    ///
    /// When binding fails.
    pub async fn start() -> RecordingOrigin {
        let (listener, addr) = bind("recording origin").await;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let origin_header = HeaderValue::from_str(&addr.to_string())
            .expect("a socket address is a valid header value");
        let task = {
            let requests = Arc::clone(&requests);
            let connections = Arc::clone(&connections);
            accept_loop(listener, move |stream| {
                connections.fetch_add(1, Ordering::SeqCst);
                let requests = Arc::clone(&requests);
                let origin_header = origin_header.clone();
                let service = service_fn(move |request| {
                    record(request, Arc::clone(&requests), origin_header.clone())
                });
                async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            })
        };
        RecordingOrigin {
            addr,
            requests,
            connections,
            _task: task,
        }
    }

    /// The address the origin listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of every request received so far, oldest first. A request is recorded
    /// before it is answered, so after a response arrives its request is here.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many TCP connections the origin has accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn record(
    request: Request<Incoming>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    origin_header: HeaderValue,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await else {
        return Ok(text_response(StatusCode::BAD_REQUEST, "body error"));
    };
    requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Recorded {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            body: body.to_bytes(),
        });
    let mut response = text_response(StatusCode::OK, "ok");
    response.headers_mut().insert("x-origin", origin_header);
    Ok(response)
}

/// The size of each data frame a [`StreamingOrigin`] download is sent in.
pub const DOWNLOAD_FRAME: usize = 64 * 1024;

/// An HTTP/1.1 origin for streaming tests that never holds a whole body in memory.
///
/// - `POST` (any path) reads the body frame by frame, reports the size of the first
///   non-empty frame as soon as it arrives (await it with
///   [`first_chunk_received`](Self::first_chunk_received)), and answers
///   `{"sha256": "<hex>", "bytes": n}` for the whole body once it has ended.
/// - `GET /download?bytes=N&seed=S` answers N bytes of [`PseudoRandomBody`] data in
///   [`DOWNLOAD_FRAME`]-byte frames with a `content-length`; add `&chunked=1` to send it
///   chunked instead. Compare with [`expected_download_sha256`].
/// - Anything else gets 404; a malformed download query gets 400.
#[derive(Debug)]
pub struct StreamingOrigin {
    addr: SocketAddr,
    first_chunks: tokio::sync::Mutex<mpsc::UnboundedReceiver<usize>>,
    _task: ServerTask,
}

impl StreamingOrigin {
    /// Binds `127.0.0.1:0` and starts serving.
    ///
    /// # Panics
    ///
    /// When binding fails.
    pub async fn start() -> StreamingOrigin {
        let (listener, addr) = bind("streaming origin").await;
        let (first_chunk_tx, first_chunk_rx) = mpsc::unbounded_channel();
        let task = accept_loop(listener, move |stream| {
            let first_chunk_tx = first_chunk_tx.clone();
            let service =
                service_fn(move |request| stream_service(request, first_chunk_tx.clone()));
            async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
        StreamingOrigin {
            addr,
            first_chunks: tokio::sync::Mutex::new(first_chunk_rx),
            _task: task,
        }
    }

    /// The address the origin listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the first non-empty body frame of a POST reaches the origin and returns
    /// its size. Each POST reports once, in arrival order, so the n-th call waits for the
    /// n-th POST's first frame. Wrap it in a timeout to prove a body was *not* streamed.
    ///
    /// # Panics
    ///
    /// When the origin has stopped.
    pub async fn first_chunk_received(&self) -> usize {
        self.first_chunks
            .lock()
            .await
            .recv()
            .await
            .expect("the streaming origin stopped")
    }
}

type StreamingBody = Either<Full<Bytes>, PseudoRandomBody>;

async fn stream_service(
    request: Request<Incoming>,
    first_chunk: mpsc::UnboundedSender<usize>,
) -> Result<Response<StreamingBody>, Infallible> {
    let response = if request.method() == Method::POST {
        digest_upload(request.into_body(), first_chunk)
            .await
            .map(Either::Left)
    } else if request.method() == Method::GET && request.uri().path() == "/download" {
        match download_query(request.uri().query().unwrap_or("")) {
            Some((bytes, seed, chunked)) => {
                let mut body = PseudoRandomBody::new(bytes, seed);
                if chunked {
                    body = body.without_length();
                }
                Response::new(Either::Right(body))
            }
            None => {
                text_response(StatusCode::BAD_REQUEST, "expected ?bytes=N&seed=S").map(Either::Left)
            }
        }
    } else {
        text_response(StatusCode::NOT_FOUND, "not found").map(Either::Left)
    };
    Ok(response)
}

async fn digest_upload(
    mut body: Incoming,
    first_chunk: mpsc::UnboundedSender<usize>,
) -> Response<Full<Bytes>> {
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    let mut reported = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return text_response(StatusCode::BAD_REQUEST, "body error");
        };
        if let Ok(data) = frame.into_data() {
            if !reported && !data.is_empty() {
                reported = true;
                // The test may not be listening; that is fine.
                let _ = first_chunk.send(data.len());
            }
            hasher.update(&data);
            total += data.len() as u64;
        }
    }
    let json = serde_json::json!({ "sha256": hex(&hasher.finalize()), "bytes": total });
    let mut response = Response::new(Full::new(Bytes::from(json.to_string())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Parses `bytes=N&seed=S[&chunked=1]`; `seed` defaults to 0.
fn download_query(query: &str) -> Option<(u64, u64, bool)> {
    let mut bytes = None;
    let mut seed = 0;
    let mut chunked = false;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=')?;
        match key {
            "bytes" => bytes = Some(value.parse().ok()?),
            "seed" => seed = value.parse().ok()?,
            "chunked" => chunked = value == "1" || value == "true",
            _ => return None,
        }
    }
    Some((bytes?, seed, chunked))
}

/// The SHA-256 (lower-case hex) of the body `GET /download?bytes={bytes}&seed={seed}`
/// returns, computed without holding it in memory.
pub fn expected_download_sha256(bytes: u64, seed: u64) -> String {
    let mut body = PseudoRandomBody::new(bytes, seed);
    let mut hasher = Sha256::new();
    while let Some(frame) = body.next_frame() {
        hasher.update(&frame);
    }
    hex(&hasher.finalize())
}

/// A body of deterministic pseudo-random bytes (xorshift64* seeded through splitmix64),
/// produced [`DOWNLOAD_FRAME`] bytes at a time and never held whole.
///
/// The same `(bytes, seed)` always gives the same bytes. Besides being what
/// [`StreamingOrigin`] downloads, it makes a large request body for upload tests.
#[derive(Debug, Clone)]
pub struct PseudoRandomBody {
    remaining: u64,
    state: u64,
    exact_length: bool,
}

impl PseudoRandomBody {
    /// `bytes` bytes generated from `seed`, with an exact size hint (so a `content-length`).
    pub fn new(bytes: u64, seed: u64) -> PseudoRandomBody {
        // splitmix64 spreads any seed (0 included) into a non-zero xorshift state.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        PseudoRandomBody {
            remaining: bytes,
            state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z },
            exact_length: true,
        }
    }

    /// The same bytes without a size hint, so HTTP/1.1 sends them chunked.
    pub fn without_length(mut self) -> PseudoRandomBody {
        self.exact_length = false;
        self
    }

    fn next_word(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The next frame, or `None` once every byte has been produced. Frames are whole
    /// multiples of 8 bytes except the last, so the byte sequence does not depend on
    /// anything but `(bytes, seed)`.
    fn next_frame(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let len = usize::try_from(self.remaining).map_or(DOWNLOAD_FRAME, |r| r.min(DOWNLOAD_FRAME));
        let mut frame = Vec::with_capacity(len + 8);
        while frame.len() < len {
            frame.extend_from_slice(&self.next_word().to_le_bytes());
        }
        frame.truncate(len);
        self.remaining -= len as u64;
        Some(Bytes::from(frame))
    }
}

impl Body for PseudoRandomBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.get_mut()
                .next_frame()
                .map(|data| Ok(Frame::data(data))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact_length {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

/// An origin that accepts connections, reads whatever arrives and never answers, for
/// upstream timeout (504) tests. Connections stay open until the origin is dropped.
#[derive(Debug)]
pub struct StallingOrigin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    _task: ServerTask,
}

impl StallingOrigin {
    /// Binds `127.0.0.1:0` and starts accepting.
    ///
    /// # Panics
    ///
    /// When binding fails.
    pub async fn start() -> StallingOrigin {
        let (listener, addr) = bind("stalling origin").await;
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let task = accept_loop(listener, move |mut stream| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut buf = vec![0u8; 16 * 1024];
                // Read and discard until the peer closes; then hold the socket until the
                // origin is dropped, so the close is never answered either.
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                std::future::pending::<()>().await;
            }
        });
        StallingOrigin {
            addr,
            connections,
            _task: task,
        }
    }

    /// The address the origin listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many TCP connections the origin has accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// An HTTP/1.1 origin that answers every request `200 slow`, but only after `delay`.
#[derive(Debug)]
pub struct SlowOrigin {
    addr: SocketAddr,
    delay: Duration,
    _task: ServerTask,
}

impl SlowOrigin {
    /// Binds `127.0.0.1:0` and starts serving, answering each request after `delay`.
    ///
    /// # Panics
    ///
    /// When binding fails.
    pub async fn start(delay: Duration) -> SlowOrigin {
        let (listener, addr) = bind("slow origin").await;
        let task = accept_loop(listener, move |stream| {
            let service = service_fn(move |_request: Request<Incoming>| async move {
                // The delay is the behaviour under test, not synchronisation.
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(text_response(StatusCode::OK, "slow"))
            });
            async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
        SlowOrigin {
            addr,
            delay,
            _task: task,
        }
    }

    /// The address the origin listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How long the origin waits before answering.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

/// An HTTPS origin answering `secure hello` to every request, offering only the given TLS
/// versions and, when a client CA is given, requiring a client certificate from it.
#[derive(Debug)]
pub struct TlsOrigin {
    addr: SocketAddr,
    _task: ServerTask,
}

impl TlsOrigin {
    /// Serves `issued` (its chain and key) with TLS 1.2 and 1.3.
    ///
    /// # Panics
    ///
    /// When the certificate does not load or binding fails.
    pub async fn start(issued: &crate::certs::Issued) -> TlsOrigin {
        Self::start_with(
            issued,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            None,
        )
        .await
    }

    /// Serves `issued` with only `versions`, requiring a client certificate issued by
    /// `client_ca_pem` when one is given.
    ///
    /// # Panics
    ///
    /// When a certificate does not load or binding fails.
    pub async fn start_with(
        issued: &crate::certs::Issued,
        versions: &[&'static rustls::SupportedProtocolVersion],
        client_ca_pem: Option<&str>,
    ) -> TlsOrigin {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("the origin's chain is PEM");
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())
            .expect("the origin's key is PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .expect("the provider supports these versions");
        let builder = match client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(CertificateDer::from_pem_slice(ca.as_bytes()).expect("CA PEM"))
                    .expect("the client CA is a certificate");
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .expect("a client verifier for one CA");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .expect("the key matches the certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (listener, addr) = bind("TLS origin").await;
        let task = accept_loop(listener, move |stream| {
            let acceptor = acceptor.clone();
            async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|_request| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"secure hello",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
        TlsOrigin { addr, _task: task }
    }

    /// The address the origin listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
