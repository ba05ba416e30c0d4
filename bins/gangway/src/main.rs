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
    /// Serve the configuration until SIGTERM or SIGINT, then drain and exit; SIGHUP
    /// reloads the file.
    Run(RunArgs),
    /// Ask a running `gangway run --pid-file FILE` to reload its configuration (SIGHUP).
    Reload(ReloadArgs),
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

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    file: ConfigFile,
    /// Write the process id here, for `gangway reload`.
    #[arg(long)]
    pid_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ReloadArgs {
    /// The file `gangway run --pid-file` wrote.
    #[arg(long)]
    pid_file: PathBuf,
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
        Command::Run(RunArgs { file, pid_file }) => with_config(&file.config, |config| {
            block_on(|workers| serve(config, workers, None, Some(file.config.clone()), pid_file))
        }),
        Command::Reload(args) => match gangway_proxy::send_reload_signal(&args.pid_file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&format!("reload: {error}")),
        },
        Command::Probe(args) => block_on(|_| gangway_tunnel::cli::probe(args)),
        Command::Bridge(args) => block_on(|_| gangway_tunnel::cli::bridge(args)),
        Command::Demo(args) => block_on(|workers| async move {
            let origin = match gangway_echo::EchoOrigin::bind(([127, 0, 0, 1], 0).into()).await {
                Ok(origin) => origin,
                Err(error) => return fail(&format!("demo: cannot start the echo origin: {error}")),
            };
            match demo::config(&args, origin.local_addr()) {
                Ok(config) => serve(config, workers, Some(origin), None, None).await,
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

/// Runs `work` on the main thread, with the workers of [`gangway_proxy::start_threads`].
fn block_on<F: std::future::Future<Output = ExitCode>>(
    work: impl FnOnce(gangway_proxy::Workers) -> F,
) -> ExitCode {
    match gangway_proxy::start_threads() {
        Ok(threads) => threads.runtime.block_on(work(threads.workers)),
        Err(error) => fail(&error.to_string()),
    }
}

/// Serves until a shutdown signal, reloading `file` (or `config` again) on SIGHUP; the
/// demo's echo origin runs alongside.
async fn serve(
    config: Config,
    workers: gangway_proxy::Workers,
    demo: Option<gangway_echo::EchoOrigin>,
    file: Option<PathBuf>,
    pid_file: Option<PathBuf>,
) -> ExitCode {
    // Lines still queued are written out when `serve` returns.
    let _access_log = match gangway_proxy::AccessLog::install(&config.server.access_log) {
        Ok(access_log) => access_log,
        Err(error) => return fail(&error.report()),
    };
    tokio::spawn(gangway_proxy::reopen_logs_on_usr1());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = match gangway_proxy::Server::bind(&config, provider).await {
        Ok(server) => server.spread_over(workers),
        Err(error) => return fail(&error.report()),
    };
    let _echo = demo.map(|origin| {
        demo::print_instructions(server.local_addrs());
        origin.spawn()
    });
    let load = move || match &file {
        Some(path) => gangway_config::load(path).map_err(|errors| errors.to_string()),
        None => Ok(config.clone()),
    };
    let reloads = gangway_proxy::reload_config_on_hangup(server.reload_handle(), load);
    tokio::spawn(reloads);
    let _pid_file = match pid_file.as_deref().map(gangway_proxy::PidFile::create) {
        Some(Err(error)) => return fail(&error),
        pid_file => pid_file,
    };
    server.run(gangway_proxy::shutdown_signal()).await;
    ExitCode::SUCCESS
}
