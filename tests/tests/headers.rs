//! Header operations through the engine: what a client sends versus what the upstream
//! receives, forwarding headers, Location rewriting, and injection attempts.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::Proxy;
use gangway_e2e::clients::{http1_request, raw_exchange};
use gangway_e2e::origins::{RecordingOrigin, refused_addr};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// The estos UCServer guide's nginx headers, written as gangway operations.
fn estos(origin: SocketAddr, extra_listener: &str) -> String {
    format!(
        r#"
[[upstream]]
name = "ucserver"
peers = ["http://{origin}"]
connect_timeout = "1s"

[[listener]]
address = "127.0.0.1:0"
{extra_listener}
request_headers = {{ set = {{ "X-NginX-Proxy" = "true", "X-SSL-CERT" = "$ssl_client_escaped_cert" }} }}
response_headers = {{ set = {{ "Strict-Transport-Security" = "max-age=63072000" }}, always = ["Strict-Transport-Security"] }}

[[listener.route]]
path = "/"
proxy = "ucserver"
"#
    )
}

#[tokio::test]
async fn forged_identity_and_forwarding_headers_never_reach_the_upstream() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&estos(origin.addr(), "trusted_proxies = [\"10.0.0.0/8\"]")).await;
    let request = http::Request::get("/ucws/login?x=1")
        .header("host", "uc.example.com")
        .header("x-ssl-cert", "-----BEGIN%20CERTIFICATE-----forged")
        .header("x-ssl-client-s-dn", "CN=admin")
        .header("x-real-ip", "6.6.6.6")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=6.6.6.6")
        .header("x-nginx-proxy", "false")
        .header("user-agent", "ProCall/8")
        .body(Full::default())
        .unwrap();
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, request).await;
    assert_eq!(response.status(), 200);

    // What the guide's nginx sends: the client's own headers, Host kept, and exactly these.
    let seen = &origin.requests()[0];
    let mut names: Vec<&str> = seen.headers.keys().map(|name| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "host",
            "user-agent",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-nginx-proxy",
            "x-real-ip"
        ],
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.headers["host"], "uc.example.com");
    assert_eq!(seen.headers["x-real-ip"], "127.0.0.1");
    // 127.0.0.1 is not a trusted proxy: its X-Forwarded-For is replaced, not appended to.
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-nginx-proxy"], "true");
    assert_eq!(seen.headers.get_all("x-nginx-proxy").iter().count(), 1);
    // No verified client certificate on this listener: the header is not sent at all.
    assert!(!seen.headers.contains_key("x-ssl-cert"));
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=63072000"
    );
}

#[tokio::test]
async fn a_trusted_proxy_keeps_its_forwarded_for_list() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&estos(origin.addr(), "trusted_proxies = [\"127.0.0.0/8\"]")).await;
    let request = http::Request::get("/")
        .header("host", "uc.example.com")
        .header("x-forwarded-for", "203.0.113.5")
        .body(Full::default())
        .unwrap();
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(http1_request(stream, request).await.status(), 200);
    assert_eq!(
        origin.requests()[0].headers["x-forwarded-for"],
        "203.0.113.5, 127.0.0.1"
    );
}

#[tokio::test]
async fn always_response_headers_are_on_the_proxys_own_errors_too() {
    let proxy = Proxy::start(&estos(refused_addr(), "")).await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let request = http::Request::get("/")
        .header("host", "uc.example.com")
        .body(Full::default())
        .unwrap();
    let response = http1_request(stream, request).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=63072000"
    );
}

