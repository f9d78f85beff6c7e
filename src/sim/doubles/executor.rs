//! [`Sim`]: a deterministic single-threaded executor that runs scenarios in virtual time.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::block::{InSimGuard, Shared as BlockShared, SimBlock};
use super::{SimClock, Trace};
use crate::rng::Rng;
use crate::seams::{Clock, Runtime, Spawn, Transport};

/// The default bound on polls over a [`Sim`]'s life; see [`Sim::with_max_polls`].
const DEFAULT_MAX_POLLS: u64 = 10_000_000;

/// A simulated world: virtual time, a trace, a seeded RNG and an executor for its tasks.
///
/// [`block_on`](Sim::block_on) polls the main future and every ready task in FIFO order; when
/// nothing is ready it jumps the [`SimClock`] to the next deadline, so minutes of timeouts run in
/// microseconds. Same seed and scenario, same order of polls, same [`Trace`]. Failures (deadlock,
/// runaway) panic with the seed and the virtual time.
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::seams::{Clock, Spawn};
/// use redis_keeper::sim::Sim;
/// let sim = Sim::new(7);
/// let (clock, trace) = (sim.clock().clone(), sim.trace().clone());
/// sim.spawner().spawn(Box::pin(async move {
///     let t0 = clock.now();
///     clock.sleep_until(t0 + Duration::from_secs(60)).await;
///     trace.record(clock.elapsed(), "woke");
/// }));
/// sim.run_for(Duration::from_secs(60));
/// assert_eq!(sim.trace().lines(), vec!["+60000.000ms woke".to_string()]);
/// ```
pub struct Sim {
    seed: u64,
    clock: SimClock,
    trace: Trace,
    rng: Mutex<Rng>,
    shared: Arc<Shared>,
    polls: AtomicU64,
    max_polls: u64,
    blocking: Arc<BlockShared>,
}

/// How long (real time) a blocking thread may keep its turn before the Sim gives up.
const QUIESCENCE_LIMIT: Duration = Duration::from_secs(30);

/// What the [`Sim`] shares with its [`SimSpawn`]ers and task wakers.
struct Shared {
    /// Ids of tasks woken and not yet polled, in wake order.
    queue: Arc<Mutex<VecDeque<u64>>>,
    /// Live tasks by id (ordered, so dropping them is deterministic too).
    tasks: Mutex<BTreeMap<u64, Arc<Task>>>,
    next_id: AtomicU64,
    /// Set when the [`Sim`] is dropped: later spawns drop their task at once.
    closed: AtomicBool,
}

struct Task {
    id: u64,
    future: Mutex<Option<BoxFuture<'static, ()>>>,
    /// Whether the id is in the run queue (so repeated wakes queue it once).
    queued: AtomicBool,
    queue: Arc<Mutex<VecDeque<u64>>>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            lock(&self.queue).push_back(self.id);
        }
    }
}

/// The main future's waker: a flag the loop checks.
struct MainWake(AtomicBool);

impl Wake for MainWake {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sim {
    /// A world driven by `seed`, with a [`Trace`] that keeps its lines.
    pub fn new(seed: u64) -> Self {
        Self::with_trace(seed, Trace::new())
    }

