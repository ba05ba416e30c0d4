//! Upstream pools through the engine: sticky sessions, bybusyness, failover after a peer
//! dies or breaks a response off, active health checks, keep-alive reuse, ip_hash on the client address, direct
//! routing to a named node, and 502 when every peer is down.
//!
//! Every node is a real loopback HTTP/1.1 server that names itself in `x-node`; every
//! client is a real hyper client. Nothing sleeps as proof: what must happen eventually is
//! polled with a deadline, and every request has a timeout.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Proxy;
use futures_util::{SinkExt, StreamExt};
use gangway_e2e::clients::try_http1_request;
use gangway_e2e::origins::start_echo;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Each request through the proxy must be answered within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type NodeBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A loopback HTTP/1.1 server that answers `200 <name>` with `x-node: <name>`.
///
/// `/health` answers 200 or 503 as set by [`Node::set_healthy`] (not counted as a
/// request); a path starting with `/long` sends its head and a first line, then holds the
/// body open until the connection goes. Dropping the node closes its listener and every
/// connection it accepted.
struct Node {
    name: &'static str,
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Node {
    async fn start(name: &'static str) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(name, listener)
    }

    /// A node on `addr` again (a restarted peer), waiting until the port can be bound.
    async fn restart(name: &'static str, addr: SocketAddr) -> Node {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => return Self::serve(name, listener),
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("cannot bind {addr} again: {error}"),
            }
        }
    }

    fn serve(name: &'static str, listener: TcpListener) -> Node {
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
        let task = {
            let (accepts, requests, healthy) = (accepts.clone(), requests.clone(), healthy.clone());
            tokio::spawn(async move {
                // Owned by this task: aborting it closes every connection too.
                let mut connections = JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            accepts.fetch_add(1, Ordering::SeqCst);
                            let (requests, healthy) = (requests.clone(), healthy.clone());
                            let service = service_fn(move |request| {
                                answer(name, request, requests.clone(), healthy.clone())
                            });
                            connections.spawn(async move {
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                        Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    }
                }
            })
        };
        Node {
            name,
            addr,
            accepts,
            requests,
            healthy,
            task,
        }
    }

    fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn answer(
    name: &'static str,
    request: Request<Incoming>,
    requests: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
) -> Result<Response<NodeBody>, Infallible> {
    let path = request.uri().path();
    let (status, body) = if path == "/health" {
        let status = if healthy.load(Ordering::SeqCst) {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, Full::new(Bytes::from(name)).boxed())
    } else if path.starts_with("/broken") {
        // Promises more than it sends: the node's server ends the connection mid-body.
        requests.fetch_add(1, Ordering::SeqCst);
        // The first piece, then (once the head and it are out) the end, 993 bytes short.
        let body = futures_util::stream::unfold(true, move |first| async move {
            if first {
                return Some((Ok::<_, Infallible>(Frame::data(Bytes::from(name))), false));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        });
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(body)));
        response
            .headers_mut()
            .insert("content-length", http::HeaderValue::from_static("1000"));
        response
            .headers_mut()
            .insert("x-node", http::HeaderValue::from_static(name));
        return Ok(response);
    } else if path.starts_with("/long") {
        requests.fetch_add(1, Ordering::SeqCst);
        let first = futures_util::stream::once(async move {
            Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{name}\n"))))
        });
        let body = first.chain(futures_util::stream::pending());
        (StatusCode::OK, BodyExt::boxed(StreamBody::new(body)))
    } else {
        requests.fetch_add(1, Ordering::SeqCst);
        (StatusCode::OK, Full::new(Bytes::from(name)).boxed())
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("x-node", http::HeaderValue::from_static(name));
    Ok(response)
}

/// The proxy's answer to one GET on a fresh connection: status and the node that answered.
async fn get_from(proxy: &Proxy, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = Request::get(target).header("host", "app.test");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::<Bytes>::new()).unwrap();
    let exchange = async {
        let stream = TcpStream::connect(proxy.addr()).await.unwrap();
        try_http1_request(stream, request).await
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {target}: no answer within {REQUEST_TIMEOUT:?}"))
        .unwrap_or_else(|error| panic!("GET {target}: {error}"));
    let node = response
        .headers()
        .get("x-node")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    (response.status().as_u16(), node)
}

/// The node that answered a GET that must succeed.
async fn node_of(proxy: &Proxy, target: &str, headers: &[(&str, &str)]) -> String {
    let (status, node) = get_from(proxy, target, headers).await;
    assert_eq!(status, 200, "GET {target} {headers:?} answered by {node}");
    node
}

