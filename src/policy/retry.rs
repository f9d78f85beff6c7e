//! Retry schedule for connection establishment: capped exponential backoff, optional jitter.
//!
//! After failed attempt `n` the caller waits `clamp(multiplier * 2^(n-1), min, max)` (DESIGN §3).
//! Only establishment (connect + handshake + readiness) is retried: a user command that may have
//! reached the server is never replayed, and `-LOADING` goes to [`Readiness`](super::Readiness).

use std::time::{Duration, Instant};

use super::time::add;
use super::FailureKind;
use crate::rng::Rng;

/// How a retry delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: the delay after attempt `n` is exactly [`RetryConfig::wait`]`(n)`.
    #[default]
    None,
    /// "Full" jitter: uniform in `[min, wait(n)]`, drawn from the caller's [`Rng`].
    Full,
}

impl std::str::FromStr for Jitter {
    type Err = String;

    /// `none` or `full`, case-insensitive (YAML `retry_jitter`).
    ///
    /// ```
    /// use redis_keeper::policy::Jitter;
    /// assert_eq!(" Full".parse::<Jitter>(), Ok(Jitter::Full));
    /// assert!("some".parse::<Jitter>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "full" => Ok(Self::Full),
            _ => Err("expected `none` or `full`".to_owned()),
        }
    }
}

impl std::fmt::Display for Jitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Full => "full",
        })
    }
}

/// Parameters of a [`RetrySchedule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Base of the backoff: the wait after attempt `n` is `multiplier * 2^(n-1)` before clamping.
    /// Default: 2 s.
    pub multiplier: Duration,
    /// Shortest wait between two attempts. Default: 2 s.
    pub min: Duration,
    /// Longest wait between two attempts; wins over `min` if the two cross. Default: 30 s.
    pub max: Duration,
    /// Attempts in total, the first one included; `0` counts as `1`. Default: 5.
    pub max_attempts: u32,
    /// How delays are randomised. Default: [`Jitter::None`].
    pub jitter: Jitter,
    /// Whether connect and response timeouts are retried; when `false` a timeout gives up at once.
    /// Default: `true`.
    pub retry_on_timeout: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            multiplier: Duration::from_secs(2),
            min: Duration::from_secs(2),
            max: Duration::from_secs(30),
            max_attempts: 5,
            jitter: Jitter::None,
            retry_on_timeout: true,
        }
    }
}

impl RetryConfig {
    /// The un-jittered wait after failed attempt `n` (1-based; `0` counts as `1`):
    /// `clamp(multiplier * 2^(n-1), min, max)`, saturating at `max` instead of overflowing.
    ///
    /// ```
    /// use redis_keeper::policy::RetryConfig;
    /// use std::time::Duration;
    /// let c = RetryConfig::default();
    /// let waits: Vec<u64> = (1..=6).map(|n| c.wait(n).as_secs()).collect();
    /// assert_eq!(waits, [2, 4, 8, 16, 30, 30]);
    /// assert_eq!(c.wait(u32::MAX), Duration::from_secs(30));
    /// ```
    pub fn wait(&self, n: u32) -> Duration {
        let raw = 2u32
            .checked_pow(n.saturating_sub(1))
            .and_then(|factor| self.multiplier.checked_mul(factor))
            .unwrap_or(Duration::MAX);
        raw.clamp(self.min.min(self.max), self.max)
    }

    /// Whether a failure of this kind may be retried under this configuration:
    /// [`FailureKind::is_retryable`], minus timeouts when `retry_on_timeout` is `false`.
    pub fn is_retryable(&self, kind: FailureKind) -> bool {
        kind.is_retryable() && (self.retry_on_timeout || !kind.is_timeout())
    }

    /// `max_attempts`, with `0` read as `1`.
    fn attempt_limit(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The delay actually slept after failed attempt `n`, jitter applied.
    fn delay(&self, n: u32, rng: &mut Rng) -> Duration {
        let wait = self.wait(n);
        match self.jitter {
            Jitter::None => wait,
            Jitter::Full => {
                let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                let low = nanos(self.min.min(self.max));
                Duration::from_nanos(rng.between(low, nanos(wait)))
            }
        }
    }
}

/// Why a [`RetrySchedule`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// The failure is not worth retrying (auth refused, breaker open, an error reply, or a
    /// timeout with `retry_on_timeout` off).
    NotRetryable(FailureKind),
    /// Every one of the `max_attempts` attempts failed.
    Exhausted,
}

