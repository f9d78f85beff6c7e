//! [`SimBlock`]: the blocking waiter of a [`Sim`](super::Sim). Blocking threads take turns with
//! the simulated tasks, so a run with blocking threads is as deterministic as one without.
//!
//! Threads started by [`Sim::spawn_blocking`](super::Sim::spawn_blocking) get an id in spawn
//! order and run only while they hold the *baton*, which the driving thread (in
//! [`Sim::drive_until`](super::Sim::drive_until), [`Sim::block_on`](super::Sim::block_on) or
//! [`Sim::run_blocking`](super::Sim::run_blocking)) hands out when no task is ready: to the
//! runnable thread with the lowest id, and waits until it parks in [`Block::block_on`] or
//! finishes. A wake makes a thread runnable; time moves only when no task is ready and no thread
//! is runnable or running.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::seams::{Block, InAsyncContext};

thread_local! {
    /// Set while this thread polls a Sim's main future or tasks.
    static IN_SIM: Cell<bool> = const { Cell::new(false) };
    /// The id of a thread started by `Sim::spawn_blocking`.
    static THREAD_ID: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Marks the current thread as polling simulated tasks until dropped.
pub(super) struct InSimGuard(bool);

impl InSimGuard {
    pub(super) fn enter() -> Self {
        Self(IN_SIM.with(|c| c.replace(true)))
    }
}

impl Drop for InSimGuard {
    fn drop(&mut self) {
        IN_SIM.with(|c| c.set(self.0));
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// The thread holding the baton.
    running: Option<u64>,
    /// Threads woken (or just started) and waiting for the baton.
    runnable: BTreeSet<u64>,
    /// The running thread was woken while it polled: it polls again instead of parking.
    notified: bool,
}

#[derive(Default)]
pub(super) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, s: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(s).unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new blocking thread (runnable, waiting for its first turn); returns its id.
    pub(super) fn thread_spawned(&self) -> u64 {
        let mut s = self.lock();
        s.next_id += 1;
        let id = s.next_id;
        s.runnable.insert(id);
        id
    }

    /// Called on the new thread: remembers its id and waits for its first turn.
    pub(super) fn thread_started(&self, id: u64) {
        THREAD_ID.with(|c| c.set(Some(id)));
        let mut s = self.lock();
        while s.running != Some(id) {
            s = self.wait(s);
        }
    }

    /// Called when the thread's function returned or panicked: gives the baton back.
    pub(super) fn thread_finished(&self, id: u64) {
        let mut s = self.lock();
        s.runnable.remove(&id);
        if s.running == Some(id) {
            s.running = None;
            s.notified = false;
        }
        drop(s);
        self.changed.notify_all();
    }

    /// Hands the baton to the lowest runnable thread and waits (at most `limit` of real time)
    /// until it parks or finishes. Returns `Ok(false)` when no thread was runnable.
    pub(super) fn step(&self, limit: Duration) -> Result<bool, ()> {
        let mut s = self.lock();
        let Some(id) = s.runnable.pop_first() else {
            return Ok(false);
        };
        s.running = Some(id);
        s.notified = false;
        self.changed.notify_all();
        let end = Instant::now() + limit;
        while s.running == Some(id) {
            let now = Instant::now();
            if now >= end {
                return Err(());
            }
            s = self
                .changed
                .wait_timeout(s, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(true)
    }

    fn wake(&self, id: u64) {
        let mut s = self.lock();
        if s.running == Some(id) {
            s.notified = true;
        } else {
            s.runnable.insert(id);
        }
    }
}

struct ThreadWake {
    id: u64,
    shared: Arc<Shared>,
}

impl Wake for ThreadWake {
    fn wake(self: Arc<Self>) {
        self.shared.wake(self.id);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.wake(self.id);
    }
}

/// The blocking waiter of a [`Sim`](super::Sim) (installed by [`Sim::runtime`](super::Sim::runtime)).
///
/// On a thread started by [`Sim::spawn_blocking`](super::Sim::spawn_blocking) it parks until the
/// driving thread hands it the baton again. On any other thread it polls and parks on its own,
/// and the Sim does not know when it is busy: run blocking code on `spawn_blocking` threads.
/// Refuses with [`InAsyncContext`] on a thread that is polling the Sim's tasks or main future,
/// where waiting could never end.
///
/// ```
/// use redis_keeper::seams::{block_with, InAsyncContext};
/// use redis_keeper::sim::Sim;
/// let sim = Sim::new(1);
/// let blocker = sim.blocker();
/// assert_eq!(block_with(&blocker, async { 5 }), Ok(5));
/// let inside = sim.block_on(async { block_with(&blocker, async { 5 }) });
/// assert_eq!(inside, Err(InAsyncContext));
/// ```
#[derive(Clone)]
pub struct SimBlock {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for SimBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("SimBlock")
            .field("running", &s.running)
            .field("runnable", &s.runnable)
            .finish()
    }
}

impl Block for SimBlock {
    fn block_on(&self, mut fut: BoxFuture<'_, ()>) -> Result<(), InAsyncContext> {
        if IN_SIM.with(Cell::get) {
            return Err(InAsyncContext);
        }
        let Some(id) = THREAD_ID.with(Cell::get) else {
            futures::executor::block_on(fut);
            return Ok(());
        };
        let waker = Waker::from(Arc::new(ThreadWake {
            id,
            shared: self.shared.clone(),
        }));
        let mut cx = Context::from_waker(&waker);
        // Bounded by the driver: every park hands the baton back, and the Sim's poll bound and
        // deadlock detection end a run that never wakes this thread.
        loop {
            if let Poll::Ready(()) = fut.as_mut().poll(&mut cx) {
                return Ok(());
            }
            let mut s = self.shared.lock();
            if std::mem::take(&mut s.notified) {
                continue; // woken while polling: poll again
            }
            s.running = None;
            self.shared.changed.notify_all();
            while s.running != Some(id) {
                s = self.shared.wait(s);
            }
        }
    }
}
