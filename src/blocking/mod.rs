//! The blocking twin of the async API: [`BlockingConnection`] and the `Keeper::*_blocking` calls.
//!
//! Blocking calls run the very same async code (same databases, pools, breaker, readiness,
//! retry, idle and health policies, same statistics) and wait for it on the calling thread with
//! the runtime's [`Block`](crate::seams::Block) waiter. The I/O, timers and connection drivers are
//! driven by the runtime's own threads (smol's reactor and executor threads, or a tokio runtime),
//! so a sync-only program needs no runtime of its own: `Keeper::new` outside tokio runs on smol.

mod packed;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use redis::{Cmd, RedisResult, Value};

use crate::connection::PooledConnection;
use crate::error::Error;
use crate::keeper::{HealthReport, Keeper};
use crate::seams::{block_with, Block};

/// Waits for `fut` with `blocker`, refusing inside an async executor.
pub(crate) fn wait<F>(blocker: &dyn Block, fut: F) -> Result<F::Output, Error>
where
    F: Future + Send,
    F::Output: Send,
{
    block_with(blocker, fut).map_err(|_| Error::BlockingInAsync)
}

/// A connection for synchronous code. It implements [`redis::ConnectionLike`], so every
/// [`redis::Commands`] method, `redis::cmd(..).query(..)` and `redis::pipe().query(..)` work on
/// it; dropping it returns the connection to its pool.
///
/// From [`Keeper::get_blocking`] it is *exclusive*: lent to this holder alone (WATCH/MULTI,
/// BLPOP and `SELECT` work; a connection whose state was changed is closed, not re-pooled).
/// From [`Keeper::get_blocking_shared`] it is a share of a multiplexed connection, like
/// [`Keeper::get`].
///
/// Every command runs under the database's policies: a `-LOADING` reply waits for readiness and
/// is sent again, transport failures feed the breaker, and a command with no reply within the
/// response timeout (measured on the runtime's `Clock`) fails and its connection is closed, so a
/// late reply can never reach the next user.
///
/// ```no_run
/// # fn demo() -> Result<(), redis_keeper::Error> {
/// use redis::Commands;
/// let keeper = redis_keeper::Keeper::new(redis_keeper::KeeperConfig::discover()?)?;
/// let mut conn = keeper.get_blocking("sessions")?;
/// let _: () = conn.set_ex("session:1", "alice", 3600)?;
/// let user: String = conn.get("session:1")?;
/// assert_eq!(user, "alice");
/// # Ok(()) }
/// ```
pub struct BlockingConnection {
    inner: PooledConnection,
    blocker: Arc<dyn Block>,
}

impl BlockingConnection {
    /// The name of the database this connection serves.
    ///
    /// ```no_run
    /// # fn demo(keeper: redis_keeper::Keeper) -> Result<(), redis_keeper::Error> {
    /// assert_eq!(keeper.get_blocking("main")?.database(), "main");
    /// # Ok(()) }
    /// ```
    pub fn database(&self) -> &str {
        self.inner.database()
    }

    /// The Redis db number this connection is on.
    ///
    /// ```no_run
    /// # fn demo(keeper: redis_keeper::Keeper) -> Result<(), redis_keeper::Error> {
    /// assert_eq!(keeper.get_blocking("knowledge")?.db_number(), 1);
    /// # Ok(()) }
    /// ```
    pub fn db_number(&self) -> u8 {
        self.inner.db_number()
    }

    /// Whether this connection is lent to this holder alone.
    ///
    /// ```no_run
    /// # fn demo(keeper: redis_keeper::Keeper) -> Result<(), redis_keeper::Error> {
    /// assert!(keeper.get_blocking("main")?.is_exclusive());
    /// assert!(!keeper.get_blocking_shared("main")?.is_exclusive());
    /// # Ok(()) }
    /// ```
    pub fn is_exclusive(&self) -> bool {
        self.inner.is_exclusive()
    }

    fn wait<F>(blocker: &dyn Block, fut: F) -> RedisResult<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        wait(blocker, fut).map_err(Error::into_redis)
    }
}

impl fmt::Debug for BlockingConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingConnection")
            .field("database", &self.database())
            .field("exclusive", &self.is_exclusive())
            .finish()
    }
}

fn malformed(e: packed::Malformed) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "redis-keeper could not read the packed command",
        e.0,
    ))
}

impl redis::ConnectionLike for BlockingConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        let cmd = packed::parse_command(cmd).map_err(malformed)?;
        self.req_command(&cmd)
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let pipe = packed::parse_pipeline(cmd).map_err(malformed)?;
        let fut =
            redis::aio::ConnectionLike::req_packed_commands(&mut self.inner, &pipe, offset, count);
        Self::wait(&*self.blocker, fut)?
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        let fut = redis::aio::ConnectionLike::req_packed_command(&mut self.inner, cmd);
        Self::wait(&*self.blocker, fut)?
    }

    fn get_db(&self) -> i64 {
        i64::from(self.db_number())
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.inner.is_usable()
    }
}

