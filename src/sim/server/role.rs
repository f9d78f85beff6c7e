//! The replication role: [`SimRole`], `ROLE`, `INFO replication` and the READONLY rule.

use super::args::split_addr;
use super::resp::Reply;
use super::{SimRedis, State};

/// The error a replica answers to a write command (Redis's `shared.roslaveerr`).
pub(super) const READONLY: &str = "READONLY You can't write against a read only replica.";

/// The replication role a [`SimRedis`] plays (set with [`SimRedis::set_role`]).
///
/// A replica answers `ROLE` as `slave` of its master, says `role:slave` in `INFO replication`
/// and refuses every write command with `-READONLY`; reads, `PING`, pub/sub and the connection
/// commands work as on a master. Nothing is replicated: data set on the master does not appear
/// on the replica (seed it with [`SimRedis::set`], which ignores the role).
///
/// ```
/// use redis_keeper::sim::SimRole;
/// let role = SimRole::Replica { master: "10.0.0.1:6379".to_string() };
/// assert_ne!(role, SimRole::default());
/// assert_eq!(SimRole::default(), SimRole::Master);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SimRole {
    /// A master, accepting writes (the default).
    #[default]
    Master,
    /// A read-only replica.
    Replica {
        /// Its master's address, `"host:port"`.
        master: String,
    },
}

impl SimRedis {
    /// Makes the server a master or a read-only replica, from the next command on (a
    /// transaction already queued with writes then fails at `EXEC`, as in Redis). Connections
    /// and data stay. A Sentinel personality ([`SimRedis::set_sentinel`]) takes precedence.
    ///
    /// ```
    /// use redis_keeper::sim::{SimClock, SimRedis, SimRole, Trace};
    /// use redis_keeper::Rng;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let sim = SimRedis::new(SimClock::new(), Rng::new(3), Trace::new());
    /// sim.set_role(SimRole::Replica { master: "10.0.0.1:6379".into() });
    /// let mut stream = sim.connect().unwrap();
    /// futures::executor::block_on(async {
    ///     stream.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n").await.unwrap();
    ///     let mut buf = [0u8; 64];
    ///     let n = stream.read(&mut buf).await.unwrap();
    ///     let readonly = b"-READONLY You can't write against a read only replica.\r\n";
    ///     assert_eq!(&buf[..n], &readonly[..]);
    /// });
    /// assert_eq!(sim.get(0, b"k"), None);
    /// ```
    pub fn set_role(&self, role: SimRole) {
        self.with(|st| {
            st.record(format_args!("role {role:?}"));
            st.role = role;
        });
    }

    /// The replication role set with [`SimRedis::set_role`] ([`SimRole::Master`] by default).
    ///
    /// ```
    /// use redis_keeper::sim::{SimClock, SimRedis, SimRole, Trace};
    /// use redis_keeper::Rng;
    ///
    /// let sim = SimRedis::new(SimClock::new(), Rng::new(3), Trace::new());
    /// assert_eq!(sim.role(), SimRole::Master);
    /// let replica = SimRole::Replica { master: "10.0.0.1:6379".into() };
    /// sim.set_role(replica.clone());
    /// assert_eq!(sim.role(), replica);
    /// ```
    pub fn role(&self) -> SimRole {
        self.lock().role.clone()
    }
}

impl State {
    /// Whether the server is a read-only replica (a Sentinel never is).
    pub(super) fn is_replica(&self) -> bool {
        matches!(self.role, SimRole::Replica { .. }) && !self.is_sentinel()
    }

    /// `ROLE`: `[master, 0, []]`, `[slave, host, port, connected, 0]`, or a Sentinel's
    /// `[sentinel, [master names]]`.
    pub(super) fn role_reply(&self) -> Reply {
        if self.is_sentinel() {
            return self.sentinel_role();
        }
        match &self.role {
            SimRole::Master => Reply::Array(vec![
                Reply::bulk("master"),
                Reply::Int(0),
                Reply::Array(vec![]),
            ]),
            SimRole::Replica { master } => {
                let (host, port) = split_addr(master);
                Reply::Array(vec![
                    Reply::bulk("slave"),
                    Reply::bulk(host),
                    Reply::Int(port.parse().unwrap_or(0)),
                    Reply::bulk("connected"),
                    Reply::Int(0),
                ])
            }
        }
    }

    /// The `# Replication` section of `INFO`.
    pub(super) fn replication_info(&self) -> String {
        match &self.role {
            SimRole::Master => "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n".to_owned(),
            SimRole::Replica { master } => {
                let (host, port) = split_addr(master);
                format!(
                    "# Replication\r\nrole:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\n\
                     master_link_status:up\r\nslave_read_only:1\r\nconnected_slaves:0\r\n"
                )
            }
        }
    }
}
