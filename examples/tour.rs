//! The tour: `cargo run --example tour`.
//!
//! A narrated run of a [`Keeper`] on the embedded simulator (virtual time, an in-memory Redis, one
//! seed), in six acts: the databases loaded from `examples/redis-databases.yaml`, traffic from
//! many tasks, a 40-second `LOADING` ridden out, a circuit breaker trip and recovery, an idle
//! sweep, and the final statistics. Every number printed comes from the run.
//!
//! - `SIM_SEED=7 cargo run --example tour` replays another seed (default [`DEFAULT_SEED`]); the
//!   same seed gives the same trace hash.
//! - `REDIS_URL=redis://127.0.0.1:6379 cargo run --example tour` runs the acts that need no fault
//!   injection (1, 2 and 6) against that server instead, on tokio. Loopback servers only; the
//!   tour's keys are deleted afterwards.
//!
//! `tests/tour_smoke.rs` includes this file as a module and checks [`run_sim`]'s [`Summary`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Display;
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use redis::AsyncCommands;
use redis_keeper::config::ResolvedConfig;
use redis_keeper::seams::{Clock, SystemClock};
use redis_keeper::sim::{Latency, Sim, SimRedis, Trace};
use redis_keeper::{Error, Keeper, KeeperConfig};

/// The seed used when `SIM_SEED` is not set.
pub const DEFAULT_SEED: u64 = 42;

/// The sample configuration, found wherever the example is run from.
pub const CONFIG_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/redis-databases.yaml");

/// Any error of the tour itself (Keeper errors, redis-rs errors, wrong answers).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Concurrent tasks in act 2, spread round-robin over [`TRAFFIC`].
const TASKS: usize = 32;
/// Rounds per task in act 2: each is INCR + SET + GET, every fifth also a pipeline.
const ROUNDS: u32 = 20;
/// The databases act 2 drives.
const TRAFFIC: [&str; 4] = ["main", "knowledge", "cache", "audit"];
/// Increments of the shared counter per task: one per round, one per pipeline, two transactions.
const INCREMENTS_PER_TASK: i64 = ROUNDS as i64 + ROUNDS as i64 / 5 + 2;
/// How long the simulated server loads its dataset in act 3.
const LOADING_FOR: Duration = Duration::from_secs(40);
/// Tasks that hit the server while it loads, in act 3.
const LOADING_TASKS: usize = 8;

fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_default();
    if !url.trim().is_empty() {
        std::process::exit(run_real(url.trim()));
    }
    let seed = match std::env::var("SIM_SEED") {
        Err(_) => DEFAULT_SEED,
        Ok(text) => match parse_seed(&text) {
            Some(seed) => seed,
            None => {
                eprintln!("tour: SIM_SEED must be an integer (decimal or 0x…), got `{text}`");
                std::process::exit(2);
            }
        },
    };
    let summary = run_sim(seed, true);
    if let Err(why) = summary.check() {
        eprintln!("tour: the run did not go as narrated: {why}");
        std::process::exit(1);
    }
}

