//! Statistics: per-database counters (lock-free), and the serializable snapshots of a database and
//! of the whole manager (DESIGN §5).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::error::Error;
use crate::histogram::{Histogram, HistogramSnapshot};
use crate::policy::{BreakerStateKind, FailureKind, HealthState};
use crate::pool::PoolStats;

/// What a failed operation met, as a closed set of names (the `kind` label of the metrics).
///
/// ```
/// use redis_keeper::ErrorLabel;
/// assert_eq!(ErrorLabel::ResponseTimeout.as_str(), "response_timeout");
/// assert_eq!(ErrorLabel::ALL.len(), 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorLabel {
    /// The socket failed (refused, reset, closed).
    Io,
    /// Opening a connection took too long.
    ConnectTimeout,
    /// A reply did not arrive in time.
    ResponseTimeout,
    /// The reply could not be parsed.
    Protocol,
    /// The server kept answering `LOADING`.
    Loading,
    /// `TRYAGAIN`.
    TryAgain,
    /// `MASTERDOWN`.
    MasterDown,
    /// Authentication refused (`WRONGPASS`, `NOAUTH`, `NOPERM`).
    Auth,
    /// The TLS handshake failed.
    Tls,
    /// The circuit breaker rejected the call.
    CircuitOpen,
    /// Any other error reply (`WRONGTYPE`, `ERR …`).
    Server,
    /// `READONLY`: a replica (a stale master after a failover) refused a write.
    ReadOnly,
    /// A server a Sentinel named as the master was not one (`ROLE`).
    RoleMismatch,
    /// No pooled connection became free in time.
    PoolTimeout,
    /// The Keeper was closed.
    Closed,
    /// Anything else (a refused command, a configuration error).
    Other,
}

impl ErrorLabel {
    /// Every label, in order.
    pub const ALL: [ErrorLabel; 16] = [
        Self::Io,
        Self::ConnectTimeout,
        Self::ResponseTimeout,
        Self::Protocol,
        Self::Loading,
        Self::TryAgain,
        Self::MasterDown,
        Self::Auth,
        Self::Tls,
        Self::CircuitOpen,
        Self::Server,
        Self::ReadOnly,
        Self::RoleMismatch,
        Self::PoolTimeout,
        Self::Closed,
        Self::Other,
    ];

    /// The label's name, in snake case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Io => "io",
            Self::ConnectTimeout => "connect_timeout",
            Self::ResponseTimeout => "response_timeout",
            Self::Protocol => "protocol",
            Self::Loading => "loading",
            Self::TryAgain => "try_again",
            Self::MasterDown => "master_down",
            Self::Auth => "auth",
            Self::Tls => "tls",
            Self::CircuitOpen => "circuit_open",
            Self::Server => "server",
            Self::ReadOnly => "readonly",
            Self::RoleMismatch => "role_mismatch",
            Self::PoolTimeout => "pool_timeout",
            Self::Closed => "closed",
            Self::Other => "other",
        }
    }

    /// The label of an error.
    pub fn of(error: &Error) -> ErrorLabel {
        match error {
            Error::PoolTimeout { .. } => Self::PoolTimeout,
            Error::Closed => Self::Closed,
            e => e.failure_kind().map_or(Self::Other, Self::from),
        }
    }

    /// The label's place in [`ErrorLabel::ALL`] (the variants are declared in that order).
    fn index(self) -> usize {
        self as usize
    }
}

impl From<FailureKind> for ErrorLabel {
    /// The label of a failure the policies classified.
    fn from(kind: FailureKind) -> Self {
        match kind {
            FailureKind::Io => Self::Io,
            FailureKind::ConnectTimeout => Self::ConnectTimeout,
            FailureKind::ResponseTimeout => Self::ResponseTimeout,
            FailureKind::Protocol => Self::Protocol,
            FailureKind::Loading => Self::Loading,
            FailureKind::TryAgain => Self::TryAgain,
            FailureKind::MasterDown => Self::MasterDown,
            FailureKind::Auth => Self::Auth,
            FailureKind::Tls => Self::Tls,
            FailureKind::CircuitOpen => Self::CircuitOpen,
            FailureKind::Server => Self::Server,
            FailureKind::ReadOnly => Self::ReadOnly,
            FailureKind::RoleMismatch => Self::RoleMismatch,
        }
    }
}

