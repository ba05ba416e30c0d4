//! Reading a profile file and the command line every profile binary shares.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use gangway_config::Config;
use tracing_subscriber::EnvFilter;

use crate::error::{Error, Errors};
use crate::values::Check;
use gangway_config::Location;

/// A deployment profile: a small TOML file whose keys expand into a generic configuration.
pub trait Profile: serde::de::DeserializeOwned {
    /// The profile's name, as in `gangway-<name>`.
    const NAME: &'static str;

    /// Checks every value and writes the generic configuration TOML, with absolute file
    /// paths; `text` is the file the profile was read from, for positions in errors.
    ///
    /// # Errors
    ///
    /// Every problem found, each naming `file`, line and column.
    fn expand(&self, file: &Path, text: &str) -> Result<String, Errors>;
}

/// Expands the profile text read from `path` into generic configuration TOML, validated by
/// [`gangway_config::parse`]. Errors name `path`, line and column in the profile file.
///
/// # Errors
///
/// Every problem of the profile file; or [`Error::Expanded`] when the result does not
/// validate (file contents the profile cannot see, such as a key that fails to load,
/// are checked only when serving).
pub fn expand<P: Profile>(text: &str, path: &Path) -> Result<String, Errors> {
    Ok(expand_and_parse::<P>(text, path)?.0)
}

/// Reads the profile file at `path` and returns the expansion and its configuration.
///
/// # Errors
///
/// As [`expand`], or [`Error::Read`] when the file cannot be read.
pub fn load<P: Profile>(path: &Path) -> Result<(String, Config), Errors> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        file: path.to_path_buf(),
        source: source.into(),
    })?;
    expand_and_parse::<P>(&text, path)
}

fn expand_and_parse<P: Profile>(text: &str, path: &Path) -> Result<(String, Config), Errors> {
    let positions = Check::new(path, text);
    let profile: P = toml::from_str(text).map_err(|error| {
        let at = error.span().map_or_else(
            || Location {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
            },
            |span| positions.at(span.start),
        );
        Error::Syntax {
            at,
            message: error.message().trim_end().to_owned(),
        }
    })?;
    let expansion = profile.expand(path, text)?;
    // The generic reader has the last word, so `--print-config` is exactly what
    // `gangway run` accepts.
    let expanded_name = path.with_extension("expanded.toml");
    let config =
        gangway_config::parse(&expansion, &expanded_name).map_err(|source| Error::Expanded {
            file: path.to_path_buf(),
            source,
        })?;
    Ok((expansion, config))
}

#[derive(Debug, Parser)]
struct Cli {
    /// The profile file (TOML).
    #[arg(short, long)]
    config: PathBuf,
    /// Validate the profile file: print `ok`, or every error with file, line and column.
    #[arg(long, conflicts_with = "print_config")]
    check: bool,
    /// Print the generic configuration the profile expands to (what `gangway run` accepts).
    #[arg(long)]
    print_config: bool,
}

/// The whole `main` of a profile binary: `-c FILE` serves the profile (SIGHUP reloads the
/// file, SIGTERM or SIGINT drains and exits), `--check` validates it and `--print-config`
/// prints its expansion.
pub fn run_profile<P: Profile>() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let (expansion, config) = match load::<P>(&cli.config) {
        Ok(loaded) => loaded,
        Err(errors) => return fail(&errors.to_string()),
    };
    if cli.check {
        println!("ok");
        return ExitCode::SUCCESS;
    }
    if cli.print_config {
        print!("{expansion}");
        return ExitCode::SUCCESS;
    }
    match gangway_proxy::start_threads() {
        Ok(threads) => threads
            .runtime
            .block_on(serve::<P>(config, threads.workers, cli.config)),
        Err(error) => fail(&error.to_string()),
    }
}

async fn serve<P: Profile>(
    config: Config,
    workers: gangway_proxy::Workers,
    file: PathBuf,
) -> ExitCode {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = match gangway_proxy::Server::bind(&config, provider).await {
        Ok(server) => server.spread_over(workers),
        Err(error) => return fail(&error.report()),
    };
    let load = move || {
        load::<P>(&file)
            .map(|(_, config)| config)
            .map_err(|errors| errors.to_string())
    };
    tokio::spawn(gangway_proxy::reload_config_on_hangup(
        server.reload_handle(),
        load,
    ));
    server.run(gangway_proxy::shutdown_signal()).await;
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::FAILURE
}
