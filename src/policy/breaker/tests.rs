//! Table and property tests of the breaker policy.
use super::*;
use proptest::prelude::*;

const OPEN_FOR: Duration = Duration::from_secs(60);

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn edge(from: BreakerStateKind, to: BreakerStateKind) -> Option<Transition> {
    Some(Transition { from, to })
}

use BreakerStateKind::{Closed as C, HalfOpen as H, Open as O};

/// A breaker with threshold 5 that has seen `failures` failures at `t0`.
fn closed_with(t0: Instant, failures: u32) -> CircuitBreaker {
    let mut b = CircuitBreaker::new(BreakerConfig::default());
    for _ in 0..failures {
        let p = b.try_acquire(t0).unwrap();
        let _ = b.on_failure(t0, p);
    }
    b
}

/// A breaker opened at `t0` (until `t0 + 60 s`).
fn opened(t0: Instant) -> CircuitBreaker {
    closed_with(t0, 5)
}

/// A breaker half-open since `t0 + 60 s`, with its probe.
fn half_open(t0: Instant) -> (CircuitBreaker, Permit) {
    let mut b = opened(t0);
    let probe = b.try_acquire(t0 + OPEN_FOR).unwrap();
    (b, probe)
}

#[test]
fn defaults_match_the_design() {
    let c = BreakerConfig::default();
    assert_eq!((c.failure_threshold, c.open_for), (5, s(60)));
}

#[test]
fn closed_transitions() {
    let t0 = Instant::now();
    // (failures before, event is failure?, state after, transition)
    let cases = [
        (
            0,
            true,
            BreakerState::Closed {
                consecutive_failures: 1,
            },
            None,
        ),
        (
            3,
            true,
            BreakerState::Closed {
                consecutive_failures: 4,
            },
            None,
        ),
        (
            4,
            true,
            BreakerState::Open { until: t0 + s(61) },
            edge(C, O),
        ),
        (
            0,
            false,
            BreakerState::Closed {
                consecutive_failures: 0,
            },
            None,
        ),
        (
            4,
            false,
            BreakerState::Closed {
                consecutive_failures: 0,
            },
            None,
        ),
    ];
    for (before, fail, after, transition) in cases {
        let mut b = closed_with(t0, before);
        assert!(b.would_allow(t0) && b.next_deadline().is_none());
        let p = b.try_acquire(t0).expect("closed grants");
        assert!(!p.is_probe());
        let now = t0 + s(1);
        let got = if fail {
            b.on_failure(now, p)
        } else {
            b.on_success(now, p)
        };
        assert_eq!(
            (got, b.state()),
            (transition, after),
            "{before} then fail={fail}"
        );
        assert_eq!(b.trips(), u64::from(transition.is_some()));
    }
}

#[test]
fn open_transitions() {
    let t0 = Instant::now();
    // Open before `until`: rejected with the remaining time, nothing changes.
    for at in [0, 1, 59] {
        let mut b = opened(t0);
        assert!(!b.would_allow(t0 + s(at)));
        assert_eq!(
            b.try_acquire(t0 + s(at)),
            Err(Rejected {
                retry_after: s(60 - at)
            })
        );
        assert_eq!(b.state(), BreakerState::Open { until: t0 + s(60) });
        assert_eq!((b.rejections(), b.next_deadline()), (1, Some(t0 + s(60))));
    }
    // Open at or after `until`: the caller becomes the probe.
    for at in [60, 61, 500] {
        let mut b = opened(t0);
        assert!(b.would_allow(t0 + s(at)));
        let p = b.try_acquire(t0 + s(at)).expect("probe granted");
        assert!(p.is_probe());
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen {
                probe_since: t0 + s(at)
            }
        );
        assert_eq!(b.next_deadline(), Some(t0 + s(at + 60)));
    }
}

