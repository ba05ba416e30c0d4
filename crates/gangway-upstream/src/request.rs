//! What a selection knows about the request, and Apache-style sticky routes read from it.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::COOKIE;

/// The facts about one request that balancing may use. Everything is optional: a method
/// that needs a fact the request does not carry falls back as nginx does (`ip_hash`
/// without an address hashes three zero bytes; `hash` without a key uses round robin).
///
/// ```
/// use gangway_upstream::RequestInfo;
///
/// let headers = http::HeaderMap::new();
/// let info = RequestInfo::new()
///     .client([192, 0, 2, 7].into())
///     .target("/app;jsessionid=abc.node2?x=1")
///     .headers(&headers);
/// assert_eq!(info.client_addr(), Some([192, 0, 2, 7].into()));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestInfo<'a> {
    client: Option<IpAddr>,
    key: &'a [u8],
    target: &'a str,
    headers: Option<&'a HeaderMap>,
}

impl<'a> RequestInfo<'a> {
    /// A request about which nothing is known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The path and query of `request` (as sent, not normalised) and its headers.
    pub fn from_request<B>(request: &'a http::Request<B>) -> Self {
        let target = request
            .uri()
            .path_and_query()
            .map_or("", |target| target.as_str());
        Self::new().target(target).headers(request.headers())
    }

    /// The client's address, for `ip_hash` (after PROXY protocol or a trusted
    /// `X-Real-IP`, as the engine decides).
    pub fn client(mut self, addr: IpAddr) -> Self {
        self.client = Some(addr);
        self
    }

    /// The key for `hash` (nginx evaluates `hash $request_uri` and the like; the engine
    /// evaluates its template and passes the bytes).
    pub fn hash_key(mut self, key: &'a [u8]) -> Self {
        self.key = key;
        self
    }

    /// The request target as sent: path and query (`/app;jsessionid=abc.node2?x=1`), where
    /// sticky routes look for URL parameters.
    pub fn target(mut self, target: &'a str) -> Self {
        self.target = target;
        self
    }

    /// The request headers, where sticky routes look for cookies.
    pub fn headers(mut self, headers: &'a HeaderMap) -> Self {
        self.headers = Some(headers);
        self
    }

    /// The client address, if given.
    pub fn client_addr(&self) -> Option<IpAddr> {
        self.client
    }

    /// The hash key (empty if none was given).
    pub fn hash_key_bytes(&self) -> &'a [u8] {
        self.key
    }

    /// The request target (empty if none was given).
    pub fn target_str(&self) -> &'a str {
        self.target
    }

    /// The request headers, if given.
    pub fn header_map(&self) -> Option<&'a HeaderMap> {
        self.headers
    }
}

/// Sticky sessions read as Apache's `mod_proxy_balancer` reads them.
///
/// Each name is looked up as a URL parameter and as a cookie; the route is the text after
/// the first separator (`.`) of the value found, and the peer with that
/// [route name](crate::Peer::with_route) gets the request if it is available.
///
/// - URL parameter: `name=` in the request target (path or query), at the start of the
///   target or after `/`, `;`, `?` or `&`; the value ends at `?` or `&`, and with
///   [`scolon_path_delim`](Self::scolon_path_delim) also at `;` (so
///   `/app;jsessionid=abc.node2;x` works).
/// - Cookie: `name` at the start of a `Cookie` header or after `;`, `,` or white space,
///   then optional white space and `=`; the value ends at `;` or `,`.
///
/// All names are tried as URL parameters first, then all as cookies (Apache, too, prefers
/// the URL); the first value that carries a route decides.
///
/// Unlike Apache, which splits `stickysession=a|b` into one cookie name (`a`) and one
/// parameter name (`b`), every name here is tried both ways: `["rpcid", "JSESSIONID",
/// "jsessionid"]` finds `JSESSIONID=abc.node2` as a cookie and `;jsessionid=abc.node2` in
/// the path. Apache also matches a parameter name at the end of a longer one
/// (`myjsessionid=`); gangway requires it to start the parameter.
///
/// ```
/// use gangway_upstream::{RequestInfo, Sticky};
///
/// let sticky = Sticky::new(["JSESSIONID", "jsessionid"]).scolon_path_delim(true);
/// let info = RequestInfo::new().target("/app;jsessionid=abc.node2;v=1?x=1");
/// assert_eq!(sticky.route(&info), Some("node2"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    names: Vec<String>,
    separator: u8,
    scolon_path_delim: bool,
    failover: bool,
}

