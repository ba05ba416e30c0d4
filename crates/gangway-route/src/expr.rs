//! Route expressions: the types ([`RouteExpr`], [`HostMatch`], [`PathMatch`]), their
//! hand-written parser and their canonical display.
//!
//! Grammar (whitespace is any Unicode whitespace; keywords are lower case):
//!
//! ```text
//! route   = [ "host" ws host ws ] [ "method" ws methods ws ] path
//! host    = "*" | "*." domain | name | "~" [ws] regex-token
//! methods = token *( "," token )
//! path    = "=" [ws] literal | "^~" [ws] literal | "~*" [ws] regex | "~" [ws] regex | literal
//! ```
//!
//! A literal path ends at whitespace and must be the last thing in the input. A path regex is
//! the rest of the input with surrounding whitespace trimmed, so it may contain spaces; a host
//! regex ends at whitespace (hosts never contain it; write `\s` if you must).

use std::fmt;

use regex::{Regex, RegexBuilder};

use crate::error::{Error, Input, RegexError};

/// How a route matches the request path. See the crate documentation for the syntax.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathMatch {
    /// `= /path`: the whole path, exactly. Checked first; a hit ends the search.
    Exact(String),
    /// `^~ /prefix`: a prefix that, when it is the longest matching prefix, wins without
    /// consulting regular expressions.
    PreferredPrefix(String),
    /// `/prefix`: a prefix; the longest matching one is used if no regular expression
    /// matches.
    Prefix(String),
    /// `~ regex`: a case-sensitive, unanchored regular expression.
    Regex(String),
    /// `~* regex`: a case-insensitive, unanchored regular expression.
    RegexNoCase(String),
}

/// How a route matches the request's host (as sent, without the port).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HostMatch {
    /// Any host, and requests without one: nginx's default server.
    #[default]
    Any,
    /// One host name, stored in lower case without a trailing dot.
    Exact(String),
    /// `*.domain`: any name with one or more labels in front of `domain` (which is stored
    /// here without the `*.`). `*.example.com` matches `a.example.com` and
    /// `a.b.example.com`, not `example.com`.
    Wildcard(String),
    /// `~ regex`: an unanchored, case-insensitive regular expression on the lower-cased host.
    /// Named and numbered groups become captures.
    Regex(String),
}

/// A parsed route expression: host match, optional method filter and path match.
///
/// `Display` prints the canonical form, which parses back to an equal value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteExpr {
    host: HostMatch,
    methods: Vec<String>,
    path: PathMatch,
}

const PATH_EXPR: &str =
    "a path expression: `= /path`, `^~ /prefix`, `~ regex`, `~* regex` or `/prefix`";
const PATH_LITERAL: &str = "a path starting with `/`";
const HOST_EXPR: &str = "a host match: a name, `*.domain`, `~ regex` or `*`";
const METHODS: &str = "a comma-separated method list such as `GET,HEAD`";

impl PathMatch {
    /// Parses a path expression: `= /exact`, `^~ /prefix`, `~ regex`, `~* regex` or
    /// `/prefix`.
    pub fn parse(input: &str) -> Result<PathMatch, Error> {
        let mut c = Cursor::new(input, Input::Path);
        c.skip_ws();
        let path = path_expr(&mut c)?;
        c.expect_end()?;
        Ok(path)
    }

    /// The path, prefix or regular expression as written, without the operator.
    pub fn pattern(&self) -> &str {
        match self {
            Self::Exact(s)
            | Self::PreferredPrefix(s)
            | Self::Prefix(s)
            | Self::Regex(s)
            | Self::RegexNoCase(s) => s,
        }
    }

    /// Whether this is a regular expression (`~` or `~*`).
    pub fn is_regex(&self) -> bool {
        matches!(self, Self::Regex(_) | Self::RegexNoCase(_))
    }

    /// Checks a value built in code (not parsed) and returns its canonical form.
    pub(crate) fn canonical(&self) -> Result<PathMatch, Error> {
        let p = self.pattern();
        let shown = self.to_string();
        let bad = |expected| Error::Syntax {
            what: Input::Path,
            input: shown.clone(),
            column: 1,
            expected,
            found: describe_token(&shown),
        };
        match self {
            Self::Regex(_) | Self::RegexNoCase(_) if p.is_empty() || p.trim() != p => {
                return Err(bad("a regular expression without surrounding whitespace"));
            }
            Self::Exact(_) | Self::PreferredPrefix(_) | Self::Prefix(_) if !p.starts_with('/') => {
                return Err(bad(PATH_LITERAL));
            }
            _ => {}
        }
        let parsed = PathMatch::parse(&shown)?;
        if std::mem::discriminant(&parsed) != std::mem::discriminant(self) {
            return Err(bad(PATH_EXPR));
        }
        Ok(parsed)
    }

