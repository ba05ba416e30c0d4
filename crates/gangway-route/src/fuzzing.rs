//! The invariants the fuzz targets in `fuzz/` check, kept here so that the corpus-replay
//! test runs exactly the same checks on stable Rust, and a naive reference model of route
//! precedence that the table is compared with.
//!
//! Every function panics when an invariant does not hold; that is the point.

use regex::{Regex, RegexBuilder};

use crate::expr::{HostMatch, PathMatch, RouteExpr};
use crate::normalize::split_target;
use crate::table::wildcard_match;
use crate::{MatchMode, NormalizeOptions, RouteTableBuilder, Template, normalize_path};

/// `route_expr` target: parsing never panics, and a parsed expression (route, path, host or
/// template) displays as text that parses back to an equal value.
pub fn route_expr(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expr) = RouteExpr::parse(input) {
        let shown = expr.to_string();
        let again = RouteExpr::parse(&shown)
            .unwrap_or_else(|e| panic!("{input:?} displayed as {shown:?}, which fails: {e}"));
        assert_eq!(again, expr, "{input:?} displayed as {shown:?}");
        assert_eq!(again.to_string(), shown);
        assert_eq!(
            expr.canonical().ok(),
            Some(expr.clone()),
            "canonical({input:?})"
        );
    }
    if let Ok(path) = PathMatch::parse(input) {
        let shown = path.to_string();
        assert_eq!(
            PathMatch::parse(&shown).ok(),
            Some(path.clone()),
            "{input:?} as {shown:?}"
        );
        assert_eq!(path.canonical().ok(), Some(path));
    }
    if let Ok(host) = HostMatch::parse(input) {
        let shown = host.to_string();
        assert_eq!(
            HostMatch::parse(&shown).ok(),
            Some(host.clone()),
            "{input:?} as {shown:?}"
        );
        assert_eq!(host.canonical().ok(), Some(host));
    }
    if let Ok(template) = Template::parse(input) {
        assert_eq!(template.to_string(), input);
    }
}

/// `normalize` target: normalisation never panics; what it accepts it accepts again
/// unchanged (idempotence); the result starts with `/`, has no `.` or `..` segment (so it
/// cannot climb above the root), no `//` when slashes are merged, only canonical
/// percent-encodings, and the query untouched.
pub fn normalize(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    for options in [
        NormalizeOptions::default(),
        NormalizeOptions::default().merge_slashes(true),
    ] {
        let Ok(normalized) = normalize_path(input, options) else {
            continue;
        };
        let again = normalize_path(&normalized, options)
            .unwrap_or_else(|e| panic!("{input:?} -> {normalized:?} is refused: {e}"));
        assert_eq!(again, normalized, "not idempotent on {input:?}");
        let (path, query) = split_target(&normalized);
        assert_eq!(query, split_target(input).1, "query changed in {input:?}");
        assert!(path.starts_with('/'), "{input:?} -> {path:?}");
        assert!(
            path.split('/').all(|s| s != "." && s != ".."),
            "dot segment left in {input:?} -> {path:?}"
        );
        if options.merges_slashes() {
            assert!(!path.contains("//"), "{input:?} -> {path:?}");
        }
        let bytes = path.as_bytes();
        for (at, _) in path.match_indices('%') {
            let hex = bytes.get(at + 1..at + 3).unwrap_or_default();
            assert!(
                hex.len() == 2
                    && hex
                        .iter()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
                "non-canonical escape in {path:?}"
            );
            let value = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16)
                .unwrap_or_else(|_| panic!("bad escape in {path:?}"));
            assert!(
                !crate::expr::is_unreserved(value) && !matches!(value, 0 | b'/' | b'\\'),
                "escape %{value:02X} left in {path:?}"
            );
        }
        assert!(!path.contains(['\\', '\0']), "{path:?}");
    }
}

