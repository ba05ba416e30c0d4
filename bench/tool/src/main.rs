//! `gangway-bench`: the origin and the load clients of the side-by-side benchmark that
//! `bench/run` drives against gangway, nginx and HAProxy (see `bench/README.md`).
//!
//! - `origin`: the one upstream every proxy forwards to. HTTP/1.1 only: any path answers
//!   `200` with a 13-byte body, `/download?bytes=N` streams N zero bytes, `/upload` reads the
//!   whole request body and answers with its length, `/ws` is a WebSocket echo.
//! - `ws-load`: N WebSocket connections, each sending a small message and waiting for its
//!   echo, in a loop, for a fixed time: messages per second and latency percentiles.
//! - `handshakes`: N loops, each opening a TLS 1.3 connection (full handshake, no
//!   resumption), sending one request with `Connection: close` and reading the response,
//!   for a fixed time: new connections per second and latency percentiles.
//! - `hold`: opens N connections of one kind (plain HTTP, HTTPS or WebSocket), each having
//!   completed one request (or one echo), holds them all and reports how much the resident
//!   memory of the given processes grew per connection.
//!
//! Every command runs on a single-threaded runtime: `bench/run` pins it to one core.

mod handshakes;
mod hold;
mod http1;
mod origin;
mod tls;
mod ws_load;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "gangway-bench",
    about = "Origin and load clients for bench/run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the benchmark origin until killed.
    Origin {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Echo small WebSocket messages over many connections for a fixed time.
    WsLoad {
        /// Proxy address (plain TCP); the path requested is `/ws`.
        #[arg(long)]
        addr: SocketAddr,
        /// Concurrent connections, each with one message in flight.
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// How long to send, in seconds (after all connections are open).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Message size in bytes.
        #[arg(long, default_value_t = 32)]
        size: usize,
    },
    /// Open TLS connections one after another over many loops for a fixed time.
    Handshakes {
        /// Proxy address (TLS 1.3; SNI `localhost`).
        #[arg(long)]
        addr: SocketAddr,
        /// Concurrent loops.
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// How long, in seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Hold many connections through a proxy and report its memory per connection.
    Hold(hold::HoldArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Origin { listen } => origin::run(listen).await,
            Command::WsLoad {
                addr,
                connections,
                seconds,
                size,
            } => ws_load::run(addr, connections, Duration::from_secs(seconds), size).await,
            Command::Handshakes {
                addr,
                connections,
                seconds,
            } => handshakes::run(addr, connections, Duration::from_secs(seconds)).await,
            Command::Hold(args) => hold::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gangway-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The error type of every command: whatever failed, as text for the script's log.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// The `q`-quantile (0..=1) of sorted samples, or 0 when there are none.
pub(crate) fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank; the float is at most len - 1, so the cast cannot truncate a valid index.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
