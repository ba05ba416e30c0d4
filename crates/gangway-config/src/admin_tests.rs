//! The `[admin]` table: loopback by default, remote only with a token, round trip.

use std::path::Path;

use crate::tests::{TempDir, errors};
use crate::{Admin, parse, to_toml};

const LISTENER: &str = "[[listener]]\naddress = \"127.0.0.1:8080\"\n\
     [[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n";

#[test]
fn no_admin_table_runs_no_admin_listener() {
    let config = parse(LISTENER, Path::new("/x/gangway.toml")).unwrap();
    assert_eq!(config.admin, None);
    assert!(!to_toml(&config).contains("[admin]"));
}

#[test]
fn loopback_address_is_accepted_and_round_trips() {
    let source = format!("[admin]\naddress = \"localhost:9901\"\n{LISTENER}");
    let config = parse(&source, Path::new("/x/gangway.toml")).unwrap();
    assert_eq!(
        config.admin,
        Some(Admin {
            address: "127.0.0.1:9901".parse().unwrap(),
            allow_remote: false,
            token_file: None,
        })
    );
    let written = to_toml(&config);
    assert!(written.contains("[admin]\naddress = \"127.0.0.1:9901\"\nallow_remote = false\n"));
    assert_eq!(parse(&written, Path::new("/y/z.toml")).unwrap(), config);

    let v6 = format!("[admin]\naddress = \"[::1]:9901\"\n{LISTENER}");
    assert!(parse(&v6, Path::new("/x/gangway.toml")).is_ok());
}

#[test]
fn remote_address_is_refused_without_allow_remote() {
    let source = format!("[admin]\naddress = \"0.0.0.0:9901\"\n{LISTENER}");
    assert_eq!(
        errors(&source),
        "/x/gangway.toml:2:11: admin.address = \"0.0.0.0:9901\": is not a loopback address, \
         and the admin listener can close tunnels; expected a loopback address such as \
         \"127.0.0.1:9901\" or \"[::1]:9901\", or `allow_remote = true` with a `token_file`"
    );
}

#[test]
fn remote_address_needs_a_token_file() {
    let source = format!("[admin]\naddress = \"0.0.0.0:9901\"\nallow_remote = true\n{LISTENER}");
    let message = errors(&source);
    assert!(
        message.starts_with("/x/gangway.toml:1:1: admin.token_file is missing"),
        "{message}"
    );

    let dir = TempDir::new();
    dir.write("admin.token", "0123456789abcdef0123\n");
    let source = source.replace(
        "allow_remote = true\n",
        "allow_remote = true\ntoken_file = \"admin.token\"\n",
    );
    let path = dir.write("gangway.toml", &source);
    let config = crate::load(&path).unwrap();
    let admin = config.admin.clone().unwrap();
    assert!(admin.allow_remote);
    assert_eq!(admin.token_file, Some(dir.path("admin.token")));
    assert_eq!(
        parse(&to_toml(&config), Path::new("/y/z.toml")).unwrap(),
        config
    );
}

#[test]
fn missing_token_file_and_bad_address_are_named() {
    let source = format!("[admin]\naddress = \"127.0.0.1\"\ntoken_file = \"nope\"\n{LISTENER}");
    let message = errors(&source);
    assert!(
        message.contains("admin.address = \"127.0.0.1\": has no port"),
        "{message}"
    );
    assert!(message.contains("admin.token_file"), "{message}");

    let missing = format!("[admin]\nallow_remote = false\n{LISTENER}");
    assert!(errors(&missing).contains("admin.address is missing"));

    let unknown = format!("[admin]\naddress = \"127.0.0.1:1\"\nport = 2\n{LISTENER}");
    assert!(errors(&unknown).contains("unknown field `port`"));
}

#[test]
fn admin_address_may_not_be_a_listener_address() {
    let source = format!("[admin]\naddress = \"127.0.0.1:8080\"\n{LISTENER}");
    assert_eq!(
        errors(&source),
        "/x/gangway.toml:2:11: admin.address: 127.0.0.1:8080 is already the address of the \
         listener at line 4; expected a different address for each listener"
    );
}
