//! [`ServiceRegistry`]: a user-supplied source of host, port and credentials.

use std::fmt;

use super::keys::Layer;
use super::{ConfigError, Origin, Secret};

/// A source of connection details (a service registry, a secrets manager, …), consulted once per
/// database at [`KeeperConfig::resolve`](super::KeeperConfig::resolve). Its values sit just above
/// the built-in defaults: YAML, environment and code all override them.
///
/// Return `Ok(None)` when the registry knows nothing about a database, and
/// [`ConfigError::registry`] when it fails. A registry that only has global values ignores
/// `database`.
///
/// ```
/// use std::collections::HashMap;
/// use redis_keeper::{ConfigError, KeeperConfig, ServiceRegistry};
/// use redis_keeper::config::RegistryEntry;
///
/// /// The cluster's registry: one Redis host for everything, a separate one for `vectors`.
/// #[derive(Debug)]
/// struct MyRegistry;
///
/// impl ServiceRegistry for MyRegistry {
///     fn redis_service(&self, database: &str) -> Result<Option<RegistryEntry>, ConfigError> {
///         Ok(Some(match database {
///             "vectors" => RegistryEntry::new().host("10.0.0.9").port(6380),
///             _ => RegistryEntry::new().host("10.0.0.8").password("from-vault"),
///         }))
///     }
/// }
///
/// let resolved = KeeperConfig::default()
///     .resolve(Some(&MyRegistry), &HashMap::new())
///     .unwrap();
/// assert_eq!(resolved.database("vectors").unwrap().endpoint.to_string(), "10.0.0.9:6380");
/// assert_eq!(resolved.database("main").unwrap().endpoint.to_string(), "10.0.0.8:6379");
/// ```
pub trait ServiceRegistry: Send + Sync + fmt::Debug {
    /// Connection details for `database` (a configured name such as `main`), if known.
    fn redis_service(&self, database: &str) -> Result<Option<RegistryEntry>, ConfigError>;
}

/// What a [`ServiceRegistry`] knows about one database; unset fields fall through to defaults.
///
/// ```
/// use redis_keeper::config::RegistryEntry;
/// let e = RegistryEntry::new().host("redis.internal").port(6380).username("app").password("pw");
/// assert_eq!(e.host.as_deref(), Some("redis.internal"));
/// assert!(!format!("{e:?}").contains("pw\""));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryEntry {
    /// Host name or address.
    pub host: Option<String>,
    /// TCP port.
    pub port: Option<u16>,
    /// ACL user name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
}

impl RegistryEntry {
    /// An empty entry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the host.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Sets the port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets the ACL user name.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the password.
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(password.into());
        self
    }

    pub(crate) fn into_layer(self) -> Layer {
        let mut layer = Layer::new(Origin::Registry);
        layer.values.host = self.host;
        layer.values.port = self.port;
        layer.values.username = self.username;
        layer.values.password = self.password;
        layer
    }
}
