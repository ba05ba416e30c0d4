use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conn_io::{ConnState, GuardTimeouts, GuardedIo};
use crate::error::{RequestError, Side};

async fn connect_error() -> gangway_upstream::SendError {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let settings = gangway_upstream::ClientSettings {
        connect_timeout: Duration::from_secs(2),
        max_idle_per_peer: 0,
        idle_timeout: Duration::from_secs(1),
    };
    let client = gangway_upstream::UpstreamClient::<http_body_util::Empty<bytes::Bytes>>::new(
        gangway_upstream::UpstreamScheme::Http,
        settings,
    );
    let peer = address.to_string().parse().unwrap();
    client
        .send(&peer, http::Request::new(http_body_util::Empty::new()))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn an_upstream_failure_is_logged_with_its_cause() {
    let error = RequestError::UpstreamConnect(connect_error().await);
    let text = crate::error::cause_chain(&error);
    assert!(
        text.starts_with("upstream connection failed: connecting to 127.0.0.1:"),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
    // The message already holds its first cause: it is not repeated.
    assert_eq!(text.to_lowercase().matches("refused").count(), 1, "{text}");
}

#[tokio::test]
async fn every_request_error_has_its_side_and_status() {
    let cases = [
        (
            RequestError::NoRoute,
            Side::Downstream,
            StatusCode::NOT_FOUND,
        ),
        (
            RequestError::BodyTooLarge { limit: 1 },
            Side::Downstream,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            RequestError::ClientBodyTimeout { seconds: 1 },
            Side::Downstream,
            StatusCode::REQUEST_TIMEOUT,
        ),
        (
            RequestError::MisdirectedHost {
                host: "b.example".to_owned(),
                sni: "a.example".to_owned(),
            },
            Side::Downstream,
            StatusCode::MISDIRECTED_REQUEST,
        ),
        (
            RequestError::TlsVersionTooOld {
                required: "1.3",
                used: "1.2",
            },
            Side::Downstream,
            StatusCode::MISDIRECTED_REQUEST,
        ),
        (
            RequestError::ClientCertificate {
                reason: "FAILED:expired".to_owned(),
            },
            Side::Downstream,
            StatusCode::BAD_REQUEST,
        ),
        (
            RequestError::Relay(gangway_tunnel::RelayError::SessionTaken {
                role: gangway_tunnel::RelayRole::Viewer,
            }),
            Side::Downstream,
            StatusCode::CONFLICT,
        ),
        (
            RequestError::Relay(gangway_tunnel::RelayError::BadTicket),
            Side::Downstream,
            StatusCode::FORBIDDEN,
        ),
        (
            RequestError::AmbiguousHost {
                target: "evil.test".to_owned(),
                host: "app.test".to_owned(),
            },
            Side::Downstream,
            StatusCode::BAD_REQUEST,
        ),
        (
            RequestError::BadRequestBody,
            Side::Downstream,
            StatusCode::BAD_REQUEST,
        ),
        (
            RequestError::BadTarget,
            Side::Downstream,
            StatusCode::BAD_REQUEST,
        ),
        (
            RequestError::BadUpgrade(gangway_tunnel::Error::Version),
            Side::Downstream,
            StatusCode::BAD_REQUEST,
        ),
        (
            RequestError::UpgradeNotAllowed,
            Side::Downstream,
            StatusCode::BAD_REQUEST,
        ),
        (
            RequestError::UpstreamConnect(connect_error().await),
            Side::Upstream,
            StatusCode::BAD_GATEWAY,
        ),
        (
            RequestError::UpstreamTimeout { seconds: 1 },
            Side::Upstream,
            StatusCode::GATEWAY_TIMEOUT,
        ),
        (
            RequestError::UpstreamBadUpgrade,
            Side::Upstream,
            StatusCode::BAD_GATEWAY,
        ),
        (
            RequestError::UpstreamRequest(
                http::Uri::builder()
                    .scheme("bad scheme")
                    .build()
                    .unwrap_err(),
            ),
            Side::Internal,
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            RequestError::BadRedirectTarget,
            Side::Internal,
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    ];
    for (error, side, status) in cases {
        assert_eq!((error.side(), error.status()), (side, status), "{error}");
    }
}

fn guarded(
    http2: bool,
) -> (
    GuardedIo<tokio::io::DuplexStream>,
    tokio::io::DuplexStream,
    Arc<ConnState>,
) {
    let (server, client) = tokio::io::duplex(4096);
    let state = Arc::new(ConnState::default());
    let timeouts = GuardTimeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        send: Duration::from_secs(30),
    };
    let io = GuardedIo::new(server, state.clone(), timeouts, http2);
    (io, client, state)
}

#[tokio::test(start_paused = true)]
async fn a_stalled_request_head_gets_408_after_the_header_timeout() {
    let (mut io, mut client, _state) = guarded(false);
    client.write_all(b"GET / HTTP/1.1\r\nho").await.unwrap();
    let mut buffer = [0u8; 64];
    let read = io.read(&mut buffer).await.unwrap();
    assert_eq!(&buffer[..read], b"GET / HTTP/1.1\r\nho");
    let started = tokio::time::Instant::now();
    // The next read waits for more head bytes until the deadline, then ends the stream.
    assert_eq!(io.read(&mut buffer).await.unwrap(), 0);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("content-length: {}", body.len())),
        "{answer}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_deadline_while_a_request_is_served_and_idle_connections_close_silently() {
    let (mut io, mut client, state) = guarded(false);
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 18];
    io.read_exact(&mut buffer).await.unwrap();
    state.request_started();
    // Serving for longer than the header timeout triggers nothing.
    let read = tokio::time::timeout(Duration::from_secs(30), io.read(&mut buffer)).await;
    assert!(read.is_err(), "no deadline while serving");
    state.request_finished();
    let started = tokio::time::Instant::now();
    assert_eq!(
        io.read(&mut buffer).await.unwrap(),
        0,
        "closed after the keep-alive timeout"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    io.shutdown().await.unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert!(answer.is_empty(), "an idle close writes nothing");
}

#[tokio::test(start_paused = true)]
async fn http2_connections_are_not_guarded() {
    let (mut io, mut client, _state) = guarded(false);
    client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 24];
    io.read_exact(&mut buffer).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(600), io.read(&mut buffer)).await;
    assert!(
        read.is_err(),
        "the prior-knowledge preface turns the guard off"
    );

    let (mut io, _client, _state) = guarded(true);
    let read = tokio::time::timeout(Duration::from_secs(600), io.read(&mut buffer)).await;
    assert!(read.is_err(), "ALPN h2 turns the guard off");
}

