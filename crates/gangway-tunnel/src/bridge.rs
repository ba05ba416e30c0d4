//! TCP <-> WebSocket bridges: a local TCP service reached through a WebSocket tunnel.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::ProbeOptions;
use crate::probe::connect;

/// Where [`bridge_tcp_to_ws`] carries each TCP connection.
#[derive(Debug, Clone)]
pub struct BridgeTarget {
    /// The `ws://` or `wss://` URL; each TCP connection opens its own WebSocket to it.
    pub url: String,
    /// Trust, client certificate and per-step timeout of the WebSocket connection
    /// (`message` is unused).
    pub options: ProbeOptions,
    /// A ping is sent this often so that idle tunnels survive idle timeouts on the way;
    /// `None` sends none. Default 30 s.
    pub ping_interval: Option<Duration>,
}

impl BridgeTarget {
    /// A target with default options and a 30 s ping.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            options: ProbeOptions::default(),
            ping_interval: Some(Duration::from_secs(30)),
        }
    }
}

/// What one bridged connection carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeReport {
    /// Bytes read from TCP and sent as WebSocket messages.
    pub tcp_to_ws: u64,
    /// Bytes of WebSocket messages written to TCP.
    pub ws_to_tcp: u64,
}

/// After the TCP side ended, how long the WebSocket peer has to finish its close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts TCP connections on `listener` and carries each over a new WebSocket to
/// `target` (binary messages, a ping every [`BridgeTarget::ping_interval`]). Runs until
/// dropped; dropping it also ends the connections it carries. A connection whose
/// WebSocket cannot be opened is closed and the failing step logged.
pub async fn bridge_tcp_to_ws(listener: TcpListener, target: BridgeTarget) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, client)) => {
                    let target = target.clone();
                    connections.spawn(async move {
                        match carry_tcp_over_ws(tcp, &target).await {
                            Ok(report) => tracing::debug!(%client, ?report, "bridged connection ended"),
                            Err(error) => tracing::warn!(%client, step = %error.step(), %error, "bridge could not open its WebSocket"),
                        }
                    });
                }
                Err(error) => accept_failed(&error).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Carries one TCP connection over a new WebSocket to `target`, until either side ends.
pub async fn carry_tcp_over_ws(
    tcp: TcpStream,
    target: &BridgeTarget,
) -> Result<BridgeReport, crate::ProbeError> {
    let _ = tcp.set_nodelay(true);
    let (ws, _peer, _timings) = connect(&target.url, &target.options).await?;
    Ok(pump(tcp, ws, target.ping_interval).await)
}

/// Accepts WebSocket clients on `listener` (any path; the server side of the handshake)
/// and connects each to the TCP service at `to`, carrying binary (and text) messages as
/// bytes. Runs until dropped; dropping it also ends the connections it carries.
pub async fn bridge_ws_to_tcp(listener: TcpListener, to: SocketAddr) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, client)) => {
                    connections.spawn(async move {
                        match carry_ws_to_tcp(tcp, to).await {
                            Ok(report) => tracing::debug!(%client, ?report, "bridged connection ended"),
                            Err(error) => tracing::warn!(%client, %to, %error, "bridge connection failed"),
                        }
                    });
                }
                Err(error) => accept_failed(&error).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers one client's WebSocket handshake on `io` and carries its messages to a new TCP
/// connection to `to`. The TCP connection is made before the handshake is answered, so a
/// client of an unreachable service sees its handshake fail.
pub async fn carry_ws_to_tcp<S>(io: S, to: SocketAddr) -> io::Result<BridgeReport>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let service = TcpStream::connect(to).await?;
    let _ = service.set_nodelay(true);
    let ws = tokio_tungstenite::accept_async(io)
        .await
        .map_err(io::Error::other)?;
    Ok(pump(service, ws, None).await)
}

async fn accept_failed(error: &io::Error) {
    // Out of descriptors and the like: wait rather than spin.
    tracing::warn!(%error, "bridge accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Copies TCP bytes into binary messages and messages into TCP bytes. WebSocket has no
/// half-close, so the end of either side ends the tunnel: a TCP EOF sends a close (1000),
/// a close from the WebSocket peer shuts the TCP connection.
async fn pump<T, S>(tcp: T, ws: WebSocketStream<S>, ping: Option<Duration>) -> BridgeReport
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut tcp_read, mut tcp_write) = tokio::io::split(tcp);
    let (mut sink, mut stream) = ws.split();
    let mut ticker = ping.map(|every| tokio::time::interval_at(Instant::now() + every, every));
    let (mut tcp_to_ws, mut ws_to_tcp) = (0u64, 0u64);
    {
        let up = async {
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                tokio::select! {
                    read = tcp_read.read(&mut buffer) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            let message = Message::binary(buffer[..read].to_vec());
                            if sink.send(message).await.is_err() {
                                return;
                            }
                            tcp_to_ws += read as u64;
                        }
                    },
                    () = tick(&mut ticker) => {
                        if sink.send(Message::Ping(Default::default())).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let normal = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            let _ = sink.send(Message::Close(Some(normal))).await;
        };
        let down = async {
            while let Some(Ok(message)) = stream.next().await {
                let bytes = match message {
                    Message::Binary(bytes) => bytes,
                    Message::Text(text) => text.into(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                if tcp_write.write_all(&bytes).await.is_err() {
                    break;
                }
                ws_to_tcp += bytes.len() as u64;
            }
            let _ = tcp_write.shutdown().await;
        };
        tokio::pin!(up, down);
        tokio::select! {
            () = &mut up => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, down).await;
            }
            () = &mut down => {}
        }
    }
    BridgeReport {
        tcp_to_ws,
        ws_to_tcp,
    }
}
