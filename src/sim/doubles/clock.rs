//! `SimClock`: virtual time that wakes sleepers in deadline order and never runs backwards.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::seams::Clock;

/// Virtual time. Cloning gives another handle to the same clock.
///
/// Time moves only when [`advance`](SimClock::advance) or [`advance_to`](SimClock::advance_to) is
/// called (the [`Sim`](crate::sim::Sim) harness does it when every task is waiting). Sleepers are
/// woken in deadline order, ties in the order they went to sleep.
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::seams::Clock;
/// use redis_keeper::sim::SimClock;
/// let clock = SimClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(40));
/// assert_eq!(clock.now() - t0, Duration::from_secs(40));
/// assert_eq!(clock.elapsed(), Duration::from_secs(40));
/// clock.advance_to(t0); // never backwards
/// assert_eq!(clock.elapsed(), Duration::from_secs(40));
/// ```
#[derive(Clone)]
pub struct SimClock {
    inner: Arc<Inner>,
}

struct Inner {
    epoch: Instant,
    state: Mutex<State>,
    moved: Condvar,
}

struct State {
    now: Instant,
    timers: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl SimClock {
    /// A clock standing at its epoch (elapsed zero).
    pub fn new() -> Self {
        let epoch = Instant::now();
        Self {
            inner: Arc::new(Inner {
                epoch,
                state: Mutex::new(State {
                    now: epoch,
                    timers: BTreeMap::new(),
                    next_id: 0,
                }),
                moved: Condvar::new(),
            }),
        }
    }

    /// The instant the clock started at.
    pub fn epoch(&self) -> Instant {
        self.inner.epoch
    }

    /// Virtual time since the epoch.
    pub fn elapsed(&self) -> Duration {
        self.lock().now - self.inner.epoch
    }

    /// Moves time forward by `by`, waking every sleeper whose deadline is reached.
    pub fn advance(&self, by: Duration) {
        let target = self.lock().now + by;
        self.advance_to(target);
    }

    /// Moves time forward to `target` (no-op if `target` is in the past), waking every sleeper
    /// whose deadline is reached, in deadline order.
    pub fn advance_to(&self, target: Instant) {
        let woken = {
            let mut state = self.lock();
            if target > state.now {
                state.now = target;
            }
            let now = state.now;
            let mut woken = Vec::new();
            while let Some(entry) = state.timers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                woken.push(entry.remove());
            }
            woken
        };
        self.inner.moved.notify_all();
        for waker in woken {
            waker.wake();
        }
    }

    /// The earliest deadline anybody is sleeping until, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock().timers.keys().next().map(|(at, _)| *at)
    }

    /// How many sleepers are waiting.
    pub fn sleepers(&self) -> usize {
        self.lock().timers.len()
    }

    /// A future that completes when the clock reaches `deadline`.
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        let id = {
            let mut state = self.lock();
            state.next_id += 1;
            state.next_id
        };
        Sleep {
            clock: self.clone(),
            deadline,
            id,
            registered: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for SimClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimClock")
            .field("elapsed", &self.elapsed())
            .field("sleepers", &self.sleepers())
            .finish()
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        self.lock().now
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(SimClock::sleep_until(self, deadline))
    }

    fn block_until(&self, deadline: Instant) {
        let mut state = self.lock();
        while state.now < deadline {
            state = self
                .inner
                .moved
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The future returned by [`SimClock::sleep_until`].
#[derive(Debug)]
#[must_use = "a sleep does nothing unless awaited"]
pub struct Sleep {
    clock: SimClock,
    deadline: Instant,
    id: u64,
    registered: bool,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let key = (self.deadline, self.id);
        let mut state = self.clock.lock();
        if state.now >= self.deadline {
            state.timers.remove(&key);
            drop(state);
            self.registered = false;
            return Poll::Ready(());
        }
        state.timers.insert(key, cx.waker().clone());
        drop(state);
        self.registered = true;
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if self.registered {
            self.clock.lock().timers.remove(&(self.deadline, self.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting_waker(count: Arc<AtomicUsize>) -> Waker {
        struct W(Arc<AtomicUsize>);
        impl std::task::Wake for W {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        Waker::from(Arc::new(W(count)))
    }

    #[test]
    fn sleepers_wake_in_deadline_order_and_only_when_due() {
        let clock = SimClock::new();
        let t0 = clock.now();
        let hits = Arc::new(AtomicUsize::new(0));
        let waker = counting_waker(hits.clone());
        let mut cx = Context::from_waker(&waker);
        let mut late = Box::pin(clock.sleep_until(t0 + Duration::from_secs(10)));
        let mut early = Box::pin(clock.sleep_until(t0 + Duration::from_secs(2)));
        assert!(late.as_mut().poll(&mut cx).is_pending());
        assert!(early.as_mut().poll(&mut cx).is_pending());
        assert_eq!(clock.next_deadline(), Some(t0 + Duration::from_secs(2)));
        clock.advance(Duration::from_secs(1));
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        clock.advance(Duration::from_secs(1));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert!(early.as_mut().poll(&mut cx).is_ready());
        assert!(late.as_mut().poll(&mut cx).is_pending());
        clock.advance_to(t0 + Duration::from_secs(10));
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert!(late.as_mut().poll(&mut cx).is_ready());
        assert_eq!(clock.sleepers(), 0);
    }

    #[test]
    fn dropping_a_sleep_unregisters_it() {
        let clock = SimClock::new();
        let waker = counting_waker(Arc::new(AtomicUsize::new(0)));
        let mut cx = Context::from_waker(&waker);
        let mut s = Box::pin(clock.sleep_until(clock.now() + Duration::from_secs(1)));
        assert!(s.as_mut().poll(&mut cx).is_pending());
        assert_eq!(clock.sleepers(), 1);
        drop(s);
        assert_eq!(clock.sleepers(), 0);
    }

    #[test]
    fn block_until_returns_once_another_thread_advances() {
        let clock = SimClock::new();
        let deadline = clock.now() + Duration::from_secs(30);
        let c2 = clock.clone();
        let waiter = std::thread::spawn(move || {
            c2.block_until(deadline);
            c2.now()
        });
        // Advance in steps until the waiter has seen the deadline (bounded loop).
        for _ in 0..30 {
            clock.advance(Duration::from_secs(1));
        }
        let seen = waiter.join().expect("waiter thread");
        assert!(seen >= deadline);
    }

    #[test]
    fn time_never_runs_backwards() {
        let clock = SimClock::new();
        clock.advance(Duration::from_secs(5));
        let t = clock.now();
        clock.advance_to(t - Duration::from_secs(3));
        assert_eq!(clock.now(), t);
    }
}