#[tokio::test(start_paused = true)]
async fn an_upgraded_connection_outlives_the_head_and_keepalive_limits() {
    let (mut io, mut client, state) = guarded(false);
    client.write_all(b"GET /ws HTTP/1.1\r\n\r\n").await.unwrap();
    let mut head = [0u8; 20];
    io.read_exact(&mut head).await.unwrap();
    state.request_started();
    state.upgraded();
    state.request_finished();
    // Tunnel bytes (not a request head) trickle in long after both limits.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(120)).await;
        client.write_all(b"frame").await.unwrap();
        let mut frame = [0u8; 5];
        io.read_exact(&mut frame).await.unwrap();
        assert_eq!(&frame, b"frame");
    }
    // And a quiet tunnel is not closed by the guard: only the tunnel's own timeout may.
    let quiet = tokio::time::timeout(Duration::from_secs(600), io.read(&mut head)).await;
    assert!(quiet.is_err(), "the guard closed an upgraded connection");
}

#[tokio::test]
async fn client_connections_get_tcp_keepalive() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let _client = tokio::net::TcpStream::connect(address).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    let socket = socket2::SockRef::from(&accepted);
    assert!(!socket.keepalive().unwrap());
    crate::server::enable_tcp_keepalive(&accepted);
    assert!(socket.keepalive().unwrap());
    #[cfg(target_os = "linux")]
    {
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 6);
    }
}

#[test]
fn close_filters_need_a_known_parameter_and_decode_values() {
    use crate::admin::tunnel_filter;
    let filter = tunnel_filter("route=host+a.test+%2Fws%2F&peer=10.0.0.1%3A80").unwrap();
    assert_eq!(filter.route.as_deref(), Some("host a.test /ws/"));
    assert_eq!(filter.peer.as_deref(), Some("10.0.0.1:80"));
    assert_eq!(filter.fingerprint, None);
    let hex = "ab".repeat(32);
    let filter = tunnel_filter(&format!("fingerprint={hex}")).unwrap();
    assert_eq!(filter.fingerprint.unwrap().to_string(), hex);
    assert!(tunnel_filter("").is_err());
    assert!(tunnel_filter("&&").is_err());
    assert!(tunnel_filter("fingerprint=abc").is_err());
    assert!(tunnel_filter("client=1.2.3.4").is_err());
}

