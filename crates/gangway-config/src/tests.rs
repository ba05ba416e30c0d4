use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gangway_headers::Template;
use gangway_route::{HostMatch, MatchMode, PathMatch};
use gangway_tls::CertificateSource;

use crate::model::{Forwarding, HeaderRules, LocationRewriting};

use crate::values::{
    duration_to_toml, parse_duration, parse_peer_url, parse_size, quote, size_to_toml,
};
use crate::{
    AccessLog, Action, Config, Error, Errors, Listener, ListenerTls, Peer, PoolSettings, Rewrite,
    Route, Scheme, Server, Upstream, UpstreamTls, defaults, load, parse, to_toml,
};

/// A directory under the system temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "gangway-config-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Parses `source` as `/x/gangway.toml`, which must fail; returns the errors as displayed.
pub(crate) fn errors(source: &str) -> String {
    parse(source, Path::new("/x/gangway.toml"))
        .unwrap_err()
        .to_string()
}

/// A listener with one route that is valid on its own.
const RESPOND: &str = "[[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n";

const FULL: &str = r#"[server]
drain_timeout = "1m30s"

[[upstream]]
name = "app"
peers = ["http://127.0.0.1:9000", { url = "http://127.0.0.1:9001/", weight = 2 }]
keepalive = 8

[[upstream]]
name = "secure"
peers = ["https://[::1]:8443", "https://Backend.Internal."]
ca = "ca.pem"
server_name = "App.Internal"
connect_timeout = "1500ms"
response_header_timeout = 90
keepalive_timeout = "2m"

[[listener]]
name = "public"
address = "0.0.0.0:443"
certificate = "cert.pem"
private_key = "tls/key.pem"
header_read_timeout = "5s"
max_header_size = "32KiB"
keepalive_timeout = "1h30m"

[[listener.route]]
path = "/"
host = "Example.COM."
proxy = "app"
rewrite_prefix = "/app/"
max_body = "200MiB"
body_idle_timeout = "500ms"
websocket = true
websocket_idle_timeout = "2h"

[[listener.route]]
path = "/old"
redirect = "301 https://$host$request_uri"

[[listener.route]]
path = "/moved"
redirect = { status = 308, to = "https://example.org$request_uri" }

[[listener.route]]
path = "/health"
respond = { status = 200, body = "ok" }

[[listener]]
address = "[::]:8080"

[[listener.route]]
path = "/"
host = "[::1]"
proxy = "secure"
"#;

/// Writes [`FULL`] and the files it names into a new directory.
fn full_file() -> (TempDir, PathBuf) {
    let dir = TempDir::new();
    dir.write("ca.pem", "");
    dir.write("cert.pem", "");
    dir.write("tls/key.pem", "");
    let path = dir.write("gangway.toml", FULL);
    (dir, path)
}

fn peer(host: &str, port: u16, weight: u32) -> Peer {
    Peer {
        host: host.to_owned(),
        port,
        weight,
        route: None,
        max_fails: defaults::MAX_FAILS,
        fail_timeout: defaults::FAIL_TIMEOUT,
        backup: false,
        down: false,
    }
}

fn route(path: &str, action: Action) -> Route {
    Route {
        host: HostMatch::Any,
        path: PathMatch::parse(path).unwrap(),
        methods: Vec::new(),
        action,
        max_body_bytes: defaults::MAX_BODY_BYTES,
        body_idle_timeout: defaults::BODY_IDLE_TIMEOUT,
        websocket: false,
        websocket_idle_timeout: defaults::WEBSOCKET_IDLE_TIMEOUT,
        min_tls_version: None,
        headers: HeaderRules::default(),
        location_rewrite: LocationRewriting::Off,
        cookie_domain: Vec::new(),
        cookie_path: Vec::new(),
    }
}

#[test]
fn full_file_loads_into_typed_values_with_defaults_filled_in() {
    let (dir, path) = full_file();
    let config = load(&path).unwrap();
    let expected = Config {
        server: Server {
            drain_timeout: Duration::from_secs(90),
            certificate_watch_interval: Some(defaults::CERTIFICATE_WATCH_INTERVAL),
            access_log: AccessLog::default(),
        },
        admin: None,
        listeners: vec![
            Listener {
                name: "public".to_owned(),
                address: "0.0.0.0:443".parse().unwrap(),
                tls: Some(ListenerTls::single(CertificateSource::Files {
                    chain: dir.path("cert.pem"),
                    key: dir.path("tls/key.pem"),
                })),
                proxy_protocol: None,
                max_connections: None,
                max_connections_per_client: None,
                header_read_timeout: Duration::from_secs(5),
                max_header_bytes: 32 * 1024,
                keepalive_timeout: Duration::from_secs(5400),
                send_timeout: defaults::SEND_TIMEOUT,
                match_mode: MatchMode::Nginx,
                merge_slashes: false,
                tls_versions: gangway_tls::TlsVersions::Tls12And13,
                client_certificates: gangway_tls::ClientCertPolicy::None,
                client_ca: None,
                client_crls: Vec::new(),
                headers: HeaderRules::default(),
                forwarding: Forwarding::default(),
                routes: vec![
                    Route {
                        host: HostMatch::exact("example.com").unwrap(),
                        max_body_bytes: 200 * 1024 * 1024,
                        body_idle_timeout: Duration::from_millis(500),
                        websocket: true,
                        websocket_idle_timeout: Duration::from_secs(7200),
                        ..route(
                            "/",
                            Action::Proxy {
                                upstream: 0,
                                rewrite: Some(Rewrite::Prefix("/app/".to_owned())),
                                peer: None,
                            },
                        )
                    },
                    route(
                        "/old",
                        Action::Redirect {
                            status: 301,
                            target: Template::parse("https://$host$request_uri").unwrap(),
                        },
                    ),
                    route(
                        "/moved",
                        Action::Redirect {
                            status: 308,
                            target: Template::parse("https://example.org$request_uri").unwrap(),
                        },
                    ),
                    route(
                        "/health",
                        Action::Respond {
                            status: 200,
                            body: "ok".to_owned(),
                        },
                    ),
                ],
            },
            Listener {
                name: "listener-2".to_owned(),
                address: "[::]:8080".parse().unwrap(),
                tls: None,
                proxy_protocol: None,
                max_connections: None,
                max_connections_per_client: None,
                header_read_timeout: defaults::HEADER_READ_TIMEOUT,
                max_header_bytes: defaults::MAX_HEADER_BYTES,
                keepalive_timeout: defaults::KEEPALIVE_TIMEOUT,
                send_timeout: defaults::SEND_TIMEOUT,
                match_mode: MatchMode::Nginx,
                merge_slashes: false,
                tls_versions: gangway_tls::TlsVersions::Tls12And13,
                client_certificates: gangway_tls::ClientCertPolicy::None,
                client_ca: None,
                client_crls: Vec::new(),
                headers: HeaderRules::default(),
                forwarding: Forwarding::default(),
                routes: vec![Route {
                    host: HostMatch::parse("[::1]").unwrap(),
                    ..route(
                        "/",
                        Action::Proxy {
                            upstream: 1,
                            rewrite: None,
                            peer: None,
                        },
                    )
                }],
            },
        ],
        upstreams: vec![
            Upstream {
                name: "app".to_owned(),
                scheme: Scheme::Http,
                peers: vec![peer("127.0.0.1", 9000, 1), peer("127.0.0.1", 9001, 2)],
                tls: UpstreamTls::default(),
                connect_timeout: defaults::CONNECT_TIMEOUT,
                response_header_timeout: defaults::RESPONSE_HEADER_TIMEOUT,
                keepalive: 8,
                keepalive_timeout: defaults::UPSTREAM_KEEPALIVE_TIMEOUT,
                headers: HeaderRules::default(),
                pool: PoolSettings::default(),
            },
            Upstream {
                name: "secure".to_owned(),
                scheme: Scheme::Https,
                peers: vec![peer("::1", 8443, 1), peer("backend.internal", 443, 1)],
                tls: UpstreamTls {
                    ca: Some(dir.path("ca.pem")),
                    server_name: Some("app.internal".to_owned()),
                    ..UpstreamTls::default()
                },
                connect_timeout: Duration::from_millis(1500),
                response_header_timeout: Duration::from_secs(90),
                keepalive: defaults::UPSTREAM_KEEPALIVE,
                keepalive_timeout: Duration::from_secs(120),
                headers: HeaderRules::default(),
                pool: PoolSettings::default(),
            },
        ],
    };
    assert_eq!(config, expected);
}

