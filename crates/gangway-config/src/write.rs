//! [`Config`] back to TOML, normalised: every key with its value, defaults included.

use std::path::Path;

use gangway_route::{HostMatch, MatchMode};
use gangway_tls::{CertificateSource, TlsVersion, TlsVersions, UnknownSni};

use gangway_headers::HeaderOp;

use crate::model::{
    Action, Config, HeaderRules, Listener, ListenerTls, LocationRewriting, PoolSettings, Rewrite,
    Route, Scheme, Upstream, UpstreamTls,
};
use crate::values::{duration_to_toml, peer_url, quote, size_to_toml};

/// Writes `config` as a normalised configuration file.
///
/// Every key is written with its value, defaults included; sizes are bytes or unit strings
/// (`"16KiB"`), durations strings (`"30s"`, `"1500ms"`), file paths absolute, and upstreams
/// are referred to by name. [`parse`](crate::parse) reads the result back into an equal
/// [`Config`]. A listener certificate held in memory (([`CertificateSource::Inline`])) cannot be
/// written: a comment says so and the listener is written without TLS keys.
pub fn to_toml(config: &Config) -> String {
    let mut out = String::from(
        "# gangway configuration, normalised: every key with its value, defaults included.\n",
    );
    out.push_str("\n[server]\n");
    key(
        &mut out,
        "drain_timeout",
        duration_to_toml(config.server.drain_timeout),
    );
    let watch = config
        .server
        .certificate_watch_interval
        .map_or_else(|| quote("off"), duration_to_toml);
    key(&mut out, "certificate_watch_interval", watch);
    let access_log = &config.server.access_log;
    let format = quote(access_log.format.name());
    let access_log = match &access_log.path {
        Some(file) => format!("{{ format = {format}, path = {} }}", path(file)),
        None => format!("{{ format = {format} }}"),
    };
    key(&mut out, "access_log", access_log);
    if let Some(admin) = &config.admin {
        out.push_str("\n[admin]\n");
        key(&mut out, "address", quote(&admin.address.to_string()));
        key(&mut out, "allow_remote", admin.allow_remote.to_string());
        if let Some(token_file) = &admin.token_file {
            key(&mut out, "token_file", path(token_file));
        }
    }
    for upstream in &config.upstreams {
        write_upstream(&mut out, upstream);
    }
    for listener in &config.listeners {
        write_listener(&mut out, listener, &config.upstreams);
    }
    out
}

fn key(out: &mut String, name: &str, value: String) {
    out.push_str(name);
    out.push_str(" = ");
    out.push_str(&value);
    out.push('\n');
}

fn path(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    quote(&absolute.to_string_lossy())
}

fn write_upstream(out: &mut String, upstream: &Upstream) {
    out.push_str("\n[[upstream]]\n");
    key(out, "name", quote(&upstream.name));
    out.push_str("peers = [\n");
    for peer in &upstream.peers {
        let url = quote(&peer_url(upstream.scheme, &peer.host, peer.port));
        let route = peer
            .route
            .as_ref()
            .map_or_else(String::new, |route| format!(", route = {}", quote(route)));
        out.push_str(&format!(
            "    {{ url = {url}, weight = {}{route}, max_fails = {}, fail_timeout = {}, backup = {}, down = {} }},\n",
            peer.weight,
            peer.max_fails,
            duration_to_toml(peer.fail_timeout),
            peer.backup,
            peer.down,
        ));
    }
    out.push_str("]\n");
    if let Some(ca) = &upstream.tls.ca {
        key(out, "ca", path(ca));
    }
    if let Some(server_name) = &upstream.tls.server_name {
        key(out, "server_name", quote(server_name));
    }
    if upstream.scheme == Scheme::Https {
        write_upstream_tls(out, &upstream.tls);
    }
    key(
        out,
        "connect_timeout",
        duration_to_toml(upstream.connect_timeout),
    );
    key(
        out,
        "response_header_timeout",
        duration_to_toml(upstream.response_header_timeout),
    );
    key(out, "keepalive", upstream.keepalive.to_string());
    key(
        out,
        "keepalive_timeout",
        duration_to_toml(upstream.keepalive_timeout),
    );
    write_header_rules(out, &upstream.headers);
    write_pool(out, &upstream.pool);
}