/// Parses a seed: decimal, or hexadecimal with `0x`.
pub fn parse_seed(text: &str) -> Option<u64> {
    let text = text.trim().replace('_', "");
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

// ---------------------------------------------------------------------------------------------
// Narration

/// Prints (or only collects) the tour's lines, stamped with time since the start of the run:
/// virtual time on the simulator, wall time against a real server.
struct Narrator {
    clock: Arc<dyn Clock>,
    start: Instant,
    echo: bool,
    lines: Mutex<Vec<String>>,
}

impl Narrator {
    fn new(clock: Arc<dyn Clock>, echo: bool) -> Self {
        let start = clock.now();
        Self {
            clock,
            start,
            echo,
            lines: Mutex::new(Vec::new()),
        }
    }

    fn elapsed(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.start)
    }

    fn emit(&self, line: String) {
        if self.echo {
            println!("{line}");
        }
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }

    /// A heading.
    fn act(&self, number: u32, title: &str) {
        self.emit(String::new());
        self.emit(format!("== Act {number}: {title} =="));
    }

    /// A line stamped with the time, e.g. `[  40.000s] …`.
    fn say(&self, text: impl Display) {
        self.emit(format!("[{:8.3}s] {text}", self.elapsed().as_secs_f64()));
    }

    /// A continuation line, aligned under the text of [`Narrator::say`].
    fn more(&self, text: impl Display) {
        self.emit(format!("            {text}"));
    }

    fn into_lines(self) -> Vec<String> {
        self.lines.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------------
// The simulated run

/// What a simulated run did, for `main`'s exit code and `tests/tour_smoke.rs`.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The seed of the run.
    pub seed: u64,
    /// The simulator's trace hash: same seed, same hash.
    pub trace_hash: u64,
    /// Events in the trace.
    pub trace_events: u64,
    /// The narration, one entry per printed line.
    pub lines: Vec<String>,
    /// Act 2: every counter matched server-side and the alias read the same keyspace.
    pub counters_match: bool,
    /// Act 2: operations the tasks completed (commands and pipelines).
    pub traffic_ops: u64,
    /// Act 3: `LOADING` episodes of `main`.
    pub loading_episodes: u64,
    /// Act 3: how long the commands sent during `LOADING` waited (virtual time).
    pub loading_waited: Duration,
    /// Act 3: readiness probes (PINGs) seen on `main`'s connections during the episode.
    pub loading_probes: usize,
    /// Act 3: the counter the loading-time INCRs wrote (each applied exactly once: 8).
    pub loading_counter: i64,
    /// Act 4: breaker trips of `rate-limits`.
    pub breaker_trips: u64,
    /// Act 4: a call while open failed at once with `CircuitOpen`.
    pub breaker_rejected: bool,
    /// Act 4: the breaker closed after the half-open probe (the database is healthy again).
    pub breaker_closed: bool,
    /// Act 5: idle connections of `sessions` the sweep closed.
    pub sweep_closed: u64,
    /// Virtual time the whole run took.
    pub virtual_elapsed: Duration,
    /// Real time the whole run took.
    pub real_elapsed: Duration,
}

impl Summary {
    /// Whether the run went as the narration says; the first problem otherwise.
    pub fn check(&self) -> Result<(), String> {
        let problems = [
            (!self.counters_match, "a counter did not match server-side"),
            (
                self.traffic_ops != (TASKS as u64) * (3 * ROUNDS as u64 + ROUNDS as u64 / 5 + 2),
                "not every traffic operation completed",
            ),
            (
                self.loading_episodes != 1,
                "main did not see one LOADING episode",
            ),
            (
                self.loading_waited < LOADING_FOR,
                "commands finished before LOADING ended",
            ),
            (self.loading_probes < 2, "no readiness probes were seen"),
            (
                self.loading_counter != LOADING_TASKS as i64,
                "the INCRs sent during LOADING were not applied exactly once",
            ),
            (
                self.breaker_trips != 1,
                "the breaker did not trip exactly once",
            ),
            (!self.breaker_rejected, "no call was rejected while open"),
            (!self.breaker_closed, "the breaker did not close again"),
            (self.sweep_closed < 1, "the idle sweep closed nothing"),
        ];
        match problems.iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err(format!("{why} (seed {})", self.seed)),
            None => Ok(()),
        }
    }
}

/// The simulator's trace events at or after `since_ms` (virtual milliseconds), each as
/// (ms, event): `+12.345ms #3 PING` → (12.345, "#3 PING"). Lines are stamped to the microsecond.
fn trace_events(trace: &Trace, since_ms: f64) -> Vec<(f64, String)> {
    let since_ms = since_ms - 0.001;
    trace
        .lines()
        .into_iter()
        .filter_map(|line| {
            let (ms, event) = line.strip_prefix('+')?.split_once("ms ")?;
            let ms: f64 = ms.parse().ok()?;
            (ms >= since_ms).then(|| (ms, event.to_string()))
        })
        .collect()
}

fn elapsed_ms(sim: &Sim) -> f64 {
    sim.clock().elapsed().as_secs_f64() * 1000.0
}

/// Runs the whole tour on the simulator from `seed`, printing it when `echo` is set.
pub fn run_sim(seed: u64, echo: bool) -> Summary {
    let real_start = Instant::now();
    let sim = Sim::new(seed);
    let redis = sim.redis();
    // Replies take 0.2–2 ms (seeded), so the tasks interleave differently for every seed.
    redis.set_latency(Latency::Uniform {
        min: Duration::from_micros(200),
        max: Duration::from_millis(2),
    });
    let n = Narrator::new(Arc::new(sim.clock().clone()), echo);
    n.emit(format!(
        "redis-keeper tour: a Keeper on the embedded simulated Redis, in virtual time (seed {seed})"
    ));

    // Act 1: configuration.
    let config = KeeperConfig::from_yaml_file(CONFIG_PATH).expect("examples/redis-databases.yaml");
    let keeper = sim
        .keeper_builder(config.clone(), Arc::new(redis.transport()))
        .build()
        .expect("the sample configuration is valid");
    let resolved = act_config(&n, &config, &keeper).expect("the sample configuration is valid");
    n.more(format!(
        "(simulated: every connection reaches the in-memory SimRedis; it has accepted {} so far)",
        redis.connections_accepted()
    ));

    // Act 2: traffic.
    n.act(2, "traffic from many tasks");
    let prefix = "tour:";
    let report = sim
        .block_on(act_traffic(&n, &keeper, prefix))
        .expect("traffic on a healthy server");
    let hits_key = format!("{prefix}hits");
    let server_side: Vec<Option<i64>> = report
        .iter()
        .map(|t| read_i64(redis.get(usize::from(t.db), hits_key.as_bytes())))
        .collect();
    let alias = sim
        .block_on(read_counter(&keeper, "legacy-audit", &hits_key))
        .expect("read through the alias");
    let counters_match = report_counters(
        &n,
        &keeper,
        &report,
        &server_side,
        alias,
        "server-side (SimRedis::get)",
    );
    let traffic_ops = report.iter().map(|t| t.ops).sum();

    // Act 3: LOADING.
    n.act(3, "a 40 s LOADING ridden out");
    let loading = act_loading(&n, &sim, &redis, &keeper);

    // Act 4: breaker.
    n.act(4, "circuit breaker: trip and recovery");
    let breaker = act_breaker(&n, &sim, &redis, &keeper);

    // Act 5: idle sweep.
    n.act(5, "idle sweep");
    let sweep_closed = act_sweep(&n, &sim, &redis, &keeper, &resolved);

    // Act 6: statistics.
    n.act(6, "final statistics");
    act_stats(&n, &keeper);
    sim.block_on(keeper.close());
    let trace = sim.trace();
    let real_elapsed = real_start.elapsed();
    n.say(format!(
        "seed {seed} · trace {} events, hash {:#018x} · {} virtual in {} real",
        trace.len(),
        trace.hash(),
        secs(sim.clock().elapsed()),
        millis(real_elapsed),
    ));
    n.more(format!(
        "replay: SIM_SEED={seed} cargo run --example tour  (same seed, same trace hash)"
    ));

    Summary {
        seed,
        trace_hash: trace.hash(),
        trace_events: trace.len(),
        counters_match,
        traffic_ops,
        loading_episodes: loading.episodes,
        loading_waited: loading.waited,
        loading_probes: loading.probes,
        loading_counter: loading.counter,
        breaker_trips: breaker.trips,
        breaker_rejected: breaker.rejected,
        breaker_closed: breaker.closed,
        sweep_closed,
        virtual_elapsed: sim.clock().elapsed(),
        real_elapsed,
        lines: n.into_lines(),
    }
}

