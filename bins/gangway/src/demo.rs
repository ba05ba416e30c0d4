//! `gangway demo`: a generated certificate, a built-in echo origin, two listeners.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use gangway_config::{
    Action, Config, Listener, ListenerTls, Peer, Route, Scheme, Server, Upstream, UpstreamTls,
    defaults,
};
use gangway_headers::Template;

/// Where the demo listens.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Plain HTTP port; it redirects to HTTPS.
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// HTTPS port.
    #[arg(long, default_value_t = 8443)]
    https_port: u16,
}

/// Generates the certificate and builds the configuration around the echo origin.
pub(crate) fn config(
    args: &DemoArgs,
    origin_addr: SocketAddr,
) -> Result<Config, Box<dyn std::error::Error>> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        args.bind.to_string(),
    ];
    let certificate = rcgen::generate_simple_self_signed(names)?;

    let route = |path: &str, action: Action, websocket: bool| Route {
        host: None,
        path: path.to_owned(),
        action,
        max_body_bytes: defaults::MAX_BODY_BYTES,
        body_idle_timeout: defaults::BODY_IDLE_TIMEOUT,
        websocket,
        websocket_idle_timeout: defaults::WEBSOCKET_IDLE_TIMEOUT,
    };
    let listener = |name: &str, port: u16, tls: Option<ListenerTls>, routes| Listener {
        name: name.to_owned(),
        address: SocketAddr::new(args.bind, port),
        tls,
        header_read_timeout: defaults::HEADER_READ_TIMEOUT,
        max_header_bytes: defaults::MAX_HEADER_BYTES,
        keepalive_timeout: defaults::KEEPALIVE_TIMEOUT,
        routes,
    };
    let redirect = Template::parse(&format!("https://$host:{}$request_uri", args.https_port))?;
    let tls = ListenerTls::Pem {
        certificate_chain: certificate.cert.pem(),
        private_key: certificate.signing_key.serialize_pem(),
    };
    let config = Config {
        server: Server {
            drain_timeout: Duration::from_secs(5),
        },
        listeners: vec![
            listener(
                "http",
                args.http_port,
                None,
                vec![route(
                    "/",
                    Action::Redirect {
                        status: 301,
                        target: redirect,
                    },
                    false,
                )],
            ),
            listener(
                "https",
                args.https_port,
                Some(tls),
                vec![route(
                    "/",
                    Action::Proxy {
                        upstream: 0,
                        rewrite_prefix: None,
                    },
                    true,
                )],
            ),
        ],
        upstreams: vec![Upstream {
            name: "echo".to_owned(),
            scheme: Scheme::Http,
            peers: vec![Peer {
                host: origin_addr.ip().to_string(),
                port: origin_addr.port(),
                weight: 1,
            }],
            tls: UpstreamTls::default(),
            connect_timeout: defaults::CONNECT_TIMEOUT,
            response_header_timeout: defaults::RESPONSE_HEADER_TIMEOUT,
            keepalive: defaults::UPSTREAM_KEEPALIVE,
            keepalive_timeout: defaults::UPSTREAM_KEEPALIVE_TIMEOUT,
        }],
    };
    Ok(config)
}

/// Tells the user what to try.
pub(crate) fn print_instructions(bound: &[SocketAddr]) {
    let (http, https) = match bound {
        [http, https] => (*http, *https),
        _ => return,
    };
    println!(
        "gangway demo is running (self-signed certificate for localhost, echo origin behind it)\n\
         \n  HTTP  {http} -> redirects to HTTPS\n  HTTPS {https} -> proxies to the echo origin\n\
         \nTry:\n  curl -k https://localhost:{port}/hello\n  curl -k -d 'some body' https://localhost:{port}/post\n  \
         curl -i http://localhost:{http_port}/hello\n  \
         websocat -k wss://localhost:{port}/ws   (any WebSocket client; messages are echoed)\n\
         \nStop with Ctrl-C.",
        port = https.port(),
        http_port = http.port(),
    );
}
