//! Table and property tests of the health policy.
use super::*;
use proptest::prelude::*;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

#[test]
fn defaults_match_the_design() {
    let c = HealthConfig::default();
    assert_eq!((c.interval, c.check_on_checkout_after), (s(30), None));
}

#[test]
fn schedule_transitions() {
    let t0 = Instant::now();
    let mut h = HealthSchedule::new(HealthConfig::default(), t0);
    // Idle, before the first tick.
    assert!(!h.due(t0 + s(29)) && !h.in_flight());
    assert_eq!(h.next_deadline(), Some(t0 + s(30)));
    // Idle --tick--> due; --started--> in flight: nothing due, no deadline.
    assert!(h.due(t0 + s(30)));
    h.on_check_started(t0 + s(30));
    assert!(h.in_flight() && !h.due(t0 + s(100)));
    assert_eq!(h.next_deadline(), None);
    // In flight --finished before the next tick--> idle, next tick kept.
    h.on_check_finished(t0 + s(31));
    assert_eq!(h.next_deadline(), Some(t0 + s(60)));
    // In flight --finished after several ticks--> missed ticks skipped.
    h.on_check_started(t0 + s(60));
    h.on_check_finished(t0 + s(125));
    assert_eq!(h.next_deadline(), Some(t0 + s(150)));
    // Finished exactly on a tick: that tick is missed too.
    h.on_check_started(t0 + s(150));
    h.on_check_finished(t0 + s(180));
    assert_eq!(h.next_deadline(), Some(t0 + s(210)));
    // Started late: aligned to the first tick after the start.
    h.on_check_started(t0 + s(215));
    h.on_check_finished(t0 + s(216));
    assert_eq!(h.next_deadline(), Some(t0 + s(240)));
}

#[test]
fn checkout_check_table() {
    let t0 = Instant::now();
    let off = HealthSchedule::new(HealthConfig::default(), t0);
    let on = HealthSchedule::new(
        HealthConfig {
            check_on_checkout_after: Some(s(10)),
            ..HealthConfig::default()
        },
        t0,
    );
    let cases = [
        (&off, 1000, false),
        (&on, 0, false),
        (&on, 10, false), // strict
        (&on, 11, true),
    ];
    for (h, idle_for, want) in cases {
        assert_eq!(
            h.needs_checkout_check(t0 + s(idle_for), t0),
            want,
            "{idle_for}"
        );
    }
}

#[test]
fn assess_table() {
    use HealthState::{Degraded, Failed, Healthy};
    let t0 = Instant::now();
    let closed = |n| BreakerState::Closed {
        consecutive_failures: n,
    };
    let open = BreakerState::Open { until: t0 };
    let half = BreakerState::HalfOpen { probe_since: t0 };
    let ready = ReadinessState::Ready;
    let loading = ReadinessState::Loading {
        since: t0,
        deadline: t0,
        probe_in_flight: false,
    };
    let timed_out = ReadinessState::TimedOut { since: t0 };
    let cases = [
        (closed(0), ready, Healthy),
        (closed(1), ready, Degraded),
        (closed(4), ready, Degraded),
        (half, ready, Degraded),
        (closed(0), loading, Degraded),
        (half, loading, Degraded),
        (open, ready, Failed),
        (open, loading, Failed),
        (closed(0), timed_out, Failed),
        (half, timed_out, Failed),
        (open, timed_out, Failed),
    ];
    for (breaker, readiness, want) in cases {
        assert_eq!(
            HealthState::assess(&breaker, &readiness),
            want,
            "{breaker:?} {readiness:?}"
        );
    }
    assert_eq!(
        [Healthy, Degraded, Failed].map(HealthState::as_str),
        ["healthy", "degraded", "failed"]
    );
}

proptest! {
    #[test]
    fn checks_are_fixed_rate_single_flight_and_skip_missed_ticks(
        interval in 1u64..60,
        steps in prop::collection::vec((0u64..200, 0u64..200), 1..30),
    ) {
        let t0 = Instant::now();
        let i = s(interval);
        let mut h = HealthSchedule::new(HealthConfig { interval: i, ..HealthConfig::default() }, t0);
        let mut now = t0;
        let mut last_slot: Option<u64> = None;
        for (wait, duration) in steps {
            // The driver sleeps to the deadline (or longer), then runs a check if due.
            let deadline = h.next_deadline().expect("idle schedule has a deadline");
            prop_assert!(deadline > now);
            prop_assert_eq!((deadline - t0).as_secs() % interval, 0);
            now = deadline + s(wait);
            prop_assert!(h.due(now));
            h.on_check_started(now);
            // At most one in flight.
            prop_assert!(!h.due(now) && !h.due(now + s(10_000)));
            // One check per tick slot, slots strictly increasing (missed ticks are not run late).
            let slot = (now - t0).as_secs() / interval;
            prop_assert!(last_slot.is_none_or(|last| slot > last));
            last_slot = Some(slot);
            now += s(duration);
            h.on_check_finished(now);
            let next = h.next_deadline().expect("deadline after finishing");
            prop_assert!(next > now);
            prop_assert!(next - i <= now, "a future tick was skipped");
        }
    }
}

#[test]
fn config_returns_the_configuration_in_force() {
    let c = HealthConfig {
        interval: s(7),
        check_on_checkout_after: Some(s(3)),
    };
    assert_eq!(HealthSchedule::new(c.clone(), Instant::now()).config(), &c);
}
