//! Route matching for a reverse proxy, with no I/O: which route a request's host, method and
//! path choose, with nginx's `location` precedence or an ordered first-match rule list.
//!
//! - [`RouteTableBuilder`] collects routes and checks each as it is added;
//!   [`RouteTableBuilder::build`] compiles them once into an immutable [`RouteTable`]:
//!   exact paths in a hash map, prefixes in a sorted table, regular expressions in one
//!   `RegexSet` per server (a route's own regex is used only to extract captures).
//! - [`RouteTable::resolve`] normalises the request path ([`normalize_path`]), refuses what
//!   could be used to slip past a route, and finds the route; [`RouteTable::lookup`] finds
//!   the route of an already normalised path. A prefix or exact hit does not allocate.
//! - [`Template`] rewrites the upstream path or a header value from the match's
//!   [`Captures`]; [`replace_prefix`] does nginx/Apache-style prefix replacement.
//!
//! It is not for header handling (`gangway-headers`) or for anything that touches a socket.
//!
//! ```
//! use gangway_route::{HostMatch, MatchMode, NormalizeOptions, PathMatch, RouteTableBuilder};
//!
//! let mut routes = RouteTableBuilder::new(MatchMode::Nginx);
//! routes.add(HostMatch::Any, PathMatch::Prefix("/".into()), "web app")?;
//! routes.add_expr("^~ /device-connector/device/.well-known/est/", "EST enrollment")?;
//! routes.add_expr(r"~ ^/device-connector/device/(ws-connect|portforwarding)$", "device WebSocket")?;
//! routes.add_expr(r"host ~ ^(?<device>[a-z0-9-]+)\.mm-remote\.example\.com$ /", "device")?;
//! let table = routes.build()?;
//!
//! let opts = NormalizeOptions::default();
//! let hit = table.resolve(Some("ums.example.com"), Some("GET"), "/device-connector/device/ws-connect?x=1", opts)?;
//! assert_eq!(hit.as_ref().map(|m| *m.value()), Some("device WebSocket"));
//!
//! let hit = table.resolve(Some("Dev-42.MM-Remote.example.com"), None, "/status", opts)?;
//! let hit = hit.expect("the device route");
//! assert_eq!(*hit.value(), "device");
//! assert_eq!(hit.captures().name("device"), Some("dev-42"));
//!
//! // An encoded `..` that would turn a plain path into the WebSocket route is refused (400).
//! let bypass = "/device-connector/device/%2e%2e/device/ws-connect";
//! assert!(table.resolve(None, None, bypass, opts).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Route expressions
//!
//! A route is written as an optional host clause, an optional method clause, then a path
//! expression (parsed by [`RouteExpr::parse`]; [`PathMatch::parse`] and [`HostMatch::parse`]
//! parse the parts alone):
//!
//! ```text
//! [host HOST] [method M1,M2,...] PATH
//! ```
//!
//! | path expression | meaning |
//! |---|---|
//! | `= /exact` | the whole path, exactly |
//! | `^~ /prefix` | a prefix that, when it is the longest match, wins over regexes |
//! | `~ regex` | a case-sensitive regular expression, unanchored (write `^` and `$`) |
//! | `~* regex` | the same, case-insensitive |
//! | `/prefix` | a prefix |
//!
//! | host | meaning |
//! |---|---|
//! | `ums.example.com` | that name, any case, trailing dot ignored (also `[::1]`) |
//! | `*.mm-remote.company.com` | one or more labels before `.mm-remote.company.com` |
//! | `~ ^(?<device>[a-z0-9-]+)\.mm-remote\.company\.com$` | a case-insensitive regex on the lower-cased host; its groups are captures |
//! | `*` (or no host clause) | any host, and requests without one |
//!
//! The method clause lists case-sensitive method names: `method GET,HEAD`. A literal path
//! ends at whitespace; a path regex runs to the end of the expression, so it may contain
//! spaces; a host regex ends at whitespace. Literal paths must be able to match a
//! normalised path: they start with `/`, and contain no `?`, `#`, `\`, whitespace,
//! percent-encoded unreserved characters, lower-case percent-encodings, or `.`/`..`
//! segments (a prefix may end in one). Errors give the column and what was expected there.
//!
//! # Precedence
//!
//! [`MatchMode::Nginx`] follows nginx exactly. The host chooses a *server*: the routes with
//! an exact host match, else the longest matching wildcard, else the first matching host
//! regex (in declaration order), else the routes with any host. Within it: an exact path
//! wins at once; otherwise the longest matching prefix is remembered, and if it is `^~` it
//! wins; otherwise the regexes are tried in declaration order and the first match wins;
//! otherwise the longest prefix wins. There is no fall-back from a chosen server to another.
//!
//! [`MatchMode::FirstMatch`] is an Apache `ProxyPass` / IIS rule list: the first route in
//! declaration order whose host, method and path match.
//!
//! Routes with a method filter are only considered when the method is known
//! ([`RouteTable::lookup_method`], [`RouteTable::resolve`] with a method).
//!
//! # Path normalisation
//!
//! Matching runs on the path after [`normalize_path`]: unreserved characters
//! percent-decoded, RFC 3986 dot segments removed, and optionally `//` merged. Refused with
//! a [`NormalizeError`] (status 400): invalid percent-encoding, `%2F`, `%5C`, `\`, NUL, a
//! `..` above the root, and (by [`RouteTable::resolve`]) a path whose normalisation leads it
//! to another route than the path as sent. The upstream is sent the client's raw target
//! unless the route rewrites it.
//!
//! See `docs/routing.md` in the repository for the full reference.

mod error;
mod expr;
#[doc(hidden)]
pub mod fuzzing;
mod normalize;
mod prefix;
mod table;
mod template;
#[cfg(test)]
mod tests;

pub use error::{Error, Input, NormalizeError, RegexError, Side};
pub use expr::{HostMatch, PathMatch, RouteExpr};
pub use normalize::{NormalizeOptions, normalize_path, replace_prefix};
pub use table::{Captures, MatchMode, RouteMatch, RouteTable, RouteTableBuilder};
pub use template::Template;
