//! [`SimNetwork`]: a transport that routes each address to its own [`SimRedis`].

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::SimRedis;
use crate::seams::{BoxStream, Endpoint, TcpOptions, Transport};

/// A [`Transport`] over many simulated servers, each at its own address: a master, its
/// replicas and the sentinels watching them, for scenarios that move between them.
///
/// A connect looks up the endpoint's text (`host:port`, as [`Endpoint`] displays it, so
/// `Endpoint::tcp("10.0.0.1", 6379)` is `"10.0.0.1:6379"`) and connects to that server exactly as
/// [`SimTransport`](super::SimTransport) does (refused while that server refuses); an address
/// with no server fails with `ConnectionRefused`. Cloning gives another handle to the same table,
/// so servers may be added or removed while a Keeper holds the transport.
///
/// ```
/// use redis_keeper::seams::{Endpoint, TcpOptions, Transport};
/// use redis_keeper::sim::{SimClock, SimNetwork, SimRedis, Trace};
/// use redis_keeper::Rng;
///
/// let clock = SimClock::new();
/// let master = SimRedis::new(clock.clone(), Rng::new(1), Trace::new());
/// let network = SimNetwork::new();
/// network.add("10.0.0.1:6379", master.clone());
/// let options = TcpOptions::default();
/// let there = Endpoint::tcp("10.0.0.1", 6379);
/// let stream = futures::executor::block_on(network.connect(&there, &options));
/// assert!(stream.is_ok());
/// assert_eq!(master.connections_accepted(), 1);
/// let nowhere = Endpoint::tcp("10.0.0.2", 6379);
/// let err = futures::executor::block_on(network.connect(&nowhere, &options));
/// assert_eq!(err.err().map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
/// ```
#[derive(Clone, Default)]
pub struct SimNetwork {
    servers: Arc<Mutex<BTreeMap<String, SimRedis>>>,
}

impl SimNetwork {
    /// A network with no server on it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `server` at `addr` (`"host:port"`), replacing any server there. Connections already
    /// open stay with the server they reached.
    ///
    /// ```
    /// use redis_keeper::sim::{SimClock, SimNetwork, SimRedis, Trace};
    /// use redis_keeper::Rng;
    ///
    /// let network = SimNetwork::new();
    /// network.add("127.0.0.1:26379", SimRedis::new(SimClock::new(), Rng::new(2), Trace::new()));
    /// assert!(format!("{network:?}").contains("127.0.0.1:26379"));
    /// ```
    pub fn add(&self, addr: &str, server: SimRedis) {
        self.table().insert(addr.to_owned(), server);
    }

    /// Takes the server at `addr` off the network: later connects there are refused (open
    /// connections stay; kill them on the server for a full partition).
    ///
    /// ```
    /// use redis_keeper::sim::{SimClock, SimNetwork, SimRedis, Trace};
    /// use redis_keeper::Rng;
    ///
    /// let network = SimNetwork::new();
    /// network.add("127.0.0.1:26379", SimRedis::new(SimClock::new(), Rng::new(2), Trace::new()));
    /// network.remove("127.0.0.1:26379");
    /// assert!(!format!("{network:?}").contains("127.0.0.1:26379"));
    /// ```
    pub fn remove(&self, addr: &str) {
        self.table().remove(addr);
    }

    /// The server at `addr`, if any.
    fn server(&self, addr: &str) -> Option<SimRedis> {
        self.table().get(addr).cloned()
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<String, SimRedis>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Transport for SimNetwork {
    async fn connect(&self, endpoint: &Endpoint, _options: &TcpOptions) -> io::Result<BoxStream> {
        let addr = endpoint.to_string();
        let Some(server) = self.server(&addr) else {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("no simulated server at {addr}"),
            ));
        };
        let stream = server.connect_from(&addr)?;
        Ok(Box::new(stream))
    }
}

impl fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addrs: Vec<String> = self.table().keys().cloned().collect();
        f.debug_struct("SimNetwork")
            .field("addresses", &addrs)
            .finish()
    }
}
