//! The circuit breaker against a reference model written from DESIGN §3 (proptest-state-machine).
//!
//! The model keeps the state, the generation and the permits the test holds; every call's result
//! (grant or rejection with its `retry_after`, the transition returned, `would_allow`,
//! `next_deadline`, `trips`, `rejections`) must match it, and only the edges C→O, O→H, H→C and
//! H→O may ever be reported.

use super::*;
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

#[derive(Debug, Clone, Copy, PartialEq)]
enum S {
    Closed(u32),
    Open { until: u64 },
    Half { since: u64 },
}

#[derive(Debug, Clone)]
struct M {
    threshold: u32,
    open_for: u64,
    now: u64,
    state: S,
    generation: u64,
    /// (generation, probe) of each permit the test holds.
    permits: Vec<(u64, bool)>,
    trips: u64,
    rejections: u64,
    /// What the last call must have returned.
    last: Last,
}

#[derive(Debug, Clone, PartialEq)]
enum Last {
    None,
    Granted { probe: bool },
    Rejected { retry_after: u64 },
    Reported(Option<(BreakerStateKind, BreakerStateKind)>),
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Success(usize),
    Failure(usize),
    Advance(u64),
}

impl M {
    fn probe_from(&self) -> Option<u64> {
        match self.state {
            S::Closed(_) => None,
            S::Open { until } => Some(until),
            S::Half { since } => Some(since + self.open_for),
        }
    }

    fn kind(s: S) -> BreakerStateKind {
        match s {
            S::Closed(_) => BreakerStateKind::Closed,
            S::Open { .. } => BreakerStateKind::Open,
            S::Half { .. } => BreakerStateKind::HalfOpen,
        }
    }

    fn enter(&mut self, to: S) -> Option<(BreakerStateKind, BreakerStateKind)> {
        let from = Self::kind(self.state);
        if matches!(to, S::Open { .. }) {
            self.trips += 1;
        }
        self.state = to;
        self.generation += 1;
        Some((from, Self::kind(to)))
    }

    /// Whether a permit may still change the state now.
    fn current(&self, (generation, probe): (u64, bool)) -> bool {
        generation == self.generation
            && match self.state {
                S::Closed(_) => !probe,
                S::Half { since } => probe && self.now < since + self.open_for,
                S::Open { .. } => false,
            }
    }
}

struct Model;

impl ReferenceStateMachine for Model {
    type State = M;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<M> {
        (0u32..=4, 1u64..=20)
            .prop_map(|(threshold, open_for)| M {
                threshold,
                open_for,
                now: 0,
                state: S::Closed(0),
                generation: 0,
                permits: Vec::new(),
                trips: 0,
                rejections: 0,
                last: Last::None,
            })
            .boxed()
    }

    fn transitions(_: &M) -> BoxedStrategy<Op> {
        prop_oneof![
            4 => Just(Op::Acquire),
            2 => any::<usize>().prop_map(Op::Success),
            4 => any::<usize>().prop_map(Op::Failure),
            3 => prop_oneof![Just(0u64), 1u64..5, 5u64..30].prop_map(Op::Advance),
        ]
        .boxed()
    }

    fn preconditions(m: &M, op: &Op) -> bool {
        match op {
            Op::Success(_) | Op::Failure(_) => !m.permits.is_empty(),
            _ => true,
        }
    }

    fn apply(mut m: M, op: &Op) -> M {
        m.last = Last::None;
        match *op {
            Op::Acquire => match m.probe_from() {
                None => {
                    m.permits.push((m.generation, false));
                    m.last = Last::Granted { probe: false };
                }
                Some(at) if m.now < at => {
                    m.rejections += 1;
                    m.last = Last::Rejected {
                        retry_after: at - m.now,
                    };
                }
                Some(_) => {
                    let now = m.now;
                    m.enter(S::Half { since: now });
                    m.permits.push((m.generation, true));
                    m.last = Last::Granted { probe: true };
                }
            },
            Op::Success(i) => {
                let permit = m.permits.remove(i % m.permits.len());
                let mut edge = None;
                if m.current(permit) {
                    match m.state {
                        S::Closed(_) => m.state = S::Closed(0),
                        S::Half { .. } => edge = m.enter(S::Closed(0)),
                        S::Open { .. } => {}
                    }
                }
                m.last = Last::Reported(edge);
            }
            Op::Failure(i) => {
                let permit = m.permits.remove(i % m.permits.len());
                let mut edge = None;
                if m.current(permit) {
                    let open = S::Open {
                        until: m.now + m.open_for,
                    };
                    match m.state {
                        S::Closed(n) if n + 1 >= m.threshold.max(1) => edge = m.enter(open),
                        S::Closed(n) => m.state = S::Closed(n + 1),
                        S::Half { .. } => edge = m.enter(open),
                        S::Open { .. } => {}
                    }
                }
                m.last = Last::Reported(edge);
            }
            Op::Advance(secs) => m.now += secs,
        }
        m
    }
}

