//! Table and property tests of the retry policy.
use super::*;
use crate::rng::Rng;
use proptest::prelude::*;
use FailureKind::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn default_config_matches_the_design() {
    let c = RetryConfig::default();
    assert_eq!(
        (c.multiplier, c.min, c.max, c.max_attempts),
        (secs(2), secs(2), secs(30), 5)
    );
    assert_eq!(c.jitter, Jitter::None);
    assert!(c.retry_on_timeout);
}

#[test]
fn wait_table() {
    let d = RetryConfig::default();
    let crossed = RetryConfig {
        min: secs(10),
        max: secs(5),
        ..d.clone()
    };
    let zero = RetryConfig {
        multiplier: Duration::ZERO,
        ..d.clone()
    };
    let huge = RetryConfig {
        multiplier: Duration::MAX,
        max: Duration::MAX,
        ..d.clone()
    };
    let cases: [(&RetryConfig, u32, Duration); 11] = [
        (&d, 0, secs(2)),
        (&d, 1, secs(2)),
        (&d, 2, secs(4)),
        (&d, 3, secs(8)),
        (&d, 4, secs(16)),
        (&d, 5, secs(30)),
        (&d, 64, secs(30)),
        (&d, u32::MAX, secs(30)),
        (&crossed, 1, secs(5)),
        (&zero, 3, secs(2)),
        (&huge, 40, Duration::MAX),
    ];
    for (config, n, want) in cases {
        assert_eq!(config.wait(n), want, "wait({n}) with {config:?}");
    }
}

#[test]
fn retryable_table() {
    let on = RetryConfig::default();
    let off = RetryConfig {
        retry_on_timeout: false,
        ..on.clone()
    };
    let cases = [
        (Io, true, true),
        (ConnectTimeout, true, false),
        (ResponseTimeout, true, false),
        (Protocol, true, true),
        (TryAgain, true, true),
        (MasterDown, true, true),
        (Loading, false, false),
        (Auth, false, false),
        (CircuitOpen, false, false),
        (Server, false, false),
    ];
    for (kind, with_timeouts, without) in cases {
        assert_eq!(on.is_retryable(kind), with_timeouts, "{kind:?}");
        assert_eq!(off.is_retryable(kind), without, "{kind:?}");
    }
}

/// Every transition: (description, setup failures before, event, expected decision/state).
#[test]
fn transition_table() {
    let t0 = Instant::now();
    let mut rng = Rng::new(0);
    let retry_at = |s: u64| RetryDecision::RetryAt(t0 + secs(s));
    let give_up = |attempts, reason| RetryDecision::GiveUp { attempts, reason };
    // Attempting --retryable failure--> Waiting
    let mut s = RetrySchedule::new(RetryConfig::default());
    assert!(s.may_attempt(t0) && !s.is_finished() && s.next_deadline().is_none());
    assert_eq!(s.on_failure(t0, Io, &mut rng), retry_at(2));
    assert_eq!(s.next_deadline(), Some(t0 + secs(2)));
    assert!(!s.may_attempt(t0 + secs(1)) && s.may_attempt(t0 + secs(2)));
    // Waiting --retryable failure--> Waiting (delays 4, 8, 16)
    assert_eq!(s.on_failure(t0, TryAgain, &mut rng), retry_at(4));
    assert_eq!(s.on_failure(t0, MasterDown, &mut rng), retry_at(8));
    assert_eq!(s.on_failure(t0, ConnectTimeout, &mut rng), retry_at(16));
    // Waiting --5th failure--> GaveUp(Exhausted)
    assert_eq!(
        s.on_failure(t0, Io, &mut rng),
        give_up(5, GiveUpReason::Exhausted)
    );
    assert!(s.is_finished() && s.next_deadline().is_none() && !s.may_attempt(t0));
    // GaveUp --any failure--> GaveUp, unchanged
    assert_eq!(
        s.on_failure(t0, Io, &mut rng),
        give_up(5, GiveUpReason::Exhausted)
    );
    assert_eq!(s.attempts(), 5);
    // GaveUp --reset--> Attempting
    s.reset();
    assert_eq!((s.attempts(), s.is_finished()), (0, false));
    assert_eq!(s.on_failure(t0, Io, &mut rng), retry_at(2));

    // Attempting/Waiting --non-retryable--> GaveUp(NotRetryable)
    for kind in [Auth, Server, CircuitOpen, Loading] {
        let mut s = RetrySchedule::new(RetryConfig::default());
        let reason = GiveUpReason::NotRetryable(kind);
        assert_eq!(s.on_failure(t0, kind, &mut rng), give_up(1, reason));
        let mut s = RetrySchedule::new(RetryConfig::default());
        let _ = s.on_failure(t0, Io, &mut rng);
        assert_eq!(s.on_failure(t0, kind, &mut rng), give_up(2, reason));
        assert!(s.next_deadline().is_none());
    }
    // Timeouts give up when retry_on_timeout is off.
    let mut s = RetrySchedule::new(RetryConfig {
        retry_on_timeout: false,
        ..RetryConfig::default()
    });
    let reason = GiveUpReason::NotRetryable(ResponseTimeout);
    assert_eq!(
        s.on_failure(t0, ResponseTimeout, &mut rng),
        give_up(1, reason)
    );

    // Waiting --success--> Succeeded; Succeeded --failure--> new round at attempt 1
    let mut s = RetrySchedule::new(RetryConfig::default());
    let _ = s.on_failure(t0, Io, &mut rng);
    s.on_success();
    assert!(s.is_finished() && s.next_deadline().is_none() && !s.may_attempt(t0));
    assert_eq!(s.attempts(), 2);
    assert_eq!(s.on_failure(t0, Io, &mut rng), retry_at(2));
    assert_eq!(s.attempts(), 1);

    // max_attempts 0 and 1 both allow a single attempt.
    for max_attempts in [0, 1] {
        let mut s = RetrySchedule::new(RetryConfig {
            max_attempts,
            ..RetryConfig::default()
        });
        assert_eq!(
            s.on_failure(t0, Io, &mut rng),
            give_up(1, GiveUpReason::Exhausted)
        );
    }
}

