//! The `relay` route action (secure shadowing): a device and a viewer paired by session id
//! through the proxy, with pairing timeout, one pairing per session and tickets.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::Proxy;
use futures_util::{SinkExt, StreamExt};
use gangway_e2e::certs::TempDir;
use gangway_tunnel::{CLOSE_NO_PARTNER, RelayRole, sign_ticket};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws = WebSocketStream<TcpStream>;

const SESSION: &str = "k3Jd9_aQ-Zx81mNpLr4TbWq7";
const SECRET: &str = "a shared secret of the management server";

async fn relay_proxy(relay: &str) -> Proxy {
    let dir = TempDir::new("relay");
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();
    Proxy::start_in(
        dir,
        &format!(
            r#"
[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/relay/"
relay = {relay}
"#
        ),
    )
    .await
}

async fn join(proxy: &Proxy, target: &str) -> Result<Ws, u16> {
    let url = format!("ws://{}{target}", proxy.addr());
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    match tokio_tungstenite::client_async(url, stream).await {
        Ok((ws, response)) => {
            assert_eq!(response.status(), 101);
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("connect failed: {error}"),
    }
}

/// Deterministic pseudo-random bytes (xorshift), so each side knows what to expect.
fn chunk(seed: u64, index: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ (index.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Sends `count` binary messages of `len` bytes and returns the SHA-256 of all of them.
async fn send_all(
    sink: &mut futures_util::stream::SplitSink<Ws, Message>,
    seed: u64,
    count: u64,
    len: usize,
) -> Vec<u8> {
    let mut digest = Sha256::new();
    for index in 0..count {
        let data = chunk(seed, index, len);
        digest.update(&data);
        sink.send(Message::binary(data)).await.unwrap();
    }
    digest.finalize().to_vec()
}

/// Receives binary messages until `total` bytes arrived; returns their SHA-256.
async fn receive_all(stream: &mut futures_util::stream::SplitStream<Ws>, total: usize) -> Vec<u8> {
    let mut digest = Sha256::new();
    let mut received = 0;
    while received < total {
        match stream.next().await.unwrap().unwrap() {
            Message::Binary(data) => {
                received += data.len();
                digest.update(&data);
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
    assert_eq!(received, total);
    digest.finalize().to_vec()
}

#[tokio::test]
async fn a_device_and_a_viewer_exchange_50_mib_each_way_intact() {
    let proxy = relay_proxy("{}").await;
    let device = join(&proxy, &format!("/relay/{SESSION}?role=device"))
        .await
        .unwrap();
    let viewer = join(&proxy, &format!("/relay/{SESSION}?role=viewer"))
        .await
        .unwrap();
    const COUNT: u64 = 50;
    const LEN: usize = 1024 * 1024;
    let (mut device_sink, mut device_stream) = device.split();
    let (mut viewer_sink, mut viewer_stream) = viewer.split();
    let exchange = async {
        tokio::join!(
            send_all(&mut device_sink, 1, COUNT, LEN),
            send_all(&mut viewer_sink, 2, COUNT, LEN),
            receive_all(&mut viewer_stream, COUNT as usize * LEN),
            receive_all(&mut device_stream, COUNT as usize * LEN),
        )
    };
    let (device_sent, viewer_sent, viewer_got, device_got) =
        tokio::time::timeout(Duration::from_secs(240), exchange)
            .await
            .expect("the exchange finished in time");
    assert_eq!(device_sent, viewer_got, "device -> viewer");
    assert_eq!(viewer_sent, device_got, "viewer -> device");

    // The viewer closes with a code; the device gets the same code.
    viewer_sink
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Library(4000),
                reason: "done".into(),
            },
        )))
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match device_stream.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| frame.code),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(CloseCode::Library(4000)));
}

#[tokio::test]
async fn an_unpaired_peer_is_closed_after_the_pairing_timeout_and_a_third_gets_409() {
    let proxy = relay_proxy("{ pairing_timeout = \"1s\" }").await;
    let mut lonely = join(&proxy, &format!("/relay/{SESSION}?role=device"))
        .await
        .unwrap();
    // While the device waits, another device for the same session is refused.
    assert_eq!(
        join(&proxy, &format!("/relay/{SESSION}?role=device"))
            .await
            .err(),
        Some(409)
    );
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match lonely.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| u16::from(frame.code)),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(CLOSE_NO_PARTNER));

    // A paired session refuses a third peer.
    let other = "Zx81mNpLr4TbWq7k3Jd9_aQ-";
    let _device = join(&proxy, &format!("/relay/{other}?role=device"))
        .await
        .unwrap();
    let _viewer = join(&proxy, &format!("/relay/{other}?role=viewer"))
        .await
        .unwrap();
    assert_eq!(
        join(&proxy, &format!("/relay/{other}?role=viewer"))
            .await
            .err(),
        Some(409)
    );
}

#[tokio::test]
async fn tickets_are_checked_and_bad_requests_refused() {
    let proxy = relay_proxy("{ ticket_secret_file = \"secret\" }").await;
    let expires = SystemTime::now() + Duration::from_secs(300);
    let good = sign_ticket(SECRET.as_bytes(), SESSION, RelayRole::Device, expires);
    let forged = sign_ticket(
        b"another secret entirely",
        SESSION,
        RelayRole::Device,
        expires,
    );
    let for_viewer = sign_ticket(SECRET.as_bytes(), SESSION, RelayRole::Viewer, expires);
    let cases = [
        (format!("/relay/{SESSION}?role=device&ticket={forged}"), 403),
        (
            format!("/relay/{SESSION}?role=device&ticket={for_viewer}"),
            403,
        ),
        (format!("/relay/{SESSION}?role=device"), 403),
        // A session id under 128 bits, and a missing role.
        (format!("/relay/short?role=device&ticket={good}"), 400),
        (format!("/relay/{SESSION}?ticket={good}"), 400),
    ];
    for (target, status) in cases {
        assert_eq!(join(&proxy, &target).await.err(), Some(status), "{target}");
    }
    assert!(
        join(
            &proxy,
            &format!("/relay/{SESSION}?role=device&ticket={good}")
        )
        .await
        .is_ok()
    );
}
