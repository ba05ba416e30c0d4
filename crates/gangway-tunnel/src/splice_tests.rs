//! `splice_websocket`: the close handshake the proxy starts, over in-memory connections
//! with real WebSocket endpoints (tokio-tungstenite) or raw frames on either side.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::Role;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::{SpliceEnd, SpliceReport, WebSocketClose, splice_websocket};

const GOING_AWAY: WebSocketClose = WebSocketClose {
    code: 1001,
    reason: "going away",
    timeout: Duration::from_secs(5),
};

/// A spliced tunnel: the client's and the upstream's raw ends, the trigger of the close
/// and the splice's task.
struct Tunnel {
    client: DuplexStream,
    upstream: DuplexStream,
    close: oneshot::Sender<WebSocketClose>,
    task: tokio::task::JoinHandle<SpliceReport>,
}

fn tunnel() -> Tunnel {
    tunnel_idling_out_after(Duration::from_secs(30))
}

fn tunnel_idling_out_after(idle_timeout: Duration) -> Tunnel {
    let (client, client_side) = tokio::io::duplex(64 * 1024);
    let (upstream, upstream_side) = tokio::io::duplex(64 * 1024);
    let (close, requested) = oneshot::channel();
    let task = tokio::spawn(splice_websocket(
        client_side,
        upstream_side,
        idle_timeout,
        async move {
            match requested.await {
                Ok(request) => request,
                Err(_) => std::future::pending().await,
            }
        },
    ));
    Tunnel {
        client,
        upstream,
        close,
        task,
    }
}

/// Reads messages until the close frame; returns the messages and the close code and
/// reason. Bounded by a 10 s timeout.
async fn until_close(
    ws: &mut WebSocketStream<DuplexStream>,
) -> (Vec<Message>, Option<(u16, String)>) {
    let mut messages = Vec::new();
    let read = async {
        while let Some(message) = ws.next().await {
            match message.expect("a valid WebSocket stream") {
                Message::Close(frame) => {
                    return frame.map(|frame| (u16::from(frame.code), frame.reason.to_string()));
                }
                other => messages.push(other),
            }
        }
        None
    };
    let close = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the close came in time");
    (messages, close)
}

/// Masks `payload` with `key` into a client frame (FIN, `opcode`).
fn masked_frame(opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    let len = payload.len();
    if len <= 125 {
        frame.push(0x80 | len as u8);
    } else if len <= 0xffff {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

#[tokio::test]
async fn a_close_reaches_both_sides_after_the_messages_in_flight() {
    let t = tunnel();
    let mut client = WebSocketStream::from_raw_socket(t.client, Role::Client, None).await;
    let mut upstream = WebSocketStream::from_raw_socket(t.upstream, Role::Server, None).await;
    client.send(Message::text("before")).await.unwrap();
    assert_eq!(
        upstream.next().await.unwrap().unwrap(),
        Message::text("before")
    );
    upstream
        .send(Message::binary(vec![7u8; 100_000]))
        .await
        .unwrap();

    t.close.send(GOING_AWAY).unwrap();
    let ((to_client, client_close), (to_upstream, upstream_close)) =
        tokio::join!(until_close(&mut client), until_close(&mut upstream));
    // The message the upstream had sent arrives whole, then the close.
    assert_eq!(to_client, vec![Message::binary(vec![7u8; 100_000])]);
    assert_eq!(client_close, Some((1001, "going away".to_owned())));
    assert!(to_upstream.is_empty());
    assert_eq!(upstream_close, Some((1001, "going away".to_owned())));
    // Reading on flushes each endpoint's answer to the close; the splice then ends both
    // connections.
    let (report, client_rest, upstream_rest) =
        tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(t.task, client.next(), upstream.next())
        })
        .await
        .unwrap();
    assert_eq!(report.unwrap().end, SpliceEnd::ProxyClosed);
    assert!(
        client_rest.is_none(),
        "the client's connection ended: {client_rest:?}"
    );
    assert!(upstream_rest.is_none(), "{upstream_rest:?}");
}

