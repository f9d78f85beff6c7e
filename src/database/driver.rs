//! The task that runs a connection's redis-rs driver until it ends or is stopped, and the shared
//! [`Driver`] flags that stop it and tell whether the connection is closed.
//!
//! A stand-in for `futures::future::abortable` made for the command path: the driver is polled
//! for every reply, and `Abortable` re-registers the task's waker in an `AtomicWaker` on each of
//! those polls. Here the waker is stored only when it changes (a task's waker rarely does), so a
//! poll costs one atomic load beyond the driver's own work.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures::future::BoxFuture;

/// The flags shared by a connection and its driver task.
#[derive(Debug, Default)]
pub(crate) struct Driver {
    /// Set by [`Driver::stop`]: the task drops the driver at its next poll.
    stopped: AtomicBool,
    /// Set when no command can be sent any more: the driver ended (the server closed the
    /// socket, or it broke) or was stopped.
    closed: AtomicBool,
    /// The task's waker, as last registered.
    waker: Mutex<Option<Waker>>,
}

impl Driver {
    /// Stops the driver: the task drops it (failing every command in flight with `BrokenPipe`)
    /// and the connection counts as closed from now on.
    pub(crate) fn stop(&self) {
        self.closed.store(true, Ordering::Release);
        self.stopped.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the driver ended or was stopped.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The task that runs `driver` until it ends or [`Driver::stop`] is called (then the driver is
/// dropped), and the flags shared with it. The connection counts as closed once the task ends.
pub(crate) fn driver_task<F>(driver: F) -> (DriverTask, Arc<Driver>)
where
    F: Future<Output = ()> + Send + 'static,
{
    let shared = Arc::new(Driver::default());
    let task = DriverTask {
        driver: Some(Box::pin(driver)),
        shared: shared.clone(),
        registered: None,
    };
    (task, shared)
}

/// A connection's driver task (see [`driver_task`]): one layer over the driver, so each of its
/// polls (several per command) costs a load and a waker comparison beyond the driver's own.
pub(crate) struct DriverTask {
    driver: Option<BoxFuture<'static, ()>>,
    shared: Arc<Driver>,
    /// The waker stored in `shared` by this task (compared, not re-stored, on each poll).
    registered: Option<Waker>,
}

impl DriverTask {
    fn finish(&mut self) -> Poll<()> {
        self.driver = None;
        self.shared.closed.store(true, Ordering::Release);
        Poll::Ready(())
    }
}

impl Future for DriverTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.shared.stopped.load(Ordering::Acquire) {
            return this.finish();
        }
        let Some(driver) = this.driver.as_mut() else {
            return Poll::Ready(());
        };
        if driver.as_mut().poll(cx).is_ready() {
            return this.finish();
        }
        if !this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let waker = cx.waker().clone();
            *this.shared.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(waker.clone());
            this.registered = Some(waker);
            // A stop between the check above and this registration found no waker to wake.
            if this.shared.stopped.load(Ordering::Acquire) {
                return this.finish();
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use futures::task::ArcWake;

    use super::*;

    struct CountWake(AtomicUsize);

    impl ArcWake for CountWake {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn stop_wakes_the_task_which_drops_the_driver_and_closes() {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let (task, driver) = driver_task(async move {
            let _ = rx.await;
        });
        let mut task = Box::pin(task);
        let count = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = futures::task::waker(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(task.as_mut().poll(&mut cx).is_pending());
        assert!(task.as_mut().poll(&mut cx).is_pending());
        assert!(!driver.is_closed());
        driver.stop();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the registered waker was woken"
        );
        assert!(driver.is_closed());
        assert!(task.as_mut().poll(&mut cx).is_ready());
        assert!(tx.is_canceled(), "the driver future was dropped");
    }

    #[test]
    fn a_driver_that_ends_closes_the_connection() {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let (task, driver) = driver_task(async move {
            let _ = rx.await;
        });
        let mut task = Box::pin(task);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(task.as_mut().poll(&mut cx).is_pending());
        tx.send(()).unwrap();
        assert!(task.as_mut().poll(&mut cx).is_ready());
        assert!(driver.is_closed());
    }
}
