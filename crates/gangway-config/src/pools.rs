//! Upstream pools in the configuration: balancing, sticky sessions, retries, health checks,
//! the per-peer keys (`route`, `max_fails`, `fail_timeout`, `backup`, `down`) and a route's
//! direct `peer`.

use std::collections::HashMap;
use std::time::Duration;

use gangway_upstream::Method;
use http::HeaderValue;
use http::uri::PathAndQuery;
use serde_spanned::Spanned;

use crate::headers::Level;
use crate::model::{HealthCheck, PoolSettings, Retry, StickySessions, defaults};
use crate::raw::{
    IntOrString, RawHealthCheck, RawPeer, RawPeerTable, RawRetry, RawStatusRange, RawUpstream,
    STATUS_RANGE_EXPECTED,
};
use crate::validate::Checker;
use crate::values::quote;

const BALANCE_EXPECTED: &str = "one of \"round_robin\", \"ip_hash\", \"hash\", \"hash_consistent\", \
     \"least_conn\" or \"bybusyness\"";

/// The per-peer pool keys of one peer entry.
pub(crate) struct PeerSettings {
    pub(crate) route: Option<String>,
    pub(crate) max_fails: u32,
    pub(crate) fail_timeout: Duration,
    pub(crate) backup: bool,
    pub(crate) down: bool,
}

impl Default for PeerSettings {
    fn default() -> Self {
        Self {
            route: None,
            max_fails: defaults::MAX_FAILS,
            fail_timeout: defaults::FAIL_TIMEOUT,
            backup: false,
            down: false,
        }
    }
}

