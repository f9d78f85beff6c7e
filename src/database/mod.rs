//! One named database: its pools, its policies and its statistics — the only place they meet.

/// Emits a `tracing` event for a database at `$level`, if the Keeper's `log_level` allows it.
macro_rules! keeper_event {
    ($db:expr, $level:ident, $($rest:tt)+) => {
        if tracing::Level::$level <= $db.log_level() {
            tracing::event!(tracing::Level::$level, db = %$db.name(), $($rest)+);
        }
    };
}
pub(crate) use keeper_event;

mod admission;
mod backend;
mod background;
mod block_time;
mod checkout;
#[cfg(feature = "cluster")]
mod cluster;
mod command;
mod conn;
mod connector;
mod dial;
mod driver;
mod gate;
mod request;
mod sentinel;
mod settings;
mod watchdog;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::config::DatabaseSettings;
use crate::error::Error;
use crate::histogram::Histogram;
use crate::policy::{HealthConfig, HealthState};
use crate::pool::{Pool, SharedConn, SharedSlots};
use crate::rng::Rng;
use crate::seams::Runtime;
use crate::stats::{DatabaseStats, DbCounters};

pub(crate) use background::spawn_background;
pub(crate) use block_time::BlockTime;
#[cfg(feature = "cluster")]
pub(crate) use cluster::ClusterBackend;
pub(crate) use command::all_readonly;
pub(crate) use conn::RedisConn;
pub(crate) use connector::ping;
pub(crate) use dial::{Dial, OnPush};
pub(crate) use request::{CommandKind, Reply};
pub(crate) use sentinel::{spawn_watcher, SentinelBackends};

/// One configured database.
pub(crate) struct Database {
    name: Arc<str>,
    settings: DatabaseSettings,
    runtime: Runtime,
    /// When an idle connection is validated before it is lent (checkout.rs).
    checkout_check: HealthConfig,
    /// Breaker, readiness, loss grouping, health schedule: the only holder of their lock.
    admission: Arc<admission::Admission>,
    /// The only opener of connections (and the registry of those it opened).
    connector: connector::Connector,
    pool: Pool<RedisConn>,
    shared: SharedSlots<RedisConn, Error>,
    /// A Redis Cluster database's backend (the pools above stay empty).
    #[cfg(feature = "cluster")]
    cluster: Option<Arc<ClusterBackend>>,
    counters: Arc<DbCounters>,
    started: Instant,
    log_level: tracing::level_filters::LevelFilter,
    /// Set by [`Database::close`]: no new command starts.
    closed: AtomicBool,
    /// Notified when the database is closed (subscribers stop).
    closed_event: event_listener::Event,
}

