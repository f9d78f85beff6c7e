//! The exclusive pool against a small reference model (proptest-state-machine).
//!
//! The system under test is a real `Pool<u64>` (a connection is just its id) on a manual clock,
//! with checkout futures polled by hand, so a waiter can be cancelled at any await point: queued,
//! or already granted a connection or a connect permit that it has not picked up yet. After every
//! transition the pool's counters, its lent connections (in order) and its invariants must match
//! the model.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

use super::{Checkout, Lease, Pool, PoolError};
use crate::policy::IdleConfig;
use crate::pool::exclusive::ConnectPermit;
use crate::seams::Clock;

/// A clock that moves only when told; its sleeps are ready once it has passed their deadline.
#[derive(Clone, Debug)]
struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl ManualClock {
    fn new() -> Self {
        Self {
            now: Arc::new(Mutex::new(Instant::now())),
        }
    }

    fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let now = self.now.clone();
        Box::pin(futures::future::poll_fn(move |_| {
            if *now.lock().unwrap() >= deadline {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }))
    }

    fn block_until(&self, _deadline: Instant) {}
}

/// What an outstanding checkout is waiting for, in the model.
#[derive(Debug, Clone, PartialEq)]
enum Waiter {
    /// Queued until this many ms after the start.
    Pending { deadline: u64 },
    /// Handed this connection; not picked up yet.
    Conn(u64),
    /// Handed a connect permit; not picked up yet.
    Permit,
    /// The pool closed while it waited.
    Closed,
}

#[derive(Debug, Clone)]
struct Model {
    max: usize,
    idle_timeout: u64,
    sweep_every: u64,
    min_idle: usize,
    next_sweep: u64,
    now: u64,
    /// (connection id, returned at); back = most recently returned.
    idle: Vec<(u64, u64)>,
    /// Connections lent to the test, in the order it got them.
    lent: Vec<u64>,
    /// Connect permits held by the test.
    permits: usize,
    /// Outstanding checkouts, oldest first.
    waiters: Vec<Waiter>,
    closed: bool,
    next_id: u64,
    hits: u64,
    misses: u64,
    timeouts: u64,
    stale_closed: u64,
    closed_count: u64,
    broken_closed: u64,
    created: u64,
}

#[derive(Debug, Clone)]
enum Op {
    Checkout { wait: u64 },
    ConnectOk(usize),
    ConnectFail(usize),
    Return { index: usize, discard: bool },
    Cancel(usize),
    Poll,
    Advance(u64),
    Sweep,
    Close,
}

impl Model {
    fn granted(&self, f: impl Fn(&Waiter) -> bool) -> usize {
        self.waiters.iter().filter(|w| f(w)).count()
    }

    fn total(&self) -> usize {
        self.idle.len()
            + self.lent.len()
            + self.permits
            + self.granted(|w| matches!(w, Waiter::Conn(_) | Waiter::Permit))
    }

    fn first_pending(&mut self) -> Option<&mut Waiter> {
        self.waiters
            .iter_mut()
            .find(|w| matches!(w, Waiter::Pending { .. }))
    }

    fn stale(&self, returned_at: u64) -> bool {
        self.now - returned_at > self.idle_timeout
    }

    fn capacity_freed(&mut self) {
        if self.closed || self.total() >= self.max {
            return;
        }
        if let Some(w) = self.first_pending() {
            *w = Waiter::Permit;
        }
    }

    fn give_back(&mut self, id: u64, discard: bool) {
        if discard || self.closed {
            self.closed_count += 1;
            if discard {
                self.broken_closed += 1;
            }
            self.capacity_freed();
            return;
        }
        let now = self.now;
        match self.first_pending() {
            Some(w) => *w = Waiter::Conn(id),
            None => self.idle.push((id, now)),
        }
    }

    fn checkout(&mut self, wait: u64) {
        if self.closed {
            return;
        }
        while let Some((id, returned_at)) = self.idle.pop() {
            if self.stale(returned_at) {
                self.stale_closed += 1;
                self.closed_count += 1;
                continue;
            }
            self.hits += 1;
            self.lent.push(id);
            return;
        }
        self.misses += 1;
        if self.total() < self.max {
            self.permits += 1;
        } else if wait == 0 {
            self.timeouts += 1;
        } else {
            self.waiters.push(Waiter::Pending {
                deadline: self.now + wait,
            });
        }
    }

