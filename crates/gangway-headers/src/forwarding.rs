//! The identity and forwarding headers a proxy sets on the upstream request.

use std::fmt::Write;
use std::net::IpAddr;

use http::header::{FORWARDED, HeaderValue};
use http::{HeaderMap, HeaderName};

use crate::ops::{header_value, with_scratch};
use crate::{Dropped, Network};

/// The scheme the client used, for `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedProto {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl ForwardedProto {
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// A client address as the forwarding headers carry it, written once for a connection:
/// every request on it then sets `X-Forwarded-For` (when the client sent no list of its
/// own) and `X-Real-IP` by sharing this value instead of writing the address again.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    ip: IpAddr,
    value: HeaderValue,
}

impl ClientAddr {
    /// The address and its header value.
    pub fn new(ip: IpAddr) -> Self {
        let mut text = String::with_capacity(15);
        push_ip(&mut text, ip);
        // An address's text is digits, hex letters, dots and colons: always a valid value.
        let value = HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static(""));
        Self { ip, value }
    }

    /// The address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The address as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.value
    }
}

impl From<IpAddr> for ClientAddr {
    fn from(ip: IpAddr) -> Self {
        Self::new(ip)
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Header names that carry a client's identity or the path a request took, removed from
/// every client request (see [`strip_identity_headers`]).
const IDENTITY_EXACT: [&str; 9] = [
    "x-real-ip",
    "forwarded",
    "x-client-verify",
    "x-client-dn",
    "x-client-s-dn",
    "x-client-i-dn",
    // RFC 9440.
    "client-cert",
    "client-cert-chain",
    // IIS Application Request Routing.
    "x-arr-clientcert",
];

/// Prefixes of identity header names: `X-Forwarded-For`/`-Proto`/`-Host`/`-Port`/
/// `-Client-Cert`..., `X-SSL-CERT`/`X-SSL-Client-*`..., `X-Client-Cert`/`-Certificate`...
const IDENTITY_PREFIXES: [&str; 3] = ["x-forwarded-", "x-ssl-", "x-client-cert"];

/// Whether `name` is on the built-in list of identity headers that a client may never send
/// to the upstream: `X-Forwarded-*`, `X-SSL-*` (so `X-SSL-CERT` and `X-SSL-Client-*`),
/// `X-Client-Cert*`, `X-Client-Verify`, `X-Client-DN`, `X-Client-S-DN`, `X-Client-I-DN`,
/// `X-Real-IP`, `Forwarded`, `Client-Cert` and `Client-Cert-Chain` (RFC 9440), and
/// `X-ARR-ClientCert` (IIS).
pub fn is_identity_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    IDENTITY_EXACT.contains(&name) || IDENTITY_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The prefixed identity headers clients and proxies actually send, removed by name
/// without collecting anything; a rarer one (`X-SSL-Cipher`...) is collected first.
const IDENTITY_COMMON: [&str; 9] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-client-cert",
    "x-ssl-cert",
    "x-ssl-client-cert",
    "x-client-cert",
    "x-client-certificate",
];

/// Removes from a client's request every identity header ([`is_identity_header`]) and
/// every header named in `extra` (the names that the configuration sets from the client's
/// identity, such as a vendor's `X-Device-Serial`).
///
/// Does not allocate unless the client sent an identity header outside the common ones
/// (`X-Forwarded-For`/`-Proto`/`-Host`/`-Port`, `X-Real-IP`, `Forwarded`, `X-SSL-CERT`...).
pub fn strip_identity_headers(headers: &mut HeaderMap, extra: &[HeaderName]) {
    let mut found = [""; 8];
    let mut count = 0;
    let mut rare = false;
    for name in headers.keys().filter(|name| is_identity_header(name)) {
        let known = IDENTITY_EXACT
            .iter()
            .chain(&IDENTITY_COMMON)
            .find(|known| name == **known);
        match known {
            Some(known) if count < found.len() => {
                found[count] = known;
                count += 1;
            }
            _ => rare = true,
        }
    }
    for name in &found[..count] {
        headers.remove(*name);
    }
    if rare {
        let forged: Vec<HeaderName> = headers
            .keys()
            .filter(|name| is_identity_header(name))
            .cloned()
            .collect();
        for name in forged {
            headers.remove(name);
        }
    }
    for name in extra {
        headers.remove(name);
    }
}

/// Sets the forwarding headers for a request from `client`, after removing every identity
/// header the client sent ([`strip_identity_headers`]):
///
/// - `X-Forwarded-For`: the client's values joined in order, then `client` appended (as
///   nginx `$proxy_add_x_forwarded_for`);
/// - `X-Real-IP`: `client`;
/// - `X-Forwarded-Proto`: `proto`.
///
/// This is [`ForwardingPolicy::new`] applied; the policy has the other options.
pub fn set_forwarding(headers: &mut HeaderMap, client: IpAddr, proto: ForwardedProto) {
    // The policy's only possible drop is an invalid host, and there is none here.
    let _ = ForwardingPolicy::new().apply(headers, &ClientAddr::new(client), proto, None, 0);
}

/// Which forwarding headers the proxy sets on the upstream request, and whose incoming
/// `X-Forwarded-For` / `Forwarded` it believes.
///
/// [`ForwardingPolicy::apply`] always removes every identity header the client sent
/// ([`strip_identity_headers`]) and then sets the enabled ones:
///
/// | header | default | value |
/// |---|---|---|
/// | `X-Forwarded-For` | on | the incoming list (only from a trusted peer) then the peer's address |
/// | `X-Real-IP` | on | the peer's address |
/// | `X-Forwarded-Proto` | on | `http` or `https` |
/// | `X-Forwarded-Host` | off | the request's host as the client sent it |
/// | `X-Forwarded-Port` | off | the port the client connected to |
/// | `Forwarded` (RFC 7239) | off | the incoming list (only from a trusted peer) then `for=...;host=...;proto=...` |
///
/// Trust: by default every peer's `X-Forwarded-For` is appended to, as nginx does. With
/// [`ForwardingPolicy::trusted_networks`], an incoming list is kept only when the peer is
/// in one of the networks; from any other peer it is replaced by the peer's address alone
/// (an empty list of networks trusts no one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardingPolicy {
    trusted: Option<Vec<Network>>,
    x_forwarded_for: bool,
    x_real_ip: bool,
    x_forwarded_proto: bool,
    x_forwarded_host: bool,
    x_forwarded_port: bool,
    forwarded: bool,
    identity_headers: Vec<HeaderName>,
}

