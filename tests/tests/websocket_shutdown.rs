//! WebSockets open when the proxy shuts down: near the end of the drain both sides get a
//! close frame with code 1001 (not a bare TCP close), after the frames in flight; new
//! connections are refused and a request in flight still finishes. Issue 10, "SIGTERM
//! with open WebSockets and requests in flight".

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Proxy, get};
use futures_util::{SinkExt, StreamExt};
use gangway_e2e::clients::http1_request;
use gangway_e2e::origins::SlowOrigin;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// What the upstream saw on one WebSocket, tagged by the first text message the client
/// sent on it.
#[derive(Debug)]
struct Seen {
    tag: String,
    /// Every data message after the tag, in order.
    messages: Vec<Message>,
    /// The close frame's code and reason, if one came.
    close: Option<(u16, String)>,
    /// A protocol error the upstream's decoder reported (a close inside a frame would be
    /// one).
    error: Option<String>,
}

/// A WebSocket upstream on `127.0.0.1:0` that echoes data messages and reports what each
/// connection saw. A connection tagged `down` instead starts a 1 MiB binary frame, writes
/// its first half, and writes the rest when the test sends on the returned channel.
struct Upstream {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    finish_frame: Option<oneshot::Sender<()>>,
    _tasks: JoinSet<()>,
}

/// The frame the `down` connection sends, as unmasked wire bytes (64-bit length).
fn big_server_frame() -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let mut frame = vec![0x82, 127];
    frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    frame.extend_from_slice(&payload);
    (frame, payload)
}

/// The same payload as a masked client frame.
fn big_client_frame() -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..1_048_576u32).map(|i| (i % 241) as u8).collect();
    let key = [0x5a, 0x17, 0xc3, 0x09];
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    (frame, payload)
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (report, seen) = mpsc::unbounded_channel();
        let (finish_frame, finish) = oneshot::channel::<()>();
        let finish = Arc::new(Mutex::new(Some(finish)));
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            // Bounded: the tests open at most a handful of WebSockets.
            for _ in 0..8 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (report, finish) = (report.clone(), finish.clone());
                connections.spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    let tag = match ws.next().await {
                        Some(Ok(Message::Text(tag))) => tag.to_string(),
                        _ => return,
                    };
                    if tag == "down" {
                        let (frame, _) = big_server_frame();
                        let half = frame.len() / 2;
                        ws.get_mut().write_all(&frame[..half]).await.unwrap();
                        let finish = finish.lock().unwrap().take();
                        if let Some(finish) = finish {
                            let _ = finish.await;
                        }
                        ws.get_mut().write_all(&frame[half..]).await.unwrap();
                    }
                    let _ = report.send(record(tag, ws).await);
                });
            }
            while connections.join_next().await.is_some() {}
        });
        Upstream {
            addr,
            seen,
            finish_frame: Some(finish_frame),
            _tasks: tasks,
        }
    }

    async fn next_seen(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(15), self.seen.recv())
            .await
            .expect("the upstream's WebSocket ended in time")
            .unwrap()
    }
}

/// Echoes data messages until the close frame (answered by tungstenite) or an error.
async fn record(tag: String, mut ws: WebSocketStream<TcpStream>) -> Seen {
    let mut seen = Seen {
        tag,
        messages: Vec::new(),
        close: None,
        error: None,
    };
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Close(frame)) => {
                seen.close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                seen.messages.push(message.clone());
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(error) => {
                seen.error = Some(error.to_string());
                break;
            }
        }
    }
    seen
}

fn config(upstream: SocketAddr, slow: SocketAddr, drain: &str) -> String {
    format!(
        r#"
[server]
drain_timeout = "{drain}"

[[upstream]]
name = "ws"
peers = ["http://{upstream}"]

[[upstream]]
name = "slow"
peers = ["http://{slow}"]

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/ws"
proxy = "ws"
websocket = true

[[listener.route]]
path = "/slow"
proxy = "slow"
"#
    )
}

async fn open(proxy: &Proxy, tag: &str) -> WebSocketStream<TcpStream> {
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async("ws://app.test/ws", stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    ws.send(Message::text(tag)).await.unwrap();
    ws
}

/// Reads until the close frame; returns the data messages before it and the close code
/// and reason. A decoding error (a close injected inside a frame) fails the test.
async fn until_close<S>(ws: &mut WebSocketStream<S>) -> (Vec<Message>, Option<(u16, String)>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let read = async {
        let mut messages = Vec::new();
        while let Some(message) = ws.next().await {
            match message.expect("the proxy's frames decode") {
                Message::Close(frame) => {
                    let close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return (messages, close);
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => messages.push(other),
            }
        }
        panic!("the connection ended without a close frame");
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("a close frame came in time")
}

fn going_away() -> Option<(u16, String)> {
    Some((1001, "going away".to_owned()))
}

/// The client sends a text message and a 256 KiB binary one, then the proxy begins to
/// shut down with a request in flight. The upstream receives both messages intact and then
/// a close 1001; the client receives both echoes intact and then a close 1001, about
/// `drain_timeout - 1 s` later (a 2 s drain leaves 1 s for the close handshake); a new
/// connection is refused at once and the request in flight is answered.
#[tokio::test]
async fn shutdown_sends_open_websockets_a_1001_close_after_the_messages_in_flight() {
    let mut upstream = Upstream::start().await;
    let slow = SlowOrigin::start(Duration::from_millis(500)).await;
    let mut proxy = Proxy::start(&config(upstream.addr, slow.addr(), "2s")).await;
    let mut ws = open(&proxy, "echo").await;
    let big: Vec<u8> = (0..262_144u32).map(|i| (i % 253) as u8).collect();
    ws.send(Message::text("before")).await.unwrap();
    ws.send(Message::binary(big.clone())).await.unwrap();
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let in_flight = tokio::spawn(http1_request(stream, get("/slow")));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    proxy.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(proxy.addr()).await.is_err(),
        "a new connection was accepted while draining"
    );
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), &Bytes::from("slow"));

    let (echoed, close) = until_close(&mut ws).await;
    let waited = started.elapsed();
    assert_eq!(
        echoed,
        vec![Message::text("before"), Message::binary(big.clone())]
    );
    assert_eq!(close, going_away());
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_millis(1900),
        "the close came {waited:?} into a 2 s drain"
    );
    // The client's answer goes out as it reads on; then the proxy ends the connection.
    let rest = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(rest.is_none(), "{rest:?}");

    let seen = upstream.next_seen().await;
    assert_eq!(seen.tag, "echo");
    assert_eq!(
        seen.messages,
        vec![Message::text("before"), Message::binary(big)]
    );
    assert_eq!((seen.close, seen.error), (going_away(), None));
    // Both handshakes completed, so the drain ends before its timeout.
    tokio::time::timeout(Duration::from_secs(3), proxy.shutdown())
        .await
        .unwrap();
}

