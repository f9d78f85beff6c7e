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

mod backend;
mod background;
mod block_time;
mod command;
mod conn;
mod connect;
mod driver;
mod gate;
mod settings;
mod watchdog;

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crate::config::DatabaseSettings;
use crate::error::Error;
use crate::policy::{
    CircuitBreaker, HealthSchedule, HealthState, LossGrouping, LossVerdict, Permit, Readiness,
    Rejected, Transition,
};
use crate::pool::{Pool, SharedSlots};
use crate::rng::Rng;
use crate::seams::Runtime;
use crate::stats::{DatabaseStats, DbCounters};

pub(crate) use background::spawn_background;
pub(crate) use block_time::BlockTime;
pub(crate) use command::{CommandKind, Reply};
pub(crate) use conn::RedisConn;
pub(crate) use connect::{Dial, OnPush};

/// The policies of one database, behind one short-held lock.
struct Policies {
    breaker: CircuitBreaker,
    readiness: Readiness,
    health: HealthSchedule,
    rng: Rng,
    /// Groups connections lost together into one breaker failure.
    losses: LossGrouping,
}

/// One configured database.
pub(crate) struct Database {
    name: Arc<str>,
    settings: DatabaseSettings,
    runtime: Runtime,
    conn_info: redis::RedisConnectionInfo,
    policy: settings::PolicySettings,
    policies: Mutex<Policies>,
    pool: Pool<RedisConn>,
    pub(crate) shared: SharedSlots<RedisConn, Error>,
    counters: DbCounters,
    /// The policies' lock-free summary, republished whenever the policies lock is released: a
    /// healthy database admits commands, takes their success reports and answers "not loading"
    /// without taking the lock.
    gate: gate::Gate,
    /// Notified whenever a readiness probe finishes, so waiters re-check at once.
    ready_changed: event_listener::Event,
    started: Instant,
    log_level: tracing::level_filters::LevelFilter,
    /// Set by [`Database::close`]: no new command starts.
    closed: AtomicBool,
    /// Every connection opened, so that closing reaches the lent ones too (pruned on each open).
    links: Mutex<Vec<Weak<conn::Link>>>,
    /// Notified when the database is closed (subscribers stop).
    closed_event: event_listener::Event,
    /// What it connects to, and the epoch of the current resolution.
    binding: backend::Binding,
}

