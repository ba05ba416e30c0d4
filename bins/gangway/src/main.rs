//! `gangway`: the generic reverse-proxy binary.
//!
//! `run -c FILE` serves a configuration, `check -c FILE` validates one, `print-config -c
//! FILE` prints it normalised with every default filled in, and `demo` starts a working TLS
//! proxy in front of a built-in echo origin with no files at all.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "gangway",
    version,
    about = "A reverse proxy that is safe by default"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the configuration until SIGTERM or SIGINT, then drain and exit.
    Run {
        /// The configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate the configuration: print `ok`, or every error with file, line and column.
    Check {
        /// The configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the configuration normalised, with every default filled in.
    PrintConfig {
        /// The configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Start a TLS proxy in front of a built-in echo origin, with a generated certificate.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Check { config } => match gangway_config::load(&config) {
            Ok(_) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::PrintConfig { config } => match gangway_config::load(&config) {
            Ok(config) => {
                print!("{}", gangway_config::to_toml(&config));
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => match gangway_config::load(&config) {
            Ok(config) => block_on(serve(config, None)),
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Demo(args) => block_on(async move {
            let origin = match gangway_echo::EchoOrigin::bind(([127, 0, 0, 1], 0).into()).await {
                Ok(origin) => origin,
                Err(error) => {
                    eprintln!("demo: cannot start the echo origin: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match demo::config(&args, origin.local_addr()) {
                Ok(config) => serve(config, Some((origin, args))).await,
                Err(error) => {
                    eprintln!("demo: {error}");
                    ExitCode::FAILURE
                }
            }
        }),
    }
}

/// Runs `work` on a multi-threaded runtime.
fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until a shutdown signal.
async fn serve(
    config: gangway_config::Config,
    demo: Option<(gangway_echo::EchoOrigin, demo::DemoArgs)>,
) -> ExitCode {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = match gangway_proxy::Server::bind(&config, provider).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("{}", error_chain(&error));
            return ExitCode::FAILURE;
        }
    };
    let _echo = demo.map(|(origin, _args)| {
        demo::print_instructions(server.local_addrs());
        origin.spawn()
    });
    server.run(gangway_proxy::shutdown_signal()).await;
    ExitCode::SUCCESS
}

/// An error and its causes on one line: `listener "a": cannot bind ...: address in use`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
