//! Idle connections held open through a proxy, and the proxy's memory per connection.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;

use crate::Error;
use crate::http1::request;

/// Connections opened at the same time, so that the proxy never needs more than this many
/// upstream connections at once.
const OPENING: usize = 50;

/// Connections opened (and held) before the baseline is read, so that one-off costs of the
/// first connections (buffers, pools, allocator arenas) do not count as per-connection cost.
const WARM: usize = 100;

/// What `hold` opens and whose memory it reads.
#[derive(Debug, clap::Args)]
pub(crate) struct HoldArgs {
    /// Proxy address.
    #[arg(long)]
    addr: SocketAddr,
    /// `http` (one request, keep-alive), `https` (handshake and one request) or `ws`
    /// (upgrade to `/ws` and one echoed message).
    #[arg(long)]
    kind: Kind,
    /// Connections to hold, besides the warm-up ones.
    #[arg(long)]
    connections: usize,
    /// PEM file with the CA of the proxy's certificate (for `https`).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Server name to send and verify (for `https`).
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// The proxy's processes, comma-separated: their `VmRSS` values are added up.
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    Http,
    Https,
    Ws,
}

/// A connection kept open: nothing is read or written on it between the first exchange and
/// the check at the end.
enum Held {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Ws(Box<WebSocketStream<TcpStream>>),
}

/// Opens the warm-up connections, reads the RSS, opens the rest, reads it again.
pub(crate) async fn run(args: HoldArgs) -> Result<(), Error> {
    let tls = match args.kind {
        Kind::Https => {
            let ca = args.ca.as_ref().ok_or("--kind https needs --ca")?;
            Some(crate::tls::verifying(ca)?)
        }
        Kind::Http | Kind::Ws => None,
    };
    let name = ServerName::try_from(args.server_name.clone())?;
    let target = Arc::new(Target {
        addr: args.addr,
        kind: args.kind,
        tls,
        name,
    });
    let mut held = open(&target, WARM).await?;
    settle().await;
    let before = rss_kib(&args.pids)?;
    held.extend(open(&target, args.connections).await?);
    settle().await;
    let after = rss_kib(&args.pids)?;
    #[allow(clippy::cast_precision_loss)] // small numbers
    let per_connection = (after as f64 - before as f64) / args.connections as f64;
    // Every connection must still work: one that the proxy closed would make its memory
    // look smaller.
    let mut alive = 0;
    for connection in &mut held {
        if connection.still_works().await {
            alive += 1;
        }
    }
    println!(
        "connections={} rss_before_kib={before} rss_after_kib={after} \
         kib_per_connection={per_connection:.1} alive={alive} held={}",
        args.connections,
        held.len()
    );
    drop(held);
    Ok(())
}

impl Held {
    /// One more request (or echoed message) on the connection, within 5 s.
    async fn still_works(&mut self) -> bool {
        let exchange = async {
            match self {
                Held::Tcp(stream) => request(stream, false).await,
                Held::Tls(stream) => request(stream.as_mut(), false).await,
                Held::Ws(socket) => {
                    socket.send(Message::text("again")).await?;
                    match socket.next().await {
                        Some(Ok(Message::Text(_))) => Ok(()),
                        other => Err(format!("no echo: {other:?}").into()),
                    }
                }
            }
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(5), exchange).await,
            Ok(Ok(()))
        )
    }
}

/// Gives the proxy a moment to finish with the last connections.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

struct Target {
    addr: SocketAddr,
    kind: Kind,
    tls: Option<TlsConnector>,
    name: ServerName<'static>,
}

/// Opens `count` connections, `OPENING` at a time; fails if any fails.
async fn open(target: &Arc<Target>, count: usize) -> Result<Vec<Held>, Error> {
    let gate = Arc::new(Semaphore::new(OPENING));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let (gate, target) = (gate.clone(), target.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                one(&target).await
            })
        })
        .collect();
    let mut held = Vec::with_capacity(count);
    for task in tasks {
        held.push(task.await??);
    }
    Ok(held)
}

async fn one(target: &Target) -> Result<Held, Error> {
    let stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    match (target.kind, &target.tls) {
        (Kind::Http, _) => {
            let mut stream = stream;
            request(&mut stream, false).await?;
            Ok(Held::Tcp(stream))
        }
        (Kind::Https, Some(tls)) => {
            let mut stream = tls.connect(target.name.clone(), stream).await?;
            request(&mut stream, false).await?;
            Ok(Held::Tls(Box::new(stream)))
        }
        (Kind::Https, None) => Err("no TLS configuration".into()),
        (Kind::Ws, _) => {
            let url = format!("ws://{}/ws", target.addr);
            let (mut socket, _) = tokio_tungstenite::client_async(url, stream).await?;
            socket.send(Message::text("hello")).await?;
            match socket.next().await {
                Some(Ok(Message::Text(_))) => Ok(Held::Ws(Box::new(socket))),
                other => Err(format!("no echo: {other:?}").into()),
            }
        }
    }
}

/// The sum of `VmRSS` of `pids`, in KiB.
fn rss_kib(pids: &[u32]) -> Result<u64, Error> {
    let mut total = 0;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        total += status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .ok_or_else(|| format!("no VmRSS for {pid}"))?;
    }
    Ok(total)
}
