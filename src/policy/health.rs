//! Health: the periodic check schedule and the per-database health assessment (DESIGN §3).

use std::time::{Duration, Instant};

use super::time::next_tick;
use super::{BreakerState, ReadinessState};

/// Parameters of a [`HealthSchedule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Period of the background check, at a fixed rate from the start; missed ticks are skipped.
    /// Default: 30 s.
    pub interval: Duration,
    /// Check a connection on checkout when it has been idle strictly longer than this.
    /// Default: `None` (never).
    pub check_on_checkout_after: Option<Duration>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            check_on_checkout_after: None,
        }
    }
}

impl HealthConfig {
    /// Whether a connection idle since `idle_since` is validated (PING) before it is lent at
    /// `now`. Needs no schedule state, so callers decide it without taking a lock.
    pub fn needs_checkout_check(&self, now: Instant, idle_since: Instant) -> bool {
        self.check_on_checkout_after
            .is_some_and(|after| now.saturating_duration_since(idle_since) > after)
    }
}

/// When to run health checks: fixed rate, missed ticks skipped, at most one in flight.
///
/// The driver must report [`on_check_finished`](Self::on_check_finished) on every path,
/// cancellation included; until then no other check is due.
///
/// ```
/// use redis_keeper::policy::{HealthConfig, HealthSchedule};
/// use std::time::{Duration, Instant};
/// let t0 = Instant::now();
/// let mut h = HealthSchedule::new(HealthConfig::default(), t0);
/// assert!(!h.due(t0) && h.due(t0 + Duration::from_secs(30)));
/// h.on_check_started(t0 + Duration::from_secs(30));
/// h.on_check_finished(t0 + Duration::from_secs(31));
/// assert_eq!(h.next_deadline(), Some(t0 + Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone)]
pub struct HealthSchedule {
    config: HealthConfig,
    start: Instant,
    next_check: Instant,
    in_flight: Option<Instant>,
}

impl HealthSchedule {
    /// A schedule whose checks fall at `start + k·interval`, `k ≥ 1`.
    pub fn new(config: HealthConfig, start: Instant) -> Self {
        let next_check = next_tick(start, config.interval, start);
        Self {
            config,
            start,
            next_check,
            in_flight: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Whether a check should start at `now`: its tick has come and none is in flight.
    pub fn due(&self, now: Instant) -> bool {
        self.in_flight.is_none() && now >= self.next_check
    }

    /// A check started at `now`; the next one is due at the first tick after `now`.
    pub fn on_check_started(&mut self, now: Instant) {
        self.in_flight = Some(now);
        self.next_check = self
            .next_check
            .max(next_tick(self.start, self.config.interval, now));
    }

    /// The check in flight finished at `now`. Ticks that passed while it ran are skipped.
    pub fn on_check_finished(&mut self, now: Instant) {
        self.in_flight = None;
        if now >= self.next_check {
            self.next_check = next_tick(self.start, self.config.interval, now);
        }
    }

    /// Whether a check is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// When the next check is due; `None` while one is in flight (wait for it instead).
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.in_flight {
            Some(_) => None,
            None => Some(self.next_check),
        }
    }

    /// Whether a connection idle since `idle_since` must be checked before it is handed out at
    /// `now` (only with `check_on_checkout_after` set, idle strictly longer than it).
    pub fn needs_checkout_check(&self, now: Instant, idle_since: Instant) -> bool {
        self.config.needs_checkout_check(now, idle_since)
    }
}

/// The health of one database, serialised in lowercase as the seed's `ConnectionState`
/// values: `healthy`, `degraded`, `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Breaker closed with no recent failure, and ready.
    Healthy,
    /// Working with reservations: half-open, loading, or failures below the threshold.
    Degraded,
    /// Not serving: breaker open, or readiness timed out.
    Failed,
}

impl HealthState {
    /// Assesses a database from its breaker and readiness states:
    /// Failed = Open or timed out; Degraded = half-open, loading, or some failures;
    /// Healthy = Closed with zero failures and ready.
    pub fn assess(breaker: &BreakerState, readiness: &ReadinessState) -> HealthState {
        match (breaker, readiness) {
            (BreakerState::Open { .. }, _) | (_, ReadinessState::TimedOut { .. }) => Self::Failed,
            (
                BreakerState::Closed {
                    consecutive_failures: 0,
                },
                ReadinessState::Ready,
            ) => Self::Healthy,
            _ => Self::Degraded,
        }
    }

    /// A short lowercase name: `"healthy"`, `"degraded"` or `"failed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests;
