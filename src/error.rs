//! The crate's error type: one typed variant per way a Keeper call can fail.

use std::time::Duration;

use crate::config::ConfigError;
use crate::policy::FailureKind;

/// Everything a [`Keeper`](crate::Keeper) call can fail with.
///
/// Messages are short and lowercase, name the database and never contain a secret.
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::Error;
/// let e = Error::PoolTimeout { db: "main".into(), waited: Duration::from_secs(5) };
/// assert!(e.is_timeout());
/// assert!(e.is_retryable());
/// assert_eq!(e.to_string(), "timed out after 5s waiting for a connection to database `main`");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name is not one of the configured databases (never silently mapped to db 0).
    #[error("unknown database `{name}` (configured: {known})")]
    UnknownDatabase {
        /// The name asked for.
        name: String,
        /// The configured names, comma-separated.
        known: String,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No connection became free before the pool's wait timeout.
    #[error("timed out after {waited:?} waiting for a connection to database `{db}`")]
    PoolTimeout {
        /// The database.
        db: String,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The circuit breaker is open: no connection attempt was made.
    #[error("circuit open for database `{db}`: retry after {retry_after:?}")]
    CircuitOpen {
        /// The database.
        db: String,
        /// When the breaker will admit a probe.
        retry_after: Duration,
    },
    /// The server kept answering `LOADING` past the readiness timeout.
    #[error("database `{db}` not ready: server still loading its dataset after {waited:?}")]
    NotReady {
        /// The database.
        db: String,
        /// How long the caller waited for readiness.
        waited: Duration,
    },
    /// The server refused the credentials.
    #[error("authentication failed for database `{db}`: {source}")]
    Auth {
        /// The database.
        db: String,
        /// The server's reply.
        #[source]
        source: redis::RedisError,
    },
    /// The TLS handshake failed: the server's certificate did not verify (wrong CA, wrong name,
    /// expired; `source` says which), or the server refused the client's certificate. Not
    /// retried: the configuration or the server must change.
    #[error("TLS with database `{db}` failed: {source}")]
    Tls {
        /// The database.
        db: String,
        /// The handshake's failure.
        #[source]
        source: redis::RedisError,
    },
    /// Opening a connection failed (after the retry schedule, when the failure was retryable).
    #[error("could not connect to database `{db}` after {attempts} attempt(s): {source}")]
    Connect {
        /// The database.
        db: String,
        /// How many attempts were made.
        attempts: u32,
        /// What the last attempt met, as the policies saw it (`ConnectTimeout` for a connect
        /// or handshake that took too long).
        kind: FailureKind,
        /// The last failure.
        #[source]
        source: redis::RedisError,
    },
    /// A command on a shared (multiplexed) connection would change state for every user of it.
    #[error(
        "`{command}` changes connection state and cannot run on a shared connection: use `get_exclusive`"
    )]
    NeedsExclusive {
        /// The refused command.
        command: String,
    },
    /// `SUBSCRIBE`, `PSUBSCRIBE` or `SSUBSCRIBE` on a command connection: pushed messages would
    /// arrive as the replies of later commands.
    #[error("`{command}` needs a connection of its own: use `Keeper::subscriber`")]
    NeedsSubscriber {
        /// The refused command.
        command: String,
    },
    /// A blocking call was made from inside an async task, where it would stall the executor.
    #[error("blocking call made from inside an async runtime: use the async API there")]
    BlockingInAsync,
    /// The master of a Sentinel-backed database moved (a failover) before the command was
    /// sent on this handle's connection to the old master: it was not sent. A shared handle
    /// and a clean exclusive one carry on with the new master by themselves; this comes from an
    /// exclusive handle whose transaction, WATCH or SELECT state stayed on the old master.
    #[error(
        "the master of database `{db}` moved (a Sentinel failover): the command was not sent; \
         this connection's transaction, WATCH or SELECT state is gone: get a new connection"
    )]
    MasterChanged {
        /// The database.
        db: String,
    },
    /// A database is configured as a Redis Cluster (`cluster.nodes`) that this Keeper cannot
    /// serve (built without the `cluster` feature, or on the simulated runtime): it is not
    /// built, rather than serve the database from `host`/`port`.
    #[error("database `{db}` is configured as a Redis Cluster (`cluster.nodes`), which {reason}")]
    ClusterNotServed {
        /// The database.
        db: String,
        /// Why it cannot be served.
        reason: String,
    },
    /// A Redis Cluster database was asked for what a cluster connection does not serve: an
    /// exclusive connection, a subscriber, or a command that needs one node's connection to
    /// itself (`WATCH`/`MULTI`, a blocking pop, `SELECT`, …). The handle stays usable.
    #[error(
        "database `{db}` is a Redis Cluster: {what} is not served on it (each command is routed \
         by its key's slot over connections shared by every caller; a transaction on keys of \
         one slot can be sent as an atomic pipeline)"
    )]
    NotOnCluster {
        /// The database.
        db: String,
        /// What was asked for (`an exclusive connection`, `` `BLPOP` ``, …).
        what: String,
    },
    /// The Keeper was closed.
    #[error("the keeper is closed")]
    Closed,
    /// `init_global` was called after the process-wide Keeper was set or first used.
    #[error("the process-wide keeper is already set")]
    GlobalAlreadySet,
    /// A command failed: the server's error reply or a transport failure.
    #[error(transparent)]
    Redis(redis::RedisError),
}

