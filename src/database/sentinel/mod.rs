//! A Sentinel-backed database's master: where it is (learnt from the sentinels, each change a
//! new backend epoch), the sentinels in the order to ask them, the failover hold commands wait
//! behind, and the Sentinel statistics.
//!
//! lookup.rs asks the sentinels and checks `ROLE`; watcher.rs is the task that follows their
//! events and polls; commands meet the hold in [`Database::await_master`].

/// Emits a `tracing` event for a Sentinel master at `$level`, if the Keeper's `log_level`
/// allows it (a master may serve several databases: the event names the master).
macro_rules! sentinel_event {
    ($s:expr, $level:ident, $($rest:tt)+) => {
        if tracing::Level::$level <= $s.log_level {
            tracing::event!(
                tracing::Level::$level,
                sentinel_master = %$s.settings.master_name,
                $($rest)+
            );
        }
    };
}

mod lookup;
mod watcher;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::level_filters::LevelFilter;

use super::dial::Failure;
use super::Database;
use crate::config::{ConfigError, DatabaseSettings, SentinelSettings, ServerRole};
use crate::policy::{FailoverConfig, FailoverFollower, FollowerAction, SentinelSignal};
use crate::seams::{Clock, Endpoint, Runtime, TcpOptions, Transport};
use crate::stats::SentinelStats;

pub(crate) use lookup::check_role;
pub(crate) use watcher::spawn_watcher;

/// Why no master address came back from the sentinels.
pub(crate) enum LookupError {
    /// No sentinel answered (each refused, timed out or failed): a transport failure.
    Failed(Failure),
    /// The sentinels that answered do not know the master name: a configuration error.
    Unknown(ConfigError),
}

/// The Sentinel state of one master, shared by the databases it serves (the logical databases
/// of one master are one backend, with one watcher), their connectors and their commands.
pub(crate) struct SentinelBackend {
    settings: SentinelSettings,
    /// The transport to the sentinels (TLS over the runtime's when `sentinel.ssl` is on).
    transport: Arc<dyn Transport>,
    runtime: Runtime,
    tcp: TcpOptions,
    connect_timeout: Duration,
    log_level: LevelFilter,
    /// The backend epoch of every database it serves, bumped when the master moves.
    epoch: Arc<AtomicU64>,
    /// Where the master is, once learnt; `None` makes the next connection ask the sentinels.
    master: Mutex<Option<Endpoint>>,
    /// For `role: replica`: the healthy replicas as last listed (empty: ask the sentinels),
    /// and the next in turn.
    replicas: Mutex<Vec<Endpoint>>,
    next_replica: AtomicUsize,
    /// The sentinels, the one that answered last first (then those `SENTINEL sentinels` named).
    order: Mutex<Vec<Endpoint>>,
    follower: Mutex<FailoverFollower>,
    /// Whether a failover hold is on (the commands' one-load check).
    holding: AtomicBool,
    /// Notified when a hold ends.
    released: event_listener::Event,
    /// Notified when the epoch is bumped (subscribers move to the new server).
    moved: event_listener::Event,
    counters: Counters,
}

/// The Sentinel counters.
#[derive(Default)]
struct Counters {
    switches: AtomicU64,
    lookups: AtomicU64,
    lookup_failures: AtomicU64,
    role_mismatches: AtomicU64,
    readonly_replies: AtomicU64,
    holds: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl SentinelBackend {
    /// The backend of `db`'s Sentinel settings, reaching the sentinels through `transport`;
    /// the follower's first poll is due now.
    fn new(
        db: &DatabaseSettings,
        settings: SentinelSettings,
        transport: Arc<dyn Transport>,
        runtime: &Runtime,
        log_level: LevelFilter,
    ) -> Self {
        let config = FailoverConfig {
            poll_interval: settings.poll_interval,
            hold: settings.failover_hold,
        };
        let now = runtime.clock().now();
        Self {
            order: Mutex::new(settings.nodes.clone()),
            settings,
            transport,
            runtime: runtime.clone(),
            tcp: db.tcp,
            connect_timeout: db.connect_timeout,
            log_level,
            epoch: Arc::new(AtomicU64::new(0)),
            master: Mutex::new(None),
            replicas: Mutex::new(Vec::new()),
            next_replica: AtomicUsize::new(0),
            follower: Mutex::new(FailoverFollower::new(config, now)),
            holding: AtomicBool::new(false),
            released: event_listener::Event::new(),
            moved: event_listener::Event::new(),
            counters: Counters::default(),
        }
    }

    /// The sentinel settings.
    pub(crate) fn settings(&self) -> &SentinelSettings {
        &self.settings
    }

    /// The backend epoch its databases' connections compare theirs with.
    pub(crate) fn epoch(&self) -> Arc<AtomicU64> {
        self.epoch.clone()
    }

    /// The sentinels say the master is at `master` (`via` an event, a poll or a lookup):
    /// learnt, and a change logged.
    fn switched_to(&self, master: Endpoint, via: &'static str) -> bool {
        let switched = self.learn(master.clone());
        if switched {
            sentinel_event!(
                self,
                WARN,
                master = %master,
                via,
                "sentinel master switched; connections to the old master are replaced"
            );
        }
        switched
    }

    /// Where the master is, if known.
    pub(crate) fn master(&self) -> Option<Endpoint> {
        lock(&self.master).clone()
    }

    /// The master is at `endpoint` (the sentinels said so). A change from a known address
    /// starts a new epoch — every connection to the old master is stale from now on — ends any
    /// hold, and returns `true`.
    pub(crate) fn learn(&self, endpoint: Endpoint) -> bool {
        let switched = {
            let mut master = lock(&self.master);
            let switched = master.as_ref().is_some_and(|old| *old != endpoint);
            *master = Some(endpoint);
            if switched {
                // Under the lock: no connection opened from here on can carry the old epoch
                // with the new address, or the new epoch with the old address.
                self.bump_epoch();
            }
            switched
        };
        if switched {
            bump(&self.counters.switches);
            let action = lock(&self.follower).on_switch();
            self.apply(action);
        }
        switched
    }

    /// The healthy replicas are `list` now (for `role: replica`). A change from a known list
    /// starts a new epoch, counted as a switch; returns whether it was one.
    fn learn_replicas(&self, list: Vec<Endpoint>) -> bool {
        let mut replicas = lock(&self.replicas);
        let switched = !replicas.is_empty() && *replicas != list;
        *replicas = list;
        if switched {
            self.bump_epoch();
            bump(&self.counters.switches);
        }
        switched
    }

    /// Starts a new epoch (called with the address lock held) and wakes who waits for one.
    fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.moved.notify(usize::MAX);
    }

