//! Validates a configuration file the way `gangway check` does, then prints it normalised.
//!
//! ```text
//! cargo run -p gangway-config --example check -- gangway.toml
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: check FILE");
        return ExitCode::FAILURE;
    };
    match gangway_config::load(&path) {
        Ok(config) => {
            println!("ok");
            print!("{}", gangway_config::to_toml(&config));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}
