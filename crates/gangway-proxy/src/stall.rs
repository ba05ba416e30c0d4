//! HTTP/2 streams whose client takes no data: the send-side stall guard.
//!
//! A route's `body_idle_timeout` cuts a response body that moves no byte for that long. The
//! body's own timer only runs while the body is polled, and under HTTP/2 hyper polls it
//! only when the client's flow-control window has room: a client that opens no window, or
//! stops sending WINDOW_UPDATE, leaves hyper holding one frame and waiting for capacity,
//! and neither the body nor its timer is polled again. hyper and h2 have no send timeout,
//! so the stream, its upstream connection and the buffers of both would be held for as
//! long as the client keeps the connection alive (answering PINGs is enough).
//!
//! So every HTTP/2 stream task is spawned by [`StallExecutor`], which runs it under a
//! [`StallWatch`] reachable through a task-local. A streaming [`ResponseBody`] tells the
//! watch when it hands a data frame to hyper and when hyper asks for the next one; a frame
//! left untaken for the body's idle timeout ends the task. Dropping the task drops the
//! stream: h2 resets it with `CANCEL`, and the upstream response (and with it the
//! upstream connection) is dropped too.
//!
//! [`ResponseBody`]: crate::body::ResponseBody

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

tokio::task_local! {
    static WATCH: Arc<StallWatch>;
}

/// Whether the response body of one HTTP/2 stream waits for its client to take a frame.
#[derive(Debug, Default)]
pub(crate) struct StallWatch {
    /// Set while a handed-out frame waits: when the stream gives up on it.
    deadline: Mutex<Option<(Instant, Duration)>>,
    /// The stream was ended by the guard.
    cut: AtomicBool,
}

impl StallWatch {
    /// The watch of the HTTP/2 stream task running now; `None` outside one (HTTP/1.1).
    pub(crate) fn current() -> Option<Arc<StallWatch>> {
        WATCH.try_with(Arc::clone).ok()
    }

    /// A data frame was handed to hyper; the client must take it within `timeout`.
    pub(crate) fn handed_out(&self, timeout: Duration) {
        let mut deadline = self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        *deadline = Some((Instant::now() + timeout, timeout));
    }

    /// hyper asks for the next frame (or the body ended): the last one was taken.
    pub(crate) fn taken(&self) {
        let mut deadline = self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        *deadline = None;
    }

    /// Whether the guard ended the stream because its client took nothing.
    pub(crate) fn was_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    fn deadline(&self) -> Option<(Instant, Duration)> {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Spawns HTTP/2 stream tasks on tokio, each under its own [`StallWatch`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StallExecutor;

impl<F> hyper::rt::Executor<F> for StallExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(Guarded {
            inner: future,
            watch: Arc::default(),
            sleep: None,
        });
    }
}

pin_project_lite::pin_project! {
    /// A stream task that ends when its response stalls past the body's idle timeout.
    struct Guarded<F> {
        #[pin]
        inner: F,
        watch: Arc<StallWatch>,
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future<Output = ()>> Future for Guarded<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let inner = this.inner;
        if WATCH
            .sync_scope(this.watch.clone(), || inner.poll(cx))
            .is_ready()
        {
            return Poll::Ready(());
        }
        let Some((deadline, timeout)) = this.watch.deadline() else {
            return Poll::Pending;
        };
        let sleep = match this.sleep {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => this
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Returning drops the stream task, and h2 resets the stream.
        this.watch.cut.store(true, Ordering::Release);
        tracing::debug!("HTTP/2 stream reset: the client took no data for {timeout:?}");
        Poll::Ready(())
    }
}
