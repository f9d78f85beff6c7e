//! Configuration: YAML schema, validation, layering, discovery, service registry and environment.
//!
//! A [`KeeperConfig`] gathers the YAML layer (from [`KeeperConfig::discover`] or a string/file)
//! and the code layer (builder methods); [`KeeperConfig::resolve`] stacks every layer, lowest
//! first — built-in defaults < [`ServiceRegistry`] < YAML top-level keys < YAML per-database keys
//! < environment (global, then per-database) < code (global, then per-database) — and validates
//! the result into one [`DatabaseSettings`] per database. Errors name where the bad value came
//! from ([`Origin`]); secrets never appear in them.
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use redis_keeper::KeeperConfig;
//!
//! let yaml = "
//! host: 10.0.0.5
//! max_connections: 30
//! redis_databases:
//!   main: { db: 0, max_connections: 40 }
//!   legacy-audit: { db: 10, description: alias of audit }
//! ";
//! let config = KeeperConfig::from_yaml_str(yaml)?
//!     .configure("main", |d| d.response_timeout(Duration::from_secs(1)));
//! let env = HashMap::from([("REDIS_KEEPER_MAIN_MAX_CONNECTIONS".to_string(), "50".to_string())]);
//! let resolved = config.resolve(None, &env)?;
//! let main = resolved.database("main").unwrap();
//! assert_eq!(main.max_connections, 50); // env beats YAML
//! assert_eq!(main.response_timeout, Duration::from_secs(1)); // code beats everything
//! assert_eq!(resolved.database("legacy-audit").unwrap().db, 10);
//! assert_eq!(resolved.database("cache").unwrap().max_connections, 30);
//! # Ok::<(), redis_keeper::ConfigError>(())
//! ```

mod discover;
mod env;
mod error;
mod layer;
mod names;
mod registry;
mod resolve;
mod schema;
mod secret;
mod settings;
#[cfg(test)]
mod tests;

use std::time::Duration;

use tracing::level_filters::LevelFilter;

pub use env::{EnvSource, ProcessEnv};
pub use error::{ConfigError, Origin};
pub use names::RedisDatabase;
pub use registry::{RegistryEntry, ServiceRegistry};
pub use secret::Secret;
pub use settings::{
    BreakerSettings, DatabaseSettings, IdleSettings, Jitter, ReadinessSettings, ResolvedConfig,
    RetrySettings,
};

use layer::Layer;
use schema::YamlLayers;

/// The keeper's configuration before resolution: the YAML layer and the code layer.
///
/// `KeeperConfig::default()` serves the sixteen canonical databases ([`RedisDatabase`]) on
/// `127.0.0.1:6379` (loopback only) with the documented defaults.
///
/// ```
/// use redis_keeper::KeeperConfig;
/// let config = KeeperConfig::default()
///     .host("redis.internal")
///     .port(6380)
///     .password("s3cret")
///     .database("reports", 9) // a new name: an alias of analytics
///     .configure("main", |d| d.max_connections(10).shared_connections(4));
/// let resolved = config.resolve(None, &std::collections::HashMap::new()).unwrap();
/// assert_eq!(resolved.database("reports").unwrap().db, 9);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone)]
pub struct KeeperConfig {
    source: Option<String>,
    yaml: YamlLayers,
    code_global: Layer,
    code_databases: Vec<(String, Layer)>,
    code_log_level: Option<LevelFilter>,
}

impl Default for KeeperConfig {
    fn default() -> Self {
        Self {
            source: None,
            yaml: YamlLayers {
                top: Layer::new(Origin::Default),
                log_level: None,
                databases: Vec::new(),
            },
            code_global: Layer::new(Origin::Code),
            code_databases: Vec::new(),
            code_log_level: None,
        }
    }
}