/// A Keeper error, briefly: its variant and the fields the tour talks about.
fn describe(err: Option<&Error>) -> String {
    match err {
        None => "Ok".to_string(),
        Some(Error::CircuitOpen { retry_after, .. }) => {
            format!("Error::CircuitOpen, retry_after {}", secs(*retry_after))
        }
        Some(Error::Connect {
            attempts, source, ..
        }) => format!("Error::Connect after {attempts} attempts ({source})"),
        Some(other) => other.to_string(),
    }
}

fn read_i64(bytes: Option<Vec<u8>>) -> Option<i64> {
    std::str::from_utf8(&bytes?).ok()?.parse().ok()
}

async fn read_counter(keeper: &Keeper, db: &str, key: &str) -> Result<Option<i64>, BoxError> {
    let mut conn = keeper.get(db).await?;
    Ok(conn.get(key).await?)
}

// ---------------------------------------------------------------------------------------------
// Act 1: configuration

fn act_config(
    n: &Narrator,
    config: &KeeperConfig,
    keeper: &Keeper,
) -> Result<ResolvedConfig, Error> {
    n.act(1, "configuration");
    let resolved = config.resolve(None, &HashMap::<String, String>::new())?;
    let source = config
        .source()
        .map(|s| {
            s.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(s)
                .trim_start_matches('/')
        })
        .unwrap_or("built-in defaults");
    let all: Vec<_> = resolved.databases().collect();
    let main = resolved.require("main")?;
    n.say(format!(
        "KeeperConfig::from_yaml_file(\"{source}\"): {} databases on {}, log level {}",
        all.len(),
        main.endpoint,
        resolved.log_level,
    ));
    let mut listed: Vec<_> = all.iter().filter(|d| d.description.is_some()).collect();
    listed.sort_by_key(|d| (d.db, d.name.clone()));
    n.more(format!(
        "{:<13} {:>2} {:>4} {:>6}  description",
        "name", "db", "max", "shared"
    ));
    for d in &listed {
        n.more(format!(
            "{:<13} {:>2} {:>4} {:>6}  {}",
            d.name,
            d.db,
            d.max_connections,
            d.shared_connections,
            d.description.as_deref().unwrap_or("")
        ));
    }
    let mut rest: Vec<_> = all.iter().filter(|d| d.description.is_none()).collect();
    rest.sort_by_key(|d| d.db);
    let rest_max: BTreeSet<u32> = rest.iter().map(|d| d.max_connections).collect();
    n.more(format!(
        "+ {} canonical databases not in the file, at the top-level defaults (max {}):",
        rest.len(),
        rest_max
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("/"),
    ));
    n.more(format!(
        "  {}",
        rest.iter()
            .map(|d| format!("{} {}", d.name, d.db))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let idle_exceptions: Vec<String> = all
        .iter()
        .filter(|d| d.idle.idle_timeout != main.idle.idle_timeout)
        .map(|d| format!("{} {} s", d.name, d.idle.idle_timeout.as_secs()))
        .collect();
    n.more(format!(
        "policies: retry {} attempts, waits {}–{} s · breaker opens on {} failures, for {} s",
        main.retry.attempts,
        main.retry.min.as_secs(),
        main.retry.max.as_secs(),
        main.breaker.failure_threshold,
        main.breaker.open_for.as_secs(),
    ));
    n.more(format!(
        "          LOADING probed every {} s, up to {} s · health check every {} s",
        main.readiness.loading_poll_interval.as_secs(),
        main.readiness.loading_timeout.as_secs(),
        main.health_check_interval.as_secs(),
    ));
    n.more(format!(
        "          idle connections stale after {} s{}, swept every {} s",
        main.idle.idle_timeout.as_secs(),
        if idle_exceptions.is_empty() {
            String::new()
        } else {
            format!(" ({})", idle_exceptions.join(", "))
        },
        main.idle.sweep_interval.as_secs(),
    ));
    n.say(format!(
        "Keeper built on runtime `{}`: {} databases, no connection opened yet",
        keeper.runtime_name(),
        keeper.names().count(),
    ));
    Ok(resolved)
}

// ---------------------------------------------------------------------------------------------
// Act 2: traffic

/// What act 2 did on one database.
struct DbTraffic {
    name: &'static str,
    db: u8,
    tasks: u32,
    /// Increments of the shared counter the tasks saw acknowledged.
    increments: i64,
    /// Operations (commands and pipelines) completed.
    ops: u64,
    /// Every key written (deleted again after a real-server run).
    keys: Vec<String>,
}

/// MULTI/EXEC (an atomic pipeline) incrementing `hits`, on a connection lent to this task alone.
async fn transaction(keeper: &Keeper, name: &str, hits: &str) -> Result<(), BoxError> {
    let mut tx = keeper.get_exclusive(name).await?;
    let (_,): (i64,) = redis::pipe()
        .atomic()
        .incr(hits, 1)
        .query_async(&mut tx)
        .await?;
    Ok(())
}

/// One task: a transaction on an exclusive connection, `ROUNDS` rounds of INCR/SET/GET on a
/// shared one (a pipeline every fifth round), then another transaction (which reuses an idle
/// exclusive connection: a pool hit). Returns the increments and operations it completed.
async fn traffic_task(
    keeper: Keeper,
    name: &'static str,
    prefix: String,
    task: usize,
) -> Result<(&'static str, i64, u64, String), BoxError> {
    let hits = format!("{prefix}hits");
    let pipelined = format!("{prefix}pipelined");
    let own = format!("{prefix}task:{task}");
    transaction(&keeper, name, &hits).await?;
    let (mut increments, mut ops) = (1i64, 1u64);
    let mut conn = keeper.get(name).await?;
    for round in 0..ROUNDS {
        let _: i64 = conn.incr(&hits, 1).await?;
        let _: () = conn.set(&own, round).await?;
        let back: u32 = conn.get(&own).await?;
        if back != round {
            return Err(format!("{name}: read {back} back, wrote {round}").into());
        }
        increments += 1;
        ops += 3;
        if round % 5 == 4 {
            let (_, _): (i64, i64) = keeper
                .pipeline(name, |p| {
                    p.incr(&hits, 1).incr(&pipelined, 1);
                })
                .await?;
            increments += 1;
            ops += 1;
        }
    }
    drop(conn);
    transaction(&keeper, name, &hits).await?;
    Ok((name, increments + 1, ops + 1, own))
}

async fn act_traffic(
    n: &Narrator,
    keeper: &Keeper,
    prefix: &str,
) -> Result<Vec<DbTraffic>, BoxError> {
    n.say(format!(
        "{TASKS} tasks on {}, each: MULTI/EXEC on an exclusive connection,",
        TRAFFIC.join(", ")
    ));
    n.more(format!(
        "{ROUNDS} × (INCR {prefix}hits, SET + GET of its own key) on a shared one with a pipeline"
    ));
    n.more("every 5th round, then MULTI/EXEC again");
    let started = Instant::now();
    let tasks = (0..TASKS).map(|i| {
        traffic_task(
            keeper.clone(),
            TRAFFIC[i % TRAFFIC.len()],
            prefix.to_string(),
            i,
        )
    });
    let results = join_all(tasks).await;
    let real = started.elapsed();
    let mut by_db: BTreeMap<&str, DbTraffic> = BTreeMap::new();
    for result in results {
        let (name, increments, ops, key) = result?;
        let entry = by_db.entry(name).or_insert_with(|| DbTraffic {
            name,
            db: keeper.stats().databases[name].db,
            tasks: 0,
            increments: 0,
            ops: 0,
            keys: vec![format!("{prefix}hits"), format!("{prefix}pipelined")],
        });
        entry.tasks += 1;
        entry.increments += increments;
        entry.ops += ops;
        entry.keys.push(key);
    }
    let stats = keeper.stats();
    let ops: u64 = by_db.values().map(|t| t.ops).sum();
    let max_latency = TRAFFIC
        .iter()
        .map(|name| stats.databases[*name].max_latency)
        .max()
        .unwrap_or_default();
    n.say(format!(
        "all {TASKS} tasks done: {ops} operations (keeper.stats(): {} ok, {} failed), max latency {}, {} real",
        stats.successful_operations,
        stats.failed_operations,
        millis(max_latency),
        millis(real),
    ));
    let mut report: Vec<DbTraffic> = by_db.into_values().collect();
    report.sort_by_key(|t| TRAFFIC.iter().position(|name| *name == t.name));
    Ok(report)
}

/// Prints act 2's counters against the server's and each database's connection use; whether
/// every counter matched.
fn report_counters(
    n: &Narrator,
    keeper: &Keeper,
    report: &[DbTraffic],
    server: &[Option<i64>],
    alias: Option<i64>,
    how: &str,
) -> bool {
    let stats = keeper.stats();
    n.more(format!("counters read back {how}, and each pool:"));
    let mut all_match = true;
    for (t, server) in report.iter().zip(server) {
        let expected = i64::from(t.tasks) * INCREMENTS_PER_TASK;
        let ok = *server == Some(expected) && t.increments == expected;
        all_match &= ok;
        let s = &stats.databases[t.name];
        n.more(format!(
            "{:<9} db {:>2}: hits = {:>4} ({} tasks × {INCREMENTS_PER_TASK}) {} · {} connections, {} checkouts hit idle, {} missed",
            t.name,
            t.db,
            server.map_or_else(|| "none".to_string(), |v| v.to_string()),
            t.tasks,
            if ok { "ok" } else { "MISMATCH" },
            s.connections_created,
            s.pool.hits,
            s.pool.misses,
        ));
    }
    let audit = report
        .iter()
        .zip(server)
        .find(|(t, _)| t.name == "audit")
        .and_then(|(_, v)| *v);
    let alias_ok = alias.is_some() && alias == audit;
    n.more(format!(
        "legacy-audit (alias, db 10): GET hits through it reads {} — {}",
        alias.map_or_else(|| "nothing".to_string(), |v| v.to_string()),
        if alias_ok {
            "the same keyspace as audit"
        } else {
            "NOT audit's value"
        }
    ));
    all_match && alias_ok
}

// ---------------------------------------------------------------------------------------------
// Act 3: LOADING

struct LoadingOutcome {
    episodes: u64,
    waited: Duration,
    probes: usize,
    counter: i64,
}

fn act_loading(n: &Narrator, sim: &Sim, redis: &SimRedis, keeper: &Keeper) -> LoadingOutcome {
    let clock = sim.clock().clone();
    let key = "tour:after-loading";
    let before = keeper.stats();
    let t0 = clock.now();
    let t0_ms = elapsed_ms(sim);
    redis.set_loading(LOADING_FOR);
    n.say(format!(
        "Redis starts loading its dataset: for {} it answers -LOADING (SimRedis::set_loading)",
        secs(LOADING_FOR)
    ));
    n.more(format!(
        "{LOADING_TASKS} tasks send INCR {key} to main meanwhile"
    ));
    let real = Instant::now();
    let tasks = (0..LOADING_TASKS).map(|_| {
        let (keeper, clock) = (keeper.clone(), clock.clone());
        async move {
            let mut conn = keeper.get("main").await?;
            let _: i64 = conn.incr(key, 1).await?;
            Ok::<_, Error>(clock.now())
        }
    });
    let results = sim.block_on(join_all(tasks));
    let real = real.elapsed();
    let done: Vec<Instant> = results.into_iter().filter_map(Result::ok).collect();
    let waited = done
        .iter()
        .max()
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(t0));

    // Main's connections are the ones that carried the INCRs; its probes are the PINGs on them.
    let events = trace_events(sim.trace(), t0_ms);
    let end_ms = t0_ms + waited.as_secs_f64() * 1000.0;
    let on = |event: &str, command: &str| -> Option<String> {
        let (id, name) = event.split_once(' ')?;
        (name == command).then(|| id.to_string())
    };
    // (redis-rs sends `incr` as INCRBY.)
    let main_conns: BTreeSet<String> = events
        .iter()
        .filter_map(|(_, e)| on(e, "INCRBY").or_else(|| on(e, "INCR")))
        .collect();
    let mut probes: Vec<f64> = events
        .iter()
        .filter(|(ms, e)| *ms <= end_ms && on(e, "PING").is_some_and(|id| main_conns.contains(&id)))
        .map(|(ms, _)| ((ms - t0_ms) / 1000.0).max(0.0))
        .collect();
    probes.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    let mut gaps: Vec<f64> = probes.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let period = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
    let after = keeper.stats();
    let (m0, m1) = (&before.databases["main"], &after.databases["main"]);
    let episodes = m1.loading_episodes - m0.loading_episodes;
    let counter = read_i64(redis.get(0, key.as_bytes())).unwrap_or(0);
    n.say(format!(
        "all {} INCRs answered {} after they were sent (virtual time), in {} real:",
        done.len(),
        secs(waited),
        millis(real),
    ));
    n.more("the first reply was -LOADING (nothing executed): main opened a LOADING episode and held its commands");
    if let (Some(first), Some(last)) = (probes.first(), probes.last()) {
        n.more(format!(
            "main's connections saw {} PINGs from +{first:.1} s to +{last:.1} s: a readiness probe every {period:.1} s",
            probes.len(),
        ));
        n.more("(one in flight at a time, spaced from the end of the previous one) and the health checks");
    }
    n.more("once a PING was answered, the held INCRs were sent again");
    let others: u64 = after
        .databases
        .iter()
        .filter(|(name, _)| name.as_str() != "main")
        .map(|(name, s)| s.loading_episodes - before.databases[name].loading_episodes)
        .sum();
    n.more(format!(
        "server-side {key} = {counter} (each INCR applied once) · main: {episodes} LOADING episode, {} breaker trips",
        m1.breaker_trips - m0.breaker_trips,
    ));
    n.more(format!(
        "(the other connected databases met LOADING through their health checks: {others} more episodes)"
    ));
    LoadingOutcome {
        episodes,
        waited,
        probes: probes.len(),
        counter,
    }
}

// ---------------------------------------------------------------------------------------------
// Act 4: circuit breaker

struct BreakerOutcome {
    trips: u64,
    rejected: bool,
    closed: bool,
}

fn act_breaker(n: &Narrator, sim: &Sim, redis: &SimRedis, keeper: &Keeper) -> BreakerOutcome {
    // One shared connection (see the YAML), so the background health check waits on the same
    // connection attempt instead of starting a second retry schedule.
    let db = "rate-limits";
    let clock = sim.clock().clone();
    let health = |keeper: &Keeper| {
        keeper.stats().databases[db]
            .health
            .map_or("unknown", |h| h.as_str())
    };
    redis.refuse(true);
    n.say("Redis refuses new connections (SimRedis::refuse); open connections keep working");
    n.more(format!(
        "{db} has no connection yet: get(\"{db}\") must open one"
    ));
    let t0 = clock.now();
    let t0_ms = elapsed_ms(sim);
    let first = sim.block_on(keeper.get(db)).err();
    let attempts: Vec<f64> = trace_events(sim.trace(), t0_ms)
        .into_iter()
        .filter(|(_, e)| e.starts_with("refuse ") && !e.starts_with("refuse true"))
        .map(|(ms, _)| (ms - t0_ms) / 1000.0)
        .collect();
    let waits: Vec<String> = attempts
        .windows(2)
        .map(|w| format!("{:.0}", w[1] - w[0]))
        .collect();
    let attempts: Vec<String> = attempts
        .iter()
        .map(|a| format!("+{:.0}", a.max(0.0)))
        .collect();
    let s = keeper.stats().databases[db].clone();
    n.say(format!(
        "get(\"{db}\") failed after {}: {}",
        secs(clock.now() - t0),
        describe(first.as_ref())
    ));
    n.more(format!(
        "attempts at {} s (waits {} s), {} refused, {} retries → breaker trips: {}, health: {}",
        attempts.join(", "),
        waits.join(", "),
        s.connections_failed,
        s.retries,
        s.breaker_trips,
        health(keeper),
    ));
    let main_still: Option<i64> = sim
        .block_on(read_counter(keeper, "main", "tour:after-loading"))
        .ok()
        .flatten();
    n.more(format!(
        "the breaker is per database: main still answers over its open connection (GET → {})",
        main_still.map_or_else(|| "nothing".to_string(), |v| v.to_string())
    ));

    let accepted = redis.connections_accepted();
    let second = sim.block_on(keeper.get(db)).err();
    let rejected = matches!(second, Some(Error::CircuitOpen { .. }));
    n.say(format!(
        "get(\"{db}\") again: {} — at once, no connection attempt",
        describe(second.as_ref())
    ));

    sim.block_on(clock.sleep_until(clock.now() + Duration::from_secs(20)));
    redis.refuse(false);
    let third = sim.block_on(keeper.get(db)).err();
    let retry_after = match &third {
        Some(Error::CircuitOpen { retry_after, .. }) => *retry_after,
        _ => Duration::ZERO,
    };
    n.say("Redis accepts connections again (refuse off)");
    n.more(format!(
        "but the breaker waits out its open period: get(\"{db}\") → {}",
        describe(third.as_ref())
    ));

    sim.block_on(clock.sleep_until(clock.now() + retry_after));
    let probe = sim.block_on(async {
        let mut conn = keeper.get(db).await?;
        let _: i64 = conn.incr("tour:requests", 1).await?;
        Ok::<_, Error>(())
    });
    let s = keeper.stats().databases[db].clone();
    let closed = probe.is_ok() && health(keeper) == "healthy";
    n.say(format!(
        "open period over: half-open, one probe ({} new connection) {} → breaker {}, health: {}",
        redis.connections_accepted() - accepted,
        if probe.is_ok() { "succeeded" } else { "failed" },
        if closed { "closed" } else { "not closed" },
        health(keeper),
    ));
    n.more(format!(
        "{db}: {} trip, {} calls rejected while open (incl. background health checks)",
        s.breaker_trips, s.rejected_while_open,
    ));
    BreakerOutcome {
        trips: s.breaker_trips,
        rejected,
        closed,
    }
}

// ---------------------------------------------------------------------------------------------
// Act 5: idle sweep

fn act_sweep(
    n: &Narrator,
    sim: &Sim,
    redis: &SimRedis,
    keeper: &Keeper,
    resolved: &ResolvedConfig,
) -> u64 {
    let db = "sessions";
    let clock = sim.clock().clone();
    let idle = &resolved.database(db).expect("sessions is configured").idle;
    let pool = |keeper: &Keeper| keeper.pool_stats(db).expect("configured");
    sim.block_on(async {
        // A shared connection first, so the health checks use it and never borrow an idle one.
        let mut shared = keeper.get(db).await?;
        let _: () = shared.set("tour:sessions:shared", 1).await?;
        let mut held = Vec::new();
        for i in 0..4 {
            let mut conn = keeper.get_exclusive(db).await?;
            let _: () = conn.set(format!("tour:session:{i}"), i).await?;
            held.push(conn);
        }
        Ok::<_, Error>(())
    })
    .expect("sessions on a healthy server");
    let p0 = pool(keeper);
    let clients0 = redis.connected_clients();
    n.say(format!(
        "{db}: 4 exclusive connections used at once and returned → pool idle {}, in use {}, shared {}",
        p0.idle, p0.in_use, p0.shared,
    ));
    n.more(format!(
        "{db} policy: idle longer than {} s is stale; a sweep runs every {} s",
        idle.idle_timeout.as_secs(),
        idle.sweep_interval.as_secs(),
    ));
    sim.block_on(clock.sleep_until(clock.now() + idle.idle_timeout));
    let p1 = pool(keeper);
    n.say(format!(
        "{} later: {} sweeps ran since, idle still {} (not idle *longer* than {} s yet)",
        secs(idle.idle_timeout),
        p1.sweeps - p0.sweeps,
        p1.idle,
        idle.idle_timeout.as_secs(),
    ));
    // Step through virtual time until the next sweep closes them.
    let step = Duration::from_secs(1);
    let mut p2 = p1;
    for _ in 0..=idle.sweep_interval.as_secs() {
        sim.block_on(clock.sleep_until(clock.now() + step));
        p2 = pool(keeper);
        if p2.stale_closed > p1.stale_closed {
            break;
        }
    }
    let closed = p2.stale_closed - p0.stale_closed;
    let swept_at = n
        .elapsed()
        .saturating_sub(p2.since_last_sweep.unwrap_or_default());
    n.say(format!(
        "the sweep at {} closed {closed} stale connections: idle {} → {}, shared {} kept; server clients {} → {}",
        secs(swept_at),
        p0.idle,
        p2.idle,
        p2.shared,
        clients0,
        redis.connected_clients(),
    ));
    closed
}

// ---------------------------------------------------------------------------------------------
// Act 6: statistics

fn act_stats(n: &Narrator, keeper: &Keeper) {
    let stats = keeper.stats();
    let mut used: Vec<_> = stats
        .databases
        .values()
        .filter(|s| {
            s.successful_operations
                + s.failed_operations
                + s.connections_created
                + s.connections_failed
                > 0
        })
        .collect();
    used.sort_by_key(|s| (s.db, s.name.clone()));
    n.say(format!(
        "keeper.stats(), per database used ({} others never opened a connection):",
        stats.databases.len() - used.len()
    ));
    n.emit(format!(
        "  {:<13} {:>2} {:>6} {:>5} {:>7} {:>6} {:>6} {:>5} {:>5} {:>6} {:>6}",
        "database", "db", "ok", "fail", "rate", "conns", "trips", "load", "hits", "misses", "swept"
    ));
    for s in &used {
        n.emit(format!(
            "  {:<13} {:>2} {:>6} {:>5} {:>6.1}% {:>6} {:>6} {:>5} {:>5} {:>6} {:>6}",
            s.name,
            s.db,
            s.successful_operations,
            s.failed_operations,
            s.success_rate(),
            s.connections_created,
            s.breaker_trips,
            s.loading_episodes,
            s.pool.hits,
            s.pool.misses,
            s.pool.stale_closed,
        ));
    }
    n.emit(format!(
        "  {:<13} {:>2} {:>6} {:>5} {:>6.1}% {:>6} {:>6} {:>5} {:>5} {:>6} {:>6}",
        "total",
        "",
        stats.successful_operations,
        stats.failed_operations,
        stats.success_rate(),
        stats
            .databases
            .values()
            .map(|s| s.connections_created)
            .sum::<u64>(),
        stats
            .databases
            .values()
            .map(|s| s.breaker_trips)
            .sum::<u64>(),
        stats
            .databases
            .values()
            .map(|s| s.loading_episodes)
            .sum::<u64>(),
        stats.pool_hits,
        stats.pool_misses,
        stats
            .databases
            .values()
            .map(|s| s.pool.stale_closed)
            .sum::<u64>(),
    ));
    n.say(format!(
        "manager: {} operations, {:.1}% ok · {} databases: {} healthy, {} degraded, {} failed · uptime {}",
        stats.total_operations,
        stats.success_rate(),
        stats.total_databases,
        stats.healthy_databases,
        stats.degraded_databases,
        stats.failed_databases,
        secs(stats.uptime),
    ));
}

// ---------------------------------------------------------------------------------------------
// Against a real server (REDIS_URL)

/// The parts of a `redis://` URL the tour uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or address (brackets removed from IPv6).
    pub host: String,
    /// Port (default 6379).
    pub port: u16,
    /// The db number for `main`, from the path (`/3`).
    pub db: Option<u8>,
    /// ACL user name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
}

