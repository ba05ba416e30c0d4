//! The route table: a builder that checks routes as they are added, and an immutable table
//! compiled for lookup.

use std::collections::HashMap;

use regex::{CaptureLocations, Regex, RegexSet, RegexSetBuilder};

use crate::error::{Error, Input, NormalizeError, RegexError};
use crate::expr::{HostMatch, PathMatch, RouteExpr, compile_host_regex};
use crate::normalize::{NormalizeOptions, Normalized, normalize_path, split_target};
use crate::prefix::PrefixTable;
use crate::template::{RouteGroups, Template};

/// How a table chooses among several matching routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MatchMode {
    /// nginx: the host chooses a server (exact name, then the longest `*.` wildcard, then
    /// the first matching host regex, then the routes with [`HostMatch::Any`]); within it,
    /// an exact path wins; then the longest matching prefix if it is `^~`; then the first
    /// matching regular expression in declaration order; then the longest matching prefix.
    #[default]
    Nginx,
    /// Apache `ProxyPass` / IIS rule lists: the first route in declaration order whose host,
    /// method and path all match.
    FirstMatch,
}

/// Collects routes, checks each as it is added, and compiles them into a [`RouteTable`].
#[derive(Debug)]
pub struct RouteTableBuilder<T> {
    mode: MatchMode,
    routes: Vec<Route<T>>,
    seen: HashMap<RouteKey, usize>,
}

/// What makes two routes the same route: `^~ /x` and `/x` are the same prefix (nginx calls
/// that a duplicate location too).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RouteKey {
    host: HostMatch,
    methods: Vec<String>,
    kind: u8,
    pattern: String,
}

#[derive(Debug)]
struct Route<T> {
    expr: RouteExpr,
    value: T,
    /// The path regex, compiled alone, used only to extract captures.
    path_regex: Option<Regex>,
    /// The host regex: chooses the route in first-match mode and gives host captures.
    host_regex: Option<Regex>,
}

impl<T> RouteTableBuilder<T> {
    /// An empty builder.
    pub fn new(mode: MatchMode) -> RouteTableBuilder<T> {
        RouteTableBuilder {
            mode,
            routes: Vec::new(),
            seen: HashMap::new(),
        }
    }

    /// Adds a route on `host` and `path` for any method.
    pub fn add(&mut self, host: HostMatch, path: PathMatch, value: T) -> Result<&mut Self, Error> {
        self.add_route(RouteExpr::new(host, path), value)
    }

    /// Parses a route expression (see the crate documentation) and adds it; a bare path
    /// expression such as `~* \.php$` is a route for any host.
    pub fn add_expr(&mut self, expr: &str, value: T) -> Result<&mut Self, Error> {
        self.add_route(RouteExpr::parse(expr)?, value)
    }

    /// Adds a route.
    pub fn add_route(&mut self, route: RouteExpr, value: T) -> Result<&mut Self, Error> {
        self.add_with_templates(route, &[], value)
    }

    /// Adds a route after checking that each template only refers to captures the route
    /// produces.
    pub fn add_with_templates(
        &mut self,
        route: RouteExpr,
        templates: &[&Template],
        value: T,
    ) -> Result<&mut Self, Error> {
        let expr = route.canonical()?;
        let groups = RouteGroups::of(&expr)?;
        for template in templates {
            template.check(&groups, &expr)?;
        }
        let (kind, pattern) = match expr.path() {
            PathMatch::Exact(p) => (0, p),
            PathMatch::PreferredPrefix(p) | PathMatch::Prefix(p) => (1, p),
            PathMatch::Regex(p) => (2, p),
            PathMatch::RegexNoCase(p) => (3, p),
        };
        let key = RouteKey {
            host: expr.host().clone(),
            methods: expr.methods().to_vec(),
            kind,
            pattern: pattern.clone(),
        };
        let index = self.routes.len();
        if let Some(&first) = self.seen.get(&key) {
            return Err(Error::DuplicateRoute {
                route: expr.to_string(),
                first,
                second: index,
            });
        }
        self.seen.insert(key, index);
        self.routes.push(Route {
            expr,
            value,
            path_regex: groups.path,
            host_regex: groups.host,
        });
        Ok(self)
    }

