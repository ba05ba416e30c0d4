//! Hop-by-hop header removal (RFC 9110 §7.6.1).

use http::HeaderMap;
use http::header::{
    CONNECTION, HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};

/// Headers that describe one connection, never the message (RFC 9110 §7.6.1, plus the
/// obsolete `Keep-Alive`, `Proxy-Connection` and `Proxy-Authenticate`/`-Authorization`
/// pair that RFC 2616 listed and proxies still remove).
const ALWAYS: [HeaderName; 4] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
];

/// Whether a `Connection` token names nothing beyond what [`strip_hop_by_hop`] removes
/// anyway (or nothing at all: `close`).
fn removed_anyway(token: &str) -> bool {
    [
        "close",
        "upgrade",
        "te",
        "trailer",
        "transfer-encoding",
        "connection",
    ]
    .into_iter()
    .chain(ALWAYS.iter().map(HeaderName::as_str))
    .any(|name| token.eq_ignore_ascii_case(name))
}

/// Removes every hop-by-hop header from `headers`: `Connection` and every header it names,
/// `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`,
/// `Trailer`, `Transfer-Encoding` and `Upgrade`.
///
/// A WebSocket route re-establishes `Upgrade` and `Connection: upgrade` itself after
/// calling this.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds the hop-by-hop ones present, so a message carrying
    // none (or only `Connection`) costs no hash lookup per absent name. Distinct names
    // are at most the nine listed, so the array never overflows.
    let mut present: [Option<HeaderName>; 9] = Default::default();
    let mut count = 0;
    let mut connection = false;
    for name in headers.keys() {
        if name == CONNECTION {
            connection = true;
        }
        if count < present.len() && is_hop_by_hop(name) {
            present[count] = Some(name.clone());
            count += 1;
        }
    }
    // Names listed in Connection go first, while Connection is still there to read. The
    // usual tokens (`close`, `keep-alive`, `upgrade`) name nothing that is not removed
    // anyway, so the common case collects nothing and does not allocate.
    if connection {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|token| !removed_anyway(token))
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in present.into_iter().flatten() {
        headers.remove(name);
    }
}

/// Whether `name` is removed at every hop whatever `Connection` says.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE].contains(name) || ALWAYS.contains(name)
}

/// Whether `headers` ask for a WebSocket upgrade: `Connection` lists `upgrade` and
/// `Upgrade` lists `websocket` (both compared without case, RFC 9110 §7.8).
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let lists = |name: HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| {
                // An Upgrade item may carry a version: `websocket/13`.
                let item = item.trim();
                let item = item.split('/').next().unwrap_or(item);
                item.eq_ignore_ascii_case(token)
            })
    };
    lists(CONNECTION, "upgrade") && lists(UPGRADE, "websocket")
}

/// [`strip_hop_by_hop`], then, when `websocket_route` is true and the message asked for a
/// WebSocket upgrade, re-establishes `Upgrade: websocket` and `Connection: upgrade`.
/// Returns whether it did.
///
/// This is the one place where `Upgrade` survives a hop: only on a route configured for
/// WebSocket, only as `websocket`, never with the other hop-by-hop headers the client named
/// in `Connection`. It serves the upgrade request and the upstream's `101` response alike.
pub fn strip_hop_by_hop_keep_upgrade(headers: &mut HeaderMap, websocket_route: bool) -> bool {
    let upgrade = websocket_route && is_websocket_upgrade(headers);
    strip_hop_by_hop(headers);
    if upgrade {
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
    upgrade
}
