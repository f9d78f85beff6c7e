//! Circuit breaker (per database): Closed → Open → HalfOpen with a single probe (DESIGN §3).
//!
//! Feed it only failures for which [`FailureKind::trips_breaker`](super::FailureKind::trips_breaker)
//! holds (transport errors and timeouts). Any other outcome, an error reply or `-LOADING`
//! included, proves the server alive and is reported as a success.

use std::time::{Duration, Instant};

use super::time::add;

/// Parameters of a [`CircuitBreaker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit; it opens exactly on this failure. `0` counts
    /// as `1`. Default: 5.
    pub failure_threshold: u32,
    /// How long the circuit stays open before one caller may probe, and how long a probe may stay
    /// out before it is abandoned. Default: 60 s.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(60),
        }
    }
}

/// The state of a breaker, as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls pass; this many failures in a row have been seen.
    Closed {
        /// Failures since the last success (always below the threshold).
        consecutive_failures: u32,
    },
    /// Calls are rejected until `until`; the first caller at or after it becomes the probe.
    Open {
        /// End of the open period.
        until: Instant,
    },
    /// One probe is (or was) out; everyone else is rejected until it reports or is abandoned.
    HalfOpen {
        /// When the current probe was granted; it is abandoned `open_for` later.
        probe_since: Instant,
    },
}

impl BreakerState {
    /// The state's kind, without its data.
    pub fn kind(&self) -> BreakerStateKind {
        match self {
            Self::Closed { .. } => BreakerStateKind::Closed,
            Self::Open { .. } => BreakerStateKind::Open,
            Self::HalfOpen { .. } => BreakerStateKind::HalfOpen,
        }
    }
}

/// The kind of a [`BreakerState`], for tracing and statistics (serialised `closed`, `open`,
/// `half_open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerStateKind {
    /// Calls pass.
    #[default]
    Closed,
    /// Calls are rejected.
    Open,
    /// A single probe decides.
    HalfOpen,
}

impl BreakerStateKind {
    /// The state's name as statistics and metrics spell it: `closed`, `open` or `half_open`.
    ///
    /// ```
    /// use redis_keeper::policy::BreakerStateKind;
    /// assert_eq!(BreakerStateKind::HalfOpen.as_str(), "half_open");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A change of state, returned so the caller can trace it and count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    /// The state left.
    pub from: BreakerStateKind,
    /// The state entered.
    pub to: BreakerStateKind,
}

/// Leave to make one call; hand it back with the call's outcome.
///
/// A permit belongs to one state of one breaker (its generation); outcomes reported with a permit
/// from an earlier state are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permit {
    generation: u64,
    probe: bool,
}

impl Permit {
    /// Whether this permit is the half-open probe: its outcome closes or re-opens the circuit.
    /// Receiving one means the breaker just moved Open → HalfOpen (or replaced an abandoned probe).
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The breaker generation (one per state entered) that granted this permit.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The permit a Closed breaker in `generation` grants: while closed,
    /// [`CircuitBreaker::try_acquire`] returns exactly this and changes nothing, so a caller
    /// that published the generation of a closed breaker may admit calls without it.
    ///
    /// ```
    /// use redis_keeper::policy::{BreakerConfig, CircuitBreaker, Permit};
    /// let mut b = CircuitBreaker::new(BreakerConfig::default());
    /// let now = std::time::Instant::now();
    /// assert_eq!(b.try_acquire(now), Ok(Permit::closed(b.generation())));
    /// ```
    pub fn closed(generation: u64) -> Self {
        Self {
            generation,
            probe: false,
        }
    }
}

/// The breaker refused a call: fail fast with `CircuitOpen { retry_after }`, touch no socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rejected {
    /// How long until a call may be let through again (the open period ends or the current probe
    /// is abandoned).
    pub retry_after: Duration,
}

/// A circuit breaker: a pure state machine driven with `now` and call outcomes.
///
/// ```
/// use redis_keeper::policy::{BreakerConfig, BreakerState, CircuitBreaker};
/// use std::time::{Duration, Instant};
/// let t0 = Instant::now();
/// let mut b = CircuitBreaker::new(BreakerConfig { failure_threshold: 1, ..Default::default() });
/// let permit = b.try_acquire(t0).unwrap();
/// assert!(b.on_failure(t0, permit).is_some()); // Closed -> Open on the threshold failure
/// assert_eq!(b.try_acquire(t0).unwrap_err().retry_after, Duration::from_secs(60));
/// let probe = b.try_acquire(t0 + Duration::from_secs(60)).unwrap();
/// assert!(probe.is_probe());
/// assert!(b.on_success(t0 + Duration::from_secs(61), probe).is_some()); // HalfOpen -> Closed
/// assert_eq!(b.state(), BreakerState::Closed { consecutive_failures: 0 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    generation: u64,
    trips: u64,
    rejections: u64,
}

