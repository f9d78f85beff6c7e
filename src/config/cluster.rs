//! The `cluster` section: a database served by a Redis Cluster. Its YAML map
//! (`cluster: {nodes, refresh_interval, command_deadline, max_attempts}`) and the resolved
//! [`ClusterSettings`].

use std::time::Duration;

use crate::seams::Endpoint;

/// The keys of the YAML `cluster` map; each is the table's key `cluster_<name>`.
pub(crate) const SECTION_KEYS: &[&str] = &[
    "nodes",
    "refresh_interval",
    "command_deadline",
    "max_attempts",
];

/// How a database reaches a Redis Cluster (served with the `cluster` feature on tokio or smol;
/// otherwise building a Keeper with one fails with `Error::ClusterNotServed`). Present in
/// [`DatabaseSettings::cluster`](super::DatabaseSettings::cluster) when `cluster_nodes` (YAML
/// `cluster: {nodes: […]}`) is set. The data nodes' credentials are the database's own
/// `username` and `password`; its response and connect timeouts apply to every node.
///
/// ```
/// use redis_keeper::KeeperConfig;
/// let config = KeeperConfig::default().configure("main", |d| {
///     d.cluster_nodes(vec!["127.0.0.1:7000".into(), "127.0.0.1:7001".into()])
/// });
/// let resolved = config.resolve(None, &std::collections::HashMap::new()).unwrap();
/// let cluster = resolved.database("main").unwrap().cluster.as_ref().unwrap();
/// assert_eq!(cluster.nodes.len(), 2);
/// assert_eq!(cluster.max_attempts, 16);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterSettings {
    /// Seed nodes: the first that answers tells the slot map. YAML `cluster.nodes`.
    pub nodes: Vec<Endpoint>,
    /// How often the slot map is asked for (redis-rs itself asks only after a `MOVED`). Key `cluster_refresh_interval`. Default: 5 s.
    pub refresh_interval: Duration,
    /// Longest time one command may take in all, its redirections and waits included.
    /// Key `cluster_command_deadline`. Default: 10 s.
    pub command_deadline: Duration,
    /// Sends of one command in all (redirections and retries after a refusal included).
    /// Key `cluster_max_attempts`. Default: 16.
    pub max_attempts: u32,
}
