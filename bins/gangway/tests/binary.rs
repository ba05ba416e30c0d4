//! The `gangway` binary itself: `demo`, `check`, shutdown on SIGTERM, TLS reload on SIGHUP.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use common::{BINARY, Running, connect_when_listening, signal, start_run};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use gangway_e2e::certs::TempDir;
use gangway_e2e::clients::{http1_request, tls_connect};
use gangway_e2e::origins::SlowOrigin;
use http_body_util::Full;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Reads the child's stdout until a line starting with `prefix` (trimmed); bounded in time.
fn line_starting_with(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(line) = receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.trim_start().starts_with(prefix) {
            return line;
        }
    }
    panic!("no line starting with {prefix:?} on stdout");
}

/// Starts `gangway demo` on free ports; returns the process and its HTTPS address.
fn start_demo() -> (Running, SocketAddr) {
    start_demo_with(&[], &[])
}

/// [`start_demo`] with more arguments and these environment variables.
fn start_demo_with(args: &[&str], env: &[(&str, &str)]) -> (Running, SocketAddr) {
    let mut demo = Running(
        Command::new(BINARY)
            .args(["demo", "--http-port", "0", "--https-port", "0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let https_line = line_starting_with(&mut demo.0, "HTTPS");
    let https = https_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (demo, https)
}

fn insecure_tls() -> std::sync::Arc<rustls::ClientConfig> {
    gangway_e2e::clients::insecure_tls_client_config(&[b"http/1.1"])
}

#[tokio::test]
async fn demo_serves_https_redirects_http_and_echoes_websocket_messages() {
    let (mut child, https) = start_demo();

    let stream = tls_connect(https, "localhost", insecure_tls()).await;
    let request = http::Request::post("/hello?x=1")
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(b"demo body")))
        .unwrap();
    let response = http1_request(stream, request).await;
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/hello?x=1");
    assert_eq!(echo["body"], "demo body");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");

    let stream = tls_connect(https, "localhost", insecure_tls()).await;
    let (mut socket, response) =
        tokio_tungstenite::client_async(format!("wss://localhost:{}/ws", https.port()), stream)
            .await
            .unwrap();
    assert_eq!(response.status(), 101);
    socket
        .send(Message::text("hello through gangway"))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("hello through gangway"));
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::binary(vec![0u8, 1, 2, 255]));
    socket.close(None).await.unwrap();

    // The browser check of the same WebSocket path.
    let stream = tls_connect(https, "localhost", insecure_tls()).await;
    let request = http::Request::get("/websocket-test")
        .header("host", "localhost")
        .body(Full::<Bytes>::default())
        .unwrap();
    let page = http1_request(stream, request).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = String::from_utf8(page.body().to_vec()).unwrap();
    assert!(html.contains("var target = \"/ws\";"), "{html}");
    assert!(!html.contains("__TARGET__"));

    signal(&child.0, "TERM");
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// The process's threads named `gangway-worker-N`, once `expected` of them are named: a
/// thread takes its name when it first runs, which on a busy machine may come after the
/// process has announced its ports. Gives up after 10 s and returns what it found.
async fn worker_threads(child: &Child, expected: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = named_worker_threads(child);
        if found.len() == expected || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn named_worker_threads(child: &Child) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .map(|task| task.unwrap().file_name().into_string().unwrap())
        .filter(|task| {
            let comm = std::fs::read_to_string(format!("/proc/{}/task/{task}/comm", child.id()));
            comm.is_ok_and(|comm| comm.starts_with("gangway-worker-"))
        })
        .collect()
}

