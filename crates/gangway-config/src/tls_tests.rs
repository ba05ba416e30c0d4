//! The TLS keys: certificates by SNI, CRLs, upstream verification, the watch interval.

use std::path::Path;
use std::time::Duration;

use gangway_tls::{CertificateSource, Sha256Fingerprint, TlsVersions, UnknownSni};

use crate::tests::{TempDir, errors};
use crate::{ServerCertificate, parse, to_toml};

const PIN: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

fn files(dir: &TempDir, names: &[&str]) {
    for name in names {
        dir.write(name, "");
    }
}

#[test]
fn certificates_by_sni_with_a_default_and_reject() {
    let dir = TempDir::new();
    files(
        &dir,
        &["a.pem", "a.key", "b.pem", "b.key", "w.pem", "w.key"],
    );
    let source = r#"
[server]
certificate_watch_interval = "2s"

[[listener]]
address = "127.0.0.1:443"
unknown_sni = "reject"

[[listener.certificates]]
certificate = "a.pem"
private_key = "a.key"
names = ["A.example.com."]

[[listener.certificates]]
certificate = "b.pem"
private_key = "b.key"
names = ["b.example.com", "c.example.com"]
default = true

[[listener.certificates]]
certificate = "w.pem"
private_key = "w.key"
names = ["*.Devices.example.com"]

[[listener.route]]
path = "/"
respond = { status = 200 }
"#;
    let config = parse(source, &dir.path("gangway.toml")).unwrap();
    assert_eq!(
        config.server.certificate_watch_interval,
        Some(Duration::from_secs(2))
    );
    let tls = config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.unknown_sni, UnknownSni::Reject);
    let entry = |chain: &str, key: &str, names: &[&str], default| ServerCertificate {
        source: CertificateSource::Files {
            chain: dir.path(chain),
            key: dir.path(key),
        },
        names: names.iter().map(|name| (*name).to_owned()).collect(),
        default,
    };
    assert_eq!(
        tls.certificates,
        vec![
            entry("a.pem", "a.key", &["a.example.com"], false),
            entry("b.pem", "b.key", &["b.example.com", "c.example.com"], true),
            entry("w.pem", "w.key", &["*.devices.example.com"], false),
        ]
    );
    let written = to_toml(&config);
    assert!(written.contains("unknown_sni = \"reject\""), "{written}");
    assert_eq!(
        parse(&written, Path::new("/elsewhere.toml")).unwrap(),
        config
    );
}

#[test]
fn certificate_list_mistakes_are_named() {
    let dir = TempDir::new();
    files(&dir, &["a.pem", "a.key"]);
    let source = r#"[[listener]]
address = "127.0.0.1:443"
unknown_sni = "drop"
certificates = [
    { certificate = "a.pem", private_key = "a.key", names = ["a.example.com", "x.*.example.com", "10.0.0.1"], default = true },
    { certificate = "a.pem", names = ["A.example.com"], default = true },
]
[[listener.route]]
path = "/"
respond = { status = 200 }
"#;
    let error = parse(source, &dir.path("gangway.toml"))
        .unwrap_err()
        .to_string();
    for expected in [
        ":3:15: listener[1].unknown_sni = \"drop\": is not an unknown-SNI policy",
        "listener[1].certificates[1].names = \"x.*.example.com\": has a wildcard that is not one whole leftmost label",
        "listener[1].certificates[1].names = \"10.0.0.1\": is an IP address",
        ":6:21: listener[1].certificates[2]: `certificate` is set without `private_key`",
        ":6:39: listener[1].certificates[2].names = \"A.example.com\": is also a name of certificates[1]",
        ":6:67: listener[1].certificates[2].default = true: is set on a second certificate",
    ] {
        assert!(
            error.contains(expected),
            "missing {expected:?} in:\n{error}"
        );
    }
}

#[test]
fn one_certificate_or_a_list_not_both() {
    let error = errors(
        "[[listener]]\naddress = \"127.0.0.1:443\"\ncertificate = \"a\"\nprivate_key = \"b\"\n\
         certificates = []\n[[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n",
    );
    assert!(
        error.contains(
            ":5:16: listener[1].certificates = [...]: is set together with certificate/private_key"
        ),
        "{error}"
    );
}

#[test]
fn sni_and_crl_keys_need_a_tls_listener_and_a_ca() {
    let error = errors(
        "[[listener]]\naddress = \"127.0.0.1:80\"\nunknown_sni = \"reject\"\nclient_crls = [\"crl.pem\"]\n\
         [[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n",
    );
    assert!(
        error.contains(
            ":3:15: listener[1].unknown_sni = unknown_sni: is set on a listener without TLS"
        ),
        "{error}"
    );
    assert!(
        error.contains(
            ":4:15: listener[1].client_crls = client_crls: is set on a listener without TLS"
        ),
        "{error}"
    );
    let error = errors(
        "[[listener]]\naddress = \"127.0.0.1:443\"\ncertificate = \"/c\"\nprivate_key = \"/k\"\n\
         client_crls = [\"crl.pem\"]\n[[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n",
    );
    assert!(
        error.contains(":5:15: listener[1].client_crls = [...]: needs client_ca"),
        "{error}"
    );
}