/// The Sentinel side of a Sentinel-backed database, as a snapshot
/// ([`DatabaseStats::sentinel`]). The databases of one master (same sentinels, credentials
/// and timings) share one Sentinel backend: these are its figures, the same under each of
/// them; do not add them up over databases.
///
/// ```
/// let s = redis_keeper::SentinelStats::default();
/// assert_eq!(s.switches, 0);
/// assert!(s.master.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SentinelStats {
    /// The master's name in the sentinels' configuration.
    pub master_name: String,
    /// Where the master is, as last learnt (`host:port`); none before the first lookup or
    /// after a `ROLE` mismatch or `READONLY` until the sentinels are asked again. In the
    /// snapshot only, never a metric label.
    pub master: Option<String>,
    /// For `role: replica`: the healthy replicas read from, round robin (`host:port` each;
    /// in the snapshot only).
    pub replicas: Vec<String>,
    /// Times the master moved (a new address from an event, a poll or a lookup); for
    /// `role: replica`, times the list of healthy replicas changed.
    pub switches: u64,
    /// Lookups the sentinels answered with an address.
    pub lookups: u64,
    /// Lookups no sentinel answered (or none knew the master).
    pub lookup_failures: u64,
    /// New connections whose server did not answer `ROLE` as it should (`master`, or
    /// `slave` for `role: replica`).
    pub role_mismatches: u64,
    /// `READONLY` replies (a stale master that became a replica).
    pub readonly_replies: u64,
    /// Failover holds: announcements of a failover that made commands wait.
    pub holds: u64,
    /// Whether commands hold now.
    pub holding: bool,
    /// The sentinels known (configured, plus those they named).
    pub sentinels: usize,
}

/// The cluster side of a Redis Cluster database, as a snapshot ([`DatabaseStats::cluster`]).
///
/// ```
/// let s = redis_keeper::ClusterStats::default();
/// assert_eq!((s.moved, s.known_masters), (0, 0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClusterStats {
    /// `MOVED` replies seen (each followed to the node it names).
    pub moved: u64,
    /// `ASK` replies seen (each followed, after `ASKING`, to the node it names).
    pub ask: u64,
    /// Refusals waited out: `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`, `READONLY`.
    pub refusals: u64,
    /// Slot map refreshes (the timer's and the health checks'), and those no node answered.
    pub refreshes: u64,
    /// Refreshes no node answered.
    pub refresh_failures: u64,
    /// Refreshes that found the slot map changed (each replaced the cluster connection).
    pub topology_changes: u64,
    /// Cluster connections opened (the first, and one after each change of the slot map).
    pub connections: u64,
    /// Masters serving slots in the slot map as last read.
    pub known_masters: usize,
    /// Nodes (masters and replicas) in the slot map as last read.
    pub nodes: usize,
}

/// The circuit breaker of one database, as a snapshot.
///
/// ```
/// let b = redis_keeper::BreakerStats::default();
/// assert_eq!(b.state.as_str(), "closed");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BreakerStats {
    /// `closed`, `open` or `half_open`.
    pub state: BreakerStateKind,
    /// Failures in a row counted while closed; while open or half-open, the threshold that
    /// opened it.
    pub failure_count: u32,
    /// While open: how long until it lets one probe through.
    pub half_open_in: Option<Duration>,
    /// Times it moved to half-open (a probe was let through).
    pub half_opens: u64,
    /// Times a probe's success closed it again.
    pub closes: u64,
}

