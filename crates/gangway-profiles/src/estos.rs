//! `gangway-estos`: TLS offload in front of an estos UCServer (ProCall Mobile, web
//! clients), as the estos nginx guide sets it up.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::error::Errors;
use crate::run::Profile;
use crate::values::{Check, FILE, HOST, IntOrText, Key, quote};

/// The estos profile file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estos {
    server_name: Key<String>,
    certificate: Key<String>,
    private_key: Key<String>,
    ucserver: Key<String>,
    ucserver_ca: Key<String>,
    http_listen: Key<String>,
    https_listen: Key<String>,
    hsts: Key<bool>,
    websocket_idle_timeout: Key<IntOrText>,
}

/// The guide's `add_header Strict-Transport-Security "max-age=63072000"`.
const HSTS: &str = "max-age=63072000";

impl Profile for Estos {
    const NAME: &'static str = "estos";

    fn expand(&self, file: &Path, text: &str) -> Result<String, Errors> {
        let mut check = Check::new(file, text);
        let top = 0..0;
        let server_name = check
            .required(top.clone(), "server_name", &self.server_name, HOST)
            .map(|name| check.host("server_name", name));
        let certificate = check
            .required(top.clone(), "certificate", &self.certificate, FILE)
            .map(|path| check.file("certificate", path));
        let private_key = check
            .required(top, "private_key", &self.private_key, FILE)
            .map(|path| check.file("private_key", path));
        let ucserver = match &self.ucserver {
            Some(url) => check.url("ucserver", url, false),
            None => "http://127.0.0.1:7224".to_owned(),
        };
        let ucserver_ca = self.ucserver_ca.as_ref().map(|path| {
            if !ucserver.starts_with("https:") {
                check.invalid(
                    path.span(),
                    "ucserver_ca",
                    quote(path.get_ref()),
                    "is set but ucserver is not https",
                    "no ucserver_ca, or an https ucserver such as \"https://127.0.0.1:7225\"",
                );
            }
            check.file("ucserver_ca", path)
        });
        let http_listen = check.address("http_listen", &self.http_listen, "0.0.0.0:80");
        let https_listen = check.address("https_listen", &self.https_listen, "0.0.0.0:443");
        let hsts = self.hsts.as_ref().is_none_or(|hsts| *hsts.get_ref());
        let idle = check.duration_ms(
            "websocket_idle_timeout",
            &self.websocket_idle_timeout,
            3_600_000,
        );

        let mut out = check.header(Self::NAME);
        let _ = writeln!(
            out,
            "\n[[upstream]]\nname = \"ucserver\"\npeers = [{}]",
            quote(&ucserver)
        );
        if let Some(ca) = ucserver_ca {
            let _ = writeln!(out, "ca = {}", quote(&ca));
        }
        // The guide: `return 301 https://$server_name$request_uri;`.
        let target = format!(
            "https://{}$request_uri",
            server_name.clone().unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "\n[[listener]]\nname = \"http\"\naddress = {}\n\n[[listener.route]]\npath = \"/\"\n\
             redirect = {{ status = 301, to = {} }}",
            quote(&http_listen),
            quote(&target)
        );
        let _ = writeln!(
            out,
            "\n[[listener]]\nname = \"https\"\naddress = {}\ncertificate = {}\nprivate_key = {}\n\
             # The guide's TLSv1 and TLSv1.1 are deliberately not offered.\n\
             tls_versions = [\"1.2\", \"1.3\"]\n\
             # X-Real-IP, X-Forwarded-For (appended) and Host are the engine's defaults.\n\
             request_headers = {{ set = {{ \"X-NginX-Proxy\" = \"true\" }} }}",
            quote(&https_listen),
            quote(&certificate.unwrap_or_default()),
            quote(&private_key.unwrap_or_default()),
        );
        if hsts {
            let _ = writeln!(
                out,
                "response_headers = {{ set = {{ \"Strict-Transport-Security\" = {} }}, \
                 always = [\"Strict-Transport-Security\"] }}",
                quote(HSTS)
            );
        }
        let _ = writeln!(
            out,
            "\n[[listener.route]]\npath = \"/ws/client/websocket\"\nproxy = \"ucserver\"\n\
             websocket = true\nwebsocket_idle_timeout = {}\n\n\
             [[listener.route]]\npath = \"/\"\nproxy = \"ucserver\"\nlocation_rewrite = \"off\"",
            gangway_config::duration_to_toml(std::time::Duration::from_millis(idle))
        );
        check.finish(out)
    }
}
