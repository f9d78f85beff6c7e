//! The resolved settings the manager consumes: [`DatabaseSettings`] and [`ResolvedConfig`].

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::level_filters::LevelFilter;

use super::{
    ClusterSettings, ConfigError, Jitter, RedisDatabase, Secret, SentinelSettings, TlsSettings,
};
use crate::seams::{Endpoint, TcpOptions};

/// Parses a log level: `error`, `warn` (or Python's `warning`), `info`, `debug`, `trace`,
/// case-insensitive.
pub(crate) fn parse_log_level(text: &str) -> Result<LevelFilter, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "error" => Ok(LevelFilter::ERROR),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        "info" => Ok(LevelFilter::INFO),
        "debug" => Ok(LevelFilter::DEBUG),
        "trace" => Ok(LevelFilter::TRACE),
        _ => Err("expected error, warn, info, debug or trace".to_owned()),
    }
}

/// Connection-establishment retry schedule: after failed attempt n wait
/// `clamp(multiplier * 2^(n-1), min, max)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetrySettings {
    /// Base of the exponential wait. YAML `retry_multiplier` (or seed `retry_delay`). Default: 2 s.
    pub multiplier: Duration,
    /// Shortest wait. YAML `retry_min` (or seed `retry_delay`). Default: 2 s.
    pub min: Duration,
    /// Longest wait. YAML `retry_max`. Default: 30 s.
    pub max: Duration,
    /// Attempts in total, ≥ 1. YAML `retry_attempts` / `max_retries`. Default: 5.
    pub attempts: u32,
    /// Jitter. YAML `retry_jitter`. Default: [`Jitter::None`].
    pub jitter: Jitter,
    /// Whether timeouts are retried. YAML `retry_on_timeout`. Default: true.
    pub retry_on_timeout: bool,
}

/// Circuit breaker thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker, ≥ 1. YAML `breaker_failure_threshold`. Default: 5.
    pub failure_threshold: u32,
    /// How long the breaker stays open. YAML `breaker_open_seconds`. Default: 60 s.
    pub open_for: Duration,
    /// Connections already open that are lost within this long after a loss the breaker
    /// counted went down in the same event and count no further failure
    /// ([`LossGrouping`](crate::policy::LossGrouping)). YAML `breaker_loss_window`.
    /// Default: this database's response timeout (`socket_timeout`).
    pub loss_window: Duration,
}

/// Readiness wait while the server answers `-LOADING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadinessSettings {
    /// PING interval while loading, > 0. YAML `loading_poll_interval`. Default: 2 s.
    pub loading_poll_interval: Duration,
    /// Give up this long after the first `LOADING`. YAML `loading_timeout`. Default: 60 s.
    pub loading_timeout: Duration,
}

/// Idle eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdleSettings {
    /// A connection idle longer than this is stale. YAML `idle_timeout`. Default: 300 s.
    pub idle_timeout: Duration,
    /// Sweep period, > 0. YAML `idle_sweep_interval`. Default: 60 s.
    pub sweep_interval: Duration,
    /// Idle connections the sweep keeps, ≤ `max_connections`. YAML `min_idle`. Default: 0.
    pub min_idle: u32,
    /// Close connections older than this. YAML `max_lifetime` (0 = no limit). Default: none.
    pub max_lifetime: Option<Duration>,
}