/// Balancing, sticky sessions, retries and health checks of one upstream.
fn write_pool(out: &mut String, pool: &PoolSettings) {
    key(out, "balance", quote(pool.balance.name()));
    if let Some(hash_key) = &pool.hash_key {
        key(out, "hash_key", quote(hash_key.source()));
    }
    if let Some(sticky) = &pool.sticky {
        let names: Vec<String> = sticky.names.iter().map(|name| quote(name)).collect();
        key(out, "sticky", format!("[{}]", names.join(", ")));
        key(
            out,
            "sticky_scolon_path_delim",
            sticky.scolon_path_delim.to_string(),
        );
        key(out, "sticky_failover", sticky.failover.to_string());
    }
    let retry = &pool.retry;
    let timeout = retry.timeout.map_or_else(String::new, |timeout| {
        format!(", timeout = {}", duration_to_toml(timeout))
    });
    key(
        out,
        "retry",
        format!(
            "{{ tries = {}{timeout}, idempotent = {} }}",
            retry.tries, retry.idempotent
        ),
    );
    if let Some(check) = &pool.health_check {
        let host = check
            .host
            .as_ref()
            .map_or_else(String::new, |host| format!(", host = {}", quote(host)));
        let (low, high) = (check.expect_status.start(), check.expect_status.end());
        let expect = if low == high {
            low.to_string()
        } else {
            quote(&format!("{low}-{high}"))
        };
        key(
            out,
            "health_check",
            format!(
                "{{ path = {}{host}, interval = {}, timeout = {}, expect_status = {expect}, rise = {}, fall = {} }}",
                quote(&check.path),
                duration_to_toml(check.interval),
                duration_to_toml(check.timeout),
                check.rise,
                check.fall,
            ),
        );
    }
}

/// The listener's certificates; false (with a comment) when one is held in memory and
/// cannot be written, and for a plain listener.
fn write_listener_tls(out: &mut String, tls: Option<&ListenerTls>) -> bool {
    let Some(tls) = tls else { return false };
    let files: Option<Vec<(&Path, &Path)>> = tls
        .certificates
        .iter()
        .map(|certificate| match &certificate.source {
            CertificateSource::Files { chain, key } => Some((chain.as_path(), key.as_path())),
            CertificateSource::Inline { .. } => None,
        })
        .collect();
    let Some(files) = files else {
        out.push_str(
            "# certificate and private_key: the certificate is held in memory (PEM) and cannot \
             be written here\n",
        );
        return false;
    };
    match (tls.certificates.as_slice(), files.as_slice()) {
        ([only], [(chain, private_key)])
            if only.names.is_empty() && tls.unknown_sni == UnknownSni::Default =>
        {
            key(out, "certificate", path(chain));
            key(out, "private_key", path(private_key));
        }
        _ => {
            out.push_str("certificates = [\n");
            for (certificate, (chain, private_key)) in tls.certificates.iter().zip(&files) {
                let names: Vec<String> = certificate.names.iter().map(|n| quote(n)).collect();
                out.push_str(&format!(
                    "    {{ certificate = {}, private_key = {}, names = [{}], default = {} }},\n",
                    path(chain),
                    path(private_key),
                    names.join(", "),
                    certificate.default,
                ));
            }
            out.push_str("]\n");
            let unknown = match tls.unknown_sni {
                UnknownSni::Reject => "reject",
                _ => "default",
            };
            key(out, "unknown_sni", quote(unknown));
        }
    }
    true
}

fn versions_to_toml(versions: TlsVersions) -> String {
    match versions {
        TlsVersions::Tls13Only => "[\"1.3\"]",
        TlsVersions::Tls12Only => "[\"1.2\"]",
        _ => "[\"1.2\", \"1.3\"]",
    }
    .to_owned()
}

