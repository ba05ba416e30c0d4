//! `gangway-allegro`: remote access to Allegro multimeters by hostname, from a profile file.
//!
//! `gangway-allegro -c FILE` serves the profile file (SIGHUP reloads it, SIGTERM drains),
//! `--check` validates it and `--print-config` prints the generic configuration it expands
//! to. The keys are described in `docs/profiles/allegro.md`.

fn main() -> std::process::ExitCode {
    gangway_profiles::run_profile::<gangway_profiles::Allegro>()
}
