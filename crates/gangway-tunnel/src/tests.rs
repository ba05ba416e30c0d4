use std::time::Duration;

use http::{HeaderMap, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn upgrade_headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, value.parse().unwrap());
    }
    headers
}

const GOOD: [(&str, &str); 4] = [
    ("upgrade", "websocket"),
    ("connection", "Upgrade"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("sec-websocket-version", "13"),
];

fn without(name: &str) -> Vec<(&'static str, &'static str)> {
    GOOD.iter()
        .copied()
        .filter(|(key, _)| *key != name)
        .collect()
}

fn with(name: &str, value: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut pairs = without(name);
    pairs.push((GOOD.iter().find(|(key, _)| *key == name).unwrap().0, value));
    pairs
}

#[test]
fn valid_handshake_gives_the_key() {
    let key = validate_upgrade_request(&Method::GET, &upgrade_headers(&GOOD)).unwrap();
    assert_eq!(key.as_str(), "dGhlIHNhbXBsZSBub25jZQ==");
}

#[test]
fn each_malformed_handshake_is_refused_with_its_reason() {
    let headers = upgrade_headers(&GOOD);
    assert_eq!(
        validate_upgrade_request(&Method::POST, &headers),
        Err(Error::Method {
            method: "POST".into()
        })
    );
    let cases: Vec<(Vec<(&str, &str)>, Error)> = vec![
        (without("upgrade"), Error::UpgradeHeader),
        (with("upgrade", "h2c"), Error::UpgradeHeader),
        (without("connection"), Error::ConnectionHeader),
        (with("connection", "keep-alive"), Error::ConnectionHeader),
        (without("sec-websocket-key"), Error::Key),
        (with("sec-websocket-key", "c2hvcnQ="), Error::Key),
        (
            with("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZR=="),
            Error::Key,
        ),
        (
            with("sec-websocket-key", "dGhlIHNhbXBsZSBub25j!Q=="),
            Error::Key,
        ),
        (without("sec-websocket-version"), Error::Version),
        (with("sec-websocket-version", "8"), Error::Version),
    ];
    for (pairs, expected) in cases {
        assert_eq!(
            validate_upgrade_request(&Method::GET, &upgrade_headers(&pairs)),
            Err(expected.clone()),
            "{pairs:?}"
        );
    }
    let mut doubled = GOOD.to_vec();
    doubled.push(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="));
    assert_eq!(
        validate_upgrade_request(&Method::GET, &upgrade_headers(&doubled)),
        Err(Error::Key)
    );
}

#[test]
fn accept_key_follows_rfc_6455_example() {
    let key = validate_upgrade_request(&Method::GET, &upgrade_headers(&GOOD)).unwrap();
    let good = upgrade_headers(&[("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]);
    assert!(accepts_key(&good, &key));
    let bad = upgrade_headers(&[("sec-websocket-accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")]);
    assert!(!accepts_key(&bad, &key));
    assert!(!accepts_key(&HeaderMap::new(), &key));
}

#[tokio::test]
async fn splice_copies_both_ways_and_passes_half_close_on() {
    let (client, mut client_peer) = tokio::io::duplex(64);
    let (upstream, mut upstream_peer) = tokio::io::duplex(64);
    let tunnel = tokio::spawn(splice(client, upstream, Duration::from_secs(30)));

    client_peer.write_all(b"hello upstream").await.unwrap();
    let mut buffer = [0u8; 14];
    upstream_peer.read_exact(&mut buffer).await.unwrap();
    assert_eq!(&buffer, b"hello upstream");

    upstream_peer.write_all(b"hi").await.unwrap();
    let mut buffer = [0u8; 2];
    client_peer.read_exact(&mut buffer).await.unwrap();
    assert_eq!(&buffer, b"hi");

    client_peer.shutdown().await.unwrap();
    let mut rest = Vec::new();
    upstream_peer.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the half-close arrives as end of stream");
    upstream_peer.write_all(b"late").await.unwrap();
    upstream_peer.shutdown().await.unwrap();
    let mut late = Vec::new();
    client_peer.read_to_end(&mut late).await.unwrap();
    assert_eq!(late, b"late");

    let report = tunnel.await.unwrap();
    assert_eq!(
        report,
        SpliceReport {
            client_to_upstream: 14,
            upstream_to_client: 6,
            end: SpliceEnd::Closed
        }
    );
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_ends_the_tunnel_and_activity_resets_it() {
    let (client, mut client_peer) = tokio::io::duplex(64);
    let (upstream, mut upstream_peer) = tokio::io::duplex(64);
    let started = tokio::time::Instant::now();
    let tunnel = tokio::spawn(splice(client, upstream, Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_secs(8)).await;
    client_peer.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    upstream_peer.read_exact(&mut byte).await.unwrap();
    let report = tunnel.await.unwrap();
    assert_eq!(report.end, SpliceEnd::IdleTimeout);
    assert_eq!(report.client_to_upstream, 1);
    let lasted = started.elapsed();
    assert!(
        lasted >= Duration::from_secs(18),
        "activity at 8 s resets the 10 s timer: {lasted:?}"
    );
    assert!(lasted < Duration::from_secs(19), "{lasted:?}");
    // Both sides see the end of the tunnel.
    let mut rest = Vec::new();
    assert_eq!(upstream_peer.read_to_end(&mut rest).await.unwrap(), 0);
}

// ---- relay ----

mod relay_support {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, UPGRADE};
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tokio_tungstenite::WebSocketStream;

    use crate::{Relay, RelayReport, validate_upgrade_request};

    pub(super) type Client = WebSocketStream<TcpStream>;

    /// A relay behind a bare hyper HTTP/1.1 server, the way the engine will mount it on
    /// `/relay`. Every finished session's report arrives on the returned channel.
    pub(super) async fn start(relay: Relay) -> (SocketAddr, mpsc::UnboundedReceiver<RelayReport>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (reports, reports_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (relay, reports) = (relay.clone(), reports.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let (relay, reports) = (relay.clone(), reports.clone());
                        async move { Ok::<_, Infallible>(answer(&relay, request, reports)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        (addr, reports_rx)
    }

    fn answer(
        relay: &Relay,
        mut request: http::Request<hyper::body::Incoming>,
        reports: mpsc::UnboundedSender<RelayReport>,
    ) -> http::Response<String> {
        let status = |status: http::StatusCode| {
            let mut response = http::Response::new(String::new());
            *response.status_mut() = status;
            response
        };
        let Ok(key) = validate_upgrade_request(request.method(), request.headers()) else {
            return status(http::StatusCode::BAD_REQUEST);
        };
        let admission = match relay.admit_uri("/relay/", request.uri(), false, SystemTime::now()) {
            Ok(admission) => admission,
            Err(refused) => return status(refused.status()),
        };
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let _ = reports.send(admission.run(TokioIo::new(upgraded)).await);
            }
        });
        http::Response::builder()
            .status(http::StatusCode::SWITCHING_PROTOCOLS)
            .header(UPGRADE, "websocket")
            .header(CONNECTION, "upgrade")
            .header(
                SEC_WEBSOCKET_ACCEPT,
                tungstenite::handshake::derive_accept_key(key.as_str().as_bytes()),
            )
            .body(String::new())
            .unwrap()
    }

    /// Connects to `/relay/<session>?<query>`; `Err(status)` when refused.
    pub(super) async fn join(addr: SocketAddr, session: &str, query: &str) -> Result<Client, u16> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let url = format!("ws://{addr}/relay/{session}?{query}");
        match tokio_tungstenite::client_async(url, tcp).await {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(other) => panic!("handshake failed: {other}"),
        }
    }
}

/// A 64-bit xorshift stream: the same seed gives the same bytes on both ends.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

const SESSION: &str = "k3Jd9_aQ-Zx81mNpLr4TbW";

/// Sends `total` pseudo-random bytes in 64 KiB binary messages; returns their SHA-256.
async fn send_random<S>(sink: &mut S, seed: u64, total: usize) -> Vec<u8>
where
    S: futures_util::Sink<tungstenite::Message, Error = tungstenite::Error> + Unpin,
{
    use futures_util::SinkExt;
    use sha2::Digest;
    let data = pseudo_random(seed, total);
    let digest = sha2::Sha256::digest(&data).to_vec();
    for chunk in data.chunks(64 * 1024) {
        sink.send(tungstenite::Message::binary(chunk.to_vec()))
            .await
            .unwrap();
    }
    digest
}

/// Reads binary messages until `total` bytes came; returns their SHA-256.
async fn receive<S>(stream: &mut S, total: usize) -> Vec<u8>
where
    S: futures_util::Stream<Item = Result<tungstenite::Message, tungstenite::Error>> + Unpin,
{
    use futures_util::StreamExt;
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    let mut seen = 0;
    while seen < total {
        match stream.next().await {
            Some(Ok(tungstenite::Message::Binary(bytes))) => {
                seen += bytes.len();
                hash.update(&bytes);
            }
            other => panic!("expected data, got {other:?}"),
        }
    }
    assert_eq!(seen, total);
    hash.finalize().to_vec()
}

/// Reads until a close frame; returns its code.
async fn close_code(ws: &mut relay_support::Client) -> Option<u16> {
    use futures_util::StreamExt;
    loop {
        match ws.next().await {
            Some(Ok(tungstenite::Message::Close(frame))) => {
                return frame.map(|frame| u16::from(frame.code));
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_pairs_device_and_viewer_and_carries_50_mib_each_way_intact() {
    use futures_util::{SinkExt, StreamExt};
    const TOTAL: usize = 50 * 1024 * 1024;
    let (addr, mut reports) = relay_support::start(Relay::new(RelayConfig::default())).await;
    let device = relay_support::join(addr, SESSION, "role=device")
        .await
        .unwrap();
    let viewer = relay_support::join(addr, SESSION, "role=viewer")
        .await
        .unwrap();
    let (mut device_tx, mut device_rx) = device.split();
    let (mut viewer_tx, mut viewer_rx) = viewer.split();
    let (sent_by_device, sent_by_viewer, got_by_viewer, got_by_device) = tokio::join!(
        send_random(&mut device_tx, 1, TOTAL),
        send_random(&mut viewer_tx, 2, TOTAL),
        receive(&mut viewer_rx, TOTAL),
        receive(&mut device_rx, TOTAL),
    );
    assert_eq!(sent_by_device, got_by_viewer);
    assert_eq!(sent_by_viewer, got_by_device);

    // The device hangs up with its own code; the viewer sees the same code.
    let frame = tungstenite::protocol::CloseFrame {
        code: 4000.into(),
        reason: "done".into(),
    };
    device_tx
        .send(tungstenite::Message::Close(Some(frame)))
        .await
        .unwrap();
    let mut viewer = viewer_tx.reunite(viewer_rx).unwrap();
    assert_eq!(close_code(&mut viewer).await, Some(4000));
    drop(viewer);
    let report = reports.recv().await.unwrap();
    assert_eq!(
        report,
        reports.recv().await.unwrap(),
        "both peers get the same report"
    );
    assert_eq!(report.device_to_viewer, TOTAL as u64);
    assert_eq!(report.viewer_to_device, TOTAL as u64);
    assert_eq!(
        report.end,
        RelayEnd::Closed {
            by: RelayRole::Device,
            code: Some(4000)
        }
    );
}

#[tokio::test]
async fn relay_passes_messages_sent_before_the_partner_arrived() {
    use futures_util::{SinkExt, StreamExt};
    let (addr, _reports) = relay_support::start(Relay::new(RelayConfig::default())).await;
    let mut device = relay_support::join(addr, SESSION, "role=device")
        .await
        .unwrap();
    device
        .send(tungstenite::Message::text("RFB 003.008\n"))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let mut viewer = relay_support::join(addr, SESSION, "role=viewer")
        .await
        .unwrap();
    assert_eq!(
        viewer.next().await.unwrap().unwrap(),
        tungstenite::Message::text("RFB 003.008\n")
    );
    viewer.close(None).await.unwrap();
    assert_eq!(close_code(&mut device).await, None);
}

#[tokio::test]
async fn unpaired_peer_is_closed_with_4408_after_the_pairing_timeout() {
    let config = RelayConfig {
        pairing_timeout: Duration::from_millis(200),
        ..RelayConfig::default()
    };
    let relay = Relay::new(config);
    let (addr, mut reports) = relay_support::start(relay.clone()).await;
    let mut viewer = relay_support::join(addr, SESSION, "role=viewer")
        .await
        .unwrap();
    assert_eq!(close_code(&mut viewer).await, Some(CLOSE_NO_PARTNER));
    assert_eq!(reports.recv().await.unwrap().end, RelayEnd::NoPartner);
    assert_eq!(relay.sessions(), 0, "the session id is free again");
}

#[tokio::test]
async fn third_peer_and_second_peer_of_the_same_role_get_409() {
    let (addr, _reports) = relay_support::start(Relay::new(RelayConfig::default())).await;
    let _device = relay_support::join(addr, SESSION, "role=device")
        .await
        .unwrap();
    assert_eq!(
        relay_support::join(addr, SESSION, "role=device")
            .await
            .err(),
        Some(409)
    );
    let _viewer = relay_support::join(addr, SESSION, "role=viewer")
        .await
        .unwrap();
    for role in ["role=device", "role=viewer"] {
        assert_eq!(
            relay_support::join(addr, SESSION, role).await.err(),
            Some(409)
        );
    }
}

#[tokio::test]
async fn tickets_are_checked_before_the_upgrade() {
    let secret = b"shared secret".to_vec();
    let relay = Relay::new(RelayConfig {
        ticket_secret: Some(secret.clone()),
        ..RelayConfig::default()
    });
    let (addr, _reports) = relay_support::start(relay).await;
    let later = std::time::SystemTime::now() + Duration::from_secs(60);
    let good = sign_ticket(&secret, SESSION, RelayRole::Device, later);
    let for_viewer = sign_ticket(&secret, SESSION, RelayRole::Viewer, later);
    let other_secret = sign_ticket(b"guess", SESSION, RelayRole::Device, later);
    for query in [
        "role=device".to_owned(),
        format!("role=device&ticket={for_viewer}"),
        format!("role=device&ticket={other_secret}"),
        "role=device&ticket=garbage".to_owned(),
    ] {
        assert_eq!(
            relay_support::join(addr, SESSION, &query).await.err(),
            Some(403),
            "{query}"
        );
    }
    assert!(
        relay_support::join(addr, SESSION, &format!("role=device&ticket={good}"))
            .await
            .is_ok()
    );
}

#[test]
fn admission_refusals_carry_their_status() {
    use std::time::SystemTime;
    let now = SystemTime::now();
    let secret = b"s".to_vec();
    let relay = Relay::new(RelayConfig {
        ticket_secret: Some(secret.clone()),
        require_verified_device: true,
        ..RelayConfig::default()
    });
    let admit = |uri: &str, verified: bool| {
        relay
            .admit_uri("/relay", &uri.parse().unwrap(), verified, now)
            .map(|admission| admission.role())
    };
    let expired = sign_ticket(
        &secret,
        SESSION,
        RelayRole::Viewer,
        now - Duration::from_secs(1),
    );
    let device = sign_ticket(
        &secret,
        SESSION,
        RelayRole::Device,
        now + Duration::from_secs(9),
    );
    let cases = [
        (
            "/other/k3Jd9_aQ-Zx81mNpLr4TbW?role=device",
            RelayError::Path,
        ),
        ("/relay/short?role=device", RelayError::SessionId { len: 5 }),
        (
            "/relay/k3Jd9_aQ-Zx81mNpLr4Tb%?role=device",
            RelayError::SessionId { len: 22 },
        ),
        (
            "/relay/k3Jd9_aQ-Zx81mNpLr4TbW?role=admin",
            RelayError::Role {
                found: "admin".into(),
            },
        ),
        (
            "/relay/k3Jd9_aQ-Zx81mNpLr4TbW?role=device&role=viewer",
            RelayError::Role {
                found: "viewer".into(),
            },
        ),
        (
            "/relay/k3Jd9_aQ-Zx81mNpLr4TbW",
            RelayError::Role { found: "".into() },
        ),
        (
            "/relay/k3Jd9_aQ-Zx81mNpLr4TbW?role=device",
            RelayError::MissingTicket,
        ),
    ];
    for (uri, expected) in cases {
        assert_eq!(admit(uri, true), Err(expected), "{uri}");
    }
    let uri = format!("/relay/{SESSION}?role=viewer&ticket={expired}");
    assert_eq!(admit(&uri, true), Err(RelayError::ExpiredTicket));
    let uri = format!("/relay/{SESSION}?role=device&ticket={device}");
    assert_eq!(admit(&uri, false), Err(RelayError::DeviceNotVerified));
    assert_eq!(admit(&uri, true), Ok(RelayRole::Device));
    assert_eq!(relay.sessions(), 0, "a dropped admission frees its session");

    let statuses = [
        (RelayError::Path, 404),
        (RelayError::SessionId { len: 0 }, 400),
        (RelayError::Role { found: "".into() }, 400),
        (RelayError::MissingTicket, 403),
        (RelayError::BadTicket, 403),
        (RelayError::ExpiredTicket, 403),
        (RelayError::DeviceNotVerified, 403),
        (
            RelayError::SessionTaken {
                role: RelayRole::Device,
            },
            409,
        ),
    ];
    for (error, status) in statuses {
        assert_eq!(error.status().as_u16(), status, "{error}");
    }
}

#[test]
fn hmac_sha256_matches_rfc_4231_test_case_2() {
    let mac = crate::ticket::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        crate::ticket::hex(&mac),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // A key longer than the block is hashed first (RFC 4231 test case 6).
    let mac = crate::ticket::hmac_sha256(
        &[0xaa; 131],
        b"Test Using Larger Than Block-Size Key - Hash Key First",
    );
    assert_eq!(
        crate::ticket::hex(&mac),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn sessions_are_pinned_to_one_instance_and_spread_over_all() {
    let instances = ["a:443", "b:443", "c:443"];
    let mut hits = [0usize; 3];
    for n in 0..300 {
        let session = format!("session-{n:0>20}");
        let owner = pick_relay_instance(&session, &instances).unwrap();
        assert_eq!(Some(owner), pick_relay_instance(&session, &instances));
        hits[instances.iter().position(|i| i == owner).unwrap()] += 1;
        // Removing another instance does not move this session.
        let removed = instances[n % 3];
        if removed == *owner {
            continue;
        }
        let without: Vec<&str> = instances
            .iter()
            .copied()
            .filter(|i| *i != removed)
            .collect();
        assert_eq!(pick_relay_instance(&session, &without), Some(owner));
    }
    assert!(hits.iter().all(|&count| count > 60), "{hits:?}");
    assert_eq!(pick_relay_instance::<&str>("x", &[]), None);
}

// ---- probe ----

mod echo_support {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use futures_util::{SinkExt, StreamExt};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio::net::TcpListener;
    use tungstenite::handshake::server::{ErrorResponse, Request, Response};

    /// A certificate for `localhost` and its key, as PEM.
    pub(super) fn localhost_cert() -> (String, String) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    /// A WebSocket echo server on `/echo` (any other path is answered 404), over TLS when
    /// a certificate is given.
    pub(super) async fn start(tls: Option<(String, String)>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tls.map(|(cert, key)| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(tcp).await {
                                echo(tls).await;
                            }
                        }
                        None => echo(tcp).await,
                    }
                });
            }
        });
        addr
    }

    // The signature tungstenite's `Callback` asks for.
    #[allow(clippy::result_large_err)]
    fn only_echo(request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        if request.uri().path() == "/echo" {
            Ok(response)
        } else {
            let mut refused = ErrorResponse::new(Some("not here".to_owned()));
            *refused.status_mut() = http::StatusCode::NOT_FOUND;
            Err(refused)
        }
    }

    async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, only_echo).await else {
            return;
        };
        while let Some(Ok(message)) = ws.next().await {
            if message.is_text() || message.is_binary() {
                let _ = ws.send(message).await;
            }
        }
    }
}

#[tokio::test]
async fn probe_reports_each_step_against_a_plain_echo_server() {
    let addr = echo_support::start(None).await;
    let url = format!("ws://{addr}/echo");
    let report = probe(&url, &ProbeOptions::default()).await.unwrap();
    assert_eq!(report.peer, addr);
    assert_eq!(report.response, "gangway probe");
    assert_eq!(report.timings.tls, None);
    assert_eq!(report.close_code, Some(1000));
    let lines = report.lines();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[0].starts_with(&format!("CONNECTED {url} ({addr}): dns ")),
        "{lines:?}"
    );
    assert_eq!(lines[1], "SENT 13 bytes: \"gangway probe\"");
    assert!(lines[2].starts_with("RESPONSE 13 bytes in "), "{lines:?}");
    assert_eq!(lines[3], "DISCONNECTED close code 1000");
}

#[tokio::test]
async fn probe_over_tls_trusts_the_given_ca_only() {
    let (cert, key) = echo_support::localhost_cert();
    let addr = echo_support::start(Some((cert.clone(), key))).await;
    let url = format!("wss://localhost:{}/echo", addr.port());
    let options = ProbeOptions {
        ca: Some(cert),
        message: "über".to_owned(),
        ..ProbeOptions::default()
    };
    let report = probe(&url, &options).await.unwrap();
    assert_eq!(report.response, "über");
    assert!(report.timings.tls.is_some());
    assert!(report.lines()[0].contains(", tls "));

    let (other_ca, _) = echo_support::localhost_cert();
    let wrong_ca = ProbeOptions {
        ca: Some(other_ca),
        ..ProbeOptions::default()
    };
    let error = probe(&url, &wrong_ca).await.unwrap_err();
    assert!(matches!(error, ProbeError::Tls { .. }), "{error:?}");
    assert_eq!(error.step(), ProbeStep::Tls);

    let no_ca = probe(&url, &ProbeOptions::default()).await.unwrap_err();
    assert_eq!(no_ca.step(), ProbeStep::Tls);
    let insecure = ProbeOptions {
        insecure: true,
        ..ProbeOptions::default()
    };
    assert!(probe(&url, &insecure).await.is_ok());
}

#[tokio::test]
async fn probe_names_the_failing_step() {
    let addr = echo_support::start(None).await;
    let error = probe(&format!("ws://{addr}/missing"), &ProbeOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, ProbeError::HttpStatus(404)), "{error:?}");
    assert_eq!(error.step(), ProbeStep::Handshake);

    // A port nobody listens on: bind one, note it, close it.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let error = probe(
        &format!("ws://127.0.0.1:{port}/echo"),
        &ProbeOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ProbeError::Tcp { .. }), "{error:?}");
    assert_eq!(error.step(), ProbeStep::Tcp);

    let error = probe("http://example.com/", &ProbeOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.step(), ProbeStep::Url);
    let error = probe("ws://name.invalid/echo", &ProbeOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error.step(), ProbeStep::Dns | ProbeStep::Tcp),
        "{error:?}"
    );
}

