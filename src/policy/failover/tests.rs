//! The sentinel event parser and the follower's hold and poll timings.

use super::*;

const M: &str = "mymaster";

#[test]
fn every_failover_stage_of_this_master_starts_a_hold() {
    let cases = [
        ("+try-failover", "master mymaster 127.0.0.1 6379"),
        ("+elected-leader", "master mymaster 127.0.0.1 6379"),
        (
            "+failover-state-select-slave",
            "master mymaster 127.0.0.1 6379",
        ),
        (
            "+selected-slave",
            "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
        ),
        (
            "+failover-state-send-slaveof-noone",
            "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
        ),
        (
            "+promoted-slave",
            "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
        ),
    ];
    for (channel, payload) in cases {
        assert_eq!(
            SentinelSignal::parse(channel, payload, M),
            Some(SentinelSignal::FailoverStarted),
            "{channel}"
        );
        let other = payload.replace("mymaster", "other");
        assert_eq!(
            SentinelSignal::parse(channel, &other, M),
            None,
            "{channel} of another master"
        );
    }
}

#[test]
fn aborts_switches_and_unrelated_events_parse_as_they_should() {
    assert_eq!(
        SentinelSignal::parse(
            "-failover-abort-no-good-slave",
            "master mymaster 10.0.0.1 6379",
            M
        ),
        Some(SentinelSignal::FailoverAborted)
    );
    assert_eq!(
        SentinelSignal::parse("+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2 6380", M),
        Some(SentinelSignal::Switched {
            host: "10.0.0.2".into(),
            port: 6380
        })
    );
    for (channel, payload) in [
        ("+switch-master", "other 10.0.0.1 6379 10.0.0.2 6380"),
        ("+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2"),
        ("+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2 port"),
        ("+sdown", "master mymaster 10.0.0.1 6379"),
        ("+odown", "master mymaster 10.0.0.1 6379 #quorum 2/2"),
        (
            "+slave",
            "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
        ),
        ("+try-failover", ""),
        ("+selected-slave", "slave 127.0.0.1:6380 127.0.0.1 6380 @"),
    ] {
        assert_eq!(
            SentinelSignal::parse(channel, payload, M),
            None,
            "{channel} {payload}"
        );
    }
}

fn follower(t0: Instant) -> FailoverFollower {
    FailoverFollower::new(
        FailoverConfig {
            poll_interval: Duration::from_secs(2),
            hold: Duration::from_secs(5),
        },
        t0,
    )
}

#[test]
fn the_first_announcement_bounds_the_hold_and_a_switch_ends_it() {
    let t0 = Instant::now();
    let mut f = follower(t0);
    assert_eq!(
        f.tick(t0),
        FollowerAction::Poll,
        "the first poll is due at once"
    );
    assert_eq!(f.next_deadline(), t0 + Duration::from_secs(2));
    let start = SentinelSignal::FailoverStarted;
    let t1 = t0 + Duration::from_millis(500);
    assert_eq!(
        f.on_signal(&start, t1),
        FollowerAction::HoldUntil(t1 + Duration::from_secs(5))
    );
    let t2 = t1 + Duration::from_secs(1);
    assert_eq!(
        f.on_signal(&start, t2),
        FollowerAction::HoldUntil(t1 + Duration::from_secs(5)),
        "a later stage does not extend the hold"
    );
    assert!(f.holding(t2));
    assert_eq!(
        f.next_deadline(),
        t0 + Duration::from_secs(2),
        "the poll comes first"
    );
    let switched = SentinelSignal::Switched {
        host: "h".into(),
        port: 1,
    };
    assert_eq!(f.on_signal(&switched, t2), FollowerAction::Release);
    assert!(!f.holding(t2));
    assert_eq!(
        f.next_deadline(),
        t2,
        "the new address is confirmed by a poll at once"
    );
    assert_eq!(
        f.on_signal(&switched, t2),
        FollowerAction::None,
        "nothing left to release"
    );
}

#[test]
fn a_hold_ends_at_its_bound_on_an_abort_or_on_a_switch_seen_by_a_poll() {
    let t0 = Instant::now();
    let mut f = follower(t0);
    let _ = f.tick(t0);
    let start = SentinelSignal::FailoverStarted;
    let _ = f.on_signal(&start, t0);
    let at = t0 + Duration::from_secs(2);
    assert_eq!(
        f.tick(at),
        FollowerAction::Poll,
        "polls go on while holding"
    );
    let end = t0 + Duration::from_secs(5);
    assert_eq!(
        f.next_deadline(),
        t0 + Duration::from_secs(4),
        "the next poll, then the bound"
    );
    assert_eq!(f.tick(t0 + Duration::from_secs(4)), FollowerAction::Poll);
    assert_eq!(f.next_deadline(), end);
    assert_eq!(f.tick(end - Duration::from_nanos(1)), FollowerAction::None);
    assert_eq!(f.tick(end), FollowerAction::Release);
    assert_eq!(
        f.tick(end),
        FollowerAction::Poll,
        "then the address is asked for"
    );
    // A start after the bound holds again, from then.
    let later = end + Duration::from_secs(1);
    assert_eq!(
        f.on_signal(&start, later),
        FollowerAction::HoldUntil(later + Duration::from_secs(5))
    );
    assert_eq!(
        f.on_signal(&SentinelSignal::FailoverAborted, later),
        FollowerAction::None,
        "one sentinel's abort does not end the hold"
    );
    assert!(f.holding(later));
    assert_eq!(f.next_deadline(), later, "but asks for a poll at once");
    assert_eq!(f.on_switch(), FollowerAction::Release);
    assert_eq!(f.on_switch(), FollowerAction::None);
}

#[test]
fn a_waiter_expires_a_hold_without_taking_the_drivers_poll() {
    let t0 = Instant::now();
    let mut f = follower(t0);
    assert_eq!(f.tick(t0), FollowerAction::Poll);
    let _ = f.on_signal(&SentinelSignal::FailoverStarted, t0);
    assert_eq!(f.expire(t0 + Duration::from_secs(1)), FollowerAction::None);
    let end = t0 + Duration::from_secs(5);
    assert_eq!(f.expire(end), FollowerAction::Release);
    assert!(!f.holding(end));
    assert_eq!(f.expire(end), FollowerAction::None);
    assert_eq!(f.tick(end), FollowerAction::Poll, "the driver still polls");
}
