//! `gangway-allegro`: remote access to Allegro multimeters. One public HTTPS endpoint,
//! many devices: each device's hostname (SNI and Host) leads to the local port where that
//! device's reverse tunnel lands, spoken to over HTTPS with the device's own certificate.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use serde_spanned::Spanned;

use crate::error::Errors;
use crate::run::Profile;
use crate::values::{Check, FILE, HOST, IntOrText, Key, quote};

/// The Allegro profile file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allegro {
    http_listen: Key<String>,
    https_listen: Key<String>,
    max_body: Key<IntOrText>,
    certificate: Key<String>,
    private_key: Key<String>,
    #[serde(default)]
    device: Vec<Spanned<Device>>,
}

/// One `[[device]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Device {
    hostname: Key<String>,
    port: Key<i64>,
    certificate: Key<String>,
    private_key: Key<String>,
    upstream_fingerprint: Key<String>,
}

const PORT: &str = "the local port of the device's reverse tunnel, from 1 to 65535";

impl Profile for Allegro {
    const NAME: &'static str = "allegro";

    fn expand(&self, file: &Path, text: &str) -> Result<String, Errors> {
        let mut check = Check::new(file, text);
        let top = 0..0;
        let http_listen = check.address("http_listen", &self.http_listen, "0.0.0.0:80");
        let https_listen = check.address("https_listen", &self.https_listen, "0.0.0.0:443");
        // The guide's `client_max_body_size 200M` (firmware uploads).
        let max_body = check.size("max_body", &self.max_body, 200 * 1024 * 1024);
        let certificate = check
            .required(top.clone(), "certificate", &self.certificate, FILE)
            .map(|path| check.file("certificate", path))
            .unwrap_or_default();
        let private_key = check
            .required(top.clone(), "private_key", &self.private_key, FILE)
            .map(|path| check.file("private_key", path))
            .unwrap_or_default();
        if self.device.is_empty() {
            check.missing(
                top,
                "device",
                "at least one [[device]] table with hostname and port",
            );
        }

        let mut out = check.header(Self::NAME);
        let mut entries = String::new();
        let mut routes = String::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, device) in self.device.iter().enumerate() {
            let n = index + 1;
            let span = device.span();
            let device = device.get_ref();
            let key = |name: &str| format!("device[{n}].{name}");
            let hostname = check
                .required(span.clone(), &key("hostname"), &device.hostname, HOST)
                .map(|name| {
                    let host = check.host(&key("hostname"), name);
                    if host.starts_with("*.") || seen.insert(host.clone(), n).is_some() {
                        check.invalid(
                            name.span(),
                            &key("hostname"),
                            quote(name.get_ref()),
                            "is a wildcard or the hostname of another device",
                            "one exact DNS name per device",
                        );
                    }
                    host
                })
                .unwrap_or_default();
            let port = check
                .required(span.clone(), &key("port"), &device.port, PORT)
                .map(|port| {
                    u16::try_from(*port.get_ref())
                        .ok()
                        .filter(|&port| port > 0)
                        .unwrap_or_else(|| {
                            check.invalid(
                                port.span(),
                                &key("port"),
                                port.get_ref().to_string(),
                                "is not a port",
                                PORT,
                            );
                            0
                        })
                })
                .unwrap_or_default();
            let (cert, private) = match (&device.certificate, &device.private_key) {
                (Some(cert), Some(private)) => (
                    check.file(&key("certificate"), cert),
                    check.file(&key("private_key"), private),
                ),
                (None, None) => (certificate.clone(), private_key.clone()),
                (Some(cert), None) | (None, Some(cert)) => {
                    check.invalid(
                        cert.span(),
                        &key("certificate"),
                        quote(cert.get_ref()),
                        "is set without its pair",
                        "both certificate and private_key, or neither (the default certificate)",
                    );
                    (String::new(), String::new())
                }
            };
            // Without a pin the device's self-signed certificate cannot be verified; the
            // engine accepts it and logs a warning at start.
            let trust = match &device.upstream_fingerprint {
                Some(pin) => format!(
                    "pin_sha256 = [{}]",
                    quote(&check.fingerprint(&key("upstream_fingerprint"), pin))
                ),
                None => "insecure_skip_verify = true".to_owned(),
            };
            let _ = writeln!(
                out,
                "\n[[upstream]]\nname = \"device-{n}\"\npeers = [\"https://127.0.0.1:{port}\"]\n\
                 {trust}"
            );
            // One certificate entry per hostname, even when it is the default certificate:
            // a Host naming another device than the SNI is then 421.
            let _ = writeln!(
                entries,
                "\n[[listener.certificates]]\ncertificate = {}\nprivate_key = {}\nnames = [{}]",
                quote(&cert),
                quote(&private),
                quote(&hostname)
            );
            let _ = writeln!(
                routes,
                "\n[[listener.route]]\nhost = {}\npath = \"/\"\nproxy = \"device-{n}\"\n\
                 max_body = {max_body}\nwebsocket = true",
                quote(&hostname)
            );
        }
        let _ = writeln!(
            out,
            "\n[[listener]]\nname = \"http\"\naddress = {}\n\n[[listener.route]]\npath = \"/\"\n\
             redirect = {{ status = 301, to = \"https://$host$request_uri\" }}",
            quote(&http_listen)
        );
        let _ = writeln!(
            out,
            "\n[[listener]]\nname = \"https\"\naddress = {}\nunknown_sni = \"default\"\n\n\
             [[listener.certificates]]\ncertificate = {}\nprivate_key = {}\ndefault = true",
            quote(&https_listen),
            quote(&certificate),
            quote(&private_key)
        );
        out.push_str(&entries);
        out.push_str(&routes);
        let _ = writeln!(
            out,
            "\n[[listener.route]]\npath = \"/\"\nrespond = {{ status = 404, body = \"unknown device\" }}"
        );
        check.finish(out)
    }
}