/// Sends GETs until `done` says yes about the answering node; fails the test when `within`
/// passes first.
async fn poll_until(proxy: &Proxy, within: Duration, mut done: impl FnMut(&str) -> bool) {
    let started = Instant::now();
    loop {
        let node = node_of(proxy, "/", &[]).await;
        if done(&node) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "the condition did not hold within {within:?} (last answer from {node})"
        );
        // Pacing between polls, not synchronisation: the condition is checked each time.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn peers(nodes: &[&Node], extra: &str) -> String {
    let entries: Vec<String> = nodes
        .iter()
        .map(|node| {
            format!(
                "    {{ url = \"http://{}\", route = \"{}\"{extra} }},",
                node.addr, node.name
            )
        })
        .collect();
    format!("[\n{}\n]", entries.join("\n"))
}

/// One upstream `cluster` of `nodes` (each peer with `peer_extra`), `upstream_extra` keys,
/// and one listener routing everything to it.
fn cluster(nodes: &[&Node], peer_extra: &str, upstream_extra: &str) -> String {
    format!(
        r#"
[[upstream]]
name = "cluster"
peers = {peers}
connect_timeout = "2s"
{upstream_extra}

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/"
proxy = "cluster"
"#,
        peers = peers(nodes, peer_extra)
    )
}

#[tokio::test]
async fn sticky_sessions_reach_the_named_node_and_fall_back_or_refuse_when_it_is_gone() {
    let (n1, n2, n3) = (
        Node::start("nodeID1").await,
        Node::start("nodeID2").await,
        Node::start("nodeID3").await,
    );
    let nodes = [&n1, &n2, &n3];
    let config = format!(
        r#"
[[upstream]]
name = "cluster"
peers = {peers}
sticky = ["rpcid", "JSESSIONID", "jsessionid"]
sticky_scolon_path_delim = true

[[upstream]]
name = "strict"
peers = {peers}
sticky = ["JSESSIONID"]
sticky_failover = false

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/"
proxy = "cluster"

[[listener.route]]
path = "/strict/"
proxy = "strict"
"#,
        peers = peers(&nodes, "")
    );
    let proxy = Proxy::start(&config).await;

    // The client sends the session as a cookie, a query parameter or a path parameter;
    // round robin alone would spread these six requests over all three nodes.
    for _ in 0..6 {
        let cookie = [("cookie", "theme=dark; JSESSIONID=abc.nodeID2")];
        assert_eq!(node_of(&proxy, "/app", &cookie).await, "nodeID2");
        assert_eq!(
            node_of(&proxy, "/list?x=1&jsessionid=abc.nodeID2", &[]).await,
            "nodeID2"
        );
        assert_eq!(
            node_of(&proxy, "/app;jsessionid=abc.nodeID2?x=1", &[]).await,
            "nodeID2"
        );
        let rpcid = [("cookie", "rpcid=77.nodeID3")];
        assert_eq!(node_of(&proxy, "/rpc", &rpcid).await, "nodeID3");
    }

    // A route no peer has is balanced.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        seen.insert(node_of(&proxy, "/", &[("cookie", "JSESSIONID=abc.nodeID9")]).await);
    }
    assert!(seen.len() >= 2, "an unknown route is balanced: {seen:?}");

    // The session's node dies: its requests go on to another node, with no error.
    drop(n3);
    for _ in 0..6 {
        let node = node_of(&proxy, "/", &[("cookie", "JSESSIONID=abc.nodeID3")]).await;
        assert!(node == "nodeID1" || node == "nodeID2", "{node}");
    }

    // Without failover (Apache nofailover) the same session gets 503, the first time (the
    // try fails) and later (the node is out).
    let session = [("cookie", "JSESSIONID=abc.nodeID3")];
    for _ in 0..2 {
        assert_eq!(get_from(&proxy, "/strict/x", &session).await.0, 503);
    }
    let live = [("cookie", "JSESSIONID=abc.nodeID1")];
    assert_eq!(node_of(&proxy, "/strict/x", &live).await, "nodeID1");
}

