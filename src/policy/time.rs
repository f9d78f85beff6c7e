//! Deadline arithmetic shared by the policies: saturating instant addition and fixed-rate ticks.

use std::time::{Duration, Instant};

/// `at + d`, saturating near the latest representable instant instead of panicking on overflow.
pub(crate) fn add(at: Instant, d: Duration) -> Instant {
    if let Some(t) = at.checked_add(d) {
        return t;
    }
    // Overflow only happens for absurd durations; get as close as the platform allows. No more
    // than `d` is ever added (`at + d` overflows, so any larger sum would too), and each step
    // size succeeds at most twice (more would have fitted at the size before): bounded by a few
    // times the bits of `d`.
    let (mut t, mut step) = (at, d);
    while !step.is_zero() {
        match t.checked_add(step) {
            Some(next) => t = next,
            None => step /= 2,
        }
    }
    t
}

/// The first tick `start + k·interval` (`k ≥ 1`) strictly after `now`: a fixed-rate schedule that
/// skips every tick already missed. A zero `interval` counts as one nanosecond.
pub(crate) fn next_tick(start: Instant, interval: Duration, now: Instant) -> Instant {
    let step = interval.max(Duration::from_nanos(1)).as_nanos();
    let elapsed = now.saturating_duration_since(start).as_nanos();
    let k = elapsed / step + 1;
    let offset = k.saturating_mul(step);
    let secs = u64::try_from(offset / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder of a division by 1e9 always fits in a u32.
    let nanos = (offset % 1_000_000_000) as u32;
    add(start, Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_tick_is_strictly_after_now_and_aligned() {
        let s = Instant::now();
        let i = Duration::from_secs(60);
        let cases = [
            (0, 60),
            (1, 60),
            (59, 60),
            (60, 120),
            (61, 120),
            (119, 120),
            (600, 660),
        ];
        for (now, want) in cases {
            let got = next_tick(s, i, s + Duration::from_secs(now));
            assert_eq!(got, s + Duration::from_secs(want), "now = {now}");
        }
        // Before the start the first tick is start + interval.
        assert_eq!(next_tick(s + i, i, s), s + 2 * i);
        // Zero interval does not divide by zero.
        assert_eq!(next_tick(s, Duration::ZERO, s), s + Duration::from_nanos(1));
    }

    #[test]
    fn add_saturates_instead_of_panicking() {
        let s = Instant::now();
        assert_eq!(add(s, Duration::from_secs(5)), s + Duration::from_secs(5));
        let far = add(s, Duration::MAX);
        assert!(far > s + Duration::from_secs(1_000_000_000));
        // As close as the platform allows: not one nanosecond more fits.
        assert!(far.checked_add(Duration::from_nanos(1)).is_none());
        // A sum that fits only in part ends at the same latest instant.
        let room = far.duration_since(s);
        assert_eq!(add(s + room / 2, room), far);
    }
}