    /// Compiles the regular expression of a `~`/`~*` path match (the source given to the
    /// regex engine carries `(?i)` for `~*`).
    pub(crate) fn regex_source(&self) -> Option<String> {
        match self {
            Self::Regex(p) => Some(p.clone()),
            Self::RegexNoCase(p) => Some(format!("(?i){p}")),
            _ => None,
        }
    }
}

impl fmt::Display for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(p) => write!(f, "= {p}"),
            Self::PreferredPrefix(p) => write!(f, "^~ {p}"),
            Self::Prefix(p) => f.write_str(p),
            Self::Regex(p) => write!(f, "~ {p}"),
            Self::RegexNoCase(p) => write!(f, "~* {p}"),
        }
    }
}

impl HostMatch {
    /// Parses a host match: `*` (any), `*.domain`, `~ regex` or a host name.
    pub fn parse(input: &str) -> Result<HostMatch, Error> {
        let mut c = Cursor::new(input, Input::Host);
        c.skip_ws();
        let host = host_clause(&mut c)?;
        c.expect_end()?;
        Ok(host)
    }

    /// One host name, such as `ums.example.com` or `[::1]`; stored in lower case without a
    /// trailing dot.
    pub fn exact(name: &str) -> Result<HostMatch, Error> {
        let canonical = host_name(name)
            .map_err(|(at, expected)| Cursor::new(name, Input::Host).error_char(at, expected))?;
        Ok(HostMatch::Exact(canonical))
    }

    /// A wildcard such as `*.mm-remote.company.com`.
    pub fn wildcard(pattern: &str) -> Result<HostMatch, Error> {
        let c = Cursor::new(pattern, Input::Host);
        let Some(domain) = pattern.strip_prefix("*.") else {
            return Err(c.error_char(0, "`*.` followed by a domain"));
        };
        let canonical =
            host_name(domain).map_err(|(at, expected)| c.error_char(at + 2, expected))?;
        Ok(HostMatch::Wildcard(canonical))
    }

    /// A regular expression on the lower-cased host, such as
    /// `^(?<device>[a-z0-9-]+)\.mm-remote\.company\.com$`. It may not contain whitespace.
    pub fn regex(pattern: &str) -> Result<HostMatch, Error> {
        let c = Cursor::new(pattern, Input::Host);
        if pattern.is_empty() {
            return Err(c.error_char(0, "a regular expression"));
        }
        if let Some((at, _)) = pattern.char_indices().find(|(_, ch)| ch.is_whitespace()) {
            return Err(c.error_char(at, "a host regular expression without whitespace"));
        }
        compile_host_regex(pattern).map_err(|source| Error::Regex {
            what: Input::Host,
            input: pattern.to_owned(),
            column: 1,
            source,
        })?;
        Ok(HostMatch::Regex(pattern.to_owned()))
    }

    /// Checks a value built in code (not parsed) and returns its canonical form.
    pub(crate) fn canonical(&self) -> Result<HostMatch, Error> {
        match self {
            Self::Any => Ok(Self::Any),
            Self::Exact(name) => Self::exact(name),
            Self::Wildcard(domain) => Self::wildcard(&format!("*.{domain}")),
            Self::Regex(p) => Self::regex(p),
        }
    }
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(name) => f.write_str(name),
            Self::Wildcard(domain) => write!(f, "*.{domain}"),
            Self::Regex(p) => write!(f, "~ {p}"),
        }
    }
}

impl RouteExpr {
    /// A route on `host` and `path`, any method.
    pub fn new(host: HostMatch, path: PathMatch) -> RouteExpr {
        RouteExpr {
            host,
            methods: Vec::new(),
            path,
        }
    }