impl Keeper {
    /// An exclusive connection for synchronous code: the blocking twin of
    /// [`Keeper::get_exclusive`], from the same pool (the database's `max_connections` bounds
    /// async and blocking connections together). Waits up to the pool wait timeout
    /// (`PoolTimeout`); fails at once with `CircuitOpen` while the breaker is open, and with
    /// `BlockingInAsync` when called where blocking would stall an async executor.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), redis_keeper::Error> {
    /// use redis::Commands;
    /// use redis_keeper::{Keeper, KeeperConfig};
    /// let keeper = Keeper::new(KeeperConfig::discover()?)?; // no runtime needed
    /// let mut conn = keeper.get_blocking("jobs")?;
    /// let _: () = conn.rpush("queue", "job-1")?;
    /// let job: Option<(String, String)> = conn.blpop("queue", 1.0)?; // fine: exclusive
    /// # Ok(()) }
    /// ```
    ///
    /// On a Redis Cluster database (no exclusive connections there) it is the blocking twin of
    /// [`Keeper::get`]: commands routed by slot, the same refusals.
    pub fn get_blocking(&self, db: impl AsRef<str>) -> Result<BlockingConnection, Error> {
        let blocker = self.blocker().clone();
        let name = db.as_ref().to_owned();
        let inner = if self.settings(&name)?.cluster.is_some() {
            wait(&*blocker, self.get(name))??
        } else {
            wait(&*blocker, self.get_exclusive(name))??
        };
        Ok(BlockingConnection { inner, blocker })
    }

    /// A share of one of the database's multiplexed connections for synchronous code: the
    /// blocking twin of [`Keeper::get`]. Cheap and concurrent (many threads, few sockets), but it
    /// refuses state-changing commands (WATCH/MULTI, blocking pops, SELECT, …) with
    /// `NeedsExclusive`; atomic pipelines work.
    ///
    /// ```no_run
    /// # fn demo(keeper: redis_keeper::Keeper) -> Result<(), redis_keeper::Error> {
    /// use redis::Commands;
    /// let mut conn = keeper.get_blocking_shared("cache")?;
    /// let hits: i64 = conn.incr("hits", 1)?;
    /// # Ok(()) }
    /// ```
    pub fn get_blocking_shared(&self, db: impl AsRef<str>) -> Result<BlockingConnection, Error> {
        let blocker = self.blocker().clone();
        let inner = wait(&*blocker, self.get(db.as_ref().to_owned()))??;
        Ok(BlockingConnection { inner, blocker })
    }

    /// The blocking twin of [`Keeper::pipeline`]: builds a pipeline with `build`, runs it on a
    /// shared connection and returns its results. Call `p.atomic()` inside `build` for MULTI/EXEC.
    ///
    /// ```no_run
    /// # fn demo(keeper: redis_keeper::Keeper) -> Result<(), redis_keeper::Error> {
    /// let (a, n): (i64, i64) = keeper.pipeline_blocking("main", |p| {
    ///     p.incr("a", 1).incr("n", 2);
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn pipeline_blocking<T, F>(&self, db: impl AsRef<str>, build: F) -> Result<T, Error>
    where
        T: redis::FromRedisValue + Send,
        F: FnOnce(&mut redis::Pipeline) + Send,
    {
        let db = db.as_ref().to_owned();
        wait(&**self.blocker(), self.pipeline(db, build))?
    }

    /// The blocking twin of [`Keeper::health`].
    ///
    /// ```no_run
    /// # fn demo(keeper: redis_keeper::Keeper) -> Result<(), redis_keeper::Error> {
    /// let report = keeper.health_blocking()?;
    /// println!("all healthy: {}", report.all_healthy());
    /// # Ok(()) }
    /// ```
    pub fn health_blocking(&self) -> Result<HealthReport, Error> {
        wait(&**self.blocker(), self.health())
    }

    /// The blocking twin of [`Keeper::close`]: refuses new work, waits up to the drain bound
    /// for the commands in flight, then stops the background tasks and closes every
    /// connection. Called from inside an async task, where it must not wait, it closes at once
    /// without draining.
    ///
    /// ```no_run
    /// # fn demo(keeper: redis_keeper::Keeper) {
    /// keeper.close_blocking();
    /// assert!(keeper.is_closed());
    /// # }
    /// ```
    pub fn close_blocking(&self) {
        if wait(&**self.blocker(), self.close()).is_err() {
            self.close_now();
        }
    }
}
