//! The exclusive pool: idle connections, lent connections, connection slots and a FIFO of waiters.
//!
//! One mutex guards the state and is never held across an await or while a waiter is handed
//! something: hand-offs go through oneshot channels after the lock is released, and anything a
//! channel refuses comes back through the [`Lease`]/[`ConnectPermit`] `Drop` impls.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::channel::oneshot;

use super::lease::{self, ConnMeta, Home};

/// A connection lent by the exclusive pool.
pub(crate) type Lease<C> = lease::Lease<C, Inner<C>>;
/// The right to open one connection of the exclusive pool.
pub(crate) type ConnectPermit<C> = lease::ConnectPermit<C, Inner<C>>;
/// A pool connection held by a shared slot.
pub(crate) type SharedLease<C> = lease::SharedLease<C, Inner<C>>;
use super::stats::{PoolCounters, PoolStats};
use crate::histogram::Histogram;
use crate::policy::{IdleConfig, IdleEntry, IdlePolicy};
use crate::seams::{timeout_at, Clock};

/// A pool of connections of type `C`, shared by cheap clones.
pub(crate) struct Pool<C: Send + 'static> {
    inner: Arc<Inner<C>>,
}

impl<C: Send + 'static> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// What a checkout yields: an idle connection, or the right to open a new one.
pub(crate) enum Checkout<C: Send + 'static> {
    /// A connection that sat idle; the caller may validate it first.
    Idle(Lease<C>),
    /// Room for a new connection: open it and call [`ConnectPermit::into_lease`].
    Connect(ConnectPermit<C>),
}

/// Why a checkout failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolError {
    /// The pool was closed.
    Closed,
    /// The deadline passed while waiting.
    Timeout { waited: Duration },
}

enum Grant<C: Send + 'static> {
    Conn(Lease<C>),
    Connect(ConnectPermit<C>),
}

struct Waiter<C: Send + 'static> {
    id: u64,
    tx: oneshot::Sender<Grant<C>>,
}

struct Idle<C> {
    conn: C,
    meta: ConnMeta,
}

pub(crate) struct Inner<C: Send + 'static> {
    clock: Arc<dyn Clock>,
    max: usize,
    state: Mutex<State<C>>,
    pub(crate) counters: PoolCounters,
}

struct State<C: Send + 'static> {
    /// Back = most recently returned (checkout is LIFO, the sweep closes the oldest).
    idle: VecDeque<Idle<C>>,
    lent: usize,
    connecting: usize,
    shared: usize,
    waiters: VecDeque<Waiter<C>>,
    next_waiter: u64,
    next_conn: u64,
    closed: bool,
    policy: IdlePolicy,
    last_sweep: Option<Instant>,
    last_return: Option<Instant>,
}

impl<C: Send + 'static> State<C> {
    fn total(&self) -> usize {
        self.idle.len() + self.lent + self.connecting + self.shared
    }
}

/// Work decided under the lock and carried out after it is released.
enum Handoff<C: Send + 'static> {
    Nothing,
    Send(oneshot::Sender<Grant<C>>, Grant<C>),
}

impl<C: Send + 'static> Handoff<C> {
    fn run(self) {
        if let Handoff::Send(tx, grant) = self {
            // A refused grant is dropped here, outside the lock; its Drop puts it back.
            let _ = tx.send(grant);
        }
    }
}