/// What the caller does after reporting a failed attempt.
#[must_use = "the decision says whether and when to try again"]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryDecision {
    /// Sleep until this instant, then make the next attempt.
    RetryAt(Instant),
    /// Stop: return the last failure to the user.
    GiveUp {
        /// Attempts made, all failed.
        attempts: u32,
        /// Why the schedule stopped.
        reason: GiveUpReason,
    },
}

/// Where a schedule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// An attempt may be made now.
    Attempting,
    /// Waiting for the backoff to pass.
    Waiting(Instant),
    /// The last attempt succeeded (terminal).
    Succeeded,
    /// The schedule gave up (terminal, sticky until [`RetrySchedule::reset`]).
    GaveUp(GiveUpReason),
}

/// The retry schedule of one establishment: feed it each attempt's outcome, follow its decision.
///
/// ```
/// use redis_keeper::policy::{FailureKind, GiveUpReason, RetryConfig, RetryDecision, RetrySchedule};
/// use redis_keeper::Rng;
/// use std::time::{Duration, Instant};
/// let (t0, mut rng) = (Instant::now(), Rng::new(1));
/// let mut s = RetrySchedule::new(RetryConfig::default());
/// assert_eq!(s.on_failure(t0, FailureKind::Io, &mut rng), RetryDecision::RetryAt(t0 + Duration::from_secs(2)));
/// assert_eq!(
///     s.on_failure(t0, FailureKind::Auth, &mut rng),
///     RetryDecision::GiveUp { attempts: 2, reason: GiveUpReason::NotRetryable(FailureKind::Auth) }
/// );
/// assert!(s.is_finished() && s.next_deadline().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct RetrySchedule {
    config: RetryConfig,
    attempts: u32,
    phase: Phase,
}

impl RetrySchedule {
    /// A fresh schedule: the first attempt may be made at once.
    pub fn new(config: RetryConfig) -> Self {
        Self {
            config,
            attempts: 0,
            phase: Phase::Attempting,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// Reports that the current attempt failed with `kind` at `now`.
    ///
    /// After a give-up the same [`RetryDecision::GiveUp`] is returned again and nothing changes
    /// until [`reset`](Self::reset); after a success a failure starts a new round at attempt 1.
    /// `rng` is drawn from only with [`Jitter::Full`].
    pub fn on_failure(&mut self, now: Instant, kind: FailureKind, rng: &mut Rng) -> RetryDecision {
        match self.phase {
            Phase::GaveUp(reason) => {
                return RetryDecision::GiveUp {
                    attempts: self.attempts,
                    reason,
                }
            }
            Phase::Succeeded => self.attempts = 0,
            Phase::Attempting | Phase::Waiting(_) => {}
        }
        self.attempts = self.attempts.saturating_add(1);
        let reason = if !self.config.is_retryable(kind) {
            GiveUpReason::NotRetryable(kind)
        } else if self.attempts >= self.config.attempt_limit() {
            GiveUpReason::Exhausted
        } else {
            let at = add(now, self.config.delay(self.attempts, rng));
            self.phase = Phase::Waiting(at);
            return RetryDecision::RetryAt(at);
        };
        self.phase = Phase::GaveUp(reason);
        RetryDecision::GiveUp {
            attempts: self.attempts,
            reason,
        }
    }

    /// Reports that the current attempt succeeded: the schedule is finished.
    pub fn on_success(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
        self.phase = Phase::Succeeded;
    }

    /// Starts over from attempt 1, forgetting any give-up.
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.phase = Phase::Attempting;
    }

    /// Attempts whose outcome has been reported in the current round (failures plus a success).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether an attempt may be made at `now`: not finished and any backoff has passed.
    pub fn may_attempt(&self, now: Instant) -> bool {
        match self.phase {
            Phase::Attempting => true,
            Phase::Waiting(at) => now >= at,
            Phase::Succeeded | Phase::GaveUp(_) => false,
        }
    }

    /// When the next attempt is due while backing off; `None` otherwise (notably when finished).
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting(at) => Some(at),
            Phase::Attempting | Phase::Succeeded | Phase::GaveUp(_) => None,
        }
    }

    /// Whether the schedule reached a terminal state: succeeded or gave up.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Succeeded | Phase::GaveUp(_))
    }
}

#[cfg(test)]
mod tests;
