//! `gangway demo`: a generated certificate, the built-in echo origin, two listeners.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use gangway_config::{CertificateSource, Config, ListenerTls};

/// Where the demo listens.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Plain HTTP port; it redirects to HTTPS (0 picks a free port).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// HTTPS port (0 picks a free port).
    #[arg(long, default_value_t = 8443)]
    https_port: u16,
    /// Admin listener port on 127.0.0.1 (/metrics, /healthz, /readyz, /tunnels); off if unset.
    #[arg(long)]
    admin_port: Option<u16>,
}

/// The configuration a user would write for this, plus a certificate made in memory.
pub(crate) fn config(
    args: &DemoArgs,
    origin: SocketAddr,
) -> Result<Config, Box<dyn std::error::Error>> {
    let (bind, http_port, https_port) = (&args.bind, &args.http_port, &args.https_port);
    let (http, https) = (
        SocketAddr::new(*bind, *http_port),
        SocketAddr::new(*bind, *https_port),
    );
    // With port 0 the redirect cannot know the HTTPS port in advance; keep the host's.
    let port = if *https_port == 0 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let toml = include_str!("demo.toml")
        .replace("ORIGIN", &origin.to_string())
        .replace("HTTP_ADDRESS", &http.to_string())
        .replace("HTTPS_ADDRESS", &https.to_string())
        .replace("HTTPS_PORT", &port);
    let mut config = gangway_config::parse(&toml, Path::new("<demo>"))?;
    config.admin = args.admin_port.map(gangway_config::Admin::loopback);
    let names = vec!["localhost".into(), "127.0.0.1".into(), bind.to_string()];
    let certificate = rcgen::generate_simple_self_signed(names)?;
    if let Some(listener) = config
        .listeners
        .iter_mut()
        .find(|listener| listener.name == "https")
    {
        listener.tls = Some(ListenerTls::single(CertificateSource::Inline {
            chain: certificate.cert.pem(),
            key: certificate.signing_key.serialize_pem(),
        }));
    }
    Ok(config)
}

/// Tells the user what to try.
pub(crate) fn print_instructions(bound: &[SocketAddr]) {
    let [http, https] = bound else { return };
    let (port, http_port) = (https.port(), http.port());
    println!(
        "gangway demo is running (self-signed certificate for localhost, echo origin behind it)\n\n\
         \x20 HTTP  {http} -> redirects to HTTPS\n\
         \x20 HTTPS {https} -> proxies to the echo origin\n\n\
         Try:\n\
         \x20 curl -k https://localhost:{port}/hello\n\
         \x20 curl -k -d 'some body' https://localhost:{port}/post\n\
         \x20 curl -i http://localhost:{http_port}/hello\n\
         \x20 websocat -k wss://localhost:{port}/ws   (any WebSocket client; messages are echoed)\n\
         \x20 gangway probe --insecure wss://localhost:{port}/ws   (checks the WebSocket path)\n\
         \x20 https://localhost:{port}/websocket-test in a browser   (the same check, in the page)\n\n\
         Stop with Ctrl-C."
    );
}
