//! `gangway`: the generic reverse-proxy binary.
//!
//! `run -c FILE` serves a configuration, `check -c FILE` validates one, `print-config -c
//! FILE` prints it normalised with every default filled in, and `demo` starts a working TLS
//! proxy in front of a built-in echo origin with no files at all.

mod demo;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gangway_config::Config;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "gangway", version, about = "A reverse proxy, safe by default")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the configuration until SIGTERM or SIGINT, then drain and exit.
    Run(ConfigFile),
    /// Validate the configuration: print `ok`, or every error with file, line and column.
    Check(ConfigFile),
    /// Print the configuration normalised, with every default filled in.
    PrintConfig(ConfigFile),
    /// Start a TLS proxy in front of a built-in echo origin, with a generated certificate.
    Demo(demo::DemoArgs),
    /// Check a WebSocket path end to end: connect, send, expect the echo.
    Probe(gangway_tunnel::cli::ProbeArgs),
    /// Carry TCP over WebSockets: --listen/--to, --ws-listen/--to-tcp, or --to/--to-tcp.
    Bridge(gangway_tunnel::cli::BridgeArgs),
}

#[derive(Debug, clap::Args)]
struct ConfigFile {
    /// The configuration file (TOML).
    #[arg(short, long)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Check(file) => with_config(&file.config, |_| {
            println!("ok");
            ExitCode::SUCCESS
        }),
        Command::PrintConfig(file) => with_config(&file.config, |config| {
            print!("{}", gangway_config::to_toml(&config));
            ExitCode::SUCCESS
        }),
        Command::Run(file) => with_config(&file.config, |config| block_on(serve(config, None))),
        Command::Probe(args) => block_on(gangway_tunnel::cli::probe(args)),
        Command::Bridge(args) => block_on(gangway_tunnel::cli::bridge(args)),
        Command::Demo(args) => block_on(async move {
            let origin = match gangway_echo::EchoOrigin::bind(([127, 0, 0, 1], 0).into()).await {
                Ok(origin) => origin,
                Err(error) => return fail(&format!("demo: cannot start the echo origin: {error}")),
            };
            match demo::config(&args, origin.local_addr()) {
                Ok(config) => serve(config, Some(origin)).await,
                Err(error) => fail(&format!("demo: {error}")),
            }
        }),
    }
}

/// Loads the file and hands it on, or prints every error and fails.
fn with_config(path: &Path, then: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    match gangway_config::load(path) {
        Ok(config) => then(config),
        Err(errors) => fail(&errors.to_string()),
    }
}

pub(crate) fn fail(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::FAILURE
}

/// Runs `work` on a multi-threaded runtime.
fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(error) => fail(&format!("cannot start the runtime: {error}")),
    }
}

/// Serves until a shutdown signal; the demo's echo origin runs alongside.
async fn serve(config: Config, demo: Option<gangway_echo::EchoOrigin>) -> ExitCode {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = match gangway_proxy::Server::bind(&config, provider).await {
        Ok(server) => server,
        Err(error) => return fail(&error.report()),
    };
    let _echo = demo.map(|origin| {
        demo::print_instructions(server.local_addrs(), server.admin_addr());
        origin.spawn()
    });
    tokio::spawn(gangway_proxy::reload_on_hangup(server.tls_reloader()));
    server.run(gangway_proxy::shutdown_signal()).await;
    ExitCode::SUCCESS
}
