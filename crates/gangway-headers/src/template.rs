//! Value templates: literal text with `$name`, `${name}` and `$$`.

use std::fmt::{self, Write};

use http::HeaderName;
use http::header::UPGRADE;

use crate::Error;

/// A request fact a template can refer to, as nginx names it.
///
/// The engine answers them through [`Variables`]. Two are derived by this crate when the
/// engine does not answer them: [`Variable::ConnectionUpgrade`] from `$http_upgrade` and
/// [`Variable::IsArgs`] from `$args`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Variable {
    /// `$remote_addr`: the client's IP address.
    RemoteAddr,
    /// `$remote_port`: the client's TCP port.
    RemotePort,
    /// `$server_addr`: the local address that accepted the connection.
    ServerAddr,
    /// `$server_port`: the local port that accepted the connection.
    ServerPort,
    /// `$server_name`: the configured server name, else the TLS server name, else the host.
    ServerName,
    /// `$host`: the request's host without port, lower-cased; else the server name.
    Host,
    /// `$scheme`: `http` or `https`.
    Scheme,
    /// `$request_uri`: the original path and query as the client sent them.
    RequestUri,
    /// `$uri`: the path without the query.
    Uri,
    /// `$args` (also `$query_string`): the query without `?`, empty when there is none.
    Args,
    /// `$is_args`: `?` when the request has a non-empty query, else empty. Derived from
    /// `$args` when the engine does not answer it.
    IsArgs,
    /// `$request_method`.
    RequestMethod,
    /// `$proxy_add_x_forwarded_for`: the client's `X-Forwarded-For` with `$remote_addr`
    /// appended (see
    /// [`ForwardingPolicy::write_x_forwarded_for`](crate::ForwardingPolicy::write_x_forwarded_for)).
    ProxyAddXForwardedFor,
    /// `$connection_upgrade`: `upgrade` when the request has a non-empty `Upgrade` header,
    /// else `close` (the `map` every nginx WebSocket guide declares). Derived from
    /// `$http_upgrade` when the engine does not answer it.
    ConnectionUpgrade,
    /// `$http_<name>`: a request header, `_` standing for `-` in the name.
    Header(HeaderName),
    /// `$cookie_<name>`: the value of the request cookie `<name>` (the name as written,
    /// compared exactly); empty when the request has none.
    Cookie(String),
    /// `$arg_<name>`: the value of the query argument `<name>` as sent (not decoded; the
    /// name compared without case, as nginx does); empty when the query has none.
    Arg(String),
    /// `$ssl_client_escaped_cert`: the client certificate as PEM, URL-escaped byte for
    /// byte as nginx does (`gangway-tls` produces it); empty without one.
    SslClientEscapedCert,
    /// `$ssl_client_cert`: the client certificate as PEM (nginx prefixes every line but the
    /// first with a tab); empty without one.
    SslClientCert,
    /// `$ssl_client_s_dn`: the client certificate's subject DN (RFC 2253 form).
    SslClientSDn,
    /// `$ssl_client_i_dn`: the client certificate's issuer DN (RFC 2253 form).
    SslClientIDn,
    /// `$ssl_client_serial`: the client certificate's serial number in hex.
    SslClientSerial,
    /// `$ssl_client_fingerprint`: the SHA-1 fingerprint of the client certificate, hex.
    SslClientFingerprint,
    /// `$ssl_client_verify`: `SUCCESS`, `FAILED:<reason>` or `NONE`.
    SslClientVerify,
    /// `$ssl_protocol`: the TLS version, such as `TLSv1.3`.
    SslProtocol,
    /// `$ssl_server_name`: the server name the client sent in SNI.
    SslServerName,
    /// `$0`..`$9`: a numbered capture of the route's regular expression (`$0` is the whole
    /// match).
    Capture(u8),
    /// `$name` / `${name}`: a named capture of the route's regular expression, accepted by
    /// [`Template::parse_with_captures`].
    NamedCapture(String),
}

