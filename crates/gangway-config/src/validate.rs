//! From source text to [`Config`]: TOML syntax, then the raw shape, then every value and
//! cross-reference, collecting all problems before giving up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gangway_headers::Template;
use gangway_route::{HostMatch, MatchMode, PathMatch, RouteExpr};
use gangway_tls::{ClientCertPolicy, TlsVersion};
use serde_spanned::Spanned;

use crate::error::{Error, Errors, Location};
use crate::headers::Level;
use crate::model::{
    Action, Config, Listener, Peer, Rewrite, Route, Scheme, Server, Upstream, defaults,
};
use crate::pools::PeerSettings;
use crate::raw::{
    IntOrString, RawConfig, RawDuration, RawListener, RawPeer, RawRedirect, RawRespond, RawRoute,
    RawSize, RawUpstream,
};
use crate::values::{self, quote};

const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];
const REDIRECT_EXPECTED: &str = "\"STATUS TARGET\" with STATUS one of 301, 302, 303, 307 or 308, \
     such as \"301 https://$host$request_uri\"";

/// Reads and validates the configuration file at `path`.
///
/// Relative file names in it (certificates, keys, CA bundles) are resolved from the file's
/// directory. A file that cannot be read is one [`Error::Read`].
pub fn load(path: &Path) -> Result<Config, Errors> {
    let source = std::fs::read_to_string(path).map_err(|source| Error::Read {
        file: path.to_path_buf(),
        source: source.into(),
    })?;
    parse(&source, path)
}

/// Validates configuration text read from `path`.
///
/// `path` names the file in error messages, and relative file names in the text are resolved
/// from its directory (made absolute from the current directory when needed). On failure,
/// returns every problem found, in file order: TOML syntax errors and errors in the shape of
/// the file (unknown keys, wrong types) stop the reading, so each is reported alone.
pub fn parse(source: &str, path: &Path) -> Result<Config, Errors> {
    let lines = LineIndex::new(source);
    if let Err(error) = toml::from_str::<toml::Table>(source) {
        return Err(Error::Syntax {
            at: lines.location(path, error.span().map_or(0, |span| span.start)),
            message: one_line(error.message()),
        }
        .into());
    }
    let raw: RawConfig = toml::from_str(source).map_err(|error| Error::Schema {
        at: lines.location(path, error.span().map_or(0, |span| span.start)),
        message: one_line(error.message()),
    })?;
    let mut checker = Checker {
        file: path,
        source,
        lines,
        base_dir: base_dir(path),
        errors: Vec::new(),
        peer_routes: Vec::new(),
    };
    let config = checker.config(raw);
    let mut errors = checker.errors;
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => {
            errors.sort_by_key(|error| error.location().map(|at| (at.line, at.column)));
            Err(Errors(errors))
        }
    }
}

fn one_line(message: &str) -> String {
    message.trim().replace('\n', " ")
}

/// The directory relative file names start from: the configuration file's, made absolute.
fn base_dir(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Byte offsets of line starts, to turn spans into lines and columns.
#[derive(Debug)]
struct LineIndex<'a> {
    source: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(source: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(index, _)| index + 1))
            .collect();
        Self { source, starts }
    }

    fn location(&self, file: &Path, offset: usize) -> Location {
        let mut offset = offset.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset);
        let start = self
            .starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self.source[start..offset].chars().count() + 1;
        Location {
            file: file.to_path_buf(),
            line,
            column,
        }
    }
}

/// What makes routes of one listener distinct: the host match (`None` for any host) and the
/// path match with its method filter, both in canonical form.
type RouteIdentity = (Option<String>, String);

/// The identity of a route, with the span of its path, when host, methods and path parse.
fn route_identity(route: &RawRoute) -> Option<(RouteIdentity, Range<usize>)> {
    let path = route.path.as_ref()?;
    let parsed = PathMatch::parse(path.get_ref()).ok()?;
    let host = match &route.host {
        None => HostMatch::Any,
        Some(host) => HostMatch::parse(host.get_ref()).ok()?,
    };
    let methods = route
        .methods
        .as_ref()
        .map(|methods| methods.get_ref().join(","));
    let host = (host != HostMatch::Any).then(|| host.to_string());
    let path_text = match methods {
        Some(methods) if !methods.is_empty() => format!("method {methods} {parsed}"),
        _ => parsed.to_string(),
    };
    Some(((host, path_text), path.span()))
}

pub(crate) struct Checker<'a> {
    file: &'a Path,
    source: &'a str,
    lines: LineIndex<'a>,
    pub(crate) base_dir: PathBuf,
    pub(crate) errors: Vec<Error>,
    /// The peers' route names of each upstream, by index, for a route's fixed `peer`.
    peer_routes: Vec<Vec<String>>,
}

/// Where a name or address was first seen, to report the second one.
struct Seen {
    index: usize,
    line: usize,
}