#[test]
fn half_open_transitions() {
    let t0 = Instant::now();
    let since = t0 + OPEN_FOR;
    // Others are rejected until the probe is abandoned.
    let (mut b, _) = half_open(t0);
    assert_eq!(
        b.try_acquire(since + s(10)),
        Err(Rejected { retry_after: s(50) })
    );
    assert!(!b.would_allow(since + s(59)));
    // Probe success: HalfOpen -> Closed.
    let (mut b, probe) = half_open(t0);
    assert_eq!(b.on_success(since + s(1), probe), edge(H, C));
    assert_eq!(
        b.state(),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
    assert!(b.next_deadline().is_none());
    // Probe failure: HalfOpen -> Open for a new period.
    let (mut b, probe) = half_open(t0);
    assert_eq!(b.on_failure(since + s(2), probe), edge(H, O));
    assert_eq!(
        b.state(),
        BreakerState::Open {
            until: since + s(62)
        }
    );
    assert_eq!(b.trips(), 2);
    // A probe that never reports is abandoned after one open period: the next caller probes.
    let (mut b, old) = half_open(t0);
    assert!(b.would_allow(since + OPEN_FOR));
    let new = b.try_acquire(since + OPEN_FOR).expect("new probe");
    assert!(new.is_probe() && new.generation() != old.generation());
    assert_eq!(
        b.state(),
        BreakerState::HalfOpen {
            probe_since: since + OPEN_FOR
        }
    );
    assert_eq!(
        b.on_success(since + OPEN_FOR, old),
        None,
        "abandoned probe ignored"
    );
    assert_eq!(
        b.on_failure(since + OPEN_FOR, old),
        None,
        "abandoned probe ignored"
    );
    assert_eq!(b.on_success(since + OPEN_FOR + s(1), new), edge(H, C));
    // A probe reporting at its abandonment instant is ignored even before anyone else probes.
    let (mut b, probe) = half_open(t0);
    assert_eq!(b.on_failure(since + OPEN_FOR, probe), None);
    assert_eq!(b.state(), BreakerState::HalfOpen { probe_since: since });
}

#[test]
fn stale_permits_are_ignored() {
    let t0 = Instant::now();
    // Closed permits outstanding when the circuit opens.
    let mut b = closed_with(t0, 4);
    let early = b.try_acquire(t0).unwrap();
    let last = b.try_acquire(t0).unwrap();
    assert_eq!(b.on_failure(t0, last), edge(C, O));
    let before = b.state();
    assert_eq!(b.on_success(t0, early), None);
    assert_eq!(b.on_failure(t0, early), None);
    assert_eq!(b.state(), before);
    // ... and still ignored in HalfOpen and after a full cycle back to Closed.
    let probe = b.try_acquire(t0 + OPEN_FOR).unwrap();
    assert_eq!(b.on_success(t0 + OPEN_FOR, early), None);
    assert_eq!(
        b.state(),
        BreakerState::HalfOpen {
            probe_since: t0 + OPEN_FOR
        }
    );
    assert_eq!(b.on_success(t0 + OPEN_FOR, probe), edge(H, C));
    assert_eq!(b.on_failure(t0 + OPEN_FOR, early), None);
    assert_eq!(
        b.on_failure(t0 + OPEN_FOR, probe),
        None,
        "a probe reports once"
    );
    assert_eq!(
        b.state(),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
    assert_eq!(b.trips(), 1);
}

#[test]
fn zero_threshold_opens_on_the_first_failure() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(BreakerConfig {
        failure_threshold: 0,
        open_for: s(1),
    });
    let p = b.try_acquire(t0).unwrap();
    assert_eq!(b.on_failure(t0, p), edge(C, O));
}

// ---- property tests against a reference model -------------------------------------------------

#[derive(Debug, Clone)]
enum Event {
    Acquire,
    Success(usize),
    Failure(usize),
    Advance(u64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => Just(Event::Acquire),
        2 => any::<usize>().prop_map(Event::Success),
        3 => any::<usize>().prop_map(Event::Failure),
        2 => (0u64..40).prop_map(Event::Advance),
    ]
}

/// The reference model, written from DESIGN §3 in a different shape: times are integer
/// milliseconds, and staleness is tracked per held permit (every state change invalidates all of
/// them) instead of with generation numbers.
#[derive(Debug)]
enum Mode {
    Closed(u32),
    Open { opened_at: u64 },
    Probing { since: u64 },
}

struct Held {
    permit: Permit,
    probe: bool,
    valid: bool,
}

struct Model {
    threshold: u32,
    open_for: u64,
    mode: Mode,
}

impl Model {
    fn state(&self, base: Instant) -> BreakerState {
        let at = |ms| base + Duration::from_millis(ms);
        match self.mode {
            Mode::Closed(n) => BreakerState::Closed {
                consecutive_failures: n,
            },
            Mode::Open { opened_at } => BreakerState::Open {
                until: at(opened_at + self.open_for),
            },
            Mode::Probing { since } => BreakerState::HalfOpen {
                probe_since: at(since),
            },
        }
    }
}

const ALLOWED: [(BreakerStateKind, BreakerStateKind); 4] = [(C, O), (O, H), (H, C), (H, O)];

proptest! {
    #[test]
    fn breaker_matches_the_reference_model(
        threshold in 1u32..6,
        open_for in 1u64..30,
        events in prop::collection::vec(event(), 0..120),
    ) {
        let base = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: threshold,
            open_for: Duration::from_millis(open_for),
        });
        let mut m = Model { threshold, open_for, mode: Mode::Closed(0) };
        let mut held: Vec<Held> = Vec::new();
        let mut t = 0u64;
        let mut consecutive = 0u32; // failures reported in Closed with current permits
        for ev in events {
            let now = base + Duration::from_millis(t);
            let kind_before = b.state().kind();
            let state_before = b.state();
            let mut changed = false;
            match ev {
                Event::Advance(ms) => t += ms,
                Event::Acquire => {
                    let got = b.try_acquire(now);
                    // Invariant: zero permits granted while Open.
                    if let BreakerState::Open { until } = state_before {
                        if now < until {
                            prop_assert!(got.is_err(), "permit granted while open");
                        }
                    }
                    let want: Result<bool, u64> = match m.mode {
                        Mode::Closed(_) => Ok(false),
                        Mode::Open { opened_at } if t < opened_at + open_for => Err(opened_at + open_for - t),
                        Mode::Probing { since } if t < since + open_for => Err(since + open_for - t),
                        Mode::Open { .. } | Mode::Probing { .. } => {
                            m.mode = Mode::Probing { since: t };
                            changed = true;
                            Ok(true)
                        }
                    };
                    match (got, want) {
                        (Ok(p), Ok(probe)) => {
                            prop_assert_eq!(p.is_probe(), probe);
                            if changed {
                                // The new probe belongs to the new state; earlier permits go stale.
                                changed = false;
                                consecutive = 0;
                                held.iter_mut().for_each(|h| h.valid = false);
                            }
                            held.push(Held { permit: p, probe, valid: true });
                        }
                        (Err(r), Err(ms)) => prop_assert_eq!(r.retry_after, Duration::from_millis(ms)),
                        (got, want) => prop_assert!(false, "acquire: got {:?}, model {:?}", got, want),
                    }
                }
                Event::Success(i) | Event::Failure(i) if !held.is_empty() => {
                    let h = held.remove(i % held.len());
                    let failed = matches!(ev, Event::Failure(_));
                    let got = if failed { b.on_failure(now, h.permit) } else { b.on_success(now, h.permit) };
                    let want = match m.mode {
                        _ if !h.valid => None,
                        Mode::Closed(n) if !h.probe => {
                            if !failed {
                                consecutive = 0;
                                m.mode = Mode::Closed(0);
                                None
                            } else if n + 1 >= m.threshold {
                                consecutive += 1;
                                // Invariant: opens exactly on the threshold failure.
                                prop_assert_eq!(consecutive, threshold);
                                m.mode = Mode::Open { opened_at: t };
                                changed = true;
                                edge(C, O)
                            } else {
                                consecutive += 1;
                                m.mode = Mode::Closed(n + 1);
                                None
                            }
                        }
                        Mode::Probing { since } if h.probe && t < since + open_for => {
                            changed = true;
                            if failed {
                                m.mode = Mode::Open { opened_at: t };
                                edge(H, O)
                            } else {
                                m.mode = Mode::Closed(0);
                                edge(H, C)
                            }
                        }
                        _ => None,
                    };
                    prop_assert_eq!(got, want, "outcome failed={} of {:?}", failed, h.permit);
                    if !changed && got.is_none() && !h.valid {
                        prop_assert_eq!(b.state(), state_before, "stale outcome changed the state");
                    }
                }
                Event::Success(_) | Event::Failure(_) => {}
            }
            if changed {
                consecutive = 0;
                for h in &mut held {
                    h.valid = false;
                }
            }
            prop_assert_eq!(b.state(), m.state(base));
            // Invariant: only C->O, O->H, H->C, H->O edges (H->H is a probe replacement).
            let kind_after = b.state().kind();
            if kind_before != kind_after {
                prop_assert!(ALLOWED.contains(&(kind_before, kind_after)), "{:?} -> {:?}", kind_before, kind_after);
            }
            // Invariant: at most one live probe in flight.
            let live = |h: &&Held| match m.mode {
                Mode::Probing { since } => h.valid && h.probe && t < since + open_for,
                _ => false,
            };
            prop_assert!(held.iter().filter(live).count() <= 1);
            // The same, observed on the breaker itself: at most one held permit can still decide.
            let now = base + Duration::from_millis(t);
            let deciders = held
                .iter()
                .filter(|h| h.permit.is_probe() && b.clone().on_success(now, h.permit).is_some())
                .count();
            prop_assert!(deciders <= 1, "{} live probes", deciders);
            prop_assert!(held.iter().filter(|h| h.probe && h.valid).count() <= 1);
            prop_assert_eq!(b.would_allow(base + Duration::from_millis(t)), match m.mode {
                Mode::Closed(_) => true,
                Mode::Open { opened_at } => t >= opened_at + open_for,
                Mode::Probing { since } => t >= since + open_for,
            });
        }
    }
}
