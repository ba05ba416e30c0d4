//! The opening handshake checks (RFC 6455 §4.2.1 and §4.1).

use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, Method};

use crate::Error;

/// A validated `Sec-WebSocket-Key`, kept to check the upstream's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketKey(String);

impl WebSocketKey {
    /// The key as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `Sec-WebSocket-Accept` value that answers this key (RFC 6455 §4.2.2), for a
    /// server that answers the upgrade itself.
    pub fn accept_value(&self) -> String {
        tungstenite::handshake::derive_accept_key(self.0.as_bytes())
    }
}

fn header_has_token(headers: &HeaderMap, name: http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Whether a request asks for a WebSocket upgrade at all (`Upgrade: websocket`), valid or
/// not. Requests that do are validated with [`validate_upgrade_request`].
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    header_has_token(headers, UPGRADE, "websocket")
}

/// Checks a client's opening handshake and returns its key.
pub fn validate_upgrade_request(
    method: &Method,
    headers: &HeaderMap,
) -> Result<WebSocketKey, Error> {
    if method != Method::GET {
        return Err(Error::Method {
            method: method.to_string(),
        });
    }
    if !is_upgrade_request(headers) {
        return Err(Error::UpgradeHeader);
    }
    if !header_has_token(headers, CONNECTION, "upgrade") {
        return Err(Error::ConnectionHeader);
    }
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key.to_str().map_err(|_| Error::Key)?,
        _ => return Err(Error::Key),
    };
    if !is_base64_of_16_bytes(key) {
        return Err(Error::Key);
    }
    let mut versions = headers.get_all(SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(version), None) if version == "13" => {}
        _ => return Err(Error::Version),
    }
    Ok(WebSocketKey(key.to_owned()))
}

/// Checks an HTTP/2 WebSocket request ([RFC 8441](https://www.rfc-editor.org/rfc/rfc8441):
/// `CONNECT` with `:protocol websocket`, passed as `protocol`) and turns its headers into
/// those of an HTTP/1.1 upgrade for the upstream: `Upgrade: websocket`, `Connection:
/// upgrade`, version 13 and a fresh random `Sec-WebSocket-Key`, which is returned to check
/// the upstream's 101. The caller sends the request as `GET`.
///
/// An HTTP/2 WebSocket has no key of its own; a `Sec-WebSocket-Version` other than 13 is
/// refused, as is a `:protocol` other than `websocket`.
pub fn upgrade_from_extended_connect(
    method: &Method,
    protocol: Option<&str>,
    headers: &mut HeaderMap,
) -> Result<WebSocketKey, Error> {
    if method != Method::CONNECT {
        return Err(Error::Method {
            method: method.to_string(),
        });
    }
    if !protocol.is_some_and(|protocol| protocol.eq_ignore_ascii_case("websocket")) {
        return Err(Error::UpgradeHeader);
    }
    let mut versions = headers.get_all(SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (None, _) => {}
        (Some(version), None) if version == "13" => {}
        _ => return Err(Error::Version),
    }
    let key = tungstenite::handshake::client::generate_key();
    let value = http::HeaderValue::from_str(&key).map_err(|_| Error::Key)?;
    headers.insert(UPGRADE, http::HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, http::HeaderValue::from_static("upgrade"));
    headers.insert(SEC_WEBSOCKET_VERSION, http::HeaderValue::from_static("13"));
    headers.insert(SEC_WEBSOCKET_KEY, value);
    Ok(WebSocketKey(key))
}

/// Whether an upstream's response headers carry the `Sec-WebSocket-Accept` that answers
/// `key` (RFC 6455 §4.1, point 4 of the client's checks).
pub fn accepts_key(headers: &HeaderMap, key: &WebSocketKey) -> bool {
    let expected = tungstenite::handshake::derive_accept_key(key.0.as_bytes());
    let mut accepts = headers.get_all(SEC_WEBSOCKET_ACCEPT).iter();
    matches!((accepts.next(), accepts.next()), (Some(value), None) if value.as_bytes() == expected.as_bytes())
}

/// 16 bytes in padded base64 are 22 symbols and `==`; the last symbol carries only
/// 2 significant bits, so it is one of `A`, `Q`, `g`, `w`.
fn is_base64_of_16_bytes(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes[22..] == *b"=="
        && bytes[..22]
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/')
        && matches!(bytes[21], b'A' | b'Q' | b'g' | b'w')
}
