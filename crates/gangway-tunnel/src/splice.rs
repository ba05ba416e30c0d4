//! Copying bytes both ways between two upgraded connections, and closing a WebSocket
//! tunnel with a close handshake when the proxy ends it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::frames::{FrameTracker, MAX_CLOSE_FRAME, OPCODE_CLOSE, close_frame};
use crate::gate::{Gate, Gated};

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpliceEnd {
    /// Both sides closed their sending half.
    Closed,
    /// No byte moved in either direction for the idle timeout. A WebSocket tunnel
    /// ([`splice_websocket`]) is then closed with 1001 "idle timeout" as on `close` (and
    /// cut if that handshake does not finish within 5 s); a raw one is dropped.
    IdleTimeout,
    /// A read or write failed (a reset, a broken pipe).
    Error,
    /// The proxy closed the tunnel ([`splice_websocket`]): both sides got its close frame
    /// and the tunnel ended within the close timeout.
    ProxyClosed,
    /// The proxy closed the tunnel but the close handshake did not finish within the close
    /// timeout (or a side broke the framing), so the connections were dropped.
    ProxyCut,
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

/// How the proxy ends a WebSocket tunnel itself ([`splice_websocket`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocketClose {
    /// The close code both sides get ([RFC 6455 §7.4](https://www.rfc-editor.org/rfc/rfc6455#section-7.4)),
    /// such as 1001, going away.
    pub code: u16,
    /// The close reason, cut to 123 bytes.
    pub reason: &'static str,
    /// How long the whole close may take: each direction reaching the end of the frame in
    /// flight, the close frames written, and both replies read. After it, both
    /// connections are dropped.
    pub timeout: Duration,
}

/// The close an idle WebSocket tunnel gets.
const IDLE_CLOSE: WebSocketClose = WebSocketClose {
    code: 1001,
    reason: "idle timeout",
    timeout: Duration::from_secs(5),
};

/// A read buffer per direction; WebSocket messages are small, and a larger read only
/// delays nothing because every read is written on at once.
const BUFFER_SIZE: usize = 16 * 1024;
/// What an idle or chatty tunnel holds per direction: small messages fit, and a read that
/// fills it grows the buffer to [`BUFFER_SIZE`] for bulk traffic.
const INITIAL_BUFFER_SIZE: usize = 2 * 1024;

/// Copies bytes between `client` and `upstream` in both directions until both have closed,
/// either fails, or `idle_timeout` passes with no byte in either direction. A side that
/// closes its sending half has that half-close passed on to the other side.
///
/// It does not look at the bytes; for a WebSocket tunnel that the proxy may need to close
/// itself, use [`splice_websocket`].
pub async fn splice<C, U>(client: C, upstream: U, idle_timeout: Duration) -> SpliceReport
where
    C: AsyncRead + AsyncWrite + Send,
    U: AsyncRead + AsyncWrite + Send,
{
    run(
        client,
        upstream,
        idle_timeout,
        false,
        std::future::pending::<WebSocketClose>(),
    )
    .await
}

/// Splices a WebSocket tunnel as [`splice`] does, following the frame boundaries of each
/// direction as the bytes pass, and closes it with a close handshake when `close`
/// completes.
///
/// On `close`, each direction finishes the frame in flight (so no close frame is written
/// into the middle of another frame), then the client gets an unmasked close frame and
/// the upstream a masked one (with a random key), both with the requested code and
/// reason. A side that already sent its own close frame gets none from the proxy.
/// Afterwards nothing more is passed on: what each side sends is read and dropped until
/// its close frame (the reply) arrives, and then its connection is shut down. When that
/// is not done within the close timeout, or a side's bytes are not valid WebSocket
/// framing, both connections are dropped instead. A tunnel idle for `idle_timeout` is
/// closed the same way, with 1001 "idle timeout".
pub async fn splice_websocket<C, U, F>(
    client: C,
    upstream: U,
    idle_timeout: Duration,
    close: F,
) -> SpliceReport
where
    C: AsyncRead + AsyncWrite + Send,
    U: AsyncRead + AsyncWrite + Send,
    F: Future<Output = WebSocketClose> + Send,
{
    run(client, upstream, idle_timeout, true, close).await
}

/// What both directions share.
struct Shared {
    start: Instant,
    /// Milliseconds since `start` of the last byte moved, shared by both directions.
    last_activity: AtomicU64,
    /// Woken when a direction finds that the tunnel cannot be closed cleanly.
    cut: Notify,
}