impl KeeperConfig {
    /// The built-in defaults, same as [`KeeperConfig::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a YAML document (named `<string>` in errors).
    ///
    /// ```
    /// use redis_keeper::KeeperConfig;
    /// let err = KeeperConfig::from_yaml_str("redis_databases:\n  main:\n    colour: red\n").unwrap_err();
    /// let msg = err.to_string();
    /// assert!(msg.contains("colour") && msg.contains("line 3"), "{msg}");
    /// ```
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ConfigError> {
        Self::from_yaml_named(yaml, "<string>")
    }

    pub(crate) fn from_yaml_named(yaml: &str, source_name: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            source: Some(source_name.to_owned()),
            yaml: schema::parse(yaml, source_name)?,
            ..Self::default()
        })
    }

    /// Where the YAML layer came from (a file path or `<string>`), if any.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// Code layer: the host of every database.
    pub fn host(self, host: impl Into<String>) -> Self {
        self.configure_all(|d| d.host(host))
    }

    /// Code layer: the port of every database.
    pub fn port(self, port: u16) -> Self {
        self.configure_all(|d| d.port(port))
    }

    /// Code layer: the ACL user name of every database.
    pub fn username(self, username: impl Into<String>) -> Self {
        self.configure_all(|d| d.username(username))
    }

    /// Code layer: the password of every database (an empty one means none).
    pub fn password(self, password: impl Into<Secret>) -> Self {
        self.configure_all(|d| d.password(password))
    }

    /// Code layer: the level filter for the keeper's own tracing events.
    pub fn log_level(mut self, level: LevelFilter) -> Self {
        self.code_log_level = Some(level);
        self
    }

    /// Code layer: declares database `name` on logical database `db` (a new name, an alias of an
    /// existing number, or a canonical name moved explicitly). `db` must be `0..=15`; checked by
    /// [`KeeperConfig::resolve`].
    pub fn database(self, name: impl Into<String>, db: u8) -> Self {
        self.configure(name, |mut d| {
            d.0.values.db = Some(db);
            d
        })
    }

    /// Code layer: overrides settings of one database (it must be configured by then: canonical,
    /// in YAML, or declared with [`KeeperConfig::database`]; otherwise `resolve` fails with
    /// [`ConfigError::UnknownDatabase`]).
    pub fn configure(
        mut self,
        name: impl Into<String>,
        f: impl FnOnce(DatabaseOverrides) -> DatabaseOverrides,
    ) -> Self {
        let name = name.into();
        let layer = match self.code_databases.iter().position(|(n, _)| *n == name) {
            Some(i) => self.code_databases.remove(i).1,
            None => Layer::new(Origin::Code),
        };
        self.code_databases
            .push((name, f(DatabaseOverrides(layer)).0));
        self
    }

    /// Code layer: overrides settings of every database (per-database code overrides still win).
    pub fn configure_all(mut self, f: impl FnOnce(DatabaseOverrides) -> DatabaseOverrides) -> Self {
        let layer = std::mem::replace(&mut self.code_global, Layer::new(Origin::Code));
        self.code_global = f(DatabaseOverrides(layer)).0;
        self
    }
}

/// Code-layer overrides for one database (or all), built by chaining setters inside
/// [`KeeperConfig::configure`] / [`KeeperConfig::configure_all`].
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::KeeperConfig;
/// let config = KeeperConfig::default().configure("cache", |d| {
///     d.max_connections(64).idle_timeout(Duration::from_secs(30)).max_lifetime(None)
/// });
/// # let _ = config;
/// ```
#[derive(Debug)]
pub struct DatabaseOverrides(Layer);