/// `route_table` target. The input is text: route expressions one per line, optionally a
/// first line `mode first` or `mode nginx`, then a line `---`, then requests one per line as
/// `TARGET`, `HOST TARGET` or `METHOD HOST TARGET` (`-` for no host or no method).
///
/// Invariants: building and looking up never panic; every lookup agrees with the naive
/// [`Reference`] model; [`crate::RouteTable::resolve`] only returns a route that the
/// normalised path reaches and, when the target has no `%`, that the raw path reaches too.
pub fn route_table(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut mode = MatchMode::Nginx;
    let mut route_lines = Vec::new();
    let mut request_lines = Vec::new();
    let mut in_requests = false;
    for line in text.lines() {
        match line {
            "---" => in_requests = true,
            "mode first" if !in_requests => mode = MatchMode::FirstMatch,
            "mode nginx" if !in_requests => mode = MatchMode::Nginx,
            _ if in_requests => request_lines.push(line),
            _ => route_lines.push(line),
        }
    }
    let mut builder = RouteTableBuilder::new(mode);
    let mut accepted = Vec::new();
    for line in route_lines.into_iter().take(64) {
        if let Ok(expr) = RouteExpr::parse(line) {
            if builder.add_route(expr.clone(), accepted.len()).is_ok() {
                accepted.push(expr);
            }
        }
    }
    let Ok(table) = builder.build() else {
        return;
    };
    assert_eq!(table.len(), accepted.len());
    let reference = Reference::new(mode, &accepted)
        .unwrap_or_else(|| panic!("the table compiled routes the reference cannot"));
    for line in request_lines.into_iter().take(64) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (method, host, target) = match words.as_slice() {
            [target] => (None, None, *target),
            [host, target] => (None, Some(*host), *target),
            [method, host, target, ..] => (Some(*method), Some(*host), *target),
            [] => continue,
        };
        let host = host.filter(|h| *h != "-");
        let method = method.filter(|m| *m != "-");
        let (raw_path, _) = split_target(target);
        let expected = reference.lookup(host, method, raw_path);
        let found = match method {
            Some(m) => table.lookup_method(host, m, target),
            None => table.lookup(host, target),
        };
        assert_eq!(
            found.as_ref().map(|m| m.index()),
            expected,
            "lookup({host:?}, {method:?}, {target:?}) in {mode:?} table {accepted:#?}"
        );
        if let Some(m) = &found {
            assert_eq!(*m.value(), m.index());
            if m.expr().path().is_regex() {
                assert!(m.captures().get(0).is_some(), "regex hit without $0");
            }
        }
        for options in [
            NormalizeOptions::default(),
            NormalizeOptions::default().merge_slashes(true),
        ] {
            let Ok(resolved) = table.resolve(host, method, target, options) else {
                continue;
            };
            let index = resolved.as_ref().map(|m| m.index());
            let normalized = normalize_path(target, options)
                .unwrap_or_else(|e| panic!("resolve accepted {target:?}, normalize refused: {e}"));
            let (path, _) = split_target(&normalized);
            assert_eq!(
                index,
                reference.lookup(host, method, path),
                "{target:?} normalised"
            );
            if !raw_path.contains('%') {
                assert_eq!(
                    index,
                    reference.lookup(host, method, raw_path),
                    "{target:?} reaches a route its raw path does not"
                );
            }
        }
    }
}

/// A deliberately naive model of route precedence: linear scans over the routes, written
/// from the documentation, to compare the compiled table with.
#[derive(Debug)]
pub struct Reference {
    mode: MatchMode,
    routes: Vec<ReferenceRoute>,
}

#[derive(Debug)]
struct ReferenceRoute {
    expr: RouteExpr,
    path: Option<Regex>,
    host: Option<Regex>,
}