struct Sut {
    t0: Instant,
    now: Instant,
    breaker: CircuitBreaker,
    permits: Vec<Permit>,
    last: Last,
}

struct BreakerTest;

impl StateMachineTest for BreakerTest {
    type SystemUnderTest = Sut;
    type Reference = Model;

    fn init_test(m: &M) -> Sut {
        let t0 = Instant::now();
        Sut {
            t0,
            now: t0,
            breaker: CircuitBreaker::new(BreakerConfig {
                failure_threshold: m.threshold,
                open_for: Duration::from_secs(m.open_for),
            }),
            permits: Vec::new(),
            last: Last::None,
        }
    }

    fn apply(mut sut: Sut, m: &M, op: Op) -> Sut {
        sut.last = Last::None;
        let edge = |t: Option<Transition>| t.map(|t| (t.from, t.to));
        match op {
            Op::Acquire => {
                let allowed = sut.breaker.would_allow(sut.now);
                match sut.breaker.try_acquire(sut.now) {
                    Ok(p) => {
                        assert!(allowed, "would_allow said no, try_acquire granted");
                        sut.last = Last::Granted {
                            probe: p.is_probe(),
                        };
                        assert_eq!(p.generation(), m.generation);
                        sut.permits.push(p);
                    }
                    Err(r) => {
                        assert!(!allowed, "would_allow said yes, try_acquire rejected");
                        sut.last = Last::Rejected {
                            retry_after: r.retry_after.as_secs(),
                        };
                        assert_eq!(r.retry_after.subsec_nanos(), 0);
                    }
                }
            }
            Op::Success(i) => {
                let p = sut.permits.remove(i % sut.permits.len());
                sut.last = Last::Reported(edge(sut.breaker.on_success(sut.now, p)));
            }
            Op::Failure(i) => {
                let p = sut.permits.remove(i % sut.permits.len());
                sut.last = Last::Reported(edge(sut.breaker.on_failure(sut.now, p)));
            }
            Op::Advance(secs) => sut.now += Duration::from_secs(secs),
        }
        sut
    }

    fn check_invariants(sut: &Sut, m: &M) {
        assert_eq!(sut.last, m.last, "the call's result");
        if let Last::Reported(Some(e)) = &m.last {
            use BreakerStateKind::{Closed as C, HalfOpen as H, Open as O};
            assert!(
                matches!(e, (C, O) | (H, C) | (H, O)),
                "edge {e:?} is not in the design"
            );
        }
        let at = |secs: u64| sut.t0 + Duration::from_secs(secs);
        let want = match m.state {
            S::Closed(n) => BreakerState::Closed {
                consecutive_failures: n,
            },
            S::Open { until } => BreakerState::Open { until: at(until) },
            S::Half { since } => BreakerState::HalfOpen {
                probe_since: at(since),
            },
        };
        assert_eq!(sut.breaker.state(), want);
        assert_eq!(sut.breaker.next_deadline(), m.probe_from().map(at));
        assert_eq!(
            sut.breaker.would_allow(sut.now),
            match m.probe_from() {
                None => true,
                Some(p) => m.now >= p,
            }
        );
        assert_eq!(
            (sut.breaker.trips(), sut.breaker.rejections()),
            (m.trips, m.rejections)
        );
        if let S::Closed(n) = m.state {
            assert!(
                n < m.threshold.max(1),
                "a closed breaker is below its threshold"
            );
        }
        assert_eq!(
            sut.breaker.config().open_for,
            Duration::from_secs(m.open_for)
        );
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]
    #[test]
    fn breaker_matches_its_reference_model(sequential 1..80 => BreakerTest);
}