    /// Restricts the route to these methods (case-sensitive tokens such as `GET`). An empty
    /// list means any method.
    pub fn with_methods<I, S>(mut self, methods: I) -> Result<RouteExpr, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let methods: Vec<String> = methods.into_iter().map(Into::into).collect();
        if methods.is_empty() {
            self.methods.clear();
            return Ok(self);
        }
        let joined = methods.join(",");
        self.methods = method_list(&joined).map_err(|(at, expected)| {
            Cursor::new(&joined, Input::Route).error_char(at, expected)
        })?;
        Ok(self)
    }

    /// Parses a route expression such as
    /// `host *.mm-remote.company.com method GET,HEAD ^~ /api/`.
    pub fn parse(input: &str) -> Result<RouteExpr, Error> {
        let mut c = Cursor::new(input, Input::Route);
        c.skip_ws();
        let mut host = HostMatch::Any;
        if c.token() == "host" {
            c.pos += "host".len();
            c.skip_ws();
            host = host_clause(&mut c)?;
            c.skip_ws();
        }
        let mut methods = Vec::new();
        if c.token() == "method" {
            c.pos += "method".len();
            c.skip_ws();
            let start = c.pos;
            let list = c.token();
            if list.is_empty() {
                return Err(c.error_token(start, METHODS));
            }
            methods =
                method_list(list).map_err(|(at, expected)| c.error_char(start + at, expected))?;
            c.pos += list.len();
            c.skip_ws();
        }
        let path = path_expr(&mut c)?;
        c.expect_end()?;
        Ok(RouteExpr {
            host,
            methods,
            path,
        })
    }

    /// The host match.
    pub fn host(&self) -> &HostMatch {
        &self.host
    }

    /// The methods the route is limited to; empty means any.
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// The path match.
    pub fn path(&self) -> &PathMatch {
        &self.path
    }

    /// Checks a value built in code and returns its canonical form.
    pub(crate) fn canonical(&self) -> Result<RouteExpr, Error> {
        Ok(RouteExpr {
            host: self.host.canonical()?,
            methods: self.methods.clone(),
            path: self.path.canonical()?,
        })
    }
}

impl fmt::Display for RouteExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host != HostMatch::Any {
            write!(f, "host {} ", self.host)?;
        }
        if !self.methods.is_empty() {
            write!(f, "method {} ", self.methods.join(","))?;
        }
        write!(f, "{}", self.path)
    }
}

impl std::str::FromStr for RouteExpr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RouteExpr::parse(s)
    }
}

impl std::str::FromStr for PathMatch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PathMatch::parse(s)
    }
}

impl std::str::FromStr for HostMatch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostMatch::parse(s)
    }
}

/// Compiles a host regular expression the way the table uses it.
pub(crate) fn compile_host_regex(pattern: &str) -> Result<Regex, RegexError> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .build()
        .map_err(RegexError)
}

/// Compiles a path regular expression source (see [`PathMatch::regex_source`]).
pub(crate) fn compile_path_regex(source: &str) -> Result<Regex, RegexError> {
    Regex::new(source).map_err(RegexError)
}

/// A position in one input being parsed.
pub(crate) struct Cursor<'a> {
    pub(crate) input: &'a str,
    pub(crate) pos: usize,
    what: Input,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(input: &'a str, what: Input) -> Self {
        Cursor {
            input,
            pos: 0,
            what,
        }
    }

    fn rest(&self) -> &'a str {
        self.input.get(self.pos..).unwrap_or("")
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The run of non-whitespace characters at the cursor.
    fn token(&self) -> &'a str {
        let rest = self.rest();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        &rest[..end]
    }

    fn column(&self, at: usize) -> usize {
        self.input.get(..at).map_or(at, |s| s.chars().count()) + 1
    }

    fn expect_end(&mut self) -> Result<(), Error> {
        self.skip_ws();
        if self.pos < self.input.len() {
            return Err(self.error_token(self.pos, "end of input"));
        }
        Ok(())
    }

    /// An error at byte `at`, describing the token found there.
    fn error_token(&self, at: usize, expected: &'static str) -> Error {
        Error::Syntax {
            what: self.what,
            input: self.input.to_owned(),
            column: self.column(at),
            expected,
            found: describe_token(self.input.get(at..).unwrap_or("")),
        }
    }

    /// An error at byte `at`, describing the character found there.
    pub(crate) fn error_char(&self, at: usize, expected: &'static str) -> Error {
        let found = match self.input.get(at..).and_then(|s| s.chars().next()) {
            Some(ch) if ch.is_whitespace() => "whitespace".to_owned(),
            Some(ch) => format!("`{}`", ch.escape_debug()),
            None => "end of input".to_owned(),
        };
        Error::Syntax {
            what: self.what,
            input: self.input.to_owned(),
            column: self.column(at),
            expected,
            found,
        }
    }

    fn regex_error(&self, at: usize, source: RegexError) -> Error {
        Error::Regex {
            what: self.what,
            input: self.input.to_owned(),
            column: self.column(at),
            source,
        }
    }
}

