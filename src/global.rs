//! The process-wide Keeper behind `get_redis_client`, the seed's canonical entry point.

use std::sync::OnceLock;

use crate::{BlockingConnection, Error, Keeper, KeeperConfig, PooledConnection};

static GLOBAL: OnceLock<Keeper> = OnceLock::new();

/// The process-wide Keeper, built on first use from [`KeeperConfig::discover`] on the runtime
/// the first caller runs on.
pub fn global_keeper() -> Result<&'static Keeper, Error> {
    if let Some(keeper) = GLOBAL.get() {
        return Ok(keeper);
    }
    let keeper = Keeper::new(KeeperConfig::discover()?)?;
    // Two first callers may race: one Keeper wins, the other is closed unused.
    Ok(GLOBAL.get_or_init(|| keeper))
}

/// A shared connection to database `db` from the process-wide Keeper (the seed's
/// `get_redis_client(async_client=True, database=…)`). Errors are typed, never `None`.
///
/// ```no_run
/// # async fn demo() -> Result<(), redis_keeper::Error> {
/// use redis::AsyncCommands;
/// let mut conn = redis_keeper::get_redis_client("main").await?;
/// let _: () = conn.set("k", "v").await?;
/// # Ok(()) }
/// ```
pub async fn get_redis_client(db: impl AsRef<str>) -> Result<PooledConnection, Error> {
    global_keeper()?.get(db).await
}

/// An exclusive blocking connection to database `db` from the process-wide Keeper (the seed's
/// `get_redis_client(async_client=False, database=…)`), for sync code: no runtime needed.
///
/// ```no_run
/// # fn demo() -> Result<(), redis_keeper::Error> {
/// use redis::Commands;
/// let mut conn = redis_keeper::get_redis_client_blocking("main")?;
/// let _: () = conn.set("k", "v")?;
/// # Ok(()) }
/// ```
pub fn get_redis_client_blocking(db: impl AsRef<str>) -> Result<BlockingConnection, Error> {
    global_keeper()?.get_blocking(db)
}
