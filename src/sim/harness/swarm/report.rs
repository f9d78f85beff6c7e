//! What a swarm run reports: its figures, the rare transitions it reached, or its failure.

use std::fmt;
use std::time::Duration;

/// How often the rare transitions happened in one run (summed over databases).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rare {
    /// Closed → Open.
    pub breaker_trips: u64,
    /// HalfOpen → Open (a probe failed).
    pub breaker_reopens: u64,
    /// Readiness waits that gave up with `NotReady`.
    pub readiness_timeouts: u64,
    /// Returns at the very instant of an idle sweep.
    pub sweep_races: u64,
    /// Idle connections closed as stale.
    pub stale_closed: u64,
    /// Server restarts (data lost).
    pub restarts: u64,
    /// Operations cancelled mid-way.
    pub cancelled: u64,
    /// Pool waits that timed out.
    pub pool_timeouts: u64,
    /// Subscriber reconnects (each followed by one resubscription).
    pub resubscriptions: u64,
    /// Sentinel master switches followed (failover runs).
    pub master_switches: u64,
    /// `READONLY` replies from a stale master, each request sent once more (failover runs).
    pub readonly_replies: u64,
}

impl Rare {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Rare) {
        self.breaker_trips += other.breaker_trips;
        self.breaker_reopens += other.breaker_reopens;
        self.readiness_timeouts += other.readiness_timeouts;
        self.sweep_races += other.sweep_races;
        self.stale_closed += other.stale_closed;
        self.restarts += other.restarts;
        self.cancelled += other.cancelled;
        self.pool_timeouts += other.pool_timeouts;
        self.resubscriptions += other.resubscriptions;
        self.master_switches += other.master_switches;
        self.readonly_replies += other.readonly_replies;
    }

    /// The counters by name, for reports and "never reached" checks.
    pub fn named(&self) -> [(&'static str, u64); 11] {
        [
            ("breaker trips (closed -> open)", self.breaker_trips),
            ("breaker reopens (half-open -> open)", self.breaker_reopens),
            ("readiness timeouts", self.readiness_timeouts),
            ("eviction sweep racing a return", self.sweep_races),
            ("stale connections evicted", self.stale_closed),
            ("server restarts", self.restarts),
            ("operations cancelled", self.cancelled),
            ("pool wait timeouts", self.pool_timeouts),
            ("subscriber resubscriptions", self.resubscriptions),
            ("sentinel master switches", self.master_switches),
            ("READONLY replies resent once", self.readonly_replies),
        ]
    }
}

/// What a successful run reports.
#[derive(Debug, Clone)]
pub struct SwarmReport {
    /// The seed.
    pub seed: u64,
    /// The hash of the whole trace (server events and every operation's outcome).
    pub trace_hash: u64,
    /// The trace lines (empty unless asked for).
    pub lines: Vec<String>,
    /// Operations run in phase one.
    pub ops: u64,
    /// Operations that succeeded.
    pub ok: u64,
    /// Operations that failed with a (typed) error.
    pub failed: u64,
    /// Virtual time at the heal.
    pub healed_at: Duration,
    /// Virtual time at the end.
    pub ended_at: Duration,
    /// Rare transitions reached.
    pub rare: Rare,
}

/// A run that broke a property: the seed, what broke, and the trace when it was kept.
#[derive(Debug, Clone)]
pub struct SwarmFailure {
    /// The seed.
    pub seed: u64,
    /// Every violation found, in order.
    pub violations: Vec<String>,
    /// The trace lines (empty unless asked for).
    pub lines: Vec<String>,
}

impl fmt::Display for SwarmFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "swarm seed {} failed ({} violations); rerun with SIM_SEED={}",
            self.seed,
            self.violations.len(),
            self.seed
        )?;
        for v in self.violations.iter().take(20) {
            writeln!(f, "  - {v}")?;
        }
        Ok(())
    }
}
