//! The admin listener with real clients: `/metrics` parsed by a strict text-format parser
//! and compared with the requests the test made, `/healthz` and `/readyz` through a
//! drain, WebSocket tunnels listed and closed by route, and the bearer token.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::Proxy;
use futures_util::{SinkExt, StreamExt};
use gangway_e2e::clients::http1_request;
use gangway_e2e::origins::{RecordingOrigin, start_echo};
use http_body_util::Full;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// One sample: metric name and labels (sorted) to value.
type Samples = HashMap<(String, BTreeMap<String, String>), f64>;

/// Parses the Prometheus text format 0.0.4 strictly: every line is a `# HELP`, a
/// `# TYPE` or a sample; a family's `TYPE` comes before its samples and once; names and
/// label names have the allowed characters; label values are quoted with only `\\`, `\"`
/// and `\n` escapes; a sample's value is a float; every histogram's buckets are cumulative
/// and its `+Inf` bucket equals its `_count`.
fn parse_exposition(text: &str) -> Result<Samples, String> {
    fn valid_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Samples::new();
    let mut finished_families: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let at = |problem: &str| format!("line {}: {problem}: {line:?}", number + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !valid_name(name) {
                return Err(at("bad metric name"));
            }
            match keyword {
                "HELP" => {}
                "TYPE" => {
                    let kind = parts.next().unwrap_or("");
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at("unknown type"));
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(at("second TYPE for a family"));
                    }
                    if let Some(previous) = current.replace(name.to_owned()) {
                        finished_families.push(previous);
                    }
                }
                _ => return Err(at("unknown comment keyword")),
            }
            continue;
        }
        if line.is_empty() {
            return Err(at("empty line"));
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(index) => line.split_at(index),
            None => return Err(at("no value")),
        };
        if !valid_name(name) {
            return Err(at("bad metric name"));
        }
        let mut labels = BTreeMap::new();
        let rest = if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = inner.strip_prefix('}') {
                    break after;
                }
                let (label, after) = inner.split_once("=\"").ok_or_else(|| at("bad label"))?;
                if !valid_name(label) || label.starts_with("__") {
                    return Err(at("bad label name"));
                }
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        None => return Err(at("unterminated label value")),
                        Some((index, '"')) => break index,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return Err(at("bad escape")),
                        },
                        Some((_, c)) => value.push(c),
                    }
                };
                if labels.insert(label.to_owned(), value).is_some() {
                    return Err(at("label repeated"));
                }
                inner = &after[end + 1..];
                inner = inner.strip_prefix(',').unwrap_or(inner);
            }
        } else {
            rest
        };
        let value: f64 = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value"))?
            .parse()
            .map_err(|_| at("value is not a float"))?;
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        if current.as_deref() != Some(family) || finished_families.iter().any(|f| f == family) {
            return Err(at("sample outside its family's block (or before its TYPE)"));
        }
        if samples.insert((name.to_owned(), labels), value).is_some() {
            return Err(at("sample repeated"));
        }
    }
    // Histograms: cumulative buckets ending in `+Inf` equal to `_count`.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let bucket = format!("{family}_bucket");
        let mut series: HashMap<BTreeMap<String, String>, Vec<(f64, f64)>> = HashMap::new();
        for ((name, labels), value) in &samples {
            if *name != bucket {
                continue;
            }
            let mut labels = labels.clone();
            let le = labels.remove("le").ok_or("bucket without le")?;
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().map_err(|_| format!("bad le {le}"))?
            };
            series.entry(labels).or_default().push((le, *value));
        }
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.windows(2).any(|pair| pair[0].1 > pair[1].1) {
                return Err(format!("{family}{labels:?}: buckets not cumulative"));
            }
            let count = samples.get(&(format!("{family}_count"), labels.clone()));
            if buckets.last().map(|last| (last.0, Some(&last.1))) != Some((f64::INFINITY, count)) {
                return Err(format!("{family}{labels:?}: +Inf bucket is not _count"));
            }
        }
    }
    Ok(samples)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn value(samples: &Samples, name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
    samples.get(&(name.to_owned(), labels(pairs))).copied()
}