impl Default for ForwardingPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl ForwardingPolicy {
    /// `X-Forwarded-For` appended to from every peer, `X-Real-IP` and `X-Forwarded-Proto`
    /// set; `X-Forwarded-Host`, `X-Forwarded-Port` and `Forwarded` not set (but still
    /// removed from the client's request).
    pub fn new() -> Self {
        Self {
            trusted: None,
            x_forwarded_for: true,
            x_real_ip: true,
            x_forwarded_proto: true,
            x_forwarded_host: false,
            x_forwarded_port: false,
            forwarded: false,
            identity_headers: Vec::new(),
        }
    }

    /// Keeps an incoming `X-Forwarded-For` / `Forwarded` only from peers in `networks`.
    pub fn trusted_networks(mut self, networks: impl IntoIterator<Item = Network>) -> Self {
        self.trusted = Some(networks.into_iter().collect());
        self
    }

    /// Whether to set `X-Forwarded-For`.
    pub fn x_forwarded_for(mut self, on: bool) -> Self {
        self.x_forwarded_for = on;
        self
    }

    /// Whether to set `X-Real-IP`.
    pub fn x_real_ip(mut self, on: bool) -> Self {
        self.x_real_ip = on;
        self
    }

    /// Whether to set `X-Forwarded-Proto`.
    pub fn x_forwarded_proto(mut self, on: bool) -> Self {
        self.x_forwarded_proto = on;
        self
    }

    /// Whether to set `X-Forwarded-Host`.
    pub fn x_forwarded_host(mut self, on: bool) -> Self {
        self.x_forwarded_host = on;
        self
    }

    /// Whether to set `X-Forwarded-Port`.
    pub fn x_forwarded_port(mut self, on: bool) -> Self {
        self.x_forwarded_port = on;
        self
    }

    /// Whether to set `Forwarded` (RFC 7239).
    pub fn forwarded(mut self, on: bool) -> Self {
        self.forwarded = on;
        self
    }

    /// One more header to remove from every client request, besides the built-in list of
    /// [`is_identity_header`].
    pub fn identity_header(mut self, name: HeaderName) -> Self {
        if !self.identity_headers.contains(&name) {
            self.identity_headers.push(name);
        }
        self
    }

    /// The extra identity headers of [`ForwardingPolicy::identity_header`].
    pub fn identity_headers(&self) -> &[HeaderName] {
        &self.identity_headers
    }

