//! Rewriting the upstream's own URLs in response headers: `Location`, `Content-Location`,
//! `Refresh`, and the `Domain` and `Path` of `Set-Cookie`.

use http::HeaderMap;
use http::header::{CONTENT_LOCATION, HeaderName, HeaderValue, LOCATION, REFRESH, SET_COOKIE};

use crate::ops::header_value;
use crate::{Dropped, Template, Variables};

/// How the upstream's URLs in `Location`, `Content-Location` and the URL of `Refresh`
/// (`5; url=...`) are rewritten into public ones: nginx `proxy_redirect`, Apache
/// `ProxyPassReverse`.
///
/// A rule `(from, to)` matches a URL that starts with `from` (the scheme and authority
/// compared without case, the rest exactly) and replaces that prefix with `to` rendered
/// for the request. The first matching rule wins; a URL no rule matches is left alone, as is
/// a header that is not visible ASCII. An empty `from` matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocationRewrite {
    /// Nothing is rewritten (nginx `proxy_redirect off`).
    #[default]
    Off,
    /// nginx `proxy_redirect default`: the URL the route proxies to (the `proxy_pass` URL,
    /// such as `http://10.0.0.1:8080/one/`) is replaced with the public prefix it is served
    /// under (the location, such as `/two/`, or `$scheme://$host/two/`).
    Default {
        /// The upstream URL prefix, as the upstream writes it in its redirects.
        upstream_prefix: String,
        /// What replaces it.
        public_prefix: Template,
    },
    /// Explicit `(from, to)` pairs, tried in order (nginx `proxy_redirect from to;` lines,
    /// Apache `ProxyPassReverse` lines).
    Pairs(Vec<(String, Template)>),
}

impl LocationRewrite {
    /// The rewritten `url`, when a rule matches it.
    pub fn rewrite_url(&self, url: &str, variables: &dyn Variables) -> Option<String> {
        let rewrite = |from: &str, to: &Template| {
            let rest = strip_url_prefix(url, from)?;
            let mut out = String::with_capacity(url.len() + to.source().len());
            to.render_into(variables, &mut out);
            out.push_str(rest);
            Some(out)
        };
        match self {
            Self::Off => None,
            Self::Default {
                upstream_prefix,
                public_prefix,
            } => rewrite(upstream_prefix, public_prefix),
            Self::Pairs(pairs) => pairs.iter().find_map(|(from, to)| rewrite(from, to)),
        }
    }

    /// Rewrites `Location`, `Content-Location` and the URL in `Refresh`. Returns the
    /// headers that were removed because the rewritten value was not a valid header value
    /// (a variable that rendered CR or LF); the upstream's URL is never sent instead.
    pub fn apply(&self, headers: &mut HeaderMap, variables: &dyn Variables) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        if *self == Self::Off {
            return dropped;
        }
        for name in [LOCATION, CONTENT_LOCATION] {
            rewrite_values(headers, &name, &mut dropped, |value| {
                self.rewrite_url(value, variables)
            });
        }
        rewrite_values(headers, &REFRESH, &mut dropped, |value| {
            let start = refresh_url_start(value)?;
            let url = self.rewrite_url(&value[start..], variables)?;
            Some(format!("{}{url}", &value[..start]))
        });
        dropped
    }
}

/// What follows `prefix` in `url`, when `url` starts with it: the scheme and authority of
/// `prefix` compared without ASCII case, the rest exactly.
fn strip_url_prefix<'u>(url: &'u str, prefix: &str) -> Option<&'u str> {
    if prefix.is_empty() || url.len() < prefix.len() {
        return None;
    }
    let authority_end = match prefix.find("://") {
        Some(scheme_end) => {
            let after = scheme_end + 3;
            prefix[after..]
                .find('/')
                .map_or(prefix.len(), |i| after + i)
        }
        None => 0,
    };
    let (url_bytes, prefix_bytes) = (url.as_bytes(), prefix.as_bytes());
    let same = url_bytes[..authority_end].eq_ignore_ascii_case(&prefix_bytes[..authority_end])
        && url_bytes[authority_end..prefix.len()] == prefix_bytes[authority_end..];
    if same { url.get(prefix.len()..) } else { None }
}

/// Where the URL starts in a `Refresh` value (`5; url=https://...`, `0;URL='/x'`): after
/// the first `url=` (any case), and after a quote that opens it.
fn refresh_url_start(value: &str) -> Option<usize> {
    let at = value
        .as_bytes()
        .windows(4)
        .position(|window| window.eq_ignore_ascii_case(b"url="))?;
    let start = at + 4;
    match value.as_bytes().get(start) {
        Some(b'\'' | b'"') => Some(start + 1),
        _ => Some(start),
    }
}

/// Replaces each value of `name` for which `rewrite` returns a new text; a new text that is
/// not a valid header value removes that value and is reported. Allocates nothing when no
/// value changes.
fn rewrite_values(
    headers: &mut HeaderMap,
    name: &HeaderName,
    dropped: &mut Vec<Dropped>,
    mut rewrite: impl FnMut(&str) -> Option<String>,
) {
    let mut replaced: Option<Vec<HeaderValue>> = None;
    for (index, value) in headers.get_all(name).iter().enumerate() {
        let Some(new) = value.to_str().ok().and_then(&mut rewrite) else {
            if let Some(values) = &mut replaced {
                values.push(value.clone());
            }
            continue;
        };
        let values = replaced
            .get_or_insert_with(|| headers.get_all(name).iter().take(index).cloned().collect());
        match header_value(name, &new) {
            Ok(new) => values.push(new),
            Err(report) => dropped.push(report),
        }
    }
    if let Some(values) = replaced {
        headers.remove(name);
        for value in values {
            headers.append(name.clone(), value);
        }
    }
}

