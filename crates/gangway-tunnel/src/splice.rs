//! Copying bytes both ways between two upgraded connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceEnd {
    /// Both sides closed their sending half.
    Closed,
    /// No byte moved in either direction for the idle timeout.
    IdleTimeout,
    /// A read or write failed (a reset, a broken pipe).
    Error,
}

/// What a tunnel carried, for the log line written when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpliceReport {
    /// Bytes read from the client side and written to the upstream side.
    pub client_to_upstream: u64,
    /// Bytes read from the upstream side and written to the client side.
    pub upstream_to_client: u64,
    /// Why it ended.
    pub end: SpliceEnd,
}

/// A read buffer per direction; WebSocket messages are small, and a larger read only
/// delays nothing because every read is written on at once.
const BUFFER_SIZE: usize = 16 * 1024;
/// What an idle or chatty tunnel holds per direction: small messages fit, and a read that
/// fills it grows the buffer to [`BUFFER_SIZE`] for bulk traffic.
const INITIAL_BUFFER_SIZE: usize = 2 * 1024;

/// Copies bytes between `client` and `upstream` in both directions until both have closed,
/// either fails, or `idle_timeout` passes with no byte in either direction. A side that
/// closes its sending half has that half-close passed on to the other side.
pub async fn splice<C, U>(client: C, upstream: U, idle_timeout: Duration) -> SpliceReport
where
    C: AsyncRead + AsyncWrite + Send,
    U: AsyncRead + AsyncWrite + Send,
{
    let start = Instant::now();
    // Milliseconds since `start` of the last byte moved, shared by both directions.
    let last_activity = AtomicU64::new(0);
    let (up_count, down_count) = (AtomicU64::new(0), AtomicU64::new(0));
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream);
    let up = copy_one_way(
        client_read,
        upstream_write,
        start,
        &last_activity,
        &up_count,
    );
    let down = copy_one_way(
        upstream_read,
        client_write,
        start,
        &last_activity,
        &down_count,
    );
    let end = tokio::select! {
        (up_ok, down_ok) = async { tokio::join!(up, down) } => {
            if up_ok && down_ok { SpliceEnd::Closed } else { SpliceEnd::Error }
        }
        () = watch_idle(start, &last_activity, idle_timeout) => SpliceEnd::IdleTimeout,
    };
    SpliceReport {
        client_to_upstream: up_count.load(Ordering::Relaxed),
        upstream_to_client: down_count.load(Ordering::Relaxed),
        end,
    }
}

async fn copy_one_way<R, W>(
    mut reader: R,
    mut writer: W,
    start: Instant,
    last_activity: &AtomicU64,
    copied: &AtomicU64,
) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; INITIAL_BUFFER_SIZE];
    loop {
        let read = match reader.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => read,
            Err(_) => return false,
        };
        let filled = read == buffer.len();
        mark(start, last_activity);
        if writer.write_all(&buffer[..read]).await.is_err() || writer.flush().await.is_err() {
            return false;
        }
        copied.fetch_add(read as u64, Ordering::Relaxed);
        mark(start, last_activity);
        if filled && buffer.len() < BUFFER_SIZE {
            buffer.resize(BUFFER_SIZE, 0);
        }
    }
    // Pass the half-close on; the other direction keeps running until it closes too.
    writer.shutdown().await.is_ok()
}

fn mark(start: Instant, last_activity: &AtomicU64) {
    let elapsed = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    last_activity.store(elapsed, Ordering::Relaxed);
}

async fn watch_idle(start: Instant, last_activity: &AtomicU64, idle_timeout: Duration) {
    loop {
        let last = Duration::from_millis(last_activity.load(Ordering::Relaxed));
        let deadline = start + last + idle_timeout;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}
