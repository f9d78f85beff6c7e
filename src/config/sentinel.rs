//! The `sentinel` section: a database whose master is found through Redis Sentinel. Its YAML
//! map (`sentinel: {master_name, nodes, username, password, ssl}`) and the resolved
//! [`SentinelSettings`].

use std::fmt;
use std::time::Duration;

use super::sentinel_kinds::ServerRole;
use super::{Origin, Secret, TlsSettings};
use crate::seams::Endpoint;

/// The keys of the YAML `sentinel` map; each is the table's key `sentinel_<name>`.
pub(crate) const SECTION_KEYS: &[&str] = &["master_name", "nodes", "username", "password", "ssl"];

/// How a database finds and follows its master through Redis Sentinel. Present in
/// [`DatabaseSettings::sentinel`](super::DatabaseSettings::sentinel) when `sentinel_master_name`
/// (YAML `sentinel: {master_name: …}`) is set.
///
/// ```
/// use redis_keeper::KeeperConfig;
/// let config = KeeperConfig::default().configure("main", |d| {
///     d.sentinel_master_name("mymaster")
///         .sentinel_nodes(vec!["127.0.0.1:26379".into(), "127.0.0.1:26380".into()])
/// });
/// let resolved = config.resolve(None, &std::collections::HashMap::new()).unwrap();
/// let sentinel = resolved.database("main").unwrap().sentinel.as_ref().unwrap();
/// assert_eq!(sentinel.master_name, "mymaster");
/// assert_eq!(sentinel.nodes.len(), 2);
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct SentinelSettings {
    /// The master's name in the sentinels' configuration. YAML `sentinel.master_name`.
    pub master_name: String,
    /// The sentinels, asked in turn (the one that answered last first). YAML `sentinel.nodes`.
    pub nodes: Vec<Endpoint>,
    /// The master, or a replica for reads. Key `role`. Default: the master.
    pub role: ServerRole,
    /// ACL user for the sentinels (not the data nodes'). YAML `sentinel.username`.
    pub username: Option<String>,
    /// Password for the sentinels (not the data nodes'). YAML `sentinel.password`.
    pub password: Option<Secret>,
    /// TLS to the sentinels (the database's `ssl_*` files). YAML `sentinel.ssl`; default: `ssl`.
    pub tls: Option<TlsSettings>,
    /// How often the master's address is asked for, as a backstop to the sentinels' events.
    /// Key `sentinel_poll_interval`. Default: 2 s.
    pub poll_interval: Duration,
    /// Longest time commands wait while a failover the sentinels announced is under way.
    /// Key `sentinel_failover_hold`. Default: 5 s.
    pub failover_hold: Duration,
    /// Where `master_name` was set (an unknown master is reported there).
    pub(crate) master_name_origin: Origin,
}

impl fmt::Debug for SentinelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelSettings")
            .field("master_name", &self.master_name)
            .field("nodes", &self.nodes)
            .field("role", &self.role)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls.is_some())
            .field("poll_interval", &self.poll_interval)
            .field("failover_hold", &self.failover_hold)
            .finish()
    }
}
