//! Pool statistics: lock-free counters and their serializable snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::histogram::{Histogram, HistogramSnapshot};

/// A snapshot of one database's pool (DESIGN §5).
///
/// ```
/// let s = redis_keeper::PoolStats::default();
/// assert_eq!(s.in_use + s.idle, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections opened over the pool's life.
    pub created: u64,
    /// Connections closed over the pool's life (stale, broken, dirty, surplus, shutdown).
    pub closed: u64,
    /// Idle exclusive connections now.
    pub idle: usize,
    /// Exclusive connections lent out now.
    pub in_use: usize,
    /// Connections being opened now.
    pub connecting: usize,
    /// Multiplexed connections held by the shared slots now.
    pub shared: usize,
    /// The limit on all of the above together (`max_connections`).
    pub max: usize,
    /// Callers waiting for a connection now.
    pub waiters: usize,
    /// Checkouts served by an idle connection.
    pub hits: u64,
    /// Checkouts that had to open a connection or wait.
    pub misses: u64,
    /// Waits that ended in `PoolTimeout`.
    pub timeouts: u64,
    /// Idle connections closed as stale (idle timeout or max lifetime).
    pub stale_closed: u64,
    /// Connections closed because they were broken or left in a changed state.
    pub broken_closed: u64,
    /// Idle sweeps run.
    pub sweeps: u64,
    /// Connections returned at the very instant an idle sweep ran (before or after it): the
    /// sweep and the return raced. Observed by the simulator's swarm runs.
    pub sweep_races: u64,
    /// Time since the last idle sweep, if one ran.
    pub since_last_sweep: Option<Duration>,
    /// How long the checkouts that had to wait for a connection waited (granted or timed out).
    pub wait: HistogramSnapshot,
}

/// The pool's monotonic counters, updated without the pool lock.
#[derive(Debug, Default)]
pub(crate) struct PoolCounters {
    pub(crate) created: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) stale_closed: AtomicU64,
    pub(crate) broken_closed: AtomicU64,
    pub(crate) sweeps: AtomicU64,
    pub(crate) sweep_races: AtomicU64,
    pub(crate) wait: Histogram,
}

impl PoolCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