#[test]
fn minimal_file_gets_every_default() {
    let config = parse(
        "[[upstream]]\nname = \"app\"\npeers = [\"http://app.internal\"]\n\n\
         [[listener]]\naddress = \"localhost:8080\"\n\n\
         [[listener.route]]\npath = \"/\"\nproxy = \"app\"\n",
        Path::new("gangway.toml"),
    )
    .unwrap();
    assert_eq!(config.server, Server::default());
    assert_eq!(config.server.drain_timeout, defaults::DRAIN_TIMEOUT);
    let listener = &config.listeners[0];
    assert_eq!(listener.name, "listener-1");
    assert_eq!(listener.address, SocketAddr::from(([127, 0, 0, 1], 8080)));
    assert_eq!(listener.tls, None);
    assert_eq!(listener.header_read_timeout, defaults::HEADER_READ_TIMEOUT);
    assert_eq!(listener.max_header_bytes, defaults::MAX_HEADER_BYTES);
    assert_eq!(listener.keepalive_timeout, defaults::KEEPALIVE_TIMEOUT);
    assert_eq!(
        listener.routes,
        vec![route(
            "/",
            Action::Proxy {
                upstream: 0,
                rewrite: None,
                peer: None,
            }
        )]
    );
    let upstream = &config.upstreams[0];
    assert_eq!(upstream.peers, vec![peer("app.internal", 80, 1)]);
    assert_eq!(upstream.tls, UpstreamTls::default());
    assert_eq!(upstream.connect_timeout, defaults::CONNECT_TIMEOUT);
    assert_eq!(
        upstream.response_header_timeout,
        defaults::RESPONSE_HEADER_TIMEOUT
    );
    assert_eq!(upstream.keepalive, defaults::UPSTREAM_KEEPALIVE);
    assert_eq!(
        upstream.keepalive_timeout,
        defaults::UPSTREAM_KEEPALIVE_TIMEOUT
    );
}

#[test]
fn unused_upstream_is_not_an_error() {
    let config = parse(
        &format!("[[upstream]]\nname = \"spare\"\npeers = [\"http://a\"]\n[[listener]]\naddress = \"127.0.0.1:80\"\n{RESPOND}"),
        Path::new("/x/gangway.toml"),
    )
    .unwrap();
    assert_eq!(config.upstreams.len(), 1);
}

#[test]
fn routes_may_be_inline_tables() {
    let config = parse(
        "[[listener]]\naddress = \"127.0.0.1:80\"\nroute = [{ path = \"/\", respond = { status = 204 } }]\n",
        Path::new("/x/gangway.toml"),
    )
    .unwrap();
    assert_eq!(
        config.listeners[0].routes[0].action,
        Action::Respond {
            status: 204,
            body: String::new()
        }
    );
}

#[test]
fn to_toml_round_trips_the_full_file() {
    let (_dir, path) = full_file();
    let config = load(&path).unwrap();
    let written = to_toml(&config);
    // Paths are absolute, so the text means the same wherever it is read from.
    let reread = parse(&written, Path::new("/somewhere/else.toml")).unwrap();
    assert_eq!(reread, config);
    assert_eq!(to_toml(&reread), written);
}

#[test]
fn to_toml_writes_every_key_normalised() {
    let dir = TempDir::new();
    let certificate = dir.write("cert.pem", "");
    let private_key = dir.write("key.pem", "");
    let source = "[[upstream]]\nname = \"app\"\npeers = [\"HTTP://[::1]\"]\n\
         [[listener]]\naddress = \"localhost:443\"\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\n\
         max_header_size = 16000\n\
         [[listener.route]]\npath = \"/\"\nproxy = \"app\"\nmax_body = \"1000MB\"\nbody_idle_timeout = 3601\n\
         [[listener.route]]\npath = \"/x\"\nhost = \"A.example\"\nredirect = \"302  /y\"\n\
         [[listener.route]]\npath = \"/health\"\nrespond = { status = 200 }\n";
    let config = parse(source, &dir.path("gangway.toml")).unwrap();
    let expected = format!(
        r#"# gangway configuration, normalised: every key with its value, defaults included.

[server]
drain_timeout = "30s"
certificate_watch_interval = "5s"
access_log = {{ format = "default" }}

[[upstream]]
name = "app"
peers = [
    {{ url = "http://[::1]:80", weight = 1, max_fails = 1, fail_timeout = "10s", backup = false, down = false }},
]
connect_timeout = "5s"
response_header_timeout = "1m"
keepalive = 32
keepalive_timeout = "1m"
balance = "round_robin"
retry = {{ tries = 0, idempotent = false }}

[[listener]]
name = "listener-1"
address = "127.0.0.1:443"
certificate = {certificate}
private_key = {private_key}
header_read_timeout = "10s"
max_header_size = "16KB"
keepalive_timeout = "1m15s"
send_timeout = "1m"
match_mode = "nginx"
merge_slashes = false
tls_versions = ["1.2", "1.3"]
client_certificates = "none"
trusted_proxies = []
forwarded_headers = []

[[listener.route]]
path = "/"
proxy = "app"
location_rewrite = "off"
max_body = "1GB"
body_idle_timeout = "1h1s"
websocket = false
websocket_idle_timeout = "1h"

[[listener.route]]
path = "/x"
host = "a.example"
redirect = {{ status = 302, to = "/y" }}
max_body = "1MiB"
body_idle_timeout = "1m"
websocket = false
websocket_idle_timeout = "1h"

[[listener.route]]
path = "/health"
respond = {{ status = 200, body = "" }}
max_body = "1MiB"
body_idle_timeout = "1m"
websocket = false
websocket_idle_timeout = "1h"
"#,
        certificate = quote(&certificate.to_string_lossy()),
        private_key = quote(&private_key.to_string_lossy()),
    );
    assert_eq!(to_toml(&config), expected);
    assert_eq!(
        parse(&expected, Path::new("/elsewhere.toml")).unwrap(),
        config
    );
}

#[test]
fn to_toml_notes_a_certificate_held_in_memory() {
    let config = Config {
        server: Server::default(),
        admin: None,
        listeners: vec![Listener {
            name: "demo".to_owned(),
            address: "127.0.0.1:8443".parse().unwrap(),
            tls: Some(ListenerTls::single(CertificateSource::Inline {
                chain: "-----BEGIN CERTIFICATE-----".to_owned(),
                key: "-----BEGIN PRIVATE KEY-----".to_owned(),
            })),
            proxy_protocol: None,
            max_connections: None,
            max_connections_per_client: None,
            header_read_timeout: Duration::from_millis(2500),
            max_header_bytes: 1000,
            keepalive_timeout: defaults::KEEPALIVE_TIMEOUT,
            send_timeout: defaults::SEND_TIMEOUT,
            match_mode: MatchMode::Nginx,
            merge_slashes: false,
            tls_versions: gangway_tls::TlsVersions::Tls12And13,
            client_certificates: gangway_tls::ClientCertPolicy::None,
            client_ca: None,
            client_crls: Vec::new(),
            headers: HeaderRules::default(),
            forwarding: Forwarding::default(),
            routes: vec![route(
                "/",
                Action::Respond {
                    status: 200,
                    body: "\"hi\"\n".to_owned(),
                },
            )],
        }],
        upstreams: Vec::new(),
    };
    let written = to_toml(&config);
    assert!(written.contains(
        "address = \"127.0.0.1:8443\"\n# certificate and private_key: the certificate is held \
         in memory (PEM) and cannot be written here\nheader_read_timeout = \"2500ms\"\n\
         max_header_size = \"1KB\"\n"
    ));
    assert!(!written.contains("BEGIN"));
    assert!(written.contains("respond = { status = 200, body = \"\\\"hi\\\"\\n\" }\n"));
    let reread = parse(&written, Path::new("/x/gangway.toml")).unwrap();
    assert_eq!(reread.listeners[0].tls, None);
    assert_eq!(reread.listeners[0].routes, config.listeners[0].routes);
}

