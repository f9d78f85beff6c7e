//! Fault knobs of the simulated server ([`Faults`], [`Latency`]) and seeded timelines of fault
//! episodes ([`FaultPlan`]).

use std::fmt;
use std::time::Duration;

use crate::rng::Rng;

/// How long the server waits before each reply becomes readable.
///
/// Replies on one connection stay in order: a reply is never delivered before the one before it.
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::sim::Latency;
/// let l = Latency::Uniform { min: Duration::from_millis(1), max: Duration::from_millis(5) };
/// assert_ne!(l, Latency::None);
/// assert_eq!(Latency::default(), Latency::None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latency {
    /// Replies are readable at once.
    #[default]
    None,
    /// Every reply is delayed by this much.
    Fixed(Duration),
    /// Every reply is delayed by a duration drawn uniformly from `min..=max` (from the server's
    /// seeded generator).
    Uniform {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
}

impl Latency {
    /// Draws one delay.
    pub(crate) fn draw(&self, rng: &mut Rng) -> Duration {
        match *self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => {
                let lo = u64::try_from(min.as_nanos()).unwrap_or(u64::MAX);
                let hi = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(rng.between(lo, hi))
            }
        }
    }
}

/// The standing fault knobs of a [`SimRedis`](crate::sim::SimRedis) (all off by default).
///
/// Timed faults (LOADING, stalls, restarts, kills) are set with the server's methods or
/// scheduled with a [`FaultPlan`]; plan episodes that change these knobs restore them when they
/// end.
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::sim::{Faults, Latency};
/// let f = Faults { latency: Latency::Fixed(Duration::from_millis(3)), ..Faults::default() };
/// assert!(!f.refuse);
/// assert_eq!(f.failure_rate, 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Refuse new connections (`connect` fails with `ConnectionRefused`). Default: false.
    pub refuse: bool,
    /// Delay of every reply. Default: none.
    pub latency: Latency,
    /// Probability that a command resets its connection, either before the command is applied or
    /// after it is applied but before its reply is sent (the trace says which). Default: 0.
    pub failure_rate: f64,
}

/// What a restart does after killing every connection and clearing every keyspace.
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::sim::Restart;
/// let r = Restart { down: Duration::from_secs(2), loading: Duration::from_secs(5) };
/// assert_eq!(Restart::default().down, Duration::ZERO);
/// # let _ = r;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restart {
    /// How long new connections are refused after the restart.
    pub down: Duration,
    /// How long the server then answers `-LOADING` to most commands.
    pub loading: Duration,
}

/// One kind of fault episode in a [`FaultPlan`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Refuse new connections for `duration` (existing ones keep working).
    Refuse {
        /// How long.
        duration: Duration,
    },
    /// Answer `-LOADING` to everything but the loading-ok commands for `duration`.
    Loading {
        /// How long.
        duration: Duration,
    },
    /// Delay replies for `duration`.
    Latency {
        /// The delay while the episode lasts.
        latency: Latency,
        /// How long.
        duration: Duration,
    },
    /// Hold every reply produced during `duration` until it ends.
    Stall {
        /// How long.
        duration: Duration,
    },
    /// Cut the next reply after a seeded number of bytes, then reset its connection.
    ResetMidReply,
    /// Restart the server, losing all data.
    Restart(Restart),
    /// Kill every client connection.
    KillAll,
    /// Kill one client connection, chosen with the server's generator.
    KillOne,
    /// Reset connections at command time with probability `rate` for `duration`.
    FailureRate {
        /// Probability per command.
        rate: f64,
        /// How long.
        duration: Duration,
    },
}

impl Fault {
    /// How long the episode's effect lasts (zero for instantaneous faults; a restart lasts while
    /// the server is down or loading).
    pub fn duration(&self) -> Duration {
        match *self {
            Fault::Refuse { duration }
            | Fault::Loading { duration }
            | Fault::Latency { duration, .. }
            | Fault::Stall { duration }
            | Fault::FailureRate { duration, .. } => duration,
            Fault::Restart(r) => r.down.saturating_add(r.loading),
            Fault::ResetMidReply | Fault::KillAll | Fault::KillOne => Duration::ZERO,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_millis();
        match *self {
            Fault::Refuse { duration } => write!(f, "refuse for {}ms", ms(duration)),
            Fault::Loading { duration } => write!(f, "loading for {}ms", ms(duration)),
            Fault::Latency { latency, duration } => {
                write!(f, "latency {latency:?} for {}ms", ms(duration))
            }
            Fault::Stall { duration } => write!(f, "stall for {}ms", ms(duration)),
            Fault::ResetMidReply => f.write_str("reset mid-reply"),
            Fault::Restart(r) => write!(
                f,
                "restart (down {}ms, loading {}ms)",
                ms(r.down),
                ms(r.loading)
            ),
            Fault::KillAll => f.write_str("kill all"),
            Fault::KillOne => f.write_str("kill one"),
            Fault::FailureRate { rate, duration } => {
                write!(f, "failure rate {rate:.3} for {}ms", ms(duration))
            }
        }
    }
}

/// A fault starting at a virtual time (measured from the clock's epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    /// When it starts, as time since the simulation clock's epoch.
    pub at: Duration,
    /// What happens.
    pub fault: Fault,
}

