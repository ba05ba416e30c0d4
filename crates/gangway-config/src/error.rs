//! What went wrong in a configuration file, where, and what was expected instead.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::Scheme;
use crate::values::quote;

/// A position in a configuration file: `FILE:LINE:COLUMN` when displayed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file as it was named to [`load`](crate::load) or [`parse`](crate::parse).
    pub file: PathBuf,
    /// Line, counted from 1.
    pub line: usize,
    /// Column, counted from 1 in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in a configuration file.
///
/// Displays as `FILE:LINE:COLUMN: message`, where the message names the key (as a path such
/// as `listener[1].route[2].proxy`, indexes counted from 1), what is wrong with it, and what
/// was expected instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("{}: cannot read the configuration file: {source}; expected a readable TOML file", file.display())]
    Read {
        /// The file as it was named.
        file: PathBuf,
        /// Why reading failed.
        #[source]
        source: IoError,
    },
    /// The file is not valid TOML.
    #[error("{at}: invalid TOML: {message}")]
    Syntax {
        /// Where the TOML parser stopped.
        at: Location,
        /// The TOML parser's description, which says what it expected.
        message: String,
    },
    /// The TOML is valid but does not have the shape of a configuration: an unknown key, a
    /// value of the wrong type, or a missing key inside a value.
    #[error("{at}: {message}")]
    Schema {
        /// The offending key or value.
        at: Location,
        /// What was found and what was expected, e.g. ``unknown field `bogus`, expected one
        /// of `address`, `route` ``.
        message: String,
    },
    /// A required key is absent.
    #[error("{at}: {key} is missing; expected {expected}")]
    MissingKey {
        /// The table that lacks the key.
        at: Location,
        /// Path of the missing key, e.g. `listener[1].address`.
        key: String,
        /// What the key should hold.
        expected: String,
    },
    /// A value has the right type but not an accepted form or range.
    #[error("{at}: {key} = {value}: {problem}; expected {expected}")]
    InvalidValue {
        /// The value.
        at: Location,
        /// Path of the key, e.g. `listener[1].max_header_size`.
        key: String,
        /// The value as TOML, e.g. `"16 kib"` or `0`.
        value: String,
        /// What is wrong with it, e.g. `unknown unit "kib"`.
        problem: String,
        /// The accepted form.
        expected: String,
    },
    /// A file the configuration names does not exist.
    #[error("{at}: {key}: no file at {}; expected a PEM file (relative paths start from the configuration file's directory)", path.display())]
    MissingFile {
        /// The value naming the file.
        at: Location,
        /// Path of the key, e.g. `listener[1].certificate`.
        key: String,
        /// The file, resolved against the configuration file's directory.
        path: PathBuf,
    },
    /// A listener has a certificate without a private key, or the other way round.
    #[error("{at}: {key}: `{present}` is set without `{missing}`; expected both or neither")]
    TlsPair {
        /// The key that is present.
        at: Location,
        /// Path of the listener, e.g. `listener[1]`.
        key: String,
        /// The key that is set.
        present: &'static str,
        /// The key that is absent.
        missing: &'static str,
    },
    /// A `proxy` route names an upstream that is not defined.
    #[error(
        "{at}: {key}: no upstream is named {}; expected {}",
        quote(name),
        known_upstreams(known)
    )]
    UnknownUpstream {
        /// The `proxy` value.
        at: Location,
        /// Path of the key, e.g. `listener[1].route[1].proxy`.
        key: String,
        /// The name as written.
        name: String,
        /// The names that are defined, in file order.
        known: Vec<String>,
    },
    /// Two upstreams, or two listeners, have the same name.
    #[error(
        "{at}: {key}: the name {} is already used at line {first_line}; expected a unique name",
        quote(name)
    )]
    DuplicateName {
        /// The second name (or the second table, for a defaulted listener name).
        at: Location,
        /// Path of the key, e.g. `upstream[2].name`.
        key: String,
        /// The name.
        name: String,
        /// Line of the first use.
        first_line: usize,
    },
    /// Two listeners bind the same address.
    #[error(
        "{at}: {key}: {address} is already the address of the listener at line {first_line}; expected a different address for each listener"
    )]
    DuplicateAddress {
        /// The second address.
        at: Location,
        /// Path of the key, e.g. `listener[2].address`.
        key: String,
        /// The address.
        address: std::net::SocketAddr,
        /// Line of the first listener's address.
        first_line: usize,
    },
    /// Two routes of one listener have the same host and path.
    #[error("{at}: {key}: {} is already routed at line {first_line}; expected each host and path once per listener", host_and_path(host.as_deref(), path))]
    DuplicateRoute {
        /// The second route's `path`.
        at: Location,
        /// Path of the route, e.g. `listener[1].route[3]`.
        key: String,
        /// The normalised host, `None` for any host.
        host: Option<String>,
        /// The path prefix.
        path: String,
        /// Line of the first route's `path`.
        first_line: usize,
    },
    /// A route has no action, or more than one.
    #[error(
        "{at}: {key}: {}; expected exactly one of `proxy`, `redirect`, `respond`, `relay` or `websocket_test_page`",
        found_actions(found)
    )]
    RouteAction {
        /// The route (no action) or its second action.
        at: Location,
        /// Path of the route, e.g. `listener[1].route[2]`.
        key: String,
        /// The actions the route has, in file order.
        found: Vec<&'static str>,
    },
    /// `rewrite_prefix` or `websocket = true` on a route that does not proxy.
    #[error(
        "{at}: {key}: only a `proxy` route can have this, and this route uses `{action}`; expected the key removed"
    )]
    ProxyOnly {
        /// The key's value.
        at: Location,
        /// Path of the key, e.g. `listener[1].route[2].rewrite_prefix`.
        key: String,
        /// The route's action.
        action: &'static str,
    },
    /// A listener without routes.
    #[error(
        "{at}: {key}: the listener has no routes; expected at least one [[listener.route]] after it"
    )]
    NoRoutes {
        /// The listener's table.
        at: Location,
        /// Path of the listener, e.g. `listener[1]`.
        key: String,
    },
    /// The peers of one upstream mix `http` and `https`.
    #[error("{at}: {key}: scheme {} differs from scheme {} of the first peer; expected every peer of an upstream to use one scheme", scheme_name(*scheme), scheme_name(*first))]
    MixedSchemes {
        /// The peer's URL.
        at: Location,
        /// Path of the peer, e.g. `upstream[1].peers[2]`.
        key: String,
        /// This peer's scheme.
        scheme: Scheme,
        /// The first peer's scheme.
        first: Scheme,
    },
    /// `ca` or `server_name` on an upstream whose peers use `http`.
    #[error(
        "{at}: {key}: applies only to an https upstream, and this one uses http; expected the key removed or https:// peers"
    )]
    HttpsOnly {
        /// The key's value.
        at: Location,
        /// Path of the key, e.g. `upstream[1].ca`.
        key: String,
    },
    /// A redirect target that is not a valid header template.
    #[error("{at}: {key}: invalid redirect target {}: {source}", quote(target))]
    Template {
        /// The template, at the failing character when it can be located.
        at: Location,
        /// Path of the key, e.g. `listener[1].route[2].redirect`.
        key: String,
        /// The target as written.
        target: String,
        /// What the template parser rejected.
        #[source]
        source: gangway_headers::Error,
    },
    /// A header operation that `gangway-headers` refuses (a managed header such as
    /// `Connection`, a value with forbidden bytes).
    #[error("{at}: {key}: {source}")]
    Header {
        /// The operation's value.
        at: Location,
        /// Path of the key, e.g. `listener[1].request_headers.set.Upgrade`.
        key: String,
        /// What the header layer rejected.
        #[source]
        source: gangway_headers::Error,
    },
    /// A route's path, host, method list or rewrite template that `gangway-route` refuses.
    #[error("{at}: {key}: {source}")]
    Route {
        /// The value, at the failing character when it can be located.
        at: Location,
        /// Path of the key, e.g. `listener[1].route[2].path`.
        key: String,
        /// What the route parser rejected, with the column and what it expected.
        #[source]
        source: gangway_route::Error,
    },
}