/// One request to the admin listener; returns the status and body.
async fn admin_call(
    admin: SocketAddr,
    method: &str,
    target: &str,
    token: Option<&str>,
) -> (u16, String) {
    let stream = TcpStream::connect(admin).await.unwrap();
    let mut request = http::Request::builder()
        .method(method)
        .uri(target)
        .header("host", "admin");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = http1_request(stream, request.body(Full::new(Bytes::new())).unwrap()).await;
    let status = response.status().as_u16();
    (
        status,
        String::from_utf8(response.into_body().to_vec()).unwrap(),
    )
}

async fn scrape(admin: SocketAddr) -> Samples {
    let (status, body) = admin_call(admin, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    parse_exposition(&body).unwrap_or_else(|problem| panic!("{problem}\n{body}"))
}

/// Scrapes until `done` holds (a response is counted when its body has been dropped,
/// a moment after the client has read it), at most for five seconds.
async fn scrape_until(admin: SocketAddr, done: impl Fn(&Samples) -> bool) -> Samples {
    for _ in 0..250 {
        let samples = scrape(admin).await;
        if done(&samples) {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    scrape(admin).await
}

fn metrics_config(origin: SocketAddr) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"

[[upstream]]
name = "app"
peers = ["http://{origin}"]

[[listener]]
name = "web"
address = "127.0.0.1:0"

[[listener.route]]
path = "/app/"
proxy = "app"

[[listener.route]]
path = "= /gone"
respond = {{ status = 404, body = "gone" }}

[[listener.route]]
path = "= /old"
redirect = "301 https://elsewhere.test/"

[[listener.route]]
path = "= /broken"
respond = {{ status = 503 }}
"#
    )
}

async fn request(proxy: &Proxy, method: &str, path: &str, body: &'static str) -> u16 {
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "app.test")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    http1_request(stream, request).await.status().as_u16()
}