#[test]
fn sizes_read_every_unit() {
    for (text, bytes) in [
        ("1B", 1),
        ("512B", 512),
        ("16KB", 16_000),
        ("2MB", 2_000_000),
        ("3GB", 3_000_000_000),
        ("16KiB", 16 * 1024),
        ("200MiB", 200 * 1024 * 1024),
        ("2GiB", 2 * 1024 * 1024 * 1024),
        ("16 KiB", 16 * 1024),
    ] {
        assert_eq!(parse_size(text), Ok(bytes), "{text}");
    }
    for (text, problem) in [
        ("", "does not start with a number"),
        ("KiB", "does not start with a number"),
        ("16", "has no unit"),
        ("16kib", "has unknown unit \"kib\""),
        ("16  KiB", "has unknown unit \" KiB\""),
        ("0MiB", "is zero"),
        ("99999999999999999999B", "is too large"),
        ("99999999999GiB", "is too large"),
    ] {
        assert_eq!(parse_size(text), Err(problem.to_owned()), "{text}");
    }
}

#[test]
fn sizes_are_written_in_the_largest_exact_unit() {
    for (bytes, text) in [
        (1, "1"),
        (1023, "1023"),
        (1024, "\"1KiB\""),
        (1000, "\"1KB\""),
        (1536, "1536"),
        (3000, "\"3KB\""),
        (1537, "1537"),
        (16 * 1024, "\"16KiB\""),
        (1024 * 1024, "\"1MiB\""),
        (3 * 1024 * 1024 * 1024, "\"3GiB\""),
        (2_000_000, "\"2MB\""),
    ] {
        assert_eq!(size_to_toml(bytes), text, "{bytes}");
    }
}

#[test]
fn durations_read_every_unit() {
    for (text, duration) in [
        ("500ms", Duration::from_millis(500)),
        ("30s", Duration::from_secs(30)),
        ("5m", Duration::from_secs(300)),
        ("1h", Duration::from_secs(3600)),
        ("1h30m", Duration::from_secs(5400)),
        ("1m30s", Duration::from_secs(90)),
        ("1s500ms", Duration::from_millis(1500)),
        ("1h5s", Duration::from_secs(3605)),
    ] {
        assert_eq!(parse_duration(text), Ok(duration), "{text}");
    }
    for (text, problem) in [
        ("", "is empty"),
        ("30", "has no unit after 30"),
        ("30 s", "has no unit after 30"),
        ("s", "has \"s\" where a number was expected"),
        ("5min", "has unknown unit \"min\""),
        ("30m1h", "has unit \"h\" out of order"),
        ("1s1s", "has unit \"s\" out of order"),
        ("0s", "is zero"),
        ("0h0m", "is zero"),
        ("99999999999999999999s", "is too large"),
        ("9999999999999999999h", "is too large"),
    ] {
        assert_eq!(parse_duration(text), Err(problem.to_owned()), "{text}");
    }
}

#[test]
fn durations_are_written_as_strings() {
    for (duration, text) in [
        (Duration::from_secs(30), "\"30s\""),
        (Duration::from_secs(90), "\"1m30s\""),
        (Duration::from_secs(3600), "\"1h\""),
        (Duration::from_secs(5400), "\"1h30m\""),
        (Duration::from_secs(3601), "\"1h1s\""),
        (Duration::from_millis(1500), "\"1500ms\""),
        (Duration::from_micros(1), "\"1ms\""),
    ] {
        assert_eq!(duration_to_toml(duration), text, "{duration:?}");
    }
}

#[test]
fn peer_urls_take_scheme_host_and_port_only() {
    let url = parse_peer_url("https://[::1]:8443/").unwrap();
    assert_eq!(
        (url.scheme, url.host.as_str(), url.port),
        (Scheme::Https, "::1", 8443)
    );
    let url = parse_peer_url("http://App.Internal.").unwrap();
    assert_eq!(
        (url.scheme, url.host.as_str(), url.port),
        (Scheme::Http, "app.internal", 80)
    );
    let url = parse_peer_url("https://10.0.0.1").unwrap();
    assert_eq!((url.host.as_str(), url.port), ("10.0.0.1", 443));
}