    /// How many routes have been added.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no route has been added.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Compiles the table.
    pub fn build(self) -> Result<RouteTable<T>, Error> {
        let index = match self.mode {
            MatchMode::FirstMatch => {
                let all: Vec<usize> = (0..self.routes.len()).collect();
                Index::FirstMatch(Group::new(&all, &self.routes)?)
            }
            MatchMode::Nginx => Index::Nginx(Servers::new(&self.routes)?),
        };
        Ok(RouteTable {
            mode: self.mode,
            routes: self.routes,
            index,
        })
    }
}

/// A compiled, immutable route table. Cheap to share between threads (`Arc<RouteTable<T>>`).
#[derive(Debug)]
pub struct RouteTable<T> {
    mode: MatchMode,
    routes: Vec<Route<T>>,
    index: Index,
}

#[derive(Debug)]
enum Index {
    Nginx(Servers),
    FirstMatch(Group),
}

/// nginx-mode routes grouped by host match, like `server` blocks.
#[derive(Debug)]
struct Servers {
    any: Option<Group>,
    exact: HashMap<Box<str>, Group>,
    /// Keyed by the domain after `*.`.
    wildcard: HashMap<Box<str>, Group>,
    /// In order of first declaration.
    regex: Vec<(Regex, Group)>,
}

impl Servers {
    fn new<T>(routes: &[Route<T>]) -> Result<Servers, Error> {
        let mut order: Vec<&HostMatch> = Vec::new();
        let mut members: HashMap<&HostMatch, Vec<usize>> = HashMap::new();
        for (id, route) in routes.iter().enumerate() {
            let host = route.expr.host();
            members
                .entry(host)
                .or_insert_with(|| {
                    order.push(host);
                    Vec::new()
                })
                .push(id);
        }
        let mut servers = Servers {
            any: None,
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            regex: Vec::new(),
        };
        for host in order {
            let ids = members.get(host).map_or(&[][..], Vec::as_slice);
            let group = Group::new(ids, routes)?;
            match host {
                HostMatch::Any => servers.any = Some(group),
                HostMatch::Exact(name) => {
                    servers.exact.insert(name.as_str().into(), group);
                }
                HostMatch::Wildcard(domain) => {
                    servers.wildcard.insert(domain.as_str().into(), group);
                }
                HostMatch::Regex(pattern) => {
                    let regex = compile_host_regex(pattern).map_err(|source| Error::Regex {
                        what: Input::Host,
                        input: pattern.clone(),
                        column: 1,
                        source,
                    })?;
                    servers.regex.push((regex, group));
                }
            }
        }
        Ok(servers)
    }

    fn select(&self, host: Option<&str>) -> Option<&Group> {
        if let Some(host) = host {
            if let Some(group) = self.exact.get(host) {
                return Some(group);
            }
            if !self.wildcard.is_empty() {
                for (at, byte) in host.bytes().enumerate() {
                    if byte == b'.' && at > 0 {
                        if let Some(group) = host.get(at + 1..).and_then(|d| self.wildcard.get(d)) {
                            return Some(group);
                        }
                    }
                }
            }
            for (regex, group) in &self.regex {
                if regex.is_match(host) {
                    return Some(group);
                }
            }
        }
        self.any.as_ref()
    }
}

/// The routes of one server (nginx mode) or of the whole table (first-match mode).
#[derive(Debug)]
struct Group {
    exact: HashMap<Box<str>, Vec<usize>>,
    prefixes: PrefixTable,
    regex: Option<RegexSet>,
    /// Route id of each pattern of `regex`, ascending.
    regex_routes: Vec<usize>,
}

/// Generous limits: a table of thousands of regexes compiles into one set.
const SET_SIZE_LIMIT: usize = 512 << 20;
const SET_DFA_LIMIT: usize = 16 << 20;

