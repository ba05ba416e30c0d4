//! Route expressions through the engine: nginx precedence, path normalisation that cannot be
//! used to reach another route, rewrites with captures, host and method matching.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Proxy;
use gangway_e2e::clients::{http1_request, raw_exchange};
use gangway_e2e::origins::RecordingOrigin;
use http_body_util::Full;
use tokio::net::TcpStream;

/// Two upstreams, so each answer says which route chose it: `device` and `web`.
async fn igel_like() -> (Proxy, RecordingOrigin, RecordingOrigin) {
    let device = RecordingOrigin::start().await;
    let web = RecordingOrigin::start().await;
    let proxy = Proxy::start(&format!(
        r#"
[[upstream]]
name = "device"
peers = ["http://{device}"]

[[upstream]]
name = "web"
peers = ["http://{web}"]

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/"
proxy = "web"

[[listener.route]]
path = "~ ^/device-connector/device/(ws-connect|portforwarding)$"
proxy = "device"

[[listener.route]]
path = "^~ /device-connector/device/.well-known/est/"
proxy = "device"

[[listener.route]]
path = "~ ^/websocket/([^/]+)(/.*)?$"
proxy = "device"
rewrite = "/websocket$2"

[[listener.route]]
host = "*.mm-remote.example.com"
path = "/"
proxy = "device"

[[listener.route]]
path = "/admin/"
methods = ["GET", "HEAD"]
proxy = "device"
"#,
        device = device.addr(),
        web = web.addr()
    ))
    .await;
    (proxy, device, web)
}

async fn send(proxy: &Proxy, method: &str, host: &str, target: &str) -> u16 {
    let request =
        format!("{method} {target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    let answer = raw_exchange(proxy.addr(), request.as_bytes(), Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .get(9..12)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

#[tokio::test]
async fn each_path_reaches_the_route_nginx_would_choose_and_bypasses_are_refused() {
    let (proxy, device, web) = igel_like().await;
    // (target as sent, status, which upstream, path the upstream receives)
    let cases: [(&str, u16, &str, &str); 8] = [
        (
            "/device-connector/device/ws-connect",
            200,
            "device",
            "/device-connector/device/ws-connect",
        ),
        (
            "/device-connector/device/.well-known/est/simpleenroll",
            200,
            "device",
            "/device-connector/device/.well-known/est/simpleenroll",
        ),
        // A doubled slash matches the web route as sent, but an upstream that merges
        // slashes would read the device path: refused.
        ("/device-connector//device/ws-connect", 400, "", ""),
        // Unreserved characters are decoded for matching; the upstream gets the raw path.
        (
            "/device-connector/device/ws-%63onnect",
            200,
            "device",
            "/device-connector/device/ws-%63onnect",
        ),
        (
            "/wums-app/index.html;jsessionid=abc.node2?x=1",
            200,
            "web",
            "/wums-app/index.html;jsessionid=abc.node2?x=1",
        ),
        // Encoded dot segments that would land on the device route are refused.
        (
            "/device-connector/device/%2e%2e/device/ws-connect",
            400,
            "",
            "",
        ),
        ("/device-connector/x/../device/ws-connect", 400, "", ""),
        ("/device-connector/device%2Fws-connect", 400, "", ""),
    ];
    for (target, status, upstream, seen_path) in cases {
        let (device_before, web_before) = (device.requests().len(), web.requests().len());
        assert_eq!(
            send(&proxy, "GET", "ums.example.com", target).await,
            status,
            "{target}"
        );
        let (device_now, web_now) = (device.requests(), web.requests());
        match upstream {
            "device" => {
                assert_eq!(device_now.len(), device_before + 1, "{target}");
                assert_eq!(
                    device_now.last().unwrap().uri.to_string(),
                    seen_path,
                    "{target}"
                );
            }
            "web" => {
                assert_eq!(web_now.len(), web_before + 1, "{target}");
                assert_eq!(
                    web_now.last().unwrap().uri.to_string(),
                    seen_path,
                    "{target}"
                );
            }
            _ => assert_eq!(
                (device_now.len(), web_now.len()),
                (device_before, web_before),
                "{target}"
            ),
        }
    }
}

#[tokio::test]
async fn a_regex_rewrite_sends_the_captured_rest_and_keeps_the_query() {
    let (proxy, device, _web) = igel_like().await;
    assert_eq!(
        send(
            &proxy,
            "GET",
            "files.example.com",
            "/websocket/nodeID2/stream?x=1"
        )
        .await,
        200
    );
    assert_eq!(
        send(&proxy, "GET", "files.example.com", "/websocket/nodeID1").await,
        200
    );
    let seen: Vec<String> = device
        .requests()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(seen, ["/websocket/stream?x=1", "/websocket"]);
}

#[tokio::test]
async fn wildcard_hosts_and_method_filters_choose_routes() {
    let (proxy, device, web) = igel_like().await;
    assert_eq!(
        send(&proxy, "GET", "DEV-42.mm-remote.example.com", "/status").await,
        200
    );
    assert_eq!(
        device.requests().len(),
        1,
        "a wildcard host reaches its server"
    );
    assert_eq!(
        send(&proxy, "GET", "mm-remote.example.com", "/status").await,
        200
    );
    assert_eq!(
        web.requests().len(),
        1,
        "the bare domain is not covered by *."
    );
    assert_eq!(
        send(&proxy, "HEAD", "ums.example.com", "/admin/x").await,
        200
    );
    assert_eq!(device.requests().len(), 2);
    assert_eq!(
        send(&proxy, "POST", "ums.example.com", "/admin/x").await,
        200
    );
    assert_eq!(
        web.requests().len(),
        2,
        "POST is not in the route's methods: the / route"
    );
}

#[tokio::test]
async fn first_match_mode_takes_rules_in_order() {
    let early = RecordingOrigin::start().await;
    let late = RecordingOrigin::start().await;
    let proxy = Proxy::start(&format!(
        r#"
[[upstream]]
name = "early"
peers = ["http://{early}"]

[[upstream]]
name = "late"
peers = ["http://{late}"]

[[listener]]
address = "127.0.0.1:0"
match_mode = "first_match"

[[listener.route]]
path = "/app"
proxy = "early"

[[listener.route]]
path = "/app/special"
proxy = "late"
"#,
        early = early.addr(),
        late = late.addr()
    ))
    .await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let request = http::Request::get("/app/special/x")
        .header("host", "a")
        .body(Full::default())
        .unwrap();
    assert_eq!(http1_request(stream, request).await.status(), 200);
    assert_eq!(
        (early.requests().len(), late.requests().len()),
        (1, 0),
        "the first rule wins, not the longest"
    );
}
