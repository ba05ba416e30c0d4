//! `gangway-estos`: the estos UCServer / ProCall Mobile TLS front, from a profile file.
//!
//! `gangway-estos -c FILE` serves the profile file (SIGHUP reloads it, SIGTERM drains),
//! `--check` validates it and `--print-config` prints the generic configuration it expands
//! to. The keys are described in `docs/profiles/estos.md`.

fn main() -> std::process::ExitCode {
    gangway_profiles::run_profile::<gangway_profiles::Estos>()
}
