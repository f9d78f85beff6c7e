//! `Keeper`: the manager. Names → databases, each with its pools, policies, stats and background
//! task; the async API (`get`, `get_exclusive`, `pipeline`, shortcuts, stats, health, close).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use futures::future::AbortHandle;
use serde::Serialize;

use crate::config::DatabaseSettings;
use crate::connection::PooledConnection;
use crate::database::{spawn_background, spawn_watcher, Database};
use crate::error::Error;
use crate::policy::HealthState;
use crate::pool::PoolStats;
use crate::stats::ManagerStats;

/// The manager of every named database. Cheap to clone (clones share everything).
///
/// ```no_run
/// # async fn demo() -> Result<(), redis_keeper::Error> {
/// use redis::AsyncCommands;
/// use redis_keeper::{Keeper, KeeperConfig, RedisDatabase};
/// let keeper = Keeper::new(KeeperConfig::discover()?)?;
/// let mut conn = keeper.get(RedisDatabase::Knowledge).await?;
/// let _: () = conn.set("embedding:1", "…").await?;
/// let results: (i64, i64) = keeper
///     .pipeline("main", |p| {
///         p.incr("hits", 1).incr("hits", 1);
///     })
///     .await?;
/// assert_eq!(results.1, results.0 + 1);
/// keeper.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Keeper {
    inner: Arc<Inner>,
}

struct Inner {
    databases: BTreeMap<String, Arc<Database>>,
    /// The same databases for lookup by name on every `get`: hashing a short name is cheaper
    /// than the string comparisons of an ordered search, and does not grow with the count.
    index: HashMap<Box<str>, Arc<Database>, BuildHasherDefault<NameHasher>>,
    runtime_name: &'static str,
    clock: Arc<dyn crate::seams::Clock>,
    started: Instant,
    /// The wall-clock time the Keeper was built (the metrics' start time).
    started_wall: SystemTime,
    closed: AtomicBool,
    tasks: Mutex<Vec<AbortHandle>>,
    blocker: Arc<dyn crate::seams::Block>,
}

/// FNV-1a over a database name: names are short, known at build time and not attacker-chosen
/// keys of an ever-growing map, so a DoS-resistant hash buys nothing here.
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Health of every database, from [`Keeper::health`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// Per database name.
    pub databases: BTreeMap<String, HealthState>,
}

impl HealthReport {
    /// Whether every database is Healthy.
    pub fn all_healthy(&self) -> bool {
        self.databases.values().all(|h| *h == HealthState::Healthy)
    }
}

impl Keeper {
    pub(crate) fn from_parts(
        databases: BTreeMap<String, Arc<Database>>,
        runtime: &crate::seams::Runtime,
        background: bool,
    ) -> Keeper {
        let tasks = if background {
            let mut tasks: Vec<AbortHandle> = databases
                .values()
                .map(|db| spawn_background(db.clone()))
                .collect();
            // One watcher per Sentinel master, however many databases it serves.
            let mut masters: Vec<Arc<_>> = Vec::new();
            for backend in databases.values().filter_map(|db| db.sentinel_backend()) {
                if !masters.iter().any(|m| Arc::ptr_eq(m, &backend)) {
                    masters.push(backend);
                }
            }
            tasks.extend(masters.into_iter().map(spawn_watcher));
            tasks
        } else {
            Vec::new()
        };
        Keeper {
            inner: Arc::new(Inner {
                index: databases
                    .iter()
                    .map(|(name, db)| (Box::from(name.as_str()), db.clone()))
                    .collect(),
                databases,
                runtime_name: runtime.name(),
                clock: runtime.clock().clone(),
                started: runtime.clock().now(),
                started_wall: SystemTime::now(),
                closed: AtomicBool::new(false),
                tasks: Mutex::new(tasks),
                blocker: runtime.blocker().clone(),
            }),
        }
    }