async fn run<C, U, F>(
    client: C,
    upstream: U,
    idle_timeout: Duration,
    framed: bool,
    close: F,
) -> SpliceReport
where
    C: AsyncRead + AsyncWrite + Send,
    U: AsyncRead + AsyncWrite + Send,
    F: Future<Output = WebSocketClose> + Send,
{
    let shared = Shared {
        start: Instant::now(),
        last_activity: AtomicU64::new(0),
        cut: Notify::new(),
    };
    let (up_count, down_count) = (AtomicU64::new(0), AtomicU64::new(0));
    let (requests, requested) = watch::channel(None);
    let framing = |mask| {
        framed.then(|| Framing {
            tracker: FrameTracker::new(),
            requested: Some(requested.clone()),
            mask,
        })
    };
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream);
    // What waits for a close, a cut or the idle deadline is polled only when woken itself,
    // not on every wake-up for bytes (see the gate module).
    let gate = Gate::new();
    // Client to server frames are masked (RFC 6455 §5.3), server to client ones are not.
    let up = copy_one_way(
        client_read,
        upstream_write,
        &shared,
        &up_count,
        framing(true),
        &gate,
    );
    let down = copy_one_way(
        upstream_read,
        client_write,
        &shared,
        &down_count,
        framing(false),
        &gate,
    );
    // A WebSocket that idles out is closed with the handshake too, so both ends see a
    // clean close (1001) instead of a dropped connection; a raw tunnel is just dropped.
    let idle_closing = AtomicBool::new(false);
    // The watchers are made inside this one future: made outside and moved in, each would
    // also keep its room in the splice's future for the tunnel's life.
    let mut control = std::pin::pin!(async {
        let closer = async {
            let request = close.await;
            requests.send_replace(Some(request));
            tokio::time::sleep(request.timeout).await;
        };
        let idle = async {
            watch_idle(&shared, idle_timeout).await;
            if !framed || requests.borrow().is_some() {
                return;
            }
            idle_closing.store(true, Ordering::Relaxed);
            requests.send_replace(Some(IDLE_CLOSE));
            tokio::time::sleep(IDLE_CLOSE.timeout).await;
        };
        tokio::select! {
            () = idle => SpliceEnd::IdleTimeout,
            () = closer => SpliceEnd::ProxyCut,
            () = shared.cut.notified() => SpliceEnd::ProxyCut,
        }
    });
    let end = tokio::select! {
        // `join` holds both directions in place; an async block around `join!` would keep
        // each twice in this future (the block's capture and the macro's own).
        (up_ok, down_ok) = futures_util::future::join(up, down) => {
            let closing = requests.borrow().is_some();
            match (up_ok && down_ok, closing) {
                _ if idle_closing.load(Ordering::Relaxed) => SpliceEnd::IdleTimeout,
                (true, false) => SpliceEnd::Closed,
                (false, false) => SpliceEnd::Error,
                (true, true) => SpliceEnd::ProxyClosed,
                (false, true) => SpliceEnd::ProxyCut,
            }
        }
        end = Gated::new(control.as_mut(), &gate) => end,
    };
    SpliceReport {
        client_to_upstream: up_count.load(Ordering::Relaxed),
        upstream_to_client: down_count.load(Ordering::Relaxed),
        end,
    }
}

/// The WebSocket side of one direction.
struct Framing {
    tracker: FrameTracker,
    /// Where a close request comes from; taken by the direction's watcher.
    requested: Option<watch::Receiver<Option<WebSocketClose>>>,
    /// Whether the close frame this direction writes is masked (it goes to the upstream).
    mask: bool,
}

/// The first close request on `requested`; `None` when none can come any more (the sender
/// is gone).
async fn close_request(
    requested: Option<watch::Receiver<Option<WebSocketClose>>>,
) -> Option<WebSocketClose> {
    let mut requested = requested?;
    loop {
        requested.changed().await.ok()?;
        if let Some(request) = *requested.borrow_and_update() {
            return Some(request);
        }
    }
}

/// Where one direction of a closing WebSocket tunnel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Passing every byte on; no close asked for.
    Relay,
    /// A close was asked for: passing bytes on up to the end of the frame in flight.
    ToBoundary(WebSocketClose),
    /// The writer has had its close frame: reading and dropping until the reader's close.
    AwaitReply,
}

