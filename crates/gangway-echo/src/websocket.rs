//! The WebSocket echo on `/ws`.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION};
use http::header::{InvalidHeaderValue, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::Role;

use crate::echo::error_response;
use crate::error::Error;
use crate::server::stopped;

/// Validates the opening handshake and, when it is valid, answers `101` and echoes
/// messages on the upgraded connection in a new task that ends with the server.
pub(crate) fn accept(
    mut request: Request<Incoming>,
    shutdown: watch::Receiver<()>,
) -> Response<Full<Bytes>> {
    let key = match validate(request.method(), request.version(), request.headers()) {
        Ok(key) => key,
        Err(error) => {
            let version_mismatch = matches!(error, Error::WebSocketVersion { .. });
            let mut response = error_response(&error);
            if version_mismatch {
                // RFC 6455 §4.4: tell the client which version we speak.
                response
                    .headers_mut()
                    .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
            return response;
        }
    };
    let accept = match HeaderValue::try_from(derive_accept_key(&key)) {
        Ok(accept) => accept,
        Err(error) => return internal_error(&error),
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        tokio::select! {
            () = echo_messages(on_upgrade) => {}
            () = stopped(shutdown) => {}
        }
    });

    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// Checks a client's opening handshake (RFC 6455 §4.2.1) and returns its key.
pub(crate) fn validate(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<Vec<u8>, Error> {
    if method != Method::GET {
        return Err(Error::UpgradeMethod {
            method: method.clone(),
        });
    }
    if version != Version::HTTP_11 {
        return Err(Error::UpgradeVersion { version });
    }
    if !lists_token(headers, UPGRADE, "websocket") {
        return Err(Error::UpgradeHeader);
    }
    if !lists_token(headers, CONNECTION, "upgrade") {
        return Err(Error::ConnectionHeader);
    }
    let key = headers
        .get(SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|key| is_base64_nonce(key))
        .ok_or(Error::Key)?;
    let version = headers.get(SEC_WEBSOCKET_VERSION);
    if version.is_none_or(|version| version.as_bytes() != b"13") {
        return Err(Error::WebSocketVersion {
            got: version.map(|version| String::from_utf8_lossy(version.as_bytes()).into_owned()),
        });
    }
    Ok(key.to_vec())
}

/// Whether any `name` header lists `token` in its comma-separated values (ignoring case).
fn lists_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Whether `key` is 16 bytes in base64: 22 alphabet characters then `==`.
fn is_base64_nonce(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'+' || *byte == b'/')
}

fn internal_error(error: &InvalidHeaderValue) -> Response<Full<Bytes>> {
    tracing::error!(%error, "echo origin built an invalid Sec-WebSocket-Accept");
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// Echoes text and binary messages until the client closes or the connection fails.
async fn echo_messages(on_upgrade: OnUpgrade) {
    let upgraded: Upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(%error, "echo origin WebSocket upgrade failed");
            return;
        }
    };
    let mut socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    while let Some(message) = socket.next().await {
        let result = match message {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => socket.send(message).await,
            // tungstenite has already queued the pong, or the close frame echoing the
            // client's; push it out now rather than on the next read.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => {
                socket.flush().await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::debug!(%error, "echo origin WebSocket ended");
            return;
        }
    }
}