    /// Whether an incoming `X-Forwarded-For` / `Forwarded` from `peer` is kept.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        match &self.trusted {
            None => true,
            Some(networks) => networks.iter().any(|network| network.contains(peer)),
        }
    }

    /// Appends to `out` the `X-Forwarded-For` value for a request from `peer` whose headers
    /// as received are `incoming`: the incoming values (when `peer` is trusted), each
    /// trimmed, joined with `, `, then `peer`. This is the value of
    /// `$proxy_add_x_forwarded_for`, so that a configured
    /// `X-Forwarded-For: $proxy_add_x_forwarded_for` follows the trust rule too.
    ///
    /// An incoming value that is not visible ASCII is left out.
    pub fn write_x_forwarded_for(&self, incoming: &HeaderMap, peer: IpAddr, out: &mut String) {
        if self.is_trusted(peer) {
            push_list(incoming, &X_FORWARDED_FOR, out);
        }
        push_ip(out, peer);
    }

    /// Applies the policy to a request from `client` (the TCP peer, or the address the PROXY
    /// protocol gave), which it reached over `proto`, with the `Host` the client sent
    /// (`host`, for `X-Forwarded-Host` and `Forwarded`), on local port `port` (for
    /// `X-Forwarded-Port`).
    ///
    /// Reads the incoming `X-Forwarded-For` and `Forwarded`, removes every identity header
    /// ([`strip_identity_headers`] with [`ForwardingPolicy::identity_headers`]), then sets
    /// the enabled headers. Returns `X-Forwarded-Host` or `Forwarded` when `host` could not
    /// be carried in a header value (they are then not set).
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        client: &ClientAddr,
        proto: ForwardedProto,
        host: Option<&str>,
        port: u16,
    ) -> Vec<Dropped> {
        with_scratch(|scratch| self.apply_with(headers, client, proto, host, port, scratch))
    }

    fn apply_with(
        &self,
        headers: &mut HeaderMap,
        client: &ClientAddr,
        proto: ForwardedProto,
        host: Option<&str>,
        port: u16,
        scratch: &mut String,
    ) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        let peer = client.ip();
        let trusted = self.is_trusted(peer);

        let x_forwarded_for = self.x_forwarded_for.then(|| {
            // Nothing to keep from the client: the list is its address alone.
            if !trusted || !headers.contains_key(&X_FORWARDED_FOR) {
                return Ok(client.header_value().clone());
            }
            scratch.clear();
            self.write_x_forwarded_for(headers, peer, scratch);
            header_value(&X_FORWARDED_FOR, scratch)
        });
        let forwarded = self.forwarded.then(|| {
            scratch.clear();
            if trusted {
                push_list(headers, &FORWARDED, scratch);
            }
            write_forwarded_element(scratch, peer, host, proto);
            header_value(&FORWARDED, scratch)
        });

        strip_identity_headers(headers, &self.identity_headers);

        let mut set = |name: HeaderName, value: Option<Result<HeaderValue, Dropped>>| match value {
            Some(Ok(value)) => {
                headers.insert(name, value);
            }
            Some(Err(report)) => dropped.push(report),
            None => {}
        };
        let x_real_ip = self.x_real_ip.then(|| Ok(client.header_value().clone()));
        set(X_FORWARDED_FOR, x_forwarded_for);
        set(FORWARDED, forwarded);
        set(X_REAL_IP, x_real_ip);
        if self.x_forwarded_proto {
            let value = HeaderValue::from_static(proto.as_str());
            set(X_FORWARDED_PROTO, Some(Ok(value)));
        }
        if self.x_forwarded_host {
            if let Some(host) = host.filter(|host| !host.is_empty()) {
                set(
                    X_FORWARDED_HOST,
                    Some(header_value(&X_FORWARDED_HOST, host)),
                );
            }
        }
        if self.x_forwarded_port {
            scratch.clear();
            let _ = write!(scratch, "{port}");
            set(
                X_FORWARDED_PORT,
                Some(header_value(&X_FORWARDED_PORT, scratch)),
            );
        }
        dropped
    }
}

/// Appends the values of `name` in `headers`, each trimmed and followed by `, `, leaving out
/// empty ones and those that are not visible ASCII.
fn push_list(headers: &HeaderMap, name: &HeaderName, out: &mut String) {
    for value in headers.get_all(name) {
        if let Ok(value) = value.to_str() {
            let value = value.trim_matches([' ', '\t']);
            if !value.is_empty() {
                out.push_str(value);
                out.push_str(", ");
            }
        }
    }
}

/// One RFC 7239 `Forwarded` element: `for=...;host=...;proto=...`.
fn write_forwarded_element(
    out: &mut String,
    peer: IpAddr,
    host: Option<&str>,
    proto: ForwardedProto,
) {
    // An IPv6 node is `"[...]"` (RFC 7239 §6); writing to a String cannot fail.
    match peer {
        IpAddr::V4(_) => {
            out.push_str("for=");
            push_ip(out, peer);
        }
        IpAddr::V6(_) => {
            out.push_str("for=\"[");
            push_ip(out, peer);
            out.push_str("]\"");
        }
    }
    if let Some(host) = host.filter(|host| !host.is_empty()) {
        out.push_str(";host=");
        push_token_or_quoted(out, host);
    }
    out.push_str(";proto=");
    out.push_str(proto.as_str());
}

/// Appends `ip` as `Display` writes it. IPv4, what nearly every request carries, is
/// written digit by digit: the formatting machinery costs several times more, twice per
/// request.
pub(crate) fn push_ip(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        // Writing to a String cannot fail.
        let _ = write!(out, "{ip}");
        return;
    };
    for (index, octet) in v4.octets().into_iter().enumerate() {
        if index > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

/// `value` as an RFC 9110 token when it is one, else as a quoted-string.
fn push_token_or_quoted(out: &mut String, value: &str) {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if value.bytes().all(tchar) {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}
