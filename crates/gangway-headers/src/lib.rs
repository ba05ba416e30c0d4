//! Header operations for a reverse proxy, with no I/O: what the proxy does to headers
//! between the client and the upstream, and back.
//!
//! - [`Template`]: a value such as `https://$host$request_uri`, parsed and checked once at
//!   configuration load (an unknown variable is an error with its column) and rendered per
//!   request from a [`Variables`] lookup that the engine implements. The variables are
//!   nginx's ([`Variable`]): `$remote_addr`, `$host`, `$http_<header>`,
//!   `$proxy_add_x_forwarded_for`, `$connection_upgrade`, `$ssl_client_escaped_cert` and the
//!   other TLS identity variables, and route captures `$1`..`$9` and named ones.
//! - [`HeaderOps`]: compiled set / add / remove operations ([`HeaderOp`]), merged across
//!   listener, route and upstream by header name ([`HeaderOps::merge`]); response operations
//!   may be `always`, so that they reach the proxy's own error responses too. A rendered
//!   value that contains CR, LF, NUL or another control byte is never emitted: the header
//!   is left out and reported as [`Dropped`] for the engine to log.
//! - [`ForwardingPolicy`]: `X-Forwarded-For` (appended, or kept only from trusted
//!   [`Network`]s), `X-Real-IP`, `X-Forwarded-Proto`/`-Host`/`-Port` and
//!   [RFC 7239](https://www.rfc-editor.org/rfc/rfc7239) `Forwarded`, after removing every
//!   identity header the client sent ([`strip_identity_headers`]: `X-SSL-CERT`,
//!   `X-Forwarded-*`, `X-Real-IP`...). [`set_forwarding`] is the default policy.
//! - [`strip_hop_by_hop`]: removes the hop-by-hop headers of
//!   [RFC 9110 §7.6.1](https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1), including
//!   every header that `Connection` names; [`strip_hop_by_hop_keep_upgrade`] keeps a
//!   WebSocket upgrade on WebSocket routes only.
//! - [`LocationRewrite`] and [`CookieRewrite`]: the upstream's URLs in `Location`,
//!   `Content-Location` and `Refresh`, and `Set-Cookie` domains and paths, made public
//!   (nginx `proxy_redirect`, `proxy_cookie_domain`, `proxy_cookie_path`; Apache
//!   `ProxyPassReverse`).
//!
//! It is not for matching requests (that is `gangway-route`) or for anything that touches
//! a socket.
//!
//! # One request
//!
//! Request operations read the request as the client sent it, so they are rendered first;
//! then the headers are stripped and set. Response operations and rewrites apply to the
//! upstream's response; only the `always` operations apply to the proxy's own responses.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//!
//! use gangway_headers::{
//!     ClientAddr, ForwardedProto, ForwardingPolicy, HeaderOp, HeaderOps, LocationRewrite, Template,
//!     Variable, Variables, strip_hop_by_hop_keep_upgrade,
//! };
//! use http::{HeaderMap, HeaderName, HeaderValue};
//!
//! /// The engine's answers for one request.
//! struct Request<'a> {
//!     headers: &'a HeaderMap,
//!     client: IpAddr,
//!     policy: &'a ForwardingPolicy,
//! }
//! impl Variables for Request<'_> {
//!     fn write(&self, variable: &Variable, out: &mut String) -> bool {
//!         match variable {
//!             Variable::Host => out.push_str("ucserver.example.com"),
//!             Variable::Scheme => out.push_str("https"),
//!             Variable::RemoteAddr => out.push_str(&self.client.to_string()),
//!             Variable::ProxyAddXForwardedFor => {
//!                 self.policy.write_x_forwarded_for(self.headers, self.client, out)
//!             }
//!             _ => return false,
//!         }
//!         true
//!     }
//! }
//!
//! // Configuration load: parse and compile once.
//! let listener = HeaderOps::from_ops([
//!     HeaderOp::Set(HeaderName::from_static("x-real-ip"), Template::parse("$remote_addr")?),
//!     HeaderOp::Set(HeaderName::from_static("x-nginx-proxy"), Template::parse("true")?),
//! ])?;
//! let route = HeaderOps::from_ops([HeaderOp::Set(
//!     HeaderName::from_static("x-forwarded-for"),
//!     Template::parse("$proxy_add_x_forwarded_for")?,
//! )])?;
//! let request_ops = listener.merge(&route); // the route keeps the listener's headers
//! let mut response_ops = HeaderOps::new();
//! response_ops.push_always(HeaderOp::Set(
//!     HeaderName::from_static("strict-transport-security"),
//!     Template::parse("max-age=63072000")?,
//! ))?;
//! let policy = ForwardingPolicy::new();
//! let redirects = LocationRewrite::Pairs(vec![(
//!     "http://10.0.0.1:8080/".to_owned(),
//!     Template::parse("$scheme://$host/")?,
//! )]);
//!
//! // One request: a client that tries to smuggle its own identity header.
//! let mut headers = HeaderMap::new();
//! headers.insert("x-ssl-cert", HeaderValue::from_static("forged"));
//! headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
//! let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
//! let rendered = request_ops.render(&Request { headers: &headers, client, policy: &policy });
//! strip_hop_by_hop_keep_upgrade(&mut headers, false);
//! // Made once per connection: every request on it shares the address's header value.
//! let client_addr = ClientAddr::new(client);
//! let mut dropped = policy.apply(&mut headers, &client_addr, ForwardedProto::Https, None, 443);
//! dropped.extend(rendered.apply(&mut headers));
//! assert!(dropped.is_empty());
//! assert_eq!(headers.get("x-ssl-cert"), None);
//! assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 192.0.2.1");
//! assert_eq!(headers["x-real-ip"], "192.0.2.1");
//! assert_eq!(headers["x-nginx-proxy"], "true");
//!
//! // Its response: an upstream redirect made public, HSTS added.
//! let no_headers = HeaderMap::new();
//! let facts = Request { headers: &no_headers, client, policy: &policy };
//! let mut response = HeaderMap::new();
//! response.insert("location", HeaderValue::from_static("http://10.0.0.1:8080/x"));
//! redirects.apply(&mut response, &facts);
//! response_ops.apply(&mut response, &facts);
//! assert_eq!(response["location"], "https://ucserver.example.com/x");
//! assert_eq!(response["strict-transport-security"], "max-age=63072000");
//!
//! // The proxy's own 502 gets the `always` operations only.
//! let mut error_response = HeaderMap::new();
//! response_ops.apply_always(&mut error_response, &facts);
//! assert_eq!(error_response["strict-transport-security"], "max-age=63072000");
//! # Ok::<(), gangway_headers::Error>(())
//! ```
//!
//! See `docs/headers.md` in the repository for the full reference: every variable, the
//! merge rule, the identity-header list and the differences from nginx.

mod error;
mod forwarding;
#[doc(hidden)]
pub mod fuzzing;
mod hop_by_hop;
mod network;
mod ops;
mod rewrite;
mod template;
#[cfg(test)]
mod tests;

pub use error::Error;
pub use forwarding::{
    ClientAddr, ForwardedProto, ForwardingPolicy, is_identity_header, set_forwarding,
    strip_identity_headers,
};
pub use hop_by_hop::{strip_hop_by_hop, strip_hop_by_hop_keep_upgrade};
pub use network::Network;
pub use ops::{Dropped, HeaderOp, HeaderOps, Rendered};
pub use rewrite::{CookieRewrite, LocationRewrite};
pub use template::{Template, Variable, Variables};
