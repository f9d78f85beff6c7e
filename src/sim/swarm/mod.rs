//! Swarm simulation: one `u64` seed draws a configuration, a traffic mix from many tasks and a
//! fault timeline, runs a whole [`Keeper`] against a [`SimRedis`] in virtual time, and checks it.
//!
//! **Phase one** (faults): tasks run INCRs, SET/GETs, pipelines (plain and atomic), transactions
//! and held exclusive connections, some cancelled at a random instant, while the server suffers
//! the drawn faults (LOADING, stalls, resets, restarts, refused connects, latency). After every
//! operation the run checks the pool invariants ([`Keeper::check_invariants`]), that every failure
//! is a typed error, and that every reply fits the write model. **Phase two** (heal): the server
//! is healed ([`SimRedis::heal`]); every database used must then serve a command and report
//! `Healthy` within a bound computed from its configuration. At the end every counter must hold
//! between its acknowledged INCRs and those plus the ones whose outcome is unknown (no
//! acknowledged write lost unless a restart dropped it, none applied twice), and closing the
//! Keeper must leave no connection open on the server.
//!
//! The same code serves `tests/swarm.rs` (many seeds, each run twice with equal trace hashes)
//! and the `swarm` fuzz target ([`SwarmSpec`] fields are public so a fuzzer can steer them).
//!
//! ```
//! use redis_keeper::sim::swarm::{run, SwarmSpec};
//! let spec = SwarmSpec::draw(7);
//! let a = run(&spec, false).unwrap();
//! let b = run(&spec, false).unwrap();
//! assert_eq!(a.trace_hash, b.trace_hash);
//! assert!(a.ops > 0);
//! ```

mod pubsub;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::{Fault, FaultPlan, Faults, Latency, Restart, Sim, SimClock, SimRedis, Trace};
use crate::config::Jitter;
use crate::config::KeeperConfig;
use crate::error::Error;
use crate::keeper::Keeper;
use crate::policy::HealthState;
use crate::rng::Rng;
use crate::seams::{timeout_at, Clock};

