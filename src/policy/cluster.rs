//! The retry policy of one command sent to a Redis Cluster: follow redirections, wait out
//! refusals (`TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, …) with a growing jittered wait, and never
//! send again a command that may have run unless it is safe to repeat. Bounded by a deadline
//! and a number of sends.

use std::time::{Duration, Instant};

use crate::rng::Rng;

/// What one send of a command came back with, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterOutcome {
    /// A reply: values, or an error reply the caller must see (`CROSSSLOT`, `WRONGTYPE`, …).
    Answered,
    /// `MOVED` or `ASK`: another node serves the slot; nothing ran.
    Redirected,
    /// The node refused for now (`TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`, or a
    /// `READONLY` from a demoted master): nothing ran.
    Refused,
    /// No reply (a timeout, a dropped connection): the command may have run.
    Lost,
    /// The client could not send it (no connection to the slot's node): nothing ran.
    NotSent,
}

/// What to do after a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterStep {
    /// The outcome stands: return it to the caller.
    Return,
    /// Send again now, to the node the redirection names.
    Redirect,
    /// Send again after this wait (the slot map is asked for meanwhile).
    Wait(Duration),
}

/// The bounds of [`ClusterRetry`].
///
/// ```
/// let c = redis_keeper::policy::ClusterRetryConfig::default();
/// assert_eq!(c.max_attempts, 16);
/// assert!(c.first_wait < c.max_wait);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterRetryConfig {
    /// Sends in all, the first included, ≥ 1.
    pub max_attempts: u32,
    /// No send starts later than this after the first.
    pub deadline: Duration,
    /// The wait after the first refusal; each later one doubles, up to `max_wait`.
    pub first_wait: Duration,
    /// The longest wait.
    pub max_wait: Duration,
}

impl Default for ClusterRetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 16,
            deadline: Duration::from_secs(10),
            first_wait: Duration::from_millis(20),
            max_wait: Duration::from_millis(640),
        }
    }
}

impl ClusterRetryConfig {
    /// The bounds `max_attempts` and `deadline`, with the default waits.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = redis_keeper::policy::ClusterRetryConfig::bounded(3, Duration::from_secs(1));
    /// assert_eq!((c.max_attempts, c.deadline), (3, Duration::from_secs(1)));
    /// ```
    pub fn bounded(max_attempts: u32, deadline: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            deadline,
            ..Self::default()
        }
    }
}

/// The retry state of one command. Pure: the caller sends, classifies the outcome, and asks
/// [`ClusterRetry::next`] with the time now.
///
/// ```
/// use std::time::{Duration, Instant};
/// use redis_keeper::policy::{ClusterOutcome, ClusterRetry, ClusterRetryConfig, ClusterStep};
/// let t0 = Instant::now();
/// let mut rng = redis_keeper::Rng::new(1);
/// let mut retry = ClusterRetry::new(ClusterRetryConfig::default(), t0);
/// assert_eq!(retry.next(ClusterOutcome::Redirected, false, t0, &mut rng), ClusterStep::Redirect);
/// assert!(matches!(retry.next(ClusterOutcome::Refused, false, t0, &mut rng), ClusterStep::Wait(_)));
/// // A write that may have run is never sent again.
/// assert_eq!(retry.next(ClusterOutcome::Lost, false, t0, &mut rng), ClusterStep::Return);
/// ```
#[derive(Debug, Clone)]
pub struct ClusterRetry {
    config: ClusterRetryConfig,
    started: Instant,
    sends: u32,
    waits: u32,
}

impl ClusterRetry {
    /// A command whose first send starts at `started`.
    pub fn new(config: ClusterRetryConfig, started: Instant) -> Self {
        Self {
            config,
            started,
            sends: 1,
            waits: 0,
        }
    }

    /// Sends so far.
    pub fn sends(&self) -> u32 {
        self.sends
    }