#[test]
fn quote_escapes_for_toml() {
    assert_eq!(quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

// One test per class of error, each with its exact message.

#[test]
fn toml_syntax_error() {
    assert_eq!(
        errors("[[listener]\n"),
        "/x/gangway.toml:1:12: invalid TOML: unclosed array table, expected `]`"
    );
    assert_eq!(
        errors("[server]\ndrain_timeout = 30s\n"),
        "/x/gangway.toml:2:17: invalid TOML: string values must be quoted, expected literal string"
    );
}

#[test]
fn unknown_key() {
    assert_eq!(
        errors("[[listener]]\nadress = \"0.0.0.0:80\"\n"),
        "/x/gangway.toml:2:1: unknown field `adress`, expected one of `name`, `address`, \
         `certificate`, `private_key`, `certificates`, `unknown_sni`, `header_read_timeout`, \
         `max_header_size`, `keepalive_timeout`, `send_timeout`, `match_mode`, `merge_slashes`, `tls_versions`, \
         `client_certificates`, `client_ca`, `client_crls`, `proxy_protocol`, `max_connections`, \
         `max_connections_per_client`, `trusted_proxies`, `forwarded_headers`, `request_headers`, `response_headers`, `route`"
    );
    assert_eq!(
        errors("[[upstream]]\nname = \"a\"\npeers = [{ url = \"http://a\", wait = 1 }]\n"),
        "/x/gangway.toml:3:30: unknown field `wait`, expected one of `url`, `weight`, `route`, \
         `max_fails`, `fail_timeout`, `backup`, `down`"
    );
    assert_eq!(
        errors("[listen]\n"),
        "/x/gangway.toml:1:2: unknown field `listen`, expected one of `server`, `upstream`, `listener`, `admin`"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        errors("[[listener]]\naddress = 80\n"),
        "/x/gangway.toml:2:11: invalid type: integer `80`, expected a string"
    );
    assert_eq!(
        errors("[server]\ndrain_timeout = true\n"),
        "/x/gangway.toml:2:17: invalid type: boolean `true`, expected a duration: an integer \
         number of seconds, or a string such as \"500ms\", \"30s\", \"5m\", \"1h\" or \"1h30m\", \
         greater than 0"
    );
}

#[test]
fn missing_required_key() {
    assert_eq!(
        errors(&format!("\n[[listener]]\n{RESPOND}")),
        "/x/gangway.toml:2:1: listener[1].address is missing; expected \"IP:PORT\" with an IP \
         literal, such as \"0.0.0.0:443\", \"[::]:443\" or \"localhost:8080\""
    );
    assert_eq!(
        errors("[[upstream]]\npeers = [\"http://a\"]\n[[upstream]]\nname = \"b\"\n"),
        "/x/gangway.toml:1:1: upstream[1].name is missing; expected a unique name for `proxy` \
         routes to refer to\n\
         /x/gangway.toml:3:1: upstream[2].peers is missing; expected a list of peer URLs such as \
         [\"http://127.0.0.1:9000\"]"
    );
    assert_eq!(
        errors(
            "[[listener]]\naddress = \"0.0.0.0:80\"\n[[listener.route]]\nrespond = { status = 200 }\n"
        ),
        "/x/gangway.toml:3:1: listener[1].route[1].path is missing; expected a path \
         expression such as \"/\", \"= /exact\", \"^~ /static/\" or \"~ ^/ws$\""
    );
}

#[test]
fn bad_address() {
    let expected = "expected \"IP:PORT\" with an IP literal, such as \"0.0.0.0:443\", \
                    \"[::]:443\" or \"localhost:8080\"";
    for (address, problem) in [
        ("foo", "has no port"),
        ("0.0.0.0", "has no port"),
        (
            "example.com:80",
            "has host \"example.com\", which is not an IP address or localhost",
        ),
        ("::1:80", "has an IPv6 address without brackets"),
        (
            "1.2.3.4:99999",
            "has port \"99999\", not a number from 0 to 65535",
        ),
    ] {
        assert_eq!(
            errors(&format!("[[listener]]\naddress = \"{address}\"\n{RESPOND}")),
            format!(
                "/x/gangway.toml:2:11: listener[1].address = \"{address}\": {problem}; {expected}"
            ),
        );
    }
}

#[test]
fn missing_certificate_key_and_ca_files() {
    let dir = TempDir::new();
    dir.write("cert.pem", "");
    let path = dir.path("gangway.toml");
    let source = format!(
        "[[upstream]]\nname = \"app\"\npeers = [\"https://a\"]\nca = \"ca/bundle.pem\"\n\
         [[listener]]\naddress = \"0.0.0.0:443\"\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\n\
         {RESPOND}"
    );
    let file = path.display();
    let ca = dir.path("ca/bundle.pem");
    let key = dir.path("key.pem");
    assert_eq!(
        parse(&source, &path).unwrap_err().to_string(),
        format!(
            "{file}:4:6: upstream[1].ca: no file at {}; expected a PEM file (relative paths start \
             from the configuration file's directory)\n\
             {file}:8:15: listener[1].private_key: no file at {}; expected a PEM file (relative \
             paths start from the configuration file's directory)",
            ca.display(),
            key.display()
        )
    );
    assert_eq!(
        errors(&format!(
            "[[listener]]\naddress = \"0.0.0.0:443\"\ncertificate = \"/etc/none.pem\"\nprivate_key = \"/etc/none.key\"\n{RESPOND}"
        )),
        "/x/gangway.toml:3:15: listener[1].certificate: no file at /etc/none.pem; expected a PEM \
         file (relative paths start from the configuration file's directory)\n\
         /x/gangway.toml:4:15: listener[1].private_key: no file at /etc/none.key; expected a PEM \
         file (relative paths start from the configuration file's directory)"
    );
}

#[test]
fn certificate_without_key() {
    assert_eq!(
        errors(&format!(
            "[[listener]]\naddress = \"0.0.0.0:443\"\nprivate_key = \"key.pem\"\n{RESPOND}"
        )),
        "/x/gangway.toml:3:15: listener[1]: `private_key` is set without `certificate`; \
         expected both or neither"
    );
    assert_eq!(
        errors(&format!(
            "[[listener]]\naddress = \"0.0.0.0:443\"\ncertificate = \"c.pem\"\n{RESPOND}"
        )),
        "/x/gangway.toml:3:15: listener[1]: `certificate` is set without `private_key`; \
         expected both or neither"
    );
}

#[test]
fn unknown_upstream() {
    assert_eq!(
        errors(
            "[[upstream]]\nname = \"app\"\npeers = [\"http://a\"]\n\
             [[upstream]]\nname = \"static\"\npeers = [\"http://b\"]\n\
             [[listener]]\naddress = \"0.0.0.0:80\"\n\
             [[listener.route]]\npath = \"/\"\nproxy = \"ap\"\n"
        ),
        "/x/gangway.toml:11:9: listener[1].route[1].proxy: no upstream is named \"ap\"; \
         expected one of \"app\", \"static\""
    );
    assert_eq!(
        errors(
            "[[listener]]\naddress = \"0.0.0.0:80\"\n[[listener.route]]\npath = \"/\"\nproxy = \"app\"\n"
        ),
        "/x/gangway.toml:5:9: listener[1].route[1].proxy: no upstream is named \"app\"; \
         expected the name of an [[upstream]], and none is defined"
    );
}

#[test]
fn duplicate_route() {
    assert_eq!(
        errors(
            "[[listener]]\naddress = \"0.0.0.0:80\"\n\
             [[listener.route]]\npath = \"/\"\nhost = \"A.com.\"\nrespond = { status = 200 }\n\
             [[listener.route]]\nhost = \"a.com\"\npath = \"/\"\nrespond = { status = 201 }\n\
             [[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n\
             [[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\n"
        ),
        "/x/gangway.toml:9:8: listener[1].route[2]: host \"a.com\" with path \"/\" is already \
         routed at line 4; expected each host and path once per listener\n\
         /x/gangway.toml:15:8: listener[1].route[4]: path \"/\" for any host is already routed at \
         line 12; expected each host and path once per listener"
    );
    // The same host and path on two listeners is fine.
    parse(
        &format!("[[listener]]\naddress = \"0.0.0.0:80\"\n{RESPOND}[[listener]]\naddress = \"0.0.0.0:81\"\n{RESPOND}"),
        Path::new("/x/gangway.toml"),
    )
    .unwrap();
}

#[test]
fn duplicate_listener_address() {
    assert_eq!(
        errors(&format!(
            "[[listener]]\naddress = \"0.0.0.0:80\"\n{RESPOND}[[listener]]\naddress = \"0.0.0.0:80\"\n{RESPOND}"
        )),
        "/x/gangway.toml:7:11: listener[2].address: 0.0.0.0:80 is already the address of the \
         listener at line 2; expected a different address for each listener"
    );
    // Port 0 asks for any free port, so it may repeat.
    parse(
        &format!("[[listener]]\naddress = \"127.0.0.1:0\"\n{RESPOND}[[listener]]\naddress = \"127.0.0.1:0\"\n{RESPOND}"),
        Path::new("/x/gangway.toml"),
    )
    .unwrap();
}

#[test]
fn duplicate_names() {
    assert_eq!(
        errors(
            "[[upstream]]\nname = \"app\"\npeers = [\"http://a\"]\n\n\
             [[upstream]]\nname = \"app\"\npeers = [\"http://b\"]\n"
        ),
        "/x/gangway.toml:6:8: upstream[2].name: the name \"app\" is already used at line 2; \
         expected a unique name"
    );
    assert_eq!(
        errors(&format!(
            "[[listener]]\nname = \"web\"\naddress = \"0.0.0.0:80\"\n{RESPOND}\
             [[listener]]\nname = \"web\"\naddress = \"0.0.0.0:81\"\n{RESPOND}"
        )),
        "/x/gangway.toml:8:8: listener[2].name: the name \"web\" is already used at line 2; \
         expected a unique name"
    );
    // A default name counts too, and the error points at the listener without a name.
    assert_eq!(
        errors(&format!(
            "[[listener]]\nname = \"listener-2\"\naddress = \"0.0.0.0:80\"\n{RESPOND}\
             [[listener]]\naddress = \"0.0.0.0:81\"\n{RESPOND}"
        )),
        "/x/gangway.toml:7:1: listener[2].name: the name \"listener-2\" is already used at line 2; \
         expected a unique name"
    );
}

#[test]
fn route_without_action_or_with_two() {
    assert_eq!(
        errors(
            "[[upstream]]\nname = \"app\"\npeers = [\"http://a\"]\n\
             [[listener]]\naddress = \"0.0.0.0:80\"\n\
             [[listener.route]]\npath = \"/\"\n\
             [[listener.route]]\npath = \"/a\"\nproxy = \"app\"\nrespond = { status = 200 }\n\
             [[listener.route]]\npath = \"/b\"\nredirect = \"301 /\"\nrespond = { status = 200 }\nproxy = \"app\"\n"
        ),
        "/x/gangway.toml:6:1: listener[1].route[1]: the route has no action; expected exactly \
         one of `proxy`, `redirect`, `respond`, `relay` or `websocket_test_page`\n\
         /x/gangway.toml:11:11: listener[1].route[2]: the route has both `proxy` and `respond`; \
         expected exactly one of `proxy`, `redirect`, `respond`, `relay` or `websocket_test_page`\n\
         /x/gangway.toml:15:11: listener[1].route[3]: the route has `redirect`, `respond`, \
         `proxy`; expected exactly one of `proxy`, `redirect`, `respond`, `relay` or `websocket_test_page`"
    );
}

#[test]
fn proxy_only_keys_on_other_routes() {
    assert_eq!(
        errors(
            "[[listener]]\naddress = \"0.0.0.0:80\"\n\
             [[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\nrewrite_prefix = \"/x\"\nwebsocket = true\n\
             [[listener.route]]\npath = \"/r\"\nredirect = \"301 /\"\nwebsocket = true\n\
             [[listener.route]]\npath = \"/f\"\nrespond = { status = 200 }\nwebsocket = false\n"
        ),
        "/x/gangway.toml:6:18: listener[1].route[1].rewrite_prefix: only a `proxy` route can have \
         this, and this route uses `respond`; expected the key removed\n\
         /x/gangway.toml:7:13: listener[1].route[1].websocket: only a `proxy` route can have this, \
         and this route uses `respond`; expected the key removed\n\
         /x/gangway.toml:11:13: listener[1].route[2].websocket: only a `proxy` route can have \
         this, and this route uses `redirect`; expected the key removed"
    );
}

#[test]
fn listener_without_routes() {
    assert_eq!(
        errors("[[listener]]\naddress = \"0.0.0.0:80\"\n"),
        "/x/gangway.toml:1:1: listener[1]: the listener has no routes; expected at least one \
         [[listener.route]] after it"
    );
}

#[test]
fn bad_peers() {
    let expected = "expected a URL \"http://HOST:PORT\" or \"https://HOST:PORT\" with nothing \
                    after the port but an optional \"/\", such as \"http://127.0.0.1:9000\"";
    for (url, problem) in [
        ("http://a/b", "has a path"),
        ("http://user@a", "has user info"),
        ("http://a?x=1", "has a query"),
        ("http://a#top", "has a fragment"),
        ("ftp://a", "has scheme \"ftp\", not http or https"),
        ("a:80", "has no scheme"),
        ("http://", "has no host"),
        ("http://::1", "has an IPv6 address without brackets"),
        ("http://[::1", "has `[` without `]`"),
        (
            "http://[nope]:80",
            "has \"nope\" in brackets, not an IPv6 address",
        ),
        ("http://a:0", "has port \"0\", not a number from 1 to 65535"),
        (
            "http://a:http",
            "has port \"http\", not a number from 1 to 65535",
        ),
        (
            "http://a b",
            "has host \"a b\", which is not a DNS name or IP address",
        ),
    ] {
        assert_eq!(
            errors(&format!(
                "[[upstream]]\nname = \"a\"\npeers = [\"{url}\"]\n"
            )),
            format!(
                "/x/gangway.toml:3:10: upstream[1].peers[1] = \"{url}\": {problem}; {expected}"
            ),
        );
    }
    assert_eq!(
        errors("[[upstream]]\nname = \"a\"\npeers = []\n"),
        "/x/gangway.toml:3:9: upstream[1].peers = []: has no peers; expected at least one peer \
         URL such as \"http://127.0.0.1:9000\""
    );
    assert_eq!(
        errors("[[upstream]]\nname = \"a\"\npeers = [{ url = \"http://a\", weight = 1001 }]\n"),
        "/x/gangway.toml:3:39: upstream[1].peers[1].weight = 1001: is out of range; expected an \
         integer from 1 to 1000"
    );
}

#[test]
fn mixed_schemes_and_https_only_keys() {
    assert_eq!(
        errors(
            "[[upstream]]\nname = \"a\"\npeers = [\"http://a\", { url = \"https://b\" }]\n\
             [[upstream]]\nname = \"b\"\npeers = [\"http://a\"]\nca = \"/etc/hosts\"\nserver_name = \"b\"\n"
        ),
        "/x/gangway.toml:3:30: upstream[1].peers[2]: scheme https differs from scheme http of the \
         first peer; expected every peer of an upstream to use one scheme\n\
         /x/gangway.toml:7:6: upstream[2].ca: applies only to an https upstream, and this one uses \
         http; expected the key removed or https:// peers\n\
         /x/gangway.toml:8:15: upstream[2].server_name: applies only to an https upstream, and \
         this one uses http; expected the key removed or https:// peers"
    );
}

#[test]
fn bad_sizes_durations_and_counts() {
    let size = "expected a size: an integer number of bytes, or a string such as \"16KiB\" with \
                unit B, KB, MB, GB (powers of 1000), KiB, MiB or GiB (powers of 1024), greater \
                than 0";
    let duration = "expected a duration: an integer number of seconds, or a string such as \
                    \"500ms\", \"30s\", \"5m\", \"1h\" or \"1h30m\", greater than 0";
    assert_eq!(
        errors(
            "[server]\ndrain_timeout = -1\n\
             [[upstream]]\nname = \"a\"\npeers = [\"http://a\"]\nkeepalive = -1\nconnect_timeout = \"5 s\"\n\
             [[listener]]\naddress = \"0.0.0.0:80\"\nmax_header_size = \"16 kib\"\n\
             [[listener.route]]\npath = \"/\"\nrespond = { status = 200 }\nmax_body = 0\nwebsocket_idle_timeout = \"30m1h\"\n"
        ),
        format!(
            "/x/gangway.toml:2:17: server.drain_timeout = -1: is negative; {duration}\n\
             /x/gangway.toml:6:13: upstream[1].keepalive = -1: is negative; expected a number of \
             idle connections, 0 or more\n\
             /x/gangway.toml:7:19: upstream[1].connect_timeout = \"5 s\": has no unit after 5; \
             {duration}\n\
             /x/gangway.toml:10:19: listener[1].max_header_size = \"16 kib\": has unknown unit \
             \"kib\"; {size}\n\
             /x/gangway.toml:14:12: listener[1].route[1].max_body = 0: is zero; {size}\n\
             /x/gangway.toml:15:26: listener[1].route[1].websocket_idle_timeout = \"30m1h\": has \
             unit \"h\" out of order; {duration}"
        )
    );
}

#[test]
fn bad_route_path_host_and_status() {
    assert_eq!(
        errors(
            "[[listener]]\naddress = \"0.0.0.0:80\"\n\
             [[listener.route]]\npath = \"api\"\nhost = \"a.com:80\"\nrespond = { status = 600 }\n\
             [[listener.route]]\npath = \"/\"\nhost = \"*.a.com\"\nproxy = \"x\"\nrewrite_prefix = \"x\"\n"
        ),
        "/x/gangway.toml:4:9: listener[1].route[1].path: path expression `api`, column 1: \
         expected a path expression: `= /path`, `^~ /prefix`, `~ regex`, `~* regex` or \
         `/prefix`, found `api`\n\
         /x/gangway.toml:5:14: listener[1].route[1].host: host match `a.com:80`, column 6: \
         expected a letter, digit, `-`, `_` or `.` in a host name, found `:`\n\
         /x/gangway.toml:6:22: listener[1].route[1].respond.status = 600: is out of range; \
         expected an HTTP status from 200 to 599\n\
         /x/gangway.toml:10:9: listener[1].route[2].proxy: no upstream is named \"x\"; expected \
         the name of an [[upstream]], and none is defined\n\
         /x/gangway.toml:11:18: listener[1].route[2].rewrite_prefix = \"x\": does not start with \
         \"/\"; expected a path starting with \"/\", such as \"/\" or \"/api/\""
    );
}

#[test]
fn bad_redirects() {
    let form = "expected \"STATUS TARGET\" with STATUS one of 301, 302, 303, 307 or 308, such as \
                \"301 https://$host$request_uri\"";
    assert_eq!(
        errors(
            "[[listener]]\naddress = \"0.0.0.0:80\"\n\
             [[listener.route]]\npath = \"/a\"\nredirect = \"300 https://x\"\n\
             [[listener.route]]\npath = \"/b\"\nredirect = \"301\"\n\
             [[listener.route]]\npath = \"/c\"\nredirect = { status = 200, to = \"/\" }\n"
        ),
        format!(
            "/x/gangway.toml:5:12: listener[1].route[1].redirect = \"300 https://x\": has status \
             300, which is not a redirect status; {form}\n\
             /x/gangway.toml:8:12: listener[1].route[2].redirect = \"301\": is not a status and a \
             target separated by a space; {form}\n\
             /x/gangway.toml:11:23: listener[1].route[3].redirect.status = 200: is not a redirect \
             status; expected one of 301, 302, 303, 307 or 308"
        )
    );
}

#[test]
fn redirect_template_error_points_at_the_failing_character() {
    assert_eq!(
        errors(
            "[[listener]]\naddress = \"0.0.0.0:80\"\n\
             [[listener.route]]\npath = \"/a\"\nredirect = \"301 https://$hots$request_uri\"\n\
             [[listener.route]]\npath = \"/b\"\nredirect = { status = 302, to = 'https://${host' }\n\
             [[listener.route]]\npath = \"/c\"\nredirect = \"301 \\u0041$\"\n"
        ),
        "/x/gangway.toml:5:25: listener[1].route[1].redirect: invalid redirect target \
         \"https://$hots$request_uri\": unknown variable `$hots` at column 9; expected one of the \
         documented variables such as $host, $request_uri or $http_<header>, a capture $0..$9, \
         or a named capture of the route\n\
         /x/gangway.toml:8:42: listener[1].route[2].redirect: invalid redirect target \
         \"https://${host\": `${` at column 9 has no closing `}`\n\
         /x/gangway.toml:11:12: listener[1].route[3].redirect: invalid redirect target \"A$\": `$` \
         at column 2 is not followed by a variable name; write `$$` for a literal dollar"
    );
}

#[test]
fn unreadable_file_names_the_file() {
    let dir = TempDir::new();
    let path = dir.path("missing.toml");
    let errors = load(&path).unwrap_err();
    let [Error::Read { file, source }] = errors.0.as_slice() else {
        panic!("expected one read error, got {errors:?}");
    };
    assert_eq!(file, &path);
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(errors.iter().next().map(Error::location), Some(None));
    assert!(
        errors.to_string().starts_with(&format!(
            "{}: cannot read the configuration file: ",
            path.display()
        )),
        "{errors}"
    );
    assert!(
        errors
            .to_string()
            .ends_with("; expected a readable TOML file"),
        "{errors}"
    );
}

#[test]
fn every_error_is_reported_in_file_order() {
    let source = format!(
        "[[upstream]]\nname = \"app\"\npeers = [\"http://a/path\"]\nconnect_timeout = \"soon\"\n\
         [[listener]]\naddress = \"0.0.0.0:80\"\n\
         [[listener.route]]\npath = \"/\"\nproxy = \"nope\"\n\
         [[listener]]\naddress = \"0.0.0.0:80\"\nmax_header_size = \"big\"\n\
         {RESPOND}"
    );
    let errors: Errors = parse(&source, Path::new("/x/gangway.toml")).unwrap_err();
    let positions: Vec<(usize, usize)> = errors
        .iter()
        .map(|error| {
            let at = error.location().unwrap();
            assert_eq!(error.file(), Path::new("/x/gangway.toml"));
            (at.line, at.column)
        })
        .collect();
    assert_eq!(
        positions,
        vec![(3, 10), (4, 19), (9, 9), (11, 11), (12, 19)]
    );
    assert_eq!(errors.len(), 5);
    assert_eq!(errors.to_string().lines().count(), 5);
    assert!(
        matches!(&errors.0[2], Error::UnknownUpstream { name, known, .. }
        if name == "nope" && known == &["app".to_owned()])
    );
    assert!(matches!(
        &errors.0[3],
        Error::DuplicateAddress { first_line: 6, .. }
    ));
}

#[test]
fn errors_compare_equal() {
    let first = parse("[[listener]]\n", Path::new("/x/gangway.toml")).unwrap_err();
    let second = parse("[[listener]]\n", Path::new("/x/gangway.toml")).unwrap_err();
    assert_eq!(first, second);
    assert_eq!(
        first.0[0],
        Error::MissingKey {
            at: crate::Location {
                file: PathBuf::from("/x/gangway.toml"),
                line: 1,
                column: 1
            },
            key: "listener[1].address".to_owned(),
            expected: crate::values::ADDRESS_EXPECTED.to_owned(),
        }
    );
}

#[test]
fn the_documented_example_is_valid() {
    let page = include_str!("../../../docs/configuration.md");
    let example = page
        .split("## Complete example")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let dir = TempDir::new();
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        dir.write(file, "");
    }
    let path = dir.write("gangway.toml", example);
    let config = load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.listeners[0].routes.len(), 7);
    assert_eq!(config.upstreams[2].tls.ca, Some(dir.path("ca.pem")));
    assert_eq!(
        config.upstreams[1].pool.balance,
        gangway_upstream::Method::ByBusyness
    );
    assert_eq!(
        parse(&to_toml(&config), Path::new("/x/gangway.toml")).unwrap(),
        config
    );
}