/// A timeline of fault episodes, applied by a [`SimRedis`](crate::sim::SimRedis) as virtual time
/// passes (at the first interaction at or after each start; a reader waiting on a connection
/// sleeps until the next start, so episodes also hit idle connections on time).
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::Rng;
/// use redis_keeper::sim::{Fault, FaultPlan};
/// let plan = FaultPlan::new()
///     .at(Duration::from_secs(5), Fault::KillAll)
///     .at(Duration::from_secs(1), Fault::Loading { duration: Duration::from_secs(2) });
/// assert_eq!(plan.episodes()[0].at, Duration::from_secs(1)); // kept in time order
/// assert_eq!(plan.quiet_after(), Duration::from_secs(5));
///
/// let a = FaultPlan::random(&mut Rng::new(9), Duration::from_secs(60));
/// let b = FaultPlan::random(&mut Rng::new(9), Duration::from_secs(60));
/// assert_eq!(a, b);
/// assert!(a.episodes().iter().all(|e| e.at < Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultPlan {
    episodes: Vec<Episode>,
}

impl FaultPlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `fault` starting at `at` (time since the clock's epoch); episodes stay sorted by
    /// start, ties in insertion order.
    #[must_use]
    pub fn at(mut self, at: Duration, fault: Fault) -> Self {
        let pos = self.episodes.partition_point(|e| e.at <= at);
        self.episodes.insert(pos, Episode { at, fault });
        self
    }

    /// The episodes, in start order.
    pub fn episodes(&self) -> &[Episode] {
        &self.episodes
    }

    /// When the last episode's effect is over: from then on the server is healthy (the heal
    /// phase starts).
    pub fn quiet_after(&self) -> Duration {
        self.episodes
            .iter()
            .map(|e| e.at.saturating_add(e.fault.duration()))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// A seeded timeline of 1 to 8 episodes starting within `horizon`, each lasting at most a
    /// tenth of it (and at most 60 s); latencies up to 50 ms, failure rates up to 20 %.
    pub fn random(rng: &mut Rng, horizon: Duration) -> Self {
        let horizon_ns = u64::try_from(horizon.as_nanos()).unwrap_or(u64::MAX);
        let longest = (horizon_ns / 10).clamp(1, 60_000_000_000);
        let mut plan = Self::new();
        for _ in 0..rng.between(1, 8) {
            let at = Duration::from_nanos(rng.below(horizon_ns));
            let span = |rng: &mut Rng| Duration::from_nanos(rng.between(1, longest));
            let fault = match rng.below(9) {
                0 => Fault::Refuse {
                    duration: span(rng),
                },
                1 => Fault::Loading {
                    duration: span(rng),
                },
                2 => {
                    let duration = span(rng);
                    let max = Duration::from_millis(rng.between(1, 50));
                    let latency = if rng.chance(0.5) {
                        Latency::Fixed(max)
                    } else {
                        Latency::Uniform {
                            min: Duration::ZERO,
                            max,
                        }
                    };
                    Fault::Latency { latency, duration }
                }
                3 => Fault::Stall {
                    duration: span(rng),
                },
                4 => Fault::ResetMidReply,
                5 => {
                    let down = if rng.chance(0.5) {
                        span(rng)
                    } else {
                        Duration::ZERO
                    };
                    let loading = if rng.chance(0.5) {
                        span(rng)
                    } else {
                        Duration::ZERO
                    };
                    Fault::Restart(Restart { down, loading })
                }
                6 => Fault::KillAll,
                7 => Fault::KillOne,
                _ => Fault::FailureRate {
                    rate: rng.between(1, 20) as f64 / 100.0,
                    duration: span(rng),
                },
            };
            plan = plan.at(at, fault);
        }
        plan
    }
}
