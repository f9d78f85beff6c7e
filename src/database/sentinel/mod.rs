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
    /// Where the master is, once learnt (`None` makes the next connection ask the sentinels),
    /// and the sentinels' configuration epoch it was learnt in.
    master: Mutex<Known>,
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

/// The master as known: its address and the newest configuration epoch seen (a lower bound
/// after a `+switch-master`, which carries none).
#[derive(Default)]
struct Known {
    addr: Option<Endpoint>,
    config_epoch: Option<u64>,
}

/// What one answer of a sentinel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learnt {
    /// The address is the one known (or the first one).
    Same,
    /// A new address: a switch.
    Switched,
    /// An answer from an older configuration (a sentinel that has not heard of the failover
    /// yet): ignored.
    Stale,
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
            master: Mutex::new(Known::default()),
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
    fn switched_to(
        &self,
        master: Endpoint,
        config_epoch: Option<u64>,
        via: &'static str,
    ) -> Learnt {
        let learnt = self.learn(master.clone(), config_epoch);
        if learnt == Learnt::Switched {
            sentinel_event!(
                self,
                WARN,
                master = %master,
                via,
                "sentinel master switched; connections to the old master are replaced"
            );
        } else if learnt == Learnt::Stale {
            sentinel_event!(self, DEBUG, master = %master, via, "an older configuration's answer; ignored");
        }
        learnt
    }

    /// Where the master is, if known.
    pub(crate) fn master(&self) -> Option<Endpoint> {
        lock(&self.master).addr.clone()
    }

    /// A sentinel says the master is at `endpoint`, in its configuration epoch `config_epoch`
    /// (`None` for a `+switch-master` event: then it is newer than any known). An answer of an
    /// older configuration than one already seen is [`Learnt::Stale`] and changes nothing: a
    /// sentinel that has not heard of a failover yet must not move the Keeper back to the old
    /// master. A change from a known address starts a new backend epoch — every connection to
    /// the old master is stale from now on — and ends any hold.
    pub(crate) fn learn(&self, endpoint: Endpoint, config_epoch: Option<u64>) -> Learnt {
        let learnt = {
            let mut known = lock(&self.master);
            let moves = known.addr.as_ref().is_some_and(|old| *old != endpoint);
            let stale = match (config_epoch, known.config_epoch) {
                (Some(e), Some(k)) => e < k || (e == k && moves),
                _ => false,
            };
            if stale {
                Learnt::Stale
            } else {
                known.config_epoch = match config_epoch {
                    Some(e) => Some(known.config_epoch.map_or(e, |k| k.max(e))),
                    // An announced switch: a configuration newer than the one known.
                    None if moves => known.config_epoch.map(|k| k + 1),
                    None => known.config_epoch,
                };
                known.addr = Some(endpoint);
                if moves {
                    // Under the lock: no connection opened from here on can carry the old
                    // epoch with the new address, or the new epoch with the old address.
                    self.bump_epoch();
                    Learnt::Switched
                } else {
                    Learnt::Same
                }
            }
        };
        if learnt == Learnt::Switched {
            bump(&self.counters.switches);
            self.follow(FailoverFollower::on_switch);
        }
        learnt
    }

    /// The healthy replicas are `list` now (for `role: replica`). A change from a known list
    /// starts a new epoch, counted as a switch; returns whether it was one.
    fn learn_replicas(&self, mut list: Vec<Endpoint>) -> bool {
        // Sentinels list replicas in no fixed order: compare sets.
        list.sort_by_key(ToString::to_string);
        list.dedup();
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
        let known = lock(&self.master);
        let epoch = self.epoch.load(Ordering::Acquire);
        known.addr.clone().map(|m| (m, epoch))
    }

    /// A server reached in backend `epoch` is not what it should be (`ROLE`, `READONLY`):
    /// every connection of that epoch is stale (a new one starts), and the next connection
    /// asks the sentinels again. A finding from an older epoch changes nothing: the address it
    /// was about has already been left. Returns the master address forgotten.
    pub(crate) fn forget_if(&self, epoch: u64) -> Option<Endpoint> {
        let current = |e: &AtomicU64| e.load(Ordering::Acquire) == epoch;
        if self.reads_replicas() {
            let mut replicas = lock(&self.replicas);
            if current(&self.epoch) && !replicas.is_empty() {
                replicas.clear();
                self.bump_epoch();
            }
            return None;
        }
        let mut known = lock(&self.master);
        if !current(&self.epoch) {
            return None;
        }
        let old = known.addr.take();
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
        self.follow(|f| f.on_signal(signal, now))
    }

    /// Lets the follower act at `now` (a due poll or an expired hold).
    fn tick(&self, now: Instant) -> FollowerAction {
        self.follow(|f| f.tick(now))
    }

    /// Runs one follower step and publishes its hold decision, both under the follower's lock:
    /// the `holding` flag never disagrees with the follower, whatever the order of concurrent
    /// steps.
    fn follow(&self, step: impl FnOnce(&mut FailoverFollower) -> FollowerAction) -> FollowerAction {
        let mut follower = lock(&self.follower);
        let action = step(&mut follower);
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
        action
    }

    /// When the follower has something to do next.
    fn next_deadline(&self) -> Instant {
        lock(&self.follower).next_deadline()
    }

    /// Waits while a hold is on, never past its bound (the waiter ends an expired hold itself
    /// if the watcher has not yet).
    pub(crate) async fn wait_released(&self, clock: &Arc<dyn Clock>) {
        // Bounded: each round returns, or waits for the release or the hold's bound.
        for _ in 0..1000 {
            if !self.is_holding() {
                return;
            }
            let listener = self.released.listen();
            let now = clock.now();
            let mut until = None;
            let _ = self.follow(|f| {
                let action = f.expire(now);
                until = f.hold_until();
                action
            });
            match until {
                Some(until) if self.is_holding() => {
                    futures::future::select(listener, clock.sleep_until(until)).await;
                }
                _ => return,
            }
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

    /// A `READONLY` reply came from this database's master, on a connection of backend
    /// `epoch`: it is a replica now (a stale master). Counts it and forgets the address (a new
    /// epoch) unless the master already moved, so the next connection asks the sentinels;
    /// `false` for a direct database or a replica reader, where the reply stands as it is.
    pub(crate) fn readonly_seen(&self, epoch: u64) -> bool {
        let Some(sentinel) = self.sentinel().filter(|s| !s.reads_replicas()) else {
            return false;
        };
        sentinel.readonly_reply();
        let forgot = sentinel.forget_if(epoch);
        keeper_event!(
            self,
            WARN,
            master = ?forgot.map(|m| m.to_string()),
            "READONLY from the master: it is a replica now; asking the sentinels again"
        );
        true
    }
}