impl Error {
    /// The configuration file the error is in.
    pub fn file(&self) -> &Path {
        match self {
            Self::Read { file, .. } => file,
            Self::Syntax { at, .. }
            | Self::Schema { at, .. }
            | Self::MissingKey { at, .. }
            | Self::InvalidValue { at, .. }
            | Self::MissingFile { at, .. }
            | Self::TlsPair { at, .. }
            | Self::UnknownUpstream { at, .. }
            | Self::DuplicateName { at, .. }
            | Self::DuplicateAddress { at, .. }
            | Self::DuplicateRoute { at, .. }
            | Self::RouteAction { at, .. }
            | Self::ProxyOnly { at, .. }
            | Self::NoRoutes { at, .. }
            | Self::MixedSchemes { at, .. }
            | Self::HttpsOnly { at, .. }
            | Self::Template { at, .. }
            | Self::Header { at, .. }
            | Self::Route { at, .. } => &at.file,
        }
    }

    /// Where in the file the error is; `None` when the file could not be read.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { at, .. }
            | Self::Schema { at, .. }
            | Self::MissingKey { at, .. }
            | Self::InvalidValue { at, .. }
            | Self::MissingFile { at, .. }
            | Self::TlsPair { at, .. }
            | Self::UnknownUpstream { at, .. }
            | Self::DuplicateName { at, .. }
            | Self::DuplicateAddress { at, .. }
            | Self::DuplicateRoute { at, .. }
            | Self::RouteAction { at, .. }
            | Self::ProxyOnly { at, .. }
            | Self::NoRoutes { at, .. }
            | Self::MixedSchemes { at, .. }
            | Self::HttpsOnly { at, .. }
            | Self::Template { at, .. }
            | Self::Header { at, .. }
            | Self::Route { at, .. } => Some(at),
        }
    }
}

