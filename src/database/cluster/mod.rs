//! A database served by a Redis Cluster: redis-rs's cluster connection (slot routing, one
//! multiplexed connection per node) with its own retries off, under the keeper's policies —
//! redirections followed, refusals waited out, a command that may have run never re-sent
//! unless it only reads, the breaker fed only when no node answers, and the slot map asked for
//! on a timer (redis-rs asks only after a `MOVED`, which a frozen master never sends).

mod outcome;
mod refresh;
mod run;
#[cfg(feature = "cluster-tls")]
mod tls;
mod topology;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::RedisError;

use crate::config::{ClusterSettings, DatabaseSettings};
use crate::rng::Rng;
use crate::seams::{timeout_at, Endpoint, Runtime};
use crate::stats::ClusterStats;

pub(crate) use refresh::spawn_refresher;
use topology::Topology;

/// The cluster side of one database.
pub(crate) struct ClusterBackend {
    settings: ClusterSettings,
    /// The database's credentials, timeouts and socket options, for every node.
    username: Option<String>,
    password: Option<String>,
    connect_timeout: Duration,
    response_timeout: Duration,
    tcp: crate::seams::TcpOptions,
    /// TLS to every node (`ssl`), with the database's files.
    #[cfg(feature = "cluster-tls")]
    tls: Option<tls::ClusterTls>,
    runtime: Runtime,
    /// The connection commands go through; replaced when the slot map changed.
    current: Mutex<Option<ClusterConnection>>,
    /// Held while a connection is being opened (one at a time).
    opening: futures::lock::Mutex<()>,
    /// The nodes a new connection starts from: the configured ones, then those the last slot
    /// map listed.
    seeds: Mutex<Vec<String>>,
    /// The slot map as last read.
    topology: Mutex<Option<Topology>>,
    rng: Mutex<Rng>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    moved: AtomicU64,
    ask: AtomicU64,
    refusals: AtomicU64,
    refreshes: AtomicU64,
    refresh_failures: AtomicU64,
    topology_changes: AtomicU64,
    connections: AtomicU64,
    known_masters: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClusterBackend {
    /// The backend of a database whose settings hold `cluster`.
    pub(crate) fn new(
        settings: &DatabaseSettings,
        cluster: &ClusterSettings,
        runtime: Runtime,
        rng: Rng,
    ) -> Self {
        let seeds = cluster.nodes.iter().filter_map(node_address).collect();
        Self {
            settings: cluster.clone(),
            username: settings.username.clone(),
            password: settings.password.as_ref().map(|p| p.expose().to_owned()),
            connect_timeout: settings.connect_timeout,
            response_timeout: settings.response_timeout,
            tcp: settings.tcp,
            #[cfg(feature = "cluster-tls")]
            tls: settings.tls.as_ref().map(tls::ClusterTls::new),
            runtime,
            current: Mutex::new(None),
            opening: futures::lock::Mutex::new(()),
            seeds: Mutex::new(seeds),
            topology: Mutex::new(None),
            rng: Mutex::new(rng),
            counters: Counters::default(),
        }
    }

    /// The cluster's settings.
    pub(crate) fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// The connection to send on, opened (bounded by the connect and response timeouts) when
    /// there is none.
    pub(crate) async fn connection(&self) -> Result<ClusterConnection, RedisError> {
        if let Some(conn) = lock(&self.current).clone() {
            return Ok(conn);
        }
        let _opening = self.opening.lock().await;
        if let Some(conn) = lock(&self.current).clone() {
            return Ok(conn);
        }
        let conn = self.open().await?;
        *lock(&self.current) = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the current connection: the next command opens a new one from the seeds.
    pub(crate) fn replace_connection(&self) {
        lock(&self.current).take();
    }

    /// A new connection from the seeds, opened in a task of the keeper's runtime (redis-rs
    /// spawns its own task on the runtime it finds current).
    async fn open(&self) -> Result<ClusterConnection, RedisError> {
        let client = self.client()?;
        let (tx, rx) = futures::channel::oneshot::channel();
        self.runtime.spawner().spawn(Box::pin(async move {
            let _ = tx.send(client.get_async_connection().await);
        }));
        let clock = self.runtime.clock();
        let limit = self.connect_timeout + self.response_timeout;
        match timeout_at(&**clock, clock.now() + limit, rx).await {
            Ok(Ok(Ok(mut conn))) => {
                self.counters.connections.fetch_add(1, Ordering::Relaxed);
                // The slot map it starts from, for the stats and the next seeds (redis-rs
                // keeps its own): a failure here is the next command's to meet.
                let slots = redis::cmd("CLUSTER").arg("SLOTS").clone();
                let any = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                if let Ok(reply) = conn.route_command(slots, any).await {
                    if let Some(topology) = Topology::parse(&reply, "") {
                        self.apply(topology);
                    }
                }
                Ok(conn)
            }
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(io_error(
                std::io::ErrorKind::BrokenPipe,
                "cluster connect task ended",
            )),
            Err(_) => Err(io_error(
                std::io::ErrorKind::TimedOut,
                &format!("no cluster node answered within {limit:?}"),
            )),
        }
    }

    /// redis-rs's client, every risky default set explicitly: no retries of its own (it would
    /// re-send a command after a timeout or a dropped connection), each node's response and
    /// connect timeouts the database's, no overall timeout (the keeper's command deadline
    /// bounds a command with its redirections and waits).
    fn client(&self) -> Result<ClusterClient, RedisError> {
        let seeds = lock(&self.seeds).clone();
        #[cfg(feature = "cluster-tls")]
        let urls: Vec<String> = match &self.tls {
            Some(tls) => seeds.iter().map(|a| tls.url(a)).collect(),
            None => seeds.iter().map(|a| format!("redis://{a}")).collect(),
        };
        #[cfg(not(feature = "cluster-tls"))]
        let urls: Vec<String> = seeds.iter().map(|a| format!("redis://{a}")).collect();
        let mut tcp = redis::io::tcp::TcpSettings::default().set_nodelay(self.tcp.nodelay);
        if let Some(keepalive) = self.tcp.keepalive_params() {
            tcp = tcp.set_keepalive(keepalive);
        }
        let mut builder = ClusterClientBuilder::new(urls)
            .retries(0)
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.response_timeout)
            .overall_response_timeout(None)
            .tcp_settings(tcp);
        if let Some(user) = &self.username {
            builder = builder.username(user);
        }
        if let Some(password) = &self.password {
            builder = builder.password(password);
        }
        #[cfg(feature = "cluster-tls")]
        if let Some(tls) = &self.tls {
            builder = builder.certs(tls.certificates()?);
        }
        builder.build()
    }

    /// The cluster's figures now.
    pub(crate) fn stats(&self) -> ClusterStats {
        let c = &self.counters;
        let read = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClusterStats {
            moved: read(&c.moved),
            ask: read(&c.ask),
            refusals: read(&c.refusals),
            refreshes: read(&c.refreshes),
            refresh_failures: read(&c.refresh_failures),
            topology_changes: read(&c.topology_changes),
            connections: read(&c.connections),
            known_masters: c.known_masters.load(Ordering::Relaxed),
            nodes: lock(&self.topology).as_ref().map_or(0, |t| t.nodes().len()),
        }
    }
}

/// `host:port` of a TCP endpoint (IPv6 hosts in brackets); a cluster has no Unix sockets.
fn node_address(endpoint: &Endpoint) -> Option<String> {
    match endpoint {
        Endpoint::Tcp { host, port } if host.contains(':') => Some(format!("[{host}]:{port}")),
        Endpoint::Tcp { host, port } => Some(format!("{host}:{port}")),
        _ => None,
    }
}

fn io_error(kind: std::io::ErrorKind, message: &str) -> RedisError {
    RedisError::from(std::io::Error::new(kind, message.to_owned()))
}
