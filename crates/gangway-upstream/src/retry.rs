//! When to try the next peer, and a request body that can be taken back for it.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Method;
use http_body::{Body, Frame, SizeHint};

/// How a try of a peer failed, for [`RetryPolicy::should_retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// Connecting failed (refused, reset, timed out, TLS handshake failed): no byte of the
    /// request reached the peer, so any request may go to the next peer.
    Connect,
    /// The request was (at least partly) sent and no valid response head came back (reset,
    /// closed, timed out, malformed): the peer may have acted on it.
    Response,
}

impl Failure {
    /// Classifies an error of [`UpstreamClient::send`](crate::UpstreamClient::send):
    /// [`Connect`](Self::Connect) when no byte of the request was sent
    /// ([`SendError::is_connect`](crate::SendError::is_connect)), otherwise
    /// [`Response`](Self::Response).
    pub fn of(error: &crate::SendError) -> Self {
        if error.is_connect() {
            Self::Connect
        } else {
            Self::Response
        }
    }
}

/// When the engine should try the next peer of a [`Selection`](crate::Selection) (nginx
/// `proxy_next_upstream`, `_tries`, `_timeout`).
///
/// A [`Failure::Connect`] is retried for every method; a [`Failure::Response`] only for an
/// idempotent method (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and only if
/// `retry_idempotent` is set. Tries are bounded by `max_tries` (counting the first; 0 is
/// "every peer once") and by `timeout` from the first try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The most peers to try for one request, counting the first; 0 means no bound beyond
    /// the pool's peers.
    pub max_tries: u32,
    /// No new try starts once this much time has passed since the first; `None` for no
    /// bound.
    pub timeout: Option<Duration>,
    /// Whether an idempotent request whose response failed goes to the next peer.
    pub retry_idempotent: bool,
}

impl Default for RetryPolicy {
    /// nginx's defaults: every peer once, no time bound, idempotent requests retried
    /// (`proxy_next_upstream error timeout`).
    fn default() -> Self {
        Self {
            max_tries: 0,
            timeout: None,
            retry_idempotent: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn never() -> Self {
        Self {
            max_tries: 1,
            timeout: None,
            retry_idempotent: false,
        }
    }

    /// Whether to try another peer after `tries` tries (counting the failed one) that took
    /// `elapsed` since the first started, the last failing with `failure`.
    pub fn should_retry(
        &self,
        failure: Failure,
        method: &Method,
        tries: u32,
        elapsed: Duration,
    ) -> bool {
        if self.max_tries != 0 && tries >= self.max_tries {
            return false;
        }
        if self.timeout.is_some_and(|timeout| elapsed >= timeout) {
            return false;
        }
        match failure {
            Failure::Connect => true,
            Failure::Response => self.retry_idempotent && method.is_idempotent(),
        }
    }
}

/// A request body that can be taken back if the request failed before the body was read,
/// so that the same (streamed) body can go to the next peer.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use gangway_upstream::RetryBody;
///
/// let (body, reclaim) = RetryBody::new(Full::new(Bytes::from_static(b"payload")));
/// drop(body); // e.g. the connection was refused: the client never polled the body
/// assert!(reclaim.take().is_some());
/// ```
#[derive(Debug)]
pub struct RetryBody<B> {
    state: State<B>,
}

#[derive(Debug)]
enum State<B> {
    /// Not polled yet: the body sits where [`Reclaim`] can take it back.
    Waiting(Arc<Mutex<Option<B>>>),
    /// Polled: the body is ours and can no longer be taken back.
    Reading(B),
    /// Taken back before being polled; reading it fails, so that a connection that still
    /// holds the request can never send it as complete.
    Gone,
}

/// Takes the body of a [`RetryBody`] back.
#[derive(Debug)]
pub struct Reclaim<B> {
    slot: Arc<Mutex<Option<B>>>,
}

impl<B> RetryBody<B> {
    /// Wraps `body`; the [`Reclaim`] gets it back if the wrapper was never polled.
    pub fn new(body: B) -> (Self, Reclaim<B>) {
        let slot = Arc::new(Mutex::new(Some(body)));
        (
            Self {
                state: State::Waiting(slot.clone()),
            },
            Reclaim { slot },
        )
    }
}

impl<B> Reclaim<B> {
    /// The body, if nothing of it was read (no byte of it can have been sent). Take it
    /// only once the send has failed with [`Failure::Connect`] (the client has dropped
    /// the request by then).
    pub fn take(self) -> Option<B> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl<B: Body + Unpin> RetryBody<B> {
    fn peek<T>(&self, read: impl FnOnce(&B) -> T, gone: T) -> T {
        match &self.state {
            State::Waiting(slot) => slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map_or(gone, read),
            State::Reading(body) => read(body),
            State::Gone => gone,
        }
    }
}

/// The error of a [`RetryBody`]: the wrapped body's, or "taken back".
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Reading a [`RetryBody`] whose body was taken back by its [`Reclaim`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body was taken back to be sent to another peer")]
struct TakenBack;

impl<B> Body for RetryBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let State::Waiting(slot) = &this.state {
            let taken = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            this.state = match taken {
                Some(body) => State::Reading(body),
                None => State::Gone,
            };
        }
        match &mut this.state {
            State::Reading(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(Into::into))),
            State::Waiting(_) | State::Gone => Poll::Ready(Some(Err(TakenBack.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.peek(Body::is_end_stream, false)
    }

    fn size_hint(&self) -> SizeHint {
        self.peek(Body::size_hint, SizeHint::default())
    }
}