/// Everything the manager needs to serve one named database, after layering and validation.
///
/// `Debug` never shows the password.
///
/// ```
/// use redis_keeper::KeeperConfig;
/// use redis_keeper::config::EnvSource;
/// use std::collections::HashMap;
///
/// let env: HashMap<String, String> = HashMap::new();
/// let resolved = KeeperConfig::default().password("s3cret").resolve(None, &env).unwrap();
/// let main = resolved.database("main").unwrap();
/// assert_eq!(main.db, 0);
/// assert_eq!(main.max_connections, 20);
/// assert!(!format!("{main:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DatabaseSettings {
    /// The database's name, e.g. `main`.
    pub name: String,
    /// The logical database number, `0..=15`.
    pub db: u8,
    /// Free text from YAML `description`.
    pub description: Option<String>,
    /// Where to connect. YAML `host` / `port`. Default: `127.0.0.1:6379`.
    pub endpoint: Endpoint,
    /// ACL user name. YAML `username`. Default: none.
    pub username: Option<String>,
    /// Password. YAML `password`, env `REDIS_PASSWORD`. Default: none.
    pub password: Option<Secret>,
    /// Bound on shared + exclusive connections together, ≥ 1. Default: 20.
    pub max_connections: u32,
    /// Multiplexed connections shared by `get`, `1..=max_connections`. Default: 2.
    pub shared_connections: u32,
    /// TCP connect timeout. YAML `socket_connect_timeout`. Default: 5 s.
    pub connect_timeout: Duration,
    /// Response timeout. YAML `socket_timeout` / `timeout` / `timeout_seconds`. Default: 5 s.
    pub response_timeout: Duration,
    /// Socket options: YAML `socket_keepalive`, `keepalive_*`, `tcp_nodelay`.
    pub tcp: TcpOptions,
    /// TLS, when YAML `ssl` is on (or the URL is `rediss://`). Default: none (plaintext).
    pub tls: Option<TlsSettings>,
    /// Redis Sentinel, when YAML `sentinel.master_name` is set: the master is found and
    /// followed through the sentinels instead of `host`/`port`. Default: none (direct).
    pub sentinel: Option<SentinelSettings>,
    /// Redis Cluster, when YAML `cluster.nodes` is set (served with the `cluster` feature):
    /// commands are routed by slot over the cluster's nodes. Default: none.
    pub cluster: Option<ClusterSettings>,
    /// Background PING period, > 0. YAML `health_check_interval`. Default: 30 s.
    pub health_check_interval: Duration,
    /// A connection idle longer than this is validated (PING) on checkout.
    /// YAML `check_on_checkout_after`. Default: this database's `health_check_interval`.
    pub check_on_checkout_after: Duration,
    /// Connection-establishment retry schedule.
    pub retry: RetrySettings,
    /// Circuit breaker.
    pub breaker: BreakerSettings,
    /// `LOADING` readiness wait.
    pub readiness: ReadinessSettings,
    /// Idle eviction.
    pub idle: IdleSettings,
    /// How long a caller waits for a free connection. YAML `pool_wait_timeout`. Default: 5 s.
    pub pool_wait_timeout: Duration,
    /// Whether each command is a `debug` tracing event (database, command name, argument count;
    /// never the values). YAML `log_commands`. Default: false.
    pub log_commands: bool,
}

/// The outcome of [`KeeperConfig::resolve`](super::KeeperConfig::resolve): global settings and
/// one [`DatabaseSettings`] per configured name (canonical names, YAML names, code names).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ResolvedConfig {
    /// Level filter for the keeper's own tracing events. YAML `log_level`. Default: `INFO`.
    pub log_level: LevelFilter,
    /// Where the YAML came from, if any.
    pub source: Option<String>,
    pub(crate) databases: BTreeMap<String, DatabaseSettings>,
}

impl ResolvedConfig {
    /// The settings of a configured database; `None` for an unknown name (never db 0).
    ///
    /// ```
    /// use redis_keeper::{KeeperConfig, RedisDatabase};
    /// use std::collections::HashMap;
    /// let r = KeeperConfig::default().resolve(None, &HashMap::new()).unwrap();
    /// assert_eq!(r.database(RedisDatabase::Audit).unwrap().db, 10);
    /// assert!(r.database("nope").is_none());
    /// ```
    pub fn database(&self, name: impl AsRef<str>) -> Option<&DatabaseSettings> {
        self.databases.get(name.as_ref())
    }

    /// Like [`ResolvedConfig::database`], but an unknown name is a [`ConfigError::UnknownDatabase`].
    pub fn require(&self, name: impl AsRef<str>) -> Result<&DatabaseSettings, ConfigError> {
        let name = name.as_ref();
        self.database(name)
            .ok_or_else(|| ConfigError::UnknownDatabase {
                name: name.to_owned(),
            })
    }

    /// Every configured database, by name.
    pub fn databases(&self) -> impl Iterator<Item = &DatabaseSettings> {
        self.databases.values()
    }

    /// The settings of a canonical database (always configured).
    pub fn canonical(&self, db: RedisDatabase) -> &DatabaseSettings {
        &self.databases[db.name()]
    }
}
