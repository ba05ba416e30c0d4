//! The engine's answers to template variables, for one request.

use std::fmt::Write;
use std::net::SocketAddr;

use gangway_headers::{ForwardingPolicy, Variable, Variables};
use gangway_route::Captures;
use http::{HeaderMap, Method, Uri};

/// The facts of one request that templates may use.
#[derive(Debug)]
pub(crate) struct RequestFacts<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) client: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) tls: Option<&'a gangway_tls::TlsSession>,
    pub(crate) server_name: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    pub(crate) captures: Option<&'a Captures<'a>>,
    pub(crate) forwarding: Option<&'a ForwardingPolicy>,
}

fn push(out: &mut String, value: Option<&str>) -> bool {
    match value {
        Some(value) => {
            out.push_str(value);
            true
        }
        None => false,
    }
}

impl RequestFacts<'_> {
    /// The client certificate the identity variables describe: only one that verified, or
    /// one passed on unverified under `optional_unverified`.
    fn client(&self) -> Option<&gangway_tls::PeerCertificate> {
        self.tls.and_then(|tls| tls.identity().forwarded())
    }
}

impl Variables for RequestFacts<'_> {
    fn write(&self, variable: &Variable, out: &mut String) -> bool {
        match variable {
            Variable::RemoteAddr => write!(out, "{}", self.client.ip()).is_ok(),
            Variable::RemotePort => write!(out, "{}", self.client.port()).is_ok(),
            Variable::ServerAddr => write!(out, "{}", self.local.ip()).is_ok(),
            Variable::ServerPort => write!(out, "{}", self.local.port()).is_ok(),
            Variable::ServerName => push(out, self.server_name.or(self.host)),
            Variable::SslServerName => push(out, self.server_name),
            Variable::Host => match self.host.or(self.server_name) {
                Some(host) => push(out, Some(host)),
                None => write!(out, "{}", self.local.ip()).is_ok(),
            },
            Variable::Scheme => push(out, Some(if self.tls.is_some() { "https" } else { "http" })),
            Variable::SslProtocol => push(
                out,
                self.tls
                    .and_then(|tls| tls.version())
                    .map(|version| version.as_str()),
            ),
            Variable::SslClientVerify => match self.tls {
                Some(tls) => write!(out, "{}", tls.identity().status()).is_ok(),
                None => false,
            },
            Variable::SslClientEscapedCert => {
                push(out, self.client().map(|cert| cert.escaped_pem()))
            }
            Variable::SslClientCert => push(out, self.client().map(|cert| cert.pem())),
            Variable::SslClientSDn => push(out, self.client().map(|cert| cert.subject_dn())),
            Variable::SslClientIDn => push(out, self.client().map(|cert| cert.issuer_dn())),
            Variable::SslClientSerial => push(out, self.client().map(|cert| cert.serial())),
            Variable::SslClientFingerprint => match self.client() {
                Some(cert) => write!(out, "{}", cert.sha256_fingerprint()).is_ok(),
                None => false,
            },
            Variable::RequestUri => push(
                out,
                Some(
                    self.uri
                        .path_and_query()
                        .map_or("/", |target| target.as_str()),
                ),
            ),
            Variable::Uri => push(out, Some(self.uri.path())),
            Variable::Args => push(out, Some(self.uri.query().unwrap_or(""))),
            Variable::IsArgs => push(out, Some(if self.uri.query().is_some() { "?" } else { "" })),
            Variable::RequestMethod => push(out, Some(self.method.as_str())),
            Variable::ProxyAddXForwardedFor => match self.forwarding {
                Some(policy) => {
                    policy.write_x_forwarded_for(self.headers, self.client.ip(), out);
                    true
                }
                None => {
                    ForwardingPolicy::new().write_x_forwarded_for(
                        self.headers,
                        self.client.ip(),
                        out,
                    );
                    true
                }
            },
            Variable::Header(name) => {
                let mut values = self
                    .headers
                    .get_all(name)
                    .iter()
                    .filter_map(|value| value.to_str().ok());
                let Some(first) = values.next() else {
                    return false;
                };
                out.push_str(first);
                for value in values {
                    out.push_str(", ");
                    out.push_str(value);
                }
                true
            }
            Variable::Cookie(name) => push(out, cookie(self.headers, name)),
            Variable::Arg(name) => push(out, query_arg(self.uri.query().unwrap_or(""), name)),
            Variable::Capture(index) => push(
                out,
                self.captures
                    .and_then(|captures| captures.get(usize::from(*index))),
            ),
            Variable::NamedCapture(name) => {
                push(out, self.captures.and_then(|captures| captures.name(name)))
            }
            _ => false,
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (`a=1; b=2`), the first
/// one that names it.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim_end() == name).then(|| value.trim_start())
        })
}

/// The value of argument `name` in `query` (`a=1&b=2`), as sent; the name is compared
/// without case, as nginx's `$arg_` does.
pub(crate) fn query_arg<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        key.eq_ignore_ascii_case(name).then_some(value)
    })
}