impl RedisUrl {
    /// `host:port`, with brackets around an IPv6 address.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `redis://[[user]:password@]host[:port][/db]`, minimally (no percent-decoding, no
/// TLS or Unix sockets), and only for loopback hosts: 127.0.0.0/8, ::1 or `localhost`.
pub fn parse_redis_url(url: &str) -> Result<RedisUrl, String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| format!("REDIS_URL must look like redis://127.0.0.1:6379 (got `{url}`)"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (nonempty(user), nonempty(password)),
            None => (nonempty(info), None),
        },
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unclosed `[` in REDIS_URL host `{hostport}`"))?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => 6379,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port `{p}` in REDIS_URL"))?,
    };
    let db = match path.trim_end_matches('/') {
        "" => None,
        p => Some(
            p.parse::<u8>()
                .ok()
                .filter(|db| *db <= 15)
                .ok_or_else(|| format!("invalid db `{p}` in REDIS_URL: expected 0..=15"))?,
        ),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "refusing REDIS_URL host `{host}`: the tour writes (and then deletes) keys, so it only \
             talks to a server on this machine (127.0.0.0/8, ::1 or localhost)"
        ));
    }
    Ok(RedisUrl {
        host: host.to_string(),
        port,
        db,
        username,
        password,
    })
}

