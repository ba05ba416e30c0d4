//! Requests through plain and TLS listeners to real loopback upstreams: methods, HTTP/2,
//! headers, redirects, keep-alive.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{Proxy, get};
use gangway_e2e::certs::{TempDir, TestCa, write_pem_files};
use gangway_e2e::clients::{http1_request, http2_request, tls_client_config, tls_connect};
use gangway_e2e::origins::RecordingOrigin;
use http_body_util::Full;
use tokio::net::TcpStream;

fn plain_config(origin: std::net::SocketAddr) -> String {
    format!(
        r#"
[[upstream]]
name = "app"
peers = ["http://{origin}"]

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/"
proxy = "app"
"#
    )
}

#[tokio::test]
async fn get_and_post_pass_through_a_plain_listener() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&plain_config(origin.addr())).await;

    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, get("/hello?x=1")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "ok");

    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let post = http::Request::post("/submit")
        .header("host", "app.test")
        .body(Full::new(Bytes::from_static(b"name=value")))
        .unwrap();
    let response = http1_request(stream, post).await;
    assert_eq!(response.status(), 200);

    let seen = origin.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].uri.to_string().as_str()),
        ("GET", "/hello?x=1")
    );
    assert_eq!(
        seen[0].headers["host"], "app.test",
        "the client's Host is preserved"
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].uri.path()),
        ("POST", "/submit")
    );
    assert_eq!(seen[1].body.as_ref(), b"name=value");
}

#[tokio::test]
async fn tls_listener_serves_http1_and_http2_clients_to_an_http1_upstream() {
    let origin = RecordingOrigin::start().await;
    let ca = TestCa::new("gangway test CA");
    let dir = TempDir::new("tls");
    let (cert, key) = write_pem_files(dir.path(), &ca.issue_server(&["app.test"]));
    let toml = format!(
        r#"
[[upstream]]
name = "app"
peers = ["http://{origin}"]

[[listener]]
address = "127.0.0.1:0"
certificate = {cert:?}
private_key = {key:?}

[[listener.route]]
path = "/"
proxy = "app"
"#,
        origin = origin.addr()
    );
    let proxy = Proxy::start_in(dir, &toml).await;

    let h1 = tls_client_config(&ca.pem(), &[b"http/1.1"]);
    let stream = tls_connect(proxy.addr(), "app.test", h1).await;
    let response = http1_request(stream, get("/one")).await;
    assert_eq!(response.status(), 200);

    let h2 = tls_client_config(&ca.pem(), &[b"h2"]);
    let stream = tls_connect(proxy.addr(), "app.test", h2).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let request = http::Request::post("https://app.test/two?q=2")
        .body(Full::new(Bytes::from_static(b"over h2")))
        .unwrap();
    let response = http2_request(stream, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);

    let seen = origin.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].uri.path(), "/one");
    assert_eq!(seen[0].headers["x-forwarded-proto"], "https");
    assert_eq!(
        seen[1].uri.to_string(),
        "/two?q=2",
        "origin-form towards the HTTP/1.1 upstream"
    );
    assert_eq!(
        seen[1].headers["host"], "app.test",
        ":authority becomes Host"
    );
    assert_eq!(seen[1].body.as_ref(), b"over h2");
}

#[tokio::test]
async fn hop_by_hop_headers_never_reach_the_upstream_and_forwarding_is_appended() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&plain_config(origin.addr())).await;
    let request = http::Request::get("/h")
        .header("host", "app.test")
        .header("connection", "keep-alive, x-private-hop")
        .header("x-private-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("upgrade", "h2c")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-real-ip", "6.6.6.6")
        .header("x-end-to-end", "kept")
        .body(Full::default())
        .unwrap();
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, request).await;
    assert_eq!(response.status(), 200);

    let seen = &origin.requests()[0];
    for name in [
        "x-private-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        assert!(
            !seen.headers.contains_key(name),
            "{name} reached the upstream"
        );
    }
    // The upstream connection's own Connection header is the client library's business;
    // the client's listed names must not be in it.
    if let Some(connection) = seen.headers.get("connection") {
        assert!(!connection.to_str().unwrap().contains("x-private-hop"));
    }
    assert_eq!(seen.headers["x-end-to-end"], "kept");
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(
        seen.headers["x-real-ip"], "127.0.0.1",
        "a client's X-Real-IP is replaced"
    );
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn redirect_route_answers_301_to_https_with_host_and_uri() {
    let proxy = Proxy::start(
        r#"
[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/"
redirect = "301 https://$host$request_uri"
"#,
    )
    .await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let request = http::Request::get("/wums-app/index.html?lang=de")
        .header("host", "ums.example.com:8080")
        .body(Full::default())
        .unwrap();
    let response = http1_request(stream, request).await;
    assert_eq!(response.status(), 301);
    assert_eq!(
        response.headers()["location"],
        "https://ums.example.com/wums-app/index.html?lang=de"
    );
}

#[tokio::test]
async fn fixed_response_and_unknown_route() {
    let proxy = Proxy::start(
        r#"
[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/health"
respond = { status = 200, body = "healthy" }
"#,
    )
    .await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, get("/health")).await;
    assert_eq!(
        (response.status().as_u16(), response.body().as_ref()),
        (200, &b"healthy"[..])
    );
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, get("/elsewhere")).await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_thousand_sequential_requests_reuse_a_handful_of_upstream_connections() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&plain_config(origin.addr())).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    for index in 0..1000 {
        let uri = format!("http://{}/k/{index}", proxy.addr());
        let response = client
            .request(http::Request::get(uri).body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // Read the body so the connection returns to the client's pool.
        http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap();
    }
    assert_eq!(origin.requests().len(), 1000);
    let connections = origin.connections();
    assert!(
        connections <= 4,
        "1,000 requests opened {connections} upstream connections"
    );
}
