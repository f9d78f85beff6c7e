//! One response-timeout watchdog per connection: commands register their deadline in a FIFO, and
//! a single background task sleeps until the oldest one, instead of a runtime timer per command.
//!
//! A command registers (`started + response_timeout`) before it is sent and deregisters when it
//! finishes or its future is dropped; both take a short per-connection lock and arm no timer. The
//! task is spawned on the first registration and sleeps through the [`Clock`] until the oldest
//! outstanding deadline; it is woken by a registration only when it had nothing to watch. When
//! it wakes and the oldest command is still outstanding at its deadline, the connection has timed
//! out: it is marked closed and its driver aborted, so every command in flight on it fails at
//! that instant (the commands turn their `BrokenPipe` into a timeout, see [`Ticket::timed_out`]).
//! A multiplexed connection that missed a reply is poisoned anyway: a late reply must never reach
//! a later caller.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Instant;

use futures::future::{abortable, AbortHandle};

use super::driver::Driver;
use crate::seams::{Clock, Runtime};

/// The response-timeout watchdog of one connection (shared by all its clones).
pub(crate) struct Watchdog {
    state: Mutex<State>,
    /// The connection's driver task: stopping it fails every command in flight at once and
    /// marks the connection closed, so no new command is routed to it.
    driver: Arc<Driver>,
}

struct State {
    /// Deadlines of registered commands in registration order; `None` once a command finished
    /// (kept until every older one has, so an id maps to a position). The front is always an
    /// outstanding command.
    deadlines: VecDeque<Option<Instant>>,
    /// The id of `deadlines[0]`; ids count registrations from 0.
    first: u64,
    /// The latest deadline registered: deadlines never decrease, so the front is the earliest.
    latest: Option<Instant>,
    task: Task,
    /// Ids below this were in flight when the watchdog fired (0 while it has not).
    fired_below: u64,
}

/// What the background task is doing.
enum Task {
    /// Not spawned yet: no command was ever registered.
    Unspawned,
    /// Sleeping until the oldest deadline, or about to look at the queue.
    Running(AbortHandle),
    /// Nothing outstanding: parked until a registration wakes it.
    Parked(AbortHandle, Waker),
    /// Fired, or stopped with its connection: nothing is watched any more.
    Ended,
}

/// What [`Watchdog::register`] must do once the lock is released.
enum Start {
    Nothing,
    Wake(Waker),
    Spawn(futures::future::BoxFuture<'static, ()>),
}

impl Watchdog {
    /// A watchdog that stops `driver` when a command outlives its deadline.
    pub(crate) fn new(driver: Arc<Driver>) -> Self {
        Self {
            state: Mutex::new(State {
                deadlines: VecDeque::new(),
                first: 0,
                latest: None,
                task: Task::Unspawned,
                fired_below: 0,
            }),
            driver,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a command that must be answered by `deadline`; it is watched until the ticket
    /// is dropped. Spawns the task (through `runtime`) on the first registration, and wakes it
    /// when it was parked with nothing to watch.
    ///
    /// A deadline earlier than one already registered (two threads read the clock and register
    /// in the opposite order) is raised to it, so the queue stays in deadline order.
    pub(crate) fn register(self: &Arc<Self>, deadline: Instant, runtime: &Runtime) -> Ticket<'_> {
        let mut st = self.lock();
        let deadline = st.latest.map_or(deadline, |latest| latest.max(deadline));
        st.latest = Some(deadline);
        let id = st.first + st.deadlines.len() as u64;
        st.deadlines.push_back(Some(deadline));
        if matches!(st.task, Task::Running(_) | Task::Ended) {
            return Ticket { dog: self, id }; // the common case: the task is awake
        }
        let start = match std::mem::replace(&mut st.task, Task::Ended) {
            Task::Unspawned => {
                let (task, abort) = abortable(self.clone().run(runtime.clock().clone()));
                st.task = Task::Running(abort);
                Start::Spawn(Box::pin(async move {
                    let _ = task.await;
                }))
            }
            Task::Parked(abort, waker) => {
                st.task = Task::Running(abort);
                Start::Wake(waker)
            }
            other => {
                st.task = other;
                Start::Nothing
            }
        };
        drop(st);
        match start {
            Start::Nothing => {}
            Start::Wake(waker) => waker.wake(),
            Start::Spawn(task) => runtime.spawner().spawn(task),
        }
        Ticket { dog: self, id }
    }

    /// Whether a registered command has not finished yet.
    pub(crate) fn has_outstanding(&self) -> bool {
        !self.lock().deadlines.is_empty()
    }

    /// Stops the task (the connection is gone): nothing is watched any more.
    pub(crate) fn stop(&self) {
        let task = std::mem::replace(&mut self.lock().task, Task::Ended);
        match task {
            Task::Running(abort) | Task::Parked(abort, _) => abort.abort(),
            Task::Unspawned | Task::Ended => {}
        }
    }

    /// The task: sleep until the oldest deadline; fire if that command is still outstanding then.
    async fn run(self: Arc<Self>, clock: Arc<dyn Clock>) {
        // Bounded by the connection: each round sleeps to the oldest deadline, parks, or fires.
        loop {
            let deadline = futures::future::poll_fn(|cx| {
                let mut st = self.lock();
                if let Some(&Some(deadline)) = st.deadlines.front() {
                    return Poll::Ready(Some(deadline));
                }
                match std::mem::replace(&mut st.task, Task::Ended) {
                    Task::Running(abort) | Task::Parked(abort, _) => {
                        st.task = Task::Parked(abort, cx.waker().clone());
                        Poll::Pending
                    }
                    Task::Unspawned | Task::Ended => Poll::Ready(None),
                }
            })
            .await;
            let Some(deadline) = deadline else {
                return; // stopped
            };
            clock.sleep_until(deadline).await;
            let now = clock.now();
            let expired = {
                let mut st = self.lock();
                let expired = matches!(st.deadlines.front(), Some(&Some(oldest)) if oldest <= now);
                if expired {
                    st.fired_below = st.first + st.deadlines.len() as u64;
                    st.task = Task::Ended;
                }
                expired
            };
            if expired {
                self.driver.stop();
                return;
            }
            // The oldest command answered in time; a newer one is the oldest now. Yield before
            // sleeping again: a clock whose sleep ended before its `now` reached the deadline
            // would otherwise bring this loop back at once, spinning inside one poll.
            YieldNow(false).await;
        }
    }
}

/// Pending once (having woken its task), then ready: lets a loop hand its executor the turn.
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A registered command; dropping it (the command finished, or its future was dropped)
/// deregisters it.
pub(crate) struct Ticket<'a> {
    dog: &'a Watchdog,
    id: u64,
}

impl Ticket<'_> {
    /// Whether the watchdog fired while this command was in flight: its connection timed out, so
    /// its failure (the driver was aborted under it) is a response timeout.
    pub(crate) fn timed_out(&self) -> bool {
        self.id < self.dog.lock().fired_below
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut st = self.dog.lock();
        let index = self.id.wrapping_sub(st.first);
        if let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| st.deadlines.get_mut(i))
        {
            *slot = None;
        }
        while let Some(None) = st.deadlines.front() {
            st.deadlines.pop_front();
            st.first += 1;
        }
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests;
