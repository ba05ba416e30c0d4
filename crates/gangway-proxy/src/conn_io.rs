//! The connection guard: timeouts that hyper cannot answer the way a proxy must.
//!
//! hyper's own header-read timeout closes the connection silently; a client that stalls in
//! its request head should get `408 Request Timeout` first. This wrapper sits between the
//! socket (plain or TLS) and hyper, sees every byte read, and knows from the engine whether
//! a request is being served. It arms:
//!
//! - the header-read timeout when the first byte of a request head arrives (and on a fresh
//!   connection): if it passes before the engine sees the request, the wrapper writes the
//!   408 itself and ends the connection;
//! - the keep-alive timeout between requests: an idle connection is closed silently;
//! - the send timeout while a write waits: a client that takes no response data for that
//!   long (its socket stays full) is disconnected, and the response it held, with its
//!   upstream connection, is dropped. hyper stops polling a response body while it cannot
//!   write, so the body's own idle timer never fires for such a client.
//!
//! HTTP/2 connections (ALPN `h2` or the prior-knowledge preface) have their own framing
//! and are passed through untouched.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

const REQUEST_TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 34\r\nconnection: close\r\n\r\n\
request head not received in time\n";

/// What the engine tells the guard: whether a request is being served on the connection.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    serving: AtomicBool,
    /// Requests answered so far: the guard may not see `serving` while a fast request is
    /// served between two reads, but it sees this move.
    finished: AtomicU64,
    upgraded: AtomicBool,
    waker: AtomicWaker,
}

impl ConnState {
    /// A request head has been parsed and handed to the engine.
    pub(crate) fn request_started(&self) {
        self.serving.store(true, Ordering::Release);
    }

    /// The request is answered with 101: from now on the connection carries a tunnel,
    /// whose own idle timeout applies, and HTTP's head and keep-alive limits no longer do.
    pub(crate) fn upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// The response has been written (or abandoned); the connection is idle again.
    pub(crate) fn request_finished(&self) {
        self.finished.fetch_add(1, Ordering::AcqRel);
        self.serving.store(false, Ordering::Release);
        self.waker.wake();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests (or before the first one); the deadline is the idle limit.
    Idle,
    /// Part of a request head has arrived; the deadline is the header-read limit.
    Head,
    /// The engine is serving a request; no deadline here.
    Serving,
    /// HTTP/2, or a connection upgraded to a tunnel: no guard.
    Passthrough,
    /// The 408 is being written; `usize` bytes of it are out.
    TimingOut(usize),
    /// The guard ended the connection.
    Closed,
}

/// The guard's limits, from the listener's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardTimeouts {
    /// A request head must arrive within this (408 otherwise).
    pub(crate) header: Duration,
    /// An idle keep-alive connection is closed after this.
    pub(crate) idle: Duration,
    /// A write that makes no progress for this long ends the connection.
    pub(crate) send: Duration,
}

pin_project_lite::pin_project! {
    /// A socket with the guard around its reads and, for HTTP/1.1, its writes.
    #[derive(Debug)]
    pub(crate) struct GuardedIo<T> {
        #[pin]
        inner: T,
        state: Arc<ConnState>,
        header_timeout: Duration,
        idle_timeout: Duration,
        // When the current phase's limit passes. The timer is moved to it only when it is
        // sooner than the timer; a timer that fires early is moved on then. So requests on
        // a busy keep-alive connection, each moving the limit later, do not each move the
        // timer.
        due: Instant,
        deadline: Pin<Box<Sleep>>,
        send_timeout: Duration,
        // Made when a write first has to wait: most connections never need it.
        send_stall: Option<Pin<Box<Sleep>>>,
        // Whether the last write waited (its stall deadline is running).
        send_waiting: bool,
        phase: Phase,
        first_read: bool,
        // `ConnState::finished` as of the last read.
        seen_finished: u64,
    }
}

impl<T> GuardedIo<T> {
    /// Guards a fresh connection. `http2` skips the guard for an ALPN-negotiated HTTP/2
    /// connection.
    pub(crate) fn new(
        inner: T,
        state: Arc<ConnState>,
        timeouts: GuardTimeouts,
        http2: bool,
    ) -> Self {
        // A connection that sends nothing at all is held no longer than a slow head.
        let due = Instant::now() + timeouts.header;
        Self {
            inner,
            state,
            header_timeout: timeouts.header,
            idle_timeout: timeouts.idle,
            due,
            deadline: Box::pin(tokio::time::sleep_until(due)),
            send_timeout: timeouts.send,
            send_stall: None,
            send_waiting: false,
            phase: if http2 {
                Phase::Passthrough
            } else {
                Phase::Idle
            },
            first_read: true,
            seen_finished: 0,
        }
    }
}