/// Which wait ran out, for a timeout [`Error`] (as deadpool's `TimeoutType` names the phase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Waiting for a free connection of the pool (`pool_wait_timeout`).
    PoolWait,
    /// Opening a connection: TCP connect, handshake and first PING (`socket_connect_timeout`).
    Connect,
    /// Waiting for a command's reply (`socket_timeout`, plus a blocking command's block time).
    Response,
    /// Waiting for the server to finish loading its dataset (`loading_timeout`).
    Readiness,
}

/// Gives back the crate's own error from a [`redis::RedisError`] that a handle returned: the
/// redis-rs traits (`AsyncCommands`, `Commands`, `query_async`) can only return their own error
/// type, so the crate's typed error travels inside it. Any other `RedisError` becomes
/// [`Error::Redis`].
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::Error;
/// let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
/// assert!(matches!(Error::from(io), Error::Redis(_)));
/// ```
impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        match Carried::find(&err) {
            Some(carried) => carried.0.duplicate(),
            None => Error::Redis(err),
        }
    }
}

/// The crate's error inside a [`redis::RedisError`] (as the payload of its `io::Error`, the one
/// redis-rs representation that holds an arbitrary error).
#[derive(Debug)]
struct Carried(Error);

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Carried {}

impl Carried {
    /// The carried error of `err`, when the crate produced it.
    fn find(err: &redis::RedisError) -> Option<&Carried> {
        crate::classify::io_error_of(err)?
            .get_ref()?
            .downcast_ref::<Carried>()
    }
}

impl Error {
    /// Whether the error is a timeout (pool wait, connect, response, readiness); see
    /// [`Error::timeout_phase`] for which.
    pub fn is_timeout(&self) -> bool {
        self.timeout_phase().is_some()
    }

    /// Which wait timed out, when the error is a timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redis_keeper::{Error, TimeoutPhase};
    /// let e = Error::NotReady { db: "main".into(), waited: Duration::from_secs(60) };
    /// assert_eq!(e.timeout_phase(), Some(TimeoutPhase::Readiness));
    /// assert_eq!(Error::Closed.timeout_phase(), None);
    /// ```
    pub fn timeout_phase(&self) -> Option<TimeoutPhase> {
        match self {
            Self::PoolTimeout { .. } => Some(TimeoutPhase::PoolWait),
            Self::NotReady { .. } => Some(TimeoutPhase::Readiness),
            Self::Connect { kind, .. } => kind.is_timeout().then_some(TimeoutPhase::Connect),
            Self::Redis(source) => crate::classify::classify(source)
                .is_timeout()
                .then_some(TimeoutPhase::Response),
            _ => None,
        }
    }