impl Database {
    pub(crate) fn new(
        settings: DatabaseSettings,
        runtime: Runtime,
        rng: Rng,
        log_level: tracing::level_filters::LevelFilter,
        sentinels: &mut SentinelBackends,
    ) -> Arc<Self> {
        #[allow(unused_mut)] // forked for a cluster database only
        let mut rng = rng;
        // Forked only for a cluster database: every other keeps its jitter sequence.
        #[cfg(feature = "cluster")]
        let cluster_rng = settings.cluster.as_ref().map(|_| rng.fork());
        let now = runtime.clock().now();
        let policy = settings::PolicySettings::from(&settings);
        let name: Arc<str> = Arc::from(settings.name.as_str());
        let counters = Arc::new(DbCounters::for_database(&name));
        let admission = Arc::new(admission::Admission::new(
            name.clone(),
            log_level,
            runtime.clock().clone(),
            counters.clone(),
            &policy,
            rng,
        ));
        #[cfg(feature = "cluster")]
        let cluster = settings
            .cluster
            .as_ref()
            .zip(cluster_rng)
            .map(|(c, rng)| Arc::new(ClusterBackend::new(&settings, c, runtime.clone(), rng)));
        let connector = connector::Connector::new(
            &settings,
            &policy,
            connector::Common {
                name: name.clone(),
                log_level,
                runtime: runtime.clone(),
                admission: admission.clone(),
                counters: counters.clone(),
                sentinel: sentinels.backend_for(&settings, &runtime, log_level, |s| {
                    connector::transport_for(s.tls.as_ref(), &runtime)
                }),
            },
        );
        Arc::new(Self {
            name: name.clone(),
            pool: Pool::with_wait_histogram(
                runtime.clock().clone(),
                settings.max_connections as usize,
                policy.idle.clone(),
                Histogram::named("redis_keeper_pool_wait_seconds", &name),
            ),
            shared: SharedSlots::new(settings.shared_connections as usize),
            #[cfg(feature = "cluster")]
            cluster,
            admission,
            connector,
            checkout_check: policy.health,
            counters,
            settings,
            runtime,
            started: now,
            log_level,
            closed: AtomicBool::new(false),
            closed_event: event_listener::Event::new(),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The most detailed level of `tracing` events this database emits (YAML `log_level`).
    pub(crate) fn log_level(&self) -> tracing::level_filters::LevelFilter {
        self.log_level
    }

    pub(crate) fn settings(&self) -> &DatabaseSettings {
        &self.settings
    }

    pub(crate) fn now(&self) -> Instant {
        self.runtime.clock().now()
    }

    /// The runtime the database runs on (its clock and spawner).
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// A listener notified when the database is closed (check [`Database::is_closed`] after
    /// creating it, then await it).
    pub(crate) fn closed_listener(&self) -> event_listener::EventListener {
        self.closed_event.listen()
    }

    /// The database's health now.
    pub(crate) fn health(&self) -> HealthState {
        self.admission.health()
    }

    pub(crate) fn stats(&self) -> DatabaseStats {
        let now = self.now();
        let mut out = DatabaseStats {
            name: self.name.to_string(),
            db: self.settings.db,
            health: Some(self.health()),
            uptime: now.saturating_duration_since(self.started),
            pool: self.pool.stats(now),
            ..DatabaseStats::default()
        };
        self.counters.fill(now, &mut out);
        out.breaker = self.admission.breaker_stats(now);
        out.sentinel = self.sentinel().map(|s| s.stats());
        #[cfg(feature = "cluster")]
        {
            out.cluster = self.cluster.as_ref().map(|c| c.stats());
        }
        out
    }

    /// Fails with `NotOnCluster` (counted as a failed checkout) when the database is a Redis
    /// Cluster: `what` (an exclusive connection, a subscriber) needs one server.
    pub(crate) fn refuse_on_cluster(&self, what: &str) -> Result<(), Error> {
        if self.settings.cluster.is_none() {
            return Ok(());
        }
        Err(self.checkout_failed(Error::NotOnCluster {
            db: self.name().to_owned(),
            what: what.to_owned(),
        }))
    }

    /// The Redis Cluster backend, if the database is served by one.
    #[cfg(feature = "cluster")]
    #[inline]
    pub(crate) fn cluster(&self) -> Option<&Arc<ClusterBackend>> {
        self.cluster.as_ref()
    }

    /// The Sentinel state, if the database's master is found through sentinels.
    #[inline]
    pub(crate) fn sentinel(&self) -> Option<&sentinel::SentinelBackend> {
        self.connector.sentinel().map(|s| &**s)
    }

    /// [`Database::sentinel`], shared (for the watcher task).
    pub(crate) fn sentinel_backend(&self) -> Option<Arc<sentinel::SentinelBackend>> {
        self.connector.sentinel().cloned()
    }

    pub(crate) fn counters(&self) -> &DbCounters {
        &self.counters
    }

    pub(crate) fn pool(&self) -> &Pool<RedisConn> {
        &self.pool
    }

    /// Breaker, readiness, loss grouping and health schedule (checkout, commands, background).
    fn admission(&self) -> &admission::Admission {
        &self.admission
    }

    /// The opener of connections (checkout, readiness waits, validation).
    fn connector(&self) -> &connector::Connector {
        &self.connector
    }

    /// The multiplexed connections shared by every shared handle.
    fn shared(&self) -> &SharedSlots<RedisConn, Error> {
        &self.shared
    }

    /// Whether every shared slot holds a ready connection (one load: `get`'s fast path).
    #[inline]
    pub(crate) fn all_shared_ready(&self) -> bool {
        self.shared.all_ready()
    }

    /// A ready shared connection, the next in turn, if there is one (no connect, no wait).
    #[inline]
    pub(crate) fn pick_ready_shared(&self) -> Option<Arc<SharedConn<RedisConn>>> {
        self.shared.pick_ready()
    }

    /// Whether a connection idle since `idle_since` is validated before it is lent at `now`.
    fn needs_checkout_check(&self, now: Instant, idle_since: Instant) -> bool {
        self.checkout_check.needs_checkout_check(now, idle_since)
    }

    pub(crate) fn record_error(&self, err: &Error) {
        self.counters.record_error(err.to_string(), self.now());
    }

    /// Opens one ready connection through the connector (see [`connector::Connector::open`]);
    /// `Closed` once the database is closed.
    pub(crate) async fn open_with(&self, dial: &Dial) -> Result<RedisConn, Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        self.connector.open(dial).await
    }

    /// [`Database::open_with`] for a pool's RESP2 command connection.
    pub(crate) async fn open(&self) -> Result<RedisConn, Error> {
        self.open_with(&Dial::default()).await
    }

    /// Refuses new commands from now on (`Closed`); those in flight go on.
    pub(crate) fn stop_admitting(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether the database was closed: every new command fails with `Closed`.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether a command is still waiting for its reply on one of the connections (a command
    /// that blocks on the server, such as `BLPOP … 0`, does not count: it may wait forever).
    pub(crate) fn has_commands_in_flight(&self) -> bool {
        self.connector
            .open_links()
            .iter()
            .any(|l| l.has_commands_in_flight())
    }

    /// Closes the database: no new command starts, and every connection is closed now, idle,
    /// shared and lent alike (a holder's next command fails with `Closed`).
    pub(crate) fn close(&self) {
        self.stop_admitting();
        self.pool.close();
        self.shared.clear();
        for link in self.connector.open_links() {
            link.close();
        }
        self.closed_event.notify(usize::MAX);
    }

    /// The Keeper was dropped (not closed): its idle connections close; handles still alive
    /// keep working, and the rest closes with the last of them.
    pub(crate) fn release(&self) -> usize {
        self.pool.release_idle()
    }

    /// Starts a new backend epoch: every connection opened before is stale, so idle ones are
    /// closed instead of handed out, shared ones replaced, lent ones closed when returned.
    /// (The backend seam's hook for a changed resolution, such as a Sentinel failover.)
    pub(crate) fn rebind(&self) -> u64 {
        let epoch = self.connector.bump_epoch();
        keeper_event!(
            self,
            INFO,
            epoch,
            "backend epoch changed; older connections are replaced"
        );
        epoch
    }

    /// Runs the idle sweep now (due or not); returns how many connections it closed.
    pub(crate) fn sweep_now(&self) -> usize {
        self.pool.sweep_now(self.now()) + self.shared.evict_broken()
    }

    /// Runs the idle sweep if due at `now` (the background loop), and evicts broken shared
    /// connections; returns how many connections it closed.
    fn sweep(&self, now: Instant) -> usize {
        self.pool.sweep(now) + self.shared.evict_broken()
    }

    /// Checks the pool's accounting invariants (tests, simulator).
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        self.pool.check_invariants()
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("db", &self.settings.db)
            .finish_non_exhaustive()
    }
}