impl Reference {
    /// The model of a table with these routes (already free of duplicates), or `None` if a
    /// regular expression does not compile.
    pub fn new(mode: MatchMode, routes: &[RouteExpr]) -> Option<Reference> {
        let routes = routes
            .iter()
            .map(|expr| {
                let path = match expr.path() {
                    PathMatch::Regex(p) => Some(Regex::new(p).ok()?),
                    PathMatch::RegexNoCase(p) => {
                        Some(RegexBuilder::new(p).case_insensitive(true).build().ok()?)
                    }
                    _ => None,
                };
                let host = match expr.host() {
                    HostMatch::Regex(p) => {
                        Some(RegexBuilder::new(p).case_insensitive(true).build().ok()?)
                    }
                    _ => None,
                };
                Some(ReferenceRoute {
                    expr: expr.clone(),
                    path,
                    host,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Reference { mode, routes })
    }

    /// The index of the route chosen for this request (`path` without the query).
    pub fn lookup(&self, host: Option<&str>, method: Option<&str>, path: &str) -> Option<usize> {
        let host = host
            .map(|h| h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase())
            .filter(|h| !h.is_empty() && h.len() <= 256);
        let host = host.as_deref();
        let method_ok = |r: &ReferenceRoute| {
            r.expr.methods().is_empty()
                || method.is_some_and(|m| r.expr.methods().iter().any(|x| x == m))
        };
        let host_ok = |r: &ReferenceRoute| match r.expr.host() {
            HostMatch::Any => true,
            HostMatch::Exact(name) => host == Some(name.as_str()),
            HostMatch::Wildcard(domain) => host.is_some_and(|h| wildcard_match(h, domain)),
            HostMatch::Regex(_) => {
                host.is_some_and(|h| r.host.as_ref().is_some_and(|re| re.is_match(h)))
            }
        };
        let path_ok = |r: &ReferenceRoute| match r.expr.path() {
            PathMatch::Exact(p) => path == p,
            PathMatch::PreferredPrefix(p) | PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Regex(_) | PathMatch::RegexNoCase(_) => {
                r.path.as_ref().is_some_and(|re| re.is_match(path))
            }
        };
        if self.mode == MatchMode::FirstMatch {
            return self
                .routes
                .iter()
                .position(|r| host_ok(r) && method_ok(r) && path_ok(r));
        }
        // nginx: choose the server by host.
        let server = host
            .and_then(|h| {
                let hosts = || self.routes.iter().map(|r| r.expr.host());
                hosts()
                    .find(|m| matches!(m, HostMatch::Exact(n) if n == h))
                    .or_else(|| {
                        let mut best: Option<&HostMatch> = None;
                        for m in hosts() {
                            if let HostMatch::Wildcard(d) = m {
                                let longer = match best {
                                    Some(HostMatch::Wildcard(b)) => d.len() > b.len(),
                                    _ => true,
                                };
                                if wildcard_match(h, d) && longer {
                                    best = Some(m);
                                }
                            }
                        }
                        best
                    })
                    .or_else(|| {
                        self.routes
                            .iter()
                            .find(|r| matches!(r.expr.host(), HostMatch::Regex(_)) && host_ok(r))
                            .map(|r| r.expr.host())
                    })
            })
            .unwrap_or(&HostMatch::Any);
        let candidates: Vec<(usize, &ReferenceRoute)> = self
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.expr.host() == server && method_ok(r))
            .collect();
        if let Some((i, _)) = candidates
            .iter()
            .find(|(_, r)| matches!(r.expr.path(), PathMatch::Exact(_)) && path_ok(r))
        {
            return Some(*i);
        }
        let mut longest: Option<(usize, usize, bool)> = None;
        for (i, r) in &candidates {
            let (p, preferred) = match r.expr.path() {
                PathMatch::Prefix(p) => (p, false),
                PathMatch::PreferredPrefix(p) => (p, true),
                _ => continue,
            };
            if path_ok(r) && longest.is_none_or(|(_, len, _)| p.len() > len) {
                longest = Some((*i, p.len(), preferred));
            }
        }
        if let Some((i, _, true)) = longest {
            return Some(i);
        }
        if let Some((i, _)) = candidates
            .iter()
            .find(|(_, r)| r.expr.path().is_regex() && path_ok(r))
        {
            return Some(*i);
        }
        longest.map(|(i, _, _)| i)
    }
}