/// A snapshot of one database's statistics.
///
/// ```
/// let s = redis_keeper::DatabaseStats::default();
/// assert_eq!(s.success_rate(), 100.0); // no operations yet
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DatabaseStats {
    /// The database's name.
    pub name: String,
    /// The Redis db number.
    pub db: u8,
    /// Health now (Healthy, Degraded, Failed).
    pub health: Option<HealthState>,
    /// Commands (and pipelines) that got a reply that was not an error.
    pub successful_operations: u64,
    /// Commands (and pipelines) that failed: error reply, transport failure, timeout, rejection.
    pub failed_operations: u64,
    /// Connections opened.
    pub connections_created: u64,
    /// Connection attempts that failed.
    pub connections_failed: u64,
    /// Connection attempts retried by the retry schedule.
    pub retries: u64,
    /// Times the circuit breaker opened.
    pub breaker_trips: u64,
    /// Times a failed half-open probe opened the breaker again.
    pub breaker_reopens: u64,
    /// Calls rejected at once because the breaker was open.
    pub rejected_while_open: u64,
    /// `LOADING` episodes ridden out or timed out.
    pub loading_episodes: u64,
    /// Readiness waits that gave up with `NotReady` (still loading at the deadline).
    pub readiness_timeouts: u64,
    /// Background health checks run.
    pub health_checks: u64,
    /// Background health checks that failed.
    pub health_checks_failed: u64,
    /// Live `PooledConnection` handles now.
    pub live_handles: u64,
    /// Live [`Subscriber`](crate::Subscriber)s now.
    pub subscribers: u64,
    /// Pub/sub messages handed to subscribers' buffers.
    pub messages_delivered: u64,
    /// Pub/sub messages dropped because a subscriber's buffer was full.
    pub messages_dropped: u64,
    /// Reconnects after which subscribers subscribed again (messages published while they
    /// were away are gone).
    pub resubscriptions: u64,
    /// The last error's message (never containing a secret).
    pub last_error: Option<String>,
    /// Time since the last error.
    pub since_last_error: Option<Duration>,
    /// Mean command latency.
    pub mean_latency: Duration,
    /// Largest command latency seen.
    pub max_latency: Duration,
    /// Time since the database was set up.
    pub uptime: Duration,
    /// The pool's statistics.
    pub pool: PoolStats,
    /// The circuit breaker.
    pub breaker: BreakerStats,
    /// Sentinel: where the master is and how it moved; none for a direct database.
    pub sentinel: Option<SentinelStats>,
    /// Redis Cluster: redirections, refusals and the slot map; none for another backend.
    pub cluster: Option<ClusterStats>,
    /// Failed operations by what they met ([`ErrorLabel`] names), the labels with none left out.
    pub failures_by_kind: BTreeMap<&'static str, u64>,
    /// Failed checkouts (`get`, `get_exclusive` and their blocking twins) by what they met: no
    /// command ran. The labels with none are left out.
    pub checkout_failures_by_kind: BTreeMap<&'static str, u64>,
    /// Latency of the commands that got a reply (successes and error replies).
    pub command_latency: HistogramSnapshot,
}

impl DatabaseStats {
    /// Successful operations as a percentage of all operations; 100 when there were none.
    pub fn success_rate(&self) -> f64 {
        success_rate(self.successful_operations, self.failed_operations)
    }
}

/// A snapshot of the whole manager.
///
/// ```
/// let s = redis_keeper::ManagerStats::default();
/// assert_eq!(s.success_rate(), 100.0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ManagerStats {
    /// Databases configured (aliases counted once per name).
    pub total_databases: usize,
    /// Databases whose health is Healthy.
    pub healthy_databases: usize,
    /// Databases whose health is Degraded.
    pub degraded_databases: usize,
    /// Databases whose health is Failed.
    pub failed_databases: usize,
    /// All operations, successful or not.
    pub total_operations: u64,
    /// Successful operations over all databases.
    pub successful_operations: u64,
    /// Failed operations over all databases.
    pub failed_operations: u64,
    /// Checkouts served by an idle connection (all pools).
    pub pool_hits: u64,
    /// Checkouts that had to connect or wait (all pools).
    pub pool_misses: u64,
    /// Live `PooledConnection` handles over all databases.
    pub live_handles: u64,
    /// Time since the Keeper was built.
    pub uptime: Duration,
    /// When the Keeper was built (wall clock).
    pub start_time: Option<SystemTime>,
    /// Per database, by name.
    pub databases: BTreeMap<String, DatabaseStats>,
}