#[tokio::test]
async fn metrics_counters_match_the_requests_made() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&metrics_config(origin.addr())).await;
    let admin = proxy.admin.expect("admin listener");

    // Known requests, each on its own connection: 5 proxied POSTs of 5 bytes (200), 3
    // fixed 404s, 2 redirects, 2 fixed 503s and 1 request that no route matches (404).
    let plan: [(&str, &str, &str, u16, usize); 5] = [
        ("POST", "/app/x", "hello", 200, 5),
        ("GET", "/gone", "", 404, 3),
        ("GET", "/old", "", 301, 2),
        ("GET", "/broken", "", 503, 2),
        ("GET", "/nowhere", "", 404, 1),
    ];
    for (method, path, body, status, times) in plan {
        for _ in 0..times {
            assert_eq!(request(&proxy, method, path, body).await, status, "{path}");
        }
    }

    let total = 13.0;
    let samples = scrape_until(admin, |samples| {
        let counted: f64 = samples
            .iter()
            .filter(|((name, _), _)| name == "gangway_requests_total")
            .map(|(_, value)| value)
            .sum();
        counted >= total
    })
    .await;

    let expected = [
        ("/app/", "2xx", 5.0),
        ("= /gone", "4xx", 3.0),
        ("= /old", "3xx", 2.0),
        ("= /broken", "5xx", 2.0),
        ("-", "4xx", 1.0),
    ];
    for (route, class, count) in expected {
        for other in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
            let want = if other == class { count } else { 0.0 };
            let got = value(
                &samples,
                "gangway_requests_total",
                &[("listener", "web"), ("route", route), ("class", other)],
            );
            assert_eq!(got, Some(want), "requests of {route} in class {other}");
        }
        let durations = value(
            &samples,
            "gangway_request_duration_seconds_count",
            &[("listener", "web"), ("route", route)],
        );
        assert_eq!(durations, Some(count), "request durations of {route}");
    }
    let app = [("listener", "web"), ("route", "/app/")];
    assert_eq!(
        value(&samples, "gangway_request_body_bytes_total", &app),
        Some(25.0)
    );
    assert_eq!(
        value(&samples, "gangway_response_body_bytes_total", &app),
        Some(5.0 * "ok".len() as f64)
    );
    let upstream = [("listener", "web"), ("route", "/app/"), ("upstream", "app")];
    assert_eq!(
        value(
            &samples,
            "gangway_upstream_response_seconds_count",
            &upstream
        ),
        Some(5.0)
    );
    // Fixed answers have no upstream series.
    assert!(!samples.keys().any(|(name, labels)| {
        name.starts_with("gangway_upstream_response_seconds")
            && labels.get("route").map(String::as_str) == Some("= /gone")
    }));
    let web = [("listener", "web")];
    assert_eq!(
        value(&samples, "gangway_connections_total", &web),
        Some(total)
    );
    let peer = origin.addr().to_string();
    let peer_labels = [("upstream", "app"), ("peer", peer.as_str())];
    assert_eq!(value(&samples, "gangway_peer_up", &peer_labels), Some(1.0));
    assert_eq!(
        value(&samples, "gangway_peer_in_flight", &peer_labels),
        Some(0.0)
    );
    assert_eq!(value(&samples, "gangway_ready", &[]), Some(1.0));
    assert_eq!(
        value(&samples, "gangway_reloads_total", &[("result", "ok")]),
        Some(0.0)
    );
    assert_eq!(origin.requests().len(), 5);

    // The reload code's counters and TLS reloads show up.
    proxy.metrics.reload_succeeded();
    proxy.metrics.reload_failed();
    proxy.metrics.reload_failed();
    let _ = proxy.tls_reloader.reload();
    let samples = scrape(admin).await;
    assert_eq!(
        value(&samples, "gangway_reloads_total", &[("result", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "gangway_reloads_total", &[("result", "failed")]),
        Some(2.0)
    );
    // No TLS listener, so nothing to reload.
    assert_eq!(
        value(&samples, "gangway_tls_reloads_total", &[("result", "ok")]),
        Some(0.0)
    );
}

#[test]
fn the_parser_refuses_what_the_format_forbids() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert!(parse_exposition(good).is_ok());
    for bad in [
        "a_total 1\n# TYPE a_total counter\n",
        "# TYPE a_total counter\na_total{x=1} 2\n",
        "# TYPE a_total counter\na_total{x=\"1\"}2\n",
        "# TYPE a_total counter\na_total{x=\"\\q\"} 2\n",
        "# TYPE a_total counter\na_total two\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0\nh_count 1\n",
        "# TYPE a counter\na 1\n# TYPE b counter\nb 1\na 2\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

/// With worker threads, `/metrics` counts the connections handed to each and the ones open
/// on each; without, the series are absent (the accepting thread serves).
#[tokio::test]
async fn connections_handed_to_worker_threads_are_counted_per_worker() {
    let origin = RecordingOrigin::start().await;
    let workers = gangway_proxy::Workers::start(std::num::NonZeroUsize::new(2).unwrap()).unwrap();
    let dir = gangway_e2e::certs::TempDir::new("worker-metrics");
    let proxy = Proxy::start_on(dir, &metrics_config(origin.addr()), workers).await;
    let admin = proxy.admin.expect("admin listener");
    for _ in 0..6 {
        assert_eq!(request(&proxy, "GET", "/gone", "").await, 404);
    }
    let per_worker = |samples: &Samples, name: &str| -> Vec<(String, f64)> {
        let mut found: Vec<(String, f64)> = samples
            .iter()
            .filter(|((metric, _), _)| metric == name)
            .map(|((_, labels), value)| (labels["worker"].clone(), *value))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    };
    // A connection stays open on its worker a moment after its response was read.
    let samples = scrape_until(admin, |samples| {
        per_worker(samples, "gangway_worker_open_connections")
            .iter()
            .all(|(_, open)| *open == 0.0)
    })
    .await;
    let handed = per_worker(&samples, "gangway_worker_connections_total");
    let workers: Vec<&str> = handed.iter().map(|(worker, _)| worker.as_str()).collect();
    assert_eq!(workers, ["0", "1"]);
    assert_eq!(
        handed.iter().map(|(_, n)| n).sum::<f64>(),
        6.0,
        "{handed:?}"
    );
    assert!(
        handed.iter().all(|(_, n)| *n >= 1.0),
        "ties rotate: {handed:?}"
    );
    let open = per_worker(&samples, "gangway_worker_open_connections");
    assert_eq!(open, [("0".to_owned(), 0.0), ("1".to_owned(), 0.0)]);

    let unspread = Proxy::start(&metrics_config(origin.addr())).await;
    let samples = scrape(unspread.admin.expect("admin listener")).await;
    assert!(per_worker(&samples, "gangway_worker_connections_total").is_empty());
}

#[tokio::test]
async fn healthz_and_readyz_answer_through_the_drain() {
    let echo = start_echo().await;
    let toml = format!(
        r#"
[server]
drain_timeout = "10s"

[admin]
address = "127.0.0.1:0"

[[upstream]]
name = "echo"
peers = ["http://{}"]

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/"
proxy = "echo"
websocket = true
"#,
        echo.local_addr()
    );
    let mut proxy = Proxy::start(&toml).await;
    let admin = proxy.admin.unwrap();
    assert_eq!(admin_call(admin, "GET", "/healthz", None).await.0, 200);
    assert_eq!(admin_call(admin, "GET", "/readyz", None).await.0, 200);
    assert_eq!(admin_call(admin, "GET", "/nothing", None).await.0, 404);
    assert_eq!(admin_call(admin, "POST", "/metrics", None).await.0, 405);

    // An open WebSocket holds the drain open; meanwhile the process is not ready.
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://app.test/ws", stream)
        .await
        .unwrap();
    proxy.begin_shutdown();
    let mut status = 0;
    for _ in 0..250 {
        status = admin_call(admin, "GET", "/readyz", None).await.0;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 503, "/readyz while draining");
    assert_eq!(admin_call(admin, "GET", "/healthz", None).await.0, 200);
    ws.send(Message::Close(None)).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    proxy.shutdown().await;
    // The admin listener is closed with the rest once the drain is over.
    assert!(TcpStream::connect(admin).await.is_err());
}

fn tunnel_config(echo: SocketAddr, admin_extra: &str) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
{admin_extra}

[[upstream]]
name = "echo"
peers = ["http://{echo}"]

[[listener]]
name = "devices"
address = "127.0.0.1:0"

[[listener.route]]
path = "/ws"
proxy = "echo"
websocket = true
"#
    )
}

