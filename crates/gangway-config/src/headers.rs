//! Header rules in the configuration: request and response operations at listener, route
//! and upstream level, the forwarding policy, and Location and cookie rewriting.

use std::collections::BTreeMap;
use std::ops::Range;

use gangway_headers::{HeaderOp, HeaderOps, Network, Template, Variable};
use gangway_route::RouteExpr;
use http::HeaderName;
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::error::Error;
use crate::model::{Forwarding, HeaderRules, LocationRewriting};
use crate::validate::Checker;
use crate::values::quote;

/// `request_headers = { set = { NAME = "TEMPLATE" }, add = { ... }, remove = ["NAME"] }`;
/// response rules also take `always = ["NAME"]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderOps {
    #[serde(default)]
    set: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    add: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    remove: Vec<Spanned<String>>,
    #[serde(default)]
    always: Vec<Spanned<String>>,
}

/// `location_rewrite = "off" | "default" | [["FROM", "TO"], ...]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawLocationRewrite {
    Mode(String),
    Pairs(Vec<(String, String)>),
}

const HEADER_NAME_EXPECTED: &str = "a header name of letters, digits and `-`";
const NETWORK_EXPECTED: &str = "a network in CIDR form, such as \"10.0.0.0/8\" or \"fd00::/8\"";
const FORWARDED_EXPECTED: &str =
    "some of \"x-forwarded-host\", \"x-forwarded-port\" and \"forwarded\"";

