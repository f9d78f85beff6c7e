//! The slot map, asked for on a timer: `CLUSTER SLOTS` from the known nodes in turn until one
//! answers; a map that changed (a failover, a resharding) replaces the connection, so commands
//! stop going to a master that no longer serves (a frozen one never sends the `MOVED` that
//! would make redis-rs look again).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::future::{abortable, AbortHandle};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::topology::Topology;
use super::{lock, ClusterBackend};
use crate::database::Database;

/// Spawns the refresh loop of a cluster database; abort the handle to stop it.
pub(crate) fn spawn_refresher(db: Arc<Database>, cluster: Arc<ClusterBackend>) -> AbortHandle {
    let spawner = db.runtime().spawner().clone();
    let (task, handle) = abortable(async move {
        // Bounded by abort (close); each round sleeps a full interval.
        loop {
            let clock = db.runtime().clock();
            clock
                .sleep_until(clock.now() + cluster.settings().refresh_interval)
                .await;
            // Only once the database was used, and not while the breaker is open.
            if cluster.was_opened() && db.ensure_admitted().is_ok() {
                db.health_check().await;
            }
        }
    });
    spawner.spawn(Box::pin(async move {
        let _ = task.await;
    }));
    handle
}

impl ClusterBackend {
    /// Asks the known nodes in turn for the slot map; true when one answered with one.
    pub(crate) async fn refresh(&self, db: &Database) -> bool {
        self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
        let conn = match self.connection().await {
            Ok(conn) => conn,
            Err(e) => {
                keeper_event!(db, WARN, error = %e, "no cluster connection for a slot map refresh");
                self.counters
                    .refresh_failures
                    .fetch_add(1, Ordering::Relaxed);
                return false;
            }
        };
        let nodes = lock(&self.seeds).clone();
        let start = self.counters.refreshes.load(Ordering::Relaxed) as usize;
        for i in 0..nodes.len() {
            let node = &nodes[(start + i) % nodes.len()];
            let Some((host, port)) = split(node) else {
                continue;
            };
            let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
            let reply = conn
                .clone()
                .route_command(redis::cmd("CLUSTER").arg("SLOTS").clone(), to)
                .await;
            match reply.map(|v| Topology::parse(&v, node)) {
                Ok(Some(topology)) => {
                    if !topology.covers_all_slots() {
                        keeper_event!(db, WARN, node = %node, "the slot map leaves slots unserved");
                    }
                    if self.apply(topology) {
                        keeper_event!(db, INFO, "cluster slot map changed; reconnecting");
                        self.replace_connection();
                    }
                    return true;
                }
                Ok(_) => {}
                Err(e) => {
                    keeper_event!(db, DEBUG, node = %node, error = %e, "CLUSTER SLOTS failed")
                }
            }
        }
        self.counters
            .refresh_failures
            .fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Keeps `topology` as the slot map (its nodes as the seeds of the next connection);
    /// true when it differs from the last one.
    pub(super) fn apply(&self, topology: Topology) -> bool {
        self.counters
            .known_masters
            .store(topology.masters(), Ordering::Relaxed);
        if !topology.nodes().is_empty() {
            *lock(&self.seeds) = topology.nodes().to_vec();
        }
        let mut current = lock(&self.topology);
        let changed = current.as_ref().is_some_and(|old| *old != topology);
        *current = Some(topology);
        if changed {
            self.counters
                .topology_changes
                .fetch_add(1, Ordering::Relaxed);
        }
        changed
    }

    /// Whether a connection was ever opened (the database was used).
    pub(super) fn was_opened(&self) -> bool {
        self.counters.connections.load(Ordering::Relaxed) > 0
    }
}

/// `host:port` (IPv6 hosts in brackets) as its parts.
fn split(node: &str) -> Option<(String, u16)> {
    let (host, port) = node.rsplit_once(':')?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Some((host, port.parse().ok()?))
}