/// Acts 1, 2 and 6 against the server at `url`; the process exit code.
fn run_real(url: &str) -> i32 {
    let target = match parse_redis_url(url) {
        Ok(target) => target,
        Err(why) => {
            eprintln!("tour: {why}");
            return 2;
        }
    };
    // Fail in a second, not after the whole retry schedule, when nothing listens there.
    let reachable = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map(|addrs| {
            addrs
                .into_iter()
                .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
        })
        .unwrap_or(false);
    if !reachable {
        eprintln!(
            "tour: nothing accepts connections at {} (REDIS_URL); start redis-server there, or unset \
             REDIS_URL for the simulated tour",
            target.address()
        );
        return 1;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tour: cannot start a tokio runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(real_tour(&target)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tour: {e}");
            1
        }
    }
}

async fn real_tour(target: &RedisUrl) -> Result<(), BoxError> {
    let n = Narrator::new(Arc::new(SystemClock), true);
    n.emit(format!(
        "redis-keeper tour: a Keeper on the Redis server at {} (REDIS_URL), in real time",
        target.address()
    ));
    let mut config = KeeperConfig::from_yaml_file(CONFIG_PATH)?
        .host(target.host.clone())
        .port(target.port);
    if let Some(user) = &target.username {
        config = config.username(user.clone());
    }
    if let Some(password) = &target.password {
        config = config.password(password.clone());
    }
    if let Some(db) = target.db {
        config = config.database("main", db);
    }
    // Built inside the tokio runtime, so the Keeper detects and uses it.
    let keeper = Keeper::builder(config.clone())
        .env(HashMap::<String, String>::new())
        .build()?;
    act_config(&n, &config, &keeper)?;
    n.more("(REDIS_URL: host, port, credentials and main's db come from the URL, above the YAML)");

    n.act(2, "traffic from many tasks");
    // The process id keeps concurrent tours apart; the keys are deleted at the end.
    let prefix = format!("tour:{}:", std::process::id());
    let report = act_traffic(&n, &keeper, &prefix).await?;
    let hits_key = format!("{prefix}hits");
    let mut server = Vec::new();
    for t in &report {
        server.push(read_counter(&keeper, t.name, &hits_key).await?);
    }
    let alias = read_counter(&keeper, "legacy-audit", &hits_key).await?;
    let matched = report_counters(&n, &keeper, &report, &server, alias, "through a fresh GET");
    for t in &report {
        let mut conn = keeper.get(t.name).await?;
        let _: i64 = conn.del(&t.keys).await?;
    }
    n.more(format!("(the tour's keys, {prefix}*, were deleted again)"));

    for (act, title) in [
        (3, "a 40 s LOADING ridden out"),
        (4, "circuit breaker: trip and recovery"),
        (5, "idle sweep"),
    ] {
        n.act(act, title);
        n.say("skipped against a real server: it needs fault injection (run without REDIS_URL)");
    }

    n.act(6, "final statistics");
    act_stats(&n, &keeper);
    keeper.close().await;
    if matched {
        Ok(())
    } else {
        Err("a counter did not match what the tasks wrote".into())
    }
}