impl Sticky {
    /// Sticky sessions on these cookie / parameter names, in order of preference.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            names: names.into_iter().map(Into::into).collect(),
            separator: b'.',
            scolon_path_delim: false,
            failover: true,
        }
    }

    /// Apache `scolonpathdelim=On`: a URL parameter's value also ends at `;`.
    pub fn scolon_path_delim(mut self, on: bool) -> Self {
        self.scolon_path_delim = on;
        self
    }

    /// Apache `stickysessionsep`: the byte before the route (default `.`).
    pub fn separator(mut self, separator: u8) -> Self {
        self.separator = separator;
        self
    }

    /// Apache `nofailover=On` is `failover(false)`: when the route names a peer that is not
    /// available the request is refused ([`Error::RouteUnavailable`](crate::Error), 503)
    /// instead of balanced. A route that names no peer is balanced either way.
    pub fn failover(mut self, failover: bool) -> Self {
        self.failover = failover;
        self
    }

    /// The names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether a dead route falls back to balancing.
    pub fn fails_over(&self) -> bool {
        self.failover
    }

    /// The route the request asks for, if any.
    pub fn route<'r>(&self, request: &RequestInfo<'r>) -> Option<&'r str> {
        let target = request.target_str().as_bytes();
        let from_target = self.names.iter().find_map(|name| {
            url_values(target, name.as_bytes(), self.scolon_path_delim)
                .find_map(|value| route_of(value, self.separator))
        });
        let found = from_target.or_else(|| {
            let headers = request.header_map()?;
            self.names.iter().find_map(|name| {
                headers.get_all(COOKIE).iter().find_map(|cookie| {
                    cookie_values(cookie.as_bytes(), name.as_bytes())
                        .find_map(|value| route_of(value, self.separator))
                })
            })
        })?;
        std::str::from_utf8(found).ok()
    }
}

/// The text after the first `separator`, if it is not empty.
fn route_of(value: &[u8], separator: u8) -> Option<&[u8]> {
    let at = value.iter().position(|&byte| byte == separator)?;
    let route = &value[at + 1..];
    (!route.is_empty()).then_some(route)
}

/// Every start of `needle` in `haystack`.
fn occurrences(haystack: &[u8], needle: &[u8]) -> impl Iterator<Item = usize> {
    let last = if needle.is_empty() {
        0
    } else {
        (haystack.len() + 1).saturating_sub(needle.len())
    };
    let first = needle.first().copied();
    (0..last).filter(move |&at| Some(haystack[at]) == first && haystack[at..].starts_with(needle))
}

/// The values of URL parameter `name` in a request target.
fn url_values<'h>(target: &'h [u8], name: &[u8], scolon: bool) -> impl Iterator<Item = &'h [u8]> {
    occurrences(target, name).filter_map(move |at| {
        let starts_parameter = at == 0 || matches!(target[at - 1], b'/' | b';' | b'?' | b'&');
        let rest = &target[at + name.len()..];
        if !starts_parameter || rest.first() != Some(&b'=') {
            return None;
        }
        let value = &rest[1..];
        let end = value
            .iter()
            .position(|&byte| byte == b'?' || byte == b'&' || (scolon && byte == b';'))
            .unwrap_or(value.len());
        (end > 0).then_some(&value[..end])
    })
}

/// The values of cookie `name` in one `Cookie` header value.
fn cookie_values<'h>(header: &'h [u8], name: &[u8]) -> impl Iterator<Item = &'h [u8]> {
    occurrences(header, name).filter_map(move |at| {
        let starts_cookie = at == 0
            || matches!(header[at - 1], b';' | b',')
            || header[at - 1].is_ascii_whitespace();
        if !starts_cookie {
            return None;
        }
        let rest = &header[at + name.len()..];
        let spaces = rest
            .iter()
            .take_while(|byte| byte.is_ascii_whitespace())
            .count();
        let rest = &rest[spaces..];
        if rest.first() != Some(&b'=') {
            return None;
        }
        let value = &rest[1..];
        let end = value
            .iter()
            .position(|&byte| byte == b';' || byte == b',')
            .unwrap_or(value.len());
        (end > 0).then_some(&value[..end])
    })
}