    pub(crate) fn database(&self, name: &str) -> Result<&Arc<Database>, Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.inner
            .index
            .get(name)
            .ok_or_else(|| Error::UnknownDatabase {
                name: name.to_string(),
                known: self.names().collect::<Vec<_>>().join(", "),
            })
    }

    /// The waiter the blocking API uses (the runtime's).
    pub(crate) fn blocker(&self) -> &Arc<dyn crate::seams::Block> {
        &self.inner.blocker
    }

    /// The configured database names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.databases.keys().map(String::as_str)
    }

    /// The runtime the Keeper runs on (`"tokio"`, `"smol"`, `"sim"`, …).
    pub fn runtime_name(&self) -> &'static str {
        self.inner.runtime_name
    }

    /// A share of one of the database's multiplexed connections: cheap, concurrent, the
    /// default. Fails at once with `CircuitOpen` while the breaker is open.
    pub async fn get(&self, db: impl AsRef<str>) -> Result<PooledConnection, Error> {
        let db = self.database(db.as_ref())?;
        db.ensure_admitted().map_err(|e| db.checkout_failed(e))?;
        #[cfg(feature = "cluster")]
        if db.cluster().is_some() {
            return Ok(PooledConnection::cluster(db.clone()));
        }
        // The common case, every slot ready: one load. Otherwise pick a slot in turn, filling an
        // empty or broken one (in the background when another slot can serve meanwhile).
        if !db.all_shared_ready() {
            db.shared_connection()
                .await
                .map_err(|e| db.checkout_failed(e))?;
        }
        Ok(PooledConnection::shared(db.clone()))
    }

    /// A connection lent to this caller alone, for WATCH/MULTI, blocking commands and anything
    /// that changes connection state. Waits up to the pool wait timeout (`PoolTimeout`).
    pub async fn get_exclusive(&self, db: impl AsRef<str>) -> Result<PooledConnection, Error> {
        let db = self.database(db.as_ref())?;
        db.refuse_on_cluster("an exclusive connection")?;
        // The common case without waiting or validating: a fresh idle connection.
        if let Some(lease) = db.try_checkout_ready() {
            return Ok(PooledConnection::exclusive(db.clone(), lease));
        }
        let lease = db
            .checkout_exclusive()
            .await
            .map_err(|e| db.checkout_failed(e))?;
        Ok(PooledConnection::exclusive(db.clone(), lease))
    }

    /// Builds a pipeline with `build`, runs it on a shared connection and returns its results
    /// (any `FromRedisValue`, e.g. a tuple). Call `p.atomic()` inside `build` for MULTI/EXEC.
    pub async fn pipeline<T, F>(&self, db: impl AsRef<str>, build: F) -> Result<T, Error>
    where
        T: redis::FromRedisValue,
        F: FnOnce(&mut redis::Pipeline),
    {
        let mut pipe = redis::pipe();
        build(&mut pipe);
        let mut conn = self.get(db).await?;
        Ok(pipe.query_async(&mut conn).await?)
    }

    /// A snapshot of every database's and pool's statistics.
    pub fn stats(&self) -> ManagerStats {
        let mut out = ManagerStats {
            start_time: Some(self.inner.started_wall),
            uptime: self
                .inner
                .clock
                .now()
                .saturating_duration_since(self.inner.started),
            ..ManagerStats::default()
        };
        for (name, db) in &self.inner.databases {
            let s = db.stats();
            out.total_databases += 1;
            match s.health {
                Some(HealthState::Healthy) => out.healthy_databases += 1,
                Some(HealthState::Degraded) => out.degraded_databases += 1,
                _ => out.failed_databases += 1,
            }
            out.successful_operations += s.successful_operations;
            out.failed_operations += s.failed_operations;
            out.pool_hits += s.pool.hits;
            out.pool_misses += s.pool.misses;
            out.live_handles += s.live_handles;
            out.databases.insert(name.clone(), s);
        }
        out.total_operations = out.successful_operations + out.failed_operations;
        out
    }

    /// The whole statistics snapshot as Prometheus text (exposition format 0.0.4), for a
    /// `/metrics` endpoint: series under `redis_keeper_`, labelled only by the configured
    /// database name (`db`) and closed sets (`result`, `kind`, `reason`, `state`), never a key
    /// or an address. The README's Observability section lists every series.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// use std::sync::Arc;
    /// use redis_keeper::{sim::Sim, KeeperConfig};
    /// let sim = Sim::new(1);
    /// let redis = sim.redis();
    /// let keeper = sim
    ///     .keeper_builder(KeeperConfig::default(), Arc::new(redis.transport()))
    ///     .build()
    ///     .unwrap();
    /// let text = keeper.metrics_text();
    /// assert!(text.contains("# TYPE redis_keeper_commands_total counter"));
    /// assert!(text.contains("redis_keeper_breaker_state{db=\"main\",state=\"closed\"} 1"));
    /// # }
    /// ```
    pub fn metrics_text(&self) -> String {
        crate::metrics::render(&self.stats())
    }

    /// Records the counters and gauges of [`Keeper::metrics_text`] into the `metrics` facade's
    /// installed recorder (`metrics-exporter-prometheus`, statsd, …), with the same names and
    /// labels: call it before each scrape or on a timer. The two histograms
    /// (`redis_keeper_command_duration_seconds`, `redis_keeper_pool_wait_seconds`) record
    /// every value as it happens. Install the recorder before building the Keeper: the
    /// histograms are registered with the recorder installed then.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// use std::sync::Arc;
    /// use redis_keeper::{sim::Sim, KeeperConfig};
    /// let sim = Sim::new(1);
    /// let redis = sim.redis();
    /// let keeper = sim
    ///     .keeper_builder(KeeperConfig::default(), Arc::new(redis.transport()))
    ///     .build()
    ///     .unwrap();
    /// keeper.record_metrics(); // into the no-op recorder: no recorder is installed here
    /// # }
    /// ```
    #[cfg(feature = "metrics")]
    pub fn record_metrics(&self) {
        crate::metrics::record(&self.stats());
    }

    /// The settings one database resolved to (its endpoint, db number, timeouts, …; `Debug`
    /// never shows the password).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// use std::sync::Arc;
    /// use redis_keeper::{sim::Sim, KeeperConfig};
    /// let sim = Sim::new(1);
    /// let redis = sim.redis();
    /// let keeper = sim
    ///     .keeper_builder(KeeperConfig::default().database("reports", 9), Arc::new(redis.transport()))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(keeper.settings("reports").unwrap().db, 9);
    /// assert!(keeper.settings("nope").is_err());
    /// # }
    /// ```
    pub fn settings(&self, db: impl AsRef<str>) -> Result<&DatabaseSettings, Error> {
        Ok(self.database(db.as_ref())?.settings())
    }

    /// One database's pool statistics.
    pub fn pool_stats(&self, db: impl AsRef<str>) -> Result<PoolStats, Error> {
        let db = self.database(db.as_ref())?;
        Ok(db.pool().stats(db.now()))
    }

    /// Runs a health check on every database now, all at once (PING through the pool; skipped
    /// while a breaker is open), each bounded by its connect plus response timeout, and reports
    /// each one's health.
    pub async fn health(&self) -> HealthReport {
        let closed = self.inner.closed.load(Ordering::Acquire);
        let checks = self.inner.databases.iter().map(|(name, db)| async move {
            if !closed {
                let limit = db.settings().connect_timeout + db.settings().response_timeout;
                let clock = &*self.inner.clock;
                let _ = crate::seams::timeout(clock, limit, db.health_check()).await;
            }
            (name.clone(), db.health())
        });
        HealthReport {
            databases: futures::future::join_all(checks)
                .await
                .into_iter()
                .collect(),
        }
    }

    /// Closes the Keeper: new calls and new commands on existing handles fail with
    /// `Error::Closed` from now on; commands already in flight may finish for up to the drain
    /// bound (the longest response timeout of the databases); then the background tasks stop
    /// and every connection closes, idle, shared and lent (an exclusive holder's next command
    /// fails with `Closed`). A blocking command in flight (`BLPOP … 0`) is not waited for: its
    /// connection is closed with the rest. Calling it again does nothing.
    ///
    /// ```no_run
    /// # async fn demo(keeper: redis_keeper::Keeper) {
    /// keeper.close().await;
    /// assert!(matches!(keeper.get("main").await, Err(redis_keeper::Error::Closed)));
    /// # }
    /// ```
    pub async fn close(&self) {
        if !self.begin_close() {
            return;
        }
        let clock = &*self.inner.clock;
        let drain = self
            .inner
            .databases
            .values()
            .map(|db| db.settings().response_timeout)
            .max()
            .unwrap_or_default();
        let deadline = clock.now() + drain;
        // Bounded: each round sleeps a tick closer to the drain deadline, or ends.
        loop {
            let now = clock.now();
            let busy = self
                .inner
                .databases
                .values()
                .any(|db| db.has_commands_in_flight());
            if !busy || now >= deadline {
                break;
            }
            clock.sleep_until(deadline.min(now + DRAIN_TICK)).await;
        }
        self.finish_close();
    }

    /// Closes at once, without draining (the blocking twin and `Drop`-time paths).
    pub(crate) fn close_now(&self) {
        if self.begin_close() {
            self.finish_close();
        }
    }

    /// Marks the Keeper and its databases closed (no new work); false if it already was.
    fn begin_close(&self) -> bool {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        for db in self.inner.databases.values() {
            db.stop_admitting();
        }
        true
    }

    fn finish_close(&self) {
        self.inner.stop_tasks();
        for db in self.inner.databases.values() {
            db.close();
        }
        tracing::info!("keeper closed");
    }

    /// Closes every stale idle connection now, without waiting for the background sweep (it
    /// runs every `idle_sweep_interval` anyway), and replaces broken shared ones; returns how
    /// many connections it closed. The seed's `cleanup_idle_connections`.
    ///
    /// ```no_run
    /// # fn demo(keeper: redis_keeper::Keeper) {
    /// let closed = keeper.sweep_idle();
    /// println!("closed {closed} stale connections");
    /// # }
    /// ```
    pub fn sweep_idle(&self) -> usize {
        self.inner.databases.values().map(|db| db.sweep_now()).sum()
    }

    /// Checks one database now: a PING through its breaker on a shared connection (opening one
    /// if needed), bounded by its connect plus response timeout; returns the round trip. The
    /// seed's `test_redis_connection`, with the reason when it fails.
    ///
    /// ```no_run
    /// # async fn demo(keeper: redis_keeper::Keeper) -> Result<(), redis_keeper::Error> {
    /// let rtt = keeper.check("main").await?;
    /// println!("main answered in {rtt:?}");
    /// # Ok(()) }
    /// ```
    pub async fn check(&self, db: impl AsRef<str>) -> Result<std::time::Duration, Error> {
        let name = db.as_ref();
        let mut conn = self.get(name).await?;
        let clock = &*self.inner.clock;
        let limit = conn.settings().connect_timeout + conn.settings().response_timeout;
        let started = clock.now();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match crate::seams::timeout(clock, limit, ping).await {
            Ok(Ok(_)) => Ok(clock.now().saturating_duration_since(started)),
            Ok(Err(e)) => Err(Error::from(e)),
            Err(_) => Err(Error::Redis(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("database `{name}` did not answer PING within {limit:?}"),
            )))),
        }
    }

    /// Whether [`Keeper::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Starts a new backend epoch for database `db`: every connection opened before is
    /// replaced (idle ones closed, shared ones replaced, lent ones closed when returned). The
    /// backend seam's hook for a changed resolution; exposed for tests and simulations.
    #[doc(hidden)]
    pub fn rebind(&self, db: impl AsRef<str>) -> Result<u64, Error> {
        Ok(self.database(db.as_ref())?.rebind())
    }

    /// Checks every pool's accounting invariants (for tests and simulations).
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        for (name, db) in &self.inner.databases {
            db.check_invariants().map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(())
    }
}