/// The named groups of a route's path and host regular expressions.
fn capture_names(expr: &RouteExpr) -> Vec<String> {
    let mut patterns = Vec::new();
    match expr.path() {
        gangway_route::PathMatch::Regex(pattern)
        | gangway_route::PathMatch::RegexNoCase(pattern) => {
            patterns.push(pattern.as_str());
        }
        _ => {}
    }
    if let gangway_route::HostMatch::Regex(pattern) = expr.host() {
        patterns.push(pattern.as_str());
    }
    patterns
        .into_iter()
        .filter_map(|pattern| regex::Regex::new(pattern).ok())
        .flat_map(|regex| {
            regex
                .capture_names()
                .flatten()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Where header templates are written, which decides whether route captures are allowed.
pub(crate) enum Level<'a> {
    /// Listener or upstream: no route, so no captures.
    Shared,
    /// A route, whose expression decides which captures exist.
    Route(Option<&'a RouteExpr>),
}

impl Checker<'_> {
    /// Request and response rules of one level.
    pub(crate) fn header_rules(
        &mut self,
        key: &str,
        request: Option<&Spanned<RawHeaderOps>>,
        response: Option<&Spanned<RawHeaderOps>>,
        level: &Level<'_>,
    ) -> Option<HeaderRules> {
        let request = self.header_ops(&format!("{key}.request_headers"), request, level, false);
        let response = self.header_ops(&format!("{key}.response_headers"), response, level, true);
        Some(HeaderRules {
            request: request?,
            response: response?,
        })
    }

    fn header_ops(
        &mut self,
        key: &str,
        raw: Option<&Spanned<RawHeaderOps>>,
        level: &Level<'_>,
        response: bool,
    ) -> Option<HeaderOps> {
        let Some(raw) = raw else {
            return Some(HeaderOps::new());
        };
        let span = raw.span();
        let raw = raw.get_ref();
        let mut ok = true;
        let always: Vec<HeaderName> = raw
            .always
            .iter()
            .filter_map(|name| {
                self.header_name(&format!("{key}.always"), name.get_ref(), &name.span())
            })
            .collect();
        if !response && !raw.always.is_empty() {
            let at = self.at(&span);
            self.errors.push(Error::InvalidValue {
                at,
                key: format!("{key}.always"),
                value: "[...]".to_owned(),
                problem: "is only for response headers".to_owned(),
                expected: "`always` under response_headers".to_owned(),
            });
            ok = false;
        }
        let mut ops = HeaderOps::new();
        let mut push = |checker: &mut Self, op: HeaderOp, at: &Range<usize>, op_key: String| {
            let is_always = always.contains(op.name());
            let result = if is_always {
                ops.push_always(op)
            } else {
                ops.push(op)
            };
            if let Err(source) = result {
                let location = checker.at(at);
                checker.errors.push(Error::Header {
                    at: location,
                    key: op_key,
                    source,
                });
                return false;
            }
            true
        };
        for (kind, table) in [("set", &raw.set), ("add", &raw.add)] {
            for (name, value) in table {
                let op_key = format!("{key}.{kind}.{name}");
                let Some(header) = self.header_name(&op_key, name, &value.span()) else {
                    ok = false;
                    continue;
                };
                let Some(template) = self.header_template(&op_key, value, level) else {
                    ok = false;
                    continue;
                };
                let op = if kind == "set" {
                    HeaderOp::Set(header, template)
                } else {
                    HeaderOp::Add(header, template)
                };
                ok &= push(self, op, &value.span(), op_key);
            }
        }
        for name in &raw.remove {
            let op_key = format!("{key}.remove");
            match self.header_name(&op_key, name.get_ref(), &name.span()) {
                Some(header) => ok &= push(self, HeaderOp::Remove(header), &name.span(), op_key),
                None => ok = false,
            }
        }
        ok.then_some(ops)
    }

    fn header_name(&mut self, key: &str, name: &str, span: &Range<usize>) -> Option<HeaderName> {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(header) => Some(header),
            Err(_) => {
                self.invalid(
                    span,
                    key,
                    quote(name),
                    "is not a valid header name".to_owned(),
                    HEADER_NAME_EXPECTED,
                );
                None
            }
        }
    }

    /// A header value template; on a route, the captures it names must exist.
    pub(crate) fn header_template(
        &mut self,
        key: &str,
        value: &Spanned<String>,
        level: &Level<'_>,
    ) -> Option<Template> {
        let names = match level {
            Level::Route(Some(expr)) => capture_names(expr),
            _ => Vec::new(),
        };
        let template = match Template::parse_with_captures(value.get_ref(), &names) {
            Ok(template) => template,
            Err(source) => {
                let at = match source.column() {
                    Some(column) => self.column_location(&value.span(), value.get_ref(), 0, column),
                    None => self.at(&value.span()),
                };
                self.errors.push(Error::Template {
                    at,
                    key: key.to_owned(),
                    target: value.get_ref().clone(),
                    source,
                });
                return None;
            }
        };
        let captures: Vec<String> = template
            .captures()
            .map(|capture| match capture {
                Variable::Capture(index) => format!("${{{index}}}"),
                Variable::NamedCapture(name) => format!("${{{name}}}"),
                other => other.to_string(),
            })
            .collect();
        if captures.is_empty() {
            return Some(template);
        }
        let problem = match level {
            Level::Shared => Some("uses a route capture outside a route".to_owned()),
            Level::Route(None) => None,
            Level::Route(Some(expr)) => gangway_route::Template::parse(&captures.concat())
                .and_then(|as_route| expr.check_template(&as_route))
                .err()
                .map(|error| error.to_string()),
        };
        match problem {
            None => Some(template),
            Some(problem) => {
                self.invalid(
                    &value.span(),
                    key,
                    quote(value.get_ref()),
                    problem,
                    "captures ($1, ${name}) only of the route's own regular expressions",
                );
                None
            }
        }
    }

    /// The listener's forwarding headers.
    pub(crate) fn forwarding(
        &mut self,
        key: &str,
        trusted: Option<&Spanned<Vec<Spanned<String>>>>,
        extra: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Option<Forwarding> {
        let mut forwarding = Forwarding::default();
        let mut ok = true;
        for network in trusted
            .map(|list| list.get_ref().as_slice())
            .unwrap_or_default()
        {
            match network.get_ref().parse::<Network>() {
                Ok(parsed) => forwarding.trusted_proxies.push(parsed),
                Err(error) => {
                    self.invalid(
                        &network.span(),
                        &format!("{key}.trusted_proxies"),
                        quote(network.get_ref()),
                        error.to_string(),
                        NETWORK_EXPECTED,
                    );
                    ok = false;
                }
            }
        }
        for header in extra
            .map(|list| list.get_ref().as_slice())
            .unwrap_or_default()
        {
            match header.get_ref().to_ascii_lowercase().as_str() {
                "x-forwarded-host" => forwarding.x_forwarded_host = true,
                "x-forwarded-port" => forwarding.x_forwarded_port = true,
                "forwarded" => forwarding.forwarded = true,
                _ => {
                    self.invalid(
                        &header.span(),
                        &format!("{key}.forwarded_headers"),
                        quote(header.get_ref()),
                        "is not an optional forwarding header".to_owned(),
                        FORWARDED_EXPECTED,
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(forwarding)
    }

    /// A route's Location rewriting.
    pub(crate) fn location_rewrite(
        &mut self,
        key: &str,
        raw: Option<&Spanned<RawLocationRewrite>>,
    ) -> Option<LocationRewriting> {
        let Some(raw) = raw else {
            return Some(LocationRewriting::Off);
        };
        let key = format!("{key}.location_rewrite");
        match raw.get_ref() {
            RawLocationRewrite::Mode(mode) if mode == "off" => Some(LocationRewriting::Off),
            RawLocationRewrite::Mode(mode) if mode == "default" => Some(LocationRewriting::Default),
            RawLocationRewrite::Mode(mode) => {
                self.invalid(
                    &raw.span(),
                    &key,
                    quote(mode),
                    "is not a rewrite mode".to_owned(),
                    "\"off\", \"default\" or a list of [\"FROM\", \"TO\"] pairs",
                );
                None
            }
            RawLocationRewrite::Pairs(pairs) => {
                let mut rules = Vec::with_capacity(pairs.len());
                for (from, to) in pairs {
                    let value = Spanned::new(raw.span(), to.clone());
                    rules.push((
                        from.clone(),
                        self.header_template(&key, &value, &Level::Shared)?,
                    ));
                }
                Some(LocationRewriting::Pairs(rules))
            }
        }
    }

    /// `cookie_domain` or `cookie_path` pairs of a route.
    pub(crate) fn cookie_pairs(
        &mut self,
        key: &str,
        pairs: Option<&Spanned<Vec<(String, String)>>>,
    ) -> Option<Vec<(String, Template)>> {
        let Some(pairs) = pairs else {
            return Some(Vec::new());
        };
        let mut out = Vec::with_capacity(pairs.get_ref().len());
        for (from, to) in pairs.get_ref() {
            let value = Spanned::new(pairs.span(), to.clone());
            out.push((
                from.clone(),
                self.header_template(key, &value, &Level::Shared)?,
            ));
        }
        Some(out)
    }
}
