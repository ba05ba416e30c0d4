//! Futures polled only after they themselves were woken.
//!
//! A splice is one task, and a task is polled whenever any of its futures is woken: almost
//! always because bytes arrived. The futures that wait for a close request, a cut or the
//! idle deadline would be polled again on each of those wake-ups, and polling a waiting
//! channel or `Notify` takes a lock, which costs more than passing a small WebSocket
//! message on. Behind a shared [`Gate`], such futures are polled only when one of them was
//! woken (or on their first poll).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// The waker the gated futures register: counts wake-ups and wakes the task.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// Bumped by each wake-up of a gated future.
    epoch: AtomicU64,
    /// The task that polls the gated futures.
    task: AtomicWaker,
}

impl Gate {
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.task.wake();
    }
}

/// `inner`, polled only when a future behind the same gate was woken since its last poll.
pub(crate) struct Gated<'a, F> {
    inner: Pin<&'a mut F>,
    gate: Arc<Gate>,
    waker: Waker,
    /// The gate's epoch at the last poll of `inner`; `None` before the first.
    seen: Option<u64>,
}

impl<'a, F: Future> Gated<'a, F> {
    pub(crate) fn new(inner: Pin<&'a mut F>, gate: &Arc<Gate>) -> Self {
        Self {
            inner,
            gate: Arc::clone(gate),
            waker: Waker::from(Arc::clone(gate)),
            seen: None,
        }
    }
}

impl<F: Future> Future for Gated<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // The task is registered before the epoch is read: a wake-up in between bumps the
        // epoch and wakes the task, so it is seen at the next poll at the latest.
        this.gate.task.register(cx.waker());
        let epoch = this.gate.epoch.load(Ordering::Acquire);
        if this.seen == Some(epoch) {
            return Poll::Pending;
        }
        this.seen = Some(epoch);
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts its polls; ready once `ready` is set, after which it needs a wake-up to be
    /// seen (it registers the waker it is polled with, as tokio's primitives do).
    struct Probe {
        polls: Arc<AtomicUsize>,
        waker: Arc<std::sync::Mutex<Option<Waker>>>,
        ready: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Future for Probe {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            if self.ready.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// A waker that counts its wake-ups, standing for the task.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_gated_future_is_polled_first_and_then_only_after_its_own_wake_up() {
        let polls = Arc::new(AtomicUsize::new(0));
        let inner_waker = Arc::new(std::sync::Mutex::new(None::<Waker>));
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut probe = std::pin::pin!(Probe {
            polls: polls.clone(),
            waker: inner_waker.clone(),
            ready: ready.clone(),
        });
        let gate = Gate::new();
        let mut gated = Gated::new(probe.as_mut(), &gate);
        let task = Arc::new(Task::default());
        let task_waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);

        assert!(Pin::new(&mut gated).poll(&mut cx).is_pending());
        assert_eq!(
            polls.load(Ordering::Relaxed),
            1,
            "the first poll goes through"
        );
        // The task is polled for other reasons (bytes): the gated future is left alone.
        for _ in 0..5 {
            assert!(Pin::new(&mut gated).poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1);

        // Its own wake-up wakes the task, and the next poll reaches it.
        ready.store(true, Ordering::Release);
        let registered = inner_waker.lock().unwrap().take().expect("a waker");
        registered.wake();
        assert_eq!(task.0.load(Ordering::Relaxed), 1, "the task is woken");
        assert!(Pin::new(&mut gated).poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }
}
