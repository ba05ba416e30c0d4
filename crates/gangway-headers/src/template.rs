//! Value templates: literal text with `$name`, `${name}` and `$$`.

use std::fmt;

use http::HeaderName;

use crate::Error;

/// A request fact a template can refer to, as nginx names it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `$args`: the query without `?`, empty when there is none.
    Args,
    /// `$request_method`.
    RequestMethod,
    /// `$proxy_add_x_forwarded_for`: the client's `X-Forwarded-For` with `$remote_addr`
    /// appended.
    ProxyAddXForwardedFor,
    /// `$http_<name>`: a request header, `_` standing for `-` in the name.
    Header(HeaderName),
}

impl Variable {
    /// Resolves a variable name as written after `$` (without braces).
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
            "request_method" => Self::RequestMethod,
            "proxy_add_x_forwarded_for" => Self::ProxyAddXForwardedFor,
            _ => {
                let header = name.strip_prefix("http_")?.replace('_', "-");
                Self::Header(HeaderName::from_bytes(header.as_bytes()).ok()?)
            }
        })
    }
}

/// The engine's side of rendering: writes a variable's value for the current request.
pub trait Variables {
    /// Appends the value of `variable` to `out`; returns `false` when the request has no
    /// value for it (the template then renders it as empty).
    fn write(&self, variable: &Variable, out: &mut String) -> bool;
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(Variable),
}

/// A parsed value template. Parsing happens once, at configuration load; rendering does
/// no parsing and allocates only the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `$name`, `${name}` and `$$` (a literal `$`) in `source`.
    pub fn parse(source: &str) -> Result<Self, Error> {
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
            let variable = Variable::from_name(&name).ok_or_else(|| Error::UnknownVariable {
                name: name.clone(),
                column,
            })?;
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

    /// The template as it was written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables the template refers to, in order.
    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable(variable) => Some(variable),
            Part::Literal(_) => None,
        })
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
                Part::Variable(variable) => {
                    variables.write(variable, out);
                }
            }
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}
