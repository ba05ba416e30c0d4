//! Hop-by-hop header removal (RFC 9110 §7.6.1).

use http::HeaderMap;
use http::header::{CONNECTION, HeaderName, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};

/// Headers that describe one connection, never the message (RFC 9110 §7.6.1, plus the
/// obsolete `Keep-Alive`, `Proxy-Connection` and `Proxy-Authenticate`/`-Authorization`
/// pair that RFC 2616 listed and proxies still remove).
const ALWAYS: [&str; 4] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Removes every hop-by-hop header from `headers`: `Connection` and every header it names,
/// `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`,
/// `Trailer`, `Transfer-Encoding` and `Upgrade`.
///
/// A WebSocket route re-establishes `Upgrade` and `Connection: upgrade` itself after
/// calling this.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Names listed in Connection go first, while Connection is still there to read.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    for name in ALWAYS {
        headers.remove(name);
    }
}
