//! `gangway probe wss://host/path`: does a WebSocket path work end to end?

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use gangway_tunnel::{ProbeOptions, probe};

/// What to probe and how.
#[derive(Debug, clap::Args)]
pub(crate) struct ProbeArgs {
    /// `ws://` or `wss://` URL of a WebSocket path that echoes.
    url: String,
    /// PEM file of the CAs to trust for `wss://`.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate chain (PEM) to present.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Accept any server certificate (diagnosis only).
    #[arg(long)]
    insecure: bool,
    /// Seconds allowed for each step.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

/// Connects, sends a message, expects its echo; prints each step, or the failing one.
pub(crate) async fn run(args: ProbeArgs) -> ExitCode {
    let client = args.cert.as_deref().zip(args.key.as_deref());
    let options = match ProbeOptions::from_files(args.ca.as_deref(), client) {
        Ok(options) => ProbeOptions {
            timeout: Duration::from_secs(args.timeout),
            insecure: args.insecure,
            ..options
        },
        Err(error) => return crate::fail(&format!("probe: {error}")),
    };
    match probe(&args.url, &options).await {
        Ok(report) => {
            report.lines().iter().for_each(|line| println!("{line}"));
            ExitCode::SUCCESS
        }
        Err(error) => crate::fail(&format!("FAILED at {}: {error}", error.step())),
    }
}