#[tokio::test]
async fn probe_step_timeout_names_the_step() {
    // Accepts TCP but never answers the upgrade.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let options = ProbeOptions {
        timeout: Duration::from_millis(200),
        ..ProbeOptions::default()
    };
    let error = probe(&format!("ws://{addr}/echo"), &options)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ProbeError::Timeout {
                step: ProbeStep::Handshake
            }
        ),
        "{error:?}"
    );
    drop(silent);
}

// ---- bridge ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_reaches_a_tcp_service_through_both_bridges_with_bytes_intact() {
    use tokio::net::{TcpListener, TcpStream};
    // The TCP service: echoes every byte.
    let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_addr = service.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = service.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    // WebSocket -> TCP, in front of the service.
    let ws_side = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws_side.local_addr().unwrap();
    tokio::spawn(bridge_ws_to_tcp(ws_side, service_addr));
    // TCP -> WebSocket, where the client connects; pings every 50 ms while idle.
    let tcp_side = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = tcp_side.local_addr().unwrap();
    let target = BridgeTarget {
        ping_interval: Some(Duration::from_millis(50)),
        ..BridgeTarget::new(format!("ws://{ws_addr}/tunnel"))
    };
    tokio::spawn(bridge_tcp_to_ws(tcp_side, target));

    let clients = (0..3u64).map(|n| async move {
        let data = pseudo_random(n + 10, 2 * 1024 * 1024);
        let mut tcp = TcpStream::connect(tcp_addr).await.unwrap();
        let (mut read, mut write) = tcp.split();
        let mut back = Vec::new();
        let sending = async {
            write.write_all(&data[..1024]).await.unwrap();
            // Idle long enough for pings to flow; the tunnel stays up.
            tokio::time::sleep(Duration::from_millis(150)).await;
            write.write_all(&data[1024..]).await.unwrap();
        };
        let receiving = async {
            let mut buffer = vec![0u8; 64 * 1024];
            while back.len() < data.len() {
                let read = read.read(&mut buffer).await.unwrap();
                assert_ne!(read, 0, "tunnel ended early");
                back.extend_from_slice(&buffer[..read]);
            }
        };
        tokio::join!(sending, receiving);
        assert!(back == data, "client {n}: bytes differ");
    });
    futures_util::future::join_all(clients).await;
}