/// Two WebSockets each have half of a 1 MiB frame in flight when the close is due: on one
/// the upstream is sending it, on the other the client. The proxy waits for each frame to
/// end before it writes the close: the client and the upstream both decode the whole 1 MiB
/// message and then a close 1001, with no decoding error (a close frame written inside the
/// frame would be one).
#[tokio::test]
async fn a_frame_in_flight_when_the_close_is_due_ends_before_the_close_frame() {
    let mut upstream = Upstream::start().await;
    let slow = SlowOrigin::start(Duration::from_millis(1)).await;
    // The closes are due 2 s into the drain, and have 2 s.
    let mut proxy = Proxy::start(&config(upstream.addr, slow.addr(), "4s")).await;
    let mut down = open(&proxy, "down").await;
    let mut up = open(&proxy, "up").await;
    let (client_frame, client_payload) = big_client_frame();
    let half = client_frame.len() / 2;
    up.get_mut().write_all(&client_frame[..half]).await.unwrap();
    // The client must read for the upstream's half frame to pass the proxy.
    let reading = tokio::spawn(async move {
        let result = until_close(&mut down).await;
        (result, down)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    up.get_mut().write_all(&client_frame[half..]).await.unwrap();
    upstream.finish_frame.take().unwrap().send(()).unwrap();

    let ((messages, close), mut down) = reading.await.unwrap();
    let (_, server_payload) = big_server_frame();
    assert_eq!(messages, vec![Message::binary(server_payload)]);
    assert_eq!(close, going_away());
    let (messages, close) = until_close(&mut up).await;
    assert!(messages.is_empty(), "nothing was echoed after the close");
    assert_eq!(close, going_away());
    let _ = tokio::join!(down.next(), up.next());

    let mut seen = [upstream.next_seen().await, upstream.next_seen().await];
    seen.sort_by(|a, b| a.tag.cmp(&b.tag));
    let [down_seen, up_seen] = seen;
    assert_eq!(down_seen.tag, "down");
    assert!(down_seen.messages.is_empty());
    assert_eq!((down_seen.close, down_seen.error), (going_away(), None));
    assert_eq!(up_seen.tag, "up");
    assert_eq!(up_seen.messages, vec![Message::binary(client_payload)]);
    assert_eq!((up_seen.close, up_seen.error), (going_away(), None));
    tokio::time::timeout(Duration::from_secs(3), proxy.shutdown())
        .await
        .unwrap();
}

/// A relay session (a device and a viewer, paired) and a device still waiting for its
/// partner when the close is due: each of the three peers gets a close frame with 1001
/// from the relay, after the message the device had sent reached the viewer.
#[tokio::test]
async fn relay_peers_get_a_1001_close_near_the_end_of_the_drain() {
    let upstream = Upstream::start().await;
    let slow = SlowOrigin::start(Duration::from_millis(1)).await;
    let toml = format!(
        "{}\n[[listener.route]]\npath = \"/relay/\"\nrelay = {{ pairing_timeout = \"30s\" }}\n",
        config(upstream.addr, slow.addr(), "2s")
    );
    let mut proxy = Proxy::start(&toml).await;
    let join = |path: String| {
        let addr = proxy.addr();
        async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let url = format!("ws://app.test{path}");
            tokio_tungstenite::client_async(url, stream)
                .await
                .unwrap()
                .0
        }
    };
    let session = "k3Jd9_aQ-Zx81mNpLr4TbWq7";
    let mut device = join(format!("/relay/{session}?role=device")).await;
    let mut viewer = join(format!("/relay/{session}?role=viewer")).await;
    let mut waiting = join("/relay/Zq9_LmW3-Ab7cDe8Fg0HiJ2k?role=device".to_owned()).await;
    device.send(Message::text("frame 1")).await.unwrap();

    proxy.begin_shutdown();
    let (viewer_got, viewer_close) = until_close(&mut viewer).await;
    assert_eq!(viewer_got, vec![Message::text("frame 1")]);
    assert_eq!(viewer_close, going_away());
    for ws in [&mut device, &mut waiting] {
        let (got, close) = until_close(ws).await;
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(close, going_away());
    }
    let _ = tokio::join!(device.next(), viewer.next(), waiting.next());
    tokio::time::timeout(Duration::from_secs(3), proxy.shutdown())
        .await
        .unwrap();
}
