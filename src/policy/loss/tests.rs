//! Table and property tests of the loss policy.
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const WINDOW: Duration = Duration::from_secs(5);

fn at(base: Instant, ms: u64) -> Instant {
    base + Duration::from_millis(ms)
}

/// (opened at ms, lost at ms, verdict), applied in order to one grouping.
#[test]
fn the_rule_as_a_table() {
    use LossVerdict::*;
    let t = Instant::now();
    let cases: [(u64, u64, LossVerdict, &str); 7] = [
        (0, 10_000, Count, "the first loss counts"),
        (
            0,
            10_001,
            SameEvent,
            "open before it, lost right after: same event",
        ),
        (
            5_000,
            15_000,
            SameEvent,
            "exactly at the window's end: same event",
        ),
        (
            0,
            15_001,
            Count,
            "past the window: a new event, now the last counted",
        ),
        (
            15_001,
            15_500,
            Count,
            "opened at the counted loss itself is not before it",
        ),
        (
            15_550,
            15_600,
            Count,
            "opened after the last counted loss: a new attempt",
        ),
        (
            100,
            15_700,
            SameEvent,
            "an old connection lost with the latest event",
        ),
    ];
    let mut g = LossGrouping::new(LossConfig { window: WINDOW });
    for (opened, lost, want, why) in cases {
        assert_eq!(g.on_loss(at(t, lost), at(t, opened)), want, "{why}");
    }
    assert_eq!(g.last_counted(), Some(at(t, 15_600)));
    assert_eq!(g.config().window, WINDOW);
}

#[test]
fn a_zero_window_groups_only_simultaneous_losses() {
    let t = Instant::now();
    let mut g = LossGrouping::new(LossConfig {
        window: Duration::ZERO,
    });
    assert_eq!(g.on_loss(at(t, 100), t), LossVerdict::Count);
    assert_eq!(g.on_loss(at(t, 100), t), LossVerdict::SameEvent);
    assert_eq!(g.on_loss(at(t, 101), t), LossVerdict::Count);
}

proptest! {
    /// Whatever the losses: the first counts; a loss counts exactly when the rule says so
    /// against the last counted one; and any `n` losses of connections that were all open
    /// before a counted loss and lost within the window of it add nothing.
    #[test]
    fn counts_follow_the_rule(
        losses in proptest::collection::vec((0u64..20_000, 0u64..4_000), 1..40),
        window_ms in 0u64..8_000,
    ) {
        let t = Instant::now();
        let window = Duration::from_millis(window_ms);
        let mut g = LossGrouping::new(LossConfig { window });
        let mut now_ms = 0u64;
        let mut last: Option<u64> = None;
        for (i, (gap, age)) in losses.into_iter().enumerate() {
            now_ms += gap;
            let opened_ms = now_ms.saturating_sub(age);
            let verdict = g.on_loss(at(t, now_ms), at(t, opened_ms));
            let same = last.is_some_and(|l| opened_ms < l && now_ms - l <= window_ms);
            if i == 0 {
                prop_assert_eq!(verdict, LossVerdict::Count);
            }
            prop_assert_eq!(verdict == LossVerdict::SameEvent, same);
            if verdict == LossVerdict::Count {
                last = Some(now_ms);
            }
            prop_assert_eq!(g.last_counted(), last.map(|l| at(t, l)));
        }
    }

    /// A burst: every connection of a pool open before the first loss, all lost within the
    /// window, count as one failure whatever their number.
    #[test]
    fn a_burst_of_old_connections_counts_once(n in 1usize..64, spread_ms in 0u64..5_000) {
        let t = Instant::now();
        let mut g = LossGrouping::new(LossConfig { window: WINDOW });
        let first = at(t, 60_000);
        let counted = (0..n)
            .map(|k| {
                let lost = first + Duration::from_millis(spread_ms * k as u64 / n as u64);
                g.on_loss(lost, t + Duration::from_millis(k as u64))
            })
            .filter(|v| *v == LossVerdict::Count)
            .count();
        prop_assert_eq!(counted, 1);
    }
}