impl CircuitBreaker {
    /// A closed breaker with no failures.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed {
                consecutive_failures: 0,
            },
            generation: 0,
            trips: 0,
            rejections: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Asks to make one call at `now`.
    ///
    /// Closed: granted. Open before `until`: rejected. Open at or after `until`: the caller becomes
    /// the single probe (HalfOpen). HalfOpen: rejected until the probe is abandoned (`open_for`
    /// after it was granted), then the caller becomes the new probe.
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, Rejected> {
        if let BreakerState::Closed { .. } = self.state {
            return Ok(Permit {
                generation: self.generation,
                probe: false,
            });
        }
        if let Some(retry_after) = self.retry_after(now) {
            self.rejections += 1;
            return Err(Rejected { retry_after });
        }
        self.enter(BreakerState::HalfOpen { probe_since: now });
        Ok(Permit {
            generation: self.generation,
            probe: true,
        })
    }

    /// Whether [`try_acquire`](Self::try_acquire) at `now` would grant a permit; changes nothing.
    pub fn would_allow(&self, now: Instant) -> bool {
        self.retry_after(now).is_none()
    }

    /// How long a caller at `now` must wait before [`try_acquire`](Self::try_acquire) may grant
    /// it a permit (the `retry_after` of `CircuitOpen`); `None` when it would grant one now.
    /// Changes nothing.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use redis_keeper::policy::{BreakerConfig, CircuitBreaker};
    /// let mut b = CircuitBreaker::new(BreakerConfig { failure_threshold: 1, open_for: Duration::from_secs(60) });
    /// let t0 = Instant::now();
    /// assert_eq!(b.retry_after(t0), None);
    /// let p = b.try_acquire(t0).unwrap();
    /// b.on_failure(t0, p);
    /// assert_eq!(b.retry_after(t0 + Duration::from_secs(20)), Some(Duration::from_secs(40)));
    /// assert_eq!(b.retry_after(t0 + Duration::from_secs(60)), None);
    /// ```
    pub fn retry_after(&self, now: Instant) -> Option<Duration> {
        self.next_deadline()
            .filter(|probe_from| now < *probe_from)
            .map(|probe_from| probe_from - now)
    }

    /// Reports that the call made under `permit` succeeded (or got any reply from the server).
    ///
    /// Closed: the failure count resets. Current probe: HalfOpen → Closed. A permit from an earlier
    /// state, or a probe reporting at or after its abandonment, is ignored.
    pub fn on_success(&mut self, now: Instant, permit: Permit) -> Option<Transition> {
        if !self.is_current(now, permit) {
            return None;
        }
        let closed = BreakerState::Closed {
            consecutive_failures: 0,
        };
        match self.state {
            BreakerState::Closed { .. } => {
                self.state = closed;
                None
            }
            BreakerState::HalfOpen { .. } => Some(self.enter(closed)),
            BreakerState::Open { .. } => None,
        }
    }

    /// Reports that the call made under `permit` failed in a way that trips the breaker.
    ///
    /// Closed: the failure count grows and the threshold failure opens the circuit. Current
    /// probe: HalfOpen → Open for a new period. Stale permits are ignored as in
    /// [`on_success`](Self::on_success).
    pub fn on_failure(&mut self, now: Instant, permit: Permit) -> Option<Transition> {
        if !self.is_current(now, permit) {
            return None;
        }
        let open = BreakerState::Open {
            until: add(now, self.config.open_for),
        };
        match self.state {
            BreakerState::Closed {
                consecutive_failures,
            } => {
                let failures = consecutive_failures.saturating_add(1);
                if failures >= self.config.failure_threshold.max(1) {
                    Some(self.enter(open))
                } else {
                    self.state = BreakerState::Closed {
                        consecutive_failures: failures,
                    };
                    None
                }
            }
            BreakerState::HalfOpen { .. } => Some(self.enter(open)),
            BreakerState::Open { .. } => None,
        }
    }

    /// The current state (as last updated; expiry is applied by the next call that passes `now`).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The generation: how many states the breaker has entered. Permits carry the generation
    /// that granted them (see [`Permit::closed`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a success report would change nothing, whatever its permit and time: the breaker
    /// is Closed with no failure counted (a success only resets the count, and a stale or probe
    /// permit is ignored). A caller may then skip the report.
    ///
    /// ```
    /// use redis_keeper::policy::{BreakerConfig, CircuitBreaker};
    /// let mut b = CircuitBreaker::new(BreakerConfig::default());
    /// let now = std::time::Instant::now();
    /// assert!(b.success_is_noop());
    /// let permit = b.try_acquire(now).unwrap();
    /// b.on_failure(now, permit);
    /// assert!(!b.success_is_noop()); // a success would reset the count
    /// ```
    pub fn success_is_noop(&self) -> bool {
        self.state
            == BreakerState::Closed {
                consecutive_failures: 0,
            }
    }

    /// When the breaker next changes its mind by itself: the end of the open period, or the
    /// abandonment of the probe. `None` while closed.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            BreakerState::Closed { .. } => None,
            BreakerState::Open { until } => Some(until),
            BreakerState::HalfOpen { probe_since } => Some(add(probe_since, self.config.open_for)),
        }
    }

    /// Times the circuit opened (from Closed or from a failed probe).
    pub fn trips(&self) -> u64 {
        self.trips
    }

    /// Calls rejected without touching the network.
    pub fn rejections(&self) -> u64 {
        self.rejections
    }

    /// Whether `permit` may still change the state at `now`.
    fn is_current(&self, now: Instant, permit: Permit) -> bool {
        if permit.generation != self.generation {
            return false;
        }
        match self.state {
            BreakerState::Closed { .. } => !permit.probe,
            BreakerState::HalfOpen { probe_since } => {
                permit.probe && now < add(probe_since, self.config.open_for)
            }
            BreakerState::Open { .. } => false,
        }
    }

    /// Moves to `to` in a new generation, so permits of the old state go stale.
    fn enter(&mut self, to: BreakerState) -> Transition {
        let from = self.state.kind();
        if to.kind() == BreakerStateKind::Open {
            self.trips += 1;
        }
        self.state = to;
        self.generation += 1;
        Transition {
            from,
            to: to.kind(),
        }
    }
}

#[cfg(test)]
mod fast_path_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