#[test]
fn client_crls_are_files_next_to_the_ca() {
    let dir = TempDir::new();
    files(&dir, &["c.pem", "k.pem", "ca.pem", "crl.pem"]);
    let source = "[[listener]]\naddress = \"127.0.0.1:443\"\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\n\
         client_certificates = \"optional\"\nclient_ca = \"ca.pem\"\nclient_crls = [\"crl.pem\"]\n\
         [[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n";
    let config = parse(source, &dir.path("gangway.toml")).unwrap();
    assert_eq!(config.listeners[0].client_crls, vec![dir.path("crl.pem")]);
    let written = to_toml(&config);
    assert_eq!(
        parse(&written, Path::new("/elsewhere.toml")).unwrap(),
        config
    );
}

#[test]
fn upstream_pins_versions_and_client_certificate() {
    let dir = TempDir::new();
    files(&dir, &["client.pem", "client.key"]);
    let source = format!(
        "[server]\ncertificate_watch_interval = \"off\"\n\
         [[upstream]]\nname = \"device\"\npeers = [\"https://192.0.2.10\"]\npin_sha256 = [\"{PIN}\"]\n\
         tls_versions = [\"1.3\"]\nclient_certificate = \"client.pem\"\nclient_private_key = \"client.key\"\n\
         [[listener]]\naddress = \"127.0.0.1:80\"\n[[listener.route]]\npath = \"/\"\nproxy = \"device\"\n"
    );
    let config = parse(&source, &dir.path("gangway.toml")).unwrap();
    assert_eq!(config.server.certificate_watch_interval, None);
    let tls = &config.upstreams[0].tls;
    assert_eq!(tls.pins, vec![PIN.parse::<Sha256Fingerprint>().unwrap()]);
    assert_eq!(tls.versions, TlsVersions::Tls13Only);
    assert!(!tls.insecure_skip_verify);
    assert_eq!(
        tls.client_certificate,
        Some(CertificateSource::Files {
            chain: dir.path("client.pem"),
            key: dir.path("client.key"),
        })
    );
    let written = to_toml(&config);
    assert!(
        written.contains("certificate_watch_interval = \"off\""),
        "{written}"
    );
    assert_eq!(
        parse(&written, Path::new("/elsewhere.toml")).unwrap(),
        config
    );
}

#[test]
fn upstream_verification_is_one_choice_and_https_only() {
    let error = errors(&format!(
        "[[upstream]]\nname = \"a\"\npeers = [\"https://192.0.2.10\"]\npin_sha256 = [\"{PIN}\", \"00:11\"]\n\
         insecure_skip_verify = true\nclient_certificate = \"c.pem\"\n\
         [[upstream]]\nname = \"b\"\npeers = [\"http://192.0.2.10\"]\ninsecure_skip_verify = true\n\
         tls_versions = [\"1.3\"]\n\
         [[listener]]\naddress = \"127.0.0.1:80\"\n[[listener.route]]\npath = \"/\"\nproxy = \"a\"\n\
         [[listener.route]]\npath = \"/b\"\nproxy = \"b\"\n"
    ));
    for expected in [
        ":4:114: upstream[1].pin_sha256 = \"00:11\": is not a SHA-256 fingerprint",
        ":5:24: upstream[1].insecure_skip_verify = true: is set together with pin_sha256",
        ":6:22: upstream[1]: `client_certificate` is set without `client_private_key`",
        ":10:24: upstream[2].insecure_skip_verify: applies only to an https upstream",
        ":11:16: upstream[2].tls_versions: applies only to an https upstream",
    ] {
        assert!(
            error.contains(expected),
            "missing {expected:?} in:\n{error}"
        );
    }
}

#[test]
fn proxy_protocol_and_connection_limits() {
    let source = "[[listener]]\naddress = \"127.0.0.1:80\"\nproxy_protocol = { trusted = [\"10.0.0.0/24\", \"::1/128\"] }\n\
         max_connections = 10000\nmax_connections_per_client = 64\n\
         [[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n";
    let config = parse(source, Path::new("/x/gangway.toml")).unwrap();
    let listener = &config.listeners[0];
    let trusted = &listener.proxy_protocol.as_ref().unwrap().trusted;
    assert_eq!(trusted.len(), 2);
    assert_eq!(trusted[0].to_string(), "10.0.0.0/24");
    assert_eq!(listener.max_connections, Some(10_000));
    assert_eq!(listener.max_connections_per_client, Some(64));
    assert_eq!(
        parse(&to_toml(&config), Path::new("/e.toml")).unwrap(),
        config
    );

    let error = errors(
        "[[listener]]\naddress = \"127.0.0.1:80\"\nproxy_protocol = { trusted = [] }\nmax_connections = 0\n\
         [[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n\
         [[listener]]\naddress = \"127.0.0.1:81\"\nproxy_protocol = { trusted = [\"10.0.0.300/8\"] }\n\
         [[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n",
    );
    for expected in [
        ":3:30: listener[1].proxy_protocol.trusted = []: is empty",
        ":4:19: listener[1].max_connections = 0: is out of range",
        ":10:31: listener[2].proxy_protocol.trusted = \"10.0.0.300/8\":",
    ] {
        assert!(
            error.contains(expected),
            "missing {expected:?} in:\n{error}"
        );
    }
    let error = errors(
        "[[listener]]\naddress = \"127.0.0.1:80\"\nproxy_protocol = {}\n\
         [[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n",
    );
    assert!(
        error.contains(":3:18: listener[1].proxy_protocol.trusted is missing"),
        "{error}"
    );
}
