//! The pooled client against real origins on loopback: reuse, bounds, idle timeout, stale
//! connections, connect failures, TLS, the request form on the wire and upgrades.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use super::Origin;
use crate::{ClientSettings, SendError, UpstreamClient, UpstreamScheme};

/// Every test here is over in well under this; a hang fails instead of blocking the run.
const LIMIT: Duration = Duration::from_secs(10);

type Client = UpstreamClient<Empty<Bytes>>;

fn settings(max_idle_per_peer: usize, idle_timeout: Duration) -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(2),
        max_idle_per_peer,
        idle_timeout,
    }
}

fn plain(max_idle_per_peer: usize) -> Client {
    UpstreamClient::new(
        UpstreamScheme::Http,
        settings(max_idle_per_peer, Duration::from_secs(60)),
    )
}

fn authority(addr: SocketAddr) -> Authority {
    addr.to_string().parse().unwrap()
}

fn get(target: &str) -> Request<Empty<Bytes>> {
    Request::get(target).body(Empty::new()).unwrap()
}

async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("the test took too long")
}

/// Sends `GET target` and reads the whole body.
async fn fetch(client: &Client, peer: &Authority, target: &str) -> (StatusCode, Bytes) {
    let response = client.send(peer, get(target)).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

/// A raw origin: each accepted connection goes to `serve` with its number (from 0).
struct RawOrigin {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RawOrigin {
    async fn start<F, Fut>(serve: F) -> Self
    where
        F: Fn(TcpStream, usize) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let number = counted.fetch_add(1, Ordering::SeqCst);
                connections.spawn(serve(stream, number));
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head; `None` at the end of the stream.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8(head).unwrap())
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

#[tokio::test]
async fn two_sequential_requests_share_one_upstream_connection() {
    bounded(async {
        let origin = Origin::start().await;
        let client = plain(2);
        let peer = authority(origin.addr);
        for _ in 0..2 {
            assert_eq!(
                fetch(&client, &peer, "/").await,
                (StatusCode::OK, "ok".into())
            );
        }
        assert_eq!(origin.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(client.idle_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn without_keepalive_every_request_opens_a_connection() {
    bounded(async {
        let origin = Origin::start().await;
        let client = plain(0);
        let peer = authority(origin.addr);
        for _ in 0..3 {
            assert_eq!(fetch(&client, &peer, "/").await.0, StatusCode::OK);
        }
        assert_eq!(origin.accepted.load(Ordering::SeqCst), 3);
        assert_eq!(client.idle_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn at_most_max_idle_connections_stay_open_after_concurrent_requests() {
    bounded(async {
        // The origin holds every answer until all five requests are in, so that five
        // connections are open at once.
        let barrier = Arc::new(Barrier::new(5));
        let origin = RawOrigin::start(move |mut stream, _| {
            let barrier = barrier.clone();
            async move {
                let mut first = true;
                while read_head(&mut stream).await.is_some() {
                    if first {
                        barrier.wait().await;
                        first = false;
                    }
                    stream.write_all(OK).await.unwrap();
                }
            }
        })
        .await;
        let client = Arc::new(plain(2));
        let peer = authority(origin.addr);
        let mut requests = JoinSet::new();
        for _ in 0..5 {
            let (client, peer) = (client.clone(), peer.clone());
            requests.spawn(async move { fetch(&client, &peer, "/").await });
        }
        while let Some(done) = requests.join_next().await {
            assert_eq!(done.unwrap().0, StatusCode::OK);
        }
        assert_eq!(origin.accepted(), 5);
        assert_eq!(client.idle_count(), 2);
        // The two kept are used again; no new connection is needed.
        for _ in 0..4 {
            assert_eq!(fetch(&client, &peer, "/").await.0, StatusCode::OK);
        }
        assert_eq!(origin.accepted(), 5);
    })
    .await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout_without_another_request() {
    bounded(async {
        let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
        let origin = RawOrigin::start(move |mut stream, _| {
            let closed_tx = closed_tx.clone();
            async move {
                read_head(&mut stream).await.unwrap();
                stream.write_all(OK).await.unwrap();
                let answered = Instant::now();
                // The client never sends again: the next read sees its close.
                let mut rest = [0u8; 64];
                let read = stream.read(&mut rest).await.unwrap_or(0);
                closed_tx.send((read, answered.elapsed())).unwrap();
            }
        })
        .await;
        let idle_timeout = Duration::from_millis(300);
        let client = Client::new(UpstreamScheme::Http, settings(4, idle_timeout));
        let peer = authority(origin.addr);
        assert_eq!(fetch(&client, &peer, "/").await.0, StatusCode::OK);
        assert_eq!(client.idle_count(), 1);
        let (read, after) = closed_rx.recv().await.unwrap();
        assert_eq!(read, 0, "the origin saw EOF");
        assert!(
            after >= idle_timeout - Duration::from_millis(50) && after < Duration::from_secs(3),
            "closed after {after:?}"
        );
        assert_eq!(client.idle_count(), 0);
        // The client is still there: it closed the connection on its own.
        drop(client);
    })
    .await;
}

#[tokio::test]
async fn an_upstream_that_closes_after_each_response_causes_no_error() {
    bounded(async {
        // Without `Connection: close`: the client learns of the close only from the socket,
        // sometimes only when its next request cannot be written.
        let origin = RawOrigin::start(|mut stream, _| async move {
            read_head(&mut stream).await.unwrap();
            stream.write_all(OK).await.unwrap();
        })
        .await;
        let client = plain(4);
        let peer = authority(origin.addr);
        for _ in 0..50 {
            assert_eq!(
                fetch(&client, &peer, "/").await,
                (StatusCode::OK, "ok".into())
            );
        }
        assert_eq!(origin.accepted(), 50);
    })
    .await;
}

#[tokio::test]
async fn a_connection_close_response_is_not_reused() {
    bounded(async {
        let origin = RawOrigin::start(|mut stream, _| async move {
            read_head(&mut stream).await.unwrap();
            let answer = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
            stream.write_all(answer).await.unwrap();
            // The connection stays open on this side: the client must not reuse it.
            tokio::time::sleep(LIMIT).await;
        })
        .await;
        let client = plain(4);
        let peer = authority(origin.addr);
        for _ in 0..3 {
            assert_eq!(fetch(&client, &peer, "/").await.0, StatusCode::OK);
        }
        assert_eq!(origin.accepted(), 3);
    })
    .await;
}

#[tokio::test]
async fn a_response_body_dropped_half_way_does_not_return_its_connection() {
    bounded(async {
        let origin = RawOrigin::start(|mut stream, _| async move {
            while read_head(&mut stream).await.is_some() {
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n";
                stream.write_all(head).await.unwrap();
                stream.write_all(b"half").await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
                if stream.write_all(b"rest").await.is_err() {
                    return;
                }
            }
        })
        .await;
        let client = plain(4);
        let peer = authority(origin.addr);
        let response = client.send(&peer, get("/")).await.unwrap();
        let mut body = response.into_body();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "half");
        drop(body);
        assert_eq!(client.idle_count(), 0);
        assert_eq!(fetch(&client, &peer, "/").await.1, "halfrest");
        assert_eq!(origin.accepted(), 2);
        // Read to its end, the second one went back.
        assert_eq!(client.idle_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_response_without_a_body_returns_its_connection_at_once() {
    bounded(async {
        let origin = RawOrigin::start(|mut stream, _| async move {
            while let Some(head) = read_head(&mut stream).await {
                let answer: &[u8] = if head.starts_with("HEAD") {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
                } else {
                    b"HTTP/1.1 204 No Content\r\n\r\n"
                };
                stream.write_all(answer).await.unwrap();
            }
        })
        .await;
        let client = plain(4);
        let peer = authority(origin.addr);
        let head = Request::head("/").body(Empty::new()).unwrap();
        let response = client.send(&peer, head).await.unwrap();
        assert!(response.body().is_end_stream());
        // The body is neither read nor dropped: the connection is idle already.
        assert_eq!(client.idle_count(), 1);
        let no_content = client.send(&peer, get("/")).await.unwrap();
        assert_eq!(no_content.status(), StatusCode::NO_CONTENT);
        assert_eq!(client.idle_count(), 1);
        assert_eq!(origin.accepted(), 1);
        drop((response, no_content));
    })
    .await;
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_naming_the_peer() {
    bounded(async {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let client = plain(2);
        let error = client.send(&authority(addr), get("/")).await.unwrap_err();
        assert!(error.is_connect(), "{error:?}");
        assert!(matches!(error, SendError::Connect { .. }), "{error:?}");
        assert_eq!(error.peer().as_str(), addr.to_string());
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("connecting to {addr}: ")),
            "{text}"
        );
        assert!(text.to_lowercase().contains("refused"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn a_tls_handshake_that_never_completes_times_out_as_a_connect_error() {
    bounded(async {
        // Accepts the TCP connection and never answers the ClientHello.
        let origin = RawOrigin::start(|stream, _| async move {
            tokio::time::sleep(LIMIT).await;
            drop(stream);
        })
        .await;
        let fixture = TlsFixture::new(&["127.0.0.1"]);
        let timeout = Duration::from_millis(300);
        let client = Client::new(
            fixture.scheme(None),
            ClientSettings {
                connect_timeout: timeout,
                max_idle_per_peer: 2,
                idle_timeout: Duration::from_secs(60),
            },
        );
        let started = Instant::now();
        let error = client
            .send(&authority(origin.addr), get("/"))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(error.is_connect(), "{error:?}");
        assert!(
            matches!(error, SendError::ConnectTimeout { .. }),
            "{error:?}"
        );
        assert!(took >= timeout && took < Duration::from_secs(2), "{took:?}");
        assert_eq!(
            error.to_string(),
            format!("connecting to {} timed out after 300 ms", origin.addr)
        );
    })
    .await;
}

/// A self-signed certificate for some names, and the server and client configs for it.
struct TlsFixture {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl TlsFixture {
    fn new(names: &[&str]) -> Self {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names).unwrap();
        Self {
            cert: certified.cert.der().clone(),
            key: certified.signing_key.serialize_der(),
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn scheme(&self, server_name: Option<&str>) -> UpstreamScheme {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        UpstreamScheme::Https {
            config: Box::new(config),
            server_name: server_name.map(|name| ServerName::try_from(name.to_owned()).unwrap()),
        }
    }

    /// A TLS origin answering `ok`, offering h2 and http/1.1 by ALPN; it reports the
    /// protocol each connection agreed on.
    async fn origin(&self) -> (RawOrigin, mpsc::UnboundedReceiver<Option<Vec<u8>>>) {
        let mut config = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone())),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (alpn_tx, alpn_rx) = mpsc::unbounded_channel();
        let origin = RawOrigin::start(move |stream, _| {
            let (acceptor, alpn_tx) = (acceptor.clone(), alpn_tx.clone());
            async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = alpn_tx.send(stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
                let service = service_fn(|_request: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        })
        .await;
        (origin, alpn_rx)
    }
}

#[tokio::test]
async fn a_tls_upstream_is_verified_by_its_ip_address_and_reused_without_alpn() {
    bounded(async {
        let fixture = TlsFixture::new(&["127.0.0.1"]);
        let (origin, mut alpn) = fixture.origin().await;
        let client = Client::new(fixture.scheme(None), settings(2, Duration::from_secs(60)));
        assert_eq!(client.scheme(), "https");
        let peer = authority(origin.addr);
        for _ in 0..2 {
            assert_eq!(
                fetch(&client, &peer, "/").await,
                (StatusCode::OK, "ok".into())
            );
        }
        assert_eq!(origin.accepted(), 1);
        // No protocol was offered, so the origin could not pick h2.
        assert_eq!(alpn.recv().await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_fixed_server_name_is_verified_instead_of_the_peer_host() {
    bounded(async {
        let fixture = TlsFixture::new(&["upstream.test"]);
        let (origin, _alpn) = fixture.origin().await;
        let peer = authority(origin.addr);

        let named = Client::new(
            fixture.scheme(Some("upstream.test")),
            settings(2, Duration::from_secs(60)),
        );
        assert_eq!(fetch(&named, &peer, "/").await.0, StatusCode::OK);

        for wrong in [Some("other.test"), None] {
            let client = Client::new(fixture.scheme(wrong), settings(2, Duration::from_secs(60)));
            let error = client.send(&peer, get("/")).await.unwrap_err();
            assert!(error.is_connect(), "{error:?}");
            assert!(matches!(error, SendError::Tls { .. }), "{error:?}");
            let text = error.to_string();
            assert!(
                text.starts_with(&format!("TLS handshake with {}: ", origin.addr)),
                "{text}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_wire_gets_origin_form_and_a_host_header_when_the_request_has_none() {
    bounded(async {
        let (heads_tx, mut heads) = mpsc::unbounded_channel();
        let origin = RawOrigin::start(move |mut stream, _| {
            let heads_tx = heads_tx.clone();
            async move {
                while let Some(head) = read_head(&mut stream).await {
                    heads_tx.send(head).unwrap();
                    stream.write_all(OK).await.unwrap();
                }
            }
        })
        .await;
        let client = plain(2);
        let peer = authority(origin.addr);

        fetch(&client, &peer, "/a/b?c=1").await;
        let head = heads.recv().await.unwrap();
        let lines: Vec<&str> = head.lines().collect();
        assert_eq!(lines[0], "GET /a/b?c=1 HTTP/1.1");
        assert!(
            lines.contains(&format!("host: {}", origin.addr).as_str()),
            "{head}"
        );

        // An absolute URI is cut to origin form; a Host header the request has is kept.
        let request = Request::get("http://elsewhere.test/x?y")
            .header(http::header::HOST, "app.test")
            .body(Empty::new())
            .unwrap();
        let response = client.send(&peer, request).await.unwrap();
        response.into_body().collect().await.unwrap();
        let head = heads.recv().await.unwrap();
        let lines: Vec<&str> = head.lines().collect();
        assert_eq!(lines[0], "GET /x?y HTTP/1.1");
        assert_eq!(
            lines
                .iter()
                .filter(|line| line.starts_with("host:"))
                .count(),
            1,
            "{head}"
        );
        assert!(lines.contains(&"host: app.test"), "{head}");
    })
    .await;
}

#[tokio::test]
async fn an_upgrade_hands_over_a_working_connection_that_is_never_pooled() {
    bounded(async {
        let origin = RawOrigin::start(|stream, _| async move {
            let service = service_fn(|mut request: Request<hyper::body::Incoming>| async move {
                let upgrade = hyper::upgrade::on(&mut request);
                tokio::spawn(async move {
                    let mut io = TokioIo::new(upgrade.await.unwrap());
                    let mut buffer = [0u8; 4];
                    io.read_exact(&mut buffer).await.unwrap();
                    io.write_all(&buffer).await.unwrap();
                });
                let response = Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "echo")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                Ok::<_, Infallible>(response)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        })
        .await;
        let client = plain(2);
        let peer = authority(origin.addr);
        let request = Request::get("/echo")
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Empty::new())
            .unwrap();
        let mut response = client.send(&peer, request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let mut io = TokioIo::new(hyper::upgrade::on(&mut response).await.unwrap());
        io.write_all(b"ping").await.unwrap();
        let mut echoed = [0u8; 4];
        io.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ping");
        assert_eq!(client.idle_count(), 0);
        // The next request needs a connection of its own.
        let request = Request::get("/echo")
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Empty::new())
            .unwrap();
        let response = client.send(&peer, request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(origin.accepted(), 2);
    })
    .await;
}

/// The race behind the retry of stale connections, made to happen every time: the
/// connection looks open and ready when the request is queued on it, and its driver learns
/// of the close (before writing the request) only afterwards.
#[tokio::test]
async fn a_request_queued_on_a_connection_closed_meanwhile_goes_out_on_a_new_one() {
    bounded(async {
        use std::io::{Read as _, Write as _};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (side_far, side_near) = std::os::unix::net::UnixStream::pair().unwrap();
        side_near.set_nonblocking(true).unwrap();
        let mut side = tokio::net::UnixStream::from_std(side_near).unwrap();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (closed_tx, closed_rx) = std::sync::mpsc::channel::<()>();
        // A blocking origin on its own thread, so that it acts while the test's runtime is
        // blocked and cannot see it.
        let origin = std::thread::spawn(move || {
            let mut side_far = side_far;
            let read_head = |stream: &mut std::net::TcpStream| {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).unwrap() == 0 {
                        return false;
                    }
                    head.push(byte[0]);
                }
                true
            };
            let (mut first, _) = listener.accept().unwrap();
            assert!(read_head(&mut first));
            first.write_all(OK).unwrap();
            go_rx.recv().unwrap();
            // The side byte becomes readable before the close: the runtime wakes the test
            // before the connection's driver.
            side_far.write_all(b"x").unwrap();
            drop(first);
            closed_tx.send(()).unwrap();
            let (mut second, _) = listener.accept().unwrap();
            assert!(read_head(&mut second));
            second.write_all(OK).unwrap();
            let mut rest = Vec::new();
            let _ = second.read_to_end(&mut rest);
        });

        let client = plain(2);
        let peer = authority(addr);
        assert_eq!(fetch(&client, &peer, "/").await.0, StatusCode::OK);
        assert_eq!(client.idle_count(), 1);
        // Let the connection's driver settle into waiting for the next request.
        tokio::time::sleep(Duration::from_millis(50)).await;
        go_tx.send(()).unwrap();
        // Block the runtime (not just this task) until the origin has closed: on loopback
        // the close has reached this side by then, unseen by the runtime.
        closed_rx.recv().unwrap();
        let mut byte = [0u8; 1];
        side.read_exact(&mut byte).await.unwrap();
        assert_eq!(
            fetch(&client, &peer, "/").await,
            (StatusCode::OK, "ok".into())
        );
        drop(client);
        tokio::task::spawn_blocking(move || origin.join().unwrap())
            .await
            .unwrap();
    })
    .await;
}

#[test]
fn every_send_error_is_the_upstreams_says_whether_it_came_before_sending_and_names_its_peer() {
    let peer: Authority = "10.0.0.1:8080".parse().unwrap();
    let io = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let boxed = || -> crate::BoxError { Box::new(io()) };
    let cases = [
        (
            SendError::Resolve {
                peer: peer.clone(),
                source: io(),
            },
            true,
            "resolving 10.0.0.1:8080: connection refused",
        ),
        (
            SendError::Connect {
                peer: peer.clone(),
                source: io(),
            },
            true,
            "connecting to 10.0.0.1:8080: connection refused",
        ),
        (
            SendError::ConnectTimeout {
                peer: peer.clone(),
                timeout: Duration::from_secs(5),
            },
            true,
            "connecting to 10.0.0.1:8080 timed out after 5 s",
        ),
        (
            SendError::ServerName {
                peer: peer.clone(),
                source: ServerName::try_from("bad name!").unwrap_err(),
            },
            true,
            "TLS server name for 10.0.0.1:8080: invalid dns name",
        ),
        (
            SendError::Tls {
                peer: peer.clone(),
                source: io(),
            },
            true,
            "TLS handshake with 10.0.0.1:8080: connection refused",
        ),
        (
            SendError::NotSent {
                peer: peer.clone(),
                source: boxed(),
            },
            true,
            "10.0.0.1:8080 closed a new connection before the request was sent",
        ),
        (
            SendError::Closed {
                peer: peer.clone(),
                source: boxed(),
            },
            false,
            "10.0.0.1:8080 closed the connection before answering",
        ),
        (
            SendError::Exchange {
                peer: peer.clone(),
                source: boxed(),
            },
            false,
            "exchange with 10.0.0.1:8080 failed: connection refused",
        ),
    ];
    for (error, before_sending, text) in cases {
        assert_eq!(error.is_connect(), before_sending, "{error:?}");
        assert_eq!(error.side(), crate::Side::Upstream);
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(error.peer(), &peer);
        assert_eq!(error.to_string(), text);
    }
}

/// A request body fed by the test, or none.
struct Upload(Option<mpsc::Receiver<Bytes>>);

impl http_body::Body for Upload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        match &mut self.0 {
            Some(chunks) => chunks
                .poll_recv(cx)
                .map(|chunk| chunk.map(|chunk| Ok(http_body::Frame::data(chunk)))),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

#[tokio::test]
async fn a_connection_still_uploading_a_body_the_peer_answered_early_does_not_hold_up_the_next_request()
 {
    bounded(async {
        // The origin answers as soon as it has a request head, without reading its body.
        let origin = RawOrigin::start(|mut stream, _| async move {
            while read_head(&mut stream).await.is_some() {
                stream.write_all(OK).await.unwrap();
            }
        })
        .await;
        let client = UpstreamClient::<Upload>::new(
            UpstreamScheme::Http,
            settings(2, Duration::from_secs(60)),
        );
        let peer = authority(origin.addr);
        let (upload, chunks) = mpsc::channel(1);
        let request = Request::post("/upload")
            .header("content-length", "1000000")
            .body(Upload(Some(chunks)))
            .unwrap();
        let response = client.send(&peer, request).await.unwrap();
        upload.send(Bytes::from_static(b"some")).await.unwrap();
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "ok"
        );
        // The upload goes on; the next request does not wait for its end.
        let started = Instant::now();
        let request = Request::get("/").body(Upload(None)).unwrap();
        let response = client.send(&peer, request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(origin.accepted(), 2);
        drop(upload);
    })
    .await;
}

/// As with gangway's workers (threads with a current-thread runtime each, sharing one
/// client): a request takes an idle connection opened on its own thread, where its driver
/// runs, over a more recently idle one from another thread.
#[test]
fn a_checkout_prefers_an_idle_connection_opened_on_its_own_thread() {
    let origin_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Answers after 100 ms with the port the request came from: the connection's identity.
    let addr = origin_runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, from)) = listener.accept().await {
                tokio::spawn(async move {
                    let service =
                        service_fn(move |_request: Request<hyper::body::Incoming>| async move {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            let port = Bytes::from(from.port().to_string());
                            Ok::<_, Infallible>(Response::new(Full::new(port)))
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    });
    let client = Arc::new(plain(8));
    let peer = authority(addr);
    // An async barrier: each thread keeps its runtime, and so the drivers of the
    // connections opened on it, running while it waits for the other.
    let rounds = Arc::new(tokio::sync::Barrier::new(2));
    let workers: Vec<_> = [Duration::ZERO, Duration::from_millis(50)]
        .into_iter()
        .map(|lag| {
            let (client, peer, rounds) = (client.clone(), peer.clone(), rounds.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(bounded(async {
                    let mut ports = Vec::new();
                    for _ in 0..4 {
                        rounds.wait().await;
                        // The lagging thread asks second and gives its connection back
                        // last, so its connection is the most recently idle when the other
                        // one asks.
                        tokio::time::sleep(lag).await;
                        ports.push(fetch(&client, &peer, "/").await.1);
                    }
                    // Both stay until both are done: a connection may be driven here.
                    rounds.wait().await;
                    ports
                }))
            })
        })
        .collect();
    let ports: Vec<Vec<Bytes>> = workers
        .into_iter()
        .map(|worker| worker.join().unwrap())
        .collect();
    for own in &ports {
        assert!(own.iter().all(|port| *port == own[0]), "{ports:?}");
    }
    assert_ne!(ports[0][0], ports[1][0]);
}
