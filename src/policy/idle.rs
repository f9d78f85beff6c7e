//! Idle policy (per pool): which idle connections are stale, and when to sweep (DESIGN §3).
//!
//! Only idle connections are ever passed in, so a connection lent to a holder is never evicted:
//! the pool judges it again when it comes back.

use std::time::{Duration, Instant};

use super::time::next_tick;

/// Parameters of an [`IdlePolicy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleConfig {
    /// An idle connection is stale once it has been idle strictly longer than this.
    /// Default: 300 s.
    pub idle_timeout: Duration,
    /// Period of the sweep, at a fixed rate from the pool's start; missed ticks are skipped.
    /// Default: 60 s.
    pub sweep_interval: Duration,
    /// Idle connections a sweep always keeps, stale or not. Default: 0.
    pub min_idle: usize,
    /// A connection older than this (since it was opened, strictly) is stale too.
    /// Default: `None` (no limit).
    pub max_lifetime: Option<Duration>,
}

impl Default for IdleConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            sweep_interval: Duration::from_secs(60),
            min_idle: 0,
            max_lifetime: None,
        }
    }
}

/// One idle connection, as the sweep sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdleEntry {
    /// The pool's identifier for the connection.
    pub id: u64,
    /// When it was last returned to the pool (became idle).
    pub returned_at: Instant,
    /// When it was opened.
    pub created_at: Instant,
}

/// The idle policy of one pool: staleness and a fixed-rate sweep schedule.
///
/// ```
/// use redis_keeper::policy::{IdleConfig, IdleEntry, IdlePolicy};
/// use std::time::{Duration, Instant};
/// let t0 = Instant::now();
/// let mut p = IdlePolicy::new(IdleConfig::default(), t0);
/// let entry = IdleEntry { id: 7, returned_at: t0, created_at: t0 };
/// let now = t0 + Duration::from_secs(301);
/// assert!(p.sweep_due(now));
/// assert_eq!(p.on_sweep(now, &[entry]), vec![7]);
/// assert_eq!(p.next_deadline(), t0 + Duration::from_secs(360));
/// ```
#[derive(Debug, Clone)]
pub struct IdlePolicy {
    config: IdleConfig,
    start: Instant,
    next_sweep: Instant,
    last_sweep: Option<Instant>,
}

impl IdlePolicy {
    /// A policy whose sweeps fall at `start + k·sweep_interval`, `k ≥ 1`.
    pub fn new(config: IdleConfig, start: Instant) -> Self {
        let next_sweep = next_tick(start, config.sweep_interval, start);
        Self {
            config,
            start,
            next_sweep,
            last_sweep: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &IdleConfig {
        &self.config
    }

    /// Whether `entry` is stale at `now`: idle strictly longer than `idle_timeout`, or older
    /// strictly than `max_lifetime`. Checkout uses this to skip and close stale connections.
    pub fn is_stale(&self, now: Instant, entry: &IdleEntry) -> bool {
        let idle_too_long =
            now.saturating_duration_since(entry.returned_at) > self.config.idle_timeout;
        let too_old = self
            .config
            .max_lifetime
            .is_some_and(|max| now.saturating_duration_since(entry.created_at) > max);
        idle_too_long || too_old
    }

    /// Whether a sweep is due at `now`.
    pub fn sweep_due(&self, now: Instant) -> bool {
        now >= self.next_sweep
    }

    /// Sweeps at `now` over the pool's idle connections and returns the ids to close: every stale
    /// one, oldest (earliest `returned_at`) first, but never leaving fewer than `min_idle` idle.
    /// Then moves the schedule to the first tick after `now`, skipping missed ones (an early
    /// sweep does not move it).
    pub fn on_sweep(&mut self, now: Instant, idle: &[IdleEntry]) -> Vec<u64> {
        let mut stale: Vec<&IdleEntry> = idle.iter().filter(|e| self.is_stale(now, e)).collect();
        stale.sort_by_key(|e| (e.returned_at, e.id));
        let closable = idle.len().saturating_sub(self.config.min_idle);
        stale.truncate(closable);
        self.next_sweep =
            self.next_sweep
                .max(next_tick(self.start, self.config.sweep_interval, now));
        self.last_sweep = Some(now);
        stale.into_iter().map(|e| e.id).collect()
    }

    /// When the next sweep is due.
    pub fn next_deadline(&self) -> Instant {
        self.next_sweep
    }

    /// When the last sweep ran, if any.
    pub fn last_sweep(&self) -> Option<Instant> {
        self.last_sweep
    }
}

#[cfg(test)]
mod tests;
