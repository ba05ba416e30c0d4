//! The identity and forwarding headers a proxy sets on the upstream request.

use std::net::IpAddr;

use http::header::HeaderValue;
use http::{HeaderMap, HeaderName};

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

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Sets the forwarding headers for a request from `client`:
///
/// - `X-Forwarded-For`: the client's values joined in order, then `client` appended (as
///   nginx `$proxy_add_x_forwarded_for`);
/// - `X-Real-IP`: `client`, replacing whatever the client sent;
/// - `X-Forwarded-Proto`: `proto`, replacing whatever the client sent.
pub fn set_forwarding(headers: &mut HeaderMap, client: IpAddr, proto: ForwardedProto) {
    let client = client.to_string();
    let mut forwarded_for = String::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        // A value that is not visible ASCII cannot be carried on safely; drop it.
        if let Ok(value) = value.to_str() {
            let value = value.trim();
            if !value.is_empty() {
                forwarded_for.push_str(value);
                forwarded_for.push_str(", ");
            }
        }
    }
    forwarded_for.push_str(&client);
    // Both values are built from visible ASCII and an IP address: always valid.
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if let Ok(value) = HeaderValue::from_str(&client) {
        headers.insert(X_REAL_IP, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto.as_str()));
}
