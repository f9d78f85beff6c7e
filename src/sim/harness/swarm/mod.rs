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

mod failover;
mod ops;
mod pubsub;
mod report;
mod spec;

pub use report::{Rare, SwarmFailure, SwarmReport};
use spec::ms;
pub use spec::{DbSpec, FailoverSpec, Mix, PubSubSpec, SwarmSpec, TaskSpec};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::error::Error;
use crate::keeper::Keeper;
use crate::policy::HealthState;
use crate::seams::{timeout_at, Clock};
use crate::sim::doubles::{Faults, Sim, SimClock, Trace};
use crate::sim::server::SimRedis;

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
        | Error::MasterChanged { .. }
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
        // A Sentinel backend may serve several databases (the same counts): the largest.
        let sentinel = || stats.databases.values().filter_map(|s| s.sentinel.as_ref());
        rare.master_switches = sentinel().map(|t| t.switches).max().unwrap_or(0);
        rare.readonly_replies = sentinel().map(|t| t.readonly_replies).max().unwrap_or(0);
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
    let servers = spec
        .failovers
        .as_ref()
        .map(|_| failover::Servers::new(&sim, spec.latency));
    let (redis, transport) = match &servers {
        Some(servers) => (servers.first(), servers.transport()),
        None => {
            let redis = sim.redis();
            redis.set_faults(Faults {
                latency: spec.latency,
                ..Faults::default()
            });
            redis.set_plan(spec.plan.clone());
            let transport: Arc<dyn crate::seams::Transport> = Arc::new(redis.transport());
            (redis, transport)
        }
    };
    let config = match &servers {
        Some(_) => failover::Servers::configure(spec.config()),
        None => spec.config(),
    };
    let keeper = match sim.keeper_builder(config, transport).build() {
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
            if let (Some(servers), Some(f)) = (&servers, &spec.failovers) {
                world.run_failovers(servers, f).await;
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
    let open = servers.as_ref().map_or_else(
        || world.redis.connected_clients(),
        |s| s.connected_clients(),
    );
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
