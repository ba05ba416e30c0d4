//! Closed-loop WebSocket echo load: every connection has one message in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::{WebSocketStream, client_async};
use tungstenite::Message;

use crate::{Error, quantile};

/// Connections opened at the same time while setting up.
const OPENING: usize = 100;

/// Opens `connections` WebSockets to `ws://addr/ws`, then echoes `size`-byte binary
/// messages on all of them for `duration`; prints messages/s and latency percentiles.
pub(crate) async fn run(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    size: usize,
) -> Result<(), Error> {
    let sockets = open(addr, connections).await?;
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + duration);
    let payload = Bytes::from(vec![b'x'; size]);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|socket| tokio::spawn(echo_loop(socket, payload.clone(), deadline)))
        .collect();
    let mut latencies = Vec::new();
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    for task in tasks {
        let (samples, failure) = task.await?;
        latencies.extend(samples);
        if let Some(failure) = failure {
            *failures.entry(failure).or_default() += 1;
        }
    }
    for (failure, count) in &failures {
        eprintln!("{count} connections failed: {failure}");
    }
    let failed: usize = failures.values().sum();
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let rate = latencies.len() as f64 / elapsed;
    println!(
        "messages={} seconds={elapsed:.2} messages_per_s={rate:.0} p50_us={} p99_us={} \
         failed_connections={failed}",
        latencies.len(),
        quantile(&latencies, 0.50),
        quantile(&latencies, 0.99),
    );
    Ok(())
}

/// Opens the connections, `OPENING` at a time.
pub(crate) async fn open(
    addr: SocketAddr,
    connections: usize,
) -> Result<Vec<WebSocketStream<TcpStream>>, Error> {
    let gate = Arc::new(Semaphore::new(OPENING));
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                connect(addr).await
            })
        })
        .collect();
    let mut sockets = Vec::with_capacity(connections);
    for task in tasks {
        sockets.push(task.await??);
    }
    Ok(sockets)
}

/// One WebSocket to `ws://addr/ws`.
pub(crate) async fn connect(addr: SocketAddr) -> Result<WebSocketStream<TcpStream>, Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (socket, _) = client_async(format!("ws://{addr}/ws"), stream).await?;
    Ok(socket)
}

/// Sends, waits for the echo, records the round trip in microseconds; until `deadline` or
/// the first failure, which is returned with the samples taken before it.
async fn echo_loop(
    mut socket: WebSocketStream<TcpStream>,
    payload: Bytes,
    deadline: tokio::time::Instant,
) -> (Vec<u32>, Option<String>) {
    let mut samples = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let sent = Instant::now();
        if let Err(error) = socket.send(Message::Binary(payload.clone())).await {
            return (samples, Some(format!("send: {error}")));
        }
        match tokio::time::timeout_at(deadline + Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Binary(echo)))) if echo.len() == payload.len() => {}
            Ok(Some(Err(error))) => return (samples, Some(format!("receive: {error}"))),
            Ok(other) => return (samples, Some(format!("unexpected echo: {other:?}"))),
            Err(_) => return (samples, Some("no echo within 5 s of the end".to_owned())),
        }
        samples.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    let _ = socket.close(None).await;
    (samples, None)
}