    /// A world driven by `seed` that records into `trace` (e.g. [`Trace::hash_only`] for long runs).
    pub fn with_trace(seed: u64, trace: Trace) -> Self {
        Self {
            seed,
            clock: SimClock::new(),
            trace,
            rng: Mutex::new(Rng::new(seed)),
            shared: Arc::new(Shared {
                queue: Arc::new(Mutex::new(VecDeque::new())),
                tasks: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
            polls: AtomicU64::new(0),
            max_polls: DEFAULT_MAX_POLLS,
            blocking: Arc::new(BlockShared::default()),
        }
    }

    /// Sets the bound on polls (main future and tasks) over the Sim's life; exceeding it panics
    /// with the seed. Default: 10 000 000.
    pub fn with_max_polls(mut self, max_polls: u64) -> Self {
        self.max_polls = max_polls;
        self
    }

    /// The seed this world was created from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The virtual clock.
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// The event trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Records `event` in the trace at the current virtual time.
    pub fn record(&self, event: impl fmt::Display) {
        self.trace.record(self.clock.elapsed(), event);
    }

    /// A fresh generator forked from the seed; successive calls give distinct, reproducible streams.
    pub fn rng(&self) -> Rng {
        lock(&self.rng).fork()
    }

    /// How many polls (main future and tasks) have run so far.
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// How many spawned tasks have not finished yet.
    pub fn tasks(&self) -> usize {
        lock(&self.shared.tasks).len()
    }

    /// A handle that spawns tasks onto this world's run queue.
    pub fn spawner(&self) -> SimSpawn {
        SimSpawn {
            shared: self.shared.clone(),
        }
    }

    /// The seams of this world, named `"sim"`: its clock, its spawner, `transport` and its
    /// [`SimBlock`] waiter for the blocking API.
    pub fn runtime(&self, transport: Arc<dyn Transport>) -> Runtime {
        Runtime::new(
            "sim",
            Arc::new(self.clock.clone()),
            Arc::new(self.spawner()),
            transport,
        )
        .with_blocker(Arc::new(self.blocker()))
    }

    /// The blocking waiter of this world: threads waiting through it are tracked, so virtual time
    /// moves only while every one of them is parked.
    pub fn blocker(&self) -> SimBlock {
        SimBlock {
            shared: self.blocking.clone(),
        }
    }

    /// Starts `f` on a new blocking thread, which runs only while the driving thread
    /// ([`drive_until`](Sim::drive_until), [`block_on`](Sim::block_on),
    /// [`run_blocking`](Sim::run_blocking)) hands it the turn, until it parks in the Sim's
    /// [`SimBlock`] or finishes; threads and tasks take turns, so runs stay deterministic.
    ///
    /// ```
    /// use redis_keeper::seams::{block_with, Clock};
    /// use redis_keeper::sim::Sim;
    /// use std::time::Duration;
    /// let sim = Sim::new(1);
    /// let (clock, blocker) = (sim.clock().clone(), sim.blocker());
    /// let thread = sim.spawn_blocking(move || {
    ///     let t0 = clock.now();
    ///     block_with(&blocker, clock.sleep_until(t0 + Duration::from_secs(5))).unwrap();
    ///     clock.now() - t0
    /// });
    /// sim.drive_until(|| thread.is_finished());
    /// assert_eq!(thread.join(), Duration::from_secs(5));
    /// ```
    pub fn spawn_blocking<T, F>(&self, f: F) -> SimThread<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        struct Finish(Arc<BlockShared>, Arc<AtomicBool>, u64);
        impl Drop for Finish {
            fn drop(&mut self) {
                self.1.store(true, Ordering::Release);
                self.0.thread_finished(self.2);
            }
        }
        let id = self.blocking.thread_spawned();
        let finished = Arc::new(AtomicBool::new(false));
        let finish = Finish(self.blocking.clone(), finished.clone(), id);
        let handle = std::thread::spawn(move || {
            let finish = finish;
            finish.0.thread_started(id);
            f()
        });
        SimThread { handle, finished }
    }

    /// Runs `f` on a blocking thread ([`spawn_blocking`](Sim::spawn_blocking)) while driving the
    /// world, and returns its result (re-raising its panic).
    pub fn run_blocking<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let thread = self.spawn_blocking(f);
        self.drive_until(|| thread.is_finished());
        thread.join()
    }

    /// Drives the world for blocking threads: runs ready tasks, then gives each runnable
    /// blocking thread (lowest id first) its turn until it parks, and only when neither is left
    /// jumps virtual time to the next deadline; returns once `done()` holds at such a quiet point.
    ///
    /// Panics (with the seed) on deadlock (threads waiting, nothing sleeping), when a blocking
    /// thread keeps its turn for 30 s of real time, or past the poll bound.
    pub fn drive_until(&self, mut done: impl FnMut() -> bool) {
        loop {
            self.count_poll();
            self.run_until_idle();
            if self.step_blocking() {
                continue;
            }
            if done() {
                return;
            }
            match self.clock.next_deadline() {
                Some(deadline) => self.clock.advance_to(deadline),
                None => panic!(
                    "sim deadlock (seed {}) at virtual time +{:?}: blocking threads wait, no task \
                     is ready and nothing sleeps ({} tasks blocked)",
                    self.seed,
                    self.clock.elapsed(),
                    self.tasks(),
                ),
            }
        }
    }

    /// Gives one runnable blocking thread its turn; returns whether there was one.
    fn step_blocking(&self) -> bool {
        match self.blocking.step(QUIESCENCE_LIMIT) {
            Ok(ran) => ran,
            Err(()) => panic!(
                "sim (seed {}) at virtual time +{:?}: a blocking thread kept its turn for {:?} of \
                 real time (blocked outside the Sim's SimBlock?)",
                self.seed,
                self.clock.elapsed(),
                QUIESCENCE_LIMIT
            ),
        }
    }