/// An origin that redirects every request to the location made from its own address.
async fn redirecting_origin(location: impl Fn(SocketAddr) -> String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let location: &'static str = Box::leak(location(address).into_boxed_str());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |_request| async move {
                    let response = http::Response::builder()
                        .status(302)
                        .header("location", location)
                        .header("set-cookie", "sid=1; Domain=internal.local; Path=/app/")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

async fn location_through(origin: SocketAddr, route_extra: &str) -> (String, String) {
    let proxy = Proxy::start(&format!(
        r#"
[[upstream]]
name = "app"
peers = ["http://{origin}"]

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/"
proxy = "app"
{route_extra}
"#
    ))
    .await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let request = http::Request::get("/x")
        .header("host", "files.example.com")
        .body(Full::default())
        .unwrap();
    let response = http1_request(stream, request).await;
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    (location, cookie)
}

#[tokio::test]
async fn upstream_redirects_are_rewritten_to_the_public_url_when_configured() {
    let origin = redirecting_origin(|_| "http://10.0.0.1:8080/x?y=1".to_owned()).await;
    let (location, cookie) = location_through(
        origin,
        "location_rewrite = [[\"http://10.0.0.1:8080/\", \"$scheme://$host/\"]]\n\
         cookie_domain = [[\"internal.local\", \"$host\"]]",
    )
    .await;
    assert_eq!(location, "http://files.example.com/x?y=1");
    assert_eq!(cookie, "sid=1; Domain=files.example.com; Path=/app/");

    let (location, cookie) = location_through(origin, "location_rewrite = \"off\"").await;
    assert_eq!(
        location, "http://10.0.0.1:8080/x?y=1",
        "off leaves it untouched"
    );
    assert_eq!(cookie, "sid=1; Domain=internal.local; Path=/app/");
}

#[tokio::test]
async fn the_default_location_rewrite_replaces_the_peers_own_url() {
    let origin = redirecting_origin(|own| format!("http://{own}/next?step=2")).await;
    let (rewritten, _) = location_through(origin, "location_rewrite = \"default\"").await;
    assert_eq!(rewritten, "http://files.example.com/next?step=2");
    let elsewhere = redirecting_origin(|_| "http://other.example/next".to_owned()).await;
    let (untouched, _) = location_through(elsewhere, "location_rewrite = \"default\"").await;
    assert_eq!(
        untouched, "http://other.example/next",
        "only the peer's own URL is rewritten"
    );
}

#[tokio::test]
async fn variables_cannot_split_a_header() {
    let origin = RecordingOrigin::start().await;
    let proxy = setting_request_headers(
        &origin,
        r#""X-Original-URI" = "$request_uri", "X-Copied" = "$http_x_odd", "X-Encoded" = "$http_x_enc""#,
    )
    .await;
    let request = b"GET /a%0d%0aX-Injected:%20yes HTTP/1.1\r\nhost: app.test\r\n\
x-odd: caf\xc3\xa9 \x80\xff end\r\nx-enc: a%0d%0aX-Injected: yes\r\nconnection: close\r\n\r\n";
    let answer = raw_exchange(proxy.addr(), request, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200 "));
    let seen = &origin.requests()[0];
    assert!(!seen.headers.contains_key("x-injected"));
    assert_eq!(seen.headers["x-original-uri"], "/a%0d%0aX-Injected:%20yes");
    // Bytes outside visible ASCII are not copied into a new header at all.
    assert!(!seen.headers.contains_key("x-copied"));
    // Percent-encoded CR/LF stay text.
    assert_eq!(seen.headers["x-encoded"], "a%0d%0aX-Injected: yes");
}

#[tokio::test]
async fn cookie_and_query_argument_variables_reach_the_upstream() {
    let origin = RecordingOrigin::start().await;
    let proxy = setting_request_headers(
        &origin,
        r#""X-Session" = "$cookie_JSESSIONID", "X-Page" = "$arg_page", "X-Missing" = "[$cookie_none$arg_none]""#,
    )
    .await;
    let request = b"GET /list?Page=3&sort=a HTTP/1.1\r\nhost: app.test\r\n\
cookie: theme=dark; JSESSIONID=abc.node2\r\nconnection: close\r\n\r\n";
    let answer = raw_exchange(proxy.addr(), request, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200 "));
    let seen = &origin.requests()[0];
    assert_eq!(seen.headers["x-session"], "abc.node2");
    assert_eq!(seen.headers["x-page"], "3");
    assert_eq!(seen.headers["x-missing"], "[]");
}

/// A proxy in front of `origin` whose listener sets the request headers `sets` (the inside
/// of a TOML inline table).
async fn setting_request_headers(origin: &RecordingOrigin, sets: &str) -> Proxy {
    Proxy::start(&format!(
        r#"
[[upstream]]
name = "app"
peers = ["http://{}"]

[[listener]]
address = "127.0.0.1:0"
request_headers = {{ set = {{ {sets} }} }}

[[listener.route]]
path = "/"
proxy = "app"
"#,
        origin.addr()
    ))
    .await
}