#[tokio::test]
async fn bybusyness_sends_new_requests_to_idle_peers_while_one_is_busy() {
    let (n1, n2, n3) = (
        Node::start("nodeID1").await,
        Node::start("nodeID2").await,
        Node::start("nodeID3").await,
    );
    let proxy = Proxy::start(&cluster(&[&n1, &n2, &n3], "", "balance = \"bybusyness\"")).await;

    // A long request: its head arrives, its body stays open, so it stays in flight.
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let long = Request::get("/long")
        .header("host", "app.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let mut long = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(long))
        .await
        .unwrap()
        .unwrap();
    let busy = long.headers()["x-node"].to_str().unwrap().to_owned();
    let first = tokio::time::timeout(REQUEST_TIMEOUT, long.body_mut().frame())
        .await
        .unwrap();
    assert!(first.is_some(), "the long response starts streaming");

    // Round robin would send every third of these to the busy node.
    for _ in 0..12 {
        let node = node_of(&proxy, "/", &[]).await;
        assert_ne!(node, busy, "a new request went to the busy node");
    }

    // The long response ends (the client goes away): the node is idle again and gets
    // requests.
    drop(long);
    drop(sender);
    connection.abort();
    poll_until(&proxy, Duration::from_secs(10), |node| node == busy).await;
}

#[tokio::test]
async fn a_dead_peer_is_skipped_without_client_errors_and_tried_again_after_fail_timeout() {
    let (n1, n2, n3) = (
        Node::start("nodeID1").await,
        Node::start("nodeID2").await,
        Node::start("nodeID3").await,
    );
    let proxy = Proxy::start(&cluster(
        &[&n1, &n2, &n3],
        ", max_fails = 1, fail_timeout = \"2s\"",
        "retry = { idempotent = true }",
    ))
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        seen.insert(node_of(&proxy, "/", &[]).await);
    }
    assert_eq!(seen.len(), 3, "round robin reaches every node: {seen:?}");

    let addr = n2.addr;
    let killed = Instant::now();
    drop(n2);
    // Round robin tries the dead node on its turn; the client never sees it.
    for _ in 0..12 {
        let node = node_of(&proxy, "/", &[]).await;
        assert_ne!(node, "nodeID2");
    }

    // Back on the same port: it gets requests again, once fail_timeout has passed since
    // it failed (which was after it was killed).
    let n2 = Node::restart("nodeID2", addr).await;
    poll_until(&proxy, Duration::from_secs(15), |node| node == "nodeID2").await;
    assert!(
        killed.elapsed() >= Duration::from_secs(2),
        "the dead node came back before fail_timeout: {:?}",
        killed.elapsed()
    );
    assert!(n2.requests() >= 1);
}

/// A peer whose response breaks off mid-body has failed, as one refusing the connection
/// has: with `max_fails = 1` it is out of the rotation for `fail_timeout`.
#[tokio::test]
async fn a_response_body_broken_off_by_the_peer_counts_towards_max_fails() {
    let (n1, n2) = (Node::start("nodeID1").await, Node::start("nodeID2").await);
    let proxy = Proxy::start(&cluster(
        &[&n1, &n2],
        ", max_fails = 1, fail_timeout = \"60s\"",
        "",
    ))
    .await;
    let request = Request::get("/broken")
        .header("host", "app.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("the head arrives");
    assert_eq!(response.status(), 200, "{:?}", response.headers());
    let broken = response.headers()["x-node"].to_str().unwrap().to_owned();
    let body = tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect()).await;
    assert!(
        matches!(body, Ok(Err(_))),
        "the client sees the body cut, not a complete one"
    );
    // Every later request goes to the other node.
    for _ in 0..6 {
        let node = node_of(&proxy, "/", &[]).await;
        assert_ne!(node, broken, "{broken} failed and is out for 60 s");
    }
    drop((n1, n2));
}

#[tokio::test]
async fn active_health_checks_take_a_failing_peer_out_and_bring_a_restarted_one_back() {
    let (n1, n2) = (Node::start("nodeID1").await, Node::start("nodeID2").await);
    let proxy = Proxy::start(&cluster(
        &[&n1, &n2],
        // Passive health alone would keep a failed peer out for a minute.
        ", max_fails = 1, fail_timeout = \"60s\"",
        "retry = { idempotent = true }\n\
         health_check = { path = \"/health\", interval = \"100ms\", timeout = \"1s\", rise = 2, fall = 1 }",
    ))
    .await;

    // nodeID2 still serves, but its health check fails: only the check can take it out.
    n2.set_healthy(false);
    let mut streak = 0;
    poll_until(&proxy, Duration::from_secs(10), |node| {
        streak = if node == "nodeID1" { streak + 1 } else { 0 };
        streak >= 10
    })
    .await;
    n2.set_healthy(true);
    poll_until(&proxy, Duration::from_secs(10), |node| node == "nodeID2").await;

    // nodeID2 dies and comes back on the same port: requests never fail meanwhile, and
    // the health check (not fail_timeout, a minute) brings it back.
    let addr = n2.addr;
    drop(n2);
    for _ in 0..6 {
        assert_eq!(node_of(&proxy, "/", &[]).await, "nodeID1");
    }
    let n2 = Node::restart("nodeID2", addr).await;
    poll_until(&proxy, Duration::from_secs(15), |node| node == "nodeID2").await;
    assert!(n2.requests() >= 1);
}