/// Every problem found in a configuration file, in file order.
///
/// Displays as one error per line.
#[derive(Debug, Clone, PartialEq)]
pub struct Errors(pub Vec<Error>);

impl Errors {
    /// The errors, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Error> {
        self.0.iter()
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (a successful parse never returns an empty `Errors`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

impl From<Error> for Errors {
    fn from(error: Error) -> Self {
        Self(vec![error])
    }
}

impl IntoIterator for Errors {
    type Item = Error;
    type IntoIter = std::vec::IntoIter<Error>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Errors {
    type Item = &'a Error;
    type IntoIter = std::slice::Iter<'a, Error>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// An I/O error that can be cloned and compared (by kind and message), so that [`Error`]
/// can derive `PartialEq` for tests.
#[derive(Debug, Clone)]
pub struct IoError(Arc<std::io::Error>);

impl IoError {
    /// The kind of failure, e.g. [`std::io::ErrorKind::NotFound`].
    pub fn kind(&self) -> std::io::ErrorKind {
        self.0.kind()
    }

    /// The underlying error.
    pub fn get_ref(&self) -> &std::io::Error {
        &self.0
    }
}

impl From<std::io::Error> for IoError {
    fn from(error: std::io::Error) -> Self {
        Self(Arc::new(error))
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

fn known_upstreams(known: &[String]) -> String {
    if known.is_empty() {
        return "the name of an [[upstream]], and none is defined".to_owned();
    }
    let names: Vec<String> = known.iter().map(|name| quote(name)).collect();
    format!("one of {}", names.join(", "))
}

fn host_and_path(host: Option<&str>, path: &str) -> String {
    match host {
        Some(host) => format!("host {} with path {}", quote(host), quote(path)),
        None => format!("path {} for any host", quote(path)),
    }
}

fn found_actions(found: &[&str]) -> String {
    match found {
        [] => "the route has no action".to_owned(),
        [first, second] => format!("the route has both `{first}` and `{second}`"),
        _ => {
            let names: Vec<String> = found.iter().map(|name| format!("`{name}`")).collect();
            format!("the route has {}", names.join(", "))
        }
    }
}

fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}