fn describe_token(rest: &str) -> String {
    let trimmed = rest.trim_start();
    if rest.is_empty() {
        return "end of input".to_owned();
    }
    if trimmed.len() != rest.len() {
        let ch = rest.chars().next().unwrap_or(' ');
        return format!("`{}`", ch.escape_debug());
    }
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    format!("`{}`", rest[..end].escape_debug())
}

fn path_expr(c: &mut Cursor<'_>) -> Result<PathMatch, Error> {
    let start = c.pos;
    let rest = c.rest();
    if rest.is_empty() {
        Err(c.error_token(start, PATH_EXPR))
    } else if rest.starts_with("^~") {
        c.pos += 2;
        literal(c, false).map(PathMatch::PreferredPrefix)
    } else if rest.starts_with('=') {
        c.pos += 1;
        literal(c, true).map(PathMatch::Exact)
    } else if rest.starts_with("~*") {
        c.pos += 2;
        path_regex(c, true)
    } else if rest.starts_with('~') {
        c.pos += 1;
        path_regex(c, false)
    } else if rest.starts_with('/') {
        literal(c, false).map(PathMatch::Prefix)
    } else {
        Err(c.error_token(start, PATH_EXPR))
    }
}

fn literal(c: &mut Cursor<'_>, exact: bool) -> Result<String, Error> {
    c.skip_ws();
    let start = c.pos;
    let token = c.token();
    if !token.starts_with('/') {
        return Err(c.error_token(start, PATH_LITERAL));
    }
    check_literal(token, exact).map_err(|(at, expected)| c.error_char(start + at, expected))?;
    c.pos += token.len();
    Ok(token.to_owned())
}

fn path_regex(c: &mut Cursor<'_>, no_case: bool) -> Result<PathMatch, Error> {
    c.skip_ws();
    let start = c.pos;
    let pattern = c.rest().trim_end();
    if pattern.is_empty() {
        return Err(c.error_token(start, "a regular expression"));
    }
    let path = if no_case {
        PathMatch::RegexNoCase(pattern.to_owned())
    } else {
        PathMatch::Regex(pattern.to_owned())
    };
    if let Some(source) = path.regex_source() {
        compile_path_regex(&source).map_err(|e| c.regex_error(start, e))?;
    }
    c.pos += pattern.len();
    Ok(path)
}

fn host_clause(c: &mut Cursor<'_>) -> Result<HostMatch, Error> {
    let start = c.pos;
    let token = c.token();
    if token.is_empty() {
        return Err(c.error_token(start, HOST_EXPR));
    }
    if let Some(inline) = token.strip_prefix('~') {
        c.pos += 1;
        if inline.is_empty() {
            c.skip_ws();
        }
        let re_start = c.pos;
        let pattern = c.token();
        if pattern.is_empty() {
            return Err(c.error_token(re_start, "a regular expression for the host"));
        }
        compile_host_regex(pattern).map_err(|e| c.regex_error(re_start, e))?;
        c.pos += pattern.len();
        return Ok(HostMatch::Regex(pattern.to_owned()));
    }
    c.pos += token.len();
    if token == "*" {
        return Ok(HostMatch::Any);
    }
    if let Some(domain) = token.strip_prefix("*.") {
        let canonical =
            host_name(domain).map_err(|(at, expected)| c.error_char(start + 2 + at, expected))?;
        return Ok(HostMatch::Wildcard(canonical));
    }
    if token.starts_with('*') {
        return Err(c.error_char(start, "`*.` followed by a domain, or `*` alone"));
    }
    let canonical =
        host_name(token).map_err(|(at, expected)| c.error_char(start + at, expected))?;
    Ok(HostMatch::Exact(canonical))
}