impl<C: Send + 'static> Pool<C> {
    /// A pool of at most `max` connections (idle, lent, connecting and shared together).
    #[cfg(test)]
    pub(crate) fn new(clock: Arc<dyn Clock>, max: usize, idle: IdleConfig) -> Self {
        Self::with_wait_histogram(clock, max, idle, Histogram::default())
    }

    /// A pool of at most `max` connections (idle, lent, connecting and shared together), its
    /// waits recorded in `wait`.
    pub(crate) fn with_wait_histogram(
        clock: Arc<dyn Clock>,
        max: usize,
        idle: IdleConfig,
        wait: Histogram,
    ) -> Self {
        let now = clock.now();
        Self {
            inner: Arc::new(Inner {
                clock,
                max: max.max(1),
                state: Mutex::new(State {
                    idle: VecDeque::new(),
                    lent: 0,
                    connecting: 0,
                    shared: 0,
                    waiters: VecDeque::new(),
                    next_waiter: 0,
                    next_conn: 0,
                    closed: false,
                    policy: IdlePolicy::new(idle, now),
                    last_sweep: None,
                    last_return: None,
                }),
                counters: PoolCounters {
                    wait,
                    ..PoolCounters::default()
                },
            }),
        }
    }

    /// Takes an idle connection (most recently returned first, closing stale ones on the way),
    /// or room to open one, or waits in FIFO order until `deadline`.
    /// `now` is the caller's reading of the pool's clock.
    pub(crate) async fn checkout(
        &self,
        now: Instant,
        deadline: Instant,
    ) -> Result<Checkout<C>, PoolError> {
        let started = now;
        let (id, rx) = match self.inner.try_checkout(now)? {
            Ok(checkout) => return Ok(checkout),
            Err(waiting) => waiting,
        };
        let _guard = WaiterGuard {
            pool: &self.inner,
            id,
        };
        let outcome = timeout_at(&*self.inner.clock, deadline, rx).await;
        let waited = self.inner.clock.now().saturating_duration_since(started);
        self.inner.counters.wait.record(waited);
        match outcome {
            Ok(Ok(Grant::Conn(lease))) => Ok(Checkout::Idle(lease)),
            Ok(Ok(Grant::Connect(permit))) => Ok(Checkout::Connect(permit)),
            Ok(Err(oneshot::Canceled)) => Err(PoolError::Closed),
            Err(_) => {
                PoolCounters::bump(&self.inner.counters.timeouts);
                Err(PoolError::Timeout { waited })
            }
        }
    }

    /// The most recently returned idle connection, if it is not stale at `now` and `ready`
    /// accepts it; `None` leaves everything as it was (the caller takes the full
    /// [`Pool::checkout`] path). Never waits, never closes anything: the lock-and-pop fast path.
    pub(crate) fn try_take_idle(
        &self,
        now: Instant,
        ready: impl FnOnce(&ConnMeta, &C) -> bool,
    ) -> Option<Lease<C>> {
        let idle = {
            let mut state = self.inner.lock();
            let back = state.idle.back()?;
            let entry = IdleEntry {
                id: back.meta.id,
                returned_at: back.meta.returned_at,
                created_at: back.meta.created_at,
            };
            if state.closed || state.policy.is_stale(now, &entry) || !ready(&back.meta, &back.conn)
            {
                return None;
            }
            state.lent += 1;
            state.idle.pop_back()?
        };
        PoolCounters::bump(&self.inner.counters.hits);
        Some(Lease {
            conn: Some(idle.conn),
            meta: idle.meta,
            pool: self.inner.clone(),
            discard: false,
        })
    }

    /// Runs the idle sweep if it is due at `now`; returns how many connections it closed.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        self.sweep_if(now, false)
    }

    /// Runs the idle sweep now, due or not (a manual sweep); returns how many it closed.
    pub(crate) fn sweep_now(&self, now: Instant) -> usize {
        self.sweep_if(now, true)
    }

    fn sweep_if(&self, now: Instant, forced: bool) -> usize {
        let closed: Vec<C> = {
            let mut state = self.inner.lock();
            if state.closed || !(forced || state.policy.sweep_due(now)) {
                return 0;
            }
            let entries: Vec<IdleEntry> = state
                .idle
                .iter()
                .map(|i| IdleEntry {
                    id: i.meta.id,
                    returned_at: i.meta.returned_at,
                    created_at: i.meta.created_at,
                })
                .collect();
            let doomed = state.policy.on_sweep(now, &entries);
            state.last_sweep = Some(now);
            if state.last_return == Some(now) {
                PoolCounters::bump(&self.inner.counters.sweep_races);
            }
            let mut closed = Vec::with_capacity(doomed.len());
            let mut kept = VecDeque::with_capacity(state.idle.len());
            while let Some(idle) = state.idle.pop_front() {
                if doomed.contains(&idle.meta.id) {
                    closed.push(idle.conn);
                } else {
                    kept.push_back(idle);
                }
            }
            state.idle = kept;
            closed
        };
        let n = closed.len();
        PoolCounters::bump(&self.inner.counters.sweeps);
        PoolCounters::add(&self.inner.counters.stale_closed, n as u64);
        PoolCounters::add(&self.inner.counters.closed, n as u64);
        drop(closed);
        n
    }

    /// When the next idle sweep is due.
    pub(crate) fn next_sweep(&self) -> Instant {
        self.inner.lock().policy.next_deadline()
    }

    /// Closes the pool: idle connections are closed, waiters get `Closed`, lent connections are
    /// closed when they come back.
    pub(crate) fn close(&self) {
        let (idle, waiters) = {
            let mut state = self.inner.lock();
            state.closed = true;
            (
                std::mem::take(&mut state.idle),
                std::mem::take(&mut state.waiters),
            )
        };
        PoolCounters::add(&self.inner.counters.closed, idle.len() as u64);
        drop(idle);
        drop(waiters);
    }

    /// Closes every idle connection now, leaving the pool open (the Keeper was dropped while
    /// handles are still alive: they keep working, and nothing sits idle for nobody).
    pub(crate) fn release_idle(&self) -> usize {
        let idle = std::mem::take(&mut self.inner.lock().idle);
        PoolCounters::add(&self.inner.counters.closed, idle.len() as u64);
        idle.len()
    }

    /// A snapshot of the pool's state and counters.
    pub(crate) fn stats(&self, now: Instant) -> PoolStats {
        let state = self.inner.lock();
        let c = &self.inner.counters;
        PoolStats {
            created: PoolCounters::read(&c.created),
            closed: PoolCounters::read(&c.closed),
            idle: state.idle.len(),
            in_use: state.lent,
            connecting: state.connecting,
            shared: state.shared,
            max: self.inner.max,
            waiters: state.waiters.len(),
            hits: PoolCounters::read(&c.hits),
            misses: PoolCounters::read(&c.misses),
            timeouts: PoolCounters::read(&c.timeouts),
            stale_closed: PoolCounters::read(&c.stale_closed),
            broken_closed: PoolCounters::read(&c.broken_closed),
            sweeps: PoolCounters::read(&c.sweeps),
            sweep_races: PoolCounters::read(&c.sweep_races),
            since_last_sweep: state.last_sweep.map(|t| now.saturating_duration_since(t)),
            wait: c.wait.snapshot(),
        }
    }

    /// Checks the accounting invariants (DESIGN §3), for tests and the simulator.
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let state = self.inner.lock();
        if state.total() > self.inner.max {
            return Err(format!(
                "idle {} + lent {} + connecting {} + shared {} > max {}",
                state.idle.len(),
                state.lent,
                state.connecting,
                state.shared,
                self.inner.max
            ));
        }
        if !state.idle.is_empty() && state.waiters.iter().any(|w| !w.tx.is_canceled()) {
            return Err("a waiter is queued while an idle connection exists".into());
        }
        let mut ids: Vec<u64> = state.idle.iter().map(|i| i.meta.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != state.idle.len() {
            return Err("a connection is idle twice".into());
        }
        Ok(())
    }
}