    fn poll(&mut self) {
        let now = self.now;
        let mut kept = Vec::new();
        for w in std::mem::take(&mut self.waiters) {
            match w {
                Waiter::Conn(id) => self.lent.push(id),
                Waiter::Permit => self.permits += 1,
                Waiter::Closed => {}
                Waiter::Pending { deadline } if now >= deadline => self.timeouts += 1,
                pending => kept.push(pending),
            }
        }
        self.waiters = kept;
    }

    fn sweep(&mut self) {
        if self.closed || self.now < self.next_sweep {
            return;
        }
        let mut stale: Vec<(u64, u64)> = self
            .idle
            .iter()
            .copied()
            .filter(|(_, r)| self.stale(*r))
            .collect();
        stale.sort_by_key(|(id, r)| (*r, *id));
        stale.truncate(self.idle.len().saturating_sub(self.min_idle));
        self.idle.retain(|e| !stale.contains(e));
        self.stale_closed += stale.len() as u64;
        self.closed_count += stale.len() as u64;
        let tick = (self.now / self.sweep_every + 1) * self.sweep_every;
        self.next_sweep = self.next_sweep.max(tick);
    }
}

struct PoolModel;

impl ReferenceStateMachine for PoolModel {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        (1usize..=4, 1_000u64..=5_000, 500u64..=3_000, 0usize..=2)
            .prop_map(|(max, idle_timeout, sweep_every, min_idle)| Model {
                max,
                idle_timeout,
                sweep_every,
                min_idle,
                next_sweep: sweep_every,
                now: 0,
                idle: Vec::new(),
                lent: Vec::new(),
                permits: 0,
                waiters: Vec::new(),
                closed: false,
                next_id: 1,
                hits: 0,
                misses: 0,
                timeouts: 0,
                stale_closed: 0,
                closed_count: 0,
                broken_closed: 0,
                created: 0,
            })
            .boxed()
    }

    fn transitions(_state: &Model) -> BoxedStrategy<Op> {
        prop_oneof![
            4 => (0u64..3_000).prop_map(|wait| Op::Checkout { wait }),
            3 => any::<usize>().prop_map(Op::ConnectOk),
            1 => any::<usize>().prop_map(Op::ConnectFail),
            4 => (any::<usize>(), any::<bool>())
                .prop_map(|(index, d)| Op::Return { index, discard: d }),
            1 => any::<usize>().prop_map(Op::Cancel),
            3 => Just(Op::Poll),
            3 => prop_oneof![0u64..500, 500u64..6_000].prop_map(Op::Advance),
            2 => Just(Op::Sweep),
            1 => Just(Op::Close),
        ]
        .boxed()
    }

    fn preconditions(state: &Model, op: &Op) -> bool {
        match op {
            Op::ConnectOk(_) | Op::ConnectFail(_) => state.permits > 0,
            Op::Return { .. } => !state.lent.is_empty(),
            Op::Cancel(_) => !state.waiters.is_empty(),
            _ => true,
        }
    }

    fn apply(mut m: Model, op: &Op) -> Model {
        match *op {
            Op::Checkout { wait } => m.checkout(wait),
            Op::ConnectOk(_) => {
                m.permits -= 1;
                m.lent.push(m.next_id);
                m.next_id += 1;
                m.created += 1;
            }
            Op::ConnectFail(_) => {
                m.permits -= 1;
                m.capacity_freed();
            }
            Op::Return { index, discard } => {
                let id = m.lent.remove(index % m.lent.len());
                m.give_back(id, discard);
            }
            Op::Cancel(index) => match m.waiters.remove(index % m.waiters.len()) {
                Waiter::Conn(id) => m.give_back(id, false),
                Waiter::Permit => m.capacity_freed(),
                Waiter::Pending { .. } | Waiter::Closed => {}
            },
            Op::Poll => m.poll(),
            Op::Advance(ms) => m.now += ms,
            Op::Sweep => m.sweep(),
            Op::Close => {
                m.closed = true;
                m.closed_count += m.idle.len() as u64;
                m.idle.clear();
                for w in &mut m.waiters {
                    if matches!(w, Waiter::Pending { .. }) {
                        *w = Waiter::Closed;
                    }
                }
            }
        }
        m
    }
}

type CheckoutFuture = Pin<Box<dyn Future<Output = Result<Checkout<u64>, PoolError>> + Send>>;

struct Sut {
    clock: ManualClock,
    pool: Pool<u64>,
    leases: Vec<Lease<u64>>,
    permits: Vec<ConnectPermit<u64>>,
    waiters: Vec<CheckoutFuture>,
}

