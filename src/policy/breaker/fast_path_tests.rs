//! The two facts a lock-free fast path over the breaker relies on, checked after every step of
//! random histories (acquisitions, outcomes with current, stale and probe permits, time passing):
//! a closed breaker grants `Permit::closed(generation)` and changes nothing doing so, and when
//! [`CircuitBreaker::success_is_noop`] holds, a success report with any permit at any time
//! changes nothing and returns no transition — so skipping it is exactly equivalent.

use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Acquire,
    Success(usize),
    Failure(usize),
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Acquire),
        3 => any::<usize>().prop_map(Step::Success),
        3 => any::<usize>().prop_map(Step::Failure),
        2 => prop_oneof![Just(0u64), 1u64..5, 5u64..40].prop_map(Step::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, .. ProptestConfig::default() })]

    #[test]
    fn closed_admission_and_noop_success_are_exact(
        threshold in 0u32..5,
        open_for in 1u64..20,
        steps in prop::collection::vec(step(), 1..120),
        // Times (seconds from now) and generations the skipped reports are tried with.
        probes_at in prop::collection::vec(0u64..60, 1..4),
        forged in prop::collection::vec(0u64..40, 1..4),
    ) {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: threshold,
            open_for: Duration::from_secs(open_for),
        });
        let mut now = t0;
        let mut held: Vec<Permit> = Vec::new();
        let mut noop_checks = 0u32;
        for s in steps {
            match s {
                Step::Acquire => {
                    if let Ok(p) = b.try_acquire(now) {
                        held.push(p);
                    }
                }
                Step::Success(i) if !held.is_empty() => {
                    let p = held.remove(i % held.len());
                    b.on_success(now, p);
                }
                Step::Failure(i) if !held.is_empty() => {
                    let p = held.remove(i % held.len());
                    b.on_failure(now, p);
                }
                Step::Success(_) | Step::Failure(_) => {}
                Step::Advance(secs) => now += Duration::from_secs(secs),
            }

            // Admission: while closed, try_acquire grants Permit::closed(generation), unchanged.
            if let BreakerState::Closed { .. } = b.state() {
                let mut after = b.clone();
                prop_assert_eq!(after.try_acquire(now), Ok(Permit::closed(b.generation())));
                prop_assert_eq!(&after, &b, "a closed admission changed the breaker");
                prop_assert!(b.would_allow(now));
            }

            // Success reports: a no-op for every permit and time exactly when success_is_noop
            // says so (it must never claim a no-op that is not one).
            let mut permits = held.clone();
            permits.extend(forged.iter().map(|&g| Permit::closed(g)));
            permits.push(Permit::closed(b.generation()));
            for &p in &permits {
                for &secs in &probes_at {
                    let at = now + Duration::from_secs(secs);
                    let mut after = b.clone();
                    let transition = after.on_success(at, p);
                    if b.success_is_noop() {
                        noop_checks += 1;
                        prop_assert_eq!(transition, None);
                        prop_assert_eq!(&after, &b, "a success on a clean closed breaker changed it");
                    }
                }
            }
            // And it is exact: a current closed permit's success on a breaker with failures
            // counted does change it (the count resets), so the fast path may not skip it.
            if let BreakerState::Closed { consecutive_failures } = b.state() {
                prop_assert_eq!(b.success_is_noop(), consecutive_failures == 0);
                if consecutive_failures > 0 {
                    let mut after = b.clone();
                    after.on_success(now, Permit::closed(b.generation()));
                    prop_assert_eq!(after.state(), BreakerState::Closed { consecutive_failures: 0 });
                }
            } else {
                prop_assert!(!b.success_is_noop());
            }
        }
        // Every history starts clean (no permit to fail yet), so the no-op case was exercised.
        prop_assert!(noop_checks > 0);
    }
}