    /// Runs `fut` to completion along with the spawned tasks, jumping virtual time whenever
    /// nothing is ready.
    ///
    /// Panics (with the seed and virtual time) on deadlock, i.e. when `fut` is pending, no task is
    /// ready and nobody sleeps, or when the poll bound is exceeded.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redis_keeper::seams::{timeout, Elapsed};
    /// use redis_keeper::sim::Sim;
    /// let sim = Sim::new(1);
    /// let out = sim.block_on(timeout(sim.clock(), Duration::from_secs(30), std::future::pending::<()>()));
    /// assert_eq!(out, Err(Elapsed));
    /// assert_eq!(sim.clock().elapsed(), Duration::from_secs(30));
    /// ```
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let main = Arc::new(MainWake(AtomicBool::new(true)));
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let _in_sim = InSimGuard::enter();
        loop {
            if main.0.swap(false, Ordering::AcqRel) {
                self.count_poll();
                if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                    return out;
                }
            }
            let ran = self.run_round();
            if ran || main.0.load(Ordering::Acquire) || !lock(&self.shared.queue).is_empty() {
                continue;
            }
            // Blocking threads take their turns before time moves.
            if self.step_blocking() {
                continue;
            }
            match self.clock.next_deadline() {
                Some(deadline) => self.clock.advance_to(deadline),
                None => panic!(
                    "sim deadlock (seed {}) at virtual time +{:?}: the main future is pending, \
                     no task is ready and nothing sleeps ({} tasks blocked)",
                    self.seed,
                    self.clock.elapsed(),
                    self.tasks(),
                ),
            }
        }
    }

    /// Runs spawned tasks and advances virtual time, deadline by deadline, up to `deadline`;
    /// the clock then reads `deadline` (or later, if it already did).
    pub fn run_until(&self, deadline: Instant) {
        loop {
            self.run_until_idle();
            match self.clock.next_deadline() {
                Some(next) if next <= deadline => self.clock.advance_to(next),
                _ => break,
            }
        }
        self.clock.advance_to(deadline);
        self.run_until_idle();
    }

    /// [`run_until`](Sim::run_until) `by` from now.
    pub fn run_for(&self, by: Duration) {
        self.run_until(self.clock.now() + by);
    }

    /// Runs ready tasks, and the tasks they wake, until none is ready. Time does not move.
    pub fn run_until_idle(&self) {
        while self.run_round() {}
    }

    /// Polls each task queued at the start of the round once, in FIFO order; tasks woken during the
    /// round wait for the next one. Returns whether any task was polled.
    fn run_round(&self) -> bool {
        let _in_sim = InSimGuard::enter();
        let queued = lock(&self.shared.queue).len();
        let mut ran = false;
        for _ in 0..queued {
            let Some(id) = lock(&self.shared.queue).pop_front() else {
                break;
            };
            ran = true;
            self.poll_task(id);
        }
        ran
    }

    fn poll_task(&self, id: u64) {
        let Some(task) = lock(&self.shared.tasks).get(&id).cloned() else {
            return; // finished (or dropped) after it was woken
        };
        task.queued.store(false, Ordering::Release);
        let Some(mut future) = lock(&task.future).take() else {
            return;
        };
        self.count_poll();
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(()) => {
                lock(&self.shared.tasks).remove(&id);
                drop(future);
            }
            Poll::Pending => *lock(&task.future) = Some(future),
        }
    }

    fn count_poll(&self) {
        let polls = self.polls.fetch_add(1, Ordering::Relaxed) + 1;
        if polls > self.max_polls {
            panic!(
                "sim exceeded {} polls (seed {}) at virtual time +{:?}: livelock or runaway scenario",
                self.max_polls,
                self.seed,
                self.clock.elapsed(),
            );
        }
    }
}

impl Drop for Sim {
    /// Drops every remaining task without polling it (a task's drop may spawn or drop others).
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        loop {
            let tasks = std::mem::take(&mut *lock(&self.shared.tasks));
            if tasks.is_empty() {
                break;
            }
            for task in tasks.into_values() {
                let future = lock(&task.future).take();
                drop(future);
            }
        }
        lock(&self.shared.queue).clear();
    }
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("elapsed", &self.clock.elapsed())
            .field("tasks", &self.tasks())
            .field("polls", &self.polls())
            .finish()
    }
}

/// A thread started by [`Sim::spawn_blocking`].
#[derive(Debug)]
pub struct SimThread<T> {
    handle: std::thread::JoinHandle<T>,
    finished: Arc<AtomicBool>,
}

impl<T> SimThread<T> {
    /// Whether the thread's function has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Waits for the thread and returns its result, re-raising its panic.
    pub fn join(self) -> T {
        match self.handle.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Spawns tasks onto a [`Sim`]'s run queue; usable from any thread. Tasks spawned after the Sim
/// is dropped are dropped at once.
///
/// ```
/// use redis_keeper::seams::Spawn;
/// use redis_keeper::sim::Sim;
/// let sim = Sim::new(3);
/// let trace = sim.trace().clone();
/// let spawner = sim.spawner();
/// let inner = spawner.clone();
/// spawner.spawn(Box::pin(async move {
///     let t = trace.clone();
///     inner.spawn(Box::pin(async move { t.record(Default::default(), "child") }));
///     trace.record(Default::default(), "parent");
/// }));
/// sim.run_until_idle();
/// assert_eq!(sim.trace().len(), 2);
/// ```
#[derive(Clone)]
pub struct SimSpawn {
    shared: Arc<Shared>,
}

impl Spawn for SimSpawn {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        if self.shared.closed.load(Ordering::Acquire) {
            return;
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let task = Arc::new(Task {
            id,
            future: Mutex::new(Some(task)),
            queued: AtomicBool::new(true),
            queue: self.shared.queue.clone(),
        });
        lock(&self.shared.tasks).insert(id, task);
        lock(&self.shared.queue).push_back(id);
    }
}

impl fmt::Debug for SimSpawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimSpawn")
            .field("tasks", &lock(&self.shared.tasks).len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