/// `(worker, value)` of each `name{worker="N"} value` line of a Prometheus text body.
fn worker_samples(metrics: &str, name: &str) -> Vec<(String, u64)> {
    let prefix = format!("{name}{{worker=\"");
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let (worker, value) = rest.split_once("\"} ")?;
            Some((worker.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `TOKIO_WORKER_THREADS=1` (as for a process allowed one CPU) serves on the main thread;
/// with 2, the two worker threads serve the connections, which `/metrics` counts.
#[tokio::test]
async fn one_worker_thread_serves_on_the_main_thread_and_two_serve_on_workers() {
    const CONNECTIONS: u64 = 20;
    for threads in ["1", "2"] {
        let admin = gangway_e2e::origins::refused_addr();
        let admin_port = admin.port().to_string();
        let (mut demo, https) = start_demo_with(
            &["--admin-port", &admin_port],
            &[("TOKIO_WORKER_THREADS", threads)],
        );
        let expected = if threads == "1" { 0 } else { 2 };
        let workers = worker_threads(&demo.0, expected).await;
        assert_eq!(workers.len(), expected, "{workers:?}");
        for _ in 0..CONNECTIONS {
            let stream = tls_connect(https, "localhost", insecure_tls()).await;
            let request = http::Request::get("/threads")
                .header("host", "localhost")
                .body(Full::<Bytes>::default())
                .unwrap();
            let response = http1_request(stream, request).await;
            assert_eq!(response.status(), 200, "TOKIO_WORKER_THREADS={threads}");
        }
        let stream = connect_when_listening(admin).await;
        let request = http::Request::get("/metrics")
            .header("host", "admin")
            .body(Full::<Bytes>::default())
            .unwrap();
        let metrics =
            String::from_utf8(http1_request(stream, request).await.body().to_vec()).unwrap();
        let handed = worker_samples(&metrics, "gangway_worker_connections_total");
        if threads == "1" {
            // No worker threads: the main thread that accepted them served them.
            assert!(handed.is_empty(), "{metrics}");
        } else {
            // Every connection went to a worker, and the least busy one rotates on ties.
            let names: Vec<&str> = handed.iter().map(|(worker, _)| worker.as_str()).collect();
            assert_eq!(names, ["0", "1"], "{metrics}");
            assert_eq!(
                handed.iter().map(|(_, n)| n).sum::<u64>(),
                CONNECTIONS,
                "{metrics}"
            );
            assert!(handed.iter().all(|(_, n)| *n > 0), "{metrics}");
        }
        signal(&demo.0, "TERM");
        assert!(demo.0.wait().unwrap().success());
    }
}

#[test]
fn a_bad_worker_thread_count_is_refused_with_its_value() {
    let output = Command::new(BINARY)
        .args(["demo", "--http-port", "0", "--https-port", "0"])
        .env("TOKIO_WORKER_THREADS", "many")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("TOKIO_WORKER_THREADS=`many`: expected a whole number of threads, 1 or more"),
        "{stderr}"
    );
}

/// A request in flight (2 s) and an open WebSocket at SIGTERM, with a 5 s drain: new
/// connections are refused, the request is answered, the WebSocket gets a close frame with
/// 1001 about 2.5 s into the drain (half way, as the drain is under 6 s), and the process
/// exits 0 once both are done.
#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_refuses_new_connections_and_exits_0() {
    let origin = SlowOrigin::start(Duration::from_secs(2)).await;
    let echo = gangway_e2e::origins::start_echo().await;
    let dir = TempDir::new("sigterm");
    let config = dir.path().join("gangway.toml");
    let listen = gangway_e2e::origins::refused_addr();
    std::fs::write(
        &config,
        format!(
            "[server]\ndrain_timeout = \"5s\"\n\n[[upstream]]\nname = \"slow\"\npeers = [\"http://{}\"]\n\n\
             [[upstream]]\nname = \"echo\"\npeers = [\"http://{}\"]\n\n\
             [[listener]]\naddress = \"{listen}\"\n\n[[listener.route]]\npath = \"/\"\nproxy = \"slow\"\n\n\
             [[listener.route]]\npath = \"/ws\"\nproxy = \"echo\"\nwebsocket = true\n",
            origin.addr(),
            echo.local_addr()
        ),
    )
    .unwrap();
    let mut child = start_run(&config, &[], false);
    // Wait until the listener accepts (bounded).
    let stream = connect_when_listening(listen).await;
    let ws_stream = TcpStream::connect(listen).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://app.test/ws", ws_stream)
        .await
        .unwrap();
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("before"));
    let request = http::Request::get("/slow")
        .header("host", "app.test")
        .body(Full::<Bytes>::default())
        .unwrap();
    let in_flight = tokio::spawn(http1_request(stream, request));
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&child.0, "TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert!(
        TcpStream::connect(listen).await.is_err(),
        "a new connection was accepted after SIGTERM"
    );
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "slow");
    let close = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap();
    match close {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1001);
            assert_eq!(frame.reason.as_str(), "going away");
        }
        other => panic!("expected a close frame with 1001, got {other:?}"),
    }
    // Reading on sends the client's answer; then the connection ends.
    let rest = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap();
    assert!(rest.is_none(), "{rest:?}");
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn check_reports_every_error_with_file_line_and_column() {
    let dir = TempDir::new("check");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[listener]]\naddress = \"127.0.0.1:notaport\"\n\n[[listener.route]]\npath = \"/\"\nproxy = \"missing\"\n",
    )
    .unwrap();
    let output = Command::new(BINARY)
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr);
    let file = config.display().to_string();
    assert!(errors.contains(&format!("{file}:2:11:")), "{errors}");
    assert!(errors.contains(&format!("{file}:6:9:")), "{errors}");
    assert!(errors.contains("missing"), "{errors}");

    std::fs::write(&config, "[[listener]]\naddress = \"127.0.0.1:8080\"\n\n[[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n").unwrap();
    let output = Command::new(BINARY)
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "ok\n");
}