#[test]
fn route_expressions_rewrites_and_match_mode_are_checked_where_written() {
    let text = errors(
        "[[upstream]]\nname = \"app\"\npeers = [\"http://127.0.0.1:9\"]\n\
         [[listener]]\naddress = \"0.0.0.0:80\"\nmatch_mode = \"apache\"\n\
         [[listener.route]]\npath = \"~ ^/(a\"\nproxy = \"app\"\n\
         [[listener.route]]\npath = \"~ ^/websocket/([^/]+)/(.*)$\"\nproxy = \"app\"\nrewrite = \"/ws/$3\"\n\
         [[listener.route]]\npath = \"~ ^/x\"\nproxy = \"app\"\nrewrite_prefix = \"/y\"\n\
         [[listener.route]]\npath = \"/m\"\nmethods = [\"GET\", \"BAD METHOD\"]\nproxy = \"app\"\n",
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[0].starts_with(
            "/x/gangway.toml:6:14: listener[1].match_mode = \"apache\": is not a match mode"
        ),
        "{text}"
    );
    assert!(
        lines[1].starts_with("/x/gangway.toml:8:11: listener[1].route[1].path: path expression `~ ^/(a`, column 3: invalid regular expression"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("/x/gangway.toml:13:16: listener[1].route[2].rewrite: template `/ws/$3`, column 5: route `~ ^/websocket/([^/]+)/(.*)$` has no capture $3"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("/x/gangway.toml:17:18: listener[1].route[3].rewrite_prefix = \"/y\": is given on a regular-expression route"),
        "{text}"
    );
    assert!(lines[4].starts_with("/x/gangway.toml:20:11: listener[1].route[4].methods: route expression `GET,BAD METHOD`, column 8"), "{text}");
}

#[test]
fn route_expressions_load_into_typed_matches() {
    let dir = TempDir::new();
    let path = dir.write(
        "gangway.toml",
        "[[upstream]]\nname = \"app\"\npeers = [\"http://127.0.0.1:9\"]\n\
         [[listener]]\naddress = \"0.0.0.0:80\"\nmatch_mode = \"first_match\"\nmerge_slashes = true\n\
         [[listener.route]]\nhost = \"*.mm-remote.example.com\"\npath = \"~ ^/websocket/([^/]+)$\"\n\
         methods = [\"GET\"]\nproxy = \"app\"\nrewrite = \"/websocket?node=$1\"\n",
    );
    let config = load(&path).unwrap();
    let listener = &config.listeners[0];
    assert_eq!(listener.match_mode, MatchMode::FirstMatch);
    assert!(listener.merge_slashes);
    let route = &listener.routes[0];
    assert_eq!(
        route.host,
        HostMatch::parse("*.mm-remote.example.com").unwrap()
    );
    assert_eq!(
        route.path,
        PathMatch::parse("~ ^/websocket/([^/]+)$").unwrap()
    );
    assert_eq!(route.methods, ["GET"]);
    assert!(matches!(
        &route.action,
        Action::Proxy { rewrite: Some(Rewrite::Template(template)), .. }
            if template.to_string() == "/websocket?node=$1"
    ));
    let again = parse(&to_toml(&config), &path).unwrap();
    assert_eq!(again, config, "the new keys round-trip");
}

#[test]
fn header_rules_forwarding_and_rewrites_load_and_round_trip() {
    let dir = TempDir::new();
    let path = dir.write(
        "gangway.toml",
        "[[upstream]]\nname = \"app\"\npeers = [\"http://127.0.0.1:9\"]\n\
         request_headers = { set = { \"X-Upstream\" = \"app\" } }\n\
         [[listener]]\naddress = \"0.0.0.0:80\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n\
         forwarded_headers = [\"x-forwarded-host\", \"forwarded\"]\n\
         request_headers = { set = { \"X-Client\" = \"$remote_addr\" }, remove = [\"X-Debug\"] }\n\
         response_headers = { set = { \"Strict-Transport-Security\" = \"max-age=63072000\" }, always = [\"Strict-Transport-Security\"] }\n\
         [[listener.route]]\npath = \"~ ^/(?<node>[a-z0-9]+)/\"\nproxy = \"app\"\n\
         request_headers = { add = { \"X-Node\" = \"${node}\" } }\n\
         location_rewrite = [[\"http://10.0.0.1:8080/\", \"https://$host/\"]]\n\
         cookie_domain = [[\"internal.local\", \"$host\"]]\n",
    );
    let config = load(&path).unwrap();
    let listener = &config.listeners[0];
    assert_eq!(
        listener.forwarding.trusted_proxies[0].to_string(),
        "10.0.0.0/8"
    );
    assert!(listener.forwarding.x_forwarded_host && listener.forwarding.forwarded);
    assert!(!listener.forwarding.x_forwarded_port);
    assert_eq!(listener.headers.request.len(), 2);
    let always: Vec<bool> = listener
        .headers
        .response
        .iter()
        .map(|(_, always)| always)
        .collect();
    assert_eq!(always, [true]);
    let route = &listener.routes[0];
    assert_eq!(route.headers.request.len(), 1);
    assert!(matches!(&route.location_rewrite, LocationRewriting::Pairs(pairs) if pairs.len() == 1));
    assert_eq!(route.cookie_domain[0].0, "internal.local");
    assert_eq!(config.upstreams[0].headers.request.len(), 1);
    let again = parse(&to_toml(&config), &path).unwrap();
    assert_eq!(
        again, config,
        "header rules round-trip through print-config"
    );
}

#[test]
fn header_rule_errors_point_at_the_value() {
    let text = errors(
        "[[upstream]]\nname = \"app\"\npeers = [\"http://127.0.0.1:9\"]\n\
         [[listener]]\naddress = \"0.0.0.0:80\"\ntrusted_proxies = [\"10.0.0.0/33\"]\n\
         request_headers = { set = { \"X-Node\" = \"$1\", \"Bad Name\" = \"x\", \"Connection\" = \"upgrade\" } }\n\
         [[listener.route]]\npath = \"~ ^/(a)\"\nproxy = \"app\"\n\
         request_headers = { set = { \"X-Two\" = \"$2\" } }\n",
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[0].starts_with("/x/gangway.toml:6:20: listener[1].trusted_proxies = \"10.0.0.0/33\""),
        "{text}"
    );
    assert!(lines[1].starts_with("/x/gangway.toml:7:40: listener[1].request_headers.set.X-Node = \"$1\": uses a route capture outside a route"), "{text}");
    assert!(lines[2].starts_with("/x/gangway.toml:7:59: listener[1].request_headers.set.Bad Name = \"Bad Name\": is not a valid header name"), "{text}");
    assert!(lines[3].starts_with("/x/gangway.toml:7:79: listener[1].request_headers.set.Connection: header `connection` cannot be changed"), "{text}");
    assert!(
        lines[4].starts_with(
            "/x/gangway.toml:11:39: listener[1].route[1].request_headers.set.X-Two = \"$2\":"
        ),
        "{text}"
    );
}

const POOLS: &str = r#"[[upstream]]
name = "cluster"
peers = [
    { url = "http://10.0.0.1:8080", route = "nodeID1", max_fails = 3, fail_timeout = "30s" },
    { url = "http://10.0.0.2:8080", route = "nodeID2", weight = 2 },
    { url = "http://10.0.0.3:8080", backup = true },
    { url = "http://10.0.0.4:8080", down = true },
]
balance = "bybusyness"
sticky = ["rpcid", "JSESSIONID", "jsessionid"]
sticky_scolon_path_delim = true
sticky_failover = false
retry = { tries = 2, timeout = "10s", idempotent = true }
health_check = { path = "/health?full=1", host = "cluster.internal", interval = "2s", timeout = "500ms", expect_status = "200-204", rise = 3, fall = 2 }

[[upstream]]
name = "hashed"
peers = ["http://10.0.1.1:80", "http://10.0.1.2:80"]
balance = "hash_consistent"
hash_key = "$request_uri"

[[listener]]
address = "127.0.0.1:8080"

[[listener.route]]
path = "~ ^/websocket/(?<node>[^/]+)(/.*)?$"
proxy = "cluster"
rewrite = "/websocket$2"
peer = "${node}"

[[listener.route]]
path = "/first/"
proxy = "cluster"
peer = "nodeID1"

[[listener.route]]
path = "/"
proxy = "hashed"
"#;

#[test]
fn pool_keys_parse_into_the_model() {
    let config = parse(POOLS, Path::new("/x/gangway.toml")).unwrap();
    let cluster = &config.upstreams[0];
    assert_eq!(
        cluster.peers[0],
        Peer {
            route: Some("nodeID1".to_owned()),
            max_fails: 3,
            fail_timeout: Duration::from_secs(30),
            ..peer("10.0.0.1", 8080, 1)
        }
    );
    assert_eq!(
        cluster.peers[1],
        Peer {
            route: Some("nodeID2".to_owned()),
            ..peer("10.0.0.2", 8080, 2)
        }
    );
    assert!(cluster.peers[2].backup && !cluster.peers[2].down);
    assert!(cluster.peers[3].down && !cluster.peers[3].backup);
    let pool = &cluster.pool;
    assert_eq!(pool.balance, gangway_upstream::Method::ByBusyness);
    assert_eq!(pool.hash_key, None);
    assert_eq!(
        pool.sticky,
        Some(crate::StickySessions {
            names: vec!["rpcid".into(), "JSESSIONID".into(), "jsessionid".into()],
            scolon_path_delim: true,
            failover: false,
        })
    );
    assert_eq!(
        pool.retry,
        crate::Retry {
            tries: 2,
            timeout: Some(Duration::from_secs(10)),
            idempotent: true,
        }
    );
    assert_eq!(
        pool.health_check,
        Some(crate::HealthCheck {
            path: "/health?full=1".to_owned(),
            host: Some("cluster.internal".to_owned()),
            interval: Duration::from_secs(2),
            timeout: Duration::from_millis(500),
            expect_status: 200..=204,
            rise: 3,
            fall: 2,
        })
    );
    let hashed = &config.upstreams[1].pool;
    assert_eq!(hashed.balance, gangway_upstream::Method::ConsistentHash);
    assert_eq!(
        hashed.hash_key.as_ref().map(Template::source),
        Some("$request_uri")
    );
    assert_eq!(hashed.retry, crate::Retry::default());
    assert_eq!(hashed.sticky, None);

    let peers: Vec<Option<String>> = config.listeners[0]
        .routes
        .iter()
        .map(|route| match &route.action {
            Action::Proxy { peer, .. } => peer.as_ref().map(ToString::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(
        peers,
        [Some("${node}".to_owned()), Some("nodeID1".to_owned()), None]
    );
}

#[test]
fn pool_keys_round_trip_through_to_toml() {
    let config = parse(POOLS, Path::new("/x/gangway.toml")).unwrap();
    let written = to_toml(&config);
    assert!(written.contains(
        "{ url = \"http://10.0.0.1:8080\", weight = 1, route = \"nodeID1\", max_fails = 3, \
         fail_timeout = \"30s\", backup = false, down = false }"
    ));
    assert!(written.contains("balance = \"bybusyness\"\n"));
    assert!(written.contains("sticky_failover = false\n"));
    assert!(written.contains("expect_status = \"200-204\""));
    assert!(written.contains("peer = \"${node}\"\n"));
    let reread = parse(&written, Path::new("/x/gangway.toml")).unwrap();
    assert_eq!(reread, config);
    assert_eq!(to_toml(&reread), written);
}

/// `POOLS` with `from` replaced by `to` (which must be there).
fn pools_with(from: &str, to: &str) -> String {
    assert!(POOLS.contains(from), "{from}");
    POOLS.replacen(from, to, 1)
}

#[test]
fn pool_key_errors_say_where_and_what_was_expected() {
    assert_eq!(
        errors(&pools_with("\"bybusyness\"", "\"fair\"")),
        "/x/gangway.toml:9:11: upstream[1].balance = \"fair\": is not a balancing method; \
         expected one of \"round_robin\", \"ip_hash\", \"hash\", \"hash_consistent\", \
         \"least_conn\" or \"bybusyness\""
    );
    assert_eq!(
        errors(&pools_with("hash_key = \"$request_uri\"\n", "")),
        "/x/gangway.toml:16:1: upstream[2].hash_key is missing; expected the key to hash, \
         such as \"$request_uri\" or \"$remote_addr\""
    );
    assert_eq!(
        errors(&pools_with("\"hash_consistent\"", "\"ip_hash\"")),
        "/x/gangway.toml:20:12: upstream[2].hash_key = \"$request_uri\": is set for balance = \
         \"ip_hash\", which hashes no key; expected balance = \"hash\" or \"hash_consistent\", \
         or no hash_key"
    );
    let error = errors(&pools_with("\"$request_uri\"", "\"$nope\""));
    assert!(
        error.starts_with("/x/gangway.toml:20:13: upstream[2].hash_key: "),
        "{error}"
    );
    assert_eq!(
        errors(&pools_with("route = \"nodeID2\"", "route = \"nodeID1\"")),
        "/x/gangway.toml:5:45: upstream[1].peers[2].route = \"nodeID1\": is already the route \
         of peers[1]; expected a route name used by one peer only"
    );
    assert_eq!(
        errors(&pools_with("max_fails = 3", "max_fails = -1")),
        "/x/gangway.toml:4:68: upstream[1].peers[1].max_fails = -1: is out of range; expected \
         a number of failures, 0 (never out) or more"
    );
    assert_eq!(
        errors(&pools_with("peer = \"nodeID1\"", "peer = \"nodeID9\"")),
        "/x/gangway.toml:34:8: listener[1].route[2].peer = \"nodeID9\": is not the route name \
         of a peer of this upstream; expected one of \"nodeID1\", \"nodeID2\""
    );
    let error = errors(&pools_with("peer = \"${node}\"", "peer = \"$3\""));
    assert!(
        error.starts_with("/x/gangway.toml:29:9: listener[1].route[1].peer: "),
        "{error}"
    );
    assert_eq!(
        errors(&pools_with("\"200-204\"", "\"204-200\"")),
        "/x/gangway.toml:14:122: upstream[1].health_check.expect_status = \"204-200\": is not \
         a status or a range of statuses; expected a status such as 200, or a range such as \
         \"200-399\", from 100 to 599"
    );
    assert_eq!(
        errors(&pools_with("path = \"/health?full=1\", ", "")),
        "/x/gangway.toml:14:16: upstream[1].health_check.path is missing; expected the path \
         to ask each peer for, such as \"/health\""
    );
    assert_eq!(
        errors(&pools_with("fall = 2", "fall = 0")),
        "/x/gangway.toml:14:150: upstream[1].health_check.fall = 0: is out of range; expected \
         a number of consecutive checks, 1 or more"
    );
    assert_eq!(
        errors(&pools_with("retry = { tries = 2", "retry = { tries = -2")),
        "/x/gangway.toml:13:19: upstream[1].retry.tries = -2: is out of range; expected a \
         number of peers to try, counting the first; 0 tries each peer once"
    );
    assert_eq!(
        errors(&pools_with(
            "sticky = [\"rpcid\", \"JSESSIONID\", \"jsessionid\"]\n",
            ""
        )),
        "/x/gangway.toml:10:28: upstream[1].sticky_scolon_path_delim = true: is set without \
         sticky; expected sticky = [\"NAME\", ...] on the upstream, or the key removed\n\
         /x/gangway.toml:11:19: upstream[1].sticky_failover = false: is set without sticky; \
         expected sticky = [\"NAME\", ...] on the upstream, or the key removed"
    );
    let no_routes =
        pools_with(", route = \"nodeID1\"", "").replacen(", route = \"nodeID2\"", "", 1);
    let error = errors(&no_routes);
    assert!(
        error.starts_with(
            "/x/gangway.toml:10:10: upstream[1].sticky = [\"rpcid\", \"JSESSIONID\", \
             \"jsessionid\"]: is set, but no peer of this upstream has a route name; expected"
        ),
        "{error}"
    );
    assert_eq!(
        errors(
            "[[upstream]]\nname = \"a\"\npeers = [{ url = \"http://a\", backup = true }]\n\n\
             [[listener]]\naddress = \"127.0.0.1:80\"\n[[listener.route]]\npath = \"/\"\n\
             redirect = \"301 /x\"\npeer = \"n1\"\n"
        ),
        "/x/gangway.toml:3:9: upstream[1].peers = [...]: has only backup peers; expected at \
         least one peer without backup = true\n\
         /x/gangway.toml:10:8: listener[1].route[1].peer: only a `proxy` route can have this, \
         and this route uses `redirect`; expected the key removed"
    );
}