    /// A listener notified at the next epoch bump.
    pub(crate) fn moved_listener(&self) -> event_listener::EventListener {
        self.moved.listen()
    }

    /// Whether the database reads from replicas (`role: replica`).
    pub(crate) fn reads_replicas(&self) -> bool {
        self.settings.role == ServerRole::Replica
    }

    /// The `ROLE` a server this database connects to must answer.
    pub(crate) fn expected_role(&self) -> &'static str {
        match self.settings.role {
            ServerRole::Master => "master",
            ServerRole::Replica => "slave",
        }
    }

    /// The address and epoch a connection opens with, if known: the master, or the next
    /// healthy replica in turn.
    pub(crate) fn target(&self) -> Option<(Endpoint, u64)> {
        if self.reads_replicas() {
            let replicas = lock(&self.replicas);
            let epoch = self.epoch.load(Ordering::Acquire);
            let n = self.next_replica.fetch_add(1, Ordering::Relaxed);
            return (!replicas.is_empty()).then(|| (replicas[n % replicas.len()].clone(), epoch));
        }
        let master = lock(&self.master);
        let epoch = self.epoch.load(Ordering::Acquire);
        master.clone().map(|m| (m, epoch))
    }

    /// The server at the known address is not what it should be (`ROLE`, `READONLY`): every
    /// connection of this backend is stale (a new epoch), and the next connection asks the
    /// sentinels again. Returns the master address forgotten.
    pub(crate) fn forget(&self) -> Option<Endpoint> {
        if self.reads_replicas() {
            let mut replicas = lock(&self.replicas);
            if !replicas.is_empty() {
                replicas.clear();
                self.bump_epoch();
            }
            return None;
        }
        let mut master = lock(&self.master);
        let old = master.take();
        if old.is_some() {
            self.bump_epoch();
        }
        old
    }

    /// The sentinels in the order to ask them.
    pub(crate) fn nodes(&self) -> Vec<Endpoint> {
        lock(&self.order).clone()
    }

    /// `node` answered: it is asked first from now on.
    fn answered(&self, node: &Endpoint) {
        let mut order = lock(&self.order);
        if let Some(i) = order.iter().position(|n| n == node) {
            let n = order.remove(i);
            order.insert(0, n);
        }
    }

    /// Adds sentinels a sentinel named (`SENTINEL sentinels`) that are not known yet.
    fn add_peers(&self, peers: Vec<Endpoint>) -> usize {
        let mut order = lock(&self.order);
        let before = order.len();
        for peer in peers {
            if !order.contains(&peer) {
                order.push(peer);
            }
        }
        order.len() - before
    }

    /// Whether commands hold (a failover was announced and is not over).
    #[inline]
    pub(crate) fn is_holding(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }

    /// Feeds a sentinel's signal to the follower at `now`. A replica reader does not hold
    /// (reads may go on during a failover); a switch makes it list the replicas again.
    fn signal(&self, signal: &SentinelSignal, now: Instant) -> FollowerAction {
        if self.reads_replicas() && *signal == SentinelSignal::FailoverStarted {
            return FollowerAction::None;
        }
        let action = lock(&self.follower).on_signal(signal, now);
        self.apply(action);
        action
    }

    /// Lets the follower act at `now` (a due poll or an expired hold).
    fn tick(&self, now: Instant) -> FollowerAction {
        let action = lock(&self.follower).tick(now);
        self.apply(action);
        action
    }

    /// When the follower has something to do next.
    fn next_deadline(&self) -> Instant {
        lock(&self.follower).next_deadline()
    }

    /// Publishes a hold's start or end.
    fn apply(&self, action: FollowerAction) {
        match action {
            FollowerAction::HoldUntil(_) => {
                if !self.holding.swap(true, Ordering::AcqRel) {
                    bump(&self.counters.holds);
                }
            }
            FollowerAction::Release => {
                self.holding.store(false, Ordering::Release);
                self.released.notify(usize::MAX);
            }
            FollowerAction::None | FollowerAction::Poll => {}
        }
    }

    /// Waits while a hold is on, never past its bound (the waiter ends an expired hold itself
    /// if the watcher has not yet).
    pub(crate) async fn wait_released(&self, clock: &Arc<dyn Clock>) {
        // Bounded: each round ends the hold, waits for its end, or returns.
        for _ in 0..1000 {
            if !self.is_holding() {
                return;
            }
            let listener = self.released.listen();
            let until = lock(&self.follower).hold_until();
            let Some(until) = until.filter(|u| clock.now() < *u) else {
                let _ = self.tick(clock.now());
                continue;
            };
            futures::future::select(listener, clock.sleep_until(until)).await;
        }
    }

    /// Counts a `ROLE` that was not `master`.
    pub(crate) fn role_mismatch(&self) {
        bump(&self.counters.role_mismatches);
    }

    /// Counts a `READONLY` reply.
    pub(crate) fn readonly_reply(&self) {
        bump(&self.counters.readonly_replies);
    }

    /// The statistics now.
    pub(crate) fn stats(&self) -> SentinelStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SentinelStats {
            master_name: self.settings.master_name.clone(),
            master: self.master().map(|m| m.to_string()),
            replicas: lock(&self.replicas)
                .iter()
                .map(ToString::to_string)
                .collect(),
            switches: read(&self.counters.switches),
            lookups: read(&self.counters.lookups),
            lookup_failures: read(&self.counters.lookup_failures),
            role_mismatches: read(&self.counters.role_mismatches),
            readonly_replies: read(&self.counters.readonly_replies),
            holds: read(&self.counters.holds),
            holding: self.is_holding(),
            sentinels: lock(&self.order).len(),
        }
    }
}

