//! `gangway-igel`: the IGEL UMS device gateway, as the IGEL guide's nginx sets it up:
//! devices over TLS 1.3 with an optional client certificate passed on as `X-SSL-CERT`,
//! their WebSockets, EST enrollment, the app proxy and the web app.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::error::Errors;
use crate::run::Profile;
use crate::values::{Check, FILE, HTTPS_URL, Key, quote};

/// The IGEL profile file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Igel {
    server_name: Key<String>,
    certificate: Key<String>,
    private_key: Key<String>,
    device_ca: Key<String>,
    ums_upstream: Key<String>,
    ums_ca: Key<String>,
    ums_server_name: Key<String>,
    listen: Key<String>,
    onboarding_listen: Key<String>,
    web_app_listen: Key<String>,
}

/// The device WebSockets of the guide's `location ~ ^/device-connector/device/(ws-connect|portforwarding)`.
const DEVICE_WEBSOCKETS: [&str; 2] = [
    "/device-connector/device/ws-connect",
    "/device-connector/device/portforwarding",
];
const EST: &str = "/device-connector/device/.well-known/est/";
const APP_PROXY: &str = "/ums-appproxy/";
const WEB_APP: [&str; 2] = ["/wums-app/", "/webapp/"];

/// nginx `proxy_set_header X-SSL-CERT $ssl_client_escaped_cert;`; the engine sets it only
/// for a certificate that verified against `device_ca`, and always drops a client's own.
const CERT_HEADER: &str =
    "request_headers = { set = { \"X-SSL-CERT\" = \"$ssl_client_escaped_cert\" } }";

impl Profile for Igel {
    const NAME: &'static str = "igel";

    fn expand(&self, file: &Path, text: &str) -> Result<String, Errors> {
        let mut check = Check::new(file, text);
        let top = 0..0;
        if let Some(name) = &self.server_name {
            check.host("server_name", name);
        }
        let required_file = |check: &mut Check<'_>, key: &str, value: &Key<String>| {
            check
                .required(top.clone(), key, value, FILE)
                .map(|path| check.file(key, path))
                .unwrap_or_default()
        };
        let certificate = required_file(&mut check, "certificate", &self.certificate);
        let private_key = required_file(&mut check, "private_key", &self.private_key);
        let device_ca = required_file(&mut check, "device_ca", &self.device_ca);
        let ums_ca = required_file(&mut check, "ums_ca", &self.ums_ca);
        let ums = check
            .required(top.clone(), "ums_upstream", &self.ums_upstream, HTTPS_URL)
            .map(|url| check.url("ums_upstream", url, true))
            .unwrap_or_default();
        let ums_server_name = self
            .ums_server_name
            .as_ref()
            .map(|name| check.host("ums_server_name", name));
        let listen = check.address("listen", &self.listen, "0.0.0.0:8443");
        let onboarding = self
            .onboarding_listen
            .as_ref()
            .map(|_| check.address("onboarding_listen", &self.onboarding_listen, ""));
        let web_app = self
            .web_app_listen
            .as_ref()
            .map(|_| check.address("web_app_listen", &self.web_app_listen, ""));

        let mut out = check.header(Self::NAME);
        if let Some(name) = &self.server_name {
            let _ = writeln!(out, "# Devices reach this gateway as {}.", name.get_ref());
        }
        // The guide's upstream: HTTPS to the UMS, verified, TLS 1.3 only.
        let _ = writeln!(
            out,
            "\n[[upstream]]\nname = \"ums\"\npeers = [{}]\nca = {}\ntls_versions = [\"1.3\"]",
            quote(&ums),
            quote(&ums_ca)
        );
        if let Some(name) = ums_server_name {
            let _ = writeln!(out, "server_name = {}", quote(&name));
        }
        let tls = |out: &mut String, name: &str, address: &str, versions: &str| {
            let _ = writeln!(
                out,
                "\n[[listener]]\nname = \"{name}\"\naddress = {}\ncertificate = {}\n\
                 private_key = {}\ntls_versions = {versions}",
                quote(address),
                quote(&certificate),
                quote(&private_key)
            );
        };
        let route = |out: &mut String, path: &str, extra: &str| {
            let _ = writeln!(
                out,
                "\n[[listener.route]]\npath = {}\nproxy = \"ums\"\n{extra}",
                quote(path)
            );
        };
        // Without a web-app listener the web app shares the device listener, which then
        // offers TLS 1.2 too and keeps the device paths at TLS 1.3 per route (421).
        let (versions, device_only) = if web_app.is_some() {
            ("[\"1.3\"]", "")
        } else {
            ("[\"1.2\", \"1.3\"]", "min_tls_version = \"1.3\"\n")
        };
        tls(&mut out, "devices", &listen, versions);
        let _ = writeln!(
            out,
            "client_certificates = \"optional\"\nclient_ca = {}\n{CERT_HEADER}",
            quote(&device_ca)
        );
        for path in DEVICE_WEBSOCKETS {
            route(&mut out, path, &format!("websocket = true\n{device_only}"));
        }
        route(&mut out, EST, device_only);
        route(
            &mut out,
            APP_PROXY,
            &format!("websocket = true\n{device_only}"),
        );
        if web_app.is_none() {
            for path in WEB_APP {
                route(&mut out, path, "websocket = true\n");
            }
        }
        route(&mut out, "/", device_only);
        if let Some(address) = onboarding {
            // Enrollment only: no client certificate is requested here.
            tls(&mut out, "onboarding", &address, "[\"1.3\"]");
            route(&mut out, EST, "");
        }
        if let Some(address) = web_app {
            tls(&mut out, "web-app", &address, "[\"1.2\", \"1.3\"]");
            for path in WEB_APP {
                route(&mut out, path, "websocket = true\n");
            }
        }
        check.finish(out)
    }
}