#[tokio::test]
async fn tunnels_are_listed_and_closed_by_route() {
    let echo = start_echo().await;
    let proxy = Proxy::start(&tunnel_config(echo.local_addr(), "")).await;
    let admin = proxy.admin.unwrap();

    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let client = stream.local_addr().unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://app.test/ws", stream)
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));

    let (status, body) = admin_call(admin, "GET", "/tunnels", None).await;
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tunnels = listed["tunnels"].as_array().unwrap();
    assert_eq!(tunnels.len(), 1, "{body}");
    let tunnel = &tunnels[0];
    assert_eq!(tunnel["kind"], "websocket");
    assert_eq!(tunnel["listener"], "devices");
    assert_eq!(tunnel["route"], "/ws");
    assert_eq!(tunnel["peer"], echo.local_addr().to_string());
    assert_eq!(tunnel["client"], client.to_string());
    assert_eq!(tunnel["client_fingerprint"], serde_json::Value::Null);
    assert!(tunnel["age_seconds"].as_f64().unwrap() >= 0.0);
    // "hello" framed and masked by the client, echoed unmasked by the origin.
    assert!(
        tunnel["bytes_from_client"].as_u64().unwrap() >= 11,
        "{body}"
    );
    assert!(tunnel["bytes_to_client"].as_u64().unwrap() >= 7, "{body}");
    let labels = [("listener", "devices"), ("route", "/ws")];
    let samples = scrape(admin).await;
    assert_eq!(value(&samples, "gangway_open_tunnels", &labels), Some(1.0));
    let peer = echo.local_addr().to_string();
    let peer_labels = [("upstream", "echo"), ("peer", peer.as_str())];
    assert_eq!(
        value(&samples, "gangway_peer_in_flight", &peer_labels),
        Some(1.0)
    );

    // A call that names nothing closes nothing; one that matches nothing neither.
    let (status, _) = admin_call(admin, "POST", "/tunnels/close", None).await;
    assert_eq!(status, 400);
    let (status, _) = admin_call(admin, "POST", "/tunnels/close?colour=red", None).await;
    assert_eq!(status, 400);
    let (status, body) = admin_call(admin, "POST", "/tunnels/close?peer=10.0.0.1:1", None).await;
    assert_eq!((status, body.trim()), (200, r#"{"closed":0}"#));
    let (status, _) = admin_call(admin, "GET", "/tunnels/close?route=/ws", None).await;
    assert_eq!(status, 405);

    let (status, body) = admin_call(admin, "POST", "/tunnels/close?route=%2Fws", None).await;
    assert_eq!((status, body.trim()), (200, r#"{"closed":1}"#));
    // The client gets a close frame, 1001 with the reason, then its connection ends.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let close = match ws.next().await {
            Some(Ok(Message::Close(frame))) => frame,
            other => panic!("unexpected {other:?} before the close frame"),
        };
        let rest = ws.next().await;
        (close, rest)
    })
    .await;
    let (close, rest) = closed.expect("the client's WebSocket was closed in time");
    let close = close.expect("a close code");
    assert_eq!(u16::from(close.code), 1001);
    assert_eq!(close.reason.as_str(), "closed by the operator");
    assert!(rest.is_none(), "{rest:?}");

    let samples = scrape_until(admin, |samples| {
        value(samples, "gangway_open_tunnels", &labels) == Some(0.0)
    })
    .await;
    assert_eq!(value(&samples, "gangway_open_tunnels", &labels), Some(0.0));
    assert_eq!(value(&samples, "gangway_tunnels_total", &labels), Some(1.0));
    assert!(value(&samples, "gangway_tunnel_received_bytes_total", &labels).unwrap() >= 11.0);
    let (_, body) = admin_call(admin, "GET", "/tunnels", None).await;
    assert_eq!(body.trim(), r#"{"tunnels":[]}"#);
}

#[tokio::test]
async fn tunnel_calls_need_the_token_when_one_is_configured() {
    let echo = start_echo().await;
    let token = "s3cret-token-of-enough-length";
    let dir = gangway_e2e::certs::TempDir::new("admin-token");
    std::fs::write(dir.path().join("admin.token"), format!("{token}\n")).unwrap();
    let config = tunnel_config(echo.local_addr(), "token_file = \"admin.token\"");
    let proxy = Proxy::start_in(dir, &config).await;
    let admin = proxy.admin.unwrap();

    assert_eq!(admin_call(admin, "GET", "/tunnels", None).await.0, 401);
    assert_eq!(
        admin_call(admin, "GET", "/tunnels", Some("wrong")).await.0,
        401
    );
    let close = "/tunnels/close?route=/ws";
    assert_eq!(admin_call(admin, "POST", close, None).await.0, 401);
    assert_eq!(
        admin_call(admin, "GET", "/tunnels", Some(token)).await.0,
        200
    );
    assert_eq!(admin_call(admin, "POST", close, Some(token)).await.0, 200);
    // Scrapes and probes need no token.
    assert_eq!(admin_call(admin, "GET", "/metrics", None).await.0, 200);
    assert_eq!(admin_call(admin, "GET", "/healthz", None).await.0, 200);
}

#[tokio::test]
async fn tls_handshakes_and_verify_results_are_counted_and_devices_closed_by_fingerprint() {
    use gangway_e2e::certs::{TempDir, TestCa, write_pem_files};
    use gangway_e2e::clients::{
        raw_exchange, tls_client_config, tls_client_config_with_certificate, tls_connect,
    };
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let echo = start_echo().await;
    let (server_ca, device_ca) = (TestCa::new("server CA"), TestCa::new("device CA"));
    let dir = TempDir::new("admin-mtls");
    let (cert, key) = write_pem_files(dir.path(), &server_ca.issue_server(&["gw.test"]));
    let device_ca_file = dir.path().join("device-ca.pem");
    std::fs::write(&device_ca_file, device_ca.pem()).unwrap();
    let toml = format!(
        r#"
[admin]
address = "127.0.0.1:0"

[[upstream]]
name = "echo"
peers = ["http://{echo}"]

[[listener]]
name = "devices"
address = "127.0.0.1:0"
certificate = {cert:?}
private_key = {key:?}
client_certificates = "optional"
client_ca = {device_ca_file:?}

[[listener.route]]
path = "/ws"
proxy = "echo"
websocket = true
"#,
        echo = echo.local_addr()
    );
    let proxy = Proxy::start_in(dir, &toml).await;
    let admin = proxy.admin.unwrap();
    let device = device_ca.issue_client("device-0001");
    let stranger = TestCa::new("another CA").issue_client("device-0002");
    let alpn: &[&[u8]] = &[b"http/1.1"];

    // SUCCESS: a device's WebSocket, kept open.
    let config = tls_client_config_with_certificate(&server_ca.pem(), alpn, &device);
    let stream = tls_connect(proxy.addr(), "gw.test", config).await;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://gw.test/ws", stream)
        .await
        .unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ping"));
    // NONE and FAILED: handshakes that complete under `optional`.
    let plain = tls_connect(
        proxy.addr(),
        "gw.test",
        tls_client_config(&server_ca.pem(), alpn),
    );
    drop(plain.await);
    let config = tls_client_config_with_certificate(&server_ca.pem(), alpn, &stranger);
    drop(tls_connect(proxy.addr(), "gw.test", config).await);
    // A failed handshake: plain HTTP to the TLS port.
    raw_exchange(
        proxy.addr(),
        b"GET / HTTP/1.1\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;

    let devices = [("listener", "devices")];
    let handshakes = |samples: &Samples, result: &str| {
        value(
            samples,
            "gangway_tls_handshakes_total",
            &[("listener", "devices"), ("result", result)],
        )
    };
    let samples = scrape_until(admin, |samples| {
        handshakes(samples, "ok") == Some(3.0) && handshakes(samples, "failed") == Some(1.0)
    })
    .await;
    assert_eq!(handshakes(&samples, "ok"), Some(3.0));
    assert_eq!(handshakes(&samples, "failed"), Some(1.0));
    for result in ["SUCCESS", "FAILED", "NONE"] {
        let labels = [("listener", "devices"), ("result", result)];
        let count = value(&samples, "gangway_client_certificate_verify_total", &labels);
        assert_eq!(count, Some(1.0), "{result}");
    }
    assert_eq!(
        value(&samples, "gangway_connections_total", &devices),
        Some(4.0)
    );

    // The device's tunnel carries its certificate's fingerprint.
    let der = CertificateDer::from_pem_slice(device.cert_pem.as_bytes()).unwrap();
    let fingerprint = gangway_e2e::origins::sha256_hex(&der);
    let (_, body) = admin_call(admin, "GET", "/tunnels", None).await;
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed["tunnels"][0]["client_fingerprint"],
        fingerprint.as_str(),
        "{body}"
    );

    let other = CertificateDer::from_pem_slice(stranger.cert_pem.as_bytes()).unwrap();
    let other = gangway_e2e::origins::sha256_hex(&other);
    let close = format!("/tunnels/close?fingerprint={other}");
    assert_eq!(
        admin_call(admin, "POST", &close, None).await.1.trim(),
        r#"{"closed":0}"#
    );
    assert_eq!(
        admin_call(admin, "POST", "/tunnels/close?fingerprint=nothex", None)
            .await
            .0,
        400
    );
    // OpenSSL's form (upper case, colons) is accepted too.
    let colons: Vec<String> = fingerprint
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect();
    let close = format!("/tunnels/close?fingerprint={}", colons.join(":"));
    assert_eq!(
        admin_call(admin, "POST", &close, None).await.1.trim(),
        r#"{"closed":1}"#
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = ws.next().await {
            assert!(message.is_close(), "unexpected {message:?} after the close");
        }
    })
    .await;
    assert!(ended.is_ok(), "the device's WebSocket was not closed");
}