impl Checker<'_> {
    pub(crate) fn at(&self, span: &Range<usize>) -> Location {
        self.lines.location(self.file, span.start)
    }

    fn line(&self, span: &Range<usize>) -> usize {
        self.at(span).line
    }

    pub(crate) fn invalid(
        &mut self,
        span: &Range<usize>,
        key: &str,
        value: String,
        problem: String,
        expected: &str,
    ) {
        let at = self.at(span);
        self.errors.push(Error::InvalidValue {
            at,
            key: key.to_owned(),
            value,
            problem,
            expected: expected.to_owned(),
        });
    }

    pub(crate) fn missing(&mut self, table: &Range<usize>, key: String, expected: &str) {
        let at = self.at(table);
        self.errors.push(Error::MissingKey {
            at,
            key,
            expected: expected.to_owned(),
        });
    }

    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let drain_timeout = raw
            .server
            .as_ref()
            .and_then(|server| server.get_ref().drain_timeout.as_ref());
        let watch_interval = raw
            .server
            .as_ref()
            .and_then(|server| server.get_ref().certificate_watch_interval.as_ref());
        let server = Server {
            drain_timeout: self.duration(
                "server.drain_timeout",
                drain_timeout,
                defaults::DRAIN_TIMEOUT,
            ),
            certificate_watch_interval: self.watch_interval(watch_interval),
            access_log: self.access_log(
                raw.server
                    .as_ref()
                    .and_then(|server| server.get_ref().access_log.as_ref()),
            ),
        };

        let mut names: HashMap<String, Seen> = HashMap::new();
        let mut known = Vec::new();
        let mut upstreams = Vec::new();
        for (index, upstream) in raw.upstream.iter().enumerate() {
            let key = format!("upstream[{}]", index + 1);
            if let Some(name) = &upstream.get_ref().name {
                let line = self.line(&name.span());
                if let Some(first) = names.get(name.get_ref()) {
                    let at = self.at(&name.span());
                    self.errors.push(Error::DuplicateName {
                        at,
                        key: format!("{key}.name"),
                        name: name.get_ref().clone(),
                        first_line: first.line,
                    });
                } else if !name.get_ref().is_empty() {
                    names.insert(name.get_ref().clone(), Seen { index, line });
                    known.push(name.get_ref().clone());
                }
            }
            upstreams.push(self.upstream(&key, upstream));
        }

        let mut listeners = Vec::new();
        let mut listener_names: HashMap<String, Seen> = HashMap::new();
        let mut addresses: HashMap<SocketAddr, Seen> = HashMap::new();
        for (index, listener) in raw.listener.iter().enumerate() {
            let key = format!("listener[{}]", index + 1);
            let raw_listener = listener.get_ref();
            let (name, name_span) = match &raw_listener.name {
                Some(name) => (name.get_ref().clone(), name.span()),
                None => (format!("listener-{}", index + 1), listener.span()),
            };
            if let Some(first) = listener_names.get(&name) {
                let at = self.at(&name_span);
                self.errors.push(Error::DuplicateName {
                    at,
                    key: format!("{key}.name"),
                    name: name.clone(),
                    first_line: first.line,
                });
            } else {
                let line = self.line(&name_span);
                listener_names.insert(name.clone(), Seen { index, line });
            }
            let address = raw_listener.address.as_ref().and_then(|address| {
                values::parse_address(address.get_ref())
                    .ok()
                    .map(|parsed| (parsed, address.span()))
            });
            if let Some((address, span)) = address.filter(|(address, _)| address.port() != 0) {
                if let Some(first) = addresses.get(&address) {
                    let at = self.at(&span);
                    self.errors.push(Error::DuplicateAddress {
                        at,
                        key: format!("{key}.address"),
                        address,
                        first_line: first.line,
                    });
                } else {
                    let line = self.line(&span);
                    addresses.insert(address, Seen { index, line });
                }
            }
            let built = self.listener(&key, name, listener, &names, &known);
            listeners.push(built);
        }

        let taken: Vec<(SocketAddr, usize)> = addresses
            .iter()
            .map(|(address, seen)| (*address, seen.line))
            .collect();
        let admin = raw.admin.as_ref().map(|admin| self.admin(admin, &taken));
        Some(Config {
            server,
            // An `[admin]` table with errors has them recorded; no configuration then.
            admin: match admin {
                Some(None) => return None,
                admin => admin.flatten(),
            },
            listeners: listeners.into_iter().collect::<Option<Vec<_>>>()?,
            upstreams: upstreams.into_iter().collect::<Option<Vec<_>>>()?,
        })
    }

    fn upstream(&mut self, key: &str, upstream: &Spanned<RawUpstream>) -> Option<Upstream> {
        let raw = upstream.get_ref();
        let name = match &raw.name {
            Some(name) if name.get_ref().is_empty() => {
                let problem = "is empty".to_owned();
                self.invalid(
                    &name.span(),
                    &format!("{key}.name"),
                    quote(""),
                    problem,
                    "a name",
                );
                None
            }
            Some(name) => Some(name.get_ref().clone()),
            None => {
                let expected = "a unique name for `proxy` routes to refer to";
                self.missing(&upstream.span(), format!("{key}.name"), expected);
                None
            }
        };

        let mut scheme = None;
        let mut peers = Vec::new();
        let mut routes = Vec::new();
        match &raw.peers {
            None => {
                let expected = "a list of peer URLs such as [\"http://127.0.0.1:9000\"]";
                self.missing(&upstream.span(), format!("{key}.peers"), expected);
            }
            Some(list) if list.get_ref().is_empty() => {
                let problem = "has no peers".to_owned();
                let expected = "at least one peer URL such as \"http://127.0.0.1:9000\"";
                self.invalid(
                    &list.span(),
                    &format!("{key}.peers"),
                    "[]".to_owned(),
                    problem,
                    expected,
                );
            }
            Some(list) => {
                routes = self.check_peer_list(key, list);
                for (index, peer) in list.get_ref().iter().enumerate() {
                    let peer_key = format!("{key}.peers[{}]", index + 1);
                    let Some((peer_scheme, url_span, peer)) = self.peer(&peer_key, peer) else {
                        continue;
                    };
                    match scheme {
                        None => scheme = Some(peer_scheme),
                        Some(first) if first != peer_scheme => {
                            let at = self.at(&url_span);
                            self.errors.push(Error::MixedSchemes {
                                at,
                                key: peer_key,
                                scheme: peer_scheme,
                                first,
                            });
                        }
                        Some(_) => {}
                    }
                    peers.extend(peer);
                }
            }
        }

        let https_only = |checker: &mut Self, value: &Spanned<String>, name: &str| {
            if scheme == Some(Scheme::Http) {
                let at = checker.at(&value.span());
                checker.errors.push(Error::HttpsOnly {
                    at,
                    key: format!("{key}.{name}"),
                });
            }
        };
        let ca = raw.ca.as_ref().and_then(|ca| {
            https_only(self, ca, "ca");
            self.file(&format!("{key}.ca"), ca)
        });
        let server_name = raw.server_name.as_ref().and_then(|server_name| {
            https_only(self, server_name, "server_name");
            match values::server_name(server_name.get_ref()) {
                Ok(normalised) => Some(normalised),
                Err(problem) => {
                    self.invalid(
                        &server_name.span(),
                        &format!("{key}.server_name"),
                        quote(server_name.get_ref()),
                        problem,
                        values::HOST_EXPECTED,
                    );
                    None
                }
            }
        });

        let tls = self.upstream_tls(key, raw, ca, server_name, &mut |checker, span, name| {
            if scheme == Some(Scheme::Http) {
                let at = checker.at(span);
                checker.errors.push(Error::HttpsOnly {
                    at,
                    key: format!("{key}.{name}"),
                });
            }
        });

        let connect_timeout = self.duration(
            &format!("{key}.connect_timeout"),
            raw.connect_timeout.as_ref(),
            defaults::CONNECT_TIMEOUT,
        );
        let response_header_timeout = self.duration(
            &format!("{key}.response_header_timeout"),
            raw.response_header_timeout.as_ref(),
            defaults::RESPONSE_HEADER_TIMEOUT,
        );
        let keepalive = match &raw.keepalive {
            None => defaults::UPSTREAM_KEEPALIVE,
            Some(value) => usize::try_from(*value.get_ref()).unwrap_or_else(|_| {
                self.invalid(
                    &value.span(),
                    &format!("{key}.keepalive"),
                    value.get_ref().to_string(),
                    "is negative".to_owned(),
                    "a number of idle connections, 0 or more",
                );
                defaults::UPSTREAM_KEEPALIVE
            }),
        };
        let keepalive_timeout = self.duration(
            &format!("{key}.keepalive_timeout"),
            raw.keepalive_timeout.as_ref(),
            defaults::UPSTREAM_KEEPALIVE_TIMEOUT,
        );

        let headers = self.header_rules(
            key,
            raw.request_headers.as_ref(),
            raw.response_headers.as_ref(),
            &Level::Shared,
        );
        let pool = self.pool_settings(key, upstream, &routes);
        self.peer_routes.push(routes);
        Some(Upstream {
            name: name?,
            scheme: scheme?,
            peers,
            tls: tls?,
            connect_timeout,
            response_header_timeout,
            keepalive,
            keepalive_timeout,
            headers: headers?,
            pool: pool?,
        })
    }

    /// Reads one peer: its scheme and the span of its URL when the URL is valid, and the
    /// peer when its weight is valid too.
    fn peer(
        &mut self,
        key: &str,
        peer: &Spanned<RawPeer>,
    ) -> Option<(Scheme, Range<usize>, Option<Peer>)> {
        let (url, url_span, weight) = match peer.get_ref() {
            RawPeer::Url(url) => (url, peer.span(), None),
            RawPeer::Table(table) => (table.url.get_ref(), table.url.span(), table.weight.as_ref()),
        };
        let settings = match peer.get_ref() {
            RawPeer::Url(_) => Some(PeerSettings::default()),
            RawPeer::Table(table) => self.peer_settings(key, table),
        };
        let weight = match weight {
            None => Some(1),
            Some(weight) => match u32::try_from(*weight.get_ref()) {
                Ok(value @ 1..=1000) => Some(value),
                _ => {
                    self.invalid(
                        &weight.span(),
                        &format!("{key}.weight"),
                        weight.get_ref().to_string(),
                        "is out of range".to_owned(),
                        "an integer from 1 to 1000",
                    );
                    None
                }
            },
        };
        let url = match values::parse_peer_url(url) {
            Ok(url) => url,
            Err(problem) => {
                self.invalid(&url_span, key, quote(url), problem, values::URL_EXPECTED);
                return None;
            }
        };
        let peer = weight.zip(settings).map(|(weight, settings)| Peer {
            host: url.host,
            port: url.port,
            weight,
            route: settings.route,
            max_fails: settings.max_fails,
            fail_timeout: settings.fail_timeout,
            backup: settings.backup,
            down: settings.down,
        });
        Some((url.scheme, url_span, peer))
    }

    fn listener(
        &mut self,
        key: &str,
        name: String,
        listener: &Spanned<RawListener>,
        upstreams: &HashMap<String, Seen>,
        known: &[String],
    ) -> Option<Listener> {
        let raw = listener.get_ref();
        if let Some(value) = &raw.name {
            if value.get_ref().is_empty() {
                let problem = "is empty".to_owned();
                self.invalid(
                    &value.span(),
                    &format!("{key}.name"),
                    quote(""),
                    problem,
                    "a name",
                );
            }
        }
        let address = match &raw.address {
            None => {
                self.missing(
                    &listener.span(),
                    format!("{key}.address"),
                    values::ADDRESS_EXPECTED,
                );
                None
            }
            Some(address) => match values::parse_address(address.get_ref()) {
                Ok(parsed) => Some(parsed),
                Err(problem) => {
                    self.invalid(
                        &address.span(),
                        &format!("{key}.address"),
                        quote(address.get_ref()),
                        problem,
                        values::ADDRESS_EXPECTED,
                    );
                    None
                }
            },
        };

        let (tls, tls_ok) = self.listener_tls(key, raw);

        let header_read_timeout = self.duration(
            &format!("{key}.header_read_timeout"),
            raw.header_read_timeout.as_ref(),
            defaults::HEADER_READ_TIMEOUT,
        );
        let max_header_bytes = self.size(
            &format!("{key}.max_header_size"),
            raw.max_header_size.as_ref(),
            defaults::MAX_HEADER_BYTES as u64,
        );
        let max_header_bytes = usize::try_from(max_header_bytes).unwrap_or(usize::MAX);
        let keepalive_timeout = self.duration(
            &format!("{key}.keepalive_timeout"),
            raw.keepalive_timeout.as_ref(),
            defaults::KEEPALIVE_TIMEOUT,
        );
        let send_timeout = self.duration(
            &format!("{key}.send_timeout"),
            raw.send_timeout.as_ref(),
            defaults::SEND_TIMEOUT,
        );
        let match_mode = match raw.match_mode.as_ref() {
            None => Some(MatchMode::Nginx),
            Some(mode) => match mode.get_ref().as_str() {
                "nginx" => Some(MatchMode::Nginx),
                "first_match" => Some(MatchMode::FirstMatch),
                other => {
                    self.invalid(
                        &mode.span(),
                        &format!("{key}.match_mode"),
                        quote(other),
                        "is not a match mode".to_owned(),
                        "\"nginx\" (location precedence) or \"first_match\" (rule order)",
                    );
                    None
                }
            },
        };
        let merge_slashes = raw
            .merge_slashes
            .as_ref()
            .is_some_and(|merge| *merge.get_ref());
        let tls_versions = self.tls_versions(key, raw.tls_versions.as_ref());
        let client_certificates = match raw.client_certificates.as_ref() {
            None => Some(ClientCertPolicy::None),
            Some(policy) => match policy.get_ref().parse::<ClientCertPolicy>() {
                Ok(parsed) => Some(parsed),
                Err(_) => {
                    self.invalid(
                        &policy.span(),
                        &format!("{key}.client_certificates"),
                        quote(policy.get_ref()),
                        "is not a client-certificate policy".to_owned(),
                        "\"none\", \"optional\", \"optional_reject\", \"optional_unverified\" or \"required\"",
                    );
                    None
                }
            },
        };
        let client_ca = match raw.client_ca.as_ref() {
            None => Some(None),
            Some(ca) => self.file(&format!("{key}.client_ca"), ca).map(Some),
        };
        if let (Some(policy), Some(None)) = (&client_certificates, &client_ca) {
            if matches!(
                policy,
                ClientCertPolicy::Optional
                    | ClientCertPolicy::OptionalReject
                    | ClientCertPolicy::Required
            ) {
                if let Some(value) = &raw.client_certificates {
                    self.invalid(
                        &value.span(),
                        &format!("{key}.client_certificates"),
                        quote(value.get_ref()),
                        "needs client_ca to verify certificates against".to_owned(),
                        "client_ca = \"PEM file of the CAs that issue client certificates\"",
                    );
                }
            }
        }
        let client_crls = self.client_crls(key, raw, matches!(client_ca, Some(Some(_))));
        if raw.certificate.is_none() && raw.certificates.is_none() {
            for (field, span) in [
                (
                    "client_certificates",
                    raw.client_certificates.as_ref().map(|v| v.span()),
                ),
                ("client_ca", raw.client_ca.as_ref().map(|v| v.span())),
                ("tls_versions", raw.tls_versions.as_ref().map(|v| v.span())),
                ("unknown_sni", raw.unknown_sni.as_ref().map(|v| v.span())),
                ("client_crls", raw.client_crls.as_ref().map(|v| v.span())),
            ] {
                if let Some(span) = span {
                    self.invalid(
                        &span,
                        &format!("{key}.{field}"),
                        field.to_owned(),
                        "is set on a listener without TLS".to_owned(),
                        "certificate and private_key on the listener first",
                    );
                }
            }
        }
        let proxy_protocol = self.proxy_protocol(key, raw.proxy_protocol.as_ref());
        let (max_connections, max_connections_per_client) = self.connection_limits(key, raw);
        let headers = self.header_rules(
            key,
            raw.request_headers.as_ref(),
            raw.response_headers.as_ref(),
            &Level::Shared,
        );
        let forwarding = self.forwarding(
            key,
            raw.trusted_proxies.as_ref(),
            raw.forwarded_headers.as_ref(),
        );

        if raw.route.is_empty() {
            let at = self.at(&listener.span());
            self.errors.push(Error::NoRoutes {
                at,
                key: key.to_owned(),
            });
        }
        let mut routes = Vec::new();
        let mut seen_routes: HashMap<RouteIdentity, usize> = HashMap::new();
        for (index, route) in raw.route.iter().enumerate() {
            let route_key = format!("{key}.route[{}]", index + 1);
            if let Some((identity, span)) = route_identity(route.get_ref()) {
                if let Some(&first_line) = seen_routes.get(&identity) {
                    let at = self.at(&span);
                    let (host, path) = identity;
                    let key = route_key.clone();
                    self.errors.push(Error::DuplicateRoute {
                        at,
                        key,
                        host,
                        path,
                        first_line,
                    });
                } else {
                    let line = self.line(&span);
                    seen_routes.insert(identity, line);
                }
            }
            let built = self.route(&route_key, route, upstreams, known);
            routes.push(built);
        }

        if !tls_ok {
            return None;
        }
        Some(Listener {
            name,
            address: address?,
            tls,
            proxy_protocol: proxy_protocol?,
            max_connections,
            max_connections_per_client,
            header_read_timeout,
            max_header_bytes,
            keepalive_timeout,
            send_timeout,
            match_mode: match_mode?,
            merge_slashes,
            tls_versions: tls_versions?,
            client_certificates: client_certificates?,
            client_ca: client_ca?,
            client_crls: client_crls?,
            headers: headers?,
            forwarding: forwarding?,
            routes: routes.into_iter().collect::<Option<Vec<_>>>()?,
        })
    }

    fn route(
        &mut self,
        key: &str,
        route: &Spanned<RawRoute>,
        upstreams: &HashMap<String, Seen>,
        known: &[String],
    ) -> Option<Route> {
        let raw = route.get_ref();
        let path = match &raw.path {
            None => {
                let expected =
                    "a path expression such as \"/\", \"= /exact\", \"^~ /static/\" or \"~ ^/ws$\"";
                self.missing(&route.span(), format!("{key}.path"), expected);
                None
            }
            Some(path) => {
                let parsed = PathMatch::parse(path.get_ref());
                self.route_syntax(&format!("{key}.path"), path, parsed)
            }
        };
        let host = match &raw.host {
            None => Some(HostMatch::Any),
            Some(host) => {
                let parsed = HostMatch::parse(host.get_ref());
                self.route_syntax(&format!("{key}.host"), host, parsed)
            }
        };
        let methods = match &raw.methods {
            None => Some(Vec::new()),
            Some(methods) => {
                let checked = RouteExpr::new(HostMatch::Any, PathMatch::Prefix("/".to_owned()))
                    .with_methods(methods.get_ref().iter());
                match checked {
                    Ok(_) => Some(methods.get_ref().clone()),
                    Err(source) => {
                        let at = self.at(&methods.span());
                        let key = format!("{key}.methods");
                        self.errors.push(Error::Route { at, key, source });
                        None
                    }
                }
            }
        };

        let mut found: Vec<(&'static str, Range<usize>)> = Vec::new();
        if let Some(proxy) = &raw.proxy {
            found.push(("proxy", proxy.span()));
        }
        if let Some(redirect) = &raw.redirect {
            found.push(("redirect", redirect.span()));
        }
        if let Some(respond) = &raw.respond {
            found.push(("respond", respond.span()));
        }
        if let Some(relay) = &raw.relay {
            found.push(("relay", relay.span()));
        }
        if let Some(page) = &raw.websocket_test_page {
            found.push(("websocket_test_page", page.span()));
        }
        found.sort_by_key(|(_, span)| span.start);
        let action = match found.as_slice() {
            [] => {
                let at = self.at(&route.span());
                self.errors.push(Error::RouteAction {
                    at,
                    key: key.to_owned(),
                    found: Vec::new(),
                });
                None
            }
            [_] => self.action(key, raw, upstreams, known),
            [_, (_, second), ..] => {
                let at = self.at(second);
                let found = found.iter().map(|(name, _)| *name).collect();
                self.errors.push(Error::RouteAction {
                    at,
                    key: key.to_owned(),
                    found,
                });
                None
            }
        };

        let max_body_bytes = self.size(
            &format!("{key}.max_body"),
            raw.max_body.as_ref(),
            defaults::MAX_BODY_BYTES,
        );
        let body_idle_timeout = self.duration(
            &format!("{key}.body_idle_timeout"),
            raw.body_idle_timeout.as_ref(),
            defaults::BODY_IDLE_TIMEOUT,
        );
        let websocket = raw
            .websocket
            .as_ref()
            .is_some_and(|websocket| *websocket.get_ref());
        let websocket_idle_timeout = self.duration(
            &format!("{key}.websocket_idle_timeout"),
            raw.websocket_idle_timeout.as_ref(),
            defaults::WEBSOCKET_IDLE_TIMEOUT,
        );

        let expr = match (&host, &path, &methods) {
            (Some(host), Some(path), Some(methods)) => RouteExpr::new(host.clone(), path.clone())
                .with_methods(methods.iter())
                .ok(),
            _ => None,
        };
        let headers = self.header_rules(
            key,
            raw.request_headers.as_ref(),
            raw.response_headers.as_ref(),
            &Level::Route(expr.as_ref()),
        );
        let location_rewrite = self.location_rewrite(key, raw.location_rewrite.as_ref());
        let min_tls_version = match raw.min_tls_version.as_ref() {
            None => Some(None),
            Some(version) => match version.get_ref().as_str() {
                "1.2" => Some(Some(TlsVersion::Tls12)),
                "1.3" => Some(Some(TlsVersion::Tls13)),
                other => {
                    self.invalid(
                        &version.span(),
                        &format!("{key}.min_tls_version"),
                        quote(other),
                        "is not a TLS version".to_owned(),
                        "\"1.2\" or \"1.3\"",
                    );
                    None
                }
            },
        };
        let cookie_domain =
            self.cookie_pairs(&format!("{key}.cookie_domain"), raw.cookie_domain.as_ref());
        let cookie_path =
            self.cookie_pairs(&format!("{key}.cookie_path"), raw.cookie_path.as_ref());
        if raw.proxy.is_none() {
            for (field, set) in [
                (
                    "location_rewrite",
                    raw.location_rewrite.as_ref().map(|v| v.span()),
                ),
                (
                    "cookie_domain",
                    raw.cookie_domain.as_ref().map(|v| v.span()),
                ),
                ("cookie_path", raw.cookie_path.as_ref().map(|v| v.span())),
            ] {
                if let Some(span) = set {
                    let at = self.at(&span);
                    let key = format!("{key}.{field}");
                    let action = if raw.redirect.is_some() {
                        "redirect"
                    } else {
                        "respond"
                    };
                    self.errors.push(Error::ProxyOnly { at, key, action });
                }
            }
        }
        let (host, path, methods) = (host?, path?, methods?);
        let mut action = action?;
        if let Action::Proxy {
            rewrite: Some(rewrite),
            ..
        } = &action
        {
            self.check_rewrite(key, raw, &host, &path, &methods, rewrite);
        }
        if let (Action::Proxy { upstream, peer, .. }, Some(value)) = (&mut action, &raw.peer) {
            let routes = self.peer_routes.get(*upstream).cloned();
            *peer = Some(self.route_peer(
                &format!("{key}.peer"),
                value,
                expr.as_ref(),
                routes.as_deref(),
            )?);
        }
        Some(Route {
            host,
            path,
            methods,
            action,
            max_body_bytes,
            body_idle_timeout,
            websocket,
            websocket_idle_timeout,
            min_tls_version: min_tls_version?,
            headers: headers?,
            location_rewrite: location_rewrite?,
            cookie_domain: cookie_domain?,
            cookie_path: cookie_path?,
        })
    }

    /// Builds the action of a route that has exactly one.
    fn action(
        &mut self,
        key: &str,
        raw: &RawRoute,
        upstreams: &HashMap<String, Seen>,
        known: &[String],
    ) -> Option<Action> {
        if let Some(proxy) = &raw.proxy {
            let rewrite = match (&raw.rewrite_prefix, &raw.rewrite) {
                (None, None) => Some(None),
                (Some(prefix), None) => self
                    .path_prefix(&format!("{key}.rewrite_prefix"), prefix)
                    .map(|prefix| Some(Rewrite::Prefix(prefix))),
                (None, Some(template)) => {
                    let parsed = gangway_route::Template::parse(template.get_ref());
                    self.route_syntax(&format!("{key}.rewrite"), template, parsed)
                        .map(|template| Some(Rewrite::Template(template)))
                }
                (Some(_), Some(template)) => {
                    self.invalid(
                        &template.span(),
                        &format!("{key}.rewrite"),
                        quote(template.get_ref()),
                        "is given together with rewrite_prefix".to_owned(),
                        "either rewrite_prefix (prefix routes) or rewrite (a template), not both",
                    );
                    None
                }
            };
            let upstream = match upstreams.get(proxy.get_ref()) {
                Some(seen) => Some(seen.index),
                None => {
                    let at = self.at(&proxy.span());
                    self.errors.push(Error::UnknownUpstream {
                        at,
                        key: format!("{key}.proxy"),
                        name: proxy.get_ref().clone(),
                        known: known.to_vec(),
                    });
                    None
                }
            };
            return Some(Action::Proxy {
                upstream: upstream?,
                rewrite: rewrite?,
                // Set by `route` once the route's captures are known.
                peer: None,
            });
        }

        let name = if raw.redirect.is_some() {
            "redirect"
        } else if raw.relay.is_some() {
            "relay"
        } else if raw.websocket_test_page.is_some() {
            "websocket_test_page"
        } else {
            "respond"
        };
        for (field, value) in [
            ("rewrite_prefix", &raw.rewrite_prefix),
            ("rewrite", &raw.rewrite),
            ("peer", &raw.peer),
        ] {
            if let Some(value) = value {
                let at = self.at(&value.span());
                let key = format!("{key}.{field}");
                self.errors.push(Error::ProxyOnly {
                    at,
                    key,
                    action: name,
                });
            }
        }
        if let Some(websocket) = raw
            .websocket
            .as_ref()
            .filter(|websocket| *websocket.get_ref())
        {
            let at = self.at(&websocket.span());
            let key = format!("{key}.websocket");
            self.errors.push(Error::ProxyOnly {
                at,
                key,
                action: name,
            });
        }
        if let Some(redirect) = &raw.redirect {
            return self.redirect(&format!("{key}.redirect"), redirect);
        }
        if let Some(relay) = &raw.relay {
            return self.relay(&format!("{key}.relay"), relay, raw.path.as_ref());
        }
        if let Some(page) = &raw.websocket_test_page {
            return self.websocket_test_page(&format!("{key}.websocket_test_page"), page);
        }
        raw.respond
            .as_ref()
            .and_then(|respond| self.respond(&format!("{key}.respond"), respond))
    }

    fn redirect(&mut self, key: &str, redirect: &Spanned<RawRedirect>) -> Option<Action> {
        let (status, decoded, span, target_start) = match redirect.get_ref() {
            RawRedirect::Text(text) => {
                let parsed = text.split_once(' ').and_then(|(status, target)| {
                    let status = status.parse::<u16>().ok()?;
                    let target = target.trim_start();
                    Some((status, target)).filter(|_| !target.is_empty())
                });
                let Some((status, target)) = parsed else {
                    let problem = "is not a status and a target separated by a space".to_owned();
                    self.invalid(
                        &redirect.span(),
                        key,
                        quote(text),
                        problem,
                        REDIRECT_EXPECTED,
                    );
                    return None;
                };
                if !REDIRECT_STATUSES.contains(&status) {
                    let problem = format!("has status {status}, which is not a redirect status");
                    self.invalid(
                        &redirect.span(),
                        key,
                        quote(text),
                        problem,
                        REDIRECT_EXPECTED,
                    );
                    return None;
                }
                (
                    status,
                    text.as_str(),
                    redirect.span(),
                    text.len() - target.len(),
                )
            }
            RawRedirect::Table(table) => {
                let status = u16::try_from(*table.status.get_ref())
                    .ok()
                    .filter(|status| REDIRECT_STATUSES.contains(status));
                if status.is_none() {
                    self.invalid(
                        &table.status.span(),
                        &format!("{key}.status"),
                        table.status.get_ref().to_string(),
                        "is not a redirect status".to_owned(),
                        "one of 301, 302, 303, 307 or 308",
                    );
                }
                (status?, table.to.get_ref().as_str(), table.to.span(), 0)
            }
        };
        let target = decoded.get(target_start..).unwrap_or_default();
        match Template::parse(target) {
            Ok(target) => Some(Action::Redirect { status, target }),
            Err(source) => {
                let at = self.template_location(&span, decoded, target_start, &source);
                self.errors.push(Error::Template {
                    at,
                    key: key.to_owned(),
                    target: target.to_owned(),
                    source,
                });
                None
            }
        }
    }

    /// The location of a template error: the failing character when the TOML string spells
    /// the text before it literally (no escapes), otherwise the start of the value.
    fn template_location(
        &self,
        span: &Range<usize>,
        decoded: &str,
        target_start: usize,
        error: &gangway_headers::Error,
    ) -> Location {
        match error {
            gangway_headers::Error::UnknownVariable { column, .. }
            | gangway_headers::Error::MissingName { column }
            | gangway_headers::Error::UnclosedBrace { column } => {
                self.column_location(span, decoded, target_start, *column)
            }
            _ => self.at(span),
        }
    }

    /// The location of 1-based character `column` of the text that starts at byte
    /// `target_start` of the decoded string value at `span`: exact when the TOML string spells
    /// the text before it literally (no escapes), otherwise the start of the value.
    pub(crate) fn column_location(
        &self,
        span: &Range<usize>,
        decoded: &str,
        target_start: usize,
        column: usize,
    ) -> Location {
        let at = self.at(span);
        let target = decoded.get(target_start..).unwrap_or_default();
        let failing = target_start
            + target
                .char_indices()
                .nth(column.saturating_sub(1))
                .map_or(target.len(), |(i, _)| i);
        let before = decoded.get(..failing).unwrap_or_default();
        let raw = self.source.get(span.clone()).unwrap_or_default();
        let literal = !raw.starts_with("\"\"\"") && !raw.starts_with("'''");
        let body = raw.strip_prefix('"').or_else(|| raw.strip_prefix('\''));
        match body {
            Some(body) if literal && body.starts_with(before) => Location {
                column: at.column + 1 + before.chars().count(),
                ..at
            },
            _ => at,
        }
    }

    fn respond(&mut self, key: &str, respond: &Spanned<RawRespond>) -> Option<Action> {
        let raw = respond.get_ref();
        match u16::try_from(*raw.status.get_ref()) {
            Ok(status @ 200..=599) => Some(Action::Respond {
                status,
                body: raw.body.clone(),
            }),
            _ => {
                self.invalid(
                    &raw.status.span(),
                    &format!("{key}.status"),
                    raw.status.get_ref().to_string(),
                    "is out of range".to_owned(),
                    "an HTTP status from 200 to 599",
                );
                None
            }
        }
    }

    /// A route expression part (path, host, rewrite template) parsed by `gangway-route`; its
    /// error is reported at the column it names.
    pub(crate) fn route_syntax<T>(
        &mut self,
        key: &str,
        value: &Spanned<String>,
        parsed: Result<T, gangway_route::Error>,
    ) -> Option<T> {
        match parsed {
            Ok(parsed) => Some(parsed),
            Err(source) => {
                let at = match &source {
                    gangway_route::Error::Syntax { column, .. }
                    | gangway_route::Error::Regex { column, .. }
                    | gangway_route::Error::UnknownCapture { column, .. } => {
                        self.column_location(&value.span(), value.get_ref(), 0, *column)
                    }
                    _ => self.at(&value.span()),
                };
                self.errors.push(Error::Route {
                    at,
                    key: key.to_owned(),
                    source,
                });
                None
            }
        }
    }

    /// A rewrite must fit its route: a template may only name captures the route's regular
    /// expressions produce; a prefix replacement needs a literal prefix to replace.
    fn check_rewrite(
        &mut self,
        key: &str,
        raw: &RawRoute,
        host: &HostMatch,
        path: &PathMatch,
        methods: &[String],
        rewrite: &Rewrite,
    ) {
        let expr = match RouteExpr::new(host.clone(), path.clone()).with_methods(methods.iter()) {
            Ok(expr) => expr,
            Err(_) => return,
        };
        match (rewrite, &raw.rewrite, &raw.rewrite_prefix) {
            (Rewrite::Template(template), Some(value), _) => {
                if let Err(source) = expr.check_template(template) {
                    let column = match &source {
                        gangway_route::Error::UnknownCapture { column, .. } => Some(*column),
                        _ => None,
                    };
                    let at = match column {
                        Some(column) => {
                            self.column_location(&value.span(), value.get_ref(), 0, column)
                        }
                        None => self.at(&value.span()),
                    };
                    let key = format!("{key}.rewrite");
                    self.errors.push(Error::Route { at, key, source });
                }
            }
            (Rewrite::Prefix(_), _, Some(value))
                if matches!(path, PathMatch::Regex(_) | PathMatch::RegexNoCase(_)) =>
            {
                self.invalid(
                    &value.span(),
                    &format!("{key}.rewrite_prefix"),
                    quote(value.get_ref()),
                    "is given on a regular-expression route, which has no literal prefix"
                        .to_owned(),
                    "rewrite = \"...$1...\" (a template with captures) on regex routes",
                );
            }
            _ => {}
        }
    }

    pub(crate) fn path_prefix(&mut self, key: &str, path: &Spanned<String>) -> Option<String> {
        if path.get_ref().starts_with('/') {
            return Some(path.get_ref().clone());
        }
        self.invalid(
            &path.span(),
            key,
            quote(path.get_ref()),
            "does not start with \"/\"".to_owned(),
            "a path starting with \"/\", such as \"/\" or \"/api/\"",
        );
        None
    }

    /// Resolves a file name against the configuration file's directory and checks that the
    /// file exists.
    pub(crate) fn file(&mut self, key: &str, name: &Spanned<String>) -> Option<PathBuf> {
        if name.get_ref().is_empty() {
            let problem = "is empty".to_owned();
            self.invalid(
                &name.span(),
                key,
                quote(""),
                problem,
                "the name of a PEM file",
            );
            return None;
        }
        let path = self.base_dir.join(name.get_ref());
        if path.is_file() {
            return Some(path);
        }
        let at = self.at(&name.span());
        self.errors.push(Error::MissingFile {
            at,
            key: key.to_owned(),
            path,
        });
        None
    }

    /// Reads an optional duration; on error, records it and returns `default`.
    pub(crate) fn duration(
        &mut self,
        key: &str,
        raw: Option<&Spanned<RawDuration>>,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        let (value, result) = match &raw.get_ref().0 {
            IntOrString::Int(seconds) => (
                seconds.to_string(),
                match u64::try_from(*seconds) {
                    Ok(0) => Err("is zero".to_owned()),
                    Ok(seconds) => Ok(Duration::from_secs(seconds)),
                    Err(_) => Err("is negative".to_owned()),
                },
            ),
            IntOrString::String(text) => (quote(text), values::parse_duration(text)),
        };
        result.unwrap_or_else(|problem| {
            self.invalid(&raw.span(), key, value, problem, values::DURATION_EXPECTED);
            default
        })
    }

    /// Reads an optional size; on error, records it and returns `default`.
    pub(crate) fn size(&mut self, key: &str, raw: Option<&Spanned<RawSize>>, default: u64) -> u64 {
        let Some(raw) = raw else { return default };
        let (value, result) = match &raw.get_ref().0 {
            IntOrString::Int(bytes) => (
                bytes.to_string(),
                match u64::try_from(*bytes) {
                    Ok(0) => Err("is zero".to_owned()),
                    Ok(bytes) => Ok(bytes),
                    Err(_) => Err("is negative".to_owned()),
                },
            ),
            IntOrString::String(text) => (quote(text), values::parse_size(text)),
        };
        result.unwrap_or_else(|problem| {
            self.invalid(&raw.span(), key, value, problem, values::SIZE_EXPECTED);
            default
        })
    }
}