impl Group {
    fn new<T>(ids: &[usize], routes: &[Route<T>]) -> Result<Group, Error> {
        let mut exact: HashMap<Box<str>, Vec<usize>> = HashMap::new();
        let mut prefixes = Vec::new();
        let mut patterns = Vec::new();
        let mut regex_routes = Vec::new();
        for &id in ids {
            let path = routes[id].expr.path();
            match path {
                PathMatch::Exact(p) => exact.entry(p.as_str().into()).or_default().push(id),
                PathMatch::PreferredPrefix(p) | PathMatch::Prefix(p) => {
                    prefixes.push((p.as_str(), id))
                }
                PathMatch::Regex(_) | PathMatch::RegexNoCase(_) => {
                    patterns.push(path.regex_source().unwrap_or_default());
                    regex_routes.push(id);
                }
            }
        }
        let regex = if patterns.is_empty() {
            None
        } else {
            let set = RegexSetBuilder::new(&patterns)
                .size_limit(SET_SIZE_LIMIT)
                .dfa_size_limit(SET_DFA_LIMIT)
                .build()
                .map_err(|e| Error::Regex {
                    what: Input::Path,
                    input: format!("the set of {} path regular expressions", patterns.len()),
                    column: 1,
                    source: RegexError(e),
                })?;
            Some(set)
        };
        Ok(Group {
            exact,
            prefixes: PrefixTable::new(prefixes),
            regex,
            regex_routes,
        })
    }

    fn find_nginx<T>(
        &self,
        routes: &[Route<T>],
        path: &str,
        method: Option<&str>,
    ) -> Option<usize> {
        let ok = |id: &&usize| method_ok(&routes[**id], method);
        if let Some(&id) = self.exact.get(path).and_then(|ids| ids.iter().find(ok)) {
            return Some(id);
        }
        let longest = self
            .prefixes
            .matches(path)
            .find_map(|ids| ids.iter().find(ok).copied());
        if let Some(id) = longest {
            if matches!(routes[id].expr.path(), PathMatch::PreferredPrefix(_)) {
                return Some(id);
            }
        }
        if let Some(set) = &self.regex {
            if set.is_match(path) {
                let regex_hit = set
                    .matches(path)
                    .iter()
                    .map(|i| self.regex_routes[i])
                    .find(|id| method_ok(&routes[*id], method));
                if regex_hit.is_some() {
                    return regex_hit;
                }
            }
        }
        longest
    }

    fn find_first<T>(
        &self,
        routes: &[Route<T>],
        host: Option<&str>,
        path: &str,
        method: Option<&str>,
    ) -> Option<usize> {
        let ok = |id: usize| method_ok(&routes[id], method) && host_ok(&routes[id], host);
        let mut best: Option<usize> = None;
        let before = |best: Option<usize>, id: usize| best.is_none_or(|b| id < b);
        if let Some(ids) = self.exact.get(path) {
            best = ids.iter().copied().find(|&id| ok(id));
        }
        for ids in self.prefixes.matches(path) {
            for &id in ids {
                if !before(best, id) {
                    break;
                }
                if ok(id) {
                    best = Some(id);
                    break;
                }
            }
        }
        if let Some(set) = &self.regex {
            let worth_it = self
                .regex_routes
                .first()
                .is_some_and(|&id| before(best, id));
            if worth_it && set.is_match(path) {
                for i in set.matches(path).iter() {
                    let id = self.regex_routes[i];
                    if !before(best, id) {
                        break;
                    }
                    if ok(id) {
                        best = Some(id);
                        break;
                    }
                }
            }
        }
        best
    }
}

fn method_ok<T>(route: &Route<T>, method: Option<&str>) -> bool {
    let methods = route.expr.methods();
    methods.is_empty() || method.is_some_and(|m| methods.iter().any(|x| x == m))
}

fn host_ok<T>(route: &Route<T>, host: Option<&str>) -> bool {
    match route.expr.host() {
        HostMatch::Any => true,
        HostMatch::Exact(name) => host == Some(name.as_str()),
        HostMatch::Wildcard(domain) => host.is_some_and(|h| wildcard_match(h, domain)),
        HostMatch::Regex(_) => {
            host.is_some_and(|h| route.host_regex.as_ref().is_some_and(|re| re.is_match(h)))
        }
    }
}

/// Whether `host` is one or more labels followed by `.domain`.
pub(crate) fn wildcard_match(host: &str, domain: &str) -> bool {
    host.len() > domain.len() + 1
        && host.ends_with(domain)
        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
}

/// Host names longer than this never match a name or wildcard (DNS allows 253).
const HOST_BUFFER: usize = 256;

