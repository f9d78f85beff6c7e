//! What a swarm run does, drawn from its seed: the databases and their settings, the tasks, the
//! operation mix, the faults, and the Keeper configuration they make.

use std::time::Duration;

use crate::config::{Jitter, KeeperConfig};
use crate::rng::Rng;
use crate::sim::doubles::{Fault, FaultPlan, Latency, Restart};

/// The canonical names a swarm draws its databases from.
const NAMES: [&str; 4] = ["main", "cache", "jobs", "audit"];
/// Counter keys per database.
pub(super) const COUNTERS: u64 = 3;

/// The settings of one database in a swarm run.
#[derive(Debug, Clone, PartialEq)]
pub struct DbSpec {
    /// A canonical database name.
    pub name: &'static str,
    /// `max_connections`.
    pub max_connections: u32,
    /// `shared_connections` (at most `max_connections`).
    pub shared_connections: u32,
    /// Response timeout.
    pub response_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Pool wait timeout.
    pub pool_wait_timeout: Duration,
    /// Breaker failure threshold.
    pub breaker_threshold: u32,
    /// Breaker open period.
    pub breaker_open_for: Duration,
    /// Connection attempts.
    pub retry_attempts: u32,
    /// Retry multiplier (also the minimum wait).
    pub retry_min: Duration,
    /// Longest retry wait.
    pub retry_max: Duration,
    /// Full jitter on retry waits.
    pub jitter: bool,
    /// PING interval while loading.
    pub loading_poll_interval: Duration,
    /// Readiness timeout.
    pub loading_timeout: Duration,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Idle sweep interval.
    pub sweep_interval: Duration,
    /// Idle connections the sweep keeps.
    pub min_idle: u32,
    /// Health check interval.
    pub health_interval: Duration,
    /// Validate idle connections older than this on checkout.
    pub check_on_checkout_after: Duration,
}

/// One task's share of the traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// Operations the task runs.
    pub ops: u32,
    /// Longest pause between operations.
    pub think_max: Duration,
    /// Pause in whole multiples of 250 ms (so returns meet sweeps at the same instant).
    pub on_grid: bool,
    /// Seed of the task's own generator (which operation, which key, cancel or not).
    pub seed: u64,
}

/// Relative weights of the operations tasks draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// INCR on a shared connection.
    pub incr: u32,
    /// SET then GET of the task's own key.
    pub set_get: u32,
    /// A plain pipeline of two INCRs.
    pub pipeline: u32,
    /// An atomic pipeline (MULTI/EXEC) of two INCRs on a shared connection.
    pub atomic: u32,
    /// MULTI, INCR, INCR, EXEC on an exclusive connection.
    pub transaction: u32,
    /// An INCR on an exclusive connection held for a while.
    pub hold: u32,
    /// A PING.
    pub ping: u32,
}