impl ManagerStats {
    /// Successful operations as a percentage of all operations; 100 when there were none.
    pub fn success_rate(&self) -> f64 {
        success_rate(self.successful_operations, self.failed_operations)
    }
}

fn success_rate(ok: u64, failed: u64) -> f64 {
    let total = ok + failed;
    if total == 0 {
        100.0
    } else {
        ok as f64 * 100.0 / total as f64
    }
}

/// The live counters of one database.
///
/// The ones every successful command writes come first and together (`repr(C)` keeps the
/// order), so a command dirties one cache line that other threads also write, not several.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct DbCounters {
    pub(crate) ok: AtomicU64,
    latency_total_micros: AtomicU64,
    latency_max_micros: AtomicU64,
    pub(crate) live_handles: AtomicU64,
    /// Error replies: failed operations that got a reply, so their latency was recorded.
    error_replies: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) connect_failed: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) trips: AtomicU64,
    pub(crate) reopens: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) loading_episodes: AtomicU64,
    pub(crate) readiness_timeouts: AtomicU64,
    pub(crate) health_checks: AtomicU64,
    pub(crate) health_failed: AtomicU64,
    pub(crate) subscribers: AtomicU64,
    pub(crate) messages_delivered: AtomicU64,
    pub(crate) messages_dropped: AtomicU64,
    pub(crate) resubscriptions: AtomicU64,
    pub(crate) half_opens: AtomicU64,
    pub(crate) closes: AtomicU64,
    failures_by_kind: [AtomicU64; ErrorLabel::ALL.len()],
    checkout_failures_by_kind: [AtomicU64; ErrorLabel::ALL.len()],
    /// The latency buckets (their sum is `latency_total_micros`).
    latency: Histogram,
    last_error: Mutex<Option<(String, Instant)>>,
}

impl DbCounters {
    /// The counters of database `name` (its histograms named for the `metrics` facade).
    pub(crate) fn for_database(name: &str) -> Self {
        Self {
            latency: Histogram::named("redis_keeper_command_duration_seconds", name),
            ..Self::default()
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts a reply that took `took`: a success, or a failed operation when it is an error
    /// reply (`error_reply` names what it said). Three writes in the common case (the success,
    /// the latency total and its bucket: the replies with a latency are the successes and the
    /// error replies, so no count of them is needed).
    pub(crate) fn record_reply(&self, took: Duration, error_reply: Option<ErrorLabel>) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if let Some(label) = error_reply {
            Self::bump(&self.failed);
            Self::bump(&self.error_replies);
            Self::bump(&self.failures_by_kind[label.index()]);
        } else {
            Self::bump(&self.ok);
        }
        self.latency_total_micros
            .fetch_add(micros, Ordering::Relaxed);
        // A new maximum is rare: a load first spares the read-modify-write (a contended write
        // to a shared cache line) on almost every command.
        if micros > self.latency_max_micros.load(Ordering::Relaxed) {
            self.latency_max_micros.fetch_max(micros, Ordering::Relaxed);
        }
        self.latency.record_micros(micros);
    }

    /// Counts a failed operation that met `error` (an error reply is counted by
    /// [`DbCounters::record_reply`]).
    pub(crate) fn record_failure(&self, error: &Error) {
        Self::bump(&self.failed);
        Self::bump(&self.failures_by_kind[ErrorLabel::of(error).index()]);
    }

    /// Counts a checkout that failed with `error`.
    pub(crate) fn record_checkout_failure(&self, error: &Error) {
        Self::bump(&self.checkout_failures_by_kind[ErrorLabel::of(error).index()]);
    }

    /// The non-zero counts of `counters`, by label name.
    fn by_label(counters: &[AtomicU64; ErrorLabel::ALL.len()]) -> BTreeMap<&'static str, u64> {
        ErrorLabel::ALL
            .iter()
            .map(|l| (l.as_str(), Self::read(&counters[l.index()])))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub(crate) fn record_error(&self, message: String, at: Instant) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some((message, at));
    }