    /// The step after a send that came back with `outcome` at `now`; `repeatable` says the
    /// command may run twice without harm (a read), which lets a [`ClusterOutcome::Lost`]
    /// one go again.
    pub fn next(
        &mut self,
        outcome: ClusterOutcome,
        repeatable: bool,
        now: Instant,
        rng: &mut Rng,
    ) -> ClusterStep {
        let may_go_again = match outcome {
            ClusterOutcome::Answered => false,
            ClusterOutcome::Redirected | ClusterOutcome::Refused | ClusterOutcome::NotSent => true,
            ClusterOutcome::Lost => repeatable,
        };
        if !may_go_again || self.sends >= self.config.max_attempts {
            return ClusterStep::Return;
        }
        let step = if outcome == ClusterOutcome::Redirected {
            ClusterStep::Redirect
        } else {
            let ceiling = self
                .config
                .first_wait
                .saturating_mul(1 << self.waits.min(16))
                .min(self.config.max_wait);
            let low = ceiling.as_micros() as u64 / 2;
            let wait = Duration::from_micros(rng.between(low, ceiling.as_micros() as u64));
            self.waits += 1;
            ClusterStep::Wait(wait)
        };
        let resumes = match step {
            ClusterStep::Wait(wait) => now + wait,
            _ => now,
        };
        if resumes.saturating_duration_since(self.started) > self.config.deadline {
            return ClusterStep::Return;
        }
        self.sends += 1;
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(max: u32, deadline_ms: u64) -> (ClusterRetry, Instant, Rng) {
        let t0 = Instant::now();
        let config = ClusterRetryConfig::bounded(max, Duration::from_millis(deadline_ms));
        (ClusterRetry::new(config, t0), t0, Rng::new(7))
    }

    #[test]
    fn an_answer_stands_and_a_lost_write_is_never_sent_again() {
        let (mut r, t0, mut rng) = retry(16, 10_000);
        assert_eq!(
            r.next(ClusterOutcome::Answered, true, t0, &mut rng),
            ClusterStep::Return
        );
        assert_eq!(
            r.next(ClusterOutcome::Lost, false, t0, &mut rng),
            ClusterStep::Return
        );
        assert_eq!(r.sends(), 1, "nothing was sent again");
        assert!(matches!(
            r.next(ClusterOutcome::Lost, true, t0, &mut rng),
            ClusterStep::Wait(_)
        ));
    }

    #[test]
    fn refusals_wait_longer_each_time_within_the_bounds() {
        let (mut r, t0, mut rng) = retry(100, 60_000);
        let mut last_ceiling = Duration::ZERO;
        for n in 0..10u32 {
            let ClusterStep::Wait(w) = r.next(ClusterOutcome::Refused, false, t0, &mut rng) else {
                panic!("refusal {n} should wait");
            };
            let ceiling = Duration::from_millis(20 * (1 << n)).min(Duration::from_millis(640));
            assert!(w <= ceiling && w >= ceiling / 2, "wait {n}: {w:?}");
            assert!(ceiling >= last_ceiling);
            last_ceiling = ceiling;
        }
    }

    #[test]
    fn the_attempt_bound_and_the_deadline_end_the_retries() {
        let (mut r, t0, mut rng) = retry(3, 10_000);
        assert_eq!(
            r.next(ClusterOutcome::Redirected, false, t0, &mut rng),
            ClusterStep::Redirect
        );
        assert_eq!(
            r.next(ClusterOutcome::Redirected, false, t0, &mut rng),
            ClusterStep::Redirect
        );
        assert_eq!(r.sends(), 3);
        assert_eq!(
            r.next(ClusterOutcome::Redirected, false, t0, &mut rng),
            ClusterStep::Return,
            "three sends in all"
        );
        let (mut r, t0, mut rng) = retry(16, 100);
        let late = t0 + Duration::from_millis(99);
        assert_eq!(
            r.next(ClusterOutcome::Refused, false, late, &mut rng),
            ClusterStep::Return,
            "the wait would end past the deadline"
        );
        assert!(
            matches!(
                r.next(ClusterOutcome::NotSent, false, t0, &mut rng),
                ClusterStep::Wait(_)
            ),
            "nothing was sent: wait for the slot map and go again"
        );
    }
}