impl<C: Send + 'static> Inner<C> {
    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // The state is updated in small steps that leave it consistent even if a panic unwound.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[allow(clippy::type_complexity)]
    fn try_checkout(
        self: &Arc<Self>,
        now: Instant,
    ) -> Result<Result<Checkout<C>, (u64, oneshot::Receiver<Grant<C>>)>, PoolError> {
        let mut stale = Vec::new();
        let result = {
            let mut state = self.lock();
            if state.closed {
                return Err(PoolError::Closed);
            }
            let mut found = None;
            while let Some(idle) = state.idle.pop_back() {
                let entry = IdleEntry {
                    id: idle.meta.id,
                    returned_at: idle.meta.returned_at,
                    created_at: idle.meta.created_at,
                };
                if state.policy.is_stale(now, &entry) {
                    stale.push(idle.conn);
                    continue;
                }
                found = Some(idle);
                break;
            }
            if let Some(idle) = found {
                state.lent += 1;
                PoolCounters::bump(&self.counters.hits);
                Ok(Checkout::Idle(Lease {
                    conn: Some(idle.conn),
                    meta: idle.meta,
                    pool: self.clone(),
                    discard: false,
                }))
            } else if state.total() < self.max {
                state.connecting += 1;
                PoolCounters::bump(&self.counters.misses);
                Ok(Checkout::Connect(ConnectPermit {
                    _conn: std::marker::PhantomData,
                    pool: Some(self.clone()),
                }))
            } else {
                PoolCounters::bump(&self.counters.misses);
                let (tx, rx) = oneshot::channel();
                state.next_waiter += 1;
                let id = state.next_waiter;
                state.waiters.push_back(Waiter { id, tx });
                Err((id, rx))
            }
        };
        if !stale.is_empty() {
            PoolCounters::add(&self.counters.stale_closed, stale.len() as u64);
            PoolCounters::add(&self.counters.closed, stale.len() as u64);
        }
        drop(stale);
        Ok(result)
    }

    /// A lease ended: re-idle the connection (or hand it to a waiter), or close it.
    fn give_back_inner(self: &Arc<Self>, conn: C, mut meta: ConnMeta, discard: bool) {
        let now = self.clock.now();
        let mut to_close = None;
        let handoff = {
            let mut state = self.lock();
            state.lent -= 1;
            state.last_return = Some(now);
            if state.last_sweep == Some(now) {
                PoolCounters::bump(&self.counters.sweep_races);
            }
            if discard || state.closed {
                to_close = Some(conn);
                self.capacity_freed(&mut state)
            } else {
                meta.returned_at = now;
                match pop_live_waiter(&mut state) {
                    Some(waiter) => {
                        state.lent += 1;
                        Handoff::Send(
                            waiter.tx,
                            Grant::Conn(Lease {
                                conn: Some(conn),
                                meta,
                                pool: self.clone(),
                                discard: false,
                            }),
                        )
                    }
                    None => {
                        state.idle.push_back(Idle { conn, meta });
                        Handoff::Nothing
                    }
                }
            }
        };
        if to_close.is_some() {
            PoolCounters::bump(&self.counters.closed);
            if discard {
                PoolCounters::bump(&self.counters.broken_closed);
            }
        }
        drop(to_close);
        handoff.run();
    }

    /// A connect permit was dropped without a connection.
    fn connect_abandoned_inner(self: &Arc<Self>) {
        let handoff = {
            let mut state = self.lock();
            state.connecting -= 1;
            self.capacity_freed(&mut state)
        };
        handoff.run();
    }

    /// A connect permit turned into a connection.
    fn connected_inner(&self) -> ConnMeta {
        let now = self.clock.now();
        let mut state = self.lock();
        state.connecting -= 1;
        state.lent += 1;
        state.next_conn += 1;
        PoolCounters::bump(&self.counters.created);
        ConnMeta {
            id: state.next_conn,
            created_at: now,
            returned_at: now,
        }
    }

    fn lent_to_shared_inner(&self) {
        let mut state = self.lock();
        state.lent -= 1;
        state.shared += 1;
    }

    fn shared_closed_inner(self: &Arc<Self>) {
        PoolCounters::bump(&self.counters.closed);
        let handoff = {
            let mut state = self.lock();
            state.shared -= 1;
            self.capacity_freed(&mut state)
        };
        handoff.run();
    }

    /// One unit of capacity came free: the first live waiter may open a connection.
    fn capacity_freed(self: &Arc<Self>, state: &mut State<C>) -> Handoff<C> {
        if state.closed || state.total() >= self.max {
            return Handoff::Nothing;
        }
        match pop_live_waiter(state) {
            Some(waiter) => {
                state.connecting += 1;
                Handoff::Send(
                    waiter.tx,
                    Grant::Connect(ConnectPermit {
                        _conn: std::marker::PhantomData,
                        pool: Some(self.clone()),
                    }),
                )
            }
            None => Handoff::Nothing,
        }
    }

    fn remove_waiter(&self, id: u64) {
        let mut state = self.lock();
        state.waiters.retain(|w| w.id != id);
    }
}

fn pop_live_waiter<C: Send + 'static>(state: &mut State<C>) -> Option<Waiter<C>> {
    while let Some(waiter) = state.waiters.pop_front() {
        if !waiter.tx.is_canceled() {
            return Some(waiter);
        }
    }
    None
}

/// Removes a waiter from the queue however its wait ends (served, timed out, cancelled).
impl<C: Send + 'static> Home<C> for Inner<C> {
    fn give_back(self: &Arc<Self>, conn: C, meta: ConnMeta, discard: bool) {
        self.give_back_inner(conn, meta, discard);
    }

    fn lent_to_shared(&self) {
        self.lent_to_shared_inner();
    }

    fn shared_closed(self: &Arc<Self>) {
        self.shared_closed_inner();
    }

    fn connected(&self) -> ConnMeta {
        self.connected_inner()
    }

    fn connect_abandoned(self: &Arc<Self>) {
        self.connect_abandoned_inner();
    }
}

struct WaiterGuard<'a, C: Send + 'static> {
    pool: &'a Arc<Inner<C>>,
    id: u64,
}

impl<C: Send + 'static> Drop for WaiterGuard<'_, C> {
    fn drop(&mut self) {
        self.pool.remove_waiter(self.id);
    }
}