/// The canonical names a swarm draws its databases from.
const NAMES: [&str; 4] = ["main", "cache", "jobs", "audit"];
/// Counter keys per database.
const COUNTERS: u64 = 3;

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
    pub pubsub: Option<pubsub::PubSubSpec>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn draw_ms(rng: &mut Rng, lo: u64, hi: u64) -> Duration {
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
        let pubsub = rng.chance(0.5).then(|| pubsub::PubSubSpec::draw(&mut rng));
        Self {
            seed,
            dbs,
            tasks,
            mix,
            cancel_rate,
            latency,
            plan,
            pubsub,
        }
    }

    /// The Keeper configuration: the default sixteen databases, the drawn ones configured.
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
    }

    /// The counters by name, for reports and "never reached" checks.
    pub fn named(&self) -> [(&'static str, u64); 9] {
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

/// One INCR whose outcome the model tracks.
#[derive(Debug, Clone, Copy)]
struct IncrOp {
    /// Restarts seen before it was sent.
    start_epoch: u64,
    /// Restarts seen once it ended.
    end_epoch: u64,
    acked: bool,
}

/// A key the owning task SETs to increasing values and reads back.
#[derive(Debug, Default)]
struct Register {
    attempted: Vec<i64>,
    /// The last acknowledged value and the restarts seen before it was sent.
    last_ack: Option<(i64, u64)>,
    /// A SET failed or was cancelled: its outcome is unknown.
    unknown: bool,
}

#[derive(Debug, Default)]
struct Model {
    /// Per (database, key): INCRs started (an upper bound on what a reply may show) and the ops.
    counters: BTreeMap<(usize, String), (u64, Vec<IncrOp>)>,
    registers: BTreeMap<(usize, String), Register>,
    violations: Vec<String>,
    ops: u64,
    ok: u64,
    failed: u64,
    cancelled: u64,
}

struct World {
    pubsub: Mutex<pubsub::PubSubModel>,
    keeper: Keeper,
    redis: SimRedis,
    clock: SimClock,
    trace: Trace,
    model: Mutex<Model>,
    spec: SwarmSpec,
}

/// Why an operation did not succeed.
enum Failure {
    Cancelled,
    Keeper(Error),
    Redis(redis::RedisError),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Keeper(e)
    }
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Self {
        Failure::Redis(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Cancelled => f.write_str("cancelled"),
            Failure::Keeper(e) => write!(f, "{e}"),
            Failure::Redis(e) => write!(f, "{e}"),
        }
    }
}

/// Whether a redis-rs error is one a Keeper may legitimately hand out: a transport failure or
/// timeout, a server error reply, or a Keeper error carried through redis-rs's trait.
fn redis_error_is_typed(e: &redis::RedisError) -> bool {
    use redis::ErrorKind as K;
    match Error::from(e.clone()) {
        Error::Redis(e) => matches!(e.kind(), K::Io | K::Server(_) | K::Extension),
        keeper => keeper_error_is_typed(&keeper),
    }
}

/// Whether a Keeper error is one the swarm's traffic may legitimately get.
fn keeper_error_is_typed(e: &Error) -> bool {
    match e {
        Error::PoolTimeout { .. }
        | Error::CircuitOpen { .. }
        | Error::NotReady { .. }
        | Error::Connect { .. } => true,
        Error::Redis(r) => redis_error_is_typed(r),
        _ => false,
    }
}

impl World {
    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn violation(&self, what: String) {
        self.trace
            .record(self.clock.elapsed(), format_args!("VIOLATION {what}"));
        self.model().violations.push(what);
    }

    fn check_invariants(&self, when: &str) {
        if let Err(e) = self.keeper.check_invariants() {
            self.violation(format!("pool invariant broken {when}: {e}"));
        }
    }

    fn record(&self, event: impl fmt::Display) {
        self.trace.record(self.clock.elapsed(), event);
    }

    /// Counts an operation's outcome, checks a failure is typed, and traces it.
    fn outcome<T: fmt::Debug>(&self, task: usize, what: &str, r: &Result<T, Failure>) {
        let mut m = self.model();
        m.ops += 1;
        match r {
            Ok(_) => m.ok += 1,
            Err(Failure::Cancelled) => m.cancelled += 1,
            Err(_) => m.failed += 1,
        }
        drop(m);
        match r {
            Ok(v) => self.record(format_args!("task {task} {what} -> {v:?}")),
            Err(f) => {
                self.record(format_args!("task {task} {what} -> error: {f}"));
                let typed = match f {
                    Failure::Cancelled => true,
                    Failure::Keeper(e) => keeper_error_is_typed(e),
                    Failure::Redis(e) => redis_error_is_typed(e),
                };
                if !typed {
                    self.violation(format!("task {task} {what}: untyped error: {f}"));
                }
            }
        }
    }

    /// Runs `fut`, cancelled at `cancel_at` if given.
    async fn maybe_cancel<T>(
        &self,
        cancel_at: Option<Instant>,
        fut: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        match cancel_at {
            None => fut.await,
            Some(at) => timeout_at(&self.clock, at, fut)
                .await
                .unwrap_or(Err(Failure::Cancelled)),
        }
    }

    fn incr_started(&self, db: usize, key: &str) {
        self.model()
            .counters
            .entry((db, key.to_string()))
            .or_default()
            .0 += 1;
    }

    /// Records the INCRs of one operation, checking acknowledged replies against what was sent.
    fn incr_finished(&self, db: usize, keys: &[&str], start_epoch: u64, replies: Option<&[i64]>) {
        let end_epoch = self.redis.restarts();
        let mut bad = Vec::new();
        {
            let mut m = self.model();
            for (i, key) in keys.iter().enumerate() {
                let entry = m.counters.entry((db, key.to_string())).or_default();
                entry.1.push(IncrOp {
                    start_epoch,
                    end_epoch,
                    acked: replies.is_some(),
                });
                if let Some(v) = replies.map(|r| r[i]) {
                    // Same key twice in one request: the later reply is one more.
                    let started = entry.0;
                    if v < 1 || v as u64 > started {
                        bad.push(format!(
                            "INCR {key} on db #{db} replied {v}, but only {started} INCRs were ever sent"
                        ));
                    }
                }
            }
        }
        for b in bad {
            self.violation(b);
        }
    }

    async fn run_task(&self, index: usize, spec: TaskSpec) {
        let mut rng = Rng::new(spec.seed);
        let mix = self.spec.mix;
        let weights = [
            mix.incr,
            mix.set_get,
            mix.pipeline,
            mix.atomic,
            mix.transaction,
            mix.hold,
            mix.ping,
        ];
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut seq = 0i64;
        for _ in 0..spec.ops {
            let think = if spec.on_grid {
                ms(250 * rng.below(spec.think_max.as_millis() as u64 / 250 + 1))
            } else {
                ms(rng.below(spec.think_max.as_millis() as u64 + 1))
            };
            self.clock.sleep_until(self.clock.now() + think).await;
            let db = rng.below(self.spec.dbs.len() as u64) as usize;
            let cancel_at = rng.chance(self.spec.cancel_rate).then(|| {
                let d = &self.spec.dbs[db];
                let span = d.response_timeout * 2 + d.pool_wait_timeout;
                self.clock.now() + ms(rng.below(span.as_millis() as u64 + 1))
            });
            let mut pick = rng.below(total.max(1));
            let mut op = 0;
            for (i, w) in weights.iter().enumerate() {
                if pick < u64::from(*w) {
                    op = i;
                    break;
                }
                pick -= u64::from(*w);
            }
            let a = format!("c{}", rng.below(COUNTERS));
            let b = format!("c{}", rng.below(COUNTERS));
            match op {
                0 => self.op_incr(index, db, &a, cancel_at).await,
                1 => {
                    seq += 1;
                    self.op_set_get(index, db, seq, cancel_at).await;
                }
                2 | 3 => {
                    self.op_pipeline(index, db, &a, &b, op == 3, cancel_at)
                        .await
                }
                4 => self.op_transaction(index, db, &a, &b, cancel_at).await,
                5 => {
                    let hold = ms(250 * rng.below(8));
                    self.op_hold(index, db, &a, hold, cancel_at).await;
                }
                _ => self.op_ping(index, db, cancel_at).await,
            }
            self.check_invariants(&format!("after an operation of task {index}"));
        }
    }

    fn db_name(&self, db: usize) -> &'static str {
        self.spec.dbs[db].name
    }

    async fn op_incr(&self, task: usize, db: usize, key: &str, cancel_at: Option<Instant>) {
        let epoch = self.redis.restarts();
        self.incr_started(db, key);
        let r = self
            .maybe_cancel(cancel_at, async {
                let mut c = self.keeper.get(self.db_name(db)).await?;
                let v: i64 = redis::cmd("INCR").arg(key).query_async(&mut c).await?;
                Ok(v)
            })
            .await;
        self.outcome(task, &format!("INCR {}/{key}", self.db_name(db)), &r);
        self.incr_finished(db, &[key], epoch, r.as_ref().ok().map(std::slice::from_ref));
    }

    async fn op_pipeline(
        &self,
        task: usize,
        db: usize,
        a: &str,
        b: &str,
        atomic: bool,
        cancel_at: Option<Instant>,
    ) {
        let epoch = self.redis.restarts();
        self.incr_started(db, a);
        self.incr_started(db, b);
        let r = self
            .maybe_cancel(cancel_at, async {
                let (x, y): (i64, i64) = self
                    .keeper
                    .pipeline(self.db_name(db), |p| {
                        if atomic {
                            p.atomic();
                        }
                        p.incr(a, 1).incr(b, 1);
                    })
                    .await?;
                Ok([x, y])
            })
            .await;
        let what = if atomic { "MULTI-PIPELINE" } else { "PIPELINE" };
        self.outcome(task, &format!("{what} {}/{a},{b}", self.db_name(db)), &r);
        self.incr_finished(db, &[a, b], epoch, r.as_ref().ok().map(|v| &v[..]));
    }

    async fn op_transaction(
        &self,
        task: usize,
        db: usize,
        a: &str,
        b: &str,
        cancel_at: Option<Instant>,
    ) {
        let epoch = self.redis.restarts();
        self.incr_started(db, a);
        self.incr_started(db, b);
        let r = self
            .maybe_cancel(cancel_at, async {
                let mut c = self.keeper.get_exclusive(self.db_name(db)).await?;
                let () = redis::cmd("MULTI").query_async(&mut c).await?;
                let () = redis::cmd("INCR").arg(a).query_async(&mut c).await?;
                let () = redis::cmd("INCR").arg(b).query_async(&mut c).await?;
                let (x, y): (i64, i64) = redis::cmd("EXEC").query_async(&mut c).await?;
                Ok([x, y])
            })
            .await;
        self.outcome(
            task,
            &format!("MULTI/EXEC {}/{a},{b}", self.db_name(db)),
            &r,
        );
        self.incr_finished(db, &[a, b], epoch, r.as_ref().ok().map(|v| &v[..]));
    }

    async fn op_hold(
        &self,
        task: usize,
        db: usize,
        key: &str,
        hold: Duration,
        cancel_at: Option<Instant>,
    ) {
        let epoch = self.redis.restarts();
        self.incr_started(db, key);
        let r = self
            .maybe_cancel(cancel_at, async {
                let mut c = self.keeper.get_exclusive(self.db_name(db)).await?;
                let v: i64 = redis::cmd("INCR").arg(key).query_async(&mut c).await?;
                Ok((c, v))
            })
            .await;
        let (conn, r) = match r {
            Ok((c, v)) => (Some(c), Ok(v)),
            Err(e) => (None, Err(e)),
        };
        self.outcome(
            task,
            &format!("EXCLUSIVE INCR {}/{key}", self.db_name(db)),
            &r,
        );
        self.incr_finished(db, &[key], epoch, r.as_ref().ok().map(std::slice::from_ref));
        if let Some(conn) = conn {
            self.clock.sleep_until(self.clock.now() + hold).await;
            drop(conn);
        }
    }

    async fn op_ping(&self, task: usize, db: usize, cancel_at: Option<Instant>) {
        let r = self
            .maybe_cancel(cancel_at, async {
                let mut c = self.keeper.get(self.db_name(db)).await?;
                let v: String = redis::cmd("PING").query_async(&mut c).await?;
                Ok(v)
            })
            .await;
        if let Ok(v) = &r {
            if v != "PONG" {
                self.violation(format!("PING answered {v:?}"));
            }
        }
        self.outcome(task, &format!("PING {}", self.db_name(db)), &r);
    }

    async fn op_set_get(&self, task: usize, db: usize, seq: i64, cancel_at: Option<Instant>) {
        let key = format!("r{task}");
        let name = self.db_name(db);
        let epoch = self.redis.restarts();
        self.model()
            .registers
            .entry((db, key.clone()))
            .or_default()
            .attempted
            .push(seq);
        let r = self
            .maybe_cancel(cancel_at, async {
                let mut c = self.keeper.get(name).await?;
                let () = redis::cmd("SET")
                    .arg(&key)
                    .arg(seq)
                    .query_async(&mut c)
                    .await?;
                Ok(())
            })
            .await;
        self.outcome(task, &format!("SET {name}/{key} {seq}"), &r);
        {
            let mut m = self.model();
            let reg = m.registers.entry((db, key.clone())).or_default();
            match r {
                Ok(()) => reg.last_ack = Some((seq, epoch)),
                Err(_) => reg.unknown = true,
            }
        }
        let epoch = self.redis.restarts();
        let r = async {
            let mut c = self.keeper.get(name).await?;
            let v: Option<i64> = redis::cmd("GET").arg(&key).query_async(&mut c).await?;
            Ok(v)
        }
        .await;
        self.outcome(task, &format!("GET {name}/{key}"), &r);
        let Ok(v) = r else { return };
        let same_epoch = self.redis.restarts() == epoch;
        let problem = {
            let m = self.model();
            let reg = &m.registers[&(db, key.clone())];
            match v {
                Some(v) if !reg.attempted.contains(&v) => {
                    Some(format!("GET {name}/{key} read {v}, never written"))
                }
                _ if !same_epoch || reg.unknown => None,
                got => match reg.last_ack {
                    Some((want, at)) if at == epoch && got != Some(want) => Some(format!(
                        "GET {name}/{key} read {got:?} after SET {want} was acknowledged"
                    )),
                    _ => None,
                },
            }
        };
        if let Some(p) = problem {
            self.violation(p);
        }
    }

    /// Phase two for one database: a command gets through and health is Healthy within the bound.
    async fn heal_db(&self, db: usize) {
        let spec = &self.spec.dbs[db];
        let name = spec.name;
        let started = self.clock.now();
        let deadline = started + spec.heal_bound();
        let mut served = false;
        while self.clock.now() < deadline {
            let r = timeout_at(&self.clock, deadline, async {
                let mut c = self.keeper.get(name).await?;
                let v: String = redis::cmd("PING").query_async(&mut c).await?;
                Ok::<_, Failure>(v)
            })
            .await;
            match r {
                Ok(Ok(_)) => {
                    served = true;
                    break;
                }
                Ok(Err(e)) => self.record(format_args!("heal {name}: {e}")),
                Err(_) => break,
            }
            self.clock.sleep_until(self.clock.now() + ms(250)).await;
        }
        let took = self.clock.now().saturating_duration_since(started);
        if !served {
            self.violation(format!(
                "after the heal, {name} served no command within {:?}",
                spec.heal_bound()
            ));
            return;
        }
        self.record(format_args!("heal {name}: served after {took:?}"));
        // Health follows within the same bound (a health check runs on request).
        let mut healthy = false;
        while self.clock.now() < deadline + spec.heal_bound() {
            let report = self.keeper.health().await;
            if report.databases.get(name) == Some(&HealthState::Healthy) {
                healthy = true;
                break;
            }
            self.clock.sleep_until(self.clock.now() + ms(250)).await;
        }
        if !healthy {
            let report = self.keeper.health().await;
            self.violation(format!(
                "after the heal, {name} served commands but stayed {:?}",
                report.databases.get(name)
            ));
        }
    }

    /// Reads every counter after the heal and checks it against the model.
    async fn check_counters(&self) {
        let epoch = self.redis.restarts();
        let keys: Vec<(usize, String)> = self.model().counters.keys().cloned().collect();
        for (db, key) in keys {
            let name = self.db_name(db);
            let r = async {
                let mut c = self.keeper.get(name).await?;
                let v: Option<i64> = redis::cmd("GET").arg(&key).query_async(&mut c).await?;
                Ok::<_, Failure>(v)
            }
            .await;
            let v = match r {
                Ok(v) => v.unwrap_or(0),
                Err(e) => {
                    self.violation(format!("final GET {name}/{key} failed after the heal: {e}"));
                    continue;
                }
            };
            if self.redis.restarts() != epoch {
                self.violation("the server restarted after the heal".into());
                return;
            }
            let (low, high) = {
                let m = self.model();
                let ops = &m.counters[&(db, key.clone())].1;
                // Applied in the last epoch for sure: acknowledged and sent after the last restart.
                let low = ops
                    .iter()
                    .filter(|o| o.acked && o.start_epoch == epoch)
                    .count() as i64;
                // Possibly applied in the last epoch: anything that ended in it.
                let high = ops.iter().filter(|o| o.end_epoch == epoch).count() as i64;
                (low, high)
            };
            self.record(format_args!(
                "counter {name}/{key} = {v} (model {low}..={high})"
            ));
            if v < low {
                self.violation(format!(
                    "counter {name}/{key} = {v}: {low} acknowledged INCRs since the last restart, \
                     an acknowledged write was lost"
                ));
            }
            if v > high {
                self.violation(format!(
                    "counter {name}/{key} = {v}: at most {high} INCRs could have been applied, a \
                     write was applied twice"
                ));
            }
        }
    }

    fn rare(&self) -> Rare {
        let stats = self.keeper.stats();
        let mut rare = Rare {
            restarts: self.redis.restarts(),
            cancelled: self.model().cancelled,
            ..Rare::default()
        };
        for db in &self.spec.dbs {
            if let Some(s) = stats.databases.get(db.name) {
                rare.breaker_trips += s.breaker_trips;
                rare.breaker_reopens += s.breaker_reopens;
                rare.readiness_timeouts += s.readiness_timeouts;
                rare.sweep_races += s.pool.sweep_races;
                rare.stale_closed += s.pool.stale_closed;
                rare.pool_timeouts += s.pool.timeouts;
                rare.resubscriptions += s.resubscriptions;
            }
        }
        rare
    }
}