fn write_upstream_tls(out: &mut String, tls: &UpstreamTls) {
    if !tls.pins.is_empty() {
        let pins: Vec<String> = tls.pins.iter().map(|pin| quote(&pin.to_string())).collect();
        key(out, "pin_sha256", format!("[{}]", pins.join(", ")));
    }
    if tls.insecure_skip_verify {
        key(out, "insecure_skip_verify", "true".to_owned());
    }
    key(out, "tls_versions", versions_to_toml(tls.versions));
    match &tls.client_certificate {
        Some(CertificateSource::Files {
            chain,
            key: private_key,
        }) => {
            key(out, "client_certificate", path(chain));
            key(out, "client_private_key", path(private_key));
        }
        Some(CertificateSource::Inline { .. }) => {
            out.push_str("# client_certificate: held in memory (PEM) and cannot be written here\n")
        }
        None => {}
    }
}

fn write_listener(out: &mut String, listener: &Listener, upstreams: &[Upstream]) {
    out.push_str("\n[[listener]]\n");
    key(out, "name", quote(&listener.name));
    key(out, "address", quote(&listener.address.to_string()));
    let tls_written = write_listener_tls(out, listener.tls.as_ref());
    if let Some(proxy_protocol) = &listener.proxy_protocol {
        let trusted: Vec<String> = proxy_protocol
            .trusted
            .iter()
            .map(|network| quote(&network.to_string()))
            .collect();
        key(
            out,
            "proxy_protocol",
            format!("{{ trusted = [{}] }}", trusted.join(", ")),
        );
    }
    if let Some(limit) = listener.max_connections {
        key(out, "max_connections", limit.to_string());
    }
    if let Some(limit) = listener.max_connections_per_client {
        key(out, "max_connections_per_client", limit.to_string());
    }
    key(
        out,
        "header_read_timeout",
        duration_to_toml(listener.header_read_timeout),
    );
    key(
        out,
        "max_header_size",
        size_to_toml(listener.max_header_bytes as u64),
    );
    key(
        out,
        "keepalive_timeout",
        duration_to_toml(listener.keepalive_timeout),
    );
    key(out, "send_timeout", duration_to_toml(listener.send_timeout));
    let mode = match listener.match_mode {
        MatchMode::FirstMatch => "first_match",
        _ => "nginx",
    };
    key(out, "match_mode", quote(mode));
    key(out, "merge_slashes", listener.merge_slashes.to_string());
    // A certificate held in memory is not written, so neither are the keys that need one.
    if tls_written {
        key(out, "tls_versions", versions_to_toml(listener.tls_versions));
        key(
            out,
            "client_certificates",
            quote(listener.client_certificates.as_str()),
        );
        if let Some(ca) = &listener.client_ca {
            key(out, "client_ca", path(ca));
        }
        if !listener.client_crls.is_empty() {
            let crls: Vec<String> = listener.client_crls.iter().map(|crl| path(crl)).collect();
            key(out, "client_crls", format!("[{}]", crls.join(", ")));
        }
    }
    let forwarding = &listener.forwarding;
    let trusted: Vec<String> = forwarding
        .trusted_proxies
        .iter()
        .map(|network| quote(&network.to_string()))
        .collect();
    key(out, "trusted_proxies", format!("[{}]", trusted.join(", ")));
    let extra: Vec<String> = [
        (forwarding.x_forwarded_host, "x-forwarded-host"),
        (forwarding.x_forwarded_port, "x-forwarded-port"),
        (forwarding.forwarded, "forwarded"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| quote(name))
    .collect();
    key(out, "forwarded_headers", format!("[{}]", extra.join(", ")));
    write_header_rules(out, &listener.headers);
    for route in &listener.routes {
        write_route(out, route, upstreams);
    }
}

fn write_route(out: &mut String, route: &Route, upstreams: &[Upstream]) {
    out.push_str("\n[[listener.route]]\n");
    key(out, "path", quote(&route.path.to_string()));
    if route.host != HostMatch::Any {
        key(out, "host", quote(&route.host.to_string()));
    }
    if !route.methods.is_empty() {
        let methods: Vec<String> = route.methods.iter().map(|method| quote(method)).collect();
        key(out, "methods", format!("[{}]", methods.join(", ")));
    }
    match &route.action {
        Action::Proxy {
            upstream,
            rewrite,
            peer,
        } => {
            let name = upstreams
                .get(*upstream)
                .map_or_else(|| format!("<no upstream #{upstream}>"), |u| u.name.clone());
            key(out, "proxy", quote(&name));
            let location = match &route.location_rewrite {
                LocationRewriting::Off => quote("off"),
                LocationRewriting::Default => quote("default"),
                LocationRewriting::Pairs(pairs) => pairs_to_toml(pairs),
            };
            key(out, "location_rewrite", location);
            if !route.cookie_domain.is_empty() {
                key(out, "cookie_domain", pairs_to_toml(&route.cookie_domain));
            }
            if !route.cookie_path.is_empty() {
                key(out, "cookie_path", pairs_to_toml(&route.cookie_path));
            }
            match rewrite {
                None => {}
                Some(Rewrite::Prefix(prefix)) => key(out, "rewrite_prefix", quote(prefix)),
                Some(Rewrite::Template(template)) => {
                    key(out, "rewrite", quote(&template.to_string()));
                }
            }
            if let Some(peer) = peer {
                key(out, "peer", quote(&peer.to_string()));
            }
        }
        Action::Redirect { status, target } => {
            let target = quote(target.source());
            key(
                out,
                "redirect",
                format!("{{ status = {status}, to = {target} }}"),
            );
        }
        Action::WebSocketTestPage { target } => {
            key(out, "websocket_test_page", quote(target));
        }
        Action::Relay(relay) => {
            let mut table = format!(
                "pairing_timeout = {}, require_verified_device = {}, max_message_size = {}",
                duration_to_toml(relay.pairing_timeout),
                relay.require_verified_device,
                size_to_toml(relay.max_message_bytes as u64),
            );
            if let Some(file) = &relay.ticket_secret_file {
                table.push_str(&format!(", ticket_secret_file = {}", path(file)));
            }
            key(out, "relay", format!("{{ {table} }}"));
        }
        Action::Respond { status, body } => {
            let body = quote(body);
            key(
                out,
                "respond",
                format!("{{ status = {status}, body = {body} }}"),
            );
        }
    }
    key(out, "max_body", size_to_toml(route.max_body_bytes));
    key(
        out,
        "body_idle_timeout",
        duration_to_toml(route.body_idle_timeout),
    );
    key(out, "websocket", route.websocket.to_string());
    key(
        out,
        "websocket_idle_timeout",
        duration_to_toml(route.websocket_idle_timeout),
    );
    match route.min_tls_version {
        Some(TlsVersion::Tls13) => key(out, "min_tls_version", quote("1.3")),
        Some(TlsVersion::Tls12) => key(out, "min_tls_version", quote("1.2")),
        _ => {}
    }
    write_header_rules(out, &route.headers);
}

/// `request_headers` and `response_headers` as inline tables, when not empty.
fn write_header_rules(out: &mut String, rules: &HeaderRules) {
    for (name, ops) in [
        ("request_headers", &rules.request),
        ("response_headers", &rules.response),
    ] {
        if ops.is_empty() {
            continue;
        }
        let (mut set, mut add, mut remove, mut always) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (op, is_always) in ops.iter() {
            let header = quote(op.name().as_str());
            match op {
                HeaderOp::Set(_, template) => {
                    set.push(format!("{header} = {}", quote(template.source())))
                }
                HeaderOp::Add(_, template) => {
                    add.push(format!("{header} = {}", quote(template.source())))
                }
                HeaderOp::Remove(_) => remove.push(header.clone()),
                _ => continue,
            }
            if is_always {
                always.push(header);
            }
        }
        let mut parts = Vec::new();
        if !set.is_empty() {
            parts.push(format!("set = {{ {} }}", set.join(", ")));
        }
        if !add.is_empty() {
            parts.push(format!("add = {{ {} }}", add.join(", ")));
        }
        if !remove.is_empty() {
            parts.push(format!("remove = [{}]", remove.join(", ")));
        }
        if !always.is_empty() {
            parts.push(format!("always = [{}]", always.join(", ")));
        }
        key(out, name, format!("{{ {} }}", parts.join(", ")));
    }
}

fn pairs_to_toml(pairs: &[(String, gangway_headers::Template)]) -> String {
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(from, to)| format!("[{}, {}]", quote(from), quote(to.source())))
        .collect();
    format!("[{}]", pairs.join(", "))
}