#[tokio::test]
async fn a_close_waits_for_the_frame_in_flight_from_the_client() {
    let mut t = tunnel();
    let mut upstream = WebSocketStream::from_raw_socket(t.upstream, Role::Server, None).await;
    let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let frame = masked_frame(0x2, &payload, [1, 2, 3, 4]);
    // The header and a third of the payload, then the close, then the rest.
    t.client.write_all(&frame[..70_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    t.close.send(GOING_AWAY).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The upstream reads while the client writes the rest.
    let (written, (messages, close)) = tokio::join!(
        t.client.write_all(&frame[70_000..]),
        until_close(&mut upstream)
    );
    written.unwrap();
    assert_eq!(messages, vec![Message::binary(payload)]);
    assert_eq!(close, Some((1001, "going away".to_owned())));

    // The client gets an unmasked close frame; it answers with its own.
    let mut head = [0u8; 14];
    t.client.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"\x88\x0c\x03\xe9going away");
    t.client
        .write_all(&masked_frame(0x8, &[0x03, 0xe9], [9, 9, 9, 9]))
        .await
        .unwrap();
    // Reading on flushes the upstream's answer.
    let (report, rest) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(t.task, upstream.next())
    })
    .await
    .unwrap();
    let report = report.unwrap();
    assert!(rest.is_none(), "{rest:?}");
    assert_eq!(report.end, SpliceEnd::ProxyClosed);
    assert_eq!(report.client_to_upstream, frame.len() as u64);
}

#[tokio::test]
async fn a_frame_that_does_not_end_within_the_close_timeout_is_cut() {
    let mut t = tunnel();
    let frame = masked_frame(0x2, &[0u8; 1000], [1, 2, 3, 4]);
    t.client.write_all(&frame[..500]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = tokio::time::Instant::now();
    t.close
        .send(WebSocketClose {
            timeout: Duration::from_millis(300),
            ..GOING_AWAY
        })
        .unwrap();
    let report = t.task.await.unwrap();
    assert_eq!(report.end, SpliceEnd::ProxyCut);
    assert!(started.elapsed() < Duration::from_secs(3));
    // The upstream got the 500 bytes and then the end of the stream: no close frame
    // inside the frame the client had not finished.
    let mut received = Vec::new();
    t.upstream.read_to_end(&mut received).await.unwrap();
    assert_eq!(received, frame[..500]);
}

#[tokio::test]
async fn bytes_that_are_not_websocket_frames_are_cut_at_once() {
    let mut t = tunnel();
    t.client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut seen = [0u8; 18];
    t.upstream.read_exact(&mut seen).await.unwrap();
    t.close.send(GOING_AWAY).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(2), t.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.end, SpliceEnd::ProxyCut);
}

#[tokio::test]
async fn a_side_that_closed_first_gets_no_second_close() {
    let t = tunnel();
    let mut client = WebSocketStream::from_raw_socket(t.client, Role::Client, None).await;
    let mut upstream = WebSocketStream::from_raw_socket(t.upstream, Role::Server, None).await;
    // The client starts a close handshake; the upstream sees it but has not answered.
    client.close(None).await.unwrap();
    match upstream.next().await.unwrap().unwrap() {
        Message::Close(frame) => assert_eq!(frame.map(|f| f.code), None),
        other => panic!("{other:?}"),
    }
    t.close.send(GOING_AWAY).unwrap();
    // The client's close went to the upstream already, so the proxy sends the upstream
    // nothing more; the client gets the proxy's close as the answer to its own.
    let (messages, close) = until_close(&mut client).await;
    assert!(messages.is_empty());
    assert_eq!(
        close,
        Some((u16::from(CloseCode::Away), "going away".to_owned()))
    );
    // Reading on flushes the upstream's answer to the client's close.
    let (report, client_rest, upstream_rest) =
        tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(t.task, client.next(), upstream.next())
        })
        .await
        .unwrap();
    assert_eq!(report.unwrap().end, SpliceEnd::ProxyClosed);
    assert!(client_rest.is_none(), "{client_rest:?}");
    assert!(upstream_rest.is_none(), "{upstream_rest:?}");
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_with_1001_on_both_sides() {
    let t = tunnel_idling_out_after(Duration::from_millis(300));
    let mut client = WebSocketStream::from_raw_socket(t.client, Role::Client, None).await;
    let mut upstream = WebSocketStream::from_raw_socket(t.upstream, Role::Server, None).await;
    client.send(Message::text("only")).await.unwrap();
    assert_eq!(
        upstream.next().await.unwrap().unwrap(),
        Message::text("only")
    );
    let started = tokio::time::Instant::now();
    let ((_, client_close), (_, upstream_close)) =
        tokio::join!(until_close(&mut client), until_close(&mut upstream));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client_close, Some((1001, "idle timeout".to_owned())));
    assert_eq!(upstream_close, Some((1001, "idle timeout".to_owned())));
    let (report, _, _) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(t.task, client.next(), upstream.next())
    })
    .await
    .unwrap();
    assert_eq!(report.unwrap().end, SpliceEnd::IdleTimeout);
}