/// Lower-cases the host into `buf` and drops one trailing dot; `None` for no host, an empty
/// one, or one too long to be a DNS name.
fn host_key<'b>(host: Option<&str>, buf: &'b mut [u8; HOST_BUFFER]) -> Option<&'b str> {
    let host = host?;
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > HOST_BUFFER {
        return None;
    }
    let out = &mut buf[..host.len()];
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

impl<T> RouteTable<T> {
    /// Finds the route for a request whose path is already normalised (see
    /// [`crate::normalize_path`]), ignoring routes with a method filter. Prefer
    /// [`RouteTable::resolve`], which normalises and refuses ambiguous paths.
    ///
    /// `host` is the `Host` (or `:authority`) without the port, as the client sent it:
    /// compared case-insensitively, with a trailing dot ignored. `path` may carry the query,
    /// which is ignored. Does not allocate unless a regular expression takes part in the
    /// chosen route (its captures are copied out).
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<RouteMatch<'_, T>> {
        self.find(host, None, path)
    }

    /// As [`RouteTable::lookup`], for a request with this method (routes with a method
    /// filter are considered).
    pub fn lookup_method(
        &self,
        host: Option<&str>,
        method: &str,
        path: &str,
    ) -> Option<RouteMatch<'_, T>> {
        self.find(host, Some(method), path)
    }

    /// Normalises a request target and finds its route: what the engine calls per request.
    ///
    /// Besides the refusals of [`crate::normalize_path`], this refuses with
    /// [`NormalizeError::Ambiguous`] a path whose dot segments (or doubled slashes, when
    /// merged) lead it to a different route from the one the path as sent reaches, such as
    /// `/device-connector/device/%2e%2e/device/ws-connect`: a request never reaches a route
    /// that its raw path would not. The upstream should still be sent the client's raw
    /// target unless the route rewrites it.
    pub fn resolve(
        &self,
        host: Option<&str>,
        method: Option<&str>,
        target: &str,
        options: NormalizeOptions,
    ) -> Result<Option<RouteMatch<'_, T>>, NormalizeError> {
        let (path, _query) = split_target(target);
        let normalized = Normalized::of(path, options)?;
        let mut buf = [0u8; HOST_BUFFER];
        let host = host_key(host, &mut buf);
        let chosen = self.find_index(host, method, normalized.path());
        if normalized.moved() && self.find_index(host, method, &normalized.literal) != chosen {
            return Err(NormalizeError::Ambiguous {
                path: path.to_owned(),
            });
        }
        // Slashes kept as sent: an upstream that merges them (most do) must not reach
        // another route's area than the one chosen here, e.g. `//admin/` past `/admin/`.
        if !options.merges_slashes() && normalized.path().contains("//") {
            let merged = normalize_path(normalized.path(), options.merge_slashes(true))?;
            if self.find_index(host, method, &merged) != chosen {
                return Err(NormalizeError::Ambiguous {
                    path: path.to_owned(),
                });
            }
        }
        Ok(chosen.map(|index| self.make_match(index, host, normalized.path())))
    }

    fn find(
        &self,
        host: Option<&str>,
        method: Option<&str>,
        path: &str,
    ) -> Option<RouteMatch<'_, T>> {
        let (path, _query) = split_target(path);
        let mut buf = [0u8; HOST_BUFFER];
        let host = host_key(host, &mut buf);
        let index = self.find_index(host, method, path)?;
        Some(self.make_match(index, host, path))
    }

    fn find_index(&self, host: Option<&str>, method: Option<&str>, path: &str) -> Option<usize> {
        match &self.index {
            Index::Nginx(servers) => servers.select(host)?.find_nginx(&self.routes, path, method),
            Index::FirstMatch(group) => group.find_first(&self.routes, host, path, method),
        }
    }

    fn make_match(&self, index: usize, host: Option<&str>, path: &str) -> RouteMatch<'_, T> {
        let route = &self.routes[index];
        let captures = Captures {
            path: route
                .path_regex
                .as_ref()
                .map(|re| CaptureGroup::new(re, path)),
            host: route
                .host_regex
                .as_ref()
                .and_then(|re| host.map(|h| CaptureGroup::new(re, h))),
        };
        RouteMatch {
            index,
            expr: &route.expr,
            value: &route.value,
            captures,
        }
    }

    /// The table's match mode.
    pub fn mode(&self) -> MatchMode {
        self.mode
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route declared at `index` (0-based, in the order added).
    pub fn route(&self, index: usize) -> Option<(&RouteExpr, &T)> {
        self.routes.get(index).map(|r| (&r.expr, &r.value))
    }

    /// Every route in declaration order.
    pub fn routes(&self) -> impl Iterator<Item = (&RouteExpr, &T)> {
        self.routes.iter().map(|r| (&r.expr, &r.value))
    }
}