    /// Whether trying the same call again later may succeed.
    ///
    /// Note: a command that failed after it may have reached the server is retryable only if it
    /// is idempotent; that is the caller's call. The Keeper itself never retries it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::PoolTimeout { .. }
            | Self::CircuitOpen { .. }
            | Self::NotReady { .. }
            | Self::MasterChanged { .. }
            | Self::Connect { .. } => true,
            Self::Redis(source) => crate::classify::classify(source).is_retryable(),
            _ => false,
        }
    }

    /// The failure kind, as the policies see it, when the error came from Redis or the network.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            Self::Connect { kind, .. } => Some(*kind),
            Self::Redis(source) => Some(crate::classify::classify(source)),
            Self::Auth { .. } => Some(FailureKind::Auth),
            Self::Tls { .. } => Some(FailureKind::Tls),
            Self::CircuitOpen { .. } => Some(FailureKind::CircuitOpen),
            Self::NotReady { .. } => Some(FailureKind::Loading),
            _ => None,
        }
    }

    /// A copy of this error for every caller that waited on the same operation.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Self::UnknownDatabase { name, known } => Self::UnknownDatabase {
                name: name.clone(),
                known: known.clone(),
            },
            Self::Config(e) => Self::Config(e.clone()),
            Self::PoolTimeout { db, waited } => Self::PoolTimeout {
                db: db.clone(),
                waited: *waited,
            },
            Self::CircuitOpen { db, retry_after } => Self::CircuitOpen {
                db: db.clone(),
                retry_after: *retry_after,
            },
            Self::NotReady { db, waited } => Self::NotReady {
                db: db.clone(),
                waited: *waited,
            },
            Self::Auth { db, source } => Self::Auth {
                db: db.clone(),
                source: source.clone(),
            },
            Self::Tls { db, source } => Self::Tls {
                db: db.clone(),
                source: source.clone(),
            },
            Self::Connect {
                db,
                attempts,
                kind,
                source,
            } => Self::Connect {
                db: db.clone(),
                attempts: *attempts,
                kind: *kind,
                source: source.clone(),
            },
            Self::NeedsExclusive { command } => Self::NeedsExclusive {
                command: command.clone(),
            },
            Self::NeedsSubscriber { command } => Self::NeedsSubscriber {
                command: command.clone(),
            },
            Self::BlockingInAsync => Self::BlockingInAsync,
            Self::MasterChanged { db } => Self::MasterChanged { db: db.clone() },
            Self::ClusterNotServed { db, reason } => Self::ClusterNotServed {
                db: db.clone(),
                reason: reason.clone(),
            },
            Self::NotOnCluster { db, what } => Self::NotOnCluster {
                db: db.clone(),
                what: what.clone(),
            },
            Self::Closed => Self::Closed,
            Self::GlobalAlreadySet => Self::GlobalAlreadySet,
            Self::Redis(e) => Self::Redis(e.clone()),
        }
    }

    /// Converts into a [`redis::RedisError`] for the `ConnectionLike` trait methods (the redis-rs
    /// traits can only return their own error type). A server reply or transport failure is
    /// returned as it came; a failed connect or login as redis-rs reported it (its kind intact);
    /// every other error of the crate travels inside, typed, and `Error::from` gives it back.
    /// Its `io::ErrorKind` is `TimedOut` for a timeout, else `Other`, and its message is the
    /// error's own.
    pub(crate) fn into_redis(self) -> redis::RedisError {
        match self {
            Self::Redis(e) => e,
            // A ROLE mismatch is the crate's finding, not redis-rs's: it travels inside.
            Self::Connect { source, kind, .. } if kind != FailureKind::RoleMismatch => source,
            Self::Auth { source, .. } | Self::Tls { source, .. } => source,
            other => {
                let kind = if other.is_timeout() {
                    std::io::ErrorKind::TimedOut
                } else {
                    std::io::ErrorKind::Other
                };
                redis::RedisError::from(std::io::Error::new(kind, Carried(other)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_crates_own_errors_come_back_typed_from_a_redis_error() {
        let errors = [
            Error::CircuitOpen {
                db: "main".into(),
                retry_after: Duration::from_secs(7),
            },
            Error::NotReady {
                db: "main".into(),
                waited: Duration::from_secs(60),
            },
            Error::PoolTimeout {
                db: "jobs".into(),
                waited: Duration::from_secs(5),
            },
            Error::Closed,
            Error::NeedsExclusive {
                command: "BLPOP".into(),
            },
            Error::NeedsSubscriber {
                command: "SUBSCRIBE".into(),
            },
        ];
        for e in errors {
            let text = e.to_string();
            let (timeout, retryable) = (e.is_timeout(), e.is_retryable());
            let redis = e.duplicate().into_redis();
            assert_eq!(redis.to_string(), text, "the message is the error's own");
            assert_eq!(redis.is_timeout(), timeout, "{text}");
            let back = Error::from(redis);
            assert_eq!(back.to_string(), text);
            assert_eq!(
                (back.is_timeout(), back.is_retryable()),
                (timeout, retryable)
            );
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&e),
                "{text}"
            );
        }
        let back = Error::from(
            Error::CircuitOpen {
                db: "main".into(),
                retry_after: Duration::from_secs(7),
            }
            .into_redis(),
        );
        assert!(
            matches!(&back, Error::CircuitOpen { db, retry_after } if db == "main" && *retry_after == Duration::from_secs(7)),
            "{back:?}"
        );
        assert!(back.is_retryable());
        let server = redis::RedisError::from((redis::ErrorKind::Client, "other"));
        assert!(matches!(Error::from(server), Error::Redis(_)));
    }
}