#[tokio::test]
async fn relay_peers_are_listed_and_closing_one_ends_the_session_for_both() {
    let toml = r#"
[admin]
address = "127.0.0.1:0"

[[listener]]
name = "shadow"
address = "127.0.0.1:0"

[[listener.route]]
path = "/relay/"
relay = {}
"#;
    let proxy = Proxy::start(toml).await;
    let admin = proxy.admin.unwrap();
    let session = "k3Jd9_aQ-Zx81mNpLr4TbWq7";
    let join = |role: &'static str| {
        let addr = proxy.addr();
        async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let url = format!("ws://{addr}/relay/{session}?role={role}");
            tokio_tungstenite::client_async(url, stream)
                .await
                .unwrap()
                .0
        }
    };
    let mut device = join("device").await;
    let mut viewer = join("viewer").await;
    viewer.send(Message::binary(vec![7u8; 100])).await.unwrap();
    assert_eq!(
        device.next().await.unwrap().unwrap(),
        Message::binary(vec![7u8; 100])
    );

    let (_, body) = admin_call(admin, "GET", "/tunnels", None).await;
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tunnels = listed["tunnels"].as_array().unwrap();
    let mut roles: Vec<&str> = tunnels
        .iter()
        .map(|t| t["role"].as_str().unwrap())
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["device", "viewer"], "{body}");
    assert!(
        tunnels
            .iter()
            .all(|t| t["kind"] == "relay" && t["route"] == "/relay/")
    );
    let viewer_entry = tunnels.iter().find(|t| t["role"] == "viewer").unwrap();
    assert!(
        viewer_entry["bytes_from_client"].as_u64().unwrap() >= 100,
        "{body}"
    );

    let (status, body) = admin_call(admin, "POST", "/tunnels/close?route=/relay/", None).await;
    assert_eq!((status, body.trim()), (200, r#"{"closed":2}"#));
    for (name, ws) in [("device", &mut device), ("viewer", &mut viewer)] {
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(message)) = ws.next().await {
                assert!(message.is_close(), "{name}: unexpected {message:?}");
            }
        })
        .await;
        assert!(ended.is_ok(), "{name}'s WebSocket was not closed");
    }
    let labels = [("listener", "shadow"), ("route", "/relay/")];
    let samples = scrape_until(admin, |samples| {
        value(samples, "gangway_open_tunnels", &labels) == Some(0.0)
    })
    .await;
    assert_eq!(value(&samples, "gangway_open_tunnels", &labels), Some(0.0));
    assert_eq!(value(&samples, "gangway_tunnels_total", &labels), Some(2.0));
}

