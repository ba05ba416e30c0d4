//! The origin: small fixed responses, streamed downloads, counted uploads, WebSocket echo.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, stream};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT};
use http::header::{SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::Role;

use crate::Error;

/// The body of every small response.
const HELLO: &[u8] = b"hello, world\n";

/// One chunk of a download: 64 KiB of zeros, shared by every response.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

type Body = BoxBody<Bytes, Infallible>;

/// Serves until the process is killed.
pub(crate) async fn run(listen: SocketAddr) -> Result<(), Error> {
    let listener = TcpListener::bind(listen).await?;
    println!("origin listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(serve))
                .with_upgrades();
            // A client that goes away mid-request is normal under load.
            let _ = connection.await;
        });
    }
}

async fn serve(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path();
    Ok(
        if path == "/ws" && request.headers().contains_key(UPGRADE) {
            websocket(request)
        } else if path == "/upload" {
            upload(request.into_body()).await
        } else if path == "/download" {
            let bytes = request
                .uri()
                .query()
                .and_then(|query| query.strip_prefix("bytes="))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            download(bytes)
        } else {
            let mut response = Response::new(Full::new(Bytes::from_static(HELLO)).boxed());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        },
    )
}

/// Reads the whole body, keeping nothing, and answers with the number of bytes read.
async fn upload(mut body: Incoming) -> Response<Body> {
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => bytes += frame.data_ref().map_or(0, |data| data.len() as u64),
            Err(_) => return status(StatusCode::BAD_REQUEST),
        }
    }
    Response::new(Full::new(Bytes::from(format!("{bytes}\n"))).boxed())
}

/// Streams `bytes` zero bytes in 64 KiB chunks, with a `Content-Length`.
fn download(bytes: u64) -> Response<Body> {
    let chunks = stream::unfold(bytes, |left| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(ZEROS.len() as u64);
        // n <= 64 KiB, so it fits any usize.
        #[allow(clippy::cast_possible_truncation)]
        let chunk = Bytes::from_static(&ZEROS[..n as usize]);
        Some((Ok(Frame::data(chunk)), left - n))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(bytes));
    response
}

/// Answers `101` and echoes every message on the upgraded connection.
fn websocket(mut request: Request<Incoming>) -> Response<Body> {
    let Some(key) = request.headers().get(SEC_WEBSOCKET_KEY) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let Ok(accept) = HeaderValue::try_from(derive_accept_key(key.as_bytes())) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = socket.next().await {
            let result = match message {
                Message::Text(_) | Message::Binary(_) => socket.send(message).await,
                _ => socket.flush().await,
            };
            if result.is_err() {
                return;
            }
        }
    });
    let mut response = status(StatusCode::SWITCHING_PROTOCOLS);
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    response
}

fn status(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::default().boxed());
    *response.status_mut() = status;
    response
}
