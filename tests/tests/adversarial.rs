//! Hostile requests as raw bytes over loopback, with a recording upstream that reports
//! every request that reached it: smuggling attempts, broken framing, header tricks,
//! oversized heads, absolute-form targets and path confusion. Each is refused with a 4xx
//! or reaches the upstream as exactly one unambiguous request; a hidden second request
//! never does.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Proxy;
use gangway_e2e::clients::raw_exchange;
use gangway_e2e::origins::RecordingOrigin;

async fn front(origin: &RecordingOrigin) -> Proxy {
    Proxy::start(&format!(
        r#"
[[upstream]]
name = "app"
peers = ["http://{}"]

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/secret/"
respond = {{ status = 403, body = "forbidden here" }}

[[listener.route]]
path = "/"
proxy = "app"
"#,
        origin.addr()
    ))
    .await
}

/// The status code of the first response in `answer`, if any.
fn status(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nhost: app.test\r\n\r\n";

/// Sends `bytes` on one connection; returns the answer and every path the upstream saw.
async fn exchange(proxy: &Proxy, origin: &RecordingOrigin, bytes: &[u8]) -> (Vec<u8>, Vec<String>) {
    let before = origin.requests().len();
    let answer = raw_exchange(proxy.addr(), bytes, Duration::from_millis(700)).await;
    let paths = origin.requests()[before..]
        .iter()
        .map(|request| request.uri.to_string())
        .collect();
    (answer, paths)
}

#[tokio::test]
async fn smuggling_attempts_are_refused_or_reach_the_upstream_as_one_request() {
    let origin = RecordingOrigin::start().await;
    let proxy = front(&origin).await;
    let chunked_smuggle = format!("0\r\n\r\n{SMUGGLED}");
    let cases: Vec<(&str, String)> = vec![
        (
            "CL and TE together",
            format!(
                "POST /a HTTP/1.1\r\nhost: app.test\r\ncontent-length: {}\r\n\
                 transfer-encoding: chunked\r\n\r\n{chunked_smuggle}",
                chunked_smuggle.len()
            ),
        ),
        (
            "two different Content-Length",
            format!(
                "POST /a HTTP/1.1\r\nhost: app.test\r\ncontent-length: 0\r\ncontent-length: {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
        ),
        (
            "comma-joined differing Content-Length",
            format!(
                "POST /a HTTP/1.1\r\nhost: app.test\r\ncontent-length: 0, {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
        ),
        (
            "TE with a leading space in the value and CL",
            format!(
                "POST /a HTTP/1.1\r\nhost: app.test\r\ncontent-length: 5\r\ntransfer-encoding:  chunked\r\n\r\n{chunked_smuggle}"
            ),
        ),
        (
            "TE chunked, identity",
            format!(
                "POST /a HTTP/1.1\r\nhost: app.test\r\ntransfer-encoding: chunked, identity\r\n\r\n{chunked_smuggle}"
            ),
        ),
        (
            "TE xchunked",
            format!(
                "POST /a HTTP/1.1\r\nhost: app.test\r\ntransfer-encoding: xchunked\r\n\r\n{chunked_smuggle}"
            ),
        ),
        (
            "TE with a tab before the colon",
            format!(
                "POST /a HTTP/1.1\r\nhost: app.test\r\ntransfer-encoding\t: chunked\r\ncontent-length: 5\r\n\r\n{chunked_smuggle}"
            ),
        ),
        (
            "space before the colon",
            format!(
                "POST /a HTTP/1.1\r\nhost: app.test\r\ncontent-length : 5\r\n\r\nhello{SMUGGLED}"
            ),
        ),
        (
            "chunk size overflow",
            format!(
                "POST /a HTTP/1.1\r\nhost: app.test\r\ntransfer-encoding: chunked\r\n\r\n\
                 fffffffffffffffff1\r\nx\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        (
            "chunk size not hex",
            format!(
                "POST /a HTTP/1.1\r\nhost: app.test\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        (
            "obs-fold",
            format!("GET /a HTTP/1.1\r\nhost: app.test\r\nx-folded: one\r\n two\r\n\r\n{SMUGGLED}"),
        ),
        (
            "NUL in a header value",
            format!("GET /a HTTP/1.1\r\nhost: app.test\r\nx-nul: a\0b\r\n\r\n{SMUGGLED}"),
        ),
        (
            "a control byte in a header name",
            format!("GET /a HTTP/1.1\r\nhost: app.test\r\nx\x01y: v\r\n\r\n{SMUGGLED}"),
        ),
        (
            "two Host headers",
            "GET /a HTTP/1.1\r\nhost: app.test\r\nhost: evil.test\r\n\r\n".to_owned(),
        ),
        (
            "no Host header",
            "GET /a HTTP/1.1\r\nx: y\r\n\r\n".to_owned(),
        ),
    ];
    for (name, request) in cases {
        let (answer, paths) = exchange(&proxy, &origin, request.as_bytes()).await;
        let status = status(&answer);
        assert!(
            !paths.iter().any(|path| path.contains("smuggled")),
            "{name}: a hidden request reached the upstream: {paths:?}"
        );
        let refused = status.is_some_and(|status| (400..500).contains(&status));
        let one_clean = status == Some(200) && paths.len() == 1;
        assert!(
            refused || one_clean,
            "{name}: expected a 4xx or one forwarded request, got {status:?} and {paths:?}: {}",
            String::from_utf8_lossy(&answer)
        );
        // Whatever the upstream got, it got at most once and nothing after it.
        assert!(paths.len() <= 1, "{name}: {paths:?}");
    }
}

#[tokio::test]
async fn oversized_heads_get_414_or_431() {
    let origin = RecordingOrigin::start().await;
    let proxy = front(&origin).await;
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nhost: app.test\r\n\r\n",
        "a".repeat(20_000)
    );
    let (answer, paths) = exchange(&proxy, &origin, long_target.as_bytes()).await;
    assert!(
        matches!(status(&answer), Some(414 | 431)),
        "{:?}",
        status(&answer)
    );
    assert!(paths.is_empty());

    let big_header = format!(
        "GET / HTTP/1.1\r\nhost: app.test\r\nx-big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    let (answer, paths) = exchange(&proxy, &origin, big_header.as_bytes()).await;
    assert_eq!(status(&answer), Some(431));
    assert!(paths.is_empty());

    let mut many = String::from("GET / HTTP/1.1\r\nhost: app.test\r\n");
    for index in 0..200 {
        many.push_str(&format!("x-h{index}: v\r\n"));
    }
    many.push_str("\r\n");
    let (answer, paths) = exchange(&proxy, &origin, many.as_bytes()).await;
    assert_eq!(status(&answer), Some(431));
    assert!(paths.is_empty());
}

#[tokio::test]
async fn an_absolute_form_target_cannot_route_by_one_host_and_forward_another() {
    let origin = RecordingOrigin::start().await;
    let proxy = front(&origin).await;
    // The target names another host than Host: ambiguous, refused.
    let (answer, paths) = exchange(
        &proxy,
        &origin,
        b"GET http://evil.test/a HTTP/1.1\r\nhost: app.test\r\n\r\n",
    )
    .await;
    assert_eq!(
        status(&answer),
        Some(400),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(paths.is_empty());
    // The same host in both is fine: the upstream gets origin-form.
    let (answer, paths) = exchange(
        &proxy,
        &origin,
        b"GET http://app.test/a?b=1 HTTP/1.1\r\nhost: app.test\r\n\r\n",
    )
    .await;
    assert_eq!(status(&answer), Some(200));
    assert_eq!(paths, ["/a?b=1"]);
    // An absolute-form target cannot reach the blocked area either.
    let (answer, paths) = exchange(
        &proxy,
        &origin,
        b"GET http://app.test/secret/x HTTP/1.1\r\nhost: app.test\r\n\r\n",
    )
    .await;
    assert_eq!(status(&answer), Some(403));
    assert!(paths.is_empty());
}

/// Percent-decodes once and removes dot segments: what a lenient upstream makes of a path.
fn as_upstream_reads_it(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let decoded = percent_decode(path);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    segments.join("/")
}

fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&path[index + 1..index + 3], 16) {
                out.push(byte);
                index += 3;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn path_tricks_never_reach_the_blocked_area_through_the_open_route() {
    let origin = RecordingOrigin::start().await;
    let proxy = front(&origin).await;
    for path in [
        "/%73ecret/x",
        "/./secret/x",
        "/open/../secret/x",
        "/open/%2e%2e/secret/x",
        "/open/%2E%2E/secret/x",
        "/open/.%2e/secret/x",
        "/open/..%2fsecret/x",
        "/open/%2e%2e%2fsecret/x",
        "/open/%252e%252e/secret/x",
        "/%2fsecret/x",
        "//secret/x",
        "/secret%2fx",
        "/open/..;/secret/x",
        "/secret;a=b/x",
        "/%c0%ae%c0%ae/secret/x",
        "/open/%c0%ae%c0%ae/secret/x",
        "/open/..\\secret/x",
        "/open/%5c../secret/x",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: app.test\r\n\r\n");
        let (answer, paths) = exchange(&proxy, &origin, request.as_bytes()).await;
        let status = status(&answer);
        match status {
            Some(400 | 403) => assert!(paths.is_empty(), "{path}: {paths:?}"),
            Some(200) => {
                assert_eq!(paths.len(), 1, "{path}");
                let read = as_upstream_reads_it(&paths[0]);
                assert!(
                    !read.trim_start_matches('/').starts_with("secret/"),
                    "{path} reached the upstream as {} (read as {read})",
                    paths[0]
                );
            }
            other => panic!("{path}: unexpected answer {other:?}"),
        }
    }
}

#[tokio::test]
async fn http2_requests_cannot_name_two_hosts_or_reach_the_blocked_area() {
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let origin = RecordingOrigin::start().await;
    let proxy = front(&origin).await;
    let stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    // HTTP/2 with prior knowledge on the plain listener.
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let send = |uri: &'static str, host: Option<&'static str>| {
        let mut sender = sender.clone();
        async move {
            let mut request = http::Request::get(uri).version(http::Version::HTTP_2);
            if let Some(host) = host {
                request = request.header("host", host);
            }
            let request = request
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            Ok::<_, hyper::Error>(response.status().as_u16())
        }
    };
    // `:authority` and `Host` disagree: 400.
    assert_eq!(
        send("http://evil.test/a", Some("app.test")).await.unwrap(),
        400
    );
    // `:authority` alone names the host; the blocked area stays blocked.
    assert_eq!(send("http://app.test/secret/x", None).await.unwrap(), 403);
    assert_eq!(
        send("http://app.test/open/%2e%2e/secret/x", None)
            .await
            .unwrap(),
        400
    );
    assert_eq!(send("http://app.test/a", None).await.unwrap(), 200);
    let paths: Vec<String> = origin
        .requests()
        .iter()
        .map(|request| request.uri.to_string())
        .collect();
    assert_eq!(paths, ["/a"]);
}