/// Runs one swarm: phase one with faults, phase two healed, then the final checks. `keep_lines`
/// keeps the trace lines (for printing a failing seed); the hash is always computed.
///
/// Panics only where the simulator itself does (deadlock or runaway, with the seed).
pub fn run(spec: &SwarmSpec, keep_lines: bool) -> Result<SwarmReport, SwarmFailure> {
    let trace = if keep_lines {
        Trace::new()
    } else {
        Trace::hash_only()
    };
    let sim = Sim::with_trace(spec.seed, trace).with_max_polls(50_000_000);
    let redis = sim.redis();
    redis.set_faults(Faults {
        latency: spec.latency,
        ..Faults::default()
    });
    redis.set_plan(spec.plan.clone());
    let keeper = match sim
        .keeper_builder(spec.config(), Arc::new(redis.transport()))
        .build()
    {
        Ok(k) => k,
        Err(e) => {
            return Err(SwarmFailure {
                seed: spec.seed,
                violations: vec![format!("the drawn configuration was refused: {e}")],
                lines: Vec::new(),
            })
        }
    };
    let world = Arc::new(World {
        pubsub: Mutex::new(pubsub::PubSubModel::default()),
        keeper,
        redis,
        clock: sim.clock().clone(),
        trace: sim.trace().clone(),
        model: Mutex::new(Model::default()),
        spec: spec.clone(),
    });

    // Phase one: traffic under faults (and a subscriber that runs until the final check).
    if let Some(ps) = &spec.pubsub {
        let w = world.clone();
        let ps = ps.clone();
        crate::seams::Spawn::spawn(
            &sim.spawner(),
            Box::pin(async move { w.run_subscriber(ps).await }),
        );
    }
    sim.block_on(futures::future::join(
        join_all(
            spec.tasks
                .iter()
                .enumerate()
                .map(|(i, t)| world.run_task(i, t.clone())),
        ),
        async {
            if let Some(ps) = &spec.pubsub {
                world.run_publisher(ps.clone()).await;
            }
        },
    ));
    world.check_invariants("at the end of phase one");

    // Phase two: heal, recover within the bound, then check the counters.
    world.redis.heal();
    let healed_at = sim.clock().elapsed();
    sim.block_on(async {
        for db in 0..spec.dbs.len() {
            world.heal_db(db).await;
        }
        world.check_counters().await;
        if spec.pubsub.is_some() {
            world.check_pubsub().await;
        }
    });
    world.check_invariants("after the heal");
    let rare = world.rare();

    // Closing leaves nothing open on the server.
    sim.block_on(world.keeper.close());
    sim.run_for(Duration::from_secs(1));
    world.check_invariants("after close");
    let open = world.redis.connected_clients();
    if open != 0 {
        world.violation(format!("{open} connections still open after close"));
    }
    let ended_at = sim.clock().elapsed();

    let lines = sim.trace().lines();
    let m = world.model();
    if !m.violations.is_empty() {
        return Err(SwarmFailure {
            seed: spec.seed,
            violations: m.violations.clone(),
            lines,
        });
    }
    Ok(SwarmReport {
        seed: spec.seed,
        trace_hash: sim.trace().hash(),
        lines,
        ops: m.ops,
        ok: m.ok,
        failed: m.failed,
        healed_at,
        ended_at,
        rare,
    })
}
