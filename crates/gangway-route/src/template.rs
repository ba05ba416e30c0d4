//! Rewrite templates: text with references to a route's captures, for the upstream path and
//! for header values.

use std::fmt;

use regex::Regex;

use crate::error::{Error, Input};
use crate::expr::{Cursor, HostMatch, RouteExpr, compile_host_regex, compile_path_regex};
use crate::table::Captures;

/// A rewrite template such as `/websocket$2`, `/api/${version}/{R:2}` or `device=${device}`.
///
/// | written | means |
/// |---|---|
/// | `$1` … `$9` | numbered group of the path regex (of the host regex if the path is not a regex); one digit, as in nginx: `$10` is `$1` then `0` |
/// | `${12}` | numbered group, any number of digits |
/// | `$name`, `${name}` | named group, path regex first, then host regex |
/// | `{R:1}` | numbered group of the path regex (IIS rule back-reference); `{R:0}` is the whole match |
/// | `{C:1}` | numbered group of the host regex (IIS condition back-reference) |
/// | `$$` | a literal `$` |
///
/// Group `0` is the whole match. A group that did not take part in the match renders as
/// nothing, as in nginx. Any other `{` is literal text. Check a template against its route
/// with [`RouteExpr::check_template`] (the table builder does it in
/// [`crate::RouteTableBuilder::add_with_templates`]): a reference the route cannot produce
/// is an error at build time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Literal(String),
    Capture {
        reference: Reference,
        /// Byte range of the reference in the source, for errors.
        at: usize,
        len: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Reference {
    /// `$1`, `${1}`: path regex, else host regex.
    Numbered(usize),
    /// `$name`, `${name}`: path regex, else host regex.
    Named(String),
    /// `{R:1}`: path regex.
    Path(usize),
    /// `{C:1}`: host regex.
    Host(usize),
}

const AFTER_DOLLAR: &str = "`$$`, `$1`, `${name}` or `$name` after `$`";

impl Template {
    /// Parses a template.
    pub fn parse(input: &str) -> Result<Template, Error> {
        let c = Cursor::new(input, Input::Template);
        let bytes = input.as_bytes();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let Some(next) = input[i..].find(['$', '{']).map(|n| i + n) else {
                literal.push_str(&input[i..]);
                break;
            };
            literal.push_str(&input[i..next]);
            i = next;
            let (reference, len) = if bytes[i] == b'$' {
                match bytes.get(i + 1) {
                    Some(b'$') => {
                        literal.push('$');
                        i += 2;
                        continue;
                    }
                    Some(d) if d.is_ascii_digit() => {
                        (Reference::Numbered(usize::from(d - b'0')), 2)
                    }
                    Some(b'{') => {
                        let Some(close) = input[i + 2..].find('}') else {
                            return Err(c.error_char(input.len(), "`}` closing `${`"));
                        };
                        let inner = &input[i + 2..i + 2 + close];
                        let reference = braced(inner)
                            .map_err(|(at, expected)| c.error_char(i + 2 + at, expected))?;
                        (reference, close + 3)
                    }
                    Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {
                        let name_len = input[i + 1..]
                            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                            .unwrap_or(input.len() - i - 1);
                        (
                            Reference::Named(input[i + 1..i + 1 + name_len].to_owned()),
                            name_len + 1,
                        )
                    }
                    _ => return Err(c.error_char(i + 1, AFTER_DOLLAR)),
                }
            } else {
                let rest = &input[i..];
                let is_path = rest.starts_with("{R:");
                if !(is_path || rest.starts_with("{C:")) {
                    literal.push('{');
                    i += 1;
                    continue;
                }
                let digits = rest[3..]
                    .find(|ch: char| !ch.is_ascii_digit())
                    .unwrap_or(rest.len() - 3);
                if digits == 0 {
                    return Err(c.error_char(i + 3, "a group number after `{R:` or `{C:`"));
                }
                if rest.as_bytes().get(3 + digits) != Some(&b'}') {
                    return Err(c.error_char(i + 3 + digits, "`}` after the group number"));
                }
                let number = number(&rest[3..3 + digits])
                    .ok_or_else(|| c.error_char(i + 3, "a group number that fits in memory"))?;
                let reference = if is_path {
                    Reference::Path(number)
                } else {
                    Reference::Host(number)
                };
                (reference, digits + 4)
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Capture {
                reference,
                at: i,
                len,
            });
            i += len;
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: input.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template refers to no capture at all (it renders to fixed text).
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Renders the template with a match's captures.
    pub fn render(&self, captures: &Captures<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        self.render_into(captures, &mut out);
        out
    }

    /// Appends the rendered template to `out`.
    pub fn render_into(&self, captures: &Captures<'_>, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Capture { reference, .. } => {
                    let value = match reference {
                        Reference::Numbered(n) => captures.get(*n),
                        Reference::Named(name) => captures.name(name),
                        Reference::Path(n) => captures.path(*n),
                        Reference::Host(n) => captures.host(*n),
                    };
                    out.push_str(value.unwrap_or(""));
                }
            }
        }
    }

    /// Checks every reference against what a route can capture.
    pub(crate) fn check(&self, groups: &RouteGroups, route: &RouteExpr) -> Result<(), Error> {
        for part in &self.parts {
            let Part::Capture { reference, at, len } = part else {
                continue;
            };
            let ok = match reference {
                Reference::Numbered(n) => match (&groups.path, &groups.host) {
                    (Some(path), _) => *n < path.captures_len(),
                    (None, Some(host)) => *n < host.captures_len(),
                    (None, None) => false,
                },
                Reference::Named(name) => [&groups.path, &groups.host]
                    .into_iter()
                    .flatten()
                    .any(|re| re.capture_names().flatten().any(|n| n == name)),
                Reference::Path(n) => groups
                    .path
                    .as_ref()
                    .is_some_and(|re| *n < re.captures_len()),
                Reference::Host(n) => groups
                    .host
                    .as_ref()
                    .is_some_and(|re| *n < re.captures_len()),
            };
            if !ok {
                return Err(Error::UnknownCapture {
                    template: self.source.clone(),
                    column: self.source[..*at].chars().count() + 1,
                    capture: self.source[*at..*at + *len].to_owned(),
                    route: route.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Template {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

fn braced(inner: &str) -> Result<Reference, (usize, &'static str)> {
    if inner.is_empty() {
        return Err((0, "a group number or name inside `${}`"));
    }
    if inner.bytes().all(|b| b.is_ascii_digit()) {
        return number(inner)
            .map(Reference::Numbered)
            .ok_or((0, "a group number that fits in memory"));
    }
    let first = inner.as_bytes()[0];
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return Err((0, "a group name starting with a letter or `_`"));
    }
    if let Some(at) = inner.find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_')) {
        return Err((at, "a letter, digit or `_` in a group name, then `}`"));
    }
    Ok(Reference::Named(inner.to_owned()))
}

fn number(digits: &str) -> Option<usize> {
    digits.parse().ok()
}

/// The compiled regular expressions of one route, for checking templates.
#[derive(Debug)]
pub(crate) struct RouteGroups {
    pub(crate) path: Option<Regex>,
    pub(crate) host: Option<Regex>,
}

impl RouteGroups {
    /// Compiles the route's regexes; the expression must already be valid.
    pub(crate) fn of(route: &RouteExpr) -> Result<RouteGroups, Error> {
        let path = match route.path().regex_source() {
            Some(source) => Some(compile_path_regex(&source).map_err(|source| Error::Regex {
                what: Input::Path,
                input: route.path().to_string(),
                column: 1,
                source,
            })?),
            None => None,
        };
        let host = match route.host() {
            HostMatch::Regex(p) => Some(compile_host_regex(p).map_err(|source| Error::Regex {
                what: Input::Host,
                input: p.clone(),
                column: 1,
                source,
            })?),
            _ => None,
        };
        Ok(RouteGroups { path, host })
    }
}

impl RouteExpr {
    /// Checks that every capture `template` refers to can be produced by this route.
    ///
    /// ```
    /// use gangway_route::{RouteExpr, Template};
    /// let route = RouteExpr::parse(r"~ ^/websocket/(?<node>[^/]+)(/.*)?$")?;
    /// route.check_template(&Template::parse("/websocket$2")?)?;
    /// route.check_template(&Template::parse("${node}")?)?;
    /// assert!(route.check_template(&Template::parse("$3")?).is_err());
    /// # Ok::<(), gangway_route::Error>(())
    /// ```
    pub fn check_template(&self, template: &Template) -> Result<(), Error> {
        let canonical = self.canonical()?;
        let groups = RouteGroups::of(&canonical)?;
        template.check(&groups, &canonical)
    }
}
