//! The `probe` and `bridge` subcommands, for any binary that wants them (feature `cli`):
//! argument definitions for clap and the runners, which print for an operator and return
//! the process exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::{BridgeTarget, ProbeOptions, bridge_tcp_to_ws, bridge_ws_to_tcp, carry_tcp_over_ws};

/// How to reach a `wss://` endpoint: trust, client certificate, per-step timeout.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// PEM file of the CAs to trust for `wss://`.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM) to present.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Accept any server certificate (diagnosis only).
    #[arg(long)]
    pub insecure: bool,
    /// Seconds allowed for each step (DNS, TCP, TLS, handshake, echo).
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

impl TlsArgs {
    fn options(&self) -> Result<ProbeOptions, String> {
        let client = self.cert.as_deref().zip(self.key.as_deref());
        let options = ProbeOptions::from_files(self.ca.as_deref(), client)?;
        Ok(ProbeOptions {
            timeout: Duration::from_secs(self.timeout),
            insecure: self.insecure,
            ..options
        })
    }
}

/// `probe URL`: does a WebSocket path work end to end?
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// `ws://` or `wss://` URL of a WebSocket path that echoes.
    pub url: String,
    /// Trust, client certificate and timeout of the WebSocket connection.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `bridge`: TCP carried over WebSockets, in one of three modes.
#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("mode")
        .required(true)
        .multiple(true)
        .args(["listen", "ws_listen", "to"])
))]
pub struct BridgeArgs {
    /// Accept TCP connections here and carry each over a new WebSocket to `--to` (the
    /// viewer side: a VNC viewer connects to this port).
    #[arg(long, requires = "to", conflicts_with = "ws_listen")]
    pub listen: Option<SocketAddr>,
    /// Accept WebSocket clients here and connect each to `--to-tcp` (websockify's job).
    #[arg(long, requires = "to_tcp", conflicts_with = "to")]
    pub ws_listen: Option<SocketAddr>,
    /// The `ws://` or `wss://` URL to carry connections to. With `--to-tcp` and no
    /// `--listen`: open one WebSocket to it and carry it to one connection to `--to-tcp`,
    /// then exit (the device side of a relay session).
    #[arg(long)]
    pub to: Option<String>,
    /// The local TCP service (e.g. `127.0.0.1:5900`).
    #[arg(long)]
    pub to_tcp: Option<SocketAddr>,
    /// Seconds between pings on WebSockets this bridge opens, so idle tunnels survive idle
    /// timeouts on the way; 0 sends none.
    #[arg(long, default_value_t = 30)]
    pub ping_interval: u64,
    /// Trust, client certificate and timeout of the WebSocket connection.
    #[command(flatten)]
    pub tls: TlsArgs,
}

fn fail(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::FAILURE
}

/// Connects, sends a message, expects its echo; prints each step, or the failing one.
pub async fn probe(args: ProbeArgs) -> ExitCode {
    let options = match args.tls.options() {
        Ok(options) => options,
        Err(error) => return fail(&format!("probe: {error}")),
    };
    match crate::probe(&args.url, &options).await {
        Ok(report) => {
            report.lines().iter().for_each(|line| println!("{line}"));
            ExitCode::SUCCESS
        }
        Err(error) => fail(&format!("FAILED at {}: {error}", error.step())),
    }
}

/// Runs the bridge until it fails, its one session ends (dial-out mode), or the future is
/// dropped. Prints `BRIDGE <bound address> -> <target>` once listening, so a caller that
/// asked for port 0 learns the port.
pub async fn bridge(args: BridgeArgs) -> ExitCode {
    let options = match args.tls.options() {
        Ok(options) => options,
        Err(error) => return fail(&format!("bridge: {error}")),
    };
    let target = |url: String| BridgeTarget {
        url,
        options: options.clone(),
        ping_interval: (args.ping_interval > 0).then(|| Duration::from_secs(args.ping_interval)),
    };
    match (args.listen, args.ws_listen, args.to.clone(), args.to_tcp) {
        (Some(listen), None, Some(url), _) => {
            let Some(listener) = bind(listen).await else {
                return ExitCode::FAILURE;
            };
            announce(&listener, &url);
            bridge_tcp_to_ws(listener, target(url)).await;
            ExitCode::SUCCESS
        }
        (None, Some(listen), None, Some(to)) => {
            let Some(listener) = bind(listen).await else {
                return ExitCode::FAILURE;
            };
            announce(&listener, &to.to_string());
            bridge_ws_to_tcp(listener, to).await;
            ExitCode::SUCCESS
        }
        (None, None, Some(url), Some(to)) => {
            let service = match TcpStream::connect(to).await {
                Ok(service) => service,
                Err(error) => return fail(&format!("bridge: cannot connect to {to}: {error}")),
            };
            match carry_tcp_over_ws(service, &target(url)).await {
                Ok(report) => {
                    println!(
                        "CLOSED {to}: {} bytes to the WebSocket, {} bytes from it",
                        report.tcp_to_ws, report.ws_to_tcp
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => fail(&format!("FAILED at {}: {error}", error.step())),
            }
        }
        _ => fail(
            "bridge: use --listen ADDR --to URL, --ws-listen ADDR --to-tcp ADDR, or --to URL \
             --to-tcp ADDR",
        ),
    }
}

async fn bind(address: SocketAddr) -> Option<TcpListener> {
    TcpListener::bind(address)
        .await
        .inspect_err(|error| eprintln!("bridge: cannot listen on {address}: {error}"))
        .ok()
}

fn announce(listener: &TcpListener, target: &str) {
    match listener.local_addr() {
        Ok(address) => println!("BRIDGE {address} -> {target}"),
        Err(error) => eprintln!("bridge: listening, address unknown: {error}"),
    }
}
