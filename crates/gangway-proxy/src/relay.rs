//! The `relay` route action: a device and a viewer paired by session id (secure
//! shadowing), answered by the proxy itself rather than an upstream.

use std::sync::Arc;
use std::time::SystemTime;

use gangway_tunnel::{Relay, WebSocketClose, validate_upgrade_request};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::body::ResponseBody;
use crate::error::RequestError;
use crate::metrics::RouteMetrics;
use crate::service::{Connection, SHUTDOWN_CLOSE};
use crate::tunnels::{TunnelInfo, TunnelKind};

/// Admits the peer (400 for a malformed upgrade, the relay's 400/403/404/409 for a refused
/// peer), answers 101, and runs the session in a task that shutdown waits for.
pub(crate) fn serve(
    conn: &Connection,
    mut request: Request<Incoming>,
    relay: &Relay,
    prefix: &str,
    route: Arc<str>,
    metrics: Arc<RouteMetrics>,
) -> Result<Response<ResponseBody>, RequestError> {
    let key = validate_upgrade_request(request.method(), request.headers())
        .map_err(RequestError::BadUpgrade)?;
    let device_verified = conn
        .tls
        .as_ref()
        .is_some_and(|tls| tls.identity().verified().is_some());
    let admission = relay
        .admit_uri(prefix, request.uri(), device_verified, SystemTime::now())
        .map_err(RequestError::Relay)?;
    let accept = HeaderValue::try_from(key.accept_value())
        .map_err(|_| RequestError::BadUpgrade(gangway_tunnel::Error::Key))?;
    let upgrade = hyper::upgrade::on(&mut request);
    let guard = conn.tunnels.enter();
    let client = conn.client;
    let role = admission.role().as_str();
    let tunnel = conn.listener.tunnels.open(
        TunnelInfo {
            kind: TunnelKind::Relay { role },
            listener: conn.listener.name.clone(),
            route: route.clone(),
            peer: None,
            client,
            fingerprint: conn.client_fingerprint(),
        },
        metrics,
    );
    tokio::spawn(async move {
        match upgrade.await {
            Ok(io) => {
                // Closed by an admin call, the peer's side reads as ended and the relay
                // ends the session for both. Near the end of the drain the relay closes
                // it with 1001 to both peers, as a proxied WebSocket is closed.
                let close = async {
                    let window = guard.closing().await;
                    WebSocketClose {
                        timeout: window,
                        ..SHUTDOWN_CLOSE
                    }
                };
                let io = tunnel.client_io(TokioIo::new(io));
                let report = admission.run_until(io, close).await;
                tracing::info!(
                    target: "gangway::access",
                    %client, %route, role,
                    device_to_viewer = report.device_to_viewer,
                    viewer_to_device = report.viewer_to_device,
                    end = ?report.end,
                    "relay session ended"
                );
            }
            Err(error) => {
                tracing::warn!(%client, %route, role, "relay upgrade did not complete: {error}");
            }
        }
    });
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    Ok(response)
}