impl Checker<'_> {
    /// A count that must fit `u32` and be at least `min`.
    fn count(&mut self, key: &str, value: &Spanned<i64>, min: u32, expected: &str) -> Option<u32> {
        match u32::try_from(*value.get_ref()) {
            Ok(count) if count >= min => Some(count),
            _ => {
                self.invalid(
                    &value.span(),
                    key,
                    value.get_ref().to_string(),
                    "is out of range".to_owned(),
                    expected,
                );
                None
            }
        }
    }

    /// `route`, `max_fails`, `fail_timeout`, `backup` and `down` of one peer table.
    pub(crate) fn peer_settings(
        &mut self,
        key: &str,
        table: &RawPeerTable,
    ) -> Option<PeerSettings> {
        let mut settings = PeerSettings::default();
        let mut ok = true;
        if let Some(route) = &table.route {
            if route.get_ref().is_empty() || route.get_ref().contains(char::is_whitespace) {
                self.invalid(
                    &route.span(),
                    &format!("{key}.route"),
                    quote(route.get_ref()),
                    "is empty or has white space".to_owned(),
                    "a route name such as \"nodeID1\"",
                );
                ok = false;
            } else {
                settings.route = Some(route.get_ref().clone());
            }
        }
        if let Some(max_fails) = &table.max_fails {
            let expected = "a number of failures, 0 (never out) or more";
            match self.count(&format!("{key}.max_fails"), max_fails, 0, expected) {
                Some(count) => settings.max_fails = count,
                None => ok = false,
            }
        }
        settings.fail_timeout = self.duration(
            &format!("{key}.fail_timeout"),
            table.fail_timeout.as_ref(),
            defaults::FAIL_TIMEOUT,
        );
        settings.backup = table.backup.as_ref().is_some_and(|v| *v.get_ref());
        settings.down = table.down.as_ref().is_some_and(|v| *v.get_ref());
        ok.then_some(settings)
    }

    /// Checks across the peers of one upstream: route names are unique and at least one
    /// peer is not a backup. Returns the route names.
    pub(crate) fn check_peer_list(
        &mut self,
        key: &str,
        list: &Spanned<Vec<Spanned<RawPeer>>>,
    ) -> Vec<String> {
        let mut routes: HashMap<&str, usize> = HashMap::new();
        let mut names = Vec::new();
        let mut all_backup = true;
        for (index, peer) in list.get_ref().iter().enumerate() {
            let RawPeer::Table(table) = peer.get_ref() else {
                all_backup = false;
                continue;
            };
            if !table.backup.as_ref().is_some_and(|v| *v.get_ref()) {
                all_backup = false;
            }
            let Some(route) = &table.route else { continue };
            if route.get_ref().is_empty() {
                continue;
            }
            if let Some(first) = routes.get(route.get_ref().as_str()) {
                self.invalid(
                    &route.span(),
                    &format!("{key}.peers[{}].route", index + 1),
                    quote(route.get_ref()),
                    format!("is already the route of peers[{first}]"),
                    "a route name used by one peer only",
                );
            } else {
                routes.insert(route.get_ref(), index + 1);
                names.push(route.get_ref().clone());
            }
        }
        if all_backup && !list.get_ref().is_empty() {
            self.invalid(
                &list.span(),
                &format!("{key}.peers"),
                "[...]".to_owned(),
                "has only backup peers".to_owned(),
                "at least one peer without backup = true",
            );
        }
        names
    }

    /// `balance`, `hash_key`, `sticky*`, `retry` and `health_check` of one upstream.
    pub(crate) fn pool_settings(
        &mut self,
        key: &str,
        upstream: &Spanned<RawUpstream>,
        routes: &[String],
    ) -> Option<PoolSettings> {
        let raw = upstream.get_ref();
        let mut ok = true;
        let balance = match &raw.balance {
            None => Method::default(),
            Some(name) => match Method::from_name(name.get_ref()) {
                Some(method) => method,
                None => {
                    self.invalid(
                        &name.span(),
                        &format!("{key}.balance"),
                        quote(name.get_ref()),
                        "is not a balancing method".to_owned(),
                        BALANCE_EXPECTED,
                    );
                    ok = false;
                    Method::default()
                }
            },
        };
        let hash_key = match (&raw.hash_key, balance.needs_hash_key()) {
            (None, false) => None,
            (None, true) => {
                self.missing(
                    &upstream.span(),
                    format!("{key}.hash_key"),
                    "the key to hash, such as \"$request_uri\" or \"$remote_addr\"",
                );
                ok = false;
                None
            }
            (Some(value), true) => {
                let template =
                    self.header_template(&format!("{key}.hash_key"), value, &Level::Shared);
                ok &= template.is_some();
                template
            }
            (Some(value), false) => {
                self.invalid(
                    &value.span(),
                    &format!("{key}.hash_key"),
                    quote(value.get_ref()),
                    format!("is set for balance = \"{balance}\", which hashes no key"),
                    "balance = \"hash\" or \"hash_consistent\", or no hash_key",
                );
                ok = false;
                None
            }
        };
        let sticky = self.sticky(key, raw, routes, &mut ok);
        let retry = self.retry(key, raw.retry.as_ref(), &mut ok);
        let health_check = match &raw.health_check {
            None => None,
            Some(check) => {
                let built = self.health_check(&format!("{key}.health_check"), check);
                ok &= built.is_some();
                built
            }
        };
        ok.then_some(PoolSettings {
            balance,
            hash_key,
            sticky,
            retry,
            health_check,
        })
    }

    fn sticky(
        &mut self,
        key: &str,
        raw: &RawUpstream,
        routes: &[String],
        ok: &mut bool,
    ) -> Option<StickySessions> {
        let Some(names) = &raw.sticky else {
            for (field, value) in [
                ("sticky_scolon_path_delim", &raw.sticky_scolon_path_delim),
                ("sticky_failover", &raw.sticky_failover),
            ] {
                if let Some(value) = value {
                    self.invalid(
                        &value.span(),
                        &format!("{key}.{field}"),
                        value.get_ref().to_string(),
                        "is set without sticky".to_owned(),
                        "sticky = [\"NAME\", ...] on the upstream, or the key removed",
                    );
                    *ok = false;
                }
            }
            return None;
        };
        let expected =
            "a list of cookie / URL parameter names such as [\"JSESSIONID\", \"jsessionid\"]";
        if names.get_ref().is_empty() {
            self.invalid(
                &names.span(),
                &format!("{key}.sticky"),
                "[]".to_owned(),
                "is empty".to_owned(),
                expected,
            );
            *ok = false;
            return None;
        }
        for (index, name) in names.get_ref().iter().enumerate() {
            let valid = !name.get_ref().is_empty()
                && name
                    .get_ref()
                    .bytes()
                    .all(|byte| byte.is_ascii_graphic() && !b"=;,&?/".contains(&byte));
            if !valid {
                self.invalid(
                    &name.span(),
                    &format!("{key}.sticky[{}]", index + 1),
                    quote(name.get_ref()),
                    "is not a cookie or URL parameter name".to_owned(),
                    "a name of visible ASCII characters without = ; , & ? /",
                );
                *ok = false;
            }
        }
        if routes.is_empty() {
            self.invalid(
                &names.span(),
                &format!("{key}.sticky"),
                format!(
                    "{:?}",
                    names
                        .get_ref()
                        .iter()
                        .map(|n| n.get_ref())
                        .collect::<Vec<_>>()
                ),
                "is set, but no peer of this upstream has a route name".to_owned(),
                "{ url = \"...\", route = \"nodeID1\" } on the peers that sessions stick to",
            );
            *ok = false;
        }
        Some(StickySessions {
            names: names
                .get_ref()
                .iter()
                .map(|n| n.get_ref().clone())
                .collect(),
            scolon_path_delim: raw
                .sticky_scolon_path_delim
                .as_ref()
                .is_some_and(|v| *v.get_ref()),
            failover: raw.sticky_failover.as_ref().is_none_or(|v| *v.get_ref()),
        })
    }

    fn retry(&mut self, key: &str, raw: Option<&Spanned<RawRetry>>, ok: &mut bool) -> Retry {
        let mut retry = Retry::default();
        let Some(raw) = raw else { return retry };
        let raw = raw.get_ref();
        if let Some(tries) = &raw.tries {
            let expected = "a number of peers to try, counting the first; 0 tries each peer once";
            match self.count(&format!("{key}.retry.tries"), tries, 0, expected) {
                Some(tries) => retry.tries = tries,
                None => *ok = false,
            }
        }
        if let Some(timeout) = &raw.timeout {
            retry.timeout = Some(self.duration(
                &format!("{key}.retry.timeout"),
                Some(timeout),
                Duration::ZERO,
            ));
        }
        retry.idempotent = raw.idempotent.as_ref().is_some_and(|v| *v.get_ref());
        retry
    }

    fn health_check(&mut self, key: &str, check: &Spanned<RawHealthCheck>) -> Option<HealthCheck> {
        let raw = check.get_ref();
        let mut ok = true;
        let path = match &raw.path {
            None => {
                self.missing(
                    &check.span(),
                    format!("{key}.path"),
                    "the path to ask each peer for, such as \"/health\"",
                );
                None
            }
            Some(path) => {
                let valid = path.get_ref().starts_with('/')
                    && path.get_ref().parse::<PathAndQuery>().is_ok();
                if !valid {
                    self.invalid(
                        &path.span(),
                        &format!("{key}.path"),
                        quote(path.get_ref()),
                        "is not a path and query".to_owned(),
                        "a path starting with \"/\", such as \"/health\"",
                    );
                }
                valid.then(|| path.get_ref().clone())
            }
        };
        let host = match &raw.host {
            None => None,
            Some(host) => {
                let valid =
                    !host.get_ref().is_empty() && HeaderValue::from_str(host.get_ref()).is_ok();
                if !valid {
                    self.invalid(
                        &host.span(),
                        &format!("{key}.host"),
                        quote(host.get_ref()),
                        "is not a Host header value".to_owned(),
                        "a host name, optionally with a port, such as \"app.internal\"",
                    );
                    ok = false;
                }
                Some(host.get_ref().clone())
            }
        };
        let interval = self.duration(
            &format!("{key}.interval"),
            raw.interval.as_ref(),
            defaults::HEALTH_INTERVAL,
        );
        let timeout = self.duration(
            &format!("{key}.timeout"),
            raw.timeout.as_ref(),
            defaults::HEALTH_TIMEOUT,
        );
        let expect_status = match &raw.expect_status {
            None => Some(defaults::HEALTH_EXPECT_MIN..=defaults::HEALTH_EXPECT_MAX),
            Some(value) => self.status_range(&format!("{key}.expect_status"), value),
        };
        let mut counter = |name: &str, value: &Option<Spanned<i64>>, default: u32| match value {
            None => Some(default),
            Some(value) => self.count(
                &format!("{key}.{name}"),
                value,
                1,
                "a number of consecutive checks, 1 or more",
            ),
        };
        let rise = counter("rise", &raw.rise, defaults::HEALTH_RISE);
        let fall = counter("fall", &raw.fall, defaults::HEALTH_FALL);
        if !ok {
            return None;
        }
        Some(HealthCheck {
            path: path?,
            host,
            interval,
            timeout,
            expect_status: expect_status?,
            rise: rise?,
            fall: fall?,
        })
    }

    fn status_range(
        &mut self,
        key: &str,
        value: &Spanned<RawStatusRange>,
    ) -> Option<std::ops::RangeInclusive<u16>> {
        let status = |text: &str| {
            text.trim()
                .parse::<u16>()
                .ok()
                .filter(|s| (100..=599).contains(s))
        };
        let (shown, range) = match &value.get_ref().0 {
            IntOrString::Int(code) => (
                code.to_string(),
                u16::try_from(*code)
                    .ok()
                    .filter(|s| (100..=599).contains(s))
                    .map(|s| s..=s),
            ),
            IntOrString::String(text) => {
                let range = match text.split_once('-') {
                    Some((low, high)) => status(low)
                        .zip(status(high))
                        .filter(|(low, high)| low <= high)
                        .map(|(low, high)| low..=high),
                    None => status(text).map(|s| s..=s),
                };
                (quote(text), range)
            }
        };
        if range.is_none() {
            self.invalid(
                &value.span(),
                key,
                shown,
                "is not a status or a range of statuses".to_owned(),
                STATUS_RANGE_EXPECTED,
            );
        }
        range
    }

    /// A route's `peer`: a template of the route's captures, or a fixed route name that
    /// the upstream's peers must have.
    pub(crate) fn route_peer(
        &mut self,
        key: &str,
        value: &Spanned<String>,
        expr: Option<&gangway_route::RouteExpr>,
        upstream_routes: Option<&[String]>,
    ) -> Option<gangway_route::Template> {
        let parsed = gangway_route::Template::parse(value.get_ref());
        let template = self.route_capture_template(key, value, parsed, expr)?;
        if template.is_literal() {
            if let Some(routes) = upstream_routes {
                if !routes.iter().any(|route| route == value.get_ref()) {
                    let known: Vec<String> = routes.iter().map(|route| quote(route)).collect();
                    let expected = if known.is_empty() {
                        "the route name of a peer of the upstream, and none has one".to_owned()
                    } else {
                        format!("one of {}", known.join(", "))
                    };
                    self.invalid(
                        &value.span(),
                        key,
                        quote(value.get_ref()),
                        "is not the route name of a peer of this upstream".to_owned(),
                        &expected,
                    );
                    return None;
                }
            }
        }
        Some(template)
    }
}

impl Checker<'_> {
    /// A `gangway-route` template whose captures the route must produce.
    fn route_capture_template(
        &mut self,
        key: &str,
        value: &Spanned<String>,
        parsed: Result<gangway_route::Template, gangway_route::Error>,
        expr: Option<&gangway_route::RouteExpr>,
    ) -> Option<gangway_route::Template> {
        let template = self.route_syntax(key, value, parsed)?;
        let Some(expr) = expr else {
            return Some(template);
        };
        match expr.check_template(&template) {
            Ok(()) => Some(template),
            Err(source) => {
                let at = match &source {
                    gangway_route::Error::UnknownCapture { column, .. } => {
                        self.column_location(&value.span(), value.get_ref(), 0, *column)
                    }
                    _ => self.at(&value.span()),
                };
                self.errors.push(crate::error::Error::Route {
                    at,
                    key: key.to_owned(),
                    source,
                });
                None
            }
        }
    }
}