impl Variable {
    /// Resolves a built-in variable name as written after `$` (without braces): the names
    /// of the variants' documentation, `http_<header>`, and `0`..`9` for numbered captures.
    /// Named captures are not built-in: see [`Template::parse_with_captures`].
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "remote_addr" => Self::RemoteAddr,
            "remote_port" => Self::RemotePort,
            "server_addr" => Self::ServerAddr,
            "server_port" => Self::ServerPort,
            "server_name" => Self::ServerName,
            "host" => Self::Host,
            "scheme" => Self::Scheme,
            "request_uri" => Self::RequestUri,
            "uri" => Self::Uri,
            "args" | "query_string" => Self::Args,
            "is_args" => Self::IsArgs,
            "request_method" => Self::RequestMethod,
            "proxy_add_x_forwarded_for" => Self::ProxyAddXForwardedFor,
            "connection_upgrade" => Self::ConnectionUpgrade,
            "ssl_client_escaped_cert" => Self::SslClientEscapedCert,
            "ssl_client_cert" => Self::SslClientCert,
            "ssl_client_s_dn" => Self::SslClientSDn,
            "ssl_client_i_dn" => Self::SslClientIDn,
            "ssl_client_serial" => Self::SslClientSerial,
            "ssl_client_fingerprint" => Self::SslClientFingerprint,
            "ssl_client_verify" => Self::SslClientVerify,
            "ssl_protocol" => Self::SslProtocol,
            "ssl_server_name" => Self::SslServerName,
            _ => {
                if let [digit @ b'0'..=b'9'] = name.as_bytes() {
                    return Some(Self::Capture(digit - b'0'));
                }
                if let Some(cookie) = name.strip_prefix("cookie_").filter(|n| !n.is_empty()) {
                    return Some(Self::Cookie(cookie.to_owned()));
                }
                if let Some(arg) = name.strip_prefix("arg_").filter(|n| !n.is_empty()) {
                    return Some(Self::Arg(arg.to_owned()));
                }
                let header = name.strip_prefix("http_")?.replace('_', "-");
                Self::Header(HeaderName::from_bytes(header.as_bytes()).ok()?)
            }
        })
    }

    /// Whether this is a route capture (`$0`..`$9` or named).
    pub fn is_capture(&self) -> bool {
        matches!(self, Self::Capture(_) | Self::NamedCapture(_))
    }
}

/// Writes the name as it follows `$` (the canonical one where there are aliases), so that
/// `${` + name + `}` parses back to the same variable.
impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::RemoteAddr => "remote_addr",
            Self::RemotePort => "remote_port",
            Self::ServerAddr => "server_addr",
            Self::ServerPort => "server_port",
            Self::ServerName => "server_name",
            Self::Host => "host",
            Self::Scheme => "scheme",
            Self::RequestUri => "request_uri",
            Self::Uri => "uri",
            Self::Args => "args",
            Self::IsArgs => "is_args",
            Self::RequestMethod => "request_method",
            Self::ProxyAddXForwardedFor => "proxy_add_x_forwarded_for",
            Self::ConnectionUpgrade => "connection_upgrade",
            Self::SslClientEscapedCert => "ssl_client_escaped_cert",
            Self::SslClientCert => "ssl_client_cert",
            Self::SslClientSDn => "ssl_client_s_dn",
            Self::SslClientIDn => "ssl_client_i_dn",
            Self::SslClientSerial => "ssl_client_serial",
            Self::SslClientFingerprint => "ssl_client_fingerprint",
            Self::SslClientVerify => "ssl_client_verify",
            Self::SslProtocol => "ssl_protocol",
            Self::SslServerName => "ssl_server_name",
            Self::Capture(n) => return write!(f, "{n}"),
            Self::Cookie(name) => return write!(f, "cookie_{name}"),
            Self::Arg(name) => return write!(f, "arg_{name}"),
            Self::NamedCapture(name) => name.as_str(),
            Self::Header(header) => {
                f.write_str("http_")?;
                for c in header.as_str().chars() {
                    f.write_char(if c == '-' { '_' } else { c })?;
                }
                return Ok(());
            }
        };
        f.write_str(name)
    }
}

/// The engine's side of rendering: writes a variable's value for the current request.
pub trait Variables {
    /// Appends the value of `variable` to `out`; returns `false`, having appended nothing,
    /// when the request has no value for it (the template then renders it as empty, or
    /// derives it: see [`Variable`]).
    fn write(&self, variable: &Variable, out: &mut String) -> bool;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Literal(String),
    Variable(Variable),
}