/// Validates a host name and returns it in lower case without a trailing dot, or the byte
/// offset of the problem and what was expected there.
pub(crate) fn host_name(name: &str) -> Result<String, (usize, &'static str)> {
    let body = name.strip_suffix('.').unwrap_or(name);
    if body.is_empty() {
        return Err((0, "a host name"));
    }
    if let Some(inner) = body.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return Err((body.len(), "`]` closing an IPv6 address"));
        };
        if inner.is_empty() {
            return Err((1, "an IPv6 address"));
        }
        if let Some((at, _)) = inner
            .char_indices()
            .find(|(_, ch)| !(ch.is_ascii_hexdigit() || *ch == ':' || *ch == '.'))
        {
            return Err((1 + at, "a hex digit, `:` or `.` in an IPv6 address"));
        }
        return Ok(body.to_ascii_lowercase());
    }
    if body.len() > 253 {
        return Err((253, "a host name of at most 253 characters"));
    }
    let mut label_start = 0;
    for (at, ch) in body.char_indices() {
        if ch == '.' {
            if at == label_start {
                return Err((at, "a non-empty label before `.`"));
            }
            label_start = at + 1;
        } else if ch == '*' {
            return Err((at, "`*` only as the whole first label (`*.example.com`)"));
        } else if !(ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
            return Err((at, "a letter, digit, `-`, `_` or `.` in a host name"));
        } else if at - label_start >= 63 {
            return Err((at, "a label of at most 63 characters"));
        }
    }
    if label_start == body.len() {
        return Err((label_start, "a non-empty label"));
    }
    Ok(body.to_ascii_lowercase())
}

/// Validates `GET,HEAD`: returns the methods or the offset of the problem.
fn method_list(list: &str) -> Result<Vec<String>, (usize, &'static str)> {
    let mut methods: Vec<String> = Vec::new();
    let mut offset = 0;
    for method in list.split(',') {
        if method.is_empty() {
            return Err((offset, "a method name"));
        }
        if let Some((at, _)) = method.char_indices().find(|(_, ch)| !is_tchar(*ch)) {
            return Err((offset + at, "a method name character (an RFC 9110 token)"));
        }
        if methods.iter().any(|m| m == method) {
            return Err((offset, "each method once"));
        }
        methods.push(method.to_owned());
        offset += method.len() + 1;
    }
    Ok(methods)
}

fn is_tchar(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(ch)
}

/// Whether an unencoded byte is an RFC 3986 unreserved character.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Checks that a literal path could ever equal (exact) or start (prefix) a normalised
/// request path; returns the offset of the problem and what was expected.
fn check_literal(path: &str, exact: bool) -> Result<(), (usize, &'static str)> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err((0, PATH_LITERAL));
    }
    for (at, ch) in path.char_indices() {
        match ch {
            '?' => return Err((at, "no `?` in a path (the query is never matched)")),
            '#' => return Err((at, "no `#` in a path")),
            '\\' => return Err((at, "`/` rather than `\\` (requests with `\\` are refused)")),
            '%' => {
                let hi = bytes.get(at + 1).copied();
                let lo = bytes.get(at + 2).copied();
                let (Some(h), Some(l)) = (hi.and_then(hex_value), lo.and_then(hex_value)) else {
                    return Err((at, "two hex digits after `%`"));
                };
                let value = h * 16 + l;
                if matches!(value, 0 | b'/' | b'\\') {
                    return Err((
                        at,
                        "no encoded NUL, `/` or `\\` (requests with them are refused)",
                    ));
                }
                if is_unreserved(value) {
                    return Err((
                        at,
                        "the character itself rather than its percent-encoding \
                         (matching decodes unreserved characters)",
                    ));
                }
                if hi.is_some_and(|b| b.is_ascii_lowercase())
                    || lo.is_some_and(|b| b.is_ascii_lowercase())
                {
                    return Err((at, "upper-case hex digits after `%`"));
                }
            }
            ch if ch.is_whitespace() || ch.is_control() => {
                return Err((at, "no whitespace or control characters in a path"));
            }
            _ => {}
        }
    }
    let mut offset = 1;
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if (*segment == "." || *segment == "..") && (exact || !last) {
            return Err((
                offset,
                "no `.` or `..` segments (matching sees normalised paths)",
            ));
        }
        offset += segment.len() + 1;
    }
    Ok(())
}