impl<T: AsyncRead + AsyncWrite> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        loop {
            match *this.phase {
                Phase::Passthrough => return this.inner.poll_read(cx, buf),
                Phase::Closed => return Poll::Ready(Ok(())),
                Phase::TimingOut(written) => {
                    if written < REQUEST_TIMEOUT_RESPONSE.len() {
                        let rest = &REQUEST_TIMEOUT_RESPONSE[written..];
                        let sent = ready!(this.inner.as_mut().poll_write(cx, rest))?;
                        if sent == 0 {
                            *this.phase = Phase::Closed;
                        } else {
                            *this.phase = Phase::TimingOut(written + sent);
                        }
                        continue;
                    }
                    ready!(this.inner.as_mut().poll_shutdown(cx))?;
                    *this.phase = Phase::Closed;
                    continue;
                }
                Phase::Idle | Phase::Head | Phase::Serving => {}
            }

            this.state.waker.register(cx.waker());
            if this.state.upgraded.load(Ordering::Acquire) {
                *this.phase = Phase::Passthrough;
                continue;
            }
            // A request answered since the last read: whatever head was being timed has
            // been served, and the connection is idle unless the next one is running.
            let finished = this.state.finished.load(Ordering::Acquire);
            if finished != *this.seen_finished {
                *this.seen_finished = finished;
                if matches!(*this.phase, Phase::Head | Phase::Serving) {
                    *this.phase = Phase::Serving;
                }
            }
            let serving = this.state.serving.load(Ordering::Acquire);
            match (*this.phase, serving) {
                (Phase::Idle | Phase::Head, true) => *this.phase = Phase::Serving,
                (Phase::Serving, false) => {
                    *this.phase = Phase::Idle;
                    *this.due = Instant::now() + *this.idle_timeout;
                }
                _ => {}
            }

            let before = buf.filled().len();
            match this.inner.as_mut().poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {
                    let fresh = &buf.filled()[before..];
                    if !fresh.is_empty() {
                        if std::mem::take(this.first_read) && fresh.starts_with(b"PRI ") {
                            // HTTP/2 prior knowledge: its framing has its own limits.
                            *this.phase = Phase::Passthrough;
                        } else if *this.phase == Phase::Idle {
                            *this.phase = Phase::Head;
                            *this.due = Instant::now() + *this.header_timeout;
                        }
                    }
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {}
            }
            if *this.phase == Phase::Serving || !passed(this.deadline, *this.due, cx) {
                return Poll::Pending;
            }
            // The deadline passed: a stalled head gets its 408, an idle connection just ends.
            *this.phase = if *this.phase == Phase::Head {
                Phase::TimingOut(0)
            } else {
                Phase::Closed
            };
        }
    }
}

/// Whether `due` has passed, with `timer` as the timer that watches it: moved to `due` when
/// that is sooner, moved on when it fires before `due`. Otherwise `cx` is woken when it may
/// have. A limit that only ever moves later therefore moves its timer once per firing.
pub(crate) fn passed(timer: &mut Pin<Box<Sleep>>, due: Instant, cx: &mut Context<'_>) -> bool {
    if timer.deadline() > due {
        timer.as_mut().reset(due);
    }
    loop {
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        if due <= timer.deadline() {
            return true;
        }
        timer.as_mut().reset(due);
    }
}

impl<T: AsyncRead + AsyncWrite> GuardedIo<T> {
    /// Runs one write (or flush) under the send timeout: HTTP/2 and tunnels have limits of
    /// their own and pass straight through.
    fn guard_write<R>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        let this = self.project();
        let outcome = write(this.inner, cx);
        if *this.phase == Phase::Passthrough || this.state.upgraded.load(Ordering::Acquire) {
            return outcome;
        }
        if outcome.is_ready() {
            *this.send_waiting = false;
            return outcome;
        }
        let timeout = *this.send_timeout;
        let stall = this
            .send_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !std::mem::replace(this.send_waiting, true) {
            stall.as_mut().reset(Instant::now() + timeout);
        }
        if stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client took no data for {timeout:?} (send timeout)"),
        )))
    }
}

impl<T: AsyncRead + AsyncWrite> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard_write(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