#[test]
fn full_jitter_is_seeded_and_bounded() {
    let t0 = Instant::now();
    let config = RetryConfig {
        jitter: Jitter::Full,
        max_attempts: 50,
        ..RetryConfig::default()
    };
    let run = |seed| {
        let mut rng = Rng::new(seed);
        let mut s = RetrySchedule::new(config.clone());
        (1..50)
            .map(|_| match s.on_failure(t0, Io, &mut rng) {
                RetryDecision::RetryAt(at) => at - t0,
                other => panic!("unexpected {other:?}"),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
    let delays = run(9);
    assert!(delays.iter().all(|d| (secs(2)..=secs(30)).contains(d)));
    // Later delays spread over the whole [min, max] range, not just one value.
    assert!(
        delays
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 10
    );
}

fn retryable_kind() -> impl Strategy<Value = FailureKind> {
    prop::sample::select(vec![
        Io,
        ConnectTimeout,
        ResponseTimeout,
        Protocol,
        TryAgain,
        MasterDown,
    ])
}

fn any_kind() -> impl Strategy<Value = FailureKind> {
    prop::sample::select(vec![
        Io,
        ConnectTimeout,
        ResponseTimeout,
        Protocol,
        Loading,
        TryAgain,
        MasterDown,
        Auth,
        CircuitOpen,
        Server,
    ])
}

prop_compose! {
    fn config()(
        multiplier_ms in 0u64..5_000,
        min_ms in 0u64..5_000,
        extra_ms in 0u64..60_000,
        max_attempts in 0u32..12,
        full in any::<bool>(),
        retry_on_timeout in any::<bool>(),
    ) -> RetryConfig {
        RetryConfig {
            multiplier: Duration::from_millis(multiplier_ms),
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(min_ms + extra_ms),
            max_attempts,
            jitter: if full { Jitter::Full } else { Jitter::None },
            retry_on_timeout,
        }
    }
}

/// Runs a schedule to its end with retryable failures, each attempt made at its deadline.
/// Returns the delays slept and the final decision.
fn run_to_end(config: &RetryConfig, seed: u64) -> (Vec<Duration>, RetryDecision, RetrySchedule) {
    let mut rng = Rng::new(seed);
    let mut s = RetrySchedule::new(config.clone());
    let mut now = Instant::now();
    let mut delays = Vec::new();
    loop {
        match s.on_failure(now, Io, &mut rng) {
            RetryDecision::RetryAt(at) => {
                delays.push(at - now);
                now = at;
            }
            give_up => return (delays, give_up, s),
        }
    }
}

proptest! {
    #[test]
    fn attempts_never_exceed_the_limit(
        config in config(),
        kinds in prop::collection::vec(any_kind(), 0..40),
        seed in any::<u64>(),
    ) {
        let limit = config.max_attempts.max(1);
        let mut rng = Rng::new(seed);
        let mut s = RetrySchedule::new(config);
        let now = Instant::now();
        for kind in kinds {
            if let RetryDecision::GiveUp { attempts, .. } = s.on_failure(now, kind, &mut rng) {
                prop_assert!(attempts <= limit);
            }
            prop_assert!(s.attempts() <= limit);
        }
        // Retryable failures alone always end exactly at the limit.
        s.reset();
        loop {
            match s.on_failure(now, Io, &mut rng) {
                RetryDecision::RetryAt(_) => prop_assert!(s.attempts() < limit),
                decision => {
                    prop_assert_eq!(decision, RetryDecision::GiveUp { attempts: limit, reason: GiveUpReason::Exhausted });
                    break;
                }
            }
        }
    }

    #[test]
    fn delays_stay_within_min_and_max(config in config(), seed in any::<u64>()) {
        let (delays, _, _) = run_to_end(&config, seed);
        for d in delays {
            prop_assert!(d >= config.min && d <= config.max, "{d:?} outside [{:?}, {:?}]", config.min, config.max);
        }
    }

    #[test]
    fn delays_never_decrease_without_jitter(config in config(), seed in any::<u64>()) {
        let config = RetryConfig { jitter: Jitter::None, ..config };
        let (delays, _, _) = run_to_end(&config, seed);
        for pair in delays.windows(2) {
            prop_assert!(pair[0] <= pair[1], "{delays:?}");
        }
        for n in 1..40 {
            prop_assert!(config.wait(n) <= config.wait(n + 1));
        }
    }

    #[test]
    fn total_sleep_is_bounded_by_the_sum_of_waits(config in config(), seed in any::<u64>()) {
        let (delays, _, _) = run_to_end(&config, seed);
        let total: Duration = delays.iter().sum();
        let bound: Duration = (1..config.max_attempts.max(1)).map(|n| config.wait(n)).sum();
        prop_assert!(total <= bound, "{total:?} > {bound:?}");
        if config.jitter == Jitter::None {
            prop_assert_eq!(total, bound);
        }
    }

    #[test]
    fn terminal_states_have_no_deadline(
        config in config(),
        prefix in prop::collection::vec(retryable_kind(), 0..6),
        last in any_kind(),
        succeed in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let mut s = RetrySchedule::new(config);
        let now = Instant::now();
        for kind in prefix.into_iter().chain([last]) {
            let decision = s.on_failure(now, kind, &mut rng);
            match decision {
                RetryDecision::GiveUp { .. } => {
                    prop_assert!(s.is_finished());
                    prop_assert_eq!(s.next_deadline(), None);
                    prop_assert!(!s.may_attempt(now + Duration::from_secs(3600)));
                    // Sticky: asking again changes nothing.
                    prop_assert_eq!(s.on_failure(now, Io, &mut rng), decision);
                    prop_assert_eq!(s.next_deadline(), None);
                    return Ok(());
                }
                RetryDecision::RetryAt(at) => {
                    prop_assert!(!s.is_finished());
                    prop_assert_eq!(s.next_deadline(), Some(at));
                }
            }
        }
        if succeed {
            s.on_success();
            prop_assert!(s.is_finished());
            prop_assert_eq!(s.next_deadline(), None);
        }
    }
}

#[test]
fn config_returns_the_configuration_in_force() {
    let c = RetryConfig {
        multiplier: Duration::from_millis(300),
        min: Duration::from_millis(100),
        max: Duration::from_secs(7),
        max_attempts: 9,
        jitter: Jitter::Full,
        retry_on_timeout: false,
    };
    assert_eq!(RetrySchedule::new(c.clone()).config(), &c);
}