/// How often [`Keeper::close`] looks whether the commands in flight have finished.
const DRAIN_TICK: std::time::Duration = std::time::Duration::from_millis(5);

impl Inner {
    fn stop_tasks(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
    }
}

/// The last clone of a Keeper is gone: its background tasks stop and its idle connections
/// close. Handles still alive keep working; the rest closes with the last of them.
impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_tasks();
        if !self.closed.load(Ordering::Acquire) {
            for db in self.databases.values() {
                db.release();
            }
        }
    }
}

impl fmt::Debug for Keeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keeper")
            .field("runtime", &self.inner.runtime_name)
            .field(
                "databases",
                &self.inner.databases.keys().collect::<Vec<_>>(),
            )
            .field("closed", &self.is_closed())
            .finish()
    }
}

macro_rules! shortcuts {
    ($($name:ident => $variant:ident),* $(,)?) => {
        impl Keeper {
            $(
                #[doc = concat!("A shared connection to the `", stringify!($name), "` database (`RedisDatabase::", stringify!($variant), "`).")]
                pub async fn $name(&self) -> Result<PooledConnection, Error> {
                    self.get(crate::config::RedisDatabase::$variant).await
                }
            )*
        }
    };
}

shortcuts! {
    main => Main, knowledge => Knowledge, prompts => Prompts, agents => Agents,
    metrics => Metrics, sessions => Sessions, cache => Cache, vectors => Vectors,
    temp => Temp, analytics => Analytics, audit => Audit, notifications => Notifications,
    jobs => Jobs, search => Search, timeseries => Timeseries, graph => Graph,
}