#[tokio::test]
async fn ws_to_tcp_bridge_refuses_the_handshake_when_the_service_is_down() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    let ws_side = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws_side.local_addr().unwrap();
    tokio::spawn(bridge_ws_to_tcp(ws_side, down));
    let error = probe(&format!("ws://{ws_addr}/"), &ProbeOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.step(), ProbeStep::Handshake, "{error:?}");
}

#[test]
fn an_http2_websocket_becomes_an_http1_upgrade_with_a_fresh_key() {
    let mut headers = upgrade_headers(&[("sec-websocket-version", "13")]);
    headers.insert("sec-websocket-protocol", "chat".parse().unwrap());
    let key = crate::upgrade_from_extended_connect(
        &http::Method::CONNECT,
        Some("websocket"),
        &mut headers,
    )
    .unwrap();
    // The upstream request is a valid HTTP/1.1 upgrade carrying that key.
    assert_eq!(
        validate_upgrade_request(&http::Method::GET, &headers).unwrap(),
        key
    );
    assert_eq!(headers["sec-websocket-protocol"], "chat");
    let other = crate::upgrade_from_extended_connect(
        &http::Method::CONNECT,
        Some("websocket"),
        &mut upgrade_headers(&[]),
    )
    .unwrap();
    assert_ne!(key, other, "every request gets its own key");

    for (method, protocol, version, expected) in [
        (
            http::Method::GET,
            Some("websocket"),
            "13",
            Error::Method {
                method: "GET".into(),
            },
        ),
        (http::Method::CONNECT, None, "13", Error::UpgradeHeader),
        (
            http::Method::CONNECT,
            Some("webtransport"),
            "13",
            Error::UpgradeHeader,
        ),
        (
            http::Method::CONNECT,
            Some("websocket"),
            "8",
            Error::Version,
        ),
    ] {
        let mut headers = upgrade_headers(&[("sec-websocket-version", version)]);
        assert_eq!(
            crate::upgrade_from_extended_connect(&method, protocol, &mut headers),
            Err(expected)
        );
    }
}

#[tokio::test]
async fn bulk_traffic_after_small_messages_arrives_intact() {
    // Large duplex buffers, so single reads fill the splice's small buffer and grow it.
    let (client, mut client_peer) = tokio::io::duplex(256 * 1024);
    let (upstream, mut upstream_peer) = tokio::io::duplex(256 * 1024);
    let tunnel = tokio::spawn(splice(client, upstream, Duration::from_secs(30)));
    let small = b"ping".to_vec();
    let bulk: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut sent = small.clone();
    sent.extend_from_slice(&bulk);
    let writer = tokio::spawn(async move {
        client_peer.write_all(&small).await.unwrap();
        client_peer.write_all(&bulk).await.unwrap();
        client_peer.shutdown().await.unwrap();
        client_peer
    });
    let mut received = Vec::new();
    upstream_peer.read_to_end(&mut received).await.unwrap();
    assert!(received == sent, "the bytes changed on the way");
    drop(writer.await.unwrap());
    upstream_peer.shutdown().await.unwrap();
    let report = tunnel.await.unwrap();
    assert_eq!(report.client_to_upstream, sent.len() as u64);
}