impl Sut {
    fn poll_one(fut: &mut CheckoutFuture) -> Poll<Result<Checkout<u64>, PoolError>> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        fut.as_mut().poll(&mut cx)
    }

    fn take(&mut self, out: Result<Checkout<u64>, PoolError>) {
        match out {
            Ok(Checkout::Idle(lease)) => self.leases.push(lease),
            Ok(Checkout::Connect(permit)) => self.permits.push(permit),
            Err(_) => {}
        }
    }
}

struct PoolTest;

impl StateMachineTest for PoolTest {
    type SystemUnderTest = Sut;
    type Reference = PoolModel;

    fn init_test(m: &Model) -> Sut {
        let clock = ManualClock::new();
        let idle = IdleConfig {
            idle_timeout: Duration::from_millis(m.idle_timeout),
            sweep_interval: Duration::from_millis(m.sweep_every),
            min_idle: m.min_idle,
            max_lifetime: None,
        };
        Sut {
            pool: Pool::new(Arc::new(clock.clone()), m.max, idle),
            clock,
            leases: Vec::new(),
            permits: Vec::new(),
            waiters: Vec::new(),
        }
    }

    fn apply(mut sut: Sut, _m: &Model, op: Op) -> Sut {
        match op {
            Op::Checkout { wait } => {
                let pool = sut.pool.clone();
                let now = sut.clock.now();
                let deadline = now + Duration::from_millis(wait);
                let mut fut: CheckoutFuture =
                    Box::pin(async move { pool.checkout(now, deadline).await });
                match Sut::poll_one(&mut fut) {
                    Poll::Ready(out) => sut.take(out),
                    Poll::Pending => sut.waiters.push(fut),
                }
            }
            Op::ConnectOk(i) => {
                let permit = sut.permits.remove(i % sut.permits.len());
                let id = sut.pool.stats(sut.clock.now()).created + 1;
                sut.leases.push(permit.into_lease(id));
            }
            Op::ConnectFail(i) => drop(sut.permits.remove(i % sut.permits.len())),
            Op::Return { index, discard } => {
                let mut lease = sut.leases.remove(index % sut.leases.len());
                if discard {
                    lease.discard();
                }
                drop(lease);
            }
            Op::Cancel(i) => drop(sut.waiters.remove(i % sut.waiters.len())),
            Op::Poll => {
                let mut kept = Vec::new();
                for mut fut in std::mem::take(&mut sut.waiters) {
                    match Sut::poll_one(&mut fut) {
                        Poll::Ready(out) => sut.take(out),
                        Poll::Pending => kept.push(fut),
                    }
                }
                sut.waiters = kept;
            }
            Op::Advance(ms) => sut.clock.advance(Duration::from_millis(ms)),
            Op::Sweep => {
                sut.pool.sweep(sut.clock.now());
            }
            Op::Close => sut.pool.close(),
        }
        sut
    }

    fn check_invariants(sut: &Sut, m: &Model) {
        sut.pool.check_invariants().unwrap();
        let s = sut.pool.stats(sut.clock.now());
        let granted_conns = m.granted(|w| matches!(w, Waiter::Conn(_)));
        let granted_permits = m.granted(|w| matches!(w, Waiter::Permit));
        let pending = m.granted(|w| matches!(w, Waiter::Pending { .. }));
        assert_eq!(s.idle, m.idle.len(), "idle");
        assert_eq!(s.in_use, m.lent.len() + granted_conns, "lent");
        assert_eq!(s.connecting, m.permits + granted_permits, "connecting");
        assert_eq!(s.waiters, pending, "queued waiters");
        assert_eq!(s.idle + s.in_use + s.connecting, m.total());
        assert!(m.total() <= m.max);
        assert_eq!(
            (s.hits, s.misses, s.timeouts),
            (m.hits, m.misses, m.timeouts),
            "hits, misses, timeouts"
        );
        assert_eq!(
            (s.created, s.closed, s.stale_closed, s.broken_closed),
            (m.created, m.closed_count, m.stale_closed, m.broken_closed),
            "created, closed, stale, broken"
        );
        let lent: Vec<u64> = sut.leases.iter().map(|l| l.meta().id).collect();
        assert_eq!(lent, m.lent, "the connections lent, in order");
        assert_eq!(sut.permits.len(), m.permits);
        assert_eq!(sut.waiters.len(), m.waiters.len());
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]
    #[test]
    fn pool_matches_its_reference_model(sequential 1..60 => PoolTest);
}