/// The Sentinel backends made while a Keeper is built: databases with the same master and
/// sentinels share one.
#[derive(Default)]
pub(crate) struct SentinelBackends(Vec<Arc<SentinelBackend>>);

impl SentinelBackends {
    /// The backend for `db`, if it is Sentinel-backed: an existing one for the same master,
    /// sentinels, credentials and timings, or a new one reaching the sentinels through
    /// `transport` (made only then).
    pub(crate) fn backend_for(
        &mut self,
        db: &DatabaseSettings,
        runtime: &Runtime,
        log_level: LevelFilter,
        transport: impl FnOnce(&SentinelSettings) -> Arc<dyn Transport>,
    ) -> Option<Arc<SentinelBackend>> {
        let settings = db.sentinel.as_ref()?;
        let same = |b: &&Arc<SentinelBackend>| {
            let o = &b.settings;
            o.master_name == settings.master_name
                && o.nodes == settings.nodes
                && o.username == settings.username
                && o.password == settings.password
                && o.tls == settings.tls
                && o.poll_interval == settings.poll_interval
                && o.failover_hold == settings.failover_hold
                && o.role == settings.role
                && b.tcp == db.tcp
                && b.connect_timeout == db.connect_timeout
        };
        if let Some(found) = self.0.iter().find(same) {
            return Some(found.clone());
        }
        let backend = Arc::new(SentinelBackend::new(
            db,
            settings.clone(),
            transport(settings),
            runtime,
            log_level,
        ));
        self.0.push(backend.clone());
        Some(backend)
    }
}

impl Database {
    /// Resolves at the next change of backend epoch (a Sentinel switch); never for a direct
    /// database.
    pub(crate) fn backend_moved(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let listener = self.sentinel().map(SentinelBackend::moved_listener);
        async move {
            match listener {
                Some(l) => l.await,
                None => futures::future::pending().await,
            }
        }
    }

    /// Waits out a failover hold, if this database is Sentinel-backed and one is on.
    #[inline]
    pub(crate) async fn await_master(&self) {
        if let Some(sentinel) = self.sentinel() {
            if sentinel.is_holding() {
                Box::pin(sentinel.wait_released(self.runtime().clock())).await;
            }
        }
    }

    /// A `READONLY` reply came from this database's master: it is a replica now (a stale
    /// master). Counts it and forgets the address (a new epoch), so the next connection asks
    /// the sentinels; `false` for a direct database, where the reply stands as it is.
    pub(crate) fn readonly_seen(&self) -> bool {
        let Some(sentinel) = self.sentinel().filter(|s| !s.reads_replicas()) else {
            return false;
        };
        sentinel.readonly_reply();
        let forgot = sentinel.forget();
        keeper_event!(
            self,
            WARN,
            master = ?forgot.map(|m| m.to_string()),
            "READONLY from the master: it is a replica now; asking the sentinels again"
        );
        true
    }
}