macro_rules! setters {
    ($($(#[$doc:meta])* $method:ident($ty:ty) => $field:ident;)*) => {
        impl DatabaseOverrides {
            $(
                $(#[$doc])*
                pub fn $method(mut self, value: $ty) -> Self {
                    self.0.values.$field = Some(value.into());
                    self
                }
            )*
        }
    };
}

setters! {
    /// Host name or address (YAML `host`).
    host(impl Into<String>) => host;
    /// TCP port (YAML `port`).
    port(u16) => port;
    /// ACL user name (YAML `username`; empty means none).
    username(impl Into<String>) => username;
    /// Password (YAML `password`; empty means none).
    password(impl Into<Secret>) => password;
    /// Free text (YAML `description`).
    description(impl Into<String>) => description;
    /// Bound on shared + exclusive connections, ≥ 1 (YAML `max_connections`).
    max_connections(u32) => max_connections;
    /// Multiplexed connections, `1..=max_connections` (YAML `shared_connections`).
    shared_connections(u32) => shared_connections;
    /// TCP connect timeout (YAML `socket_connect_timeout`).
    connect_timeout(Duration) => socket_connect_timeout;
    /// Response timeout (YAML `socket_timeout`).
    response_timeout(Duration) => socket_timeout;
    /// TCP keepalive on or off (YAML `socket_keepalive`).
    socket_keepalive(bool) => socket_keepalive;
    /// Keepalive idle time (YAML `keepalive_idle`).
    keepalive_idle(Duration) => keepalive_idle;
    /// Keepalive probe interval (YAML `keepalive_interval`).
    keepalive_interval(Duration) => keepalive_interval;
    /// Keepalive probes, ≥ 1 (YAML `keepalive_probes`).
    keepalive_probes(u32) => keepalive_probes;
    /// `TCP_NODELAY` (YAML `tcp_nodelay`).
    tcp_nodelay(bool) => tcp_nodelay;
    /// A `debug` event per command, its name and argument count only (YAML `log_commands`).
    log_commands(bool) => log_commands;
    /// Background health check period (YAML `health_check_interval`).
    health_check_interval(Duration) => health_check_interval;
    /// Validate connections idle longer than this on checkout (YAML `check_on_checkout_after`).
    check_on_checkout_after(Duration) => check_on_checkout_after;
    /// Retry wait multiplier (YAML `retry_multiplier`).
    retry_multiplier(Duration) => retry_multiplier;
    /// Shortest retry wait (YAML `retry_min`).
    retry_min(Duration) => retry_min;
    /// Longest retry wait (YAML `retry_max`).
    retry_max(Duration) => retry_max;
    /// Connection attempts in total, ≥ 1 (YAML `retry_attempts`).
    retry_attempts(u32) => retry_attempts;
    /// Retry jitter (YAML `retry_jitter`).
    retry_jitter(Jitter) => retry_jitter;
    /// Whether timeouts are retried (YAML `retry_on_timeout`).
    retry_on_timeout(bool) => retry_on_timeout;
    /// Consecutive failures that open the breaker, ≥ 1 (YAML `breaker_failure_threshold`).
    breaker_failure_threshold(u32) => breaker_failure_threshold;
    /// How long the breaker stays open (YAML `breaker_open_seconds`).
    breaker_open_for(Duration) => breaker_open_seconds;
    /// Losses within this long of a counted one are the same event (YAML `breaker_loss_window`).
    breaker_loss_window(Duration) => breaker_loss_window;
    /// PING interval while the server is loading (YAML `loading_poll_interval`).
    loading_poll_interval(Duration) => loading_poll_interval;
    /// Give up waiting for `LOADING` to end after this (YAML `loading_timeout`).
    loading_timeout(Duration) => loading_timeout;
    /// Idle connections older than this are closed (YAML `idle_timeout`).
    idle_timeout(Duration) => idle_timeout;
    /// Idle sweep period (YAML `idle_sweep_interval`).
    idle_sweep_interval(Duration) => idle_sweep_interval;
    /// Idle connections kept by the sweep (YAML `min_idle`).
    min_idle(u32) => min_idle;
    /// How long a caller waits for a free connection (YAML `pool_wait_timeout`).
    pool_wait_timeout(Duration) => pool_wait_timeout;
}

impl DatabaseOverrides {
    /// Close connections older than this; `None` for no limit (YAML `max_lifetime`, 0 = none).
    pub fn max_lifetime(mut self, value: Option<Duration>) -> Self {
        self.0.values.max_lifetime = Some(value.unwrap_or(Duration::ZERO));
        self
    }
}
