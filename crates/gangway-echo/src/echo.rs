//! The HTTP echo: a JSON description of the request.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use crate::error::Error;

/// The largest request body the echo origin echoes, in bytes (1 MiB); a larger body is
/// answered with `413 Payload Too Large`.
pub const MAX_ECHO_BODY: usize = 1024 * 1024;

/// Answers any non-WebSocket request with the JSON echo of it.
pub(crate) async fn respond(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match read_body(&parts.headers, body).await {
        Ok(body) => body,
        Err(error) => return error_response(&error),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let echo = json!({
        "method": parts.method.as_str(),
        "path": path,
        "version": format!("{:?}", parts.version),
        "headers": headers_json(&parts.headers),
        "body": String::from_utf8_lossy(&body),
        "body_bytes": body.len(),
    });
    json_response(StatusCode::OK, &echo)
}

/// Reads the whole body, refusing (before reading anything, when the length is declared)
/// one longer than [`MAX_ECHO_BODY`].
async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, Error> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_ECHO_BODY as u64) {
        return Err(Error::BodyTooLarge {
            limit: MAX_ECHO_BODY,
        });
    }
    match Limited::new(body, MAX_ECHO_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(source) if source.is::<LengthLimitError>() => Err(Error::BodyTooLarge {
            limit: MAX_ECHO_BODY,
        }),
        Err(source) => Err(Error::Body { source }),
    }
}

/// Maps each header name to its value, or to an array of its values when it repeats.
/// Values that are not UTF-8 are converted lossily.
pub(crate) fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|value| Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let value = match <[Value; 1]>::try_from(values) {
            Ok([single]) => single,
            Err(values) => Value::Array(values),
        };
        map.insert(name.as_str().to_owned(), value);
    }
    Value::Object(map)
}

/// The response for a refused request: its status and `{"error": "..."}`.
/// When the request body was not read to its end the connection is closed after the answer,
/// rather than left waiting for the rest of the body.
pub(crate) fn error_response(error: &Error) -> Response<Full<Bytes>> {
    tracing::debug!(%error, "echo origin refused a request");
    let mut response = json_response(error.status(), &json!({ "error": error.to_string() }));
    if matches!(error, Error::BodyTooLarge { .. } | Error::Body { .. }) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