async fn copy_one_way<R, W>(
    mut reader: R,
    mut writer: W,
    shared: &Shared,
    copied: &AtomicU64,
    mut framing: Option<Framing>,
    gate: &Arc<Gate>,
) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; INITIAL_BUFFER_SIZE];
    let mut phase = Phase::Relay;
    // Whether a close frame came from the reader (and, while relaying, went to the writer).
    let mut reader_closed = false;
    // One watcher for the whole relay, polled only when woken: made anew for each read, or
    // polled on every wake-up, it would cost more than passing a small message on.
    let mut watching = framing.is_some();
    let mut close_requested = std::pin::pin!(close_request(
        framing.as_mut().and_then(|f| f.requested.take())
    ));
    let mut close_requested = Gated::new(close_requested.as_mut(), gate);
    loop {
        let read = match framing.as_mut() {
            Some(framing) if phase == Phase::Relay && watching => {
                tokio::select! {
                    // Reading is cancel-safe, and a write in progress is never interrupted,
                    // so the close never cuts a frame short.
                    biased;
                    request = &mut close_requested => {
                        // Asked once, or never to be asked (the sender lives as long as the
                        // splice): either way there is nothing more to watch.
                        watching = false;
                        if let Some(request) = request {
                            phase = Phase::ToBoundary(request);
                            let Ok(step) =
                                finish_frame(&mut writer, framing, &mut phase, reader_closed, &[])
                                    .await
                            else {
                                shared.cut.notify_one();
                                return false;
                            };
                            reader_closed |= step.closed;
                            if phase == Phase::AwaitReply && reader_closed {
                                break;
                            }
                        }
                        continue;
                    }
                    read = reader.read(&mut buffer) => read,
                }
            }
            _ => reader.read(&mut buffer).await,
        };
        let read = match read {
            Ok(0) => break,
            Ok(read) => read,
            Err(_) => return false,
        };
        let filled = read == buffer.len();
        let chunk = &buffer[..read];
        match (phase, framing.as_mut()) {
            (Phase::Relay, framing) => {
                if let Some(framing) = framing {
                    reader_closed |= framing.tracker.skim(chunk);
                }
                mark(shared);
                if writer.write_all(chunk).await.is_err() || writer.flush().await.is_err() {
                    return false;
                }
                copied.fetch_add(read as u64, Ordering::Relaxed);
                mark(shared);
            }
            (Phase::ToBoundary(_), Some(framing)) => {
                let Ok(step) =
                    finish_frame(&mut writer, framing, &mut phase, reader_closed, chunk).await
                else {
                    shared.cut.notify_one();
                    return false;
                };
                copied.fetch_add(step.passed as u64, Ordering::Relaxed);
                reader_closed |= step.closed;
                mark(shared);
            }
            (_, Some(framing)) => reader_closed |= framing.tracker.skim(chunk),
            (_, None) => {}
        }
        if phase == Phase::AwaitReply && reader_closed {
            break;
        }
        if filled && buffer.len() < BUFFER_SIZE {
            buffer.resize(BUFFER_SIZE, 0);
        }
    }
    // Pass the half-close on; the other direction keeps running until it closes too.
    writer.shutdown().await.is_ok()
}

/// What [`finish_frame`] did with a chunk.
struct Step {
    /// Bytes passed on (the rest of the frame in flight).
    passed: usize,
    /// Whether a close frame from the reader ended in the chunk.
    closed: bool,
}

/// In [`Phase::ToBoundary`]: passes `chunk` on up to the end of the frame in flight; once
/// there, writes the close frame (unless the reader's own close already went to the
/// writer), moves to [`Phase::AwaitReply`] and follows the rest of `chunk` without passing
/// it on. Fails when the framing is lost (no boundary to wait for) or a write fails.
async fn finish_frame<W>(
    writer: &mut W,
    framing: &mut Framing,
    phase: &mut Phase,
    reader_closed: bool,
    chunk: &[u8],
) -> Result<Step, ()>
where
    W: AsyncWrite + Unpin,
{
    let Phase::ToBoundary(request) = *phase else {
        return Ok(Step {
            passed: 0,
            closed: false,
        });
    };
    let mut passed = 0;
    let mut closed = false;
    // Each turn takes at least one byte, so this ends within `chunk.len()` turns.
    while !framing.tracker.at_boundary() && passed < chunk.len() {
        let (taken, ended) = framing.tracker.advance(&chunk[passed..]);
        passed += taken;
        closed |= ended == Some(OPCODE_CLOSE);
    }
    if framing.tracker.is_lost() {
        return Err(());
    }
    if passed > 0
        && (writer.write_all(&chunk[..passed]).await.is_err() || writer.flush().await.is_err())
    {
        return Err(());
    }
    if !framing.tracker.at_boundary() {
        return Ok(Step { passed, closed });
    }
    if !(reader_closed || closed) {
        let mut frame = [0u8; MAX_CLOSE_FRAME];
        let mask = framing.mask.then(mask_key);
        let len = close_frame(&mut frame, request.code, request.reason, mask);
        if writer.write_all(&frame[..len]).await.is_err() || writer.flush().await.is_err() {
            return Err(());
        }
    }
    *phase = Phase::AwaitReply;
    closed |= framing.tracker.skim(&chunk[passed..]);
    Ok(Step { passed, closed })
}

/// A masking key from the system's random source (RFC 6455 §5.3 asks for one an
/// intermediary cannot predict).
fn mask_key() -> [u8; 4] {
    let mut key = [0u8; 4];
    if getrandom::fill(&mut key).is_err() {
        // The system source failed: the standard library's randomly keyed hasher still
        // gives a key nobody on the path can predict.
        use std::hash::{BuildHasher, Hasher};
        let hash = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        key.copy_from_slice(&hash.to_le_bytes()[..4]);
    }
    key
}

fn mark(shared: &Shared) {
    let elapsed = u64::try_from(shared.start.elapsed().as_millis()).unwrap_or(u64::MAX);
    shared.last_activity.store(elapsed, Ordering::Relaxed);
}

async fn watch_idle(shared: &Shared, idle_timeout: Duration) {
    loop {
        let last = Duration::from_millis(shared.last_activity.load(Ordering::Relaxed));
        let deadline = shared.start + last + idle_timeout;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}