/// A parsed value template. Parsing happens once, at configuration load; rendering does
/// no parsing and allocates only the output.
///
/// `$name` ends at the first character that is not an ASCII letter, digit or `_`;
/// `${name}` delimits it explicitly; `$$` is a literal `$`. `$` followed by a digit is that
/// one numbered capture (`$10` is `$1` then `0`, as in nginx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `$name`, `${name}` and `$$` (a literal `$`) in `source`. Every name must be a
    /// built-in variable ([`Variable::from_name`]) or a numbered capture `$0`..`$9`.
    pub fn parse(source: &str) -> Result<Self, Error> {
        Self::parse_with_captures::<&str>(source, &[])
    }

    /// Parses like [`Template::parse`], also accepting the route's named captures
    /// `captures` as `$name` / `${name}`. A capture named like a built-in variable is an
    /// error (as in nginx), whether or not the template uses it.
    pub fn parse_with_captures<S: AsRef<str>>(source: &str, captures: &[S]) -> Result<Self, Error> {
        for name in captures {
            let name = name.as_ref();
            if Variable::from_name(name).is_some() {
                return Err(Error::CaptureShadowsVariable {
                    name: name.to_owned(),
                });
            }
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((index, c)) = chars.next() {
            if c != '$' {
                literal.push(c);
                continue;
            }
            let column = source[..index].chars().count() + 1;
            let name = match chars.peek() {
                Some((_, '$')) => {
                    chars.next();
                    literal.push('$');
                    continue;
                }
                Some((_, '{')) => {
                    chars.next();
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, c)) => name.push(c),
                            None => return Err(Error::UnclosedBrace { column }),
                        }
                    }
                    name
                }
                Some(&(_, digit)) if digit.is_ascii_digit() => {
                    chars.next();
                    digit.to_string()
                }
                _ => {
                    let mut name = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        if !(c.is_ascii_alphanumeric() || c == '_') {
                            break;
                        }
                        name.push(c);
                        chars.next();
                    }
                    name
                }
            };
            if name.is_empty() {
                return Err(Error::MissingName { column });
            }
            let variable = match Variable::from_name(&name) {
                Some(variable) => variable,
                None if captures.iter().any(|c| c.as_ref() == name) => Variable::NamedCapture(name),
                None => return Err(Error::UnknownVariable { name, column }),
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Variable(variable));
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// A template that renders `text` as it is: every `$` in it is literal.
    pub fn literal(text: &str) -> Self {
        let parts = if text.is_empty() {
            Vec::new()
        } else {
            vec![Part::Literal(text.to_owned())]
        };
        Self {
            source: text.replace('$', "$$"),
            parts,
        }
    }

    /// The template as it was written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template has no variables (it renders to the same text every time).
    pub fn is_literal(&self) -> bool {
        self.variables().next().is_none()
    }

    /// The variables the template refers to, in order.
    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable(variable) => Some(variable),
            Part::Literal(_) => None,
        })
    }

    /// The route captures the template refers to (`$0`..`$9` and named), in order, so that
    /// the configuration can check that the route produces them.
    pub fn captures(&self) -> impl Iterator<Item = &Variable> {
        self.variables().filter(|variable| variable.is_capture())
    }

    /// Renders the template for one request.
    pub fn render(&self, variables: &dyn Variables) -> String {
        let mut out = String::new();
        self.render_into(variables, &mut out);
        out
    }

    /// Renders the template for one request, appending to `out`.
    pub fn render_into(&self, variables: &dyn Variables, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(variable) => write_variable(variables, variable, out),
            }
        }
    }

    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

const UPGRADE_HEADER: Variable = Variable::Header(UPGRADE);

/// Asks the engine for `variable`, and derives the variables that have a derivation when
/// the engine has no answer.
fn write_variable(variables: &dyn Variables, variable: &Variable, out: &mut String) {
    let start = out.len();
    if variables.write(variable, out) {
        return;
    }
    // `false` means "no value": make sure nothing half-written stays.
    out.truncate(start);
    let derived_from = match variable {
        Variable::ConnectionUpgrade => &UPGRADE_HEADER,
        Variable::IsArgs => &Variable::Args,
        _ => return,
    };
    let present = variables.write(derived_from, out) && out.len() > start;
    out.truncate(start);
    out.push_str(match (variable, present) {
        (Variable::ConnectionUpgrade, true) => "upgrade",
        (Variable::ConnectionUpgrade, false) => "close",
        (_, true) => "?",
        (_, false) => "",
    });
}
