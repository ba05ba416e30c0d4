//! Streaming bodies: nothing is buffered whole, every frame is passed on as it comes.
//!
//! [`RequestBody`] carries the client's body to the upstream, enforcing the route's size
//! limit (also without `Content-Length`) and the idle timeout, and counting bytes.
//! [`ResponseBody`] carries the answer to the client with the same idle timeout, counts
//! bytes, tells the connection guard when the response is done, and writes the access-log
//! line when it ends. Under HTTP/2 it also keeps its stream's stall guard
//! ([`crate::stall`]) told whether a frame waits for the client.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::time::{Instant, Sleep};

use gangway_upstream::{InFlight, RetryBody};

use crate::access::AccessRecord;
use crate::conn_io::ConnState;
use crate::metrics::RouteMetrics;
use crate::stall::StallWatch;

/// Errors inside a body stream, boxed as hyper expects.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a body stream was cut.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    #[error("no body bytes for {0:?}")]
    Idle(Duration),
}

/// An idle timer that is re-armed by every frame.
///
/// A frame only sets a flag. The clock is read, and the timer made, when the body waits:
/// the idle time runs from the first wait after the last frame. A body that never waits
/// (most small ones) costs neither a clock read nor a timer, and a long stream moves its
/// timer once per timeout rather than once per frame.
#[derive(Debug)]
struct IdleTimer {
    timeout: Duration,
    /// When the body was first seen waiting after its last frame.
    since: Option<Instant>,
    /// A frame has moved since `since`.
    moved: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            since: None,
            moved: false,
            sleep: None,
        }
    }

    fn touch(&mut self) {
        self.moved = true;
    }

    /// Called while the body waits: whether it has moved nothing for the timeout; otherwise
    /// `cx` is woken when it may have.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let since = match self.since {
            Some(since) if !self.moved => since,
            _ => {
                self.moved = false;
                *self.since.insert(Instant::now())
            }
        };
        let due = since + self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        crate::conn_io::passed(sleep, due, cx)
    }
}

/// What the engine learns from a request body while it streams.
#[derive(Debug, Default)]
pub(crate) struct RequestBodyFacts {
    pub(crate) bytes: AtomicU64,
    pub(crate) too_large: AtomicBool,
    pub(crate) idle: AtomicBool,
    /// The client's own framing failed (a bad chunk size, a connection cut mid-body).
    pub(crate) broken: AtomicBool,
    complete: AtomicBool,
    completed: tokio::sync::Notify,
}

impl RequestBodyFacts {
    fn mark_complete(&self) {
        self.complete.store(true, Ordering::Release);
        self.completed.notify_waiters();
    }