/// How `Set-Cookie` `Domain` and `Path` attributes are rewritten: nginx
/// `proxy_cookie_domain` and `proxy_cookie_path`, Apache `ProxyPassReverseCookieDomain` and
/// `ProxyPassReverseCookiePath`.
///
/// - A domain rule `(from, to)` matches a `Domain` attribute equal to `from` without case,
///   ignoring a leading `.` on either; the domain is replaced (a leading `.` stays).
/// - A path rule `(from, to)` matches a `Path` attribute that starts with `from` and
///   replaces that prefix.
///
/// `to` is rendered for the request; when it renders empty the attribute is removed. The
/// first matching rule of each kind wins; the cookie's name, value and other attributes are
/// kept byte for byte.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieRewrite {
    domains: Vec<(String, Template)>,
    paths: Vec<(String, Template)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Attribute {
    Domain,
    Path,
}

impl CookieRewrite {
    /// No rules: nothing is rewritten.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a domain rule.
    pub fn domain(mut self, from: impl Into<String>, to: Template) -> Self {
        self.domains.push((from.into(), to));
        self
    }

    /// Adds a path rule.
    pub fn path(mut self, from: impl Into<String>, to: Template) -> Self {
        self.paths.push((from.into(), to));
        self
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.paths.is_empty()
    }

    /// The rewritten `Set-Cookie` value, when a rule matches one of its attributes.
    pub fn rewrite_cookie(&self, set_cookie: &str, variables: &dyn Variables) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut out = String::new();
        let mut copied = 0;
        let mut changed = false;
        let mut seen = (false, false);
        // The first `;`-separated piece is the cookie itself; attributes follow.
        let mut start = set_cookie.find(';')?;
        while start < set_cookie.len() {
            let end = set_cookie[start + 1..]
                .find(';')
                .map_or(set_cookie.len(), |i| start + 1 + i);
            let piece = &set_cookie[start + 1..end];
            if let Some((attribute, value_start, value_end)) = attribute(piece) {
                let first = match attribute {
                    Attribute::Domain => !std::mem::replace(&mut seen.0, true),
                    Attribute::Path => !std::mem::replace(&mut seen.1, true),
                };
                let value = &piece[value_start..value_end];
                let replacement = if first {
                    self.replace(attribute, value, variables)
                } else {
                    None
                };
                if let Some(replacement) = replacement {
                    changed = true;
                    if replacement.is_empty() {
                        // Drop the whole attribute with its `;`.
                        out.push_str(&set_cookie[copied..start]);
                    } else {
                        out.push_str(&set_cookie[copied..start + 1 + value_start]);
                        out.push_str(&replacement);
                        out.push_str(&piece[value_end..]);
                    }
                    copied = end;
                }
            }
            start = end;
        }
        if !changed {
            return None;
        }
        out.push_str(&set_cookie[copied..]);
        Some(out)
    }

    /// The new attribute value ("" to remove it) when a rule matches `value`.
    fn replace(
        &self,
        attribute: Attribute,
        value: &str,
        variables: &dyn Variables,
    ) -> Option<String> {
        match attribute {
            Attribute::Domain => {
                let (dot, domain) = match value.strip_prefix('.') {
                    Some(domain) => (".", domain),
                    None => ("", value),
                };
                let (_, to) = self.domains.iter().find(|(from, _)| {
                    let from = from.strip_prefix('.').unwrap_or(from);
                    !from.is_empty() && from.eq_ignore_ascii_case(domain)
                })?;
                let rendered = to.render(variables);
                if rendered.is_empty() {
                    return Some(rendered);
                }
                Some(format!("{dot}{rendered}"))
            }
            Attribute::Path => self.paths.iter().find_map(|(from, to)| {
                let rest = value
                    .strip_prefix(from.as_str())
                    .filter(|_| !from.is_empty())?;
                let mut out = to.render(variables);
                if out.is_empty() {
                    return Some(out);
                }
                out.push_str(rest);
                Some(out)
            }),
        }
    }

    /// Rewrites every `Set-Cookie` header. Returns the cookies that were removed because
    /// the rewritten value was not a valid header value.
    pub fn apply(&self, headers: &mut HeaderMap, variables: &dyn Variables) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        if !self.is_empty() {
            rewrite_values(headers, &SET_COOKIE, &mut dropped, |value| {
                self.rewrite_cookie(value, variables)
            });
        }
        dropped
    }
}

/// The kind of a `Set-Cookie` attribute piece (the text between two `;`) and the byte range
/// of its value within the piece, for `Domain` and `Path`.
fn attribute(piece: &str) -> Option<(Attribute, usize, usize)> {
    let (name, _) = piece.split_once('=')?;
    let attribute = match name.trim_matches([' ', '\t']) {
        n if n.eq_ignore_ascii_case("domain") => Attribute::Domain,
        n if n.eq_ignore_ascii_case("path") => Attribute::Path,
        _ => return None,
    };
    let after = name.len() + 1;
    let value = &piece[after..];
    let leading = value.len() - value.trim_start_matches([' ', '\t']).len();
    let trimmed = value.trim_matches([' ', '\t']);
    let start = after + leading;
    Some((attribute, start, start + trimmed.len()))
}
