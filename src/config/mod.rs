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

mod cluster;
mod discover;
mod env;
mod error;
mod keys;
mod kinds;
mod names;
mod registry;
mod resolve;
mod schema;
mod secret;
mod section;
mod sentinel;
mod sentinel_kinds;
mod settings;
mod table;
#[cfg(test)]
mod tests;
mod tls;
mod url;

use tracing::level_filters::LevelFilter;

/// The retry jitter (YAML `retry_jitter`): the policy layer's own type.
pub use crate::policy::Jitter;
pub use cluster::ClusterSettings;
pub use env::{EnvSource, ProcessEnv};
pub use error::{ConfigError, Origin};
pub use names::RedisDatabase;
pub use registry::{RegistryEntry, ServiceRegistry};
pub use secret::Secret;
pub use sentinel::SentinelSettings;
pub use sentinel_kinds::ServerRole;
pub use settings::{
    BreakerSettings, DatabaseSettings, IdleSettings, ReadinessSettings, ResolvedConfig,
    RetrySettings,
};
pub use tls::{CertReqs, TlsSettings};

use keys::Layer;
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

    /// Code layer: the address of every database as one URL (`redis://…`, `unix://…`; see the
    /// `url` key). A URL with a database number is only accepted per database.
    ///
    /// ```
    /// use redis_keeper::{seams::Endpoint, KeeperConfig};
    /// let config = KeeperConfig::default().url("redis://app:s%3Acret@10.0.0.5:6380");
    /// let resolved = config.resolve(None, &std::collections::HashMap::new()).unwrap();
    /// let main = resolved.database("main").unwrap();
    /// assert_eq!(main.endpoint, Endpoint::tcp("10.0.0.5", 6380));
    /// assert_eq!(main.password.as_ref().unwrap().expose(), "s:cret");
    /// assert!(!format!("{config:?}").contains("s%3Acret"));
    /// ```
    pub fn url(self, url: impl Into<Secret>) -> Self {
        self.configure_all(|d| d.url(url))
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
/// [`KeeperConfig::configure`] / [`KeeperConfig::configure_all`]. There is one setter per
/// configuration key (the README's key table), generated from the key table.
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
