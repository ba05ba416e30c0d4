//! Just enough HTTP/1.1 for the load clients: one `GET /`, the whole response read.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Error;

/// Sends `GET /` and reads the whole response (by `Content-Length`, or to the last chunk).
/// With `close`, asks for `Connection: close` and reads on until the server closes, so that
/// the server, not the client, is left with the closed socket's `TIME_WAIT`.
pub(crate) async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    close: bool,
) -> Result<(), Error> {
    let head: &[u8] = if close {
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    };
    stream.write_all(head).await?;
    let mut response = Vec::with_capacity(1024);
    let mut buffer = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify, after a whole response.
            Err(_) if close && complete(&response)? => 0,
            Err(error) => return Err(error.into()),
        };
        if n == 0 {
            if complete(&response)? {
                return Ok(());
            }
            return Err("connection closed before the response ended".into());
        }
        response.extend_from_slice(&buffer[..n]);
        if !close && complete(&response)? {
            return Ok(());
        }
    }
}

/// Whether `response` holds a whole `200` response.
fn complete(response: &[u8]) -> Result<bool, Error> {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(false);
    };
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(format!("unexpected response: {head}").into());
    }
    let body = response.len() - (end + 4);
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok());
    Ok(match length {
        Some(length) => body >= length,
        None => response.ends_with(b"0\r\n\r\n"),
    })
}