    /// Completes once the whole request body has been passed on: the upstream's time to
    /// answer starts then, not while a large upload is still streaming.
    pub(crate) async fn sent(&self) {
        loop {
            let notified = self.completed.notified();
            if self.complete.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// The client's request body on its way to the upstream.
#[derive(Debug)]
pub(crate) struct RequestBody {
    /// `None`: an empty body, made again for each try of a request that had none.
    inner: Option<hyper::body::Incoming>,
    limit: u64,
    idle: IdleTimer,
    facts: Arc<RequestBodyFacts>,
}

impl RequestBody {
    pub(crate) fn new(
        inner: hyper::body::Incoming,
        limit: u64,
        idle_timeout: Duration,
        facts: Arc<RequestBodyFacts>,
    ) -> Self {
        // A body known to be empty is never polled by the client: it is sent already.
        if inner.is_end_stream() {
            facts.mark_complete();
        }
        Self {
            inner: Some(inner),
            limit,
            idle: IdleTimer::new(idle_timeout),
            facts,
        }
    }

    /// An empty body, for another try of a request that had none.
    pub(crate) fn empty(limit: u64, idle_timeout: Duration, facts: Arc<RequestBodyFacts>) -> Self {
        facts.mark_complete();
        Self {
            inner: None,
            limit,
            idle: IdleTimer::new(idle_timeout),
            facts,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.touch();
                if let Some(data) = frame.data_ref() {
                    let total = this
                        .facts
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed)
                        + data.len() as u64;
                    if total > this.limit {
                        this.facts.too_large.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(BodyError::TooLarge(this.limit).into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.facts.broken.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => {
                this.facts.mark_complete();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.idle.expired(cx) {
                    this.facts.idle.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(BodyError::Idle(this.idle.timeout).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// The body of one try: the request body itself, or, when the request may go on to another
/// peer, wrapped so that it can be taken back if the try failed before reading it.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    Direct(RequestBody),
    Reclaimable(RetryBody<RequestBody>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Direct(body) => Pin::new(body).poll_frame(cx),
            Self::Reclaimable(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Direct(body) => body.is_end_stream(),
            Self::Reclaimable(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Direct(body) => body.size_hint(),
            Self::Reclaimable(body) => body.size_hint(),
        }
    }
}

/// A response body on its way to the client.
#[derive(Debug)]
pub(crate) struct ResponseBody {
    inner: UnsyncBoxBody<Bytes, BoxError>,
    idle: Option<IdleTimer>,
    bytes: u64,
    finish: Option<Finish>,
    /// Counts the request as in flight to its peer until the body has ended.
    in_flight: Option<InFlight>,
    /// Under HTTP/2, the stream's stall guard: told when a frame waits for the client.
    stall: Option<Arc<StallWatch>>,
    /// Whether the body has looked for its stream's stall guard (on its first poll).
    stall_joined: bool,
    /// Under HTTP/2, the rest of an upstream chunk handed out in pieces.
    rest: Option<Bytes>,
}

/// Under HTTP/2, upstream chunks are handed to hyper in pieces of at most one default
/// frame, so that the stall guard's deadline is about one frame's worth of progress and not
/// about a whole upstream read (up to hundreds of KiB).
const STALL_PIECE: usize = 16 * 1024;

/// What happens when the response ends: the access-log line, the route's metrics and the
/// connection guard.
#[derive(Debug)]
pub(crate) struct Finish {
    pub(crate) record: AccessRecord,
    pub(crate) conn: Arc<ConnState>,
    pub(crate) metrics: Arc<RouteMetrics>,
}

impl ResponseBody {
    /// Streams `inner`, cut when it moves nothing for `idle_timeout`.
    pub(crate) fn streaming<B>(inner: B, idle_timeout: Duration) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            inner: inner.map_err(Into::into).boxed_unsync(),
            idle: Some(IdleTimer::new(idle_timeout)),
            bytes: 0,
            finish: None,
            in_flight: None,
            stall: None,
            stall_joined: false,
            rest: None,
        }
    }

    /// Keeps the request counted as in flight to its peer until the body ends.
    pub(crate) fn holding(mut self, in_flight: InFlight) -> Self {
        self.in_flight = Some(in_flight);
        self
    }

    /// A body held in full (an error page, a redirect, a fixed response).
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let inner = http_body_util::Full::new(bytes.into())
            .map_err(|never| match never {})
            .boxed_unsync();
        Self {
            inner,
            idle: None,
            bytes: 0,
            finish: None,
            in_flight: None,
            stall: None,
            stall_joined: false,
            rest: None,
        }
    }

    /// No body.
    pub(crate) fn empty() -> Self {
        Self::full(Bytes::new())
    }

    pub(crate) fn on_finish(&mut self, finish: Finish) {
        self.finish = Some(finish);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.idle.is_some() && !this.stall_joined {
            // Only a streaming body under HTTP/2 has a stall guard.
            this.stall = StallWatch::current();
            this.stall_joined = true;
        }
        if let Some(stall) = &this.stall {
            // Asked for the next frame: the client took the last one.
            stall.taken();
        }
        if let Some(rest) = this.rest.take() {
            // The upstream's chunk is still being passed on: its silence does not count.
            if let Some(idle) = &mut this.idle {
                idle.touch();
            }
            return Poll::Ready(Some(Ok(Frame::data(this.hand_out(rest)))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(idle) = &mut this.idle {
                    idle.touch();
                }
                match frame.into_data() {
                    Ok(data) => {
                        this.bytes += data.len() as u64;
                        Poll::Ready(Some(Ok(Frame::data(this.hand_out(data)))))
                    }
                    Err(frame) => Poll::Ready(Some(Ok(frame))),
                }
            }
            Poll::Ready(Some(Err(error))) => {
                if let Some(finish) = &mut this.finish {
                    finish.record.fail(error.to_string());
                }
                // The upstream broke its response off: a failure of that peer, counted
                // towards its `max_fails` like a failed try.
                if let Some(in_flight) = this.in_flight.take() {
                    in_flight.failed();
                }
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                this.in_flight = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some(idle) = &mut this.idle else {
                    return Poll::Pending;
                };
                if !idle.expired(cx) {
                    return Poll::Pending;
                }
                let error = BodyError::Idle(idle.timeout);
                if let Some(finish) = &mut this.finish {
                    finish.record.fail(error.to_string());
                }
                // The upstream stalled mid-response: a failure of that peer too.
                if let Some(in_flight) = this.in_flight.take() {
                    in_flight.failed();
                }
                Poll::Ready(Some(Err(error.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.inner.size_hint();
        let Some(rest) = &self.rest else {
            return hint;
        };
        let rest = rest.len() as u64;
        let mut with_rest = SizeHint::new();
        with_rest.set_lower(hint.lower().saturating_add(rest));
        if let Some(upper) = hint.upper() {
            with_rest.set_upper(upper.saturating_add(rest));
        }
        with_rest
    }
}

impl ResponseBody {
    /// Under HTTP/2, the next piece of `data` for hyper, keeping the rest and arming the
    /// stall guard; otherwise `data` itself.
    fn hand_out(&mut self, mut data: Bytes) -> Bytes {
        let (Some(stall), Some(idle)) = (&self.stall, &self.idle) else {
            return data;
        };
        if data.is_empty() {
            return data;
        }
        if data.len() > STALL_PIECE {
            self.rest = Some(data.split_off(STALL_PIECE));
        }
        stall.handed_out(idle.timeout);
        data
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(mut finish) = self.finish.take() {
            if self.stall.as_ref().is_some_and(|stall| stall.was_cut()) {
                let timeout = self
                    .idle
                    .as_ref()
                    .map_or(Duration::ZERO, |idle| idle.timeout);
                finish
                    .record
                    .fail(format!("the client took no response data for {timeout:?}"));
            }
            let record = &finish.record;
            let bytes_in = record
                .request_body
                .as_ref()
                .map_or(0, |facts| facts.bytes.load(Ordering::Relaxed));
            let elapsed = record.started.elapsed();
            finish
                .metrics
                .request_finished(record.status, bytes_in, self.bytes, elapsed);
            finish.record.log(bytes_in, self.bytes, elapsed);
            finish.conn.request_finished();
        }
    }
}