#[tokio::test]
async fn ten_thousand_requests_over_fifty_connections_reuse_upstream_connections() {
    const CONNECTIONS: usize = 50;
    const REQUESTS_EACH: usize = 200;
    const KEEPALIVE: usize = 100;
    let (n1, n2) = (Node::start("nodeID1").await, Node::start("nodeID2").await);
    let proxy = Proxy::start(&cluster(
        &[&n1, &n2],
        "",
        &format!("keepalive = {KEEPALIVE}"),
    ))
    .await;

    let started = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..CONNECTIONS {
        let addr = proxy.addr();
        clients.spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            for _ in 0..REQUESTS_EACH {
                let request = Request::get("/")
                    .header("host", "app.test")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
            }
        });
    }
    let all = async {
        while let Some(done) = clients.join_next().await {
            done.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(50), all)
        .await
        .expect("10,000 requests within 50 s");
    let elapsed = started.elapsed();

    assert_eq!(n1.requests() + n2.requests(), CONNECTIONS * REQUESTS_EACH);
    let accepts = n1.accepts() + n2.accepts();
    assert!(
        accepts <= KEEPALIVE + CONNECTIONS,
        "{accepts} upstream connections for {CONNECTIONS} concurrent clients and keepalive \
         {KEEPALIVE} ({elapsed:?})"
    );
}

#[tokio::test]
async fn ip_hash_places_the_client_address_where_nginx_would() {
    let (n1, n2, n3) = (
        Node::start("nodeID1").await,
        Node::start("nodeID2").await,
        Node::start("nodeID3").await,
    );
    let proxy = Proxy::start(&cluster(&[&n1, &n2, &n3], "", "balance = \"ip_hash\"")).await;

    // nginx: hash = 89, then hash = (hash * 113 + octet) % 6271 over the first three
    // octets of the client's IPv4 address, and hash % total weight picks the peer. A
    // proxy that did not pass the address would hash three zero bytes (nodeID2 here).
    let hash = [127u32, 0, 0]
        .iter()
        .fold(89u32, |hash, octet| (hash * 113 + octet) % 6271);
    let expected = ["nodeID1", "nodeID2", "nodeID3"][(hash % 3) as usize];
    assert_eq!(expected, "nodeID3");
    for _ in 0..6 {
        assert_eq!(node_of(&proxy, "/", &[]).await, expected);
    }
}

#[tokio::test]
async fn a_websocket_node_path_goes_to_that_node_only() {
    let (n1, n3) = (Node::start("nodeID1").await, Node::start("nodeID3").await);
    // nodeID2 is the only node that speaks WebSocket.
    let echo = start_echo().await;
    let config = format!(
        r#"
[[upstream]]
name = "cluster"
peers = [
    {{ url = "http://{n1}", route = "nodeID1" }},
    {{ url = "http://{n2}", route = "nodeID2" }},
    {{ url = "http://{n3}", route = "nodeID3" }},
]
retry = {{ idempotent = true }}

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "~ ^/websocket/(?<node>[^/]+)(/.*)?$"
proxy = "cluster"
rewrite = "/ws$2"
peer = "${{node}}"
websocket = true
"#,
        n1 = n1.addr,
        n2 = echo.local_addr(),
        n3 = n3.addr,
    );
    let proxy = Proxy::start(&config).await;

    for _ in 0..3 {
        assert_eq!(node_of(&proxy, "/websocket/nodeID1", &[]).await, "nodeID1");
        assert_eq!(
            node_of(&proxy, "/websocket/nodeID3/x", &[]).await,
            "nodeID3"
        );
    }

    // A WebSocket through the node path reaches the one node that can answer it.
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let url = format!("ws://{}/websocket/nodeID2", proxy.addr());
    let (mut socket, response) = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio_tungstenite::client_async(url, stream),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 101);
    socket
        .send(tungstenite_text("through nodeID2"))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(REQUEST_TIMEOUT, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "through nodeID2");
    drop(socket);

    // An unknown node, or a dead one, is 503: never another node.
    assert_eq!(
        get_from(&proxy, "/websocket/nodeID9", &[]).await,
        (503, "-".to_owned())
    );
    drop(n3);
    for _ in 0..2 {
        assert_eq!(
            get_from(&proxy, "/websocket/nodeID3", &[]).await,
            (503, "-".to_owned())
        );
    }
    assert_eq!(n1.requests(), 3);
}

fn tungstenite_text(text: &str) -> tokio_tungstenite::tungstenite::Message {
    tokio_tungstenite::tungstenite::Message::text(text)
}

#[tokio::test]
async fn every_peer_down_answers_502_quickly() {
    let (n1, n2) = (Node::start("nodeID1").await, Node::start("nodeID2").await);
    let proxy = Proxy::start(&cluster(&[&n1, &n2], ", fail_timeout = \"30s\"", "")).await;
    assert_eq!(get_from(&proxy, "/", &[]).await.0, 200);
    drop((n1, n2));
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(get_from(&proxy, "/", &[]).await.0, 502);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "502 took {:?}",
            started.elapsed()
        );
    }
}