/// The route chosen for a request, with the captures of its regular expressions.
#[derive(Debug)]
pub struct RouteMatch<'t, T> {
    index: usize,
    expr: &'t RouteExpr,
    value: &'t T,
    captures: Captures<'t>,
}

impl<'t, T> RouteMatch<'t, T> {
    /// The value the route was added with.
    pub fn value(&self) -> &'t T {
        self.value
    }

    /// The route's position in declaration order (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The route's expression.
    pub fn expr(&self) -> &'t RouteExpr {
        self.expr
    }

    /// The captures of the route's host and path regular expressions.
    pub fn captures(&self) -> &Captures<'t> {
        &self.captures
    }

    /// The literal path of an exact or prefix route (for [`crate::replace_prefix`]).
    pub fn matched_prefix(&self) -> Option<&'t str> {
        match self.expr.path() {
            PathMatch::Exact(p) | PathMatch::PreferredPrefix(p) | PathMatch::Prefix(p) => Some(p),
            PathMatch::Regex(_) | PathMatch::RegexNoCase(_) => None,
        }
    }

    /// Renders a template with this match's captures.
    pub fn render(&self, template: &Template) -> String {
        template.render(&self.captures)
    }
}

/// Numbered and named captures of a match. Empty for routes without regular expressions.
///
/// Numbered groups come from the path regex if the route's path is one, otherwise from the
/// host regex; [`Captures::path`] and [`Captures::host`] choose explicitly. Named groups are
/// looked up in the path regex first, then in the host regex.
#[derive(Debug, Default)]
pub struct Captures<'t> {
    path: Option<CaptureGroup<'t>>,
    host: Option<CaptureGroup<'t>>,
}

#[derive(Debug)]
struct CaptureGroup<'t> {
    regex: &'t Regex,
    subject: String,
    locations: CaptureLocations,
}

impl<'t> CaptureGroup<'t> {
    fn new(regex: &'t Regex, subject: &str) -> CaptureGroup<'t> {
        let mut locations = regex.capture_locations();
        regex.captures_read(&mut locations, subject);
        CaptureGroup {
            regex,
            subject: subject.to_owned(),
            locations,
        }
    }

    fn get(&self, group: usize) -> Option<&str> {
        let (start, end) = self.locations.get(group)?;
        self.subject.get(start..end)
    }

    fn group_of(&self, name: &str) -> Option<usize> {
        self.regex.capture_names().position(|n| n == Some(name))
    }
}

impl Captures<'_> {
    /// Numbered group `group` (0 is the whole match) of the path regex, or of the host regex
    /// when the path is not a regex. `None` if there is no such group or it did not take part
    /// in the match.
    pub fn get(&self, group: usize) -> Option<&str> {
        match (&self.path, &self.host) {
            (Some(path), _) => path.get(group),
            (None, Some(host)) => host.get(group),
            (None, None) => None,
        }
    }

    /// Named group `name`, from the path regex, else from the host regex.
    pub fn name(&self, name: &str) -> Option<&str> {
        [&self.path, &self.host]
            .into_iter()
            .flatten()
            .find_map(|g| g.group_of(name).map(|i| g.get(i)))
            .flatten()
    }

    /// Numbered group of the path regex (`{R:n}`).
    pub fn path(&self, group: usize) -> Option<&str> {
        self.path.as_ref().and_then(|p| p.get(group))
    }

    /// Numbered group of the host regex (`{C:n}`), taken from the lower-cased host.
    pub fn host(&self, group: usize) -> Option<&str> {
        self.host.as_ref().and_then(|h| h.get(group))
    }

    /// Whether neither the host nor the path was matched by a regular expression.
    pub fn is_empty(&self) -> bool {
        self.path.is_none() && self.host.is_none()
    }
}