impl Database {
    pub(crate) fn new(
        settings: DatabaseSettings,
        runtime: Runtime,
        rng: Rng,
        log_level: tracing::level_filters::LevelFilter,
    ) -> Arc<Self> {
        let now = runtime.clock().now();
        let policy = settings::PolicySettings::from(&settings);
        let conn_info = settings::connection_info(&settings);
        let binding = backend::Binding::new(backend::Backend::Direct {
            endpoint: settings.endpoint.clone(),
        });
        Arc::new(Self {
            name: Arc::from(settings.name.as_str()),
            pool: Pool::new(
                runtime.clock().clone(),
                settings.max_connections as usize,
                policy.idle.clone(),
            ),
            shared: SharedSlots::new(settings.shared_connections as usize),
            policies: Mutex::new(Policies {
                breaker: CircuitBreaker::new(policy.breaker.clone()),
                readiness: Readiness::new(policy.readiness.clone()),
                health: HealthSchedule::new(policy.health.clone(), now),
                rng,
                losses: LossGrouping::new(policy.loss),
            }),
            policy,
            counters: DbCounters::default(),
            gate: gate::Gate::new(),
            ready_changed: event_listener::Event::new(),
            conn_info,
            settings,
            runtime,
            started: now,
            log_level,
            closed: AtomicBool::new(false),
            links: Mutex::new(Vec::new()),
            closed_event: event_listener::Event::new(),
            binding,
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

    /// Locks the policies; the lock-free summary is republished when the guard is dropped, so
    /// every change made through it is published before the lock is released.
    fn policies(&self) -> PoliciesGuard<'_> {
        PoliciesGuard {
            guard: self.policies.lock().unwrap_or_else(|e| e.into_inner()),
            gate: &self.gate,
        }
    }

    /// Asks the breaker for permission to touch the network. While the breaker is closed this
    /// takes no lock: a closed breaker grants the permit of its generation and changes nothing.
    #[inline]
    pub(crate) fn breaker_permit(&self) -> Result<Permit, Error> {
        match self.gate.view().closed_permit() {
            Some(permit) => Ok(permit),
            None => self.breaker_permit_locked(),
        }
    }

    /// [`Database::breaker_permit`] when the breaker is not known closed.
    #[inline(never)]
    fn breaker_permit_locked(&self) -> Result<Permit, Error> {
        let now = self.now();
        let result = self.policies().breaker.try_acquire(now);
        if let Ok(permit) = &result {
            if permit.is_probe() {
                keeper_event!(self, WARN, "circuit breaker half-open: sending one probe");
            }
        }
        result.map_err(|Rejected { retry_after, .. }| {
            DbCounters::bump(&self.counters.rejected);
            Error::CircuitOpen {
                db: self.name.to_string(),
                retry_after,
            }
        })
    }

    /// Reports a network outcome to the breaker: `Ok` for any reply, `Err` for a transport failure.
    /// A success on a closed breaker with no failure counted changes nothing, so it takes no lock.
    #[inline]
    pub(crate) fn breaker_report(&self, permit: Permit, transport_ok: bool) {
        if !(transport_ok && self.gate.view().success_is_noop()) {
            self.breaker_report_locked(permit, transport_ok);
        }
    }

    /// [`Database::breaker_report`] when the report may change the breaker.
    #[inline(never)]
    fn breaker_report_locked(&self, permit: Permit, transport_ok: bool) {
        let now = self.now();
        let transition = {
            let mut p = self.policies();
            if transport_ok {
                p.breaker.on_success(now, permit)
            } else {
                p.breaker.on_failure(now, permit)
            }
        };
        if let Some(t) = transition {
            self.log_breaker(t);
        }
    }

    /// Whether the breaker was closed at its last change (then every call is admitted).
    pub(crate) fn breaker_is_closed(&self) -> bool {
        self.gate.view().breaker_closed()
    }

    /// Reports the outcome of a call made on `conn` to the breaker. A lost connection counts as
    /// one failure, and connections lost together as one (a probe's failure always counts):
    ///
    /// * only the first transport failure on a connection counts: when a multiplexed connection
    ///   dies, every command in flight on it fails at once;
    /// * a connection that was already open when another one's loss was counted, and is lost
    ///   within `breaker_loss_window` (default: the response timeout) of it, went down in the
    ///   same event (a `CLIENT KILL`, a restart, a freeze): it does not count again
    ///   ([`LossGrouping`]).
    ///
    /// Else one reset of a pool with more connections than the breaker threshold would open the
    /// breaker while the server is fine. Failed connects, which follow a real outage, count each.
    pub(crate) fn breaker_report_on(&self, conn: &conn::Link, permit: Permit, transport_ok: bool) {
        if transport_ok || permit.is_probe() {
            self.breaker_report(permit, transport_ok);
        } else if !conn.mark_lost() {
            tracing::debug!(db = %self.name, "another failure on a connection already lost; not counted");
        } else if self.lost_together(conn) {
            tracing::debug!(db = %self.name, "connection lost together with another; not counted");
        } else {
            self.breaker_report(permit, false);
        }
    }

    /// Whether `conn`, just lost, went down with the last connection loss counted against the
    /// breaker ([`LossGrouping`]); if not, its loss becomes the last counted.
    fn lost_together(&self, conn: &conn::Link) -> bool {
        let now = self.now();
        self.policies().losses.on_loss(now, conn.opened_at()) == LossVerdict::SameEvent
    }

    fn log_breaker(&self, t: Transition) {
        use crate::policy::BreakerStateKind;
        if t.to == BreakerStateKind::Open && t.from == BreakerStateKind::Closed {
            DbCounters::bump(&self.counters.trips);
        }
        if t.to == BreakerStateKind::Open && t.from == BreakerStateKind::HalfOpen {
            DbCounters::bump(&self.counters.reopens);
        }
        keeper_event!(self, WARN, from = ?t.from, to = ?t.to, "circuit breaker transition");
    }

    /// The database's health now.
    pub(crate) fn health(&self) -> HealthState {
        let p = self.policies();
        HealthState::assess(&p.breaker.state(), &p.readiness.state())
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
        out
    }

    pub(crate) fn counters(&self) -> &DbCounters {
        &self.counters
    }

    pub(crate) fn pool(&self) -> &Pool<RedisConn> {
        &self.pool
    }

    pub(crate) fn record_error(&self, err: &Error) {
        self.counters.record_error(err.to_string(), self.now());
    }

    /// Remembers a newly opened connection (see [`Database::close`]).
    pub(crate) fn track(&self, link: &Arc<conn::Link>) {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.retain(|l| l.strong_count() > 0);
        links.push(Arc::downgrade(link));
    }

    /// The connections still open (tracked and not dropped).
    fn open_links(&self) -> Vec<Arc<conn::Link>> {
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.iter().filter_map(Weak::upgrade).collect()
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
        self.open_links().iter().any(|l| l.has_commands_in_flight())
    }

    /// Closes the database: no new command starts, and every connection is closed now, idle,
    /// shared and lent alike (a holder's next command fails with `Closed`).
    pub(crate) fn close(&self) {
        self.stop_admitting();
        self.pool.close();
        self.shared.clear();
        for link in self.open_links() {
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
        let epoch = self.binding.bump_epoch();
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

    /// Checks the pool's accounting invariants (tests, simulator).
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        self.pool.check_invariants()
    }
}

/// The locked policies; dropping it republishes the [`gate::Gate`] before unlocking.
struct PoliciesGuard<'a> {
    guard: MutexGuard<'a, Policies>,
    gate: &'a gate::Gate,
}

impl Deref for PoliciesGuard<'_> {
    type Target = Policies;

    fn deref(&self) -> &Policies {
        &self.guard
    }
}

impl DerefMut for PoliciesGuard<'_> {
    fn deref_mut(&mut self) -> &mut Policies {
        &mut self.guard
    }
}

impl Drop for PoliciesGuard<'_> {
    fn drop(&mut self) {
        // Runs before the field `guard` is dropped: the lock is still held.
        self.gate
            .publish(&self.guard.breaker, &self.guard.readiness);
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