#[test]
fn histograms_are_cumulative_and_labels_escaped() {
    use crate::metrics::{ListenerMetrics, Observer, RouteMetrics};
    let route = Arc::new(RouteMetrics::new("= /a\"b\\c\n".into(), None));
    route.request_finished(StatusCode::OK, 3, 4, Duration::from_millis(3));
    route.request_finished(StatusCode::BAD_GATEWAY, 0, 0, Duration::from_secs(120));
    route.request_finished(StatusCode::SWITCHING_PROTOCOLS, 0, 0, Duration::ZERO);
    let listener = Arc::new(ListenerMetrics::new("l".into(), vec![route]));
    let observer = Observer::default();
    observer.publish_metrics(vec![listener]);
    let text = observer.render();
    let labels = r#"listener="l",route="= /a\"b\\c\n""#;
    for line in [
        format!(r#"gangway_requests_total{{{labels},class="1xx"}} 1"#),
        format!(r#"gangway_requests_total{{{labels},class="2xx"}} 1"#),
        format!(r#"gangway_requests_total{{{labels},class="5xx"}} 1"#),
        format!(r#"gangway_request_duration_seconds_bucket{{{labels},le="0.001"}} 1"#),
        format!(r#"gangway_request_duration_seconds_bucket{{{labels},le="0.005"}} 2"#),
        format!(r#"gangway_request_duration_seconds_bucket{{{labels},le="60"}} 2"#),
        format!(r#"gangway_request_duration_seconds_bucket{{{labels},le="+Inf"}} 3"#),
        format!(r#"gangway_request_duration_seconds_count{{{labels}}} 3"#),
        format!(r#"gangway_request_duration_seconds_sum{{{labels}}} 120.003"#),
        format!(r#"gangway_request_body_bytes_total{{{labels}}} 3"#),
        format!(r#"gangway_response_body_bytes_total{{{labels}}} 4"#),
        r#"gangway_requests_total{listener="l",route="-",class="4xx"} 0"#.to_owned(),
        "gangway_ready 0".to_owned(),
    ] {
        assert!(text.lines().any(|got| got == line), "{line} not in\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn fast_requests_on_a_kept_alive_connection_never_meet_a_stale_head_deadline() {
    let (mut io, mut client, state) = guarded(false);
    let mut buffer = [0u8; 64];
    // Requests answered between two reads (the guard never sees `serving`), one every 4 s
    // for longer than the 10 s header timeout.
    for round in 0..5 {
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let read = io.read(&mut buffer).await.unwrap();
        assert_eq!(read, 18, "round {round}: the head should arrive, not a 408");
        state.request_started();
        state.request_finished();
        let idle = tokio::time::timeout(Duration::from_secs(4), io.read(&mut buffer)).await;
        assert!(
            idle.is_err(),
            "round {round}: the guard ended a kept-alive connection"
        );
    }
}

/// The HTTP/2 stall guard, with a task spawned as hyper spawns a stream.
mod stall_guard {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body::Body;
    use http_body_util::BodyExt;
    use hyper::rt::Executor;
    use tokio::sync::{mpsc, oneshot};

    use crate::body::ResponseBody;
    use crate::stall::StallExecutor;

    /// A task that holds `body`, takes one frame from it, and then takes a frame each
    /// time `more` says so. It reports each frame's size and, when it ends (or is dropped),
    /// closes `ended`.
    fn spawn_stream(
        http2: bool,
        body: ResponseBody,
    ) -> (
        mpsc::UnboundedReceiver<(usize, bool)>,
        mpsc::UnboundedSender<()>,
        oneshot::Receiver<()>,
    ) {
        let (sizes, sizes_rx) = mpsc::unbounded_channel();
        let (more_tx, mut more) = mpsc::unbounded_channel::<()>();
        let (ended, ended_rx) = oneshot::channel::<()>();
        let task = async move {
            let _ended = ended;
            let mut body = body;
            loop {
                let Some(Ok(frame)) = body.frame().await else {
                    return;
                };
                let size = frame.into_data().map_or(0, |data| data.len());
                let _ = sizes.send((size, body.is_end_stream()));
                if more.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
        };
        if http2 {
            StallExecutor.execute(task);
        } else {
            tokio::spawn(task);
        }
        (sizes_rx, more_tx, ended_rx)
    }

    fn body(len: usize) -> ResponseBody {
        let full = http_body_util::Full::new(Bytes::from(vec![7u8; len]));
        ResponseBody::streaming(full, Duration::from_secs(10))
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_stream_whose_client_takes_no_frame_ends_after_the_idle_timeout() {
        let (mut sizes, _more, mut ended) = spawn_stream(true, body(1024));
        assert_eq!(sizes.recv().await, Some((1024, true)));
        tokio::time::sleep(Duration::from_millis(9_900)).await;
        assert!(
            ended.try_recv().is_err(),
            "still running before the timeout"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            matches!(ended.try_recv(), Err(oneshot::error::TryRecvError::Closed)),
            "ended after the timeout"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_stream_that_takes_a_frame_within_each_timeout_is_not_cut() {
        let (mut sizes, more, mut ended) = spawn_stream(true, body(64 * 1024));
        for expected in [
            (16 * 1024, false),
            (16 * 1024, false),
            (16 * 1024, false),
            (16 * 1024, true),
        ] {
            assert_eq!(sizes.recv().await, Some(expected));
            tokio::time::sleep(Duration::from_secs(9)).await;
            assert!(ended.try_recv().is_err(), "cut while taking frames");
            more.send(()).expect("the task runs");
        }
        // The body has ended; the task ends with it.
        assert!(ended.await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn outside_http2_chunks_pass_whole_and_nothing_is_cut() {
        let (mut sizes, _more, mut ended) = spawn_stream(false, body(64 * 1024));
        assert_eq!(sizes.recv().await, Some((64 * 1024, true)));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(ended.try_recv().is_err(), "an HTTP/1.1 task is not cut");
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_that_takes_no_response_data_is_cut_after_the_send_timeout() {
    let (mut io, mut client, state) = guarded(false);
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut head = [0u8; 64];
    let _ = io.read(&mut head).await.unwrap();
    state.request_started();
    // The duplex holds 4 KiB: the client reads none of it, so the writer has to wait.
    let chunk = [b'x'; 1024];
    let started = tokio::time::Instant::now();
    let mut written = 0;
    let error = loop {
        match io.write(&chunk).await {
            Ok(sent) => written += sent,
            Err(error) => break error,
        }
        // A reader taking a little now and then keeps the connection.
        if written == 4096 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            let mut taken = [0u8; 1024];
            client.read_exact(&mut taken).await.unwrap();
        }
    };
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
    assert_eq!(
        written, 5120,
        "the write after the client's read went through"
    );
    // 20 s until the client took 1 KiB, then 30 s of nothing taken.
    assert_eq!(started.elapsed(), Duration::from_secs(50));
}

#[tokio::test(start_paused = true)]
async fn the_send_timeout_leaves_http2_and_tunnels_alone() {
    for upgraded in [false, true] {
        let (mut io, _client, state) = guarded(!upgraded);
        if upgraded {
            state.upgraded();
        }
        let chunk = [b'x'; 4096];
        io.write_all(&chunk).await.unwrap();
        let blocked = tokio::time::timeout(Duration::from_secs(300), io.write(&chunk)).await;
        assert!(
            blocked.is_err(),
            "upgraded={upgraded}: the write should still wait"
        );
    }
}

#[test]
fn cookie_and_query_argument_variables_find_their_value() {
    use crate::vars::{cookie, query_arg};

    let mut headers = http::HeaderMap::new();
    headers.append(
        "cookie",
        "theme=dark; JSESSIONID=abc.node2".parse().unwrap(),
    );
    headers.append("cookie", "later=1;JSESSIONID=second".parse().unwrap());
    assert_eq!(cookie(&headers, "JSESSIONID"), Some("abc.node2"));
    assert_eq!(cookie(&headers, "later"), Some("1"));
    assert_eq!(
        cookie(&headers, "jsessionid"),
        None,
        "cookie names are exact"
    );
    assert_eq!(
        cookie(&headers, "SESSIONID"),
        None,
        "no match inside a name"
    );
    assert_eq!(cookie(&http::HeaderMap::new(), "theme"), None);

    let query = "page=2&Sort=name%20asc&flag&empty=&page=3";
    assert_eq!(query_arg(query, "page"), Some("2"), "the first one");
    assert_eq!(
        query_arg(query, "sort"),
        Some("name%20asc"),
        "case-blind, not decoded"
    );
    assert_eq!(query_arg(query, "flag"), Some(""));
    assert_eq!(query_arg(query, "empty"), Some(""));
    assert_eq!(query_arg(query, "ag"), None);
    assert_eq!(query_arg("", "page"), None);
}

/// The host routing compares: port and IPv6 brackets off, lower-cased; a lower-case `Host`
/// is shared rather than copied.
#[test]
fn a_requests_host_is_its_host_header_without_port_in_lower_case() {
    use crate::service::RequestHost;

    let host_of = |host: &str| {
        let request = http::Request::get("/")
            .header("host", host)
            .body(())
            .unwrap();
        RequestHost::of(&request).map(|host| host.as_str().to_owned())
    };
    assert_eq!(host_of("example.com").as_deref(), Some("example.com"));
    assert_eq!(host_of("example.com:8443").as_deref(), Some("example.com"));
    assert_eq!(
        host_of("UCServer.Example.COM:443").as_deref(),
        Some("ucserver.example.com")
    );
    assert_eq!(host_of("[2001:DB8::1]:443").as_deref(), Some("2001:db8::1"));
    assert_eq!(host_of("[::1]").as_deref(), Some("::1"));
    assert_eq!(host_of(":80"), None);
    assert_eq!(host_of(""), None);

    // HTTP/2 names the host in the authority, without a `Host` header.
    let request = http::Request::get("https://Device.Example:8443/x")
        .body(())
        .unwrap();
    let host = RequestHost::of(&request).expect("a host");
    assert_eq!(host.as_str(), "device.example");
    let request = http::Request::get("/x").body(()).unwrap();
    assert!(RequestHost::of(&request).is_none());
}
