//! Connections lost together: when several connections of one database die in the same event
//! (a `CLIENT KILL`, a restart, a freeze), the breaker counts one failure, not one per
//! connection. Pure: the loss instant and the connection's opening instant come in as values.
//!
//! The rule: a connection lost at `now` went down with the last loss that was counted when it
//! was already open at that loss (`opened_at < last`) and it is lost within `window` of it
//! (`now - last ≤ window`). Such a loss does not count; any other loss counts and becomes the
//! last counted one. A connection opened after the counted loss is a new attempt at the server:
//! its loss counts. Else one reset of a pool with more connections than the breaker threshold
//! would open the breaker on a server that is fine.

use std::time::{Duration, Instant};

/// How connection losses are grouped into breaker failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossConfig {
    /// Losses of connections already open within this long after a counted loss are the same
    /// event. YAML `breaker_loss_window`; default: the database's `socket_timeout` (a freeze
    /// shows on every connection within one response timeout).
    pub window: Duration,
}

/// Whether a connection's loss counts against the breaker.
#[must_use = "count the loss against the breaker when it says `Count`"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossVerdict {
    /// A new event: report one failure to the breaker.
    Count,
    /// Lost together with the last counted loss: report nothing.
    SameEvent,
}

/// Groups the losses of one database's connections (see the module docs).
///
/// ```
/// use std::time::{Duration, Instant};
/// use redis_keeper::policy::{LossConfig, LossGrouping, LossVerdict};
/// let mut losses = LossGrouping::new(LossConfig { window: Duration::from_secs(5) });
/// let (opened, t0) = (Instant::now(), Instant::now() + Duration::from_secs(100));
/// assert_eq!(losses.on_loss(t0, opened), LossVerdict::Count);
/// assert_eq!(losses.on_loss(t0 + Duration::from_secs(1), opened), LossVerdict::SameEvent);
/// // A connection opened after that loss is a new attempt: its loss counts.
/// assert_eq!(losses.on_loss(t0 + Duration::from_secs(2), t0 + Duration::from_secs(1)), LossVerdict::Count);
/// ```
#[derive(Debug, Clone)]
pub struct LossGrouping {
    config: LossConfig,
    last_counted: Option<Instant>,
}

impl LossGrouping {
    /// No loss seen yet.
    pub fn new(config: LossConfig) -> Self {
        Self {
            config,
            last_counted: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &LossConfig {
        &self.config
    }

    /// A connection opened at `opened_at` was lost at `now`.
    pub fn on_loss(&mut self, now: Instant, opened_at: Instant) -> LossVerdict {
        if let Some(last) = self.last_counted {
            let within = now.saturating_duration_since(last) <= self.config.window;
            if opened_at < last && within {
                return LossVerdict::SameEvent;
            }
        }
        self.last_counted = Some(now);
        LossVerdict::Count
    }

    /// When the last counted loss happened, if any.
    pub fn last_counted(&self) -> Option<Instant> {
        self.last_counted
    }
}

#[cfg(test)]
mod tests;