#[tokio::test]
async fn reloads_are_counted_and_the_new_routes_are_shown() {
    let origin = RecordingOrigin::start().await;
    let first = metrics_config(origin.addr());
    let proxy = Proxy::start(&first).await;
    let admin = proxy.admin.unwrap();
    assert_eq!(request(&proxy, "GET", "/gone", "").await, 404);

    // The same listener (kept, by name and `:0`) with one route renamed.
    let second = first.replace("= /gone", "= /vanished");
    let config = gangway_config::parse(&second, std::path::Path::new("/x/gangway.toml")).unwrap();
    proxy.reload.reload(config).await.unwrap();
    assert_eq!(request(&proxy, "GET", "/vanished", "").await, 404);
    let vanished = [
        ("listener", "web"),
        ("route", "= /vanished"),
        ("class", "4xx"),
    ];
    let samples = scrape_until(admin, |samples| {
        value(samples, "gangway_requests_total", &vanished) == Some(1.0)
    })
    .await;
    assert_eq!(
        value(&samples, "gangway_requests_total", &vanished),
        Some(1.0)
    );
    assert!(
        !samples
            .keys()
            .any(|(_, labels)| labels.get("route").map(String::as_str) == Some("= /gone")),
        "the old configuration's routes are no longer shown"
    );
    let ok = [("result", "ok")];
    assert_eq!(value(&samples, "gangway_reloads_total", &ok), Some(1.0));

    // A reload the server refuses (its new address is taken) is counted as failed.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let third = format!(
        "{second}\n[[listener]]\nname = \"extra\"\naddress = \"{}\"\n\n\
         [[listener.route]]\npath = \"/\"\nrespond = {{ status = 200 }}\n",
        taken.local_addr().unwrap()
    );
    let config = gangway_config::parse(&third, std::path::Path::new("/x/gangway.toml")).unwrap();
    assert!(proxy.reload.reload(config).await.is_err());
    let samples = scrape(admin).await;
    assert_eq!(
        value(&samples, "gangway_reloads_total", &[("result", "failed")]),
        Some(1.0)
    );
    assert_eq!(value(&samples, "gangway_reloads_total", &ok), Some(1.0));
    assert_eq!(request(&proxy, "GET", "/vanished", "").await, 404);
}