/// Everything one swarm run does, drawn from a seed by [`SwarmSpec::draw`].
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmSpec {
    /// The seed of the simulation (executor, server and keeper generators).
    pub seed: u64,
    /// The databases used (distinct names).
    pub dbs: Vec<DbSpec>,
    /// The tasks.
    pub tasks: Vec<TaskSpec>,
    /// The operation mix.
    pub mix: Mix,
    /// Probability that an operation is cancelled at a random instant.
    pub cancel_rate: f64,
    /// The standing reply latency.
    pub latency: Latency,
    /// The fault timeline of phase one.
    pub plan: FaultPlan,
    /// A subscriber and a publisher on the first database, if drawn.
    pub pubsub: Option<PubSubSpec>,
    /// Sentinel failovers, if drawn: then every database is Sentinel-backed, and the run has
    /// no fault plan and no pub/sub (a subscriber stays on the old master until it is demoted).
    pub failovers: Option<FailoverSpec>,
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(super) fn draw_ms(rng: &mut Rng, lo: u64, hi: u64) -> Duration {
    ms(rng.between(lo, hi))
}

impl DbSpec {
    fn draw(name: &'static str, rng: &mut Rng) -> Self {
        let max_connections = rng.between(1, 6) as u32;
        let retry_min = draw_ms(rng, 50, 1_000);
        Self {
            name,
            max_connections,
            shared_connections: rng.between(1, u64::from(max_connections.min(3))) as u32,
            response_timeout: draw_ms(rng, 100, 3_000),
            connect_timeout: draw_ms(rng, 100, 2_000),
            pool_wait_timeout: draw_ms(rng, 50, 3_000),
            breaker_threshold: rng.between(1, 5) as u32,
            breaker_open_for: draw_ms(rng, 500, 15_000),
            retry_attempts: rng.between(1, 4) as u32,
            retry_min,
            retry_max: retry_min + draw_ms(rng, 0, 3_000),
            jitter: rng.chance(0.3),
            loading_poll_interval: draw_ms(rng, 50, 1_500),
            loading_timeout: draw_ms(rng, 500, 20_000),
            idle_timeout: draw_ms(rng, 250, 6_000),
            sweep_interval: Duration::from_secs(rng.between(1, 4)),
            min_idle: rng.between(0, 1) as u32,
            health_interval: Duration::from_secs(rng.between(1, 10)),
            check_on_checkout_after: draw_ms(rng, 100, 5_000),
        }
    }

    /// The longest phase two may take to get a command through after the heal: an open breaker
    /// waits out its period, then one connection is opened (every attempt timing out and every
    /// retry wait at its longest), a readiness wait and a command, with a margin.
    pub fn heal_bound(&self) -> Duration {
        let attempts = self.retry_attempts.max(1);
        let waits = self.retry_max * attempts;
        let connects = self.connect_timeout * attempts;
        self.breaker_open_for * 2
            + waits
            + connects
            + self.loading_timeout
            + self.pool_wait_timeout
            + self.response_timeout * 4
            + self.health_interval
            + Duration::from_secs(5)
    }
}

impl SwarmSpec {
    /// Draws a whole run from `seed`.
    pub fn draw(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x5741_524d);
        let mut names = NAMES.to_vec();
        let n_dbs = rng.between(1, 3) as usize;
        let mut dbs = Vec::with_capacity(n_dbs);
        for _ in 0..n_dbs {
            let name = names.remove(rng.below(names.len() as u64) as usize);
            dbs.push(DbSpec::draw(name, &mut rng));
        }
        let tasks = (0..rng.between(2, 10))
            .map(|_| TaskSpec {
                ops: rng.between(5, 40) as u32,
                think_max: draw_ms(&mut rng, 0, 3_000),
                on_grid: rng.chance(0.6),
                seed: rng.next_u64(),
            })
            .collect();
        let mut w = || rng.between(0, 10) as u32;
        let mix = Mix {
            incr: w() + 1,
            set_get: w(),
            pipeline: w(),
            atomic: w(),
            transaction: w(),
            hold: w(),
            ping: w(),
        };
        let cancel_rate = [0.0, 0.02, 0.1, 0.25][rng.below(4) as usize];
        let latency = match rng.below(4) {
            0 | 1 => Latency::None,
            2 => Latency::Fixed(draw_ms(&mut rng, 1, 30)),
            _ => Latency::Uniform {
                min: Duration::ZERO,
                max: draw_ms(&mut rng, 1, 50),
            },
        };
        let horizon = Duration::from_secs(rng.between(20, 90));
        let mut plan = FaultPlan::random(&mut rng, horizon);
        // Longer episodes than `FaultPlan::random` draws, so breakers reopen after failed probes
        // and readiness waits time out.
        for _ in 0..rng.between(0, 3) {
            let at = draw_ms(&mut rng, 0, horizon.as_millis() as u64);
            let long = draw_ms(&mut rng, 2_000, 30_000);
            let fault = match rng.below(4) {
                0 => Fault::Refuse { duration: long },
                1 => Fault::Loading { duration: long },
                2 => Fault::Stall { duration: long / 4 },
                _ => Fault::Restart(Restart {
                    down: long / 4,
                    loading: long / 2,
                }),
            };
            plan = plan.at(at, fault);
        }
        // Drawn last, so every earlier part of a seed's run is as it was before pub/sub.
        let mut pubsub = rng.chance(0.5).then(|| PubSubSpec::draw(&mut rng));
        // Drawn after pub/sub, for the same reason.
        let failovers = rng.chance(0.25).then(|| FailoverSpec::draw(&mut rng));
        if failovers.is_some() {
            plan = FaultPlan::default();
            pubsub = None;
        }
        Self {
            seed,
            dbs,
            tasks,
            mix,
            cancel_rate,
            latency,
            plan,
            pubsub,
            failovers,
        }
    }

    /// The Keeper configuration: the default sixteen databases, the drawn ones configured
    /// (a failover run makes all of them Sentinel-backed on top of it).
    pub fn config(&self) -> KeeperConfig {
        let mut config = KeeperConfig::default().configure_all(|d| {
            d.max_connections(2)
                .shared_connections(1)
                .health_check_interval(Duration::from_secs(30))
        });
        for db in &self.dbs {
            let db = db.clone();
            config = config.configure(db.name, move |d| {
                d.max_connections(db.max_connections)
                    .shared_connections(db.shared_connections)
                    .response_timeout(db.response_timeout)
                    .connect_timeout(db.connect_timeout)
                    .pool_wait_timeout(db.pool_wait_timeout)
                    .breaker_failure_threshold(db.breaker_threshold)
                    .breaker_open_for(db.breaker_open_for)
                    .retry_attempts(db.retry_attempts)
                    .retry_multiplier(db.retry_min)
                    .retry_min(db.retry_min)
                    .retry_max(db.retry_max)
                    .retry_jitter(if db.jitter {
                        Jitter::Full
                    } else {
                        Jitter::None
                    })
                    .loading_poll_interval(db.loading_poll_interval)
                    .loading_timeout(db.loading_timeout)
                    .idle_timeout(db.idle_timeout)
                    .idle_sweep_interval(db.sweep_interval)
                    .min_idle(db.min_idle)
                    .health_check_interval(db.health_interval)
                    .check_on_checkout_after(db.check_on_checkout_after)
            });
        }
        config
    }
}

/// What the swarm's publisher does, drawn from the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubSpec {
    /// Messages published in phase one.
    pub publishes: u32,
    /// Longest pause between two publishes.
    pub think_max: Duration,
}

impl PubSubSpec {
    pub(super) fn draw(rng: &mut Rng) -> Self {
        Self {
            publishes: rng.between(5, 40) as u32,
            think_max: draw_ms(rng, 100, 3_000),
        }
    }
}

/// The failovers of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverSpec {
    /// Start instants from the run's start, at least 12 s apart (a failover's script takes
    /// 10.8 s), and whether each is announced. An announced one goes as real sentinels make
    /// it; an unannounced one has no `+try-failover`, and its old master is a replica from the
    /// promotion on (writes there get `READONLY`, sent once more; the master is then found by
    /// the `ROLE` check, the poll or the late `+switch-master`).
    pub starts: Vec<(Duration, bool)>,
}

impl FailoverSpec {
    pub(super) fn draw(rng: &mut Rng) -> Self {
        let mut at = draw_ms(rng, 200, 5_000);
        let starts = (0..rng.between(1, 3))
            .map(|_| {
                let start = at;
                at += draw_ms(rng, 12_000, 20_000);
                (start, rng.chance(0.7))
            })
            .collect();
        Self { starts }
    }
}