/// Runs `gangway probe ARGS` and returns (success, stdout, stderr).
fn probe(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BINARY)
        .arg("probe")
        .args(args)
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[tokio::test]
async fn probe_succeeds_against_the_demo_and_names_the_failing_step() {
    let (_demo, https) = start_demo();
    let url = format!("wss://localhost:{}/ws", https.port());

    let (ok, stdout, stderr) = probe(&["--insecure", &url]);
    assert!(ok, "{stdout}{stderr}");
    let steps: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        steps,
        ["CONNECTED", "SENT", "RESPONSE", "DISCONNECTED"],
        "{stdout}"
    );

    // The demo's certificate is self-signed: without --insecure or its CA, TLS fails.
    let (ok, _, stderr) = probe(&["--timeout", "5", &url]);
    assert!(!ok);
    assert!(stderr.starts_with("FAILED at tls:"), "{stderr}");

    let refused = gangway_e2e::origins::refused_addr();
    let (ok, _, stderr) = probe(&["--timeout", "5", &format!("ws://{refused}/ws")]);
    assert!(!ok);
    assert!(stderr.starts_with("FAILED at tcp:"), "{stderr}");

    // A path the proxy has no route for.
    let dir = TempDir::new("probe-404");
    let config = dir.path().join("gangway.toml");
    let listen = gangway_e2e::origins::refused_addr();
    std::fs::write(
        &config,
        format!(
            "[[listener]]\naddress = \"{listen}\"\n\n[[listener.route]]\npath = \"= /health\"\n\
             respond = {{ status = 200, body = \"ok\" }}\n"
        ),
    )
    .unwrap();
    let _server = start_run(&config, &[], false);
    drop(connect_when_listening(listen).await);
    let (ok, _, stderr) = probe(&["--timeout", "5", &format!("ws://{listen}/ws")]);
    assert!(!ok);
    assert!(
        stderr.starts_with("FAILED at handshake: upgrade answered with HTTP status 404"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sighup_reloads_a_renewed_certificate_without_a_restart() {
    let ca = gangway_e2e::certs::TestCa::new("sighup CA");
    let first = ca.issue_server(&["device.test"]);
    let renewed = ca.issue_server(&["device.test"]);
    let dir = TempDir::new("sighup");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &first.chain_pem).unwrap();
    std::fs::write(&key, &first.key_pem).unwrap();
    let config = dir.path().join("gangway.toml");
    let listen = gangway_e2e::origins::refused_addr();
    std::fs::write(
        &config,
        format!(
            "[server]\ncertificate_watch_interval = \"off\"\n\n[[listener]]\naddress = \"{listen}\"\n\
             certificate = {cert:?}\nprivate_key = {key:?}\n\n\
             [[listener.route]]\npath = \"/\"\nrespond = {{ status = 200 }}\n"
        ),
    )
    .unwrap();
    let child = start_run(&config, &[], false);
    drop(connect_when_listening(listen).await);
    let trust = gangway_e2e::clients::tls_client_config(&ca.pem(), &[b"http/1.1"]);
    let leaf = |issued: &gangway_e2e::certs::Issued| {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(issued.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    };
    let current = || async {
        let stream = tls_connect(listen, "device.test", trust.clone()).await;
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    assert_eq!(current().await, leaf(&first));

    std::fs::write(&key, &renewed.key_pem).unwrap();
    std::fs::write(&cert, &renewed.chain_pem).unwrap();
    // Without a watcher, nothing changes until the signal.
    assert_eq!(current().await, leaf(&first));
    signal(&child.0, "HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while current().await != leaf(&renewed) {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_upstream_with_a_certificate_from_another_ca_gets_502_and_a_log_line_saying_why() {
    let trusted = gangway_e2e::certs::TestCa::new("trusted CA");
    let other = gangway_e2e::certs::TestCa::new("other CA");
    let origin = gangway_e2e::origins::TlsOrigin::start(&other.issue_server(&["ums.test"])).await;
    let dir = TempDir::new("wrong-ca");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, trusted.pem()).unwrap();
    let config = dir.path().join("gangway.toml");
    let listen = gangway_e2e::origins::refused_addr();
    std::fs::write(
        &config,
        format!(
            "[[upstream]]\nname = \"ums\"\npeers = [\"https://{}\"]\nca = {ca:?}\n\
             server_name = \"ums.test\"\n\n[[listener]]\naddress = \"{listen}\"\n\n\
             [[listener.route]]\npath = \"/\"\nproxy = \"ums\"\n",
            origin.addr()
        ),
    )
    .unwrap();
    let mut child = start_run(&config, &[], true);
    let stream = connect_when_listening(listen).await;
    let request = http::Request::get("/")
        .header("host", "app.test")
        .body(Full::<Bytes>::default())
        .unwrap();
    assert_eq!(http1_request(stream, request).await.status(), 502);
    signal(&child.0, "TERM");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut log).unwrap();
    // The field, not the bare number: a timestamp such as `…25.125025Z` holds "502" too.
    let line = log
        .lines()
        .find(|line| line.contains("status=502"))
        .unwrap_or_else(|| panic!("no log line for the 502:\n{log}"));
    assert!(
        line.contains("invalid peer certificate") && line.contains("UnknownIssuer"),
        "the log should say the certificate's issuer is not trusted: {line}"
    );
}

/// Reads `BRIDGE <address> -> ...` from a started bridge.
fn bridge_address(child: &mut Child) -> SocketAddr {
    line_starting_with(child, "BRIDGE")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_tcp_client_reaches_a_tcp_service_through_two_bridges_and_the_relay() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // The device's local service: a TCP echo.
    let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_addr = service.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = service.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });

    let dir = TempDir::new("bridge");
    let config = dir.path().join("gangway.toml");
    let listen = gangway_e2e::origins::refused_addr();
    std::fs::write(
        &config,
        format!(
            "[[listener]]\naddress = \"{listen}\"\n\n[[listener.route]]\npath = \"/relay/\"\nrelay = {{}}\n"
        ),
    )
    .unwrap();
    let _relay = start_run(&config, &[], false);
    drop(connect_when_listening(listen).await);

    let session = "k3Jd9_aQ-Zx81mNpLr4TbWq7";
    let _device = Running(
        Command::new(BINARY)
            .args(["bridge", "--to"])
            .arg(format!("ws://{listen}/relay/{session}?role=device"))
            .arg("--to-tcp")
            .arg(service_addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut viewer = Running(
        Command::new(BINARY)
            .args(["bridge", "--listen", "127.0.0.1:0", "--to"])
            .arg(format!("ws://{listen}/relay/{session}?role=viewer"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let viewer_port = bridge_address(&mut viewer.0);

    let payload: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut client = TcpStream::connect(viewer_port).await.unwrap();
    let (mut reader, mut writer) = client.split();
    let echoed = tokio::time::timeout(Duration::from_secs(60), async {
        let send = async {
            writer.write_all(&payload).await.unwrap();
        };
        let mut received = vec![0u8; payload.len()];
        let receive = reader.read_exact(&mut received);
        let ((), read) = tokio::join!(send, receive);
        read.unwrap();
        received
    })
    .await
    .expect("the bytes came back in time");
    assert!(echoed == payload, "the bytes came back changed");
}

#[tokio::test]
async fn demo_admin_port_serves_metrics_and_readiness_on_loopback() {
    // A port that was free a moment ago; the demo binds 127.0.0.1 with it.
    let admin = gangway_e2e::origins::refused_addr();
    let _demo = Running(
        Command::new(BINARY)
            .args(["demo", "--http-port", "0", "--https-port", "0"])
            .args(["--admin-port", &admin.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for (path, expected) in [
        ("/metrics", "# TYPE gangway_requests_total counter"),
        ("/readyz", "ready"),
    ] {
        let stream = connect_when_listening(admin).await;
        let request = http::Request::get(path)
            .header("host", "admin")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = http1_request(stream, request).await;
        assert_eq!(response.status(), 200, "{path}");
        let body = String::from_utf8(response.body().to_vec()).unwrap();
        assert!(body.contains(expected), "{path}: {body}");
    }
}

#[tokio::test]
async fn reload_applies_a_valid_file_and_refuses_an_invalid_one_with_its_errors() {
    let dir = TempDir::new("reload");
    let config = dir.path().join("gangway.toml");
    let pid_file = dir.path().join("gangway.pid");
    let listen = gangway_e2e::origins::refused_addr();
    let version = |body: &str| {
        format!(
            "[[listener]]\naddress = \"{listen}\"\n\n[[listener.route]]\npath = \"/\"\n\
             respond = {{ status = 200, body = \"{body}\" }}\n"
        )
    };
    std::fs::write(&config, version("first")).unwrap();
    let mut child = start_run(
        &config,
        &["--pid-file".as_ref(), pid_file.as_os_str()],
        true,
    );
    drop(connect_when_listening(listen).await);
    let body = || async {
        let stream = TcpStream::connect(listen).await.unwrap();
        let request = http::Request::get("/")
            .header("host", "app.test")
            .body(Full::<Bytes>::default())
            .unwrap();
        http1_request(stream, request).await.into_body()
    };
    let reload = || {
        let status = Command::new(BINARY)
            .args(["reload", "--pid-file"])
            .arg(&pid_file)
            .status()
            .unwrap();
        assert!(status.success(), "gangway reload failed: {status}");
    };
    assert_eq!(body().await, "first");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        child.0.id().to_string()
    );

    // An invalid file: refused, the running configuration keeps serving.
    std::fs::write(
        &config,
        version("second").replace("status = 200", "status = 999"),
    )
    .unwrap();
    reload();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(body().await, "first");

    // A valid one is applied.
    std::fs::write(&config, version("third")).unwrap();
    reload();
    let deadline = Instant::now() + Duration::from_secs(30);
    while body().await != "third" {
        assert!(
            Instant::now() < deadline,
            "the valid reload was not applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    signal(&child.0, "TERM");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut log).unwrap();
    assert!(child.0.wait().unwrap().success());
    assert!(
        log.contains("reload refused; the running configuration stays")
            && log.contains("gangway.toml:6:22:")
            && log.contains("999"),
        "the refusal and its error (file:line) should be logged:\n{log}"
    );
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(!pid_file.exists(), "the pid file is removed at exit");
}
