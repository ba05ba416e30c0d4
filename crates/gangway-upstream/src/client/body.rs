//! The response body that gives its connection back to the pool when it ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use super::pool::{Home, IdlePool};
use crate::BoxError;

/// The body of a response from [`UpstreamClient::send`](crate::UpstreamClient::send).
///
/// Once it has been read to its end, its connection becomes idle for the next request to
/// the peer. Dropped before its end, it takes the connection with it (the rest of the
/// response is never read, so the connection cannot carry another request).
pub struct PooledBody<B> {
    inner: Incoming,
    /// The connection, until it goes back to the pool; `None` when it is not to be reused.
    back: Option<GiveBack<B>>,
}

struct GiveBack<B> {
    sender: SendRequest<B>,
    home: Home,
    pool: IdlePool<B>,
    slot: usize,
}

impl<B: Send + 'static> PooledBody<B> {
    /// `inner`, whose connection goes back to `pool` at its end. A body that has already
    /// ended (no body, or `Content-Length: 0`) gives it back at once.
    pub(super) fn new(
        inner: Incoming,
        (sender, home): (SendRequest<B>, Home),
        pool: &IdlePool<B>,
        slot: usize,
    ) -> Self {
        if inner.is_end_stream() {
            pool.put(slot, sender, home);
            return Self { inner, back: None };
        }
        Self {
            inner,
            back: Some(GiveBack {
                sender,
                home,
                pool: pool.clone(),
                slot,
            }),
        }
    }

    /// `inner`, whose connection is not reused (no pooling, or an upgrade).
    pub(super) fn unpooled(inner: Incoming) -> Self {
        Self { inner, back: None }
    }

    fn give_back(&mut self) {
        if let Some(back) = self.back.take() {
            back.pool.put(back.slot, back.sender, back.home);
        }
    }
}

impl<B: Send + 'static> Body for PooledBody<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // A body with a length ends with its last byte; the reader need not poll
                // again to learn that.
                if this.inner.is_end_stream() {
                    this.give_back();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.give_back();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                // A connection whose response failed is not reused.
                this.back = None;
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> std::fmt::Debug for PooledBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("inner", &self.inner)
            .field("pooled", &self.back.is_some())
            .finish()
    }
}