    /// Fills the counter fields of a snapshot.
    pub(crate) fn fill(&self, now: Instant, out: &mut DatabaseStats) {
        out.successful_operations = Self::read(&self.ok);
        out.failed_operations = Self::read(&self.failed);
        out.connections_created = Self::read(&self.created);
        out.connections_failed = Self::read(&self.connect_failed);
        out.retries = Self::read(&self.retries);
        out.breaker_trips = Self::read(&self.trips);
        out.breaker_reopens = Self::read(&self.reopens);
        out.rejected_while_open = Self::read(&self.rejected);
        out.loading_episodes = Self::read(&self.loading_episodes);
        out.readiness_timeouts = Self::read(&self.readiness_timeouts);
        out.health_checks = Self::read(&self.health_checks);
        out.health_checks_failed = Self::read(&self.health_failed);
        out.live_handles = Self::read(&self.live_handles);
        out.subscribers = Self::read(&self.subscribers);
        out.messages_delivered = Self::read(&self.messages_delivered);
        out.messages_dropped = Self::read(&self.messages_dropped);
        out.resubscriptions = Self::read(&self.resubscriptions);
        if let Some(mean) = Self::read(&self.latency_total_micros)
            .checked_div(Self::read(&self.ok) + Self::read(&self.error_replies))
        {
            out.mean_latency = Duration::from_micros(mean);
        }
        out.max_latency = Duration::from_micros(Self::read(&self.latency_max_micros));
        out.command_latency = self
            .latency
            .snapshot_with_sum(Duration::from_micros(Self::read(
                &self.latency_total_micros,
            )));
        out.failures_by_kind = Self::by_label(&self.failures_by_kind);
        out.checkout_failures_by_kind = Self::by_label(&self.checkout_failures_by_kind);
        if let Some((message, at)) = &*self.last_error.lock().unwrap_or_else(|e| e.into_inner()) {
            out.last_error = Some(message.clone());
            out.since_last_error = Some(now.saturating_duration_since(*at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_rate_is_100_when_empty_and_never_negative() {
        assert_eq!(success_rate(0, 0), 100.0);
        assert_eq!(success_rate(3, 1), 75.0);
        assert_eq!(success_rate(0, 5), 0.0);
    }

    /// `v` as one YAML scalar.
    fn yaml<T: Serialize>(v: &T) -> String {
        serde_yaml::to_string(v).unwrap().trim().to_owned()
    }

    #[test]
    fn states_serialise_as_the_seed_spelled_them() {
        assert_eq!(yaml(&HealthState::Healthy), "healthy");
        assert_eq!(yaml(&HealthState::Failed), "failed");
        assert_eq!(yaml(&BreakerStateKind::HalfOpen), "half_open");
    }

    #[test]
    fn counters_fill_a_snapshot() {
        let c = DbCounters::default();
        c.record_reply(Duration::from_millis(2), None);
        c.record_reply(Duration::from_millis(4), None);
        c.record_reply(Duration::from_millis(6), Some(ErrorLabel::Auth));
        DbCounters::bump(&c.failed); // a failure without a reply: no latency
        let t = Instant::now();
        c.record_error("boom".into(), t);
        let mut s = DatabaseStats::default();
        c.fill(t + Duration::from_secs(3), &mut s);
        assert_eq!(s.successful_operations, 2);
        assert_eq!(s.failed_operations, 2);
        assert_eq!(s.mean_latency, Duration::from_millis(4));
        assert_eq!(s.max_latency, Duration::from_millis(6));
        assert_eq!(s.last_error.as_deref(), Some("boom"));
        assert_eq!(s.since_last_error, Some(Duration::from_secs(3)));
    }
}
